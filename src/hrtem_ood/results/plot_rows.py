"""The rows of the DVC plot files (``plots/*.json``) from an aggregate: every domain with its label in words.
Numpy only."""

from __future__ import annotations

import numpy as np

from hrtem_ood.units import focus_label


def plot_tables(agg: dict, defocus_nm: dict[str, float | None], pairs: list[list[str]],
                sort_nm: dict[str, float | None] | None = None) -> dict[str, list[dict]]:
    """Row objects for the DVC plot files. Each domain field (``pretrain``, ``eval``, ``target``) comes with its
    label in words (``*_label``: ``under 10 nm``, :func:`hrtem_ood.units.focus_label`) and its defocus as
    ``*_underfocus_nm`` (positive = underfocus, params' sign) where known; ``x_sort``/``y_sort`` rank every axis
    by ``sort_nm`` (default ``defocus_nm``)."""
    doms, pres = agg["domains"], agg["pretrain_domains"]
    sort_nm = defocus_nm if sort_nm is None else sort_nm
    order = sorted(doms, key=lambda d: (sort_nm.get(d) is None, sort_nm.get(d) or 0.0, d))

    def rank(name):
        return order.index(name)

    def v(x):
        return None if np.isnan(x) else round(float(x), 7)

    def dom(key, name):
        return {key: name, f"{key}_label": focus_label(defocus_nm.get(name), name),
                f"{key}_underfocus_nm": defocus_nm.get(name)}

    out: dict[str, list[dict]] = {k: [] for k in ("pretrain_loss", "transfer_loss", "ood_std_pretrain",
                                                  "ood_std_transfer", "ood_shift", "pair_bars")}
    for i, p in enumerate(pres):
        base = {**dom("pretrain", p), "y_sort": rank(p)}
        if not np.isnan(agg["PG"][i]):
            out["ood_std_pretrain"].append({**base, "stage": "after pretraining", "x_sort": 0,
                                            "value": v(agg["PG"][i])})
        for j, d in enumerate(doms):
            if not np.isnan(agg["P"][i, j]):
                out["pretrain_loss"].append({**base, **dom("eval", d), "x_sort": rank(d), "value": v(agg["P"][i, j])})
            tb = {**base, **dom("target", d), "x_sort": rank(d), "diagonal": d == p}
            for key, mat in (("transfer_loss", agg["T"]), ("ood_std_transfer", agg["TG"]), ("ood_shift", agg["shift"])):
                if not np.isnan(mat[i, j]):
                    out[key].append({**tb, "value": v(mat[i, j])})
    for p, t in pairs:
        if p not in pres or t not in doms:
            continue
        i, ti = pres.index(p), doms.index(t)
        label = f"{focus_label(defocus_nm.get(p), p)} → {focus_label(defocus_nm.get(t), t)} ({p} → {t})"
        for k, e in enumerate(doms):
            for stage, val in (("pretrain", agg["P"][i, k]), ("transfer", agg["A"][i, ti, k])):
                if not np.isnan(val):
                    out["pair_bars"].append({"pair": label, "pair_pretrain": p, "pair_target": t, "stage": stage,
                                             **dom("eval", e), "x_sort": rank(e), "value": v(val)})
    return out
