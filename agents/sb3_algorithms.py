"""Stock Stable-Baselines3 / sb3-contrib algorithms on ``LiRISMemory-v0``, trained and evaluated like the RMN.

``python -m agents.train --algo ALGO`` runs :func:`train_algorithm`: ``rmn`` is the project's agent
(:func:`agents.training.train`); ``ddpg``, ``td3``, ``sac``, ``ppo``, ``a2c`` (Stable-Baselines3), ``tqc`` and
``recurrentppo`` (sb3-contrib) are the libraries' algorithms, unchanged, with ``MultiInputPolicy``
(``MultiInputLstmPolicy`` for RecurrentPPO) on the env in its default ``predictor_mode="online"``: the env
fits its own :class:`~affect_env.memory.MemoryPredictor` on the memories the policy writes, and the reward is
that predictor's error, so any algorithm gets a meaningful signal.

Per-algorithm defaults (budget, update rate, hidden sizes) are the algorithm's section of
``agents/hyperparams/LiRISMemory-v0.yml``, the file rl-baselines3-zoo reads too (:func:`algorithm_config`).

Evaluation: after training, the env's predictor is frozen and the deterministic policy writes the memory along
every movie of the split in a ``LiRISMemoryEnv(predictor_mode="frozen", movie_order="sequential")``; the
predictions are the env's ``info["prediction"]`` at each step. A run directory holds what an RMN run holds
(see :mod:`agents.training`) plus ``predictor.pt`` (the env's trained predictor, so evaluation can be redone:
:func:`evaluate_run`) and ``hyperparams.json`` (the algorithm's constructor arguments beyond the config).
"""
from __future__ import annotations

import copy
import inspect
import json
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.utils import set_random_seed

from affect_env.data import MovieDataset, load_dataset
from affect_env.encoder import SegmentEncoder, atomic_torch_save
from affect_env.env import LiRISMemoryEnv
from affect_env.memory import MemoryPredictor, action_dim, decode_action
from agents.config import TrainConfig
from agents.metrics import evaluate_predictions
from agents.training import (CheckpointAndEval, atomic_save_model, atomic_write_text, build_encoder,
                             check_rmn_only_options, headline_metrics, load_splits, make_env, restore_best,
                             save_checkpoint)

ALGORITHMS = ("rmn", "ddpg", "td3", "sac", "ppo", "a2c", "tqc", "recurrentppo")
STOCK_ALGORITHMS = ALGORITHMS[1:]
ZOO_NAMES = {**{a: a for a in ALGORITHMS}, "recurrentppo": "ppo_lstm"}  # our name -> rl_zoo3's
HYPERPARAMS_FILE = Path(__file__).parent / "hyperparams" / "LiRISMemory-v0.yml"
ENV_ID = "LiRISMemory-v0"
# zoo keys that are TrainConfig fields (n_timesteps -> timesteps, policy_kwargs.net_arch -> net_arch)
CONFIG_KEYS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
               "gradient_steps")


def check_algorithm(algo: str) -> str:
    """``algo`` lower-cased if it is one of :data:`ALGORITHMS` (``ppo_lstm`` is accepted for recurrentppo).

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
        from agents.rmn import RMN

        return RMN
    if algo in ("tqc", "recurrentppo"):
        import sb3_contrib

        return {"tqc": sb3_contrib.TQC, "recurrentppo": sb3_contrib.RecurrentPPO}[algo]
    import stable_baselines3 as sb3

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
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: hyperparameter file not found") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping of algorithm sections")
    return data


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
    :return: a new config with ``algo`` set; for ``rmn``, ``base`` unchanged (its defaults are TrainConfig's)
    """
    algo = check_algorithm(algo)
    base = base or TrainConfig()
    if algo == "rmn":
        return base.update({"algo": algo})
    config, _ = split_section(algorithm_section(algo, path), str(path))
    return base.update({**{k: v for k, v in config.items() if k not in set(keep)}, "algo": algo}, str(path))


