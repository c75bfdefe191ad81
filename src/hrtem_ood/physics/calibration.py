"""Zero-defocus calibration: the defocus of minimum contrast of a particles-only exit wave.

The study calibrates zero defocus per structure to the minimum-contrast condition of the particles
in vacuum (a grid search, 1 A then 0.1 A; contrast = intensity variance).
"""

from __future__ import annotations

import numpy as np

from hrtem_ood.physics.ctf import make_ctf, waves_from_array


def contrast_vs_defocus(wave: np.ndarray, sampling_A: float, energy_eV: float, defoci_A: np.ndarray,
                        Cs_mm: float, chunk: int = 64) -> np.ndarray:
    """Image contrast (intensity variance) of a single coherent exit wave for each defocus."""
    out = []
    w = waves_from_array(np.asarray(wave), sampling_A, energy_eV)
    for i in range(0, len(defoci_A), chunk):
        ctf = make_ctf(np.asarray(defoci_A[i:i + chunk], dtype=float), Cs_mm, 0.0, energy_eV)
        out.append(w.apply_ctf(ctf).intensity().array.var(axis=(-2, -1)))
    return np.concatenate(out)


def band_limit(wave: np.ndarray, sampling_A: float, q_max_per_A: float) -> np.ndarray:
    """``wave`` with every spatial frequency |q| > ``q_max_per_A`` removed (a sharp objective aperture)."""
    wave = np.asarray(wave)
    ky = np.fft.fftfreq(wave.shape[-2], sampling_A)
    kx = np.fft.fftfreq(wave.shape[-1], sampling_A)
    inside = ky[:, None] ** 2 + kx[None, :] ** 2 <= q_max_per_A**2
    return np.fft.ifft2(np.fft.fft2(wave) * inside).astype(wave.dtype)


def minimum_contrast_defocus(wave: np.ndarray, sampling_A: float, energy_eV: float, Cs_mm: float,
                             search_A: float, coarse_step_A: float, fine_step_A: float,
                             q_max_per_A: float | None = None) -> float:
    """The defocus (A, abTEM convention) at which the image of ``wave`` has the least contrast:
    a coarse grid over +-search_A, then a fine grid around the coarse minimum.

    ``q_max_per_A`` limits the contrast to frequencies |q| <= q_max (an aperture for the calibration
    only). With Cs > 0 the full-band contrast of a crystalline particle has many near-equal minima,
    one for each lattice frequency passing a CTF zero; band-limited to the first lattice fringes it has
    one (docs/fidelity.md)."""
    if q_max_per_A is not None:
        wave = band_limit(wave, sampling_A, q_max_per_A)
    coarse = np.arange(-search_A, search_A + coarse_step_A / 2, coarse_step_A)
    c = contrast_vs_defocus(wave, sampling_A, energy_eV, coarse, Cs_mm)
    best = coarse[int(np.argmin(c))]
    fine = best + np.arange(-coarse_step_A, coarse_step_A + fine_step_A / 2, fine_step_A)
    f = contrast_vs_defocus(wave, sampling_A, energy_eV, fine, Cs_mm)
    return float(np.round(fine[int(np.argmin(f))], 6))
