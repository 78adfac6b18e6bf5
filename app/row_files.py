"""Rows to and from files: Parquet or JSON Lines, chosen by the extension."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = (".parquet", ".jsonl", ".json")


def check_path(path: Path) -> None:
    if path.suffix not in FORMATS:
        raise ValueError(f"{path}: use a .parquet or .jsonl file")


def write_rows(path: Path, rows: Iterable[dict[str, Any]], columns: list[str]) -> int:
    """Write rows with every column in ``columns`` order; returns the row count."""
    check_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        data = list(rows)
        table = pa.Table.from_pylist(data) if data else pa.table({c: pa.array([], pa.null()) for c in columns})
        table = table.select([c for c in columns if c in table.column_names])
        pq.write_table(table, path)
        return len(data)
    count = 0
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps({c: row.get(c) for c in columns}) + "\n")
            count += 1
    return count


def read_rows(path: Path) -> list[dict[str, Any]]:
    check_path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
