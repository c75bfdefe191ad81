"""Phenomenon 5 (the study's Fig. 6.1): the loss after transfer by training condition (transfer size,
frozen part, LR pair), and the training time per model and what freezing saves, from long-form results
tables. Pure numpy + stdlib, like hrtem_ood.results.aggregation, whose row filter and reducers it shares."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from hrtem_ood.results.aggregation import REDUCERS, keep_row

#: A transfer model "fails" above this loss on its target (the study's Fig. 6.1 share, paper_loss units).
FAIL_LOSS = 0.02


def _lr_pair(row: dict) -> str:
    return f"{float(row['lr_pretrain'])!r}->{float(row['lr_transfer'])!r}"


def _transfer_models(rows: list[dict], metric: str, filters: dict | None) -> list[dict]:
    """One row per transfer model (its own target's loss), in the study's columns."""
    return [r for r in rows if r["stage"] == "transfer" and r["metric"] == metric
            and r["eval_domain"] == r["target_domain"] and keep_row(r, filters or {})]


def transfer_conditions(rows: list[dict], defocus_nm: dict[str, float | None], *, metric: str = "paper_loss",
                        reduce: str = "median", filters: dict | None = None) -> dict:
    """Phenomenon 5 (the study's Fig. 6.1): the loss of every transfer model on its own target, reduced
    over the models of each transfer size, freezing mode and (pretraining -> transfer) LR pair, and the
    share of models above :data:`FAIL_LOSS` per size. Targets at 0 nm are left out, as the study does. Keys
    as in ``study_matrices.json``'s ``fig6_1_median_target_loss``."""
    red = REDUCERS[reduce]
    models = [r for r in _transfer_models(rows, metric, filters) if defocus_nm.get(r["target_domain"]) != 0]
    groups: dict[str, dict[str, list[float]]] = {"by_transfer_size": defaultdict(list), "by_freeze": defaultdict(list),
                                                 "by_lr_pretrain_transfer": defaultdict(list)}
    for r in models:  # a foreign table may lack a condition column: its rows then join no group of it
        if r.get("n_transfer") not in (None, ""):
            groups["by_transfer_size"][str(int(float(r["n_transfer"])))].append(r["value"])
        if r.get("freeze") not in (None, ""):
            groups["by_freeze"][str(r["freeze"])].append(r["value"])
        if r.get("lr_pretrain") not in (None, "") and r.get("lr_transfer") not in (None, ""):
            groups["by_lr_pretrain_transfer"][_lr_pair(r)].append(r["value"])
    out: dict = {}
    for name, g in groups.items():
        keys = sorted(g, key=lambda k: (int(k) if k.isdigit() else k))
        out[name] = {k: round(float(red(g[k])), 6) for k in keys}
    sizes = out["by_transfer_size"]
    out[f"share_above_{FAIL_LOSS}_by_size"] = {k: round(float(np.mean(np.array(v) > FAIL_LOSS)), 4)
                                               for k, v in sorted(groups["by_transfer_size"].items(),
                                                                  key=lambda kv: int(kv[0]))}
    losses = list(sizes.values())
    out["loss_falls_with_transfer_size"] = (bool(all(b < a for a, b in zip(losses, losses[1:], strict=False)))
                                            if len(losses) > 1 else None)
    byf = out["by_freeze"]
    both = {"encoder", "none"} <= set(byf)
    out["freeze_encoder_loss_cost"] = round(byf["encoder"] - byf["none"], 6) if both else None
    out["n_models"] = len(models)
    return out


def training_seconds(rows: list[dict]) -> dict:
    """Training time per model (wall seconds; varies from run to run): the median per stage kind and, for
    transfers, per freezing mode, and the time freezing saves: the median over matched models (same pair,
    seed, LRs and size) of 1 - t(frozen) / t(none)."""
    runs = {r["run"]: r for r in rows if r.get("seconds") not in (None, "")}
    sec = {k: float(r["seconds"]) for k, r in runs.items()}
    out: dict = {}
    for stage in ("pretrain", "transfer"):
        v = [sec[k] for k, r in runs.items() if r["stage"] == stage]
        out[f"{stage}_median_s"] = round(float(np.median(v)), 2) if v else None
    by_freeze: dict[str, list[float]] = defaultdict(list)
    matched: dict[tuple, dict[str, float]] = defaultdict(dict)
    for k, r in runs.items():
        if r["stage"] == "transfer":
            by_freeze[str(r["freeze"])].append(sec[k])
            key = (r["pretrain_domain"], r["target_domain"], str(r["seed"]), str(r["lr_pretrain"]),
                   str(r["lr_transfer"]), str(r["n_transfer"]))
            matched[key][str(r["freeze"])] = sec[k]
    out["transfer_median_s_by_freeze"] = {f: round(float(np.median(v)), 2) for f, v in sorted(by_freeze.items())}
    for mode in ("encoder", "decoder"):
        ratios = [1 - m[mode] / m["none"] for m in matched.values() if mode in m and m.get("none")]
        out[f"freeze_{mode}_time_saving"] = round(float(np.median(ratios)), 4) if ratios else None
    return out


#: Panels of the phenomenon-5 figure: (key of :func:`transfer_conditions`, axis title).
CONDITION_PANELS = (("by_transfer_size", "transfer images"), ("by_freeze", "frozen part"),
                    ("by_lr_pretrain_transfer", "LR pretrain -> transfer"))


def conditions_table(ours: dict, study: dict) -> list[dict]:
    """Rows of the phenomenon-5 plot table: this run's and the study's reduced target loss per condition."""
    out = []
    for key, title in CONDITION_PANELS:
        for source, data in (("this run", ours), ("the study", study)):
            for k, (cond, value) in enumerate((data.get(key) or {}).items()):
                out.append({"panel": title, "condition": cond, "x_sort": k, "source": source,
                            "value": round(float(value), 7)})
    return out
