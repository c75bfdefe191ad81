"""Lattice fringes in a micrograph's power spectrum, and the pixel size they imply.

A crystalline particle imaged at atomic resolution shows its lattice planes as fringes; in the power
spectrum they are sharp spots at ``|q| = 1/d`` (``d`` the plane spacing) standing far above the radially
averaged background (Thon rings, noise). The radius of a spot in cycles per image width gives the fringe
period in pixels, and a known ``d`` turns that period into a pixel size: ``pixel = d / period``.
No torch, no abTEM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The strongest lattice fringes of common fcc metal nanoparticles, {111} plane spacings in A.
FCC_111_A = {"Pd": 2.246, "Pt": 2.265, "Au": 2.355, "Ag": 2.359}


@dataclass(frozen=True)
class Spot:
    """A lattice spot: its period (pixels), direction (degrees) and height over the radial average."""

    period_px: float
    angle_deg: float
    ratio: float


def _power_spectrum(image: np.ndarray) -> np.ndarray:
    """Hann-windowed power spectrum, zero frequency at the centre, lightly smoothed (spots of a finite
    particle are a few frequency pixels wide)."""
    from scipy.ndimage import gaussian_filter

    h, w = image.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None]
    ps = np.abs(np.fft.fftshift(np.fft.fft2((image - image.mean()) * win))) ** 2
    return gaussian_filter(ps, 1.0)


def lattice_spots(image: np.ndarray, min_period_px: float = 2.5, max_period_px: float = 8.0,
                  min_ratio: float = 8.0) -> list[Spot]:
    """Spots of the (square) image's power spectrum with periods in ``[min_period_px, max_period_px]`` that
    stand at least ``min_ratio`` times above the radial average at their radius, strongest first (one of each
    Friedel pair). The radius is refined by the intensity-weighted centroid of the 5 x 5 pixels around the
    peak."""
    from scipy.ndimage import maximum_filter

    image = np.asarray(image, float)
    n = image.shape[0]
    if image.ndim != 2 or image.shape[1] != n:
        raise ValueError(f"lattice_spots needs a square 2-D image, got shape {image.shape}")
    ps = _power_spectrum(image)
    y, x = np.indices(ps.shape) - n // 2
    r = np.hypot(x, y)
    ri = r.astype(int)
    radial = np.bincount(ri.ravel(), ps.ravel()) / np.maximum(np.bincount(ri.ravel()), 1)
    ratio = ps / np.maximum(radial[ri], np.finfo(float).tiny)
    band = (r >= n / max_period_px) & (r <= n / min_period_px)
    upper = (y > 0) | ((y == 0) & (x > 0))  # one of each Friedel pair, the horizontal direction included
    peaks = (ratio == maximum_filter(ratio, size=9)) & (ratio >= min_ratio) & band & upper
    spots = []
    for py, px in zip(*np.nonzero(peaks), strict=True):
        sl = (slice(max(py - 2, 0), py + 3), slice(max(px - 2, 0), px + 3))
        wgt = ps[sl] - radial[ri[sl]]
        wgt = np.clip(wgt, 0, None)
        if wgt.sum() <= 0:
            continue
        cy, cx = (wgt * y[sl]).sum() / wgt.sum(), (wgt * x[sl]).sum() / wgt.sum()
        spots.append(Spot(period_px=float(n / np.hypot(cy, cx)), angle_deg=float(np.degrees(np.arctan2(cy, cx))),
                          ratio=float(ratio[py, px])))
    return sorted(spots, key=lambda s: -s.ratio)


def fringe_period(images: list[np.ndarray], **kw) -> dict:
    """The strongest spot of each image (where it has one) and their median period in pixels, with the
    spread (half the interquartile range) and the standard error of the median (1.2533 s / sqrt(n))."""
    strongest = []
    for k, image in enumerate(images):
        spots = lattice_spots(image, **kw)
        if spots:
            strongest.append((k, spots[0]))
    periods = np.array([s.period_px for _, s in strongest])
    if len(periods) == 0:
        return {"n_images": len(images), "n_with_fringes": 0, "period_px": None}
    q1, q3 = np.percentile(periods, [25, 75])
    sem = 1.2533 * periods.std(ddof=1) / np.sqrt(len(periods)) if len(periods) > 1 else None
    return {"n_images": len(images), "n_with_fringes": len(periods), "period_px": float(np.median(periods)),
            "period_half_iqr_px": float((q3 - q1) / 2), "period_sem_px": None if sem is None else float(sem),
            "per_image": [{"index": k, "period_px": round(s.period_px, 3), "angle_deg": round(s.angle_deg, 1),
                           "ratio": round(s.ratio, 1)} for k, s in strongest]}


def pixel_size_A(period_px: float, d_spacing_A: float) -> float:
    """The pixel size (A) at which fringes of plane spacing ``d_spacing_A`` repeat every ``period_px``."""
    return d_spacing_A / period_px
