"""Loss matrices, OOD generalization (std across domains) and its shift, from long-form results tables.

Pure numpy + stdlib: runs on any results table in seconds, with neither torch nor abTEM. Reading the tables and
the grid's file layout: :mod:`hrtem_ood.results.results_io`; the DVC plot rows: :mod:`hrtem_ood.results.plot_rows`.

Definitions (reduce = median or mean over every model of a cell: seeds, runs, conditions):
- ``P[i, j]``: loss on domain j of the models pretrained on i.
- ``A[i, t, j]``: loss on domain j after pretraining on i and transferring to t.
- ``T[i, t] = A[i, t, t]``, with the diagonal convention ``T[i, i] = P[i, i]``.
- ``PG[i]``: population std (ddof 0) of ``P[i, :]`` over the domains not excluded.
- ``TG[i, t]``: the same for ``A[i, t, :]``; ``TG[i, i] = PG[i]``.
- ``shift[i, t] = TG[i, t] - PG[i]`` (negative: OOD generalization improved by the transfer).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.domains import domain_names, ingested_names
from hrtem_ood.results.results_io import ResultsError
from hrtem_ood.units import focus_label

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params

#: How the models of a cell are reduced (``aggregate.reduce``).
REDUCERS = {"median": np.median, "mean": np.mean}


def keep_row(row: dict, filters: dict) -> bool:
    """Whether a results row passes ``aggregate.filters`` (column -> kept values)."""
    for col, allowed in filters.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if str(row.get(col)) not in {str(a) for a in allowed}:
            return False
    return True


def aggregate(rows: list[dict], domains: list[str], pretrain_domains: list[str], *, metric: str = "paper_loss",
              reduce: str = "median", exclude_from_std: list[str] = (), filters: dict | None = None) -> dict:
    """Matrices as numpy arrays (NaN where no model exists) plus bookkeeping."""
    red = REDUCERS[reduce]
    dom_index = {d: k for k, d in enumerate(domains)}
    pre_index = {d: k for k, d in enumerate(pretrain_domains)}
    unknown = sorted({r["eval_domain"] for r in rows} - set(domains))
    if unknown:
        raise ResultsError(f"results name evaluation domains {unknown} that are not declared in params domains")
    cells_p: dict = defaultdict(list)
    cells_a: dict = defaultdict(list)
    pooled: dict = defaultdict(set)
    for r in rows:
        if r["metric"] != metric or not keep_row(r, filters or {}):
            continue
        p, t, j = r["pretrain_domain"], r["target_domain"], r["eval_domain"]
        if p not in pre_index:
            continue
        for col in ("seed", "freeze", "n_transfer", "lr_pretrain", "lr_transfer", "experiment", "numerics"):
            if r.get(col) not in (None, ""):
                pooled[col].add(str(r[col]))
        if r["stage"] == "pretrain":
            cells_p[(pre_index[p], dom_index[j])].append(r["value"])
        elif r["stage"] == "transfer":
            if t not in dom_index:
                raise ResultsError(f"results name transfer target {t!r} that is not a declared domain")
            cells_a[(pre_index[p], dom_index[t], dom_index[j])].append(r["value"])
        else:
            raise ResultsError(f"unknown stage {r['stage']!r} (expected pretrain or transfer)")
    n_pre, n_dom = len(pretrain_domains), len(domains)
    P = np.full((n_pre, n_dom), np.nan)
    A = np.full((n_pre, n_dom, n_dom), np.nan)
    counts = {"pretrain_models_per_cell": [], "transfer_models_per_cell": []}
    for (i, j), v in cells_p.items():
        P[i, j] = red(v)
        counts["pretrain_models_per_cell"].append(len(v))
    for (i, t, j), v in cells_a.items():
        A[i, t, j] = red(v)
        counts["transfer_models_per_cell"].append(len(v))
    keep = np.array([d not in set(exclude_from_std) for d in domains])
    PG = _std(P[:, keep])
    T = np.full((n_pre, n_dom), np.nan)
    TG = np.full((n_pre, n_dom), np.nan)
    for i, p in enumerate(pretrain_domains):
        for t in range(n_dom):
            if domains[t] == p:
                T[i, t], TG[i, t] = P[i, t], PG[i]
            else:
                T[i, t] = A[i, t, t]
                TG[i, t] = _std(A[i, t][None, keep])[0]
    shift = TG - PG[:, None]
    return {"domains": list(domains), "pretrain_domains": list(pretrain_domains), "P": P, "A": A, "T": T,
            "PG": PG, "TG": TG, "shift": shift, "metric": metric, "reduce": reduce,
            "exclude_from_std": list(exclude_from_std), "pooled": {k: sorted(v) for k, v in pooled.items()},
            "models_per_cell": {k: (min(v), max(v)) if v else (0, 0) for k, v in counts.items()}}


def _std(x: np.ndarray) -> np.ndarray:
    """Population std (ddof 0) along the last axis; NaN if any value is missing."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(x).any(axis=-1), np.nan, np.std(np.nan_to_num(x), axis=-1, ddof=0))


