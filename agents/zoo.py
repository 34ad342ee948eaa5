"""rl-baselines3-zoo (``rl_zoo3``) on ``LiRISMemory-v0``, with the RMN agent registered as ``--algo rmn``.

    python -m agents.zoo --algo {rmn,td3,ddpg,sac,tqc,ppo,a2c,ppo_lstm|recurrentppo} --env LiRISMemory-v0
        [-n STEPS] [-optimize --n-trials K] [--env-kwargs KEY:VALUE ...] [any other rl_zoo3.train option]

It registers the RMN (class, hyperparameter sampler for ``-optimize``) into rl_zoo3, picks ``--algo``'s
section of ``agents/hyperparams/LiRISMemory-v0.yml`` (or of the ``-conf`` file given, when it has per-algorithm
sections; a plain zoo file keyed by env id is passed through), and runs ``rl_zoo3.train`` in this process.
The RMN's hyperparameters default to the default recipe (:mod:`agents.config`); config fields in the file's
``rmn`` section (bare names, e.g. ``jump_weight: 5.0``) override them. Without this wrapper, ``python -m
rl_zoo3.train --algo td3 --env LiRISMemory-v0 --gym-packages affect_env -conf agents/hyperparams/LiRISMemory-v0.yml``
works for the stock algorithms (with the file's td3 settings).

Under the zoo, the RMN trains on the env it is given (default: the pooling encoder) and the zoo's evaluation
reward is the eval env's own online predictor reading the policy's memory — fine for tuning, but the project's
metrics (test MSE, PCC, ``gap_closed``) come from ``python -m agents.train``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

try:  # an optional dependency: the [contrib] extra
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.train import train as zoo_train
    from rl_zoo3.utils import ALGOS
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("agents.zoo needs rl-baselines3-zoo: pip install -e '.[contrib]'") from err

import affect_env  # noqa: F401  (registers LiRISMemory-v0 for rl_zoo3's gym.make)
from agents.cli import run_cli
from agents.config import LEAF_PATHS, TrainConfig
from agents.rmn import RMN
from agents.sb3_algorithms import (CONFIG_KEYS, ENV_ID, HYPERPARAMS_FILE, ZOO_NAMES, check_algorithm,
                                   load_hyperparams_file)



def rmn_hyperparams(cfg: Optional[TrainConfig] = None, n_timesteps: Optional[int] = None) -> dict:
    """The zoo hyperparameters of the RMN from ``cfg`` (default: the default recipe), as plain YAML values:
    ``policy``, ``n_timesteps``, the SB3 arguments, the ``recipe`` mapping and ``policy_kwargs.memory``."""
    cfg = cfg or TrainConfig()
    values = cfg.to_dict()
    n_timesteps = int(n_timesteps or cfg.algorithm.timesteps)
    params = {k: values["algorithm"][k] for k in CONFIG_KEYS}  # the SB3 arguments; the rest is one recipe
    params["buffer_size"] = int(min(params["buffer_size"], n_timesteps + 1))
    return {"policy": "RMNPolicy", "n_timesteps": n_timesteps, **params, "recipe": values["rmn"],
            "policy_kwargs": {"memory": values["memory"]}}


def zoo_hyperparams(algo: str, path: Optional[Path] = None, env_id: str = ENV_ID) -> dict:
    """What rl_zoo3 gets for ``algo`` on ``env_id``: the file's section (the RMN's merged over its defaults)."""
    algo = check_algorithm(algo)
    path = Path(path or HYPERPARAMS_FILE)
    data = load_hyperparams_file(path)
    section = data.get(ZOO_NAMES[algo], {}).get(env_id) if isinstance(data.get(ZOO_NAMES[algo]), dict) else None
    if algo != "rmn" and not isinstance(section, dict):
        raise ValueError(f"{path}: no section {ZOO_NAMES[algo]}: {env_id}: (hyperparameters of --algo {algo})")
    section = dict(section or {})
    if algo == "rmn":
        fields = {k: section.pop(k) for k in list(section) if k in LEAF_PATHS}
        cfg = TrainConfig().update(fields, f"{path}: rmn")
        merged = rmn_hyperparams(cfg, n_timesteps=section.get("n_timesteps"))
        kwargs = {**merged.pop("policy_kwargs"), **(section.pop("policy_kwargs", None) or {})}
        section = {**merged, **section, "policy_kwargs": kwargs}
    return section


# ---- rl_zoo3 registration -------------------------------------------------------------------------------
def sample_rmn_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict:
    """rl_zoo3 ``-optimize`` sampler for the RMN: learning rate, batch, discount, soft update, exploration."""
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.001, 0.05, log=True),
        "tau": trial.suggest_float("tau", 0.001, 0.02, log=True),
        "exploration_std": trial.suggest_float("exploration_std", 0.02, 0.5, log=True),
    }
    return convert_rmn_params(params)


def convert_rmn_params(params: dict) -> dict:
    """Sampled values -> RMN arguments (``one_minus_gamma`` -> ``gamma``; recipe fields into ``recipe``)."""
    out = dict(params)
    if "one_minus_gamma" in out:
        out["gamma"] = 1.0 - out.pop("one_minus_gamma")
    if "exploration_std" in out:
        out["recipe"] = {"exploration_std": out.pop("exploration_std")}
    return out


def register() -> None:
    """Make ``--algo rmn`` known to rl_zoo3 (training, ``-optimize`` sampling, loading trials)."""
    ALGOS["rmn"] = RMN
    HYPERPARAMS_SAMPLER["rmn"] = sample_rmn_params
    HYPERPARAMS_CONVERTER["rmn"] = convert_rmn_params


def _has_algorithm_sections(path: Path) -> bool:
    data = load_hyperparams_file(path)
    return any(isinstance(v, dict) and any(isinstance(s, dict) for s in v.values())
               for k, v in data.items() if k in set(ZOO_NAMES.values()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``rl_zoo3.train`` with the RMN registered and ``--algo``'s section of the hyperparameter file."""
    parser = argparse.ArgumentParser(prog="python -m agents.zoo", add_help=False)
    parser.add_argument("--algo", default="td3")
    parser.add_argument("--env", default=ENV_ID)
    parser.add_argument("-conf", "--conf-file", default=None)
    known, rest = parser.parse_known_args(argv)
    algo = check_algorithm(known.algo)
    register()
    conf = Path(known.conf_file) if known.conf_file else HYPERPARAMS_FILE
    with tempfile.TemporaryDirectory(prefix="agents-zoo-") as tmp:
        if known.conf_file and known.conf_file.endswith((".yml", ".yaml")) and not _has_algorithm_sections(conf):
            conf_arg = str(conf)  # a plain zoo file keyed by env id
        elif known.conf_file and not known.conf_file.endswith((".yml", ".yaml")):
            conf_arg = known.conf_file  # a python file or module: rl_zoo3 reads it itself
        else:
            conf_path = Path(tmp) / f"{ZOO_NAMES[algo]}.yml"
            conf_path.write_text(yaml.safe_dump({known.env: zoo_hyperparams(algo, conf, known.env)}, sort_keys=False))
            conf_arg = str(conf_path)
        zoo_argv = ["--algo", ZOO_NAMES[algo], "--env", known.env, "-conf", conf_arg, *rest]
        saved, sys.argv = sys.argv, ["python -m rl_zoo3.train", *zoo_argv]
        try:
            zoo_train()
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
