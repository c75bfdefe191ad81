"""Training: random crops with 8-fold dihedral augmentation, Adam, x``lr_decay`` per epoch, best epoch =
lowest validation loss on the stage's own domain; one model per task (condition and seed, built by
hrtem_ood.execution.grid), evaluated on every domain's test split, here or on a dask worker. Torch only (no abTEM)."""

from __future__ import annotations

import copy
import functools
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hrtem_ood.dataio.datasets import load_split, read_h5, training_subset
from hrtem_ood.execution.grid import run_name
from hrtem_ood.learning.evaluation import evaluate, model_input, training_loss
from hrtem_ood.learning.model import build_model
from hrtem_ood.results.columns import METRICS

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Model, Train


def select_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX
    (oneDNN's check). Elsewhere autocast would emulate bf16 slowly, so training stays in float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX tiles (Intel Xeon 4th generation and later), as torch reports it."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


@dataclass(frozen=True)
class Numerics:
    """The arithmetic a model trains and is evaluated in: bf16 autocast or float32, and the memory layout.
    ``label`` (``bf16/contiguous``, say) goes into every result row and model file."""

    bf16: bool
    channels_last: bool
    rule: str

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def label(self) -> str:
        return f"{'bf16' if self.bf16 else 'float32'}/{'channels_last' if self.channels_last else 'contiguous'}"


def choose_numerics(cfg: Train, device: torch.device, threads: int | None = None) -> Numerics:
    """``train.amp`` and ``train.memory_format`` resolved for ``device`` and the model's torch ``threads`` (default:
    torch's current count) by a fixed rule on the device's features, never by timing, which would make the bytes
    depend on the machine's load. Measured with ``benchmarks/training_speed.py`` (docs/performance.md):

    - bf16 autocast where the device runs bf16 natively (:func:`bf16_supported`) and ``amp`` is on;
    - ``memory_format: auto``: contiguous (NCHW) for bf16 on 2 or more threads of a CPU with AMX, where oneDNN's
      NHWC bf16 kernels scale badly for this small U-Net (one model, 2 threads: 183 against 121 crops/s);
      channels_last (NHWC) everywhere else: bf16 on one thread (137 against 119), float32 on any CPU, CUDA.
    """
    bf16 = cfg.amp and bf16_supported(device)
    threads = torch.get_num_threads() if threads is None else threads
    choice = cfg.memory_format
    if choice != "auto":
        return Numerics(bf16, choice == "channels_last", f"train.memory_format: {choice}")
    if bf16 and device.type == "cpu" and cpu_has_amx() and threads >= 2:
        return Numerics(True, False, f"auto: bf16 on {threads} threads of a CPU with AMX -> contiguous")
    where = f"{threads} thread(s) of a CPU {'with' if cpu_has_amx() else 'without'} AMX" if device.type == "cpu" \
        else device.type
    return Numerics(bf16, True, f"auto: {'bf16' if bf16 else 'float32'} on {where} -> channels_last")


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
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
    numerics: Numerics | None = None
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0


def train(model: torch.nn.Module, train_images: np.ndarray, train_masks: np.ndarray, val_images: np.ndarray,
          val_masks: np.ndarray, cfg: Train, lr: float, epochs: int, seed: int,
          device: torch.device | None = None) -> TrainResult:
    """Train ``model`` (its frozen parts stay frozen) and return the state of the best epoch.

    Images must already be standardized. ``cfg`` is the ``train`` params section. The best epoch is
    the one with the lowest validation loss (the training loss on the whole validation images of the
    stage's own domain); ties keep the earlier epoch. Epochs are numbered from 1.
    """
    device = device or select_device()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    num = choose_numerics(cfg, device)
    fmt = num.memory_format
    model.to(device, memory_format=fmt)
    loss_fn = training_loss(cfg.loss)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay_per_epoch)
    batches = CropBatches(train_images, train_masks, cfg.crop_px, cfg.crops_per_image, cfg.batch_size, cfg.augment,
                          rng)
    val_key = "ce" if cfg.loss == "ce" else "softmax_ce"
    cuda = device.type == "cuda"
    amp = num.bf16
    best = TrainResult(best_state={}, best_epoch=0, best_val_loss=float("inf"), numerics=num)
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches.epoch():
            if cuda:  # pinned host memory lets the copy overlap with compute
                xb, yb = xb.pin_memory(), yb.pin_memory()
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=fmt)
            yb = yb.to(device, non_blocking=True)
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
        metrics = evaluate(model, val_images, val_masks, device, memory_format=fmt)
        val_loss = metrics["ce"] if val_key == "ce" else metrics["paper_loss"]
        best.curve.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss,
                           "val_dice": metrics["dice"], "lr": lr_now})
        if val_loss < best.best_val_loss:
            best.best_val_loss, best.best_epoch = val_loss, epoch
            best.best_state = copy.deepcopy(model.state_dict())
    best.seconds = time.perf_counter() - t0
    best.images_seen = seen
    return best


