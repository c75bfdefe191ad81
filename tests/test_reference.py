"""The study's digitized matrices (hrtem_ood.results.reference; the digitiser: docs/scripts/digitize_study.py):
the reader, the data's internal consistency, and the comparison under both readings of the study's defocus sign."""

import json
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO

from hrtem_ood.cli import main
from hrtem_ood.results.aggregation import aggregate
from hrtem_ood.results.reference import compare, load_study

sys.path.insert(0, str(REPO / "docs/scripts"))
from digitize_study import colorbar_lookup, read_cells  # noqa: E402  (the digitiser lives with its docs script)

STUDY = load_study()
PRE = [-10, -5, 0, 5, 10]
EVAL = [-25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25]


def _name(nm):
    return "df0" if nm == 0 else f"df{'m' if nm < 0 else 'p'}{abs(nm)}"


def test_reader_recovers_a_rendered_matrix():
    """Render a matrix with a colour ramp inside a black frame, with anti-aliased cell edges, and
    read it back: every value within one colour-bar step."""
    rng = np.random.default_rng(0)
    values = rng.uniform(0.0, 0.1, (5, 11))
    bar_values = np.linspace(0.1, 0.0, 300)
    t = bar_values / 0.1
    bar_rgb = np.stack([40 + 180 * t, 30 + 200 * t ** 0.7, 130 + 20 * np.sin(3 * t)], -1)  # like the figures'
    img = np.full((5 * 30 + 20, 11 * 40 + 20, 3), 255.0)
    img[5:-5, 5:-5] = 0  # frame
    for i in range(5):
        for j in range(11):
            rgb = bar_rgb[np.abs(bar_values - values[i, j]).argmin()]
            img[10 + 30 * i:10 + 30 * (i + 1), 10 + 40 * j:10 + 40 * (j + 1)] = rgb
    img[10:-10, 10:-10] = (img[10:-10, 10:-10] + np.roll(img[10:-10, 10:-10], 1, 1)) / 2  # blurred edges
    got, dist = colorbar_lookup(read_cells(img.astype(np.uint8), (10, 160, 10, 450), (5, 11)), bar_rgb, bar_values)
    assert np.abs(got - values).max() <= 2 * 0.1 / 299
    assert dist.max() < 2


def test_reader_refuses_cells_too_small():
    with pytest.raises(ValueError, match="too small"):
        read_cells(np.zeros((20, 20, 3)), (0, 10, 0, 10), (5, 11))


def test_study_figures_agree_with_each_other():
    """Three colour bars on two figures, read independently, must tell one story: the OOD std of the
    generalization figure equals the std (0 nm excluded) of the loss-figure rows that are not clipped
    at its 0.1 ceiling, TG's diagonal is PG, and shift = TG - PG wherever TG is below its 0.075 ceiling."""
    P, PG, TG, SH = STUDY["P"], STUDY["PG"], STUDY["TG"], STUDY["shift"]
    unclipped = (P < 0.095).all(1)
    assert unclipped.sum() == 3  # -10, -5, 0 nm
    pg_from_p = np.delete(P, EVAL.index(0), 1).std(1)
    np.testing.assert_allclose(pg_from_p[unclipped], PG[unclipped], atol=6e-4)
    assert (pg_from_p[~unclipped] < PG[~unclipped]).all()  # clipping can only lower the std
    for i, p in enumerate(PRE):
        assert TG[i, EVAL.index(p)] == PG[i]
    ok = TG < 0.07
    np.testing.assert_allclose(SH[ok], (TG - PG[:, None])[ok], atol=1e-3)


def test_study_shows_the_protocol_phenomena():
    """The digitized numbers carry the published findings the protocol lists (independent of this
    project's runs): 0 nm the hardest column after transfer, PG ordered +10 > +5 > -5 > -10 > 0 nm,
    and the +10 nm row's far transfers improving OOD by more than 0.03."""
    T, PG, SH = STUDY["T"], STUDY["PG"], STUDY["shift"]
    assert (T.argmax(1) == EVAL.index(0)).all()
    assert list(np.argsort(PG)) == [PRE.index(d) for d in (0, -10, -5, 5, 10)]
    assert SH[PRE.index(10), EVAL.index(-25)] < -0.03


