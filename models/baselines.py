"""Per-feature baseline distributions of the training part, stored in the
metadata for drift monitoring."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.train_config import TrainConfig

__all__ = ["categorical_baseline", "feature_baselines", "numeric_baseline"]


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


def feature_baselines(train: pd.DataFrame, config: TrainConfig) -> dict[str, Any]:
    """Feature name -> baseline, numeric features first (the metadata's order)."""
    baselines: dict[str, Any] = {}
    for c in config.numeric_features:
        baselines[c] = numeric_baseline(train[c], config.baseline_bins)
    for c in config.categorical_features:
        baselines[c] = categorical_baseline(train[c], config.baseline_top_k)
    return baselines
