"""Export a trained model for use without this package: a ``torch.export`` program (``.pt2``, any batch and
any height and width that are multiples of 32), with a model card in JSON beside it.

The card says what the model expects and where it comes from: the sampling (A/px) and normalisation of its
input, its output classes, the domain and conditions it was trained on, the numerics, and its row of the
OOD matrix (its loss, Dice and IoU on every domain's test split, from the pipeline's results tables).
``torch.export.load(path).module()`` then segments a standardized micrograph at that sampling (plain torch,
no model code needed); ``hrtem-ood predict`` takes the file too. Torch only (no abTEM).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from hrtem_ood.dataio.ingest import NORMALISATION
from hrtem_ood.learning.predict import LoadedModel, PredictError, card_path


def ood_row(card: dict, results_dir: str | Path) -> dict[str, dict[str, float]]:
    """The model's metrics on every evaluated domain ({} when its results table is not there)."""
    from hrtem_ood.execution.grid import run_name
    from hrtem_ood.results.results_io import read_results

    stage = card["stage"]
    table = Path(results_dir) / stage / f"{card['target_domain' if stage == 'labels' else 'pretrain_domain']}.csv"
    if not table.is_file():
        return {}
    run = run_name(stage, card["pretrain_domain"], card["target_domain"], card["condition"], card["seed"])
    out: dict[str, dict[str, float]] = {}
    for row in read_results(table):
        if row["run"] == run:
            out.setdefault(row["eval_domain"], {})[row["metric"]] = row["value"]
    return out


def export_model(model: LoadedModel, out: str | Path, results_dir: str | Path = "metrics/results",
                 selection: dict | None = None) -> dict:
    """Write ``out`` (``torch.export`` with a dynamic batch, height and width) and its card ``<out>.json``, each
    atomically; ``selection`` (how the model was chosen) goes into the card. Returns the card."""
    from hrtem_ood.dataio.io import atomic_path, write_json

    out = Path(out)
    if out.suffix != ".pt2":
        raise PredictError(f"{out}: name the exported model <name>.pt2 (its card goes to <name>.json)")
    net = model.net.eval().float().to(memory_format=torch.contiguous_format)
    h, w = torch.export.Dim("h", min=2, max=1024), torch.export.Dim("w", min=2, max=1024)
    dims = {"x": {0: torch.export.Dim("batch", min=1, max=4096), 2: 32 * h, 3: 32 * w}}
    with torch.no_grad():
        program = torch.export.export(net, (torch.zeros(2, 1, 256, 256),), dynamic_shapes=dims)
    for node in program.graph.nodes:  # source-file paths of the checkout: the bytes would depend on where it lies
        node.meta.pop("stack_trace", None)
    card = {
        "format": "torch.export (load with torch.export.load(path).module())",
        "input": {"shape": "N x 1 x H x W, H and W multiples of 32 up to 32768", "dtype": "float32",
                  "sampling_A": model.sampling_A, "normalisation": NORMALISATION},
        "output": {"shape": "N x 2 x H x W logits", "classes": ["background", "particle"],
                   "mask": "softmax over the classes, particle probability > 0.5"},
        "trained": {k: model.card.get(k) for k in ("stage", "pretrain_domain", "target_domain", "condition", "seed",
                                                   "epoch", "numerics")},
        "source": str(model.path),
        "ood_row": ood_row(model.card, results_dir) if model.card.get("stage") else {},
        **({"selection": selection} if selection else {}),
    }
    buf = io.BytesIO()  # saved to memory first: torch.export wants a file name ending in .pt2, or a buffer
    torch.export.save(program, buf)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.getvalue())
    write_json(card_path(out), card)
    return card
