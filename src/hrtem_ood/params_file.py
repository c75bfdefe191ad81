"""Editing ``params.yaml`` in place for the user, through a round-trip YAML parser (ruamel.yaml): comments, key
order, flow style and quoting of everything not changed stay as the user wrote them. The edited params are
validated before anything is written, and the file is replaced atomically; a bad edit leaves it untouched."""

from __future__ import annotations

import io
import json
from pathlib import Path


def _round_trip():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.representer.add_representer(float, _represent_float)
    return yaml


def _represent_float(representer, value: float):
    """A new float written so that YAML 1.1 readers (PyYAML, which ``load_params`` uses) read a float too:
    ``1e-05`` would be a string there, ``1.0e-05`` is a float in both YAML 1.1 and 1.2."""
    if value != value or value in (float("inf"), float("-inf")):
        return representer.represent_float(value)
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _plain(node):
    """A ruamel node as plain dicts, lists and scalars (what ``yaml.safe_load`` gives)."""
    return json.loads(json.dumps(node, default=str))


def merge(base, over: dict, replace: set[str] = frozenset(), prefix: str = "") -> None:
    """Set every key of ``over`` in ``base``: nested mappings key by key, except the dotted keys in ``replace``
    and empty mappings, which replace the value whole."""
    for k, v in over.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and isinstance(base.get(k), dict) and key not in replace:
            merge(base[k], v, replace, f"{key}.")
        else:
            base[k] = v


def edit_params_file(path: str | Path, changes: dict, replace: set[str] = frozenset()) -> dict:
    """Merge ``changes`` into the params file at ``path`` (:func:`merge`), validate the result and write it back
    with its comments and key order. Returns the new params."""
    from .io import write_text
    from .params import ParamsError, validate

    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    yaml = _round_trip()
    try:
        doc = yaml.load(path.read_text())
    except Exception as exc:  # ruamel raises several parser and scanner errors
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(doc, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(doc).__name__}")
    merge(doc, changes, replace)
    params = _plain(doc)
    params["_source"] = f"{path} (edited)"
    validate(params)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    write_text(path, buf.getvalue())
    return params
