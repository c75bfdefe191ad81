"""Editing params for the user: ``hrtem-ood preset`` (a preset as ``dvc exp run -S`` overrides) and
``hrtem-ood pairs`` (the transfer grid, printed or rewritten in place)."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .io import write_text
from .params import ParamsError, expected_pairs


def preset_overrides(name: str, presets_dir: str | Path = "presets") -> list[str]:
    """``-S key=value`` arguments (shell-quoted) that apply ``presets/<name>.yaml`` with ``dvc exp run``."""
    import shlex

    import yaml

    path = Path(presets_dir) / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.relative_to(presets_dir).with_suffix("").as_posix()
                           for p in Path(presets_dir).rglob("*.yaml"))
        raise UserError(f"{path}: no such preset (available: {available})")
    out: list[str] = []

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            value = yaml.safe_dump(node, default_flow_style=True).strip().removesuffix("\n...").strip()
            out.extend(["-S", shlex.quote(f"{prefix}={value}")])

    walk(yaml.safe_load(path.read_text()) or {}, "")
    return out


def with_expected_pairs(params: dict) -> dict:
    """A copy of ``params`` whose ``transfer.pairs`` is the grid ``hrtem-ood pairs --write`` would write, so
    the rest of the file can be validated before it is rewritten."""
    try:
        pairs = expected_pairs(params)
    except (KeyError, TypeError):  # a missing section: validation names it
        return params
    return {**params, "transfer": {**params.get("transfer", {}), "pairs": pairs}}


def run_pairs(params: dict, params_path: str | Path, write: bool = False) -> None:
    """Print the expected transfer pairs, or rewrite ``transfer.pairs`` in the params file in place
    (only that block; comments elsewhere are kept)."""
    pairs = expected_pairs(params)
    block = "".join(f"    {k}: {{pretrain: {v['pretrain']}, target: {v['target']}}}\n" for k, v in pairs.items())
    if not write:
        print(block, end="")
        return
    text = Path(params_path).read_text()
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() in ("  pairs:", "  pairs: {}"))
    except StopIteration as exc:
        raise ParamsError(f"{params_path}: transfer.pairs: no '  pairs:' line to rewrite") from exc
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    lines[start:end] = ["  pairs:\n", block]
    write_text(params_path, "".join(lines))
    print(f"{params_path}: wrote {len(pairs)} transfer pairs")
