"""Invalid params fail before any work, with a message naming the key and the problem."""

import pytest
import yaml
from conftest import REPO

from hrtem_ood.cli import main
from hrtem_ood.config.domains import transfer_pairs
from hrtem_ood.config.params import ParamsError, validate


def test_valid_default_and_tiny_params(params):
    from conftest import REPO

    from hrtem_ood.config.params import load_params

    validate(load_params(REPO / "params.yaml"))
    validate(params)
    # 5 pretraining rows x (10 other simulated domains + the real micrographs)
    assert len(transfer_pairs(validate(load_params(REPO / "params.yaml")))) == 55


@pytest.mark.parametrize(
    "edit, key, problem",
    [
        (lambda p: p.update(domains={}), "domains", "at least 1 item"),
        (lambda p: p["pretrain"].update(domains=["dfm10", "nope"]), "pretrain.domains", "unknown domain 'nope'"),
        (lambda p: p["structures"].update(n_train=-3), "structures.n_train", "greater than or equal to 1"),
        (lambda p: p["structures"]["particles"].update(diameter_A=[30.0, -1.0]), "structures.particles.diameter_A.1",
         "greater than or equal to 5"),
        (lambda p: p["structures"]["particles"].update(count=[3, 1]), "structures.particles.count", "min must not"),
        (lambda p: p["simulate"].update(output_sampling_A=0.8), "simulate.output_sampling_A", "too coarse"),
        (lambda p: p["simulate"].update(output_sampling_A=0.25), "simulate.output_sampling_A", "integer multiple"),
        (lambda p: p["imaging"].update(dose_e_per_A2=0), "imaging.dose_e_per_A2", "greater than 0"),
        (lambda p: p["domains"]["df0"].update(dose_e_per_A2=-5.0), "domains.df0.dose_e_per_A2", "greater than 0"),
        (lambda p: p["domains"]["df0"].update(defocus_mm=3), "domains.df0.defocus_mm", "did you mean defocus_nm?"),
        (lambda p: p["imaging"].update(aperture_mrad=0.0), "imaging.aperture_mrad", "greater than 0"),
        (lambda p: p["domains"]["df0"].update(aperture_mrad="wide"), "domains.df0.aperture_mrad", "'wide'"),
        (lambda p: p["simulate"]["calibration"].update(q_max_per_A=-0.3), "simulate.calibration.q_max_per_A",
         "greater than 0"),
        (lambda p: p["train"].update(crop_px=100), "train.crop_px", "multiple of 32"),
        (lambda p: p["train"].update(crop_px=256), "train.crop_px", "larger than the simulated images (160 px)"),
        (lambda p: p["train"].update(amp=1), "train.amp", "valid boolean"),
        (lambda p: p["train"].update(seeds=[0, 0]), "train.seeds", "duplicate"),
        (lambda p: p["transfer"].update(freeze="all"), "transfer.freeze", "'none', 'encoder' or 'decoder'"),
        (lambda p: p["transfer"].update(pairs={"a-to-b": {"pretrain": "a", "target": "b"}}), "transfer.pairs",
         "no longer a param"),
        (lambda p: p["aggregate"].update(exclude_from_std=["df7"]), "aggregate.exclude_from_std", "declared"),
        (lambda p: p.setdefault("labels", {}).update(datasets=["df0"]), "labels.datasets",
         "ingested datasets with masks, got 'df0'"),
        (lambda p: p.setdefault("labels", {}).update(starts=["best", "median"]), "labels.starts.1", "'median'"),
        (lambda p: p.setdefault("labels", {}).update(n_micrographs=[1, 1]), "labels.n_micrographs", "duplicate"),
        # the six typos that used to validate silently
        (lambda p: p["pretrain"].update(epoch=5), "pretrain.epoch", "unknown key; did you mean epochs?"),
        (lambda p: p["train"].update(batchsize=5), "train.batchsize", "unknown key; did you mean batch_size?"),
        (lambda p: p.update(trainning={"seeds": [0]}), "trainning", "unknown key; did you mean train?"),
        (lambda p: p["transfer"].update(n_images=4), "transfer.n_images", "structures.n_train = 3"),
        (lambda p: p["pretrain"].update(n_images=9), "pretrain.n_images", "structures.n_train = 3"),
        (lambda p: p["aggregate"].update(filters={"freez": ["none"]}), "aggregate.filters.freez",
         "not a results column, so it would drop every row; did you mean freeze?"),
    ],
)
def test_bad_params_name_key_and_problem(params, edit, key, problem):
    edit(params)
    with pytest.raises(ParamsError) as err:
        validate(params)
    msg = str(err.value)
    assert msg.startswith(f"params.yaml: {key}: ") and problem in msg and "\n" not in msg, msg


