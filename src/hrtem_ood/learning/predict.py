"""Segment a user's micrographs with a trained model: particle masks, probability maps, overlays and sizes.

Each micrograph (any format ingest reads) is resampled to the model's sampling, standardized as a whole
(mean 0, variance 1 over the resampled micrograph, as every training image was), and segmented in
overlapping tiles whose class probabilities are blended with a smooth window (sin² in each direction,
positive everywhere), so tile borders leave no seam. The probability map is resampled back to the file's
own pixels; the mask is probability > 0.5, without connected specks smaller than a minimum equivalent
diameter (0.5 nm unless set; a nanoparticle that small is not resolved anyway). Connected particles give the
size table: area (nm²) and equivalent diameter (nm) from the file's pixel size. Torch only (no abTEM).

A model is a pretrained or transferred model file of the pipeline (``torch.save`` of its state; sampling
from ``simulate.output_sampling_A``), or an exported ``.pt2`` program with its model card beside it
(:mod:`hrtem_ood.learning.export`), which needs neither this package's model code nor params.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hrtem_ood.dataio.ingest import NORMALISATION, micrograph_files, read_image, resample, standardize_micrograph, tiles
from hrtem_ood.errors import UserError
from hrtem_ood.units import A_to_nm

#: Columns of the per-particle table.
PARTICLE_COLUMNS = ["image", "particle_id", "centroid_x_px", "centroid_y_px", "area_nm2", "equivalent_diameter_nm",
                    "touches_border"]


class PredictError(UserError):
    """Bad input to ``predict`` or ``export``; the message names the file and the problem."""


@dataclass
class LoadedModel:
    """A model ready to segment: the network (in eval mode), its sampling in A/px, and its card."""

    net: torch.nn.Module
    sampling_A: float
    card: dict
    path: Path


def card_path(model_path: str | Path) -> Path:
    """The model card of an exported model: ``<file>.json`` beside it."""
    return Path(model_path).with_suffix(".json")


def load_model(path: str | Path, sampling_A: float | None = None) -> LoadedModel:
    """A pipeline model file (needs ``sampling_A``, the params' ``simulate.output_sampling_A``) or an exported
    ``.pt2`` program with its card."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: model file not found")
    if path.suffix == ".pt2":  # an exported model: its card says the sampling
        card_file = card_path(path)
        if not card_file.is_file():
            raise PredictError(f"{card_file}: the exported model's card is missing (it gives the sampling)")
        try:
            card = json.loads(card_file.read_text())
            net = torch.export.load(str(path)).module()
            sampling = float(card["input"]["sampling_A"])
        except Exception as exc:  # torch and json raise many types for a damaged file
            raise PredictError(f"{path}: cannot load the exported model ({type(exc).__name__}: {exc})") from exc
        return LoadedModel(net, sampling, card, path)
    from hrtem_ood.config.schema import Model
    from hrtem_ood.learning.model import build_model

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net = build_model(Model.model_validate(saved["model"]), 0)
        net.load_state_dict(saved["state_dict"])
    except Exception as exc:  # torch raises many types for a file that is not a model
        raise PredictError(f"{path}: not a model file of this pipeline ({type(exc).__name__}: {exc})") from exc
    if sampling_A is None:
        raise PredictError(f"{path}: a pipeline model needs the params' simulate.output_sampling_A")
    card = {k: saved.get(k) for k in ("stage", "pretrain_domain", "target_domain", "condition", "seed", "epoch",
                                      "numerics")}
    return LoadedModel(net.eval(), sampling_A, card, path)


def find_model(models_dir: str | Path, domain: str, target: str | None = None, condition: str | None = None,
               seed: int = 0) -> Path:
    """The pipeline's model file of a pretraining domain (``target`` None) or of its transfer to ``target``:
    ``models/pretrain/<domain>/<condition>/seed<k>.pt`` or ``models/transfer/<domain>/<target>/...``. With no
    ``condition``, the only one there (several: the message lists them)."""
    root = Path(models_dir) / ("pretrain" if target is None else "transfer") / domain
    if target is not None:
        root = root / target
    if not root.is_dir():
        raise PredictError(f"{root}: no such model folder (run the pipeline, or give --model PATH)")
    conditions = sorted(p.name for p in root.iterdir() if p.is_dir())
    if condition is None:
        if len(conditions) != 1:
            raise PredictError(f"{root}: {len(conditions)} conditions ({', '.join(conditions)}); name one with "
                               "--condition")
        condition = conditions[0]
    path = root / condition / f"seed{seed}.pt"
    if not path.is_file():
        raise PredictError(f"{path}: model file not found (conditions: {', '.join(conditions) or 'none'})")
    return path


