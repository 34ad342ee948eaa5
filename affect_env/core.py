"""What the single env (``LiRISMemoryEnv``) and the batched env (``LiRISMemoryVectorEnv``) share.

* :class:`MovieTable`: the dataset's segments as flat arrays (embeddings computed once by the encoder, targets,
  oracle and memory-less predictions), with each movie's first row and length, and each movie's reference MSEs;
* :class:`WriterCore`: the state of ``B`` movies being written (movie, position, memory, running squared error)
  and the predictor, advanced for all of them at once by :meth:`WriterCore.step` with the batched memory math of
  :mod:`affect_env.memory`. The single env is a core of one movie stepped by :meth:`WriterCore.step_one` (1-D
  arrays, fewer NumPy calls, the same numbers as a batch of one), so both envs compute the same numbers;
* :class:`MemoryEnvSetup`: the constructor both envs share (data, encoder, spaces, predictor modes).

Everything per step is NumPy on preallocated or freshly computed arrays; torch only runs in the online predictor's
periodic update and when a movie starts (reading ``m0``).
"""
from __future__ import annotations

import copy
import ctypes
from typing import Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from gymnasium import spaces

from affect_env.data import FeatureStats, MovieDataset, load_dataset
from affect_env.encoder import SegmentEncoder, make_encoder
from affect_env.memory import (DEFAULT_MEMORY_DIM, DEFAULT_N_SLOTS, MemoryPredictor, action_dim, check_choice,
                               check_reward_error, decode_action, difference_error, prediction_error, write)
from affect_env.presets import PRESETS

PREDICTOR_MODES = ("online", "shared", "frozen")
MOVIE_ORDERS = ("random", "sequential")
#: the keys an episode's last step adds to ``info`` (the last three only where the dataset has the references)
EPISODE_KEYS = ("episode_mse", "episode_oracle_mse", "episode_no_memory_mse", "episode_gap_closed")


class BlasThreads:
    """A limit on NumPy's OpenBLAS threads, applied only while the batched env computes a step.

    The batched env's products are small (``K N x d`` by ``d x 64``): OpenBLAS splits those above about 2.6e5
    multiply-adds over threads whose hand-offs cost more than they save, and on cores shared with another job the
    threads wait for each other (measured: 64 movies at 8k segment-steps/s with NumPy's default threads, 250k with
    one). :meth:`limit` sets the count and returns the caller's, :meth:`restore` puts it back, so the rest of the
    process keeps its setting. Where NumPy's BLAS is not an OpenBLAS found in ``/proc/self/maps`` (other systems,
    other BLAS), both do nothing.

    :param threads: threads during the env's step (``None``: leave BLAS alone)
    """

    def __init__(self, threads: Optional[int]) -> None:
        if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
            raise ValueError(f"blas_threads must be a whole number >= 1 or None, got {threads!r}")
        self.threads = threads
        self._get: Optional[Callable[[], int]] = None
        self._set: Optional[Callable[[int], None]] = None
        if threads is not None:
            self._get, self._set = _openblas_thread_functions()

    def limit(self) -> Optional[int]:
        """Set the limit; return the previous thread count (``None`` if nothing was changed)."""
        if self._set is None:
            return None
        previous = self._get()
        if previous != self.threads:
            self._set(self.threads)
        return previous

    def restore(self, previous: Optional[int]) -> None:
        """Put back the count :meth:`limit` returned."""
        if previous is not None and previous != self.threads:
            self._set(previous)


