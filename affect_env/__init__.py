"""affect_env: data, segment encoders, memory math and the Gymnasium environment ``LiRISMemory-v0``.

Importing the package registers the environment, so both ``gym.make("LiRISMemory-v0")`` (after
``import affect_env``) and ``gym.make("affect_env:LiRISMemory-v0")`` work.
"""
from gymnasium.envs.registration import register, registry

from affect_env.data import DataError, FeatureStats, Movie, MovieDataset, load_dataset
from affect_env.env import LiRISMemoryEnv
from affect_env.memory import MemoryPredictor, WriteAction, action_dim, decode_action, encode_action, write

__version__ = "0.1.0"
ENV_ID = "LiRISMemory-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="affect_env.env:LiRISMemoryEnv")

__all__ = [
    "DataError", "ENV_ID", "FeatureStats", "LiRISMemoryEnv", "MemoryPredictor", "Movie", "MovieDataset",
    "WriteAction", "action_dim", "decode_action", "encode_action", "load_dataset", "write",
]
