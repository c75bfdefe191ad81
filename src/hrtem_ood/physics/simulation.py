"""Multislice exit waves (abTEM), labels from the particles-only phase, zero-defocus calibration.

Never imports torch. Each scene is simulated once; every imaging domain reuses its exit waves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.physics.calibration import minimum_contrast_defocus
from hrtem_ood.physics.ctf import configure_abtem
from hrtem_ood.units import keV_to_eV

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Simulate


def vacuum_merged_slices(z_A: np.ndarray, thickness_A: float, slice_thickness_A: float) -> tuple[float, ...]:
    """abTEM's slicing of a cell ``thickness_A`` thick (``ceil(thickness / slice_thickness)`` equal slices), with
    every run of consecutive slices that hold no atom (atom depths ``z_A``) merged into one slice.

    An empty slice transmits 1, and Fresnel propagators over successive distances multiply into the propagator
    over their sum, so the merged slicing gives the same exit wave to float32 rounding at every frequency below
    abTEM's anti-aliasing taper (3.2-3.4 1/A at 0.1 A sampling), which each step applies once: one step per run
    of vacuum instead of one per slice (tests/test_simulation.py). The particles-only scenes are mostly vacuum:
    the particles sit on top of the carbon's empty place.
    """
    n = int(np.ceil(thickness_A / slice_thickness_A))
    width = thickness_A / n
    occupied = np.zeros(n, bool)
    occupied[np.clip(np.floor(np.asarray(z_A, float) / width).astype(int), 0, n - 1)] = True
    out: list[float] = []
    run = 0
    for full in occupied:
        if full:
            if run:
                out.append(run * width)
                run = 0
            out.append(width)
        else:
            run += 1
    if run:
        out.append(run * width)
    return tuple(out)


def exit_waves(atoms, sim: Simulate, n_phonons: int, seed: int, merge_vacuum: bool = False) -> np.ndarray:
    """Exit waves (n_phonons, H, W) complex64 at ``output_sampling_A``.

    Multislice at ``sampling_A`` with ``n_phonons`` frozen-phonon configurations (static atoms when
    ``n_phonons == 1``), then Fourier-downsampled to the output grid. ``merge_vacuum``: slices without atoms
    are merged (:func:`vacuum_merged_slices`); only for static atoms (phonons would move atoms across slices).
    """
    import abtem

    slices = sim.slice_thickness_A
    if merge_vacuum and n_phonons == 1:
        slices = vacuum_merged_slices(atoms.positions[:, 2], float(atoms.cell[2, 2]), slices)
    if n_phonons > 1:
        atoms = abtem.FrozenPhonons(atoms, num_configs=n_phonons, sigmas=sim.phonon_sigma_A, seed=seed)
    potential = abtem.Potential(atoms, sampling=sim.sampling_A, slice_thickness=slices,
                                projection="infinite", parametrization="lobato")
    waves = abtem.PlaneWave(energy=keV_to_eV(sim.energy_keV)).multislice(potential)
    factor = round(sim.output_sampling_A / sim.sampling_A)
    gpts = tuple(int(g) // factor for g in waves.gpts)
    if factor > 1:
        waves = waves.downsample(gpts=gpts)
    array = np.asarray(waves.array, dtype=np.complex64)
    return array.reshape((-1,) + array.shape[-2:])


def label_from_phase(wave: np.ndarray, sampling_A: float, threshold_rad: float, smoothing_A: float,
                     order: str = "smooth_then_threshold") -> np.ndarray:
    """Binary particle mask from a particles-only exit wave.

    ``smooth_then_threshold``: Gaussian-smooth |phase| (sigma ``smoothing_A``) then threshold; this
    keeps small, weakly scattering particles whose column-averaged phase is below the threshold.
    ``threshold_then_smooth``: the study's wording, threshold |phase| then smooth and binarize at 0.5.
    """
    from scipy.ndimage import gaussian_filter

    phase = np.abs(np.angle(np.asarray(wave)))
    sigma_px = smoothing_A / sampling_A
    if order == "smooth_then_threshold":
        mask = gaussian_filter(phase, sigma_px, mode="wrap") > threshold_rad
    elif order == "threshold_then_smooth":
        mask = gaussian_filter((phase > threshold_rad).astype(np.float32), sigma_px, mode="wrap") > 0.5
    else:
        raise ValueError(f"simulate.label.order: unknown order {order!r}")
    return mask.astype(np.uint8)


def simulate_scene(task: dict) -> dict:
    """Simulate one scene. ``task`` (picklable for dask workers) holds ``numbers``, ``positions``, ``cell``,
    ``is_particle``, ``sim`` (the typed ``simulate`` section), ``Cs_mm`` and ``seed``.

    Returns the full-scene exit waves, the particles-only mask and the calibrated zero defocus.
    """
    import dask

    with dask.config.set(scheduler="synchronous"):  # abTEM's own dask calls stay inside this task
        return _simulate_scene(task)


def _simulate_scene(task: dict) -> dict:
    from ase import Atoms

    sim = task["sim"]
    configure_abtem(sim.fft)
    full = Atoms(numbers=task["numbers"], positions=task["positions"], cell=task["cell"], pbc=True)
    part = full[task["is_particle"]]
    waves = exit_waves(full, sim, sim.frozen_phonons, task["seed"])
    if len(part):
        particle_wave = exit_waves(part, sim, 1, task["seed"], merge_vacuum=True)[0]
    else:
        particle_wave = np.ones(waves.shape[-2:], np.complex64)
    s_out, lab, cal = sim.output_sampling_A, sim.label, sim.calibration
    mask = label_from_phase(particle_wave, s_out, lab.threshold_rad, lab.smoothing_A, lab.order)
    if len(part) and cal.method == "minimum_contrast":
        z0 = minimum_contrast_defocus(particle_wave, s_out, keV_to_eV(sim.energy_keV), task["Cs_mm"], cal.search_A,
                                      cal.coarse_step_A, cal.fine_step_A, cal.q_max_per_A)
    else:
        z0 = 0.0
    return {"scene_id": task["scene_id"], "waves": waves, "mask": mask, "zero_defocus_A": z0,
            "particle_phase_max_rad": float(np.abs(np.angle(particle_wave)).max())}