def _row_spread_ratio(agg: dict) -> float | None:
    """Row spread (std across pretraining rows, mean over columns) of the loss on the target after
    transfer, over that after pretraining; None when the spread before is 0 or unknown."""
    with np.errstate(all="ignore"):
        before = np.nanmean(np.nanstd(np.asarray(agg["P"], float), axis=0))
        after = np.nanmean(np.nanstd(np.asarray(agg["T"], float), axis=0))
    return float(after / before) if np.isfinite(before) and before > 0 else None


def _is_diag(agg: dict, i: int, t: int) -> bool:
    return agg["domains"][t] == agg["pretrain_domains"][i]


def headline(agg: dict, defocus_nm: dict[str, float | None] | None = None) -> dict:
    """Flat headline numbers for ``metrics/ood.json`` (read well in ``dvc exp show``); pairs are named in words
    where ``defocus_nm`` gives the domains' defocus. The in-domain loss is defined once, in :func:`phenomena`."""
    doms, pres = agg["domains"], agg["pretrain_domains"]
    in_pre = [agg["P"][i, doms.index(p)] for i, p in enumerate(pres)]
    off = [(i, t) for i in range(len(pres)) for t in range(len(doms)) if not _is_diag(agg, i, t)]
    in_tr = [agg["T"][i, t] for i, t in off]
    tg = [agg["TG"][i, t] for i, t in off]
    sh = np.array([agg["shift"][i, t] for i, t in off])
    sh_valid = sh[~np.isnan(sh)]

    def m(v):
        v = np.asarray(v, float)
        return None if np.all(np.isnan(v)) else round(float(np.nanmean(v)), 6)

    def r(x):
        return None if x is None or not np.isfinite(x) else round(float(x), 6)

    pg = np.asarray(agg["PG"], float)
    row_pre, row_tr = m(np.nanstd(agg["P"], axis=0)), m(np.nanstd(agg["T"], axis=0))
    # The study's phenomena as numbers (protocol.md): 1 = PG range, 2 = row spread ratio,
    # 3 = hardest domain and the OOD-std rank of the model pretrained on it, 4 = most negative shift.
    with np.errstate(all="ignore"):
        col_mean = np.nanmean(agg["P"], axis=0)
    hardest = hardest_rank = excess = None
    if np.any(np.isfinite(col_mean)):
        j = int(np.nanargmax(col_mean))
        hardest = doms[j]
        excess = r(col_mean[j] - np.nanmean(np.delete(col_mean, j))) if len(doms) > 1 else None
        if hardest in pres and np.isfinite(pg[pres.index(hardest)]):
            valid = pg[np.isfinite(pg)]
            hardest_rank = int(np.sum(valid < pg[pres.index(hardest)])) + 1  # 1 = lowest OOD std
    min_shift = min_pair = None
    finite = [(agg["shift"][i, t], i, t) for i, t in off if np.isfinite(agg["shift"][i, t])]
    if finite:
        val, i, t = min(finite)
        known = defocus_nm or {}
        min_shift = r(val)
        min_pair = f"{focus_label(known.get(pres[i]), pres[i])} → {focus_label(known.get(doms[t]), doms[t])}"
    return {
        "metric": agg["metric"],
        "reduce": agg["reduce"],
        "in_domain_after_transfer": m(in_tr),
        "mean_ood_std_pretrain": m(agg["PG"]),
        "mean_ood_std_transfer": m(tg),
        "mean_ood_shift": m(sh),
        "fraction_pairs_ood_improved": round(float(np.mean(sh_valid < 0)), 4) if len(sh_valid) else None,
        "pretrain_loss_row_spread": row_pre,
        "transfer_loss_row_spread": row_tr,
        "n_pairs": len(off),
        "ood_std_pretrain": {p: r(pg[i]) for i, p in enumerate(pres)},
        # the dose and structure series compare these with the study: each pretraining domain's own loss,
        # and each target's loss after transfer (mean over the rows that transfer to it)
        "in_domain_loss_by_domain": {p: r(v) for p, v in zip(pres, in_pre, strict=True)},
        "target_loss_after_transfer": {d: m([agg["T"][i, t] for i, t in off if t == j])
                                       for j, d in enumerate(doms) if any(t == j for _, t in off)},
        "ood_std_pretrain_range": r(np.nanmax(pg) - np.nanmin(pg)) if np.any(np.isfinite(pg)) else None,
        "row_spread_ratio": r(_row_spread_ratio(agg)) if row_pre and np.any(np.isfinite(in_tr)) else None,
        "hardest_domain": hardest,
        "hardest_domain_excess_loss": excess,
        "hardest_domain_model_ood_std_rank": hardest_rank,
        "min_ood_shift": min_shift,
        "min_ood_shift_pair": min_pair,
    }


