"""Training memory and time as the movie grows: RMN afterstate updates vs full-BPTT LSTM and memory network.

    python -m benchmarks.memory_scaling [--quick] [--lengths 1000 4000 16000] [--out benchmarks/results]

Each measurement runs in a fresh Python process (so one measurement's allocations never inflate another's
peak) on one synthetic movie of ``length`` segments, with one torch thread, and reports:

* ``update_s``: wall time of one training update. RMN: one afterstate update (critic + actor + predictor on
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from tqdm.auto import tqdm

from benchmarks.common import SavedTensorMeter, current_rss_mib, peak_rss_mib, set_threads, stamp, write_table

METHODS = ("rmn", "lstm_bptt", "memory_bptt")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class ScalingSettings:
    """Sizes shared by every measurement (the RMN's defaults: 10 slots of 32, slot MLPs of 64 x 64).

    :param buffer_size: the RMN's replay size in steps (a fixed hyperparameter; ``None`` = the longest
        length, so the replay holds the movie whole at every length, as the adjoint loss needs)
    :param rmn_updates: timed RMN updates (in 5 blocks; the median block's time per update is reported)
    """

    n_slots: int = 10
    memory_dim: int = 32
    net_arch: tuple = (64, 64)
    predictor_hidden: tuple = (64,)
    lstm_hidden: int = 64
    batch_size: int = 128
    buffer_size: Optional[int] = None
    rmn_updates: int = 20
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _movie(length: int, seed: int):
    from affect_env.data import load_dataset

    if length < 40:
        raise ValueError(f"length {length}: use at least 40 segments")
    return load_dataset("synthetic", "train", n_movies=(1, 1, 1), length=int(length),
                        dependency_distance=int(length) // 2, intro_span=10, seed=seed)


def _config(s: ScalingSettings, length: int):
    from agents.config import TrainConfig

    buffer = int(s.buffer_size or length)
    return TrainConfig(n_slots=s.n_slots, memory_dim=s.memory_dim, net_arch=tuple(s.net_arch),
                       predictor_hidden=tuple(s.predictor_hidden), batch_size=s.batch_size, buffer_size=buffer,
                       timesteps=max(int(length), buffer), learning_starts=int(length) + 1, encoder="pooling",
                       device="cpu", seed=s.seed, eval_every=0, checkpoint_every=0, **s.extra)


def measure(method: str, length: int, settings: Optional[ScalingSettings] = None) -> dict:
    """One measurement in this process: ``update_s``, ``movie_epoch_s``, ``saved_mib``, ``peak_rss_mib``."""
    import numpy as np
    import torch
    from stable_baselines3.common.utils import set_random_seed

    from affect_env.data import FeatureStats
    from affect_env.encoder import PoolingEncoder

    s = settings or ScalingSettings()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    set_random_seed(s.seed)
    data = _movie(length, s.seed)
    encoder = PoolingEncoder(FeatureStats.fit(data))
    cfg = _config(s, length)
    row = {"method": method, "length": int(length)}

    if method == "rmn":
        from agents.training import make_env, make_rmn

        env = make_env(cfg, data, encoder)
        model = make_rmn(cfg, env, encoder, None)
        t0 = time.perf_counter()
        model.learn(int(length), progress_bar=False)  # streams the movie into the replay buffer, no update yet
        stream_s = time.perf_counter() - t0
        model.train(1, cfg.batch_size)  # warm-up (optimizer state, allocator)
        row["rss_before_mib"] = current_rss_mib()
        t0 = time.perf_counter()
        model.refresh(movies=cfg.refresh_movies)  # the periodic refresh, timed on its own
        row["refresh_s"] = time.perf_counter() - t0
        blocks = []
        per_block = max(1, s.rmn_updates // 5)
        for _ in range(max(1, s.rmn_updates // per_block)):
            t0 = time.perf_counter()
            model.train(per_block, cfg.batch_size)
            blocks.append((time.perf_counter() - t0) / per_block)
        row["update_s"] = float(np.median(blocks))  # robust to other processes sharing the cores
        per_update_refresh = row["refresh_s"] / cfg.refresh_every if cfg.refresh_every else 0.0  # 0: never refreshed
        row["movie_epoch_s"] = stream_s + length * (row["update_s"] + per_update_refresh)
        row["peak_rss_mib"] = peak_rss_mib()
        model.update_thread = False  # saved-tensor hooks see one thread: run the whole (same) update in this one
        model._last_refresh = model._n_updates  # a plain update: the refresh was measured above
        with SavedTensorMeter() as meter:
            model.train(1, cfg.batch_size)
        row["saved_mib"] = meter.mib
        row["buffer_steps"] = int(model.replay_buffer.buffer_size)
    else:
        from agents.baselines.training import make_baseline, tbptt_losses

        name = "lstm" if method == "lstm_bptt" else "memory_tbptt"
        model = make_baseline(cfg, name, encoder.embed_dim, 2, hidden=s.lstm_hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        e = torch.as_tensor(encoder.embed_movie(data.movies[0].features))[None]
        y = torch.as_tensor(data.movies[0].targets.astype(np.float32))[None]
        mask = torch.ones(1, length)

        def update(n: int) -> None:
            loss = next(tbptt_losses(model, e[:, :n], y[:, :n], mask[:, :n], window=0))  # full BPTT
            opt.zero_grad()
            loss.backward()
            opt.step()

        update(min(length, 32))  # warm-up
        row["rss_before_mib"] = current_rss_mib()
        t0 = time.perf_counter()
        update(length)
        row["update_s"] = row["movie_epoch_s"] = time.perf_counter() - t0
        row["peak_rss_mib"] = peak_rss_mib()
        with SavedTensorMeter() as meter:
            loss = next(tbptt_losses(model, e, y, mask, window=0))
        del loss
        row["saved_mib"] = meter.mib
        row["buffer_steps"] = 0
        row["refresh_s"] = float("nan")
    return row


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
    for method, length in tqdm(jobs, desc="memory scaling", disable=not progress):
        rows.append(measure_isolated(method, length, s) if isolate else measure(method, length, s))
    cols = ["method", "length", "update_s", "update_x", "refresh_s", "movie_epoch_s", "saved_mib", "saved_x",
            "peak_rss_mib", "peak_rss_x", "rss_before_mib", "buffer_steps"]
    return add_ratios(pd.DataFrame(rows))[cols].reset_index(drop=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="lengths 250, 1000, 4000 (minutes on 2 cores)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="movie lengths (default 1000 4000 16000)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"), help="where to write the CSV/markdown")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_threads(1)
    if args.worker:
        job = json.loads(args.worker)
        settings = ScalingSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["settings"].items()})
        print("RESULT " + json.dumps(measure(job["method"], job["length"], settings)), flush=True)
        return 0
    lengths = args.lengths or ([250, 1000, 4000] if args.quick else [1000, 4000, 16000])
    if min(lengths) < 40:
        raise ValueError(f"--lengths {lengths}: use at least 40 segments")
    settings = ScalingSettings()
    df = run_memory_scaling(lengths, args.methods, settings, isolate=True, progress=not args.no_progress)
    header = (f"Memory scaling ({'quick' if args.quick else 'full'}: lengths {', '.join(map(str, lengths))}; "
              f"N={settings.n_slots}, d={settings.memory_dim}, slot MLPs {list(settings.net_arch)}, LSTM "
              f"{settings.lstm_hidden}, RMN batch {settings.batch_size}, replay {settings.buffer_size or max(lengths)} "
              f"steps; one fresh process per row, 1 torch thread). Measured {stamp()}.")
    print(write_table(df, args.out, "memory_scaling", header))
    return 0


if __name__ == "__main__":
    from agents.cli import run_cli

    raise SystemExit(run_cli(main))
