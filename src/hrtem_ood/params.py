"""Reading and validating ``params.yaml``.

Every check names the file, the key and the problem, and runs before any work starts.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

DOMAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
IMAGING_KEYS = ("seed", "defocus_sigma_nm", "dose_e_per_A2", "focal_spread_A", "Cs_mm", "aperture_mrad")
FREEZE_MODES = ("none", "encoder", "decoder")
LOSSES = ("ce", "softmax_ce")
METRICS = ("ce", "paper_loss", "dice", "iou")


class ParamsError(ValueError):
    """A parameter is missing or invalid. The message names the file, key and problem."""


class _Checker:
    def __init__(self, params: dict, source: str):
        self.p = params
        self.source = source

    def fail(self, key: str, problem: str) -> None:
        raise ParamsError(f"{self.source}: {key}: {problem}")

    def get(self, key: str) -> Any:
        node: Any = self.p
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                self.fail(key, "missing")
            node = node[part]
        return node

    def number(self, key: str, lo: float | None = None, hi: float | None = None, *, strict_lo=False,
               integer=False, value=None) -> float:
        v = self.get(key) if value is None else value
        if isinstance(v, bool) or not isinstance(v, int | float) or (isinstance(v, float) and not math.isfinite(v)):
            self.fail(key, f"must be a finite number, got {v!r}")
        if integer and not isinstance(v, int):
            self.fail(key, f"must be an integer, got {v!r}")
        if lo is not None and (v < lo or (strict_lo and v == lo)):
            self.fail(key, f"must be {'>' if strict_lo else '>='} {lo}, got {v!r}")
        if hi is not None and v > hi:
            self.fail(key, f"must be <= {hi}, got {v!r}")
        return v

    def range_(self, key: str, lo: float, integer=False) -> tuple:
        v = self.get(key)
        if not isinstance(v, list | tuple) or len(v) != 2:
            self.fail(key, f"must be a [min, max] pair, got {v!r}")
        a = self.number(key, lo, integer=integer, value=v[0])
        b = self.number(key, lo, integer=integer, value=v[1])
        if a > b:
            self.fail(key, f"min must not exceed max, got {v!r}")
        return a, b

    def choice(self, key: str, options) -> Any:
        v = self.get(key)
        if v not in options:
            self.fail(key, f"must be one of {list(options)}, got {v!r}")
        return v


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(params).__name__}")
    params["_source"] = str(path)
    return params


def domain_names(params: dict) -> list[str]:
    """Every domain models are evaluated on: the simulated ``domains``, then the ingested datasets
    that have masks (``ingest.datasets``)."""
    ingested = ((params.get("ingest") or {}).get("datasets") or {})
    return list(params["domains"]) + [k for k, v in ingested.items() if v.get("masks")]


def domain_defocus_nm(params: dict) -> dict[str, float | None]:
    """Defocus (nm) of every domain where known (ingested data may not say)."""
    ingested = ((params.get("ingest") or {}).get("datasets") or {})
    out = {k: v.get("defocus_nm") for k, v in ingested.items()}
    out.update({k: v.get("defocus_nm") for k, v in params["domains"].items()})
    return {k: (float(v) if v is not None else None) for k, v in out.items()}


def domain_imaging(params: dict, name: str) -> dict:
    """The imaging parameters of one domain: ``imaging`` defaults overridden by the domain's keys."""
    out = {k: v for k, v in params["imaging"].items()}
    out.update(params["domains"][name])
    out["name"] = name
    return out


def expected_pairs(params: dict) -> dict[str, dict[str, str]]:
    """Every ordered (pretrain, target) pair with target != pretrain, named ``<pretrain>-to-<target>``."""
    return {
        f"{p}-to-{t}": {"pretrain": p, "target": t}
        for p in params["pretrain"]["domains"]
        for t in domain_names(params)
        if t != p
    }


