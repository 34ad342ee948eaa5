"""Reader for the older continuous LIRIS-ACCEDE annotations with user-provided feature tables
(:func:`load_liris_continuous`).

The annotations are licensed and cannot ship, and the release has no features; point the reader at the
directory holding:

* ``<Title>_Valence.txt`` / ``<Title>_Arousal.txt`` (tab-separated, header ``Time  Mean  Std``; ``Mean``
  is the target) in ``root`` or ``root/annotations``;
* one feature table per film, ``root/features/<Title>.csv`` or ``.parquet`` (or ``features_dir``), with a
  ``time`` column (seconds) and numeric feature columns, one row per frame; every table must have the
  columns of the first one (sorted by title).

Annotation rows and feature rows are averaged per second ``floor(time)`` and then aligned and cut into
segments exactly like MediaEval 2018 (:mod:`affect_env.data.align`). Films are split by a manifest or by
the deterministic rule of :mod:`affect_env.data.splits` (one group per film); see
:func:`liris_continuous_splits`.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from affect_env.data.align import (
    MovieInputs, Notes, SkipMovie, Track, assemble, check_options, file_track, movie_bar, per_second,
)
from affect_env.data.readers import (
    TABLE_SUFFIXES, check_finite, numeric_columns, read_header_table, read_table, row_ref,
)
from affect_env.data.splits import assign_splits, read_manifest
from affect_env.data.types import SPLITS, DataError, Modality, MovieDataset, PathLike

__all__ = ["LIRIS_HEADER", "is_liris_continuous_root", "liris_annotation_dir", "liris_continuous_splits",
           "load_liris_continuous"]

LIRIS_HEADER = ("Time", "Mean", "Std")


# ================================================================================ annotations and splits
def liris_annotation_dir(root: PathLike) -> Optional[Path]:
    """The directory holding ``*_Valence.txt`` files: ``root`` or ``root/annotations``, else ``None``."""
    root = Path(root)
    for d in (root, root / "annotations"):
        if d.is_dir() and any(d.glob("*_Valence.txt")):
            return d
    return None


def is_liris_continuous_root(path: PathLike) -> bool:
    """Whether ``path`` (or ``path/annotations``) holds continuous LIRIS-ACCEDE ``*_Valence.txt`` files.

    :param path: candidate dataset root
    """
    path = Path(path)
    return path.is_dir() and liris_annotation_dir(path) is not None


def _liris_titles(ann_dir: Path, notes: Notes) -> List[str]:
    """Titles with both a ``_Valence.txt`` and an ``_Arousal.txt`` file, sorted."""
    valence = {p.name[: -len("_Valence.txt")] for p in ann_dir.glob("*_Valence.txt")}
    arousal = {p.name[: -len("_Arousal.txt")] for p in ann_dir.glob("*_Arousal.txt")}
    for title in sorted(valence ^ arousal):
        have = "Valence" if title in valence else "Arousal"
        notes.add(f"{title}: only {ann_dir / f'{title}_{have}.txt'} exists (no "
                  f"{'Arousal' if have == 'Valence' else 'Valence'} file); film not used")
    return sorted(valence & arousal)


def _safe_id(title: str) -> str:
    """File-system safe movie id for a film title."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", title).strip("._") or "movie"


