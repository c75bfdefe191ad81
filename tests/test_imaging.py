"""Image formation against closed-form physics."""

import numpy as np
import pytest

from hrtem_ood.imaging import (
    chi_rad,
    configure_abtem,
    contrast_vs_defocus,
    image_intensity,
    make_ctf,
    minimum_contrast_defocus,
    poisson_counts,
    wavelength_A,
)

configure_abtem("numpy")


def test_wavelength_300kV():
    # lambda = h / sqrt(2 m e U (1 + e U / 2 m c^2)) = 0.019687 A at 300 kV
    assert wavelength_A(300e3) == pytest.approx(0.0196875, abs=2e-7)
    assert wavelength_A(200e3) == pytest.approx(0.0250793, abs=2e-7)


@pytest.mark.parametrize("defocus_A, Cs_mm", [(500.0, 0.5), (-300.0, 1.2), (200.0, 0.0)])
def test_ctf_zero_crossings_match_closed_form_chi(defocus_A, Cs_mm):
    ctf = make_ctf(defocus_A, Cs_mm, 0.0, 300e3)
    prof = ctf.profiles(gpts=4000, max_angle=25)
    q = np.arange(prof.array.shape[-1]) * prof.sampling
    numeric = np.asarray(prof.array[0] if prof.array.ndim == 2 else prof.array).real
    analytic = -np.sin(chi_rad(q, defocus_A, Cs_mm * 1e7, 300e3))
    zn = q[2:][np.diff(np.sign(numeric[1:])) != 0]
    za = q[2:][np.diff(np.sign(analytic[1:])) != 0]
    assert len(zn) == len(za) and len(za) >= 3
    assert np.max(np.abs(zn - za)) < 3 * prof.sampling
    # first zero of a pure-defocus CTF: q1 = 1 / sqrt(lambda |defocus|)
    if Cs_mm == 0:
        assert za[0] == pytest.approx(1 / np.sqrt(wavelength_A(300e3) * abs(defocus_A)), rel=0.01)


def test_focal_spread_envelope_uses_standard_deviation():
    sigma = 10.0
    ctf = make_ctf(0.0, 0.0, sigma, 300e3)
    prof = ctf.profiles(gpts=1000, max_angle=40)
    q = np.arange(prof.array.shape[-1]) * prof.sampling
    envelope = np.asarray(prof.array[1]).real
    lam = wavelength_A(300e3)
    expected = np.exp(-0.5 * (np.pi * lam * sigma) ** 2 * q**4)
    assert np.allclose(envelope, expected, atol=1e-4)


def test_poisson_counts_mean_and_variance_match_dose():
    intensity = np.full((256, 256), 1.0, np.float32)
    counts = poisson_counts(intensity, 0.2, 400.0, seed=7)
    expected = 400.0 * 0.2**2  # 16 electrons per pixel
    assert counts.mean() == pytest.approx(expected, rel=0.01)
    assert counts.var() == pytest.approx(expected, rel=0.03)
    assert np.all(counts == np.round(counts))
    assert np.array_equal(counts, poisson_counts(intensity, 0.2, 400.0, seed=7))
    assert not np.array_equal(counts, poisson_counts(intensity, 0.2, 400.0, seed=8))


def _phase_object(n=128, sampling=0.2, strength=0.3):
    y, x = np.mgrid[:n, :n] * sampling
    c = n * sampling / 2
    blob = np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * 6.0**2))
    rng = np.random.default_rng(0)
    fringes = 0.3 * np.cos(2 * np.pi * (x / 3.5 + rng.uniform()))
    return np.exp(1j * strength * blob * (1 + fringes)).astype(np.complex64)


def test_pure_phase_object_has_minimum_contrast_in_focus():
    wave = _phase_object()
    assert contrast_vs_defocus(wave, 0.2, 300e3, np.array([0.0]), 0.0)[0] < 1e-10
    assert minimum_contrast_defocus(wave, 0.2, 300e3, 0.0, 100.0, 1.0, 0.1) == pytest.approx(0.0, abs=0.11)


def test_calibration_recovers_a_known_propagation():
    """Defocusing a phase object by d0 moves its minimum-contrast defocus to -d0."""
    d0 = 37.3
    wave = _phase_object()
    import abtem

    shifted = abtem.Waves(wave, energy=300e3, sampling=0.2).apply_ctf(make_ctf(d0, 0.0, 0.0, 300e3)).array
    z0 = minimum_contrast_defocus(np.asarray(shifted), 0.2, 300e3, 0.0, 100.0, 1.0, 0.1)
    assert z0 == pytest.approx(-d0, abs=0.11)
    c = contrast_vs_defocus(np.asarray(shifted), 0.2, 300e3, np.array([z0 - 5, z0, z0 + 5]), 0.0)
    assert c[1] < c[0] and c[1] < c[2]


def test_defocus_reverses_contrast_of_weak_phase_object():
    """Weak phase object, Cs = 0: +df and -df images are contrast-inverted around the mean."""
    wave = _phase_object(strength=0.05)[None]
    plus = image_intensity(wave, 0.2, 300e3, 50.0, 0.0, 0.0)
    minus = image_intensity(wave, 0.2, 300e3, -50.0, 0.0, 0.0)
    corr = np.corrcoef((plus - plus.mean()).ravel(), (minus - minus.mean()).ravel())[0, 1]
    assert corr < -0.95