def split_hyperparams(hyperparams: Optional[dict]) -> tuple:
    """``(TrainConfig fields, other constructor arguments)`` of user ``hyperparams`` (``key: value``).

    Zoo spellings are accepted (``n_timesteps``, ``policy_kwargs`` with ``net_arch``) as well as field names.
    """
    fields = set(TrainConfig().to_dict())
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
    kwargs: dict[str, Any] = {k: getattr(cfg, k) for k in CONFIG_KEYS if k in params}
    if "buffer_size" in kwargs:
        kwargs["buffer_size"] = int(min(cfg.buffer_size, cfg.timesteps + 1))
    if isinstance(kwargs.get("train_freq"), (list, tuple)):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    extras = dict(extras or {})
    policy = extras.pop("policy", default_policy(algo))
    policy_kwargs = dict(extras.pop("policy_kwargs", None) or {})
    policy_kwargs["net_arch"] = list(cfg.net_arch)
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
    kwargs.update(policy=policy, policy_kwargs=policy_kwargs, seed=cfg.seed, device=cfg.device,
                  tensorboard_log=tensorboard_log)
    return kwargs


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
    results = predict_movies(model, env)
    return evaluate_predictions([r["prediction"] for r in results], env.dataset), results


def _global_row(metrics: pd.DataFrame) -> dict:
    row = metrics.iloc[0].to_dict()
    row.pop("scope", None)
    return {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in row.items()}


# ---- training --------------------------------------------------------------------------------------------
class _SB3CheckpointAndEval(CheckpointAndEval):
    """:class:`~agents.training.CheckpointAndEval` whose checkpoints also hold the env's predictor (and no
    replay buffer for on-policy algorithms)."""

    def __init__(self, run_dir: Path, evaluate_fn, eval_every: int, checkpoint_every: int, t0: float,
                 predictor: MemoryPredictor, on_eval: Optional[Callable[[dict], None]] = None) -> None:
        super().__init__(run_dir, evaluate_fn, eval_every, 0, t0, on_eval)
        self.every, self.predictor = checkpoint_every, predictor

    def _on_step(self) -> bool:
        if self.every and self.model.num_timesteps % self.every == 0:
            save_sb3_checkpoint(self.model, self.predictor, self.run_dir, time.time() - self.t0)
        return super()._on_step()


def save_sb3_checkpoint(model: BaseAlgorithm, predictor: MemoryPredictor, run_dir: Path, wall_s: float) -> None:
    """:func:`~agents.training.save_checkpoint` (model, replay buffer if off-policy, best models, progress) with
    the env's predictor, each written atomically."""
    (run_dir / "checkpoint").mkdir(parents=True, exist_ok=True)
    save_predictor(predictor, run_dir / "checkpoint" / "predictor.pt")
    save_checkpoint(model, run_dir, wall_s)


