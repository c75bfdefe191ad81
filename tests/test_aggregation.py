"""Every matrix against hand-computed values on small synthetic tables."""

import json

import numpy as np
import pytest

from hrtem_ood.results.aggregation import aggregate, headline
from hrtem_ood.results.plot_rows import plot_tables
from hrtem_ood.results.results_io import ResultsError, read_results

DOMS = ["a", "b", "c"]  # c is excluded from the std
PRE = ["a", "b"]


def _rows():
    rows = []

    def add(stage, p, t, e, v, seed=0, freeze="none", metric="paper_loss"):
        rows.append({"run": f"{stage}{p}{t}{seed}{freeze}", "stage": stage, "pretrain_domain": p, "target_domain": t,
                     "eval_domain": e, "metric": metric, "value": v, "seed": seed, "freeze": freeze})

    # pretrained on a: losses on a, b, c for two seeds
    for e, (v0, v1) in zip(DOMS, [(0.1, 0.3), (0.4, 0.4), (0.9, 0.7)], strict=True):
        add("pretrain", "a", "a", e, v0, 0)
        add("pretrain", "a", "a", e, v1, 1)
    for e, v in zip(DOMS, [0.5, 0.2, 0.6], strict=True):
        add("pretrain", "b", "b", e, v)
    # a -> b after transfer: three models (median differs from mean)
    for e, vs in zip(DOMS, [(0.2, 0.2, 0.8), (0.1, 0.1, 0.4), (0.3, 0.3, 0.3)], strict=True):
        for k, v in enumerate(vs):
            add("transfer", "a", "b", e, v, k, freeze=["none", "encoder", "decoder"][k])
    # a -> c
    for e, v in zip(DOMS, [0.3, 0.3, 0.2], strict=True):
        add("transfer", "a", "c", e, v)
    # a distractor metric that must be ignored
    add("pretrain", "a", "a", "a", 99.0, metric="dice")
    return rows


def test_pretrain_matrix_and_std_median():
    agg = aggregate(_rows(), DOMS, PRE, reduce="median", exclude_from_std=["c"])
    assert np.allclose(agg["P"][0], [0.2, 0.4, 0.8])
    assert np.allclose(agg["P"][1], [0.5, 0.2, 0.6])
    # population std over a, b only
    assert agg["PG"][0] == pytest.approx(np.std([0.2, 0.4]))
    assert agg["PG"][1] == pytest.approx(0.15)


def test_transfer_matrix_diagonal_and_shift_median_vs_mean():
    med = aggregate(_rows(), DOMS, PRE, reduce="median", exclude_from_std=["c"])
    mean = aggregate(_rows(), DOMS, PRE, reduce="mean", exclude_from_std=["c"])
    # T[a, b] = loss on b after a -> b
    assert med["T"][0, 1] == pytest.approx(0.1)
    assert mean["T"][0, 1] == pytest.approx(0.2)
    # diagonal convention: T[i, i] = P[i, i], TG[i, i] = PG[i], shift 0
    assert med["T"][0, 0] == pytest.approx(0.2) and med["T"][1, 1] == pytest.approx(0.2)
    assert med["TG"][0, 0] == pytest.approx(med["PG"][0]) and med["shift"][0, 0] == 0
    # TG[a, b] = std(loss on a, b after a -> b), median per domain first: std(0.2, 0.1)
    assert med["TG"][0, 1] == pytest.approx(0.05)
    assert mean["TG"][0, 1] == pytest.approx(np.std([0.4, 0.2]))
    assert med["shift"][0, 1] == pytest.approx(0.05 - 0.1)
    # a -> c: loss on c is 0.2 but c is excluded from the std: std(0.3, 0.3) = 0
    assert med["T"][0, 2] == pytest.approx(0.2) and med["TG"][0, 2] == pytest.approx(0.0)
    # no b -> a transfer models: NaN, not zero
    assert np.isnan(med["T"][1, 0]) and np.isnan(med["TG"][1, 2])


def test_excluded_domain_changes_std():
    inc = aggregate(_rows(), DOMS, PRE, exclude_from_std=[])
    assert inc["PG"][0] == pytest.approx(np.std([0.2, 0.4, 0.8]))


def test_filters_select_conditions():
    agg = aggregate(_rows(), DOMS, PRE, filters={"freeze": ["decoder"]})
    assert agg["T"][0, 1] == pytest.approx(0.4)
    assert agg["pooled"]["freeze"] == ["decoder"]


