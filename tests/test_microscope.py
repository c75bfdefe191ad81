"""`hrtem-ood conditions` and `hrtem-ood recommend` on files: closed-form support images (test_thon) saved as
.npy (no metadata) and as DM4 (beam energy and pixel size in the file); a domain written into params.yaml
that matches them; one clear line and nothing written on bad input."""

import json

import numpy as np
import pytest
import yaml
from conftest import tiny_params
from test_thon import support_image

from hrtem_ood.cli import main
from hrtem_ood.config.params import load_params, validate
from hrtem_ood.dataio.ingest import microscope_from_metadata
from hrtem_ood.physics import thon

OFFSET_NM = 6.0
ARGS = ["--pixel-size-A", "0.5", "--energy-keV", "300", "--cs-mm", "0"]


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder with params.yaml (comments kept from the shipped one), a match.json with the offset, and three
    micrographs of a 120 nm support defocus (112-128 nm)."""
    from hrtem_ood.config.params_file import edit_params_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(_shipped_params())
    tiny = tiny_params()
    edit_params_file(tmp_path / "params.yaml", {"domains": tiny["domains"], "pretrain": tiny["pretrain"],
                                                "aggregate": {"pairs": tiny["aggregate"]["pairs"]},
                                                "ingest": {"datasets": {}}, "labels": {"datasets": []}},
                     replace={"domains", "pretrain.domains", "aggregate.pairs", "ingest.datasets"})
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/match.json").write_text(json.dumps({"calibration": {"offset_nm": OFFSET_NM}}))
    (tmp_path / "mic").mkdir()
    for k, d in enumerate((1120.0, 1200.0, 1280.0)):
        np.save(tmp_path / "mic" / f"m{k}.npy", support_image(512, 0.5, d, seed=k))
    return tmp_path


def _shipped_params() -> str:
    from conftest import REPO

    return (REPO / "params.yaml").read_text()


def _set_defocus(out: str) -> float:
    import re

    return float(re.search(r"^support defocus ([0-9.]+) \+- ", out, re.M).group(1))


def test_conditions_prints_the_support_and_particle_plane_defocus(work, capsys):
    assert main(["conditions", "mic", *ARGS]) == 0
    out = capsys.readouterr().out
    assert "m0: support defocus 112.0 nm" in out and "m2: support defocus 128.0 nm" in out
    assert "support defocus 120.0 +- " in out and "3 of 3 micrographs" in out and "sign undetermined" in out
    assert "underfocus 114.0 nm or overfocus 126.0 nm" in out


def test_add_domain_needs_a_sign_then_writes_a_valid_domain_keeping_comments(work, capsys):
    before = (work / "params.yaml").read_text()
    assert main(["conditions", "mic", *ARGS, "--add-domain", "mine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sign is undetermined" in err[0] and "--sign underfocus" in err[0]
    assert (work / "params.yaml").read_text() == before
    assert main(["conditions", "mic", *ARGS, "--add-domain", "mine", "--sign", "overfocus", "--pretrain"]) == 0
    text = (work / "params.yaml").read_text()
    assert "# Imaging domains, declared once." in text and "# hrtem-ood parameters." in text
    p = validate(load_params(work / "params.yaml"))
    assert p.domains["mine"].defocus_nm == pytest.approx(-126.0, abs=0.2)
    assert p.domains["mine"].defocus_sigma_nm == pytest.approx(1.4826 * 8.0, abs=0.3)  # 3 micrographs' spread
    assert p.pretrain.domains[-1] == "mine"
    before = (work / "params.yaml").read_text()
    assert main(["conditions", "mic", *ARGS, "--add-domain", "mine", "--sign", "overfocus"]) == 2
    assert "already has a domain" in capsys.readouterr().err
    assert (work / "params.yaml").read_text() == before


def test_another_beam_energy_is_matched_by_the_same_rings_at_the_simulations(work):
    """200 keV micrographs: the domain's support defocus gives the same lambda * defocus at 300 keV."""
    for k, d in enumerate((1150.0, 1200.0, 1250.0)):
        np.save(work / "mic" / f"m{k}.npy", support_image(512, 0.5, d, energy_eV=200e3, seed=k))
    args = ["--pixel-size-A", "0.5", "--energy-keV", "200", "--cs-mm", "0"]
    assert main(["conditions", "mic", *args, "--add-domain", "at200", "--sign", "underfocus"]) == 0
    ratio = thon.electron_wavelength_A(200e3) / thon.electron_wavelength_A(300e3)
    p = load_params(work / "params.yaml")
    assert p["domains"]["at200"]["defocus_nm"] == pytest.approx(120.0 * ratio - OFFSET_NM, abs=0.5)


def test_dm4_metadata_gives_pixel_size_and_beam_energy(work, capsys):
    from dm_writer import write_dm

    image = support_image(512, 0.5, 1500.0, energy_eV=200e3, seed=4)
    write_dm(work / "mic.dm4", image.astype(np.float32), pixel_size=0.05, units="nm", voltage_V=200e3)
    assert main(["conditions", str(work / "mic.dm4"), "--cs-mm", "0"]) == 0  # no pixel size, no energy given
    assert _set_defocus(capsys.readouterr().out) == pytest.approx(150.0, rel=0.01)  # read at 200 keV


