"""The study's published matrices, read from its figures, and how a run's matrices compare with them.

Source: Rangel DaCosta et al., "Strategies for effective transfer learning for HRTEM analysis with
neural networks", Elemental Microscopy EM000010 (2025, CC-BY-4.0): the loss matrices after pretraining
(``P``) and after transfer (``T``) of its dataset-performance figure, and the OOD std after pretraining
(``PG``), after transfer (``TG``) and its shift of its generalization figure (Fig. 8.1). Each cell is
read by the nearest colour on its figure's colour bar (``docs/scripts/digitize_study.py``, the digitiser, writes
``data/study_figures.json``). The colour bars end at 0.1 (loss) and 0.075 (OOD std), so larger
values read as those (the +5 and +10 nm rows of ``P`` and ``TG`` +10 -> +5 nm are clipped); the
figures show the mean over models (the captions say median; the published images match the mean).

The study does not state its defocus sign convention. :func:`compare` reads the study's defocus as
abTEM's (``mirror=False``, this project's convention) or as its opposite (``mirror=True``: the study's
+d nm is abTEM's -d nm: positive = overfocus, as the companion paper's
``chi = pi lambda df q^2 + (pi/2) Cs lambda^3 q^4`` reads literally with Cs > 0; abTEM's own
documentation writes that formula for its defocus = -C10, so the formula alone does not settle it).

Pure numpy + scipy: no torch, no abTEM.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

STUDY_FILE = "study_figures.json"
SCORES = ("dice", "iou")  # metrics where higher is better; the study's matrices are losses


def load_study() -> dict:
    """The digitized matrices: ``P``, ``T``, ``TG``, ``shift`` (5 x 11), ``PG`` (5), with
    ``pretrain_nm`` (rows) and ``eval_nm`` (columns) in the study's own defocus labels."""
    text = resources.files("hrtem_ood.results").joinpath("data", STUDY_FILE).read_text()
    raw = json.loads(text)
    out = dict(raw)
    for k in ("P", "T", "TG", "shift", "PG"):
        out[k] = np.asarray(raw[k], float)
    return out


def readings(agg: dict, defocus_nm: dict[str, float | None], study: dict | None = None) -> dict[str, dict]:
    """:func:`compare` under both readings of the study's sign: ``abtem_sign`` and ``mirrored``."""
    study = study if study is not None else load_study()
    return {"abtem_sign": compare(agg, defocus_nm, study=study),
            "mirrored": compare(agg, defocus_nm, mirror=True, study=study)}


def _spearman(a, b) -> tuple[float | None, int]:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None, int(ok.sum())
    return round(float(spearmanr(a[ok], b[ok])[0]), 3), int(ok.sum())


def compare(agg: dict, defocus_nm: dict[str, float | None], *, mirror: bool = False,
            study: dict | None = None) -> dict:
    """Spearman rank correlations between a run's matrices (``aggregation.aggregate`` output) and the
    study's, over the cells both have. Domains are matched by defocus (``defocus_nm``: domain name ->
    nm, None for domains without one, which are skipped); ``mirror=True`` matches our -d with the
    study's +d. Ranks, not values, are compared: the study's losses are ~3x smaller and clipped at
    0.1 in its figure.

    Keys: ``P`` (every cell after pretraining), ``P_without_0nm``, ``PG`` (OOD std by pretraining
    domain), ``T`` (loss on the target after transfer), ``shift`` (off-diagonal cells), each
    ``{"rho": float | None, "n": cells}``; ``rho`` is None with fewer than 3 cells or a constant side.
    For a score where higher is better (``agg["metric"]`` dice or iou) P and T are compared as
    1 - score, so a good match still reads positive; std and shift need no change."""
    study = study if study is not None else load_study()
    if agg.get("metric") in SCORES:
        agg = dict(agg, P=1 - agg["P"], T=1 - agg["T"])
    sign = -1.0 if mirror else 1.0

    def match(names, study_nm):
        """(our index, study index) of every domain whose (signed) defocus the study has."""
        index = {float(v): k for k, v in enumerate(study_nm)}
        nm = [defocus_nm.get(d) for d in names]
        return [(i, index[sign * v]) for i, v in enumerate(nm) if v is not None and sign * v in index]

    rows, cols = match(agg["pretrain_domains"], study["pretrain_nm"]), match(agg["domains"], study["eval_nm"])
    zero_col = list(study["eval_nm"]).index(0) if 0 in study["eval_nm"] else None

    def pairs(ours, theirs, skip=lambda i, si, j, sj: False):
        a = [ours[i, j] for i, si in rows for j, sj in cols if not skip(i, si, j, sj)]
        b = [theirs[si, sj] for i, si in rows for j, sj in cols if not skip(i, si, j, sj)]
        return a, b

    def diag(i, si, j, sj):
        return study["pretrain_nm"][si] == study["eval_nm"][sj]

    out = {"reading": "mirrored (study +d = abTEM -d)" if mirror else "abTEM sign (study +d = abTEM +d)"}
    for key, (a, b) in {
        "P": pairs(agg["P"], study["P"]),
        "P_without_0nm": pairs(agg["P"], study["P"], lambda i, si, j, sj: sj == zero_col),
        "T": pairs(agg["T"], study["T"], diag),
        "shift": pairs(agg["shift"], study["shift"], diag),
    }.items():
        rho, n = _spearman(a, b)
        out[key] = {"rho": rho, "n": n}
    rho, n = _spearman([agg["PG"][i] for i, _ in rows], [study["PG"][si] for _, si in rows])
    out["PG"] = {"rho": rho, "n": n}
    return out


