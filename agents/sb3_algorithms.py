"""Stock Stable-Baselines3 / sb3-contrib algorithms on ``LiRISMemory-v0``, trained and evaluated like the RMN.

``python -m agents.train --algo ALGO`` trains them through the run layer (:mod:`agents.runs`): ``ddpg``, ``td3``,
``sac``, ``ppo``, ``a2c`` (Stable-Baselines3), ``tqc`` and ``recurrentppo`` (sb3-contrib) are the libraries'
algorithms, unchanged, with ``MultiInputPolicy``
(``MultiInputLstmPolicy`` for RecurrentPPO) on the env in its default ``predictor_mode="online"``: the env
fits its own :class:`~affect_env.memory.MemoryPredictor` on the memories the policy writes, and the reward is
that predictor's error, so any algorithm gets a meaningful signal.

Per-algorithm defaults (budget, update rate, hidden sizes) are the algorithm's section of
``agents/hyperparams/LiRISMemory-v0.yml``, the file rl-baselines3-zoo reads too (:func:`algorithm_config`).

Evaluation: after training, the env's predictor is frozen and the deterministic policy writes the memory along
every movie of the split in a ``LiRISMemoryEnv(predictor_mode="frozen", movie_order="sequential")``; the
predictions are the env's ``info["prediction"]`` at each step. A run directory holds what an RMN run holds
plus ``predictor.pt`` (the env's trained predictor, so evaluation can be redone) and ``hyperparams.json`` (the
algorithm's constructor arguments beyond the config).
"""
from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import stable_baselines3 as sb3
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

from affect_env.data import MovieDataset
from affect_env.encoder import SegmentEncoder, atomic_torch_save
from affect_env.env import LiRISMemoryEnv
from affect_env.memory import MemoryPredictor, action_dim, decode_action
from agents.config import ALGORITHMS, LEAF_PATHS, STOCK_ALGORITHMS, TrainConfig, read_config_file
from agents.inputs import make_env
from agents.outputs import score_predictions
from agents.rmn import RMN

ZOO_NAMES = {**{a: a for a in ALGORITHMS}, "recurrentppo": "ppo_lstm"}  # our name -> rl_zoo3's
HYPERPARAMS_FILE = Path(__file__).parent / "hyperparams" / "LiRISMemory-v0.yml"
ENV_ID = "LiRISMemory-v0"
# zoo keys that are TrainConfig fields (n_timesteps -> timesteps, policy_kwargs.net_arch -> net_arch)
CONFIG_KEYS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
               "gradient_steps")


def check_algorithm(algo: str) -> str:
    """``algo`` lower-cased if it is one of :data:`~agents.config.ALGORITHMS` (``ppo_lstm`` is accepted for
    recurrentppo).

    :raises ValueError: one line naming the choices
    """
    name = str(algo).strip().lower()
    name = "recurrentppo" if name == "ppo_lstm" else name
    if name not in ALGORITHMS:
        raise ValueError(f"--algo {algo}: unknown algorithm; choose one of {', '.join(ALGORITHMS)}")
    return name


def algorithm_class(algo: str) -> type:
    """The Stable-Baselines3 / sb3-contrib class of ``algo`` (RMN for ``rmn``)."""
    algo = check_algorithm(algo)
    if algo == "rmn":
        return RMN
    if algo in ("tqc", "recurrentppo"):
        import sb3_contrib  # an optional dependency (the [contrib] extra): imported only when asked for

        return {"tqc": sb3_contrib.TQC, "recurrentppo": sb3_contrib.RecurrentPPO}[algo]
    if algo not in STOCK_ALGORITHMS:
        raise ValueError(f"--algo {algo}: a supervised baseline, not an SB3 algorithm")
    return {"ddpg": sb3.DDPG, "td3": sb3.TD3, "sac": sb3.SAC, "ppo": sb3.PPO, "a2c": sb3.A2C}[algo]


def default_policy(algo: str) -> str:
    """``MultiInputLstmPolicy`` for RecurrentPPO, ``RMNPolicy`` for the RMN, else ``MultiInputPolicy``."""
    return {"recurrentppo": "MultiInputLstmPolicy", "rmn": "RMNPolicy"}.get(check_algorithm(algo),
                                                                          "MultiInputPolicy")


# ---- hyperparameters: the zoo file ----------------------------------------------------------------------
def load_hyperparams_file(path: Union[str, Path] = HYPERPARAMS_FILE) -> dict:
    """The whole hyperparameter file (``{algo: {env_id: {...}}, env_id: {...}}``).

    :raises ValueError: naming the file when it is missing or not a YAML mapping
    """
    return read_config_file(path, "hyperparameter file", "a YAML mapping of algorithm sections")


def algorithm_section(algo: str, path: Union[str, Path] = HYPERPARAMS_FILE, env_id: str = ENV_ID) -> dict:
    """The zoo hyperparameters of ``algo`` on ``env_id`` (a copy), from the file's ``<zoo algo>: {env_id: ...}``.

    :raises ValueError: naming the file and the missing section
    """
    zoo = ZOO_NAMES[check_algorithm(algo)]
    data = load_hyperparams_file(path)
    section = (data.get(zoo) or {}).get(env_id) if isinstance(data.get(zoo), dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"{path}: no section {zoo}: {env_id}: (hyperparameters of --algo {algo})")
    return json.loads(json.dumps(section))  # a deep copy of plain YAML values


