"""Training throughput of hrtem_ood.training.train vs a bare PyTorch loop, same model and data, one run.

Also prints the fixed start-up cost of a training stage (interpreter + torch + timm + model build).
Usage: python benchmarks/training_overhead.py [params.yaml]
"""

import subprocess
import sys
import time

import numpy as np
import torch

from hrtem_ood.evaluation import training_loss
from hrtem_ood.model import build_model
from hrtem_ood.params import load_params
from hrtem_ood.training import CropBatches, set_threads, train


def bare_loop(model, images, masks, cfg, lr, epochs, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = training_loss(cfg["loss"])
    batches = CropBatches(images, masks, cfg["crop_px"], cfg["crops_per_image"], cfg["batch_size"], cfg["augment"],
                          np.random.default_rng(seed))
    model.train()
    n = 0
    for _ in range(epochs):
        for xb, yb in batches.epoch():
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
            n += len(xb)
    return n


def main():
    params = load_params(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
    cfg = params["train"]
    set_threads(cfg["threads"])
    rng = np.random.default_rng(0)
    size = 256
    images = rng.normal(size=(16, size, size)).astype(np.float32)
    masks = (rng.random((16, size, size)) > 0.8).astype(np.int64)
    val_x, val_y = images[:6], masks[:6]
    epochs = 3
    rates = {"ours": [], "bare": []}
    for _ in range(2):  # interleaved, to share thermal and cache state
        model = build_model(params["model"], 0)
        t0 = time.perf_counter()
        n = bare_loop(model, images, masks, cfg, 1e-3, epochs, 0)
        rates["bare"].append(n / (time.perf_counter() - t0))
        model = build_model(params["model"], 0)
        t0 = time.perf_counter()
        res = train(model, images, masks, val_x, val_y, cfg, 1e-3, epochs, seed=0)
        rates["ours"].append(res.images_seen / (time.perf_counter() - t0))
    ours, bare = max(rates["ours"]), max(rates["bare"])
    print(f"crop {cfg['crop_px']} px, batch {cfg['batch_size']}, {torch.get_num_threads()} threads")
    print(f"bare PyTorch loop: {bare:.1f} crops/s")
    print(f"hrtem_ood.training.train (incl. per-epoch validation on {len(val_x)} images): {ours:.1f} crops/s")
    print(f"overhead: {(bare / ours - 1):.1%}")
    code = ("import hrtem_ood.stages.pretrain, hrtem_ood.model as m, hrtem_ood.params as p;"
            "m.build_model(p.load_params('params.yaml')['model'])")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    print(f"stage start-up (python + torch + timm + model build): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
