"""The batched ``LiRISMemory`` env: ``K`` movies written at once in NumPy, one dataset, encoder and predictor.

    envs = gym.make_vec("LiRISMemory-v0", num_envs=64, vectorization_mode="vector_entry_point")

Every registered id (:data:`affect_env.presets.PRESETS`) has this class as its ``vector_entry_point``. Compared
with ``SyncVectorEnv`` over ``K`` single envs, the segment embeddings are computed and stored once, and each step
is one batched write (:func:`affect_env.memory.write`) and one batched predictor forward
(:meth:`~affect_env.memory.MemoryPredictor.predict_numpy`) for all ``K`` movies.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from affect_env.core import BlasThreads, MemoryEnvSetup, StepResult

AUTORESET_MODES = tuple(mode.value for mode in AutoresetMode)


class LiRISMemoryVectorEnv(MemoryEnvSetup, VectorEnv):
    """``num_envs`` copies of :class:`~affect_env.env.LiRISMemoryEnv` stepped as one batch.

    Sub-env ``i`` is a single env whose movies, writes, predictions and rewards are computed exactly as by the
    single env (with ``num_envs=1`` and the same seed and actions, the two give identical observations, rewards
    and infos). What the copies share:

    * the dataset, the encoder and its embeddings (one :class:`~affect_env.core.MovieTable`);
    * the predictor: in ``"online"`` mode one Adam-trained predictor with one ring buffer that all sub-envs fill;
      it takes one update per ``online_update_every`` *sub-env* steps, so the predictor sees as many updates per
      segment as a single env's;
    * one random stream (``np_random``, seeded by ``reset(seed=...)``) that draws the sub-envs' movies in
      sub-env order and the online minibatches.

    **Autoreset** follows Gymnasium 1.x (``metadata["autoreset_mode"]``, https://farama.org/Vector-Autoreset-Mode):

    * ``"NextStep"`` (the default, as ``SyncVectorEnv``): the step that ends a movie returns its last observation
      and ``terminated=True``; the *next* step ignores that sub-env's action, starts a new movie and returns its
      first observation with reward 0;
    * ``"SameStep"``: the ending step starts the new movie at once and returns its first observation; the ended
      movie's last observation and info are in ``info["final_obs"]`` and ``info["final_info"]`` (masked by
      ``info["_final_obs"]``/``info["_final_info"]``) — the convention SB3's ``VecEnv`` uses
      (:mod:`affect_env.sb3`);
    * ``"Disabled"``: the caller restarts ended sub-envs with ``reset(options={"reset_mask": mask})``.

    **Infos** are in the vector format: each key holds an array over sub-envs and ``"_key"`` masks the sub-envs
    that have it: ``target``, ``prediction``, ``oracle``, ``no_memory`` (stepped sub-envs), ``movie_id``, ``t`` and,
    for sub-envs whose movie just ended, the episode keys ``episode_mse``, ``episode_oracle_mse``,
    ``episode_no_memory_mse`` and ``episode_gap_closed`` (:data:`affect_env.core.EPISODE_KEYS`).

    :param num_envs: movies written at once ``K``
    :param autoreset_mode: an :class:`gymnasium.vector.AutoresetMode` or its value (``"NextStep"``,
        ``"SameStep"``, ``"Disabled"``)
    :param blas_threads: NumPy's OpenBLAS threads while a step is computed (``None``: leave BLAS alone); the
        caller's setting is restored after each step (:class:`~affect_env.core.BlasThreads` says why 1)
    :param kwargs: the arguments of :class:`~affect_env.env.LiRISMemoryEnv` (``dataset``, ``preset``,
        ``dataset_options``, ``n_slots``, ``predictor_mode``, ...)
    """

    def __init__(self, num_envs: int = 1, autoreset_mode: Union[AutoresetMode, str] = AutoresetMode.NEXT_STEP,
                 blas_threads: Optional[int] = 1, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be a whole number >= 1, got {num_envs!r}")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"autoreset_mode must be one of {AUTORESET_MODES} (or an AutoresetMode), "
                             f"got {autoreset_mode!r}") from None
        self.num_envs = int(num_envs)
        self._blas = BlasThreads(blas_threads)
        self._setup(self.num_envs, **kwargs)
        self.metadata = {"render_modes": [], "autoreset_mode": self.autoreset_mode}
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._ended = np.zeros(self.num_envs, bool)  # sub-envs whose movie ended at the last step
        self._started = False
        self._all = np.ones(self.num_envs, bool)
        self._all.flags.writeable = False  # shared "every sub-env has it" mask of the infos

    # ---- helpers ----------------------------------------------------------------------------------------
    @property
    def movie_indices(self) -> np.ndarray:
        """The index (in ``dataset.movies``) of each sub-env's current movie, ``(num_envs,)``."""
        return self.core.movie.copy()

    def _observations(self) -> dict:
        rows = self.table.segment_rows(self.core.movie, self.core.t)
        return {"segment": self.table.embeddings[rows], "memory": self.core.memory.copy()}

    def _start(self, rows: np.ndarray, movie_index: Any = None) -> None:
        """Start a movie in each sub-env of ``rows``: ``movie_index`` (one for all, or one per sub-env of the whole
        batch) or the next drawn movie, in sub-env order."""
        if movie_index is None:
            movies = [self._draw_movie(self.np_random) for _ in rows]
        else:
            if np.ndim(movie_index) == 0:
                chosen = [movie_index] * self.num_envs
            elif np.shape(movie_index) == (self.num_envs,):
                chosen = list(movie_index)
            else:
                raise ValueError(f"movie_index must be one index or {self.num_envs} (one per sub-env), "
                                 f"got shape {np.shape(movie_index)}")
            movies = [self._check_movie_index(chosen[i]) for i in rows]
            self._next_movie = movies[-1]
        self.core.start(rows, np.asarray(movies, np.int64))
        self._ended[rows] = False

    def _mask(self, rows: Optional[np.ndarray]) -> np.ndarray:
        if rows is None:
            return self._all
        mask = np.zeros(self.num_envs, bool)
        mask[rows] = True
        return mask

    def _full(self, values: np.ndarray, rows: Optional[np.ndarray]) -> np.ndarray:
        """``values`` of the sub-envs ``rows`` as an array over all sub-envs (zeros elsewhere, as Gymnasium's)."""
        if rows is None:
            return values
        out = np.zeros((self.num_envs,) + values.shape[1:], values.dtype)
        out[rows] = values
        return out

    def _step_infos(self, result: StepResult, rows: Optional[np.ndarray]) -> dict:
        """The stepped sub-envs' infos (``rows``: their indices, ``None`` for all) in the vector format."""
        table, mask = self.table, self._mask(rows)
        infos = {"target": self._full(result.target, rows), "_target": mask,
                 "prediction": self._full(result.prediction, rows), "_prediction": mask}
        if table.has_oracle:
            infos.update(oracle=self._full(table.oracle[result.rows], rows), _oracle=mask,
                         no_memory=self._full(table.no_memory[result.rows], rows), _no_memory=mask)
        infos.update(movie_id=table.movie_ids[self.core.movie], _movie_id=self._all,
                     t=self._full(result.t, rows), _t=self._all)
        ended = np.flatnonzero(self._full(result.done, rows))
        if len(ended):
            done_mask = self._mask(ended)
            for key, values in self.core.episode_info(ended).items():
                infos[key], infos[f"_{key}"] = self._full(values, ended), done_mask
        return infos

    # ---- Gymnasium VectorEnv API ------------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple:
        """Start a movie in every sub-env (or, with ``options={"reset_mask": mask}``, in the masked ones).

        :param seed: seeds the shared random stream (movie draws, online minibatches) and torch, as the single
            env's ``reset(seed=...)`` does; one ``int`` for the whole batch
        :param options: ``movie_index`` (one index, or one per sub-env) and/or ``reset_mask`` (bool, one per
            sub-env; the ``"Disabled"`` autoreset mode's way to restart ended sub-envs)
        """
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be one int for the whole batch (or None), got {seed!r}")
        super().reset(seed=seed)
        if seed is not None:
            torch.manual_seed(int(seed))
        options = dict(options or {})
        rows = np.arange(self.num_envs)
        if "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with at "
                                 f"least one True, got {options['reset_mask']!r}")
            if not self._started and not mask.all():
                raise gym.error.ResetNeeded("the first reset() must start every sub-env (no reset_mask)")
            rows = np.flatnonzero(mask)
        self._start(rows, options.get("movie_index"))
        self._started = True
        infos = {"movie_id": self._full(self.table.movie_ids[self.core.movie[rows]], rows),
                 "_movie_id": self._mask(rows), "t": np.zeros(self.num_envs, np.int64), "_t": self._mask(rows)}
        return self._observations(), infos

    def step(self, actions: np.ndarray) -> tuple:
        """Write one action per sub-env (``(num_envs, N + 3 N d)``); see the class docstring for autoreset."""
        previous = self._blas.limit()
        try:
            return self._step(actions)
        finally:
            self._blas.restore(previous)

    def _step(self, actions: np.ndarray) -> tuple:
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {self.action_space.shape} (num_envs, N + 3 N d), "
                             f"got {actions.shape}")
        rewards = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, bool)
        restart = self._ended
        if restart.any():
            if self.autoreset_mode == AutoresetMode.DISABLED:
                raise gym.error.ResetNeeded(f"sub-envs {np.flatnonzero(restart).tolist()} ended: restart them with "
                                            f"reset(options={{'reset_mask': mask}}) (autoreset_mode='Disabled')")
            # NextStep: the ended sub-envs start a new movie now, their actions are ignored (reward 0)
            restarted = np.flatnonzero(restart)
            self._start(restarted)
            rows = np.flatnonzero(~self._mask(restarted))
            if not len(rows):
                infos = {"movie_id": self.table.movie_ids[self.core.movie], "_movie_id": self._all,
                         "t": np.zeros(self.num_envs, np.int64), "_t": self._all}
                return self._observations(), rewards, terminated, terminated.copy(), infos
            result = self.core.step(actions[rows], self.np_random, rows)
        else:
            rows = None
            result = self.core.step(actions, self.np_random)
        rewards[rows if rows is not None else slice(None)] = -result.error
        terminated = self._full(result.done, rows)
        infos = self._step_infos(result, rows)  # restarted sub-envs: their new movie, t = 0
        self._ended = terminated.copy()
        if self.autoreset_mode == AutoresetMode.SAME_STEP and terminated.any():
            infos = self._restart_same_step(infos, np.flatnonzero(terminated))
        return self._observations(), rewards, terminated, np.zeros(self.num_envs, bool), infos

    def _restart_same_step(self, infos: dict, ended: np.ndarray) -> dict:
        """SameStep autoreset: keep the ended sub-envs' last observation and info aside, start their next movie."""
        last = self._observations()
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in ended:
            final_obs[i] = {"segment": last["segment"][i], "memory": last["memory"][i]}
        done_mask = self._mask(ended)
        final_info = {}
        for key, values in infos.items():
            if not key.startswith("_"):
                final_info[key], final_info[f"_{key}"] = values, infos[f"_{key}"] & done_mask
        self._start(ended)
        kept = ~done_mask
        out = {}
        for key, values in infos.items():
            if not key.startswith("_") and not key.startswith("episode_"):
                out[key], out[f"_{key}"] = values.copy(), infos[f"_{key}"] & kept
        out["movie_id"][ended], out["_movie_id"] = self.table.movie_ids[self.core.movie[ended]], self._all
        out["t"][ended], out["_t"] = 0, self._all
        out.update(final_obs=final_obs, _final_obs=done_mask, final_info=final_info, _final_info=done_mask)
        return out


def make_vector_env(env_id: str = "LiRISMemory-v0", num_envs: int = 1, **kwargs: Any) -> LiRISMemoryVectorEnv:
    """``gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)``, unwrapped."""
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs).unwrapped


__all__ = ["AUTORESET_MODES", "LiRISMemoryVectorEnv", "make_vector_env"]