def split_section(section: dict, where: str = "hyperparameters") -> tuple:
    """``(TrainConfig fields, other constructor arguments)`` of a zoo section.

    ``n_timesteps`` becomes ``timesteps``, ``policy_kwargs.net_arch`` becomes ``net_arch``; the keys of
    :data:`CONFIG_KEYS` are config fields; everything else (``policy``, ``noise_type``/``noise_std``,
    ``n_steps``, the rest of ``policy_kwargs``...) is passed to the algorithm.
    """
    config, extras = {}, {}
    for key, value in section.items():
        if key == "n_timesteps":
            config["timesteps"] = int(value)
        elif key in CONFIG_KEYS:
            config[key] = list(value) if isinstance(value, list) else value
        elif key == "policy_kwargs":
            if not isinstance(value, dict):
                raise ValueError(f"{where}: policy_kwargs must be a mapping (e.g. {{net_arch: [64, 64]}}), "
                                 f"got {value!r}")
            kwargs = dict(value)
            if "net_arch" in kwargs:
                config["net_arch"] = tuple(kwargs.pop("net_arch"))
            if kwargs:
                extras["policy_kwargs"] = kwargs
        else:
            extras[key] = value
    return config, extras


def algorithm_config(algo: str, base: Optional[TrainConfig] = None, keep: Sequence[str] = (),
                     path: Union[str, Path] = HYPERPARAMS_FILE) -> TrainConfig:
    """``base`` (default :class:`TrainConfig`) with ``algo``'s per-algorithm defaults from the zoo file.

    :param keep: fields the user set explicitly (left as they are in ``base``)
    :return: a new config with ``algo`` set; for the RMN and the baselines, ``base`` with only ``algo`` changed
    """
    algo = check_algorithm(algo)
    base = base or TrainConfig()
    if algo not in STOCK_ALGORITHMS:
        return base.update({"algo": algo})
    config, _ = split_section(algorithm_section(algo, path), str(path))
    return base.update({**{k: v for k, v in config.items() if k not in set(keep)}, "algo": algo}, str(path))


def split_hyperparams(hyperparams: Optional[dict]) -> tuple:
    """``(TrainConfig fields, other constructor arguments)`` of user ``hyperparams`` (``key: value``).

    Zoo spellings are accepted (``n_timesteps``, ``policy_kwargs`` with ``net_arch``) as well as field names.
    """
    fields = set(LEAF_PATHS)
    config, extras = split_section({k: v for k, v in (hyperparams or {}).items() if k not in fields})
    config.update({k: v for k, v in (hyperparams or {}).items() if k in fields})
    return config, extras


def sb3_kwargs(cfg: TrainConfig, algo: str, extras: Optional[dict], n_actions: int,
               tensorboard_log: Optional[str] = None) -> dict:
    """Constructor arguments of ``algo``'s class from the config's fields and ``extras``.

    The config's optimisation fields the class accepts (:data:`CONFIG_KEYS`), its ``net_arch`` (in
    ``policy_kwargs``), seed and device; ``extras`` are passed as given, except the zoo's
    ``noise_type``/``noise_std`` (``normal`` or ``ornstein-uhlenbeck`` action noise) and ``policy``.

    :raises ValueError: for an argument the class does not take (naming the class and the argument)
    """
    algo = check_algorithm(algo)
    cls = algorithm_class(algo)
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {k: getattr(cfg.algorithm, k) for k in CONFIG_KEYS if k in params}
    if "buffer_size" in kwargs:
        kwargs["buffer_size"] = int(min(cfg.algorithm.buffer_size, cfg.algorithm.timesteps + 1))
    if isinstance(kwargs.get("train_freq"), (list, tuple)):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    extras = dict(extras or {})
    policy = extras.pop("policy", default_policy(algo))
    policy_kwargs = dict(extras.pop("policy_kwargs", None) or {})
    policy_kwargs["net_arch"] = list(cfg.memory.net_arch)
    noise_type, noise_std = extras.pop("noise_type", None), float(extras.pop("noise_std", 0.1))
    for key in ("n_timesteps", "n_envs", "normalize", "env_kwargs"):
        if key in extras:
            raise ValueError(f"{key}: a rl_zoo3 setting that agents.train does not use "
                             f"(set timesteps/the env options instead)")
    unknown = sorted(k for k in extras if k not in params or k in ("self", "env", "policy", "_init_setup_model"))
    if unknown:
        raise ValueError(f"{cls.__name__} ({algo}) takes no argument {', '.join(unknown)}")
    if noise_type is not None:
        if "action_noise" not in params:
            raise ValueError(f"noise_type: {cls.__name__} ({algo}) takes no action noise")
        mean, sigma = np.zeros(n_actions), noise_std * np.ones(n_actions)
        noises = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}
        if noise_type not in noises:
            raise ValueError(f"noise_type {noise_type!r}: use 'normal' or 'ornstein-uhlenbeck'")
        kwargs["action_noise"] = noises[noise_type](mean=mean, sigma=sigma)
    kwargs.update(extras)
    kwargs.update(policy=policy, policy_kwargs=policy_kwargs, seed=cfg.run.seed, device=cfg.run.device,
                  tensorboard_log=tensorboard_log)
    return kwargs


