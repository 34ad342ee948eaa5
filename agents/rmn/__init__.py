"""The RMN agent: a Stable-Baselines3 DDPG with an afterstate critic and a jointly trained predictor."""
from agents.rmn.buffers import LabelReplayBuffer
from agents.rmn.policies import RMNPolicy
from agents.rmn.rmn import RMN

__all__ = ["LabelReplayBuffer", "RMN", "RMNPolicy"]
