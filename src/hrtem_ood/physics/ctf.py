"""The objective-lens contrast transfer function: closed forms and abTEM's CTF.

Sign convention (abTEM's, the one used project-wide): ``defocus = -C10``; a positive defocus is
underfocus. The aberration phase is

    chi(q) = pi * lambda * C10 * q^2 + (pi / 2) * Cs * lambda^3 * q^4,   C10 = -defocus,

and the temporal-coherence envelope for a Gaussian defocus spread of standard deviation ``sigma`` is
``E_t(q) = exp(-(1/2) (pi lambda sigma)^2 q^4)``. abTEM's ``focal_spread`` is the 1/e width
``sqrt(2) * sigma``; :func:`make_ctf` takes ``sigma`` (``focal_spread_A`` in params) and converts.
abTEM is imported inside the functions that use it.
"""

from __future__ import annotations

import math

import numpy as np

from hrtem_ood.units import mm_to_A


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength in Angstrom (0.0197 A at 300 keV), abTEM's ``energy2wavelength``."""
    from abtem.core.energy import energy2wavelength

    return float(energy2wavelength(energy_eV))


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
    Cs_A = mm_to_A(Cs_mm)
    ta = phase_ctf(q, defocus_a_A, Cs_A, energy_eV, focal_spread_sigma_A)
    tb = phase_ctf(q, defocus_b_A, Cs_A, energy_eV, focal_spread_sigma_A)

    def inner(x, y):
        return float(np.trapezoid(x * y * q, q))

    norm = np.sqrt(inner(ta, ta) * inner(tb, tb))
    return inner(ta, tb) / norm if norm > 0 else 0.0


#: abTEM's FFT settings (``simulate.fft``). ``scipy``: scipy.fft (pocketfft) on one thread, complex64 in
#: single precision both ways; no run-time planning, so bit-for-bit repeatable across processes and runs on one
#: CPU kind. ``numpy``: numpy's pocketfft, also repeatable, but its complex64 forward transform runs in double
#: precision (2.5-4x the cost of the inverse). ``fftw``: pyFFTW with measured plans, fastest on some CPUs but
#: its run-time planning makes exit waves differ by ~1e-6 between runs.
FFT_BACKENDS = ("scipy", "numpy", "fftw")
_scipy_fft = {"on": False}


def _scipy_dispatch(original):
    """abTEM's FFT dispatch with numpy arrays sent to scipy.fft while ``fft: scipy`` is configured."""

    def dispatch(x, func_name, overwrite_x=False, **kwargs):
        if _scipy_fft["on"] and isinstance(x, np.ndarray):
            import scipy.fft

            return getattr(scipy.fft, func_name)(x, overwrite_x=overwrite_x, workers=1, **kwargs)
        return original(x, func_name, overwrite_x, **kwargs)

    dispatch.hrtem_ood_original = original
    return dispatch


def configure_abtem(fft: str = "scipy") -> None:
    """Eager evaluation, CPU, a chosen FFT backend (:data:`FFT_BACKENDS`), no progress bars (the project
    shows its own). abTEM's own settings know numpy, fftw and mkl; ``scipy`` routes abTEM's 2-D and n-D
    transforms of numpy arrays (``abtem.core.fft``'s one dispatch point) to scipy.fft."""
    import abtem
    import abtem.core.fft as abtem_fft

    if fft not in FFT_BACKENDS:
        raise ValueError(f"simulate.fft: must be one of {FFT_BACKENDS}, got {fft!r}")
    if not hasattr(abtem_fft._fft_dispatch, "hrtem_ood_original"):
        abtem_fft._fft_dispatch = _scipy_dispatch(abtem_fft._fft_dispatch)
    _scipy_fft["on"] = fft == "scipy"
    abtem.config.set({"dask.lazy": False, "device": "cpu", "fft": "numpy" if fft == "scipy" else fft,
                      "fftw.threads": 1, "progress_bar": False})


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
    return abtem.CTF(defocus=defocus_A, Cs=mm_to_A(Cs_mm), energy=energy_eV, **kwargs)


def waves_from_array(array: np.ndarray, sampling_A: float, energy_eV: float):
    """An abTEM ``Waves`` of ``array`` whose leading axes are frozen phonons."""
    import abtem
    from abtem.core.axes import FrozenPhononsAxis

    meta = [FrozenPhononsAxis()] * (array.ndim - 2)
    return abtem.Waves(array, energy=energy_eV, sampling=sampling_A, ensemble_axes_metadata=meta)
