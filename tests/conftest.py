"""Shared fixtures: a tiny but physical parameter set, and a temporary copy of the repository."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def tiny_params() -> dict:
    """3 domains, a handful of 32 A scenes, 1 phonon, a few training steps."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["domains"] = {"dfm10": {"defocus_nm": -10}, "df0": {"defocus_nm": 0}, "dfp10": {"defocus_nm": 10}}
    p["structures"].update(n_train=3, n_val=1, n_test=1, field_A=32.0)
    p["structures"]["particles"].update(count=[1, 1], diameter_A=[22.0, 26.0], min_gap_A=5.0)
    p["structures"]["carbon"]["thickness_A"] = [10.0, 15.0]
    p["simulate"]["frozen_phonons"] = 1
    p["simulate"]["label"]["smoothing_A"] = 1.0  # 2.2-2.6 nm particles: 1.6 A smoothing empties some labels
    p["simulate"]["calibration"]["search_A"] = 150.0
    p["train"].update(crop_px=64, crops_per_image=2, batch_size=4, seeds=[0])
    p["pretrain"].update(domains=["dfm10", "dfp10"], epochs=2)
    p["transfer"].update(epochs=1, n_images=2)
    p["aggregate"]["pairs"] = [["dfm10", "dfp10"]]
    p["ingest"]["datasets"] = {}  # the real micrographs: tests that need them add them (test_pipeline)
    p["labels"]["datasets"] = []
    return p


@pytest.fixture
def params() -> dict:
    return copy.deepcopy(tiny_params())


def copy_repo(dest: Path, params: dict) -> Path:
    """Copy the tracked files of the repo to ``dest``, write ``params``, and commit them in a new git repo."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "tiny")
    return dest


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout


def dvc(cwd: Path, *args: str, check: bool = True, home: Path | None = None) -> subprocess.CompletedProcess:
    """Run dvc in ``cwd``; ``home``: the HOME it sees (an SSH client's known_hosts lives there)."""
    exe = Path(sys.executable).with_name("dvc")
    # no analytics: a repo made by `dvc init` would otherwise try to send a report (no network in tests) and leave
    # its report file in the temp folder
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    if home is not None:
        env["HOME"] = str(home)
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 (tests/sshd_server.py), skipped only where openssh-server is not installed."""
    from sshd_server import SSHServer, sshd_path

    if sshd_path() is None:
        pytest.skip("sshd is not installed (Debian: apt-get install openssh-server; .ci/run installs it)")
    if importlib.util.find_spec("dvc_ssh") is None:
        pytest.skip("dvc-ssh is not installed (pip install -e '.[ssh]')")
    server = SSHServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
