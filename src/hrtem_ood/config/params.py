"""Reading and validating ``params.yaml``: one pydantic model per section, then cross-field checks.

Every problem is reported as one line, ``<file>: <key>: <problem>``, before any work starts. Unknown
keys are rejected with the nearest valid key. ``Params.model_json_schema()`` is written to
``params.schema.json`` (``hrtem-ood schema --write``) so that editors complete and check the file.
Checks that need a science module (the material's lattice, the timm encoder) live with that module
and run at the start of the stage that uses it, and in ``hrtem-ood validate``.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from hrtem_ood.config.domains import domain_names
from hrtem_ood.errors import UserError
from hrtem_ood.results.columns import FILTER_COLUMNS, METRICS

DOMAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FREEZE_MODES = ("none", "encoder", "decoder")
LOSSES = ("ce", "softmax_ce")
SCHEMA_FILE = "params.schema.json"


class ParamsError(UserError):
    """A parameter is missing or invalid. The message names the file, key and problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


NonNegInt = Annotated[int, Field(ge=0)]
Pair = Annotated[list[str], Field(min_length=2, max_length=2)]
LR = Annotated[float, Field(gt=0, le=1)]
NImages = Annotated[int, Field(ge=1)]
Freeze = Literal[FREEZE_MODES]
#: Keys of the condition grid: a value or a list of values (hrtem_ood.execution.grid trains their cartesian product).
GRID_KEYS = (("pretrain", "lr"), ("transfer", "lr"), ("transfer", "n_images"), ("transfer", "freeze"))


class Imaging(_Section):
    """Imaging defaults of every domain; any key may be overridden per domain."""

    seed: int = Field(ge=0, description="base seed of the per-image defocus jitter and Poisson noise")
    defocus_sigma_nm: float = Field(ge=0, description="standard deviation of the per-image defocus jitter (nm)")
    dose_e_per_A2: float = Field(gt=0, description="electron dose (e-/A^2); Poisson noise")
    focal_spread_A: float = Field(ge=0, description="standard deviation of the defocus spread (A); abTEM's 1/e "
                                                    "width is sqrt(2) times this")
    Cs_mm: float = Field(ge=-100, le=100, description="spherical aberration (mm); abTEM's CTF defaults to 0")
    aperture_mrad: float | None = Field(None, gt=0, le=1000, description="objective-aperture semiangle (mrad); "
                                                                         "null = none")


class StructureOverride(_Section):
    """A domain's own structures (the structure series): simulated once per distinct override."""

    material: str | None = Field(None, description="overrides structures.material")
    diameter_A: list[Annotated[float, Field(ge=5)]] | None = Field(
        None, min_length=2, max_length=2, description="overrides structures.particles.diameter_A")
    count: list[NonNegInt] | None = Field(None, min_length=2, max_length=2,
                                          description="overrides structures.particles.count")


Domain = create_model(
    "Domain", __base__=_Section, __doc__="One imaging domain: its defocus and any imaging or structure overrides.",
    defocus_nm=(float, Field(ge=-1e4, le=1e4, description="defocus (nm), abTEM's sign: positive = underfocus")),
    structure=(StructureOverride | None, Field(None, description="the domain's own structures (default: structures)")),
    **{k: (f.annotation | None, Field(None, description=f"overrides imaging.{k}: {f.description}"))
       for k, f in Imaging.model_fields.items()})


class Particles(_Section):
    count: list[NonNegInt] = Field(min_length=2, max_length=2, description="inclusive [min, max] particles per scene")
    diameter_A: list[Annotated[float, Field(ge=5)]] = Field(min_length=2, max_length=2,
                                                            description="[min, max] particle diameter (A)")
    min_gap_A: float = Field(ge=0, description="minimum surface-to-surface distance between particles (A)")
    max_stacking_faults: int = Field(ge=0, description="stacking faults per particle are drawn from 0..this")
    side: Literal["top", "bottom"] = Field(description="top: particles face the beam; bottom: at the exit surface")


class Carbon(_Section):
    thickness_A: list[Annotated[float, Field(ge=0)]] = Field(min_length=2, max_length=2,
                                                             description="[min, max] film thickness (A)")
    density_per_A3: float = Field(ge=0, le=0.2, description="atoms per A^3 (amorphous carbon: about 0.11)")
    min_separation_A: float = Field(ge=0.5, le=3.0, description="hard-core distance between carbon atoms (A)")


