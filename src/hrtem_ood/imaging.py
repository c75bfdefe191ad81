"""Image formation: the objective-lens CTF and aperture, temporal coherence, minimum-contrast calibration, dose.

Sign convention (abTEM's, the one used project-wide): ``defocus = -C10``; a positive defocus is
underfocus. The aberration phase is

    chi(q) = pi * lambda * C10 * q^2 + (pi / 2) * Cs * lambda^3 * q^4,   C10 = -defocus,

and the temporal-coherence envelope for a Gaussian defocus spread of standard deviation ``sigma`` is
``E_t(q) = exp(-(1/2) (pi lambda sigma)^2 q^4)``. abTEM's ``focal_spread`` is the 1/e width
``sqrt(2) * sigma``; :func:`make_ctf` takes ``sigma`` (``focal_spread_A`` in params) and converts.
"""

from __future__ import annotations

import math

import numpy as np

H_PLANCK = 6.62607015e-34
M_ELECTRON = 9.1093837015e-31
E_CHARGE = 1.602176634e-19
C_LIGHT = 299792458.0


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength in Angstrom (0.0197 A at 300 keV)."""
    e = energy_eV * E_CHARGE
    p = math.sqrt(2 * M_ELECTRON * e * (1 + e / (2 * M_ELECTRON * C_LIGHT**2)))
    return H_PLANCK / p * 1e10


def chi_rad(q_per_A: np.ndarray, defocus_A: float, Cs_A: float, energy_eV: float) -> np.ndarray:
    """Closed-form aberration phase chi(q) in the abTEM convention (C10 = -defocus)."""
    lam = wavelength_A(energy_eV)
    return np.pi * lam * (-defocus_A) * q_per_A**2 + 0.5 * np.pi * Cs_A * lam**3 * q_per_A**4


def phase_ctf(q_per_A: np.ndarray, defocus_A: float, Cs_A: float, energy_eV: float,
              focal_spread_sigma_A: float = 0.0) -> np.ndarray:
    """Weak-phase-object transfer T(q) = sin(chi(q)) E_t(q), with the temporal coherence envelope
    E_t = exp(-(1/2) (pi lambda delta)^2 q^4) for a focal spread of standard deviation delta."""
    lam = wavelength_A(energy_eV)
    envelope = np.exp(-0.5 * (np.pi * lam * focal_spread_sigma_A) ** 2 * q_per_A**4)
    return np.sin(chi_rad(q_per_A, defocus_A, Cs_A, energy_eV)) * envelope


def ctf_overlap(defocus_a_A: float, defocus_b_A: float, Cs_mm: float, energy_eV: float, q_max_per_A: float,
                focal_spread_sigma_A: float = 0.0, n: int = 8192) -> float:
    """Normalized overlap <T_a, T_b> / (|T_a| |T_b|) of two imaging conditions' phase transfer
    functions over the disc |q| <= q_max (2-D measure q dq): 1 = same contrast at every frequency,
    -1 = contrast inverted everywhere (as for +df and -df when Cs = 0), 0 = unrelated. The companion
    paper of the study proposes it as a predictor of how far out of distribution one domain is for
    a model trained on the other."""
    q = np.linspace(0.0, float(q_max_per_A), int(n))
    Cs_A = Cs_mm * 1e7
    ta = phase_ctf(q, defocus_a_A, Cs_A, energy_eV, focal_spread_sigma_A)
    tb = phase_ctf(q, defocus_b_A, Cs_A, energy_eV, focal_spread_sigma_A)

    def inner(x, y):
        return float(np.trapezoid(x * y * q, q))

    norm = np.sqrt(inner(ta, ta) * inner(tb, tb))
    return inner(ta, tb) / norm if norm > 0 else 0.0


def configure_abtem(fft: str = "numpy") -> None:
    """Eager evaluation, CPU, a chosen FFT backend, no progress bars (the project shows its own).

    ``numpy`` FFTs are bit-for-bit repeatable across processes; ``fftw`` is ~3x faster but its
    runtime planning makes exit waves differ by ~1e-6 between runs.
    """
    import abtem

    abtem.config.set({"dask.lazy": False, "device": "cpu", "fft": fft, "fftw.threads": 1,
                      "progress_bar": False})


def make_ctf(defocus_A, Cs_mm: float, focal_spread_sigma_A: float, energy_eV: float,
             aperture_mrad: float | None = None):
    """An abTEM CTF. ``defocus_A`` may be a scalar or a 1-D array (then an ensemble axis).
    ``aperture_mrad``: objective-aperture semiangle (mrad; q_max = aperture / lambda), None = none."""
    import abtem

    kwargs = {}
    if aperture_mrad is not None:
        kwargs["semiangle_cutoff"] = float(aperture_mrad)
    if focal_spread_sigma_A > 0:
        kwargs["focal_spread"] = math.sqrt(2.0) * focal_spread_sigma_A  # abTEM: 1/e width
    return abtem.CTF(defocus=defocus_A, Cs=Cs_mm * 1e7, energy=energy_eV, **kwargs)


def _waves(array: np.ndarray, sampling_A: float, energy_eV: float):
    import abtem
    from abtem.core.axes import FrozenPhononsAxis

    meta = [FrozenPhononsAxis()] * (array.ndim - 2)
    return abtem.Waves(array, energy=energy_eV, sampling=sampling_A, ensemble_axes_metadata=meta)


def image_intensity(exit_waves: np.ndarray, sampling_A: float, energy_eV: float, defocus_A: float,
                    Cs_mm: float, focal_spread_sigma_A: float, aperture_mrad: float | None = None) -> np.ndarray:
    """Noise-free image intensity (vacuum = 1): CTF (and objective aperture, if any) applied to each
    frozen-phonon exit wave (leading axes), intensities averaged incoherently over the phonons."""
    ctf = make_ctf(float(defocus_A), Cs_mm, focal_spread_sigma_A, energy_eV, aperture_mrad)
    intensity = _waves(exit_waves, sampling_A, energy_eV).apply_ctf(ctf).intensity().array
    return intensity.reshape((-1,) + intensity.shape[-2:]).mean(axis=0)


def poisson_counts(intensity: np.ndarray, sampling_A: float, dose_e_per_A2: float, seed: int) -> np.ndarray:
    """Electron counts per pixel: Poisson(intensity * dose * pixel area), seeded (abTEM's sampler)."""
    import abtem

    images = abtem.Images(np.ascontiguousarray(intensity, dtype=np.float32), sampling=sampling_A)
    return images.poisson_noise(dose_per_area=dose_e_per_A2, seed=int(seed)).array.astype(np.float32)


def contrast_vs_defocus(wave: np.ndarray, sampling_A: float, energy_eV: float, defoci_A: np.ndarray,
                        Cs_mm: float, chunk: int = 64) -> np.ndarray:
    """Image contrast (intensity variance) of a single coherent exit wave for each defocus."""
    out = []
    w = _waves(np.asarray(wave), sampling_A, energy_eV)
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
