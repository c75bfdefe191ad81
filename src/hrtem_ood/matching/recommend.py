"""Which model for a user's micrographs: place them among the simulated domains by their defocus, and pick the
model with the lowest expected loss there, from the run's measured matrices.

- A model's expected loss at a defocus is the mean of its measured losses on the simulated domains, weighted
  by a Gaussian in defocus as wide as the domains' spacing (5 nm in the default run): a domain one spacing away
  weighs 0.61, two away 0.14. Single cells are noisy, and the lowest of fifty noisy cells is mostly noise; the
  kernel averages it down. At an infinite width it becomes the model's mean loss, the overall baseline.
- With the defocus sign undetermined (Cs = 0), the micrographs have two candidate defoci, equally likely: the
  expected loss is the mean over both.
- A candidate more than half a spacing beyond the outermost domain lies outside every domain, where the
  matrices say nothing. When every candidate does, the pick is the model that generalizes best overall (the
  lowest mean loss over the domains), and the result says so.

Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Model:
    """A pretrained model (``target`` None) or a transferred one, with its loss on each matrix column."""

    pretrain: str
    target: str | None
    losses: np.ndarray

    @property
    def name(self) -> str:
        if self.target is None:
            return f"pretrained on {self.pretrain}"
        return f"{self.pretrain} transferred to {self.target}"


def models_of(agg: dict) -> list[Model]:
    """Every model of an aggregate (:func:`hrtem_ood.results.aggregation.aggregate`): its pretrained rows, then each
    row's transfers to the other domains, with their losses on the aggregate's domains."""
    out = [Model(p, None, agg["P"][i]) for i, p in enumerate(agg["pretrain_domains"])]
    for i, p in enumerate(agg["pretrain_domains"]):
        for t, target in enumerate(agg["domains"]):
            if target != p and np.isfinite(agg["A"][i, t]).any():
                out.append(Model(p, target, agg["A"][i, t]))
    return out


def expected_loss(model: Model, column_nm: np.ndarray, at_nm: float, columns: np.ndarray, width_nm: float) -> float:
    """The model's measured losses on the usable ``columns`` (a boolean mask), averaged with Gaussian weights
    ``exp(-(d - at)^2 / (2 width^2))`` of their defocus ``d``."""
    use = columns & np.isfinite(model.losses)
    w = np.exp(-0.5 * ((column_nm[use] - at_nm) / width_nm) ** 2)
    if not w.sum() > 0:  # far outside every domain: the nearest one decides
        w = (np.abs(column_nm[use] - at_nm) == np.abs(column_nm[use] - at_nm).min()).astype(float)
    return float(np.sum(w * model.losses[use]) / np.sum(w))


def spacing_nm(column_nm: np.ndarray) -> float:
    """The median spacing of the domains' defoci."""
    return float(np.median(np.diff(np.sort(column_nm))))


def recommend(models: list[Model], column_nm: np.ndarray, placed_nm: list[float],
              columns: np.ndarray | None = None, width_nm: float | None = None) -> dict:
    """The model with the lowest expected loss at the placed defoci (their mean), and the runner-up; or, when
    every placement lies outside the domains, the one with the lowest mean loss over them (``outside``)."""
    column_nm = np.asarray(column_nm, dtype=float)
    columns = np.ones(len(column_nm), bool) if columns is None else np.asarray(columns, bool)
    lo, hi = column_nm[columns].min(), column_nm[columns].max()
    width = width_nm or spacing_nm(column_nm[columns])
    pad = spacing_nm(column_nm[columns]) / 2.0
    inside = [d for d in placed_nm if lo - pad <= d <= hi + pad]

    def score(m: Model) -> float:
        if inside:
            return float(np.mean([expected_loss(m, column_nm, d, columns, width) for d in inside]))
        return float(np.nanmean(m.losses[columns]))

    ranked = sorted(models, key=score)
    out = {"placed_nm": [round(float(d), 3) for d in placed_nm], "used_nm": [round(float(d), 3) for d in inside],
           "outside": not inside, "model": ranked[0].name, "pretrain": ranked[0].pretrain,
           "target": ranked[0].target, "expected_loss": round(score(ranked[0]), 6)}
    if len(ranked) > 1:
        out.update(runner_up=ranked[1].name, runner_up_expected_loss=round(score(ranked[1]), 6))
    return out


def overall_best(models: list[Model], columns: np.ndarray) -> Model:
    """The model that generalizes best overall: the lowest mean loss over the usable columns."""
    return min(models, key=lambda m: float(np.nanmean(m.losses[columns])))


def leave_one_out(models: list[Model], domains: list[str], column_nm: np.ndarray,
                  placed_nm: dict[str, list[float]], width_nm: float | None = None) -> dict:
    """Each domain's micrographs treated as a user's: that domain's column and its own models (pretrained on it,
    or transferred to it) are held out, the micrographs are placed at ``placed_nm[domain]``, and the
    recommendation is scored on the held-out column against the best available model and against
    :func:`overall_best`. Regret = the pick's loss there minus the best available model's."""
    rows = []
    for j, dom in enumerate(domains):
        if dom not in placed_nm:
            continue
        available = [m for m in models if m.pretrain != dom and m.target != dom and np.isfinite(m.losses[j])]
        columns = np.array([k != j for k in range(len(domains))])
        rec = recommend(available, column_nm, placed_nm[dom], columns, width_nm)
        picked = next(m for m in available if m.name == rec["model"])
        base = overall_best(available, columns)
        best = min(available, key=lambda m: m.losses[j])
        rows.append({"domain": dom, "placed_nm": rec["placed_nm"], "outside": rec["outside"],
                     "recommended": picked.name, "regret": round(float(picked.losses[j] - best.losses[j]), 6),
                     "baseline": base.name, "baseline_regret": round(float(base.losses[j] - best.losses[j]), 6),
                     "best_available": best.name, "hit": picked is best, "baseline_hit": base is best})
    summary = {"n_domains": len(rows)}
    for key, name in (("", "recommended"), ("baseline_", "baseline")):
        regrets = [r[f"{key}regret"] for r in rows]
        summary[name] = {"median_regret": round(float(np.median(regrets)), 6) if rows else None,
                         "mean_regret": round(float(np.mean(regrets)), 6) if rows else None,
                         "hit_rate": round(float(np.mean([r[f"{key}hit"] for r in rows])), 4) if rows else None}
    return {"summary": summary, "rows": rows}
