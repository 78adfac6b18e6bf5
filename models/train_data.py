"""Training stages 1 and 2, in pandas only: check and clean the frame, then split it by time.

``prepare`` keeps the labelled rows with a UTC time (``__time``) and a 0/1
label (``__y``); ``split`` orders them by time (stable: ties keep frame order)
and cuts the time-based holdout, or keeps every row for cross-validation. The
split is a pure function of the frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from models.registry import validate_name
from models.train_config import TrainConfig, TrainError

__all__ = ["PreparedFrame", "SplitFrames", "iso", "prepare", "split", "validate"]


@dataclass(frozen=True)
class PreparedFrame:
    rows: pd.DataFrame  # features, label, time column, __time (UTC), __y (0/1): labelled rows only
    dropped_null_label: int


@dataclass(frozen=True)
class SplitFrames:
    rows: pd.DataFrame  # every labelled row, ordered by time
    train: pd.DataFrame
    holdout: pd.DataFrame  # empty for cross-validation
    dropped_null_label: int


def iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").isoformat().replace("+00:00", "Z")


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


def validate(frame: pd.DataFrame, config: TrainConfig, feature_versions: dict[str, int]) -> None:
    """Refuse a request that cannot be trained, before any work is done."""
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


def prepare(frame: pd.DataFrame, config: TrainConfig) -> PreparedFrame:
    """The validated frame's labelled rows, with typed feature columns."""
    feats = config.features
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
    return PreparedFrame(df, dropped)


def split(prepared: PreparedFrame, config: TrainConfig) -> SplitFrames:
    """Time-based holdout (the last ``holdout_fraction`` of rows by time, ties
    at the cut to the holdout), or every row for cross-validation."""
    df = prepared.rows.sort_values("__time", kind="mergesort")  # stable: ties keep frame order
    n = len(df)
    if config.evaluation == "holdout":
        n_hold = max(1, int(math.ceil(n * config.holdout_fraction)))
        cutoff = df["__time"].iloc[n - n_hold]
        train_df = df[df["__time"] < cutoff]
        hold_df = df[df["__time"] >= cutoff]
        if len(train_df) == 0:
            raise TrainError(
                f"time-based holdout impossible: every row shares the cut time {iso(cutoff)}; use nfolds instead"
            )
        for part, what in [(train_df, "training part"), (hold_df, "holdout")]:
            if part["__y"].nunique() < 2:
                raise TrainError(
                    f"the {what} has only label {int(part['__y'].iloc[0])}: AUC needs both classes "
                    "(more data, another holdout_fraction, or nfolds)"
                )
    else:
        train_df, hold_df = df, df.iloc[0:0]
        if df["__y"].nunique() < 2:
            raise TrainError(f"every row has label {int(df['__y'].iloc[0])}: need both classes to train")
        if n < config.nfolds:
            raise TrainError(f"nfolds={config.nfolds} but only {n} rows")
    return SplitFrames(df, train_df, hold_df, prepared.dropped_null_label)
