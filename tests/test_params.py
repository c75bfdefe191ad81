"""Invalid params fail before any work, with a message naming the key and the problem."""

import pytest
import yaml
from conftest import REPO

from hrtem_ood.cli import main
from hrtem_ood.params import ParamsError, expected_pairs, validate


def test_valid_default_and_tiny_params(params):
    from conftest import REPO

    from hrtem_ood.params import load_params

    validate(load_params(REPO / "params.yaml"))
    validate(params)
    assert len(expected_pairs(load_params(REPO / "params.yaml"))) == 50


@pytest.mark.parametrize(
    "edit, key, problem",
    [
        (lambda p: p.update(domains={}), "domains", "non-empty"),
        (lambda p: p["pretrain"].update(domains=["dfm10", "nope"]), "pretrain.domains", "unknown domain 'nope'"),
        (lambda p: p["structures"].update(n_train=-3), "structures.n_train", ">= 1"),
        (lambda p: p["structures"]["particles"].update(diameter_A=[30.0, -1.0]), "structures.particles.diameter_A",
         ">= 5.0"),
        (lambda p: p["simulate"].update(output_sampling_A=0.8), "simulate.output_sampling_A", "too coarse"),
        (lambda p: p["simulate"].update(output_sampling_A=0.25), "simulate.output_sampling_A", "integer multiple"),
        (lambda p: p["imaging"].update(dose_e_per_A2=0), "imaging.dose_e_per_A2", "> 0"),
        (lambda p: p["domains"]["df0"].update(dose_e_per_A2=-5.0), "domains.df0.dose_e_per_A2", "> 0"),
        (lambda p: p["domains"]["df0"].update(defocus_mm=3), "domains.df0", "unknown keys"),
        (lambda p: p["imaging"].update(aperture_mrad=0.0), "imaging.aperture_mrad", "> 0"),
        (lambda p: p["domains"]["df0"].update(aperture_mrad="wide"), "domains.df0.aperture_mrad", "finite number"),
        (lambda p: p["simulate"]["calibration"].update(q_max_per_A=-0.3), "simulate.calibration.q_max_per_A", "> 0"),
        (lambda p: p["train"].update(crop_px=100), "train.crop_px", "multiple of 32"),
        (lambda p: p["transfer"].update(freeze="all"), "transfer.freeze", "one of"),
        (lambda p: p["transfer"]["pairs"].pop("dfm10-to-df0"), "transfer.pairs", "hrtem-ood pairs --write"),
        (lambda p: p["aggregate"].update(exclude_from_std=["df7"]), "aggregate.exclude_from_std", "declared"),
        (lambda p: p["structures"].update(material="unobtainium"), "structures.material", "one of"),
    ],
)
def test_bad_params_name_key_and_problem(params, edit, key, problem):
    edit(params)
    with pytest.raises(ParamsError) as err:
        validate(params)
    msg = str(err.value)
    assert key in msg and problem in msg, msg


def test_cli_fails_before_any_work(tmp_path, params, monkeypatch, capsys):
    params["structures"]["n_val"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    rc = main(["structures", "--out", "data/structures"])
    assert rc == 2
    assert "structures.n_val" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_missing_params_file_is_named(tmp_path, capsys):
    rc = main(["--params", str(tmp_path / "absent.yaml"), "validate"])
    assert rc == 2 and "absent.yaml: file not found" in capsys.readouterr().err


def test_pairs_write_regenerates_grid(tmp_path, params, capsys):
    from hrtem_ood.params import load_params

    params["pretrain"]["domains"] = ["df0"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ParamsError):
        validate(load_params(path))
    assert main(["--params", str(path), "pairs", "--write"]) == 0
    fixed = load_params(path)
    validate(fixed)
    assert sorted(fixed["transfer"]["pairs"]) == ["df0-to-dfm10", "df0-to-dfp10"]


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "presets").glob("*.yaml")))
def test_every_preset_sets_existing_keys_to_valid_values(name):
    """A preset's `-S key=value` overrides must name keys params.yaml has (dvc exp run -S would add a
    misspelt key silently) and leave a params set that validates."""
    import copy
    import shlex

    from hrtem_ood.stages import preset_overrides

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    args = preset_overrides(name, REPO / "presets")
    assert args and args[::2] == ["-S"] * (len(args) // 2)
    merged = copy.deepcopy(base)
    for arg in args[1::2]:
        key, value = shlex.split(arg)[0].split("=", 1)
        *parents, leaf = key.split(".")
        node = merged
        for part in parents:
            assert part in node, f"presets/{name}.yaml: {key}: no such section in params.yaml"
            node = node[part]
        assert leaf in node, f"presets/{name}.yaml: {key}: no such key in params.yaml"
        node[leaf] = yaml.safe_load(value)
    validate(merged)
