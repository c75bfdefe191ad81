"""`hrtem-ood predict` and `hrtem-ood export` on micrographs the tests write: tiled inference without seams,
sizes against discs of known radius, a model trained here that finds them, the exported model's masks equal
to the native one's, and every bad input as one line that writes nothing."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import tiny_params

from hrtem_ood.cli import main
from hrtem_ood.config.schema import Model, Train
from hrtem_ood.learning.model import build_model
from hrtem_ood.learning.predict import load_model, particles, probability_map, run_predict, segment, window

SMALL = {"encoder": "resnet10t", "encoder_kwargs": {"channels": [8, 16, 32, 64], "stem_width": 8},
         "decoder_channels": [32, 16, 8, 8, 8]}


def read_particles(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    mask = np.zeros(shape, np.uint8)
    for cy, cx in centres:
        mask |= ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2).astype(np.uint8)
    return mask


def _micrograph(shape=(160, 224), seed=0, radius=None):
    """Dark discs (particles; radius 8-26 px, or ``radius``) on a noisy bright background, 0.2 A/px, and their
    mask."""
    rng = np.random.default_rng(seed)
    centres = [(int(rng.integers(20, shape[0] - 20)), int(rng.integers(20, shape[1] - 20))) for _ in range(3)]
    mask = _discs(shape, centres, radius or int(rng.integers(8, 27)))
    image = rng.poisson(40 * (1.0 - 0.5 * mask)).astype(np.float32)
    return image, mask


def _save_pipeline_model(path: Path, net, cfg) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "model": cfg, "seed": 0, "epoch": 3, "stage": "pretrain",
                "pretrain_domain": "dfm10", "target_domain": "dfm10", "condition": "lrp0.004",
                "numerics": "float32/channels_last"}, path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small U-Net trained here on micrographs of dark discs, saved as the pipeline saves its models."""
    from hrtem_ood.learning.evaluation import standardize
    from hrtem_ood.learning.training import train

    pairs = [_micrograph((128, 128), seed=k) for k in range(12)]
    images = standardize(np.stack([p[0] for p in pairs]))
    masks = np.stack([p[1] for p in pairs]).astype(np.int64)
    cfg = Train.model_validate({**tiny_params()["train"], "loss": "ce", "lr_decay_per_epoch": 0.95, "crop_px": 64,
                                "crops_per_image": 4, "batch_size": 8, "augment": "dihedral", "amp": False,
                                "memory_format": "contiguous"})
    torch.manual_seed(0)
    net = build_model(Model.model_validate(SMALL), 0)
    res = train(net, images, masks, images[:2], masks[:2], cfg, 3e-3, 12, seed=0, device=torch.device("cpu"))
    net.load_state_dict(res.best_state)
    root = tmp_path_factory.mktemp("trained")
    return _save_pipeline_model(root / "models/pretrain/dfm10/lrp0.004/seed0.pt", net.eval(), SMALL), root


def test_window_is_positive_and_blends_tiles_without_a_seam():
    """The blend of overlapping tiles of a constant map is that constant at every pixel (the weights
    normalize exactly), and tiled inference agrees with whole-image inference of the same network."""
    w = window(64)
    assert w.min() > 0 and w.max() <= 1 and np.allclose(w, w.T)

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.stack([torch.zeros_like(x[:, 0]), torch.full_like(x[:, 0], 0.3)], dim=1)

    prob = probability_map(Constant(), np.zeros((150, 210), np.float32), 64, 16)
    assert np.allclose(prob, 1 / (1 + np.exp(-0.3)), atol=1e-6)
    net = build_model(Model.model_validate(SMALL), 1).eval()
    image = np.random.default_rng(0).standard_normal((192, 256)).astype(np.float32)
    tiled = probability_map(net, image, 128, 48)
    with torch.no_grad():
        whole = torch.softmax(net(torch.from_numpy(image)[None, None]), 1)[0, 1].numpy()
    assert np.abs(tiled - whole)[16:-16, 16:-16].mean() < 0.02


