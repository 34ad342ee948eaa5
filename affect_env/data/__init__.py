"""Data layer: every source yields a :class:`MovieDataset` of :class:`Movie` objects.

``load_dataset(source, split)`` picks the reader from ``source``:

* ``"synthetic"`` — the embedded synthetic long-dependency movies (:mod:`affect_env.data.synthetic`);
* a directory in the MediaEval 2018 "Emotional Impact of Movies" layout (:mod:`affect_env.data.mediaeval`),
  or the older continuous LIRIS-ACCEDE annotations (:mod:`affect_env.data.liris`);
* any other directory of per-sequence CSV / Parquet tables (:mod:`affect_env.data.tables`).

Shared building blocks: :mod:`affect_env.data.types` (containers, :data:`SPLITS`), :mod:`affect_env.data.readers`
(file parsing), :mod:`affect_env.data.align` (per-second alignment, imputation), :mod:`affect_env.data.splits`
(manifests, the grouped split rule), :mod:`affect_env.data.fear` (MediaEval fear files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from affect_env.data.liris import is_liris_continuous_root, load_liris_continuous
from affect_env.data.mediaeval import is_mediaeval_root, load_mediaeval
from affect_env.data.normalization import FeatureStats
from affect_env.data.synthetic import SyntheticConfig, load_synthetic
from affect_env.data.tables import load_tables
from affect_env.data.types import SPLITS, DataError, Modality, Movie, MovieDataset

__all__ = [
    "SPLITS", "DataError", "FeatureStats", "Modality", "Movie", "MovieDataset", "SyntheticConfig",
    "detect_format", "load_dataset", "load_synthetic",
]


def detect_format(source: str) -> str:
    """Name of the reader for ``source``: ``synthetic``, ``mediaeval``, ``liris_continuous`` or ``tables``."""
    if str(source) == "synthetic":
        return "synthetic"
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: dataset not found (give 'synthetic' or an existing directory)")
    if not path.is_dir():
        raise DataError(f"{source}: a dataset must be a directory of per-movie files")
    if is_mediaeval_root(path):
        return "mediaeval"
    if is_liris_continuous_root(path):
        return "liris_continuous"
    return "tables"


def load_dataset(
    source: str = "synthetic",
    split: str = "train",
    targets: Optional[Sequence[str]] = None,
    segment_seconds: Optional[float] = None,
    **options,
) -> MovieDataset:
    """Load ``split`` ("train", "val" or "test") of ``source`` and keep the target columns ``targets``.

    ``options`` go to the reader (e.g. ``length=`` for synthetic, ``manifest=`` for tables).
    """
    kind = detect_format(source)
    if kind == "synthetic":
        config = options.pop("config", None)
        ds = load_synthetic(split, config=config, **options)
    elif kind in ("mediaeval", "liris_continuous"):
        reader = load_mediaeval if kind == "mediaeval" else load_liris_continuous
        kwargs = dict(options)
        if segment_seconds is not None:
            kwargs["segment_seconds"] = segment_seconds
        if targets is not None and kind == "mediaeval":
            kwargs["targets"] = tuple(targets)
        ds = reader(source, split=split, **kwargs)
    else:
        kwargs = dict(options)
        if segment_seconds is not None:
            kwargs["segment_seconds"] = segment_seconds
        if targets is not None:
            kwargs["targets"] = tuple(targets)
        ds = load_tables(source, split=split, **kwargs)
    if targets is not None and tuple(targets) != ds.target_names:
        ds = ds.select_targets(targets)
    if not ds.movies:
        raise DataError(f"{source}: split {split!r} has no movies")
    return ds
