"""Command line: ``hrtem-ood [--params FILE] <command> ...``.

Pipeline stages (``structures``, ``simulate``, ``image``, ``ingest``, ``examples``, ``pretrain``,
``transfer``, ``aggregate``) are handed to their module in :mod:`hrtem_ood.stages`; the other commands
(``validate``, ``schema``, ``preset``, ``compare``, ``ctf-overlap``, ``vs-study``, ``predict``, ``export``,
``pixel-size``, ``conditions``, ``recommend``, ``remote-check``) are parsed
here. A user error prints one line and exits with status 2; any other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time

STAGES = ("structures", "simulate", "image", "ingest", "examples", "pretrain", "transfer", "overlays", "aggregate")
COMMANDS = {
    "validate": "check params.yaml completely (also the material and the timm encoder) and exit",
    "schema": "print the JSON Schema of params.yaml (--write: update params.schema.json)",
    "plots-template": "write the offline page `dvc plots show` fills (.dvc/plots_offline.html)",
    "preset": "print the `-S key=value` overrides of a preset for `dvc exp run`, or --apply it to params.yaml",
    "compare": "pool the results of several dvc experiments into one aggregate",
    "ctf-overlap": "does the CTF overlap of two domains predict the OOD gap after pretraining?",
    "vs-study": "rank correlations of this run's matrices with the study's published ones",
    "predict": "segment micrographs with a trained model: masks, probability maps, overlays, a particle size table",
    "export": "save a trained model as a torch.export program with a model card, for use without this package",
    "pixel-size": "estimate the pixel size of micrographs from their particles' lattice fringes",
    "conditions": "estimate micrographs' defocus from their Thon rings (--add-domain: a matching domain in params)",
    "recommend": "which of the run's models suits these micrographs: placed by their defocus among the domains",
    "remote-check": "check a DVC ssh:// remote before pushing: host key against known_hosts, login, writable folder",
}


def _model_arguments(s: argparse.ArgumentParser) -> None:
    """Which model: a file (``--model``), or the pipeline's model of a domain (and transfer target)."""
    s.add_argument("--model", help="a model file: the pipeline's (models/...) or an exported one; default: the one "
                                   "ready model the repository ships (models/ready/*.pt2)")
    s.add_argument("--domain", help="the pipeline's model pretrained on this domain (models/pretrain/<domain>)")
    s.add_argument("--target", help="with --domain: its transfer to this domain (models/transfer/<domain>/<target>)")
    s.add_argument("--condition", help="with --domain: the condition folder (lrp0.004, ...), if there are several")
    s.add_argument("--seed", type=int, default=0, help="with --domain: the seed (default 0)")
    s.add_argument("--models-dir", default="models", help="the pipeline's models folder (default: models)")


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
    elif cmd == "predict":
        s.add_argument("inputs", nargs="+", help="micrographs, or folders of them (any format ingest reads)")
        _model_arguments(s)
        s.add_argument("--out", required=True, help="a new folder for the masks, maps, overlays and tables")
        s.add_argument("--pixel-size-A", type=float, default=None, help="for files that carry no pixel size (A)")
        s.add_argument("--tile-px", type=int, default=256, help="tile size at the model's sampling (default 256)")
        s.add_argument("--overlap-px", type=int, default=64, help="overlap of neighbouring tiles (default 64)")
        s.add_argument("--min-diameter-nm", type=float, default=0.5,
                       help="leave out connected specks smaller than this equivalent diameter (default 0.5; 0 = none)")
    elif cmd == "export":
        _model_arguments(s)
        s.add_argument("--out", required=True, help="the exported model, <name>.pt2 (its card: <name>.json)")
        s.add_argument("--results-dir", default="metrics/results", help="results tables for the card's OOD row")
    elif cmd == "pixel-size":
        s.add_argument("inputs", nargs="+", help="micrographs, or folders of them (any format ingest reads)")
        s.add_argument("--d-spacing-A", type=float, default=None,
                       help="the lattice plane spacing the fringes show (A); default: the {111} planes of the fcc "
                            "metals Pd, Pt, Au and Ag (2.246-2.359 A), reported as a range")
        s.add_argument("--min-ratio", type=float, default=8.0,
                       help="a spot counts when it stands this many times above the radial average (default 8)")
    elif cmd == "remote-check":
        s.add_argument("name", nargs="?", default=None, help="the DVC remote (default: the default remote)")
    elif cmd in ("conditions", "recommend"):
        _microscope_arguments(s)
        if cmd == "conditions":
            s.add_argument("--add-domain", metavar="NAME", help="write a domain of this name whose imaging conditions "
                                                                "match the estimate into the params file")
            s.add_argument("--sign", choices=("underfocus", "overfocus"),
                           help="with --add-domain: which candidate, when the estimate leaves the sign open (Cs = 0)")
            s.add_argument("--pretrain", action="store_true", help="with --add-domain: also pretrain on it")
        else:
            s.add_argument("--results-dir", default="metrics/results", help="the run's results tables")
    return s


