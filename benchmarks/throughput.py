"""Throughput: environment steps/s, training updates/s (RMN vs stock SB3 DDPG) and streaming inference.

    python -m benchmarks.throughput [--quick] [--out benchmarks/results]

* env: ``LiRISMemoryEnv`` stepped with one fixed action in ``"frozen"`` predictor mode — a raw single-env
  loop, SB3's ``DummyVecEnv`` and gymnasium's ``SyncVectorEnv`` (``n_envs`` copies; steps counted over all);
* updates: ``RMN.train(gradient_steps, batch_size)`` after filling the replay buffer (the named recipes
  ``default`` and ``paper`` of :func:`agents.config.recipe`) vs ``DDPG("MultiInputPolicy")`` on the same env
  (its own ``"online"`` predictor) with the same hidden sizes, ``DDPG.train`` after filling its buffer;
* inference: :func:`agents.rollout.rollout` of one RMN policy along one 7,200-segment movie (two hours of
  one-second segments), and the baselines' streaming prediction on the same movie.

Networks are freshly initialised: speed does not depend on what they learned. One torch thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from stable_baselines3 import DDPG
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm.auto import tqdm

from affect_env.data import FeatureStats, load_dataset
from affect_env.encoder import PoolingEncoder
from affect_env.env import LiRISMemoryEnv
from affect_env.memory import MemoryPredictor
from agents.baselines.training import make_baseline, predict_movies
from agents.cli import run_cli
from agents.config import TrainConfig, recipe
from agents.inputs import make_env
from agents.rmn.factory import make_rmn
from agents.rollout import rollout
from benchmarks.common import NetworkSizes, benchmark_parser, parse_benchmark_args, report

COLUMNS = ["benchmark", "implementation", "work", "seconds", "per_second", "unit", "params"]


@dataclass
class ThroughputSettings(NetworkSizes):
    """Sizes (:class:`~benchmarks.common.NetworkSizes`) and amounts of work (defaults: the full run).

    :param movie_length: segments per synthetic movie (env and update measurements), ``n_movies`` of them
    :param env_steps: env steps per env measurement, over ``n_envs`` copies for the vectorised envs
    :param fill_steps: steps that fill each replay buffer before ``gradient_steps`` updates are timed
    :param stream_length: segments of the one movie streamed through each model (inference)
    :param repeats: each measurement is repeated this many times; the best time is reported
    """

    movie_length: int = 400
    n_movies: int = 4
    env_steps: int = 20_000
    n_envs: int = 4
    fill_steps: int = 5_000
    gradient_steps: int = 500
    batch_size: int = 128
    stream_length: int = 7_200
    repeats: int = 3
    seed: int = 0


def _data(s: ThroughputSettings, length: int, n_movies: int):
    ds = load_dataset("synthetic", "train", n_movies=(n_movies, 1, 1), length=int(length),
                      dependency_distance=int(length) // 2, intro_span=10, seed=s.seed)
    return ds, PoolingEncoder(FeatureStats.fit(ds))


def _n_params(*modules) -> int:
    return int(sum(p.numel() for m in modules for p in m.parameters()))


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def env_throughput(s: ThroughputSettings) -> list:
    """Env steps/s: raw single-env loop, ``DummyVecEnv`` and ``SyncVectorEnv`` with a fixed action."""
    ds, encoder = _data(s, s.movie_length, s.n_movies)
    predictor = MemoryPredictor(encoder.embed_dim, s.n_slots, s.memory_dim, 2, hidden=s.predictor_hidden)

    def make():
        return LiRISMemoryEnv(dataset=ds, encoder=encoder, n_slots=s.n_slots, memory_dim=s.memory_dim, targets=None,
                              predictor_mode="frozen", predictor=predictor)

    env = make()
    env.action_space.seed(s.seed)
    action = env.action_space.sample()
    rows = []

    def raw() -> None:
        env.reset(seed=s.seed)
        for _ in range(s.env_steps):
            _, _, terminated, _, _ = env.step(action)
            if terminated:
                env.reset()

    sec = _best_time(raw, s.repeats)
    rows.append(dict(benchmark="env steps", implementation="LiRISMemoryEnv raw loop (1 env)",
                     work=f"{s.env_steps} steps", seconds=sec, per_second=s.env_steps / sec, unit="steps/s"))

    actions = np.tile(action, (s.n_envs, 1))
    iters = max(1, s.env_steps // s.n_envs)
    vec = DummyVecEnv([make] * s.n_envs)
    vec.seed(s.seed)
    vec.reset()
    sec = _best_time(lambda: [vec.step(actions) for _ in range(iters)], s.repeats)
    rows.append(dict(benchmark="env steps", implementation=f"SB3 DummyVecEnv ({s.n_envs} envs)",
                     work=f"{iters * s.n_envs} steps", seconds=sec, per_second=iters * s.n_envs / sec, unit="steps/s"))
    try:
        sync = gym.vector.SyncVectorEnv([make] * s.n_envs)
        sync.reset(seed=s.seed)
        sec = _best_time(lambda: [sync.step(actions) for _ in range(iters)], s.repeats)
        rows.append(dict(benchmark="env steps", implementation=f"gymnasium SyncVectorEnv ({s.n_envs} envs)",
                         work=f"{iters * s.n_envs} steps", seconds=sec, per_second=iters * s.n_envs / sec,
                         unit="steps/s"))
    except Exception as err:  # report, do not hide, an incompatibility
        rows.append(dict(benchmark="env steps", implementation=f"gymnasium SyncVectorEnv ({s.n_envs} envs)",
                         work=f"failed: {type(err).__name__}: {err}"[:120], seconds=float("nan"),
                         per_second=float("nan"), unit="steps/s"))
    return rows


def rmn_config(s: ThroughputSettings, paper: bool) -> TrainConfig:
    """The project's recipe (or the paper's) at the settings' sizes, its buffer filled by ``fill_steps`` steps
    with no update. The paper recipe keeps its single-FC read-out (no ``predictor_hidden``)."""
    return recipe("paper" if paper else "default").update({
        **s.memory_fields(read_out=not paper), "batch_size": s.batch_size, "buffer_size": s.fill_steps + 1,
        "timesteps": s.fill_steps, "learning_starts": s.fill_steps, "encoder": "pooling", "device": "cpu",
        "seed": s.seed, "eval_every": 0, "checkpoint_every": 0}, "throughput settings")


def update_throughput(s: ThroughputSettings) -> list:
    """Training updates/s of the RMN (two recipes) and of stock SB3 DDPG, after filling their buffers."""
    ds, encoder = _data(s, s.movie_length, s.n_movies)
    rows = []
    for paper in (False, True):
        cfg = rmn_config(s, paper)
        model = make_rmn(cfg, make_env(cfg, ds, encoder), encoder)
        model.learn(s.fill_steps, progress_bar=False)  # learning_starts = fill_steps: no update yet
        model.train(1, s.batch_size)  # warm-up
        sec = _best_time(lambda: model.train(s.gradient_steps, s.batch_size), s.repeats)
        policy, long_range = model.policy, cfg.rmn.long_range
        name = "RMN.train, paper recipe (window 1, no long-range loss)" if paper else (
            f"RMN.train, project recipe (window {cfg.rmn.window}, {long_range.jump_mode} loss "
            f"{long_range.jump_weight:g})")
        rows.append(dict(benchmark="training updates", implementation=name,
                         work=f"{s.gradient_steps} updates, batch {s.batch_size}", seconds=sec,
                         per_second=s.gradient_steps / sec, unit="updates/s",
                         params=_n_params(policy.actor, policy.critic, policy.predictor)))

    env = LiRISMemoryEnv(dataset=ds, encoder=encoder, n_slots=s.n_slots, memory_dim=s.memory_dim, targets=None,
                         predictor_mode="online", predictor_hidden=s.predictor_hidden)
    ddpg = DDPG("MultiInputPolicy", env, buffer_size=s.fill_steps + 1, learning_starts=s.fill_steps,
                batch_size=s.batch_size, policy_kwargs=dict(net_arch=list(s.net_arch)), seed=s.seed, device="cpu")
    ddpg.learn(s.fill_steps, progress_bar=False)
    ddpg.train(1, s.batch_size)
    sec = _best_time(lambda: ddpg.train(s.gradient_steps, s.batch_size), s.repeats)
    rows.append(dict(benchmark="training updates",
                     implementation=f"SB3 DDPG('MultiInputPolicy'), net_arch {list(s.net_arch)}",
                     work=f"{s.gradient_steps} updates, batch {s.batch_size}", seconds=sec,
                     per_second=s.gradient_steps / sec, unit="updates/s",
                     params=_n_params(ddpg.policy.actor, ddpg.policy.critic)))
    return rows


def inference_throughput(s: ThroughputSettings) -> list:
    """Streaming segments/s along one ``stream_length``-segment movie: RMN rollout and the baselines."""
    ds, encoder = _data(s, s.stream_length, 1)
    emb = [encoder.embed_movie(ds.movies[0].features)]
    cfg = rmn_config(s, False)
    policy = make_rmn(cfg, make_env(cfg, ds, encoder), encoder).policy
    policy.set_training_mode(False)
    n = s.stream_length
    sec = _best_time(lambda: rollout(policy.actor, policy.predictor, emb), s.repeats)
    rows = [dict(benchmark="streaming inference", implementation="RMN policy, agents.rollout.rollout",
                 work=f"1 movie x {n} segments", seconds=sec, per_second=n / sec, unit="segments/s",
                 params=_n_params(policy.actor, policy.predictor))]
    for name in ("segment", "lstm", "memory_tbptt", "transformer"):
        model = make_baseline(cfg.update({"algo": name, "bptt_window": 64, "hidden": 64}), encoder.embed_dim, 2)
        sec = _best_time(lambda: predict_movies(model, emb), s.repeats)
        label = {"segment": "segment MLP", "lstm": "LSTM", "memory_tbptt": "memory net (BPTT-trained)",
                 "transformer": "transformer, window 64"}[name]
        rows.append(dict(benchmark="streaming inference", implementation=f"{label}, predict_movies",
                         work=f"1 movie x {n} segments", seconds=sec, per_second=n / sec, unit="segments/s",
                         params=_n_params(model)))
    return rows


def run_throughput(settings: Optional[ThroughputSettings] = None, parts: Sequence[str] = ("env", "updates", "inference"),
                   progress: bool = True) -> pd.DataFrame:
    """All throughput measurements as one table (:data:`COLUMNS`)."""
    s = settings or ThroughputSettings()
    torch.manual_seed(s.seed)
    funcs = {"env": env_throughput, "updates": update_throughput, "inference": inference_throughput}
    unknown = [p for p in parts if p not in funcs]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; choose from {list(funcs)}")
    rows = []
    for part in tqdm(parts, desc="throughput", disable=not progress):
        rows += funcs[part](s)
    df = pd.DataFrame(rows)
    if "params" not in df:
        df["params"] = np.nan
    df["params"] = df["params"].astype("Int64").astype(object).where(df["params"].notna(), None)
    return df[COLUMNS]


def quick_settings() -> ThroughputSettings:
    return ThroughputSettings(env_steps=4_000, fill_steps=1_000, gradient_steps=100, repeats=2)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser("throughput", __doc__, "less work per measurement (minutes on 2 cores)")
    parser.add_argument("--parts", nargs="+", default=["env", "updates", "inference"],
                        choices=["env", "updates", "inference"])
    args = parse_benchmark_args(parser, argv)
    s = quick_settings() if args.quick else ThroughputSettings()
    df = run_throughput(s, args.parts, progress=not args.no_progress)
    return report(df, args, "throughput", "Throughput",
                  f"N={s.n_slots}, d={s.memory_dim}, hidden {list(s.net_arch)}, movies of {s.movie_length} segments, "
                  f"best of {s.repeats}; 1 torch thread")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
