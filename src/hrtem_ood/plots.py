"""Figures: the example montage (PIL) and the study's figures as altair/Vega-Lite charts.

Imports neither torch nor abTEM. Static PNG/SVG rendering goes through vl-convert (offline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path


def _to_uint8(img: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    lo, hi = np.percentile(img, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def montage_png(panels: list[np.ndarray], titles: list[str], out: str | Path, cols: int = 6,
                smooth_px: float = 1.0) -> None:
    """A grid of images with titles. Noisy counts are lightly Gaussian-smoothed for display only."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import gaussian_filter

    h, w = panels[0].shape
    rows = int(np.ceil(len(panels) / cols))
    pad, head = 4, 14
    canvas = Image.new("L", (cols * (w + pad) + pad, rows * (h + head + pad) + pad), 255)
    draw = ImageDraw.Draw(canvas)
    for k, (img, title) in enumerate(zip(panels, titles, strict=True)):
        r, c = divmod(k, cols)
        x, y = pad + c * (w + pad), pad + r * (h + head + pad)
        shown = img if title == "mask" else gaussian_filter(np.asarray(img, float), smooth_px)
        canvas.paste(Image.fromarray(_to_uint8(shown)), (x, y + head))
        draw.text((x + 2, y + 1), title, fill=0)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")


# ------------------------------------------------------------------------------ study figures

def _label(name: str, defocus_nm: dict) -> str:
    d = defocus_nm.get(name)
    return f"{d:g}" if d is not None else name


def _with_labels(rows: list[dict], defocus_nm: dict) -> list[dict]:
    out = []
    for r in rows:
        r = dict(r)
        for key in ("pretrain", "eval", "target"):
            if key in r:
                r[f"{key}_label"] = _label(r[key], defocus_nm)
        out.append(r)
    return out


def _heat(rows, x, y, title, color_title, scheme="viridis", domain_mid=None, width=260, height=None, text=True):
    import altair as alt

    n_y = len({r[y] for r in rows}) or 1
    # losses and stds start at 0, so small differences are not blown up by the colour scale
    scale = (alt.Scale(scheme=scheme, domainMid=domain_mid) if domain_mid is not None
             else alt.Scale(scheme=scheme, zero=True))
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X(f"{x}_label:O", sort=alt.EncodingSortField(field="x_sort", op="min"), title=_axis_title(x),
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}_label:O", sort=alt.EncodingSortField(field="y_sort", op="min"), title=_axis_title(y)),
    )
    chart = base.mark_rect().encode(color=alt.Color("value:Q", scale=scale, title=color_title))
    if text:
        chart = chart + base.mark_text(fontSize=7).encode(
            text=alt.Text("value:Q", format=".3f"), color=alt.value("white"))
    return chart.properties(title=title, width=width, height=height or 22 * n_y)


def _axis_title(key: str) -> str:
    return {"pretrain": "Pretrain defocus (nm)", "eval": "Evaluated defocus (nm)",
            "target": "Transfer defocus (nm)", "stage": ""}[key]


def generalization_chart(tables: dict, defocus_nm: dict, metric: str):
    """The study's OOD figure: PG column, TG matrix, shift matrix, and before/after bars for chosen pairs."""
    import altair as alt

    pg = [dict(r, stage_label="after PT") for r in _with_labels(tables["ood_std_pretrain"], defocus_nm)]
    pg_chart = alt.Chart(alt.Data(values=pg)).mark_rect().encode(
        x=alt.X("stage_label:O", title=""),
        y=alt.Y("pretrain_label:O", sort=alt.EncodingSortField(field="y_sort", op="min"),
                title="Pretrain defocus (nm)"),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="magma", zero=True), title="std of loss"),
    ).properties(title="After PT", width=30, height=22 * max(len(pg), 1))
    tg = _heat(_with_labels(tables["ood_std_transfer"], defocus_nm), "target", "pretrain",
               "Generalization after transfer learning", "std of loss", scheme="magma")
    sh = _heat(_with_labels(tables["ood_shift"], defocus_nm), "target", "pretrain",
               "Generalization shift (negative = OOD improved)", "shift of std", scheme="blueorange", domain_mid=0)
    top = alt.hconcat(pg_chart, tg).resolve_scale(color="shared")
    left = alt.vconcat(top, sh).resolve_scale(color="independent")
    bars = []
    for pair in sorted({r["pair"] for r in tables["pair_bars"]}):
        rows = [r for r in _with_labels(tables["pair_bars"], defocus_nm) if r["pair"] == pair]
        bars.append(alt.Chart(alt.Data(values=rows)).mark_bar().encode(
            x=alt.X("eval_label:O", sort=alt.EncodingSortField(field="x_sort", op="min"), title="Defocus (nm)",
                    axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("stage:N", sort=["pretrain", "transfer"]),
            y=alt.Y("value:Q", title=f"{metric}"),
            color=alt.Color("stage:N", scale=alt.Scale(domain=["pretrain", "transfer"],
                                                       range=["#5b2a86", "#5fc3f5"]), title="model"),
        ).properties(title=pair.replace("->", "→"), width=260, height=110))
    right = alt.vconcat(*bars) if bars else None
    chart = alt.hconcat(left, right) if right is not None else left
    return chart.resolve_scale(color="independent").properties(
        title=f"OOD generalization ({metric}; std across domains)")


def domain_loss_chart(tables: dict, defocus_nm: dict, metric: str):
    """The study's before/after matrices: loss after pretraining and on the target after transfer."""
    import altair as alt

    p = _heat(_with_labels(tables["pretrain_loss"], defocus_nm), "eval", "pretrain", "After pretraining", metric,
              scheme="viridis")
    t = _heat(_with_labels(tables["transfer_loss"], defocus_nm), "target", "pretrain", "After transfer learning",
              metric, scheme="viridis")
    return alt.vconcat(p, t).resolve_scale(color="shared")


def render(chart_or_spec, out: str | Path, fmt: str, scale: float = 2.0) -> None:
    """Render a Vega-Lite chart offline with vl-convert (png or svg), atomically."""
    import vl_convert as vlc

    spec = chart_or_spec.to_dict() if hasattr(chart_or_spec, "to_dict") else chart_or_spec
    with atomic_path(out) as tmp:
        if fmt == "png":
            tmp.write_bytes(vlc.vegalite_to_png(spec, scale=scale))
        elif fmt == "svg":
            tmp.write_text(vlc.vegalite_to_svg(spec))
        else:
            raise ValueError(f"unknown format {fmt!r}")


def report_html(charts: dict[str, object], head: dict, notes: list[str], out: str | Path) -> None:
    """One self-contained offline HTML page: every chart as inline SVG plus the headline table."""
    import html

    import vl_convert as vlc

    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in head.items())
    parts = [f"<h2>{html.escape(title)}</h2>\n{vlc.vegalite_to_svg(c.to_dict())}" for title, c in charts.items()]
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hrtem-ood report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:2px 8px}}</style></head><body>
<h1>hrtem-ood: OOD generalization across defocus</h1>
<h2>Headline numbers</h2><table>{rows}</table><ul>{notes_html}</ul>
{''.join(parts)}
</body></html>
"""
    with atomic_path(out) as tmp:
        tmp.write_text(doc)


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
