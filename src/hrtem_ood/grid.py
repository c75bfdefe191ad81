"""The condition grid of a training stage, and running it: one task per model, here or on a dask cluster.

``pretrain.lr``, ``transfer.lr``, ``transfer.n_images`` and ``transfer.freeze`` each take one value or a
list. A pretraining stage trains every pretraining LR x ``train.seeds``; a transfer stage trains, for each
of its targets, every (pretraining LR, transfer LR, transfer size, freezing mode) x ``train.seeds``, each
starting from the pretrained model of the same seed and pretraining LR. This module never imports torch:
the stage process only builds tasks and writes what they return, so on a dask cluster the workers (warm
between stages) pay the torch start-up, and a worker loads its own initial model from the file named in
its task.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from .datasets import DatasetError
from .domains import domain_names
from .params import RESULT_COLUMNS, fail


def values(x) -> list:
    """A grid key's values: a list as it is, one value as a list of one."""
    return list(x) if isinstance(x, list) else [x]


def conditions(params: dict, stage: str) -> list[dict]:
    """The stage's grid of conditions, in a fixed order: ``lr_pretrain`` (both stages), then ``lr_transfer``,
    ``n_transfer`` and ``freeze`` (transfer)."""
    lrp = [float(v) for v in values(params["pretrain"]["lr"])]
    if stage == "pretrain":
        return [{"lr_pretrain": v} for v in lrp]
    tc = params["transfer"]
    return [{"lr_pretrain": a, "lr_transfer": float(b), "n_transfer": int(n), "freeze": f}
            for a, b, n, f in itertools.product(lrp, values(tc["lr"]), values(tc["n_images"]), values(tc["freeze"]))]


def condition_tag(cond: dict) -> str:
    """A file and run name for a condition: ``lrp0.001`` or ``lrp0.001-lrt0.0001-n20-none``."""
    tag = f"lrp{cond['lr_pretrain']:g}"
    if "lr_transfer" in cond:
        tag += f"-lrt{cond['lr_transfer']:g}-n{cond['n_transfer']}-{cond['freeze']}"
    return tag


def models_per_stage(params: dict, stage: str, n_targets: int = 1) -> int:
    """How many models one stage trains: its grid x seeds (x its targets, for a transfer row)."""
    return len(conditions(params, stage)) * len(params["train"]["seeds"]) * n_targets


def stage_jobs(params: dict, stage: str, pretrain_domain: str, domains_dir: str | Path,
               targets: list[str] | None = None, init_dir: str | Path | None = None) -> list[dict]:
    """One task per model of the stage (plain data, for :func:`hrtem_ood.training.train_one_model`).

    A pretraining stage's models are saved as ``<tag>/seed<k>.pt`` under its models folder; a transfer's as
    ``<target>/<tag>/seed<k>.pt``, starting from ``<init_dir>/<pretrain tag>/seed<k>.pt``.
    """
    section = params[stage]
    common = {"model": params["model"], "train": params["train"], "stage": stage, "pretrain_domain": pretrain_domain,
              "eval_domains": domain_names(params), "domains_dir": str(Path(domains_dir).resolve()),
              "epochs": int(section["epochs"]), "params_file": params.get("_source", "params.yaml")}
    jobs = []
    for target in targets or [pretrain_domain]:
        for cond in conditions(params, stage):
            for seed in params["train"]["seeds"]:
                job = {**common, "target_domain": target, "seed": seed, **cond, "tag": condition_tag(cond)}
                if stage == "pretrain":
                    job.update(lr=cond["lr_pretrain"], n_images=section["n_images"], freeze="none", init_file=None,
                               model_file=f"{job['tag']}/seed{seed}.pt")
                else:
                    init = Path(init_dir) / condition_tag({"lr_pretrain": cond["lr_pretrain"]}) / f"seed{seed}.pt"
                    if not init.is_file():
                        raise DatasetError(f"{init}: pretrained model not found (train.seeds or pretrain.lr "
                                           "changed? rerun the pretrain stage)")
                    job.update(lr=cond["lr_transfer"], n_images=cond["n_transfer"], init_file=str(init.resolve()),
                               model_file=f"{target}/{job['tag']}/seed{seed}.pt")
                jobs.append(job)
    return jobs


def transfer_targets(params: dict, pretrain: str) -> list[str]:
    """The targets of ``transfer.pairs`` that start from ``pretrain`` (its row of the transfer grid)."""
    targets = [pair["target"] for pair in params["transfer"]["pairs"].values() if pair["pretrain"] == pretrain]
    if pretrain not in params["pretrain"]["domains"] or not targets:
        fail(params, "pretrain.domains", f"{pretrain!r} is not a pretraining domain with transfer pairs")
    return targets


