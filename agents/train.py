"""Train any supported algorithm on ``LiRISMemory-v0``: the RMN or a stock SB3 / sb3-contrib algorithm.

    python -m agents.train --algo {rmn,ddpg,td3,sac,ppo,a2c,tqc,recurrentppo} --env LiRISMemory-v0
        [--dataset synthetic|PATH] [--timesteps N] [--seed S] [--out DIR] [--hyperparams KEY:VALUE ...] ...

``rmn`` is ``python -m agents.train_ddpg``. The stock algorithms take their defaults from their section of
``agents/hyperparams/LiRISMemory-v0.yml`` (options given here, or in ``--config``, win), train on the env in
its ``"online"`` predictor mode, and write the same run directory (model, metrics, predictions, figures,
eval_log.csv, checkpoints) plus the env's trained predictor (``predictor.pt``). The default ``--out`` is
``runs/<algo>``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import yaml

from agents.cli import add_training_arguments, config_from_args, run_cli
from agents.sb3_algorithms import ALGORITHMS, algorithm_config, check_algorithm, train_algorithm

# command-line option -> TrainConfig field (what config_from_args sets when the option is given)
_OPTION_FIELDS = {"env": "env", "dataset": "dataset", "segment_seconds": "segment_seconds", "n_slots": "n_slots",
                  "memory_dim": "memory_dim", "tau": "tau", "gamma": "gamma", "timesteps": "timesteps",
                  "seed": "seed", "device": "device", "encoder": "encoder", "out": "out", "targets": "targets",
                  "split_manifest": "dataset_options"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.split("\n")[0])
    parser.add_argument("--algo", default=None, metavar="ALGO",
                        help=f"one of {', '.join(ALGORITHMS)} (default: --config's, else rmn)")
    parser.add_argument("--hyperparams", "-params", nargs="+", default=None, metavar="KEY:VALUE",
                        help="override hyperparameters, e.g. learning_rate:0.001 n_steps:256 (a config field, "
                             "or for a stock algorithm any constructor argument; values are read as YAML)")
    add_training_arguments(parser)
    return parser


def parse_hyperparams(items: Optional[Sequence[str]]) -> dict:
    """``["key:value", ...]`` -> ``{key: yaml value}``.

    :raises ValueError: for an item without ``:`` or with a value that is not valid YAML
    """
    out = {}
    for item in items or ():
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"--hyperparams {item}: expected KEY:VALUE (e.g. learning_rate:0.001)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--hyperparams {item}: the value is not valid YAML") from None
    return out


def explicit_fields(args: argparse.Namespace) -> set:
    """TrainConfig fields the user set (in ``--config`` or as options): per-algorithm defaults leave them."""
    fields = {field for option, field in _OPTION_FIELDS.items() if getattr(args, option, None) is not None}
    if args.config is not None and Path(args.config).exists():
        data = json.loads(Path(args.config).read_text())
        fields |= set(data) if isinstance(data, dict) else set()
    return fields


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    hyperparams = parse_hyperparams(args.hyperparams)
    progress = not args.no_progress
    if args.resume:
        from agents.config import TrainConfig

        run = Path(args.resume)
        if not (run / "config.json").exists():
            raise ValueError(f"--resume {run}: no config.json there (not a run directory)")
        saved = TrainConfig.load(run / "config.json").algo
        if args.algo is not None and check_algorithm(args.algo) != check_algorithm(saved):
            raise ValueError(f"--resume {run}: that run trains {saved}, not --algo {args.algo}")
        if hyperparams:
            raise ValueError("--hyperparams: a resumed run keeps its hyperparameters")
        summary = train_algorithm(TrainConfig(out=str(run)), resume=True, progress=progress)
        print(json.dumps({"run": str(run), **summary}, indent=2))
        return 0

    cfg = config_from_args(args)
    algo = check_algorithm(args.algo if args.algo is not None else cfg.algo)
    keep = explicit_fields(args)
    if algo != "rmn" and args.paper_faithful:
        raise ValueError(f"--paper-faithful is the RMN's recipe; it does not apply to --algo {algo}")
    cfg = algorithm_config(algo, cfg, keep)
    if "out" not in keep:
        cfg = cfg.update({"out": f"runs/{algo}"})
    summary = train_algorithm(cfg, hyperparams=hyperparams, progress=progress)
    print(json.dumps({"run": cfg.out, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
