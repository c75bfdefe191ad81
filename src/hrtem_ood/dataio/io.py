"""Atomic file output, small JSON/CSV helpers and stable hashing. No heavy imports."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _fresh_sibling(path: Path, is_dir: bool) -> Path:
    """Create an empty, uniquely named hidden sibling of ``path`` with the modes a plain create gives
    (0666 or 0777 less the umask; ``tempfile``'s 0600 and 0700 would hide outputs from a group)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            if is_dir:
                tmp.mkdir(0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path}: no free temporary name beside it after 100 tries")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``.

    On any exception the temporary file or folder is removed and ``path`` is left as it
    was, so an interrupted stage never leaves a half-written output that DVC would accept.
    The output gets the permissions of a plain create under the process's umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_sibling(path, is_dir)
    try:
        yield tmp
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically, keys in insertion order, stable formatting."""
    write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, rows: Iterable[dict], columns: list[str]) -> None:
    """Write rows (dicts) as CSV with the given column order, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row[c] for c in columns})


def _plain(obj: Any):
    return obj.model_dump() if hasattr(obj, "model_dump") else str(obj)


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON form of ``obj`` (first 16 hex digits); a typed params section counts as its
    fields (``model_dump``)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_plain).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def derive_seed(*parts: int | str) -> int:
    """A 32-bit seed derived deterministically from a base seed and labels.

    Used so that, e.g., the noise of scene 7 in domain ``dfm10`` is the same whatever other
    scenes or domains exist and in whatever order or on whichever worker they are made.
    """
    blob = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")
