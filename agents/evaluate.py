"""Evaluate a trained agent: metrics, per-movie prediction tables and figures.

``python -m agents.evaluate RUN_OR_MODEL [--dataset D] [--split test]`` recomputes ``metrics.csv``,
``error_by_position.csv``, ``predictions/`` and ``figures/`` of a run directory (or of a ``model.zip``, writing next
to it). A run of ``agents.train_baseline`` (its directory or ``model.pt``; e.g. the writer pretraining an RMN run
keeps in ``writer_pretrain/``) is evaluated alike.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from stable_baselines3.common.utils import get_device

from affect_env.data import MovieDataset, load_dataset
from affect_env.memory import check_count
from agents.baselines.training import evaluate_baseline, load_baseline
from agents.cli import add_dataset_option_argument, parse_dataset_options
from agents.metrics import error_by_position, evaluate_predictions
from agents.plots import (plot_error_by_position, plot_memory_attention, plot_predictions,
                          plot_training_curves)
from agents.rollout import rollout


def predict_dataset(model, dataset: MovieDataset, embeddings: Optional[Sequence[np.ndarray]] = None) -> list:
    """Deterministic predictions of an RMN model for every movie: ``[{"prediction", "attention"}, ...]``."""
    policy = model.policy
    policy.set_training_mode(False)
    if embeddings is None:
        if policy.encoder is None:
            raise ValueError("this model carries no segment encoder: pass embeddings")
        embeddings = policy.encoder.embed_dataset(dataset)
    return rollout(policy.actor, policy.predictor, embeddings, device=str(policy.device))


def validation_metrics(model, dataset: MovieDataset, embeddings: Sequence[np.ndarray]) -> dict:
    """Global metrics of the model on ``dataset`` (used for training curves and tuning)."""
    results = predict_dataset(model, dataset, embeddings)
    row = evaluate_predictions([r["prediction"] for r in results], dataset).iloc[0].to_dict()
    row.pop("scope", None)
    return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in row.items()}


def evaluate_model(model, dataset: MovieDataset) -> tuple:
    """``(metrics DataFrame, per-movie results)`` of ``model`` on ``dataset``."""
    results = predict_dataset(model, dataset)
    metrics = evaluate_predictions([r["prediction"] for r in results], dataset)
    return metrics, results


def prediction_table(movie, prediction: np.ndarray, target_names: Sequence[str]) -> pd.DataFrame:
    """Time, then ``<target>_pred`` and ``<target>_true`` per target (one row per segment)."""
    table = {"time": movie.times}
    for k, name in enumerate(target_names):
        table[f"{name}_pred"] = prediction[:, k]
        table[f"{name}_true"] = movie.targets[:, k]
    return pd.DataFrame(table)


def write_outputs(out: Path, metrics: pd.DataFrame, results: list, dataset: MovieDataset,
                  position_stretch: int = 0) -> None:
    """``metrics.csv``, ``error_by_position.csv`` (:func:`~agents.metrics.error_by_position`, ``position_stretch``
    segments per row), ``predictions/<movie>.csv`` and the figures of an evaluation, into ``out``."""
    out = Path(out)
    preds = [r["prediction"] for r in results]
    by_position = error_by_position(preds, dataset, position_stretch)  # bad stretch: fail before writing
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out / "metrics.csv", index=False)
    by_position.to_csv(out / "error_by_position.csv", index=False)
    plot_error_by_position(out / "figures" / "error_by_position.png", by_position)
    for movie, pred in zip(dataset, preds):
        prediction_table(movie, pred, dataset.target_names).to_csv(out / "predictions" / f"{movie.movie_id}.csv",
                                                                   index=False)
    plot_predictions(out / "figures" / "predictions.png", dataset.movies, preds, dataset.target_names)
    if results and "attention" in results[0]:
        plot_memory_attention(out / "figures" / "memory_attention.png", dataset.movies[0].movie_id,
                              results[0]["attention"], dataset.movies[0].times)
    log = out / "eval_log.csv"
    if log.exists():
        plot_training_curves(out / "figures" / "training_curves.png", pd.read_csv(log))


def load_model(path: Path, device: str = "auto"):
    """An RMN model from a run directory or a ``model.zip``."""
    from agents.rmn import RMN

    path = Path(path)
    zip_path = path / "model.zip" if path.is_dir() else path
    if not zip_path.exists():
        raise ValueError(f"{path}: no model.zip found (give a run directory or a model file)")
    return RMN.load(zip_path, device=device)


def baseline_model_path(path: Path) -> Optional[Path]:
    """The ``model.pt`` of a baseline run given as its directory or the file itself, else ``None`` (an RMN run)."""
    path = Path(path)
    if path.suffix == ".pt":
        return path
    if path.is_dir() and (path / "model.pt").exists() and not (path / "model.zip").exists():
        return path / "model.pt"
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run directory, model.zip, or a baseline run's model.pt")
    parser.add_argument("--dataset", default=None, help="dataset (default: the run's)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the run directory)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--position-stretch", type=int, default=0, metavar="N",
                        help="segments per row of error_by_position.csv (default 0: a tenth of the longest movie)")
    add_dataset_option_argument(parser)
    args = parser.parse_args(argv)
    check_count("--position-stretch", args.position_stretch, "a tenth of the longest movie")
    run_dir = args.run if args.run.is_dir() else args.run.parent
    out = args.out or run_dir
    if not (run_dir / "config.json").exists() and (run_dir.parent / "config.json").exists():
        run_dir = run_dir.parent  # a model the run kept in a folder of its own (best/<score>.zip)
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    if config.get("algo", "rmn") != "rmn":  # stock SB3 algorithms evaluate through their env predictor
        from agents.sb3_algorithms import evaluate_run

        metrics = evaluate_run(run_dir, args.split, args.dataset, out, args.device,
                               parse_dataset_options(args.dataset_option), args.position_stretch)
    else:
        options = config.get("dataset_options", {}) if args.dataset is None else {}
        options = {**options, **parse_dataset_options(args.dataset_option)}
        baseline = baseline_model_path(args.run)  # the model is loaded first, so a missing one fails first
        if baseline is None:
            model = load_model(args.run, args.device)
        else:
            model, encoder = load_baseline(baseline, device=str(get_device(args.device)))
        data = load_dataset(args.dataset or config.get("dataset", "synthetic"), args.split,
                            targets=config.get("targets"), segment_seconds=config.get("segment_seconds"), **options)
        if baseline is None:
            metrics, results = evaluate_model(model, data)
        else:
            metrics, results = evaluate_baseline(model, encoder.embed_dataset(data), data)
        write_outputs(out, metrics, results, data, args.position_stretch)
    g = metrics.iloc[0]
    shown = {k: round(float(g[k]), 4) for k in metrics.columns if k != "scope" and k in g and pd.notna(g[k])}
    print(json.dumps({"split": args.split, "movies": len(metrics) - 1, **shown}, indent=2))
    return 0


if __name__ == "__main__":
    from agents.cli import run_cli

    raise SystemExit(run_cli(main))