def _microscope_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("inputs", nargs="+", help="micrographs, or folders of them (any format ingest reads)")
    s.add_argument("--pixel-size-A", type=float, default=None, help="for files that record no pixel size (A)")
    s.add_argument("--energy-keV", type=float, default=None, help="for files that record no beam energy (keV)")
    s.add_argument("--cs-mm", type=float, default=None, help="for files that record no spherical aberration (mm)")
    s.add_argument("--support-thickness-nm", type=float, default=10.0,
                   help="thickness of the amorphous support (default 10, the simulated default's)")
    s.add_argument("--max-defocus-nm", type=float, default=500.0, help="highest defocus considered (default 500)")
    s.add_argument("--q-range", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                   help="fitted frequencies in 1/A (default: 1/15 to 80%% of Nyquist)")
    s.add_argument("--match", default="metrics/match.json", help="the match stage's output (its calibrated offset)")


def _conditions(params_path: str, args: argparse.Namespace, report: bool = True) -> dict:
    """Estimate, print each micrograph's fit and the set's defocus at the support and at the particle plane."""
    from hrtem_ood.matching import microscope as mic
    from hrtem_ood.units import A_to_nm, focus_words

    micrographs, energy, cs = mic.load_micrographs(args.inputs, args.pixel_size_A, args.energy_keV, args.cs_mm)
    found = mic.conditions(micrographs, energy, cs, args.support_thickness_nm, args.max_defocus_nm,
                           mic.calibrated_offset_nm(args.match), tuple(args.q_range) if args.q_range else None)
    if report:
        for name, fit in found["fits"].items():
            nm = A_to_nm(fit.defocus_A)
            shown = f"{nm:.1f} nm" if not fit.sign_known else focus_words(nm)
            rings = "" if fit.rings_chi2 >= mic.thon.MIN_RINGS_CHI2 else ", no rings: left out"
            print(f"{name}: support defocus {shown} (rings {fit.rings_chi2:.0f}{rings})")
    support = (f"{found['support_nm']:.1f}" if not found["sign_known"] else focus_words(found["support_nm"]))
    print(f"support defocus {support} +- {found['uncertainty_nm']:.1f} nm ({found['n_with_rings']} of "
          f"{len(found['fits'])} micrographs, which spread by {found['sd_nm']:.1f} nm (robust SD); {energy:g} keV, "
          f"Cs {cs:g} mm)" + ("" if found["sign_known"] else "; sign undetermined (Cs = 0)"))
    print(f"at the domains' particle plane ({found['offset_nm']:.2f} nm above the support): "
          + " or ".join(focus_words(c) for c in found["candidates_nm"]))
    return found


def _recommend(params_path: str, args: argparse.Namespace) -> None:
    from hrtem_ood.config.params import load_params, validate
    from hrtem_ood.matching import microscope as mic
    from hrtem_ood.units import focus_words

    params = validate(load_params(params_path))
    found = _conditions(params_path, args, report=False)
    rec = mic.place_and_recommend(params, args.results_dir, found["candidates_nm"])
    lo, hi = rec["domains_nm"]
    span = f"the domains span {focus_words(lo)} to {focus_words(hi)}"
    if rec["outside"]:
        print(f"outside every domain ({span}): the matrices say nothing there; the model that generalizes best "
              f"overall is {rec['model']} (mean loss over the domains {rec['expected_loss']:.4f}; runner-up "
              f"{rec['runner_up']}, {rec['runner_up_expected_loss']:.4f}); `hrtem-ood conditions --add-domain` "
              "adds a domain that matches")
    else:
        print(f"recommended: {rec['model']} (expected loss {rec['expected_loss']:.4f}); runner-up "
              f"{rec['runner_up']} ({rec['runner_up_expected_loss']:.4f}); {span}")


def _pixel_size(args: argparse.Namespace) -> None:
    """Print each micrograph's strongest lattice spot and the pixel size the median fringe period implies."""
    from hrtem_ood.dataio.ingest import micrograph_files, read_image
    from hrtem_ood.errors import UserError
    from hrtem_ood.physics.fringes import FCC_111_A, fringe_period, pixel_size_A

    files = micrograph_files(args.inputs)
    images = [read_image(f)[0] for f in files]
    for f, im in zip(files, images, strict=True):
        if im.shape[0] != im.shape[1]:
            raise UserError(f"{f}: the fringe search needs a square micrograph; crop it to a square first")
    found = fringe_period(images, min_ratio=args.min_ratio)
    for spot in found.get("per_image", []):
        print(f"{files[spot['index']].name}: fringes every {spot['period_px']:.3f} px at {spot['angle_deg']:.0f} deg, "
              f"{spot['ratio']:.0f} x the background")
    if found["period_px"] is None:
        raise UserError(f"no lattice fringes found in {len(files)} micrograph(s) (none stands {args.min_ratio:g} x "
                        "above the background); the pixel size cannot be estimated from them")
    period = found["period_px"]
    print(f"median fringe period {period:.3f} px ({found['n_with_fringes']} of {found['n_images']} micrographs; "
          f"half IQR {found['period_half_iqr_px']:.3f} px)")
    if args.d_spacing_A:
        print(f"pixel size {pixel_size_A(period, args.d_spacing_A):.4f} A for d = {args.d_spacing_A:g} A")
    else:
        sizes = {m: pixel_size_A(period, d) for m, d in FCC_111_A.items()}
        print("pixel size for fcc {111} fringes: " + ", ".join(f"{m} {v:.3f} A" for m, v in sizes.items())
              + f"; middle {(min(sizes.values()) + max(sizes.values())) / 2:.3f} A")


