"""Stage ``simulate``: multislice exit waves of every scene, labels from the particles-only phase, and the
calibrated zero defocus (``exitwaves.h5``, ``summary.json``), for every structure group the structures
stage wrote (its folder itself and each subfolder holding ``atoms.h5``), in the same layout."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.dataio.datasets import read_h5, write_h5
from hrtem_ood.dataio.io import atomic_path, derive_seed, read_json, stable_hash, write_json
from hrtem_ood.execution.parallel import map_ordered
from hrtem_ood.physics.simulation import simulate_scene
from hrtem_ood.stages import entry
from hrtem_ood.units import keV_to_eV

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def structure_group_dirs(structures_dir: str | Path) -> list[str]:
    """The structure groups in a structures folder: "" (the folder itself) and its subfolders, sorted."""
    root = Path(structures_dir)
    top = [""] if (root / "atoms.h5").is_file() else []
    return top + sorted(p.parent.name for p in root.glob("*/atoms.h5"))


def scene_tasks(params: Params, structures_dir: str | Path) -> list[dict]:
    """One task per scene: arrays and the typed ``simulate`` section (picklable for dask workers)."""
    specs = read_json(Path(structures_dir) / "scenes.json")
    atoms, _ = read_h5(Path(structures_dir) / "atoms.h5")
    sim, off = params.simulate, atoms["offsets"]
    tasks = []
    for i, spec in enumerate(specs):
        sl = slice(off[i], off[i + 1])
        tasks.append({"scene_id": spec["scene_id"], "split": spec["split"], "has_particles": bool(spec["particles"]),
                      "numbers": atoms["numbers"][sl], "positions": atoms["positions_A"][sl],
                      "cell": atoms["cell_A"][i], "is_particle": atoms["is_particle"][sl], "sim": sim,
                      "Cs_mm": params.imaging.Cs_mm, "seed": derive_seed(sim.seed, "phonons", spec["scene_id"])})
    return tasks


def write_exitwaves(params: Params, structures_dir: str | Path, out_dir: str | Path) -> None:
    groups = structure_group_dirs(structures_dir)
    tasks = {g: scene_tasks(params, Path(structures_dir) / g) for g in groups}
    t0 = time.perf_counter()
    flat = map_ordered(simulate_scene, [t for g in groups for t in tasks[g]], desc="multislice")
    print(f"simulate: {len(flat)} scenes of {len(groups)} structure group(s) in {time.perf_counter() - t0:.1f} s")
    results, k = {}, 0
    for g in groups:
        results[g], k = flat[k:k + len(tasks[g])], k + len(tasks[g])
        empty = [t["scene_id"] for t, r in zip(tasks[g], results[g], strict=True)
                 if r["mask"].sum() == 0 and t["has_particles"]]
        if empty:
            raise RuntimeError(f"simulate: the labels of scenes {empty[:10]} of structures {g or '(default)'!r} are "
                               "empty although they hold particles; lower simulate.label.smoothing_A (smoothing "
                               "lowers the smoothed phase peak) or simulate.label.threshold_rad, or use larger "
                               "particles")
    with atomic_path(out_dir, is_dir=True) as tmp:
        for g in groups:
            (tmp / g).mkdir(parents=True, exist_ok=True)
            _write_group(params, tasks[g], results[g], tmp / g)


def _write_group(params: Params, tasks: list[dict], results: list[dict], tmp: Path) -> None:
    sim = params.simulate
    write_h5(tmp / "exitwaves.h5",
             {"waves": np.stack([r["waves"] for r in results]),
              "masks": np.stack([r["mask"] for r in results]),
              "zero_defocus_A": np.array([r["zero_defocus_A"] for r in results]),
              "scene_id": np.array([t["scene_id"] for t in tasks], np.int64),
              "split": np.array([t["split"] for t in tasks])},
             {"sampling_A": sim.output_sampling_A, "energy_eV": keV_to_eV(sim.energy_keV),
              "Cs_mm_calibration": params.imaging.Cs_mm, "units_waves": "vacuum = 1",
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
