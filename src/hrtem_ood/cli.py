"""Command line: ``hrtem-ood <stage> ...``. Parses arguments, reads params, calls :mod:`stages`."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time


def _params(path: str) -> dict:
    from .params import load_params

    return load_params(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hrtem-ood", description=__doc__)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("validate", help="check params.yaml and exit")
    s = sub.add_parser("pairs", help="print (or --write into params) every (pretrain, target) transfer pair")
    s.add_argument("--write", action="store_true")

    s = sub.add_parser("structures", help="random nanoparticle-on-carbon scenes")
    s.add_argument("--out", default="data/structures")

    s = sub.add_parser("simulate", help="multislice exit waves, labels, zero-defocus calibration")
    s.add_argument("--structures", default="data/structures")
    s.add_argument("--out", default="data/exitwaves")

    s = sub.add_parser("image", help="one imaging domain: CTF, focal spread, dose")
    s.add_argument("--domain", required=True)
    s.add_argument("--exitwaves", default="data/exitwaves")
    s.add_argument("--out", default=None, help="default: data/domains/<domain>")

    s = sub.add_parser("examples", help="montage of one scene across all domains")
    s.add_argument("--domains-dir", default="data/domains")
    s.add_argument("--out", default="plots/examples.png")

    s = sub.add_parser("pretrain", help="train one U-Net per seed on a domain, evaluate on every domain")
    s.add_argument("--domain", required=True)
    s.add_argument("--domains-dir", default="data/domains")

    s = sub.add_parser("transfer", help="transfer the pretrained U-Nets of a pair, evaluate on every domain")
    s.add_argument("--pair", required=True, help="a key of transfer.pairs, e.g. dfm10-to-dfp10")
    s.add_argument("--domains-dir", default="data/domains")

    s = sub.add_parser("aggregate", help="loss matrices, OOD std and shift, plots and headline metrics")
    s.add_argument("--results", nargs="*", default=None,
                   help="long-form results tables (JSON/CSV/Parquet); default: the current grid's tables")
    s.add_argument("--out-metrics", default="metrics")
    s.add_argument("--out-plots", default="plots")

    s = sub.add_parser("compare", help="pool the results of several dvc experiments into one aggregate")
    s.add_argument("exps", nargs="*", help="experiment names or revs (default: all experiments)")
    s.add_argument("--out-metrics", default="metrics/compare")
    s.add_argument("--out-plots", default="plots/compare")

    s = sub.add_parser("ctf-overlap", help="does the CTF overlap of two domains predict the OOD gap after pretraining?")
    s.add_argument("--exitwaves", default="data/exitwaves")
    s.add_argument("--q-max", type=float, default=0.5, help="highest spatial frequency compared, 1/A (default 0.5)")
    s.add_argument("--out", default=None, help="also write the table and correlation as JSON")

    s = sub.add_parser("vs-study", help="rank correlations of this run's matrices with the study's published ones")
    s.add_argument("--results", nargs="*", help="results tables (default: those of the grid that exist)")
    s.add_argument("--out", default=None, help="also write the correlations as JSON")

    s = sub.add_parser("ingest", help="bring experimental micrographs in as a domain")
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", default=None, help="default: data/domains/<dataset>")

    s = sub.add_parser("preset", help="print the `-S key=value` overrides of a preset for `dvc exp run`")
    s.add_argument("name")

    args = ap.parse_args(argv)
    from . import stages
    from .params import ParamsError

    try:
        if args.cmd == "preset":
            print(" ".join(stages.preset_overrides(args.name)))
            return 0
        params = _params(args.params)
        if args.cmd == "validate":
            from .params import validate

            validate(params)
            print(f"{args.params}: ok")
        elif args.cmd == "pairs":
            stages.run_pairs(params, args.params, write=args.write)
        elif args.cmd == "structures":
            stages.run_structures(params, args.out)
        elif args.cmd == "simulate":
            stages.run_simulate(params, args.structures, args.out)
        elif args.cmd == "image":
            stages.run_image(params, args.domain, args.exitwaves, args.out or f"data/domains/{args.domain}")
        elif args.cmd == "examples":
            stages.run_examples(params, args.domains_dir, args.out)
        elif args.cmd == "pretrain":
            stages.run_pretrain(params, args.domain, args.domains_dir)
        elif args.cmd == "transfer":
            stages.run_transfer(params, args.pair, args.domains_dir)
        elif args.cmd == "aggregate":
            stages.run_aggregate(params, args.results, args.out_metrics, args.out_plots)
        elif args.cmd == "compare":
            stages.run_compare(params, args.exps, args.out_metrics, args.out_plots)
        elif args.cmd == "ctf-overlap":
            stages.run_ctf_overlap(params, args.exitwaves, args.q_max, args.out)
        elif args.cmd == "vs-study":
            stages.run_vs_study(params, args.results, args.out)
        elif args.cmd == "ingest":
            stages.run_ingest(params, args.dataset, args.out or f"data/domains/{args.dataset}")
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        print(f"hrtem-ood {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
