"""Throughput: environment steps/s, training updates/s (RMN vs stock SB3 DDPG) and streaming inference.

    python -m benchmarks.throughput [--quick] [--out benchmarks/results]

* env: segment-steps/s with one fixed action in ``"frozen"`` predictor mode: the single env (a raw loop, and
  through ``gym.make`` with its wrappers, also in the default ``"online"`` mode that trains the env's own
  predictor), and, for each of ``n_envs`` (1, 8, 64) movies at once, the native batched env
  (``gym.make_vec(..., vectorization_mode="vector_entry_point")``), SB3's ``DummyVecEnv`` and gymnasium's
  ``SyncVectorEnv`` over single envs; the batched env also in ``"online"`` mode and through its SB3 adapter
  (:mod:`affect_env.sb3`). Steps are counted over all movies; a pivot table puts the three side by side;
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

from affect_env import ENV_ID
from affect_env.data import FeatureStats, load_dataset
from affect_env.encoder import PoolingEncoder
from affect_env.env import LiRISMemoryEnv
from affect_env.memory import MemoryPredictor
from affect_env.progress import progress_bar
from affect_env.sb3 import make_sb3_vec_env
from agents.baselines.training import make_baseline, predict_movies
from agents.cli import run_cli
from agents.config import TrainConfig, recipe
from agents.inputs import make_env
from agents.rmn.factory import make_rmn
from agents.rollout import rollout
from benchmarks.common import NetworkSizes, benchmark_parser, parse_benchmark_args, report, write_table

COLUMNS = ["benchmark", "implementation", "work", "seconds", "per_second", "unit", "params"]


@dataclass
class ThroughputSettings(NetworkSizes):
    """Sizes (:class:`~benchmarks.common.NetworkSizes`) and amounts of work (defaults: the full run).

    :param movie_length: segments per synthetic movie (env and update measurements), ``n_movies`` of them
    :param env_steps: segment-steps per env measurement (over all movies for the vectorised envs)
    :param n_envs: numbers of movies stepped at once by the vectorised envs
    :param fill_steps: steps that fill each replay buffer before ``gradient_steps`` updates are timed
    :param stream_length: segments of the one movie streamed through each model (inference)
    :param repeats: each measurement is repeated this many times; the best time is reported
    """

    movie_length: int = 400
    n_movies: int = 4
    env_steps: int = 20_000
    n_envs: tuple = (1, 8, 64)
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


def _env_row(name: str, n_steps: int, seconds: float) -> dict:
    return dict(benchmark="env steps", implementation=name, work=f"{n_steps} steps", seconds=seconds,
                per_second=n_steps / seconds, unit="steps/s")


def env_throughput(s: ThroughputSettings) -> list:
    """Segment-steps/s of the single env, the batched env and the generic vector wrappers (fixed action)."""
    ds, encoder = _data(s, s.movie_length, s.n_movies)
    predictor = MemoryPredictor(encoder.embed_dim, s.n_slots, s.memory_dim, 2, hidden=s.predictor_hidden)
    frozen = dict(dataset=ds, encoder=encoder, n_slots=s.n_slots, memory_dim=s.memory_dim, targets=None,
                  predictor_mode="frozen", predictor=predictor)
    online = {**frozen, "predictor_mode": "online", "predictor": None, "predictor_hidden": s.predictor_hidden}

    def make():
        return LiRISMemoryEnv(**frozen)

    env = make()
    env.action_space.seed(s.seed)
    action = env.action_space.sample()
    rows = []

    def loop(single: gym.Env) -> float:
        def run() -> None:
            single.reset(seed=s.seed)
            for _ in range(s.env_steps):
                _, _, terminated, _, _ = single.step(action)
                if terminated:
                    single.reset()
        return _best_time(run, s.repeats)

    rows.append(_env_row("single env, raw loop (frozen)", s.env_steps, loop(env)))
    rows.append(_env_row("single env, gym.make + wrappers (frozen)", s.env_steps,
                         loop(gym.make(ENV_ID, **frozen))))
    rows.append(_env_row("single env, gym.make + wrappers (online)", s.env_steps,
                         loop(gym.make(ENV_ID, **online))))

    def batched(label: str, n: int, vec_step, reset) -> None:
        iters = max(1, -(-s.env_steps // n))
        reset()
        rows.append(_env_row(f"{label} ({n} envs)", iters * n,
                             _best_time(lambda: [vec_step() for _ in range(iters)], s.repeats)))

    for n in s.n_envs:
        actions = np.tile(action, (n, 1))
        native = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **frozen)
        batched("batched env, make_vec vector_entry_point (frozen)", n, lambda: native.step(actions),
                lambda: native.reset(seed=s.seed))
        dummy = DummyVecEnv([make] * n)
        dummy.seed(s.seed)
        batched("SB3 DummyVecEnv of single envs (frozen)", n, lambda: dummy.step(actions), dummy.reset)
        try:
            sync = gym.vector.SyncVectorEnv([make] * n)
            batched("gymnasium SyncVectorEnv of single envs (frozen)", n, lambda: sync.step(actions),
                    lambda: sync.reset(seed=s.seed))
        except Exception as err:  # report, do not hide, an incompatibility
            rows.append(dict(benchmark="env steps", implementation=f"gymnasium SyncVectorEnv ({n} envs)",
                             work=f"failed: {type(err).__name__}: {err}"[:120], seconds=float("nan"),
                             per_second=float("nan"), unit="steps/s"))
    n = max(s.n_envs)
    actions = np.tile(action, (n, 1))
    native = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **online)
    batched("batched env, make_vec vector_entry_point (online)", n, lambda: native.step(actions),
            lambda: native.reset(seed=s.seed))
    adapter = make_sb3_vec_env(ENV_ID, n, **frozen)
    adapter.seed(s.seed)
    batched("batched env through affect_env.sb3 VecEnv (frozen)", n, lambda: adapter.step(actions), adapter.reset)
    return rows


def env_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """The vectorised envs' steps/s side by side: one row per implementation, one column per number of envs."""
    env = table[table["benchmark"] == "env steps"]
    parts = env["implementation"].str.extract(r"^(.*) \((\d+) envs\)$")
    vec = env.assign(implementation=parts[0], envs=pd.to_numeric(parts[1])).dropna(subset=["envs"])
    pivot = vec.pivot_table(index="implementation", columns="envs", values="per_second", sort=False)
    pivot.columns = [f"{int(c)} envs" for c in pivot.columns]
    return pivot.round(0)


