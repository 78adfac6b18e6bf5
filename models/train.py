"""Train an H2O GBM from a point-in-time training set and publish it to the registry.

The caller builds the training frame (by replay, see tables/) and hands over a
pandas DataFrame; everything from there on lives here:

    frame ──split by time──▶ train / holdout ──H2O GBM──▶ MOJO + metrics
          ──baselines (drift)──▶ metadata.json ──report/──▶ Registry.publish

Determinism: the GBM seed is fixed (``TrainConfig.seed``) and the split is a
pure function of the frame. H2O GBM with ``nthreads > 1`` is still not
guaranteed to be bit-for-bit reproducible (histogram building and tree
scoring are parallel, floating-point reductions can reorder), so two runs on
the same data can differ in the last digits of the metrics; use
``nthreads=1`` when exact reproducibility matters more than speed.

Offline: H2O is started from the jar inside the pinned wheel (h2o==3.46.0.11,
the last open-source release that exports MOJOs), bound to 127.0.0.1, with a
unique cluster name (so we never attach to someone else's cluster on 54321),
``ignore_config=True`` (no ~/.h2oconfig redirect) and no proxy for localhost.
The bundled jar sends no telemetry; the client's "version is old" notice is a
local date check and is swallowed.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from models import report as report_mod
from models.registry import ModelVersion, Registry, RegistryError, validate_mojo, validate_name

LABEL_LEVELS = ["0", "1"]


class TrainError(ValueError):
    """The training request cannot be carried out (bad frame, bad config, failed H2O job).

    The message is meant to be shown to a person as is."""


@dataclass
class TrainConfig:
    name: str
    label: str
    time_column: str
    numeric_features: list[str] = field(default_factory=list)
    categorical_features: list[str] = field(default_factory=list)
    # feature column -> feature view it comes from; columns not listed are raw
    # event fields (recorded with view=None, view_version=None).
    feature_views: dict[str, str] = field(default_factory=dict)
    # evaluation: nfolds >= 2 -> k-fold cross-validation on all rows (random
    # folds, seeded); otherwise a time-based holdout: the last
    # `holdout_fraction` of rows by time (ties at the cut go to the holdout).
    holdout_fraction: float = 0.2
    nfolds: int = 0
    # H2O GBM
    ntrees: int = 50
    max_depth: int = 5
    learn_rate: float = 0.1
    seed: int = 42
    gbm_params: dict[str, Any] = field(default_factory=dict)  # any other H2OGradientBoostingEstimator params
    # H2O cluster (only used when this process starts one)
    nthreads: int = 2
    max_mem_size: str = "2G"
    # baselines
    baseline_bins: int = 10
    baseline_top_k: int = 20
    reference_rows: int = 10  # holdout rows stored with H2O's own p1, for MOJO parity checks

    @property
    def features(self) -> list[str]:
        return list(self.numeric_features) + list(self.categorical_features)

    @property
    def evaluation(self) -> str:
        return "xval" if self.nfolds and self.nfolds >= 2 else "holdout"


# ------------------------------------------------------------------ H2O life
@contextlib.contextmanager
def h2o_session(nthreads: int = 2, max_mem_size: str = "2G") -> Iterator[bool]:
    """Use the H2O cluster this process is already connected to, or start a
    private local one and shut it down on exit. Yields True if it started one.

    A cluster the caller started (``h2o.init`` / ``h2o.connect`` before this)
    is reused and left running.
    """
    import h2o

    conn = h2o.connection()
    if conn is not None and conn.connected and h2o.cluster() is not None and h2o.cluster().is_running():
        h2o.no_progress()
        yield False
        return

    ice_root = tempfile.mkdtemp(prefix="featurestream-h2o-")
    name = f"featurestream-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            h2o.init(
                nthreads=nthreads,
                max_mem_size=max_mem_size,
                name=name,
                ice_root=ice_root,
                bind_to_localhost=True,
                ignore_config=True,
                verbose=False,
            )
    except Exception as exc:
        shutil.rmtree(ice_root, ignore_errors=True)
        raise TrainError(f"could not start a local H2O server (Java 8-17 needed on PATH): {exc}") from exc
    h2o.no_progress()
    local = h2o.connection().local_server
    try:
        yield True
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                h2o.cluster().shutdown()
            except Exception:
                pass
            if local is not None:
                local.shutdown()
                if getattr(local, "_tempdir", None):
                    shutil.rmtree(local._tempdir, ignore_errors=True)
        shutil.rmtree(ice_root, ignore_errors=True)


# --------------------------------------------------------------- progress
class _Steps:
    """Rich progress on stderr (stdout stays clean for the CLI), or nothing."""

    def __init__(self, enabled: bool, steps: list[str]):
        self.enabled = enabled
        self.steps = steps
        self._progress = None
        self._overall = None

    def __enter__(self) -> "_Steps":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._overall = self._progress.add_task("train", total=len(self.steps))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            if exc[0] is None:
                self._progress.update(self._overall, description="train: done")
            self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def step(self, name: str, total: float | None = 1.0) -> Iterator[Any]:
        if self._progress is None:
            yield lambda fraction: None
            return
        self._progress.update(self._overall, description=f"train: {name}")
        task = self._progress.add_task(f"  {name}", total=total)

        def update(fraction: float) -> None:
            self._progress.update(task, completed=fraction * (total or 1.0))

        yield update
        self._progress.update(task, completed=total or 1.0, total=total or 1.0)
        self._progress.advance(self._overall)


# ------------------------------------------------------------ data helpers
def _to_utc(s: pd.Series, column: str) -> pd.Series:
    """Datetime (naive = UTC, or tz-aware), ISO strings, or epoch milliseconds."""
    try:
        if pd.api.types.is_datetime64_any_dtype(s):
            return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        if pd.api.types.is_numeric_dtype(s):
            return pd.to_datetime(s, unit="ms", utc=True)
        return pd.to_datetime(s, utc=True)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"time column {column!r} cannot be read as UTC timestamps: {exc}") from exc


def _label_to_01(s: pd.Series, column: str) -> pd.Series:
    """Bool, 0/1 numbers, or '0'/'1'/'true'/'false' strings -> int8 0/1 (nulls kept as NA)."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("Int8")
    if pd.api.types.is_numeric_dtype(s):
        bad = s.dropna()[~s.dropna().isin([0, 1])]
        if len(bad):
            raise TrainError(f"label column {column!r} must be binary 0/1; found e.g. {bad.iloc[0]!r}")
        return s.astype("Int8")
    mapping = {"0": 0, "1": 1, "false": 0, "true": 1}
    norm = s.astype("string").str.strip().str.lower()
    bad = norm.dropna()[~norm.dropna().isin(list(mapping))]
    if len(bad):
        raise TrainError(f"label column {column!r} must be binary (0/1 or true/false); found e.g. {bad.iloc[0]!r}")
    return norm.map(mapping, na_action="ignore").astype("Int8")


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _finite_or_none(x: Any) -> Any:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    return f if math.isfinite(f) else None


