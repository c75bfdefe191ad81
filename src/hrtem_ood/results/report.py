"""What the aggregate stage (and ``hrtem-ood compare``) writes from a set of results rows: the DVC plot
tables, ``ood.json`` headline metrics with the study's phenomena scored against the study, the static
figures, the learning curves of every model of a stage kind in one table, and the offline report
(``report.html``), the user's answer page. Neither torch nor abTEM."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.domains import domain_defocus_nm, domain_names, ingested_names
from hrtem_ood.dataio.io import atomic_path, read_json, write_json
from hrtem_ood.results.aggregation import (
    aggregate,
    aggregate_as_params,
    headline,
    ingested_summary,
    phenomena,
    simulated_rows,
)
from hrtem_ood.results.conditions import conditions_table, training_seconds, transfer_conditions
from hrtem_ood.results.plot_rows import plot_tables
from hrtem_ood.results.plots import (
    curves_chart,
    domain_loss_chart,
    generalization_chart,
    legible,
    render,
    spectra_chart,
    study_comparison_chart,
    transfer_conditions_chart,
)
from hrtem_ood.results.reference import load_study_medians, study_as_aggregate, vs_study_head
from hrtem_ood.results.results_io import grid_files
from hrtem_ood.units import CONVENTION, focus_label, focus_words

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params

#: How the figures order their defocus axes (``aggregate.figure_sign``): as the study's figures (from underfocus to
#: overfocus: its -25 to +25 nm), or by params' defocus (from overfocus to underfocus). Labels are words either way.
ORDERS = {"study": "axes run as the study's figures: from under 25 nm (its -25) to over 25 nm (its +25)",
          "abtem": "axes run by params' defocus_nm: from over 25 nm to under 25 nm"}

#: The study's phenomena as the thresholds score them: (text, key of ``phenomena``, comparison, threshold).
SCORECARD = (
    ("1. Loss depends on the pretraining domain: OOD std of the failing row after pretraining",
     "failing_row_ood_std", ">=", 0.04),
    ("2. Rows become alike after transfer: row spread after / before", "row_spread_ratio", "<=", 0.3),
    ("3a. 0 nm is the hardest domain (highest loss after pretraining, median over the pretrained models)",
     "zero_nm_hardest", "==", True),
    ("3b. The 0 nm model generalizes among the best 2 (rank by OOD std, 1 = best)",
     "zero_nm_model_ood_std_rank", "<=", 2),
    ("4. Transfer from the failing row to distant targets (>= 15 nm away) improves OOD: median shift",
     "failing_row_distant_shift_median", "<=", -0.03),
    ("In-domain loss after pretraining (0 nm excluded)", "in_domain_loss_excl_0nm", "<=", 0.03),
)
OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


def axis_order_nm(defocus_nm: dict[str, float | None], sign: str) -> dict[str, float | None]:
    """The value each domain's axis position sorts by (``aggregate.figure_sign``): the study's order, from
    underfocus to overfocus, or params' defocus."""
    return {k: (None if v is None else (-v + 0.0 if sign == "study" else v)) for k, v in defocus_nm.items()}


def scorecard(ours: dict, study: dict) -> list[dict]:
    """One row per phenomenon: this run's value, the study's (same measure on its medians), the threshold
    and whether this run meets it."""
    rows = []
    for text, key, op, threshold in SCORECARD:
        value = ours.get(key)
        rows.append({"phenomenon": text, "key": key, "value": value, "study": study.get(key),
                     "threshold": f"{op} {threshold}", "held": value is not None and OPS[op](value, threshold)})
    return rows