def window(n: int) -> np.ndarray:
    """The blending weight of a tile of ``n`` px: sin² in each direction, positive at every pixel."""
    w = np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2
    return np.outer(w, w).astype(np.float32)


@torch.no_grad()
def probability_map(net: torch.nn.Module, image: np.ndarray, tile_px: int, overlap_px: int,
                    device: torch.device | None = None, batch: int = 8) -> np.ndarray:
    """Particle probability of a standardized image, from overlapping tiles blended by :func:`window`.
    Memory: the image, two accumulators of its size and one batch of tiles."""
    device = device or torch.device("cpu")
    h, w = image.shape
    corners = tiles(image, tile_px, tile_px - overlap_px)
    weight = window(tile_px)
    acc = np.zeros((h, w), np.float32)
    norm = np.zeros((h, w), np.float32)
    net = net.to(device)
    for start in range(0, len(corners), batch):
        part = corners[start:start + batch]
        x = np.stack([image[y:y + tile_px, x0:x0 + tile_px] for y, x0 in part])[:, None]
        prob = torch.softmax(net(torch.from_numpy(x).to(device)).float(), dim=1)[:, 1].cpu().numpy()
        for (y, x0), p in zip(part, prob, strict=True):
            acc[y:y + tile_px, x0:x0 + tile_px] += p * weight
            norm[y:y + tile_px, x0:x0 + tile_px] += weight
    return acc / norm


def particles(mask: np.ndarray, pixel_A: float, image: str) -> list[dict]:
    """One row per connected particle of ``mask``: centroid (px of the file), area (nm²), equivalent diameter
    (nm), and whether it touches the image border (its size is then a lower bound)."""
    from skimage.measure import label, regionprops

    h, w = mask.shape
    px_nm2 = A_to_nm(pixel_A) ** 2
    rows = []
    for k, region in enumerate(regionprops(label(mask, connectivity=1)), start=1):
        y0, x0, y1, x1 = region.bbox
        area = float(region.area) * px_nm2
        rows.append({"image": image, "particle_id": k, "centroid_x_px": round(float(region.centroid[1]), 2),
                     "centroid_y_px": round(float(region.centroid[0]), 2), "area_nm2": round(area, 4),
                     "equivalent_diameter_nm": round(2.0 * float(np.sqrt(area / np.pi)), 4),
                     "touches_border": bool(y0 == 0 or x0 == 0 or y1 == h or x1 == w)})
    return rows


def size_summary(rows: list[dict], images: list[str]) -> dict:
    """The size distribution: counts per image, and quantiles of the equivalent diameter over every particle
    and over the particles that do not touch a border (whole particles)."""

    def stats(values: list[float]) -> dict:
        if not values:
            return {"n": 0}
        v = np.asarray(values)
        q = np.percentile(v, [10, 25, 50, 75, 90])
        return {"n": int(len(v)), "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
                **{f"p{p}": round(float(x), 4) for p, x in zip((10, 25, 50, 75, 90), q, strict=True)}}

    return {"particles_per_image": {im: sum(r["image"] == im for r in rows) for im in images},
            "equivalent_diameter_nm": {"all": stats([r["equivalent_diameter_nm"] for r in rows]),
                                       "whole": stats([r["equivalent_diameter_nm"] for r in rows
                                                       if not r["touches_border"]])}}


def overlay_png(image: np.ndarray, mask: np.ndarray) -> bytes:
    """The micrograph in grey (1st-99th percentile), particles tinted and outlined in orange."""
    from PIL import Image
    from scipy.ndimage import binary_erosion

    lo, hi = np.percentile(image, [1, 99])
    grey = np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    m = mask.astype(bool)
    tint = np.array([1.0, 0.55, 0.0])
    rgb[m] = 0.7 * rgb[m] + 0.3 * tint
    rgb[m & ~binary_erosion(m)] = tint
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def check_inputs(files: list[Path], pixel_size_A: float | None, sampling_A: float,
                 tile_px: int) -> list[tuple[Path, float]]:
    """Every file readable, with a pixel size (the file's, else ``pixel_size_A``), and at least one tile large
    after resampling; else one line naming the file. Returns (file, pixel size). Each file is read here and
    again when it is segmented, so that bad input stops the run before any work without holding every image."""
    out = []
    for f in files:
        data, pixel = read_image(f)
        pixel = pixel or pixel_size_A
        if pixel is None:
            raise PredictError(f"{f}: no pixel size in the file; give one with --pixel-size-A")
        shape = [round(n * pixel / sampling_A) for n in data.shape]
        if min(shape) < tile_px:
            raise PredictError(f"{f}: {data.shape[0]} x {data.shape[1]} px at {pixel:g} A is {shape[0]} x {shape[1]} "
                               f"px at the model's {sampling_A:g} A, smaller than one {tile_px} px tile")
        out.append((f, float(pixel)))
    return out


