"""``LiRISMemory-v0``: write a memory along a movie so that a predictor reading it tracks valence/arousal."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
import torch

from affect_env.core import EPISODE_KEYS, MOVIE_ORDERS, PREDICTOR_MODES, MemoryEnvSetup
from affect_env.data import FeatureStats, MovieDataset
from affect_env.encoder import SegmentEncoder
from affect_env.memory import DEFAULT_MEMORY_DIM, DEFAULT_N_SLOTS, MemoryPredictor

__all__ = ["EPISODE_KEYS", "LiRISMemoryEnv", "MOVIE_ORDERS", "PREDICTOR_MODES"]


class LiRISMemoryEnv(MemoryEnvSetup, gym.Env):
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
      ``online_update_every`` steps, one minibatch from the last ``online_buffer`` steps, on
      ``online_threads`` torch threads: 1 by default, since these small updates only lose to thread hand-offs, and
      badly on shared cores; the caller's setting is restored after each update), so any plain algorithm gets a
      meaningful reward;
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

    ``preset`` (one of :data:`affect_env.presets.PRESETS`, set by the registered ids such as
    ``LiRISMemory-Short-v0``) gives the synthetic data's options; ``dataset_options`` override single fields of it
    (e.g. ``{"n_movies": (8, 2, 2)}``).

    ``info`` carries ``target``, ``prediction``, ``movie_id``, ``t`` and, where the dataset knows them, the
    ``oracle`` and ``no_memory`` predictions. The episode's last step adds ``episode_mse`` (the MSE of the env's
    predictions over the episode's segments and targets) and, where the dataset knows them,
    ``episode_oracle_mse``, ``episode_no_memory_mse`` and ``episode_gap_closed`` (:data:`EPISODE_KEYS`), so any
    library (SB3's ``Monitor(info_keywords=...)``) can report ``gap_closed`` without project code.

    The batched version of this env, ``gym.make_vec(id, num_envs=K, vectorization_mode="vector_entry_point")``,
    is :class:`affect_env.vector.LiRISMemoryVectorEnv`; this env is its one-movie case (the same computations).
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
        super().__init__()
        self._setup(1, dataset=dataset, split=split, n_slots=n_slots, memory_dim=memory_dim, targets=targets,
                    segment_seconds=segment_seconds, encoder=encoder, predictor_mode=predictor_mode,
                    predictor=predictor, normalization=normalization, dataset_options=dataset_options, preset=preset,
                    movie_order=movie_order, max_segments=max_segments, predictor_hidden=predictor_hidden,
                    online_lr=online_lr, online_update_every=online_update_every,
                    online_batch_size=online_batch_size, online_buffer=online_buffer,
                    online_threads=online_threads, reward=reward,
                    render_mode=render_mode)
        self.observation_space, self.action_space = self.single_observation_space, self.single_action_space
        self._movie_index = -1

    def __copy__(self) -> "LiRISMemoryEnv":
        """A shallow copy that shares the data, embeddings and predictor but steps its own movie and memory (as
        evaluation code does: one copy per movie of a batch, stepped in lockstep)."""
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        clone.core = self.core.fork()
        return clone

    # ---- gym API -------------------------------------------------------------------------------------------
    @property
    def movie(self):
        """The current movie (a :class:`~affect_env.data.Movie`)."""
        return self.dataset.movies[self._movie_index]

    def _obs(self) -> dict:
        core = self.core
        row = self.table.segment_rows(core.movie, core.t)[0]
        return {"segment": self.table.embeddings[row].copy(), "memory": core.memory[0].copy()}

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple:
        """Start a movie: ``options={"movie_index": i}`` picks one, else random/sequential order."""
        super().reset(seed=seed)
        if seed is not None:
            torch.manual_seed(seed)
        if options and "movie_index" in options:
            self._movie_index = self._next_movie = self._check_movie_index(options["movie_index"])
        else:
            self._movie_index = self._draw_movie(self.np_random)
        self.core.start(0, self._movie_index)
        return self._obs(), {"movie_id": self.movie.movie_id, "t": 0}

    def step(self, action: np.ndarray) -> tuple:
        """Write ``action`` into the memory, predict the segment from the afterstate, reward minus its error.

        :returns: ``(obs, reward, terminated, False, info)``; ``obs`` is the next segment (the last one again once
            the movie ended) and the memory after the write
        """
        if self._movie_index < 0:
            raise gym.error.ResetNeeded("call reset() before step()")
        table = self.table
        error, prediction, target, row, t, terminated = self.core.step_one(
            np.asarray(action, dtype=np.float32), self.np_random)
        info: dict[str, Any] = {"target": target, "prediction": prediction,
                                "movie_id": table.movie_ids[self._movie_index], "t": t}
        if table.has_oracle:
            info["oracle"], info["no_memory"] = table.oracle[row], table.no_memory[row]
        if terminated:
            info.update({key: float(value[0]) for key, value in self.core.episode_info(np.zeros(1, int)).items()})
        obs = {"segment": table.embeddings[row if terminated else row + 1].copy(),
               "memory": self.core.memory[0].copy()}
        return obs, -error, bool(terminated), False, info
