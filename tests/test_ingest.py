"""Ingesting experimental micrographs: every reader path used here, every bad-input case, round trip."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from dm_writer import write_dm
from PIL import Image

from hrtem_ood.config.domains import domain_imaging
from hrtem_ood.config.params import validate
from hrtem_ood.config.schema import IngestDataset
from hrtem_ood.dataio.datasets import DatasetError, read_h5, training_subset
from hrtem_ood.dataio.ingest import IngestError, ingest_dataset, read_image
from hrtem_ood.stages.ingest import write_ingested


def _write_tif(path: Path, img: np.ndarray, pixel_A: float | None):
    kw = {}
    if pixel_A is not None:
        kw = {"imagej": True, "resolution": (1 / (pixel_A / 10), 1 / (pixel_A / 10)), "metadata": {"unit": "nm"}}
    tifffile.imwrite(path, img.astype(np.float32), **kw)


def _write_mrc(path: Path, img: np.ndarray, pixel_A: float):
    import mrcfile

    with mrcfile.new(path) as m:
        m.set_data(img.astype(np.float32))
        m.voxel_size = pixel_A


def _write_emd(path: Path, img: np.ndarray, pixel_A: float):
    from rsciio.emd import file_writer

    axes = [{"name": n, "units": "nm", "index_in_array": i, "size": s, "offset": 0.0, "scale": pixel_A / 10,
             "navigate": False} for i, (n, s) in enumerate(zip("yx", img.shape, strict=True))]
    meta = {"General": {"title": "t"}, "Signal": {}}
    file_writer(str(path), {"data": img.astype(np.float32), "axes": axes, "metadata": meta, "original_metadata": {}})


def _write_dm3(path: Path, img: np.ndarray, pixel_A: float):
    write_dm(path, img.astype(np.float32), pixel_A / 10, units="nm")


def _write_dm4(path: Path, img: np.ndarray, pixel_A: float):
    write_dm(path, img.astype(np.float32), pixel_A, units="\u00c5")


def _blob(size=96, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2).astype(np.uint8)
    return (100 + 20 * mask + rng.normal(0, 3, mask.shape)).astype(np.float32), mask


@pytest.mark.parametrize("writer, suffix", [(_write_tif, ".tif"), (_write_mrc, ".mrc"), (_write_emd, ".emd"),
                                             (_write_dm3, ".dm3"), (_write_dm4, ".dm4")])
def test_readers_return_image_and_pixel_size(tmp_path, writer, suffix):
    img, _ = _blob()
    writer(tmp_path / f"a{suffix}", img, 0.25)
    data, pixel = read_image(tmp_path / f"a{suffix}")
    assert pixel == pytest.approx(0.25, rel=1e-4)
    assert data.shape == img.shape and np.allclose(data, img, atol=1e-3)


def _ingest(cfg: dict, sampling_A: float):
    """:func:`ingest_dataset` of a dataset's params entry, typed as the stage passes it."""
    return ingest_dataset(IngestDataset.model_validate(cfg), sampling_A)


def test_uncalibrated_dm_file_takes_pixel_size_from_params(tmp_path):
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    img, _ = _blob(size=128)
    write_dm(root / "images" / "a.dm4", (img * 10).astype(np.uint16), None)  # DM's default: uncalibrated pixels
    assert read_image(root / "images" / "a.dm4")[1] is None
    cfg = {"root": str(root), "masks": False, "tile_px": 64, "splits": {"val": 0, "test": 1}}
    with pytest.raises(IngestError, match="a.dm4: no pixel size"):
        _ingest(cfg, 0.2)
    out = _ingest({**cfg, "pixel_size_A": 0.1}, 0.2)
    assert out["test"]["images"].shape == (1, 64, 64)  # 128 px at 0.1 A (from params) = 64 px at 0.2 A


def test_npy_and_png_have_no_pixel_size(tmp_path):
    img, mask = _blob()
    np.save(tmp_path / "a.npy", img)
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    assert read_image(tmp_path / "a.npy")[1] is None
    m, pixel = read_image(tmp_path / "m.png")
    assert pixel is None and set(np.unique(m)) == {0.0, 255.0}


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_grey_image_saved_as_colour_reads_as_its_grey_channel(tmp_path, mode):
    """Real micrographs often come as RGB(A) PNGs whose colour channels are equal and whose alpha is opaque
    (the segmentation set this project ships is one): they read as the grey image, pixel for pixel."""
    grey = (np.random.default_rng(1).random((40, 56)) * 255).astype(np.uint8)
    channels = [grey] * 3 + ([np.full_like(grey, 255)] if mode == "RGBA" else [])
    Image.fromarray(np.stack(channels, axis=-1), mode).save(tmp_path / "g.png")
    data, pixel = read_image(tmp_path / "g.png")
    assert data.shape == grey.shape and np.array_equal(data, grey.astype(np.float64)) and pixel is None


