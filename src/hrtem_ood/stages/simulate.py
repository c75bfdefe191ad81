"""Stage ``simulate``: multislice exit waves of every scene, labels from the particles-only phase, and the
calibrated zero defocus (``exitwaves.h5``, ``summary.json``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..datasets import read_h5, write_h5
from ..io import atomic_path, derive_seed, read_json, stable_hash, write_json
from ..parallel import map_ordered
from ..simulation import simulate_scene
from . import entry


def scene_tasks(params: dict, structures_dir: str | Path) -> list[dict]:
    """One plain-data task per scene (picklable for dask workers)."""
    specs = read_json(Path(structures_dir) / "scenes.json")
    atoms, _ = read_h5(Path(structures_dir) / "atoms.h5")
    sim, off = params["simulate"], atoms["offsets"]
    tasks = []
    for i, spec in enumerate(specs):
        sl = slice(off[i], off[i + 1])
        tasks.append({"scene_id": spec["scene_id"], "split": spec["split"], "has_particles": bool(spec["particles"]),
                      "numbers": atoms["numbers"][sl], "positions": atoms["positions_A"][sl],
                      "cell": atoms["cell_A"][i], "is_particle": atoms["is_particle"][sl], "sim": sim,
                      "Cs_mm": float(params["imaging"]["Cs_mm"]),
                      "seed": derive_seed(sim["seed"], "phonons", spec["scene_id"])})
    return tasks


def write_exitwaves(params: dict, structures_dir: str | Path, out_dir: str | Path) -> None:
    sim = params["simulate"]
    tasks = scene_tasks(params, structures_dir)
    t0 = time.perf_counter()
    results = map_ordered(simulate_scene, tasks, desc="multislice")
    print(f"simulate: {len(results)} scenes in {time.perf_counter() - t0:.1f} s")
    empty = [t["scene_id"] for t, r in zip(tasks, results, strict=True) if r["mask"].sum() == 0 and t["has_particles"]]
    if empty:
        raise RuntimeError(f"simulate: the labels of scenes {empty[:10]} are empty although they hold particles; "
                           "raise simulate.label.smoothing_A, lower simulate.label.threshold_rad or use larger "
                           "structures.particles.diameter_A")
    with atomic_path(out_dir, is_dir=True) as tmp:
        write_h5(tmp / "exitwaves.h5",
                 {"waves": np.stack([r["waves"] for r in results]),
                  "masks": np.stack([r["mask"] for r in results]),
                  "zero_defocus_A": np.array([r["zero_defocus_A"] for r in results]),
                  "scene_id": np.array([t["scene_id"] for t in tasks], np.int64),
                  "split": np.array([t["split"] for t in tasks])},
                 {"sampling_A": float(sim["output_sampling_A"]), "energy_eV": float(sim["energy_keV"]) * 1e3,
                  "Cs_mm_calibration": float(params["imaging"]["Cs_mm"]), "units_waves": "vacuum = 1",
                  "params_hash": stable_hash(sim)})
        write_json(tmp / "summary.json", {  # no timings here: same params, same bytes
            "n_scenes": len(results),
            "mask_fraction_mean": float(np.mean([r["mask"].mean() for r in results])),
            "zero_defocus_A": [r["zero_defocus_A"] for r in results],
            "particle_phase_max_rad": [r["particle_phase_max_rad"] for r in results]})


main = entry("simulate", __doc__, lambda p, a: write_exitwaves(p, a.structures, a.out),
             {"--structures": "the structures stage's folder", "--out": "output folder (data/exitwaves)"})


if __name__ == "__main__":
    sys.exit(main())
