"""The defocus from Thon rings, against closed-form phase-contrast images of an amorphous support: a white random
phase filtered by the weak-phase transfer sin(chi), chi written out here from its textbook form; the wavelength
against abTEM's; the ring check on images without rings; the sign and the support-to-particle offset."""

import numpy as np
import pytest

from hrtem_ood.physics import thon

E_300 = 300e3


def chi_textbook(q, defocus_A, Cs_mm, energy_eV):
    """chi = pi lambda (-defocus) q^2 + (pi / 2) Cs lambda^3 q^4, with the wavelength from h, m and c."""
    h, m, c, e = 6.62607015e-34, 9.1093837015e-31, 299792458.0, 1.602176634e-19
    lam = h / np.sqrt(2 * m * e * energy_eV * (1 + e * energy_eV / (2 * m * c**2))) * 1e10
    return -np.pi * lam * defocus_A * q**2 + 0.5 * np.pi * Cs_mm * 1e7 * lam**3 * q**4


def support_image(n, pixel_A, defocus_A, *, Cs_mm=0.0, energy_eV=E_300, thickness_A=0.0, slices=1, seed=0,
                  noise=0.05):
    """Bright-field image of a weak amorphous phase object (white phase noise) through sin(chi), as the sum of
    ``slices`` independent slices spread evenly over ``thickness_A`` around ``defocus_A``; plus white noise."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n, pixel_A)
    q = np.hypot(f[:, None], f[None])
    spectrum = np.zeros((n, n), complex)
    for z in np.linspace(-thickness_A / 2, thickness_A / 2, slices):
        phase = np.fft.fft2(rng.normal(0.0, 1.0, (n, n)))
        spectrum += phase * np.sin(chi_textbook(q, defocus_A + z, Cs_mm, energy_eV))
    image = 1.0 + 0.05 * np.fft.ifft2(spectrum).real / np.sqrt(slices)
    return image + rng.normal(0.0, noise * image.std(), (n, n))


@pytest.mark.parametrize("energy_keV", [80, 200, 300])
def test_wavelength_matches_abtem(energy_keV):
    from abtem.core.energy import energy2wavelength

    assert thon.electron_wavelength_A(energy_keV * 1e3) == pytest.approx(energy2wavelength(energy_keV * 1e3),
                                                                         rel=1e-6)


@pytest.mark.parametrize("pixel_A, defocus_A", [(0.2, 60.0), (0.2, 150.0), (0.2, -250.0), (0.57, 1800.0),
                                                (1.0, 4000.0)])
def test_recovers_the_magnitude_of_a_known_defocus(pixel_A, defocus_A):
    """Cs = 0: the magnitude within 1% (or 1 A), the sign left open."""
    image = support_image(512, pixel_A, defocus_A, seed=int(abs(defocus_A)))
    fit = thon.estimate_defocus(image, pixel_A, energy_eV=E_300, Cs_mm=0.0, thickness_A=0.0, max_defocus_A=5000.0)
    assert not fit.sign_known
    assert fit.defocus_A == pytest.approx(abs(defocus_A), rel=0.01, abs=1.0)
    assert fit.rings_chi2 >= thon.MIN_RINGS_CHI2


@pytest.mark.parametrize("defocus_A", [-900.0, 900.0])
def test_spherical_aberration_decides_the_sign(defocus_A):
    image = support_image(512, 0.5, defocus_A, Cs_mm=1.2, seed=3)
    fit = thon.estimate_defocus(image, 0.5, energy_eV=E_300, Cs_mm=1.2, thickness_A=0.0, max_defocus_A=3000.0)
    assert fit.sign_known
    assert fit.defocus_A == pytest.approx(defocus_A, rel=0.01)


def test_other_beam_energy():
    image = support_image(512, 0.5, 1200.0, energy_eV=200e3, seed=5)
    fit = thon.estimate_defocus(image, 0.5, energy_eV=200e3, Cs_mm=0.0, thickness_A=0.0, max_defocus_A=3000.0)
    assert fit.defocus_A == pytest.approx(1200.0, rel=0.01)


def test_a_thick_support_is_fitted_at_its_middle_plane():
    """A 10 nm support of 11 slices: the fit with the thickness in the model finds the middle plane."""
    image = support_image(512, 0.2, 120.0, thickness_A=100.0, slices=11, seed=7)
    fit = thon.estimate_defocus(image, 0.2, energy_eV=E_300, Cs_mm=0.0, thickness_A=100.0, max_defocus_A=1000.0)
    assert fit.defocus_A == pytest.approx(120.0, abs=5.0)


def _lattice(n, seed):
    rng = np.random.default_rng(seed)
    y, x = np.indices((n, n))
    a = rng.uniform(0, np.pi)
    return (np.cos(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / 11.0)
            + 0.5 * np.cos(2 * np.pi * (x * np.cos(a + 1) + y * np.sin(a + 1)) / 8.0) + rng.normal(0, 0.3, (n, n)))


def _blurred(n, sigma_px, seed):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.random.default_rng(seed).normal(size=(n, n)), sigma_px)


@pytest.mark.parametrize("image", [
    pytest.param(lambda: np.random.default_rng(1).normal(size=(512, 512)), id="white-noise"),
    pytest.param(lambda: _lattice(512, 2), id="lattice-only"),
    pytest.param(lambda: _blurred(512, 1.5, 3), id="blurred-noise"),
    pytest.param(lambda: _blurred(512, 3.0, 4), id="strongly-blurred-noise"),
])
def test_images_without_rings_fail_the_ring_check(image):
    fit = thon.estimate_defocus(image(), 0.57, energy_eV=E_300, Cs_mm=0.0, thickness_A=100.0,
                                max_defocus_A=5000.0)
    assert fit.rings_chi2 < thon.MIN_RINGS_CHI2


def test_set_without_rings_is_refused_in_one_line_naming_the_files():
    noise = [(f"blank_{k}", np.random.default_rng(k).normal(size=(256, 256)), 0.5) for k in range(4)]
    with pytest.raises(thon.ThonError, match=r"^blank_0, blank_1, blank_2, \.\.\.: no Thon rings"):
        thon.estimate_set(noise, energy_eV=E_300, Cs_mm=0.0, thickness_A=0.0, max_defocus_A=2000.0)


def test_set_leaves_out_micrographs_without_rings_and_takes_the_median():
    images = [(f"m{k}", support_image(512, 0.5, d, seed=k), 0.5) for k, d in enumerate((1000.0, 1100.0, 1300.0))]
    images.append(("blank", np.random.default_rng(9).normal(size=(512, 512)), 0.5))
    found = thon.estimate_set(images, energy_eV=E_300, Cs_mm=0.0, thickness_A=0.0, max_defocus_A=3000.0)
    assert set(found["fits"]) == {"m0", "m1", "m2", "blank"}
    s = found["summary"]
    assert s["n_micrographs"] == 3 and not s["sign_known"]
    assert s["defocus_A"] == pytest.approx(1100.0, rel=0.01)
    assert s["sd_A"] == pytest.approx(1.4826 * 100.0, rel=0.05)


def test_tiny_or_blank_images_are_refused():
    with pytest.raises(thon.ThonError, match="too small"):
        thon.estimate_defocus(np.random.default_rng(0).normal(size=(32, 32)), 0.2, energy_eV=E_300, Cs_mm=0.0,
                              thickness_A=0.0, max_defocus_A=500.0)
    with pytest.raises(thon.ThonError, match="constant or blank"):
        thon.estimate_defocus(np.ones((256, 256)), 0.2, energy_eV=E_300, Cs_mm=0.0, thickness_A=0.0,
                              max_defocus_A=500.0)


def test_particle_plane_candidates_and_offset_calibration():
    assert thon.particle_plane_nm(20.0, True, 6.0) == [14.0]
    assert thon.particle_plane_nm(20.0, False, 6.0) == [14.0, -26.0]
    rng = np.random.default_rng(0)
    particle = rng.uniform(-25, 25, 300)
    support = np.abs(particle + 6.4 + rng.normal(0, 0.5, 300))  # Cs = 0: magnitudes only
    assert thon.calibrate_offset_nm(support, particle, False) == pytest.approx(6.4, abs=0.15)
    err = thon.candidate_error_nm(support, particle, False, 6.4)
    assert np.median(err) < 0.5