def simulated_rows(params: Params, rows: list[dict]) -> list[dict]:
    """The rows of models evaluated on a simulated domain, leaving out transfers to an ingested one (a pretraining
    row's target may be left empty in a foreign table)."""
    sim = params.domains
    return [r for r in rows if r["eval_domain"] in sim and (r["stage"] == "pretrain" or r["target_domain"] in sim)]


def aggregate_as_params(params: Params, rows: list[dict], simulated_only: bool = False) -> dict:
    """:func:`aggregate` of ``rows`` over the declared domains, as the ``aggregate`` params say. Ingested domains
    are columns (and transfer targets) of the matrices but never enter an OOD std, so the std stays the study's,
    over its defocus series. ``simulated_only``: only the simulated domains' columns and targets (the study's
    measures are computed on these)."""
    ac = params.aggregate
    doms = domain_names(params)
    exclude = ac.exclude_from_std + [d for d in ingested_names(params) if d not in ac.exclude_from_std]
    if simulated_only:
        doms = list(params.domains)
        rows = simulated_rows(params, rows)
    return aggregate(rows, doms, params.pretrain.domains, metric=ac.metric, reduce=ac.reduce,
                     exclude_from_std=exclude, filters=ac.filters)


def ingested_summary(rows: list[dict], dataset: str, pretrain_domains: list[str], *, reduce: str = "median",
                     filters: dict | None = None) -> dict:
    """An ingested domain's test-split metrics (paper_loss, Dice, IoU; reduced over the models of each cell):
    zero-shot from each pretraining domain, and after each pretraining domain's transfer to it; with the
    pretraining domains that do best by Dice."""
    red = REDUCERS[reduce]
    cells: dict = defaultdict(list)
    for r in rows:
        mine = r["eval_domain"] == dataset and r["pretrain_domain"] in pretrain_domains
        if not mine or not keep_row(r, filters or {}):
            continue
        kind = {"pretrain": "zero_shot", "transfer": "after_transfer"}.get(r["stage"])
        if r["stage"] == "transfer" and r["target_domain"] != dataset:
            kind = None
        if kind and r["metric"] in ("paper_loss", "dice", "iou"):
            cells[(kind, r["pretrain_domain"], r["metric"])].append(r["value"])
    out: dict = {}
    for kind in ("zero_shot", "after_transfer"):
        table = {p: {m: round(float(red(cells[(kind, p, m)])), 6) for m in ("paper_loss", "dice", "iou")
                     if cells[(kind, p, m)]} for p in pretrain_domains}
        table = {p: v for p, v in table.items() if v}
        out[kind] = table
        if table:
            out[f"best_{kind}_pretrain"] = max(table, key=lambda p: table[p].get("dice", -1.0))
    return out


