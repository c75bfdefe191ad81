"""Long-form results tables (one row per model, evaluated domain and metric): reading and checking them, and where
a training grid writes them. Standard library only."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from hrtem_ood.errors import UserError

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


def grid_files(pretrain_domains: list[str], root: str | Path, suffix: str) -> dict[str, list[Path]]:
    """Per stage kind, the files ``<root>/<kind>/<domain><suffix>`` of a grid (``pretrain.domains``): one per
    pretraining domain, for its pretraining and for its row of transfers (never a glob: stale files of removed
    domains are ignored). Results, curves and timing tables are laid out alike."""
    root = Path(root)
    return {kind: [root / kind / f"{d}{suffix}" for d in pretrain_domains] for kind in ("pretrain", "transfer")}


def grid_result_files(pretrain_domains: list[str], results_dir: str | Path = "metrics/results") -> list[Path]:
    """The results tables of a grid (``pretrain.domains``)."""
    files = grid_files(pretrain_domains, results_dir, ".csv")
    return files["pretrain"] + files["transfer"]


def grid_timing_files(pretrain_domains: list[str], timing_dir: str | Path = "metrics/timing") -> list[Path]:
    """The timing tables of a grid (``pretrain.domains``), laid out as its results tables."""
    return grid_result_files(pretrain_domains, timing_dir)


def read_timing(paths: list[Path]) -> list[dict]:
    """The rows of timing tables (:data:`hrtem_ood.results.columns.TIMING_COLUMNS`: one per model, with its training
    seconds)."""
    rows = []
    for path in paths:
        try:
            with open(path, newline="") as fh:
                found = list(csv.DictReader(fh))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise ResultsError(f"{path}: cannot read timing table: {exc}") from exc
        for k, row in enumerate(found):
            if not {"run", "stage", "seconds"} <= set(row):
                raise ResultsError(f"{path}: row {k} lacks the run, stage or seconds column")
        rows.extend(found)
    return rows