BAD_FOR_STAGES = [
    (lambda p: p["pretrain"].update(epoch=5), "pretrain.epoch: unknown key; did you mean epochs?"),
    (lambda p: p["train"].update(batchsize=5), "train.batchsize: unknown key; did you mean batch_size?"),
    (lambda p: p.update(extra_section={}), "extra_section: unknown key"),
    (lambda p: p["model"].update(encoder="resnet999"), "model.encoder: unknown timm model 'resnet999'; did you mean"),
    (lambda p: p["transfer"].update(n_images=50), "transfer.n_images: 50 images asked for"),
    (lambda p: p["aggregate"].update(filters={"freez": ["none"]}), "aggregate.filters.freez: not a results column"),
    (lambda p: p["structures"].update(material="CdSe-wurtzit"), "structures.material: unknown material "
                                                                "'CdSe-wurtzit'; did you mean CdSe-wurtzite?"),
]


@pytest.mark.parametrize("edit, message", BAD_FOR_STAGES)
def test_validate_command_names_file_key_and_problem_in_one_line(tmp_path, params, edit, message, monkeypatch,
                                                                 capsys):
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hrtem-ood validate: error: params.yaml: {message}"), err
    assert "\n" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


@pytest.mark.parametrize("stage, args", [("structures", ["--out", "data/structures"]),
                                         ("pretrain", ["--domain", "dfm10", "--domains-dir", "data/domains",
                                                       "--models-out", "m", "--results-out", "r.csv",
                                                       "--curves-out", "c.json", "--timing-out", "t"])])
def test_stages_fail_before_any_work(tmp_path, params, monkeypatch, capsys, stage, args):
    params["model"]["encoder"] = "resnet999"  # checked by the training stages
    params["structures"]["material"] = "unobtainium"  # checked by the structures stage
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert main([stage, *args]) == 2
    err = capsys.readouterr().err
    assert ("structures.material" if stage == "structures" else "model.encoder") in err
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


def test_internal_errors_keep_their_traceback(tmp_path, params, monkeypatch):
    """Only user errors become one line: a bug (here a ValueError inside a stage) propagates."""
    import hrtem_ood.stages.structures as stage

    def broken(*_):
        raise ValueError("a bug")

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stage, "write_structures", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["structures", "--out", "data/structures"])


def test_schema_file_is_current_and_referenced():
    from hrtem_ood.config.schema import SCHEMA_FILE, schema_text

    assert (REPO / SCHEMA_FILE).read_text() == schema_text(), "run `hrtem-ood schema --write`"
    first = (REPO / "params.yaml").read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE}"
    import json

    schema = json.loads(schema_text())
    assert schema["additionalProperties"] is False
    assert "description" in schema["$defs"]["Imaging"]["properties"]["dose_e_per_A2"]


def test_missing_params_file_is_named(tmp_path, capsys):
    rc = main(["--params", str(tmp_path / "absent.yaml"), "validate"])
    assert rc == 2 and "absent.yaml: file not found" in capsys.readouterr().err


def test_the_transfer_grid_follows_the_domains_with_no_edit(params):
    """The pairs are derived: listing a pretraining domain (or a labelled dataset) is the whole edit."""
    from hrtem_ood.execution.grid import transfer_targets

    params["pretrain"]["domains"] = ["df0"]
    typed = validate(params)
    assert sorted(transfer_pairs(typed)) == ["df0-to-dfm10", "df0-to-dfp10"]
    assert transfer_targets(typed, "df0") == ["dfm10", "dfp10"]
    with pytest.raises(ParamsError, match="pretrain.domains: 'dfm10' is not a pretraining domain"):
        transfer_targets(typed, "dfm10")


