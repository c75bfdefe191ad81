"""``hrtem-ood remote-check``: check a DVC SSH remote before pushing to it. dvc-ssh (through sshfs) connects with
host-key checking turned off, so a push never notices a server that is not the lab's. This check connects as
dvc-ssh would (the remote's user, port and keyfile from DVC's config), but verifies the server's host key
against ``~/.ssh/known_hosts``, logs in, and writes and removes a file in the remote folder. Each failure is one
line: an unknown or changed host key, a refused key, an unreachable server, a missing or read-only folder."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from hrtem_ood.errors import UserError


def remote_config(repo: str | Path, name: str | None) -> tuple[str, dict]:
    """The named remote of the DVC repository (default: ``core.remote``) and its merged config."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        conf = r.config
        name = name or conf["core"].get("remote")
        if not name:
            raise UserError(f"{repo}: no remote named and no default remote (dvc remote default NAME)")
        if name not in conf["remote"]:
            raise UserError(f"{repo}: no DVC remote {name!r} (remotes: {sorted(conf['remote']) or 'none'})")
        return name, dict(conf["remote"][name])


async def _check(host: str, port: int, user: str, keyfile: str | None, path: str) -> str:
    import asyncssh

    known = Path(os.path.expanduser("~/.ssh/known_hosts"))
    where = f"ssh://{user}@{host}:{port}{path}"
    try:
        conn = await asyncssh.connect(host, port=port, username=user, known_hosts=str(known) if known.is_file() else (),
                                      client_keys=[keyfile] if keyfile else (), agent_path=None,
                                      preferred_auth="publickey", config=None)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise UserError(f"{where}: the server's host key is not trusted ({exc.reason}); compare its fingerprint "
                        f"(ssh-keyscan -p {port} {host} | ssh-keygen -lf -) with the one your admin gives, then add "
                        f"it to {known}. dvc push itself does not check host keys") from exc
    except asyncssh.PermissionDenied as exc:
        raise UserError(f"{where}: the server refused user {user} with key {keyfile or '(none given)'}; set the "
                        "key with dvc remote modify --local NAME keyfile PATH") from exc
    except (OSError, asyncssh.Error) as exc:
        raise UserError(f"{where}: cannot connect ({exc})") from exc
    async with conn:
        fingerprint = conn.get_server_host_key().get_fingerprint()
        async with conn.start_sftp_client() as sftp:
            if not await sftp.isdir(path):
                raise UserError(f"{where}: {path} is not a folder on the server; create it (ssh -p {port} "
                                f"{user}@{host} mkdir -p {path})")
            probe = f"{path.rstrip('/')}/.hrtem-ood-check-{uuid.uuid4().hex}"
            try:
                async with sftp.open(probe, "w") as f:
                    await f.write("ok")
                await sftp.remove(probe)
            except (OSError, asyncssh.SFTPError) as exc:
                raise UserError(f"{where}: cannot write in {path} ({exc})") from exc
    return f"{where}: host key trusted ({fingerprint}), logged in as {user}, folder writable"


def check_remote(repo: str | Path = ".", name: str | None = None) -> str:
    """Check the DVC remote ``name`` of ``repo`` (an ``ssh://`` URL); returns a one-line report."""
    import getpass

    name, conf = remote_config(repo, name)
    url = urlsplit(conf["url"])
    if url.scheme != "ssh":
        raise UserError(f"remote {name}: {conf['url']} is not an ssh:// remote")
    user = conf.get("user") or url.username or getpass.getuser()
    port = int(conf.get("port") or url.port or 22)
    keyfile = os.path.expanduser(conf["keyfile"]) if conf.get("keyfile") else None
    return asyncio.run(_check(url.hostname, port, user, keyfile, url.path or "/"))
