"""``LiRISMemory-v0``: write a memory along a movie so that a predictor reading it tracks valence/arousal."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from affect_env.data import FeatureStats, MovieDataset, load_dataset
from affect_env.encoder import SegmentEncoder, make_encoder
from affect_env.memory import (DEFAULT_MEMORY_DIM, DEFAULT_N_SLOTS, MemoryPredictor, action_dim, check_choice,
                               check_reward_error, decode_action, prediction_error, write)

PREDICTOR_MODES = ("online", "shared", "frozen")
MOVIE_ORDERS = ("random", "sequential")


class LiRISMemoryEnv(gym.Env):
    """
    ## Description

    The agent is the *writer* of an external memory ``m`` (``N`` slots of ``d`` values) that travels along
    a movie, one segment at a time. At every segment it sees the segment's embedding ``e_t`` and the memory
    before the write ``m_{t-1}``, and chooses an NTM-style write (attention over slots, erase gate, content,
    input gate). A predictor then reads the written memory with attention and predicts the segment's
    valence/arousal; the reward is minus its mean absolute (or squared) error. Writing the right things (the
    genre seen in the opening, a character's attitude seen at its introduction) and keeping them for hundreds
    of segments is what earns reward later. This is the environment of the Reinforcement-learned Memory Network
    (RMN) for continuous emotion prediction on LIRIS-ACCEDE.

    ## Action Space

    ``Box(-1, 1, (N + 3 N d,), float32)``, decoded by :func:`affect_env.memory.decode_action`:

    | Part        | Slice                 | Decoded to                                   |
    |-------------|-----------------------|----------------------------------------------|
    | attention   | ``[0, N)``            | ``(a + 1) / 2`` renormalised to sum 1        |
    | erase       | next ``N d``          | ``(a + 1) / 2`` in ``[0, 1]``                |
    | content     | next ``N d``          | ``a`` in ``[-1, 1]``                         |
    | input gate  | last ``N d``          | ``(a + 1) / 2`` in ``[0, 1]``                |

    ## Observation Space

    ``Dict(segment=Box(d_e), memory=Box(N, d))``, float32. ``segment`` is ``e_t`` from the segment encoder
    (bounds ``(-1, 1)`` for the LSTM encoder, unbounded for the pooling encoder); ``memory`` is ``m_{t-1}``
    (unbounded: NTM writes can accumulate).

    ## Rewards

    ``r_t = -mean_k |y_t[k] - target_t[k]|`` (a Python float; ``reward="mse"`` squares the errors instead and
    ``"mae+mse"`` adds both, see :func:`~affect_env.memory.prediction_error`) with ``y_t`` the predictor's output
    on the afterstate ``(e_t, m_t)``. The predictor is, by ``predictor_mode``:

    * ``"online"`` (default): the env's own predictor, fitted by Adam on the afterstates it sees (every
      ``online_update_every`` steps, one minibatch from the last ``online_buffer`` steps), so any plain
      algorithm gets a meaningful reward;
    * ``"shared"``: a :class:`~affect_env.memory.MemoryPredictor` injected by the agent (which trains it);
      the env only evaluates it (and takes ``m0`` from it);
    * ``"frozen"``: a given predictor that nobody trains (evaluation).

    ## Starting State

    A movie is drawn (uniformly, or in order with ``movie_order="sequential"``), ``t = 0`` and the memory is
    the predictor's ``m0``.

    ## Episode End

    One episode is one movie: ``terminated`` is true after its last segment. There is no truncation
    (``max_segments`` may cut every movie to its first segments, e.g. for a curriculum).

    ## Arguments

    ```python
    gym.make("LiRISMemory-v0", dataset="synthetic", split="train", n_slots=10, memory_dim=16,
             targets=("valence", "arousal"), segment_seconds=None, encoder="pooling", predictor_mode="online",
             reward="mae")
    ```

    ``dataset`` is ``"synthetic"``, a directory (generic tables, MediaEval 2018 layout) or a
    :class:`~affect_env.data.MovieDataset`; ``dataset_options`` go to its reader. ``encoder`` is ``"pooling"``,
    a path saved by :meth:`SegmentEncoder.save`, or an instance; ``normalization`` overrides the feature
    statistics (default: fitted on the source's train split). ``predictor`` is a
    :class:`~affect_env.memory.MemoryPredictor` (required for ``"shared"``/``"frozen"``).

    ``info`` carries ``target``, ``prediction``, ``movie_id``, ``t`` and, where the dataset knows them, the
    ``oracle`` and ``no_memory`` predictions.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
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
        movie_order: str = "random",
        max_segments: Optional[int] = None,
        predictor_hidden: Sequence[int] = (64,),
        online_lr: float = 1e-3,
        online_update_every: int = 32,
        online_batch_size: int = 256,
        online_buffer: int = 4096,
        reward: str = "mae",
        render_mode: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.reward_error = check_reward_error(reward)
        check_choice("predictor_mode", predictor_mode, PREDICTOR_MODES)
        check_choice("movie_order", movie_order, MOVIE_ORDERS)
        options = dict(dataset_options or {})
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

        self._embeddings = self.encoder.embed_dataset(data)
        self._targets = [m.targets.astype(np.float32) for m in data]
        self._oracle = [m.oracle for m in data] if data.has_oracle else None
        self._no_memory = [m.no_memory for m in data] if data.has_oracle else None
        embed_dim = self.encoder.embed_dim

        low, high = self.encoder.bounds
        self.observation_space = spaces.Dict({
            "segment": spaces.Box(low, high, (embed_dim,), np.float32),
            "memory": spaces.Box(-np.inf, np.inf, (self.n_slots, self.memory_dim), np.float32),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim(self.n_slots, self.memory_dim),), np.float32)

        self.predictor_mode = predictor_mode
        if predictor is None:
            if predictor_mode != "online":
                raise ValueError(f"predictor_mode={predictor_mode!r} needs a MemoryPredictor (predictor=...)")
            predictor = MemoryPredictor(embed_dim, self.n_slots, self.memory_dim, self.n_targets,
                                        hidden=predictor_hidden)
        self._online = dict(lr=online_lr, every=online_update_every, batch=online_batch_size, size=online_buffer)
        self.set_predictor(predictor, predictor_mode)

        self._movie_index = -1
        self._t = 0
        self._memory = np.zeros((self.n_slots, self.memory_dim), np.float32)

    # ---- predictor management ------------------------------------------------------------------------
    def set_predictor(self, predictor: MemoryPredictor, mode: str = "shared") -> None:
        """Use ``predictor`` (and its ``m0``) from now on, in ``mode`` ("online", "shared" or "frozen")."""
        check_choice("mode", mode, PREDICTOR_MODES)
        expected = (self.encoder.embed_dim, self.n_slots, self.memory_dim, self.n_targets)
        got = (predictor.embed_dim, predictor.n_slots, predictor.memory_dim, predictor.n_targets)
        if got != expected:
            raise ValueError(f"predictor shape (d_e, N, d, targets) = {got} does not match the env's {expected}")
        self.predictor, self.predictor_mode = predictor, mode
        self._optimizer = torch.optim.Adam(predictor.parameters(), lr=self._online["lr"]) if mode == "online" else None
        size = self._online["size"]
        self._buf_e = np.zeros((size, self.encoder.embed_dim), np.float32)
        self._buf_m = np.zeros((size, self.n_slots, self.memory_dim), np.float32)
        self._buf_y = np.zeros((size, self.n_targets), np.float32)
        self._buf_n = 0

    def _online_update(self) -> None:
        n = min(self._buf_n, len(self._buf_e))
        idx = self.np_random.integers(n, size=min(self._online["batch"], n))
        e, m, y = (torch.as_tensor(b[idx]) for b in (self._buf_e, self._buf_m, self._buf_y))
        loss = prediction_error(self.predictor(e, m), y, self.reward_error).mean()  # minus the reward
        self._optimizer.zero_grad()
        loss.backward()
        self._optimizer.step()

    # ---- gym API -------------------------------------------------------------------------------------------
    @property
    def movie(self):
        """The current movie (a :class:`~affect_env.data.Movie`)."""
        return self.dataset.movies[self._movie_index]

    def _length(self, index: int) -> int:
        n = len(self._targets[index])
        return n if self.max_segments is None else min(n, int(self.max_segments))

    def _obs(self) -> dict:
        t = min(self._t, self._length(self._movie_index) - 1)
        return {"segment": self._embeddings[self._movie_index][t].copy(),
                "memory": self._memory.copy()}

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple:
        """Start a movie: ``options={"movie_index": i}`` picks one, else random/sequential order."""
        super().reset(seed=seed)
        if seed is not None:
            torch.manual_seed(seed)
        if options and "movie_index" in options:
            self._movie_index = int(options["movie_index"])
        elif self.movie_order == "sequential":
            self._movie_index = (self._movie_index + 1) % len(self._targets)
        else:
            self._movie_index = int(self.np_random.integers(len(self._targets)))
        self._t = 0
        with torch.no_grad():
            self._memory = self.predictor.m0.detach().cpu().numpy().astype(np.float32)
        return self._obs(), {"movie_id": self.movie.movie_id, "t": 0}

    def step(self, action: np.ndarray) -> tuple:
        i, t = self._movie_index, self._t
        parts = decode_action(np.asarray(action, dtype=np.float32), self.n_slots, self.memory_dim)
        self._memory = write(self._memory, parts)
        e = self._embeddings[i][t]
        target = self._targets[i][t]
        prediction = self.predictor.predict_numpy(e, self._memory)
        reward = -float(prediction_error(prediction, target, self.reward_error))

        if self.predictor_mode == "online":
            k = self._buf_n % len(self._buf_e)
            self._buf_e[k], self._buf_m[k], self._buf_y[k] = e, self._memory, target
            self._buf_n += 1
            if self._buf_n % self._online["every"] == 0:
                self._online_update()

        info: dict[str, Any] = {"target": target, "prediction": prediction,
                                "movie_id": self.dataset.movies[i].movie_id, "t": t}
        if self._oracle is not None:
            info["oracle"], info["no_memory"] = self._oracle[i][t], self._no_memory[i][t]
        self._t = t + 1
        terminated = self._t >= self._length(i)
        return self._obs(), reward, terminated, False, info
