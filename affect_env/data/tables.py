"""Generic per-sequence tables: a directory of CSV / Parquet files, one file per movie (or viewing session).

Format rules (every one is checked; bad input raises one :class:`DataError` naming the file and the row
and/or column, nothing is silently fixed):

* **Files.** ``*.csv``, ``*.parquet`` or ``*.pq`` directly inside the directory, read in sorted order. The
  file stem is the movie id (``P01_V3.csv`` -> ``"P01_V3"``). ``splits.csv`` (a split manifest) and the
  manifest passed as ``manifest=`` are not movies. Two files with the same stem are an error.
* **Rows are frames.** A time column (seconds from the start of the movie, default ``"time"``) that is
  finite, ``>= 0`` and strictly increasing; target columns (default ``valence``, ``arousal``); feature
  columns. Row numbers in messages count data rows from 1 (header excluded); for CSV the file line is
  given too.
* **Feature columns** default to every column that is neither the time nor a target and holds numbers.
  A column with no number at all in any file (e.g. a ``subject`` text column) is ignored, and the
  dataset notes say so; a column holding some numbers and some text is an error showing the bad value.
  With default feature columns every file must have the same column set. ``modalities`` maps a modality
  name to its columns (in order); by default there is one modality, ``"features"``, with all feature
  columns in file order.
* **Segments** are non-overlapping windows ``[i * S, (i + 1) * S)`` of ``S = segment_seconds``, starting
  at ``t = 0``. The sequence is taken to end one median row interval after its last row; a trailing
  window covering less than half a segment is dropped (with its rows; the movie's notes say so). A window
  with no rows (a time gap, or a file that starts late) is an error unless ``impute`` is given.
* **Frames.** ``K = frames_per_segment`` (default: the median number of rows per window over *all* files
  of the directory, rounded half up, so every split of one directory gets the same ``K``). Frame ``k``
  of window ``i`` is the row nearest to the centre of the ``k``-th of ``K`` equal sub-intervals,
  ``t = (i + (k + 0.5) / K) * S``, among the rows inside the window (nearest-row resampling; ties go to
  the earlier row; past the last row the last row is held). Irregular sampling thus still gives a fixed
  ``K``, a row may be repeated or skipped, and a segment never sees a row of another segment. A window
  of ``K`` rows on a regular grid (10 Hz rows, 1 s segments, ``K = 10``) gets exactly its own rows, in
  order; jittered time stamps can repeat one row and skip its neighbour.
* **Targets.** A segment's target is the *mean* of the targets of the rows inside its window: the
  curve's average over the segment. With ``require_targets=False`` (prediction on new, unannotated
  movies) a file may lack some or all target columns: those targets are zeros (``n_targets`` is still
  ``len(targets)``) and the movie's notes say ``no target column(s) [...]: zeros (predictions only)``;
  a file that has the columns is read exactly as with ``require_targets=True``, and the column-set check
  across files ignores the target columns.
* **Missing values.** NaN / inf in features or targets are errors unless ``impute`` is ``"ffill"``
  (carry the last valid value forward; leading gaps take the first valid value) or ``"zero"``; empty
  windows are then filled too (``"ffill"``: every frame and the target held from the last row before the
  gap; ``"zero"``: zeros). Every imputed value is counted in the movie's and the dataset's notes. Without
  ``impute``, a column whose values stop before the others' is reported as a length mismatch.
* **Splits.** ``manifest=`` (a CSV with columns ``movie,split``, a JSON ``{movie: split}``, or the name of
  a manifest shipped in :mod:`affect_env.data.manifests`, e.g. ``"ceap360vr"``), else ``splits.csv`` in
  the directory, else a deterministic subject-independent rule: files are grouped by the first capture
  group of ``group_pattern`` on the stem (default: the text before the first underscore, ``P01`` in
  ``P01_V3``; a stem without a match is its own group), groups are sorted, and the first 70 % of groups
  (rounded half up) are ``train``, the next 15 % ``val``, the rest ``test``; with 3 or more groups none
  of the three is empty (the largest gives one group up). One subject thus never lands in two splits.
  Every file must appear in a manifest; manifest entries without a file are only noted, so one manifest
  serves a subset of a dataset.

Every call reads and validates every file of the directory (so a broken file is reported whichever
split is asked for, and all splits agree on columns and ``K``), and returns the movies of one split.
Reading a file and its numbers is :mod:`affect_env.data.readers`, the manifests and the grouped rule are
:mod:`affect_env.data.splits`, and NaN / inf filling is :func:`affect_env.data.align.fill_nonfinite`, each
shared with the per-second readers; this module holds the table layout: columns, windows and frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from affect_env.data.align import IMPUTE_MODES, fill_nonfinite
from affect_env.data.readers import TABLE_SUFFIXES, numeric_columns, read_table, row_ref
from affect_env.data.splits import MANIFEST_DIR, assign_splits, read_manifest, resolve_manifest, shipped_manifest
from affect_env.data.types import SPLITS, DataError, Modality, Movie, MovieDataset, PathLike

__all__ = ["SPLITS", "MANIFEST_DIR", "assign_splits", "list_table_files", "load_tables", "read_manifest",
           "shipped_manifest"]

MANIFEST_NAME = "splits.csv"
DEFAULT_MODALITY = "features"
_EPS = 1e-9  # relative slack for window boundaries (0.3 / 0.1 = 2.9999999999999996)


# ----------------------------------------------------------------------------------------------- files
def list_table_files(root: PathLike, exclude: Iterable[PathLike] = ()) -> list:
    """The per-movie table files directly inside ``root``, sorted by name.

    :param root: dataset directory
    :param exclude: files that are not movies (manifests)
    :return: list of :class:`~pathlib.Path`
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of per-movie tables")
    skip = [Path(p) for p in exclude if Path(p).is_file()]

    def is_manifest(p: Path) -> bool:
        return p.name == MANIFEST_NAME or any(p.name == q.name and p.samefile(q) for q in skip)

    files = sorted(
        p for p in root.iterdir()
        if p.suffix.lower() in TABLE_SUFFIXES and p.is_file() and not is_manifest(p)
    )
    if not files:
        raise DataError(f"{root}: no table files found (looked for {', '.join('*' + s for s in TABLE_SUFFIXES)})")
    seen: dict = {}
    for p in files:
        if p.stem in seen:
            raise DataError(f"{root}: files {seen[p.stem].name} and {p.name} give the same movie id {p.stem!r}")
        seen[p.stem] = p
    return files


