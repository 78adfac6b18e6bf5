"""In-process MOJO scoring through h2o-genmodel (the official runtime) and JPype.

The runtime is ``h2o-genmodel.jar``, which ships *inside* the h2o wheel at
``www/3/h2o-genmodel.jar`` within ``h2o/backend/bin/h2o.jar``. It is extracted
once into the cache directory (named with the h2o version) and put on the
classpath of a JVM that JPype starts inside this process, once. Everything
Java/JPype stays in this module: callers see :class:`MojoScorer`,
:class:`Prediction` and :class:`ModelLoadError` only.

Input semantics (mirroring ``EasyPredictModelWrapper`` with
``convertUnknownCategoricalLevelsToNa`` and ``convertInvalidNumbersToNa``):

* ``None``/NaN values, and columns absent from the row, are missing (NA).
* Numeric columns: ints/floats/bools/numpy scalars are passed as
  ``java.lang.Double`` (never ``Long``, which genmodel rejects); strings are
  handed to genmodel unchanged and parsed by it (``Double.parseDouble`` after
  ``trim``); unparseable strings, and values ``float()`` cannot convert,
  become NA.
* Categorical columns: strings are looked up in the training domain; a value
  never seen in training becomes NA (and is reported in
  ``Prediction.unknown_levels``). Non-string values are converted to the
  string H2O would have parsed (``3`` / ``3.0`` -> ``"3"``, ``True`` ->
  ``"True"``), since genmodel rejects non-string values for factor columns.
* Keys that are not model features are ignored (as genmodel does).
"""
from __future__ import annotations

import os
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kafka_plumbing import settings

__all__ = [
    "ModelLoadError",
    "ScoringError",
    "MojoScorer",
    "Prediction",
    "genmodel_jar",
    "ensure_jvm",
]

_GENMODEL_ENTRY = "www/3/h2o-genmodel.jar"
_JVM_ARGS = ("-Xmx512m", "-Xss4m", "-Djava.awt.headless=true")
_jvm_lock = threading.Lock()


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


# --------------------------------------------------------------------------- jar


def _h2o_jar() -> Path:
    import h2o  # imported lazily: importing h2o is slow and starts nothing

    jar = Path(h2o.__file__).resolve().parent / "backend" / "bin" / "h2o.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"h2o.jar not found in the h2o wheel at {jar}")
    return jar


def _h2o_version() -> str:
    import h2o

    return str(h2o.__version__)


def genmodel_jar(cache_dir: Path | None = None) -> Path:
    """Return the path of h2o-genmodel.jar, extracting it from the wheel once.

    Written to ``<cache_dir>/h2o-genmodel-<h2o version>.jar`` (default cache
    dir: ``settings.cache_dir / "h2o"``) through a temporary file and an
    atomic rename, so concurrent processes never see a partial jar.
    """
    if cache_dir is None:
        cache_dir = settings.load().cache_dir / "h2o"
    cache_dir = Path(cache_dir)
    target = cache_dir / f"h2o-genmodel-{_h2o_version()}.jar"
    if target.is_file() and target.stat().st_size > 0:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = _h2o_jar()
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(source) as outer:
            try:
                entry = outer.open(_GENMODEL_ENTRY)
            except KeyError as exc:
                raise FileNotFoundError(f"{_GENMODEL_ENTRY} not found inside {source}") from exc
            with entry:
                while chunk := entry.read(1 << 20):
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        zipfile.ZipFile(tmp_name).close()  # sanity: a readable jar
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


# --------------------------------------------------------------------------- JVM


class _Java:
    """Handles to the Java classes used, resolved once the JVM runs."""

    def __init__(self) -> None:
        import jpype

        self.JString = jpype.JString
        self.MojoModel = jpype.JClass("hex.genmodel.MojoModel")
        self.Wrapper = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")
        self.Config = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper$Config")
        self.RowData = jpype.JClass("hex.genmodel.easy.RowData")
        self.JException = jpype.JException


_java: _Java | None = None


def ensure_jvm(cache_dir: Path | None = None) -> None:
    """Start JPype's JVM (once per process) with h2o-genmodel on the classpath.

    Idempotent and guarded by a lock. If a JVM is already running (started by
    other code in this process), the genmodel jar is added to JPype's dynamic
    class loader with ``jpype.addClassPath``. Limitations of that case: the
    heap size and JVM options are whatever the other code chose; if the
    system classpath already holds another h2o-genmodel (or a full h2o.jar),
    those classes win over ours; and a JVM that was shut down cannot be
    restarted in the same process (a JPype/JNI restriction).
    """
    global _java
    if _java is not None:
        return
    with _jvm_lock:
        if _java is not None:
            return
        import jpype

        jar = genmodel_jar(cache_dir)
        if not jpype.isJVMStarted():
            jpype.startJVM(*_JVM_ARGS, classpath=[str(jar)], convertStrings=False)
        else:
            try:
                jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")
            except Exception:  # not visible yet: add the jar dynamically
                jpype.addClassPath(str(jar))
        _java = _Java()


