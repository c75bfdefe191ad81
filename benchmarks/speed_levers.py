"""The default run's speed levers, each before and after, side by side in one run on this machine.

1. multislice of one default scene (full scene + particles alone + calibration), warm, one process:
   numpy's FFT slice by slice (before) | scipy.fft (``simulate.fft: scipy``) | scipy.fft + merged vacuum (after);
2. training layout of one model, bf16 + channels_last (before) against ``choose_numerics``' rule (after), on
   1 and on 2 threads (the rule depends on the thread count);
3. the pretraining stage's schedule: 5 models one after another on 2 threads, bf16 + channels_last (before),
   against 2 side by side on 1 thread each (after), short models of the same shape;
4. levers measured and not adopted: ``torch.compile`` (1 thread), the per-epoch validation, data loading;
5. the start order of unequal models on 2 workers (the label-count study's mix, scaled down): grid order (before)
   against longest first (after);
6. the metrics of an evaluation batch: argmax over the 2 classes (before) against comparing the 2 logits (after).

Usage: python benchmarks/speed_levers.py [params.yaml]. Prints the CPU model first; quote ratios only.
"""

import multiprocessing
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from simulation_cost import scene_tasks  # noqa: E402
from training_speed import bare_loop  # noqa: E402

from hrtem_ood.config.params import load_params, validate  # noqa: E402

EPOCHS, N_IMAGES = 2, 32  # the short models of section 3: 2 epochs of 32 images x crops_per_image crops


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                platform.processor())
    return name


def _scene_seconds(args) -> float:
    """Warm seconds of ``simulate_scene`` for the tasks (in a fresh process, so that abTEM's FFT setting and
    its numba functions start alike), after one warm-up scene."""
    tasks, fft, merge = args
    import hrtem_ood.physics.simulation as simulation

    if not merge:  # the particles-only multislice slice by slice, as before
        simulation.vacuum_merged_slices = lambda z, t, dz: dz
    tasks = [dict(t, sim=t["sim"].model_copy(update={"fft": fft})) for t in tasks]
    simulation.simulate_scene(tasks[0])
    t0 = time.perf_counter()
    for t in tasks[1:]:
        simulation.simulate_scene(t)
    return (time.perf_counter() - t0) / (len(tasks) - 1)


def multislice(params) -> None:
    print("\n1. multislice per default scene (full scene, particles alone, calibration; warm, one process)")
    tasks = scene_tasks(params, 4)
    ctx = multiprocessing.get_context("spawn")
    rows = [("numpy FFT, slice by slice (before)", "numpy", False), ("scipy.fft, slice by slice", "scipy", False),
            ("scipy.fft + merged vacuum (after)", "scipy", True)]
    secs = {}
    for name, fft, merge in rows:  # a fresh process per setting, one after another
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            secs[name] = list(pool.map(_scene_seconds, [(tasks, fft, merge)]))[0]
    base = secs[rows[0][0]]
    for name, _, _ in rows:
        print(f"  {name:38s} {secs[name]:5.2f} s  {base / secs[name]:4.2f}x")


def _data(n: int, size: int = 256):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, size, size)).astype(np.float32),
            (rng.random((n, size, size)) > 0.8).astype(np.int64))


