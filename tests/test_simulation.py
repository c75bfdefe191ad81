"""Multislice of a real (small) scene: normalisation, labels vs the particle outline, calibration."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from skimage.draw import polygon

from hrtem_ood.calibration import contrast_vs_defocus
from hrtem_ood.simulation import label_from_phase, simulate_scene
from hrtem_ood.structures import build_scene


@pytest.fixture(scope="module")
def scene():
    from conftest import tiny_params

    p = tiny_params()
    p["structures"]["field_A"] = 48.0
    p["structures"]["particles"]["diameter_A"] = [34.0, 38.0]  # the study's 3-5 nm range
    full, part, spec = build_scene(p["structures"], 0, "train", 2024)
    task = {"scene_id": 0, "numbers": full.numbers, "positions": full.positions, "cell": np.diag(full.cell.array),
            "is_particle": np.arange(len(full)) < len(part), "sim": p["simulate"], "Cs_mm": 0.5, "seed": 3}
    return p, full, part, spec, simulate_scene(task)


def test_exit_wave_is_vacuum_normalised(scene):
    p, *_, res = scene
    w = res["waves"]
    n = round(p["structures"]["field_A"] / p["simulate"]["output_sampling_A"])
    assert w.shape == (1, n, n) and w.dtype == np.complex64
    assert np.mean(np.abs(w) ** 2) == pytest.approx(1.0, abs=0.02)


def test_label_matches_projected_particle_outline(scene):
    p, full, part, spec, res = scene
    s = p["simulate"]["output_sampling_A"]
    xy = part.positions[:, :2] / s
    hull = xy[ConvexHull(xy).vertices]
    outline = np.zeros(res["mask"].shape, bool)
    rr, cc = polygon(hull[:, 0], hull[:, 1], outline.shape)  # array axis 0 = x in abTEM
    outline[rr, cc] = True
    mask = res["mask"].astype(bool)
    iou = (mask & outline).sum() / (mask | outline).sum()
    # |phase| > pi/16 leaves out the thin rim of a sphere: the label sits inside the outline
    assert iou > 0.6, iou
    assert (mask & ~outline).sum() < 0.05 * mask.sum()


def test_threshold_order_matters_for_weak_particles():
    """|phase| on atomic columns only: smoothing first keeps a disc, thresholding first keeps dots."""
    n = 96
    phase = np.zeros((n, n))
    yy, xx = np.mgrid[:n, :n]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 20**2
    phase[(yy % 8 < 4) & (xx % 8 < 4) & disc] = 0.4  # column peaks above the threshold, mean 0.1 below
    wave = np.exp(1j * phase)
    a = label_from_phase(wave, 0.2, 0.05, 1.0, "smooth_then_threshold")
    b = label_from_phase(wave, 0.2, 0.05, 1.0, "threshold_then_smooth")
    assert a[disc].mean() > 0.95 and a[~disc].mean() < 0.05
    assert b[disc].mean() < 0.6


def test_calibration_minimises_particle_contrast(scene):
    p, full, part, spec, res = scene
    from hrtem_ood.simulation import exit_waves

    pw = exit_waves(part, p["simulate"], 1, 0)[0]
    z0 = res["zero_defocus_A"]
    grid = z0 + np.array([-40.0, -10.0, -2.0, 0.0, 2.0, 10.0, 40.0])
    c = contrast_vs_defocus(pw, p["simulate"]["output_sampling_A"], 300e3, grid, 0.5)
    assert np.argmin(c) == 3


def test_band_limited_calibration_of_a_real_particle_has_one_minimum(scene):
    """Cs = 0.5 mm, a real CdSe particle: band-limited to the first lattice fringes (|q| <= 0.35 1/A)
    the contrast has a single minimum over +-30 nm, and the calibration finds it, in underfocus
    (positive defocus balances Cs)."""
    p, full, part, spec, res = scene
    from hrtem_ood.calibration import band_limit, minimum_contrast_defocus
    from hrtem_ood.simulation import exit_waves

    s = p["simulate"]["output_sampling_A"]
    pw = exit_waves(part, p["simulate"], 1, 0)[0]
    grid = np.arange(-300.0, 301.0, 5.0)
    c = contrast_vs_defocus(band_limit(pw, s, 0.35), s, 300e3, grid, 0.5)
    local_minima = [i for i in range(1, len(c) - 1) if c[i] < c[i - 1] and c[i] < c[i + 1]]
    assert len(local_minima) == 1
    z0 = minimum_contrast_defocus(pw, s, 300e3, 0.5, 300.0, 2.0, 0.1, q_max_per_A=0.35)
    assert abs(z0 - grid[local_minima[0]]) <= 5.0
    assert z0 > 0


def test_gaussian_focus_calibration_skips_the_search(scene):
    p, full, part, spec, res = scene
    assert res["zero_defocus_A"] != 0.0  # Cs = 0.5 mm: the minimum-contrast defocus is not Gaussian focus
    sim = {**p["simulate"], "calibration": {**p["simulate"]["calibration"], "method": "gaussian_focus"}}
    task = {"scene_id": 0, "numbers": part.numbers, "positions": part.positions, "cell": np.diag(part.cell.array),
            "is_particle": np.ones(len(part), bool), "sim": sim, "Cs_mm": 0.5, "seed": 3}
    assert simulate_scene(task)["zero_defocus_A"] == 0.0


def test_labels_emptied_by_smoothing_stop_the_stage_and_come_back_with_less(params, tmp_path):
    """Smoothing spreads the particle's phase and so lowers its peak: too much of it empties the labels of
    small particles, the stage stops, writes nothing, and names the way back (less smoothing)."""
    from hrtem_ood.datasets import read_h5
    from hrtem_ood.stages.simulate import write_exitwaves
    from hrtem_ood.stages.structures import write_structures

    params["structures"].update(n_train=1, n_val=1, n_test=1)
    write_structures(params, tmp_path / "s")
    params["simulate"]["label"]["smoothing_A"] = 8.0
    with pytest.raises(RuntimeError, match=r"scenes \[0, 1, 2\] .* empty .*; lower simulate\.label\.smoothing_A"):
        write_exitwaves(params, tmp_path / "s", tmp_path / "e")
    assert not (tmp_path / "e").exists()
    params["simulate"]["label"]["smoothing_A"] = 1.0
    write_exitwaves(params, tmp_path / "s", tmp_path / "e")
    masks = read_h5(tmp_path / "e" / "exitwaves.h5")[0]["masks"]
    assert len(masks) == 3 and all(m.sum() > 0 for m in masks)
