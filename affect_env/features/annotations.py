"""Continuous annotations of a movie put on its feature grid, so an extracted table carries its targets and the
generic table reader trains on it as on any other table.

Two layouts are found for a movie whose file stem is ``STEM`` in an annotation folder ``DIR``:

* **generic**: ``DIR/STEM.csv`` (or ``.parquet``): a ``time`` column (seconds) and one column per target
  (default ``valence``, ``arousal``), any sampling;
* **LIRIS-ACCEDE continuous**: ``STEM_Valence.txt`` and ``STEM_Arousal.txt`` (tab-separated ``Time Mean Std``)
  in ``DIR`` or ``DIR/annotations``; ``Mean`` is the target (the layout of
  :mod:`affect_env.data.liris`, read with the same parser).

Targets are linearly interpolated at each grid row's centre. The annotation must cover the movie: its first
time at most ``tol`` after 0 and its last at most ``tol`` before the end of the grid (``tol`` = 1 s or one
annotation interval, whichever is longer); otherwise one error line names the file and both spans.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from affect_env.data.liris import LIRIS_HEADER, liris_annotation_dir
from affect_env.data.readers import TABLE_SUFFIXES, numeric_columns, read_header_table, read_table, row_ref
from affect_env.data.types import DataError, PathLike

__all__ = ["Annotation", "find_annotation", "read_annotation", "targets_on_grid"]

Annotation = Tuple[str, List[Path]]  # (layout, files): ("generic", [STEM.csv]) or ("liris", [valence, arousal])


def find_annotation(folder: PathLike, stem: str) -> Optional[Annotation]:
    """The annotation files of movie ``stem`` in ``folder`` (generic table first), or ``None``."""
    folder = Path(folder)
    for suffix in TABLE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return "generic", [path]
    ann_dir = liris_annotation_dir(folder)
    if ann_dir is not None:
        paths = [ann_dir / f"{stem}_Valence.txt", ann_dir / f"{stem}_Arousal.txt"]
        if all(p.is_file() for p in paths):
            return "liris", paths
    return None


def _check_times(path: Path, t: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(t) | (t < 0))
    if len(bad):
        raise DataError(f"{path}: {row_ref(path, int(bad[0]))}: time {t[bad[0]]!r} is not a finite, "
                        f"non-negative number of seconds")
    back = np.flatnonzero(np.diff(t) <= 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"{path}: {row_ref(path, i)}: time is not increasing ({t[i - 1]:g}, then {t[i]:g})")
    if len(t) == 0:
        raise DataError(f"{path}: no annotation row")


def read_annotation(annotation: Annotation, targets: Sequence[str]) -> List[Tuple[Path, np.ndarray, np.ndarray]]:
    """``[(file, times (n,), values (n,))]``, one entry per target, checked (finite, increasing times).

    :param annotation: from :func:`find_annotation`
    :param targets: target names; the LIRIS-ACCEDE layout gives exactly ``valence``, ``arousal``
    :raises DataError: a missing column, a non-numeric or non-finite value, decreasing times; naming the file
    """
    kind, paths = annotation
    out = []
    if kind == "liris":
        if tuple(targets) != ("valence", "arousal"):
            raise DataError(f"{paths[0]}: LIRIS-ACCEDE annotations give valence and arousal, not {list(targets)}")
        for path in paths:
            table = read_header_table(path, LIRIS_HEADER, allow_nonfinite=False)
            _check_times(path, table[:, 0])
            out.append((path, table[:, 0], table[:, 1]))
        return out
    path = paths[0]
    df = read_table(path)
    time_col = next((c for c in df.columns if c.strip().lower() == "time"), None)
    if time_col is None:
        raise DataError(f"{path}: no 'time' column; columns: {list(df.columns)}")
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise DataError(f"{path}: missing target column(s) {missing}; columns: {list(df.columns)}")
    values = numeric_columns(path, df, [time_col, *targets])
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        i, j = (int(x) for x in bad[0])
        raise DataError(f"{path}: {row_ref(path, i)}, column {[time_col, *targets][j]!r}: value is not finite")
    _check_times(path, values[:, 0])
    return [(path, values[:, 0], values[:, 1 + j]) for j in range(len(targets))]


def targets_on_grid(annotation: Annotation, targets: Sequence[str], n_rows: int, rate: float,
                    movie: PathLike) -> np.ndarray:
    """``(n_rows, len(targets))`` targets at the grid rows' centres (linear interpolation).

    :param movie: the movie file, for the coverage message
    :raises DataError: the annotation does not cover the movie's grid (one line naming both files and spans)
    """
    end = n_rows / float(rate)
    centres = (np.arange(n_rows) + 0.5) / float(rate)
    columns = []
    for path, t, v in read_annotation(annotation, targets):
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        tol = max(1.0, step)
        if t[0] > tol or t[-1] < end - tol:
            raise DataError(f"{path}: annotation times {t[0]:g}-{t[-1]:g} s do not cover the movie {movie} "
                            f"(0-{end:g} s, tolerance {tol:g} s)")
        columns.append(np.interp(centres, t, v))
    return np.column_stack(columns)
