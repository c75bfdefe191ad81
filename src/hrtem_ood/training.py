"""Training loop: random crops with 8-fold dihedral augmentation, Adam, x``lr_decay`` per epoch,
best epoch = lowest validation loss on the stage's own domain. Torch only (no abTEM)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .evaluation import evaluate, training_loss


def select_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(n: int) -> None:
    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) element of the dihedral group D4 acting on the last two axes."""
    x = np.rot90(x, k % 4, axes=(-2, -1))
    return x[..., ::-1] if k >= 4 else x


class CropBatches:
    """Epochs of random crops (``crops_per_image`` per image), shuffled, with random D4 transforms."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, crop_px: int, crops_per_image: int,
                 batch_size: int, augment: str, rng: np.random.Generator):
        n, h, w = images.shape
        if crop_px > min(h, w):
            raise ValueError(f"train.crop_px: {crop_px} px is larger than the images ({h} x {w} px)")
        self.images, self.masks = images, masks
        self.crop, self.k, self.bs, self.augment, self.rng = crop_px, crops_per_image, batch_size, augment, rng

    def steps_per_epoch(self) -> int:
        return int(np.ceil(len(self.images) * self.k / self.bs))

    def epoch(self):
        n, h, w = self.images.shape
        idx = self.rng.permutation(np.repeat(np.arange(n), self.k))
        for start in range(0, len(idx), self.bs):
            sel = idx[start:start + self.bs]
            ys = self.rng.integers(0, h - self.crop + 1, size=len(sel))
            xs = self.rng.integers(0, w - self.crop + 1, size=len(sel))
            ks = self.rng.integers(0, 8 if self.augment == "dihedral" else 1, size=len(sel))
            xb = np.empty((len(sel), 1, self.crop, self.crop), np.float32)
            yb = np.empty((len(sel), self.crop, self.crop), np.int64)
            for j, (i, y0, x0, k) in enumerate(zip(sel, ys, xs, ks, strict=True)):
                xb[j, 0] = dihedral(self.images[i, y0:y0 + self.crop, x0:x0 + self.crop], k)
                yb[j] = dihedral(self.masks[i, y0:y0 + self.crop, x0:x0 + self.crop], k)
            yield torch.from_numpy(xb), torch.from_numpy(yb)


@dataclass
class TrainResult:
    best_state: dict
    best_epoch: int
    best_val_loss: float
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0


def train(model: torch.nn.Module, train_images: np.ndarray, train_masks: np.ndarray, val_images: np.ndarray,
          val_masks: np.ndarray, cfg: dict, lr: float, epochs: int, seed: int,
          device: torch.device | None = None) -> TrainResult:
    """Train ``model`` (its frozen parts stay frozen) and return the state of the best epoch.

    Images must already be standardized. ``cfg`` is the ``train`` params section. The best epoch is
    the one with the lowest validation loss (the training loss on the whole validation images of the
    stage's own domain); ties keep the earlier epoch. Epochs are numbered from 1.
    """
    device = device or select_device()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    loss_fn = training_loss(cfg["loss"])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=float(cfg["lr_decay_per_epoch"]))
    batches = CropBatches(train_images, train_masks, int(cfg["crop_px"]), int(cfg["crops_per_image"]),
                          int(cfg["batch_size"]), cfg["augment"], rng)
    val_key = "ce" if cfg["loss"] == "ce" else "softmax_ce"
    cuda = device.type == "cuda"
    amp = bool(cfg.get("amp", False)) and cuda  # bf16 autocast on CUDA only; CPU runs stay in float32
    best = TrainResult(best_state={}, best_epoch=0, best_val_loss=float("inf"))
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(1, int(epochs) + 1):
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches.epoch():
            if cuda:  # pinned host memory lets the copy overlap with compute
                xb, yb = xb.pin_memory(), yb.pin_memory()
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(xb).float(), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        seen += count
        lr_now = opt.param_groups[0]["lr"]
        sched.step()
        metrics = evaluate(model, val_images, val_masks, device)
        val_loss = metrics["ce"] if val_key == "ce" else metrics["paper_loss"]
        best.curve.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss,
                           "val_dice": metrics["dice"], "lr": lr_now})
        if val_loss < best.best_val_loss:
            best.best_val_loss, best.best_epoch = val_loss, epoch
            best.best_state = copy.deepcopy(model.state_dict())
    best.seconds = time.perf_counter() - t0
    best.images_seen = seen
    return best
