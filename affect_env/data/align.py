"""Time alignment of one movie's per-second signals, shared by the MediaEval 2018 and LIRIS-ACCEDE readers,
and the one imputation of non-finite values (also used by the generic tables).

A reader turns every signal of a movie (one per feature modality, one per per-second annotation file) into a
:class:`Track`: the seconds that have a value, and the values. :func:`assemble` then builds the
:class:`~affect_env.data.types.Movie`:

* **Densify.** Inside a track's own range of seconds, a missing second (no file, an empty file, no
  annotation row) is filled by carrying the previous second forward when the run of missing seconds is at
  most ``max_gap`` long and the track misses at most ``max_missing`` seconds in all; otherwise the movie is
  skipped (:class:`SkipMovie`). NaN / inf values, which readers keep only when ``impute`` is set, are then
  filled column-wise by :func:`fill_nonfinite`.
* **Common range.** The movie keeps the seconds common to all tracks; it is skipped when that range is
  shorter than ``min_overlap`` times the longest track.
* **Grid.** Segments are the windows ``[i*S, (i+1)*S)`` of ``S = segment_seconds`` seconds anchored at
  second 0 (so segment times do not depend on which modalities are loaded) that lie entirely in the common
  range; partial windows at either end are dropped. Frame ``k`` of segment ``i`` is second ``i*S + k``; a
  segment's target is the mean of its per-second targets (interval targets: the fraction covered).

Every fill, cut and skip is a :class:`Notes` entry, logged on the ``affect_env.data`` logger. One module,
because these rules must be identical for every dataset cut on a per-second grid.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from affect_env.data.types import SPLITS, DataError, Movie
from affect_env.progress import progress_bar

__all__ = [
    "IMPUTE_MODES", "AlignConfig", "MovieInputs", "Notes", "SkipMovie", "Track", "assemble", "check_options",
    "file_track", "fill_nonfinite", "logger", "movie_bar", "per_second", "span",
]

logger = logging.getLogger("affect_env.data")

#: How NaN / inf values may be filled: carry the column's last valid value forward, or zero.
IMPUTE_MODES = ("ffill", "zero")


# ========================================================================================= imputation
def fill_nonfinite(values: np.ndarray, mode: str, no_finite: Callable[[int], str]) -> Tuple[np.ndarray, np.ndarray]:
    """Replace the NaN / inf values of a 2-d array column by column.

    ``"ffill"`` carries the last finite value of the column forward (leading ones take the column's first
    finite value); ``"zero"`` puts zeros.

    :param values: ``(n, d)`` array (not modified)
    :param mode: one of :data:`IMPUTE_MODES`
    :param no_finite: message for column ``j`` that has no finite value at all (``"ffill"`` only)
    :return: the filled array (same dtype) and the ``(n, d)`` mask of the values replaced
    :raises DataError: with ``no_finite(j)`` for the first column ``j`` ``"ffill"`` cannot fill
    """
    bad = ~np.isfinite(values)
    if not bad.any():
        return values, bad
    if mode == "zero":
        return np.where(bad, 0, values).astype(values.dtype), bad
    empty = bad.all(axis=0)
    if empty.any():
        raise DataError(no_finite(int(np.flatnonzero(empty)[0])))
    rows = np.arange(len(values))[:, None]
    idx = np.maximum.accumulate(np.where(bad, -1, rows), axis=0)
    first_valid = np.argmax(~bad, axis=0)
    idx = np.where(idx < 0, first_valid[None, :], idx)
    return np.take_along_axis(values, idx, axis=0), bad


# ============================================================================================== notes
class Notes:
    """Human-readable reports, kept in a list and logged on ``affect_env.data``."""

    def __init__(self) -> None:
        self.items: List[str] = []

    def add(self, message: str, level: int = logging.WARNING) -> None:
        """Record ``message`` and log it at ``level``."""
        self.items.append(message)
        logger.log(level, message)


class SkipMovie(Exception):
    """A movie cannot be used; the message says why (it becomes a note)."""


def movie_bar(items: Sequence, desc: str, show: bool):
    """``items`` wrapped in a tqdm progress bar over movies (hidden when ``show`` is false or none)."""
    return progress_bar(items, desc=desc, unit="movie", disable=not show or len(items) == 0)


# ============================================================================================= tracks
@dataclass
class Track:
    """One per-second signal of one movie (a modality, or a per-second annotation file).

    :param name: modality name, or the annotation file name, used in notes
    :param seconds: sorted, unique second indices that have a value
    :param values: ``(len(seconds), dim)`` values
    :param describe_missing: says why second ``s`` has no value (which file or row was expected)
    :param file_of: the file holding second ``s`` (for notes)
    :param empty: seconds whose file exists but holds no value, with the file
    """

    name: str
    seconds: np.ndarray
    values: np.ndarray
    describe_missing: Callable[[int], str]
    file_of: Callable[[int], str]
    empty: Dict[int, Path] = field(default_factory=dict)


def per_second(times: np.ndarray, values: np.ndarray, path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Average rows per second ``floor(time)``; negative or non-finite times raise."""
    if len(times) and (not np.all(np.isfinite(times)) or times.min() < 0):
        i = int(np.flatnonzero(~np.isfinite(times) | (times < 0))[0])
        raise DataError(f"{path}: data row {i + 1}: time {times[i]} is not a finite, non-negative number of "
                        f"seconds")
    secs = np.floor(times + 1e-9).astype(np.int64)
    uniq, inverse, counts = np.unique(secs, return_inverse=True, return_counts=True)
    if len(uniq) == len(secs):
        order = np.argsort(secs, kind="stable")
        return secs[order], values[order]
    sums = np.zeros((len(uniq), values.shape[1]))
    np.add.at(sums, inverse, values)
    return uniq, sums / counts[:, None]


