"""Simulation cost on this machine, measured side by side in one run.

Prints: the multislice cost per scene (full scene with frozen phonons + particles alone + calibration),
the marginal cost of imaging one more domain as a ratio to one scene's multislice (goal < 5%),
and peak memory. Usage: python benchmarks/simulation_cost.py [params.yaml] [n_scenes]
"""

import resource
import sys
import time

import numpy as np

from hrtem_ood.ctf import configure_abtem
from hrtem_ood.imaging import image_intensity, poisson_counts
from hrtem_ood.params import load_params
from hrtem_ood.simulation import simulate_scene
from hrtem_ood.structures import build_scene, scene_plan


def scene_tasks(params: dict, n: int) -> list[dict]:
    """``simulate_scene`` tasks for the first ``n`` scenes of the params' plan (built in memory)."""
    sp = params["structures"]
    tasks = []
    for sid, split, seed in scene_plan(sp)[:n]:
        full, part, _ = build_scene(sp, sid, split, seed)
        tasks.append({"scene_id": sid, "numbers": full.numbers, "positions": full.positions,
                      "cell": np.diag(full.cell.array), "is_particle": np.arange(len(full)) < len(part),
                      "sim": params["simulate"], "Cs_mm": params["imaging"]["Cs_mm"], "seed": seed})
    return tasks


def main():
    params = load_params(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sp, sim = params["structures"], params["simulate"]
    configure_abtem(sim["fft"])
    t_sim, t_dom = [], []
    for task in scene_tasks(params, n):
        t0 = time.perf_counter()
        res = simulate_scene(task)
        t_sim.append(time.perf_counter() - t0)
        im = params["imaging"]
        t0 = time.perf_counter()
        for k in range(5):
            inten = image_intensity(res["waves"], sim["output_sampling_A"], sim["energy_keV"] * 1e3,
                                    res["zero_defocus_A"] + 50.0 * k, im["Cs_mm"], im["focal_spread_A"])
            poisson_counts(inten, sim["output_sampling_A"], im["dose_e_per_A2"], seed=k)
        t_dom.append((time.perf_counter() - t0) / 5)
    first = t_sim[0]
    warm = np.mean(t_sim[1:]) if len(t_sim) > 1 else first
    print(f"field {sp['field_A']} A at {sim['sampling_A']} A, {sim['frozen_phonons']} phonons, fft {sim['fft']}")
    print(f"multislice per scene (first, incl. warm-up): {first:.2f} s")
    print(f"multislice per scene (warm mean of {len(t_sim) - 1}): {warm:.2f} s")
    print(f"one more domain per scene: {np.mean(t_dom) * 1e3:.1f} ms = {np.mean(t_dom) / warm:.1%} of a multislice")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
