"""The real `dvc repro` of a tiny pipeline in a temporary copy of the repository.

One module-scoped run (about a minute on 2 cores) backs several checks: outputs of every stage,
identical masks across domains, a no-op second repro, params scoping, push/clone/pull, and
byte-identical regeneration of the datasets.
"""

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, copy_repo, dvc, git, tiny_params

from hrtem_ood.config.domains import transfer_pairs
from hrtem_ood.config.params import validate
from hrtem_ood.dataio.datasets import read_h5

pytestmark = pytest.mark.slow


#: The transfer grid of the tiny pipeline: 2 transfer sizes x 2 frozen parts in one `dvc repro`.
GRID = {"n_images": [1, 2], "freeze": ["none", "encoder"]}


#: Three of the shipped real micrographs (grey PNGs saved as RGBA, no pixel size in the files).
REAL = ("image_0", "image_1", "image_2")


def pipeline_params() -> dict:
    """The tiny params with a 2 x 2 transfer grid, plus two experimental datasets ingested as domains: ``lab``
    (TIFFs the test writes) and ``real`` (three of the shipped real micrographs, at a coarser pixel size than
    their own so that they give 9 tiles each), with the label-count study and the ready model of ``real``."""
    p = tiny_params()
    p["transfer"].update(GRID)
    p["ingest"] = {"datasets": {
        "lab": {"root": "raw/lab", "masks": True, "tile_px": 64, "stride_px": 64,
                "splits": {"val": 0.34, "test": 0.34}, "seed": 0},
        "real": {"root": "raw/real", "masks": True, "pixel_size_A": 0.3, "tile_px": 256, "stride_px": 256,
                 "splits": {"val": 0.34, "test": 0.34}, "seed": 0}}}
    p["labels"].update(datasets=["real"], n_micrographs=[1], starts=["best", "worst", "scratch"], epochs=1)
    return p


def _copy_real(root: Path) -> None:
    import shutil

    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for name in REAL:
            shutil.copy2(REPO / "data/real/segtrack" / sub / f"{name}.png", root / sub / f"{name}.png")


