"""Image formation for one domain: defocus (calibrated zero + domain + jitter), CTF with focal spread
and aperture, incoherent phonon average, Poisson dose. abTEM is imported inside the functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.dataio.io import derive_seed
from hrtem_ood.physics.ctf import make_ctf, waves_from_array
from hrtem_ood.units import nm_to_A

if TYPE_CHECKING:
    from hrtem_ood.config.schema import DomainImaging


def image_intensity(exit_waves: np.ndarray, sampling_A: float, energy_eV: float, defocus_A: float,
                    Cs_mm: float, focal_spread_sigma_A: float, aperture_mrad: float | None = None) -> np.ndarray:
    """Noise-free image intensity (vacuum = 1): CTF (and objective aperture, if any) applied to each
    frozen-phonon exit wave (leading axes), intensities averaged incoherently over the phonons."""
    ctf = make_ctf(float(defocus_A), Cs_mm, focal_spread_sigma_A, energy_eV, aperture_mrad)
    intensity = waves_from_array(exit_waves, sampling_A, energy_eV).apply_ctf(ctf).intensity().array
    return intensity.reshape((-1,) + intensity.shape[-2:]).mean(axis=0)


def poisson_counts(intensity: np.ndarray, sampling_A: float, dose_e_per_A2: float, seed: int) -> np.ndarray:
    """Electron counts per pixel: Poisson(intensity * dose * pixel area), seeded (abTEM's sampler)."""
    import abtem

    images = abtem.Images(np.ascontiguousarray(intensity, dtype=np.float32), sampling=sampling_A)
    return images.poisson_noise(dose_per_area=dose_e_per_A2, seed=int(seed)).array.astype(np.float32)


def domain_images(waves: np.ndarray, zero_defocus_A: np.ndarray, scene_ids: np.ndarray, dom: DomainImaging,
                  sampling_A: float, energy_eV: float) -> dict[str, np.ndarray]:
    """Images of one domain: calibrated zero + domain defocus + seeded jitter, CTF with focal spread,
    Poisson noise at the dose. Every draw is seeded by (imaging seed, domain, scene id)."""
    out: dict[str, list] = {"images": [], "defocus_A": [], "jitter_A": [], "noise_seed": []}
    for w, z0, sid in zip(waves, zero_defocus_A, scene_ids, strict=True):
        rng = np.random.default_rng(derive_seed(dom.seed, dom.name, "jitter", int(sid)))
        jitter = float(rng.normal(0.0, nm_to_A(dom.defocus_sigma_nm)))
        defocus = float(z0) + nm_to_A(dom.defocus_nm) + jitter
        intensity = image_intensity(w, sampling_A, energy_eV, defocus, dom.Cs_mm, dom.focal_spread_A,
                                    dom.aperture_mrad)
        seed = derive_seed(dom.seed, dom.name, "noise", int(sid))
        out["images"].append(poisson_counts(intensity, sampling_A, dom.dose_e_per_A2, seed))
        out["defocus_A"].append(defocus)
        out["jitter_A"].append(jitter)
        out["noise_seed"].append(seed)
    return {k: np.asarray(v) for k, v in out.items()}
