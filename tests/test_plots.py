"""The custom DVC templates are valid Vega-Lite that render offline, and wired to the plot files."""

import json

import numpy as np
import pytest
import yaml
from conftest import REPO

ROWS = [{"rev": "workspace", "pretrain": p, "eval": e, "target": e, "stage": s, "pair": "dfm5 -> dfm10",
         "x_sort": i, "y_sort": j, "value": 0.01 * (i - j)}
        for j, p in enumerate(["dfm10", "dfp10"]) for i, e in enumerate(["dfm10", "df0", "dfp10"])
        for s in ("pretrain", "transfer")]


def _fill(template: dict, x: str, y: str) -> dict:
    text = json.dumps(template)
    for anchor, value in (("X", x), ("Y", y), ("TITLE", "a title"), ("X_LABEL", x), ("Y_LABEL", y)):
        text = text.replace(f'"<DVC_METRIC_{anchor}>"', json.dumps(value))
    text = text.replace('"<DVC_METRIC_DATA>"', json.dumps(ROWS))
    assert "<DVC_METRIC" not in text
    return json.loads(text)


@pytest.mark.parametrize("name, x, y", [("heatmap", "eval", "pretrain"), ("diverging_heatmap", "target", "pretrain"),
                                        ("grouped_bars", "eval", "value")])
def test_template_renders(name, x, y):
    import vl_convert as vlc

    spec = _fill(json.loads((REPO / ".dvc/plots" / f"{name}.json").read_text()), x, y)
    svg = vlc.vegalite_to_svg(spec)
    assert "a title" in svg
    # one mark per data row: rects for heatmaps (rows are duplicated per stage), bars for bar plots
    assert svg.count('role-mark') >= 1 and svg.count("<path") >= len({(r[x], r[y]) for r in ROWS})


def test_top_level_plots_use_project_templates_and_existing_outputs():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in dvc["stages"]["aggregate"]["outs"]}
    for entry in dvc["plots"]:
        (path, cfg), = entry.items()
        assert path in outs, path
        assert (REPO / cfg["template"]).is_file()
        assert cfg.get("title")


def _cell_text_fills(svg: str) -> dict[str, set[str]]:
    """The fill of each cell's value text in a rendered heatmap, by the text shown."""
    import re

    fills: dict[str, set[str]] = {}
    for fill, text in re.findall(r'<text[^>]*fill="(\w+)"[^>]*>([+\-−]?[0-9.]+)</text>', svg):
        fills.setdefault(text, set()).add(fill)
    return fills


@pytest.mark.parametrize("name, x, expected", [
    # viridis runs dark purple (lowest) to yellow (highest)
    ("heatmap", "eval", {"0.020": {"black"}, "−0.010": {"white"}}),
    # blueorange: dark blue at the lowest, light grey at 0, dark orange at the highest
    ("diverging_heatmap", "target", {"+0.000": {"black"}, "−0.010": {"white"}, "+0.020": {"white"}}),
])
def test_template_cell_text_is_dark_on_light_cells_and_light_on_dark(name, x, expected):
    import vl_convert as vlc

    fills = _cell_text_fills(vlc.vegalite_to_svg(_fill(json.loads((REPO / ".dvc/plots" / f"{name}.json").read_text()),
                                                       x, "pretrain")))
    assert {text: fills.get(text) for text in expected} == expected


def test_report_heatmap_text_follows_the_shared_colour_scale():
    from hrtem_ood.results.plots import with_text_colour

    def colours(rows, *args, **kwargs):
        return [r["text_colour"] for r in with_text_colour([{"value": v} for v in rows], *args, **kwargs)]

    # magma starts black and ends pale yellow; its scale starts at 0
    assert colours([0.0, 0.02, 0.08], "magma") == ["white", "white", "black"]
    # the same 0.04 is the scale's top alone, and its dark middle on a scale shared with a 0.08
    assert colours([0.04], "magma") == ["black"]
    assert colours([0.04], "magma", scale_values=[0.04, 0.08]) == ["white"]
    # blueorange around 0: dark at both ends, light in the middle
    assert colours([-0.06, -0.002, 0.0, 0.018], "blueorange", domain_mid=0) == ["white", "black", "black", "white"]
    # a cell without a value (a pair not trained) neither sets the scale nor breaks it
    assert colours([None, 0.0, 0.08], "magma") == ["white", "white", "black"]
    assert colours([None], "viridis") == ["white"]


def test_overlay_outlines_the_label_and_tints_the_prediction(tmp_path):
    """A 10 x 10 px square label on a flat image: exactly its 36 edge pixels turn green; a prediction shifted by
    5 px is tinted orange where it lies off the label, and the rest of the image stays grey."""
    from PIL import Image

    from hrtem_ood.results.images import LABEL_RGB, PREDICTION_RGB, overlay_grid_png, overlay_rgb

    image = np.random.default_rng(0).normal(100, 1, (40, 40))
    label = np.zeros((40, 40), np.uint8)
    label[10:20, 10:20] = 1
    predicted = np.roll(label, 5, axis=1)
    plain, both = overlay_rgb(image, label, None), overlay_rgb(image, label, predicted)
    green = np.all(plain == (LABEL_RGB * 255).round(), axis=-1)
    assert green.sum() == 36 and green[10, 10:20].all() and not green[15, 15]
    grey = plain[..., 0] == plain[..., 1]
    assert (grey | green).all() and grey[30:, 30:].all()  # nothing else coloured
    orange = np.all(both == (PREDICTION_RGB * 255).round(), axis=-1)
    assert orange[12, 24] and not orange[12, 12]  # the prediction's right edge; the label's outline wins inside
    tinted = both[..., 0].astype(int) - both[..., 2]
    assert tinted[15, 22] > 40 and abs(tinted[15, 5]) <= 1  # inside the prediction only
    overlay_grid_png([("row a", [("label", plain), ("both", both)]), ("row b", [("label", plain[:30, :30])])],
                     tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "RGB" and im.size[1] == 2 * (40 + 14 + 4) + 4