# ---------------------------------------------------------------------------------------------- splits
def _splits_for(files: Sequence[Path], root: Path, manifest: Optional[PathLike], group_pattern: str,
                split_fractions: Sequence[float]) -> tuple:
    """``({stem: split}, notes)`` from the manifest, ``splits.csv`` or the group rule."""
    stems = [p.stem for p in files]
    if manifest is None and (root / MANIFEST_NAME).is_file():
        manifest = root / MANIFEST_NAME
    if manifest is None:
        split_of = assign_splits(stems, group_pattern, split_fractions)
        return split_of, [f"splits: deterministic grouped rule (pattern {group_pattern!r}, "
                          f"fractions {tuple(split_fractions)})"]
    path = resolve_manifest(manifest)
    table = read_manifest(path)
    unlisted = [s for s in stems if s not in table]
    if unlisted:
        extra = sorted(set(table) - set(stems))
        hint = f"; manifest names without a file: {extra[:5]}" if extra else ""
        raise DataError(f"{root / files[stems.index(unlisted[0])].name}: movie {unlisted[0]!r} is not listed in "
                        f"manifest {path} ({len(unlisted)} file(s) unlisted){hint}")
    notes = [f"splits: manifest {path}"]
    absent = sorted(set(table) - set(stems))
    if absent:
        notes.append(f"manifest {path.name}: {len(absent)} listed movie(s) have no file here, e.g. {absent[:3]}")
    return {s: table[s] for s in stems}, notes


