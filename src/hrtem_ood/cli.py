"""Command line: ``hrtem-ood [--params FILE] <command> ...``.

Pipeline stages (``structures``, ``simulate``, ``image``, ``ingest``, ``examples``, ``pretrain``,
``transfer``, ``aggregate``) are handed to their module in :mod:`hrtem_ood.stages`; the other commands
(``validate``, ``schema``, ``preset``, ``compare``, ``ctf-overlap``, ``vs-study``) are parsed
here. A user error prints one line and exits with status 2; any other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time

STAGES = ("structures", "simulate", "image", "ingest", "examples", "pretrain", "transfer", "aggregate")
COMMANDS = {
    "validate": "check params.yaml completely (also the material and the timm encoder) and exit",
    "schema": "print the JSON Schema of params.yaml (--write: update params.schema.json)",
    "plots-template": "write the offline page `dvc plots show` fills (.dvc/plots_offline.html)",
    "preset": "print the `-S key=value` overrides of a preset for `dvc exp run`, or --apply it to params.yaml",
    "compare": "pool the results of several dvc experiments into one aggregate",
    "ctf-overlap": "does the CTF overlap of two domains predict the OOD gap after pretraining?",
    "vs-study": "rank correlations of this run's matrices with the study's published ones",
}


def _command_parser(cmd: str) -> argparse.ArgumentParser:
    s = argparse.ArgumentParser(prog=f"hrtem-ood {cmd}", description=COMMANDS[cmd])
    if cmd == "schema":
        s.add_argument("--write", action="store_true")
    elif cmd == "preset":
        s.add_argument("name")
        s.add_argument("--apply", action="store_true", help="rewrite params.yaml with the preset applied")
    elif cmd == "compare":
        s.add_argument("exps", nargs="*", help="experiment names (default: all experiments)")
        s.add_argument("--out-metrics", default="metrics/compare")
        s.add_argument("--out-plots", default="plots/compare")
    elif cmd == "ctf-overlap":
        s.add_argument("--exitwaves", default="data/exitwaves")
        s.add_argument("--results-dir", default="metrics/results")
        s.add_argument("--q-max", type=float, default=0.5, help="highest spatial frequency compared, 1/A")
        s.add_argument("--out", default=None, help="also write the table and correlation as JSON")
    elif cmd == "vs-study":
        s.add_argument("--results", nargs="*", help="results tables (default: those of the grid that exist)")
        s.add_argument("--out", default=None, help="also write the correlations as JSON")
    return s


def _run_command(cmd: str, params_path: str, args: argparse.Namespace) -> None:
    from . import analysis, presets
    from .io import write_text
    from .params import SCHEMA_FILE, load_params, schema_text, validate

    if cmd == "preset":
        if args.apply:
            presets.apply_preset(args.name)
        else:
            print(" ".join(presets.preset_overrides(args.name)))
        return
    if cmd == "plots-template":
        from .plots import OFFLINE_TEMPLATE, offline_plots_template

        write_text(OFFLINE_TEMPLATE, offline_plots_template())
        print(f"wrote {OFFLINE_TEMPLATE}")
        return
    if cmd == "schema":
        if args.write:
            write_text(SCHEMA_FILE, schema_text())
        else:
            print(schema_text(), end="")
        return
    params = load_params(params_path)
    validate(params)
    if cmd == "validate":
        from .model import check_encoder
        from .structures import check_material

        check_material(params)
        check_encoder(params)
        print(f"{params_path}: ok")
    elif cmd == "compare":
        analysis.run_compare(params, args.exps, args.out_metrics, args.out_plots)
    elif cmd == "ctf-overlap":
        analysis.run_ctf_overlap(params, args.exitwaves, args.q_max, args.out, args.results_dir)
    elif cmd == "vs-study":
        analysis.run_vs_study(params, args.results, args.out)


def main(argv: list[str] | None = None) -> int:
    listing = "\n".join(f"  {c:<12} pipeline stage (see `hrtem-ood {c} -h`)" for c in STAGES)
    listing += "\n" + "\n".join(f"  {c:<12} {h}" for c, h in COMMANDS.items())
    ap = argparse.ArgumentParser(prog="hrtem-ood", description=__doc__, epilog="commands:\n" + listing,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("cmd", choices=STAGES + tuple(COMMANDS), metavar="command")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    top = ap.parse_args(argv)
    if top.cmd in STAGES:
        stage = importlib.import_module(f"hrtem_ood.stages.{top.cmd}")
        return stage.main(["--params", top.params, *top.args])
    from .errors import run_guarded

    args = _command_parser(top.cmd).parse_args(top.args)
    return run_guarded(f"hrtem-ood {top.cmd}", lambda: _run_command(top.cmd, top.params, args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
