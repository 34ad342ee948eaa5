"""Hyperparameter tuning of the RMN agent: Optuna studies over tau, gamma (lambda) and the memory size N
(:mod:`tuning.optimize`, storages in :mod:`tuning.storage`), and the paper's memory-size ablation
(:mod:`tuning.ablate_slots`). See ``docs/tuning.md``."""
