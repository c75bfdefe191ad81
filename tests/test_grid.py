"""The condition grid of the training stages: its cartesian product, names, initial models and limits."""

from pathlib import Path

import pytest
import yaml
from conftest import REPO

from hrtem_ood.config.params import ParamsError, validate
from hrtem_ood.dataio.datasets import DatasetError
from hrtem_ood.execution import grid


def test_transfer_grid_is_the_cartesian_product_in_a_fixed_order(params):
    params["pretrain"]["lr"] = [1e-3, 1e-4]
    params["transfer"].update(lr=[1e-4, 1e-5], n_images=[1, 2, 3], freeze=["none", "encoder", "decoder"])
    typed = validate(params)
    conds = grid.conditions(typed, "transfer")
    assert len(conds) == 2 * 2 * 3 * 3
    assert len({grid.condition_tag(c) for c in conds}) == len(conds)  # every model gets its own file
    assert conds[0] == {"lr_pretrain": 1e-3, "lr_transfer": 1e-4, "n_transfer": 1, "freeze": "none"}
    assert conds[1]["freeze"] == "encoder" and conds[3]["n_transfer"] == 2  # freeze varies fastest
    assert grid.condition_tag(conds[-1]) == "lrp0.0001-lrt1e-05-n3-decoder"
    assert grid.conditions(typed, "pretrain") == [{"lr_pretrain": 1e-3}, {"lr_pretrain": 1e-4}]
    assert grid.models_per_stage(typed, "transfer", n_targets=2) == 36 * 2 * len(params["train"]["seeds"])


def test_one_value_is_a_grid_of_one(params):
    assert grid.conditions(validate(params), "transfer") == [{"lr_pretrain": params["pretrain"]["lr"],
                                                    "lr_transfer": params["transfer"]["lr"],
                                                    "n_transfer": params["transfer"]["n_images"],
                                                    "freeze": params["transfer"]["freeze"]}]


def test_a_transfer_starts_from_the_pretrained_model_of_its_seed_and_pretraining_lr(params, tmp_path):
    params["pretrain"]["lr"] = [1e-3, 1e-4]
    params["train"]["seeds"] = [0, 1]
    params["transfer"]["freeze"] = ["none", "encoder"]
    init = tmp_path / "pre"
    for tag in ("lrp0.001", "lrp0.0001"):
        for seed in (0, 1):
            (init / tag).mkdir(parents=True, exist_ok=True)
            (init / tag / f"seed{seed}.pt").write_bytes(b"x")
    typed = validate(params)
    jobs = grid.stage_jobs(typed, "transfer", "dfm10", tmp_path, targets=["df0", "dfp10"], init_dir=init)
    assert len(jobs) == 2 * 2 * 2 * 2  # targets x pretraining LRs x frozen parts x seeds
    for job in jobs:
        assert job["init_file"].endswith(f"lrp{job['lr_pretrain']:g}/seed{job['seed']}.pt")
        assert job["model_file"] == f"{job['target_domain']}/{job['tag']}/seed{job['seed']}.pt"
        assert job["lr"] == job["lr_transfer"] and job["n_images"] == job["n_transfer"]
    assert len({j["model_file"] for j in jobs}) == len(jobs)
    (init / "lrp0.0001" / "seed1.pt").unlink()
    with pytest.raises(DatasetError, match=r"lrp0.0001/seed1.pt: pretrained model not found"):
        grid.stage_jobs(typed, "transfer", "dfm10", tmp_path, targets=["df0"], init_dir=init)


def test_grid_lists_validate_and_their_mistakes_name_the_key(params):
    params["pretrain"]["lr"] = [1e-3, 1e-4]
    params["transfer"].update(lr=[1e-4], n_images=[1, 2], freeze=["none", "encoder"])
    validate(params)
    for section, key, value, problem in (("transfer", "freeze", ["none", "none"], "duplicate values"),
                                         ("transfer", "n_images", [1, 99], "99 images asked for"),
                                         ("transfer", "freeze", ["none", "enc"], "transfer.freeze"),
                                         ("pretrain", "lr", [], "transfer.lr|pretrain.lr"),
                                         ("transfer", "lr", [1e-4, 2.0], "transfer.lr")):
        bad = yaml.safe_load(yaml.safe_dump(params))
        bad[section][key] = value
        with pytest.raises(ParamsError, match=problem) as err:
            validate(bad)
        assert "\n" not in str(err.value)


def test_the_paper_preset_is_the_studys_grid_of_144_models_per_cell():
    from hrtem_ood.config.presets import preset_params

    p = preset_params("paper", REPO / "params.yaml", REPO / "presets")
    assert isinstance(p.transfer.n_images, list) and isinstance(p.transfer.lr, list)  # typed, as the stages use it
    assert grid.models_per_stage(p, "transfer") == 144  # 2 x 2 LRs x 3 frozen parts x 4 sizes x 3 seeds
    assert grid.models_per_stage(p, "pretrain") == 6  # 2 pretraining LRs x 3 seeds
    assert sorted(p.transfer.n_images) == [64, 128, 256, 512]


WORKER = '''
import os, sys, time
from pathlib import Path

def record_and_wait(job):
    Path(job["out"], f"{os.getpid()}.pid").write_text("")
    time.sleep(job["sleep_s"])
    return os.getpid()

if __name__ == "__main__":
    from hrtem_ood.execution.parallel import run_side_by_side
    jobs = [{"out": sys.argv[1], "sleep_s": float(sys.argv[2])}] * 2
    run_side_by_side(record_and_wait, jobs, 2)
'''


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _stage_command(tmp_path, sleep_s: float) -> list[str]:
    """The command of a stand-in stage whose two side-by-side workers record their pids in tmp_path/pids,
    then sleep ``sleep_s``."""
    import sys

    (tmp_path / "stage.py").write_text(WORKER)
    (tmp_path / "pids").mkdir()
    return [sys.executable, str(tmp_path / "stage.py"), str(tmp_path / "pids"), str(sleep_s)]


