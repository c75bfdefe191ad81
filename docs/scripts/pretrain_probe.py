"""A pretraining-only probe of the default params: train a few domains' pretraining models side by side
(one thread each, as the stage) with some params overridden, and print each model's in-domain loss and OOD std
(keyed ``domain/sN`` when ``train.seeds`` lists several seeds).

    python docs/scripts/pretrain_probe.py NAME '{"pretrain.lr": 0.003, "train.loss": "softmax_ce"}' [dfm10,dfp10] [LOG]
    python docs/scripts/pretrain_probe.py --measure DIR   # the pretraining measures of DIR/<domain>.csv

Options before NAME: ``--domains-dir DIR`` trains on another version's datasets (default: data/domains), and
``--threads N`` gives each model N threads (default 1, as the stage).

Needs the default's data (`dvc repro` or `dvc pull` first). It trains what a pretraining stage trains,
with the same code (hrtem_ood.execution.grid.stage_jobs and run_job) and one thread per model, as the stage
trains its models; probes of earlier defaults, whose stages used 2 threads, are close to, not byte-identical
with, their stages' numbers. One JSON line per probe is appended to LOG
(default docs/ablations/pretrain-probes.jsonl, the probes of issue 19's default; those of the retuned
default are in docs/ablations/default-probes.jsonl); docs/ablations/optimizer.md quotes both.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hrtem_ood.config.domains import domain_defocus_nm
from hrtem_ood.config.params import load_params, validate
from hrtem_ood.execution.grid import run_job, stage_jobs
from hrtem_ood.results.aggregation import aggregate_as_params, phenomena
from hrtem_ood.results.results_io import read_results

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "docs/ablations/pretrain-probes.jsonl"
DOMAINS = ROOT / "data/domains"


def probe(name: str, overrides: dict, domains: list[str], domains_dir: Path = DOMAINS,
          threads: int = 1) -> dict:
    params = load_params(ROOT / "params.yaml")
    for key, value in overrides.items():
        section, sub = key.split(".", 1)
        params[section][sub] = value
    params = validate(params)
    jobs = [dict(job, threads=threads) for d in domains for job in stage_jobs(params, "pretrain", d, domains_dir)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run_job, jobs))
    out = {"name": name, "overrides": overrides, "wall_s": round(time.perf_counter() - t0)}
    if domains_dir != DOMAINS or threads != 1:
        out.update(domains_dir=str(domains_dir), threads=threads)
    several_seeds = len(params.train.seeds) > 1
    for job, res in zip(jobs, results, strict=True):
        loss = {r["eval_domain"]: r["value"] for r in res["rows"] if r["metric"] == "paper_loss"}
        # the simulated domains only, as the aggregate stage: an ingested one is never in an OOD std
        ood = [v for d, v in loss.items() if d in params.domains and d not in params.aggregate.exclude_from_std]
        key = f"{job['pretrain_domain']}/s{job['seed']}" if several_seeds else job["pretrain_domain"]
        out[key] = {"in_domain": loss[job["pretrain_domain"]], "ood_std": round(float(np.std(ood)), 4),
                    "best_epoch": res["rows"][0]["epoch"], "loss_0nm": loss.get("df0")}
    return out


def measure(results_dir: Path) -> dict:
    """The scorecard's pretraining-only measures (phenomena 1, 3a, 3b and the in-domain loss), computed by
    hrtem_ood.results.aggregation as the aggregate stage does, from a folder of pretraining results tables, e.g. a
    seed's `pretrain` stages run as an experiment without its transfer stages."""
    params = validate(load_params(ROOT / "params.yaml"))
    rows = [row for d in params.pretrain.domains for row in read_results(results_dir / f"{d}.csv")]
    with warnings.catch_warnings():  # no transfer rows: the transfer measures are NaN, and numpy says so
        warnings.simplefilter("ignore", RuntimeWarning)
        found = phenomena(aggregate_as_params(params, rows), domain_defocus_nm(params))
    keys = ("failing_row", "failing_row_ood_std", "hardest_domain_by_median", "zero_nm_hardest",
            "zero_nm_model_ood_std_rank", "in_domain_loss_excl_0nm")
    return {k: found.get(k) for k in keys}


if __name__ == "__main__":
    if sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]))))
        sys.exit(0)
    args, options = sys.argv[1:], {}
    while args[0] in ("--domains-dir", "--threads"):
        options[args[0]] = args[1]
        args = args[2:]
    domains = args[2].split(",") if len(args) > 2 else ["dfm10", "dfp10"]
    result = probe(args[0], json.loads(args[1]), domains, Path(options.get("--domains-dir", DOMAINS)),
                   int(options.get("--threads", 1)))
    print(json.dumps(result))
    with open(args[3] if len(args) > 3 else LOG, "a") as fh:
        fh.write(json.dumps(result) + "\n")