# ----------------------------------------------------------------------------------- one model per seed


@functools.lru_cache(maxsize=1)
def _eval_sets(domains_dir: str, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Standardized test images and masks of every domain, loaded once per process (a stage's seeds, or
    the tasks a dask worker runs, share them); callers must not modify the arrays."""
    out = {}
    for name in names:
        d = load_split(domains_dir, name, "test")
        out[name] = (model_input(d), d["masks"])
    return out


def _train_set(domains_dir, domain: str, split: str, n_images: int | None, n_sources: int | None = None):
    """A split's model inputs and masks: the first ``n_images`` images (all if None), or every tile of the
    first ``n_sources`` source micrographs in name order (an ingested domain: how many images were labelled)."""
    d = load_split(domains_dir, domain, split)
    source = read_h5(d["path"], ("source_index",))[0]["source_index"] if n_sources is not None else None
    keep = training_subset(d["path"], split, len(d["images"]), source, n_images, n_sources)
    return model_input(d)[keep], d["masks"][keep]


def saved_model_loss(model_file: str | Path, model_cfg: Model, domains_dir: str | Path, domain: str, split: str,
                     threads: int) -> float:
    """paper_loss of a saved pipeline model on one split of a domain (e.g. zero-shot on an ingested domain's
    val split, which chooses the label-count study's starts without looking at its test split)."""
    set_threads(threads)
    device = select_device()
    model = build_model(model_cfg, 0)
    model.load_state_dict(torch.load(model_file, map_location="cpu", weights_only=True)["state_dict"])
    model.to(device)
    d = load_split(domains_dir, domain, split)
    return float(evaluate(model, model_input(d), d["masks"], device)["paper_loss"])


def train_one_model(job: dict) -> dict:
    """Train and evaluate one model of a stage's grid (:func:`hrtem_ood.execution.grid.stage_jobs`): a task of
    picklable data and typed params sections, so it can run on a dask worker; a transfer loads its pretrained model
    from ``job["init_file"]``.

    Returns the best model as ``torch.save`` bytes (``model_bytes``), the result rows
    (:data:`~hrtem_ood.results.columns.RESULT_COLUMNS`), the learning curve and the timing row
    (:data:`~hrtem_ood.results.columns.TIMING_COLUMNS`: the training seconds, kept out of the results)."""
    tc, seed = job["train"], job["seed"]
    set_threads(job.get("threads", tc.threads))
    device = select_device()
    tr_x, tr_y = _train_set(job["domains_dir"], job["target_domain"], "train", job["n_images"], job.get("n_sources"))
    va_x, va_y = _train_set(job["domains_dir"], job["target_domain"], "val", None)
    model = build_model(job["model"], seed)
    if job["init_file"] is not None:
        model.load_state_dict(torch.load(job["init_file"], map_location="cpu", weights_only=True)["state_dict"])
    model.freeze(job["freeze"])
    res = train(model, tr_x, tr_y, va_x, va_y, tc, job["lr"], job["epochs"], seed=seed, device=device)
    num = res.numerics
    model.load_state_dict(res.best_state)
    stage, p, t = job["stage"], job["pretrain_domain"], job["target_domain"]
    transfer = stage != "pretrain"  # a transfer row, or the label-count study (n_transfer: its micrographs)
    run = run_name(stage, p, t, job["tag"], seed)
    common = {"run": run, "stage": stage, "pretrain_domain": p, "target_domain": t, "seed": seed,
              "freeze": job["freeze"] if transfer else None,
              "n_transfer": job.get("n_sources") or job["n_images"] if transfer else None,
              "lr_pretrain": job["lr_pretrain"], "lr_transfer": job["lr"] if transfer else None}
    timing = {**common, "seconds": round(res.seconds, 2)}
    common.update(epoch=res.best_epoch, numerics=num.label)
    rows = []
    for eval_domain, (ex, ey) in _eval_sets(job["domains_dir"], tuple(job["eval_domains"])).items():
        m = evaluate(model, ex, ey, device, memory_format=num.memory_format)
        rows.extend({**common, "eval_domain": eval_domain, "metric": metric, "value": round(m[metric], 7)}
                    for metric in METRICS)
    curve = [{"run": run, "seed": seed, **{k: round(v, 7) if isinstance(v, float) else v for k, v in c.items()}}
             for c in res.curve]
    print(f"{run}: best epoch {res.best_epoch}/{job['epochs']}, val loss {res.best_val_loss:.4f}, "
          f"{res.images_seen / res.seconds:.1f} crops/s ({num.label}; {num.rule})")
    buf = io.BytesIO()
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in res.best_state.items()},
                "model": job["model"].model_dump(),
                "seed": seed, "epoch": res.best_epoch, "stage": stage, "pretrain_domain": p, "target_domain": t,
                "condition": job["tag"], "numerics": num.label, "numerics_rule": num.rule}, buf)
    return {"seed": seed, "model_bytes": buf.getvalue(), "rows": rows, "curve": curve, "timing": timing}
