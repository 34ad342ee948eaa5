"""The one time grid every modality is aligned on: row ``i`` is the interval ``[i / rate, (i + 1) / rate)``.

Each extractor computes features at its own pace (every video frame, 10-ms audio frames, 32-ms music frames,
a few sampled frames per second for faces); :func:`to_grid` turns any of them into one row per grid interval
by averaging the values whose time lies inside it. The tables' ``time`` column is the row's start, so the
generic table reader cuts the rows into segments exactly along the grid.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["grid_rows", "grid_times", "to_grid"]

_EPS = 1e-9


def grid_rows(duration: float, rate: float) -> int:
    """Whole grid rows inside ``duration`` seconds (a trailing partial row is left out)."""
    return max(0, int(math.floor(float(duration) * float(rate) + 1e-6)))


def grid_times(n_rows: int, rate: float) -> np.ndarray:
    """Start times (seconds) of the first ``n_rows`` rows."""
    return np.arange(int(n_rows), dtype=np.float64) / float(rate)


def to_grid(times: np.ndarray, values: np.ndarray, n_rows: int, rate: float, hold: bool = True) -> np.ndarray:
    """``(n_rows, d)`` float64: the mean of the ``values`` whose time lies in each row's interval.

    A row no value falls into (a stream slower than the grid, e.g. faces sampled twice a second on a 5 Hz grid)
    takes the last earlier row's value when ``hold`` (the first row with a value for leading rows), else 0 (for
    counts such as shot cuts).

    :param times: ``(n,)`` seconds of each value
    :param values: ``(n, d)`` (or ``(n,)``) values
    :param n_rows: rows of the grid
    :param rate: rows per second
    :param hold: fill empty rows from the previous row (``False``: zero)
    :raises ValueError: ``hold`` and no value falls on the grid at all
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    rows = np.floor(np.asarray(times, dtype=np.float64) * rate + _EPS).astype(np.int64)
    keep = (rows >= 0) & (rows < n_rows)
    rows, values = rows[keep], values[keep]
    sums = np.zeros((n_rows, values.shape[1]))
    np.add.at(sums, rows, values)
    counts = np.bincount(rows, minlength=n_rows).astype(np.float64)
    filled = counts > 0
    out = np.zeros_like(sums)
    out[filled] = sums[filled] / counts[filled, None]
    if hold and not filled.all():
        if not filled.any():
            raise ValueError("no value falls on the time grid")
        idx = np.maximum.accumulate(np.where(filled, np.arange(n_rows), -1))
        idx[idx < 0] = int(np.argmax(filled))
        out = out[idx]
    return out