def train_sb3(cfg: TrainConfig, algo: Optional[str] = None, hyperparams: Optional[dict] = None,
              resume: bool = False, progress: bool = True,
              on_eval: Optional[Callable[[dict], None]] = None) -> dict:
    """Train a stock algorithm per ``cfg`` into ``cfg.out``, evaluate it on the test split, write the outputs.

    The config is used as given (apply per-algorithm defaults first with :func:`algorithm_config`); the
    constructor arguments beyond it are the algorithm's zoo section merged with ``hyperparams``.

    :param algo: one of :data:`STOCK_ALGORITHMS` (default ``cfg.algo``)
    :param hyperparams: extra constructor arguments (e.g. ``{"n_steps": 256}``, ``{"noise_type": "normal",
        "noise_std": 0.2}``, ``{"policy_kwargs": {"lstm_hidden_size": 32}}``); saved as ``hyperparams.json``
    :param resume: continue the run in ``cfg.out`` from its latest checkpoint (its config and hyperparameters
        are reloaded; the Adam state of the env's predictor restarts)
    :param on_eval: called with each validation row; raising from it stops training
    :return: the summary (also ``summary.json``): ``algo``, ``timesteps``, ``train_wall_s``, ``updates``,
        ``updates_per_s``, ``env_steps_per_s``, ``test_mse``, ``test_<target>_pcc``, ``test_gap_closed``,
        ``val_mse``, ``val_gap_closed`` (the last three when the dataset has an oracle)
    """
    out = Path(cfg.out)
    if resume:
        if not (out / "config.json").exists():
            raise ValueError(f"--resume {out}: no config.json there (not a run directory)")
        cfg = TrainConfig.load(out / "config.json")
        saved = json.loads((out / "hyperparams.json").read_text()) if (out / "hyperparams.json").exists() else {}
        algo, extras = check_algorithm(cfg.algo), saved.get("hyperparams", {})
    else:
        if (out / "checkpoint" / "model.zip").exists():
            raise ValueError(f"{out} already holds a run: use --resume {out} to continue it or another --out")
        algo = check_algorithm(algo or cfg.algo)
        _, extras = split_section(algorithm_section(algo), str(HYPERPARAMS_FILE))
        config_part, user_extras = split_hyperparams(hyperparams)
        if config_part:
            cfg = cfg.update(config_part, "hyperparams")
        if "policy_kwargs" in user_extras:
            user_extras["policy_kwargs"] = {**extras.get("policy_kwargs", {}), **user_extras["policy_kwargs"]}
        extras.update(user_extras)
    if algo == "rmn":
        raise ValueError("train_sb3 trains the stock algorithms; train the RMN with agents.training.train")
    check_rmn_only_options(cfg, f"--algo {algo}")
    cfg = cfg.update({"algo": algo})
    cls = algorithm_class(algo)
    kwargs = sb3_kwargs(cfg, algo, extras, action_dim(cfg.n_slots, cfg.memory_dim), str(out / "tb"))  # checks
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
    atomic_write_text(out / "hyperparams.json", json.dumps({"algo": algo, "hyperparams": extras}, indent=2) + "\n")
    set_random_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    t0 = time.time()
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, out, progress)
    env = make_env(cfg, data["train"], encoder, predictor_hidden=cfg.predictor_hidden)
    env.reset(seed=cfg.seed)
    ckpt = out / "checkpoint"
    done, wall_before = 0, 0.0
    if resume and (ckpt / "model.zip").exists():
        env.set_predictor(load_predictor(ckpt / "predictor.pt"), "online")
        model = cls.load(ckpt / "model.zip", env=env, device=cfg.device)
        if (ckpt / "replay.pkl").exists() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(ckpt / "replay.pkl")
        state = json.loads((ckpt / "state.json").read_text())
        done, wall_before = state["num_timesteps"], state["wall_s"]
        model.tensorboard_log = str(out / "tb")
        restore_best(out, state)
    else:
        model = cls(env=env, **kwargs)
        if resume:
            restore_best(out, {})
    t0 -= wall_before
    val_env = evaluation_env(cfg, data["val"], encoder, env.predictor)  # sees the predictor as it trains

    callback = _SB3CheckpointAndEval(out, lambda m: _global_row(evaluate_policy_on(m, val_env)[0]),
                                     cfg.eval_every, cfg.checkpoint_every, t0, env.predictor, on_eval)
    remaining = cfg.timesteps - done
    learn_start, updates_before, steps_before = time.time(), model._n_updates, model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=not resume, progress_bar=progress,
                    tb_log_name=algo)
    learn_wall = max(time.time() - learn_start, 1e-9)
    train_wall = time.time() - t0
    atomic_save_model(model, out / "model.zip")
    save_predictor(env.predictor, out / "predictor.pt")
    save_sb3_checkpoint(model, env.predictor, out, train_wall)

    from agents.evaluate import write_outputs

    predictor = load_predictor(out / "predictor.pt")  # evaluate exactly what was saved
    metrics, results = evaluate_policy_on(model, evaluation_env(cfg, data["test"], encoder, predictor))
    write_outputs(out, metrics, results, data["test"])
    val = _global_row(evaluate_policy_on(model, evaluation_env(cfg, data["val"], encoder, predictor))[0])
    g = metrics.iloc[0]
    summary = {"algo": algo, "timesteps": int(model.num_timesteps), "train_wall_s": round(train_wall, 1),
               "updates": int(model._n_updates),
               "updates_per_s": round((model._n_updates - updates_before) / learn_wall, 1),
               "env_steps_per_s": round((model.num_timesteps - steps_before) / learn_wall, 1),
               "test_mse": float(g["mse"])}
    summary.update(headline_metrics(metrics, val, cfg.targets))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def train_algorithm(cfg: TrainConfig, hyperparams: Optional[dict] = None, resume: bool = False,
                    progress: bool = True, on_eval: Optional[Callable[[dict], None]] = None) -> dict:
    """Train ``cfg.algo``: the RMN with :func:`agents.training.train`, a stock algorithm with :func:`train_sb3`.

    :param hyperparams: ``key: value`` overrides; config fields go into ``cfg``, anything else (stock
        algorithms only) to the algorithm's constructor
    """
    if resume:
        run_cfg = Path(cfg.out) / "config.json"
        algo = check_algorithm(TrainConfig.load(run_cfg).algo) if run_cfg.exists() else "rmn"
    else:
        algo = check_algorithm(cfg.algo)
    if algo != "rmn":
        return train_sb3(cfg, algo, hyperparams, resume=resume, progress=progress, on_eval=on_eval)
    from agents.training import train

    config_part, extras = split_hyperparams(hyperparams)
    if extras:
        raise ValueError(f"--algo rmn: {', '.join(sorted(extras))} is not a TrainConfig field")
    if not resume:
        cfg = cfg.update({**config_part, "algo": "rmn"}, "hyperparams")
    return {"algo": "rmn", **train(cfg, resume=resume, progress=progress, on_eval=on_eval)}


