"""Training loop: augmentation, best-epoch selection, determinism."""

import numpy as np
import pytest
import torch
from conftest import tiny_params

from hrtem_ood.config.params import validate
from hrtem_ood.config.schema import Model, Train
from hrtem_ood.execution import grid
from hrtem_ood.learning import training
from hrtem_ood.learning.model import build_model
from hrtem_ood.learning.training import CropBatches, dihedral

SMALL = Model(encoder="resnet10t", encoder_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8},
              decoder_channels=[32, 16, 8, 8, 8])
CFG = Train.model_validate({**tiny_params()["train"], "loss": "ce", "lr_decay_per_epoch": 0.99, "crop_px": 32,
                            "crops_per_image": 2, "batch_size": 4, "augment": "dihedral"})


def _data(n=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([((yy - rng.integers(12, 36)) ** 2 + (xx - rng.integers(12, 36)) ** 2 < 64) for _ in range(n)])
    images = (masks * 2.0 + rng.normal(0, 0.5, masks.shape)).astype(np.float32)
    return images, masks.astype(np.int64)


def test_dihedral_group_has_eight_distinct_elements():
    x = np.arange(9).reshape(3, 3)
    variants = {dihedral(x, k).tobytes() for k in range(8)}
    assert len(variants) == 8


def test_crops_keep_image_and_mask_aligned():
    images, masks = _data()
    batches = CropBatches(images, masks, 32, 3, 5, "dihedral", np.random.default_rng(0))
    seen = 0
    for xb, yb in batches.epoch():
        seen += len(xb)
        # the image is 2 * mask + noise: thresholding recovers the (transformed) mask
        assert ((xb[:, 0] > 1.0) == (yb == 1)).float().mean() > 0.9
    assert seen == 12 and batches.steps_per_epoch() == 3


def test_best_epoch_is_lowest_validation_loss(monkeypatch):
    scripted = iter([0.9, 0.5, 0.7, 0.5, 0.8])
    snapshots = {}
    real_eval = training.evaluate

    def fake_evaluate(model, images, masks, device, **kw):
        m = real_eval(model, images, masks, device, **kw)
        m["ce"] = next(scripted)
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return m

    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    images, masks = _data()
    model = build_model(SMALL, 0)
    res = training.train(model, images, masks, images[:2], masks[:2], CFG, 1e-2, 5, seed=0)
    assert res.best_epoch == 2  # lowest loss, first of the tie with epoch 4
    assert res.best_val_loss == 0.5
    assert all(torch.equal(res.best_state[k], snapshots[2][k]) for k in res.best_state)
    assert not all(torch.equal(res.best_state[k], snapshots[5][k]) for k in res.best_state)
    assert [c["epoch"] for c in res.curve] == [1, 2, 3, 4, 5]
    assert res.curve[1]["lr"] == pytest.approx(1e-2 * 0.99)


def test_training_is_deterministic_on_cpu_and_learns():
    images, masks = _data(n=6)
    results = []
    for _ in range(2):
        model = build_model(SMALL, 1)
        results.append(training.train(model, images, masks, images[:2], masks[:2], CFG, 1e-2, 6, seed=1))
    a, b = results
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    assert a.curve[-1]["train_loss"] < a.curve[0]["train_loss"]


def test_channels_last_and_bf16_change_layout_not_results():
    """channels_last puts the conv weights in NHWC, and evaluation gives the same metrics in either layout;
    bf16 autocast is used only where the CPU runs it natively, and a bf16-trained model's first-epoch
    training loss is within 2% of the float32 one from the same seed (same crops, same initialization)."""
    import torch

    from hrtem_ood.learning.evaluation import evaluate

    images, masks = _data()
    cfg = CFG.model_copy(update={"memory_format": "channels_last", "amp": False})
    model = build_model(SMALL, 0)
    res32 = training.train(model, images, masks, images[:2], masks[:2], cfg, 1e-3, 1, seed=0)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    a = evaluate(model, images[:2], masks[:2], torch.device("cpu"), memory_format=torch.channels_last)
    b = evaluate(model.to(memory_format=torch.contiguous_format), images[:2], masks[:2], torch.device("cpu"))
    assert a["ce"] == pytest.approx(b["ce"], rel=1e-4) and a["dice"] == pytest.approx(b["dice"], abs=1e-3)
    if not training.bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16")
    res16 = training.train(build_model(SMALL, 0), images, masks, images[:2], masks[:2],
                           cfg.model_copy(update={"amp": True}), 1e-3, 1, seed=0)
    assert res16.curve[0]["train_loss"] == pytest.approx(res32.curve[0]["train_loss"], rel=0.02)
    assert res16.curve[0]["train_loss"] != res32.curve[0]["train_loss"]  # autocast really ran in bf16


def test_models_side_by_side_give_the_bytes_of_one_after_another(tmp_path):
    """train.parallel_models trains a stage's models in worker processes; each model gets the same thread
    count either way, so the results tables and the saved states are byte-identical to the in-process
    run with parallel_models = 1 and that thread count."""
    import yaml

    from hrtem_ood.dataio.datasets import write_h5

    p = tiny_params()
    images, masks = _data(n=4, size=64)
    for split in ("train", "val", "test"):
        for d in ("dfm10", "df0", "dfp10"):
            write_h5(tmp_path / "domains" / d / f"{split}.h5", {"images": images.astype(np.float32),
                     "masks": masks.astype(np.uint8)}, {"domain": d, "sampling_A": 0.2})
    p["model"] = SMALL.model_dump()
    p["train"].update(threads=2, crop_px=32, batch_size=4, crops_per_image=2)
    out = {}
    for name, par, threads in (("side", 2, 2), ("serial", 1, 1)):
        q = yaml.safe_load(yaml.safe_dump(p))
        q["train"].update(parallel_models=par, threads=threads)
        q["pretrain"].update(lr=[1e-3, 3e-4], epochs=2, n_images=None)  # a grid of two models
        jobs = grid.stage_jobs(validate(q), "pretrain", "dfm10", tmp_path / "domains")
        grid.train_and_write(jobs, tmp_path / name / "m", tmp_path / name / "r.csv", tmp_path / name / "c.json",
                             tmp_path / name / "t.csv")
        out[name] = tmp_path / name
    # the results tables hold no wall-clock figure, so they are byte-identical; the timing tables hold the seconds
    side, serial = ((out[k] / "r.csv").read_text() for k in ("side", "serial"))
    assert side == serial and len(side.splitlines()) == 1 + 2 * 3 * 4  # 2 models x 3 domains x 4 metrics
    assert "seconds" not in side.splitlines()[0]
    for f in ("dfm10/lrp0.001/seed0.pt", "dfm10/lrp0.0003/seed0.pt"):
        assert (out["side"] / "m" / f).read_bytes() == (out["serial"] / "m" / f).read_bytes()
    timing = [row for k in ("side", "serial") for row in _rows(out[k] / "t.csv")]
    assert len(timing) == 4 and all(float(r["seconds"]) > 0 for r in timing)
    assert {r["run"] for r in timing} == {r["run"] for r in _rows(out["side"] / "r.csv")}
    tc = CFG.model_copy(update={"threads": 2, "parallel_models": 2})
    assert grid.model_threads(tc, 10) == 1
    assert grid.model_threads(tc, 5) == 1  # the fifth model too
    assert grid.model_threads(tc, 1) == 2  # a lone model keeps every thread


def _rows(path):
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))
