"""Where the in-domain loss lies: each pretraining model's per-pixel paper_loss on its own domain's test
split, split by the pixel's distance to the label's edge.

    python docs/scripts/edge_loss.py [MODELS_DIR] [DOMAINS_DIR] [SEED]

MODELS_DIR defaults to models/pretrain and DOMAINS_DIR to data/domains (the default's `dvc repro`);
SEED to 0. For every pretraining domain of params.yaml it loads `<domain>/<condition>/seed<SEED>.pt`
(the first condition in name order where `pretrain.lr` lists several),
evaluates it in float32 on whole test images as the stages do (hrtem_ood.learning.evaluation), and prints the
share of pixels and of the summed paper_loss within 1, 2, 3, 5 and 8 px (0.2 A each) of the edge, the
pixel error rate, and the loss beyond 5 px. Distances are Euclidean, to the nearest pixel of the other
class (scipy.ndimage.distance_transform_edt), so an edge pixel is at 1 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.config.schema import Model
from hrtem_ood.dataio.datasets import load_split
from hrtem_ood.learning.evaluation import pixel_paper_loss, standardize
from hrtem_ood.learning.model import build_model

ROOT = Path(__file__).resolve().parents[2]
RADII_PX = (1, 2, 3, 5, 8)


def edge_distance_px(masks: np.ndarray) -> np.ndarray:
    """Distance of every pixel of binary masks (N, H, W) to the nearest pixel of the other class."""
    return np.stack([distance_transform_edt(m) + distance_transform_edt(1 - m) for m in masks.astype(np.uint8)])


def edge_profile(loss: np.ndarray, pred: np.ndarray, masks: np.ndarray) -> dict:
    dist = edge_distance_px(masks)
    total = float(loss.sum())
    out = {"paper_loss": round(float(loss.mean()), 4), "mask_fraction": round(float(masks.mean()), 3),
           "pixel_error": round(float((pred != masks).mean()), 4),
           "loss_beyond_5px": round(float(loss[dist > 5].sum() / loss.size), 4)}
    for r in RADII_PX:
        near = dist <= r
        out[f"within_{r}px"] = (round(float(near.mean()), 3), round(float(loss[near].sum() / total), 2))
    return out


def main(models_dir: Path, domains_dir: Path, seed: int) -> None:
    torch.set_num_threads(1)
    params = validate(load_params(ROOT / "params.yaml"))
    head = " | ".join(f"≤ {r} px: pixels / loss" for r in RADII_PX)
    print(f"| model | paper_loss | mask fraction | pixel error | {head} | loss beyond 5 px |")
    print("|---" * (5 + len(RADII_PX)) + "|")
    for domain in params.pretrain.domains:
        files = sorted((models_dir / domain).glob(f"*/seed{seed}.pt"))
        if not files:
            sys.exit(f"edge_loss: no {models_dir / domain}/*/seed{seed}.pt; run the pretraining stages first")
        ckpt = torch.load(files[0], map_location="cpu", weights_only=True)
        model = build_model(Model.model_validate(ckpt["model"]), ckpt["seed"])
        model.load_state_dict(ckpt["state_dict"])
        split = load_split(domains_dir, domain, "test")
        loss, pred = pixel_paper_loss(model, standardize(split["images"]), split["masks"], torch.device("cpu"))
        p = edge_profile(loss, pred, split["masks"])
        cells = " | ".join(f"{p[f'within_{r}px'][0]:.3f} / {p[f'within_{r}px'][1]:.2f}" for r in RADII_PX)
        print(f"| {domain} | {p['paper_loss']:.4f} | {p['mask_fraction']:.3f} | {p['pixel_error']:.4f} | {cells} | "
              f"{p['loss_beyond_5px']:.4f} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else ROOT / "models/pretrain", Path(args[1]) if len(args) > 1 else ROOT / "data/domains",
         int(args[2]) if len(args) > 2 else 0)
