"""Editing params for the user: ``hrtem-ood preset`` (a preset as ``dvc exp run -S`` overrides, or applied to
``params.yaml``).

A preset (``presets/<name>.yaml``) holds the keys it changes. Sections it names under ``_replace`` (such as
``domains`` for a series of its own domains) replace the params' sections whole; every other key is set
one by one. ``dvc exp run -S`` can set keys but not drop a section's other keys, so such a preset is applied
with ``--apply`` instead.
"""

from __future__ import annotations

from pathlib import Path

from hrtem_ood.errors import UserError


def read_preset(name: str, presets_dir: str | Path = "presets") -> dict:
    import yaml

    path = Path(presets_dir) / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.relative_to(presets_dir).with_suffix("").as_posix()
                           for p in Path(presets_dir).rglob("*.yaml"))
        raise UserError(f"{path}: no such preset (available: {available})")
    return yaml.safe_load(path.read_text()) or {}


def needs_apply(preset: dict) -> str | None:
    """Why a preset cannot be given as ``-S`` overrides (None if it can): it replaces sections whole."""
    if preset.get("_replace"):
        return f"it replaces {preset['_replace']} whole"
    return None


def preset_params(name: str, params_path: str | Path = "params.yaml", presets_dir: str | Path = "presets"):
    """The params of ``params_path`` with the preset applied (its ``_replace`` sections whole, every other key
    one by one), validated: the typed :class:`hrtem_ood.config.schema.Params`."""
    from hrtem_ood.config.params import load_params, validate
    from hrtem_ood.config.params_file import merge

    preset = read_preset(name, presets_dir)
    params = load_params(params_path)
    replace = set(preset.pop("_replace", []))

    merge(params, preset, replace)
    params["_source"] = f"{params_path} + presets/{name}.yaml"
    return validate(params)


def apply_preset(name: str, params_path: str | Path = "params.yaml", presets_dir: str | Path = "presets") -> None:
    """Apply the preset to ``params_path`` in place (:func:`hrtem_ood.config.params_file.edit_params_file`: comments and
    key order kept, validated first, written atomically), ready for ``dvc exp run -n <name>``."""
    from hrtem_ood.config.params_file import edit_params_file

    preset = read_preset(name, presets_dir)
    replace = set(preset.pop("_replace", []))
    edit_params_file(params_path, preset, replace)
    print(f"{params_path}: applied presets/{name}.yaml; now: dvc exp run -n {name}")


def preset_overrides(name: str, presets_dir: str | Path = "presets") -> list[str]:
    """``-S key=value`` arguments (shell-quoted) that apply ``presets/<name>.yaml`` with ``dvc exp run``."""
    import shlex

    import yaml

    preset = read_preset(name, presets_dir)
    why = needs_apply(preset)
    if why:
        raise UserError(f"presets/{name}.yaml: {why}, which `dvc exp run -S` cannot do; apply it with "
                        f"`hrtem-ood preset {name} --apply && dvc exp run -n {name}`")
    out: list[str] = []

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            value = yaml.safe_dump(node, default_flow_style=True).strip().removesuffix("\n...").strip()
            out.extend(["-S", shlex.quote(f"{prefix}={value}")])

    walk(preset, "")
    return out