def _openblas_thread_functions() -> tuple:
    """``(get, set)`` of the thread count of the OpenBLAS loaded in this process (NumPy's), or ``(None, None)``."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None, None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    return None, None


class MovieTable:
    """A dataset's segments as flat arrays, so that ``B`` movies are read with one fancy index per step.

    :param dataset: the movies (their targets, and ``oracle``/``no_memory`` where known)
    :param embeddings: one ``(T, d_e)`` array per movie (the encoder's output, computed once)
    :param max_segments: cut every movie to its first segments (``None``: whole movies)
    """

    def __init__(self, dataset: MovieDataset, embeddings: Sequence[np.ndarray], max_segments: Optional[int]) -> None:
        full = np.array([len(e) for e in embeddings], dtype=np.int64)
        if not len(full):
            raise ValueError(f"dataset {dataset.name!r} split {dataset.split!r} has no movies")
        self.n_movies = len(full)
        self.lengths = full if max_segments is None else np.minimum(full, int(max_segments))
        self.starts = np.concatenate([[0], np.cumsum(full)[:-1]]).astype(np.int64)
        self.embeddings = np.concatenate(embeddings).astype(np.float32, copy=False)
        self.targets = np.concatenate([m.targets for m in dataset]).astype(np.float32, copy=False)
        self.movie_ids = np.array([m.movie_id for m in dataset], dtype=object)
        self.has_oracle = bool(dataset.has_oracle)
        self.oracle = self.no_memory = self.oracle_mse = self.no_memory_mse = None
        if self.has_oracle:
            self.oracle = np.concatenate([m.oracle for m in dataset]).astype(np.float32, copy=False)
            self.no_memory = np.concatenate([m.no_memory for m in dataset]).astype(np.float32, copy=False)
            self.oracle_mse = self.reference_mse(self.oracle)
            self.no_memory_mse = self.reference_mse(self.no_memory)

    def reference_mse(self, predictions: np.ndarray) -> np.ndarray:
        """Each movie's MSE (over its episode's segments and the targets) of flat ``predictions``, ``(n_movies,)``."""
        sq = ((predictions.astype(np.float64) - self.targets) ** 2).mean(-1)
        return np.array([sq[s:s + n].mean() for s, n in zip(self.starts, self.lengths)])

    def segment_rows(self, movies: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Flat rows of segment ``t`` of ``movies`` (clamped to each movie's last segment)."""
        return self.starts[movies] + np.minimum(t, self.lengths[movies] - 1)


class StepResult(NamedTuple):
    """What :meth:`WriterCore.step` computed for the stepped movies (arrays with one row per movie)."""

    error: np.ndarray  # (B,) the reward's error: the reward is its negative
    prediction: np.ndarray  # (B, n_targets)
    target: np.ndarray  # (B, n_targets)
    rows: np.ndarray  # (B,) flat segment rows (for oracle/no_memory/movie ids)
    t: np.ndarray  # (B,) the stepped segment's index in its movie
    done: np.ndarray  # (B,) bool, the movie's last segment was just written


