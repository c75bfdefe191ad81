"""Thon rings: the defocus of a micrograph from the power spectrum of its amorphous support.

A weak phase object imaged through the objective lens has the power spectrum ``|phi(q)|^2 sin^2 chi(q) E^2``,
so an amorphous support (a flat, featureless ``|phi|^2``) shows rings whose radii give the defocus. A support
of thickness ``t`` adds up independent slices whose defoci spread uniformly over ``t``; averaging
``sin^2 chi = (1 - cos 2 chi) / 2`` over them damps the rings by ``sinc(lambda t q^2)``. The radial profile
of the spectrum is modelled as

    P(q) = B(q) + A(q) * [1 - cos(2 chi(q; defocus)) * sinc(lambda t q^2) * sinc(2 lambda |defocus| q dq)] / 2,

with ``chi`` in abTEM's convention (:mod:`hrtem_ood.physics.ctf`; positive defocus = underfocus), ``B`` and ``A``
smooth polynomials in ``q`` (background, and envelope times the support's scattering), and the last sinc the
averaging of a ring over one frequency bin ``dq``. For each trial defocus the model is linear in the
polynomials' coefficients, so the fit is a least-squares scan over defocus, refined around the best value.

The radial profile is the *median* over each ring of frequency pixels, so that a crystalline particle's
lattice spots, a few pixels of a ring, do not enter it. With ``Cs = 0`` the model is even in the defocus, and
the sign is reported as undetermined. The estimate refers to the support's middle plane; the domains of this
project are named by their particles' calibrated zero instead (:func:`particle_plane_nm`).
No torch, no abTEM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrtem_ood.errors import UserError
from hrtem_ood.units import mm_to_A

#: Degrees of the background and envelope polynomials in q. A rich background leaves nothing for the ring term
#: to fit but rings: with a poorer one, a near-zero defocus (whose ring term is a smooth q^4 rise) wins on
#: spectra whose background spans decades, as real micrographs' do (docs/matching.md).
BACKGROUND_DEGREE = 6
ENVELOPE_DEGREE = 2
#: The model's linear coefficients (both polynomials); the fit adds the defocus.
_N_LINEAR = BACKGROUND_DEGREE + ENVELOPE_DEGREE + 2
#: Trial defoci are spaced so that 2 chi changes by at most this much (rad) at the highest fitted frequency.
PHASE_STEP_RAD = 0.25
#: The interval of an estimate spans the trial defoci as good as the best within this many grid steps of it (plus
#: 5% of the defocus): the minimum's own basin, not a distant alias.
BASIN_STEPS = 10
#: Periods longer than 15 A (frequencies below 1/15 1/A) hold the shapes of particles and of the support's
#: thickness more than its Thon rings, and are left out of the fit.
MIN_FREQUENCY_PER_A = 1.0 / 15.0
#: A micrograph shows Thon rings when, in log power, they lower the chi-square of a background-only fit by
#: this much (in units of the speckle noise of the ring medians, scaled down by the fit's own misfit). White
#: noise, blurred noise and lattice-only images stay below 55 (tests/test_thon.py); the 20 real micrographs in
#: data/real/segtrack score 74-306. Simulated 256-pixel tiles mostly score less: too few pixels per ring.
MIN_RINGS_CHI2 = 60.0


class ThonError(UserError):
    """A micrograph whose Thon rings cannot be fitted."""


def electron_wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength in A: ``h c / sqrt(E (2 m c^2 + E))`` (0.019687 A at 300 keV)."""
    hc_eV_A = 12398.419843320026
    mc2_eV = 510998.95
    return hc_eV_A / float(np.sqrt(energy_eV * (2.0 * mc2_eV + energy_eV)))