# ------------------------------------------------------------------------------------------- columns
def _text_only(series: pd.Series) -> bool:
    """True when a column holds values but not one of them is a number."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.notna()
    return bool(present.any()) and not bool(pd.to_numeric(series[present], errors="coerce").notna().any())


def _default_features(frames: Sequence[tuple], reserved: set, time_column: str, targets: Sequence[str]) -> tuple:
    """Every non-reserved column of the first file holding a number in some file; text columns are noted."""
    first_path, first = frames[0]
    candidates = [c for c in first.columns if c not in reserved]
    text = [c for c in candidates if all(_text_only(df[c]) for _, df in frames)]
    cols = [c for c in candidates if c not in text]
    if not cols:
        raise DataError(f"{first_path}: no numeric feature columns besides time {time_column!r} and targets "
                        f"{list(targets)}; columns: {list(first.columns)}")
    notes = [f"ignored non-numeric column(s): {text}"] if text else []
    return (Modality(DEFAULT_MODALITY, len(cols)),), cols, notes


def _explicit_features(feature_columns: Optional[Sequence[str]], modalities) -> tuple:
    """``(modalities, columns)`` from ``modalities`` (a mapping or (name, columns) pairs) or ``feature_columns``."""
    if modalities is None:
        cols = [feature_columns] if isinstance(feature_columns, str) else [str(c) for c in feature_columns]
        return (Modality(DEFAULT_MODALITY, len(cols)),), cols
    items = list(modalities.items()) if isinstance(modalities, Mapping) else [tuple(x) for x in modalities]
    mods, cols = [], []
    for name, columns in items:
        columns = [columns] if isinstance(columns, str) else [str(c) for c in columns]
        if not columns:
            raise DataError(f"modality {name!r} has no columns")
        mods.append(Modality(str(name), len(columns)))
        cols.extend(columns)
    if feature_columns is not None and set(feature_columns) != set(cols):
        raise DataError(f"feature_columns {list(feature_columns)} differ from the columns of modalities {cols}")
    return tuple(mods), cols


def _choose_features(frames: Sequence[tuple], time_column: str, targets: Sequence[str],
                     feature_columns: Optional[Sequence[str]], modalities) -> tuple:
    """``(modality tuple, ordered feature columns, notes)``; checks the columns exist in every file."""
    reserved = {time_column, *targets}
    if feature_columns is None and modalities is None:
        return _default_features(frames, reserved, time_column, targets)
    mods, cols = _explicit_features(feature_columns, modalities)
    if not cols:
        raise DataError("feature_columns is empty")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise DataError(f"feature column(s) {dup} are listed more than once")
    clash = [c for c in cols if c in reserved]
    if clash:
        raise DataError(f"feature column(s) {clash} are also the time or a target column")
    for path, df in frames:
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing feature column(s) {missing}; available columns: {list(df.columns)}")
    return mods, cols, []


def _check_structure(path: Path, df: pd.DataFrame, time_column: str, targets: Sequence[str],
                     reference: Optional[tuple], require_targets: bool = True) -> None:
    """Time and (if required) target columns exist; with default features the column set matches the first
    file (ignoring target columns when targets are optional)."""
    if time_column not in df.columns:
        raise DataError(f"{path}: missing time column {time_column!r}; available columns: {list(df.columns)}")
    if require_targets:
        for t in targets:
            if t not in df.columns:
                raise DataError(f"{path}: missing target column {t!r}; available columns: {list(df.columns)}")
    if reference is not None:
        ref_path, ref_cols = reference
        ignored = set() if require_targets else set(targets)
        missing = [c for c in ref_cols if c not in df.columns and c not in ignored]
        extra = [c for c in df.columns if c not in ref_cols and c not in ignored]
        if missing or extra:
            raise DataError(f"{path}: feature columns differ from {ref_path.name}: missing {missing}, extra {extra}")


def _check_time(path: Path, t: np.ndarray, time_column: str) -> None:
    """Time must be finite, non-negative and strictly increasing."""
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}: {row_ref(path, i)}, column {time_column!r}: time is {float(t[i])!r} "
                        f"(must be finite)")
    neg = np.flatnonzero(t < 0)
    if len(neg):
        i = int(neg[0])
        raise DataError(f"{path}: {row_ref(path, i)}, column {time_column!r}: negative time {float(t[i])!r} "
                        f"(time is seconds from the start of the movie)")
    back = np.flatnonzero(np.diff(t) <= 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"{path}: {row_ref(path, i)}, column {time_column!r}: time is not increasing "
                        f"({float(t[i - 1])!r} at {row_ref(path, i - 1)}, then {float(t[i])!r})")


def _check_lengths(path: Path, values: np.ndarray, names: Sequence[str]) -> None:
    """A column whose values stop (trailing empty cells) before another column's is a length mismatch."""
    present = ~np.isnan(values)
    n = len(values)
    has_any = present.any(axis=0)
    last = np.where(has_any, n - 1 - np.argmax(present[::-1], axis=0), -1)
    longest = int(last.max())
    short = np.flatnonzero(last < longest)
    if len(short):
        j, k = int(short[0]), int(np.argmax(last))
        ends = f"has values only up to {row_ref(path, int(last[j]))}" if last[j] >= 0 else "has no values"
        raise DataError(f"{path}: column {names[j]!r} {ends}, but column {names[k]!r} goes on to "
                        f"{row_ref(path, longest)}: features and targets must have the same length "
                        f"(pass impute='ffill' or 'zero' to fill the missing tail)")


