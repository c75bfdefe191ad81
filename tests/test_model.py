"""U-Net contract, freezing, capacity, and offline construction."""

import socket

import numpy as np
import pytest
import torch

from hrtem_ood.config.schema import Model
from hrtem_ood.learning.model import build_model, n_parameters

SMALL = Model(encoder="resnet10t", encoder_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8},
              decoder_channels=[32, 16, 8, 8, 8])


@pytest.mark.parametrize(
    "cfg",
    [
        SMALL.model_dump(),
        {"encoder": "resnet10t", "encoder_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8},
         "decoder_channels": [64, 32, 16, 8, 8]},
        {"encoder": "resnet14t", "encoder_kwargs": {"channels": [8, 16, 32, 64]},
         "decoder_channels": [32, 16, 8, 8, 8]},
        {"encoder": "resnet18", "encoder_kwargs": {}, "decoder_channels": [256, 128, 64, 32, 16]},
    ],
)
def test_unet_maps_images_to_two_class_logits(cfg):
    model = build_model(Model.model_validate(cfg), seed=0).eval()
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        y = model(x)
        feats = model.encoder(x)
    assert y.shape == (2, 2, 64, 96)
    assert len(feats) == len(model.encoder.feature_info.channels())
    assert [f.shape[1] for f in feats] == model.encoder.feature_info.channels()


def test_resnet18_unet_has_the_studys_size():
    n = n_parameters(build_model(Model(encoder="resnet18", decoder_channels=[256, 128, 64, 32, 16])))
    assert 12e6 < n < 16e6  # the study: ~14 M parameters


def test_same_seed_same_weights():
    a, b, c = build_model(SMALL, 3), build_model(SMALL, 3), build_model(SMALL, 4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("mode", ["none", "encoder", "decoder"])
def test_freeze_modes(mode):
    model = build_model(SMALL, 0)
    model.freeze(mode)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    opt_ids = {id(p) for g in opt.param_groups for p in g["params"]}
    x, y = torch.randn(4, 1, 64, 64), torch.randint(0, 2, (4, 64, 64))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    after = model.state_dict()
    for part in ("encoder", "decoder", "head"):
        frozen = part == mode
        params = list(getattr(model, part).parameters())
        assert all((p.grad is None) == frozen for p in params)
        assert all((id(p) in opt_ids) != frozen for p in params)
        keys = [k for k in after if k.startswith(part + ".")]
        bn_stats = [k for k in keys if k.endswith(("running_mean", "running_var"))]
        if part != "head":
            assert bn_stats
        changed = [not torch.equal(before[k], after[k]) for k in keys if not k.endswith("num_batches_tracked")]
        if frozen:
            assert not any(changed), f"{part} changed although frozen"
        else:
            assert all(changed[i] for i, k in enumerate(k for k in keys if not k.endswith("num_batches_tracked"))
                       if k in bn_stats)
    # frozen parts stay in eval mode even after model.train()
    if mode != "none":
        assert not getattr(model, mode).training
        assert all(not m.training for m in getattr(model, mode).modules())


def test_unknown_freeze_mode_is_rejected():
    with pytest.raises(ValueError, match="transfer.freeze"):
        build_model(SMALL, 0).freeze("everything")


def test_tiny_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model(SMALL, 0).train()
    x = torch.randn(2, 1, 64, 64)
    yy, xx = np.mgrid[:64, :64]
    y = torch.from_numpy(np.stack([((yy - 30) ** 2 + (xx - 30) ** 2 < 15**2),
                                   ((yy - 20) ** 2 + (xx - 40) ** 2 < 10**2)]).astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean()
    assert float(loss.detach()) < 0.1 and float(acc) > 0.98


def test_model_builds_with_sockets_blocked(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = build_model(Model(encoder="resnet18", decoder_channels=[64, 32, 16, 16, 8]))
    assert n_parameters(model) > 1e7