def test_metadata_reading():
    meta = {"Acquisition_instrument": {"TEM": {"beam_energy": 200.0, "Cs": 1.2}}}
    assert microscope_from_metadata(meta) == {"energy_keV": 200.0, "Cs_mm": 1.2}
    assert microscope_from_metadata({"Acquisition_instrument": {"TEM": {"beam_energy": "n/a"}}}) == {}
    assert microscope_from_metadata({}) == {}


@pytest.mark.parametrize("args, problem", [
    (["mic"], "records no pixel size; pass --pixel-size-A"),
    (["mic", "--pixel-size-A", "0.5"], "records no beam energy; pass --energy-keV"),
    (["mic", "--pixel-size-A", "0.5", "--energy-keV", "300"], "records no spherical aberration; pass --cs-mm"),
    (["missing", *ARGS], "missing: no such file or folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(work, capsys, args, problem):
    before = (work / "params.yaml").read_text()
    assert main(["conditions", *args, "--add-domain", "x", "--sign", "underfocus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0], err
    assert (work / "params.yaml").read_text() == before


def test_unreadable_file_and_images_without_rings_are_refused(work, capsys):
    (work / "bad").mkdir()
    (work / "bad" / "broken.png").write_bytes(b"not a png")
    assert main(["conditions", "bad", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.png: cannot read" in err[0]
    (work / "blank").mkdir()
    for k in range(2):
        np.save(work / "blank" / f"b{k}.npy", np.random.default_rng(k).normal(size=(512, 512)))
    before = (work / "params.yaml").read_text()
    assert main(["conditions", "blank", *ARGS, "--add-domain", "x", "--sign", "underfocus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b0, b1: no Thon rings" in err[0] and "no amorphous background" in err[0]
    assert (work / "params.yaml").read_text() == before


def test_conditions_needs_the_calibrated_offset(work, capsys):
    (work / "metrics/match.json").unlink()
    assert main(["conditions", "mic", *ARGS]) == 2
    assert "run `dvc repro match`" in capsys.readouterr().err


def _results(work, losses: dict[tuple[str, str | None], list[float]], domains: list[str]) -> None:
    """Results tables of a grid: per model (pretrain domain, transfer target or None), its loss per domain."""
    for kind in ("pretrain", "transfer"):
        (work / "metrics/results" / kind).mkdir(parents=True, exist_ok=True)
    header = "run,stage,pretrain_domain,target_domain,eval_domain,metric,value,seed\n"
    files: dict = {}
    for (pre, target), values in losses.items():
        kind = "pretrain" if target is None else "transfer"
        lines = files.setdefault((kind, pre), [])
        for dom, v in zip(domains, values, strict=True):
            lines.append(f"{kind}:{pre}:{target}:s0,{kind},{pre},{target or pre},{dom},paper_loss,{v},0\n")
    for (kind, pre), lines in files.items():
        (work / "metrics/results" / kind / f"{pre}.csv").write_text(header + "".join(lines))


def test_recommend_places_the_micrographs_and_names_the_model(work, capsys):
    """Domains at -10, 0, +10 nm; micrographs whose particle plane lies at -2 or -10 nm (the sign open), or far
    outside."""
    doms = ["dfm10", "df0", "dfp10"]
    _results(work, {("dfm10", None): [0.01, 0.05, 0.09], ("dfp10", None): [0.09, 0.05, 0.01],
                    ("dfm10", "dfp10"): [0.03, 0.04, 0.03], ("dfm10", "df0"): [0.02, 0.02, 0.08],
                    ("dfp10", "dfm10"): [0.02, 0.05, 0.06], ("dfp10", "df0"): [0.06, 0.02, 0.05]}, doms)
    for k in range(3):  # support at 4 nm: the particle plane at -2 or -10 nm, both among the domains
        np.save(work / "mic" / f"m{k}.npy", support_image(512, 0.2, 40.0 + 5 * (k - 1), seed=k))
    assert main(["recommend", "mic", "--pixel-size-A", "0.2", *ARGS[2:]]) == 0
    out = capsys.readouterr().out
    assert "recommended: dfm10 transferred to df0" in out  # the fairest at -10 and -2 nm alike
    for k, d in enumerate((1500.0, 1550.0, 1600.0)):
        np.save(work / "mic" / f"m{k}.npy", support_image(512, 0.5, d, seed=k))
    assert main(["recommend", "mic", *ARGS]) == 0
    out = capsys.readouterr().out
    assert "outside every domain" in out and "overall is dfm10 transferred to dfp10" in out
    assert "--add-domain" in out


def test_recommend_without_results_says_what_to_run(work, capsys):
    assert main(["recommend", "mic", *ARGS]) == 2
    err = capsys.readouterr().err
    assert "results table not found" in err and "dvc repro" in err


def test_shipped_params_stay_parseable_by_yaml():
    from conftest import REPO

    yaml.safe_load((REPO / "params.yaml").read_text())
