"""The custom DVC templates are valid Vega-Lite that render offline, and wired to the plot files."""

import json

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