def test_particle_sizes_of_discs_of_known_radius():
    """Two discs of radius 20 px at 0.5 A/px (1 nm): area pi nm² = 3.14 nm², diameter 2 nm; a third cut by the
    border is flagged."""
    mask = _discs((200, 300), [(60, 60), (120, 200), (0, 280)], 20)
    rows = particles(mask, 0.5, "m.tif")
    assert len(rows) == 3
    whole = [r for r in rows if not r["touches_border"]]
    assert len(whole) == 2
    for r in whole:
        assert r["area_nm2"] == pytest.approx(np.pi * 1.0**2, rel=0.03)
        assert r["equivalent_diameter_nm"] == pytest.approx(2.0, rel=0.02)
    assert {(round(r["centroid_y_px"]), round(r["centroid_x_px"])) for r in whole} == {(60, 60), (120, 200)}


def test_specks_below_the_minimum_diameter_leave_the_mask():
    """A disc of 1 nm diameter stays and a 3-pixel speck goes at 0.5 nm (0.5 A/px); 0 keeps both."""
    from hrtem_ood.learning.predict import LoadedModel

    class Fixed(torch.nn.Module):  # logits that put the disc and the speck in the particle class
        def __init__(self, mask):
            super().__init__()
            self.mask = torch.from_numpy(mask.astype(np.float32))

        def forward(self, x):
            m = self.mask[None, None].expand(x.shape[0], 1, -1, -1)[..., :x.shape[-2], :x.shape[-1]]
            return torch.cat([torch.zeros_like(m), 20 * m - 10], dim=1)

    mask = _discs((128, 128), [(64, 64)], 10)  # 10 px = 0.5 nm radius at 0.5 A
    mask[5, 5:8] = 1
    model = LoadedModel(Fixed(mask), 0.5, {}, Path("fixed"))
    image = np.zeros((128, 128), np.float32)
    _, kept = segment(model, image, 0.5, 128, 0, min_diameter_nm=0.5)
    _, raw = segment(model, image, 0.5, 128, 0, min_diameter_nm=0.0)
    assert raw[5, 5:8].all() and not kept[5, 5:8].any()
    assert np.array_equal(kept[20:], raw[20:]) and kept[64, 64] == 1


def test_predict_finds_the_particles_of_a_micrograph_it_never_saw(trained, tmp_path):
    """A micrograph at 0.4 A/px (half the model's sampling is resampled to 0.2 A) in a TIFF with its pixel
    size: the mask matches the discs, the table counts them with the right size, overlay and maps written."""
    model_path, _ = trained
    truth = _discs((200, 260), [(60, 60), (140, 130), (70, 200)], 24)  # drawn at 0.2 A: 4.8 A radius
    image = np.random.default_rng(99).poisson(40 * (1.0 - 0.5 * truth)).astype(np.float32)
    small = image[::2, ::2]  # the same scene at 0.4 A/px: 12 px radius
    tifffile.imwrite(tmp_path / "scan.tif", small, imagej=True, resolution=(25.0, 25.0), metadata={"unit": "nm"})
    before = (tmp_path / "scan.tif").read_bytes()
    summary = run_predict([str(tmp_path / "scan.tif")], load_model(model_path, 0.2), tmp_path / "out", tile_px=128,
                          overlap_px=32)
    assert (tmp_path / "scan.tif").read_bytes() == before  # inputs are only read
    mask = tifffile.imread(tmp_path / "out/scan_mask.tif")
    prob = tifffile.imread(tmp_path / "out/scan_prob.tif")
    assert mask.shape == prob.shape == small.shape and prob.dtype == np.float32
    want = truth[::2, ::2].astype(bool)
    dice = 2 * (mask.astype(bool) & want).sum() / (mask.sum() + want.sum())
    assert dice > 0.85, dice
    rows = read_particles(tmp_path / "out/particles.csv")
    whole = [r for r in rows if r["touches_border"] == "False" and float(r["area_nm2"]) > 0.3]
    assert len(whole) == 3
    assert np.median([float(r["equivalent_diameter_nm"]) for r in whole]) == pytest.approx(0.96, rel=0.15)
    assert (tmp_path / "out/scan_overlay.png").stat().st_size > 1000
    assert summary["pixel_size_A"] == {"scan.tif": pytest.approx(0.4)}
    assert json.loads((tmp_path / "out/summary.json").read_text())["particles_per_image"]["scan.tif"] == len(rows)


