"""Evaluate a finished run again, on any split or dataset: the same metrics, predictions and figures as its
training wrote, for the RMN, the stock algorithms and the baselines alike."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import pandas as pd
from stable_baselines3.common.utils import get_device

from affect_env.data import load_dataset
from affect_env.encoder import SegmentEncoder
from agents.baselines.models import load_baseline
from agents.baselines.training import evaluate_baseline
from agents.config import STOCK_ALGORITHMS, TrainConfig
from agents.outputs import write_outputs
from agents.rmn import RMN
from agents.rmn.factory import evaluate_rmn
from agents.sb3_algorithms import algorithm_class, evaluate_policy_on, evaluation_env, load_predictor

PathLike = Union[str, Path]


def run_directory(path: PathLike) -> Path:
    """The run directory of ``path``: the folder itself, the folder of a model file, or the run above a model kept
    in a folder of its own (``best/<score>.zip``, ``writer_pretrain/``'s files are runs themselves)."""
    path = Path(path)
    run = path if path.is_dir() else path.parent
    if not (run / "config.json").exists() and (run.parent / "config.json").exists():
        run = run.parent
    return run


def load_config(path: PathLike) -> Optional[TrainConfig]:
    """The config of the run holding ``path``, or ``None`` for a model without one."""
    cfg_file = run_directory(path) / "config.json"
    return TrainConfig.load(cfg_file) if cfg_file.exists() else None


def load_model_file(path: PathLike, device: str = "auto") -> RMN:
    """An RMN model from a run directory or a ``model.zip``.

    :raises ValueError: naming the file where there is none or it is not a saved RMN model
    """
    path = Path(path)
    zip_path = path / "model.zip" if path.is_dir() else path
    if not zip_path.exists():
        raise ValueError(f"{path}: no model.zip found (give a run directory or a model file)")
    try:
        return RMN.load(zip_path, device=device)
    except Exception as err:  # SB3 raises assertion, key and zip errors alike for a damaged file
        raise ValueError(f"{zip_path}: not a readable RMN model ({type(err).__name__}: {err})") from None


def baseline_model_path(path: PathLike) -> Optional[Path]:
    """The ``model.pt`` of a baseline run given as its directory or the file itself, else ``None``."""
    path = Path(path)
    if path.suffix == ".pt":
        return path
    if path.is_dir() and (path / "model.pt").exists() and not (path / "model.zip").exists():
        return path / "model.pt"
    return None


def evaluate_run(path: PathLike, split: str = "test", dataset: Optional[str] = None,
                 out: Optional[PathLike] = None, device: str = "auto", dataset_options: Optional[dict] = None,
                 position_stretch: int = 0, progress: bool = False) -> pd.DataFrame:
    """Evaluate the model of a run (a run directory, its ``model.zip`` / ``best/<score>.zip``, or a baseline's
    ``model.pt``) on ``split`` and write metrics, predictions and figures to ``out`` (default: the run directory).

    :param dataset: another dataset source (default: the run's, with its reader options)
    :param dataset_options: reader options on top of the run's (or, with ``dataset``, instead of them)
    :param position_stretch: segments per row of ``error_by_position.csv`` (0: a tenth of the longest movie)
    :param progress: a progress bar over the segments (the RMN's evaluation)
    :return: the metrics table (global row first)
    """
    run = run_directory(path)
    cfg = load_config(path)
    algo = cfg.algorithm.algo if cfg is not None else "rmn"
    baseline = baseline_model_path(path)
    if algo in STOCK_ALGORITHMS:  # stock algorithms evaluate through their env's predictor
        for name in ("model.zip", "encoder.pt", "predictor.pt"):
            if not (run / name).exists():
                raise ValueError(f"{run}: {name} missing (the run did not finish)")
        model = algorithm_class(algo).load(run / "model.zip", device=device)
        encoder, predictor = SegmentEncoder.load(run / "encoder.pt"), load_predictor(run / "predictor.pt")
    elif baseline is not None:
        model, encoder = load_baseline(baseline, device=str(get_device(device)))
    else:
        model = load_model_file(path, device)
    data_cfg = cfg.data if cfg is not None else TrainConfig().data
    options = {**(data_cfg.dataset_options if dataset is None else {}), **(dataset_options or {})}
    data = load_dataset(dataset or data_cfg.dataset, split, targets=data_cfg.targets,
                        segment_seconds=data_cfg.segment_seconds, **options)
    if algo in STOCK_ALGORITHMS:
        metrics, results = evaluate_policy_on(model, evaluation_env(cfg, data, encoder, predictor))
    elif baseline is not None:
        metrics, results = evaluate_baseline(model, encoder.embed_dataset(data), data)
    else:
        metrics, results = evaluate_rmn(model, data, progress=progress)
    write_outputs(Path(out or run), metrics, results, data, position_stretch)
    return metrics
