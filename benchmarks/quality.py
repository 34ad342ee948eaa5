"""Prediction quality: the RMN vs per-segment, LSTM, BPTT-trained memory and windowed Transformer baselines.

    python -m benchmarks.quality [--quick] [--out benchmarks/results]

Every model is trained on the same splits with the same segment encoder (built once per dataset and seed
and shared by path, so the embeddings are identical) and scored on the test split with
:func:`agents.metrics.evaluate_predictions`: ``gap_closed`` (synthetic data only: 0 = the best memory-less
model, 1 = the Bayes oracle), MSE and PCC (mean of the per-target PCCs). Datasets: synthetic movies whose
character attitudes matter ``distance`` segments after they are shown (movie length ``distance +
extra_length``; the genre, shown in the opening, matters for the whole movie), and the real CEAP-360VR
tables with their subject-independent split (no oracle: MSE and PCC only). Several seeds; the table shows
mean ± sample standard deviation over seeds.

Models, each trained by :func:`agents.runs.train`: ``rmn``, ``segment``, ``lstm`` (TBPTT, ``window``),
``memory_tbptt`` (the RMN's networks by truncated BPTT, ``window``), ``memory_bptt`` (the same by full BPTT),
``transformer`` (attention over the last ``window`` segments). Baselines keep their best validation epoch; the
RMN its final weights.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from affect_env.progress import progress_bar
from agents.cli import run_cli
from agents.config import TrainConfig, recipe
from agents.runs import train
from agents.runs.shared import shared_encoder
from benchmarks.common import (BASELINE_MODELS, BaselineSizes, NetworkSizes, benchmark_parser, mean_spread,
                               parse_benchmark_args, report)

MODELS = ("rmn", *BASELINE_MODELS)
REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "ceap360vr"
TABLE_COLUMNS = ["dataset", "model", "seeds", "gap_closed", "mse", "pcc", "train_wall_s"]


@dataclass
class QualitySettings(NetworkSizes, BaselineSizes):
    """What to train and on what (defaults: the full benchmark; the baselines' epochs, window and batches:
    :class:`~benchmarks.common.BaselineSizes`).

    :param distances: synthetic dependency distances (segments)
    :param extra_length: movie length is ``distance + extra_length``
    :param n_movies: synthetic movies per split (train, val, test)
    :param synthetic_options: further synthetic generator options (e.g. ``intro_span``)
    :param real_data: a table dataset directory (``None``: synthetic only); skipped with a note if missing
    :param real_options: its reader options (the subject-independent manifest)
    :param rmn_options: further :class:`~agents.config.TrainConfig` fields for the RMN runs
    """

    distances: tuple = (50, 500, 5000)
    extra_length: int = 100
    n_movies: tuple = (32, 8, 8)
    synthetic_options: dict = field(default_factory=lambda: {"intro_span": 20})
    real_data: Optional[str] = str(REAL_DATA)
    real_options: dict = field(default_factory=lambda: {"manifest": "ceap360vr"})
    seeds: tuple = (0, 1, 2)
    models: tuple = MODELS
    encoder: str = "lstm"
    rmn_timesteps: int = 60_000
    rmn_learning_starts: int = 2_000
    rmn_batch_size: int = 128
    rmn_options: dict = field(default_factory=dict)


def quick_settings() -> QualitySettings:
    """Minutes on 2 cores: shorter distances, fewer movies, seeds, steps and epochs, smaller networks."""
    return QualitySettings(distances=(50, 200), extra_length=60, n_movies=(8, 4, 4),
                           synthetic_options={"intro_span": 10}, seeds=(0, 1), encoder="pooling", n_slots=4,
                           memory_dim=8, net_arch=(32, 32), predictor_hidden=(32,), rmn_timesteps=2_000,
                           rmn_learning_starts=500, rmn_batch_size=64, rmn_options={"pretrain_writer_epochs": 6},
                           epochs=6, window=32, hidden=32, patience=2)


def _datasets(s: QualitySettings) -> list:
    """``[(label, distance or None, dataset, dataset_options)]``."""
    out = []
    for d in s.distances:
        opts = dict(s.synthetic_options, n_movies=list(s.n_movies), length=int(d) + s.extra_length,
                    dependency_distance=int(d))
        out.append((f"synthetic d={d}", int(d), "synthetic", opts))
    if s.real_data:
        if Path(s.real_data).is_dir():
            out.append((Path(s.real_data).name, None, str(s.real_data), dict(s.real_options)))
        else:
            print(f"note: {s.real_data} not found: real-data rows skipped")
    return out


def _base_config(s: QualitySettings, dataset: str, options: dict, seed: int, out: Path) -> TrainConfig:
    return recipe("default").update({
        "dataset": dataset, "dataset_options": options, **s.memory_fields(), "encoder": s.encoder,
        "seed": seed, "device": "cpu", "out": str(out), "timesteps": s.rmn_timesteps,
        "learning_starts": s.rmn_learning_starts, "batch_size": s.rmn_batch_size, "eval_every": 0,
        "checkpoint_every": 0}, "quality settings").update(dict(s.rmn_options), "rmn_options")


def model_config(model: str, cfg: TrainConfig, s: QualitySettings) -> TrainConfig:
    """``cfg`` for ``model``: the RMN's as it is; a baseline's per :meth:`~benchmarks.common.BaselineSizes.
    baseline_config`."""
    return cfg if model == "rmn" else s.baseline_config(model, cfg, "quality settings")


def train_one(model: str, cfg: TrainConfig, s: QualitySettings) -> dict:
    """Train ``model`` per ``cfg`` into ``cfg.run.out`` (cleared first) and return its summary."""
    cfg = model_config(model, cfg, s)
    shutil.rmtree(cfg.run.out, ignore_errors=True)
    return train(cfg, progress=False)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per (dataset, model), in the order the runs were made."""
    rows = []
    for (dataset, model), g in runs.groupby(["dataset", "model"], sort=False):
        rows.append({"dataset": dataset, "model": model, "seeds": len(g),
                     "gap_closed": mean_spread(g["gap_closed"]) if g["gap_closed"].notna().any() else "—",
                     "mse": mean_spread(g["mse"], 4), "pcc": mean_spread(g["pcc"]),
                     "train_wall_s": float(np.round(g["train_wall_s"].mean(), 1))})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def run_quality(settings: Optional[QualitySettings] = None, out: Path = Path("runs/benchmarks"),
                progress: bool = True) -> tuple:
    """Train every model on every dataset and seed; return ``(runs, table)`` DataFrames.

    ``runs`` has one row per training run (``dataset``, ``distance``, ``model``, ``seed``, ``gap_closed``,
    ``mse``, ``pcc``, per-target PCCs, ``train_wall_s``); ``table`` the mean ± std per dataset and model.
    Run directories go to ``out/quality_runs/``.
    """
    s = settings or QualitySettings()
    unknown = [m for m in s.models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {MODELS}")
    runs_dir = Path(out) / "quality_runs"
    jobs = [(ds, seed, model) for ds in _datasets(s) for seed in s.seeds for model in s.models]
    rows = []
    bar = progress_bar(jobs, desc="quality", disable=not progress)
    for (label, distance, dataset, options), seed, model in bar:
        bar.set_postfix_str(f"{label} {model} seed {seed}")
        key = label.replace(" ", "_").replace("=", "")
        cfg = _base_config(s, dataset, options, seed, runs_dir / key / model / f"seed{seed}")
        cfg = shared_encoder(cfg, runs_dir / "encoders")
        summary = train_one(model, cfg, s)
        pccs = {k[len("test_"):]: v for k, v in summary.items() if k.startswith("test_") and k.endswith("_pcc")}
        rows.append({"dataset": label, "distance": distance, "model": model, "seed": seed,
                     "gap_closed": summary.get("test_gap_closed", np.nan), "mse": summary["test_mse"],
                     "pcc": float(np.nanmean(list(pccs.values()))) if pccs else np.nan, **pccs,
                     "train_wall_s": summary.get("train_wall_s", np.nan)})
    runs = pd.DataFrame(rows)
    return runs, aggregate(runs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser("quality", __doc__, "small version (minutes on 2 cores)")
    parser.add_argument("--models", nargs="+", default=None, choices=MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--distances", type=int, nargs="+", default=None)
    parser.add_argument("--no-real", action="store_true", help="skip the real CEAP-360VR dataset")
    args = parse_benchmark_args(parser, argv)
    s = quick_settings() if args.quick else QualitySettings()
    s = replace(s, **{k: tuple(v) for k, v in (("models", args.models), ("seeds", args.seeds),
                                                ("distances", args.distances)) if v})
    if args.no_real:
        s = replace(s, real_data=None)
    runs, table = run_quality(s, args.out, progress=not args.no_progress)
    n = s.n_movies
    return report(table, args, "quality", "Quality",
                  f"synthetic distances {', '.join(map(str, s.distances))} (length distance+{s.extra_length}, "
                  f"{n[0]}/{n[1]}/{n[2]} train/val/test movies), "
                  f"{'CEAP-360VR subject-independent split, ' if s.real_data else ''}seeds {list(s.seeds)}, "
                  f"{s.encoder} encoder, N={s.n_slots}, d={s.memory_dim}, nets {list(s.net_arch)}; RMN "
                  f"{s.rmn_timesteps} env steps; baselines <= {s.epochs} epochs, window {s.window}, hidden {s.hidden}; "
                  f"mean ± std over seeds; test split", runs=runs)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