def numeric_baseline(s: pd.Series, bins: int = 10) -> dict[str, Any]:
    """Quantile-based histogram: up to `bins` bins whose edges are training
    quantiles (duplicates merged). Bins are [e_i, e_i+1), the last one closed;
    for drift, values outside [edges[0], edges[-1]] belong to the outer bins."""
    x = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
    nulls = int(np.isnan(x).sum())
    finite = x[np.isfinite(x)]
    nonfinite = int(len(x) - nulls - len(finite))
    out: dict[str, Any] = {
        "type": "numeric",
        "count": int(len(finite)),
        "null_count": nulls,
        "nonfinite_count": nonfinite,
    }
    if len(finite) == 0:
        out.update(edges=[], counts=[], min=None, max=None, mean=None, std=None, median=None)
        return out
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        edges_l = [float(edges[0]), float(edges[0])]
        counts = [int(len(finite))]
    else:
        c, _ = np.histogram(finite, bins=edges)
        edges_l = [float(e) for e in edges]
        counts = [int(v) for v in c]
    out.update(
        edges=edges_l,
        counts=counts,
        min=float(finite.min()),
        max=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
        median=float(np.median(finite)),
    )
    return out


def categorical_baseline(s: pd.Series, top_k: int = 20) -> dict[str, Any]:
    """Top-k level frequencies; the rest lumped into other_count."""
    nulls = int(s.isna().sum())
    vc = s.dropna().astype(str).value_counts(sort=True)
    vc = vc.sort_index(kind="mergesort").sort_values(ascending=False, kind="mergesort")  # ties: by level name
    top = vc.iloc[:top_k]
    return {
        "type": "categorical",
        "count": int(vc.sum()),
        "null_count": nulls,
        "distinct": int(len(vc)),
        "top_levels": [{"value": str(k), "count": int(v)} for k, v in top.items()],
        "other_count": int(vc.iloc[top_k:].sum()),
    }


