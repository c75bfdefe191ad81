"""Scaling on this machine: 1 vs 2 workers (simulation scenes/s, training crops/s), and cost vs number of domains.

Usage: python benchmarks/scaling.py [params.yaml] [--skip-domains]

1. Simulation: the same default scenes through ``parallel.map_ordered`` with HRTEM_OOD_WORKERS=1 and =2
   (the in-process local dask cluster the stages use).
2. Training: two models (two seeds), trained one after another with 1 and with 2 torch threads, and
   concurrently on a 2-worker local dask cluster with 1 torch thread each (how a cluster runs seeds).
3. Domains: the real ``dvc repro`` of a tiny pipeline in temporary copies of the repo with N = 2, 3, 4
   domains, every domain a pretraining domain (N pretraining stages, N(N-1) transfer stages), timed
   whole; seconds per stage, and a fit of wall = a + c N(N-1) to say how the cost grows.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _with_workers(n: int, func, *args):
    old = os.environ.get("HRTEM_OOD_WORKERS")
    os.environ["HRTEM_OOD_WORKERS"] = str(n)
    try:
        t0 = time.perf_counter()
        out = func(*args)
        return out, time.perf_counter() - t0
    finally:
        if old is None:
            del os.environ["HRTEM_OOD_WORKERS"]
        else:
            os.environ["HRTEM_OOD_WORKERS"] = old


def simulation(params, n_scenes: int = 4) -> None:
    from simulation_cost import scene_tasks  # benchmarks/ is on sys.path when run as a script

    from hrtem_ood.execution.parallel import map_ordered
    from hrtem_ood.physics.ctf import configure_abtem
    from hrtem_ood.physics.simulation import simulate_scene

    configure_abtem(params.simulate.fft)
    tasks = scene_tasks(params, n_scenes)
    simulate_scene(tasks[0])  # warm-up: abTEM import and numba JIT in this process
    first, t1 = _with_workers(1, map_ordered, simulate_scene, tasks, "1 worker")
    second, t2 = _with_workers(2, map_ordered, simulate_scene, tasks, "2 workers")
    same = all(np.array_equal(a["waves"], b["waves"]) for a, b in zip(first, second, strict=True))
    print(f"simulation, {n_scenes} scenes: 1 worker {n_scenes / t1:.3f} scenes/s, 2 workers {n_scenes / t2:.3f} "
          f"scenes/s, speed-up {t1 / t2:.2f}x, identical exit waves: {same}")


def _train(job):
    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import set_threads, train

    set_threads(job["threads"])
    rng = np.random.default_rng(job["seed"])
    x = rng.normal(size=(16, 256, 256)).astype(np.float32)
    y = (rng.random((16, 256, 256)) > 0.8).astype(np.int64)
    model = build_model(job["model"], job["seed"])
    res = train(model, x, y, x[:2], y[:2], job["train"], 1e-3, job["epochs"], seed=job["seed"])
    return res.images_seen


def training(params, epochs: int = 4) -> None:
    import torch

    from hrtem_ood.execution.parallel import map_ordered

    jobs = [{"model": params.model, "train": params.train, "epochs": epochs, "seed": s} for s in (0, 1)]
    _train({**jobs[0], "threads": 1, "epochs": 1})  # warm-up
    rates = {}
    for threads in (1, 2):
        t0 = time.perf_counter()
        n = sum(_train({**j, "threads": threads}) for j in jobs)
        rates[f"1 worker, {threads} torch thread(s), seeds one after another"] = n / (time.perf_counter() - t0)
    n, dt = _with_workers(2, map_ordered, _train, [{**j, "threads": 1} for j in jobs], "2 workers")
    rates["2 workers (local dask cluster), 1 torch thread each, seeds concurrently"] = sum(n) / dt
    torch.set_num_threads(params.train.threads)
    base = next(iter(rates.values()))
    print(f"training, 2 models x {epochs} epochs, crop {params.train.crop_px} px, batch "
          f"{params.train.batch_size}:")
    for name, r in rates.items():
        print(f"  {name}: {r:.1f} crops/s ({r / base:.2f}x)")


def domains(ns=(2, 3, 4)) -> None:
    import subprocess

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import copy_repo, tiny_params

    walls = {}
    for n in ns:
        p = copy.deepcopy(tiny_params())
        defoci = np.linspace(-10, 10, n).round().astype(int).tolist()
        names = [f"df{'m' if d < 0 else 'p' if d > 0 else ''}{abs(d)}" for d in defoci]
        p["domains"] = {name: {"defocus_nm": d} for name, d in zip(names, defoci, strict=True)}
        p["pretrain"]["domains"] = names
        p["aggregate"].update(pairs=[[names[0], names[-1]]], exclude_from_std=[])
        with tempfile.TemporaryDirectory() as tmp:
            copy_repo(Path(tmp), p)
            dvc = Path(sys.executable).with_name("dvc")
            t0 = time.perf_counter()
            subprocess.run([str(dvc), "repro", "-q"], cwd=tmp, check=True, capture_output=True)
            walls[n] = time.perf_counter() - t0
        print(f"N = {n} domains: {n} image + {n} pretrain + {n * (n - 1)} transfer stages, "
              f"dvc repro {walls[n]:.0f} s")
    report_domains(walls)


def report_domains(walls: dict[int, float]) -> None:
    """Seconds per stage, and a least-squares fit wall = a + c N(N-1) (the transfer grid's growth)."""
    ns = sorted(walls)
    for n in ns:
        stages = 2 * n + n * (n - 1)
        print(f"  N = {n}: {walls[n] / stages:.1f} s per image/training stage")
    A = np.array([[1.0, n * (n - 1)] for n in ns])
    (a, c), *_ = np.linalg.lstsq(A, np.array([walls[n] for n in ns]), rcond=None)
    resid = max(abs(a + c * n * (n - 1) - walls[n]) for n in ns)
    print(f"fit: wall = {a:.0f} s + {c:.1f} s x N(N-1) (largest residual {resid:.0f} s)")
    for n in (5, 11):
        print(f"  extrapolated N = {n} (all pretraining domains, tiny stages): {a + c * n * (n - 1):.0f} s")


def main():
    from hrtem_ood.config.params import load_params, validate

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    params = validate(load_params(args[0] if args else REPO / "params.yaml"))
    simulation(params)
    training(copy.deepcopy(params))
    if "--skip-domains" not in sys.argv:
        domains()


if __name__ == "__main__":
    main()
