"""Figures: the study's figures as altair/Vega-Lite charts (the micrograph figures are in ``results.images``).

Imports neither torch nor abTEM. Static PNG/SVG rendering goes through vl-convert (offline).
"""

from __future__ import annotations

from pathlib import Path

from hrtem_ood.dataio.io import atomic_path

# ------------------------------------------------------------------------------ study figures

#: Axis labels are words (``under 10 nm``): slanted, so that eleven of them fit under a matrix.
LABEL_ANGLE = -40


#: Where on each colour scheme (0-1) the colours are light enough to need dark cell text: the sequential schemes
#: run from dark to light, blueorange is light around its middle.
_LIGHT_BAND = {"magma": (0.55, 1.0), "viridis": (0.6, 1.0), "blueorange": (0.25, 0.75)}


def _scale_position(value: float, lo: float, hi: float, domain_mid: float | None) -> float:
    """Where ``value`` falls on a colour scale over [lo, hi] (0-1), as Vega maps it: linearly, or piecewise
    through ``domain_mid`` at 0.5 for a diverging scale."""
    if domain_mid is None:
        return (value - lo) / (hi - lo) if hi > lo else 0.0
    if value < domain_mid:
        return 0.5 - 0.5 * (value - domain_mid) / (lo - domain_mid) if lo < domain_mid else 0.5
    return 0.5 + 0.5 * (value - domain_mid) / (hi - domain_mid) if hi > domain_mid else 0.5


#: The study's figures draw every loss matrix on 0-0.1 (paper_loss); higher cells saturate.
LOSS_RANGE = (0.0, 0.1)
#: Cell text and axis labels at least this size (px), so a matrix reads at 100% zoom on a 1,400 px page.
FONT_PX = 11
#: A heatmap cell, wide enough for "0.123" at FONT_PX, and a row.
CELL_W, CELL_H = 46, 24


def symmetric(values: list[float | None]) -> tuple[float, float]:
    """A diverging scale's domain, symmetric about 0: -0.02 reads as strong as +0.02."""
    m = max((abs(v) for v in values if v is not None), default=0.0) or 1e-9
    return -m, m


def with_text_colour(rows: list[dict], scheme: str, domain_mid: float | None = None,
                     scale_values: list[float] | None = None, domain: tuple[float, float] | None = None) -> list[dict]:
    """Each row with ``text_colour``: black on the light part of its cell's colour scheme, white elsewhere.
    ``domain``: the colour scale's fixed range (values beyond it saturate); else ``scale_values``, every value
    on the (possibly shared) scale, default the rows' own. Sequential scales start at 0 (``zero=True``), as the
    heatmaps' do. Empty cells (value None) are left white."""
    values = [v for v in ([r["value"] for r in rows] if scale_values is None else scale_values) if v is not None]
    if not values and domain is None:
        return [dict(r, text_colour="white") for r in rows]
    lo, hi = domain if domain is not None else (min(values), max(values))
    if domain is None and domain_mid is None:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    light_from, light_to = _LIGHT_BAND[scheme]

    def position(v):
        return min(max(_scale_position(v, lo, hi, domain_mid), 0.0), 1.0)

    return [dict(r, text_colour="black" if r["value"] is not None and light_from <= position(r["value"]) <= light_to
                 else "white") for r in rows]


