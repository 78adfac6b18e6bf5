"""Training stage 3: upload the split to H2O and fit a binomial GBM, with progress.

Determinism: the GBM seed is fixed (``TrainConfig.seed``). H2O GBM with
``nthreads > 1`` is still not guaranteed to be bit-for-bit reproducible
(histogram building and tree scoring are parallel, floating-point reductions
can reorder), so two runs on the same data can differ in the last digits of
the metrics; use ``nthreads=1`` when exact reproducibility matters more than
speed.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from models.h2o_session import upload_frame
from models.train_config import LABEL_LEVELS, TrainConfig, TrainError
from models.train_data import SplitFrames
from models.train_progress import Steps

__all__ = ["Fitted", "fit"]


@dataclass(frozen=True)
class Fitted:
    model: Any  # h2o.estimators.H2OGradientBoostingEstimator, trained
    params: dict[str, Any]  # the estimator's parameters, model_id included
    holdout_frame: Any | None  # the uploaded holdout H2OFrame (None for cross-validation)


def _h2o_part(part: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    out = part[config.features].copy()
    out[config.label] = part["__y"].astype(str)
    return out


def _h2o_key(config: TrainConfig, kind: str, run: str) -> str:
    return f"fs_{config.name}_{kind}_{run}".replace("-", "_").replace(".", "_")


def fit(parts: SplitFrames, config: TrainConfig, ui: Steps, created_keys: list[str]) -> Fitted:
    """Upload the training part (and the holdout) and train the GBM on the
    H2O cluster this process is connected to. Every H2O key made is appended
    to ``created_keys`` as soon as it exists, so the caller can remove them
    even when a later step fails."""
    import h2o
    from h2o.estimators import H2OGradientBoostingEstimator

    types = {c: "real" for c in config.numeric_features}
    types.update({c: "enum" for c in config.categorical_features})
    types[config.label] = "enum"
    run = uuid.uuid4().hex[:8]
    with ui.step("upload frame", total=2.0) as upd:
        train_key = _h2o_key(config, "train", run)
        hf_train = upload_frame(h2o, _h2o_part(parts.train, config), types, train_key)
        created_keys.append(hf_train.frame_id)
        upd(1.0)
        hf_hold = None
        if len(parts.holdout):
            hf_hold = upload_frame(h2o, _h2o_part(parts.holdout, config), types, _h2o_key(config, "holdout", run))
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
        model_id=_h2o_key(config, "gbm", run),
    )
    if config.evaluation == "xval":
        params.update(nfolds=config.nfolds, fold_assignment="Random", keep_cross_validation_predictions=False)
    params.update(config.gbm_params)
    model = H2OGradientBoostingEstimator(**params)
    with ui.step("train GBM", total=100.0) as upd:
        model.start(x=config.features, y=config.label, training_frame=hf_train, validation_frame=hf_hold)
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
    return Fitted(model, params, hf_hold)