def write_aggregate(params: Params, rows: list[dict], out_metrics: str | Path, out_plots: str | Path,
                    extra_head: dict | None = None, curves: dict[str, list[dict]] | None = None,
                    examples_png: str | Path | None = None, match: dict | None = None,
                    spectra: list[dict] | None = None, timing: list[dict] | None = None,
                    overlays_png: str | Path | None = None) -> dict:
    """Aggregate ``rows`` as the ``aggregate`` params say and write every output. Returns ``ood.json``.

    Everything written is a function of the rows' losses, except ``timing.json`` and ``training_time.json``, written
    from ``timing`` (the timing tables' rows: training seconds per model, which vary from run to run) when given."""
    ac = params.aggregate
    sign = ac.figure_sign
    agg = aggregate_as_params(params, rows)
    defocus = domain_defocus_nm(params)
    tables = plot_tables(agg, defocus, ac.pairs, sort_nm=axis_order_nm(defocus, sign))
    out_plots, out_metrics = Path(out_plots), Path(out_metrics)
    for name, table in tables.items():
        write_json(out_plots / f"{name}.json", table)
    # the study's measures on the simulated domains only; ingested domains are extra columns and targets
    sim = aggregate_as_params(params, rows, simulated_only=True)
    sim_rows = simulated_rows(params, rows)
    head = headline(sim, defocus)
    head.update(extra_head or {})
    ours = phenomena(sim, defocus)
    study = load_study_medians()
    study_agg, study_defocus = study_as_aggregate(study)
    theirs = phenomena(study_agg, study_defocus)
    card = scorecard(ours, theirs)
    head["defocus_convention"] = CONVENTION
    head["phenomena"] = ours
    head["scorecard_held"] = sum(r["held"] for r in card)
    head["scorecard_total"] = len(card)
    head["vs_study"] = vs_study_head(sim, defocus)
    head["pooled_conditions"] = {k: v for k, v in agg["pooled"].items()}
    head["models_per_cell"] = {k: list(v) for k, v in agg["models_per_cell"].items()}
    real = {d: ingested_summary(rows, d, params.pretrain.domains, reduce=ac.reduce, filters=ac.filters)
            for d in ingested_names(params)}
    if real:
        head["ingested"] = real
    head["transfer_conditions"] = transfer_conditions(sim_rows, defocus, metric=ac.metric, reduce=ac.reduce,
                                                      filters=ac.filters)
    write_json(out_metrics / "ood.json", head)
    if timing is not None:
        seconds = training_seconds(timing)
        write_json(out_metrics / "timing.json", seconds)
        write_json(out_plots / "training_time.json", [{"freeze": f, "seconds": s} for f, s in
                                                      seconds["transfer_median_s_by_freeze"].items()])
    cond_table = conditions_table(head["transfer_conditions"], study["fig6_1"])
    write_json(out_plots / "transfer_conditions.json", cond_table)
    cond_chart = transfer_conditions_chart(cond_table, ac.metric, head["transfer_conditions"]["n_models"])
    render(cond_chart, out_plots / "transfer_conditions.png", "png")
    note = f"under = underfocus, over = overfocus; {ORDERS[sign]}"
    gen = generalization_chart(tables, ac.metric, note)
    dom = domain_loss_chart(tables, ac.metric, note)
    render(gen, out_plots / "generalization.png", "png")
    render(gen, out_plots / "generalization.svg", "svg")
    render(dom, out_plots / "domain_loss.png", "png")
    study_tables = plot_tables(study_agg, study_defocus, [], sort_nm=axis_order_nm(study_defocus, sign))
    charts = {"This run beside the study (median over the models of each cell; the study: medians of its 7,200 models)":
              study_comparison_chart(tables, study_tables, note),
              "OOD generalization (the study's Fig. 8.1 layout)": gen,
              "Loss after transfer by transfer size, frozen part and LR pair (the study's Fig. 6.1 layout)": cond_chart}
    if curves:
        labels = {d: focus_label(v, d) for d, v in defocus.items()}
        charts["Learning curves (validation loss on the stage's own domain; best epoch kept)"] = curves_chart(curves,
                                                                                                            labels)
    pooled = "; ".join(f"{k}: {', '.join(v)}" for k, v in head["pooled_conditions"].items())
    notes = [CONVENTION,
             f"Metric {ac.metric}, the {ac.reduce} over all models of a cell ({pooled}); the OOD std leaves out "
             f"{', '.join(ac.exclude_from_std)} and every ingested dataset.",
             "The study's numbers: its published per-model table (7,200 models), recomputed as medians "
             "(src/hrtem_ood/results/data/study_matrices.json), measured with the same code as this run's."]
    sections = [("Dice and IoU per domain", dice_table(params, rows, defocus), None)]
    if overlays_png is not None and Path(overlays_png).is_file():
        row = params.pretrain.domains[0]
        sections.append(("Segmentation on every domain", (
            f"<p>Each domain's first test image: its label outlined in green, and the particles (orange) that the "
            f"model pretrained at {focus_label(defocus.get(row), row)} ({row}) predicts zero-shot, then its transfer "
            "to that domain (the first condition of the grid, the first seed), each with its Dice on that image.</p>"
            + png_img(overlays_png, "segmentation overlays")), None))
    sections += match_sections(match, spectra or [], defocus) if match else []
    report_html(card, charts, {k: v for k, v in head.items() if not isinstance(v, dict)}, head["vs_study"], notes,
                out_plots / "report.html", examples_png=examples_png, sections=sections,
                conclusion=conclusion(card, ours, theirs))
    return head


