"""Rows (mappings of column -> value) to the flat arrays the batch scorer takes.

Pure Python, no Java: this is where the input rules of
:mod:`models.mojo_scorer` live (they mirror genmodel's
``EasyPredictModelWrapper`` with ``convertUnknownCategoricalLevelsToNa`` and
``convertInvalidNumbersToNa``):

* ``None``/NaN values, and columns absent from the row, are missing (NA).
* Numeric columns: ints/floats/bools/numpy scalars become float64 (never
  ``Long``, which genmodel rejects); strings are handed to genmodel unchanged
  and parsed by it (``Double.parseDouble`` after ``trim``), so Java's parsing
  rules, not Python's, decide; unparseable strings, and values ``float()``
  cannot convert, become NA.
* Categorical columns: strings are looked up in the training domain (the
  level itself, then ``"<column>.<level>"`` as genmodel does); a value never
  seen in training becomes NA and is reported in ``unknown_levels``.
  Non-string values are converted to the string H2O would have parsed
  (``3`` / ``3.0`` -> ``"3"``, ``True`` -> ``"True"``).
* Keys that are not model features are ignored (as genmodel does).

It is a plain loop over rows and columns, no numpy: a batch of one (the
per-row path) costs a few microseconds, and a big batch about a microsecond
per row, far below genmodel's own time per row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["EncodedBatch", "RowEncoder", "level_string"]

MISSING = -1  # categorical code: not put into the row (NA)
_NAN = math.nan


@dataclass(frozen=True)
class EncodedBatch:
    """``n_rows`` rows, row-major. ``numeric[r * n_numeric + c]`` is NaN when
    missing or when the value is a string, which is then ``texts[i]`` at
    ``text_cells[i]`` (ascending); ``categorical[r * n_categorical + c]`` is a
    level index or ``MISSING``."""

    n_rows: int
    numeric: list[float]
    text_cells: list[int]
    texts: list[str]
    categorical: list[int]
    unknown_levels: list[dict[str, int]]


def level_string(value: Any) -> str:
    """The factor level H2O's parser would have produced for a non-string value."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (bytes, bytearray)):
        return value.decode()
    return str(value)


def _number(value: Any) -> float:
    try:
        return float(value)  # int, bool, numpy scalar, Decimal ...
    except (TypeError, ValueError):
        return math.nan  # not a number: missing, as genmodel's invalid-number rule


class RowEncoder:
    """Encodes rows for one model's numeric and categorical input columns."""

    def __init__(self, numeric: Sequence[str], levels: Mapping[str, Sequence[str]]) -> None:
        self.numeric = list(numeric)
        self.categorical = list(levels)
        self._index: dict[str, dict[str, int]] = {}
        for name, domain in levels.items():
            index = {level: i for i, level in enumerate(domain)}
            prefix = name + "."
            for i, level in enumerate(domain):
                if level.startswith(prefix):
                    index.setdefault(level[len(prefix):], i)
            self._index[name] = index

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> EncodedBatch:
        numeric: list[float] = []
        add_number = numeric.append
        text_cells: list[int] = []
        texts: list[str] = []
        categorical: list[int] = []
        add_code = categorical.append
        unknown_levels: list[dict[str, int]] = []
        columns = [(name, self._index[name]) for name in self.categorical]
        for row in rows:
            get = row.get
            for name in self.numeric:
                v = get(name)
                kind = type(v)
                if kind is float:
                    add_number(v)  # NaN stays NaN: missing
                elif v is None:
                    add_number(_NAN)
                elif isinstance(v, str):
                    text_cells.append(len(numeric))
                    texts.append(v)  # genmodel parses it (trim; unparseable -> NA)
                    add_number(_NAN)
                else:
                    add_number(_number(v))
            unknown: dict[str, int] = {}
            for name, index in columns:
                v = get(name)
                if v is None or (isinstance(v, float) and v != v):
                    add_code(MISSING)
                    continue
                code = index.get(v if isinstance(v, str) else level_string(v))
                if code is None:
                    unknown[name] = 1
                    code = MISSING
                add_code(code)
            unknown_levels.append(unknown)
        return EncodedBatch(len(unknown_levels), numeric, text_cells, texts, categorical, unknown_levels)
