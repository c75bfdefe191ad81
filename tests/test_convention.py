"""One defocus convention in everything a user reads: the committed plot tables, `ood.json`, the report's figures
and the example montage label a defocus in words (`under 10 nm`, `over 5 nm`), never by a sign that needs
decoding; numbers that carry a sign say which (`*_underfocus_nm`)."""

import json
import re

import pytest
from conftest import REPO

from hrtem_ood.units import CONVENTION, focus_label, focus_words

WORDS = re.compile(r"^(0 nm|(under|over) \d+(\.\d+)? nm)$")
SIGNED_NM = re.compile(r"(^|[\s(])[+\-−]\d+(\.\d+)? ?nm\b|study ?[+\-−]\d")
PLOT_TABLES = ("pretrain_loss", "transfer_loss", "ood_std_pretrain", "ood_std_transfer", "ood_shift", "pair_bars")


def _ingested() -> set[str]:
    import yaml

    p = yaml.safe_load((REPO / "params.yaml").read_text())
    return set((p.get("ingest") or {}).get("datasets") or {})


def test_words_and_labels():
    assert [focus_label(v) for v in (10.0, -5.0, 0.0, 2.5)] == ["under 10 nm", "over 5 nm", "0 nm", "under 2.5 nm"]
    assert focus_label(None, "real_segtrack") == "real_segtrack"
    assert focus_words(-12.34) == "overfocus 12.3 nm" and focus_words(0.01) == "in focus (0 nm)"


@pytest.mark.parametrize("table", PLOT_TABLES)
def test_plot_tables_label_defocus_in_words(table):
    rows = json.loads((REPO / "plots" / f"{table}.json").read_text())
    assert rows
    for r in rows:
        assert not any(k.endswith("_defocus_nm") for k in r), r  # a signed number names its sign
        for key in ("pretrain", "eval", "target"):
            if key in r:
                label = r[f"{key}_label"]
                assert WORDS.match(label) or label in _ingested(), label
                nm = r[f"{key}_underfocus_nm"]
                assert nm is None or label == focus_label(nm)
        if table == "pair_bars":
            assert " → " in r["pair"] and not SIGNED_NM.search(r["pair"]), r["pair"]


def _strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_ood_json_states_one_convention_and_no_signed_defocus():
    head = json.loads((REPO / "metrics/ood.json").read_text())
    assert head["defocus_convention"] == CONVENTION
    assert "failing_row_figure_nm" not in head["phenomena"]
    assert WORDS.match(head["phenomena"]["failing_row_label"])
    assert all(WORDS.match(side) for side in head["min_ood_shift_pair"].split(" → "))
    assert "in_domain_after_pretrain" not in head  # one in-domain loss: phenomena.in_domain_loss_excl_0nm
    bad = [s for s in _strings(head) if SIGNED_NM.search(s) and s != CONVENTION]
    assert not bad, bad


def test_report_figures_have_no_signed_defocus_ticks():
    """The report's figures draw defocus ticks from the label fields: no tick reads like -25 or +25 nm."""
    html = (REPO / "plots/report.html").read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", html)
    assert any(WORDS.match(t) for t in texts)  # the matrices' ticks are words
    assert not [t for t in texts if SIGNED_NM.search(t)]
    assert "study +" not in html and "(study " not in html


def test_montage_titles_in_words(tmp_path, monkeypatch):
    import numpy as np
    from conftest import tiny_params

    from hrtem_ood.config.params import validate
    from hrtem_ood.dataio.datasets import write_h5
    from hrtem_ood.stages import examples

    raw = tiny_params()
    raw["domains"] = {"dfm5": {"defocus_nm": -5}, "dfp10": {"defocus_nm": 10}}
    raw["pretrain"]["domains"] = ["dfm5"]
    raw["aggregate"].update(exclude_from_std=[], pairs=[])
    params = validate(raw)
    for name, nm in (("dfm5", -5.0), ("dfp10", 10.0)):
        (tmp_path / name).mkdir()
        write_h5(tmp_path / name / "test.h5", {"images": np.zeros((1, 8, 8), np.float32),
                                               "masks": np.zeros((1, 8, 8), np.uint8)}, {"defocus_nm": nm})
    seen = {}
    monkeypatch.setattr(examples, "montage_png", lambda panels, titles, out: seen.update(titles=titles))
    examples.write_examples(params, tmp_path, tmp_path / "m.png")
    assert seen["titles"] == ["dfm5: over 5 nm", "dfp10: under 10 nm", "mask"]


def test_report_reads_at_100_percent_on_a_1400_px_page():
    """Every figure of the report fits a 1,400 px page without scaling, and none of its text (cell values, axis
    labels, legends) is smaller than 11 px."""
    html = (REPO / "plots/report.html").read_text()
    widths = [float(w) for w in re.findall(r'<svg[^>]*?width="([0-9.]+)"', html)]
    assert widths and max(widths) <= 1400, widths
    sizes = [float(x) for x in re.findall(r'font-size="([0-9.]+)px"', html)]
    assert sizes and min(sizes) >= 11, sorted(set(sizes))
    assert html.count("<h2>Loss before and after transfer") == 0  # no section repeats the matrices


def test_units_are_converted_in_one_place():
    """nm, mm and keV become Angstrom and eV through hrtem_ood.units alone: its conversions are exact, and no other
    module writes a conversion factor (x 10 for nm, x 1e7 for mm, x 1e3 for keV) itself."""
    import re

    import numpy as np

    from hrtem_ood.units import A_to_nm, eV_to_keV, keV_to_eV, mm_to_A, nm_to_A

    assert nm_to_A(2.5) == 25.0 and A_to_nm(25.0) == 2.5 and mm_to_A(1.2) == 1.2e7 and keV_to_eV(300) == 3e5
    assert eV_to_keV(keV_to_eV(200.0)) == 200.0
    assert np.array_equal(A_to_nm(np.array([10.0, -55.0])), [1.0, -5.5])
    factor = re.compile(r"(\*|/)\s*(10(\.0)?|1e3|1e7|1000(\.0)?)\b(?!\s*\*\*)|\b(10(\.0)?|1e3|1e7)\s*\*(?!\*)")
    src = REPO / "src/hrtem_ood"
    found = [f"{p.relative_to(src)}:{k + 1}: {line.strip()}" for p in sorted(src.rglob("*.py")) if p.name != "units.py"
             for k, line in enumerate(p.read_text().splitlines())
             if factor.search(line.split("#")[0]) and not line.strip().startswith(("\"", "'", "chi(q)"))]
    assert not found, found