def _impute_missing(path: Path, values: np.ndarray, names: Sequence[str], impute: Optional[str]) -> tuple:
    """``(values, notes)``: NaN / inf filled (or raise without ``impute``), notes naming counts per column."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values, []
    if impute is None:
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise DataError(f"{path}: {row_ref(path, i)}, column {names[j]!r}: value is {float(values[i, j])!r} "
                        f"({int(bad.sum())} non-finite value(s) in this file); pass impute='ffill' or "
                        f"impute='zero' to fill them")
    values, bad = fill_nonfinite(
        values, impute, lambda j: f"{path}: column {names[j]!r} has no finite value to forward-fill from")
    notes = [f"{path.name}: imputed {int(bad[:, j].sum())} value(s) in column {names[j]!r} ({impute})"
             for j in np.flatnonzero(bad.any(axis=0))]
    return values, notes


# ------------------------------------------------------------------------------------------ sequences
@dataclass
class _Sequence:
    """One validated file: row times, features and targets, plus its window layout."""

    path: Path
    time: np.ndarray
    features: np.ndarray
    targets: np.ndarray
    notes: list = field(default_factory=list)
    window: Optional[np.ndarray] = None  # per kept row: window index
    lo: Optional[np.ndarray] = None  # per window: first row
    hi: Optional[np.ndarray] = None  # per window: one past the last row


def _load_sequence(path: Path, df: pd.DataFrame, time_column: str, targets: Sequence[str],
                   feature_cols: Sequence[str], impute: Optional[str]) -> _Sequence:
    """Validated time, features and targets of one file; target columns it lacks are zeros (noted)."""
    t = numeric_columns(path, df, [time_column])[:, 0]
    _check_time(path, t, time_column)
    present = [c for c in targets if c in df.columns]
    names = list(feature_cols) + present
    values = numeric_columns(path, df, names)
    if impute is None:
        _check_lengths(path, values, names)
    values, notes = _impute_missing(path, values, names, impute)
    d = len(feature_cols)
    target_values = np.zeros((len(t), len(targets)), dtype=np.float64)
    for j, name in enumerate(targets):
        if name in present:
            target_values[:, j] = values[:, d + present.index(name)]
    absent = [c for c in targets if c not in present]
    if absent:
        notes.append(f"{path.name}: no target column(s) {absent}: zeros (require_targets=False; predictions only)")
    return _Sequence(path, t, values[:, :d], target_values, notes)


def _layout(seq: _Sequence, seconds: float, impute: Optional[str]) -> None:
    """Assign rows to windows, drop a short trailing window, and check for empty windows."""
    t = seq.time
    w = np.floor(t / seconds + _EPS).astype(np.int64)
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    n_win = int(w[-1]) + 1
    if t[-1] + step - (n_win - 1) * seconds < seconds / 2 - _EPS * seconds:
        n_win -= 1
        dropped = int(np.sum(w >= n_win))
        if dropped:
            seq.notes.append(f"{seq.path.name}: dropped the last {t[-1] - n_win * seconds + step:.3g} s "
                             f"({dropped} row(s)): shorter than half a segment")
    if n_win <= 0:
        raise DataError(f"{seq.path}: sequence lasts {t[-1] + step:.3g} s, shorter than half a segment "
                        f"({seconds:g} s); no segment can be made")
    keep = int(np.searchsorted(w, n_win, side="left"))
    w = w[:keep]
    ids = np.arange(n_win)
    lo = np.searchsorted(w, ids, side="left")
    hi = np.searchsorted(w, ids, side="right")
    empty = np.flatnonzero(hi == lo)
    if len(empty):
        if impute is None:
            i = int(empty[0])
            before = (f"the row before is {row_ref(seq.path, int(lo[i]) - 1)} at t={t[lo[i] - 1]:g} s"
                      if lo[i] > 0 else "no row before it")
            after = f"the next is {row_ref(seq.path, int(lo[i]))} at t={t[lo[i]]:g} s"
            raise DataError(f"{seq.path}: no rows between t={i * seconds:g} s and t={(i + 1) * seconds:g} s "
                            f"(segment {i}: {before}, {after}; {len(empty)} empty segment(s) in this file); "
                            f"pass impute='ffill' or 'zero', or a longer segment_seconds")
        seq.notes.append(f"{seq.path.name}: filled {len(empty)} empty segment(s) (time gaps) ({impute})")
    seq.window, seq.lo, seq.hi = w, lo, hi


def _segment(seq: _Sequence, seconds: float, k: int, impute: Optional[str]) -> Movie:
    """Cut one laid-out sequence into ``(T, K, D)`` frames and ``(T, n_targets)`` window means."""
    t, lo, hi = seq.time, seq.lo, seq.hi
    n_win = len(lo)
    counts = hi - lo
    filled = counts > 0
    tau = (np.arange(n_win)[:, None] + (np.arange(k)[None, :] + 0.5) / k) * seconds
    pos = np.searchsorted(t, tau, side="left")
    lo_, last = lo[:, None], np.maximum(hi - 1, lo)[:, None]
    right = np.clip(pos, lo_, last)
    left = np.clip(pos - 1, lo_, last)
    closer = np.abs(t[right] - tau) < np.abs(t[left] - tau) - _EPS * seconds  # ties go to the earlier row
    pick = np.where(closer, right, left)
    targets = np.zeros((n_win, seq.targets.shape[1]), dtype=np.float64)
    end = int(hi[filled].max())  # rows past the last filled window belong to no segment
    targets[filled] = np.add.reduceat(seq.targets[:end], lo[filled], axis=0) / counts[filled, None]
    if filled.all():
        features = seq.features[pick]
    else:
        hold = np.maximum(lo - 1, 0)  # last row before an empty window (the first row for a leading gap)
        pick[~filled] = hold[~filled, None]
        features = seq.features[pick]
        if impute == "zero":
            features[~filled] = 0.0
        else:
            targets[~filled] = seq.targets[hold[~filled]]
    return Movie(
        movie_id=seq.path.stem,
        features=features.astype(np.float32),
        targets=targets.astype(np.float32),
        times=np.arange(n_win, dtype=np.float64) * seconds,
        source=str(seq.path),
        notes=list(seq.notes),
    )


# --------------------------------------------------------------------------------------------- loader
def _check_options(split: str, targets: Sequence[str], segment_seconds: float,
                   frames_per_segment: Optional[int], impute: Optional[str]) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if not targets:
        raise DataError("at least one target column is needed")
    if len(set(targets)) != len(targets):
        raise DataError(f"target columns {list(targets)} repeat a name")
    if not (isinstance(segment_seconds, (int, float)) and math.isfinite(segment_seconds) and segment_seconds > 0):
        raise DataError(f"segment_seconds must be a positive number, got {segment_seconds!r}")
    if frames_per_segment is not None and (int(frames_per_segment) != frames_per_segment or frames_per_segment < 1):
        raise DataError(f"frames_per_segment must be a positive integer, got {frames_per_segment!r}")
    if impute is not None and impute not in IMPUTE_MODES:
        raise DataError(f"impute must be None, 'ffill' or 'zero', got {impute!r}")


def _read_all(files: Sequence[Path], time_column: str, targets: Sequence[str], same_columns: bool,
              require_targets: bool = True) -> list:
    """``[(path, DataFrame)]`` for every file, structure-checked (columns match the first file if asked)."""
    frames = []
    reference = None
    for p in files:
        df = read_table(p)
        _check_structure(p, df, time_column, targets, reference if same_columns else None, require_targets)
        if reference is None:
            reference = (p, list(df.columns))
        frames.append((p, df))
    return frames


def _median_rows_per_window(seqs: Sequence[_Sequence]) -> int:
    """Default ``K``: median rows per non-empty window over all sequences, rounded half up (at least 1)."""
    counts = np.concatenate([seq.hi - seq.lo for seq in seqs])
    return max(1, int(math.floor(float(np.median(counts[counts > 0])) + 0.5)))


def load_tables(
    path: PathLike,
    split: str = "train",
    *,
    targets: Sequence[str] = ("valence", "arousal"),
    time_column: str = "time",
    feature_columns: Optional[Sequence[str]] = None,
    modalities: Optional[Mapping[str, Sequence[str]]] = None,
    segment_seconds: float = 1.0,
    frames_per_segment: Optional[int] = None,
    manifest: Optional[PathLike] = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    group_pattern: str = r"^([^_]+)_",
    impute: Optional[str] = None,
    require_targets: bool = True,
) -> MovieDataset:
    """Load one split of a directory of per-movie CSV / Parquet tables (format rules: module docstring).

    :param path: the directory
    :param split: ``"train"``, ``"val"`` or ``"test"``
    :param targets: target column names, in output order
    :param time_column: name of the time column (seconds from the start of the movie)
    :param feature_columns: feature columns in order (default: every numeric non-time, non-target column)
    :param modalities: ``{modality: [columns]}``; default one modality ``"features"`` with all feature columns
    :param segment_seconds: window length ``S`` of one segment, in seconds
    :param frames_per_segment: ``K``; default the median rows per window over the directory, rounded
    :param manifest: split manifest (CSV ``movie,split``, JSON ``{movie: split}`` or a shipped name such as
        ``"ceap360vr"``); default ``splits.csv`` in the directory, else the grouped rule
    :param split_fractions: (train, val, test) fractions of groups for the grouped rule
    :param group_pattern: regex whose first capture group on the file stem is the group (subject) key
    :param impute: ``None`` (missing values are errors), ``"ffill"`` or ``"zero"``
    :param require_targets: ``True``: every file must have every target column; ``False`` (prediction on
        unannotated movies): a target column a file lacks gives zero targets, noted per movie
    :return: the split's :class:`MovieDataset` (``name`` = directory name)
    """
    targets = (targets,) if isinstance(targets, str) else tuple(str(t) for t in targets)
    _check_options(split, targets, segment_seconds, frames_per_segment, impute)
    if time_column in targets:
        raise DataError(f"time column {time_column!r} is also a target")
    root = Path(path)
    exclude = [Path(manifest)] if manifest is not None and Path(manifest).is_file() else []
    files = list_table_files(root, exclude)
    split_of, notes = _splits_for(files, root, manifest, group_pattern, split_fractions)

    default_columns = feature_columns is None and modalities is None
    frames = _read_all(files, time_column, targets, same_columns=default_columns,
                       require_targets=bool(require_targets))
    modality_tuple, feature_cols, col_notes = _choose_features(frames, time_column, targets, feature_columns,
                                                               modalities)
    notes += col_notes
    seqs = [_load_sequence(p, df, time_column, targets, feature_cols, impute) for p, df in frames]
    del frames
    seconds = float(segment_seconds)
    for seq in seqs:
        _layout(seq, seconds, impute)
    if frames_per_segment is None:
        k = _median_rows_per_window(seqs)
        notes.append(f"frames_per_segment K={k}: median rows per {seconds:g} s window over {len(seqs)} file(s)")
    else:
        k = int(frames_per_segment)
    notes.append(f"features ({len(feature_cols)}): {feature_cols}; modalities: "
                 f"{[(m.name, m.dim) for m in modality_tuple]}")
    movies = [_segment(seq, seconds, k, impute) for seq in seqs if split_of[seq.path.stem] == split]
    for movie in movies:
        notes.extend(movie.notes)
    return MovieDataset(movies, modality_tuple, targets, k, seconds, name=root.name, split=split, notes=notes)
