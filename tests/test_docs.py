"""The README and docs/results.md cannot drift from the committed runs: their result tables are what
docs/scripts/results_doc.py generates from committed metrics, and every run they list exists."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docs/scripts/results_doc.py"


def test_result_tables_are_generated_from_committed_metrics():
    proc = subprocess.run([sys.executable, str(SCRIPT), "check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_listed_run_has_committed_metrics_and_the_default_is_metrics_ood_json():
    runs = json.loads((REPO / "docs/results/runs.json").read_text())
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split())
    for run in runs:
        assert run["metrics"] in tracked, run["metrics"]
        head = json.loads((REPO / run["metrics"]).read_text())
        assert "phenomena" in head and head["scorecard_total"] == 6, run["name"]
    assert runs[0]["metrics"] == "metrics/ood.json"


def test_the_check_fails_on_a_stale_table(tmp_path):
    """The check is not vacuous: editing a number in a copy of the README makes it fail."""
    import shutil

    for rel in ("README.md", "docs/results.md", "docs/real-data.md", "docs/matching.md", "docs/results", "docs/archive",
                "docs/scripts/results_doc.py", "docs/scripts/matching_doc.py", "metrics/ood.json", "metrics/match.json",
                "metrics/curves", "metrics/labels", "models/ready/real_segtrack.json", "presets", "docs/ablations",
                "src/hrtem_ood/units.py"):
        src, dst = REPO / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    readme = tmp_path / "README.md"
    text = readme.read_text()
    start = text.index("<!-- results:default -->")
    readme.write_text(text[:start] + text[start:].replace("**", "**9", 1))
    proc = subprocess.run([sys.executable, str(tmp_path / "docs/scripts/results_doc.py"), "check"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "README.md" in proc.stderr


def test_the_usage_dask_jobqueue_recipe_runs_up_to_submitting_jobs(tmp_path, monkeypatch):
    """The SLURM recipe of docs/usage.md, run as written: its cluster object builds and starts a scheduler here,
    and its job script asks for what the comments promise. Only `scale` (sbatch) and `input` are stubbed,
    since no SLURM runs here."""
    import re

    dask_jobqueue = __import__("pytest").importorskip("dask_jobqueue")
    text = (REPO / "docs/usage.md").read_text()
    code = re.search(r"```python\n(# cluster\.py:.*?)```", text, re.S).group(1)
    scaled = {}
    monkeypatch.setattr(dask_jobqueue.SLURMCluster, "scale", lambda self, n=None, **kw: scaled.update(kw))
    monkeypatch.chdir(tmp_path)
    env = {"input": lambda prompt="": None}
    exec(compile(code, "docs/usage.md", "exec"), env)
    cluster = env["cluster"]
    try:
        script = cluster.job_script()
        assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --cpus-per-task=8" in script
        assert "--nthreads 1" in script and "--nworkers" not in script  # one worker, one model at a time
        assert scaled == {"jobs": 4}
        assert (tmp_path / "scheduler.txt").read_text().startswith("tcp://")
    finally:
        cluster.close()


def test_the_readme_is_short_and_sets_up_with_two_commands_ci_runs_the_second():
    """At most about 1,000 words; its only shell set-up blocks are the run command and the test command, both
    installing from the lock, and .ci/run ends in exactly the test command."""
    import re

    text = (REPO / "README.md").read_text()
    assert len(text.split()) <= 1000
    setup = text[text.index("## Set up and run"):text.index("## ", text.index("## Set up and run") + 3)]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert len(commands) == 2 and all("pip install -c requirements.lock -e '.[dev]'" in c for c in commands)
    assert commands[0].endswith("dvc repro") and commands[1].endswith("ruff check . && pytest")
    ci = (REPO / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci == commands[1]
