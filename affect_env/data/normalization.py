"""Per-feature standardisation statistics, fitted on the training split and saved with models.

:class:`FeatureStats` holds the mean and standard deviation of each of the ``D`` feature dims over every
frame (all movies, segments and frames) of a dataset. Fit it on the **train** split only, then
:meth:`FeatureStats.apply` it to every split, and save it next to the model so evaluation uses the very
same numbers.

* The fit is one pass over the movies with float64 accumulators, merging per-movie means and sums of
  squared deviations (Chan et al.'s parallel update), so it is stable even when a feature's mean is large
  compared to its spread, and never holds more than one movie's frames in float64.
* ``std`` is the population standard deviation (``ddof = 0``, like :func:`numpy.std`).
* A dim whose ``std`` is at most ``std_floor`` (default ``1e-6``, e.g. a constant column) is only
  centred, not scaled (its scale is 1), so it stays finite even where another split holds other values.
* The JSON file stores ``mean``, ``std``, ``std_floor``, ``count`` (frames seen), the feature layout
  (``modalities``) and where the stats came from (``fitted_on``); it is written atomically
  (:func:`affect_env.files.atomic_write_text`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from affect_env.data.types import DataError, Modality, Movie, MovieDataset
from affect_env.files import atomic_write_text

__all__ = ["FeatureStats"]

FORMAT_VERSION = 1


class FeatureStats:
    """Mean and standard deviation of each feature dim.

    :param mean: ``(D,)`` per-dim mean
    :param std: ``(D,)`` per-dim population standard deviation
    :param std_floor: dims with ``std <= std_floor`` are centred but not scaled
    :param count: number of frames the statistics were computed from
    :param modalities: feature layout the stats belong to (checked by :meth:`apply` when known)
    :param fitted_on: free text saying which dataset / split the stats came from
    """

    def __init__(self, mean, std, std_floor: float = 1e-6, count: int = 0,
                 modalities: Optional[tuple] = None, fitted_on: str = "") -> None:
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise DataError(f"FeatureStats: mean {self.mean.shape} and std {self.std.shape} differ in shape")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()) or (self.std < 0).any():
            raise DataError("FeatureStats: mean and std must be finite and std non-negative")
        if not (np.isfinite(std_floor) and std_floor >= 0):
            raise DataError(f"FeatureStats: std_floor must be a non-negative number, got {std_floor!r}")
        self.std_floor = float(std_floor)
        self.count = int(count)
        self.modalities = None if modalities is None else tuple(
            m if isinstance(m, Modality) else Modality(str(m[0]), int(m[1])) for m in modalities
        )
        if self.modalities is not None and sum(m.dim for m in self.modalities) != self.dim:
            raise DataError(f"FeatureStats: modalities {self.modalities} do not add up to {self.dim} dims")
        self.fitted_on = str(fitted_on)

    # ------------------------------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, dataset: MovieDataset, std_floor: float = 1e-6) -> "FeatureStats":
        """Statistics over every frame of ``dataset`` (pass the train split only).

        :param dataset: the movies to fit on
        :param std_floor: see the class docstring
        :return: the fitted stats
        """
        d = dataset.feature_dim
        count = 0
        mean = np.zeros(d, dtype=np.float64)
        m2 = np.zeros(d, dtype=np.float64)
        for movie in dataset.movies:
            frames = movie.features.reshape(-1, movie.features.shape[-1]).astype(np.float64)
            if frames.shape[1] != d:
                raise DataError(f"{movie.source or movie.movie_id}: {frames.shape[1]} feature dims, expected {d}")
            if not np.isfinite(frames).all():
                raise DataError(f"{movie.source or movie.movie_id}: non-finite feature values; cannot fit stats")
            n = len(frames)
            if n == 0:
                continue
            b_mean = frames.mean(axis=0)
            b_m2 = ((frames - b_mean) ** 2).sum(axis=0)
            total = count + n
            delta = b_mean - mean
            mean = mean + delta * (n / total)
            m2 = m2 + b_m2 + delta ** 2 * (count * n / total)
            count = total
        if count == 0:
            raise DataError(f"dataset {dataset.name!r} split {dataset.split!r}: no frames to fit feature stats on")
        where = f"{dataset.name}:{dataset.split}" if dataset.split else dataset.name
        return cls(mean, np.sqrt(m2 / count), std_floor, count, dataset.modalities, where)

    # -------------------------------------------------------------------------------------- transform
    @property
    def dim(self) -> int:
        """Number of feature dims ``D``."""
        return int(self.mean.shape[0])

    @property
    def scale(self) -> np.ndarray:
        """Divisor per dim: ``std``, or 1 where ``std <= std_floor``."""
        return np.where(self.std > self.std_floor, self.std, 1.0)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardise an array whose last axis is the ``D`` feature dims.

        :param features: ``(..., D)`` array
        :return: ``(features - mean) / scale`` as float32, same shape
        """
        x = np.asarray(features)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise DataError(f"FeatureStats: features have last dim {x.shape[-1] if x.ndim else None}, "
                            f"stats have {self.dim}")
        return ((x.astype(np.float64) - self.mean) / self.scale).astype(np.float32)

    def apply(self, dataset: MovieDataset) -> MovieDataset:
        """A new dataset whose features are standardised (targets, times and references are shared).

        :param dataset: any split of a dataset with the same feature layout
        :return: the standardised dataset
        """
        if dataset.feature_dim != self.dim:
            raise DataError(f"dataset {dataset.name!r}: {dataset.feature_dim} feature dims, stats have {self.dim}")
        if self.modalities is not None and tuple(dataset.modalities) != self.modalities:
            raise DataError(f"dataset {dataset.name!r}: modalities {tuple(dataset.modalities)} differ from the "
                            f"stats' {self.modalities}")
        movies = [
            Movie(movie_id=m.movie_id, features=self.transform(m.features), targets=m.targets, times=m.times,
                  oracle=m.oracle, no_memory=m.no_memory, source=m.source, notes=list(m.notes),
                  components=m.components)
            for m in dataset.movies
        ]
        notes = list(dataset.notes) + [f"features standardised with stats fitted on {self.fitted_on or '?'} "
                                       f"({self.count} frames)"]
        return MovieDataset(movies, dataset.modalities, dataset.target_names, dataset.frames_per_segment,
                            dataset.segment_seconds, dataset.name, dataset.split, notes)

    # ------------------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        """JSON-serialisable view (plain lists and numbers)."""
        return {
            "format": FORMAT_VERSION,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "std_floor": self.std_floor,
            "count": self.count,
            "modalities": None if self.modalities is None else [[m.name, m.dim] for m in self.modalities],
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "FeatureStats") -> "FeatureStats":
        """Inverse of :meth:`to_dict`.

        :param data: the dictionary
        :param where: name used in error messages (e.g. the file)
        """
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
        for key in ("mean", "std"):
            if key not in data:
                raise DataError(f"{where}: missing field {key!r}")
        try:
            return cls(data["mean"], data["std"], float(data.get("std_floor", 1e-6)), int(data.get("count", 0)),
                       data.get("modalities"), data.get("fitted_on", ""))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise DataError(f"{where}: {exc}") from exc
            raise DataError(f"{where}: malformed field: {exc}") from exc

    def save(self, path: Union[str, Path]) -> Path:
        """Write the stats as JSON, atomically.

        :param path: destination file
        :return: the path written
        """
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "FeatureStats":
        """Read stats written by :meth:`save`.

        :param path: the JSON file
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise DataError(f"{path}: cannot read feature stats: {exc}") from exc
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON: {exc}") from exc
        return cls.from_dict(data, str(path))

    def __repr__(self) -> str:
        return f"FeatureStats(dim={self.dim}, count={self.count}, fitted_on={self.fitted_on!r})"
