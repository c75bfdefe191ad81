"""Image formation against closed-form physics."""

import numpy as np
import pytest

from hrtem_ood.physics.calibration import band_limit, contrast_vs_defocus, minimum_contrast_defocus
from hrtem_ood.physics.ctf import chi_rad, configure_abtem, ctf_overlap, make_ctf, phase_ctf, wavelength_A
from hrtem_ood.physics.imaging import image_intensity, poisson_counts

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


def test_phase_ctf_matches_abtem_ctf_with_focal_spread():
    ctf = make_ctf(300.0, 0.5, 10.0, 300e3)
    prof = ctf.profiles(gpts=1000, max_angle=30)
    q = np.arange(prof.array.shape[-1]) * prof.sampling
    abtem_total = np.asarray(prof.array[0] if prof.array.ndim == 2 else prof.array).real
    # abTEM's CTF is -sin(chi) times the envelopes (its sign convention for the phase term)
    assert np.allclose(-phase_ctf(q, 300.0, 0.5e7, 300e3, 10.0), abtem_total, atol=1e-4)


def test_ctf_overlap_against_closed_form():
    lam, qm = wavelength_A(300e3), 0.6
    # Cs = 0, no envelope: chi = -pi lam df q^2; with u = q^2 (q dq = du / 2) the overlap integrals are
    # int_0^U sin(a u) sin(b u) du = [sin((a-b)U)/(a-b) - sin((a+b)U)/(a+b)] / 2, and U/2 - sin(2aU)/(4a) for a = b
    def integral(a, b, U):
        if a == b:
            return U / 2 - np.sin(2 * a * U) / (4 * a)
        return (np.sin((a - b) * U) / (a - b) - np.sin((a + b) * U) / (a + b)) / 2

    da, db = 150.0, 400.0
    a, b, U = np.pi * lam * da, np.pi * lam * db, qm**2
    expected = integral(a, b, U) / np.sqrt(integral(a, a, U) * integral(b, b, U))
    assert ctf_overlap(da, db, 0.0, 300e3, qm) == pytest.approx(expected, abs=1e-5)
    assert ctf_overlap(da, da, 0.5, 300e3, qm, 10.0) == pytest.approx(1.0)
    # Cs = 0: +df and -df are contrast-inverted copies; spherical aberration breaks the symmetry
    assert ctf_overlap(200.0, -200.0, 0.0, 300e3, qm, 10.0) == pytest.approx(-1.0)
    assert ctf_overlap(200.0, -200.0, 1.2, 300e3, qm, 10.0) > -0.9


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


def test_ctf_overlap_command_correlates_overlap_with_the_ood_gap(tmp_path, params, monkeypatch):
    """Pretraining results built so that the OOD gap falls exactly as the CTF overlap rises: the command
    must pair each (pretrain, eval) gap with the overlap at the calibrated absolute defoci. Rows of a
    second learning rate carry unrelated losses; ``aggregate.filters`` excludes them, as it does in the
    aggregate stage, so they must not reach the cells."""
    import json

    from hrtem_ood.config.params import validate
    from hrtem_ood.results.analysis import run_ctf_overlap
    from hrtem_ood.results.columns import RESULT_COLUMNS

    monkeypatch.chdir(tmp_path)
    zero_A = 80.0
    (tmp_path / "ew").mkdir()
    (tmp_path / "ew" / "summary.json").write_text(json.dumps({"zero_defocus_A": [60.0, zero_A, 200.0]}))
    res = tmp_path / "metrics/results/pretrain"
    res.mkdir(parents=True)
    im, expected = params["imaging"], {}
    for p in params["pretrain"]["domains"]:
        lines = [",".join(RESULT_COLUMNS)]
        for d, dom in params["domains"].items():
            ov = ctf_overlap(zero_A + 10 * params["domains"][p]["defocus_nm"], zero_A + 10 * dom["defocus_nm"],
                             im["Cs_mm"], 300e3, 0.5, im["focal_spread_A"])
            loss = 0.1 + 0.05 * (1 - ov) if d != p else 0.1
            if d != p:
                expected[(p, d)] = (ov, loss - 0.1)
            lines.append(f"r{p},pretrain,{p},{p},{d},paper_loss,{loss},0,,,0.001,,1")
            lines.append(f"q{p},pretrain,{p},{p},{d},paper_loss,{5.0 - loss},0,,,0.0001,,1")
        (res / f"{p}.csv").write_text("\n".join(lines) + "\n")
    params["aggregate"]["filters"] = {"lr_pretrain": [0.001]}
    out = run_ctf_overlap(validate(params), tmp_path / "ew", 0.5, tmp_path / "o.json")
    assert out["zero_defocus_A_median"] == zero_A
    assert len(out["pairs"]) == len(expected) == 4
    for t in out["pairs"]:
        ov, gap = expected[(t["pretrain"], t["eval"])]
        assert t["ctf_overlap"] == pytest.approx(ov, abs=1e-4) and t["ood_gap"] == pytest.approx(gap, abs=1e-6)
    assert out["spearman_overlap_vs_gap"] == pytest.approx(-1.0)
    assert json.loads((tmp_path / "o.json").read_text())["pairs"] == out["pairs"]