def conclusion(card: list[dict], ours: dict, theirs: dict) -> str:
    """A paragraph from the numbers: how many of the study's measures this run meets, and each in a sentence."""
    import html

    held = sum(r["held"] for r in card)
    parts = [f"This run meets {held} of the study's {len(card)} measures."]
    if ours.get("failing_row_ood_std") is not None:
        worst = theirs.get("failing_row_ood_std", 0.0)
        parts.append(f"The model pretrained at {ours['failing_row_label']} generalizes worst (OOD std "
                     f"{ours['failing_row_ood_std']:.3f}; the study's worst: {worst:.3f}).")
    if ours.get("row_spread_ratio") is not None:
        parts.append(f"After transfer the rows become alike: their spread falls to {ours['row_spread_ratio']:.2f} of "
                     f"its value before (the study: {theirs.get('row_spread_ratio', 0):.2f}).")
    if "zero_nm_hardest" in ours:
        rank = ours.get("zero_nm_model_ood_std_rank")
        parts.append(f"0 nm is {'' if ours['zero_nm_hardest'] else 'not '}the hardest domain, and the model "
                     f"pretrained there ranks {rank} by OOD std (the study: 1; the measure asks for 2 or better).")
    if ours.get("failing_row_distant_shift_median") is not None:
        shift, study_shift = ours["failing_row_distant_shift_median"], theirs.get("failing_row_distant_shift_median", 0)
        parts.append(f"Transfer from the worst row to targets 15 nm or more away "
                     f"{'improves' if shift < 0 else 'worsens'} OOD: median shift {shift:+.3f} (the study: "
                     f"{study_shift:+.3f}).")
    if ours.get("in_domain_loss_excl_0nm") is not None:
        parts.append(f"The in-domain loss is {ours['in_domain_loss_excl_0nm']:.4f} (the study: "
                     f"{theirs.get('in_domain_loss_excl_0nm', 0):.4f}).")
    return f"<p><b>{html.escape(' '.join(parts))}</b></p>"


def dice_table(params: Params, rows: list[dict], defocus: dict[str, float | None]) -> str:
    """Per evaluated domain: the Dice and IoU of the model pretrained there, the median over the pretrained
    models, and the median after transfer to it (an HTML table)."""
    import html

    doms, pres = domain_names(params), params.pretrain.domains
    scores = {m: aggregate(rows, doms, pres, metric=m, reduce=params.aggregate.reduce,
                           filters=params.aggregate.filters) for m in ("dice", "iou")}

    def cell(v):
        return "" if v is None or not np.isfinite(v) else f"{v:.3f}"

    lines = []
    for j, d in enumerate(doms):
        own = [cell(scores[m]["P"][pres.index(d), j]) if d in pres else "" for m in ("dice", "iou")]
        med = [cell(np.nanmedian(scores[m]["P"][:, j])) for m in ("dice", "iou")]
        with np.errstate(all="ignore"):
            tr = [cell(np.nanmedian(scores[m]["T"][:, j]) if np.isfinite(scores[m]["T"][:, j]).any() else None)
                  for m in ("dice", "iou")]
        lines.append(f"<tr><td>{html.escape(focus_label(defocus.get(d), d))} ({html.escape(d)})</td>"
                     + "".join(f"<td>{c}</td>" for c in own + med + tr) + "</tr>")
    return ("<p>On each domain's test split; medians over the models of each cell.</p><table><tr><th>domain</th>"
            "<th>Dice, model pretrained here</th><th>IoU</th><th>Dice, median over the pretrained models</th>"
            "<th>IoU</th><th>Dice after transfer to it (median over rows)</th><th>IoU</th></tr>"
            + "".join(lines) + "</table>")


