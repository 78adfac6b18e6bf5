"""Training report: ROC curve and variable importance as PNG, and an HTML page.

``write_report(out_dir, metadata, fpr, tpr)`` writes::

    out_dir/roc.png
    out_dir/varimp.png
    out_dir/index.html   metrics, row counts, time range, both images,
                         features with view versions, baseline summaries

Only matplotlib (Agg backend) and numpy; no H2O import.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROC_PNG = "roc.png"
VARIMP_PNG = "varimp.png"


# --------------------------------------------------------------------- ROC
def roc_curve(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC points (fpr, tpr, thresholds) from 0/1 labels and scores.

    One point per distinct score (ties handled as one step), starting at
    (0, 0) with threshold +inf. Needs both classes present.
    """
    y = np.asarray(labels, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError("labels and scores differ in length")
    pos = int(y.sum())
    neg = int(len(y) - pos)
    if pos == 0 or neg == 0:
        raise ValueError("ROC needs both classes in the labels")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # last index of each run of equal scores
    distinct = np.where(np.diff(s_sorted))[0]
    idx = np.r_[distinct, len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[idx]
    fps = (idx + 1) - tps
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    thr = np.r_[np.inf, s_sorted[idx]]
    return fpr, tpr, thr


def auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def _thin(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 2000) -> tuple[list[float], list[float]]:
    """Keep the curve small enough to draw (and to store) without changing its shape noticeably."""
    n = len(fpr)
    if n <= max_points:
        return [float(x) for x in fpr], [float(x) for x in tpr]
    keep = np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(int), 0, n - 1])
    return [float(x) for x in fpr[keep]], [float(x) for x in tpr[keep]]