def _make_lab_data(root: Path) -> None:
    """Six 128 px 'micrographs' (TIFF with pixel size 0.2 A) with PNG masks, written by the test."""
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:128, :128]
    for k in range(6):
        cy, cx = rng.integers(30, 98, size=2)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < 20**2).astype(np.uint8)
        img = rng.poisson(16 * (1 - 0.3 * mask) * (1 + 0.2 * np.cos(xx * 2 * np.pi / 17))).astype(np.float32)
        tifffile.imwrite(root / "images" / f"m{k}.tif", img, imagej=True, resolution=(50.0, 50.0),
                         metadata={"unit": "nm"})
        Image.fromarray(mask * 255).save(root / "masks" / f"m{k}.png")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    path = copy_repo(root / "repo", pipeline_params())
    _make_lab_data(path / "raw/lab")
    _copy_real(path / "raw/real")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "raw data")
    dvc(path, "repro")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_stage_wrote_its_outputs(repo):
    from hrtem_ood.config.domains import domain_names

    p = pipeline_params()
    for d in p["domains"]:
        for split in ("train", "val", "test"):
            arrays, attrs = read_h5(repo / "data/domains" / d / f"{split}.h5")
            assert arrays["images"].shape == arrays["masks"].shape
            assert attrs["domain"] == d and attrs["sampling_A"] == pytest.approx(0.2)
    assert (repo / "plots/examples.png").stat().st_size > 1000
    lrp = p["pretrain"]["lr"]
    for d in p["pretrain"]["domains"]:
        assert (repo / f"models/pretrain/{d}/lrp{lrp:g}/seed0.pt").is_file()
    typed = validate(p)
    for d in p["pretrain"]["domains"]:  # one transfer stage per pretraining row: targets x grid x seeds
        targets = [v["target"] for v in transfer_pairs(typed).values() if v["pretrain"] == d]
        with open(repo / f"metrics/results/transfer/{d}.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0])[:8] == ["run", "stage", "pretrain_domain", "target_domain", "eval_domain", "metric",
                                     "value", "seed"]
        assert sorted({r["target_domain"] for r in rows}) == sorted(targets)
        assert len(rows) == len(targets) * 4 * len(domain_names(typed)) * 4  # 4 conditions x domains x 4 metrics
        assert {(r["n_transfer"], r["freeze"]) for r in rows} == {("1", "none"), ("2", "none"), ("1", "encoder"),
                                                                  ("2", "encoder")}
        assert "seconds" not in rows[0]  # the wall clock lives in the timing table alone
        with open(repo / f"metrics/timing/transfer/{d}.csv") as fh:
            timed = list(csv.DictReader(fh))
        assert sorted(r["run"] for r in timed) == sorted({r["run"] for r in rows})
        assert all(float(r["seconds"]) > 0 for r in timed)
        for t in targets:
            saved = torch.load(repo / f"models/transfer/{d}/{t}/lrp{lrp:g}-lrt0.0001-n2-encoder/seed0.pt",
                               weights_only=True)
            assert (saved["pretrain_domain"], saved["target_domain"]) == (d, t)
    head = json.loads((repo / "metrics/ood.json").read_text())
    # 2 pretraining rows x 4 other domains (lab and real too); the study's measures count the simulated ones
    assert len(transfer_pairs(typed)) == 2 * 4 and head["n_pairs"] == 2 * 2
    # one dvc repro pools the grid in every cell: 2 sizes x 2 frozen parts x 1 seed = 4 models per cell
    assert head["pooled_conditions"]["freeze"] == ["encoder", "none"]
    assert head["pooled_conditions"]["n_transfer"] == ["1", "2"]
    assert head["models_per_cell"]["transfer_models_per_cell"] == [4, 4]
    assert head["models_per_cell"]["pretrain_models_per_cell"] == [1, 1]
    assert set(head["transfer_conditions"]["by_transfer_size"]) == {"1", "2"}
    assert set(head["transfer_conditions"]["by_freeze"]) == {"none", "encoder"}
    timing = json.loads((repo / "metrics/timing.json").read_text())
    assert set(timing["transfer_median_s_by_freeze"]) == {"none", "encoder"}
    assert timing["freeze_encoder_time_saving"] is not None
    assert head["phenomena"]["in_domain_loss_excl_0nm"] is not None and head["mean_ood_std_transfer"] is not None
    for f in ("generalization.png", "generalization.svg", "domain_loss.png", "report.html",
              "transfer_conditions.png", "overlays.png"):
        assert (repo / "plots" / f).stat().st_size > 1000
    from PIL import Image

    with Image.open(repo / "plots/overlays.png") as im:  # one row per evaluated domain: 3 simulated, lab, real
        assert im.mode == "RGB" and im.size[1] >= 5 * 64
    assert "Segmentation on every domain" in (repo / "plots/report.html").read_text()


def test_ingested_dataset_is_an_evaluation_domain(repo):
    arrays, attrs = read_h5(repo / "data/domains/lab/test.h5")
    assert attrs["source"] == "ingested" and arrays["images"].shape[1:] == (64, 64)
    pretrain = json.loads((repo / "plots/pretrain_loss.json").read_text())
    assert {r["eval"] for r in pretrain} == {"dfm10", "df0", "dfp10", "lab", "real"}
    transfer = json.loads((repo / "plots/transfer_loss.json").read_text())
    assert {"dfm10", "dfp10"} <= {r["pretrain"] for r in transfer if r["target"] == "lab"}


def test_real_micrographs_are_a_domain_outside_the_ood_std(repo):
    """The real micrographs are ingested (grey RGBA PNGs, each standardized as a whole micrograph), evaluated
    zero-shot by every pretrained model, a transfer target of every row, and reported with Dice and IoU; the OOD
    std stays over the simulated domains (recomputed here from the plotted matrix)."""
    arrays, attrs = read_h5(repo / "data/domains/real/train.h5")
    assert attrs["normalisation"] == "micrograph" and arrays["images"].shape[1:] == (256, 256)
    assert arrays["images"].shape[0] == 9  # 512 px at 0.3 A -> 768 px at 0.2 A -> 3 x 3 tiles of 256
    # tiles with stride = tile cover the micrograph once: together they are standardized
    assert abs(float(arrays["images"].mean())) < 1e-3 and float(arrays["images"].std()) == pytest.approx(1, abs=1e-3)
    pretrain = json.loads((repo / "plots/pretrain_loss.json").read_text())
    assert {r["eval"] for r in pretrain} == {"dfm10", "df0", "dfp10", "lab", "real"}
    head = json.loads((repo / "metrics/ood.json").read_text())
    for d in ("dfm10", "dfp10"):
        row = {r["eval"]: r["value"] for r in pretrain if r["pretrain"] == d}
        assert head["ood_std_pretrain"][d] == pytest.approx(np.std([row["dfm10"], row["dfp10"]]), abs=2e-6)
        for kind in ("zero_shot", "after_transfer"):
            cell = head["ingested"]["real"][kind][d]
            assert 0 <= cell["iou"] <= cell["dice"] <= 1 and cell["paper_loss"] > -0.01
    assert head["ingested"]["real"]["best_zero_shot_pretrain"] in ("dfm10", "dfp10")


