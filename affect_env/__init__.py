"""affect_env: data, segment encoders, memory math and the Gymnasium environments ``LiRISMemory-*-v0``.

Importing the package registers one id per difficulty preset (:data:`affect_env.presets.PRESETS`:
``LiRISMemory-Short-v0``, ``LiRISMemory-v0``, ``LiRISMemory-Long-v0``, ``LiRISMemory-Marathon-v0``), each with
the single env (``gym.make(id)``) and the batched env (``gym.make_vec(id, num_envs=K,
vectorization_mode="vector_entry_point")``). ``gym.make("affect_env:LiRISMemory-v0")`` works without the import.
"""
from gymnasium.envs.registration import register, registry

from affect_env.data import DataError, FeatureStats, Movie, MovieDataset, load_dataset
from affect_env.env import EPISODE_KEYS, LiRISMemoryEnv
from affect_env.memory import MemoryPredictor, WriteAction, action_dim, decode_action, encode_action, write
from affect_env.presets import DEFAULT_ENV_ID, PRESETS, preset_options
from affect_env.vector import LiRISMemoryVectorEnv, make_vector_env

__version__ = "0.1.0"
ENV_ID = DEFAULT_ENV_ID

for _env_id in PRESETS:
    if _env_id not in registry:
        # the default id takes no preset, so that it also serves other datasets (gym.make(ENV_ID, dataset=dir))
        register(id=_env_id, entry_point="affect_env.env:LiRISMemoryEnv",
                 vector_entry_point="affect_env.vector:LiRISMemoryVectorEnv",
                 kwargs={} if _env_id == DEFAULT_ENV_ID else {"preset": _env_id})

__all__ = [
    "DataError", "ENV_ID", "EPISODE_KEYS", "FeatureStats", "LiRISMemoryEnv", "LiRISMemoryVectorEnv",
    "MemoryPredictor", "Movie", "MovieDataset", "PRESETS", "WriteAction", "action_dim", "decode_action",
    "encode_action", "load_dataset", "make_vector_env", "preset_options", "write",
]
