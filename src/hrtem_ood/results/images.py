"""Micrograph figures, drawn with PIL: the example montage of every domain and the segmentation overlays.

Imports neither torch nor abTEM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrtem_ood.dataio.io import atomic_path


def _to_uint8(img: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    lo, hi = np.percentile(img, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def montage_png(panels: list[np.ndarray], titles: list[str], out: str | Path, cols: int = 6,
                smooth_px: float = 1.0) -> None:
    """A grid of images with titles. Noisy counts are lightly Gaussian-smoothed for display only."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import gaussian_filter

    h, w = panels[0].shape
    rows = int(np.ceil(len(panels) / cols))
    pad, head = 4, 14
    canvas = Image.new("L", (cols * (w + pad) + pad, rows * (h + head + pad) + pad), 255)
    draw = ImageDraw.Draw(canvas)
    for k, (img, title) in enumerate(zip(panels, titles, strict=True)):
        r, c = divmod(k, cols)
        x, y = pad + c * (w + pad), pad + r * (h + head + pad)
        shown = img if title == "mask" else gaussian_filter(np.asarray(img, float), smooth_px)
        canvas.paste(Image.fromarray(_to_uint8(shown)), (x, y + head))
        draw.text((x + 2, y + 1), title, fill=0)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")


#: Overlay colours: the label's outline (green) and the predicted particles (orange tint and outline).
LABEL_RGB, PREDICTION_RGB = np.array([0.1, 0.8, 0.2]), np.array([1.0, 0.55, 0.0])


def _outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it (the image edge counts as outside), as the user-facing
    overlays of ``hrtem-ood predict`` outline particles."""
    from scipy.ndimage import binary_erosion

    m = mask.astype(bool)
    return m & ~binary_erosion(m)


def overlay_rgb(image: np.ndarray, label: np.ndarray, predicted: np.ndarray | None) -> np.ndarray:
    """An image in grey (0.5-99.5th percentile, lightly smoothed for display) with the label's outline in green and,
    when given, the predicted particles tinted and outlined in orange (uint8, H x W x 3)."""
    from scipy.ndimage import gaussian_filter

    grey = _to_uint8(gaussian_filter(np.asarray(image, float), 1.0)) / 255.0
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if predicted is not None:
        p = predicted.astype(bool)
        rgb[p] = 0.65 * rgb[p] + 0.35 * PREDICTION_RGB
        rgb[_outline(p)] = PREDICTION_RGB
    rgb[_outline(label)] = LABEL_RGB
    return (rgb * 255).round().astype(np.uint8)


def overlay_grid_png(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], out: str | Path) -> None:
    """A grid of RGB panels, one row per domain: its title, then (title, panel) pairs; panels of different sizes
    sit top-left in equal cells."""
    from PIL import Image, ImageDraw

    size = max(max(p.shape[0], p.shape[1]) for _, panels in rows for _, p in panels)
    cols = max(len(panels) for _, panels in rows)
    pad, head, left = 4, 14, 150
    canvas = Image.new("RGB", (left + cols * (size + pad) + pad, len(rows) * (size + head + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (row_title, panels) in enumerate(rows):
        y = pad + r * (size + head + pad)
        draw.text((pad, y + head + size // 2 - 6), row_title, fill="black")
        for c, (title, panel) in enumerate(panels):
            x = left + pad + c * (size + pad)
            canvas.paste(Image.fromarray(panel), (x, y + head))
            draw.text((x + 2, y + 1), title, fill="black")
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