def _chosen_model(params_path: str, args: argparse.Namespace):
    """The model ``--model`` or ``--domain`` (and ``--target``, ``--condition``, ``--seed``) names, loaded; a
    pipeline model takes its sampling from the params file."""
    from hrtem_ood.learning.predict import PredictError, find_model, load_model

    if args.model is not None and args.domain is not None:
        raise PredictError("name the model with either --model PATH or --domain DOMAIN [--target DOMAIN], not both")
    params = None
    if Path(params_path).is_file():
        from hrtem_ood.config.params import load_params, validate

        params = validate(load_params(params_path))
    if args.model is None and args.domain is None:  # the ready model of the one dataset of labels.datasets
        ready_dir = Path(args.models_dir) / "ready"
        if params is not None:
            ready = [ready_dir / f"{d}.pt2" for d in params.labels.datasets if (ready_dir / f"{d}.pt2").is_file()]
        else:
            ready = sorted(ready_dir.glob("*.pt2"))
        if len(ready) != 1:
            raise PredictError(f"{ready_dir}: {len(ready)} ready models of the datasets in labels.datasets; name the "
                               "model with --model PATH or --domain DOMAIN [--target DOMAIN]")
        args.model = str(ready[0])
    path = Path(args.model) if args.model else find_model(args.models_dir, args.domain, args.target,
                                                           args.condition, args.seed)
    return load_model(path, None if params is None else params.simulate.output_sampling_A)


def _run_command(cmd: str, params_path: str, args: argparse.Namespace) -> None:
    from hrtem_ood.config import presets
    from hrtem_ood.config.params import load_params, validate
    from hrtem_ood.config.schema import SCHEMA_FILE, schema_text
    from hrtem_ood.dataio.io import write_text
    from hrtem_ood.results import analysis

    if cmd == "preset":
        if args.apply:
            presets.apply_preset(args.name)
        else:
            print(" ".join(presets.preset_overrides(args.name)))
        return
    if cmd == "plots-template":
        from hrtem_ood.results.plots import OFFLINE_TEMPLATE, offline_plots_template

        write_text(OFFLINE_TEMPLATE, offline_plots_template())
        print(f"wrote {OFFLINE_TEMPLATE}")
        return
    if cmd == "schema":
        if args.write:
            write_text(SCHEMA_FILE, schema_text())
        else:
            print(schema_text(), end="")
        return
    if cmd == "pixel-size":
        _pixel_size(args)
        return
    if cmd == "recommend":
        _recommend(params_path, args)
        return
    if cmd == "remote-check":
        from hrtem_ood.dataio.remote import check_remote

        print(check_remote(".", args.name))
        return
    if cmd == "conditions":
        found = _conditions(params_path, args)
        if args.add_domain:
            from hrtem_ood.config.params import load_params, validate
            from hrtem_ood.config.params_file import edit_params_file
            from hrtem_ood.matching.microscope import matched_domain

            changes = matched_domain(validate(load_params(params_path)), args.add_domain, found, args.sign,
                                     args.pretrain)
            edit_params_file(params_path, changes, replace={"pretrain.domains"} if args.pretrain else set())
            print(f"{params_path}: added domain {args.add_domain} ({changes['domains'][args.add_domain]})"
                  + (", pretrained on" if args.pretrain else "") + f"; now: dvc exp run -n {args.add_domain}")
        return
    if cmd == "predict":
        from hrtem_ood.learning.predict import run_predict

        summary = run_predict(args.inputs, _chosen_model(params_path, args), args.out, args.pixel_size_A,
                              args.tile_px, args.overlap_px, args.min_diameter_nm)
        n = summary["equivalent_diameter_nm"]["all"]
        print(f"{args.out}: {len(summary['particles_per_image'])} micrograph(s), {n['n']} particles"
              + (f", median equivalent diameter {n['p50']:.2f} nm" if n["n"] else ""))
        return
    if cmd == "export":
        from hrtem_ood.learning.export import export_model

        card = export_model(_chosen_model(params_path, args), args.out, args.results_dir)
        print(f"{args.out}: torch.export program, {card['input']['sampling_A']:g} A/px; card "
              f"{Path(args.out).with_suffix('.json')}")
        return
    params = validate(load_params(params_path))
    if cmd == "validate":
        from hrtem_ood.learning.model import check_encoder
        from hrtem_ood.physics.structures import check_material

        check_material(params)
        check_encoder(params.model, params.source)
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
    from hrtem_ood.errors import run_guarded

    args = _command_parser(top.cmd).parse_args(top.args)
    return run_guarded(f"hrtem-ood {top.cmd}", lambda: _run_command(top.cmd, top.params, args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