class WriterCore:
    """``B`` movies being written, one shared predictor, one shared online training buffer.

    :param table: the movies
    :param num: how many movies are written at once (``B``)
    :param n_slots: memory slots ``N``
    :param memory_dim: slot size ``d``
    :param reward_error: ``"mae"``, ``"mse"`` or ``"mae+mse"`` (:func:`~affect_env.memory.prediction_error`)
    :param online: ``lr``, ``every``, ``batch``, ``size`` and ``threads`` of the online predictor's training
    """

    def __init__(self, table: MovieTable, num: int, n_slots: int, memory_dim: int, reward_error: str,
                 online: dict) -> None:
        self.table, self.num = table, int(num)
        self.n_slots, self.memory_dim, self.reward_error = int(n_slots), int(memory_dim), reward_error
        self.online = dict(online)
        self.movie = np.zeros(self.num, np.int64)
        self.t = np.zeros(self.num, np.int64)
        self.memory = np.zeros((self.num, self.n_slots, self.memory_dim), np.float32)
        self.sq_sum = np.zeros(self.num, np.float64)  # the episode's summed squared errors (over targets too)
        self.predictor: Optional[MemoryPredictor] = None
        self.mode = "online"

    def fork(self) -> "WriterCore":
        """A core that shares the table, the predictor and its buffer arrays but has its own movies, positions,
        memories and error sums (what a shallow copy of an env needs to step on its own)."""
        clone = copy.copy(self)
        clone.movie, clone.t, clone.memory, clone.sq_sum = (x.copy() for x in (self.movie, self.t, self.memory,
                                                                              self.sq_sum))
        return clone

    # ---- predictor --------------------------------------------------------------------------------------
    def set_predictor(self, predictor: MemoryPredictor, mode: str, embed_dim: int, n_targets: int) -> None:
        """Use ``predictor`` from now on in ``mode``; a fresh Adam optimizer and empty buffer for ``"online"``."""
        check_choice("mode", mode, PREDICTOR_MODES)
        expected = (embed_dim, self.n_slots, self.memory_dim, n_targets)
        got = (predictor.embed_dim, predictor.n_slots, predictor.memory_dim, predictor.n_targets)
        if got != expected:
            raise ValueError(f"predictor shape (d_e, N, d, targets) = {got} does not match the env's {expected}")
        self.predictor, self.mode = predictor, mode
        self.optimizer = torch.optim.Adam(predictor.parameters(), lr=self.online["lr"]) if mode == "online" else None
        size = self.online["size"]
        self.buf_e = np.zeros((size, embed_dim), np.float32)
        self.buf_m = np.zeros((size, self.n_slots, self.memory_dim), np.float32)
        self.buf_y = np.zeros((size, n_targets), np.float32)
        self.buf_n = 0

    def initial_memory(self) -> np.ndarray:
        """The predictor's ``m0`` as a float32 ``(N, d)`` array."""
        with torch.no_grad():
            return self.predictor.m0.detach().cpu().numpy().astype(np.float32)

    def _store(self, e: np.ndarray, m: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        """Add afterstates to the online ring buffer; one update per ``every`` steps (counted over all movies)."""
        size, before = len(self.buf_e), self.buf_n
        if len(e) == 1:
            k = before % size
            self.buf_e[k], self.buf_m[k], self.buf_y[k] = e[0], m[0], y[0]
        else:
            k = (before + np.arange(len(e))) % size
            self.buf_e[k], self.buf_m[k], self.buf_y[k] = e, m, y
        self.buf_n = before + len(e)
        every = self.online["every"]
        for _ in range(self.buf_n // every - before // every):
            self._online_update(rng)

    def _online_update(self, rng: np.random.Generator) -> None:
        """One Adam step on a minibatch of the buffer, on ``online["threads"]`` torch threads (then restored)."""
        n = min(self.buf_n, len(self.buf_e))
        idx = rng.integers(n, size=min(self.online["batch"], n))
        e, m, y = (torch.as_tensor(b[idx]) for b in (self.buf_e, self.buf_m, self.buf_y))
        threads, previous = self.online["threads"], torch.get_num_threads()
        if threads is not None and threads != previous:
            torch.set_num_threads(threads)
        try:
            loss = prediction_error(self.predictor(e, m), y, self.reward_error).mean()  # minus the reward
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        finally:
            if threads is not None and threads != previous:
                torch.set_num_threads(previous)

    # ---- movies -----------------------------------------------------------------------------------------
    def start(self, rows: np.ndarray, movies: np.ndarray) -> None:
        """Start ``movies`` in rows ``rows``: position 0, memory ``m0``, no error yet."""
        self.movie[rows] = movies
        self.t[rows] = 0
        self.memory[rows] = self.initial_memory()
        self.sq_sum[rows] = 0.0

    def step(self, actions: np.ndarray, rng: np.random.Generator, rows: Optional[np.ndarray] = None) -> StepResult:
        """Write ``actions`` ``(B', A)`` into the memories of ``rows`` (all ``B`` if ``None``), predict, score.

        :param rng: draws the online predictor's minibatches (the env's ``np_random``)
        """
        table = self.table
        movie, t = (self.movie, self.t) if rows is None else (self.movie[rows], self.t[rows])
        memory = self.memory if rows is None else self.memory[rows]
        seg = table.starts[movie] + t
        memory = write(memory, decode_action(actions, self.n_slots, self.memory_dim))
        e, y = table.embeddings[seg], table.targets[seg]
        prediction = self.predictor.predict_numpy(e, memory)
        diff = prediction - y
        error = difference_error(diff, self.reward_error)
        sq = (diff * diff).sum(-1)
        if rows is None:
            self.memory, self.t = memory, t + 1
            self.sq_sum += sq
        else:
            self.memory[rows], self.t[rows] = memory, t + 1
            self.sq_sum[rows] += sq
        if self.mode == "online":
            self._store(e, memory, y, rng)
        return StepResult(error, prediction, y, seg, t, t + 1 >= table.lengths[movie])

    def step_one(self, action: np.ndarray, rng: np.random.Generator) -> tuple:
        """:meth:`step` for a core of one movie, on 1-D arrays and Python numbers (the single env's hot path; the
        same numbers as a batch of one).

        :returns: ``(error, prediction, target, row, t, done)`` with ``row`` the flat segment row and ``t`` the
            stepped segment's index, both ``int``; ``error`` a ``float``; ``done`` a ``bool``
        """
        t = int(self.t[0])
        movie = int(self.movie[0])
        row = int(self.table.starts[movie]) + t
        memory = write(self.memory[0], decode_action(action, self.n_slots, self.memory_dim))
        e, y = self.table.embeddings[row], self.table.targets[row]
        prediction = self.predictor.predict_numpy(e, memory)
        diff = prediction - y
        error = float(difference_error(diff, self.reward_error))
        self.sq_sum[0] += np.add.reduce(diff * diff)
        self.memory = memory[None]
        self.t[0] = t + 1
        if self.mode == "online":
            size = len(self.buf_e)
            k = self.buf_n % size
            self.buf_e[k], self.buf_m[k], self.buf_y[k] = e, memory, y
            self.buf_n += 1
            if self.buf_n % self.online["every"] == 0:
                self._online_update(rng)
        return error, prediction, y, row, t, t + 1 >= self.table.lengths[movie]

    def episode_info(self, rows: np.ndarray) -> dict:
        """The :data:`EPISODE_KEYS` of the movies in ``rows`` (their episodes just ended), float64 ``(len(rows),)``.

        ``episode_mse`` is the mean over the episode's segments and the targets of the squared error of the env's
        predictions; ``episode_gap_closed = (no_memory - mse) / (no_memory - oracle)`` (NaN where the memory-less
        reference is not worse than the oracle).
        """
        movie = self.movie[rows]
        mse = self.sq_sum[rows] / (self.t[rows] * self.table.targets.shape[1])
        info = {"episode_mse": mse}
        if self.table.has_oracle:
            oracle, no_memory = self.table.oracle_mse[movie], self.table.no_memory_mse[movie]
            span = no_memory - oracle
            with np.errstate(divide="ignore", invalid="ignore"):
                gap = np.where(span > 0, (no_memory - mse) / span, np.nan)
            info.update(episode_oracle_mse=oracle, episode_no_memory_mse=no_memory, episode_gap_closed=gap)
        return info


class MemoryEnvSetup:
    """The construction and predictor management both envs share (a mixin: it sets attributes, no ``gym`` base).

    See :class:`~affect_env.env.LiRISMemoryEnv` for the arguments; ``num`` is the number of movies written at once.
    """

    def _setup(
        self,
        num: int,
        dataset: Union[str, MovieDataset] = "synthetic",
        split: str = "train",
        n_slots: int = DEFAULT_N_SLOTS,
        memory_dim: int = DEFAULT_MEMORY_DIM,
        targets: Optional[Sequence[str]] = ("valence", "arousal"),
        segment_seconds: Optional[float] = None,
        encoder: Union[str, SegmentEncoder, None] = "pooling",
        predictor_mode: str = "online",
        predictor: Optional[MemoryPredictor] = None,
        normalization: Optional[FeatureStats] = None,
        dataset_options: Optional[dict] = None,
        preset: Optional[str] = None,
        movie_order: str = "random",
        max_segments: Optional[int] = None,
        predictor_hidden: Sequence[int] = (64,),
        online_lr: float = 1e-3,
        online_update_every: int = 32,
        online_batch_size: int = 256,
        online_buffer: int = 4096,
        online_threads: Optional[int] = 1,
        reward: str = "mae",
        render_mode: Optional[str] = None,
    ) -> None:
        self.reward_error = check_reward_error(reward)
        check_choice("predictor_mode", predictor_mode, PREDICTOR_MODES)
        check_choice("movie_order", movie_order, MOVIE_ORDERS)
        if max_segments is not None and int(max_segments) < 1:
            raise ValueError(f"max_segments must be a whole number >= 1 or None, got {max_segments!r}")
        for name, value in (("online_update_every", online_update_every), ("online_batch_size", online_batch_size),
                            ("online_buffer", online_buffer)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if online_threads is not None and (isinstance(online_threads, bool) or int(online_threads) < 1):
            raise ValueError(f"online_threads must be a whole number >= 1 or None, got {online_threads!r}")
        options = dict(dataset_options or {})
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
            if not (isinstance(dataset, str) and dataset == "synthetic"):
                raise ValueError(f"preset={preset!r} sets the synthetic data's options; it needs "
                                 f"dataset='synthetic', got dataset={dataset!r}")
            options = {**PRESETS[preset], **options}  # the caller's options win (e.g. fewer movies)
        self.preset = preset
        if isinstance(dataset, MovieDataset):
            data = dataset if targets is None else dataset.select_targets(targets)
            train_for_stats = data
        else:
            data = load_dataset(dataset, split, targets=targets, segment_seconds=segment_seconds, **options)
            needs_train = normalization is None and not isinstance(encoder, SegmentEncoder)
            train_for_stats = (data if split == "train" or not needs_train else
                               load_dataset(dataset, "train", targets=targets, segment_seconds=segment_seconds,
                                            **options))
        self.dataset = data
        self.encoder = make_encoder(encoder, train_for_stats, normalization)
        self.n_slots, self.memory_dim = int(n_slots), int(memory_dim)
        self.n_targets = len(data.target_names)
        self.movie_order, self.max_segments = movie_order, max_segments
        self.render_mode = render_mode
        self.table = MovieTable(data, self.encoder.embed_dataset(data), max_segments)

        embed_dim = self.encoder.embed_dim
        low, high = self.encoder.bounds
        self.single_observation_space = spaces.Dict({
            "segment": spaces.Box(low, high, (embed_dim,), np.float32),
            "memory": spaces.Box(-np.inf, np.inf, (self.n_slots, self.memory_dim), np.float32),
        })
        self.single_action_space = spaces.Box(-1.0, 1.0, (action_dim(self.n_slots, self.memory_dim),), np.float32)

        if predictor is None:
            if predictor_mode != "online":
                raise ValueError(f"predictor_mode={predictor_mode!r} needs a MemoryPredictor (predictor=...)")
            predictor = MemoryPredictor(embed_dim, self.n_slots, self.memory_dim, self.n_targets,
                                        hidden=predictor_hidden)
        online = dict(lr=online_lr, every=int(online_update_every), batch=int(online_batch_size),
                      size=int(online_buffer), threads=None if online_threads is None else int(online_threads))
        self.core = WriterCore(self.table, num, self.n_slots, self.memory_dim, self.reward_error, online)
        self.set_predictor(predictor, predictor_mode)
        self._next_movie = -1  # the sequential order's cursor

    @property
    def predictor(self) -> MemoryPredictor:
        """The predictor that reads the memory (the env's own in ``"online"`` mode)."""
        return self.core.predictor

    @property
    def predictor_mode(self) -> str:
        """``"online"``, ``"shared"`` or ``"frozen"``."""
        return self.core.mode

    def set_predictor(self, predictor: MemoryPredictor, mode: str = "shared") -> None:
        """Use ``predictor`` (and its ``m0``) from now on, in ``mode`` ("online", "shared" or "frozen")."""
        self.core.set_predictor(predictor, mode, self.encoder.embed_dim, self.n_targets)

    def _draw_movie(self, rng: np.random.Generator) -> int:
        """The next movie: uniform with ``rng``, or the next in order (``movie_order="sequential"``)."""
        if self.movie_order == "sequential":
            self._next_movie = (self._next_movie + 1) % self.table.n_movies
            return self._next_movie
        return int(rng.integers(self.table.n_movies))

    def _check_movie_index(self, index) -> int:
        """``index`` as a movie number, or a ``ValueError`` naming ``movie_index`` and the range."""
        i = int(index)
        if not 0 <= i < self.table.n_movies:
            raise ValueError(f"movie_index must be in [0, {self.table.n_movies}), got {index!r}")
        return i