@pytest.mark.parametrize("name", sorted(p.relative_to(REPO / "presets").with_suffix("").as_posix()
                                         for p in (REPO / "presets").rglob("*.yaml")))
def test_every_preset_sets_existing_keys_to_valid_values(name):
    """A preset's `-S key=value` overrides must name keys params.yaml has (dvc exp run -S would add a
    misspelt key silently) and leave a params set that validates; a preset that replaces sections whole
    (``_replace``) validates once applied, and refuses to print -S overrides."""
    import copy
    import shlex

    from hrtem_ood.config.presets import needs_apply, preset_overrides, preset_params, read_preset
    from hrtem_ood.errors import UserError

    applied = preset_params(name, REPO / "params.yaml", REPO / "presets")
    if needs_apply(read_preset(name, REPO / "presets")):
        with pytest.raises(UserError, match="--apply"):
            preset_overrides(name, REPO / "presets")
        return
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
    assert applied.model_dump() == validate(merged).model_dump()  # --apply gives the same params


@pytest.mark.parametrize("name", ["paper", "dose", "structures", "phenomenon5"])
@pytest.mark.parametrize("layout", ["as committed", "safe_dump, sorted keys"])
def test_preset_apply_edits_in_place_keeping_comments_and_key_order(tmp_path, capsys, name, layout):
    """`preset --apply` goes through the round-trip editor: the params it writes are those of `preset_params`,
    and the file keeps its comments and its own key order (also a file another tool wrote in another order,
    where text surgery once put keys under the wrong section)."""
    from hrtem_ood.config.presets import apply_preset, preset_params, read_preset

    original = (REPO / "params.yaml").read_text()
    if layout != "as committed":
        original = yaml.safe_dump(yaml.safe_load(original), sort_keys=True)
    path = tmp_path / "params.yaml"
    path.write_text(original)
    expected = preset_params(name, path, REPO / "presets").model_dump()
    apply_preset(name, path, REPO / "presets")
    text = path.read_text()
    assert validate(yaml.safe_load(text)).model_dump() == expected
    assert list(yaml.safe_load(text)) == list(yaml.safe_load(original))  # section order as the file had it
    preset = read_preset(name, REPO / "presets")
    replaced = set(preset.get("_replace", []))

    def empty_maps(node, prefix=""):  # an empty mapping replaces the value whole
        for k, v in node.items():
            if isinstance(v, dict):
                yield from ([f"{prefix}{k}"] if not v else empty_maps(v, f"{prefix}{k}."))

    replaced |= set(empty_maps(preset))
    stack, kept = [], []  # (indent, key) of the lines above, to name each line's dotted key
    for line in original.splitlines():
        body = line.split("#")[0]
        if body.strip() and ":" in body:
            indent = len(body) - len(body.lstrip())
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, body.strip().split(":")[0])]
        path = ".".join(k for _, k in stack)
        if "#" in line and not any(path == r or path.startswith(r + ".") for r in replaced):
            kept.append(line[line.index("#"):].strip())  # a replaced value's comments go with it
    assert all(comment in text for comment in kept)
    if layout == "as committed":
        assert text.startswith("# yaml-language-server: $schema=params.schema.json")


def test_preset_apply_refuses_an_invalid_result_and_leaves_the_file(tmp_path):
    from hrtem_ood.config.params import ParamsError
    from hrtem_ood.config.presets import apply_preset

    path = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text().replace("  epochs: 60", "  epochs: 0")  # invalid before the preset
    path.write_text(text)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets/x.yaml").write_text("transfer: {epochs: 3}\n")
    with pytest.raises(ParamsError, match="pretrain.epochs"):
        apply_preset("x", path, tmp_path / "presets")
    assert path.read_text() == text