def _layout_rate(args) -> float:
    """Bare-loop crops/s of one model on ``threads`` threads, bf16 where native, in the given layout (after a
    warm-up epoch)."""
    threads, channels_last, params = args
    import torch

    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import bf16_supported, set_threads

    set_threads(threads)
    images, masks = _data(16)
    bf16 = params.train.amp and bf16_supported(torch.device("cpu"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    bare_loop(build_model(params.model, 0), images[:2], masks[:2], params.train, 1e-3, 1, 0, bf16, fmt)
    return bare_loop(build_model(params.model, 0), images, masks, params.train, 1e-3, 2, 0, bf16, fmt)


def layout(params) -> None:
    import torch

    from hrtem_ood.learning.training import choose_numerics

    print("\n2. layout of one model (bare loop; best of 3 interleaved rounds), before: channels_last on every CPU; "
          "after: the rule")
    ctx = multiprocessing.get_context("spawn")
    for threads in (1, 2):
        num = choose_numerics(params.train, torch.device("cpu"), threads)
        rate = {True: 0.0, False: 0.0}
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            for _ in range(3):
                for cl in (True, False):
                    rate[cl] = max(rate[cl], list(pool.map(_layout_rate, [(threads, cl, params)]))[0])
        print(f"  {threads} thread(s): channels_last {rate[True]:6.1f} crops/s, contiguous {rate[False]:6.1f} crops/s; "
              f"the rule picks {num.label}: {rate[num.channels_last] / rate[True]:4.2f}x  [{num.rule}]")


def _model(args) -> float:
    """One short model with the project's loop (validation included) on ``threads`` threads; returns seconds."""
    threads, memory_format, params = args
    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import set_threads, train

    set_threads(threads)
    images, masks = _data(N_IMAGES)
    cfg = params.train.model_copy(update={"memory_format": memory_format})
    t0 = time.perf_counter()
    train(build_model(params.model, 0), images, masks, images[:5], masks[:5], cfg, 1e-3, EPOCHS, seed=0)
    return time.perf_counter() - t0


def schedule(params) -> None:
    import torch

    from hrtem_ood.execution.grid import model_threads, side_by_side
    from hrtem_ood.learning.training import choose_numerics

    n = 5
    k, threads = side_by_side(params.train, n), model_threads(params.train, n)
    print(f"\n3. the pretraining stage's {n} models ({EPOCHS} epochs of {N_IMAGES} images each; project loop)")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(k, mp_context=ctx) as pool:
        list(pool.map(_model, [(1, "auto", params)] * k))  # warm every worker
        t0 = time.perf_counter()
        for _ in range(n):
            list(pool.map(_model, [(params.train.threads, "channels_last", params)]))
        before = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(_model, [(threads, "auto", params)] * n))
        after = time.perf_counter() - t0
    before_num = choose_numerics(params.train.model_copy(update={"memory_format": "channels_last"}),
                                 torch.device("cpu"), params.train.threads).label
    print(f"  before: one after another on {params.train.threads} threads, {before_num}: {before:6.1f} s")
    print(f"  after: {k} side by side on {threads} thread(s) each, auto layout: {after:6.1f} s  {before / after:4.2f}x")


def _compiled_rate(args) -> tuple[float, float, float]:
    """Eager and torch.compile'd bare-loop crops/s on 1 thread in the rule's layout, and the compile seconds."""
    params, = args
    import torch

    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import choose_numerics, set_threads

    set_threads(1)
    num = choose_numerics(params.train, torch.device("cpu"), 1)
    images, masks = _data(16)
    eager = _rate_of(build_model(params.model, 0), images, masks, params, num)
    model = build_model(params.model, 0)
    compiled = torch.compile(model)
    t0 = time.perf_counter()
    _rate_of(compiled, images, masks, params, num, epochs=1)  # compiles for the batches measured below
    compile_s = time.perf_counter() - t0
    return eager, _rate_of(compiled, images, masks, params, num), compile_s


def _rate_of(model, images, masks, params, num, epochs: int = 2) -> float:
    return bare_loop(model, images, masks, params.train, 1e-3, epochs, 0, num.bf16, num.memory_format)


def _loop_shares(args) -> tuple[float, float, float, float]:
    """Our loop's crops/s with and without the per-epoch validation (the default's training images), the crop
    sampler's share of a step, and the seconds of one model's final evaluation on every domain's test split."""
    params, = args
    import torch

    from hrtem_ood.learning.evaluation import evaluate
    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import CropBatches, choose_numerics, set_threads, train

    set_threads(1)
    images, masks = _data(params.structures.n_train)
    cfg = params.train

    def ours(n_val: int) -> float:
        t0 = time.perf_counter()
        res = train(build_model(params.model, 0), images, masks, images[:n_val], masks[:n_val], cfg, 1e-3, 3, 0,
                    device=torch.device("cpu"))
        return res.images_seen / (time.perf_counter() - t0)

    ours(1)  # warm-up: the first model of a process pays oneDNN's first calls
    with_val = max(ours(params.structures.n_val) for _ in range(2))
    no_val = max(ours(1) for _ in range(2))
    batches = CropBatches(images, masks, cfg.crop_px, cfg.crops_per_image, cfg.batch_size, cfg.augment,
                          np.random.default_rng(0))
    t0 = time.perf_counter()
    n = sum(len(x) for x, _ in batches.epoch())
    sampling = (time.perf_counter() - t0) / n
    fmt = choose_numerics(cfg, torch.device("cpu"), 1).memory_format
    model = build_model(params.model, 0).to(memory_format=fmt)
    test_x, test_y = _data(len(params.domains) * params.structures.n_test)
    t0 = time.perf_counter()
    evaluate(model, test_x, test_y, torch.device("cpu"), memory_format=fmt)
    return with_val, no_val, sampling * with_val, time.perf_counter() - t0


def other_levers(params) -> None:
    ctx = multiprocessing.get_context("spawn")
    print("\n4. levers measured, not adopted (1 thread, the rule's layout)")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        with_val, no_val, sampler_share, eval_s = list(pool.map(_loop_shares, [(params,)]))[0]
    print(f"  per-epoch validation ({params.structures.n_val} whole images): {with_val:.1f} crops/s with, "
          f"{no_val:.1f} with 1 image: it costs {no_val / with_val - 1:+.1%}")
    print(f"  data loading (random crops + dihedral transforms): {sampler_share:.1%} of the training time")
    tc = params.transfer
    n_images = tc.n_images[0] if isinstance(tc.n_images, list) else tc.n_images
    crops = tc.epochs * n_images * params.train.crops_per_image
    print(f"  final evaluation on every domain's test split ({len(params.domains)} x "
          f"{params.structures.n_test} images, float32): {eval_s:.1f} s per model, against "
          f"{crops / with_val:.1f} s of a transfer model's training ({crops} crops)")
    try:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            eager, compiled, compile_s = list(pool.map(_compiled_rate, [(params,)]))[0]
        print(f"  torch.compile: eager {eager:.1f} crops/s, compiled {compiled:.1f} crops/s ({compiled / eager:.2f}x) "
              f"after {compile_s:.0f} s of compilation per process (needs a C++ compiler at run time)")
    except Exception as exc:  # no C++ compiler, say: the lever cannot run here
        print(f"  torch.compile: not measurable here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")


def _sized_model(args) -> float:
    """A short model on ``n_images`` images (1 thread, the rule's layout); returns seconds."""
    n_images, params = args
    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import set_threads, train

    set_threads(1)
    images, masks = _data(n_images)
    t0 = time.perf_counter()
    train(build_model(params.model, 0), images, masks, images[:5], masks[:5], params.train, 1e-3, EPOCHS, seed=0)
    return time.perf_counter() - t0


def start_order(params) -> None:
    from hrtem_ood.execution.parallel import run_side_by_side

    sizes = [8 * n for _ in range(3) for n in (1, 2, 4, 12)]  # 3 starts x 1, 2, 4, 12 micrographs, as in labels
    print(f"\n5. start order of {len(sizes)} unequal models on 2 workers ({EPOCHS} epochs of 8-96 images; 1 thread)")
    jobs = [(n, params) for n in sizes]
    wall = {}
    for name, costs in (("grid order (before)", None), ("longest first (after)", sizes)) * 2:  # best of 2
        t0 = time.perf_counter()
        run_side_by_side(_sized_model, jobs, 2, costs=costs)
        wall[name] = min(wall.get(name, float("inf")), time.perf_counter() - t0)
    before = wall["grid order (before)"]
    for name, secs in wall.items():
        print(f"  {name:24s} {secs:6.1f} s  {before / secs:4.2f}x")


def batch_metrics() -> None:
    import torch

    from hrtem_ood.learning.evaluation import particle_class

    torch.set_num_threads(1)
    logits = torch.randn(8, 2, 256, 256, generator=torch.Generator().manual_seed(0))
    print("\n6. the predicted class of 8 whole 256 px images (1 thread; best of 20)")
    for layout, x in (("contiguous", logits), ("channels_last", logits.contiguous(memory_format=torch.channels_last))):
        secs = {}
        for name, f in (("argmax (before)", lambda x=x: x.argmax(1) == 1), ("comparison (after)",
                                                                              lambda x=x: particle_class(x))):
            secs[name] = min(_timed(f) for _ in range(20))
        before, after = secs["argmax (before)"], secs["comparison (after)"]
        print(f"  {layout:14s} argmax {before * 1e3:6.2f} ms, comparison {after * 1e3:6.2f} ms  {before / after:5.1f}x")


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    params = validate(load_params(sys.argv[1] if len(sys.argv) > 1 else "params.yaml"))
    print(f"CPU: {cpu_model()}, {multiprocessing.cpu_count()} cores")
    multislice(params)
    layout(params)
    schedule(params)
    other_levers(params)
    start_order(params)
    batch_metrics()


if __name__ == "__main__":
    main()
