"""The model recommendation on hand-made matrices: the kernel-weighted expected loss, the pick near the placed
defocus, the two-candidate (sign-open) case, micrographs outside every domain, and the leave-one-out scoring."""

import math

import numpy as np
import pytest

from hrtem_ood.matching import recommend as rc

COLUMNS = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])


def test_expected_loss_is_the_gaussian_weighted_mean():
    m = rc.Model("a", None, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    every = np.ones(5, bool)
    assert rc.expected_loss(m, COLUMNS, 0.0, every, 5.0) == pytest.approx(3.0)  # symmetric weights
    assert rc.expected_loss(m, COLUMNS, 7.0, every, math.inf) == pytest.approx(3.0)  # infinite width: the mean
    w = np.exp(-0.5 * ((COLUMNS - 10.0) / 5.0) ** 2)
    assert rc.expected_loss(m, COLUMNS, 10.0, every, 5.0) == pytest.approx(np.sum(w * m.losses) / np.sum(w))
    held = np.array([True, True, True, True, False])  # a held-out column does not count
    w = np.exp(-0.5 * ((COLUMNS[:4] - 10.0) / 5.0) ** 2)
    assert rc.expected_loss(m, COLUMNS, 10.0, held, 5.0) == pytest.approx(np.sum(w * m.losses[:4]) / np.sum(w))


def _models():
    return [rc.Model("left", None, np.array([0.01, 0.02, 0.05, 0.08, 0.10])),   # good at overfocus
            rc.Model("right", None, np.array([0.10, 0.08, 0.05, 0.02, 0.01])),  # good at underfocus
            rc.Model("both", None, np.array([0.03, 0.04, 0.05, 0.04, 0.03]))]   # fair at both ends


def test_pick_follows_the_placement():
    assert rc.recommend(_models(), COLUMNS, [9.0])["pretrain"] == "right"
    assert rc.recommend(_models(), COLUMNS, [-9.0])["pretrain"] == "left"
    both = rc.recommend(_models(), COLUMNS, [9.0, -9.0])  # the sign open: equally likely ends
    assert both["pretrain"] == "both" and not both["outside"]
    assert both["expected_loss"] < both["runner_up_expected_loss"]


def test_outside_every_domain_falls_back_to_the_best_generalizer():
    rec = rc.recommend(_models(), COLUMNS, [100.0, -112.0])
    assert rec["outside"] and rec["used_nm"] == []
    assert rec["pretrain"] == "both"  # lowest mean loss: 0.038 against 0.052
    assert rec["expected_loss"] == pytest.approx(0.038)
    edge = rc.recommend(_models(), COLUMNS, [12.4])  # within half a spacing of the outermost domain
    assert not edge["outside"] and edge["pretrain"] == "right"


def test_models_of_an_aggregate_name_rows_and_transfers():
    agg = {"pretrain_domains": ["a"], "domains": ["a", "b"], "P": np.array([[0.01, 0.05]]),
           "A": np.array([[[np.nan, np.nan], [0.03, 0.02]]])}
    models = rc.models_of(agg)
    assert [m.name for m in models] == ["pretrained on a", "a transferred to b"]
    assert models[1].losses.tolist() == [0.03, 0.02]


def test_leave_one_out_holds_out_the_domains_own_models_and_scores_regret():
    domains = ["m", "z", "p"]
    column_nm = np.array([-5.0, 0.0, 5.0])
    models = [rc.Model("m", None, np.array([0.01, 0.04, 0.09])),
              rc.Model("p", None, np.array([0.09, 0.04, 0.01])),
              rc.Model("z", None, np.array([0.03, 0.02, 0.03])),
              rc.Model("m", "p", np.array([0.05, 0.03, 0.012])),
              rc.Model("z", "p", np.array([0.06, 0.035, 0.015]))]
    out = rc.leave_one_out(models, domains, column_nm, {"m": [-5.0], "z": [0.0], "p": [5.0]}, width_nm=5.0)
    rows = {r["domain"]: r for r in out["rows"]}
    for r in out["rows"]:
        name, dom = r["recommended"], r["domain"]
        assert not name.endswith(f" {dom}") and not name.startswith(f"{dom} ")  # not its own, not to it
        assert r["regret"] >= 0 and r["baseline_regret"] >= 0
    # z held out: its columns' neighbours m and p weigh the same at 0 nm; m -> p is the fairest there, and it is
    # the best available model on z's own column
    assert rows["z"]["recommended"] == "m transferred to p" and rows["z"]["hit"] and rows["z"]["regret"] == 0.0
    # m and p held out lie beyond the other two domains: outside, so the pick is the overall baseline
    for dom in ("m", "p"):
        assert rows[dom]["outside"] and rows[dom]["recommended"] == rows[dom]["baseline"]
    assert out["summary"]["n_domains"] == 3
