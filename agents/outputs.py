"""What an evaluation writes: metrics tables, per-movie prediction tables, figures, and the summary's scores.

Every trainer's evaluation ends here, so a run directory has the same files whatever was trained in it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from affect_env.data import MovieDataset
from agents.metrics import error_by_position, evaluate_predictions
from agents.plots import plot_error_by_position, plot_memory_attention, plot_predictions, plot_training_curves


def global_row(metrics: pd.DataFrame) -> dict:
    """The global row of a metrics table as plain floats (no ``scope``): a validation row, a study's value."""
    row = metrics.iloc[0].to_dict()
    row.pop("scope", None)
    return {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in row.items()}


def score_predictions(results: list, dataset: MovieDataset) -> tuple:
    """``(metrics DataFrame, results)`` of per-movie results (``{"prediction": (T, n), ...}``) on ``dataset``."""
    return evaluate_predictions([r["prediction"] for r in results], dataset), results


def prediction_table(movie, prediction: np.ndarray, target_names: Sequence[str]) -> pd.DataFrame:
    """Time, then ``<target>_pred`` and ``<target>_true`` per target (one row per segment)."""
    table = {"time": movie.times}
    for k, name in enumerate(target_names):
        table[f"{name}_pred"] = prediction[:, k]
        table[f"{name}_true"] = movie.targets[:, k]
    return pd.DataFrame(table)


def write_outputs(out: Path, metrics: pd.DataFrame, results: list, dataset: MovieDataset,
                  position_stretch: int = 0) -> None:
    """``metrics.csv``, ``error_by_position.csv`` (:func:`~agents.metrics.error_by_position`, ``position_stretch``
    segments per row), ``predictions/<movie>.csv`` and the figures of an evaluation, into ``out``."""
    out = Path(out)
    preds = [r["prediction"] for r in results]
    by_position = error_by_position(preds, dataset, position_stretch)  # bad stretch: fail before writing
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out / "metrics.csv", index=False)
    by_position.to_csv(out / "error_by_position.csv", index=False)
    plot_error_by_position(out / "figures" / "error_by_position.png", by_position)
    for movie, pred in zip(dataset, preds):
        prediction_table(movie, pred, dataset.target_names).to_csv(out / "predictions" / f"{movie.movie_id}.csv",
                                                                   index=False)
    plot_predictions(out / "figures" / "predictions.png", dataset.movies, preds, dataset.target_names)
    if results and "attention" in results[0]:
        plot_memory_attention(out / "figures" / "memory_attention.png", dataset.movies[0].movie_id,
                              results[0]["attention"], dataset.movies[0].times)
    log = out / "eval_log.csv"
    if log.exists():
        plot_training_curves(out / "figures" / "training_curves.png", pd.read_csv(log))


def headline_metrics(metrics: pd.DataFrame, val: dict, targets: Sequence[str]) -> dict:
    """The summary's scores: test MSE, ``gap_closed`` and its references, PCC per target (then MSE and CCC per
    target), and the final validation MSE and ``gap_closed`` (``val_*``, with ``long_*`` for a second validation
    set)."""
    g = metrics.iloc[0]
    out = {"test_mse": float(g["mse"])}
    out.update({f"val_{k}": v for k, v in val.items() if k in ("mse", "gap_closed", "long_mse", "long_gap_closed")})
    for k in ("gap_closed", "mse_oracle", "mse_no_memory"):
        if k in metrics.columns:
            out[f"test_{k}"] = float(g[k])
    for name in targets:
        out[f"test_{name}_pcc"] = float(g[f"{name}_pcc"])
    for name in targets:
        out[f"test_{name}_mse"] = float(g[f"{name}_mse"])
        out[f"test_{name}_ccc"] = float(g[f"{name}_ccc"])
    return out
