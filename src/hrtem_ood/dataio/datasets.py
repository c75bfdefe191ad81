"""On-disk formats (HDF5) shared by simulated and ingested data. No torch, no abTEM.

A domain dataset is one folder ``data/domains/<domain>/`` with one file per split
(``train.h5``, ``val.h5``, ``test.h5``) holding:

- ``images``  float32 (N, H, W): electron counts for simulated data, standardized in the training data
  loader (one image is one micrograph); ingested tiles, standardized over their whole source micrograph at
  ingest (attribute ``normalisation: micrograph``) and used as they are
  (:func:`hrtem_ood.learning.evaluation.model_input`);
- ``masks``   uint8 (N, H, W): 1 = particle; identical across simulated domains;
- per-image metadata vectors (``scene_id``, ``defocus_A``, ...);
- attributes: ``domain``, ``split``, ``sampling_A``, ``image_units``, ``params_hash``, and the
  domain's imaging parameters.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hrtem_ood.dataio.io import atomic_path
from hrtem_ood.errors import UserError

SPLITS = ("train", "val", "test")


class DatasetError(UserError):
    """A dataset file is missing, unreadable or malformed; the message names it."""


def write_h5(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    """Write arrays and attributes to ``path`` atomically and byte-reproducibly (no timestamps)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as fh:
            for key, value in arrays.items():
                value = np.asarray(value)
                if value.dtype.kind == "U":
                    value = value.astype("S")
                fh.create_dataset(key, data=value, track_times=False,
                                  **({"compression": "gzip", "compression_opts": 1, "shuffle": True,
                                      "chunks": (1,) + value.shape[1:]} if value.ndim >= 3 else {}))
            for key, value in attrs.items():
                fh.attrs[key] = value if value is not None else "null"


def read_h5(path: str | Path, keys: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Read arrays (all, or ``keys``) and attributes. Raises :class:`DatasetError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as fh:
            names = keys if keys is not None else tuple(fh.keys())
            missing = [k for k in names if k not in fh]
            if missing:
                raise DatasetError(f"{path}: missing datasets {missing}")
            arrays = {k: fh[k][()] for k in names}
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in fh.attrs.items()}
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from exc
    for k, v in arrays.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "S":
            arrays[k] = v.astype("U")
    return arrays, attrs


def domain_file(root: str | Path, domain: str, split: str) -> Path:
    return Path(root) / domain / f"{split}.h5"


def training_subset(path: str | Path, split: str, n: int, source: np.ndarray | None, n_images: int | None = None,
                    n_sources: int | None = None) -> np.ndarray:
    """Indices of the images of a split of ``n`` images that a model trains on: every image; or the first
    ``n_images``; or every tile of the first ``n_sources`` source micrographs (``source``: the split's
    ``source_index``) in name order, the first ``n_images`` of them if both are given. One clear error names
    ``path`` when the split holds fewer."""
    keep = np.arange(n)
    if n_sources is not None:
        present = sorted(set(np.asarray(source).tolist()))
        if n_sources > len(present):
            raise DatasetError(f"{path}: asked for {n_sources} source micrographs but the {split} split "
                               f"holds {len(present)}")
        keep = np.flatnonzero(np.isin(source, present[:n_sources]))
    if n_images is not None:
        if n_images > len(keep):
            raise DatasetError(f"{path}: asked for {n_images} images but the {split} split holds {len(keep)}")
        keep = keep[:n_images]
    return keep


def split_size(root: str | Path, domain: str, split: str, n_images: int | None = None,
               n_sources: int | None = None) -> tuple[int, int]:
    """(images, pixels per image) of the :func:`training_subset` of a domain split, from the file's metadata and
    its ``source_index`` only: the size of a training task, for scheduling."""
    path = domain_file(root, domain, split)
    try:
        with h5py.File(path, "r") as fh:
            n, h, w = fh["images"].shape
            source = fh["source_index"][()] if n_sources is not None else None
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read its images' shape ({exc})") from exc
    return len(training_subset(path, split, n, source, n_images, n_sources)), h * w


def load_split(root: str | Path, domain: str, split: str) -> dict:
    """Images, masks and attributes of one domain split, checked for shape and content."""
    path = domain_file(root, domain, split)
    arrays, attrs = read_h5(path, ("images", "masks"))
    images, masks = arrays["images"], arrays["masks"]
    if images.ndim != 3 or images.shape != masks.shape:
        raise DatasetError(f"{path}: images {images.shape} and masks {masks.shape} must both be (N, H, W)")
    if len(images) == 0:
        raise DatasetError(f"{path}: holds no images")
    return {"images": images.astype(np.float32), "masks": masks.astype(np.int64), "attrs": attrs, "path": path}
