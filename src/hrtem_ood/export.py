"""Export a trained model for use without this package: TorchScript, with a model card in JSON beside it.

The card says what the model expects and where it comes from: the sampling (A/px) and normalisation of its
input, its output classes, the domain and conditions it was trained on, the numerics, and its row of the
OOD matrix (its loss, Dice and IoU on every domain's test split, from the pipeline's results tables).
``torch.jit.load(path)`` then segments a standardized micrograph at that sampling; ``hrtem-ood predict``
takes the file too. Torch only (no abTEM).
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from .predict import NORMALISATION, LoadedModel, PredictError, card_path


def run_name(card: dict) -> str:
    """The results tables' ``run`` of a pipeline model (hrtem_ood.training.train_one_model names it)."""
    p, t, tag, seed = card["pretrain_domain"], card["target_domain"], card["condition"], card["seed"]
    return f"transfer:{p}->{t}:{tag}:s{seed}" if card["stage"] == "transfer" else f"pretrain:{p}:{tag}:s{seed}"


def ood_row(card: dict, results_dir: str | Path) -> dict[str, dict[str, float]]:
    """The model's metrics on every evaluated domain ({} when its results table is not there)."""
    kind = "transfer" if card["stage"] == "transfer" else "pretrain"
    table = Path(results_dir) / kind / f"{card['pretrain_domain']}.csv"
    if not table.is_file():
        return {}
    out: dict[str, dict[str, float]] = {}
    with open(table, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["run"] == run_name(card):
                out.setdefault(row["eval_domain"], {})[row["metric"]] = float(row["value"])
    return out


def export_model(model: LoadedModel, out: str | Path, results_dir: str | Path = "metrics/results",
                 example_px: int = 256) -> dict:
    """Write ``out`` (TorchScript, traced on a ``example_px`` tile) and its card ``<out>.json``, each atomically.
    Returns the card."""
    from .io import atomic_path, write_json

    out = Path(out)
    if out.suffix != ".pt":
        raise PredictError(f"{out}: name the exported model <name>.pt (its card goes to <name>.json)")
    net = model.net.eval().float().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.zeros(1, 1, example_px, example_px), check_trace=False)
    card = {
        "format": "torchscript",
        "input": {"shape": "N x 1 x H x W, H and W multiples of 32", "dtype": "float32",
                  "sampling_A": model.sampling_A, "normalisation": NORMALISATION},
        "output": {"shape": "N x 2 x H x W logits", "classes": ["background", "particle"],
                   "mask": "softmax over the classes, particle probability > 0.5"},
        "trained": {k: model.card.get(k) for k in ("stage", "pretrain_domain", "target_domain", "condition", "seed",
                                                   "epoch", "numerics")},
        "source": str(model.path),
        "ood_row": ood_row(model.card, results_dir) if model.card.get("stage") else {},
    }
    with atomic_path(out) as tmp:
        traced.save(str(tmp))
    write_json(card_path(out), card)
    return card
