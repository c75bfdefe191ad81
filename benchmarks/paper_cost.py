"""The paper preset's cost: models, tasks and training work from its params, the per-crop cost of its
model measured here, and GPU-hours at the study's published A100 throughput (1,024 images of 512^2 per
8 s epoch, FP32: 128 images/s), with how the grid maps onto N workers. docs/scaling.md records the output.

Work is counted in training-step equivalents of one 512^2 crop: every training crop is 1; a forward pass
(per-epoch validation on whole images, the final evaluation on every domain's test split) counts as
1/3 (forward only, no backward or optimizer step), scaled by its area.

Usage: python benchmarks/paper_cost.py [--no-measure]
"""

import math
import sys
import time
from pathlib import Path

from hrtem_ood.config.domains import domain_names
from hrtem_ood.config.presets import preset_params
from hrtem_ood.execution import grid

REPO = Path(__file__).resolve().parents[1]
STUDY_A100_IMG_S = 1024 / 8.0  # the study: 1,024 images of 512^2 per 8 s epoch, FP32
FORWARD = 1 / 3


def work(p: dict) -> dict:
    """Models, tasks and 512^2-crop training equivalents of every model of the preset's grid."""
    s, tr = p.structures, p.train
    image_px = round(s.field_A / p.simulate.output_sampling_A)
    area = (image_px / 512) ** 2  # one whole image, in 512^2 crops
    crop_area = (tr.crop_px / 512) ** 2
    n_eval = len(domain_names(p)) * s.n_test * area * FORWARD

    def per_model(n_images, epochs):
        return epochs * (n_images * tr.crops_per_image * crop_area + s.n_val * area * FORWARD) + n_eval

    pre = p.pretrain
    n_pre_models = len(pre.domains) * grid.models_per_stage(p, "pretrain")
    pre_work = n_pre_models * per_model(pre.n_images or s.n_train, pre.epochs)
    tr_work, n_tr_models, per_stage = 0.0, 0, {}
    for d in pre.domains:
        targets = grid.transfer_targets(p, d)
        jobs = [c for c in grid.conditions(p, "transfer") for _ in tr.seeds for _ in targets]
        per_stage[d] = len(jobs)
        n_tr_models += len(jobs)
        tr_work += sum(per_model(c["n_transfer"], p.transfer.epochs) for c in jobs)
    return {"pretrain_models": n_pre_models, "transfer_models": n_tr_models,
            "models_per_cell": grid.models_per_stage(p, "transfer"), "tasks_per_transfer_stage": per_stage,
            "tasks_per_pretrain_stage": grid.models_per_stage(p, "pretrain"),
            "pretrain_crops": pre_work, "transfer_crops": tr_work, "pretrain_model_crops": pre_work / n_pre_models,
            "transfer_model_crops": tr_work / n_tr_models}


def measure_cpu(p: dict, steps: int = 3, batch: int = 4) -> float:
    """Training crops/s of the preset's model at its crop size on this CPU (its ``train`` layout)."""
    import torch

    from hrtem_ood.learning.evaluation import training_loss
    from hrtem_ood.learning.model import build_model
    from hrtem_ood.learning.training import choose_numerics, set_threads

    tc = p.train
    set_threads(2)
    num = choose_numerics(tc, torch.device("cpu"))
    fmt = num.memory_format
    model = build_model(p.model, 0).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, tc.crop_px, tc.crop_px).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch, tc.crop_px, tc.crop_px))
    amp = num.bf16
    loss_fn = training_loss(tc.loss)
    for k in range(steps + 1):
        if k == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main(argv):
    p = preset_params("paper", REPO / "params.yaml", REPO / "presets")
    w = work(p)
    total = w["pretrain_crops"] + w["transfer_crops"]
    print(f"paper preset: {w['pretrain_models']} pretrained + {w['transfer_models']} transferred models; "
          f"{w['models_per_cell']} per (pretrain, target) cell")
    print(f"tasks per stage: pretrain {w['tasks_per_pretrain_stage']}, transfer "
          f"{sorted(set(w['tasks_per_transfer_stage'].values()))}")
    print(f"work (512^2 training-crop equivalents): pretrain {w['pretrain_crops']:.3g} "
          f"({w['pretrain_model_crops']:.0f}/model), transfer {w['transfer_crops']:.3g} "
          f"({w['transfer_model_crops']:.0f}/model), total {total:.3g}")
    a100_h = total / STUDY_A100_IMG_S / 3600
    t_pre, t_tr = w["pretrain_model_crops"] / STUDY_A100_IMG_S, w["transfer_model_crops"] / STUDY_A100_IMG_S
    print(f"A100 (the study's 128 img/s): {a100_h:.1f} GPU-hours; per model: pretrain {t_pre:.0f} s, "
          f"transfer {t_tr:.0f} s")
    if "--no-measure" not in argv:
        cps = measure_cpu(p)
        print(f"this CPU (2 threads): {cps:.2f} crops/s -> {total / cps / 3600:,.0f} hours "
              f"({STUDY_A100_IMG_S / cps:.0f}x slower than the A100)")
    n_stage = len(w["tasks_per_transfer_stage"])
    width = max(w["tasks_per_transfer_stage"].values())
    print(f"{'GPU workers':>11} {'pretrain h':>11} {'transfer h':>11} {'total h':>8} {'busy':>6}")
    for n in (1, 8, 32, 100, width):
        pre_h = n_stage * math.ceil(w["tasks_per_pretrain_stage"] / n) * t_pre / 3600
        tr_h = n_stage * math.ceil(width / n) * t_tr / 3600
        print(f"{n:>11} {pre_h:>11.2f} {tr_h:>11.2f} {pre_h + tr_h:>8.2f} {a100_h / n / (pre_h + tr_h):>6.0%}")


if __name__ == "__main__":
    main(sys.argv[1:])