def label_table(rows: list[dict], dataset: str, starts: dict[str, str | None], reduce: str = "median") -> list[dict]:
    """The label-count study's rows on ``dataset``'s test split: per start (best / worst / scratch, with its
    pretraining domain) and number of labelled micrographs, paper_loss, Dice and IoU reduced over seeds."""
    red = REDUCERS[reduce]
    by_domain = {(d or "scratch"): k for k, d in starts.items()}
    cells: dict = defaultdict(list)
    for r in rows:
        if r["stage"] == "labels" and r["eval_domain"] == dataset and r["metric"] in ("paper_loss", "dice", "iou"):
            cells[(by_domain.get(r["pretrain_domain"], r["pretrain_domain"]), r["pretrain_domain"],
                   int(r["n_transfer"]), r["metric"])].append(r["value"])
    keys = sorted({k[:3] for k in cells}, key=lambda k: (list(starts).index(k[0]) if k[0] in starts else 99, k[2]))
    return [{"start": s, "pretrain_domain": d, "n_micrographs": n,
             **{m: round(float(red(cells[(s, d, n, m)])), 6) for m in ("paper_loss", "dice", "iou")
                if cells[(s, d, n, m)]}} for s, d, n in keys]


#: Targets at least this far (nm) from a pretraining defocus count as distant (phenomenon 4).
DISTANT_NM = 15.0


def phenomena(agg: dict, defocus_nm: dict[str, float | None]) -> dict:
    """Phenomena 1-4 of the study (``../shared/protocol.md``) as numbers, from an :func:`aggregate` dict.

    - 1: the failing row (the pretraining domain with the largest OOD std ``PG``) and its ``PG``;
    - 2: the row spread (std across pretraining domains, mean over columns) of the loss on the target
      after transfer, over that after pretraining;
    - 3: whether the 0 nm domain is the hardest: the highest loss after pretraining, reduced over the
      pretrained models as the study reduces (median; a single failing model's far-defocus losses then
      do not decide it; the mean is reported too: in the study's own medians 0 nm leads -25 nm by
      0.078 to 0.077 by mean and 0.079 to 0.039 by median), and the rank of the 0 nm model's ``PG``
      (1 = lowest);
    - 4: the shifts from the failing row to the targets at least :data:`DISTANT_NM` away (median, max);
    - the in-domain loss after pretraining, mean over the pretraining domains other than 0 nm.
    Domains without a defocus are left out of the defocus-based measures.
    """
    doms, pres = agg["domains"], agg["pretrain_domains"]
    P, pg = np.asarray(agg["P"], float), np.asarray(agg["PG"], float)
    out: dict = {}

    def r(x):
        return None if x is None or not np.isfinite(x) else round(float(x), 6)

    zero = next((d for d in doms if defocus_nm.get(d) == 0), None)
    if np.any(np.isfinite(pg)):
        i = int(np.nanargmax(pg))
        fail, d0 = pres[i], defocus_nm.get(pres[i])
        out["failing_row"], out["failing_row_ood_std"] = fail, r(pg[i])
        out["failing_row_label"] = focus_label(d0, fail)
        distant = [t for t, d in enumerate(doms) if d0 is not None and defocus_nm.get(doms[t]) is not None
                   and abs(defocus_nm[doms[t]] - d0) >= DISTANT_NM and np.isfinite(agg["shift"][i, t])]
        sh = np.array([agg["shift"][i, t] for t in distant])
        out["failing_row_distant_targets"] = [doms[t] for t in distant]
        out["failing_row_distant_shift_median"] = r(np.median(sh)) if len(sh) else None
        out["failing_row_distant_shift_max"] = r(np.max(sh)) if len(sh) else None
    with np.errstate(all="ignore"):
        col_median, col_mean = np.nanmedian(P, axis=0), np.nanmean(P, axis=0)
    out["row_spread_ratio"] = r(_row_spread_ratio(agg))
    if zero is not None and np.any(np.isfinite(col_median)):
        out["hardest_domain_by_median"] = doms[int(np.nanargmax(col_median))]
        out["hardest_domain_by_mean"] = doms[int(np.nanargmax(col_mean))]
        out["zero_nm_hardest"] = out["hardest_domain_by_median"] == zero
        if zero in pres and np.isfinite(pg[pres.index(zero)]):
            out["zero_nm_model_ood_std_rank"] = int(np.sum(pg[np.isfinite(pg)] < pg[pres.index(zero)])) + 1
    diag = [P[i, doms.index(p)] for i, p in enumerate(pres) if p != zero and p in doms]
    out["in_domain_loss_excl_0nm"] = r(np.nanmean(diag)) if diag else None
    return out