def side_by_side(tc: dict, n_jobs: int) -> int:
    """How many of a stage's ``n_jobs`` models train at once locally: ``train.parallel_models``, at most."""
    return max(1, min(int(tc.get("parallel_models", 1)), n_jobs))


def model_threads(tc: dict, n_jobs: int) -> int:
    """Torch threads of one model of a stage of ``n_jobs`` models: ``train.threads`` shared by the models
    that train side by side. Every model gets this count wherever it runs (here, a local worker process
    or a dask worker), so its results depend only on params and the stage."""
    return max(1, int(tc["threads"]) // side_by_side(tc, n_jobs))


def run_job(job: dict) -> dict:
    """Check ``model`` (timm encoder, U-Net build: one line naming the key if wrong), then train one model.
    Torch is imported where this runs: here, a spawned process or a dask worker."""
    from .model import check_encoder
    from .training import train_one_model

    check_encoder({"model": job["model"], "_source": job["params_file"]})
    return train_one_model(job)


def _exit_with_parent(parent_pid: int) -> None:
    """Called first in each local worker (``_worker``): exit as soon as the stage process that spawned it
    is gone (stopped with SIGTERM or SIGKILL, say), so that no worker trains on as an orphan."""
    import os
    import threading
    import time

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(conn, parent_pid: int, fn) -> None:
    """A local training worker: run each job it is sent, send back ``(True, result)`` or ``(False,
    exception)``, until it is sent None; exit if the stage process dies."""
    _exit_with_parent(parent_pid)
    while (job := conn.recv()) is not None:
        try:
            conn.send((True, fn(job)))
        except Exception as exc:  # raised again in the stage process
            conn.send((False, exc))


def _run_locally(jobs: list[dict], fn=run_job) -> list[dict]:
    """One after another in this process, or ``train.parallel_models`` side by side in spawned worker
    processes (each pays the start-up once; on 2 cores two 1-thread models train 1.5x faster than one
    2-thread model after another: benchmarks/training_speed.py).

    The workers exit when the stage process dies, and a worker that dies (killed for memory, say) fails
    the stage at once. (concurrent.futures' pool could miss a dead worker and wait for ever: it watches
    the workers it had when it last woke, and spawns them one per job.)"""
    n = side_by_side(jobs[0]["train"], len(jobs))
    if n <= 1:
        return [fn(job) for job in jobs]
    import multiprocessing
    import os
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(n):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(there, os.getpid(), fn))
        proc.start()
        there.close()  # so that the worker's death reads as end-of-file here
        workers.append((proc, here))
    results, todo, busy = [None] * len(jobs), list(enumerate(jobs)), {}
    try:
        idle = list(workers)
        while todo or busy:
            while todo and idle:
                proc, conn = idle.pop()
                i, job = todo.pop(0)
                conn.send(job)
                busy[conn] = (proc, i)
            for conn in wait(list(busy)):
                proc, i = busy.pop(conn)
                try:
                    ok, value = conn.recv()
                except EOFError:
                    proc.join(5)
                    raise RuntimeError(f"a training worker (pid {proc.pid}) died (exit code {proc.exitcode}) while "
                                       f"training job {i + 1} of {len(jobs)}; out of memory?") from None
                if not ok:
                    raise value
                results[i] = value
                idle.append((proc, conn))
        for _, conn in workers:
            conn.send(None)
        for proc, _ in workers:
            proc.join()
        return results
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()
                proc.join()


def train_and_write(jobs: list[dict], models_out: Path, results_out: Path, curves_out: Path) -> None:
    """Train every job (on the dask cluster when one is configured, else :func:`_run_locally`); write the
    best models, the results table and the learning curves atomically."""
    from .io import atomic_path, write_csv, write_json
    from .parallel import map_ordered, scheduler_address

    jobs = [dict(job, threads=model_threads(job["train"], len(jobs))) for job in jobs]
    if scheduler_address():
        results = map_ordered(run_job, jobs, desc=f"{jobs[0]['stage']} models")
    else:
        results = _run_locally(jobs)
    with atomic_path(models_out, is_dir=True) as tmp:
        for job, r in zip(jobs, results, strict=True):
            path = tmp / job["model_file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(r["model_bytes"])
    write_csv(results_out, [row for r in results for row in r["rows"]], RESULT_COLUMNS)
    write_json(curves_out, [c for r in results for c in r["curve"]])
