"""Fear annotation files of MediaEval 2018 (``MEDIAEVAL18-{SET}-Fear-annotations``), in either accepted format.

The release's fear annotations have come in two shapes, and a file does not say which it is, so
:func:`read_fear_annotation` decides from its header (or, without one, from its columns) and returns the
format with the values:

* **per-second**: a column of 0/1 values, one row per second;
* **intervals**: one fear episode per row, ``start, end`` in seconds.

:mod:`affect_env.data.mediaeval` turns either into the ``fear`` target (the fraction of each segment
annotated as fearful). Every bad value raises a :class:`~affect_env.data.types.DataError` naming the file
and the line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from affect_env.data.readers import split_text_table, table_values
from affect_env.data.types import DataError, PathLike

__all__ = ["read_fear_annotation"]


def _fear_columns(names: List[str]) -> Tuple[Optional[int], Optional[int], Optional[int], Optional[int]]:
    """Indices of the start, end, fear-flag and time columns of a fear header (``None`` if absent)."""
    low = [n.lower() for n in names]

    def find(test: Callable[[str], bool]) -> Optional[int]:
        return next((i for i, n in enumerate(low) if test(n)), None)

    start = find(lambda n: n.startswith("start") or n.startswith("begin"))
    end = find(lambda n: n.startswith("end") or n.startswith("stop"))
    fear = find(lambda n: "fear" in n)
    time = find(lambda n: n in ("t", "sec", "second", "seconds") or n.startswith("time"))
    return start, end, fear, time


def _is_header(row: List[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return True
    return False


def read_fear_annotation(path: PathLike) -> Tuple[str, np.ndarray]:
    """Read a fear annotation file in either of the two accepted formats.

    * **per-second**: a column of 0/1 values, one row per second: a header naming a ``fear`` column (and
      optionally a ``time`` column), or no header with one column (row ``i`` = second ``i``) or two
      columns ``second, 0/1`` (consecutive integer seconds and only 0/1 values);
    * **intervals**: one fear episode per row, ``start, end`` in seconds: a header with ``start`` and
      ``end`` columns (an optional ``fear`` column keeps only rows with a non-zero flag; other columns
      such as an id are ignored), or no header with two columns ``start, end`` or three ``id, start, end``.

    :param path: the file (tab-, comma- or whitespace-separated)
    :return: ``("per_second", (n, 2) [second, fear in [0, 1]])`` or ``("intervals", (m, 2) [start, end])``
    """
    path = Path(path)
    line_nos, rows = split_text_table(path)
    if not rows:
        return "intervals", np.zeros((0, 2))  # no fear episode
    start, end, fear, time = _fear_columns(rows[0])
    if _is_header(rows[0]) and (fear is not None or (start is not None and end is not None)
                                or len(rows[0]) != 3):
        names, line_nos, rows = rows[0], line_nos[1:], rows[1:]
        if start is not None and end is not None:
            cols = [start, end] + ([fear] if fear is not None else [])
            values = table_values(path, line_nos, rows, cols, names, False)
            if fear is not None:
                values = values[values[:, 2] != 0, :2]
            return "intervals", _check_intervals(path, values, line_nos)
        if fear is not None:
            cols = ([time] if time is not None else []) + [fear]
            values = table_values(path, line_nos, rows, cols, names, False)
            seconds = values[:, 0] if time is not None else np.arange(len(values), dtype=np.float64)
            return "per_second", _check_per_second(path, seconds, values[:, -1], line_nos)
        raise DataError(f"{path}: line 1: header {names} has neither 'start'/'end' columns (intervals) nor a "
                        f"'fear' column (per-second 0/1)")
    names = [f"#{j + 1}" for j in range(len(rows[0]))]
    if len(names) == 3:  # id, start, end: the id may be text
        values = table_values(path, line_nos, rows, [1, 2], names, False)
        return "intervals", _check_intervals(path, values, line_nos)
    values = table_values(path, line_nos, rows, range(len(names)), names, False)
    if values.shape[1] == 1:
        return "per_second", _check_per_second(path, np.arange(len(values), dtype=np.float64), values[:, 0],
                                               line_nos)
    if values.shape[1] == 2 and _looks_per_second(values):
        return "per_second", _check_per_second(path, values[:, 0], values[:, 1], line_nos)
    if values.shape[1] == 2:
        return "intervals", _check_intervals(path, values, line_nos)
    raise DataError(f"{path}: {values.shape[1]} columns without a header; expected 1 (0/1 per second), "
                    f"2 (second, 0/1 or start, end) or 3 (id, start, end)")


def _looks_per_second(values: np.ndarray) -> bool:
    """Two columns that are consecutive integer seconds and 0/1 flags."""
    t, flag = values[:, 0], values[:, 1]
    consecutive = len(t) > 1 and bool(np.all(np.diff(t) == 1)) and float(t[0]) == int(t[0])
    return consecutive and bool(np.isin(flag, (0.0, 1.0)).all())


def _check_per_second(path: Path, seconds: np.ndarray, flags: np.ndarray, line_nos: List[int]) -> np.ndarray:
    bad = np.flatnonzero((flags < 0) | (flags > 1))
    if bad.size:
        raise DataError(f"{path}: line {line_nos[bad[0]]}: fear value {flags[bad[0]]} is not in [0, 1]")
    return np.column_stack([seconds, flags])


def _check_intervals(path: Path, values: np.ndarray, line_nos: List[int]) -> np.ndarray:
    bad = np.flatnonzero((values[:, 0] < 0) | (values[:, 1] < values[:, 0]))
    if bad.size:
        raise DataError(f"{path}: line {line_nos[bad[0]]}: fear interval start {values[bad[0], 0]}, end "
                        f"{values[bad[0], 1]} (need 0 <= start <= end, in seconds)")
    return values
