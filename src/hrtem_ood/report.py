"""What the aggregate stage (and ``hrtem-ood compare``) writes from a set of results rows: the DVC plot
tables, ``ood.json`` headline metrics, the static figures, the offline report, and the learning curves
of every model of a stage kind in one table. Neither torch nor abTEM."""

from __future__ import annotations

from pathlib import Path

from .aggregation import aggregate_as_params, grid_files, headline, plot_tables
from .io import read_json, write_json
from .params import domain_defocus_nm
from .plots import domain_loss_chart, generalization_chart, render, report_html
from .reference import vs_study_head


def write_aggregate(params: dict, rows: list[dict], out_metrics: str | Path, out_plots: str | Path,
                    extra_head: dict | None = None) -> dict:
    """Aggregate ``rows`` as the ``aggregate`` params say and write every output. Returns ``ood.json``."""
    ac = params["aggregate"]
    agg = aggregate_as_params(params, rows)
    defocus = domain_defocus_nm(params)
    tables = plot_tables(agg, defocus, ac["pairs"])
    out_plots, out_metrics = Path(out_plots), Path(out_metrics)
    for name, table in tables.items():
        write_json(out_plots / f"{name}.json", table)
    head = headline(agg)
    head.update(extra_head or {})
    head["vs_study"] = vs_study_head(agg, defocus)
    head["pooled_conditions"] = {k: v for k, v in agg["pooled"].items()}
    head["models_per_cell"] = {k: list(v) for k, v in agg["models_per_cell"].items()}
    write_json(out_metrics / "ood.json", head)
    gen = generalization_chart(tables, defocus, ac["metric"])
    dom = domain_loss_chart(tables, defocus, ac["metric"])
    render(gen, out_plots / "generalization.png", "png")
    render(gen, out_plots / "generalization.svg", "svg")
    render(dom, out_plots / "domain_loss.png", "png")
    notes = [f"metric {ac['metric']}, {ac['reduce']} over all models of a cell; std excludes "
             f"{ac['exclude_from_std']}; pooled: {head['pooled_conditions']}"]
    report_html({"OOD generalization": gen, "Loss before and after transfer": dom},
                {k: v for k, v in head.items() if not isinstance(v, dict)}, notes, out_plots / "report.html")
    return head


def write_curves(params: dict, curves_dir: str | Path, out_plots: str | Path) -> None:
    """One table per stage kind (``learning_curves_<kind>.json``): every epoch of every model, one series
    per pair and seed (``run``), for one DVC plot each instead of one per stage."""
    for kind, files in grid_files(params, curves_dir, ".json").items():
        rows = [{"stage": kind, **row} for f in files for row in read_json(f)]
        write_json(Path(out_plots) / f"learning_curves_{kind}.json", rows)
