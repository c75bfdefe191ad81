"""One transfer stage's condition grid on a real dask cluster of 1 and of 2 workers, side by side.

A scheduler and N single-threaded worker processes on 127.0.0.1 (hrtem_ood.execution.cluster, as dask-jobqueue
starts them on a cluster). The stage is ``hrtem_ood.execution.grid.train_and_write`` on a grid of 2 frozen parts x
2 transfer sizes x 2 seeds (8 models, 1 torch thread each) of the default model on synthetic 256 px
images. Each cluster runs the stage twice: cold (the workers import torch and load the test sets) and
warm (the same workers, as for the next stage of a `dvc repro`). Prints wall seconds, the speed-up over
1 worker and the parallel efficiency (speed-up / workers).

Usage: python benchmarks/cluster_scaling.py [params.yaml]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.dataio.datasets import write_h5
from hrtem_ood.execution import grid
from hrtem_ood.execution.cluster import local_cluster


def synthetic_domains(root: Path, names, n_train=16, size=256, seed=0) -> None:
    """Disks (particles) in noisy lattice fringes; the same masks in every domain, contrast per domain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", n_train), ("val", 2), ("test", 4)):
        masks = np.zeros((n, size, size), np.uint8)
        for k in range(n):
            cy, cx = rng.integers(40, size - 40, size=2)
            masks[k] = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(15, 30) ** 2
        for j, name in enumerate(names):
            fringes = np.cos(xx * 2 * np.pi / (7 + j)) * (1 - 2 * (j % 2))
            images = rng.poisson(50 * (1 + 0.3 * masks * fringes[None])).astype(np.float32)
            write_h5(root / name / f"{split}.h5", {"images": images, "masks": masks},
                     {"domain": name, "sampling_A": 0.2})


def main(params_path="params.yaml"):
    p = load_params(params_path)
    p["train"].update(seeds=[0, 1], threads=1, parallel_models=1)
    p["pretrain"].update(lr=1e-3, epochs=2, n_images=None)
    p["transfer"].update(lr=1e-4, epochs=2, n_images=[8, 16], freeze=["none", "encoder"])
    p["domains"] = {"a": {"defocus_nm": -10}, "b": {"defocus_nm": 10}}
    p["pretrain"]["domains"] = ["a"]
    p["aggregate"].update(pairs=[["a", "b"]], exclude_from_std=[])
    p["ingest"]["datasets"], p["labels"]["datasets"] = {}, []
    p = validate(p)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic_domains(tmp / "domains", ["a", "b"])
        os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
        grid.train_and_write(grid.stage_jobs(p, "pretrain", "a", tmp / "domains"), tmp / "pre", tmp / "pre.csv",
                             tmp / "pre.json", tmp / "pre-timing.csv")
        jobs = grid.stage_jobs(p, "transfer", "a", tmp / "domains", targets=["b"], init_dir=tmp / "pre" / "a")
        walls = {}
        for n in (1, 2):
            with local_cluster(n) as address:
                os.environ["DASK_SCHEDULER_ADDRESS"] = address
                for run in ("cold", "warm"):
                    t0 = time.perf_counter()
                    grid.train_and_write(jobs, tmp / f"m{n}{run}", tmp / f"r{n}{run}.csv", tmp / f"c{n}{run}.json",
                                         tmp / f"t{n}{run}.csv")
                    walls[(n, run)] = time.perf_counter() - t0
                del os.environ["DASK_SCHEDULER_ADDRESS"]
    print(f"one transfer stage: {len(jobs)} models (2 frozen parts x 2 sizes x 2 seeds), 1 thread each, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workers':>8} {'cold s':>8} {'warm s':>8} {'speed-up (warm)':>16} {'efficiency':>11}")
    for n in (1, 2):
        speedup = walls[(1, "warm")] / walls[(n, "warm")]
        print(f"{n:>8} {walls[(n, 'cold')]:>8.1f} {walls[(n, 'warm')]:>8.1f} {speedup:>16.2f} {speedup / n:>11.2f}")
    print(f"start-up paid once per worker: cold - warm = {walls[(1, 'cold')] - walls[(1, 'warm')]:.1f} s (1 worker), "
          f"{walls[(2, 'cold')] - walls[(2, 'warm')]:.1f} s (2 workers)")


if __name__ == "__main__":
    main(*sys.argv[1:])
