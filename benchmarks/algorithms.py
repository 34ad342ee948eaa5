"""RL algorithms compared on ``LiRISMemory-v0``: same data, same encoder, same env steps, same seeds.

    python -m benchmarks.algorithms [--quick] [--timesteps N] [--seeds 0 1] [--algos rmn td3 ...] [--out DIR]

Every (algorithm, seed) run goes through :func:`agents.runs.train` with the same
:class:`~agents.config.TrainConfig` data, memory size, encoder, step budget and seed, and each algorithm's own
defaults for everything else (its section of ``agents/hyperparams/LiRISMemory-v0.yml``; the RMN's
TrainConfig recipe). With ``--encoder lstm`` the segment encoder is pretrained once per seed and shared by all
algorithms. Writes ``<out>/algorithms_runs.csv`` (one row per run), ``<out>/algorithms.csv`` and
``<out>/algorithms.md`` (mean ± std over seeds), and the run directories under ``<out>/algorithm_runs/``.

Wall time is the whole run (data, encoder, training, periodic validation, test evaluation); env steps/s is the
step budget over the training wall time (including the periodic validation).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from affect_env.progress import progress_bar
from agents.cli import run_cli
from agents.config import STOCK_ALGORITHMS, TrainConfig, recipe
from agents.runs import train
from agents.runs.shared import shared_encoder
from agents.sb3_algorithms import algorithm_config, check_algorithm
from benchmarks.common import benchmark_parser, mean_spread, parse_benchmark_args, report

#: the RL algorithms compared here (the supervised baselines are benchmarked by :mod:`benchmarks.quality`)
RL_ALGORITHMS = ("rmn", *STOCK_ALGORITHMS)
RUN_COLUMNS = ["algo", "seed", "timesteps", "test_mse", "pcc", "gap_closed", "wall_s", "env_steps_per_s"]


@dataclass
class AlgorithmBenchmarkSettings:
    """What every algorithm shares (defaults: the project's default task and budget).

    :param overrides: TrainConfig fields imposed on every algorithm (e.g. a shorter ``learning_starts``)
    """

    algos: tuple = RL_ALGORITHMS
    seeds: tuple = (0, 1)
    timesteps: int = 60_000
    dataset: str = "synthetic"
    dataset_options: dict = field(default_factory=dict)
    n_slots: int = 10
    memory_dim: int = 32
    encoder: str = "lstm"
    eval_every: int = 10_000
    overrides: dict = field(default_factory=dict)
    device: str = "cpu"


def quick_settings() -> AlgorithmBenchmarkSettings:
    """A few minutes on 2 CPU cores: short synthetic movies, a small memory, 2,048 steps, one seed.

    2,048 is a whole number of PPO (1,024) and RecurrentPPO (512) rollouts, so they take the same steps as the
    others (on-policy algorithms always finish their last rollout; the table reports the steps taken).
    """
    return AlgorithmBenchmarkSettings(
        seeds=(0,), timesteps=2_048, n_slots=4, memory_dim=8, encoder="pooling", eval_every=1_024,
        dataset_options={"n_movies": [8, 4, 4], "length": 240, "dependency_distance": 150, "intro_span": 10},
        overrides={"learning_starts": 500})


def check_rl_algorithm(algo: str) -> str:
    """``algo``'s name (:func:`~agents.sb3_algorithms.check_algorithm`) if it is one of :data:`RL_ALGORITHMS`.

    :raises ValueError: for a supervised baseline or an unknown name
    """
    name = check_algorithm(algo)
    if name not in RL_ALGORITHMS:
        raise ValueError(f"--algos {algo}: a supervised baseline, benchmarked by benchmarks.quality; choose from "
                         f"{' '.join(RL_ALGORITHMS)}")
    return name


def _base_config(s: AlgorithmBenchmarkSettings, seed: int, out: Path, encoder: str) -> TrainConfig:
    return recipe("default").update({
        "dataset": s.dataset, "dataset_options": dict(s.dataset_options), "n_slots": s.n_slots,
        "memory_dim": s.memory_dim, "encoder": encoder, "timesteps": s.timesteps, "seed": seed,
        "eval_every": s.eval_every, "checkpoint_every": 0, "device": s.device, "out": str(out)},
        "benchmark settings").update(dict(s.overrides), "benchmark overrides")


def _shared_encoder(s: AlgorithmBenchmarkSettings, seed: int, out: Path, progress: bool) -> str:
    """``"pooling"``/a given path as is; ``"lstm"``: pretrain once for this seed and return the saved path."""
    if s.encoder != "lstm":
        return s.encoder
    cfg = _base_config(s, seed, out / "encoders", "lstm")
    return shared_encoder(cfg, out / "encoders", progress).encoding.encoder


def run_benchmark(s: AlgorithmBenchmarkSettings, out: Path, progress: bool = True) -> pd.DataFrame:
    """Train and evaluate every (algorithm, seed); one row per run (see :data:`RUN_COLUMNS`, plus PCC per target).

    :param out: benchmark folder; each run goes to ``out/algorithm_runs/<algo>/seed<k>`` (replaced if present)
    """
    algos = [check_rl_algorithm(a) for a in s.algos]
    out = Path(out)
    encoders = {seed: _shared_encoder(s, seed, out, progress) for seed in s.seeds}
    pairs = [(a, seed) for a in algos for seed in s.seeds]
    rows = []
    bar = progress_bar(pairs, desc="algorithms", disable=not progress)
    for algo, seed in bar:
        bar.set_postfix(algo=algo, seed=seed)
        run_dir = out / "algorithm_runs" / algo / f"seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        base = _base_config(s, seed, run_dir, encoders[seed])
        keep = {"timesteps", "seed", "out", "encoder", "device", "eval_every", "checkpoint_every", *s.overrides}
        cfg = algorithm_config(algo, base, keep)
        t0 = time.time()
        summary = train(cfg, progress=False)
        wall = time.time() - t0
        targets = [k[len("test_"):-len("_pcc")] for k in summary if k.startswith("test_") and k.endswith("_pcc")]
        # env steps taken: the RMN's summary "timesteps" are those of the model it selected on validation (possibly
        # an earlier one), its "trained_timesteps" the steps it took; on-policy algorithms finish their last rollout
        steps = max(summary["timesteps"], summary.get("trained_timesteps", 0))
        row = {"algo": algo, "seed": seed, "timesteps": steps, "test_mse": summary["test_mse"],
               "pcc": sum(summary[f"test_{t}_pcc"] for t in targets) / max(len(targets), 1),
               "gap_closed": summary.get("test_gap_closed", float("nan")), "wall_s": round(wall, 1),
               "env_steps_per_s": round(steps / max(summary["train_wall_s"], 1e-9), 1)}
        row.update({f"{t}_pcc": summary[f"test_{t}_pcc"] for t in targets})
        rows.append(row)
        bar.set_postfix(algo=algo, seed=seed, test_mse=f"{row['test_mse']:.4f}")
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per algorithm: test MSE, PCC per target, gap_closed, wall time, env steps/s."""
    pcc_cols = [c for c in runs.columns if c.endswith("_pcc")]
    rows = []
    for algo, group in runs.groupby("algo", sort=False):
        row = {"algo": algo, "seeds": len(group), "env steps": int(group["timesteps"].max()),
               "test MSE": mean_spread(group["test_mse"], 4)}
        row.update({f"{c[:-4]} PCC": mean_spread(group[c], 3) for c in pcc_cols})
        row.update({"gap_closed": mean_spread(group["gap_closed"], 3), "wall time (s)": mean_spread(group["wall_s"], 0),
                    "env steps/s": mean_spread(group["env_steps_per_s"], 0)})
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser("algorithms", __doc__, "a few minutes on 2 cores (small task, 2,048 steps)",
                              out_help="where to write tables and runs")
    parser.add_argument("--timesteps", type=int, default=None, help="env steps per run (default 60,000; quick 2,048)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1; quick 0)")
    parser.add_argument("--algos", nargs="+", default=None, metavar="ALGO",
                        help=f"algorithms (default all: {' '.join(RL_ALGORITHMS)})")
    parser.add_argument("--encoder", default=None, help="lstm (default; pretrained once per seed), pooling or a path")
    args = parse_benchmark_args(parser, argv)
    s = quick_settings() if args.quick else AlgorithmBenchmarkSettings()
    if args.algos:
        s = replace(s, algos=tuple(check_rl_algorithm(a) for a in args.algos))
    if args.seeds:
        s = replace(s, seeds=tuple(args.seeds))
    if args.timesteps is not None:
        if args.timesteps <= 0:
            raise ValueError(f"--timesteps {args.timesteps}: must be positive")
        s = replace(s, timesteps=args.timesteps, eval_every=max(1, min(s.eval_every, args.timesteps)))
    if args.encoder:
        s = replace(s, encoder=args.encoder)
    runs = run_benchmark(s, args.out, progress=not args.no_progress)
    return report(summarize(runs), args, "algorithms", "RL algorithms on LiRISMemory-v0",
                  f"{s.timesteps} env steps, seeds {list(s.seeds)}, N={s.n_slots}, d={s.memory_dim}, {s.encoder} "
                  f"encoder, dataset {s.dataset} {s.dataset_options or ''}", runs=runs)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
