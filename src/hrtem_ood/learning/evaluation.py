"""Losses and segmentation metrics. Torch only (no abTEM).

- ``ce``: cross-entropy on logits (the default training loss).
- ``softmax_ce``: cross-entropy applied to softmax *probabilities*, the study's (double-softmax) loss.
- ``paper_loss``: ``softmax_ce`` minus its minimum ln(1 + e^-1) = 0.3133, the study's reported units;
  0 for perfect, confident predictions. ``evaluate`` pools it over a split, ``pixel_paper_loss`` keeps it
  per pixel.
- ``dice`` and ``iou`` of the particle class, pooled over every pixel of a split.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

PAPER_LOSS_OFFSET = math.log1p(math.exp(-1.0))  # 0.31326...


def softmax_ce(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The study's double-softmax loss: cross-entropy applied to the softmax probabilities of ``logits``."""
    return F.cross_entropy(torch.softmax(logits, dim=1), target, reduction=reduction)


def training_loss(name: str):
    if name == "ce":
        return lambda logits, target: F.cross_entropy(logits, target)
    if name == "softmax_ce":
        return softmax_ce
    raise ValueError(f"train.loss: must be 'ce' or 'softmax_ce', got {name!r}")


def particle_class(logits: torch.Tensor) -> torch.Tensor:
    """The predicted class of each pixel of 2-class logits (B, 2, H, W) as a bool mask (B, H, W): particle where
    its logit is the larger. The same pixels as ``logits.argmax(1) == 1`` (a tie is background, argmax's first
    index), without argmax's slow reduction over a 2-long channel axis (16x faster on channels_last logits, 170x
    on contiguous ones, on one CPU thread: ``benchmarks/speed_levers.py``)."""
    return logits[:, 1] > logits[:, 0]


class MetricAccumulator:
    """Pixel sums over batches, so metrics of a whole split do not depend on the batch size."""

    def __init__(self):
        self.n = 0
        self.ce = 0.0
        self.softmax_ce = 0.0
        self.tp = self.fp = self.fn = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        logits = logits.float()
        self.ce += float(F.cross_entropy(logits, target, reduction="sum"))
        self.softmax_ce += float(softmax_ce(logits, target, reduction="sum"))
        pred, true = particle_class(logits), target == 1
        self.tp += int((pred & true).sum())
        self.fp += int((pred & ~true).sum())
        self.fn += int((~pred & true).sum())
        self.n += target.numel()

    def result(self) -> dict[str, float]:
        denom_d = 2 * self.tp + self.fp + self.fn
        denom_i = self.tp + self.fp + self.fn
        return {
            "ce": self.ce / self.n,
            "paper_loss": self.softmax_ce / self.n - PAPER_LOSS_OFFSET,
            "dice": 2 * self.tp / denom_d if denom_d else 1.0,
            "iou": self.tp / denom_i if denom_i else 1.0,
        }


def standardize(images: np.ndarray) -> np.ndarray:
    """Per-image standardization: mean 0, variance 1 (constant images become 0)."""
    images = np.asarray(images, dtype=np.float32)
    mean = images.mean(axis=(-2, -1), keepdims=True)
    std = images.std(axis=(-2, -1), keepdims=True)
    return ((images - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def model_input(split: dict) -> np.ndarray:
    """A loaded split's images as models see them: a simulated image is one micrograph, standardized here; the
    tiles of an ingested micrograph were standardized over their whole micrograph at ingest
    (``normalisation: micrograph``) and are used as they are, since standardizing each tile again would
    change them (tiles with little or much particle in them differ)."""
    if split["attrs"].get("normalisation") == "micrograph":
        return np.asarray(split["images"], dtype=np.float32)
    return standardize(split["images"])


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _whole_image_logits(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray | None, device: torch.device,
                        batch_size: int, memory_format: torch.memory_format
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(logits, target) of whole images in batches (target None without ``masks``); call it inside
    ``_eval_mode``."""
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size, None])).to(device)
        x = x.contiguous(memory_format=memory_format)
        y = None if masks is None else torch.from_numpy(np.ascontiguousarray(masks[i:i + batch_size])).long().to(device)
        yield model(x), y


def evaluate(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray, device: torch.device,
             batch_size: int = 8, memory_format: torch.memory_format = torch.contiguous_format) -> dict[str, float]:
    """Metrics of ``model`` on whole standardized images (N, H, W) with masks (N, H, W), in float32 (the
    batches in ``memory_format``, which should be the model's)."""
    acc = MetricAccumulator()
    with _eval_mode(model):
        for logits, y in _whole_image_logits(model, images, masks, device, batch_size, memory_format):
            acc.update(logits, y)
    return acc.result()


def predicted_masks(model: torch.nn.Module, images: np.ndarray, device: torch.device,
                    batch_size: int = 8) -> np.ndarray:
    """The particle mask ``model`` predicts for each whole standardized image (N, H, W), computed in float32: 1
    where the particle logit is the larger, as uint8."""
    out = []
    with _eval_mode(model):
        for logits, _ in _whole_image_logits(model, images, None, device, batch_size, torch.contiguous_format):
            out.append(particle_class(logits).cpu().numpy().astype(np.uint8))
    return np.concatenate(out) if out else np.zeros(images.shape, np.uint8)


def mask_dice(predicted: np.ndarray, label: np.ndarray) -> float:
    """Dice of one predicted particle mask against its label (1 when both are empty)."""
    p, t = predicted.astype(bool), label.astype(bool)
    total = int(p.sum() + t.sum())
    return 2.0 * int((p & t).sum()) / total if total else 1.0


def pixel_paper_loss(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray, device: torch.device,
                     batch_size: int = 8, memory_format: torch.memory_format = torch.contiguous_format
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel paper_loss (N, H, W) and predicted class of the images ``evaluate`` scores, whose mean
    is ``evaluate``'s paper_loss."""
    losses, preds = [], []
    with _eval_mode(model):
        for logits, y in _whole_image_logits(model, images, masks, device, batch_size, memory_format):
            logits = logits.float()
            losses.append(softmax_ce(logits, y, reduction="none") - PAPER_LOSS_OFFSET)
            preds.append(particle_class(logits).long())
    return torch.cat(losses).cpu().numpy(), torch.cat(preds).cpu().numpy()