def test_headline_numbers():
    agg = aggregate(_rows(), DOMS, PRE, exclude_from_std=["c"])
    h = headline(agg, {"a": 10.0, "b": -5.0, "c": None})
    assert "in_domain_after_pretrain" not in h  # one in-domain loss: phenomena's, 0 nm excluded
    assert h["in_domain_after_transfer"] == pytest.approx((0.1 + 0.2) / 2)  # pairs without models are skipped
    assert h["mean_ood_shift"] == pytest.approx(((0.05 - 0.1) + (0.0 - 0.1)) / 2)
    assert h["fraction_pairs_ood_improved"] == 1.0
    assert h["n_pairs"] == 4
    # the study's phenomena as numbers
    assert h["ood_std_pretrain"] == {"a": pytest.approx(0.1), "b": pytest.approx(0.15)}
    assert h["ood_std_pretrain_range"] == pytest.approx(0.05)
    assert h["hardest_domain"] == "c"  # column means 0.35, 0.3, 0.7
    assert h["hardest_domain_excess_loss"] == pytest.approx(0.7 - (0.35 + 0.3) / 2)
    assert h["hardest_domain_model_ood_std_rank"] is None  # no model was pretrained on c
    assert h["min_ood_shift"] == pytest.approx(-0.1) and h["min_ood_shift_pair"] == "under 10 nm → c"
    assert h["in_domain_loss_by_domain"] == {"a": pytest.approx(0.2), "b": pytest.approx(0.2)}
    # a target's loss after transfer: over the rows that transfer to it and have models (b -> c has none)
    assert h["target_loss_after_transfer"] == {"a": None, "b": pytest.approx(0.1), "c": pytest.approx(0.2)}
    rows_p = np.nanstd(agg["P"], axis=0).mean()
    assert h["row_spread_ratio"] == pytest.approx(np.nanstd(agg["T"], axis=0).mean() / rows_p, rel=1e-4)


def test_headline_ranks_the_ood_std_of_the_model_pretrained_on_the_hardest_domain():
    rows = [{"run": p, "stage": "pretrain", "pretrain_domain": p, "target_domain": p, "eval_domain": e,
             "metric": "paper_loss", "value": v}
            for p, vals in (("a", (0.1, 0.5)), ("b", (0.3, 0.4))) for e, v in zip("ab", vals, strict=True)]
    h = headline(aggregate(rows, ["a", "b"], ["a", "b"], exclude_from_std=[]))
    assert h["hardest_domain"] == "b"  # column means 0.2 and 0.45
    assert h["hardest_domain_model_ood_std_rank"] == 1  # PG b = 0.05 < PG a = 0.2
    assert h["min_ood_shift"] is None and h["row_spread_ratio"] is None  # no transfers


def test_plot_tables_carry_defocus_and_sort_numerically():
    agg = aggregate(_rows(), DOMS, PRE, exclude_from_std=["c"])
    t = plot_tables(agg, {"a": 10.0, "b": -5.0, "c": None}, [["a", "b"]])
    row = next(r for r in t["pretrain_loss"] if r["pretrain"] == "a" and r["eval"] == "b")
    assert row["value"] == pytest.approx(0.4) and row["eval_underfocus_nm"] == -5.0
    assert row["pretrain_underfocus_nm"] == 10.0
    assert (row["pretrain_label"], row["eval_label"]) == ("under 10 nm", "over 5 nm")  # words, not signs
    assert next(r for r in t["pretrain_loss"] if r["eval"] == "c")["eval_label"] == "c"  # no defocus: its name
    ranks = {r["eval"]: r["x_sort"] for r in t["pretrain_loss"]}
    assert ranks["b"] < ranks["a"] < ranks["c"]  # -5 nm, +10 nm, unknown last
    bars = t["pair_bars"]
    assert {(r["stage"], r["eval"]) for r in bars} == {(s, e) for s in ("pretrain", "transfer") for e in DOMS}
    assert next(r for r in bars if r["stage"] == "transfer" and r["eval"] == "a")["value"] == pytest.approx(0.2)
    assert all(r["value"] is not None for tab in t.values() for r in tab)
    json.dumps(t, allow_nan=False)


def test_read_results_formats_and_errors(tmp_path):
    rows = _rows()[:3]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    cols = list(rows[0])
    (tmp_path / "r.csv").write_text(",".join(cols) + "\n" + "\n".join(",".join(str(r[c]) for c in cols) for r in rows))
    from_json = [r["value"] for r in read_results(tmp_path / "r.json")]
    assert from_json == [r["value"] for r in read_results(tmp_path / "r.csv")]
    (tmp_path / "bad.csv").write_text("run,stage\nx,pretrain\n")
    with pytest.raises(ResultsError, match="bad.csv: row 0 lacks columns"):
        read_results(tmp_path / "bad.csv")
    with pytest.raises(ResultsError, match="unsupported results format"):
        read_results(tmp_path / "r.txt") if (tmp_path / "r.txt").write_text("x") else None
    with pytest.raises(ResultsError, match="not declared"):
        aggregate(_rows(), ["a", "b"], PRE)


