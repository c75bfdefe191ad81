"""U-Net: a timm encoder (``features_only``, ``pretrained=False``, 1 input channel), our decoder and head.

Contract (as in segmentation_models.pytorch): ``model.encoder`` maps an image (B, 1, H, W) to a list
of feature maps, ``model.decoder`` fuses them back to full resolution, ``model.head`` maps to 2-class
logits (B, 2, H, W). Freezing a part removes its gradients, keeps it out of the optimizer and keeps
its BatchNorm running statistics fixed in training mode. Never imports abTEM; never downloads.
"""

from __future__ import annotations

import os

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hrtem_ood.config.params import ParamsError, suggest
from hrtem_ood.config.schema import FREEZE_MODES, Model  # one definition, shared with params validation


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNetDecoder(nn.Module):
    """Upsample x2, concatenate the skip feature, two 3x3 conv-BN-ReLU; repeated to stride 1."""

    def __init__(self, encoder_channels: list[int], encoder_reductions: list[int], decoder_channels: list[int]):
        super().__init__()
        skips = list(reversed(encoder_channels[:-1]))
        reductions = list(reversed(encoder_reductions))
        n_up = len(skips) + (1 if reductions[-1] > 1 else 0)
        if len(decoder_channels) < n_up:
            raise ParamsError(f"model.decoder_channels: needs {n_up} entries for this encoder, got {decoder_channels}")
        self.blocks = nn.ModuleList()
        cin = encoder_channels[-1]
        for i in range(n_up):
            skip = skips[i] if i < len(skips) else 0
            self.blocks.append(_conv_block(cin + skip, decoder_channels[i]))
            cin = decoder_channels[i]
        self.out_channels = cin
        self.reductions = reductions

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = list(reversed(features[:-1]))
        for i, block in enumerate(self.blocks):
            if i < len(skips):
                skip = skips[i]
                x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest")
                x = torch.cat([x, skip], dim=1)
            else:
                x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            x = block(x)
        return x


class UNet(nn.Module):
    def __init__(self, encoder: nn.Module, decoder_channels: list[int], n_classes: int = 2):
        super().__init__()
        self.encoder = encoder
        info = encoder.feature_info
        self.decoder = UNetDecoder(info.channels(), info.reduction(), decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, n_classes, 1)
        self.frozen: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))

    def freeze(self, mode: str) -> None:
        """``none`` | ``encoder`` | ``decoder``: frozen parts get no gradient and keep BN statistics."""
        if mode not in FREEZE_MODES:
            raise ValueError(f"transfer.freeze: must be one of {FREEZE_MODES}, got {mode!r}")
        self.frozen = () if mode == "none" else (mode,)
        for name in ("encoder", "decoder", "head"):
            for p in getattr(self, name).parameters():
                p.requires_grad_(name not in self.frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> UNet:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def build_model(cfg: Model, seed: int = 0) -> UNet:
    """Build the U-Net from the ``model`` params section with a seeded random initialization."""
    import timm

    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.encoder_kwargs.items()}
    torch.manual_seed(seed + cfg.seed_offset)
    try:
        encoder = timm.create_model(cfg.encoder, pretrained=False, features_only=True, in_chans=1, **kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ParamsError(f"model.encoder: cannot build timm encoder {cfg.encoder!r} with {kwargs}: "
                          f"{' '.join(str(exc).split())}") from exc
    return UNet(encoder, cfg.decoder_channels)


def check_encoder(cfg: Model, source: str = "params.yaml") -> None:
    """``model.encoder`` names a timm model, and the U-Net builds from the ``model`` section; else one line
    naming ``source`` (the params file) and the key."""
    import timm

    if not timm.is_model(cfg.encoder):
        raise ParamsError(f"{source}: model.encoder: unknown timm model {cfg.encoder!r}"
                          f"{suggest(cfg.encoder, timm.list_models())}")
    try:
        build_model(cfg)
    except ParamsError as exc:
        raise ParamsError(f"{source}: {exc}") from exc


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
