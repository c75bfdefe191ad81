"""Simulation cost on this machine, measured side by side in one run.

Prints: the multislice cost per scene (full scene with frozen phonons + particles alone + calibration),
the marginal cost of imaging one more domain as a ratio to one scene's multislice (goal < 5%),
peak memory, and numpy's forward against inverse complex64 FFT on the multislice grid (abTEM's
``fft: numpy`` path), with the precision each is computed in.
Usage: python benchmarks/simulation_cost.py [params.yaml] [n_scenes]
"""

import resource
import sys
import time
import timeit

import numpy as np

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.physics.ctf import configure_abtem
from hrtem_ood.physics.imaging import image_intensity, poisson_counts
from hrtem_ood.physics.simulation import simulate_scene
from hrtem_ood.physics.structures import build_scene, scene_plan


def scene_tasks(params, n: int) -> list[dict]:
    """``simulate_scene`` tasks for the first ``n`` scenes of the params' plan (built in memory)."""
    sp = params.structures
    tasks = []
    for sid, split, seed in scene_plan(sp)[:n]:
        full, part, _ = build_scene(sp, sid, split, seed)
        tasks.append({"scene_id": sid, "numbers": full.numbers, "positions": full.positions,
                      "cell": np.diag(full.cell.array), "is_particle": np.arange(len(full)) < len(part),
                      "sim": params.simulate, "Cs_mm": params.imaging.Cs_mm, "seed": seed})
    return tasks


def best_ms(func, rounds: int = 3, reps: int = 10) -> float:
    """The fastest of ``rounds`` timings of ``reps`` calls, in ms per call (after one warm-up call)."""
    func()
    return min(timeit.repeat(func, number=reps, repeat=rounds)) / reps * 1e3


def fft_precision(n_px: int) -> None:
    """numpy's 2-D FFTs of a complex64 wave on the multislice grid, forward against inverse, and whether each
    equals the float64 transform rounded to complex64 axis by axis (computed in double) or not (in single)."""
    a = np.random.default_rng(0).standard_normal((n_px, n_px, 2)).astype(np.float32).view(np.complex64)[..., 0]

    def in_double(transform_2d, transform_1d) -> bool:
        out = a
        for axis in (-1, -2):  # numpy's fft2 runs the last axis first, rounding to the output dtype between axes
            out = transform_1d(out.astype(np.complex128), axis=axis).astype(np.complex64)
        return bool(np.array_equal(out, transform_2d(a)))

    fwd, inv = best_ms(lambda: np.fft.fft2(a)), best_ms(lambda: np.fft.ifft2(a))
    print(f"numpy {np.__version__} 2-D FFT of {n_px}x{n_px} complex64: forward {fwd:.1f} ms "
          f"(in {'double' if in_double(np.fft.fft2, np.fft.fft) else 'single'}), inverse {inv:.1f} ms "
          f"(in {'double' if in_double(np.fft.ifft2, np.fft.ifft) else 'single'}): forward/inverse {fwd / inv:.2f}x")


def main():
    params = validate(load_params(sys.argv[1] if len(sys.argv) > 1 else "params.yaml"))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sp, sim = params.structures, params.simulate
    configure_abtem(sim.fft)
    t_sim, t_dom = [], []
    for task in scene_tasks(params, n):
        t0 = time.perf_counter()
        res = simulate_scene(task)
        t_sim.append(time.perf_counter() - t0)
        im = params.imaging
        t0 = time.perf_counter()
        for k in range(5):
            inten = image_intensity(res["waves"], sim.output_sampling_A, sim.energy_keV * 1e3,
                                    res["zero_defocus_A"] + 50.0 * k, im.Cs_mm, im.focal_spread_A)
            poisson_counts(inten, sim.output_sampling_A, im.dose_e_per_A2, seed=k)
        t_dom.append((time.perf_counter() - t0) / 5)
    first = t_sim[0]
    warm = np.mean(t_sim[1:]) if len(t_sim) > 1 else first
    print(f"field {sp.field_A} A at {sim.sampling_A} A, {sim.frozen_phonons} phonons, fft {sim.fft}")
    print(f"multislice per scene (first, incl. warm-up): {first:.2f} s")
    print(f"multislice per scene (warm mean of {len(t_sim) - 1}): {warm:.2f} s")
    print(f"one more domain per scene: {np.mean(t_dom) * 1e3:.1f} ms = {np.mean(t_dom) / warm:.1%} of a multislice")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    fft_precision(round(sp.field_A / sim.sampling_A))


if __name__ == "__main__":
    main()