def _heat(rows, x, y, title, color_title, scheme="viridis", domain_mid=None, text=True, scale_values=None,
          domain=None, marks=()):
    """A labelled heatmap, a CELL_W x CELL_H cell per value with its text at FONT_PX. ``domain``: a fixed colour
    range (values beyond it saturate); ``scale_values``: every value on the colour scale it shares with other
    charts. ``marks``: (pretrain, target-or-eval, shape) cells to ring, as the study marks its bar plots' pairs."""
    import altair as alt

    n_x, n_y = len({r[x] for r in rows}) or 1, len({r[y] for r in rows}) or 1
    if domain is not None:
        scale = alt.Scale(scheme=scheme, domain=list(domain), clamp=True,
                          **({"domainMid": domain_mid} if domain_mid is not None else {}))
    else:  # losses and stds start at 0, so small differences are not blown up by the colour scale
        scale = (alt.Scale(scheme=scheme, domainMid=domain_mid) if domain_mid is not None
                 else alt.Scale(scheme=scheme, zero=True))
    base = alt.Chart(alt.Data(values=with_text_colour(rows, scheme, domain_mid, scale_values, domain))).encode(
        x=alt.X(f"{x}_label:O", sort=alt.EncodingSortField(field="x_sort", op="min"), title=_axis_title(x),
                axis=alt.Axis(labelAngle=LABEL_ANGLE)),
        y=alt.Y(f"{y}_label:O", sort=alt.EncodingSortField(field="y_sort", op="min"), title=_axis_title(y)),
    )
    chart = base.mark_rect().encode(color=alt.Color("value:Q", scale=scale, title=color_title))
    if text:
        dark_text = alt.condition("datum.text_colour === 'black'", alt.value("black"), alt.value("white"))
        chart = chart + base.mark_text(fontSize=FONT_PX).encode(text=alt.Text("value:Q", format=".3f"),
                                                                color=dark_text)
    for p, t, shape in marks:
        ringed = [r for r in rows if r[y] == p and r[x] == t]
        if ringed:
            chart = chart + alt.Chart(alt.Data(values=ringed)).mark_point(
                shape=shape, size=900, filled=False, strokeWidth=2.5, color="#00d4ff").encode(
                x=alt.X(f"{x}_label:O", sort=alt.EncodingSortField(field="x_sort", op="min")),
                y=alt.Y(f"{y}_label:O", sort=alt.EncodingSortField(field="y_sort", op="min")))
    return chart.properties(title=title, width=CELL_W * n_x, height=CELL_H * n_y)


def _axis_title(key: str) -> str:
    return {"pretrain": "pretraining defocus", "eval": "evaluated defocus",
            "target": "transfer target's defocus", "stage": ""}[key]


def _title(text: str, sign_note: str):
    import altair as alt

    return alt.TitleParams(text, subtitle=sign_note) if sign_note else text


#: How the OOD figure marks each bar plot's pair on its matrices, in aggregate.pairs order (the study: circle, square).
PAIR_SHAPES = ("circle", "square", "triangle-up", "diamond")
_SHAPE_GLYPH = {"circle": "●", "square": "■", "triangle-up": "▲", "diamond": "◆"}


def _bars(rows: list[dict], title: str, metric: str, colour_title: str, scheme: str,
          domain: tuple[float, float]):
    """One model's loss on every domain, its bars coloured by one value of the model (its OOD std, or the shift
    its transfer made) on the matrices' scale."""
    import altair as alt

    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("eval_label:O", sort=alt.EncodingSortField(field="x_sort", op="min"), title="evaluated defocus",
                axis=alt.Axis(labelAngle=LABEL_ANGLE)),
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(domain=list(LOSS_RANGE), clamp=True)),
        color=alt.Color("colour_value:Q", title=colour_title,
                        scale=alt.Scale(scheme=scheme, domain=list(domain), clamp=True,
                                        **({"domainMid": 0} if scheme == "blueorange" else {}))),
    ).properties(title=title, width=CELL_W * len({r["eval"] for r in rows}) * 0.6, height=120)


