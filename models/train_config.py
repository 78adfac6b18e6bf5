"""What to train and how (:class:`TrainConfig`), and the error every training stage raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LABEL_LEVELS", "TrainConfig", "TrainError"]

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
