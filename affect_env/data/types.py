"""Core data containers shared by every data source.

A :class:`MovieDataset` is a list of :class:`Movie`; a movie is ``T`` segments, each of ``K`` frames of
``D`` features (the modalities concatenated per frame, in the order of ``modalities``) plus one target
vector per segment. Every reader (synthetic, generic tables, MediaEval) returns these, so the encoder,
the environment and the agents never care where a movie came from. :data:`SPLITS` names the splits they all
share.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

#: The three splits every reader knows, in this order.
SPLITS = ("train", "val", "test")
#: A file or directory argument: a string or a :class:`~pathlib.Path`.
PathLike = Union[str, Path]


class DataError(ValueError):
    """Bad input data. The message always names the file (or movie) and the row / column / field."""


@dataclass(frozen=True)
class Modality:
    """One named block of feature columns (e.g. ``audio`` with 24 dims)."""

    name: str
    dim: int


@dataclass
class Movie:
    """One sequence (a film, or one viewer's session) cut into segments.

    :param movie_id: unique, file-system safe identifier (used for output file names)
    :param features: ``(T, K, D)`` float32, ``K`` frames per segment, ``D = sum(m.dim for m in modalities)``
    :param targets: ``(T, n_targets)`` float32, the per-segment ground truth
    :param times: ``(T,)`` float64, start time of each segment in seconds
    :param oracle: ``(T, n_targets)`` Bayes-optimal prediction given the whole history, where known
    :param no_memory: ``(T, n_targets)`` Bayes-optimal prediction given only the current segment, where known
    :param source: where the movie came from (a path or ``"synthetic"``), for error messages
    :param notes: what the reader filled, cut or skipped (and, for synthetic movies, the latent story)
    :param components: where known, ``{name: (T, n_targets) bool mask}`` of the cells whose memory-dependent
        part comes from one latent cause (e.g. the synthetic genre, characters, arc), so ``gap_closed`` can
        be reported per cause
    """

    movie_id: str
    features: np.ndarray
    targets: np.ndarray
    times: np.ndarray
    oracle: Optional[np.ndarray] = None
    no_memory: Optional[np.ndarray] = None
    source: str = ""
    notes: list = field(default_factory=list)
    components: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.movie_id
        if self.features.ndim != 3:
            raise DataError(f"{where}: features must be (T, K, D), got shape {self.features.shape}")
        if self.targets.ndim != 2:
            raise DataError(f"{where}: targets must be (T, n_targets), got shape {self.targets.shape}")
        if len(self.features) != len(self.targets) or len(self.times) != len(self.targets):
            raise DataError(
                f"{where}: features ({len(self.features)} segments), targets ({len(self.targets)}) and "
                f"times ({len(self.times)}) differ in length"
            )
        if len(self.targets) == 0:
            raise DataError(f"{where}: movie has no segments")
        for name in ("oracle", "no_memory"):
            ref = getattr(self, name)
            if ref is not None and ref.shape != self.targets.shape:
                raise DataError(f"{where}: {name} shape {ref.shape} != targets shape {self.targets.shape}")
        for name, mask in self.components.items():
            if np.shape(mask) != self.targets.shape:
                raise DataError(f"{where}: component {name!r} mask shape {np.shape(mask)} != targets shape "
                                f"{self.targets.shape}")

    @property
    def n_segments(self) -> int:
        return int(self.targets.shape[0])

    def __len__(self) -> int:
        return self.n_segments


@dataclass
class MovieDataset:
    """A split of movies sharing one feature layout and one set of target names."""

    movies: list
    modalities: tuple
    target_names: tuple
    frames_per_segment: int
    segment_seconds: float
    name: str = ""
    split: str = ""
    notes: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        self.target_names = tuple(self.target_names)
        d = self.feature_dim
        for movie in self.movies:
            where = movie.source or movie.movie_id
            if movie.features.shape[1:] != (self.frames_per_segment, d):
                raise DataError(
                    f"{where}: features have shape (K, D) = {movie.features.shape[1:]}, expected "
                    f"({self.frames_per_segment}, {d}) like the rest of dataset {self.name!r}"
                )
            if movie.targets.shape[1] != len(self.target_names):
                raise DataError(
                    f"{where}: {movie.targets.shape[1]} target columns, expected {len(self.target_names)} "
                    f"({', '.join(self.target_names)})"
                )

    @property
    def feature_dim(self) -> int:
        return int(sum(m.dim for m in self.modalities))

    @property
    def has_oracle(self) -> bool:
        return bool(self.movies) and all(m.oracle is not None and m.no_memory is not None for m in self.movies)

    @property
    def n_segments(self) -> int:
        return int(sum(m.n_segments for m in self.movies))

    def __len__(self) -> int:
        return len(self.movies)

    def __iter__(self):
        return iter(self.movies)

    def select_targets(self, names: Sequence[str]) -> "MovieDataset":
        """Keep only the target columns ``names`` (in that order)."""
        names = tuple(names)
        missing = [n for n in names if n not in self.target_names]
        if missing:
            raise DataError(
                f"dataset {self.name!r}: unknown target(s) {missing}; available: {list(self.target_names)}"
            )
        idx = [self.target_names.index(n) for n in names]
        movies = []
        for m in self.movies:
            movies.append(
                Movie(
                    movie_id=m.movie_id,
                    features=m.features,
                    targets=m.targets[:, idx],
                    times=m.times,
                    oracle=None if m.oracle is None else m.oracle[:, idx],
                    no_memory=None if m.no_memory is None else m.no_memory[:, idx],
                    source=m.source,
                    notes=list(m.notes),
                    components={k: np.asarray(v)[:, idx] for k, v in m.components.items()},
                )
            )
        return MovieDataset(movies, self.modalities, names, self.frames_per_segment, self.segment_seconds,
                            self.name, self.split, list(self.notes))