def generalization_chart(tables: dict, metric: str, note: str = ""):
    """The study's OOD figure. Top: the OOD std after pretraining (one column), after transfer (a matrix) and
    its shift by transfer (a matrix, symmetric scale), each bar plot's pair ringed on them. Below, per pair: the
    pretrained model's loss on every domain, coloured by its OOD std, and the transferred model's, coloured by
    the shift, with whether transfer improved or worsened OOD. Rows carry their axis labels in words."""
    import altair as alt

    pairs = list(dict.fromkeys((r["pair_pretrain"], r["pair_target"], r["pair"]) for r in tables["pair_bars"]))
    shapes = {pair[:2]: PAIR_SHAPES[k % len(PAIR_SHAPES)] for k, pair in enumerate(pairs)}
    std_domain = (0.0, max((r["value"] for r in tables["ood_std_transfer"] + tables["ood_std_pretrain"]),
                           default=1e-9))
    shift_domain = symmetric([r["value"] for r in tables["ood_shift"]])
    pg = [dict(r, stage_label="after PT") for r in tables["ood_std_pretrain"]]
    pg_chart = alt.Chart(alt.Data(values=pg)).mark_rect().encode(
        x=alt.X("stage_label:O", title=""),
        y=alt.Y("pretrain_label:O", sort=alt.EncodingSortField(field="y_sort", op="min"),
                title=_axis_title("pretrain")),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="magma", domain=list(std_domain)), title="std of loss"),
    ).properties(title="After PT", width=CELL_W, height=CELL_H * max(len(pg), 1))
    marks = [(p, t, shape) for (p, t), shape in shapes.items()]
    tg = _heat(tables["ood_std_transfer"], "target", "pretrain", "Generalization after transfer learning",
               "std of loss", scheme="magma", domain=std_domain, marks=marks)
    sh = _heat(tables["ood_shift"], "target", "pretrain", "Generalization shift (negative = OOD improved)",
               "shift of std", scheme="blueorange", domain_mid=0, domain=shift_domain, marks=marks)
    top = alt.hconcat(pg_chart, tg).resolve_scale(color="shared")
    left = alt.vconcat(top, sh).resolve_scale(color="independent")
    panels = []
    for p, t, label in pairs:
        rows = [r for r in tables["pair_bars"] if (r["pair_pretrain"], r["pair_target"]) == (p, t)]
        pg_value = next((r["value"] for r in tables["ood_std_pretrain"] if r["pretrain"] == p), None)
        shift = next((r["value"] for r in tables["ood_shift"] if r["pretrain"] == p and r["target"] == t), None)
        verdict = "" if shift is None else ("improves OOD" if shift < 0 else "worsens OOD")
        glyph = _SHAPE_GLYPH[shapes[(p, t)]]
        before = _bars([dict(r, colour_value=pg_value) for r in rows if r["stage"] == "pretrain"],
                       f"{glyph} pretrained", metric, "std of loss", "magma", std_domain)
        after = _bars([dict(r, colour_value=shift) for r in rows if r["stage"] == "transfer"],
                      f"{glyph} transferred: {verdict} (shift {shift:+.3f})" if shift is not None else "transferred",
                      metric, "shift of std", "blueorange", shift_domain)
        panels.append(alt.hconcat(before, after).resolve_scale(color="independent").properties(title=label))
    chart = alt.vconcat(left, *panels) if panels else left  # one column: fits a 1,400 px page at 100% zoom
    return chart.resolve_scale(color="independent").properties(
        title=_title(f"OOD generalization ({metric}; std across domains)", note))


def domain_loss_chart(tables: dict, metric: str, note: str = ""):
    """The study's before/after matrices: loss after pretraining and on the target after transfer, on the
    study's loss range."""
    import altair as alt

    p = _heat(tables["pretrain_loss"], "eval", "pretrain", "After pretraining", metric, domain=LOSS_RANGE)
    t = _heat(tables["transfer_loss"], "target", "pretrain", "After transfer learning", metric, domain=LOSS_RANGE)
    return alt.vconcat(p, t).resolve_scale(color="shared").properties(title=_title(f"Loss ({metric})", note))


