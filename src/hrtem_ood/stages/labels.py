"""Stage ``labels@<dataset>``: how many images to label. For an ingested dataset with masks, models are trained
on every tile of its first n labelled train micrographs (``labels.n_micrographs``), starting from the best and
the worst pretrained model (by zero-shot loss on the dataset's val split, never its test split) and from
scratch, and evaluated on the test split of every domain. Writes the models, the results table, the learning
curves, a summary (``metrics/labels/<dataset>.json``: Dice, IoU and paper_loss per start and n), its DVC plot
table and a figure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.params import fail, suggest
from hrtem_ood.config.schema import grid_values
from hrtem_ood.dataio.datasets import read_h5
from hrtem_ood.dataio.io import write_json
from hrtem_ood.execution.grid import condition_tag, label_jobs, train_and_write
from hrtem_ood.results.aggregation import label_table
from hrtem_ood.results.plots import labels_chart, render
from hrtem_ood.results.results_io import read_results
from hrtem_ood.stages import TRAINING_ARGUMENTS, entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def zero_shot_val_losses(params: Params, dataset: str, domains_dir: str, init_dir: str) -> dict[str, float]:
    """Each pretraining domain's zero-shot paper_loss on the dataset's val split, median over seeds."""
    from hrtem_ood.learning.training import saved_model_loss

    tag = condition_tag({"lr_pretrain": grid_values(params.pretrain.lr)[0]})
    return {d: round(float(np.median([saved_model_loss(Path(init_dir) / d / tag / f"seed{s}.pt", params.model,
                                                       domains_dir, dataset, "val", params.train.threads)
                                      for s in params.train.seeds])), 6)
            for d in params.pretrain.domains}


def labels(params: Params, args) -> None:
    ds = args.dataset
    if ds not in params.labels.datasets:
        fail(params, "labels.datasets", f"{ds!r} is not listed{suggest(ds, params.labels.datasets)}")
    val = zero_shot_val_losses(params, ds, args.domains_dir, args.init)
    starts = {"best": min(val, key=val.get), "worst": max(val, key=val.get), "scratch": None}
    starts = {k: starts[k] for k in params.labels.starts}
    sources = read_h5(Path(args.domains_dir) / ds / "train.h5", ("source_index",))[0]["source_index"]
    jobs = label_jobs(params, ds, args.domains_dir, args.init, starts, len(set(sources.tolist())))
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out, args.timing_out)
    table = label_table(read_results(args.results_out), ds, starts)  # median over seeds
    write_json(args.summary_out, {"dataset": ds, "starts": starts, "zero_shot_val_paper_loss": val,
                                  "epochs": params.labels.epochs, "seeds": params.train.seeds,
                                  "test_split": table})
    write_json(args.plot_out, table)
    render(labels_chart(table, ds), args.figure_out, "png")
    for r in table:
        print(f"{ds}: {r['start']:>7} ({r['pretrain_domain']}), {r['n_micrographs']:>2} micrographs: "
              f"Dice {r['dice']:.4f}, IoU {r['iou']:.4f}")


main = entry("labels", __doc__, labels,
             {"--dataset": "a dataset of labels.datasets",
              "--init": "folder of the pretrained models (models/pretrain)",
              **TRAINING_ARGUMENTS, "--summary-out": "summary (JSON)", "--plot-out": "DVC plot table (JSON)",
              "--figure-out": "figure (PNG)"})


if __name__ == "__main__":
    sys.exit(main())