class Structures(_Section):
    seed: int = Field(ge=0, description="base seed of every scene")
    n_train: int = Field(ge=1, description="training scenes")
    n_val: int = Field(ge=1, description="validation scenes")
    n_test: int = Field(ge=1, description="test scenes")
    field_A: float = Field(ge=10, description="square field of view (A), periodic in x/y")
    material: str = Field(description="a key of hrtem_ood.physics.structures.MATERIALS")
    particles: Particles
    carbon: Carbon


class Label(_Section):
    threshold_rad: float = Field(gt=0, le=3.1416, description="|phase| threshold (rad); the study: pi/16")
    smoothing_A: float = Field(ge=0, le=10, description="Gaussian sigma (A); the study: 1.6 (CdSe), 1 (C, Fe, Co3O4)")
    order: Literal["smooth_then_threshold", "threshold_then_smooth"]


class Calibration(_Section):
    method: Literal["minimum_contrast", "gaussian_focus"] = Field(description="how zero defocus is defined")
    q_max_per_A: float | None = Field(None, gt=0, description="band limit of the contrast (1/A); null = none")
    search_A: float = Field(gt=0, le=2000, description="coarse search range +-search_A (A)")
    coarse_step_A: float = Field(gt=0, description="coarse grid step (A)")
    fine_step_A: float = Field(gt=0, description="fine grid step (A)")


class Simulate(_Section):
    seed: int = Field(ge=0, description="base seed of the frozen phonons")
    energy_keV: float = Field(ge=10, le=3000, description="beam energy (keV)")
    sampling_A: float = Field(gt=0, le=0.5, description="multislice sampling (A/pixel)")
    output_sampling_A: float = Field(gt=0, le=1.0, description="exit waves, images and masks (A/pixel)")
    slice_thickness_A: float = Field(ge=0.1, le=20, description="multislice slice thickness (A)")
    frozen_phonons: int = Field(ge=1, description="frozen-phonon configurations")
    phonon_sigma_A: float = Field(ge=0, le=0.5, description="thermal displacement standard deviation (A)")
    fft: Literal["scipy", "numpy", "fftw"] = Field(
        description="scipy: single precision, bit-for-bit repeatable; numpy: repeatable, its complex64 forward in "
                    "double (slower); fftw: measured plans, ~1e-6 noise between runs")
    label: Label
    calibration: Calibration


class Model(_Section):
    encoder: str = Field(description="a timm model with features_only (resnet18 = the study's ~14 M U-Net)")
    encoder_kwargs: dict[str, Any] = Field(default_factory=dict, description="timm.create_model keyword arguments")
    decoder_channels: list[Annotated[int, Field(gt=0)]] = Field(min_length=1, description="deepest first")
    seed_offset: int = Field(0, description="added to the training seed for the initialization")


class Train(_Section):
    seeds: list[NonNegInt] = Field(min_length=1, description="replicates; a transfer starts from the same seed")
    batch_size: int = Field(ge=1, description="crops per optimizer step")
    crop_px: int = Field(ge=32, description="random crop size (px), a multiple of 32")
    crops_per_image: int = Field(ge=1, description="random crops per training image per epoch")
    augment: Literal["dihedral", "none"] = Field(description="8-fold dihedral augmentation, or none")
    loss: Literal[LOSSES] = Field(description="ce on logits, or softmax_ce (the study's double softmax)")
    lr_decay_per_epoch: float = Field(gt=0, le=1, description="learning-rate factor per epoch")
    threads: int = Field(ge=1, description="torch threads of a stage")
    parallel_models: int = Field(1, ge=1, description="models of a stage trained side by side in worker processes, "
                                                      "each on threads // parallel_models torch threads")
    amp: bool = Field(True, description="bf16 autocast where the device supports bf16 (CUDA, or a CPU with "
                                        "AVX512-BF16/AMX); float32 elsewhere")
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        "auto", description="layout of the model and batches; auto: a fixed rule on the device's features "
                            "(hrtem_ood.learning.training.choose_numerics, docs/performance.md)")


class Pretrain(_Section):
    domains: list[str] = Field(min_length=1, description="domains a model is pretrained on")
    lr: LR | Annotated[list[LR], Field(min_length=1)] = Field(description="Adam learning rate, or a list: a grid")
    epochs: int = Field(ge=1, description="training epochs")
    n_images: int | None = Field(None, ge=1, description="training images (null = the whole train split)")


