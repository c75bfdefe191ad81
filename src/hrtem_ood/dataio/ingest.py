"""Experimental micrographs in, domain datasets out (the same HDF5 format as simulated domains).

Readers: Gatan DM3/DM4, MRC, EMD and TIFF through RosettaSciIO; NPY and PNG
(masks, or images without metadata). Pixel size comes from file metadata when present, else from
params. Images are resampled to the pipeline's sampling, standardized as a whole micrograph (mean 0,
variance 1 over the resampled micrograph: :data:`NORMALISATION`, as ``predict`` does and as every simulated
image is, one image being one micrograph there), tiled, and split by source file (tiles of one micrograph
never cross splits). Every file is read and checked before anything is written;
raw inputs are only ever opened for reading.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.errors import UserError

if TYPE_CHECKING:
    from hrtem_ood.config.schema import IngestDataset, Splits

IMAGE_SUFFIXES = {".dm3", ".dm4", ".mrc", ".emd", ".tif", ".tiff", ".npy", ".png"}
MASK_SUFFIXES = {".npy", ".png", ".tif", ".tiff"}
#: How a micrograph is normalised before it meets a model: the ingested tiles, ``predict``'s input and every
#: model card say so.
NORMALISATION = "per micrograph, after resampling: (x - mean) / std over the whole micrograph"
_LENGTH_TO_A = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "nm": 10.0, "µm": 1e4, "um": 1e4, "pm": 1e-2, "m": 1e10}


class IngestError(UserError):
    """A raw input cannot be ingested; the message names the file and the problem."""


def _imagej_unit(path: Path) -> str:
    """The length unit an ImageJ TIFF states in its description ('' if none). RosettaSciIO reads ImageJ
    scales but names only the unit 'micron'."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        unit = str((tif.imagej_metadata or {}).get("unit", ""))
    return unit.strip().lower().replace("\\u00c5", "å")


def microscope_from_metadata(metadata: dict) -> dict[str, float]:
    """The beam energy (``energy_keV``) and spherical aberration (``Cs_mm``) a RosettaSciIO signal's metadata
    records (``Acquisition_instrument.TEM.beam_energy`` in keV, ``...TEM.Cs`` in mm), where present."""
    tem = ((metadata or {}).get("Acquisition_instrument") or {}).get("TEM") or {}
    out = {}
    for key, name in (("beam_energy", "energy_keV"), ("Cs", "Cs_mm")):
        try:
            value = float(tem[key])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(value) and value >= 0:
            out[name] = value
    return out


def _rsciio_read(path: Path) -> tuple[np.ndarray, float | None, dict[str, float]]:
    """Data, pixel size (A) and microscope (:func:`microscope_from_metadata`) through RosettaSciIO's reader."""
    suffix = path.suffix.lower()
    if suffix in (".dm3", ".dm4"):
        from rsciio.digitalmicrograph import file_reader
    elif suffix == ".mrc":
        from rsciio.mrc import file_reader
    elif suffix in (".tif", ".tiff"):
        from rsciio.tiff import file_reader
    else:
        from rsciio.emd import file_reader
    signals = file_reader(str(path))
    if isinstance(signals, dict):
        signals = [signals]
    images = [s for s in signals if np.asarray(s["data"]).ndim >= 2]
    if not images:
        raise IngestError(f"{path}: holds no image")
    sig = images[0]
    pixel = None
    scales = [(a.get("scale"), str(a.get("units") or "").strip().lower()) for a in sig.get("axes", [])[-2:]]
    if suffix in (".tif", ".tiff") and scales and not any(u for _, u in scales):
        unit = _imagej_unit(path)
        scales = [(s, unit) for s, _ in scales]
    if len(scales) == 2 and all(u in _LENGTH_TO_A and s for s, u in scales):
        (s0, u0), (s1, u1) = scales
        a0, a1 = s0 * _LENGTH_TO_A[u0], s1 * _LENGTH_TO_A[u1]
        if abs(a0 - a1) > 1e-3 * max(a0, a1):
            raise IngestError(f"{path}: non-square pixels ({a0:g} x {a1:g} A) are not supported")
        pixel = float(a0)
    return np.asarray(sig["data"]), pixel, microscope_from_metadata(_mapped_metadata(sig))


def _mapped_metadata(sig: dict) -> dict:
    """The signal's metadata with RosettaSciIO's ``mapping`` applied (what HyperSpy does on loading): e.g. a DM
    file's ``Microscope Info.Voltage`` (V) becomes ``Acquisition_instrument.TEM.beam_energy`` (keV)."""
    meta = copy.deepcopy(sig.get("metadata") or {})
    for source, (target, convert) in (sig.get("mapping") or {}).items():
        node = sig.get("original_metadata") or {}
        for part in source.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        try:
            value = convert(node) if convert else node
        except Exception:  # a malformed tag is left out, as HyperSpy leaves it
            continue
        *parents, leaf = target.split(".")
        here = meta
        for part in parents:
            here = here.setdefault(part, {})
        here[leaf] = value
    return meta