def _dataset(root: Path, n=3, pixel=0.2, with_masks=True):
    (root / "images").mkdir(parents=True)
    if with_masks:
        (root / "masks").mkdir()
    for k in range(n):
        img, mask = _blob(seed=k)
        _write_tif(root / "images" / f"s{k}.tif", img, pixel)
        if with_masks:
            Image.fromarray(mask * 255).save(root / "masks" / f"s{k}.png")
    return {"root": str(root), "masks": with_masks, "tile_px": 64, "stride_px": 32,
            "splits": {"val": 0.34, "test": 0.34}, "seed": 0}


def test_ingest_tiles_resamples_and_splits_by_file(tmp_path):
    cfg = _dataset(tmp_path / "raw", pixel=0.1)  # 96 px at 0.1 A -> 48 px at 0.2 A: smaller than a tile
    with pytest.raises(IngestError, match="smaller than one 64-px tile"):
        _ingest(cfg, 0.2)
    cfg = _dataset(tmp_path / "raw2", pixel=0.2)
    out = _ingest(cfg, 0.2)
    per_split = {s: set(out[s]["source_index"].tolist()) for s in ("train", "val", "test")}
    assert all(len(v) == 1 for v in per_split.values())  # three files, one per split, never shared
    assert len(out["test"]["images"]) == 4  # 96 px, 64-px tiles every 32 px: 2 x 2
    assert set(np.unique(out["train"]["masks"])) == {0, 1}


def test_pixel_size_resampling(tmp_path):
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    img, _ = _blob(size=128)
    _write_tif(root / "images" / "a.tif", img, 0.1)
    out = _ingest({"root": str(root), "masks": False, "tile_px": 64, "splits": {"val": 0, "test": 1}}, 0.2)
    assert out["test"]["images"].shape == (1, 64, 64)  # 128 px at 0.1 A = 64 px at 0.2 A
    assert out["test"]["pixel_size_A_raw"][0] == pytest.approx(0.1)