#: the RMN recipes whose updates are timed, with their labels
RMN_RECIPES = {"default": "project recipe", "rl": "RL-only recipe", "paper": "paper recipe"}


def rmn_config(s: ThroughputSettings, name: str) -> TrainConfig:
    """The recipe ``name`` at the settings' sizes, its buffer filled by ``fill_steps`` steps with no update. The
    paper recipe keeps its single-FC read-out (no ``predictor_hidden``)."""
    paper = name == "paper"
    return recipe(name).update({
        **s.memory_fields(read_out=not paper), "batch_size": s.batch_size, "buffer_size": s.fill_steps + 1,
        "timesteps": s.fill_steps, "learning_starts": s.fill_steps, "encoder": "pooling", "device": "cpu",
        "seed": s.seed, "eval_every": 0, "checkpoint_every": 0}, "throughput settings")


def update_throughput(s: ThroughputSettings) -> list:
    """Training updates/s of the RMN (three recipes) and of stock SB3 DDPG, after filling their buffers."""
    ds, encoder = _data(s, s.movie_length, s.n_movies)
    rows = []
    for name, label in RMN_RECIPES.items():
        cfg = rmn_config(s, name)
        model = make_rmn(cfg, make_env(cfg, ds, encoder), encoder)
        model.learn(s.fill_steps, progress_bar=False)  # learning_starts = fill_steps: no update yet
        model.train(1, s.batch_size)  # warm-up
        sec = _best_time(lambda: model.train(s.gradient_steps, s.batch_size), s.repeats)
        policy, rmn = model.policy, cfg.rmn
        loss = f"{rmn.long_range.jump_mode} loss {rmn.long_range.jump_weight:g}" if rmn.long_range.jump_weight else \
            "no long-range loss"
        rows.append(dict(benchmark="training updates",
                         implementation=f"RMN.train, {label} ({rmn.critic} critic, window {rmn.window}, {loss})",
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
    cfg = rmn_config(s, "default")
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
    for part in progress_bar(parts, desc="throughput", disable=not progress):
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
    status = report(df, args, "throughput", "Throughput",
                    f"N={s.n_slots}, d={s.memory_dim}, hidden {list(s.net_arch)}, movies of {s.movie_length} "
                    f"segments, best of {s.repeats}; 1 torch thread")
    if "env" in args.parts:
        print(write_table(env_pivot(df).reset_index(), args.out, "throughput_envs",
                          "Env segment-steps/s by number of movies stepped at once (same run)", floatfmt=".0f"))
    return status


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
