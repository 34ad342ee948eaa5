"""Benchmarks of the project, each a ``python -m benchmarks.<name> [--quick]`` script writing CSV + markdown.

* :mod:`benchmarks.algorithms` — every method on one preset: the RMN's recipes, the stock RL algorithms (DDPG,
  TD3, SAC, TQC, PPO, A2C, RecurrentPPO) and the supervised baselines, on the same data, env steps and seeds;
* the other modules of this package measure throughput, memory scaling and prediction quality
  (see each module's docstring).
"""