def _agg_from(P, SH=None):
    """An aggregate() result whose P (and shift) are the given 5 x 11 matrices."""
    doms, pres = [_name(d) for d in EVAL], [_name(d) for d in PRE]
    rows = [{"run": "r", "stage": "pretrain", "pretrain_domain": p, "target_domain": "", "eval_domain": d,
             "metric": "paper_loss", "value": float(P[i, j])} for i, p in enumerate(pres) for j, d in enumerate(doms)]
    agg = aggregate(rows, doms, pres, exclude_from_std=["df0"])
    if SH is not None:
        agg["shift"] = np.array(SH, float)
        agg["T"] = agg["P"].copy()
    return agg, {d: float(nm) for d, nm in zip(doms, EVAL, strict=True)}


def test_compare_a_copy_and_a_mirror_image_of_the_study():
    agg, defocus = _agg_from(STUDY["P"], STUDY["shift"])
    same = compare(agg, defocus)
    assert same["P"] == {"rho": 1.0, "n": 55} and same["PG"]["rho"] == 1.0 and same["shift"]["rho"] == 1.0
    assert same["shift"]["n"] == 50  # the diagonal (no transfer) is left out
    # the study mirrored in defocus: matched only when read mirrored, and the study is not symmetric
    agg_m, _ = _agg_from(STUDY["P"][::-1, ::-1], STUDY["shift"][::-1, ::-1])
    assert compare(agg_m, defocus, mirror=True)["P"]["rho"] == 1.0
    assert compare(agg_m, defocus, mirror=True)["PG"]["rho"] == 1.0
    assert compare(agg_m, defocus)["P"]["rho"] < 0.6
    assert compare(agg_m, defocus)["PG"]["rho"] < 0.5


def test_compare_uses_only_domains_the_study_has():
    agg, defocus = _agg_from(STUDY["P"])
    defocus = dict(defocus, dfp25=None, dfm25=7.0)  # one without a defocus, one the study lacks
    out = compare(agg, defocus)
    assert out["P"]["n"] == 5 * 9 and out["P"]["rho"] == 1.0
    assert out["shift"]["rho"] is None  # no transfers in this aggregate: all NaN


def test_vs_study_cli_on_a_results_table(tmp_path, monkeypatch, capsys):
    """The command reads the grid's results tables, writes both readings; a run whose losses are the
    study's mirror image scores 1.0 only when read mirrored."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    yaml.safe_dump(params, open("params.yaml", "w"))
    (tmp_path / "metrics/results/pretrain").mkdir(parents=True)
    Pm = STUDY["P"][::-1, ::-1]
    for i, p in enumerate(PRE):
        with open(f"metrics/results/pretrain/{_name(p)}.csv", "w") as f:
            f.write("run,stage,pretrain_domain,target_domain,eval_domain,metric,value\n")
            for j, d in enumerate(EVAL):
                f.write(f"r,pretrain,{_name(p)},,{_name(d)},paper_loss,{Pm[i, j]}\n")
    assert main(["vs-study", "--out", "vs.json"]) == 0
    out = json.load(open("vs.json"))
    direct, mirrored = out["readings"]
    assert mirrored["P"]["rho"] == 1.0 and direct["P"]["rho"] < 0.6
    assert "mirrored" in capsys.readouterr().out
    # the aggregate stage carries the same numbers into metrics/ood.json (dvc exp show columns)
    tables = [f"metrics/results/pretrain/{_name(p)}.csv" for p in PRE]
    assert main(["aggregate", "--results", *tables, "--out-metrics", "m", "--out-plots", "p"]) == 0
    head = json.load(open("m/ood.json"))["vs_study"]
    assert head["mirrored"]["P"] == 1.0 and head["abtem_sign"]["P"] == direct["P"]["rho"]
    assert head["mirrored"]["shift"] is None  # no transfers: nothing to compare
    monkeypatch.chdir(tmp_path / "metrics")
    yaml.safe_dump(params, open("params.yaml", "w"))
    assert main(["vs-study"]) == 2  # no results tables here: a clear error, not a traceback


def test_compare_reads_a_score_where_higher_is_better_as_a_loss():
    """Dice falls where loss rises: a run reported in Dice whose 1 - Dice ranks like the study's loss
    matches it (rho 1), not anti-matches it."""
    agg, defocus = _agg_from(STUDY["P"])
    dice = dict(agg, metric="dice", P=1 - agg["P"], T=1 - agg["T"])
    assert compare(dice, defocus)["P"]["rho"] == 1.0
    assert compare(dict(dice, metric="paper_loss"), defocus)["P"]["rho"] == -1.0