def test_band_limit_removes_exactly_the_frequencies_beyond_q_max():
    rng = np.random.default_rng(0)
    wave = np.exp(1j * 0.3 * rng.standard_normal((64, 64))).astype(np.complex64)
    out = band_limit(wave, 0.2, 0.6)
    q = np.hypot(*np.meshgrid(np.fft.fftfreq(64, 0.2), np.fft.fftfreq(64, 0.2)))
    spec_in, spec_out = np.fft.fft2(wave), np.fft.fft2(out)
    assert np.abs(spec_out[q > 0.6]).max() < 1e-3 * np.abs(spec_in).max()
    np.testing.assert_allclose(spec_out[q <= 0.6], spec_in[q <= 0.6], rtol=1e-4, atol=1e-3)


def test_band_limited_calibration_recovers_a_known_propagation():
    """Band-limiting the calibration to |q| <= 0.3 1/A keeps the minimum where the object is in focus."""
    import abtem

    d0 = 60.0
    wave = _phase_object(strength=0.05)
    shifted = np.asarray(abtem.Waves(wave, energy=300e3, sampling=0.2).apply_ctf(make_ctf(d0, 0.0, 0.0, 300e3)).array)
    z0 = minimum_contrast_defocus(shifted, 0.2, 300e3, 0.0, 150.0, 1.0, 0.1, q_max_per_A=0.3)
    # the sharp aperture leaves a little amplitude ringing that moves the minimum by ~1 A (of 5 nm steps)
    assert z0 == pytest.approx(-d0, abs=2.0)


def test_objective_aperture_blocks_fringes_beyond_its_cutoff():
    """Unscattered beam plus one weak beam at q: the image shows fringes of period 1/q unless the
    aperture (semiangle alpha, cutoff alpha / lambda) excludes q."""
    n, s = 128, 0.2
    x = np.arange(n) * s
    lam = wavelength_A(300e3)
    fringes = {}
    for q in (8 / 25.6, 13 / 25.6):  # 8 and 13 periods across the 25.6 A field: 0.31 and 0.51 1/A
        wave = (1 + 0.1 * np.exp(2j * np.pi * q * x))[None, None, :].repeat(n, axis=1).astype(np.complex64)
        for aperture in (None, 0.4 * lam * 1e3):  # cutoff 0.4 1/A
            img = image_intensity(wave, s, 300e3, 0.0, 0.0, 0.0, aperture)
            fringes[q, aperture is not None] = float(img.std())
    inside, outside = 8 / 25.6, 13 / 25.6
    assert fringes[outside, False] > 0.1 and fringes[inside, False] > 0.1
    assert fringes[inside, True] == pytest.approx(fringes[inside, False], rel=1e-3)  # inside the aperture
    assert fringes[outside, True] < 1e-3  # outside: gone
