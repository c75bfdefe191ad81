"""How real micrographs are normalised, measured: every pretrained model of the run, zero-shot on the test split of
an ingested dataset, with each micrograph standardized as a whole (what ingest, training and `predict` do) and
with each 256-px tile standardized on its own.

    python docs/scripts/real_normalisation.py [DATASET]     # default real_segtrack; prints a Markdown table

Reads data/domains/<DATASET>/test.h5 and models/pretrain/ of a finished `dvc repro`. A tile standardized on its
own does not depend on how its micrograph was standardized before (both are affine), so the stored tiles give
both readings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.config.schema import Model
from hrtem_ood.dataio.datasets import load_split
from hrtem_ood.learning.evaluation import evaluate, model_input, standardize
from hrtem_ood.learning.model import build_model

ROOT = Path(__file__).resolve().parents[2]


def main(dataset: str = "real_segtrack") -> None:
    params = validate(load_params(ROOT / "params.yaml"))
    torch.set_num_threads(params.train.threads)
    split = load_split(ROOT / "data/domains", dataset, "test")
    whole, tile = model_input(split), standardize(split["images"])
    print("| pretrained on | Dice, per micrograph | Dice, per tile | paper_loss, per micrograph | per tile |")
    print("|---|---|---|---|---|")
    for domain in params.pretrain.domains:
        scores = {"whole": [], "tile": []}
        for path in sorted((ROOT / "models/pretrain" / domain).glob("*/seed*.pt")):
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = build_model(Model.model_validate(saved["model"]), 0)
            model.load_state_dict(saved["state_dict"])
            for key, images in (("whole", whole), ("tile", tile)):
                scores[key].append(evaluate(model, images, split["masks"], torch.device("cpu")))
        med = {k: {m: float(np.median([s[m] for s in v])) for m in ("dice", "paper_loss")} for k, v in scores.items()}
        print(f"| {domain} | {med['whole']['dice']:.3f} | {med['tile']['dice']:.3f} | "
              f"{med['whole']['paper_loss']:.4f} | {med['tile']['paper_loss']:.4f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