def radial_power(image: np.ndarray, pixel_A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hann-windowed power spectrum's median over rings one frequency bin wide: frequencies (1/A, bin
    centres ``k dq`` with ``dq = 1 / (n pixel)`` for the shorter side ``n``), powers, and the number of
    frequency pixels in each ring (half the plane: the spectrum of a real image is symmetric)."""
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None]
    ps = np.abs(np.fft.rfft2((image - image.mean()) * win)) ** 2
    q = np.hypot(np.fft.fftfreq(h, pixel_A)[:, None], np.fft.rfftfreq(w, pixel_A)[None])
    dq = 1.0 / (min(h, w) * pixel_A)
    ring = np.rint(q / dq).astype(np.int64).ravel()
    order = np.argsort(ring, kind="stable")
    ring, values = ring[order], ps.ravel()[order]
    n_rings = int(min(h, w) // 2)  # rings up to the shorter side's Nyquist frequency
    edges = np.searchsorted(ring, np.arange(n_rings + 1))
    power = np.array([np.median(values[edges[k]:edges[k + 1]]) for k in range(n_rings)])
    return np.arange(n_rings) * dq, power, np.diff(edges)


@dataclass(frozen=True)
class Fit:
    """One micrograph's fit. ``defocus_A`` is the support's defocus in abTEM's sign, or its magnitude when
    ``sign_known`` is False (Cs = 0); ``interval_A`` the defoci whose residual lies within one noise variance
    of the best; ``rings_chi2`` how far the rings stand out of the noise (:data:`MIN_RINGS_CHI2`)."""

    defocus_A: float
    sign_known: bool
    interval_A: tuple[float, float]
    rings_chi2: float
    q_range_per_A: tuple[float, float]


def _basis(q: np.ndarray, degree: int) -> np.ndarray:
    x = q / q[-1]
    return np.stack([x**k for k in range(degree + 1)], axis=1)


def _rings(defoci_A: np.ndarray, q: np.ndarray, lam: float, Cs_A: float, thickness_A: float,
           dq: float) -> np.ndarray:
    """The ring term ``[1 - cos(2 chi) sinc(lambda t q^2) sinc(2 lambda |df| q dq)] / 2``, one row per defocus."""
    df = np.asarray(defoci_A, dtype=np.float64)[:, None]
    chi = -np.pi * lam * df * q**2 + 0.5 * np.pi * Cs_A * lam**3 * q**4
    damping = np.sinc(lam * thickness_A * q**2) * np.sinc(2.0 * lam * np.abs(df) * q * dq)
    return (1.0 - np.cos(2.0 * chi) * damping) / 2.0


def _rss(defoci_A: np.ndarray, q: np.ndarray, y: np.ndarray, weight: np.ndarray, lam: float, Cs_A: float,
         thickness_A: float, dq: float) -> np.ndarray:
    """Weighted residual sum of squares of the linear fit at each trial defocus (normal equations, batched)."""
    P, B = _basis(q, ENVELOPE_DEGREE), _background(q)
    yw = y * weight
    out = np.empty(len(defoci_A))
    for start in range(0, len(defoci_A), 256):
        rings = _rings(defoci_A[start:start + 256], q, lam, Cs_A, thickness_A, dq)
        X = np.concatenate([P[None] * rings[..., None], np.broadcast_to(B, rings.shape + B.shape[1:])], axis=2)
        X = X * weight[None, :, None]
        G = np.einsum("dqi,dqj->dij", X, X)
        b = np.einsum("dqi,q->di", X, yw)
        G += 1e-12 * np.trace(G, axis1=1, axis2=2)[:, None, None] * np.eye(G.shape[1])
        coef = np.linalg.solve(G, b[..., None])[..., 0]
        out[start:start + 256] = yw @ yw - np.einsum("di,di->d", b, coef)
    return out


def fit_defocus(q: np.ndarray, power: np.ndarray, counts: np.ndarray, *, energy_eV: float, Cs_mm: float,
                thickness_A: float, q_min_per_A: float, q_max_per_A: float, max_defocus_A: float) -> Fit:
    """Fit the radial profile ``power(q)`` with its ring pixel ``counts`` (from :func:`radial_power`) over
    ``[q_min, q_max]``: a scan over defocus in ``[0, max_defocus_A]`` (both signs when ``Cs_mm`` is not 0),
    refined to 0.1% of the grid step."""
    from scipy.ndimage import uniform_filter1d
    from scipy.optimize import minimize_scalar

    keep = (q >= q_min_per_A) & (q <= q_max_per_A)
    if keep.sum() < 2 * (_N_LINEAR + 1):
        raise ThonError(f"only {int(keep.sum())} frequency rings between {q_min_per_A:g} and {q_max_per_A:g} 1/A; "
                        "the micrograph is too small for this range")
    dq = float(q[1] - q[0])
    q, y, n = q[keep], np.asarray(power, dtype=np.float64)[keep], np.asarray(counts, dtype=np.float64)[keep]
    if not np.median(y) > 0:
        raise ThonError("the power spectrum is zero over most of the fitted band (a constant or blank image)")
    y = y / np.median(y)
    level = uniform_filter1d(y, 15, mode="nearest")
    level = np.maximum(level, 1e-9 * level.max())
    weight = 1.0 / level
    lam, Cs_A = electron_wavelength_A(energy_eV), mm_to_A(Cs_mm)
    step = PHASE_STEP_RAD / (2.0 * np.pi * lam * q_max_per_A**2)
    grid = np.arange(0.0, max_defocus_A + step, step)
    sign_known = Cs_mm != 0.0
    if sign_known:
        grid = np.concatenate([-grid[:0:-1], grid])
    args = (q, y, weight, lam, Cs_A, thickness_A, dq)
    rss = _rss(grid, *args)
    best = int(np.argmin(rss))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    res = minimize_scalar(lambda d: _rss(np.array([d]), *args)[0], bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-3 * step})
    defocus = float(res.x) if res.fun < rss[best] else float(grid[best])
    rss_min = min(float(res.fun), float(rss[best]))
    noise = rss_min / max(len(q) - (_N_LINEAR + 1), 1)
    within = grid[rss <= rss_min + noise]
    near = within[np.abs(within - defocus) <= BASIN_STEPS * step + 0.05 * abs(defocus)]
    interval = (float(min(near.min(), defocus)), float(max(near.max(), defocus))) if near.size else (defocus, defocus)
    # Do the rings stand out of the noise? In log power, a smooth background of any steepness is a polynomial,
    # and the log of the median of n exponential (speckle) powers has a standard deviation of about
    # 1 / (ln 2 sqrt(n)): the chi-square the rings at the fitted defocus gain over the background alone.
    noise_weight = np.log(2.0) * np.sqrt(np.maximum(n, 1.0))
    log_y = np.log(np.maximum(y, 1e-300))
    rings_rss = _lstsq_rss(_design(defocus, q, lam, Cs_A, thickness_A, dq), log_y, noise_weight)
    misfit = max(1.0, rings_rss / max(len(q) - _N_LINEAR, 1))
    gain = (_lstsq_rss(_background(q), log_y, noise_weight) - rings_rss) / misfit
    return Fit(defocus, sign_known, interval, float(gain), (float(q_min_per_A), float(q_max_per_A)))


def _background(q: np.ndarray) -> np.ndarray:
    return _basis(q, BACKGROUND_DEGREE)


def _design(defocus_A: float, q: np.ndarray, lam: float, Cs_A: float, thickness_A: float, dq: float) -> np.ndarray:
    """The model's columns at one defocus: the envelope polynomial times the rings, then the background."""
    rings = _rings(np.array([defocus_A]), q, lam, Cs_A, thickness_A, dq)[0]
    return np.concatenate([_basis(q, ENVELOPE_DEGREE) * rings[:, None], _background(q)], axis=1)