def study_comparison_chart(ours: dict, study: dict, note: str = ""):
    """This run's matrices (left) beside the study's (right), each pair on one colour scale: loss after
    pretraining and on the target after transfer (the study's range, 0-0.1), the shift of the OOD std by transfer
    (symmetric about 0); then the OOD std after pretraining, both side by side."""
    import altair as alt

    rows = []
    for key, title in (("pretrain_loss", "loss after pretraining"), ("transfer_loss", "loss on the target after "
                                                                                       "transfer"),
                       ("ood_shift", "shift of OOD std by transfer")):
        x = "eval" if key == "pretrain_loss" else "target"
        loss = key != "ood_shift"
        scheme, mid = ("viridis", None) if loss else ("blueorange", 0)
        domain = LOSS_RANGE if loss else symmetric([r["value"] for r in ours[key] + study[key]])
        mine = _heat(ours[key], x, "pretrain", f"This run: {title}", "", scheme, mid, domain=domain)
        theirs = _heat(study[key], x, "pretrain", f"The study: {title}", "", scheme, mid, domain=domain)
        rows.append(alt.hconcat(mine, theirs).resolve_scale(color="shared"))
    pg = [dict(r, who="this run") for r in ours["ood_std_pretrain"]]
    pg += [dict(r, who="the study") for r in study["ood_std_pretrain"]]
    pg_chart = alt.Chart(alt.Data(values=pg)).mark_bar().encode(
        x=alt.X("pretrain_label:O", sort=alt.EncodingSortField(field="y_sort", op="min"),
                title=_axis_title("pretrain"), axis=alt.Axis(labelAngle=LABEL_ANGLE)),
        xOffset=alt.XOffset("who:N", sort=["this run", "the study"]),
        y=alt.Y("value:Q", title="OOD std after pretraining"),
        color=alt.Color("who:N", scale=alt.Scale(domain=["this run", "the study"], range=["#5b2a86", "#e69f00"]),
                        title=""),
    ).properties(title="OOD std after pretraining (phenomena 1 and 3)", width=CELL_W * 5, height=160)
    return alt.vconcat(*rows, pg_chart).resolve_scale(color="independent").properties(
        title=_title("This run beside the study", note))


def curves_chart(curves: dict[str, list[dict]], labels: dict[str, str]):
    """Validation loss per epoch, one line per model (pair and seed), one panel per stage kind, coloured by the
    pretraining domain (``labels``: each domain's label in words) with a legend."""
    import altair as alt

    panels = []
    for kind, rows in curves.items():
        if rows:
            rows = [dict(r, pretrained_on=labels.get(_pretrain_of(r["run"]), _pretrain_of(r["run"]))) for r in rows]
            panels.append(alt.Chart(alt.Data(values=rows)).mark_line(opacity=0.7, strokeWidth=1.2).encode(
                x=alt.X("epoch:Q", title="epoch"), y=alt.Y("val_loss:Q", title="validation loss"),
                detail="run:N", color=alt.Color("pretrained_on:N", title="pretrained on"),
            ).properties(title=f"{kind}: {len({r['run'] for r in rows})} models", width=420, height=220))
    return alt.hconcat(*panels)


def _pretrain_of(run: str) -> str:
    """The pretraining domain of a run name: ``pretrain:dfm10:...`` or ``transfer:dfm10->dfp5:...``."""
    return run.split(":")[1].split("->")[0]


def spectra_chart(rows: list[dict], labels: dict[str, str]):
    """Radial power spectra (log10 of the mean profile, each micrograph normalised by its median), one line per
    simulated domain (colour by its defocus label) and a thick black line per ingested dataset."""
    import altair as alt

    rows = [dict(r, label=labels.get(r["source"], r["source"])) for r in rows]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("q_per_A:Q", title="spatial frequency (1/A)"),
        y=alt.Y("log10_power:Q", title="log10 power (per micrograph / its median)"))
    domains = base.transform_filter(alt.datum.kind == "simulated").mark_line(strokeWidth=1.2).encode(
        color=alt.Color("label:N", title="domain", sort=[labels[k] for k in labels if k in {r["source"] for r in rows}],
                        scale=alt.Scale(scheme="spectral")))
    real = base.transform_filter(alt.datum.kind == "ingested").mark_line(strokeWidth=3, color="black").encode(
        detail="label:N")
    return (domains + real).properties(width=900, height=320)


