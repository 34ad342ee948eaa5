"""Learning curves of the algorithm benchmark: a validation metric against env steps, mean over seeds.

The metric is ``gap_closed`` on the synthetic presets (higher is better) and ``mse`` on real data (lower is
better; :data:`METRICS`). :func:`curve_table` aggregates the runs' validation curves (each run's ``eval_log.csv``)
into one line per RL method (mean, sample std, min and max over the seeds at each logged step), one level per
supervised baseline (its selected model's final validation score: those train by epochs, not env steps) and the
references where there are any (synthetic: oracle 1, memory-less optimum 0); :func:`plot_curves` draws it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from affect_env.files import atomic_path

#: the validation metrics a curve can show: the y-axis label and whether higher is better
METRICS = {"gap_closed": {"label": "validation gap_closed", "higher_is_better": True},
           "mse": {"label": "validation MSE (lower is better)", "higher_is_better": False}}


def curve_columns(metric: str = "gap_closed") -> list:
    """The columns of ``algorithms_curves.csv`` for ``metric`` (``timesteps`` empty for the levels of the
    baselines and references)."""
    return ["method", "kind", "timesteps", "seeds"] + [f"{metric}_{s}" for s in ("mean", "std", "min", "max")]


#: the columns of ``algorithms_curves.csv`` on a synthetic preset
CURVE_COLUMNS = curve_columns("gap_closed")
#: the lowest ``gap_closed`` the figure shows (early curves of some methods lie far below the memory-less optimum)
Y_FLOOR = -1.0
#: lower-is-better metrics: values above this many times the highest final level are cut off (untrained models'
#: first validations can be orders of magnitude worse than the rest)
Y_CEILING_FACTOR = 4.0


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"curve metric {metric!r}: choose one of {', '.join(METRICS)}")
    return metric


def _stats(method: str, kind: str, timesteps: Optional[float], values: Iterable[float],
           metric: str = "gap_closed") -> dict:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return {"method": method, "kind": kind, "timesteps": timesteps, "seeds": len(v),
            f"{metric}_mean": float(v.mean()) if len(v) else np.nan,
            f"{metric}_std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
            f"{metric}_min": float(v.min()) if len(v) else np.nan,
            f"{metric}_max": float(v.max()) if len(v) else np.nan}


def curve_table(records: Iterable[dict], references: Optional[pd.DataFrame] = None,
                metric: str = "gap_closed") -> pd.DataFrame:
    """The figure's data, one row per (method, logged step) in the order the methods first appear.

    :param records: ``{"row": run row, "curve": [{"timesteps", metric, ...}, ...]}`` per run; ``row`` has
        ``method``, ``kind`` (``"rl"`` or ``"supervised"``) and ``val_<metric>``
    :param references: rows with ``method``, ``kind`` and ``val_<metric>`` drawn as levels (oracle, memory-less)
    :param metric: the validation score (:data:`METRICS`): ``gap_closed`` or ``mse``
    :return: :func:`curve_columns` of ``metric``; RL methods at each logged step (a step logged by some seeds only
        averages those: ``seeds`` says how many), supervised baselines and references once, with ``timesteps`` empty
    """
    check_metric(metric)
    points: dict = {}
    for record in records:
        row = record["row"]
        key = (row["method"], row["kind"])
        if row["kind"] == "rl":
            for point in record.get("curve") or []:
                points.setdefault(key, {}).setdefault(float(point["timesteps"]), []).append(point.get(metric))
        else:
            points.setdefault(key, {}).setdefault(None, []).append(row.get(f"val_{metric}"))
    if references is not None:
        for _, ref in references.iterrows():
            points.setdefault((ref["method"], ref["kind"]), {}).setdefault(None, []).append(ref[f"val_{metric}"])
    rows = [_stats(method, kind, step, values, metric) for (method, kind), by_step in points.items()
            for step, values in sorted(by_step.items(), key=lambda kv: -1.0 if kv[0] is None else kv[0])]
    return pd.DataFrame(rows, columns=curve_columns(metric))


def plot_curves(table: pd.DataFrame, path: Path, title: str = "", metric: str = "gap_closed") -> Path:
    """Draw :func:`curve_table`'s ``table`` of ``metric`` into ``path`` (PNG, written atomically).

    RL methods: the mean over seeds, with the min–max band over seeds; supervised baselines: a dashed horizontal
    line at their mean final validation score (trained by epochs, they have no env-step axis); references (the
    synthetic oracle at 1 and memory-less optimum at 0): solid grey lines. ``gap_closed``: values below
    :data:`Y_FLOOR` are cut off, with a note; ``mse`` (lower is better, the y label says so): the axis starts at 0
    and values above :data:`Y_CEILING_FACTOR` times the highest final level are cut off, with a note.
    """
    check_metric(metric)
    higher = METRICS[metric]["higher_is_better"]
    mean, lo, hi = (f"{metric}_{s}" for s in ("mean", "min", "max"))
    fig = Figure(figsize=(9.5, 5.2))  # no pyplot: workers in threads may draw at the same time
    ax = fig.subplots()
    methods = list(dict.fromkeys(m for m, k in zip(table["method"], table["kind"]) if k != "reference"))
    colors = matplotlib.colormaps["tab20"](np.linspace(0, 1, 20))
    low = 0.0
    high, finals = 0.0, []
    for i, method in enumerate(methods):
        part = table[table["method"] == method]
        color = colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20]
        if part["kind"].iloc[0] == "rl":
            part = part.dropna(subset=["timesteps", mean])
            if part.empty:
                continue
            x = part["timesteps"].to_numpy()
            ax.plot(x, part[mean], marker="o", ms=3, lw=1.4, color=color, label=method)
            if (part["seeds"] > 1).any():
                ax.fill_between(x, part[lo], part[hi], color=color, alpha=0.15, lw=0)
            low = min(low, float(np.nanmin(part[lo])))
            high = max(high, float(np.nanmax(part[hi])))
            finals.append(float(part[mean].iloc[-1]))
        elif np.isfinite(part[mean].iloc[0]):
            level = float(part[mean].iloc[0])
            ax.axhline(level, ls="--", lw=1.2, color=color, label=f"{method} (supervised)")
            low = min(low, level)
            high = max(high, level)
            finals.append(level)
    for _, ref in table[table["kind"] == "reference"].iterrows():
        ax.axhline(ref[mean], color="0.35", lw=1.0)
        ax.annotate(ref["method"], (0.005, ref[mean]), xycoords=("axes fraction", "data"),
                    fontsize=8, color="0.35", va="bottom")
        finals.append(float(ref[mean]))
    if higher:
        if low < Y_FLOOR:
            ax.set_ylim(bottom=Y_FLOOR - 0.05)
            ax.text(0.99, 0.01, f"values below {Y_FLOOR:g} cut off", transform=ax.transAxes, ha="right",
                    va="bottom", fontsize=8, color="0.35")
        ax.set_ylim(top=max(1.1, high + 0.05))  # the oracle's line and the highest point, not the autoscale's pad
    else:
        ceiling = Y_CEILING_FACTOR * max([f for f in finals if np.isfinite(f)], default=0.0)
        if ceiling > 0 and high > ceiling:
            ax.set_ylim(top=ceiling)
            ax.text(0.99, 0.99, f"values above {ceiling:.3g} cut off", transform=ax.transAxes, ha="right",
                    va="top", fontsize=8, color="0.35")
        else:
            ax.set_ylim(top=max(ax.get_ylim()[1], 1.05 * high))  # the highest level clear of the frame
        ax.set_ylim(bottom=0.0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(METRICS[metric]["label"])
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    return path