def test_aggregate_cli_on_a_foreign_table(tmp_path):
    """`hrtem-ood aggregate` works on a results table produced elsewhere, with only a params file."""
    import yaml
    from conftest import tiny_params

    from hrtem_ood.cli import main
    p = tiny_params()
    p["domains"] = {"a": {"defocus_nm": 10}, "b": {"defocus_nm": -5}, "c": {"defocus_nm": 0}}
    p["pretrain"]["domains"] = PRE
    p["aggregate"].update(exclude_from_std=["c"], pairs=[["a", "b"]])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "published.json").write_text(json.dumps(_rows()))
    rc = main(["--params", str(tmp_path / "params.yaml"), "aggregate", "--results", str(tmp_path / "published.json"),
               "--out-metrics", str(tmp_path / "m"), "--out-plots", str(tmp_path / "pl")])
    assert rc == 0
    head = json.loads((tmp_path / "m/ood.json").read_text())
    assert head["mean_ood_std_pretrain"] == pytest.approx((0.1 + 0.15) / 2, abs=1e-6)
    for f in ("generalization.png", "generalization.svg", "domain_loss.png", "report.html", "ood_shift.json"):
        assert (tmp_path / "pl" / f).stat().st_size > 0
    html = (tmp_path / "pl/report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_phenomena_by_hand():
    """Phenomena 1-4 on a 3 x 4 example computed by hand."""
    from hrtem_ood.results.aggregation import phenomena

    doms, pres = ["m10", "z", "p10", "p20"], ["m10", "z", "p10"]
    nan = np.nan
    P = np.array([[0.02, 0.09, 0.06, 0.10],    # m10 fails far away
                  [0.04, 0.05, 0.04, 0.04],    # z: flat
                  [0.05, 0.08, 0.03, 0.03]])
    T = np.array([[0.02, 0.06, 0.03, 0.03],
                  [0.03, 0.05, 0.03, 0.03],
                  [0.03, 0.06, 0.03, 0.03]])
    PG = np.array([0.0330, 0.0000, 0.0094])    # std over m10, p10, p20 (z excluded)
    shift = np.array([[0.0, -0.01, -0.02, -0.03], [nan, 0.0, nan, nan], [0.001, 0.002, 0.0, 0.003]])
    agg = {"domains": doms, "pretrain_domains": pres, "P": P, "T": T, "PG": PG, "shift": shift}
    out = phenomena(agg, {"m10": -10.0, "z": 0.0, "p10": 10.0, "p20": 20.0})
    assert out["failing_row"] == "m10" and out["failing_row_ood_std"] == pytest.approx(0.033)
    assert out["failing_row_distant_targets"] == ["p10", "p20"]   # >= 15 nm from -10 nm
    assert out["failing_row_distant_shift_median"] == pytest.approx(-0.025)
    assert out["failing_row_distant_shift_max"] == pytest.approx(-0.02)
    spread_p = np.mean([np.std(P[:, j]) for j in range(4)])
    spread_t = np.mean([np.std(T[:, j]) for j in range(4)])
    assert out["row_spread_ratio"] == pytest.approx(spread_t / spread_p, abs=1e-6)
    assert out["hardest_domain_by_median"] == "z" and out["zero_nm_hardest"] is True  # medians 0.08 vs <= 0.06
    assert out["hardest_domain_by_mean"] == "z"  # means 0.0733 vs 0.0567 (p20)
    P2 = P.copy()
    P2[0, 3] = 0.30  # one model failing far away moves the mean, not the median
    out2 = phenomena(dict(agg, P=P2), {"m10": -10.0, "z": 0.0, "p10": 10.0, "p20": 20.0})
    assert out2["hardest_domain_by_mean"] == "p20" and out2["zero_nm_hardest"] is True
    assert out["zero_nm_model_ood_std_rank"] == 1
    assert out["in_domain_loss_excl_0nm"] == pytest.approx((0.02 + 0.03) / 2)


def test_the_study_scores_itself():
    """The study's own medians, measured with the same code, meet every threshold of the scorecard, and
    its failing row is its +10 nm model (PG 0.058, protocol.md)."""
    from hrtem_ood.results.aggregation import phenomena
    from hrtem_ood.results.reference import study_as_aggregate
    from hrtem_ood.results.report import scorecard

    agg, defocus = study_as_aggregate()
    ph = phenomena(agg, defocus)
    assert ph["failing_row"] == "study+10" and ph["failing_row_ood_std"] == pytest.approx(0.058, abs=5e-4)
    assert ph["in_domain_loss_excl_0nm"] == pytest.approx(0.015, abs=1e-3)
    assert all(row["held"] for row in scorecard(ph, ph))


def test_figures_order_axes_as_the_study_with_labels_in_words():
    """With figure_sign study, the overfocus 10 nm domain (abTEM -10) sorts last, where the study's failing +10 nm
    row is; params' order puts it first. Labels are words either way; domains without a defocus keep None."""
    from hrtem_ood.results.report import axis_order_nm

    defocus = {"dfm10": -10.0, "df0": 0.0, "dfp10": 10.0, "lab": None}
    assert axis_order_nm(defocus, "study") == {"dfm10": 10.0, "df0": 0.0, "dfp10": -10.0, "lab": None}
    assert axis_order_nm(defocus, "abtem") == defocus
    agg = aggregate(_rows(), DOMS, PRE, exclude_from_std=["c"])
    order = {"a": -10.0, "b": 10.0, "c": 0.0}
    rows = plot_tables(agg, order, [], sort_nm=axis_order_nm(order, "study"))["ood_std_pretrain"]
    first = sorted(rows, key=lambda r: r["y_sort"])[0]
    assert first["pretrain"] == "b" and first["pretrain_label"] == "under 10 nm"  # the study's -10 comes first
    assert {r["pretrain_underfocus_nm"] for r in rows} == {-10.0, 10.0}


def _transfer_row(t, n, freeze, v, seed=0, lrp=1e-3, lrt=1e-4, seconds=None, e=None):
    return {"run": f"transfer:a->{t}:{n}{freeze}{lrp}{lrt}:s{seed}", "stage": "transfer", "pretrain_domain": "a",
            "target_domain": t, "eval_domain": e or t, "metric": "paper_loss", "value": v, "seed": seed,
            "freeze": freeze, "n_transfer": str(n), "lr_pretrain": str(lrp), "lr_transfer": str(lrt),
            "seconds": seconds}


def test_transfer_conditions_by_hand():
    """Phenomenon 5: each model's loss on its own target, 0 nm targets left out, reduced per condition."""
    from hrtem_ood.results.conditions import transfer_conditions

    defocus = {"a": -10.0, "b": 10.0, "z": 0.0}
    rows = [_transfer_row("b", 64, "none", 0.03), _transfer_row("b", 64, "encoder", 0.05),
            _transfer_row("b", 128, "none", 0.01), _transfer_row("b", 128, "encoder", 0.02, lrt=1e-5),
            _transfer_row("z", 64, "none", 9.0),  # 0 nm target: left out
            _transfer_row("b", 64, "none", 7.0, e="a")]  # another domain's loss: not the target's
    out = transfer_conditions(rows, defocus)
    assert out["by_transfer_size"] == {"64": pytest.approx(0.04), "128": pytest.approx(0.015)}
    assert out["by_freeze"] == {"encoder": pytest.approx(0.035), "none": pytest.approx(0.02)}
    assert out["by_lr_pretrain_transfer"] == {"0.001->0.0001": pytest.approx(0.03),
                                              "0.001->1e-05": pytest.approx(0.02)}
    assert out["share_above_0.02_by_size"] == {"64": 1.0, "128": 0.0}
    assert out["loss_falls_with_transfer_size"] is True
    assert out["freeze_encoder_loss_cost"] == pytest.approx(0.015)
    assert out["n_models"] == 4


def test_training_seconds_matches_frozen_and_unfrozen_models():
    from hrtem_ood.results.conditions import training_seconds

    rows = [_transfer_row("b", 64, "none", 0.1, seconds=10.0), _transfer_row("b", 64, "encoder", 0.1, seconds=8.0),
            _transfer_row("b", 128, "none", 0.1, seconds=20.0), _transfer_row("b", 128, "encoder", 0.1, seconds=14.0),
            _transfer_row("b", 128, "decoder", 0.1, seconds=19.0)]
    rows += [dict(r, eval_domain="a") for r in rows]  # every eval row of a model carries its seconds
    out = training_seconds(rows)
    assert out["freeze_encoder_time_saving"] == pytest.approx(np.median([0.2, 0.3]))
    assert out["freeze_decoder_time_saving"] == pytest.approx(0.05)
    assert out["transfer_median_s_by_freeze"] == {"decoder": 19.0, "encoder": 11.0, "none": 15.0}
    assert out["pretrain_median_s"] is None