def match_sections(match: dict, spectra: list[dict], defocus: dict[str, float | None]) -> list[tuple]:
    """The report's "Which model for these micrographs?" section (the ``match`` stage's output): each ingested
    dataset's defocus estimate, its placement and the recommended model against the best measured one, the
    power spectra, and how the estimate and the recommendation were validated."""
    import html

    esc = html.escape
    labels = {d: f"{d}: {focus_words(v)}" for d, v in defocus.items() if v is not None}
    labels.update({d: d for d in match.get("ingested", {})})
    out = []
    for dataset, m in match.get("ingested", {}).items():
        if "error" in m:
            out.append((f"Which model for these micrographs? ({dataset})", f"<p>{esc(m['error'])}</p>", None))
            continue
        rec, meas = m["recommendation"], m["measured"]
        sign = "sign undetermined (Cs = 0)" if not m["sign_known"] else ""
        where = ("outside every domain, so the pick is the model that generalizes best overall"
                 if rec["outside"] else "among the domains")
        items = [
            f"Defocus at the amorphous support, from the Thon rings of the {m['n_micrographs_with_rings']} test "
            f"micrographs: {m['support_defocus_nm']:.1f} &plusmn; {m['uncertainty_nm']:.1f} nm, {esc(sign)}; "
            f"the micrographs spread by {m['sd_nm']:.1f} nm (robust SD). Assumed: {m['assumed']['energy_keV']:g} keV, "
            f"Cs {m['assumed']['Cs_mm']:g} mm, a {m['assumed']['support_thickness_nm']:g} nm support.",
            "At the domains' particle plane: " + " or ".join(esc(focus_words(d)) for d in rec["placed_nm"])
            + f": {esc(where)}.",
            f"Recommended: <b>{esc(rec['model'])}</b> (expected loss {rec['expected_loss']:.4f}; runner-up "
            f"{esc(rec['runner_up'])}, {rec['runner_up_expected_loss']:.4f}). Measured on the test split: Dice "
            f"{meas['recommended']['dice']:.3f}, against {meas['best_zero_shot']['dice']:.3f} for the best "
            f"pretrained model ({esc(meas['best_zero_shot']['model'])}).",
        ]
        out.append((f"Which model for these micrographs? ({dataset})",
                    "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
                    "<p>Power spectra of the test images: each simulated domain (colour) and the micrographs "
                    "(black). Rings at other radii than every domain's mean other imaging conditions.</p>",
                    spectra_chart(spectra, labels) if spectra else None))
    v, loo = match["validation"], match["leave_one_out"]
    rows = "".join(f"<tr><td>{esc(labels.get(d, d))}</td><td>{r['median_abs_error_nm']:.2f}</td>"
                   f"<td>{r['share_showing_rings']:.2f}</td></tr>" for d, r in v["per_domain"].items())
    body = (f"<p>Defocus estimate on the simulated test images (true defocus known; offset from the support to "
            f"the particles' calibrated zero: {match['calibration']['offset_nm']:.2f} nm, calibrated on the train "
            f"images). Largest per-domain median error at 5 nm or more: "
            f"{v['max_median_abs_error_nm_at_5nm_or_more']:.2f} nm.</p><table><tr><th>domain</th><th>median "
            f"absolute error (nm)</th><th>share of 256-px tiles whose rings pass the check</th></tr>{rows}</table>"
            f"<p>Recommendation, leave one domain out ({loo['n_domains']} domains): median regret "
            f"{loo['recommended']['median_regret']:.4f} (hit rate {loo['recommended']['hit_rate']:.2f}) against "
            f"{loo['baseline']['median_regret']:.4f} ({loo['baseline']['hit_rate']:.2f}) for always the model that "
            "generalizes best overall.</p>")
    out.append(("How the defocus estimate and the recommendation were validated", body, None))
    return out


