"""A run's inputs: the dataset splits, the segment encoder and the env, built from a :class:`TrainConfig`.

Every trainer (the RMN, the stock algorithms, the baselines) and every study reads its data through these
functions, so the same config gives the same movies, splits and embeddings whatever is trained on them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from affect_env.data import SPLITS, FeatureStats, MovieDataset, load_dataset
from affect_env.encoder import PoolingEncoder, SegmentEncoder, pretrain_encoder
from affect_env.env import LiRISMemoryEnv
from affect_env.presets import preset_options
from agents.config import TrainConfig


def split_options(cfg: TrainConfig, split: str) -> dict:
    """The dataset reader's options for ``split``: on the synthetic data, the env id's preset (``--env
    LiRISMemory-Short-v0``: 100-segment movies...), then ``dataset_options``, then, for the train split only,
    ``train_dataset_options``."""
    preset = preset_options(cfg.env) if cfg.data.dataset == "synthetic" else {}
    return {**preset, **cfg.data.dataset_options, **(cfg.data.train_dataset_options if split == "train" else {})}


def load_split(cfg: TrainConfig, split: str, **options) -> MovieDataset:
    """The config's dataset ``split`` with its targets, read with :func:`split_options` and ``options`` on top."""
    return load_dataset(cfg.data.dataset, split, targets=cfg.data.targets, segment_seconds=cfg.data.segment_seconds,
                        **{**split_options(cfg, split), **options})


def load_splits(cfg: TrainConfig) -> dict:
    """``{split: MovieDataset}`` for the config's dataset and targets."""
    return {s: load_split(cfg, s) for s in SPLITS}


def load_long_val(cfg: TrainConfig) -> Optional[MovieDataset]:
    """The second validation set (the validation split read with ``long_val_options`` on top), or ``None``."""
    return load_split(cfg, "val", **cfg.data.long_val_options) if cfg.data.long_val_options else None


def build_encoder(cfg: TrainConfig, data: dict, out: Path, progress: bool = True,
                  given: Optional[SegmentEncoder] = None) -> SegmentEncoder:
    """The run's segment encoder, saved as ``out/encoder.pt``: that file where it exists (a resumed run), else
    ``given`` (a warm start's), else per ``cfg.encoding.encoder``: a pooling encoder, an LSTM pretrained on the
    train split (its history in ``out/encoder_history.csv``) or a saved encoder file."""
    saved = out / "encoder.pt"
    if saved.exists():
        return SegmentEncoder.load(saved)
    enc = cfg.encoding
    if given is not None:
        encoder = given
    elif enc.encoder == "pooling":
        encoder = PoolingEncoder(FeatureStats.fit(data["train"]))
    elif enc.encoder == "lstm":
        encoder, history = pretrain_encoder(
            data["train"], data["val"], hidden_size=enc.encoder_hidden,
            reconstruction_weight=enc.encoder_reconstruction, epochs=enc.encoder_epochs, seed=cfg.run.seed,
            progress=progress)
        pd.DataFrame(history).to_csv(out / "encoder_history.csv", index=False)
    else:
        path = Path(enc.encoder)
        if not path.exists():
            raise ValueError(f"encoder {enc.encoder}: give 'lstm', 'pooling' or the path of a saved encoder")
        encoder = SegmentEncoder.load(path)
    encoder.save(saved)
    return encoder


def make_env(cfg: TrainConfig, dataset: MovieDataset, encoder: SegmentEncoder, **kwargs) -> LiRISMemoryEnv:
    """The env of a run: ``dataset`` embedded by ``encoder``, the config's memory size and reward."""
    return LiRISMemoryEnv(dataset=dataset, encoder=encoder, n_slots=cfg.memory.n_slots,
                          memory_dim=cfg.memory.memory_dim, targets=None, reward=cfg.rmn.reward, **kwargs)