def file_track(path: Path, table: np.ndarray) -> Track:
    """A track named after ``path`` from a table whose first column is time in seconds."""
    secs, vals = per_second(table[:, 0], table[:, 1:], path)
    return Track(path.name, secs, vals, lambda s: f"no row for second {s} in {path}", lambda s: path.name)


# ============================================================================================ options
@dataclass(frozen=True)
class AlignConfig:
    """Alignment policy shared by the MediaEval and LIRIS readers (see the module docstring)."""

    segment_seconds: int
    max_gap: int
    max_missing: int
    min_overlap: float
    impute: Optional[str]


def check_options(split: str, segment_seconds: float, impute: Optional[str], max_gap: int, max_missing: int,
                  min_overlap: float) -> AlignConfig:
    """Validate the options shared by the per-second readers."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {list(SPLITS)}")
    s = float(segment_seconds)
    if not math.isfinite(s) or s < 1 or s != int(s):
        raise DataError(f"segment_seconds={segment_seconds!r}: must be a whole number of seconds >= 1 "
                        f"(the features have one frame per second)")
    if impute is not None and impute not in IMPUTE_MODES:
        raise DataError(f"impute={impute!r}: must be None or one of {list(IMPUTE_MODES)}")
    if int(max_gap) < 0 or int(max_missing) < 0:
        raise DataError(f"max_gap={max_gap!r} and max_missing={max_missing!r} must be >= 0")
    if not 0.0 <= float(min_overlap) <= 1.0:
        raise DataError(f"min_overlap={min_overlap!r} must be in [0, 1]")
    return AlignConfig(int(s), int(max_gap), int(max_missing), float(min_overlap), impute)


# ========================================================================================== densify
def _runs(missing: np.ndarray) -> List[Tuple[int, int]]:
    """Runs ``(first, last)`` of consecutive integers in a sorted array."""
    if not len(missing):
        return []
    breaks = np.flatnonzero(np.diff(missing) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(missing) - 1]])
    return [(int(missing[a]), int(missing[b])) for a, b in zip(starts, ends)]


def span(a: int, b: int) -> str:
    """``"a"`` or ``"a-b"``."""
    return f"{a}" if a == b else f"{a}-{b}"


def _why_missing(track: Track, sec: int) -> str:
    if sec in track.empty:
        return f"file {track.empty[sec]} is empty"
    return track.describe_missing(sec)


def _densify(track: Track, movie_id: str, cfg: AlignConfig, notes: Notes) -> Tuple[int, np.ndarray]:
    """Dense values over the track's own range ``[first, last]``, filling isolated missing seconds.

    :return: ``(first second, (last - first + 1, dim) values)``
    :raises SkipMovie: no data, or more / longer gaps than the policy allows
    """
    if len(track.seconds) == 0:
        where = f" ({len(track.empty)} empty file(s), e.g. {next(iter(track.empty.values()))})" if track.empty else ""
        raise SkipMovie(f"{track.name}: no data{where}; expected e.g. {track.describe_missing(0)}")
    first, last = int(track.seconds[0]), int(track.seconds[-1])
    for sec, path in sorted(track.empty.items()):
        if not first <= sec <= last:
            notes.add(f"{movie_id}: {track.name}: file {path} is empty; second {sec} lies outside the seconds "
                      f"{first}-{last} that have data, so it is not used")
    dense = np.empty((last - first + 1, track.values.shape[1]), dtype=track.values.dtype)
    dense[track.seconds - first] = track.values
    present = np.zeros(last - first + 1, dtype=bool)
    present[track.seconds - first] = True
    missing = np.flatnonzero(~present) + first
    runs = _runs(missing)
    if runs:
        longest = max(b - a + 1 for a, b in runs)
        detail = "; ".join(f"second {span(a, b)} ({_why_missing(track, a)})" for a, b in runs[:5])
        if longest > cfg.max_gap or len(missing) > cfg.max_missing:
            raise SkipMovie(
                f"{track.name}: {len(missing)} missing second(s) in {len(runs)} gap(s), longest {longest} s "
                f"(policy: fill gaps of at most max_gap={cfg.max_gap} s and at most "
                f"max_missing={cfg.max_missing} s per modality): {detail}")
        for sec in missing:
            dense[sec - first] = dense[sec - first - 1]
        notes.add(f"{movie_id}: {track.name}: {len(missing)} missing second(s) filled by carrying the previous "
                  f"second forward: {detail}")
    return first, _impute(dense, f"{movie_id}: {track.name}", cfg.impute, notes)


def _impute(dense: np.ndarray, where: str, impute: Optional[str], notes: Notes) -> np.ndarray:
    """Replace NaN / inf (only present when ``impute`` is set) column-wise, noting how many."""
    if impute is None:
        return dense
    dense, bad = fill_nonfinite(
        dense, impute, lambda j: f"{where}: column {j + 1} has no finite value at all; nothing to carry forward")
    if bad.any():
        notes.add(f"{where}: {int(bad.sum())} non-finite value(s) imputed ({impute})")
    return dense


# ========================================================================================= assemble
@dataclass
class MovieInputs:
    """Everything read for one movie, before alignment.

    :param features: one track per modality, in modality order
    :param targets: per-target source: ``("track", name, column)``, ``("intervals", array)`` or ``("zeros",)``
    :param target_tracks: per-second target tracks by name (they take part in the common range)
    """

    movie_id: str
    source: str
    features: List[Track]
    targets: List[tuple]
    target_tracks: Dict[str, Track] = field(default_factory=dict)


def _common_range(movie_id: str, ranges: Dict[str, Tuple[int, int]], tracks: Dict[str, Track],
                  cfg: AlignConfig, notes: Notes) -> Tuple[int, int]:
    """Seconds covered by every track; notes cuts, skips when the overlap is too small."""
    lo = max(a for a, _ in ranges.values())
    hi = min(b for _, b in ranges.values())
    desc = ", ".join(f"{k} {a}-{b}" for k, (a, b) in ranges.items())
    if hi < lo:
        raise SkipMovie(f"modalities share no second ({desc})")
    longest = max(b - a + 1 for a, b in ranges.values())
    overlap = (hi - lo + 1) / longest
    if overlap < cfg.min_overlap:
        raise SkipMovie(f"the seconds common to all modalities ({lo}-{hi}, {hi - lo + 1} s) are only "
                        f"{overlap:.0%} of the longest modality ({longest} s), below min_overlap="
                        f"{cfg.min_overlap:g} ({desc})")
    lost = max(max(lo - a, 0) + max(b - hi, 0) for a, b in ranges.values())
    if lost:
        first = min(a for a, _ in ranges.values())
        last = max(b for _, b in ranges.values())
        limits = [_limit(k, "starts", a, tracks[k]) for k, (a, _) in ranges.items() if a == lo > first] + \
                 [_limit(k, "ends", b, tracks[k]) for k, (_, b) in ranges.items() if b == hi < last]
        level = logging.WARNING if lost > max(10, 2 * cfg.segment_seconds) else logging.INFO
        notes.add(f"{movie_id}: modalities cover different seconds ({desc}); cut to the common seconds "
                  f"{lo}-{hi}, up to {lost} s dropped ({'; '.join(limits)})", level)
    return lo, hi


def _limit(name: str, verb: str, sec: int, track: Track) -> str:
    """``"fc6 ends at second 24 (MEDIAEVAL18_18-00024_fc6.txt)"``."""
    where = track.file_of(sec)
    return f"{name} {verb} at second {sec}" + ("" if where == name else f" ({where})")


def _grid(movie_id: str, lo: int, hi: int, s: int, notes: Notes) -> Tuple[int, int]:
    """First second and number of whole ``s``-second segments (anchored at 0) inside ``[lo, hi]``."""
    g0 = -(-lo // s) * s
    n = (hi + 1 - g0) // s
    if n <= 0:
        raise SkipMovie(f"the common seconds {lo}-{hi} hold no whole {s}-s segment")
    head, tail = g0 - lo, hi + 1 - (g0 + n * s)
    if head or tail:
        parts = ([f"leading seconds {lo}-{g0 - 1}"] if head else []) + \
                ([f"trailing partial segment (seconds {g0 + n * s}-{hi})"] if tail else [])
        notes.add(f"{movie_id}: dropped the {' and the '.join(parts)}: segments are whole {s}-s windows "
                  f"starting at multiples of {s} s", logging.INFO)
    return g0, n


def _interval_coverage(intervals: np.ndarray, secs: np.ndarray) -> np.ndarray:
    """Fraction of each second ``[s, s+1)`` covered by the union of ``intervals``."""
    merged: List[List[float]] = []
    for start, end in sorted(map(tuple, intervals)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    cover = np.zeros(len(secs))
    for start, end in merged:
        cover += np.clip(np.minimum(end, secs + 1.0) - np.maximum(start, secs), 0.0, 1.0)
    return cover


def assemble(inputs: MovieInputs, cfg: AlignConfig, notes: Notes) -> Movie:
    """Align all tracks of one movie on the second index and cut it into segments.

    :raises SkipMovie: when a policy says the movie cannot be used
    """
    mid, s = inputs.movie_id, cfg.segment_seconds
    tracks = {t.name: t for t in list(inputs.features) + list(inputs.target_tracks.values())}
    if len(tracks) != len(inputs.features) + len(inputs.target_tracks):
        raise DataError(f"{inputs.source}: two signals of {mid} share a name: {[t.name for t in inputs.features]} "
                        f"{list(inputs.target_tracks)}")
    dense = {name: _densify(track, mid, cfg, notes) for name, track in tracks.items()}
    ranges = {k: (a, a + len(v) - 1) for k, (a, v) in dense.items()}
    lo, hi = _common_range(mid, ranges, tracks, cfg, notes)
    g0, n_seg = _grid(mid, lo, hi, s, notes)
    secs = g0 + np.arange(n_seg * s)
    dim = sum(t.values.shape[1] for t in inputs.features)
    feats = np.empty((len(secs), dim), dtype=np.float32)
    col = 0
    for track in inputs.features:
        start, values = dense[track.name]
        feats[:, col:col + values.shape[1]] = values[secs - start]
        col += values.shape[1]
    per_sec = np.zeros((len(secs), len(inputs.targets)))
    for j, spec in enumerate(inputs.targets):
        if spec[0] == "track":
            start, values = dense[spec[1]]
            per_sec[:, j] = values[secs - start, spec[2]]
        elif spec[0] == "intervals":
            per_sec[:, j] = _interval_coverage(spec[1], secs.astype(np.float64))
    targets = per_sec.reshape(n_seg, s, -1).mean(axis=1)
    return Movie(movie_id=mid, features=feats.reshape(n_seg, s, dim), targets=targets.astype(np.float32),
                 times=(g0 + s * np.arange(n_seg)).astype(np.float64), source=inputs.source,
                 notes=list(notes.items))