def _jvm() -> _Java:
    # Threads other than the one that started the JVM are attached by JPype
    # automatically on their first Java call.
    ensure_jvm()
    assert _java is not None
    return _java


# --------------------------------------------------------------------------- scorer


def _level_string(value: Any) -> str:
    """The factor level H2O's parser would have produced for a non-string value."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (bytes, bytearray)):
        return value.decode()
    return str(value)


class MojoScorer:
    """A loaded MOJO wrapped in genmodel's ``EasyPredictModelWrapper``.

    Scoring is delegated to genmodel; Python only converts the row into a
    ``RowData`` and the prediction back. genmodel documents MOJO scoring as
    thread-safe and the wrapper allocates per call, so one instance can be
    shared by threads (JPype attaches each thread on its first Java call).
    """

    def __init__(self, path: Path, model: Any, wrapper: Any) -> None:
        java = _jvm()
        self.path = path
        self._model = model
        self._wrapper = wrapper
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

        # Per-column converters, precomputed so score() does one dict walk.
        self._numeric = [f for f in self._features if f not in self._levels]
        self._categorical = [f for f in self._features if f in self._levels]
        jstr = java.JString
        self._numeric_keys = [(f, jstr(f)) for f in self._numeric]
        # Level lookup mirrors RowToRawDataConverter: the level itself, then
        # "<column>.<level>"; values map to the java String genmodel expects.
        self._categorical_keys = []
        for f in self._categorical:
            jlevels = {lvl: jstr(lvl) for lvl in self._levels[f]}
            prefix = f + "."
            for lvl in self._levels[f]:
                if lvl.startswith(prefix):
                    jlevels.setdefault(lvl[len(prefix):], jlevels[lvl])
            self._categorical_keys.append((f, jstr(f), jlevels))
        self._java = java
        predict = {
            "Binomial": wrapper.predictBinomial,
            "Multinomial": wrapper.predictMultinomial,
            "Regression": wrapper.predictRegression,
        }.get(self._category)
        if predict is None:
            raise ModelLoadError(
                f"{path}: model category {self._category!r} is not supported "
                "(Binomial, Multinomial and Regression are)"
            )
        self._predict = predict

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
        java = _jvm()
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

    def _row_data(self, row: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        # Per-row cost is dominated by Python->Java calls (~1-2 us each), so:
        # keys and known levels are pre-converted java Strings, Python floats
        # are boxed to java.lang.Double by JPype in the put() call itself, and
        # unknown levels are skipped here (genmodel would turn them into NA).
        rd = self._java.RowData()
        put = rd.put
        unknown: dict[str, int] = {}
        get = row.get
        for name, jname in self._numeric_keys:
            v = get(name)
            if v is None:
                continue
            if isinstance(v, str):
                put(jname, v)  # genmodel parses it (trim; unparseable -> NA)
                continue
            try:
                f = float(v)  # int, bool, numpy scalar, Decimal ...
            except (TypeError, ValueError):
                continue  # not a number: missing, as genmodel's invalid-number rule
            if f == f:  # NaN stays missing
                put(jname, f)  # Python float -> java.lang.Double (never Long)
        for name, jname, jlevels in self._categorical_keys:
            v = get(name)
            if v is None:
                continue
            if isinstance(v, str):
                jlevel = jlevels.get(v)
            elif isinstance(v, float) and v != v:
                continue
            else:
                v = _level_string(v)
                jlevel = jlevels.get(v)
            if jlevel is None:
                unknown[name] = 1
                continue
            put(jname, jlevel)
        return rd, unknown

    def score(self, row: dict[str, Any]) -> Prediction:
        """Score one row (a mapping of column name -> value)."""
        rd, unknown = self._row_data(row)
        try:
            p = self._predict(rd)
        except self._java.JException as exc:
            raise ScoringError(f"genmodel failed to score row: {exc}") from exc
        if self._labels is None:  # regression
            return Prediction(None, None, float(p.value), unknown)
        # labelIndex indexes the response domain exactly as p.label does;
        # memoryview reads the double[] in one call instead of per element.
        return Prediction(
            self._labels[p.labelIndex], memoryview(p.classProbabilities).tolist(), None, unknown
        )

    def score_many(self, rows: Iterable[dict[str, Any]]) -> list[Prediction]:
        """Score rows one by one (genmodel has no batch RowData API)."""
        return [self.score(row) for row in rows]


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
