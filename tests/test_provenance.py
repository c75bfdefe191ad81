"""The committed results are what the committed code and params make: `dvc.lock` is in git, no stage's
code, params or command differs from it, the committed metrics and plots match the hashes it records,
and the `.gitignore` files DVC writes beside its outputs are committed (without them a clone that runs
`dvc pull` sees changed `data/domains` and retrains everything). Runs on the repository itself, with or
without its data (missing data is fine)."""

import json
import subprocess

import yaml
from conftest import REPO, dvc


def _lock() -> dict:
    return yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]


def test_lock_is_committed():
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "dvc.lock"], cwd=REPO, capture_output=True)
    assert tracked.returncode == 0, "dvc.lock is not in git"


def test_no_stage_differs_from_the_lock_in_code_params_or_committed_outputs():
    status = json.loads(dvc(REPO, "status", "--json").stdout)
    bad = []
    for stage, changes in status.items():
        for change in changes:
            if change == "changed command" or (isinstance(change, dict) and "changed command" in change):
                bad.append(f"{stage}: command")
            if not isinstance(change, dict):
                continue
            for path, what in (change.get("changed deps") or {}).items():
                if (path.startswith("src/") or path.endswith(".yaml")) and what != "deleted":
                    bad.append(f"{stage}: {path} {what}")
            for path, what in (change.get("changed outs") or {}).items():
                if path.startswith(("metrics/ood.json", "plots/")) and what != "deleted":
                    bad.append(f"{stage}: committed output {path} {what}")
    assert not bad, "rerun `dvc repro` and commit dvc.lock with its outputs: " + "; ".join(bad[:10])


def test_every_stage_of_the_pipeline_is_in_the_lock():
    listed = set(dvc(REPO, "stage", "list", "--name-only").stdout.split())
    assert listed == set(_lock())


def test_committed_outputs_are_those_the_lock_records():
    """Every uncached output (metrics, plots) is committed; every cached one is ignored by a committed
    .gitignore beside it."""
    for stage, entry in _lock().items():
        for out in entry.get("outs", []):
            path = REPO / out["path"]
            ignore = path.parent / ".gitignore"
            ignored = ignore.is_file() and f"/{path.name}" in ignore.read_text().split()
            tracked = subprocess.run(["git", "ls-files", "--error-unmatch", out["path"]], cwd=REPO,
                                     capture_output=True).returncode == 0
            assert ignored != tracked, f"{stage}: {out['path']} must be either committed or in a committed .gitignore"
            if ignored:
                assert subprocess.run(["git", "ls-files", "--error-unmatch", str(ignore.relative_to(REPO))],
                                      cwd=REPO, capture_output=True).returncode == 0, f"{ignore} is not in git"
