"""Training stage 4: metrics of the fitted GBM on its training part and on the
holdout (or cross-validation), the ROC curve, reference predictions and
variable importances."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models import report as report_mod
from models.train_config import TrainConfig, TrainError
from models.train_data import SplitFrames
from models.train_fit import Fitted

__all__ = ["Evaluation", "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    train_metrics: dict[str, Any]
    eval_metrics: dict[str, Any]  # on the holdout, or cross-validated
    fpr: np.ndarray  # ROC curve of the evaluation
    tpr: np.ndarray
    reference: list[dict[str, Any]]  # holdout rows with H2O's own p1, for MOJO parity checks
    varimp: list[dict[str, Any]]
    # H2O's p1 on the holdout: the score's baseline for drift (None under cross-validation)
    holdout_p1: np.ndarray | None = None


def _finite_or_none(x: Any) -> Any:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    return f if math.isfinite(f) else None


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


def evaluate(fitted: Fitted, parts: SplitFrames, config: TrainConfig, created_keys: list[str]) -> Evaluation:
    """Evaluate on the holdout (exact ROC from H2O's own predictions) or take
    H2O's cross-validation metrics. The prediction frame made for the holdout
    is appended to ``created_keys``."""
    model = fitted.model
    feats = config.features
    train_metrics = _metrics(model.model_performance(train=True))
    reference: list[dict[str, Any]] = []
    p1: np.ndarray | None = None
    if config.evaluation == "holdout":
        hold_df = parts.holdout
        eval_perf = model.model_performance(valid=True)
        pred = model.predict(fitted.holdout_frame)
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
    return Evaluation(train_metrics, eval_metrics, fpr, tpr, reference, varimp, p1)
