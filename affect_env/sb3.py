"""Stable-Baselines3 ``VecEnv`` over the batched env, so SB3 algorithms step ``K`` movies in one NumPy batch.

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor
    from affect_env import EPISODE_KEYS
    from affect_env.sb3 import make_sb3_vec_env

    venv = VecMonitor(make_sb3_vec_env("LiRISMemory-Short-v0", num_envs=16), info_keywords=EPISODE_KEYS)
    PPO("MultiInputPolicy", venv).learn(100_000)   # ep_info_buffer holds each episode's gap_closed

This module is the only part of ``affect_env`` that imports Stable-Baselines3; the envs themselves do not need it.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from affect_env.vector import LiRISMemoryVectorEnv, make_vector_env


class LiRISMemorySB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` API over a :class:`~affect_env.vector.LiRISMemoryVectorEnv` in ``"SameStep"`` autoreset.

    SB3 resets an ended sub-env within the step that ended it and hands the last observation over in
    ``info["terminal_observation"]``: the batched env's ``"SameStep"`` mode does the same, so this adapter only
    converts the vector infos (arrays with ``_key`` masks) into SB3's list of per-env dicts. The ending step's
    dict has the ended movie's info (``target``, ``prediction``, the episode keys ``episode_mse`` ...
    ``episode_gap_closed``) for ``VecMonitor(info_keywords=...)``; the next movie's reset info goes to
    ``reset_infos``.

    The sub-envs share one env object: ``get_attr``/``env_method`` reach that object (``env_method`` is called
    once and its result given for each requested index), and ``set_attr`` sets it for all sub-envs at once.

    :param env: the batched env (``gym.make_vec(..., vectorization_mode="vector_entry_point",
        autoreset_mode="SameStep")``, wrapped or not)
    :raises TypeError: if ``env`` is not a ``LiRISMemoryVectorEnv``
    :raises ValueError: if its ``autoreset_mode`` is not ``"SameStep"``
    """

    def __init__(self, env: LiRISMemoryVectorEnv) -> None:
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, LiRISMemoryVectorEnv):
            raise TypeError(f"env must be a LiRISMemoryVectorEnv (gym.make_vec(..., vectorization_mode="
                            f"'vector_entry_point')), got {type(env).__name__}")
        if base.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"env's autoreset_mode must be 'SameStep' for SB3 (it resets in the ending step), got "
                             f"{base.autoreset_mode.value!r}: make it with autoreset_mode='SameStep' or use "
                             f"make_sb3_vec_env")
        self.env = env
        self.venv = base
        self._actions: Optional[np.ndarray] = None
        super().__init__(base.num_envs, base.single_observation_space, base.single_action_space)

    # ---- stepping ---------------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Start a movie in every sub-env, seeded by ``seed()``'s first seed (one random stream for the batch); the
        first sub-env's ``set_options`` options go to the batched env's ``reset`` (``movie_index``: one index or
        one per sub-env)."""
        seed = self._seeds[0]
        options = self._options[0] or None
        obs, infos = self.env.reset(seed=seed, options=options)
        self.reset_infos = self._split(infos)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
        dones = terminated | truncated
        per_env = self._split(infos, exclude=("final_obs", "final_info"))
        ended = np.flatnonzero(dones)
        if len(ended):
            final = self._split(infos["final_info"])
            for i in ended:
                self.reset_infos[i] = per_env[i]
                per_env[i] = {**final[i], "terminal_observation": infos["final_obs"][i],
                              "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
        return obs, rewards.astype(np.float32), dones, per_env

    def _split(self, infos: dict, exclude: Sequence[str] = ()) -> list:
        """Vector infos (``key`` arrays with ``_key`` masks) as one dict per sub-env."""
        out = [{} for _ in range(self.num_envs)]
        for key, values in infos.items():
            if key.startswith("_") or key in exclude:
                continue
            mask = infos[f"_{key}"]
            for i in (range(self.num_envs) if mask.all() else np.flatnonzero(mask)):
                out[i][key] = values[i]
        return out

    def close(self) -> None:
        self.env.close()

    # ---- attributes of the shared env -------------------------------------------------------------------
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(f"indices must cover every sub-env: they share one env object, so set_attr("
                             f"{attr_name!r}) sets it for all (got indices={indices!r})")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list:
        """No sub-env is wrapped (there are no per-env ``gym.Wrapper`` objects): ``False`` for each."""
        return [False for _ in self._get_indices(indices)]


def as_sb3_vec_env(env: gym.vector.VectorEnv) -> LiRISMemorySB3VecEnv:
    """The SB3 ``VecEnv`` of a batched env made with ``autoreset_mode="SameStep"``."""
    return LiRISMemorySB3VecEnv(env)


def make_sb3_vec_env(env_id: str = "LiRISMemory-v0", num_envs: int = 1, **kwargs: Any) -> LiRISMemorySB3VecEnv:
    """A batched env of ``env_id`` (``kwargs``: the env's arguments) in ``"SameStep"`` mode, as an SB3 ``VecEnv``."""
    if "autoreset_mode" in kwargs and AutoresetMode(kwargs["autoreset_mode"]) != AutoresetMode.SAME_STEP:
        raise ValueError(f"autoreset_mode must be 'SameStep' for SB3, got {kwargs['autoreset_mode']!r}")
    kwargs["autoreset_mode"] = AutoresetMode.SAME_STEP
    return LiRISMemorySB3VecEnv(make_vector_env(env_id, num_envs, **kwargs))


__all__ = ["LiRISMemorySB3VecEnv", "as_sb3_vec_env", "make_sb3_vec_env"]