def read_curves(params: Params, curves_dir: str | Path) -> dict[str, list[dict]]:
    """Every epoch of every model of the grid, per stage kind; one series per pair and seed (``run``)."""
    return {kind: [{"stage": kind, **row} for f in files for row in read_json(f)]
            for kind, files in grid_files(params.pretrain.domains, curves_dir, ".json").items()}


def png_img(path: str | Path, alt: str) -> str:
    """An ``<img>`` holding the PNG at ``path`` inline (the report loads nothing)."""
    import base64
    import html

    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img alt=\"{html.escape(alt)}\" style=\"max-width:100%\" src=\"data:image/png;base64,{data}\">"


def write_curves(curves: dict[str, list[dict]], out_plots: str | Path) -> None:
    """One table per stage kind (``learning_curves_<kind>.json``), for one DVC plot each."""
    for kind, rows in curves.items():
        write_json(Path(out_plots) / f"learning_curves_{kind}.json", rows)


def report_html(card: list[dict], charts: dict[str, object], head: dict, vs_study: dict, notes: list[str],
                out: str | Path, examples_png: str | Path | None = None,
                sections: list[tuple[str, str, object | None]] = (), conclusion: str = "") -> None:
    """One self-contained offline HTML page, the run's answer: the scorecard of the study's phenomena, the
    figures (inline SVG), the example images (inline PNG), the rank correlations with the study's
    matrices and every headline number; then ``sections`` (title, HTML, optional chart). Nothing is loaded
    from the network."""
    import html

    import vl_convert as vlc

    def fmt(v):
        return "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    esc = html.escape
    held = sum(r["held"] for r in card)
    card_rows = "".join(
        f"<tr><td>{esc(r['phenomenon'])}</td><td><b>{esc(fmt(r['value']))}</b></td><td>{esc(fmt(r['study']))}</td>"
        f"<td>{esc(r['threshold'])}</td><td class=\"{'yes' if r['held'] else 'no'}\">"
        f"{'held' if r['held'] else 'not held'}</td></tr>" for r in card)
    keys = sorted({k for reading in vs_study.values() for k in reading})
    vs_rows = "".join(f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{esc(fmt(r.get(k)))}</td>" for k in keys)
                      + "</tr>" for name, r in vs_study.items())
    head_rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(str(v))}</td></tr>" for k, v in head.items())
    parts = [f"<h2>{esc(title)}</h2>\n{vlc.vegalite_to_svg(legible(c).to_dict())}" for title, c in charts.items()]
    if examples_png is not None and Path(examples_png).is_file():
        parts.insert(1, "<h2>Example test image in every domain, and its label</h2>"
                     + png_img(examples_png, "examples"))
    for title, body, chart in sections:
        svg = vlc.vegalite_to_svg(legible(chart).to_dict()) if chart else ""
        parts.append(f"<h2>{esc(title)}</h2>\n{body}{svg}")
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hrtem-ood report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px}}td.yes{{background:#d4f4d4}}td.no{{background:#f8d0d0}}</style>
</head><body>
<h1>hrtem-ood: how the defocus of the training data changes OOD generalization</h1>
<h2 id="scorecard">The study's phenomena: {held} of {len(card)} held</h2>
<table><tr><th>phenomenon</th><th>this run</th><th>the study</th><th>threshold</th><th></th></tr>{card_rows}</table>
{conclusion}
<ul>{notes_html}</ul>
{''.join(parts)}
<h2>Rank correlation (Spearman) with the study's published matrices, both readings of its sign</h2>
<table><tr><th>reading</th>{''.join(f"<th>{esc(k)}</th>" for k in keys)}</tr>{vs_rows}</table>
<h2>Headline numbers (metrics/ood.json)</h2><table>{head_rows}</table>
</body></html>
"""
    with atomic_path(out) as tmp:
        tmp.write_text(doc)
