"""Long-form results tables (one row per model, evaluated domain and metric): reading and checking them, and where
a training grid writes them. Standard library only."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .errors import UserError

REQUIRED_COLUMNS = ("run", "stage", "pretrain_domain", "target_domain", "eval_domain", "metric", "value")


class ResultsError(UserError):
    """A results table is unreadable or lacks what aggregation needs; the message names the file."""


def read_results(path: str | Path, text: str | None = None) -> list[dict]:
    """Rows of a long-form results table (CSV, JSON list of rows, or Parquet), checked.

    ``text``: the table's contents when they do not come from the file system (e.g. a file of a dvc
    experiment, read with ``dvc.api.read``); ``path`` then only names it and gives the format.
    """
    path = Path(path)
    if text is None and not path.is_file():
        raise ResultsError(f"{path}: results table not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            if text is None:
                with open(path, newline="") as fh:
                    rows = list(csv.DictReader(fh))
            else:
                rows = list(csv.DictReader(io.StringIO(text)))
        elif suffix == ".json":
            data = json.loads(path.read_text() if text is None else text)
            rows = data["rows"] if isinstance(data, dict) and "rows" in data else data
        elif suffix in (".parquet", ".pq") and text is None:
            try:
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise ResultsError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
            rows = pq.read_table(path).to_pylist()
        else:
            raise ResultsError(f"{path}: unsupported results format {suffix!r} (use .csv, .json or .parquet)")
    except (OSError, json.JSONDecodeError, csv.Error, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results table: {exc}") from exc
    if not isinstance(rows, list):
        raise ResultsError(f"{path}: expected a list of row objects")
    for k, row in enumerate(rows):
        missing = [c for c in REQUIRED_COLUMNS if c not in row]
        if missing:
            raise ResultsError(f"{path}: row {k} lacks columns {missing}")
        try:
            row["value"] = float(row["value"])
        except (TypeError, ValueError) as exc:
            raise ResultsError(f"{path}: row {k}: value {row['value']!r} is not a number") from exc
        if not math.isfinite(row["value"]):
            raise ResultsError(f"{path}: row {k}: value is not finite")
    return rows


def grid_files(params: dict, root: str | Path, suffix: str) -> dict[str, list[Path]]:
    """Per stage kind, the files ``<root>/<kind>/<domain><suffix>`` of the current grid: one per pretraining
    domain, for its pretraining and for its row of transfers (never a glob: stale files of removed domains
    are ignored)."""
    root = Path(root)
    return {kind: [root / kind / f"{d}{suffix}" for d in params["pretrain"]["domains"]]
            for kind in ("pretrain", "transfer")}


def grid_result_files(params: dict, results_dir: str | Path = "metrics/results") -> list[Path]:
    """The results tables of the current grid."""
    files = grid_files(params, results_dir, ".csv")
    return files["pretrain"] + files["transfer"]
