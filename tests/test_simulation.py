"""Multislice of a real (small) scene: normalisation, labels vs the particle outline, calibration."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from skimage.draw import polygon

from hrtem_ood.config.params import validate
from hrtem_ood.physics.calibration import contrast_vs_defocus
from hrtem_ood.physics.simulation import label_from_phase, simulate_scene
from hrtem_ood.physics.structures import build_scene


@pytest.fixture(scope="module")
def scene():
    from conftest import tiny_params

    p = tiny_params()
    p["structures"]["field_A"] = 48.0
    p["structures"]["particles"]["diameter_A"] = [34.0, 38.0]  # the study's 3-5 nm range
    p = validate(p)
    full, part, spec = build_scene(p.structures, 0, "train", 2024)
    task = {"scene_id": 0, "numbers": full.numbers, "positions": full.positions, "cell": np.diag(full.cell.array),
            "is_particle": np.arange(len(full)) < len(part), "sim": p.simulate, "Cs_mm": 0.5, "seed": 3}
    return p, full, part, spec, simulate_scene(task)


def test_exit_wave_is_vacuum_normalised(scene):
    p, *_, res = scene
    w = res["waves"]
    n = round(p.structures.field_A / p.simulate.output_sampling_A)
    assert w.shape == (1, n, n) and w.dtype == np.complex64
    assert np.mean(np.abs(w) ** 2) == pytest.approx(1.0, abs=0.02)


def test_label_matches_projected_particle_outline(scene):
    p, full, part, spec, res = scene
    s = p.simulate.output_sampling_A
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
    from hrtem_ood.physics.simulation import exit_waves

    pw = exit_waves(part, p.simulate, 1, 0)[0]
    z0 = res["zero_defocus_A"]
    grid = z0 + np.array([-40.0, -10.0, -2.0, 0.0, 2.0, 10.0, 40.0])
    c = contrast_vs_defocus(pw, p.simulate.output_sampling_A, 300e3, grid, 0.5)
    assert np.argmin(c) == 3


def test_band_limited_calibration_of_a_real_particle_has_one_minimum(scene):
    """Cs = 0.5 mm, a real CdSe particle: band-limited to the first lattice fringes (|q| <= 0.35 1/A)
    the contrast has a single minimum over +-30 nm, and the calibration finds it, in underfocus
    (positive defocus balances Cs)."""
    p, full, part, spec, res = scene
    from hrtem_ood.physics.calibration import band_limit, minimum_contrast_defocus
    from hrtem_ood.physics.simulation import exit_waves

    s = p.simulate.output_sampling_A
    pw = exit_waves(part, p.simulate, 1, 0)[0]
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
    sim = p.simulate.model_copy(update={"calibration": p.simulate.calibration.model_copy(
        update={"method": "gaussian_focus"})})
    task = {"scene_id": 0, "numbers": part.numbers, "positions": part.positions, "cell": np.diag(part.cell.array),
            "is_particle": np.ones(len(part), bool), "sim": sim, "Cs_mm": 0.5, "seed": 3}
    assert simulate_scene(task)["zero_defocus_A"] == 0.0


def test_labels_emptied_by_smoothing_stop_the_stage_and_come_back_with_less(params, tmp_path):
    """Smoothing spreads the particle's phase and so lowers its peak: too much of it empties the labels of
    small particles, the stage stops, writes nothing, and names the way back (less smoothing)."""
    from hrtem_ood.dataio.datasets import read_h5
    from hrtem_ood.stages.simulate import write_exitwaves
    from hrtem_ood.stages.structures import write_structures

    params["structures"].update(n_train=1, n_val=1, n_test=1)
    params["transfer"]["n_images"] = 1
    write_structures(validate(params), tmp_path / "s")
    params["simulate"]["label"]["smoothing_A"] = 8.0
    with pytest.raises(RuntimeError, match=r"scenes \[0, 1, 2\] .* empty .*; lower simulate\.label\.smoothing_A"):
        write_exitwaves(validate(params), tmp_path / "s", tmp_path / "e")
    assert not (tmp_path / "e").exists()
    params["simulate"]["label"]["smoothing_A"] = 1.0
    write_exitwaves(validate(params), tmp_path / "s", tmp_path / "e")
    masks = read_h5(tmp_path / "e" / "exitwaves.h5")[0]["masks"]
    assert len(masks) == 3 and all(m.sum() > 0 for m in masks)


def test_vacuum_merged_slices_keep_abtems_slices_where_atoms_are():
    """abTEM cuts a 21 A cell into ceil(21 / 2) = 11 slices of 21/11 A; atoms in slices 0, 1 and 7 keep theirs,
    and each run of empty slices becomes one: 2 + merged(3..7)... in order, summing to the cell."""
    from hrtem_ood.physics.simulation import vacuum_merged_slices

    w = 21.0 / 11
    z = np.array([0.1, 0.5 * w + w, 7.5 * w])  # slices 0, 1, 7
    out = vacuum_merged_slices(z, 21.0, 2.0)
    assert out == pytest.approx((w, w, 5 * w, w, 3 * w))
    assert sum(out) == pytest.approx(21.0)
    assert vacuum_merged_slices(np.array([20.9]), 21.0, 2.0) == pytest.approx((10 * w, w))  # leading vacuum
    full = np.linspace(0.05, 20.95, 11)  # every slice holds an atom: abTEM's own slicing
    assert vacuum_merged_slices(full, 21.0, 2.0) == pytest.approx((w,) * 11)


def test_merged_vacuum_gives_the_particles_wave_of_every_slice(scene):
    """The particles-only wave through merged vacuum equals the slice-by-slice one at every frequency the
    imaging uses: the two differ only in abTEM's anti-aliasing taper (2/3 of the 0.1 A grid's Nyquist
    frequency, 3.2-3.4 1/A), which each step applies once. Below 3 1/A they agree to float32 rounding."""
    from hrtem_ood.physics.simulation import exit_waves

    p, full, part, spec, res = scene
    sim = p.simulate.model_copy(update={"output_sampling_A": p.simulate.sampling_A})  # no downsampling
    a = exit_waves(part, sim, 1, 0)[0]
    b = exit_waves(part, sim, 1, 0, merge_vacuum=True)[0]
    k = np.fft.fftfreq(a.shape[-1], sim.sampling_A)
    q = np.hypot(k[:, None], k[None, :])
    diff = np.abs(np.fft.fft2(a - b)) / a.size
    assert diff[q < 3.0].max() < 1e-5
    assert diff[(q > 3.2) & (q < 3.4)].max() > 1e-5  # the taper: the check can tell the two apart


SIMULATE_ONE = """
import sys, pickle
from hrtem_ood.physics.simulation import simulate_scene
task = pickle.load(open(sys.argv[1], "rb"))
sys.stdout.buffer.write(pickle.dumps(simulate_scene(task)["waves"].tobytes()))
"""


def test_exit_waves_are_byte_identical_across_processes_and_executors(scene, tmp_path, monkeypatch):
    """``simulate.fft: scipy`` (the default) has no run-time planning: the same scene gives the same bytes in
    two fresh processes, in this one, and on two dask workers."""
    import pickle
    import subprocess
    import sys

    from hrtem_ood.execution.parallel import map_ordered

    p, full, part, spec, res = scene
    assert p.simulate.fft == "scipy"
    task = {"scene_id": 0, "numbers": full.numbers, "positions": full.positions, "cell": np.diag(full.cell.array),
            "is_particle": np.arange(len(full)) < len(part), "sim": p.simulate, "Cs_mm": 0.5, "seed": 3}
    (tmp_path / "task.pkl").write_bytes(pickle.dumps(task))
    runs = [pickle.loads(subprocess.run([sys.executable, "-c", SIMULATE_ONE, str(tmp_path / "task.pkl")],
                                        capture_output=True, check=True).stdout) for _ in range(2)]
    monkeypatch.setenv("HRTEM_OOD_WORKERS", "2")
    on_dask = map_ordered(simulate_scene, [task, task], desc="test")
    assert runs[0] == runs[1] == res["waves"].tobytes()
    assert all(r["waves"].tobytes() == runs[0] for r in on_dask)