def test_label_count_study_and_the_ready_model(repo, tmp_path):
    """The label-count study trains from the best and worst pretrained model (by zero-shot val loss) and from
    scratch; the ready model is the study's model of lowest val loss, exported with its card, and `predict` uses
    it when no model is named."""
    summary = json.loads((repo / "metrics/labels/real.json").read_text())
    val = summary["zero_shot_val_paper_loss"]
    assert summary["starts"] == {"best": min(val, key=val.get), "worst": max(val, key=val.get), "scratch": None}
    assert [(r["start"], r["n_micrographs"]) for r in summary["test_split"]] == [("best", 1), ("worst", 1),
                                                                                 ("scratch", 1)]
    assert all(0 <= r["iou"] <= r["dice"] <= 1 for r in summary["test_split"])
    card = json.loads((repo / "models/ready/real.json").read_text())
    curves = json.loads((repo / "metrics/curves/labels/real.json").read_text())
    best_val = {}
    for c in curves:
        best_val[c["run"]] = min(best_val.get(c["run"], np.inf), c["val_loss"])
    assert card["selection"]["run"] == min(best_val, key=best_val.get)
    assert card["input"]["sampling_A"] == pytest.approx(0.2) and "real" in card["ood_row"]
    out = repo / "seg"
    proc = subprocess.run([str(Path(sys.executable).with_name("hrtem-ood")), "predict", "raw/real/images/image_0.png",
                           "--pixel-size-A", "0.3", "--out", "seg"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert {"image_0_mask.tif", "image_0_prob.tif", "image_0_overlay.png", "particles.csv", "summary.json"} <= {
        f.name for f in out.iterdir()}
    assert json.loads((out / "summary.json").read_text())["model"].endswith("models/ready/real.pt2")


def test_ready_model_is_byte_identical_when_rerun(repo):
    before = _sha(repo / "models/ready/real.pt2")
    dvc(repo, "repro", "-f", "-s", "ready@real")
    assert _sha(repo / "models/ready/real.pt2") == before
    assert "up to date" in dvc(repo, "status").stdout


def test_masks_identical_and_images_differ_across_domains(repo):
    ref = read_h5(repo / "data/domains/df0/test.h5")[0]
    for d in ("dfm10", "dfp10"):
        other = read_h5(repo / f"data/domains/{d}/test.h5")[0]
        assert np.array_equal(other["masks"], ref["masks"])
        assert np.array_equal(other["scene_id"], ref["scene_id"])
        assert not np.array_equal(other["images"], ref["images"])
    # 0 nm is the calibrated minimum-contrast condition: the lowest contrast of the three
    contrast = {d: np.mean([im.std() / im.mean() for im in read_h5(repo / f"data/domains/{d}/train.h5")[0]["images"]])
                for d in ("dfm10", "df0", "dfp10")}
    assert contrast["df0"] < contrast["dfm10"] and contrast["df0"] < contrast["dfp10"]


def test_second_repro_is_a_no_op(repo):
    out = dvc(repo, "repro").stdout
    assert "Running stage" not in out
    assert "up to date" in dvc(repo, "status").stdout


def test_changing_a_transfer_param_reruns_only_transfer_stages(repo):
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    p = yaml.safe_load(original)
    p["transfer"]["n_images"] = [1, 3]  # one value of the grid
    params_path.write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        changed = set(json.loads(dvc(repo, "status", "--json").stdout))
    finally:
        params_path.write_text(original)
    # one stage per pretraining row, and the overlays, which show the grid's first condition
    assert changed == {f"transfer@{d}" for d in p["pretrain"]["domains"]} | {"overlays"}
    assert len(changed) == 3
    p = yaml.safe_load(original)
    p["aggregate"]["reduce"] = "mean"  # an aggregate param: only the aggregate and the model chooser
    params_path.write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        changed = set(json.loads(dvc(repo, "status", "--json").stdout))
    finally:
        params_path.write_text(original)
    assert changed == {"aggregate", "match"}  # the model chooser ranks by the aggregate's metric


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(repo):
    """Code deps are exact: a change to imaging.py names the image stages, and no other stage (the stages
    downstream of them rerun through their data deps once the images change; structures, simulate and
    ingest never)."""
    path = repo / "src/hrtem_ood/physics/imaging.py"
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        changed = set(json.loads(dvc(repo, "status", "--json").stdout))
    finally:
        path.write_text(original)
    assert changed == {f"image@{d}" for d in pipeline_params()["domains"]}


def test_editing_a_scheduling_only_module_reruns_nothing(repo):
    """parallel.py decides where tasks run, never what they compute (the executor tests): no stage lists it,
    so an edit to it leaves every stage up to date, the science stages included; so does an edit to a
    subpackage's docstring, the only thing its __init__.py holds."""
    path = repo / "src/hrtem_ood/execution/parallel.py"
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    init = repo / "src/hrtem_ood/physics/__init__.py"
    init_text = init.read_text()
    init.write_text(init_text.replace('"""', '"""Edited. ', 1))
    try:
        assert "up to date" in dvc(repo, "status").stdout
        edited_grid = (repo / "src/hrtem_ood/execution/grid.py")
        grid_text = edited_grid.read_text()
        edited_grid.write_text(grid_text + "\n# edited\n")  # the check can see a change: grid.py is a dep
        try:
            changed = set(json.loads(dvc(repo, "status", "--json").stdout))
        finally:
            edited_grid.write_text(grid_text)
    finally:
        path.write_text(original)
        init.write_text(init_text)
    assert changed == ({"pretrain", "labels@real", "ready@real", "overlays"}
                       | {f"transfer@{d}" for d in pipeline_params()["pretrain"]["domains"]})


def test_plots_show_renders_every_plot(repo):
    shown = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    out = shown["data"]
    for name in ("plots/pretrain_loss.json", "plots/transfer_loss.json", "plots/ood_std_pretrain.json",
                 "plots/ood_std_transfer.json", "plots/ood_shift.json", "plots/pair_bars.json",
                 "plots/learning_curves_pretrain.json", "plots/learning_curves_transfer.json",
                 "plots/transfer_conditions.json", "plots/training_time.json"):
        assert name in out, sorted(out)
        spec = out[name][0]["content"]
        assert spec["data"]["values"], name
    assert not [k for k in out if k.startswith("metrics/curves")]  # no per-stage curve plots any more
    curves = out["plots/learning_curves_transfer.json"][0]["content"]["data"]["values"]
    p = pipeline_params()
    runs = {r["run"] for r in curves}
    # one series per pair, condition and seed
    assert len(runs) == len(transfer_pairs(validate(p))) * 4 * len(p["train"]["seeds"])
    assert {r["epoch"] for r in curves} == set(range(1, p["transfer"]["epochs"] + 1))


def test_push_clone_pull_and_byte_identical_regeneration(repo, tmp_path):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")
    remote = tmp_path / "storage"
    dvc(repo, "remote", "add", "-f", "-d", "tmp", str(remote))
    dvc(repo, "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    dvc(clone, "remote", "add", "-f", "-d", "tmp", str(remote))
    dvc(clone, "pull")
    assert "up to date" in dvc(clone, "status").stdout
    assert "Running stage" not in dvc(clone, "repro").stdout  # nothing to rerun after a pull
    for ignore in ("data/domains/.gitignore", "metrics/results/transfer/.gitignore"):
        assert (clone / ignore).is_file()  # DVC's .gitignore files travel with git
    files = sorted(p.relative_to(repo) for p in (repo / "data").rglob("*.h5"))
    assert files and all(_sha(repo / f) == _sha(clone / f) for f in files)
    # same params, regenerated from scratch in the clone: identical bytes
    for stage in ("structures", "simulate", "image@df0"):
        dvc(clone, "repro", "-f", "-s", stage)
    regenerated = [p.relative_to(repo) for d in ("data/structures", "data/exitwaves", "data/domains/df0")
                   for p in sorted((repo / d).rglob("*")) if p.is_file()]
    assert {"exitwaves.h5", "summary.json", "train.h5", "test.h5"} <= {f.name for f in regenerated}
    for f in regenerated:  # every output file, summaries included (a timing in one would change its hash)
        assert _sha(repo / f) == _sha(clone / f), f
    assert (repo / "dvc.lock").read_text() == (clone / "dvc.lock").read_text()
    # a training stage rerun: its models, results and curves come back byte-identical; only its timing table,
    # which holds the wall-clock seconds, changes
    dvc(clone, "repro", "-f", "-s", "transfer@dfm10")
    locks = [yaml.safe_load((r / "dvc.lock").read_text())["stages"]["transfer@dfm10"]["outs"] for r in (repo, clone)]
    changed = {a["path"] for a, b in zip(*locks, strict=True) if a["md5"] != b["md5"]}
    assert changed == {"metrics/timing/transfer/dfm10.csv"}, changed


def test_compare_pools_two_real_experiments(repo, tmp_path):
    """Two `dvc exp run` variants of the transfer stage, pooled by `hrtem-ood compare`."""
    import os
    import subprocess
    import sys

    dvc(repo, "exp", "run", "-n", "lr-high", "-S", "transfer.lr=0.0003")
    # a workspace `dvc exp run` leaves its params applied: set both keys explicitly
    dvc(repo, "exp", "run", "-n", "frozen-enc", "-S", "transfer.lr=0.0001", "-S", "transfer.freeze=encoder")
    shown = dvc(repo, "exp", "show", "--json").stdout
    assert "lr-high" in shown and "frozen-enc" in shown
    exe = Path(sys.executable).with_name("hrtem-ood")
    proc = subprocess.run([str(exe), "compare", "lr-high", "frozen-enc", "--out-metrics", str(tmp_path / "m"),
                           "--out-plots", str(tmp_path / "p")], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pooled 2 experiments" in proc.stdout
    head = json.loads((tmp_path / "m/ood.json").read_text())
    assert head["experiments"] == ["frozen-enc", "lr-high"]
    assert head["pooled_conditions"]["freeze"] == ["encoder", "none"]
    assert sorted(head["pooled_conditions"]["lr_transfer"]) == ["0.0001", "0.0003"]
    # lr-high keeps the 2 x 2 grid (4 models per cell), frozen-enc keeps 2 sizes of one frozen part (2)
    assert head["models_per_cell"]["transfer_models_per_cell"] == [6, 6]
    assert (tmp_path / "p/generalization.png").stat().st_size > 1000


def test_a_run_and_its_experiments_shared_over_ssh(repo, tmp_path, sshd):
    """The README's "Share with your lab", against a real sshd: the lab pushes its run (git to a bare repo, every
    output to the SSH remote) and an experiment (`dvc exp push`). A colleague clones and pulls: nothing to rerun;
    the experiment shows in `dvc exp show` with its metrics and `hrtem-ood compare` pools it; a pulled model
    segments a micrograph (`hrtem-ood predict`) with no training."""
    import os
    import re
    import subprocess
    import sys

    if "lr-high" not in dvc(repo, "exp", "list", "--name-only").stdout:  # made by the compare test, when it ran
        dvc(repo, "exp", "run", "-n", "lr-high", "-S", "transfer.lr=0.0003")
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    storage.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the run", "--allow-empty")
    git(repo, "remote", "add", "origin", str(origin))
    branch = git(repo, "branch", "--show-current").strip()
    git(repo, "push", "-q", "origin", branch)

    # the README's commands, word for word but for the server, the key and the experiment's name
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Share with your lab.*?```bash\n(.*?)```", readme, re.S).group(1)
    usage = (REPO / "docs/usage.md").read_text()
    pull = re.search(r"\*\*Pull instead of rerun\.\*\*.*?```bash\n(.*?)```", usage, re.S).group(1)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "HOME": str(sshd.home), "PATH": path}

    def run(script: str, cwd: Path) -> None:
        for line in script.splitlines():
            line = line.split("  #")[0].strip()
            if not line or line.startswith("pip install"):
                continue
            for word, value in (("ssh://me@storage.lab.org/data/hrtem-ood", sshd.url(storage)),
                                ("ssh://colleague@storage.lab.org/data/hrtem-ood", sshd.url(storage)),
                                ("~/.ssh/id_ed25519", str(sshd.key)), ("my-exp", "lr-high")):
                line = line.replace(word, value)
            proc = subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, env=env)
            assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"

    run(block, repo)
    clone = tmp_path / "colleague"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    run(pull.replace("git clone <the lab's git> && cd hrtem-ood", ""), clone)
    assert "up to date" in dvc(clone, "status").stdout
    assert "Running stage" not in dvc(clone, "repro").stdout
    def named(node, name):  # every record of `dvc exp show --json` with this name and data
        if isinstance(node, dict):
            if node.get("name") == name and isinstance(node.get("data"), dict):
                yield node
            for v in node.values():
                yield from named(v, name)
        elif isinstance(node, list):
            for v in node:
                yield from named(v, name)

    mine = list(named(json.loads(dvc(clone, "exp", "show", "--all-commits", "--json").stdout), "lr-high"))
    assert mine, "lr-high is not in the colleague's dvc exp show"
    metrics = mine[0]["data"]["metrics"]["metrics/ood.json"]["data"]
    assert metrics["scorecard_total"] == 6
    exe = str(Path(sys.executable).with_name("hrtem-ood"))
    proc = subprocess.run([exe, "compare", "lr-high", "--out-metrics", str(tmp_path / "m"), "--out-plots",
                           str(tmp_path / "p")], cwd=clone, capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "pooled 1 experiments" in proc.stdout, proc.stderr[-3000:]
    assert json.loads((tmp_path / "m/ood.json").read_text())["experiments"] == ["lr-high"]
    proc = subprocess.run([exe, "predict", str(clone / "raw/real/images/image_0.png"), "--pixel-size-A", "0.3",
                           "--domain", "dfm10", "--out", str(tmp_path / "seg")], cwd=clone, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "seg/image_0_mask.tif").is_file()


def _chromium(url: str, out_png: Path) -> str:
    """Headless Chromium with every network request sent to a dead proxy; returns the rendered DOM and
    writes a screenshot."""
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
             "--virtual-time-budget=15000", "--window-size=1400,2400"]
    with tempfile.TemporaryDirectory() as profile:
        flags.append(f"--user-data-dir={profile}")
        subprocess.run([exe, *flags, f"--screenshot={out_png}", url], capture_output=True, timeout=120)
        return subprocess.run([exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


def test_plots_show_renders_offline_in_chromium(repo, tmp_path):
    """`dvc plots show` uses the committed offline template (plots.html_template): with no network the
    charts are drawn. The same page with DVC's CDN script tags instead draws nothing, which shows that
    the network really was off."""
    from PIL import Image

    dvc(repo, "plots", "show", "-o", str(tmp_path / "out"))
    page = (tmp_path / "out" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "window.vegaEmbed" in page
    n_plots = page.count("vegaEmbed('#")
    assert n_plots >= 8
    import re

    charts = re.compile(r'<svg[^>]*class="marks"')  # the root of each chart vega-embed drew
    dom = _chromium((tmp_path / "out" / "index.html").as_uri(), tmp_path / "offline.png")
    assert len(charts.findall(dom)) == n_plots, dom[-2000:]
    pixels = np.asarray(Image.open(tmp_path / "offline.png").convert("RGB"), float)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # heatmap and line colours, not grey text
    assert coloured.mean() > 0.02
    head, _, rest = page.partition("<script")
    cdn = head + "".join(f'<script src="https://cdn.jsdelivr.net/npm/{lib}"></script>'
                         for lib in ("vega@5", "vega-lite@5", "vega-embed@6")) + rest.partition("</script>")[2]
    (tmp_path / "cdn.html").write_text(cdn)
    assert not charts.findall(_chromium((tmp_path / "cdn.html").as_uri(), tmp_path / "cdn.png"))


def test_report_is_the_answer_page_and_opens_offline(repo, tmp_path):
    """plots/report.html: the scorecard with this run's numbers and the study's, the matrices beside the
    study's, the examples and learning curves, the vs-study table; rendered by headless Chromium with the
    network off, every figure and the example image are drawn."""
    import re

    from PIL import Image

    html = (repo / "plots/report.html").read_text()
    head = json.loads((repo / "metrics/ood.json").read_text())
    assert f"{head['scorecard_held']} of {head['scorecard_total']} held" in html
    assert html.count('<td class="yes">') + html.count('<td class="no">') == head["scorecard_total"] == 6
    import html as markup

    assert head["defocus_convention"] in markup.unescape(html)  # the convention is stated on the page
    for title in ("This run beside the study", "Learning curves", "Example test image", "Rank correlation"):
        assert title in html, title
    assert "data:image/png;base64," in html and "https://" not in html
    dom = _chromium((repo / "plots/report.html").as_uri(), tmp_path / "report.png")
    assert len(re.findall(r"<svg", dom)) >= 4 and "scorecard" in dom
    pixels = np.asarray(Image.open(tmp_path / "report.png").convert("RGB"), float)
    assert ((pixels.max(axis=2) - pixels.min(axis=2)) > 60).mean() > 0.01  # coloured cells were painted
