"""The schema of ``params.yaml``: one strict, frozen pydantic model per section, and ``Params``, the typed params
every stage, the grid and the workers use (``hrtem_ood.config.params.validate`` builds it). Units are in the key
names. ``schema_text`` is written to ``params.schema.json`` (``hrtem-ood schema --write``) so that editors complete
and check the file."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from hrtem_ood.results.columns import METRICS

FREEZE_MODES = ("none", "encoder", "decoder")
LOSSES = ("ce", "softmax_ce")
SCHEMA_FILE = "params.schema.json"


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


def grid_values(x) -> list:
    """A grid key's values (:data:`GRID_KEYS`): a list as it is, one value as a list of one."""
    return list(x) if isinstance(x, list) else [x]


def schema_text() -> str:
    """The JSON Schema of params.yaml, as written to ``params.schema.json``."""
    return json.dumps(Params.model_json_schema(), indent=1, sort_keys=True) + "\n"