def test_exported_model_gives_the_masks_of_the_native_one(trained, tmp_path):
    """A torch.export program with its card: the same masks as the native model on a micrograph of another size,
    loadable with plain torch, and a card that states sampling, normalisation and the model's row of the OOD
    matrix."""
    model_path, root = trained
    results = root / "metrics/results/pretrain"
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "dfm10.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "stage", "pretrain_domain", "target_domain", "eval_domain", "metric", "value"])
        w.writerows([["pretrain:dfm10:lrp0.004:s0", "pretrain", "dfm10", "dfm10", d, "dice", v]
                     for d, v in (("dfm10", 0.9), ("df0", 0.7))])
        w.writerow(["pretrain:dfm10:lrp0.001:s0", "pretrain", "dfm10", "dfm10", "dfm10", "dice", 0.1])  # another model
    out = tmp_path / "exported.pt2"
    rc = main(["--params", str(tmp_path / "none.yaml"), "export", "--model", str(model_path), "--out", str(out),
               "--results-dir", str(root / "metrics/results")])
    assert rc == 2  # a pipeline model needs the params' sampling: there is no params file here
    params = tmp_path / "params.yaml"
    import yaml

    params.write_text(yaml.safe_dump(tiny_params()))
    rc = main(["--params", str(params), "export", "--model", str(model_path), "--out", str(out), "--results-dir",
               str(root / "metrics/results")])
    assert rc == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["input"]["sampling_A"] == 0.2 and "whole micrograph" in card["input"]["normalisation"]
    assert card["trained"]["pretrain_domain"] == "dfm10" and card["output"]["classes"] == ["background", "particle"]
    assert card["ood_row"] == {"dfm10": {"dice": 0.9}, "df0": {"dice": 0.7}}
    native, exported = load_model(model_path, 0.2), load_model(out)
    plain = torch.export.load(str(out)).module()  # plain torch, no hrtem_ood model code
    x = torch.randn(3, 1, 96, 160)
    with torch.no_grad():
        assert torch.equal(plain(x), native.net(x))
    image, _ = _micrograph((190, 300), seed=5)
    prob_n, mask_n = segment(native, image, 0.2, 128, 32)
    prob_e, mask_e = segment(exported, image, 0.2, 128, 32)
    assert np.array_equal(mask_n, mask_e) and mask_n.any()
    assert np.abs(prob_n - prob_e).max() < 1e-5


