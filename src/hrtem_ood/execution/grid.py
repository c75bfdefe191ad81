"""The condition grid of a training stage, and running it: one task per model, here or on a dask cluster.

``pretrain.lr``, ``transfer.lr``, ``transfer.n_images`` and ``transfer.freeze`` each take one value or a
list. The pretraining stage trains every pretraining domain x LR x ``train.seeds``; a transfer stage trains, for each
of its targets, every (pretraining LR, transfer LR, transfer size, freezing mode) x ``train.seeds``, each
starting from the pretrained model of the same seed and pretraining LR. This module never imports torch:
the stage process only builds tasks and writes what they return, so on a dask cluster the workers (warm
between stages) pay the torch start-up, and a worker loads its own initial model from the file named in
its task.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from hrtem_ood.config.domains import domain_names, transfer_pairs
from hrtem_ood.config.params import fail
from hrtem_ood.config.schema import grid_values
from hrtem_ood.dataio.datasets import DatasetError, split_size
from hrtem_ood.results.columns import RESULT_COLUMNS, TIMING_COLUMNS

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params, Train


def conditions(params: Params, stage: str) -> list[dict]:
    """The stage's grid of conditions, in a fixed order: ``lr_pretrain`` (both stages), then ``lr_transfer``,
    ``n_transfer`` and ``freeze`` (transfer)."""
    lrp = grid_values(params.pretrain.lr)
    if stage == "pretrain":
        return [{"lr_pretrain": v} for v in lrp]
    tc = params.transfer
    return [{"lr_pretrain": a, "lr_transfer": b, "n_transfer": n, "freeze": f} for a, b, n, f in
            itertools.product(lrp, grid_values(tc.lr), grid_values(tc.n_images), grid_values(tc.freeze))]


def condition_tag(cond: dict) -> str:
    """A file and run name for a condition: ``lrp0.001`` or ``lrp0.001-lrt0.0001-n20-none``."""
    tag = f"lrp{cond['lr_pretrain']:g}"
    if "lr_transfer" in cond:
        tag += f"-lrt{cond['lr_transfer']:g}-n{cond['n_transfer']}-{cond['freeze']}"
    return tag


def run_name(stage: str, pretrain_domain: str, target_domain: str, tag: str, seed: int) -> str:
    """A model's ``run`` in the results tables and curves: ``pretrain:<domain>:<tag>:s<seed>``, else
    ``<stage>:<start>-><target>:<tag>:s<seed>``."""
    if stage == "pretrain":
        return f"pretrain:{pretrain_domain}:{tag}:s{seed}"
    return f"{stage}:{pretrain_domain}->{target_domain}:{tag}:s{seed}"


def models_per_stage(params: Params, stage: str, n_targets: int = 1) -> int:
    """How many models one stage trains: its grid x seeds (x its targets, for a transfer row)."""
    return len(conditions(params, stage)) * len(params.train.seeds) * n_targets


def stage_jobs(params: Params, stage: str, pretrain_domain: str, domains_dir: str | Path,
               targets: list[str] | None = None, init_dir: str | Path | None = None) -> list[dict]:
    """One task per model of the stage (plain data, for :func:`hrtem_ood.learning.training.train_one_model`).

    Pretrained models are saved as ``<pretrain domain>/<tag>/seed<k>.pt`` under the pretrain stage's models
    folder; a transfer's as ``<target>/<tag>/seed<k>.pt`` under its row's, starting from
    ``<init_dir>/<pretrain tag>/seed<k>.pt``.
    """
    section = getattr(params, stage)
    common = {"model": params.model, "train": params.train, "stage": stage, "pretrain_domain": pretrain_domain,
              "eval_domains": domain_names(params), "domains_dir": str(Path(domains_dir).resolve()),
              "epochs": section.epochs, "params_file": params.source}
    jobs = []
    for target in targets or [pretrain_domain]:
        for cond in conditions(params, stage):
            for seed in params.train.seeds:
                job = {**common, "target_domain": target, "seed": seed, **cond, "tag": condition_tag(cond)}
                if stage == "pretrain":
                    job.update(lr=cond["lr_pretrain"], n_images=section.n_images, freeze="none", init_file=None,
                               model_file=f"{pretrain_domain}/{job['tag']}/seed{seed}.pt")
                else:
                    init = Path(init_dir) / condition_tag({"lr_pretrain": cond["lr_pretrain"]}) / f"seed{seed}.pt"
                    if not init.is_file():
                        raise DatasetError(f"{init}: pretrained model not found (train.seeds or pretrain.lr "
                                           "changed? rerun the pretrain stage)")
                    job.update(lr=cond["lr_transfer"], n_images=cond["n_transfer"], init_file=str(init.resolve()),
                               model_file=f"{target}/{job['tag']}/seed{seed}.pt")
                jobs.append(job)
    return jobs


def pretrain_jobs(params: Params, domains_dir: str | Path) -> list[dict]:
    """Every pretraining model: ``pretrain.domains`` x ``pretrain.lr`` x ``train.seeds``, domain by domain."""
    return [job for d in params.pretrain.domains for job in stage_jobs(params, "pretrain", d, domains_dir)]


def label_jobs(params: Params, dataset: str, domains_dir: str | Path, init_dir: str | Path,
               starts: dict[str, str | None], n_train_micrographs: int) -> list[dict]:
    """The label-count study of one ingested dataset (``labels``): for every start (``starts``: best / worst ->
    its pretraining domain, scratch -> None), every ``labels.n_micrographs`` ("all" = ``n_train_micrographs``)
    and seed, a model trained on every tile of the dataset's first n train micrographs, from the pretrained model
    of that seed (the first ``pretrain.lr``) or from scratch. Saved as ``<tag>/seed<k>.pt``, tag
    ``<start>-<domain>-n<n>`` (``scratch-n<n>``)."""
    lc = params.labels
    lrp = grid_values(params.pretrain.lr)[0]
    common = {"model": params.model, "train": params.train, "stage": "labels", "target_domain": dataset,
              "eval_domains": domain_names(params), "domains_dir": str(Path(domains_dir).resolve()),
              "epochs": lc.epochs, "params_file": params.source, "freeze": "none", "n_images": None}
    jobs = []
    for start in lc.starts:
        domain = starts[start]
        for n in lc.n_micrographs:
            n = n_train_micrographs if n == "all" else n
            if n > n_train_micrographs:
                fail(params, "labels.n_micrographs", f"{n} micrographs asked for, but the train split of {dataset} "
                                                     f"holds {n_train_micrographs}")
            tag = f"scratch-n{n}" if domain is None else f"{start}-{domain}-n{n}"
            for seed in params.train.seeds:
                init = None
                if domain is not None:
                    init = Path(init_dir) / domain / condition_tag({"lr_pretrain": lrp}) / f"seed{seed}.pt"
                    if not init.is_file():
                        raise DatasetError(f"{init}: pretrained model not found (rerun the pretrain stage)")
                jobs.append({**common, "pretrain_domain": domain or "scratch", "seed": seed, "tag": tag,
                             "n_sources": n, "lr_pretrain": lrp if domain else None,
                             "lr": lc.lr if domain else lc.lr_scratch,
                             "init_file": None if init is None else str(init.resolve()),
                             "model_file": f"{tag}/seed{seed}.pt"})
    return jobs


def transfer_targets(params: Params, pretrain: str) -> list[str]:
    """The targets of the transfer pairs that start from ``pretrain`` (its row of the transfer grid): every
    evaluated domain but ``pretrain`` (:func:`hrtem_ood.config.domains.transfer_pairs`)."""
    targets = [pair["target"] for pair in transfer_pairs(params).values() if pair["pretrain"] == pretrain]
    if pretrain not in params.pretrain.domains or not targets:
        fail(params, "pretrain.domains", f"{pretrain!r} is not a pretraining domain with transfer pairs")
    return targets


def side_by_side(tc: Train, n_jobs: int) -> int:
    """How many of a stage's ``n_jobs`` models train at once locally: ``train.parallel_models``, at most."""
    return max(1, min(tc.parallel_models, n_jobs))


