"""Training memory and time as the movie grows: RMN afterstate updates (the default and the RL-only recipe) vs
full-BPTT LSTM and memory network.

    python -m benchmarks.memory_scaling [--quick] [--lengths 1000 4000 16000] [--out benchmarks/results]

Each measurement runs in a fresh Python process (so one measurement's allocations never inflate another's
peak) on one synthetic movie of ``length`` segments, with one torch thread, and reports:

* ``update_s``: wall time of one training update. RMN (``rmn``: the default recipe, ``rmn_rl``: ``--recipe rl``):
  one afterstate update (critic + actor + predictor on
  a replay minibatch, and the long-range loss; the median over 5 blocks of ``rmn_updates / 5`` updates) after
  streaming the whole movie through the env into a replay buffer of fixed size that holds the longest movie
  whole (the adjoint loss replays whole movies); BPTT models: one forward + backward + Adam step through the
  whole movie (one timed run, after a short warm-up).
* ``refresh_s`` (RMN): one periodic refresh (the movie's memories recomputed with the current writer, its
  adjoints, the predictor's catch-up steps), which the recipe runs every ``refresh_every`` updates. It runs
  along the movie, so its time grows with the length; its autograd graph does not (chunks of steps).
* ``movie_epoch_s``: time to train once over the movie. BPTT: the update itself. RMN (``train_freq=1``):
  the measured time to stream the movie through the env plus ``length x (update_s + refresh_s /
  refresh_every)``.
* ``saved_mib``: bytes autograd saves for backward in one update (distinct storages, via
  ``torch.autograd.graph.saved_tensors_hooks``): the activation memory that BPTT keeps for every step.
* ``peak_rss_mib``: peak resident memory of the whole process (``getrusage``), i.e. Python, torch, the
  data, the env, the model and the update — what a user's machine has to provide.

Growth ratios (``*_x``) are relative to the shortest length of the same method.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.utils import set_random_seed

# Every measurement process (``--worker``) imports all of these, whichever method it measures, so the modules
# loaded are the same in every row and ``peak_rss_mib`` differs only by what the method itself allocates.
from affect_env.data import FeatureStats, load_dataset
from affect_env.encoder import PoolingEncoder
from affect_env.progress import progress_bar
from agents.baselines.training import make_baseline, tbptt_losses
from agents.cli import run_cli
from agents.config import TrainConfig, recipe
from agents.inputs import make_env
from agents.rmn.factory import make_rmn
from benchmarks.common import (NetworkSizes, SavedTensorMeter, benchmark_parser, current_rss_mib,
                               parse_benchmark_args, peak_rss_mib, report)

METHODS = ("rmn", "rmn_rl", "lstm_bptt", "memory_bptt")
#: the recipe of each RMN method
RMN_RECIPES = {"rmn": "default", "rmn_rl": "rl"}
REPO = Path(__file__).resolve().parents[1]


@dataclass
class ScalingSettings(NetworkSizes):
    """Sizes shared by every measurement (:class:`~benchmarks.common.NetworkSizes`: 10 slots of 32, slot MLPs of
    64 x 64).

    :param buffer_size: the RMN's replay size in steps (a fixed hyperparameter; ``None`` = the longest
        length, so the replay holds the movie whole at every length, as the adjoint loss needs)
    :param rmn_updates: timed RMN updates (in 5 blocks; the median block's time per update is reported)
    """

    lstm_hidden: int = 64
    batch_size: int = 128
    buffer_size: Optional[int] = None
    rmn_updates: int = 20
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _movie(length: int, seed: int):
    if length < 40:
        raise ValueError(f"length {length}: use at least 40 segments")
    return load_dataset("synthetic", "train", n_movies=(1, 1, 1), length=int(length),
                        dependency_distance=int(length) // 2, intro_span=10, seed=seed)


def _config(s: ScalingSettings, length: int, name: str = "default") -> TrainConfig:
    """The recipe ``name`` at the settings' sizes; ``learning_starts`` past the movie (no update while it streams)."""
    buffer = int(s.buffer_size or length)
    return recipe(name).update({
        **s.memory_fields(), "batch_size": s.batch_size, "buffer_size": buffer,
        "timesteps": max(int(length), buffer), "learning_starts": int(length) + 1, "encoder": "pooling",
        "device": "cpu", "seed": s.seed, "eval_every": 0, "checkpoint_every": 0, **s.extra}, "memory scaling settings")


def _measure_rmn(cfg: TrainConfig, data, encoder, length: int, updates: int) -> dict:
    """RMN: stream the movie into the replay buffer, then time one refresh and ``updates`` updates (5 blocks)."""
    batch, refresh = cfg.algorithm.batch_size, cfg.rmn.refresh
    model = make_rmn(cfg, make_env(cfg, data, encoder), encoder)
    row = {}
    t0 = time.perf_counter()
    model.learn(int(length), progress_bar=False)  # streams the movie into the replay buffer, no update yet
    stream_s = time.perf_counter() - t0
    model.train(1, batch)  # warm-up (optimizer state, allocator)
    row["rss_before_mib"] = current_rss_mib()
    t0 = time.perf_counter()
    model.refresh(movies=refresh.refresh_movies)  # the periodic refresh, timed on its own
    row["refresh_s"] = time.perf_counter() - t0
    blocks = []
    per_block = max(1, updates // 5)
    for _ in range(max(1, updates // per_block)):
        t0 = time.perf_counter()
        model.train(per_block, batch)
        blocks.append((time.perf_counter() - t0) / per_block)
    row["update_s"] = float(np.median(blocks))  # robust to other processes sharing the cores
    per_update_refresh = row["refresh_s"] / refresh.refresh_every if refresh.refresh_every else 0.0  # 0: never
    row["movie_epoch_s"] = stream_s + length * (row["update_s"] + per_update_refresh)
    row["peak_rss_mib"] = peak_rss_mib()
    # saved-tensor hooks see one thread: run the whole (same) update in this one
    model.recipe = replace(model.recipe, update_thread=False)
    model._last_refresh = model._n_updates  # a plain update: the refresh was measured above
    with SavedTensorMeter() as meter:
        model.train(1, batch)
    row["saved_mib"] = meter.mib
    row["buffer_steps"] = int(model.replay_buffer.buffer_size)
    return row


def _measure_bptt(cfg: TrainConfig, data, encoder, length: int) -> dict:
    """A BPTT baseline (``cfg.algorithm.algo``): one full-BPTT update through the whole movie, timed once."""
    model = make_baseline(cfg, encoder.embed_dim, 2)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.baseline.baseline_lr)
    e = torch.as_tensor(encoder.embed_movie(data.movies[0].features))[None]
    y = torch.as_tensor(data.movies[0].targets.astype(np.float32))[None]
    mask = torch.ones(1, length)

    def update(n: int) -> None:
        loss = next(tbptt_losses(model, e[:, :n], y[:, :n], mask[:, :n], window=0))  # full BPTT
        opt.zero_grad()
        loss.backward()
        opt.step()

    update(min(length, 32))  # warm-up
    row = {"rss_before_mib": current_rss_mib()}
    t0 = time.perf_counter()
    update(length)
    row["update_s"] = row["movie_epoch_s"] = time.perf_counter() - t0
    row["peak_rss_mib"] = peak_rss_mib()
    with SavedTensorMeter() as meter:
        loss = next(tbptt_losses(model, e, y, mask, window=0))
    del loss
    row.update(saved_mib=meter.mib, buffer_steps=0, refresh_s=float("nan"))
    return row


def measure(method: str, length: int, settings: Optional[ScalingSettings] = None) -> dict:
    """One measurement in this process: ``update_s``, ``movie_epoch_s``, ``saved_mib``, ``peak_rss_mib``..."""
    s = settings or ScalingSettings()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    set_random_seed(s.seed)
    data = _movie(length, s.seed)
    encoder = PoolingEncoder(FeatureStats.fit(data))
    if method in RMN_RECIPES:
        row = _measure_rmn(_config(s, length, RMN_RECIPES[method]), data, encoder, length, s.rmn_updates)
    else:
        cfg = _config(s, length)
        algo = "lstm" if method == "lstm_bptt" else "memory_tbptt"
        row = _measure_bptt(cfg.update({"algo": algo, "hidden": s.lstm_hidden, "bptt_window": 0}), data, encoder,
                            length)
    return {"method": method, "length": int(length), **row}


def measure_isolated(method: str, length: int, settings: Optional[ScalingSettings] = None, timeout: int = 3600) -> dict:
    """:func:`measure` in a fresh Python process (one torch thread), so its peak RSS is its own."""
    payload = json.dumps({"method": method, "length": int(length), "settings": asdict(settings or ScalingSettings())})
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory_scaling", "--worker", payload], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"measurement {method} @ {length} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """``update_x``, ``saved_x``, ``peak_rss_x``: each value over the same method's value at its shortest length."""
    df = df.sort_values(["method", "length"]).copy()
    for col, ratio in (("update_s", "update_x"), ("saved_mib", "saved_x"), ("peak_rss_mib", "peak_rss_x")):
        first = df.groupby("method")[col].transform("first")
        df[ratio] = df[col] / first
    order = {m: i for i, m in enumerate(METHODS)}
    return df.sort_values(["method", "length"], key=lambda c: c.map(order) if c.name == "method" else c)


def run_memory_scaling(lengths: Sequence[int], methods: Sequence[str] = METHODS,
                       settings: Optional[ScalingSettings] = None, isolate: bool = True,
                       progress: bool = True) -> pd.DataFrame:
    """Measure every method at every length; return the table with growth ratios.

    :param isolate: one fresh process per measurement (honest peak RSS); ``False`` runs in this process
        (fast, for tests; peak RSS is then this process's)
    """
    s = settings or ScalingSettings()
    if s.buffer_size is None:
        s = ScalingSettings(**{**asdict(s), "buffer_size": int(max(lengths))})
    rows = []
    jobs = [(m, n) for m in methods for n in lengths]
    for method, length in progress_bar(jobs, desc="memory scaling", disable=not progress):
        rows.append(measure_isolated(method, length, s) if isolate else measure(method, length, s))
    cols = ["method", "length", "update_s", "update_x", "refresh_s", "movie_epoch_s", "saved_mib", "saved_x",
            "peak_rss_mib", "peak_rss_x", "rss_before_mib", "buffer_steps"]
    return add_ratios(pd.DataFrame(rows))[cols].reset_index(drop=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser("memory_scaling", __doc__, "lengths 250, 1000, 4000 (minutes on 2 cores)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="movie lengths (default 1000 4000 16000)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, argv)
    if args.worker:
        job = json.loads(args.worker)
        settings = ScalingSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["settings"].items()})
        print("RESULT " + json.dumps(measure(job["method"], job["length"], settings)), flush=True)
        return 0
    lengths = args.lengths or ([250, 1000, 4000] if args.quick else [1000, 4000, 16000])
    if min(lengths) < 40:
        raise ValueError(f"--lengths {lengths}: use at least 40 segments")
    s = ScalingSettings()
    df = run_memory_scaling(lengths, args.methods, s, isolate=True, progress=not args.no_progress)
    return report(df, args, "memory_scaling", "Memory scaling",
                  f"lengths {', '.join(map(str, lengths))}; N={s.n_slots}, d={s.memory_dim}, slot MLPs "
                  f"{list(s.net_arch)}, LSTM {s.lstm_hidden}, RMN batch {s.batch_size}, replay "
                  f"{s.buffer_size or max(lengths)} steps; one fresh process per row, 1 torch thread")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
