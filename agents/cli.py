"""Shared command-line plumbing: the training options every ``agents.train*`` entry point accepts."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from affect_env.data import DataError
from agents.config import SELECT_ON, TrainConfig


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m agents.train_ddpg`` (the defaults come from :class:`TrainConfig`)."""
    d = TrainConfig()
    parser.add_argument("--env", default=d.env, help="environment id (only LiRISMemory-v0)")
    parser.add_argument("--dataset", default=None, help="'synthetic' (default) or a data directory")
    parser.add_argument("--targets", default=None, help="comma-separated target columns (default valence,arousal)")
    parser.add_argument("--segment-seconds", type=float, default=None, help="segment length for real data")
    parser.add_argument("--n-slots", type=int, default=None, help=f"memory slots N (default {d.n_slots})")
    parser.add_argument("--memory-dim", type=int, default=None, help=f"slot size d (default {d.memory_dim})")
    parser.add_argument("--tau", type=float, default=None, help=f"target network update rate (default {d.tau})")
    parser.add_argument("--gamma", type=float, default=None, help=f"discount, the paper's lambda (default {d.gamma})")
    parser.add_argument("--timesteps", type=int, default=None, help=f"environment steps (default {d.timesteps})")
    parser.add_argument("--seed", type=int, default=None, help=f"random seed (default {d.seed})")
    parser.add_argument("--device", default=None, help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1)")
    parser.add_argument("--encoder", default=None, help="lstm (pretrained, default), pooling, or a saved encoder")
    parser.add_argument("--config", type=Path, default=None, help="JSON file of config fields (e.g. tuning's best)")
    parser.add_argument("--out", default=None, help="run directory (default runs/default)")
    parser.add_argument("--resume", default=None, metavar="RUN", help="continue the interrupted run in RUN")
    parser.add_argument("--paper-faithful", action="store_true", help="the paper's recipe as written")
    parser.add_argument("--init-from", default=None, metavar="RUN",
                        help="warm start: a memory_tbptt run (python -m agents.train_baseline) whose write network, "
                             "predictor, m0 and encoder the agent starts from")
    parser.add_argument("--split-manifest", default=None, help="split manifest for table datasets (CSV/JSON or name)")
    add_dataset_option_argument(parser)
    parser.add_argument("--train-dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset reader option for the train split only, repeatable, e.g. "
                             "--train-dataset-option length=[400,2000] (validation and test keep the others)")
    parser.add_argument("--long-val-option", action="append", default=[], metavar="KEY=VALUE",
                        help="reader option of a second validation set (on top of the validation split's), "
                             "repeatable, e.g. --long-val-option length=2000 --long-val-option dependency_distance=1000")
    parser.add_argument("--select-on", choices=SELECT_ON, default=None,
                        help="the validation score that picks the model kept: val (default), long (the second set's) "
                             "or mean (of both)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_dataset_option_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset reader option, repeatable (values are JSON, else text), e.g. "
                             "--dataset-option length=2000 --dataset-option dependency_distance=1000")


def parse_dataset_options(items: Sequence[str]) -> dict:
    """``["length=2000", "manifest=ceap360vr"]`` -> ``{"length": 2000, "manifest": "ceap360vr"}``."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--dataset-option {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key] = tuple(value) if isinstance(value, list) else value  # JSON arrays (n_movies=[64,16,16]) -> tuples
    return out


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    """Defaults < ``--config`` file < explicit command-line options < ``overrides``."""
    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.paper_faithful:
        cfg.apply_paper_faithful()
    explicit = {
        "env": args.env, "dataset": args.dataset, "segment_seconds": args.segment_seconds,
        "n_slots": args.n_slots, "memory_dim": args.memory_dim, "tau": args.tau, "gamma": args.gamma,
        "timesteps": args.timesteps, "seed": args.seed, "device": args.device, "encoder": args.encoder,
        "threads": args.threads, "select_on": getattr(args, "select_on", None),
        "init_from": getattr(args, "init_from", None),
        "pretrain_writer_epochs": getattr(args, "pretrain_writer_epochs", None),
        "out": args.out,
    }
    if args.targets:
        explicit["targets"] = [t.strip() for t in args.targets.split(",") if t.strip()]
    options = parse_dataset_options(getattr(args, "dataset_option", []))
    if args.split_manifest:
        options["manifest"] = args.split_manifest
    if options:
        explicit["dataset_options"] = dict(cfg.dataset_options, **options)
    train_options = parse_dataset_options(getattr(args, "train_dataset_option", []))
    if train_options:
        explicit["train_dataset_options"] = dict(cfg.train_dataset_options, **train_options)
    long_options = parse_dataset_options(getattr(args, "long_val_option", []))
    if long_options:
        explicit["long_val_options"] = dict(cfg.long_val_options, **long_options)
    cfg = cfg.update({k: v for k, v in explicit.items() if v is not None}, "command line")
    cfg = cfg.update(overrides) if overrides else cfg
    if cfg.env.split(":")[-1] != "LiRISMemory-v0":
        raise ValueError(f"--env {cfg.env}: only LiRISMemory-v0 is provided by this project")
    return cfg


def run_cli(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None,
            interrupted: str = "interrupted: continue with --resume RUN_DIR (the last checkpoint is kept)") -> int:
    """Run ``main``; bad data or arguments print one ``error:`` line and exit 2, without a traceback.

    :param interrupted: the line printed on Ctrl-C (exit status 130)
    """
    try:
        return main(argv)
    except (DataError, ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
