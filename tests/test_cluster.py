"""Stages run against a real dask cluster (a scheduler and two workers on 127.0.0.1) give the same
outputs as the local run: byte-identical simulated data, metrics equal to float tolerance."""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_params

from hrtem_ood.domains import expected_pairs

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        for _ in range(300):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(sched_file),
                                           "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                           "--host", "127.0.0.1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        from dask.distributed import Client

        with Client(scheduler_file=str(sched_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _run(cwd: Path, args: list[str], address: str | None):
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    if address:
        env["DASK_SCHEDULER_ADDRESS"] = address
    else:
        env["HRTEM_OOD_WORKERS"] = "1"
    proc = subprocess.run([str(BIN / "hrtem-ood"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_cluster_and_local_runs_agree(tmp_path, cluster):
    params = tiny_params()
    params["train"]["seeds"] = [0, 1]
    params["pretrain"]["domains"] = ["dfm10"]
    params["domains"] = {k: params["domains"][k] for k in ("dfm10", "df0")}
    params["transfer"]["pairs"] = expected_pairs(params)
    params["aggregate"]["pairs"] = [["dfm10", "df0"]]
    dirs = {}
    for name, address in (("local", None), ("cluster", cluster)):
        d = tmp_path / name
        d.mkdir()
        (d / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        _run(d, ["structures", "--out", "data/structures"], None)
        _run(d, ["simulate", "--structures", "data/structures", "--out", "data/exitwaves"], address)
        for dom in params["domains"]:
            _run(d, ["image", "--domain", dom, "--exitwaves", "data/exitwaves", "--out", f"data/domains/{dom}"], None)
        _run(d, ["pretrain", "--domain", "dfm10", "--domains-dir", "data/domains", "--models-out", "models/dfm10",
                 "--results-out", "metrics/results/pretrain/dfm10.csv", "--curves-out", "curves.json"], address)
        dirs[name] = d
    for f in ("data/exitwaves/exitwaves.h5", "data/domains/dfm10/train.h5"):
        assert (dirs["local"] / f).read_bytes() == (dirs["cluster"] / f).read_bytes(), f
    rows = {}
    for name, d in dirs.items():
        with open(d / "metrics/results/pretrain/dfm10.csv") as fh:
            rows[name] = {(r["run"], r["eval_domain"], r["metric"]): float(r["value"]) for r in csv.DictReader(fh)}
    assert rows["local"].keys() == rows["cluster"].keys() and len(rows["local"]) == 2 * 2 * 4
    for k, v in rows["local"].items():
        assert rows["cluster"][k] == pytest.approx(v, abs=1e-5), k