def transfer_conditions_chart(table: list[dict], metric: str, models: int):
    """The study's Fig. 6.1 layout: the loss on the transfer target by transfer size, frozen part and LR pair;
    this run's reduced loss as bars, the study's medians as diamonds on the same axis."""
    import altair as alt

    panels = []
    for panel in dict.fromkeys(r["panel"] for r in table):
        rows = [r for r in table if r["panel"] == panel]
        order = [r["condition"] for r in sorted(rows, key=lambda r: (r["source"] != "this run", r["x_sort"]))]
        x = alt.X("condition:N", title=panel, sort=list(dict.fromkeys(order)))
        y = alt.Y("value:Q", title=f"{metric} on the target (0 nm targets left out)")
        ours = alt.Chart(alt.Data(values=[r for r in rows if r["source"] == "this run"])).mark_bar(
            color="#5fc3f5").encode(x=x, y=y, tooltip=["condition:N", "value:Q"])
        theirs = alt.Chart(alt.Data(values=[r for r in rows if r["source"] == "the study"])).mark_point(
            shape="diamond", filled=True, size=90, color="#5b2a86").encode(x=x, y=y, tooltip=["condition:N", "value:Q"])
        panels.append((ours + theirs).properties(width=170, height=200))
    return alt.hconcat(*panels).properties(title={
        "text": "Phenomenon 5: loss after transfer by condition (bars: this run; diamonds: the study's medians)",
        "subtitle": f"{models} transfer models; each bar reduces over every other condition, seed and pair"})


def labels_chart(table: list[dict], dataset: str):
    """Dice on an ingested dataset's test split against the number of labelled train micrographs, one line per
    start (best / worst pretrained model, scratch)."""
    import altair as alt

    x = alt.X("n_micrographs:Q", title="labelled train micrographs", scale=alt.Scale(type="log", base=2),
              axis=alt.Axis(values=sorted({r["n_micrographs"] for r in table})))
    y = alt.Y("dice:Q", title=f"Dice on the {dataset} test split", scale=alt.Scale(zero=False))
    lines = alt.Chart(alt.Data(values=table)).mark_line(point=True).encode(
        x=x, y=y, color=alt.Color("start:N", title="start"), tooltip=["start:N", "n_micrographs:Q", "dice:Q", "iou:Q"])
    return lines.properties(width=420, height=260, title=f"How many images to label ({dataset})")


def legible(chart):
    """Axis, legend and title text at FONT_PX or more: a figure reads at 100% zoom."""
    return (chart.configure_axis(labelFontSize=FONT_PX, titleFontSize=FONT_PX + 1)
            .configure_legend(labelFontSize=FONT_PX, titleFontSize=FONT_PX)
            .configure_title(fontSize=FONT_PX + 3, subtitleFontSize=FONT_PX + 1)
            .configure_header(labelFontSize=FONT_PX, titleFontSize=FONT_PX))


def render(chart_or_spec, out: str | Path, fmt: str, scale: float = 2.0) -> None:
    """Render a Vega-Lite chart offline with vl-convert (png or svg), atomically; charts with legible text."""
    import vl_convert as vlc

    if hasattr(chart_or_spec, "configure_axis"):
        chart_or_spec = legible(chart_or_spec)
    spec = chart_or_spec.to_dict() if hasattr(chart_or_spec, "to_dict") else chart_or_spec
    with atomic_path(out) as tmp:
        if fmt == "png":
            tmp.write_bytes(vlc.vegalite_to_png(spec, scale=scale))
        elif fmt == "svg":
            tmp.write_text(vlc.vegalite_to_svg(spec))
        else:
            raise ValueError(f"unknown format {fmt!r}")


OFFLINE_TEMPLATE = ".dvc/plots_offline.html"


def offline_plots_template() -> str:
    """The page ``dvc plots show`` fills (``plots.html_template`` in ``.dvc/config``): DVC's layout with the
    Vega, Vega-Lite and vega-embed bundle of vl-convert inlined instead of loaded from a CDN, so the
    charts render with no network. ``{plot_divs}`` is DVC's placeholder; ``{scripts}`` is left out, so
    DVC's CDN script tags are never added."""
    import vl_convert as vlc

    bundle = vlc.javascript_bundle().replace("</script", "<\\/script")
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>DVC Plot (offline)</title>\n"
            f"<!-- Vega, Vega-Lite and vega-embed, bundled by vl-convert {vlc.__version__}: no network needed -->\n"
            f"<script type=\"text/javascript\">\n{bundle}\n</script>\n"
            "<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n")
