"""Rows (mappings of column -> value) to the flat arrays the batch scorer takes.

Pure Python and numpy, no Java: this is where the input rules of
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

Columns are encoded one at a time; a column holding only the common types
(numbers and None, or strings and None) takes a vectorised path, any other
column the general one, with the same result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["EncodedBatch", "RowEncoder", "level_string"]

MISSING = -1  # categorical code: not put into the row (NA)
_UNKNOWN = -2  # categorical code before it is reported and turned into MISSING
_PLAIN_NUMBERS = frozenset({float, int, bool, type(None)})
_PLAIN_LEVELS = frozenset({str, type(None)})


@dataclass(frozen=True)
class EncodedBatch:
    """``n_rows`` rows, row-major. ``numeric[r * n_numeric + c]`` is NaN when
    missing or when the value is a string, which is then ``texts[i]`` at
    ``text_cells[i]`` (ascending); ``categorical[r * n_categorical + c]`` is a
    level index or ``MISSING``."""

    n_rows: int
    numeric: np.ndarray  # float64
    text_cells: list[int]
    texts: list[str]
    categorical: np.ndarray  # int32
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
        n = len(rows)
        numeric = np.empty((n, len(self.numeric)), dtype=np.float64)
        cells: list[tuple[int, str]] = []
        for c, name in enumerate(self.numeric):
            numeric[:, c] = self._numeric_column([row.get(name) for row in rows], c, cells)
        categorical = np.empty((n, len(self.categorical)), dtype=np.int32)
        unknown: list[dict[str, int]] = [{} for _ in range(n)]
        for c, name in enumerate(self.categorical):
            codes = self._level_codes([row.get(name) for row in rows], self._index[name])
            for r in np.flatnonzero(codes == _UNKNOWN).tolist():
                unknown[r][name] = 1
            codes[codes == _UNKNOWN] = MISSING
            categorical[:, c] = codes
        cells.sort()
        return EncodedBatch(
            n_rows=n,
            numeric=numeric.ravel(),
            text_cells=[cell for cell, _ in cells],
            texts=[text for _, text in cells],
            categorical=categorical.ravel(),
            unknown_levels=unknown,
        )

    def _numeric_column(self, values: list[Any], c: int, cells: list[tuple[int, str]]) -> np.ndarray:
        if _PLAIN_NUMBERS.issuperset(map(type, values)):
            return np.array(values, dtype=np.float64)  # None -> NaN, as float() of the rest
        width = len(self.numeric)
        out = np.empty(len(values), dtype=np.float64)
        for r, v in enumerate(values):
            if v is None:
                out[r] = math.nan
            elif isinstance(v, str):
                out[r] = math.nan
                cells.append((r * width + c, v))  # genmodel parses it (trim; unparseable -> NA)
            else:
                out[r] = _number(v)
        return out

    @staticmethod
    def _level_codes(values: list[Any], index: dict[str, int]) -> np.ndarray:
        if _PLAIN_LEVELS.issuperset(map(type, values)):
            get = index.get
            return np.array([MISSING if v is None else get(v, _UNKNOWN) for v in values], dtype=np.int32)
        out = np.empty(len(values), dtype=np.int32)
        for r, v in enumerate(values):
            if v is None or (isinstance(v, float) and v != v):
                out[r] = MISSING
            elif isinstance(v, str):
                out[r] = index.get(v, _UNKNOWN)
            else:
                out[r] = index.get(level_string(v), _UNKNOWN)
        return out