def liris_continuous_splits(root: PathLike, manifest: Optional[PathLike] = None,
                            split_fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> Dict[str, List[str]]:
    """Titles of each split of a continuous LIRIS-ACCEDE root.

    Without ``manifest``: titles sorted, first 70 % (rounded half up) ``train``, next 15 % ``val``, rest
    ``test`` (the rule of :func:`affect_env.data.splits.assign_splits`, one group per film). With a
    manifest (CSV ``movie,split`` or JSON ``{movie: split}``, movie = title), titles it does not list are
    not used.

    :param root: dataset root
    :param manifest: optional split manifest
    :param split_fractions: (train, val, test) fractions for the rule
    :return: ``{"train": [...], "val": [...], "test": [...]}``
    """
    return _liris_splits(Path(root), manifest, split_fractions, Notes())[0]


def _liris_splits(root: Path, manifest: Optional[PathLike], split_fractions: Sequence[float],
                  notes: Notes) -> Tuple[Dict[str, List[str]], Path]:
    ann_dir = liris_annotation_dir(root)
    if ann_dir is None:
        raise DataError(f"{root}: no *_Valence.txt file in it or in its annotations/ directory")
    titles = _liris_titles(ann_dir, notes)
    if manifest is not None:
        split_of = read_manifest(manifest)
        unknown = sorted(set(split_of) - set(titles))
        if unknown:
            raise DataError(f"{manifest}: films {unknown[:5]} have no annotation files in {ann_dir}")
        unlisted = [t for t in titles if t not in split_of]
        if unlisted:
            notes.add(f"{manifest}: {len(unlisted)} film(s) not listed, not used: {unlisted[:5]}", logging.INFO)
    else:
        split_of = assign_splits(titles, group_pattern=r"^(.+)$", split_fractions=split_fractions)
    return {s: [t for t in titles if split_of.get(t) == s] for s in SPLITS}, ann_dir


# ======================================================================================== feature tables
def _feature_table(features_dir: Path, title: str) -> Optional[Path]:
    for suffix in TABLE_SUFFIXES:
        p = features_dir / f"{title}{suffix}"
        if p.is_file():
            return p
    return None


def _read_frame(path: Path) -> pd.DataFrame:
    """Read a feature table (a header without rows gives a film without data); column names stripped."""
    df = read_table(path, allow_no_rows=True)
    df.columns = [c.strip() for c in df.columns]
    return df


def _time_column(path: Path, columns: Sequence[str]) -> str:
    match = [c for c in columns if c.lower() == "time"]
    if not match:
        raise DataError(f"{path}: no 'time' column (seconds); columns: {list(columns)[:10]}")
    return match[0]


def _liris_modalities(path: Path, columns: List[str],
                      modalities: Optional[Mapping[str, Sequence[str]]]) -> Tuple[Tuple[Modality, ...], List[str]]:
    """Modality layout and ordered feature columns (default: one ``features`` modality, file order)."""
    time_col = _time_column(path, columns)
    if modalities is None:
        cols = [c for c in columns if c != time_col]
        if not cols:
            raise DataError(f"{path}: no feature column besides {time_col!r}")
        return (Modality("features", len(cols)),), cols
    cols, mods = [], []
    for name, names in modalities.items():
        names = list(names)
        missing = [c for c in names if c not in columns]
        if missing or not names:
            raise DataError(f"{path}: modality {name!r}: columns {missing or '(none)'} not in the table")
        cols += names
        mods.append(Modality(str(name), len(names)))
    return tuple(mods), cols


def _feature_values(path: Path, df: pd.DataFrame, cols: List[str], allow_nonfinite: bool) -> np.ndarray:
    """Numeric ``(rows, len(cols))`` array; errors name file, row and column."""
    out = numeric_columns(path, df, cols)
    check_finite(out, allow_nonfinite, lambda i, j: f"{path}: {row_ref(path, i)}, column {cols[j]!r}")
    return out


def _liris_feature_track(path: Path, cols: List[str], allow_nonfinite: bool) -> Track:
    """Feature table -> per-second track (rows averaged per second ``floor(time)``)."""
    df = _read_frame(path)
    time_col = _time_column(path, list(df.columns))
    missing = [c for c in cols if c not in df.columns]
    extra = [c for c in df.columns if c not in cols and c != time_col]
    if missing:
        raise DataError(f"{path}: feature columns {missing[:5]} missing (the first feature table has them)"
                        + (f"; unexpected {extra[:5]}" if extra else ""))
    times = _feature_values(path, df, [time_col], False)[:, 0]
    secs, vals = per_second(times, _feature_values(path, df, cols, allow_nonfinite), path)
    return Track("features", secs, vals.astype(np.float32), lambda s: f"no row with {s} <= time < {s + 1} in {path}",
                 lambda s: path.name)


def _split_track(track: Track, modalities: Sequence[Modality]) -> List[Track]:
    """One track per modality (columns in modality order) so notes and ranges are per modality."""
    out, col = [], 0
    for m in modalities:
        out.append(Track(m.name, track.seconds, track.values[:, col:col + m.dim], track.describe_missing,
                         track.file_of))
        col += m.dim
    return out


# =============================================================================================== loading
def load_liris_continuous(
    root: PathLike,
    split: str = "train",
    *,
    segment_seconds: float = 5,
    impute: Optional[str] = None,
    max_gap: int = 1,
    max_missing: int = 5,
    min_overlap: float = 0.5,
    features_dir: Optional[PathLike] = None,
    modalities: Optional[Mapping[str, Sequence[str]]] = None,
    manifest: Optional[PathLike] = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    progress: bool = True,
) -> MovieDataset:
    """Load one split of the continuous LIRIS-ACCEDE annotations with user-provided feature tables.

    Annotations: ``<Title>_Valence.txt`` / ``<Title>_Arousal.txt`` (tab-separated, header
    ``Time Mean Std``; the ``Mean`` is the target) in ``root`` or ``root/annotations``. Features:
    ``features_dir/<Title>.csv`` or ``.parquet`` with a ``time`` column (seconds) and numeric columns, one
    row per frame; every table must have the columns of the first one (sorted by title). Annotation and
    feature rows are averaged per second ``floor(time)``, then aligned and segmented as for MediaEval
    (:mod:`affect_env.data.align`).

    :param root: dataset root
    :param split: ``"train"``, ``"val"`` or ``"test"`` (see :func:`liris_continuous_splits`)
    :param segment_seconds: ``S``, seconds per segment (whole number); ``K = S``
    :param impute: ``None``, ``"ffill"`` or ``"zero"`` for NaN / inf values
    :param max_gap: longest run of missing seconds filled by carrying the previous second forward
    :param max_missing: most missing seconds filled per modality of a film
    :param min_overlap: skip a film whose common seconds are below this fraction of its longest signal
    :param features_dir: directory of the feature tables (default ``root/features``)
    :param modalities: ``{modality: [columns]}`` (default one modality ``features`` with every column)
    :param manifest: split manifest (CSV ``movie,split`` or JSON ``{movie: split}``, movie = title)
    :param split_fractions: (train, val, test) fractions of the sorted titles without a manifest
    :param progress: show a tqdm progress bar over films
    :return: the split, ``name="liris_accede_continuous"``
    """
    cfg = check_options(split, segment_seconds, impute, max_gap, max_missing, min_overlap)
    root = Path(root)
    ds_notes = Notes()
    splits, ann_dir = _liris_splits(root, manifest, split_fractions, ds_notes)
    fdir = Path(features_dir) if features_dir is not None else root / "features"
    all_titles = [t for s in SPLITS for t in splits[s]]
    tables = {t: _feature_table(fdir, t) for t in sorted(all_titles)}
    first = next((p for p in tables.values() if p is not None), None)
    if first is None:
        raise DataError(f"{fdir}: no feature table <Title>.csv / .parquet for any film (the continuous "
                        f"LIRIS-ACCEDE release has no features; provide one table per film with a 'time' column)")
    mods, cols = _liris_modalities(first, list(_read_frame(first).columns), modalities)
    ds_notes.add(f"split {split!r}: {len(splits[split])} film(s); features from {fdir} ({len(cols)} columns, "
                 f"layout of {first.name}); rows averaged per second", logging.INFO)
    allow = impute is not None
    movies = []
    for title in movie_bar(splits[split], f"LIRIS-ACCEDE {split}", progress):
        notes = Notes()
        mid = _safe_id(title)
        try:
            if tables[title] is None:
                raise SkipMovie(f"no feature table {fdir / (title + '.csv')} (or .parquet)")
            feats = _split_track(_liris_feature_track(tables[title], cols, allow), mods)
            paths = [ann_dir / f"{title}_Valence.txt", ann_dir / f"{title}_Arousal.txt"]
            ann = [file_track(p, read_header_table(p, LIRIS_HEADER, allow)[:, :2]) for p in paths]
            inputs = MovieInputs(mid, str(paths[0]), feats, [("track", t.name, 0) for t in ann],
                                 {t.name: t for t in ann})
            movies.append(assemble(inputs, cfg, notes))
        except SkipMovie as exc:
            notes.add(f"{mid}: skipped: {exc}")
        ds_notes.items.extend(notes.items)
    return MovieDataset(movies, mods, ("valence", "arousal"), cfg.segment_seconds, float(cfg.segment_seconds),
                        name="liris_accede_continuous", split=split, notes=ds_notes.items)