VS_STUDY_KEYS = ("P", "P_without_0nm", "PG", "T", "shift")


def vs_study_head(agg: dict, defocus_nm: dict[str, float | None]) -> dict:
    """Spearman rho of each matrix with the study's, both readings of its sign (for ``ood.json``)."""
    return {name: {k: r[k]["rho"] for k in VS_STUDY_KEYS} for name, r in readings(agg, defocus_nm).items()}


# ------------------------------------------------------------------ the study's exact medians and scorecard

MATRICES_FILE = "study_matrices.json"


def load_study_medians() -> dict:
    """The study's matrices recomputed from its published per-model table (``data/study_matrices.json``,
    7,200 models; median over the models of each cell), as arrays in the study's own defocus labels:
    ``P`` and ``T`` (loss on the target after transfer, diagonal = ``P``'s), ``TG`` and ``shift`` (5 x 11),
    ``PG`` (5), ``pretrain_nm`` and ``eval_nm``; and ``fig6_1``, its Fig. 6.1 medians of the loss on the
    target by transfer size, frozen part and LR pair (keys of ``aggregation.transfer_conditions``)."""
    raw = json.loads(resources.files("hrtem_ood.results").joinpath("data", MATRICES_FILE).read_text())
    pre, dom = [int(v) for v in raw["pretrain_nm"]], [int(v) for v in raw["domains_nm"]]
    med = raw["median"]

    def matrix(key):
        return np.array([[med[key][str(p)].get(str(d), np.nan) for d in dom] for p in pre], float)

    out = {"pretrain_nm": pre, "eval_nm": dom, "P": matrix("P"), "T": matrix("T_on_target"), "TG": matrix("TG"),
           "shift": matrix("shift"), "PG": np.array([med["PG"][str(p)] for p in pre], float),
           "n_models": int(raw["n_models"]), "source": raw["source"], "fig6_1": raw["fig6_1_median_target_loss"]}
    for i, p in enumerate(pre):  # the diagonal convention of aggregation.aggregate: T[i, i] = P[i, i]
        j = dom.index(p)
        out["T"][i, j], out["TG"][i, j], out["shift"][i, j] = out["P"][i, j], out["PG"][i], 0.0
    return out


def study_as_aggregate(study: dict | None = None) -> tuple[dict, dict[str, float]]:
    """The study's medians as an :func:`hrtem_ood.results.aggregation.aggregate`-like dict, with domains named by
    the study's labels (``study+10``) and their defocus read mirrored (study +d nm = abTEM -d nm), so
    the project's own measures (``aggregation.phenomena``) apply to the study unchanged. Returns the
    dict and its domain -> abTEM defocus (nm) map."""
    s = study if study is not None else load_study_medians()

    def name(v):
        return f"study{v:+d}" if v else "study0"

    doms, pres = [name(v) for v in s["eval_nm"]], [name(v) for v in s["pretrain_nm"]]
    agg = {"domains": doms, "pretrain_domains": pres, "P": s["P"], "T": s["T"], "TG": s["TG"], "shift": s["shift"],
           "PG": s["PG"], "metric": "paper_loss", "reduce": "median", "exclude_from_std": ["study0"]}
    return agg, {n: -float(v) for n, v in zip(doms, s["eval_nm"], strict=True)}