def _stderr_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("case", ["unreadable", "no_pixel_size", "no_model", "too_small", "no_such_input"])
def test_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, capsys, case):
    model_path, root = trained
    image, _ = _micrograph()
    args = ["--model", str(model_path)]
    pixel = ["--pixel-size-A", "0.2"]
    if case == "unreadable":
        (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
        inputs, expect = [str(tmp_path / "bad.tif")], "bad.tif: cannot read"
    elif case == "no_pixel_size":
        np.save(tmp_path / "m.npy", image)
        inputs, pixel, expect = [str(tmp_path / "m.npy")], [], "m.npy: no pixel size in the file; give one"
    elif case == "no_model":
        np.save(tmp_path / "m.npy", image)
        inputs, expect = [str(tmp_path / "m.npy")], "no such model folder"
        args = ["--domain", "dfp25", "--models-dir", str(root / "models")]
    elif case == "too_small":
        np.save(tmp_path / "m.npy", image[:100, :100])
        inputs, expect = [str(tmp_path / "m.npy")], "smaller than one 128 px tile"
    else:
        inputs, expect = [str(tmp_path / "missing.tif")], "missing.tif: no such file or folder"
    params = tmp_path / "params.yaml"
    import yaml

    params.write_text(yaml.safe_dump(tiny_params()))
    rc = main(["--params", str(params), "predict", *inputs, *args, *pixel, "--tile-px", "128", "--overlap-px", "32",
               "--out", str(tmp_path / "out")])
    assert rc == 2
    assert expect in _stderr_line(capsys)
    assert not (tmp_path / "out").exists()


def test_predict_by_domain_and_an_existing_out_folder_is_refused(trained, tmp_path, capsys):
    """``--domain`` finds the pipeline's model; a second run into the same folder is refused (nothing is
    overwritten)."""
    _, root = trained
    image, _ = _micrograph()
    np.save(tmp_path / "m.npy", image)
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    args = ["--params", str(tmp_path / "params.yaml"), "predict", str(tmp_path / "m.npy"), "--domain", "dfm10",
            "--models-dir", str(root / "models"), "--pixel-size-A", "0.2", "--tile-px", "128", "--overlap-px", "32",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert "1 micrograph(s)" in capsys.readouterr().out
    first = (tmp_path / "out/m_mask.tif").read_bytes()
    assert main(args) == 2 and "already exists" in _stderr_line(capsys)
    assert (tmp_path / "out/m_mask.tif").read_bytes() == first


def test_without_a_named_model_predict_uses_the_ready_model_of_the_listed_dataset(trained, tmp_path, capsys):
    """No --model and no --domain: the ready model of the one dataset in labels.datasets; a ready file of a dataset
    no longer listed is ignored, and none (or several) is one line."""
    import shutil

    import yaml

    from hrtem_ood.learning.export import export_model
    from hrtem_ood.learning.predict import load_model

    path, _ = trained
    ready = tmp_path / "models/ready"
    ready.mkdir(parents=True)
    export_model(load_model(path, 0.2), ready / "lab.pt2", tmp_path / "no-results")
    for suffix in (".pt2", ".json"):
        shutil.copy(ready / f"lab{suffix}", ready / f"stale{suffix}")
    image, _ = _micrograph()
    np.save(tmp_path / "m.npy", image)
    params = tiny_params()
    params["ingest"]["datasets"] = {"lab": {"root": "raw/lab", "masks": True}}
    params["labels"]["datasets"] = ["lab"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--params", str(tmp_path / "params.yaml"), "predict", str(tmp_path / "m.npy"), "--models-dir",
            str(tmp_path / "models"), "--pixel-size-A", "0.2", "--tile-px", "128", "--overlap-px", "32", "--out"]
    assert main([*args, str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out/summary.json").read_text())["model"] == str(ready / "lab.pt2")
    params["labels"]["datasets"] = []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    capsys.readouterr()
    assert main([*args, str(tmp_path / "out2")]) == 2
    assert "0 ready models" in _stderr_line(capsys) and not (tmp_path / "out2").exists()


MEMORY = """
import resource, sys, numpy as np, torch
from pathlib import Path
from hrtem_ood.learning.model import build_model
from hrtem_ood.config.schema import Model
from hrtem_ood.learning.predict import LoadedModel, segment
torch.set_num_threads(2)
cfg = {"encoder": "resnet10t", "encoder_kwargs": {"channels": [8, 16, 32, 64], "stem_width": 8},
       "decoder_channels": [32, 16, 8, 8, 8]}
model = LoadedModel(build_model(Model.model_validate(cfg), 0).eval(), 0.2, {}, Path("m"))
image = np.random.default_rng(0).poisson(30, (4096, 4096)).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prob, mask = segment(model, image, 0.2, 256, 64)
assert prob.shape == mask.shape == image.shape
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_4k_micrograph_is_segmented_in_bounded_memory():
    """A 4096 x 4096 micrograph: tiles are inferred a batch at a time, so the peak memory grows by a few image
    sizes (a float32 image is 64 MiB), not by the 441 tiles' activations."""
    import subprocess
    import sys

    grown_mib = int(subprocess.run([sys.executable, "-c", MEMORY], capture_output=True, text=True, check=True).stdout)
    assert grown_mib < 8 * 64, grown_mib


EXPORT = '''
import sys
import hrtem_ood
from hrtem_ood.learning.export import export_model
from hrtem_ood.learning.predict import load_model
export_model(load_model(sys.argv[1], 0.2), sys.argv[2], sys.argv[3])
print(hrtem_ood.__file__)
'''


def test_an_exported_model_has_the_same_bytes_wherever_the_checkout_lies(trained, tmp_path):
    """The program holds no source-file paths: the package copied elsewhere exports the same bytes (the ready
    model is committed, and a clone's ``dvc repro`` must give its bytes)."""
    import shutil
    import subprocess
    import sys

    import hrtem_ood

    model_path, _ = trained
    elsewhere = tmp_path / "another checkout" / "src"
    shutil.copytree(Path(hrtem_ood.__file__).parent, elsewhere / "hrtem_ood",
                    ignore=shutil.ignore_patterns("__pycache__"))
    outs = []
    for name, path in (("here", ""), ("there", str(elsewhere))):
        out = tmp_path / f"{name}.pt2"
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}
        run = subprocess.run([sys.executable, "-c", EXPORT, str(model_path), str(out), str(tmp_path / "none")],
                             env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
        assert run.stdout.strip().startswith(path or str(Path(hrtem_ood.__file__).parent.parent))
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
