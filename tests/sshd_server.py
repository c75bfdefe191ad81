"""A real OpenSSH server (Debian's `openssh-server`) for the remote-storage tests: `sshd` on 127.0.0.1 at a free
port, with a throw-away host key, user key and authorized_keys in a temporary folder, and its own config file.
No system config is read or written; as root, sshd only needs its privilege-separation folder /run/sshd."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
AuthorizedKeysFile {root}/authorized_keys
PidFile {root}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
"""


def sshd_path() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if os.path.exists(p)), None)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SSHServer:
    """``start()``, ``kill()`` (the server and every session it serves, as a crash would), ``url(path)``; the
    client side: ``key`` (authorized), ``wrong_key`` (not), and ``home``, a HOME whose ``.ssh/known_hosts``
    trusts the server's host key."""

    def __init__(self, root: Path):
        self.root, self.port, self.user = root, _free_port(), getpass.getuser()
        _keygen(root / "host_key")
        _keygen(root / "client_key")
        _keygen(root / "wrong_key")
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        (root / "sshd_config").write_text(CONFIG.format(port=self.port, root=root))
        self.key, self.wrong_key = root / "client_key", root / "wrong_key"
        self.home = root / "home"
        (self.home / ".ssh").mkdir(parents=True)
        host_key = (root / "host_key.pub").read_text().split()[:2]
        (self.home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(host_key)}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> SSHServer:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # privilege separation, needed when sshd runs as root
        self.proc = subprocess.Popen([sshd_path(), "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"))
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not start: {(self.root / 'sshd.log').read_text()[-2000:]}")

    def _tree(self) -> list[int]:
        """The server's pid and those of every process it forked (one per session, and their children)."""
        parents: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    parents[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += [c for c, p in parents.items() if p == pid]
        return tree

    def kill(self) -> None:
        for pid in self._tree():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def url(self, path: Path | str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{Path(path).resolve()}"
