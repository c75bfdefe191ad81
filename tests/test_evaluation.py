"""Metrics on hand-made predictions."""

import math

import numpy as np
import pytest
import torch

from hrtem_ood.learning.evaluation import (
    PAPER_LOSS_OFFSET,
    MetricAccumulator,
    evaluate,
    particle_class,
    pixel_paper_loss,
    predicted_masks,
    standardize,
    training_loss,
)


def _logits(pred: np.ndarray, confidence: float) -> torch.Tensor:
    """(N, H, W) class map -> (N, 2, H, W) logits favouring it by ``confidence``."""
    p = torch.from_numpy(pred).long()
    return torch.stack([(p == 0).float(), (p == 1).float()], 1) * confidence


def test_paper_loss_offset_is_ln_1_plus_e_minus_1():
    assert PAPER_LOSS_OFFSET == pytest.approx(0.3132617, abs=1e-6)


def test_perfect_confident_predictions():
    y = np.zeros((2, 8, 8), np.int64)
    y[:, 2:5, 3:6] = 1
    acc = MetricAccumulator()
    acc.update(_logits(y, 50.0), torch.from_numpy(y))
    m = acc.result()
    assert m["ce"] == pytest.approx(0.0, abs=1e-6)
    assert m["paper_loss"] == pytest.approx(0.0, abs=1e-6)
    assert m["dice"] == 1.0 and m["iou"] == 1.0


def test_dice_iou_and_losses_on_known_counts():
    y = np.array([[[1, 1, 1, 0], [0, 0, 0, 0]]])
    pred = np.array([[[1, 1, 0, 1], [0, 0, 0, 0]]])  # tp 2, fn 1, fp 1, tn 4
    acc = MetricAccumulator()
    acc.update(_logits(pred, 2.0), torch.from_numpy(y))
    m = acc.result()
    assert m["dice"] == pytest.approx(4 / 6)
    assert m["iou"] == pytest.approx(2 / 4)
    right, wrong = math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0))
    assert m["ce"] == pytest.approx((6 * right + 2 * wrong) / 8, rel=1e-5)
    p_hi = 1 / (1 + math.exp(-2.0))  # softmax prob of the favoured class
    ce_soft_right = math.log1p(math.exp(-(2 * p_hi - 1)))
    ce_soft_wrong = math.log1p(math.exp(2 * p_hi - 1))
    assert m["paper_loss"] == pytest.approx((6 * ce_soft_right + 2 * ce_soft_wrong) / 8 - PAPER_LOSS_OFFSET, rel=1e-5)


def test_pooled_metrics_do_not_depend_on_batching():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (6, 16, 16))
    logits = torch.from_numpy(rng.normal(size=(6, 2, 16, 16)).astype(np.float32))
    one, many = MetricAccumulator(), MetricAccumulator()
    one.update(logits, torch.from_numpy(y))
    for i in range(0, 6, 4):
        many.update(logits[i:i + 4], torch.from_numpy(y[i:i + 4]))
    for k, v in one.result().items():
        assert many.result()[k] == pytest.approx(v, rel=1e-6)


def test_training_losses():
    y = torch.tensor([[[1, 0]]])
    logits = torch.tensor([[[[0.0, 3.0]], [[3.0, 0.0]]]])
    assert float(training_loss("ce")(logits, y)) == pytest.approx(math.log1p(math.exp(-3.0)), rel=1e-5)
    soft = float(training_loss("softmax_ce")(logits, y))
    p = 1 / (1 + math.exp(-3.0))
    assert soft == pytest.approx(math.log1p(math.exp(-(2 * p - 1))), rel=1e-5)
    with pytest.raises(ValueError, match="train.loss"):
        training_loss("dice")


def test_standardize_per_image():
    x = np.stack([np.arange(16.0).reshape(4, 4), 5 + 3 * np.arange(16.0).reshape(4, 4), np.full((4, 4), 7.0)])
    s = standardize(x)
    assert np.allclose(s[:2].mean(axis=(1, 2)), 0, atol=1e-6) and np.allclose(s[:2].std(axis=(1, 2)), 1, atol=1e-5)
    assert np.allclose(s[0], s[1], atol=1e-5)
    assert np.all(s[2] == 0)


class _SignNet(torch.nn.Module):
    """Logits (0, x): the particle class wherever the image is positive, by a margin of |x|."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), x], 1)


def test_per_pixel_paper_loss_is_the_closed_form_and_averages_to_the_pooled_one():
    y = np.array([[[1, 1, 0, 0], [0, 0, 1, 0]]] * 3)
    images = np.where(np.array([[[1, 1, 1, 0], [0, 0, 1, 0]]] * 3) == 1, 2.0, -2.0).astype(np.float32)
    model = _SignNet().train()
    loss, pred = pixel_paper_loss(model, images, y, torch.device("cpu"), batch_size=2)
    assert model.training  # left as it was found
    assert loss.shape == y.shape and np.array_equal(pred, (images > 0).astype(int))
    p_hi = 1 / (1 + math.exp(-2.0))
    right = math.log1p(math.exp(-(2 * p_hi - 1))) - PAPER_LOSS_OFFSET
    wrong = math.log1p(math.exp(2 * p_hi - 1)) - PAPER_LOSS_OFFSET
    expected = np.where(pred == y, right, wrong)
    assert np.allclose(loss, expected, rtol=1e-5)
    pooled = evaluate(model, images, y, torch.device("cpu"), batch_size=2)
    assert model.training
    assert float(loss.mean()) == pytest.approx(pooled["paper_loss"], rel=1e-5)
    assert pooled["iou"] == pytest.approx(3 / 4)   # tp 3, fp 1, fn 0


def test_particle_class_picks_the_pixels_argmax_picks_ties_included():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 2, 33, 17, generator=gen)
    logits[:, 1, :5] = logits[:, 0, :5]  # ties: argmax takes the first class, background
    logits[0, :, 6] = torch.tensor([-1e30, 1e30])[:, None]
    for fmt in (torch.contiguous_format, torch.channels_last):
        got = particle_class(logits.contiguous(memory_format=fmt))
        assert got.dtype == torch.bool and torch.equal(got, logits.argmax(1) == 1)
    assert not got[:, :5].any() and got[0, 6].all()


def test_predicted_masks_are_uint8_classes_of_the_larger_logit():
    images = np.array([[[2.0, -1.0], [0.0, 3.0]]] * 3, np.float32)
    masks = predicted_masks(_SignNet().eval(), images, torch.device("cpu"), batch_size=2)
    assert masks.dtype == np.uint8 and np.array_equal(masks, (images > 0).astype(np.uint8))