# ------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(fpr: Sequence[float], tpr: Sequence[float], auc: float | None, path: Path, title: str, label: str = "holdout") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    try:
        lab = f"{label} (AUC = {auc:.3f})" if auc is not None else label
        ax.plot(fpr, tpr, color="#1f77b4", lw=2, label=lab)
        ax.fill_between(fpr, tpr, step=None, alpha=0.08, color="#1f77b4")
        ax.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("False positive rate")
        ax.set_ylabel("True positive rate")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_aspect("equal")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_varimp(varimp: Sequence[dict[str, Any]], path: Path, title: str, top: int = 20) -> Path:
    """Horizontal bars of relative importance (percentage), most important on top."""
    plt = _plt()
    rows = sorted(varimp, key=lambda r: r.get("percentage", 0.0), reverse=True)[:top]
    n = max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * n), dpi=100)
    try:
        if rows:
            names = [r["variable"] for r in rows][::-1]
            pct = [100.0 * float(r.get("percentage", 0.0)) for r in rows][::-1]
            bars = ax.barh(names, pct, color="#2ca02c")
            for bar, value in zip(bars, pct):
                ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{value:.1f}%", va="center", fontsize=9)
            ax.set_xlim(0, min(max(pct) * 1.15 + 1, 108))
        else:
            ax.text(0.5, 0.5, "no variable importances", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("Relative importance (% of total)")
        ax.set_title(title)
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


# -------------------------------------------------------------------- html
def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if x != x:  # NaN
            return "—"
        return f"{x:.4f}" if abs(x) < 1e4 else f"{x:,.0f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _bars(counts: Sequence[int], labels: Sequence[str]) -> str:
    """Tiny inline histogram as CSS bars."""
    total = max(max(counts, default=0), 1)
    cells = []
    for c, lab in zip(counts, labels):
        h = int(round(40 * c / total))
        cells.append(f'<span class="bar" style="height:{max(h, 1)}px" title="{_e(lab)}: {c:,}"></span>')
    return f'<span class="hist">{"".join(cells)}</span>'


def _baseline_rows(baselines: dict[str, Any]) -> str:
    out = []
    for feat, b in baselines.items():
        if b.get("type") == "numeric":
            edges = b.get("edges") or []
            counts = b.get("counts") or []
            labels = (
                [
                    f"[{edges[i]:.4g}, {edges[i + 1]:.4g}" + ("]" if i == len(counts) - 1 else ")")
                    for i in range(len(counts))
                ]
                if len(edges) > len(counts)
                else []
            )
            summary = (
                f"min {_fmt(b.get('min'))} · median {_fmt(b.get('median'))} · max {_fmt(b.get('max'))}"
                f" · mean {_fmt(b.get('mean'))}"
            )
            out.append(
                f"<tr><td>{_e(feat)}</td><td>numeric</td><td>{_bars(counts, labels)}</td><td>{_e(summary)}</td>"
                f"<td>{_fmt(b.get('null_count'))}</td></tr>"
            )
        else:
            levels = b.get("top_levels") or []
            n = max(int(b.get("count", 0)), 1)
            shown = ", ".join(f"{_e(lv['value'])} {100.0 * lv['count'] / n:.1f}%" for lv in levels[:6])
            more = f" (+{b.get('distinct', 0) - min(len(levels), 6)} more)" if b.get("distinct", 0) > 6 else ""
            out.append(
                f"<tr><td>{_e(feat)}</td><td>categorical</td>"
                f"<td>{_bars([lv['count'] for lv in levels], [str(lv['value']) for lv in levels])}</td>"
                f"<td>{shown}{_e(more)}</td><td>{_fmt(b.get('null_count'))}</td></tr>"
            )
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem} th,td{border-bottom:1px solid #ddd;padding:.35rem .7rem;text-align:left;vertical-align:middle}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0} .card{border:1px solid #ddd;border-radius:8px;padding:.7rem 1rem;min-width:9rem}
.card .v{font-size:1.6rem;font-weight:600} .card .k{color:#666;font-size:.85rem}
.imgs{display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start} .imgs img{border:1px solid #ddd;border-radius:6px;max-width:100%}
.hist{display:inline-flex;align-items:flex-end;gap:2px;height:42px} .bar{display:inline-block;width:9px;background:#1f77b4;opacity:.75}
code{background:#f3f3f3;padding:0 .25rem;border-radius:3px}
"""


def render_html(metadata: dict[str, Any], roc_png: str = ROC_PNG, varimp_png: str = VARIMP_PNG) -> str:
    m = metadata
    metrics = m.get("metrics", {})
    evaluation = metrics.get("evaluation", "holdout")
    ev = metrics.get(evaluation, {}) or {}
    tr = metrics.get("train", {}) or {}
    rc = m.get("row_counts", {})
    tw = m.get("training_window", {})
    varimp = {r["variable"]: r for r in m.get("variable_importances", [])}

    cards = "".join(
        f'<div class="card"><div class="v">{_fmt(v)}</div><div class="k">{_e(k)}</div></div>'
        for k, v in [
            (f"{evaluation} AUC", ev.get("auc")),
            (f"{evaluation} logloss", ev.get("logloss")),
            ("training rows", rc.get("train")),
            (f"{evaluation} rows" if evaluation == "holdout" else "rows", rc.get("holdout") if evaluation == "holdout" else rc.get("total")),
        ]
    )
    metric_names = ["auc", "logloss", "pr_auc", "rmse", "mean_per_class_error", "max_f1_threshold", "max_f1"]
    metric_rows = "".join(
        f"<tr><td>{_e(k)}</td><td class='num'>{_fmt(tr.get(k))}</td><td class='num'>{_fmt(ev.get(k))}</td></tr>"
        for k in metric_names
        if k in tr or k in ev
    )
    count_rows = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{_fmt(v)}</td></tr>" for k, v in rc.items())
    feat_rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{}</td></tr>".format(
            _e(f["name"]),
            _e(f["type"]),
            _e(f.get("view") or "raw event field"),
            _fmt(f.get("view_version")),
            f"{100.0 * varimp[f['name']]['percentage']:.1f}%" if f["name"] in varimp else "—",
        )
        for f in m.get("features", [])
    )
    params = m.get("params", {})
    param_txt = ", ".join(f"{_e(k)}={_e(v)}" for k, v in params.items())
    title = f"{m.get('name', 'model')} v{m.get('version', '?')}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Training report — {_e(title)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">{_e(m.get('algo', '').upper())} · H2O {_e(m.get('h2o_version'))} · created {_e(m.get('created_at'))} ·
label <code>{_e(m.get('label'))}</code> · evaluation: {_e(evaluation)}{' (' + _e(metrics.get('nfolds')) + ' folds)' if evaluation == 'xval' else ''}</p>
<div class="cards">{cards}</div>

<h2>Curves</h2>
<div class="imgs">
<a href="{_e(roc_png)}"><img src="{_e(roc_png)}" alt="ROC curve" width="480"></a>
<a href="{_e(varimp_png)}"><img src="{_e(varimp_png)}" alt="Variable importance" width="560"></a>
</div>

<h2>Metrics</h2>
<table><tr><th>metric</th><th>train</th><th>{_e(evaluation)}</th></tr>{metric_rows}</table>

<h2>Data</h2>
<table><tr><th>training window (UTC)</th><td>{_e(tw.get('start'))} → {_e(tw.get('end'))}</td></tr>
<tr><th>time column</th><td><code>{_e(tw.get('time_column'))}</code></td></tr>
{f"<tr><th>holdout starts at</th><td>{_e(tw.get('holdout_start'))}</td></tr>" if tw.get('holdout_start') else ''}
</table>
<table><tr><th>rows</th><th>count</th></tr>{count_rows}</table>

<h2>Features</h2>
<table><tr><th>feature</th><th>type</th><th>view</th><th>view version</th><th>importance</th></tr>{feat_rows}</table>

<h2>Baselines (training distribution, used for drift)</h2>
<p class="sub">Numeric: rows per training-quantile bin (hover a bar for its range). Categorical: most frequent levels.</p>
<table><tr><th>feature</th><th>type</th><th>histogram</th><th>summary</th><th>nulls</th></tr>
{_baseline_rows(m.get('baselines', {}))}</table>

<h2>Parameters</h2>
<p><code>{param_txt}</code></p>
</body></html>
"""


def write_report(
    out_dir: str | Path,
    metadata: dict[str, Any],
    fpr: Sequence[float],
    tpr: Sequence[float],
) -> Path:
    """Write roc.png, varimp.png and index.html into ``out_dir``; return the index path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = metadata.get("metrics", {})
    evaluation = metrics.get("evaluation", "holdout")
    auc = (metrics.get(evaluation) or {}).get("auc")
    title = f"{metadata.get('name', 'model')} v{metadata.get('version', '?')}"
    fx, tx = _thin(np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float))
    curve_label = "holdout" if evaluation == "holdout" else f"{metrics.get('nfolds', '')}-fold cross-validation"
    plot_roc(fx, tx, auc, out / ROC_PNG, f"ROC — {title}", label=curve_label)
    plot_varimp(metadata.get("variable_importances", []), out / VARIMP_PNG, f"Variable importance — {title}")
    index = out / "index.html"
    index.write_text(render_html(metadata), encoding="utf-8")
    return index