def validate(params: dict, sections: tuple[str, ...] | None = None) -> dict:
    """Check ``params`` (or only ``sections`` of it, plus the domains). Returns ``params``."""
    c = _Checker(params, params.get("_source", "params.yaml"))
    want = set(sections) if sections else {"structures", "simulate", "imaging", "model", "train",
                                           "pretrain", "transfer", "aggregate"}
    doms = c.get("domains")
    if not isinstance(doms, dict) or not doms:
        c.fail("domains", "must be a non-empty mapping of domain name -> settings")
    for name, d in doms.items():
        if not isinstance(name, str) or not DOMAIN_NAME.match(name):
            c.fail(f"domains.{name}", "a domain name must start with a letter and hold only letters, digits, _")
        if not isinstance(d, dict):
            c.fail(f"domains.{name}", f"must be a mapping, got {d!r}")
        unknown = set(d) - set(IMAGING_KEYS) - {"defocus_nm"}
        if unknown:
            allowed = ", ".join(("defocus_nm",) + IMAGING_KEYS)
            c.fail(f"domains.{name}", f"unknown keys {sorted(unknown)}; allowed: {allowed}")
        c.number(f"domains.{name}.defocus_nm", -1e4, 1e4)
    ingested = (params.get("ingest") or {}).get("datasets") or {}
    if not isinstance(ingested, dict):
        c.fail("ingest.datasets", "must be a mapping of dataset name -> settings")
    for name, d in ingested.items():
        key = f"ingest.datasets.{name}"
        if not isinstance(name, str) or not DOMAIN_NAME.match(name):
            c.fail(key, "a dataset name must start with a letter and hold only letters, digits, _")
        if name in doms:
            c.fail(key, f"duplicate name: {name!r} is also a simulated domain")
        if not isinstance(d, dict) or not d.get("root"):
            c.fail(key, "needs at least `root: <folder holding images/ and masks/>`")
        unknown = set(d) - {"root", "masks", "pixel_size_A", "defocus_nm", "dose_e_per_A2", "tile_px", "stride_px",
                            "splits", "seed"}
        if unknown:
            c.fail(key, f"unknown keys {sorted(unknown)}")
        tile = c.number(f"{key}.tile_px", 32, integer=True, value=d.get("tile_px", 256))
        if tile % 32:
            c.fail(f"{key}.tile_px", f"must be a multiple of 32, got {tile}")
        c.number(f"{key}.stride_px", 1, integer=True, value=d.get("stride_px", tile))
        if d.get("pixel_size_A") is not None:
            c.number(f"{key}.pixel_size_A", 0.0, 100.0, strict_lo=True, value=d["pixel_size_A"])
        if d.get("defocus_nm") is not None:
            c.number(f"{key}.defocus_nm", -1e4, 1e4, value=d["defocus_nm"])

    if "structures" in want:
        from .structures import MATERIALS

        for k in ("n_train", "n_val", "n_test"):
            c.number(f"structures.{k}", 1, integer=True)
        c.number("structures.seed", 0, integer=True)
        c.number("structures.field_A", 10.0)
        c.choice("structures.material", MATERIALS)
        c.range_("structures.particles.count", 0, integer=True)
        dmin, dmax = c.range_("structures.particles.diameter_A", 5.0)
        if dmax > c.get("structures.field_A"):
            c.fail("structures.particles.diameter_A", "particles larger than structures.field_A do not fit")
        c.number("structures.particles.min_gap_A", 0.0)
        c.number("structures.particles.max_stacking_faults", 0, integer=True)
        c.choice("structures.particles.side", ("top", "bottom"))
        c.range_("structures.carbon.thickness_A", 0.0)
        c.number("structures.carbon.density_per_A3", 0.0, 0.2)
        c.number("structures.carbon.min_separation_A", 0.5, 3.0)

    if "simulate" in want:
        c.number("simulate.seed", 0, integer=True)
        c.number("simulate.energy_keV", 10.0, 3000.0)
        s = c.number("simulate.sampling_A", 0.0, 0.5, strict_lo=True)
        so = c.number("simulate.output_sampling_A", 0.0, 1.0, strict_lo=True)
        if so < s:
            c.fail("simulate.output_sampling_A", f"must be >= simulate.sampling_A ({s}), got {so}")
        if so > 0.5:
            c.fail("simulate.output_sampling_A", f"{so} A is too coarse to resolve lattice fringes (max 0.5)")
        ratio = so / s
        if abs(ratio - round(ratio)) > 1e-6:
            c.fail("simulate.output_sampling_A",
                   f"must be an integer multiple of simulate.sampling_A, got ratio {ratio:g}")
        c.number("simulate.slice_thickness_A", 0.1, 20.0)
        c.number("simulate.frozen_phonons", 1, integer=True)
        c.number("simulate.phonon_sigma_A", 0.0, 0.5)
        c.choice("simulate.fft", ("numpy", "fftw"))
        c.number("simulate.label.threshold_rad", 0.0, math.pi, strict_lo=True)
        c.number("simulate.label.smoothing_A", 0.0, 10.0)
        c.choice("simulate.label.order", ("smooth_then_threshold", "threshold_then_smooth"))
        c.choice("simulate.calibration.method", ("minimum_contrast", "gaussian_focus"))
        c.number("simulate.calibration.search_A", 0.0, 2000.0, strict_lo=True)
        c.number("simulate.calibration.coarse_step_A", 0.0, strict_lo=True)
        c.number("simulate.calibration.fine_step_A", 0.0, strict_lo=True)
        if params["simulate"]["calibration"].get("q_max_per_A") is not None:
            c.number("simulate.calibration.q_max_per_A", 0.0, strict_lo=True)

    if "imaging" in want:
        for name in doms:
            d = domain_imaging(params, name)
            where = lambda k, n=name: f"domains.{n}.{k}" if k in doms[n] else f"imaging.{k}"  # noqa: E731
            c.number(where("seed"), 0, integer=True, value=d["seed"])
            c.number(where("defocus_sigma_nm"), 0.0, value=d["defocus_sigma_nm"])
            c.number(where("dose_e_per_A2"), 0.0, strict_lo=True, value=d["dose_e_per_A2"])
            c.number(where("focal_spread_A"), 0.0, value=d["focal_spread_A"])
            c.number(where("Cs_mm"), -100.0, 100.0, value=d["Cs_mm"])
            if d.get("aperture_mrad") is not None:
                c.number(where("aperture_mrad"), 0.0, 1000.0, strict_lo=True, value=d["aperture_mrad"])

    if "model" in want:
        if not isinstance(c.get("model.encoder"), str):
            c.fail("model.encoder", "must be a timm model name")
        if not isinstance(c.get("model.encoder_kwargs") or {}, dict):
            c.fail("model.encoder_kwargs", "must be a mapping of timm.create_model keyword arguments")
        dec = c.get("model.decoder_channels")
        if not isinstance(dec, list) or not dec or not all(isinstance(x, int) and x > 0 for x in dec):
            c.fail("model.decoder_channels", f"must be a non-empty list of positive integers, got {dec!r}")

    if "train" in want:
        seeds = c.get("train.seeds")
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            c.fail("train.seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            c.fail("train.seeds", f"duplicate seeds {seeds!r}")
        c.number("train.batch_size", 1, integer=True)
        crop = c.number("train.crop_px", 16, integer=True)
        if crop % 32:
            c.fail("train.crop_px", f"must be a multiple of 32 (the encoder's total stride), got {crop}")
        c.number("train.crops_per_image", 1, integer=True)
        c.choice("train.augment", ("dihedral", "none"))
        c.choice("train.loss", LOSSES)
        c.number("train.lr_decay_per_epoch", 0.0, 1.0, strict_lo=True)
        c.number("train.threads", 1, integer=True)
        if not isinstance(params["train"].get("amp", False), bool):
            c.fail("train.amp", f"must be true or false, got {params['train']['amp']!r}")

    if "pretrain" in want:
        pdoms = c.get("pretrain.domains")
        if not isinstance(pdoms, list) or not pdoms:
            c.fail("pretrain.domains", "must be a non-empty list of domain names")
        for d in pdoms:
            if d not in domain_names(params):
                c.fail("pretrain.domains", f"unknown domain {d!r}; declared domains with masks: {domain_names(params)}")
        if len(set(pdoms)) != len(pdoms):
            c.fail("pretrain.domains", f"duplicate domains in {pdoms!r}")
        c.number("pretrain.lr", 0.0, 1.0, strict_lo=True)
        c.number("pretrain.epochs", 1, integer=True)
        if c.get("pretrain.n_images") is not None:
            c.number("pretrain.n_images", 1, integer=True)

    if "transfer" in want:
        c.number("transfer.lr", 0.0, 1.0, strict_lo=True)
        c.number("transfer.epochs", 1, integer=True)
        c.number("transfer.n_images", 1, integer=True)
        c.choice("transfer.freeze", FREEZE_MODES)
        pairs = c.get("transfer.pairs")
        expected = expected_pairs(params)
        if pairs is None:
            pairs = {}
        if not isinstance(pairs, dict) or pairs != expected:
            missing = sorted(set(expected) - set(pairs or {}))
            extra = sorted(set(pairs or {}) - set(expected))
            wrong = sorted(k for k in set(expected) & set(pairs or {}) if pairs[k] != expected[k])
            c.fail("transfer.pairs", f"does not match pretrain.domains x domains (missing {missing[:4]}, "
                   f"unexpected {extra[:4]}, wrong {wrong[:4]}); run `hrtem-ood pairs --write`")

    if "aggregate" in want:
        c.choice("aggregate.metric", METRICS)
        c.choice("aggregate.reduce", ("median", "mean"))
        ex = c.get("aggregate.exclude_from_std")
        if not isinstance(ex, list) or any(e not in domain_names(params) for e in ex):
            c.fail("aggregate.exclude_from_std", f"must list declared domains, got {ex!r}")
        pairs = c.get("aggregate.pairs")
        if not isinstance(pairs, list):
            c.fail("aggregate.pairs", f"must be a list of [pretrain, target] pairs, got {pairs!r}")
        for pr in pairs:
            if not (isinstance(pr, list) and len(pr) == 2 and all(x in domain_names(params) for x in pr)):
                c.fail("aggregate.pairs", f"{pr!r} is not a [pretrain, target] pair of declared domains")
        if not isinstance(c.get("aggregate.filters"), dict):
            c.fail("aggregate.filters", "must be a mapping column -> list of kept values")
    return params
