"""Reading and validating ``params.yaml`` into the typed ``Params`` (``hrtem_ood.config.schema``): each section's
model, then the cross-field checks.

Every problem is reported as one line, ``<file>: <key>: <problem>``, before any work starts. Unknown
keys are rejected with the nearest valid key. Checks that need a science module (the material's lattice, the timm
encoder) live with that module and run at the start of the stage that uses it, and in ``hrtem-ood validate``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from hrtem_ood.config.domains import domain_names
from hrtem_ood.config.schema import GRID_KEYS, Imaging, Params, grid_values
from hrtem_ood.errors import UserError
from hrtem_ood.results.columns import FILTER_COLUMNS

DOMAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ParamsError(UserError):
    """A parameter is missing or invalid. The message names the file, key and problem."""


# ----------------------------------------------------------------------------------- reading


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(params).__name__}")
    params["_source"] = str(path)
    return params


def suggest(word: str, options) -> str:
    """``"; did you mean X?"`` for the nearest option, or the options themselves when none is near."""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; valid: {', '.join(options[:12])}{' ...' if len(options) > 12 else ''}"


def fail(params: Params | dict, key: str, problem: str):
    """Raise the one-line error ``<source>: <key>: <problem>`` (``params``: the typed params, or the file's raw
    mapping while it is being validated)."""
    source = params.source if isinstance(params, Params) else params.get("_source", "params.yaml")
    raise ParamsError(f"{source}: {key}: {problem}")


def _submodel(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is dict:
        value = get_args(annotation)[1]
        return value if isinstance(value, type) and issubclass(value, BaseModel) else None
    return None


def _fields_at(loc: tuple) -> list[str]:
    """The valid keys of the model reached by ``loc`` from :class:`Params`."""
    cls: type[BaseModel] = Params
    for part in loc:
        if part not in cls.model_fields:
            continue  # a mapping key (domain, dataset or pair name)
        cls = _submodel(cls.model_fields[part].annotation) or cls
    return list(cls.model_fields)


#: A union member's tag in an error location (``float``, ``list[float]``, ``literal[...]``): not a key.
_UNION_TAG = re.compile(r"^(float|int|str|bool|none|constrained-\w+|(list|literal)\[.*\])$")


def _message(err: dict) -> tuple[str, str]:
    key = ".".join(str(x) for x in err["loc"] if not (isinstance(x, str) and _UNION_TAG.match(x)))
    if err["type"] == "extra_forbidden":
        return key, "unknown key" + suggest(err["loc"][-1], _fields_at(err["loc"][:-1]))
    if err["type"] == "missing":
        return key, "missing"
    return key, f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"


def validate(params: dict) -> Params:
    """Check every section and the cross-field rules of a params file's mapping (:func:`load_params`). Returns
    the typed :class:`Params` that every stage, the grid and the workers use."""
    data = {k: v for k, v in params.items() if k != "_source"}
    if isinstance(params.get("transfer"), dict) and "pairs" in params["transfer"]:
        fail(params, "transfer.pairs", "no longer a param: the transfer pairs are every (pretrain, target) of "
                                       "pretrain.domains x the evaluated domains; delete this block")
    try:
        typed = Params.model_validate(data)
    except ValidationError as exc:
        # unknown keys first; of a value-or-list grid key, the scalar member's error (clearer than the list's)
        errors = sorted(exc.errors(), key=lambda e: (e["type"] != "extra_forbidden", "'list[" in str(e["loc"])))
        fail(params, *_message(errors[0]))
    typed._source = params.get("_source", "params.yaml")
    _check_domains(typed)
    _check_data(typed)
    _check_training(typed)
    _check_aggregate(typed)
    _check_labels(typed)
    return typed


# ----------------------------------------------------------------------------------- cross-field checks


def _check_domains(p: Params) -> None:
    for name, d in p.domains.items():
        if not DOMAIN_NAME.match(name):
            fail(p, f"domains.{name}", "a domain name must start with a letter and hold only letters, digits, _")
        overrides = d.model_dump(exclude={"defocus_nm", "structure"}, exclude_none=True)
        try:
            Imaging.model_validate({**p.imaging.model_dump(), **overrides})
        except ValidationError as exc:
            key, problem = _message(exc.errors()[0])
            fail(p, f"domains.{name}.{key}" if key in overrides else f"imaging.{key}", problem)
    for name, d in p.ingest.datasets.items():
        key = f"ingest.datasets.{name}"
        if not DOMAIN_NAME.match(name):
            fail(p, key, "a dataset name must start with a letter and hold only letters, digits, _")
        if name in p.domains:
            fail(p, key, f"duplicate name: {name!r} is also a simulated domain")
        if d.tile_px % 32:
            fail(p, f"{key}.tile_px", f"must be a multiple of 32, got {d.tile_px}")


def _check_data(p: Params) -> None:
    sp, field = p.structures, p.structures.field_A
    ranges = {f"structures.particles.{k}": getattr(sp.particles, k) for k in ("count", "diameter_A")}
    ranges["structures.carbon.thickness_A"] = sp.carbon.thickness_A
    ranges.update({f"domains.{name}.structure.{k}": v for name, d in p.domains.items() if d.structure is not None
                   for k, v in d.structure.model_dump(exclude={"material"}, exclude_none=True).items()})
    for key, v in ranges.items():
        if v[0] > v[1]:
            fail(p, key, f"min must not exceed max, got {v!r}")
        if key.endswith("diameter_A") and v[1] > field:
            fail(p, key, f"particles larger than structures.field_A ({field}) do not fit")
    s, so = p.simulate.sampling_A, p.simulate.output_sampling_A
    if so < s:
        fail(p, "simulate.output_sampling_A", f"must be >= simulate.sampling_A ({s}), got {so}")
    if so > 0.5:
        fail(p, "simulate.output_sampling_A", f"{so} A is too coarse to resolve lattice fringes (max 0.5)")
    if abs(so / s - round(so / s)) > 1e-6:
        fail(p, "simulate.output_sampling_A", f"must be an integer multiple of simulate.sampling_A, got ratio "
                                              f"{so / s:g}")


def _check_training(p: Params) -> None:
    tr, names, n_train = p.train, domain_names(p), p.structures.n_train
    if tr.crop_px % 32:
        fail(p, "train.crop_px", f"must be a multiple of 32 (the encoder's total stride), got {tr.crop_px}")
    image_px = round(p.structures.field_A / p.simulate.output_sampling_A)
    if tr.crop_px > image_px:
        fail(p, "train.crop_px", f"{tr.crop_px} px is larger than the simulated images ({image_px} px)")
    for d in p.pretrain.domains:
        if d not in names:
            fail(p, "pretrain.domains", f"unknown domain {d!r}{suggest(d, names)}")
    for section, key in (("train", "seeds"), ("pretrain", "domains")) + GRID_KEYS:
        v = getattr(getattr(p, section), key)
        if isinstance(v, list) and len(set(map(str, v))) != len(v):
            fail(p, f"{section}.{key}", f"duplicate values in {v!r} would train the same models twice")
    for section in ("pretrain", "transfer"):
        for n in grid_values(getattr(p, section).n_images):
            if n is not None and n > n_train:
                fail(p, f"{section}.n_images", f"{n} images asked for, but the train split of a simulated domain "
                                               f"holds structures.n_train = {n_train}")


def _check_aggregate(p: Params) -> None:
    ac, names = p.aggregate, domain_names(p)
    for d in ac.exclude_from_std:
        if d not in names:
            fail(p, "aggregate.exclude_from_std", f"must list declared domains, got {d!r}{suggest(d, names)}")
    for pair in ac.pairs:
        if not all(x in names for x in pair):
            fail(p, "aggregate.pairs", f"{pair!r} is not a [pretrain, target] pair of declared domains")
    for col in ac.filters:
        if col not in FILTER_COLUMNS:
            fail(p, f"aggregate.filters.{col}", "not a results column, so it would drop every row"
                                                + suggest(col, FILTER_COLUMNS))


def _check_labels(p: Params) -> None:
    lc = p.labels
    ingested = [k for k, v in p.ingest.datasets.items() if v.masks]
    for d in lc.datasets:
        if d not in ingested:
            fail(p, "labels.datasets", f"must list ingested datasets with masks, got {d!r}" + suggest(d, ingested))
    for key in ("datasets", "n_micrographs", "starts"):
        v = getattr(lc, key)
        if len(set(map(str, v))) != len(v):
            fail(p, f"labels.{key}", f"duplicate values in {v!r} would train the same models twice")
