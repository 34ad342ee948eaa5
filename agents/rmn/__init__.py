"""The RMN agent: a Stable-Baselines3 DDPG with an afterstate critic and a jointly trained predictor.

:mod:`agents.rmn.rmn` holds the algorithm, :mod:`agents.rmn.policies` and :mod:`agents.rmn.networks` its networks,
:mod:`agents.rmn.buffers` its replay, :mod:`agents.rmn.long_range` the long-range losses and
:mod:`agents.rmn.refresh` the recomputation of stored memories (and the adjoints).
"""
from agents.rmn.buffers import LabelReplayBuffer
from agents.rmn.policies import RMNPolicy
from agents.rmn.rmn import RMN

__all__ = ["LabelReplayBuffer", "RMN", "RMNPolicy"]
