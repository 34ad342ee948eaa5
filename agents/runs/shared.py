"""Inputs made once and shared by many runs: the segment encoder and the RMN's writer pretraining.

A study trains dozens of runs that differ only in what it tunes (τ, λ, N...). Their segment encoder depends on
the data and the encoder settings alone, and their writer pretraining on those and the memory's sizes, so each
distinct setting is made once, in a folder named after a digest of exactly the settings it depends on, and every
run with that setting starts from it (``encoder`` set to the saved file, ``init_from`` to the pretraining).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from agents.config import TrainConfig
from agents.inputs import build_encoder, load_splits
from agents.runs.pipeline import pretrain_config, seed_process, train

#: the settings each shared input depends on (field names of the config)
ENCODER_FIELDS = ("env", "dataset", "dataset_options", "train_dataset_options", "targets", "segment_seconds", "encoder",
                  "encoder_hidden", "encoder_reconstruction", "encoder_epochs", "seed")
WRITER_FIELDS = ENCODER_FIELDS + ("n_slots", "memory_dim", "net_arch", "predictor_hidden", "readout", "read_heads",
                                  "read_key_dim", "erase_bias", "input_bias", "coupled_gates", "write_top_k",
                                  "pretrain_writer_epochs", "pretrain_writer_options", "device", "threads")


def digest(cfg: TrainConfig, names) -> str:
    """A short name for the values of the fields ``names`` of ``cfg``."""
    flat = cfg.flat()
    return hashlib.sha256(json.dumps({k: flat[k] for k in names}, sort_keys=True).encode()).hexdigest()[:12]


def shared_encoder(cfg: TrainConfig, cache: Path, progress: bool = False) -> TrainConfig:
    """``cfg`` with its LSTM encoder pretrained once in ``cache/encoder-<digest>/`` and given as that file (other
    encoders, a pooling one or a saved file, need no sharing)."""
    if cfg.encoding.encoder != "lstm":
        return cfg
    folder = Path(cache) / f"encoder-{digest(cfg, ENCODER_FIELDS)}"
    if not (folder / "encoder.pt").exists():
        folder.mkdir(parents=True, exist_ok=True)
        seed_process(cfg)
        build_encoder(cfg, load_splits(cfg), folder, progress)  # written atomically: a worker sees all or nothing
    return cfg.update({"encoder": str(folder / "encoder.pt")}, "shared encoder")


def shared_writer(cfg: TrainConfig, cache: Path, progress: bool = False) -> TrainConfig:
    """``cfg`` (its encoder already a file, :func:`shared_encoder`) with its writer pretraining made once in
    ``cache/writer-<digest>/`` and given as ``init_from``; unchanged where the recipe pretrains no writer."""
    if not cfg.warm_start.pretrains:
        return cfg
    folder = Path(cache) / f"writer-{digest(cfg, WRITER_FIELDS)}"
    if not (folder / "writer_pretrain" / "summary.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        sub = pretrain_config(cfg, folder).update({"encoder": cfg.encoding.encoder}, "shared writer")
        shutil.rmtree(sub.run.out, ignore_errors=True)  # an unfinished one, left by a killed worker: redone
        train(sub, progress=progress)
    return cfg.update({"init_from": str(folder / "writer_pretrain")}, "shared writer pretraining")