def model_threads(tc: Train, n_jobs: int) -> int:
    """Torch threads of each model of a stage of ``n_jobs`` models: ``train.threads`` shared by the models that
    train side by side (5 pretraining models on 2 threads: 1 thread each, the fifth too). Every model gets this
    count wherever it runs (here, a local worker process or a dask worker) and whatever its place in the stage,
    so its results depend only on params and the size of its stage's grid."""
    return max(1, tc.threads // side_by_side(tc, n_jobs))


def job_cost(job: dict) -> float:
    """A training task's size, to start the longest first (a stage's jobs differ: the label-count study's models
    train on 1 to 12 micrographs, an ingested target validates on more tiles): pixels through the model over its
    epochs, a training crop counted twice (forward and backward). Scheduling only; no result depends on it. A
    split it cannot read counts 0: the job itself then names the file, after checking the params."""
    tc, root, target = job["train"], job["domains_dir"], job["target_domain"]
    try:
        n_train, _ = split_size(root, target, "train", job["n_images"], job.get("n_sources"))
        n_val, val_px = split_size(root, target, "val")
    except DatasetError:
        return 0.0
    return job["epochs"] * (2 * n_train * tc.crops_per_image * tc.crop_px ** 2 + n_val * val_px)


def run_job(job: dict) -> dict:
    """Check ``model`` (timm encoder, U-Net build: one line naming the params file and key if wrong), then train
    one model. Torch is imported where this runs: here, a spawned process or a dask worker."""
    from hrtem_ood.learning.model import check_encoder
    from hrtem_ood.learning.training import train_one_model

    check_encoder(job["model"], job["params_file"])
    return train_one_model(job)


def train_and_write(jobs: list[dict], models_out: Path, results_out: Path, curves_out: Path, timing_out: Path,
                    per_domain: bool = False) -> None:
    """Train every job (on the dask cluster when one is configured, else ``train.parallel_models`` side by side
    in local worker processes); write the best models, the results table, the learning curves and the timing
    table atomically. ``per_domain``: ``results_out``, ``curves_out`` and ``timing_out`` are folders of one
    ``<pretrain domain>.csv`` / ``.json`` / ``.csv`` each (the pretrain stage), else single files (a transfer
    row)."""
    from hrtem_ood.dataio.io import atomic_path, write_csv, write_json
    from hrtem_ood.execution.parallel import map_ordered, run_side_by_side, scheduler_address

    tc = jobs[0]["train"]
    jobs = [dict(job, threads=model_threads(tc, len(jobs))) for job in jobs]
    costs = [job_cost(job) for job in jobs]
    if scheduler_address():
        results = map_ordered(run_job, jobs, desc=f"{jobs[0]['stage']} models", costs=costs)
    else:
        results = run_side_by_side(run_job, jobs, side_by_side(tc, len(jobs)), costs=costs)
    with atomic_path(models_out, is_dir=True) as tmp:
        for job, r in zip(jobs, results, strict=True):
            path = tmp / job["model_file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(r["model_bytes"])
    if not per_domain:
        write_csv(results_out, [row for r in results for row in r["rows"]], RESULT_COLUMNS)
        write_json(curves_out, [c for r in results for c in r["curve"]])
        write_csv(timing_out, [r["timing"] for r in results], TIMING_COLUMNS)
        return
    domains = list(dict.fromkeys(job["pretrain_domain"] for job in jobs))
    mine = {d: [r for job, r in zip(jobs, results, strict=True) if job["pretrain_domain"] == d] for d in domains}
    with atomic_path(results_out, is_dir=True) as tmp:
        for d in domains:
            write_csv(tmp / f"{d}.csv", [row for r in mine[d] for row in r["rows"]], RESULT_COLUMNS)
    with atomic_path(curves_out, is_dir=True) as tmp:
        for d in domains:
            write_json(tmp / f"{d}.json", [c for r in mine[d] for c in r["curve"]])
    with atomic_path(timing_out, is_dir=True) as tmp:
        for d in domains:
            write_csv(tmp / f"{d}.csv", [r["timing"] for r in mine[d]], TIMING_COLUMNS)
