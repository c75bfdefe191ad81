"""Stage ``ready@<dataset>``: the model a fresh clone can use at once. Of the label-count study's models of an
ingested dataset, the one with the lowest validation loss (its best epoch's, on the dataset's val split; the
test split plays no part) is exported as a ``torch.export`` program with its model card
(``models/ready/<dataset>.pt2`` and ``.json``, committed to git), for ``hrtem-ood predict`` and for use without
this package. ``dvc.yaml`` runs it with ``PYTHONHASHSEED=0``: torch.export orders the program's shape constraints
by string hash, so only a fixed hash seed gives the same bytes from run to run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hrtem_ood.config.params import fail
from hrtem_ood.dataio.io import read_json
from hrtem_ood.stages import entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def lowest_val_loss(curves: list[dict]) -> tuple[str, float]:
    """The run whose best epoch has the lowest validation loss, and that loss (ties: the first run by name)."""
    best: dict[str, float] = {}
    for c in curves:
        best[c["run"]] = min(best.get(c["run"], float("inf")), float(c["val_loss"]))
    run = min(sorted(best), key=best.get)
    return run, best[run]


def ready(params: Params, args) -> None:
    from hrtem_ood.learning.export import export_model
    from hrtem_ood.learning.predict import load_model

    if args.dataset not in params.labels.datasets:
        fail(params, "labels.datasets", f"{args.dataset!r} is not listed, so it has no label-count models")
    run, loss = lowest_val_loss(read_json(args.curves))
    _, _, tag, seed = run.split(":")
    path = Path(args.models) / tag / f"seed{seed.removeprefix('s')}.pt"
    model = load_model(path, params.simulate.output_sampling_A)
    card = export_model(model, args.out, args.results_dir,
                        selection={"rule": "lowest validation loss (best epoch, paper_loss on the val split) among "
                                           f"the label-count study's models of {args.dataset}",
                                   "run": run, "val_paper_loss": loss})
    test = card["ood_row"].get(args.dataset, {})
    print(f"{args.out}: {run}, val paper_loss {loss:.4f}; on the {args.dataset} test split Dice "
          f"{test.get('dice', float('nan')):.4f}, IoU {test.get('iou', float('nan')):.4f}")


main = entry("ready", __doc__, ready,
             {"--dataset": "a dataset of labels.datasets",
              "--models": "its label-count models (models/labels/<dataset>)",
              "--curves": "their learning curves (JSON)", "--results-dir": "results tables, for the card's OOD row",
              "--out": "the exported model (models/ready/<dataset>.pt2; its card beside it)"})


if __name__ == "__main__":
    sys.exit(main())