def _bad(tmp_path, case):
    cfg = _dataset(tmp_path / "raw")
    img_dir, mask_dir = Path(cfg["root"]) / "images", Path(cfg["root"]) / "masks"
    if case == "unreadable":
        (img_dir / "s0.tif").write_bytes(b"not a tiff at all")
        return cfg, "s0.tif: cannot read"
    if case == "truncated":
        data = (img_dir / "s1.tif").read_bytes()
        (img_dir / "s1.tif").write_bytes(data[: len(data) // 3])
        return cfg, "s1.tif: cannot read"
    if case == "truncated_dm":
        data = write_dm(img_dir / "s1.dm3", _blob()[0], 0.02).read_bytes()
        (img_dir / "s1.tif").unlink()
        (img_dir / "s1.dm3").write_bytes(data[: len(data) // 2])
        return cfg, "s1.dm3: cannot read"
    if case == "stack_dm":
        (img_dir / "s0.tif").unlink()
        write_dm(img_dir / "s0.dm4", np.zeros((3, 96, 96), np.float32), 0.02)
        return cfg, "s0.dm4: expected a 2-D image, got shape (3, 96, 96)"
    if case == "unsupported":
        (img_dir / "s9.jpg").write_bytes(b"\xff\xd8")
        return cfg, "s9.jpg: unsupported format"
    if case == "shape":
        Image.fromarray(np.zeros((50, 96), np.uint8)).save(mask_dir / "s2.png")
        return cfg, "s2.png: mask shape (50, 96) differs"
    if case == "nonbinary":
        Image.fromarray(np.arange(96 * 96).reshape(96, 96).astype(np.uint8) % 3).save(mask_dir / "s2.png")
        return cfg, "s2.png: mask is not binary"
    if case == "nan":
        img, _ = _blob()
        img[3, 4] = np.nan
        _write_tif(img_dir / "s0.tif", img, 0.2)
        return cfg, "s0.tif: contains NaN or Inf"
    if case == "no_pixel_size":
        (img_dir / "s0.tif").unlink()
        np.save(img_dir / "s0.npy", _blob()[0])
        return cfg, "s0.npy: no pixel size"
    if case == "stack":
        (img_dir / "s0.tif").unlink()
        tifffile.imwrite(img_dir / "s0.tif", np.zeros((3, 96, 96), np.float32), photometric="minisblack")
        return cfg, "s0.tif: expected a 2-D image, got shape (3, 96, 96)"
    if case == "duplicate":
        np.save(img_dir / "s0.npy", _blob()[0])
        return cfg, "duplicate name 's0'"
    if case == "empty":
        for p in img_dir.iterdir():
            p.unlink()
        return cfg, "images folder is empty"
    if case == "unmatched":
        (mask_dir / "s1.png").unlink()
        return cfg, "masks do not match images"
    if case == "colour":
        rgb = np.stack([_blob()[1] * 255] * 3, axis=-1).astype(np.uint8)
        rgb[10:20, 10:20, 0] = 40  # one red patch: a colour image, not a grey one saved as colour
        Image.fromarray(rgb).save(mask_dir / "s1.png")
        return cfg, "s1.png: colour image (its red, green and blue channels differ)"
    if case == "transparent":
        rgba = np.repeat((_blob()[1] * 255).astype(np.uint8)[..., None], 4, axis=-1)
        rgba[..., 3] = 255
        rgba[:8, :8, 3] = 0
        Image.fromarray(rgba, "RGBA").save(mask_dir / "s1.png")
        return cfg, "s1.png: grey image with a varying alpha channel"
    raise AssertionError(case)


CASES = ["unreadable", "truncated", "truncated_dm", "unsupported", "shape", "nonbinary", "nan", "no_pixel_size",
         "stack", "stack_dm", "duplicate", "empty", "unmatched", "colour", "transparent"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_named_and_nothing_is_written(tmp_path, params, case, monkeypatch):
    cfg, message = _bad(tmp_path, case)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(cfg["root"]).rglob("*") if p.is_file()}
    params["ingest"] = {"datasets": {"lab": cfg}}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IngestError) as err:
        write_ingested(validate(params), "lab", tmp_path / "out" / "lab")
    assert message in str(err.value), str(err.value)
    assert not (tmp_path / "out" / "lab").exists()
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(cfg["root"]).rglob("*") if p.is_file()}
    assert before == after  # raw inputs untouched


def test_round_trip_simulate_export_tiff_ingest(tmp_path, params):
    """Simulated images exported as TIFF (with their pixel size) and ingested give back the same data, standardized
    over the whole micrograph: what a model sees of the simulated image."""
    from hrtem_ood.physics.ctf import configure_abtem
    from hrtem_ood.physics.imaging import domain_images
    from hrtem_ood.physics.simulation import simulate_scene
    from hrtem_ood.physics.structures import build_scene

    configure_abtem("numpy")
    typed = validate(params)
    full, part, _ = build_scene(typed.structures, 0, "train", 7)
    res = simulate_scene({"scene_id": 0, "numbers": full.numbers, "positions": full.positions,
                          "cell": np.diag(full.cell.array), "is_particle": np.arange(len(full)) < len(part),
                          "sim": typed.simulate, "Cs_mm": 0.5, "seed": 1})
    dom = domain_imaging(typed, "dfm10")
    images = domain_images(res["waves"][None], np.array([res["zero_defocus_A"]]), np.array([0]), dom, 0.2, 300e3)
    img, mask = images["images"][0], res["mask"]
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    _write_tif(root / "images" / "scene0.tif", img, 0.2)
    np.save(root / "masks" / "scene0.npy", mask)
    n = img.shape[0]
    out = _ingest({"root": str(root), "masks": True, "tile_px": n, "splits": {"val": 0, "test": 1}}, 0.2)
    img64 = img.astype(np.float64)
    np.testing.assert_allclose(out["test"]["images"][0], (img64 - img64.mean()) / img64.std(), atol=1e-6)
    assert np.array_equal(out["test"]["masks"][0], mask)
    # exported at half the pixel size (upsampled), ingest resamples back
    from scipy.ndimage import zoom

    root2 = tmp_path / "raw2"
    (root2 / "images").mkdir(parents=True)
    (root2 / "masks").mkdir()
    _write_tif(root2 / "images" / "scene0.tif", zoom(img, 2, order=1, grid_mode=True, mode="nearest"), 0.1)
    np.save(root2 / "masks" / "scene0.npy", zoom(mask, 2, order=0, grid_mode=True, mode="nearest"))
    out2 = _ingest({"root": str(root2), "masks": True, "tile_px": n, "splits": {"val": 0, "test": 1}}, 0.2)
    # linear up- then down-sampling of shot-noisy pixels: close, not equal
    assert np.corrcoef(out2["test"]["images"][0].ravel(), img.ravel())[0, 1] > 0.9
    assert (out2["test"]["masks"][0] == mask).mean() > 0.98


def test_ingested_domain_joins_the_evaluation_domains(params):
    from hrtem_ood.config.domains import domain_names, transfer_pairs
    from hrtem_ood.config.params import ParamsError
    from hrtem_ood.execution.grid import transfer_targets

    params["ingest"] = {"datasets": {"lab": {"root": "raw/lab", "masks": True}, "nolabels": {"root": "raw/x"}}}
    typed = validate(params)  # its params entry is all a dataset needs: it is a transfer target of every row at once
    assert domain_names(typed)[-1] == "lab" and "nolabels" not in domain_names(typed)
    assert "dfm10-to-lab" in transfer_pairs(typed) and "dfm10-to-nolabels" not in transfer_pairs(typed)
    assert transfer_targets(typed, "dfp10") == ["dfm10", "df0", "lab"]
    params["ingest"]["datasets"]["dfm10"] = {"root": "raw/y"}
    with pytest.raises(ParamsError, match="also a simulated domain"):
        validate(params)


def test_the_training_subset_takes_whole_micrographs_in_name_order_then_the_first_images():
    source = np.array([2, 0, 1, 0, 2, 1, 0])  # tiles of micrographs 0, 1 and 2, mixed
    assert training_subset("t.h5", "train", 7, None).tolist() == list(range(7))
    assert training_subset("t.h5", "train", 7, None, n_images=3).tolist() == [0, 1, 2]
    assert training_subset("t.h5", "train", 7, source, n_sources=1).tolist() == [1, 3, 6]
    assert training_subset("t.h5", "train", 7, source, n_sources=2).tolist() == [1, 2, 3, 5, 6]
    assert training_subset("t.h5", "train", 7, source, n_images=2, n_sources=2).tolist() == [1, 2]
    with pytest.raises(DatasetError, match="^t.h5: asked for 8 images but the train split holds 7$"):
        training_subset("t.h5", "train", 7, None, n_images=8)
    with pytest.raises(DatasetError, match="^t.h5: asked for 4 images but the val split holds 3$"):
        training_subset("t.h5", "val", 7, source, n_images=4, n_sources=1)


def test_ingested_tiles_are_shuffled_standardized_per_micrograph_and_chosen_by_micrograph(tmp_path, params):
    """Each micrograph is standardized as a whole before tiling; a split's tiles come in a seeded mixed order (so
    that its first n tiles span its micrographs); the label-count study takes every tile of the first k train
    micrographs by name."""
    from hrtem_ood.learning.training import _train_set

    rng = np.random.default_rng(3)
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(6):
        np.save(root / "images" / f"m{k}.npy", rng.normal(100 * k, 1 + k, (128, 128)))
        np.save(root / "masks" / f"m{k}.npy", (rng.random((128, 128)) > 0.5).astype(np.uint8))
    params["ingest"]["datasets"] = {"lab": {"root": str(root), "masks": True, "pixel_size_A": 0.2, "tile_px": 32,
                                            "splits": {"val": 0.17, "test": 0.17}, "seed": 1}}
    write_ingested(validate(params), "lab", tmp_path / "domains" / "lab")
    arrays, attrs = read_h5(tmp_path / "domains/lab/train.h5")
    assert attrs["normalisation"] == "micrograph"
    src, images = arrays["source_index"], arrays["images"]
    assert len(set(src.tolist())) == 4 and len(src) == 4 * 16
    assert len(set(src[:8].tolist())) > 1  # mixed, not micrograph after micrograph
    for s in set(src.tolist()):
        tiles = images[src == s].astype(np.float64)
        assert abs(tiles.mean()) < 1e-5 and tiles.std() == pytest.approx(1, abs=1e-5)
    first_two = sorted(set(src.tolist()))[:2]
    x, y = _train_set(tmp_path / "domains", "lab", "train", None, n_sources=2)
    assert np.array_equal(x, images[np.isin(src, first_two)]) and len(x) == 32
    with pytest.raises(DatasetError, match="asked for 5 source micrographs but the train split holds 4"):
        _train_set(tmp_path / "domains", "lab", "train", None, n_sources=5)