# ---- reloading a run -------------------------------------------------------------------------------------
class SB3Run(NamedTuple):
    """A trained stock-algorithm run: what evaluation needs."""

    model: BaseAlgorithm
    encoder: SegmentEncoder
    predictor: MemoryPredictor
    config: TrainConfig


def load_run(run: Union[str, Path], device: str = "auto") -> SB3Run:
    """Model, segment encoder, env predictor and config of the run directory ``run``."""
    run = Path(run)
    if not (run / "config.json").exists():
        raise ValueError(f"{run}: no config.json there (not a run directory)")
    cfg = TrainConfig.load(run / "config.json")
    algo = check_algorithm(cfg.algo)
    if algo == "rmn":
        raise ValueError(f"{run}: an RMN run; load it with agents.evaluate.load_model")
    for name in ("model.zip", "encoder.pt", "predictor.pt"):
        if not (run / name).exists():
            raise ValueError(f"{run}: {name} missing (the run did not finish)")
    model = algorithm_class(algo).load(run / "model.zip", device=device)
    return SB3Run(model, SegmentEncoder.load(run / "encoder.pt"), load_predictor(run / "predictor.pt"), cfg)


def evaluate_run(run: Union[str, Path], split: str = "test", dataset: Optional[str] = None,
                 out: Optional[Union[str, Path]] = None, device: str = "auto",
                 dataset_options: Optional[dict] = None, position_stretch: int = 0) -> pd.DataFrame:
    """Re-evaluate a stock-algorithm run on ``split`` and write metrics, predictions and figures to ``out``.

    :param dataset: another dataset source (default: the run's, with its options)
    :param dataset_options: reader options that replace the run's (e.g. longer synthetic movies)
    :param position_stretch: segments per row of ``error_by_position.csv`` (0: a tenth of the longest movie)
    :param out: where to write (default: the run directory)
    :return: the metrics table (global row first)
    """
    from agents.evaluate import write_outputs

    loaded = load_run(run, device)
    cfg = loaded.config
    options = {**(cfg.dataset_options if dataset is None else {}), **(dataset_options or {})}
    data = load_dataset(dataset or cfg.dataset, split, targets=cfg.targets, segment_seconds=cfg.segment_seconds,
                        **options)
    metrics, results = evaluate_policy_on(loaded.model, evaluation_env(cfg, data, loaded.encoder, loaded.predictor))
    write_outputs(Path(out or run), metrics, results, data, position_stretch)
    return metrics
