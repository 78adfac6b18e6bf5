"""Training stage 5: the MOJO file and the metadata a version is published with.

The metadata JSON is the registry's record of a version (see
docs/ and :mod:`models.registry`): feature list with view versions, training
window, row counts, metrics, parameters, drift baselines, variable
importances and reference predictions.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from models.baselines import numeric_baseline
from models.registry import RegistryError, validate_mojo
from models.train_config import LABEL_LEVELS, TrainConfig, TrainError
from models.train_data import SplitFrames, iso
from models.train_evaluate import Evaluation
from models.train_fit import Fitted

__all__ = ["RunInfo", "build_metadata", "export_mojo"]

_MOJO_INFO_KEYS = ("algorithm", "h2o_version", "mojo_version", "category", "n_features", "n_classes")


def export_mojo(model: Any, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Download the model's MOJO into ``out_dir`` (created) and check it: (file, model.ini facts)."""
    out_dir.mkdir()
    mojo_file = Path(model.download_mojo(path=str(out_dir), get_genmodel_jar=False))
    try:
        return mojo_file, validate_mojo(mojo_file)
    except RegistryError as exc:
        raise TrainError(f"H2O exported an unusable MOJO: {exc}") from exc


@dataclass(frozen=True)
class RunInfo:
    """Facts of the run that are not in the data: the version it becomes, and the cluster."""

    version: int
    h2o_version: str
    started_cluster: bool  # this run started (and stopped) its own H2O cluster


def _features(config: TrainConfig, feature_versions: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for c in config.features:
        view = config.feature_views.get(c)
        out.append(
            {
                "name": c,
                "type": "numeric" if c in config.numeric_features else "categorical",
                "view": view,
                "view_version": int(feature_versions[view]) if view else None,
            }
        )
    return out


def build_metadata(
    config: TrainConfig,
    feature_versions: dict[str, int],
    parts: SplitFrames,
    baselines: dict[str, Any],
    fitted: Fitted,
    evaluation: Evaluation,
    mojo_info: dict[str, Any],
    run: RunInfo,
    extra_metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """The version's metadata; ``training_seconds`` is filled in at publish time."""
    df, train_df, hold_df = parts.rows, parts.train, parts.holdout
    metadata: dict[str, Any] = {
        "name": config.name,
        "version": run.version,
        "algo": "gbm",
        "task": "binomial",
        "h2o_version": run.h2o_version,
        "mojo": {k: mojo_info.get(k) for k in _MOJO_INFO_KEYS if k in mojo_info},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "label": config.label,
        "label_levels": LABEL_LEVELS,
        "positive_class": "1",
        "features": _features(config, feature_versions),
        "feature_views": {v: int(feature_versions[v]) for v in sorted(set(config.feature_views.values()))},
        "training_window": {
            "time_column": config.time_column,
            "start": iso(df["__time"].iloc[0]),
            "end": iso(df["__time"].iloc[-1]),
            "train_start": iso(train_df["__time"].iloc[0]),
            "train_end": iso(train_df["__time"].iloc[-1]),
            "holdout_start": iso(hold_df["__time"].iloc[0]) if len(hold_df) else None,
            "holdout_end": iso(hold_df["__time"].iloc[-1]) if len(hold_df) else None,
        },
        "row_counts": {
            "total": int(len(df)),
            "train": int(len(train_df)),
            "holdout": int(len(hold_df)),
            "positives": int(df["__y"].sum()),
            "train_positives": int(train_df["__y"].sum()),
            "holdout_positives": int(hold_df["__y"].sum()),
            "dropped_null_label": parts.dropped_null_label,
        },
        "metrics": {
            "evaluation": config.evaluation,
            "nfolds": config.nfolds if config.evaluation == "xval" else None,
            "train": evaluation.train_metrics,
            config.evaluation: evaluation.eval_metrics,
        },
        "params": {k: v for k, v in fitted.params.items() if k != "model_id"},
        "h2o_model_id": fitted.model.model_id,
        "h2o_cluster": {"nthreads": config.nthreads, "max_mem_size": config.max_mem_size, "started_here": run.started_cluster},
        "baselines": baselines,
        # the score on rows the model never saw, binned as an input is: drift of the score itself
        "score_baseline": (numeric_baseline(pd.Series(evaluation.holdout_p1), config.baseline_bins)
                           if evaluation.holdout_p1 is not None else None),
        "variable_importances": evaluation.varimp,
        "reference_predictions": evaluation.reference,
        "training_seconds": None,
    }
    if extra_metadata:
        metadata.update(extra_metadata)
    return metadata