def _json_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        f = float(v)
        return f if math.isfinite(f) else None
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _metrics(perf: Any) -> dict[str, Any]:
    mj = perf._metric_json
    out: dict[str, Any] = {
        "auc": _finite_or_none(mj.get("AUC")),
        "logloss": _finite_or_none(mj.get("logloss")),
        "pr_auc": _finite_or_none(mj.get("pr_auc")),
        "rmse": _finite_or_none(mj.get("RMSE")),
        "mean_per_class_error": _finite_or_none(mj.get("mean_per_class_error")),
        "nobs": int(mj.get("nobs") or 0),
    }
    try:
        f1 = perf.F1()  # [[threshold, f1]] at the max-F1 threshold
        out["max_f1_threshold"] = _finite_or_none(f1[0][0])
        out["max_f1"] = _finite_or_none(f1[0][1])
    except Exception:  # pragma: no cover - metric table missing
        pass
    return out


def _upload(h2o: Any, df: pd.DataFrame, types: dict[str, str], key: str) -> Any:
    """CSV (float repr round-trips exactly) with explicit column types."""
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="featurestream-train-")
    os.close(fd)
    try:
        df.to_csv(path, index=False, na_rep="")
        return h2o.upload_file(path, destination_frame=key, header=1, col_types=types)
    finally:
        os.remove(path)


# -------------------------------------------------------------------- train
def _validate(frame: pd.DataFrame, config: TrainConfig, feature_versions: dict[str, int]) -> None:
    validate_name(config.name)
    if not isinstance(frame, pd.DataFrame):
        raise TrainError("the training set must be a pandas DataFrame")
    feats = config.features
    if not feats:
        raise TrainError("no features: give numeric_features and/or categorical_features")
    dup = {f for f in feats if feats.count(f) > 1}
    if dup:
        raise TrainError(f"features listed twice (numeric and categorical?): {sorted(dup)}")
    for special, what in [(config.label, "label"), (config.time_column, "time column")]:
        if special in feats:
            raise TrainError(f"the {what} {special!r} cannot also be a feature")
    missing = [c for c in feats + [config.label, config.time_column] if c not in frame.columns]
    if missing:
        raise TrainError(f"training set lacks columns {missing}; it has {list(frame.columns)}")
    for c in config.numeric_features:
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])):
            raise TrainError(f"numeric feature {c!r} has dtype {frame[c].dtype}; declare it categorical or convert it")
    unknown = [f for f in config.feature_views if f not in feats]
    if unknown:
        raise TrainError(f"feature_views names columns that are not features: {unknown}")
    no_version = sorted({v for v in config.feature_views.values() if v not in feature_versions})
    if no_version:
        raise TrainError(f"no version given for feature views {no_version} (feature_versions has {sorted(feature_versions)})")
    if not 0.0 < config.holdout_fraction < 1.0 and config.evaluation == "holdout":
        raise TrainError(f"holdout_fraction must be between 0 and 1, got {config.holdout_fraction}")
    if config.nfolds == 1 or config.nfolds < 0:
        raise TrainError(f"nfolds must be 0 (time holdout) or >= 2, got {config.nfolds}")