def _stage_with_workers(tmp_path, sleep_s: float):
    """The stand-in stage, started, once both its workers are running."""
    import subprocess
    import time

    proc = subprocess.Popen(_stage_command(tmp_path, sleep_s), cwd=tmp_path)
    out = tmp_path / "pids"
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.pid"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    return proc, [int(f.stem) for f in out.glob("*.pid")]


def _gone_within(pids: list[int], seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(pid) for pid in pids)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_stopping_a_stage_stops_its_workers(tmp_path, signal_name):
    """After `kill` of a stage (SIGTERM, or SIGKILL) its spawned workers exit on their own.
    Before, both left the workers training as orphans, taking the CPU from the next run."""
    import signal

    proc, pids = _stage_with_workers(tmp_path, 120)
    proc.send_signal(getattr(signal, signal_name))
    proc.wait(timeout=30)
    assert _gone_within(pids, 10), f"workers {pids} outlived their stage"


def test_a_dead_worker_fails_the_stage_instead_of_hanging_it(tmp_path):
    """A worker killed from outside (for memory, say) ends the stage with an error, and the other worker
    with it (a multiprocessing.Pool would wait for the lost job for ever)."""
    import os
    import signal

    proc, pids = _stage_with_workers(tmp_path, 120)
    os.kill(pids[0], signal.SIGKILL)
    assert proc.wait(timeout=60) != 0
    assert _gone_within(pids, 10), f"workers {pids} outlived their stage"


def test_a_job_error_in_a_worker_is_raised_by_the_stage(tmp_path):
    """The exception of a job that fails in a worker (here time.sleep(-1)) ends the stage with that
    exception, not a hang or a generic error."""
    import subprocess

    run = subprocess.run(_stage_command(tmp_path, -1), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "ValueError: sleep length must be non-negative" in run.stderr


def test_tasks_start_longest_first_ties_and_no_costs_in_the_given_order():
    from hrtem_ood.execution.parallel import longest_first

    assert longest_first(5, [1.0, 5.0, 3.0, 5.0, 0.5]) == [1, 3, 2, 0, 4]
    assert longest_first(3, None) == [0, 1, 2]
    with pytest.raises(ValueError, match="2 costs for 3 tasks"):
        longest_first(3, [1.0, 2.0])


ORDER_WORKER = '''
import json, sys, time

def record_start(job):
    start = time.monotonic_ns()
    time.sleep(job["sleep_s"])
    return {"name": job["name"], "start": start}

if __name__ == "__main__":
    from hrtem_ood.execution.parallel import run_side_by_side
    sleeps = [0.2, 0.6, 0.4, 0.8, 0.1]
    jobs = [{"name": f"job{i}", "sleep_s": s} for i, s in enumerate(sleeps)]
    print(json.dumps(run_side_by_side(record_start, jobs, 2, costs=sleeps)))
'''


def test_side_by_side_workers_start_the_costliest_jobs_first_and_results_keep_the_jobs_order(tmp_path):
    import json
    import subprocess
    import sys

    (tmp_path / "stage.py").write_text(ORDER_WORKER)
    out = subprocess.run([sys.executable, str(tmp_path / "stage.py")], capture_output=True, text=True, check=True)
    results = json.loads(out.stdout)
    assert [r["name"] for r in results] == [f"job{i}" for i in range(5)]
    started = [r["name"] for r in sorted(results, key=lambda r: r["start"])]
    assert set(started[:2]) == {"job3", "job1"} and started[-1] == "job4"  # 0.8 and 0.6 s first, 0.1 s last


def test_a_jobs_cost_grows_with_its_labelled_micrographs_and_its_validation_tiles(params, tmp_path):
    import numpy as np

    from hrtem_ood.dataio.datasets import split_size, write_h5

    def split(root, n, sources=None):
        arrays = {"images": np.zeros((n, 32, 32), np.float32), "masks": np.zeros((n, 32, 32), np.uint8)}
        if sources is not None:
            arrays["source_index"] = np.asarray(sources)
        write_h5(root, arrays, {})

    for domain, n_val in (("sim", 2), ("real", 8)):
        split(tmp_path / domain / "train.h5", 12, sources=[3, 3, 3, 0, 0, 0, 1, 1, 1, 2, 2, 2])
        split(tmp_path / domain / "val.h5", n_val)
    typed = validate(params)
    job = {"train": typed.train, "domains_dir": str(tmp_path), "target_domain": "real", "epochs": 10,
           "n_images": None}
    by_sources = [grid.job_cost({**job, "n_sources": n}) for n in (1, 2, 4)]
    assert by_sources[0] < by_sources[1] < by_sources[2]
    crop = typed.train.crops_per_image * typed.train.crop_px ** 2  # tiles of micrographs 0 and 1: 6 images
    assert by_sources[1] == 10 * (2 * 6 * crop + 8 * 32 * 32)
    assert grid.job_cost({**job, "n_images": 5}) > grid.job_cost({**job, "target_domain": "sim", "n_images": 5})
    assert grid.job_cost({**job, "target_domain": "nowhere"}) == 0  # the job itself names the missing file
    with pytest.raises(DatasetError, match="nowhere/train.h5"):
        split_size(tmp_path, "nowhere", "train")
