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
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
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


def _styled_like(value, old, siblings):
    """A new list or mapping in flow style (``[a, b]``, ``{k: v}``) where the value it replaces, or else its
    siblings, are written so."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def flow(node) -> bool:
        return isinstance(node, CommentedMap | CommentedSeq) and bool(node.fa.flow_style())

    if not isinstance(value, dict | list):
        return value
    if not (flow(old) if old is not None else any(flow(v) for v in siblings)):
        return value
    node = CommentedMap(value) if isinstance(value, dict) else CommentedSeq(value)
    node.fa.set_flow_style()
    return node


def merge(base, over: dict, replace: set[str] = frozenset(), prefix: str = "") -> None:
    """Set every key of ``over`` in ``base``: nested mappings key by key, except the dotted keys in ``replace``
    and empty mappings, which replace the value whole. A new list or mapping keeps the flow style of what it
    replaces (or of its siblings)."""
    for k, v in over.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and isinstance(base.get(k), dict) and key not in replace:
            merge(base[k], v, replace, f"{key}.")
        else:
            base[k] = _styled_like(v, base.get(k), list(base.values()))


def edit_params_file(path: str | Path, changes: dict, replace: set[str] = frozenset()):
    """Merge ``changes`` into the params file at ``path`` (:func:`merge`), validate the result and write it back
    with its comments and key order. Returns the new params, typed."""
    from hrtem_ood.config.params import ParamsError, validate
    from hrtem_ood.dataio.io import write_text

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
    typed = validate(params)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    write_text(path, buf.getvalue())
    return typed