def grey_from_colour(data: np.ndarray, path: Path) -> np.ndarray:
    """A grey image saved as RGB or RGBA (three equal colour channels, an opaque or absent alpha), as its one
    channel; a 2-D image as it is. A truly colour image, or one with transparent pixels, is refused."""
    if not (data.ndim == 3 and data.shape[-1] in (3, 4)):
        return data
    rgb = data[..., :3]
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise IngestError(f"{path}: colour image (its red, green and blue channels differ); expected a "
                          "single-channel micrograph or mask")
    if data.shape[-1] == 4 and np.unique(data[..., 3]).size > 1:
        raise IngestError(f"{path}: grey image with a varying alpha channel (transparent pixels); expected an "
                          "opaque single-channel micrograph or mask")
    return np.ascontiguousarray(rgb[..., 0])


def read_image(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A 2-D float64 image and its pixel size in A (None when the file does not say)."""
    image, pixel, _ = read_micrograph(path)
    return image, pixel


def read_micrograph(path: str | Path) -> tuple[np.ndarray, float | None, dict[str, float]]:
    """:func:`read_image`, with the beam energy and Cs the file records (:func:`microscope_from_metadata`)."""
    path = Path(path)
    microscope: dict[str, float] = {}
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise IngestError(f"{path}: unsupported format {suffix!r} (supported: {sorted(IMAGE_SUFFIXES)})")
    try:
        if suffix in (".dm3", ".dm4", ".mrc", ".emd", ".tif", ".tiff"):
            data, pixel, microscope = _rsciio_read(path)
        elif suffix == ".npy":
            data, pixel = np.load(path, allow_pickle=False), None
        else:
            from PIL import Image

            with Image.open(path) as im:
                data, pixel = np.asarray(im), None
    except IngestError:
        raise
    except Exception as exc:  # readers raise many types for truncated/corrupt files
        raise IngestError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    data = grey_from_colour(np.asarray(data), path) if suffix in (".png", ".tif", ".tiff") else np.asarray(data)
    if data.ndim != 2:
        raise IngestError(f"{path}: expected a 2-D image, got shape {data.shape} (stacks are not supported)")
    if data.dtype.kind not in "biuf":
        raise IngestError(f"{path}: unsupported pixel type {data.dtype}")
    data = data.astype(np.float64)
    if not np.all(np.isfinite(data)):
        raise IngestError(f"{path}: contains NaN or Inf pixels")
    return data, pixel, microscope


def _index(folder: Path, suffixes: set[str], what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise IngestError(f"{folder}: {what} folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise IngestError(f"{folder}: {what} folder is empty")
    out: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() not in suffixes:
            raise IngestError(f"{p}: unsupported format {p.suffix!r} for {what} (supported: {sorted(suffixes)})")
        if p.stem in out:
            raise IngestError(f"{folder}: duplicate name {p.stem!r} ({out[p.stem].name} and {p.name})")
        out[p.stem] = p
    return out


def micrograph_files(inputs: list[str | Path]) -> list[Path]:
    """The micrographs named: files, and every file of a readable format in a named folder (sorted). Two
    files of one name are refused, since outputs are named after the file."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise IngestError(f"{p}: no micrographs here (formats: {sorted(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise IngestError(f"{p}: no such file or folder")
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise IngestError(f"{dup[0]}: two input files share this name; outputs are named after it")
    return files


def standardize_micrograph(image: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over the whole micrograph, in float32 (a constant image becomes 0)."""
    image = np.asarray(image, dtype=np.float64)
    std = image.std()
    return ((image - image.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def resample(image: np.ndarray, from_A: float, to_A: float, order: int) -> np.ndarray:
    """Resample to a new pixel size (order 1 for images, 0 for masks)."""
    from scipy.ndimage import zoom

    factor = from_A / to_A
    if abs(factor - 1) < 1e-9:
        return image
    return zoom(image, factor, order=order, mode="nearest", grid_mode=True)


def tiles(image: np.ndarray, tile_px: int, stride_px: int) -> list[tuple[int, int]]:
    """Top-left corners of ``tile_px`` tiles every ``stride_px``, covering the image to its edges."""
    h, w = image.shape
    if h < tile_px or w < tile_px:
        return []

    def starts(n):
        s = list(range(0, n - tile_px + 1, stride_px))
        if s[-1] != n - tile_px:
            s.append(n - tile_px)
        return s

    return [(y, x) for y in starts(h) for x in starts(w)]


def split_files(names: list[str], fractions: Splits, seed: int) -> dict[str, str]:
    """Assign each source file to train/val/test (seeded; at least one test file)."""
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    n = len(order)
    n_test = max(1, round(fractions.test * n))
    n_val = min(n - n_test, round(fractions.val * n))
    out = {}
    for k, name in enumerate(order):
        out[name] = "test" if k < n_test else ("val" if k < n_test + n_val else "train")
    return out


def ingest_dataset(cfg: IngestDataset, sampling_A: float) -> dict[str, dict[str, np.ndarray]]:
    """Read, check, resample and tile one dataset. Returns per split: images, masks, metadata arrays.

    ``cfg`` (an ``ingest.datasets`` entry): ``root`` (a folder holding ``images/`` and, when ``masks: true``,
    ``masks/`` with one mask per image, same name), ``pixel_size_A`` (fallback when a file has none), ``tile_px``,
    ``stride_px``, ``splits`` ({val, test} fractions of the files), ``seed`` (the split of the files and the
    order of each split's tiles).
    """
    root = Path(cfg.root)
    images = _index(root / "images", IMAGE_SUFFIXES, "images")
    masks = _index(root / "masks", MASK_SUFFIXES, "masks") if cfg.masks else None
    if masks is not None:
        missing = sorted(set(images) - set(masks))
        extra = sorted(set(masks) - set(images))
        if missing or extra:
            raise IngestError(f"{root / 'masks'}: masks do not match images (no mask for {missing[:5]}, "
                              f"no image for {extra[:5]})")
    tile = cfg.tile_px
    stride = cfg.stride_px or tile
    loaded = {}
    for name, path in images.items():
        img, pixel = read_image(path)
        pixel = pixel or cfg.pixel_size_A
        if not pixel:
            raise IngestError(f"{path}: no pixel size in the file and none in params (ingest.datasets.*.pixel_size_A)")
        mask = None
        if masks is not None:
            mask, _ = read_image(masks[name])
            if mask.shape != img.shape:
                raise IngestError(f"{masks[name]}: mask shape {mask.shape} differs from image shape {img.shape}")
            values = np.unique(mask)
            if not set(values.tolist()) <= {0.0, 1.0, 255.0} or (0.0 not in values and len(values) > 1):
                raise IngestError(f"{masks[name]}: mask is not binary (values {values[:6].tolist()}...)")
            mask = (mask > 0).astype(np.float64)
        img = standardize_micrograph(resample(img, float(pixel), sampling_A, order=1))
        if mask is not None:
            mask = resample(mask, float(pixel), sampling_A, order=0)
        corners = tiles(img, tile, stride)
        if not corners:
            raise IngestError(f"{path}: {img.shape} px after resampling to {sampling_A} A is smaller than one "
                              f"{tile}-px tile")
        loaded[name] = (img, mask, float(pixel), corners)
    assignment = split_files(sorted(loaded), cfg.splits, cfg.seed)
    out: dict[str, dict[str, list]] = {s: {"images": [], "masks": [], "source_index": [], "tile_y": [], "tile_x": [],
                                           "pixel_size_A_raw": []} for s in ("train", "val", "test")}
    names = sorted(loaded)
    for name in names:
        img, mask, pixel, corners = loaded[name]
        d = out[assignment[name]]
        for y, x in corners:
            d["images"].append(img[y:y + tile, x:x + tile].astype(np.float32))
            d["masks"].append((mask[y:y + tile, x:x + tile] if mask is not None
                               else np.zeros((tile, tile))).astype(np.uint8))
            d["source_index"].append(names.index(name))
            d["tile_y"].append(y)
            d["tile_x"].append(x)
            d["pixel_size_A_raw"].append(pixel)
    result = {}
    for k, (split, d) in enumerate(out.items()):
        if d["images"]:
            # tiles in a seeded random order, so that the first n of a split come from all of its micrographs
            order = np.random.default_rng([cfg.seed, k]).permutation(len(d["images"]))
            result[split] = {key: np.asarray(v)[order] for key, v in d.items()}
        else:
            result[split] = {"images": np.zeros((0, tile, tile), np.float32),
                             "masks": np.zeros((0, tile, tile), np.uint8), "source_index": np.zeros(0, np.int64),
                             "tile_y": np.zeros(0, np.int64), "tile_x": np.zeros(0, np.int64),
                             "pixel_size_A_raw": np.zeros(0)}
    result["_sources"] = names
    result["_has_masks"] = masks is not None
    return result
