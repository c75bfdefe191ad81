"""A lab's DVC remote over SSH, against a real sshd (tests/sshd_server.py): the README's "Share with your lab" steps
(push, then a colleague's clone pulls and has nothing to rerun), a server that dies in the middle of a push, and
clear refusals for a wrong key and for an unknown host key."""

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import dvc, git

#: A tiny pipeline: one stage writes 120 files of 100 kB from a seed in params.yaml.
STAGE = """import os, random, sys
import yaml
n, seed = 120, yaml.safe_load(open("params.yaml"))["seed"]
rng = random.Random(seed)
os.makedirs("out", exist_ok=True)
for k in range(n):
    open(f"out/part{k:03d}.bin", "wb").write(rng.randbytes(100_000))
"""


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _add_remote(repo: Path, sshd, storage: Path, key: Path) -> None:
    """The README's steps: the remote and its credentials in .dvc/config.local, never in git."""
    dvc(repo, "remote", "add", "--local", "-d", "lab", sshd.url(storage))
    dvc(repo, "remote", "modify", "--local", "lab", "keyfile", str(key))


@pytest.fixture
def lab(tmp_path, sshd):
    repo, storage = tmp_path / "lab", tmp_path / "storage"
    repo.mkdir()
    storage.mkdir()
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    (repo / "make.py").write_text(STAGE)
    (repo / "params.yaml").write_text("seed: 7\n")
    dvc(repo, "stage", "add", "-q", "-n", "make", "-d", "make.py", "-p", "seed", "-o", "out", "python make.py")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny pipeline")
    _add_remote(repo, sshd, storage, sshd.key)
    assert "config.local" not in git(repo, "ls-files", ".dvc")  # credentials stay out of git
    return repo, storage


def test_push_then_a_colleague_pulls_with_nothing_to_rerun(lab, sshd, tmp_path):
    repo, storage = lab
    dvc(repo, "push", home=sshd.home)
    clone = tmp_path / "colleague"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    _add_remote(clone, sshd, storage, sshd.key)
    dvc(clone, "pull", home=sshd.home)
    assert "up to date" in dvc(clone, "status").stdout
    assert "didn't change" in dvc(clone, "repro").stdout  # nothing reruns
    assert _files(clone / "out") == _files(repo / "out") and len(_files(clone / "out")) == 120


def test_a_server_killed_mid_push_leaves_nothing_corrupt(lab, sshd, tmp_path):
    """sshd and every session it serves are killed once part of the files have landed; the push fails. After a
    restart the push completes, every object in the remote hashes to its name (an upload cut off leaves only a
    hidden .tmp file, never a wrong object), and a fresh clone's verified pull gives the same bytes."""
    import os
    import subprocess
    import sys
    import time

    repo, storage = lab
    exe = Path(sys.executable).with_name("dvc")
    env = {**os.environ, "HOME": str(sshd.home), "DVC_NO_ANALYTICS": "1"}
    push = subprocess.Popen([str(exe), "push"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 120
    def landed() -> int:
        return sum(1 for p in storage.rglob("*") if p.is_file())

    while landed() < 20 and push.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert push.poll() is None, "the push ended before the server could be killed"
    before = landed()
    sshd.kill()
    out = push.communicate(timeout=300)[0]
    assert push.returncode != 0 and "ERROR" in out, out  # "Connection lost", or "N files failed to upload"
    assert 0 < before < 121
    sshd.start()
    dvc(repo, "push", home=sshd.home)
    files = [p for p in storage.rglob("*") if p.is_file()]
    partial = [p for p in files if p.name.startswith(".")]  # an upload cut off: dvc-ssh writes .<random>.tmp first
    assert all(p.name.endswith(".tmp") for p in partial), partial
    objects = [p for p in files if p not in partial and not p.name.endswith(".dir")]
    assert len(objects) == 120
    for p in objects:  # content-addressed: files/md5/ab/cdef... holds the bytes whose md5 is abcdef...
        assert hashlib.md5(p.read_bytes()).hexdigest() == p.parent.name + p.name, p
    clone = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    _add_remote(clone, sshd, storage, sshd.key)
    dvc(clone, "remote", "modify", "--local", "lab", "verify", "true")
    dvc(clone, "pull", home=sshd.home)
    assert _files(clone / "out") == _files(repo / "out")


def test_wrong_key_is_refused_in_one_clear_line(lab, sshd, capsys, monkeypatch):
    from hrtem_ood.cli import main

    repo, _ = lab
    dvc(repo, "remote", "modify", "--local", "lab", "keyfile", str(sshd.wrong_key))
    proc = dvc(repo, "push", check=False, home=sshd.home)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    monkeypatch.chdir(repo)
    monkeypatch.setenv("HOME", str(sshd.home))
    assert main(["remote-check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused user" in err[0] and str(sshd.wrong_key) in err[0]


def test_unknown_host_key_is_refused_by_the_check(lab, sshd, tmp_path, capsys, monkeypatch):
    """dvc-ssh connects without checking host keys (sshfs passes known_hosts=None): a push to a server that is
    not in known_hosts goes through. `hrtem-ood remote-check` is the gate: it refuses such a server in one line
    and accepts it once its key is in known_hosts."""
    from hrtem_ood.cli import main

    repo, _ = lab
    stranger = tmp_path / "stranger-home"
    (stranger / ".ssh").mkdir(parents=True)
    (stranger / ".ssh/known_hosts").write_text("")
    assert dvc(repo, "push", check=False, home=stranger).returncode == 0  # the gap this check closes
    monkeypatch.chdir(repo)
    monkeypatch.setenv("HOME", str(stranger))
    assert main(["remote-check", "lab"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "host key is not trusted" in err[0] and "ssh-keyscan" in err[0]
    shutil.copy(sshd.home / ".ssh/known_hosts", stranger / ".ssh/known_hosts")
    assert main(["remote-check", "lab"]) == 0
    assert "host key trusted (SHA256:" in capsys.readouterr().out
