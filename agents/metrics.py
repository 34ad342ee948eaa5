"""Metrics for continuous emotion curves: MSE, MAE, PCC, CCC per target, and ``gap_closed``; overall, per movie
and along the movies."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from affect_env.memory import check_count


def pcc(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pearson correlation (NaN when either side is constant)."""
    p, t = pred - pred.mean(), truth - truth.mean()
    denom = np.sqrt((p ** 2).sum() * (t ** 2).sum())
    return float((p * t).sum() / denom) if denom > 0 else float("nan")


def ccc(pred: np.ndarray, truth: np.ndarray) -> float:
    """Lin's concordance correlation coefficient."""
    cov = ((pred - pred.mean()) * (truth - truth.mean())).mean()
    denom = pred.var() + truth.var() + (pred.mean() - truth.mean()) ** 2
    return float(2 * cov / denom) if denom > 0 else float("nan")


def gap_closed(mse_model: float, mse_no_memory: float, mse_oracle: float) -> float:
    """``(MSE_no_memory - MSE_model) / (MSE_no_memory - MSE_oracle)``: 0 = memory-less optimum, 1 = oracle.

    NaN when there is no gap to close (the memory-less prediction is as good as the oracle's, e.g. a synthetic
    cause switched off with ``genre_effect=0``): memory cannot buy anything there, so no share is defined.
    """
    if np.isclose(mse_no_memory, mse_oracle, rtol=1e-6, atol=1e-12):
        return float("nan")
    return float((mse_no_memory - mse_model) / (mse_no_memory - mse_oracle))


def has_gap(dataset) -> bool:
    """Whether ``gap_closed`` is defined on ``dataset``: it has an oracle that beats its memory-less prediction."""
    if not dataset.has_oracle:
        return False
    oracle, no_memory = (np.concatenate([getattr(m, name) for m in dataset]) for name in ("oracle", "no_memory"))
    truth = np.concatenate([m.targets for m in dataset])
    return "gap_closed" in _row("global", oracle, truth, dataset.target_names, oracle, no_memory)


def _row(scope: str, pred: np.ndarray, truth: np.ndarray, names: Sequence[str],
         oracle: Optional[np.ndarray], no_memory: Optional[np.ndarray]) -> dict:
    row: dict = {"scope": scope, "segments": len(truth)}
    for k, name in enumerate(names):
        p, t = pred[:, k].astype(np.float64), truth[:, k].astype(np.float64)
        row[f"{name}_mse"] = float(((p - t) ** 2).mean())
        row[f"{name}_mae"] = float(np.abs(p - t).mean())
        row[f"{name}_pcc"] = pcc(p, t)
        row[f"{name}_ccc"] = ccc(p, t)
    row["mse"] = float(((pred - truth) ** 2).mean())
    if oracle is not None and no_memory is not None:
        row["mse_oracle"] = float(((oracle - truth) ** 2).mean())
        row["mse_no_memory"] = float(((no_memory - truth) ** 2).mean())
        share = gap_closed(row["mse"], row["mse_no_memory"], row["mse_oracle"])
        if not np.isnan(share):  # left out where undefined, so model selection falls back to the MSE
            row["gap_closed"] = share
    return row


def component_gaps(pred: np.ndarray, truth: np.ndarray, oracle: np.ndarray, no_memory: np.ndarray,
                   dataset) -> dict:
    """``gap_closed_<name>`` over the cells of each cause the movies mark (``Movie.components``), if all do; a
    cause with no gap to close (see :func:`gap_closed`) is left out."""
    names = set.intersection(*(set(m.components) for m in dataset)) if len(dataset) else set()
    out = {}
    for name in sorted(names):
        mask = np.concatenate([np.asarray(m.components[name], bool) for m in dataset])
        if mask.any():
            mse = lambda x: float(((x[mask] - truth[mask]) ** 2).mean())  # noqa: E731
            share = gap_closed(mse(pred), mse(no_memory), mse(oracle))
            if not np.isnan(share):
                out[f"gap_closed_{name}"] = share
    return out


def evaluate_predictions(predictions: Sequence[np.ndarray], dataset) -> pd.DataFrame:
    """One row for the whole split (``scope="global"``) and one per movie.

    :param predictions: one ``(T, n_targets)`` array per movie of ``dataset``, in order
    :param dataset: the :class:`~affect_env.data.MovieDataset` the predictions are for
    """
    names = dataset.target_names
    has_oracle = dataset.has_oracle
    rows = []
    all_p = np.concatenate(predictions)
    all_t = np.concatenate([m.targets for m in dataset])
    oracle = np.concatenate([m.oracle for m in dataset]) if has_oracle else None
    no_mem = np.concatenate([m.no_memory for m in dataset]) if has_oracle else None
    rows.append(_row("global", all_p, all_t, names, oracle, no_mem))
    if has_oracle:
        rows[0].update(component_gaps(all_p, all_t, oracle, no_mem, dataset))
    for movie, pred in zip(dataset, predictions):
        rows.append(_row(movie.movie_id, pred, movie.targets, names,
                         movie.oracle if has_oracle else None, movie.no_memory if has_oracle else None))
    return pd.DataFrame(rows)


def error_by_position(predictions: Sequence[np.ndarray], dataset, stretch: int = 0) -> pd.DataFrame:
    """The metrics along the movies: one row per stretch of ``stretch`` consecutive segments, counted from each
    movie's start and pooled over the movies long enough to reach it. A memory that holds keeps the error flat
    along the movie; one that fades lets it grow with the position.

    :param predictions: one ``(T, n_targets)`` array per movie of ``dataset``, in order
    :param dataset: the :class:`~affect_env.data.MovieDataset` the predictions are for
    :param stretch: segments per row (0: a tenth of the longest movie, rounded up)
    :return: ``start`` and ``end`` (segment indices, ``end`` exclusive), ``movies`` (how many reach the stretch),
        then the columns of :func:`evaluate_predictions`' rows (``gap_closed`` NaN where a stretch has no gap)
    """
    longest = max((len(m.targets) for m in dataset), default=0)
    stretch = check_count("stretch", stretch, "a tenth of the longest movie") or max(1, -(-longest // 10))
    names, has_oracle = dataset.target_names, dataset.has_oracle
    rows = []
    for start in range(0, longest, stretch):
        cut = slice(start, start + stretch)
        reached = [(m, p) for m, p in zip(dataset, predictions) if len(m.targets) > start]
        stack = lambda arrays: np.concatenate([a[cut] for a in arrays])  # noqa: E731
        row = _row("", stack([p for _, p in reached]), stack([m.targets for m, _ in reached]), names,
                   stack([m.oracle for m, _ in reached]) if has_oracle else None,
                   stack([m.no_memory for m, _ in reached]) if has_oracle else None)
        row.pop("scope")
        rows.append({"start": start, "end": min(start + stretch, longest), "movies": len(reached), **row})
    return pd.DataFrame(rows)