def train(
    frame: pd.DataFrame,
    config: TrainConfig,
    registry: Registry,
    feature_versions: dict[str, int],
    extra_metadata: dict[str, Any] | None = None,
    progress: bool = True,
    keep_model: bool = False,
) -> ModelVersion:
    """Train a binomial H2O GBM on `frame` and publish it as the next version of
    `config.name` in `registry`. `feature_versions` maps feature view name ->
    view version (views referenced through `config.feature_views`).
    Returns the published :class:`ModelVersion`."""
    _validate(frame, config, feature_versions)
    feats = config.features
    t0 = time.monotonic()

    # ---- prepare (pandas) ----
    df = frame[feats + [config.label, config.time_column]].copy()
    df["__time"] = _to_utc(df[config.time_column], config.time_column)
    if df["__time"].isna().any():
        raise TrainError(f"time column {config.time_column!r} has {int(df['__time'].isna().sum())} null values")
    y = _label_to_01(df[config.label], config.label)
    dropped = int(y.isna().sum())
    df = df.loc[y.notna()].copy()
    df["__y"] = y[y.notna()].astype(int)
    if len(df) < 20:
        raise TrainError(f"only {len(df)} labelled rows: too few to train")
    for c in config.numeric_features:
        df[c] = pd.to_numeric(df[c]).astype("float64")
    for c in config.categorical_features:
        df[c] = df[c].astype("object").where(df[c].notna(), None).map(lambda v: v if v is None else str(v))

    # ---- split ----
    df = df.sort_values("__time", kind="mergesort")  # stable: ties keep frame order
    n = len(df)
    if config.evaluation == "holdout":
        n_hold = max(1, int(math.ceil(n * config.holdout_fraction)))
        cutoff = df["__time"].iloc[n - n_hold]
        train_df = df[df["__time"] < cutoff]
        hold_df = df[df["__time"] >= cutoff]
        if len(train_df) == 0:
            raise TrainError(
                f"time-based holdout impossible: every row shares the cut time {_iso(cutoff)}; use nfolds instead"
            )
        for part, what in [(train_df, "training part"), (hold_df, "holdout")]:
            if part["__y"].nunique() < 2:
                raise TrainError(
                    f"the {what} has only label {int(part['__y'].iloc[0])}: AUC needs both classes "
                    "(more data, another holdout_fraction, or nfolds)"
                )
    else:
        cutoff = None
        train_df, hold_df = df, df.iloc[0:0]
        if df["__y"].nunique() < 2:
            raise TrainError(f"every row has label {int(df['__y'].iloc[0])}: need both classes to train")
        if n < config.nfolds:
            raise TrainError(f"nfolds={config.nfolds} but only {n} rows")

    baselines: dict[str, Any] = {}
    for c in config.numeric_features:
        baselines[c] = numeric_baseline(train_df[c], config.baseline_bins)
    for c in config.categorical_features:
        baselines[c] = categorical_baseline(train_df[c], config.baseline_top_k)

    steps = ["start H2O", "upload frame", "train GBM", "evaluate", "export MOJO", "report", "publish"]
    import h2o
    from h2o.estimators import H2OGradientBoostingEstimator

    types = {c: "real" for c in config.numeric_features}
    types.update({c: "enum" for c in config.categorical_features})
    types[config.label] = "enum"

    def h2o_part(part: pd.DataFrame) -> pd.DataFrame:
        out = part[feats].copy()
        out[config.label] = part["__y"].astype(str)
        return out

    with _Steps(progress, steps) as ui, tempfile.TemporaryDirectory(prefix="featurestream-train-") as tmp:
        tmp_path = Path(tmp)
        with ui.step("start H2O"):
            session = h2o_session(config.nthreads, config.max_mem_size)
            started = session.__enter__()
        created_keys: list[str] = []
        kept: str | None = None
        try:
            run = uuid.uuid4().hex[:8]
            with ui.step("upload frame", total=2.0) as upd:
                train_key = f"fs_{config.name}_train_{run}".replace("-", "_").replace(".", "_")
                hf_train = _upload(h2o, h2o_part(train_df), types, train_key)
                created_keys.append(hf_train.frame_id)
                upd(1.0)
                hf_hold = None
                if len(hold_df):
                    hf_hold = _upload(h2o, h2o_part(hold_df), types, train_key.replace("_train_", "_holdout_"))
                    created_keys.append(hf_hold.frame_id)
                upd(2.0)
            levels = hf_train[config.label].levels()[0]
            if levels != LABEL_LEVELS:
                raise TrainError(f"label levels after upload are {levels}, expected {LABEL_LEVELS}")

            params: dict[str, Any] = dict(
                ntrees=config.ntrees,
                max_depth=config.max_depth,
                learn_rate=config.learn_rate,
                seed=config.seed,
                distribution="bernoulli",
                model_id=f"fs_{config.name}_gbm_{run}".replace("-", "_").replace(".", "_"),
            )
            if config.evaluation == "xval":
                params.update(nfolds=config.nfolds, fold_assignment="Random", keep_cross_validation_predictions=False)
            params.update(config.gbm_params)
            model = H2OGradientBoostingEstimator(**params)
            with ui.step("train GBM", total=100.0) as upd:
                model.start(x=feats, y=config.label, training_frame=hf_train, validation_frame=hf_hold)
                job_key = model._job.job_key
                while True:
                    job = h2o.api(f"GET /3/Jobs/{job_key}")["jobs"][0]
                    upd(100.0 * float(job.get("progress") or 0.0))
                    if job["status"] in {"DONE", "FAILED", "CANCELLED"}:
                        break
                    time.sleep(0.2)
                try:
                    model.join()
                except Exception as exc:
                    raise TrainError(f"H2O GBM training failed: {exc}") from exc
            created_keys.append(model.model_id)
            kept = model.model_id if keep_model else None

            with ui.step("evaluate"):
                train_metrics = _metrics(model.model_performance(train=True))
                reference: list[dict[str, Any]] = []
                if config.evaluation == "holdout":
                    eval_perf = model.model_performance(valid=True)
                    pred = model.predict(hf_hold)
                    created_keys.append(pred.frame_id)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # "single-thread conversion" hint
                        p1 = np.asarray(pred["p1"].as_data_frame(use_pandas=True)["p1"], dtype=float)
                    labels = hold_df["__y"].to_numpy()
                    fpr, tpr, _thr = report_mod.roc_curve(labels, p1)
                    eval_metrics = _metrics(eval_perf)
                    eval_metrics["auc_exact"] = report_mod.auc_from_roc(fpr, tpr)
                    for i in range(min(config.reference_rows, len(hold_df))):
                        row = hold_df.iloc[i]
                        reference.append(
                            {"row": {c: _json_value(row[c]) for c in feats}, "label": int(row["__y"]), "p1": float(p1[i])}
                        )
                else:
                    eval_perf = model.model_performance(xval=True)
                    eval_metrics = _metrics(eval_perf)
                    fpr = np.r_[0.0, np.asarray(eval_perf.fprs, dtype=float), 1.0]
                    tpr = np.r_[0.0, np.asarray(eval_perf.tprs, dtype=float), 1.0]
                    order = np.lexsort((tpr, fpr))
                    fpr, tpr = fpr[order], tpr[order]
                if eval_metrics.get("auc") is None:
                    raise TrainError(f"{config.evaluation} AUC is undefined (one class only?)")
                varimp = [
                    {"variable": v, "relative_importance": float(ri), "scaled_importance": float(si), "percentage": float(pc)}
                    for v, ri, si, pc in (model.varimp() or [])
                ]

            with ui.step("export MOJO"):
                mojo_dir = tmp_path / "mojo"
                mojo_dir.mkdir()
                mojo_file = Path(model.download_mojo(path=str(mojo_dir), get_genmodel_jar=False))
                try:
                    mojo_info = validate_mojo(mojo_file)
                except RegistryError as exc:
                    raise TrainError(f"H2O exported an unusable MOJO: {exc}") from exc

            version = registry.next_version(config.name)
            h2o_version = h2o.cluster().version
            feat_meta = []
            for c in feats:
                view = config.feature_views.get(c)
                feat_meta.append(
                    {
                        "name": c,
                        "type": "numeric" if c in config.numeric_features else "categorical",
                        "view": view,
                        "view_version": int(feature_versions[view]) if view else None,
                    }
                )
            positives = int(df["__y"].sum())
            metadata: dict[str, Any] = {
                "name": config.name,
                "version": version,
                "algo": "gbm",
                "task": "binomial",
                "h2o_version": h2o_version,
                "mojo": {k: mojo_info.get(k) for k in ("algorithm", "h2o_version", "mojo_version", "category", "n_features", "n_classes") if k in mojo_info},
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "label": config.label,
                "label_levels": LABEL_LEVELS,
                "positive_class": "1",
                "features": feat_meta,
                "feature_views": {v: int(feature_versions[v]) for v in sorted(set(config.feature_views.values()))},
                "training_window": {
                    "time_column": config.time_column,
                    "start": _iso(df["__time"].iloc[0]),
                    "end": _iso(df["__time"].iloc[-1]),
                    "train_start": _iso(train_df["__time"].iloc[0]),
                    "train_end": _iso(train_df["__time"].iloc[-1]),
                    "holdout_start": _iso(hold_df["__time"].iloc[0]) if len(hold_df) else None,
                    "holdout_end": _iso(hold_df["__time"].iloc[-1]) if len(hold_df) else None,
                },
                "row_counts": {
                    "total": int(n),
                    "train": int(len(train_df)),
                    "holdout": int(len(hold_df)),
                    "positives": positives,
                    "train_positives": int(train_df["__y"].sum()),
                    "holdout_positives": int(hold_df["__y"].sum()),
                    "dropped_null_label": dropped,
                },
                "metrics": {
                    "evaluation": config.evaluation,
                    "nfolds": config.nfolds if config.evaluation == "xval" else None,
                    "train": train_metrics,
                    config.evaluation: eval_metrics,
                },
                "params": {k: v for k, v in params.items() if k != "model_id"},
                "h2o_model_id": model.model_id,
                "h2o_cluster": {"nthreads": config.nthreads, "max_mem_size": config.max_mem_size, "started_here": started},
                "baselines": baselines,
                "variable_importances": varimp,
                "reference_predictions": reference,
                "training_seconds": None,
            }
            if extra_metadata:
                metadata.update(extra_metadata)

            with ui.step("report"):
                report_dir = tmp_path / "report"
                report_mod.write_report(report_dir, metadata, fpr, tpr)

            with ui.step("publish"):
                metadata["training_seconds"] = round(time.monotonic() - t0, 2)
                published = registry.publish(config.name, mojo_file, metadata, report_dir, version=version)
        finally:
            if not started:  # leave the caller's cluster as we found it
                # (keep_model: the caller wants the H2O model itself, e.g. to compare
                # its own predict with the MOJO's; it is "h2o_model_id" in the metadata)
                for key in [k for k in created_keys if k != kept]:
                    with contextlib.suppress(Exception):
                        h2o.remove(key, cascade=True)
            session.__exit__(None, None, None)
    return published