def _lstsq_rss(X: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(X * weight[:, None], y * weight, rcond=None)
    return float(np.sum((y * weight - (X * weight[:, None]) @ coef) ** 2))


def default_q_range(pixel_A: float) -> tuple[float, float]:
    """The fitted band: from :data:`MIN_FREQUENCY_PER_A` to 80% of Nyquist."""
    return MIN_FREQUENCY_PER_A, 0.8 / (2.0 * pixel_A)


def estimate_defocus(image: np.ndarray, pixel_A: float, *, energy_eV: float, Cs_mm: float, thickness_A: float,
                     max_defocus_A: float, q_range_per_A: tuple[float, float] | None = None) -> Fit:
    """:func:`fit_defocus` on one micrograph, over :func:`default_q_range` unless a range is given."""
    image = np.asarray(image, dtype=np.float64)
    q_min, q_max = q_range_per_A or default_q_range(pixel_A)
    return fit_defocus(*radial_power(image, pixel_A), energy_eV=energy_eV, Cs_mm=Cs_mm, thickness_A=thickness_A,
                       q_min_per_A=q_min, q_max_per_A=q_max, max_defocus_A=max_defocus_A)


def summarize(fits: list[Fit]) -> dict:
    """The set's defocus: the median over micrographs; the spread between micrographs as a robust standard
    deviation (1.4826 MAD; 0 for one micrograph); and the median's uncertainty (that deviation / sqrt(n), or the
    one fit's interval half-width)."""
    values = np.array([f.defocus_A for f in fits])
    median = float(np.median(values))
    sd = 1.4826 * float(np.median(np.abs(values - median)))
    uncertainty = sd / np.sqrt(len(values)) if len(values) > 1 else (fits[0].interval_A[1] - fits[0].interval_A[0]) / 2
    return {"defocus_A": median, "uncertainty_A": float(uncertainty), "sd_A": sd,
            "sign_known": all(f.sign_known for f in fits), "n_micrographs": len(fits)}


def particle_plane_nm(support_defocus_nm: float, sign_known: bool, offset_nm: float) -> list[float]:
    """The defocus at the particles' calibrated zero (the domains' convention, abTEM's sign) for a support
    defocus: ``support - offset`` (the support lies ``offset`` nm below the particles' zero plane). With the
    sign unknown, both candidates ``+|support| - offset`` and ``-|support| - offset``."""
    if sign_known:
        return [support_defocus_nm - offset_nm]
    mag = abs(support_defocus_nm)
    return [mag - offset_nm, -mag - offset_nm] if mag > 0 else [-offset_nm]


def candidate_error_nm(support_nm: np.ndarray, particle_nm: np.ndarray, sign_known: bool,
                       offset_nm: float) -> np.ndarray:
    """Per micrograph: the distance of its nearer particle-plane candidate (:func:`particle_plane_nm`) from the
    true particle-plane defocus."""
    return np.array([min(abs(c - t) for c in particle_plane_nm(s, sign_known, offset_nm))
                     for s, t in zip(support_nm, particle_nm, strict=True)])


def calibrate_offset_nm(support_nm: np.ndarray, particle_nm: np.ndarray, sign_known: bool,
                        step_nm: float = 0.05, max_nm: float = 30.0) -> float:
    """The support-to-particle offset that minimises the median :func:`candidate_error_nm` over the micrographs
    (a scan over ``[-max_nm, max_nm]``; the lowest such offset on ties)."""
    grid = np.round(np.arange(-max_nm, max_nm + step_nm / 2, step_nm), 6)
    errors = [float(np.median(candidate_error_nm(support_nm, particle_nm, sign_known, c))) for c in grid]
    return float(grid[int(np.argmin(errors))])


def estimate_set(images: list[tuple[str, np.ndarray, float]], *, energy_eV: float, Cs_mm: float,
                 thickness_A: float, max_defocus_A: float,
                 q_range_per_A: tuple[float, float] | None = None) -> dict:
    """A user's micrographs ``(name, image, pixel size in A)``: each one's fit, and the set's :func:`summarize`
    over those that show Thon rings (:data:`MIN_RINGS_CHI2`). Raises :class:`ThonError` naming the
    micrographs when none does."""
    fits = {name: estimate_defocus(image, pixel, energy_eV=energy_eV, Cs_mm=Cs_mm, thickness_A=thickness_A,
                                   max_defocus_A=max_defocus_A, q_range_per_A=q_range_per_A)
            for name, image, pixel in images}
    kept = [f for f in fits.values() if f.rings_chi2 >= MIN_RINGS_CHI2]
    if not kept:
        names = ", ".join(list(fits)[:3]) + (", ..." if len(fits) > 3 else "")
        best = max(f.rings_chi2 for f in fits.values())
        raise ThonError(f"{names}: no Thon rings stand out of the noise (best {best:.0f} < {MIN_RINGS_CHI2:g}); "
                        "no amorphous background to fit")
    return {"fits": fits, "summary": summarize(kept)}
