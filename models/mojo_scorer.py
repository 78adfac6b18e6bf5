"""In-process MOJO scoring through h2o-genmodel (the official runtime) and JPype.

The JVM, the genmodel jar and our batch helper are set up by
:mod:`models.genmodel_runtime`; the input rules (missing values, numeric
strings, unknown levels) are those of :mod:`models.row_encoding`. Callers see
:class:`MojoScorer`, :class:`Prediction`, :class:`ModelLoadError` and
:class:`ScoringError` only.

Scoring is batched: :meth:`MojoScorer.score_many` encodes the rows into flat
arrays in Python and makes ONE call into Java, where the helper builds each
row's ``RowData`` and calls the same ``EasyPredictModelWrapper`` method a
per-row caller would, so the values are genmodel's own. :meth:`MojoScorer.score`
is a batch of one.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from models.genmodel_runtime import jvm
from models.row_encoding import RowEncoder

__all__ = ["ModelLoadError", "ScoringError", "MojoScorer", "Prediction"]


class ModelLoadError(Exception):
    """The file cannot be loaded as an H2O MOJO (missing, corrupt, not a MOJO)."""


class ScoringError(Exception):
    """genmodel refused a row (e.g. a value of a type it cannot convert)."""


@dataclass(frozen=True)
class Prediction:
    """One scored row.

    * Binomial/Multinomial: ``label`` and ``probabilities`` (ordered as
      :attr:`MojoScorer.labels`), ``value`` is None.
    * Regression: ``value``; ``label`` and ``probabilities`` are None.
    * ``unknown_levels``: categorical columns whose value was not in the
      training domain and was scored as NA, each counted once (summing over
      rows gives genmodel's ``CountingErrorConsumer`` totals).
    """

    label: str | None
    probabilities: list[float] | None
    value: float | None
    unknown_levels: dict[str, int] = field(default_factory=dict)


class MojoScorer:
    """A loaded MOJO wrapped in genmodel's ``EasyPredictModelWrapper``.

    genmodel documents MOJO scoring as thread-safe, the wrapper allocates per
    call and the batch helper is immutable, so one instance can be shared by
    threads (JPype attaches each thread on its first Java call).
    """

    def __init__(self, path: Path, model: Any, wrapper: Any) -> None:
        java = jvm()
        self.path = path
        self._category = str(model.getModelCategory().toString())
        self._uuid = _opt_str(model.getUUID())
        self._algo = _opt_str(getattr(model, "_algoName", None))
        self._writer_version = _opt_str(getattr(model, "_h2oVersion", None))
        self._response = _opt_str(model.getResponseName())

        # With a non-default categorical_encoding the model's own names are the
        # encoded columns; RowData is keyed by the original ones.
        names, domains = model.getOrigNames(), model.getOrigDomainValues()
        if names is None:
            names, domains = model.getNames()[: int(model.nfeatures())], model.getDomainValues()
        excluded = {self._response, _opt_str(model.getOffsetName())} - {None}
        self._features: list[str] = []
        self._levels: dict[str, list[str]] = {}
        for i, jname in enumerate(names):
            name = str(jname)
            if name in excluded:
                continue
            self._features.append(name)
            dom = domains[i] if domains is not None else None
            if dom is not None:
                self._levels[name] = [str(v) for v in dom]

        labels = wrapper.getResponseDomainValues()
        self._labels = [str(v) for v in labels] if labels is not None else None

        kind = {
            "Binomial": java.BatchScorer.BINOMIAL,
            "Multinomial": java.BatchScorer.MULTINOMIAL,
            "Regression": java.BatchScorer.REGRESSION,
        }.get(self._category)
        if kind is None:
            raise ModelLoadError(
                f"{path}: model category {self._category!r} is not supported "
                "(Binomial, Multinomial and Regression are)"
            )
        numeric = [f for f in self._features if f not in self._levels]
        self._encoder = RowEncoder(numeric, self._levels)
        categorical = self._encoder.categorical
        self._batch = java.BatchScorer(
            wrapper,
            java.string_array(numeric),
            java.string_array(categorical),
            java.string_matrix([java.string_array(self._levels[f]) for f in categorical]),
            kind,
            len(self._labels or ()),
        )
        self._width = int(self._batch.width())
        self._java = java

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: Path | str) -> MojoScorer:
        """Load a MOJO zip (as written by ``model.download_mojo``)."""
        path = Path(path)
        if not path.exists():
            raise ModelLoadError(f"MOJO file not found: {path}")
        if not path.is_file():
            raise ModelLoadError(f"MOJO path is not a file: {path}")
        try:
            with zipfile.ZipFile(path) as zf:
                entries = set(zf.namelist())
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ModelLoadError(f"not a valid zip archive (corrupt MOJO?): {path}: {exc}") from exc
        if bad is not None:
            raise ModelLoadError(f"corrupt MOJO zip: {path}: bad CRC in entry {bad!r}")
        if "model.ini" not in entries:
            raise ModelLoadError(
                f"not an H2O MOJO: {path} is a zip archive but has no model.ini "
                f"(entries: {sorted(entries)[:5]}{'...' if len(entries) > 5 else ''})"
            )
        java = jvm()
        try:
            model = java.MojoModel.load(str(path.resolve()))
            config = (
                java.Config()
                .setModel(model)
                .setConvertUnknownCategoricalLevelsToNa(True)
                .setConvertInvalidNumbersToNa(True)
            )
            wrapper = java.Wrapper(config)
        except java.JException as exc:
            raise ModelLoadError(f"h2o-genmodel cannot load MOJO {path}: {exc}") from exc
        return cls(path, model, wrapper)

    # ---------------------------------------------------------------- metadata

    @property
    def feature_names(self) -> list[str]:
        """Input columns in model order (response, offset excluded)."""
        return list(self._features)

    @property
    def categorical_levels(self) -> dict[str, list[str]]:
        """Training domain of each categorical input column."""
        return {k: list(v) for k, v in self._levels.items()}

    @property
    def model_category(self) -> str:
        return self._category

    @property
    def labels(self) -> list[str] | None:
        """Response domain (class order of ``Prediction.probabilities``)."""
        return list(self._labels) if self._labels is not None else None

    @property
    def response_name(self) -> str | None:
        return self._response

    @property
    def uuid(self) -> str | None:
        return self._uuid

    @property
    def algo(self) -> str | None:
        return self._algo

    @property
    def h2o_version(self) -> str | None:
        """Version of H2O that wrote the MOJO."""
        return self._writer_version

    def __repr__(self) -> str:
        return (
            f"MojoScorer(path={str(self.path)!r}, algo={self._algo!r}, "
            f"category={self._category!r}, features={len(self._features)})"
        )

    # ---------------------------------------------------------------- scoring

    def score(self, row: Mapping[str, Any]) -> Prediction:
        """Score one row (a mapping of column name -> value)."""
        return self.score_many([row])[0]

    def score_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Prediction]:
        """Score rows in one call into genmodel; predictions in row order."""
        batch_rows: Sequence[Mapping[str, Any]] = rows if isinstance(rows, Sequence) else list(rows)
        if not batch_rows:
            return []
        batch = self._encoder.encode(batch_rows)
        java = self._java
        try:
            out = self._batch.score(
                batch.n_rows,
                java.double_array(batch.numeric),
                java.int_array(batch.text_cells),
                java.string_array(batch.texts),
                java.int_array(batch.categorical),
            )
        except java.JException as exc:
            raise ScoringError(f"genmodel failed to score row: {exc}") from exc
        # one copy of the whole double[] instead of a Java call per element
        flat = memoryview(out).tolist()
        unknown = batch.unknown_levels
        width = self._width
        if self._labels is None:  # regression
            return [Prediction(None, None, v, u) for v, u in zip(flat, unknown)]
        # labelIndex indexes the response domain exactly as genmodel's label does
        labels = self._labels
        return [
            Prediction(labels[int(flat[at])], flat[at + 1:at + width], None, u)
            for at, u in zip(range(0, len(flat), width), unknown)
        ]


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