class Transfer(_Section):
    lr: LR | Annotated[list[LR], Field(min_length=1)] = Field(description="Adam learning rate, or a list: a grid")
    epochs: int = Field(ge=1, description="training epochs")
    n_images: NImages | Annotated[list[NImages], Field(min_length=1)] = Field(
        description="images of the target's train split used, or a list: a grid")
    freeze: Freeze | Annotated[list[Freeze], Field(min_length=1)] = Field(
        description="part of the pretrained model kept fixed, or a list: a grid")


class Splits(_Section):
    val: float = Field(0.2, ge=0, le=1, description="fraction of the files")
    test: float = Field(0.2, ge=0, le=1, description="fraction of the files")


class IngestDataset(_Section):
    root: str = Field(min_length=1, description="folder holding images/ (and masks/)")
    masks: bool = Field(False, description="labelled: masks/ holds one mask per image, same name")
    pixel_size_A: float | None = Field(None, gt=0, le=100, description="used when a file carries none (A)")
    defocus_nm: float | None = Field(None, ge=-1e4, le=1e4, description="defocus, if known (nm)")
    dose_e_per_A2: float | None = Field(None, gt=0, description="dose, if known (e-/A^2)")
    tile_px: int = Field(256, ge=32, description="tile size (px), a multiple of 32")
    stride_px: int | None = Field(None, ge=1, description="tile stride (px); null = tile_px")
    splits: Splits = Field(default_factory=Splits)
    seed: int = Field(0, ge=0, description="seed of the file-to-split assignment")


class Ingest(_Section):
    datasets: dict[str, IngestDataset] = Field(default_factory=dict, description="experimental datasets")


class Labels(_Section):
    datasets: list[str] = Field(default_factory=list, description="ingested datasets with masks to run the study on")
    n_micrographs: Annotated[list[Annotated[int, Field(ge=1)] | Literal["all"]], Field(min_length=1)] = Field(
        [1, 2, 4, "all"], description="how many labelled train micrographs each model trains on (first n by name)")
    starts: Annotated[list[Literal["best", "worst", "scratch"]], Field(min_length=1)] = Field(
        ["best", "worst", "scratch"], description="best / worst: the pretrained model with the lowest / highest "
                                                  "zero-shot loss on the dataset's val split; scratch: a new model")
    lr: LR = Field(0.004, description="Adam learning rate from a pretrained model")
    lr_scratch: LR = Field(0.004, description="Adam learning rate from scratch")
    epochs: int = Field(10, ge=1, description="training epochs (an epoch: train.crops_per_image crops of each tile)")


class Aggregate(_Section):
    metric: Literal[METRICS] = Field(description="the loss (or score) the matrices show")
    reduce: Literal["median", "mean"] = Field(description="over every model of a cell")
    exclude_from_std: list[str] = Field(description="domains left out of the OOD standard deviation")
    pairs: list[Pair] = Field(description="[pretrain, target] pairs drawn as bar plots")
    filters: dict[str, Any] = Field(description="column -> kept values (a list or one value)")
    figure_sign: Literal["study", "abtem"] = Field(
        "study", description="order of the figures' defocus axes (labels always read under / over N nm): study = "
                             "as the study's figures, from underfocus to overfocus; abtem = by abTEM's defocus, "
                             "from overfocus to underfocus")


class Params(_Section):
    """hrtem-ood parameters (params.yaml). Units are in the key names."""

    domains: dict[str, Domain] = Field(min_length=1, description="imaging domains, declared once")  # type: ignore
    structures: Structures
    simulate: Simulate
    imaging: Imaging
    model: Model
    train: Train
    pretrain: Pretrain
    transfer: Transfer
    ingest: Ingest = Field(default_factory=Ingest)
    labels: Labels = Field(default_factory=Labels)
    aggregate: Aggregate
    _source: str = PrivateAttr("params.yaml")

    @property
    def source(self) -> str:
        """Where the params came from (a file, a preset over a file, an edit): the first word of every error."""
        return self._source


class DomainImaging(Imaging):
    """One simulated domain's imaging, resolved: ``imaging`` with the domain's overrides, its name and defocus."""

    name: str
    defocus_nm: float


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


def grid_values(x) -> list:
    """A grid key's values (:data:`GRID_KEYS`): a list as it is, one value as a list of one."""
    return list(x) if isinstance(x, list) else [x]


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


def schema_text() -> str:
    """The JSON Schema of params.yaml, as written to ``params.schema.json``."""
    return json.dumps(Params.model_json_schema(), indent=1, sort_keys=True) + "\n"