def stock_extras(algo: str, user: Optional[dict] = None) -> dict:
    """The constructor arguments of a stock algorithm beyond the config: its zoo section's, with the user's
    (the non-config part of :func:`split_hyperparams`) on top (``policy_kwargs`` merged)."""
    _, extras = split_section(algorithm_section(algo), str(HYPERPARAMS_FILE))
    user = dict(user or {})
    if "policy_kwargs" in user:
        user["policy_kwargs"] = {**extras.get("policy_kwargs", {}), **user["policy_kwargs"]}
    return {**extras, **user}


def make_stock_model(cfg: TrainConfig, env: LiRISMemoryEnv, extras: dict,
                     tensorboard_log: Optional[str] = None) -> BaseAlgorithm:
    """The stock algorithm ``cfg.algorithm.algo`` on ``env``, configured by ``cfg`` and ``extras``."""
    algo = cfg.algorithm.algo
    kwargs = sb3_kwargs(cfg, algo, extras, action_dim(cfg.memory.n_slots, cfg.memory.memory_dim), tensorboard_log)
    return algorithm_class(algo)(env=env, **kwargs)


# ---- the env's predictor ----------------------------------------------------------------------------------
def save_predictor(predictor: MemoryPredictor, path: Union[str, Path]) -> None:
    """Write ``{"config", "state_dict"}`` of ``predictor`` atomically to ``path``."""
    atomic_torch_save({"config": predictor.config(),
                       "state_dict": {k: v.detach().cpu() for k, v in predictor.state_dict().items()}}, path)


def load_predictor(path: Union[str, Path]) -> MemoryPredictor:
    """The :class:`MemoryPredictor` saved by :func:`save_predictor`."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no saved predictor (predictor.pt) there")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    predictor = MemoryPredictor(**payload["config"])
    predictor.load_state_dict(payload["state_dict"])
    return predictor.eval()


# ---- evaluation ------------------------------------------------------------------------------------------
def evaluation_env(cfg: TrainConfig, dataset: MovieDataset, encoder: SegmentEncoder,
                   predictor: MemoryPredictor) -> LiRISMemoryEnv:
    """The env that evaluates a policy on ``dataset``: ``predictor`` frozen, movies in order."""
    return make_env(cfg, dataset, encoder, predictor_mode="frozen", predictor=predictor, movie_order="sequential")


def predict_movies(model: BaseAlgorithm, env: LiRISMemoryEnv, batch_movies: int = 64) -> list:
    """Roll ``model``'s deterministic policy along every movie of ``env``'s dataset.

    Movies run ``batch_movies`` at a time in lockstep, one policy call per step for the whole batch: each movie
    steps its own shallow copy of ``env`` (the copies share the embeddings and the frozen predictor and keep
    their own memory and position). Recurrent policies carry their state along each movie from its start.

    :return: one dict per movie, in dataset order: ``prediction`` ``(T, n_targets)`` (the env's
        ``info["prediction"]``) and ``attention`` ``(T, N)`` (the decoded write attention)
    """
    if env.predictor_mode == "online":
        raise ValueError("evaluate with a frozen predictor: the env's online predictor would keep learning")
    lengths = [len(m) for m in env.dataset]
    order = np.argsort([-n for n in lengths], kind="stable")
    results: list = [None] * len(lengths)
    for begin in range(0, len(order), batch_movies):
        idx = [int(i) for i in order[begin:begin + batch_movies]]
        envs = [copy.copy(env) for _ in idx]
        obs = [e.reset(options={"movie_index": i})[0] for e, i in zip(envs, idx)]
        preds = [np.zeros((lengths[i], env.n_targets), np.float32) for i in idx]
        atts = [np.zeros((lengths[i], env.n_slots), np.float32) for i in idx]
        state, start = None, np.ones((len(idx),), dtype=bool)
        for t in range(max(lengths[i] for i in idx)):
            batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
            actions, state = model.predict(batch, state=state, episode_start=start, deterministic=True)
            start = np.zeros((len(idx),), dtype=bool)
            for b, i in enumerate(idx):
                if t < lengths[i]:
                    action = np.asarray(actions[b], dtype=np.float32)
                    obs[b], _, _, _, info = envs[b].step(action)
                    preds[b][t] = info["prediction"]
                    atts[b][t] = decode_action(action, env.n_slots, env.memory_dim).attention
        for b, i in enumerate(idx):
            results[i] = {"prediction": preds[b], "attention": atts[b]}
    return results


def evaluate_policy_on(model: BaseAlgorithm, env: LiRISMemoryEnv) -> tuple:
    """``(metrics DataFrame, per-movie results)`` of ``model`` on the dataset of the evaluation ``env``."""
    return score_predictions(predict_movies(model, env), env.dataset)
