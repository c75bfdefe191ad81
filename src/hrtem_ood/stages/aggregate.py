"""Stage ``aggregate``: the study's matrices (P, T, PG, TG, shift), bar plots of chosen pairs, the DVC plot
tables, ``ood.json`` headline metrics, static figures, the offline report and the learning curves."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hrtem_ood.dataio.io import read_json
from hrtem_ood.results.report import read_curves, write_aggregate, write_curves
from hrtem_ood.results.results_io import grid_result_files, grid_timing_files, read_results, read_timing
from hrtem_ood.stages import entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def aggregate(params: Params, args) -> None:
    files = [Path(f) for f in args.results] if args.results else \
        grid_result_files(params.pretrain.domains, args.results_dir)
    rows = [row for f in files for row in read_results(f)]
    curves = read_curves(params, args.curves_dir) if args.curves_dir else None
    timing = read_timing(grid_timing_files(params.pretrain.domains, args.timing_dir)) if args.timing_dir else None
    match = read_json(args.match) if args.match else None
    spectra = read_json(args.spectra) if args.spectra else None
    head = write_aggregate(params, rows, args.out_metrics, args.out_plots, curves=curves, examples_png=args.examples,
                           match=match, spectra=spectra, timing=timing, overlays_png=args.overlays)
    if curves is not None:
        write_curves(curves, args.out_plots)
    print(json.dumps({k: v for k, v in head.items() if not isinstance(v, dict)}, indent=1))


def _options(ap) -> None:
    ap.add_argument("--results-dir", default="metrics/results", help="folder of the grid's results tables")
    ap.add_argument("--results", nargs="*", default=None,
                    help="long-form results tables (CSV/JSON/Parquet) instead of the grid's, e.g. made elsewhere")
    ap.add_argument("--curves-dir", default=None, help="folder of the learning curves (none: no curve tables)")
    ap.add_argument("--timing-dir", default=None,
                    help="folder of the timing tables (training seconds per model; none: no timing outputs)")
    ap.add_argument("--examples", default=None, help="the example montage (PNG) shown in the report")
    ap.add_argument("--overlays", default=None, help="the segmentation overlays (PNG) shown in the report")
    ap.add_argument("--match", default=None, help="the match stage's metrics (JSON): the report's model chooser")
    ap.add_argument("--spectra", default=None, help="the match stage's power spectra table (JSON)")


main = entry("aggregate", __doc__, aggregate,
             {"--out-metrics": "folder of ood.json", "--out-plots": "folder of the plot tables, figures and report"},
             _options)


if __name__ == "__main__":
    sys.exit(main())
