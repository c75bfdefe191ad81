"""Analysis commands that are not pipeline stages: ``hrtem-ood ctf-overlap``, ``vs-study`` and ``compare``.

They read what the pipeline wrote (results tables, exit-wave summaries, dvc experiments) and write
nothing the pipeline depends on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.domains import domain_defocus_nm, domain_imaging, domain_names
from hrtem_ood.dataio.io import read_json, write_json
from hrtem_ood.errors import UserError
from hrtem_ood.results.aggregation import aggregate_as_params
from hrtem_ood.results.results_io import ResultsError, grid_files, grid_result_files, read_results
from hrtem_ood.units import keV_to_eV, nm_to_A

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def run_ctf_overlap(params: Params, exitwaves_dir: str | Path, q_max_per_A: float, out: str | Path | None,
                    results_dir: str | Path = "metrics/results") -> dict:
    """Does the overlap of two domains' phase CTFs predict the OOD gap L_j(f_i) - L_i(f_i) after
    pretraining (the companion paper's hypothesis)? Uses the median calibrated zero defocus of the
    scenes as the absolute focus of the 0 nm domain; domains without a known defocus are skipped.
    Cs and focal spread are taken per evaluated domain (the study's domains share them). Loss cells
    are reduced as the aggregate stage reduces them (``aggregate.metric``, ``reduce``, ``filters``)."""
    from scipy.stats import spearmanr

    from hrtem_ood.physics.ctf import ctf_overlap

    summary = read_json(Path(exitwaves_dir) / "summary.json")
    zero_A = float(np.median(summary["zero_defocus_A"]))
    doms, pres = domain_names(params), params.pretrain.domains
    files = grid_files(pres, results_dir, ".csv")["pretrain"]
    rows = [row for f in files for row in read_results(f)]
    agg = aggregate_as_params(params, rows)  # the same cells (filters, reduction) as the aggregate stage
    energy_eV = keV_to_eV(params.simulate.energy_keV)
    defocus = domain_defocus_nm(params)
    table = []
    for i, p in enumerate(pres):
        for j, d in enumerate(doms):
            dp, dd = defocus.get(p), defocus.get(d)
            if d == p or dp is None or dd is None or np.isnan(agg["P"][i, j]):
                continue
            im = domain_imaging(params, d)
            ov = ctf_overlap(zero_A + nm_to_A(dp), zero_A + nm_to_A(dd), im.Cs_mm, energy_eV, q_max_per_A,
                             im.focal_spread_A)
            table.append({"pretrain": p, "eval": d, "ctf_overlap": round(ov, 4),
                          "ood_gap": round(float(agg["P"][i, j] - agg["P"][i, doms.index(p)]), 6)})
    if len(table) < 3:
        raise ResultsError("ctf-overlap needs pretraining results on at least 3 (pretrain, eval) pairs")
    rho, pval = spearmanr([t["ctf_overlap"] for t in table], [t["ood_gap"] for t in table])
    result = {"zero_defocus_A_median": round(zero_A, 2), "q_max_per_A": q_max_per_A, "metric": agg["metric"],
              "spearman_overlap_vs_gap": round(float(rho), 4), "p_value": float(f"{pval:.3g}"), "pairs": table}
    for t in table:
        print(f"{t['pretrain']:>8} -> {t['eval']:<8} overlap {t['ctf_overlap']:+.3f}  OOD gap {t['ood_gap']:+.4f}")
    print(f"Spearman rho(overlap, OOD gap) = {rho:+.3f} (p = {pval:.2g}, {len(table)} pairs; negative = "
          f"less overlap, larger gap)")
    if out:
        write_json(out, result)
    return result


def run_vs_study(params: Params, results: list[str] | None, out: str | Path | None) -> dict:
    """Rank correlations of this run's matrices with the study's published ones, reading the study's
    defocus sign both ways (:mod:`reference`). Uses the grid's results tables that exist, so a run
    with only some stages (e.g. pretraining only) compares what it has."""
    from hrtem_ood.results.reference import VS_STUDY_KEYS, readings

    files = [Path(f) for f in results] if results else \
        [f for f in grid_result_files(params.pretrain.domains) if f.is_file()]
    if not files:
        raise ResultsError("no results tables found (metrics/results/pretrain/*.csv); run the pipeline first")
    agg = aggregate_as_params(params, [row for f in files for row in read_results(f)], simulated_only=True)
    defocus = domain_defocus_nm(params)
    result = {"metric": agg["metric"], "reduce": agg["reduce"], "readings": list(readings(agg, defocus).values())}
    print("Spearman rho with the study's published matrices (cells compared in brackets):")
    for r in result["readings"]:
        cells = "  ".join(f"{k} {_rho(r[k]['rho'])} ({r[k]['n']})" for k in VS_STUDY_KEYS)
        print(f"  {r['reading']:<34} {cells}")
    if out:
        write_json(out, result)
    return result


def _rho(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:+.2f}"


def experiment_revs(exps: list[str] | None = None, repo: str | Path = ".") -> dict[str, str]:
    """``{experiment name: commit}`` of the named experiments, or of all experiments, on any baseline commit
    (seed experiments made before a later commit pool with those made after it)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        found = {name: rev for exps in dvc_repo.experiments.ls(all_commits=True).values() for name, rev in exps}
    if not exps:
        if not found:
            raise UserError("no dvc experiments found (run some with `dvc exp run`)")
        return found
    missing = [e for e in exps if e not in found]
    if missing:
        raise UserError(f"unknown experiments {missing}; known: {sorted(found)}")
    return {e: found[e] for e in exps}


def experiment_rows(name: str, rev: str, repo: str | Path = ".") -> list[dict]:
    """Every results row of one experiment's grid, tagged with the experiment's name."""
    import dvc.api

    p = dvc.api.params_show(repo=str(repo), rev=rev)
    rows = []
    for f in (path.as_posix() for path in grid_result_files(p["pretrain"]["domains"])):
        for row in read_results(f"{name}:{f}", text=dvc.api.read(f, repo=str(repo), rev=rev)):
            row["run"] = f"{name}/{row['run']}"
            row["experiment"] = name
            rows.append(row)
    return rows


def run_compare(params: Params, exps: list[str] | None, out_metrics: str | Path, out_plots: str | Path) -> dict:
    """Pool the results of several experiments (the study's "median over all hyperparameter
    conditions") and aggregate them with the workspace's ``aggregate`` params."""
    from hrtem_ood.results.report import write_aggregate

    revs = experiment_revs(exps)
    rows = [row for name, rev in revs.items() for row in experiment_rows(name, rev)]
    head = write_aggregate(params, rows, out_metrics, out_plots, {"experiments": sorted(revs)})
    pooled = head["pooled_conditions"]
    print(f"pooled {len(revs)} experiments ({', '.join(sorted(revs))}); conditions pooled per cell: "
          + "; ".join(f"{k}={v}" for k, v in pooled.items()))
    return head
