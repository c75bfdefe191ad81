"""One module per ``dvc.yaml`` stage, named as the stage.

Each is thin: parse its command line, read and validate ``params.yaml``, call the science modules,
write its outputs atomically to the paths its ``dvc.yaml`` command names (no output path is built in
code). ``dvc.yaml`` runs ``python -m hrtem_ood.stages.<stage> ...``; ``hrtem-ood <stage> ...`` is the
same. Each stage's ``deps`` list exactly the modules it imports (``tests/test_dependencies.py``).
"""

from __future__ import annotations

import argparse

#: The data and output arguments shared by the pretrain and transfer stages.
TRAINING_ARGUMENTS = {"--domains-dir": "folder of the domain datasets",
                      "--models-out": "folder of the best models, one file per seed",
                      "--results-out": "results table (CSV)", "--curves-out": "learning curves (JSON)",
                      "--timing-out": "timing table (CSV): each model's training seconds"}


def entry(stage: str, doc: str | None, body, required: dict[str, str], more=None):
    """The ``main(argv)`` of a stage: ``required`` maps each required option to its help, ``more(ap)`` adds
    any other; ``body(params, args)`` runs once params validate. A user error is one line on stderr and
    exit status 2, and nothing is written before params validate."""

    def main(argv: list[str] | None = None) -> int:
        from hrtem_ood.config.params import load_params, validate
        from hrtem_ood.errors import run_guarded

        ap = argparse.ArgumentParser(prog=f"hrtem-ood {stage}", description=doc)
        ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        for flag, text in required.items():
            ap.add_argument(flag, required=True, help=text)
        if more is not None:
            more(ap)
        args = ap.parse_args(argv)
        return run_guarded(ap.prog, lambda: body(validate(load_params(args.params)), args))

    return main
