"""Benchmarks of the project, each a ``python -m benchmarks.<name> [--quick]`` script writing CSV + markdown.

* :mod:`benchmarks.algorithms` — RL algorithms (RMN, DDPG, TD3, SAC, PPO, A2C, TQC, RecurrentPPO) compared on
  the same data, env steps and seeds;
* the other modules of this package measure throughput, memory scaling and prediction quality
  (see each module's docstring).
"""
