"""Training speed, side by side in one run (default model and ``train`` params):

1. layouts: crops/s of one forward + backward + Adam step, float32 or bf16 autocast, contiguous (NCHW)
   or channels_last (NHWC), each as a ratio to float32 contiguous (the loop before issue 19);
2. our loop (``hrtem_ood.learning.training.train``, incl. per-epoch validation) against a bare PyTorch loop on
   the same model, layout and crops;
3. a stage's models one after another on all threads against ``train.parallel_models`` side by side;
4. the fixed cost per model: one process per model (start-up paid by every model) against one process
   per transfer row (start-up shared by the row's models).

Usage: python benchmarks/training_speed.py [params.yaml]
"""

import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.learning.evaluation import training_loss
from hrtem_ood.learning.model import build_model
from hrtem_ood.learning.training import CropBatches, bf16_supported, choose_numerics, set_threads, train


def bare_loop(model, images, masks, cfg, lr, epochs, seed, bf16, fmt):
    """The minimal loop: crops, forward, loss, backward, Adam; nothing else."""
    torch.manual_seed(seed)
    model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = training_loss(cfg.loss)
    batches = CropBatches(images, masks, cfg.crop_px, cfg.crops_per_image, cfg.batch_size, cfg.augment,
                          np.random.default_rng(seed))
    model.train()
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for xb, yb in batches.epoch():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xb.contiguous(memory_format=fmt)).float(), yb)
            loss.backward()
            opt.step()
            n += len(xb)
    return n / (time.perf_counter() - t0)


def _models_job(args) -> None:
    """One model of 4 epochs with our loop (a worker process's task in section 3)."""
    threads, images, masks, val_x, val_y, cfg, mc = args
    set_threads(threads)
    train(build_model(mc, 0), images, masks, val_x, val_y, cfg, 1e-4, 4, seed=0)


def startup(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main():
    params = validate(load_params(sys.argv[1] if len(sys.argv) > 1 else "params.yaml"))
    cfg, mc = params.train, params.model
    set_threads(cfg.threads)
    rng = np.random.default_rng(0)
    n_train, n_val, size = 32, params.structures.n_val, 256
    images = rng.normal(size=(n_train, size, size)).astype(np.float32)
    masks = (rng.random((n_train, size, size)) > 0.8).astype(np.int64)
    val_x, val_y = images[:n_val], masks[:n_val]
    bf16_ok = bf16_supported(torch.device("cpu"))
    print(f"crop {cfg.crop_px} px, batch {cfg.batch_size}, {torch.get_num_threads()} threads, "
          f"{n_train} images x {cfg.crops_per_image} crops per epoch, CPU bf16: {bf16_ok}")

    print("\n1. layouts (bare loop, 2 epochs each, best of 2 interleaved rounds)")
    layouts = [("fp32, contiguous", False, torch.contiguous_format),
               ("fp32, channels_last", False, torch.channels_last)]
    if bf16_ok:
        layouts += [("bf16 autocast, contiguous", True, torch.contiguous_format),
                    ("bf16 autocast + channels_last", True, torch.channels_last)]
    rates = {name: 0.0 for name, _, _ in layouts}
    for _ in range(2):
        for name, bf16, fmt in layouts:
            rates[name] = max(rates[name], bare_loop(build_model(mc, 0), images, masks, cfg, 1e-3, 2, 0, bf16, fmt))
    base = rates[layouts[0][0]]
    for name, _, _ in layouts:
        print(f"  {name:32s} {rates[name]:6.1f} crops/s  {rates[name] / base:4.2f}x")

    num = choose_numerics(cfg, torch.device("cpu"))
    print(f"\n2. our loop vs a bare loop (the params' numerics: {num.label}; 4 epochs, best of 2)")
    bf16, fmt = num.bf16, num.memory_format
    ours = bare = 0.0
    for _ in range(2):
        bare = max(bare, bare_loop(build_model(mc, 0), images, masks, cfg, 1e-3, 4, 0, bf16, fmt))
        t0 = time.perf_counter()
        res = train(build_model(mc, 0), images, masks, val_x, val_y, cfg, 1e-3, 4, seed=0)
        ours = max(ours, res.images_seen / (time.perf_counter() - t0))
    print(f"  bare loop {bare:.1f} crops/s, ours (incl. validation on {n_val} whole images per epoch) "
          f"{ours:.1f} crops/s: overhead {bare / ours - 1:+.1%}")
    print(f"  ours against the float32 contiguous loop before: {ours / base:.2f}x")

    print("\n3. a stage's models one after another on all threads vs train.parallel_models side by side")
    k = max(2, cfg.parallel_models)
    seq = side = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(k):
            _models_job((cfg.threads, images, masks, val_x, val_y, cfg, mc))
        seq = max(seq, 4 * k * len(images) * cfg.crops_per_image / (time.perf_counter() - t0))
    threads = max(1, cfg.threads // k)
    with ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_models_job, [(threads, images[:2], masks[:2], val_x[:1], val_y[:1], cfg, mc)] * k))  # warm
        for _ in range(2):
            t0 = time.perf_counter()
            list(pool.map(_models_job, [(threads, images, masks, val_x, val_y, cfg, mc)] * k))
            side = max(side, 4 * k * len(images) * cfg.crops_per_image / (time.perf_counter() - t0))
    print(f"  {k} models one after another, {cfg.threads} threads each: {seq:.1f} crops/s")
    print(f"  {k} models side by side, {threads} thread(s) each: {side:.1f} crops/s ({side / seq:.2f}x)")

    print("\n4. fixed cost per model (interpreter + torch + timm + model build, in a fresh process)")
    n_row = len(params.domains) - 1
    build = ("import hrtem_ood.stages.transfer, hrtem_ood.learning.model as m, hrtem_ood.config.params as p;"
             "c = p.validate(p.load_params('params.yaml')).model;"
             "[m.build_model(c, k) for k in range({n})]")
    one = startup(build.format(n=1))
    row = startup(build.format(n=n_row))
    print(f"  one process per model: {one:.2f} s per model")
    print(f"  one process per row of {n_row} models: {row:.2f} s per row = {row / n_row:.2f} s per model "
          f"({one / (row / n_row):.1f}x less)")


if __name__ == "__main__":
    main()