def segment(model: LoadedModel, image: np.ndarray, pixel_A: float, tile_px: int, overlap_px: int,
            device: torch.device | None = None, min_diameter_nm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Probability map and mask of one micrograph, on its own pixel grid; connected specks of an equivalent
    diameter below ``min_diameter_nm`` are left out of the mask."""
    resampled = standardize_micrograph(resample(image.astype(np.float32), pixel_A, model.sampling_A, order=1))
    prob = probability_map(model.net, resampled, tile_px, overlap_px, device)
    if prob.shape != image.shape:  # back to the file's own pixels, exactly its shape
        from skimage.transform import resize

        prob = resize(prob, image.shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    prob = np.clip(prob, 0.0, 1.0).astype(np.float32)
    mask = prob > 0.5
    if min_diameter_nm > 0:
        from skimage.measure import label

        parts = label(mask, connectivity=1)
        area_nm2 = np.bincount(parts.ravel()) * A_to_nm(pixel_A) ** 2
        keep = 2.0 * np.sqrt(area_nm2 / np.pi) >= min_diameter_nm
        keep[0] = False  # the background
        mask = keep[parts]
    return prob, mask.astype(np.uint8)


def run_predict(inputs: list[str], model: LoadedModel, out_dir: str | Path, pixel_size_A: float | None = None,
                tile_px: int = 256, overlap_px: int = 64, min_diameter_nm: float = 0.5) -> dict:
    """Segment every micrograph; write per image ``<name>_mask.tif``, ``<name>_prob.tif`` and
    ``<name>_overlay.png``, and ``particles.csv`` and ``summary.json``, all into ``out_dir`` at once (a new
    folder: an existing one is refused, so nothing is overwritten). Inputs are only read. Every input is checked
    before any work; bad input is one line naming the file, and nothing is written."""
    import tifffile
    from tqdm import tqdm

    from hrtem_ood.dataio.io import atomic_path, write_csv, write_json

    out_dir = Path(out_dir)
    if tile_px % 32 or tile_px < 64:
        raise PredictError(f"--tile-px: must be a multiple of 32 and at least 64, got {tile_px}")
    if not 0 <= overlap_px < tile_px // 2:
        raise PredictError(f"--overlap-px: must be in [0, {tile_px // 2}), got {overlap_px}")
    if out_dir.exists():
        raise PredictError(f"{out_dir}: already exists; choose a new --out folder (nothing is overwritten)")
    checked = check_inputs(micrograph_files(inputs), pixel_size_A, model.sampling_A, tile_px)
    from hrtem_ood.learning.training import select_device

    device = select_device()
    rows: list[dict] = []
    with atomic_path(out_dir, is_dir=True) as tmp:
        for f, pixel in tqdm(checked, desc="predict", unit="image"):
            image, _ = read_image(f)
            prob, mask = segment(model, image, pixel, tile_px, overlap_px, device, min_diameter_nm=min_diameter_nm)
            tifffile.imwrite(tmp / f"{f.stem}_prob.tif", prob)
            tifffile.imwrite(tmp / f"{f.stem}_mask.tif", mask)
            (tmp / f"{f.stem}_overlay.png").write_bytes(overlay_png(image, mask))
            rows += particles(mask, pixel, f.name)
        write_csv(tmp / "particles.csv", rows, PARTICLE_COLUMNS)
        summary = {"model": str(model.path), "model_card": model.card, "sampling_A": model.sampling_A,
                   "normalisation": NORMALISATION, "tile_px": tile_px, "overlap_px": overlap_px,
                   "min_diameter_nm": min_diameter_nm,
                   "pixel_size_A": {f.name: p for f, p in checked},
                   **size_summary(rows, [f.name for f, _ in checked])}
        write_json(tmp / "summary.json", summary)
    return summary
