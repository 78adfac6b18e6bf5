"""Train an H2O GBM from a point-in-time training set and publish it to the registry.

The caller builds the training frame (by replay, see tables/) and hands over a
pandas DataFrame; :func:`train` runs the stages, each in a module of its own:

    frame ──prepare──▶ labelled, typed rows ──split by time──▶ train / holdout     (models.train_data)
          ──baselines (drift)──▶                                                  (models.baselines)
          ──fit: H2O GBM──▶ ──evaluate: metrics, ROC──▶                            (models.train_fit, train_evaluate)
          ──publish: MOJO + metadata.json + report/──▶ Registry.publish           (models.train_publish, report)

H2O runs in a private local cluster unless the caller is connected to one
(:mod:`models.h2o_session`); the split is a pure function of the frame and
the GBM seed is fixed (see :mod:`models.train_fit` on reproducibility).
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from models import report as report_mod
from models.baselines import feature_baselines
from models.h2o_session import h2o_session
from models.registry import ModelVersion, Registry
from models.train_config import TrainConfig, TrainError
from models.train_data import prepare, split, validate
from models.train_evaluate import evaluate
from models.train_fit import fit
from models.train_progress import Steps
from models.train_publish import RunInfo, build_metadata, export_mojo

__all__ = ["TrainConfig", "TrainError", "train"]

STEPS = ["start H2O", "upload frame", "train GBM", "evaluate", "export MOJO", "report", "publish"]


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
    validate(frame, config, feature_versions)
    t0 = time.monotonic()
    parts = split(prepare(frame, config), config)
    baselines = feature_baselines(parts.train, config)

    import h2o  # slow to import; only a training run needs it

    with Steps(progress, STEPS) as ui, tempfile.TemporaryDirectory(prefix="featurestream-train-") as tmp:
        tmp_path = Path(tmp)
        with ui.step("start H2O"):
            session = h2o_session(config.nthreads, config.max_mem_size)
            started = session.__enter__()
        created_keys: list[str] = []
        kept: str | None = None
        try:
            fitted = fit(parts, config, ui, created_keys)
            kept = fitted.model.model_id if keep_model else None
            with ui.step("evaluate"):
                evaluation = evaluate(fitted, parts, config, created_keys)
            with ui.step("export MOJO"):
                mojo_file, mojo_info = export_mojo(fitted.model, tmp_path / "mojo")
            run = RunInfo(registry.next_version(config.name), h2o.cluster().version, started)
            metadata = build_metadata(
                config, feature_versions, parts, baselines, fitted, evaluation, mojo_info, run, extra_metadata
            )
            with ui.step("report"):
                report_dir = tmp_path / "report"
                report_mod.write_report(report_dir, metadata, evaluation.fpr, evaluation.tpr)
            with ui.step("publish"):
                metadata["training_seconds"] = round(time.monotonic() - t0, 2)
                published = registry.publish(config.name, mojo_file, metadata, report_dir, version=run.version)
        finally:
            if not started:  # leave the caller's cluster as we found it
                # (keep_model: the caller wants the H2O model itself, e.g. to compare
                # its own predict with the MOJO's; it is "h2o_model_id" in the metadata)
                for key in [k for k in created_keys if k != kept]:
                    with contextlib.suppress(Exception):
                        h2o.remove(key, cascade=True)
            session.__exit__(None, None, None)
    return published
