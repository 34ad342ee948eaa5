"""Train the RMN agent (DDPG with an afterstate critic) — the project's main job.

    python -m agents.train_ddpg --env LiRISMemory-v0 [--dataset synthetic|PATH] [--out runs/NAME] ...

Pretrains the segment encoder (unless one is given) and the writer (full BPTT on short movies), trains the RMN
agent with a progress bar, evaluates on the test split and writes model, metrics, predictions, figures and
TensorBoard logs into ``--out``.
"""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from agents.cli import add_training_arguments, config_from_args, run_cli
from agents.config import TrainConfig


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.train_ddpg", description=__doc__.split("\n")[0])
    add_training_arguments(parser)
    parser.add_argument("--pretrain-writer-epochs", type=int, default=None, metavar="EPOCHS",
                        help="epochs of full BPTT that pretrain the write network, predictor and m0 on short movies "
                             f"before the RMN trains (default {TrainConfig().pretrain_writer_epochs}; 0: none)")
    args = parser.parse_args(argv)
    return _train(args)


def _train(args: argparse.Namespace, **overrides) -> int:
    from agents.training import train

    if args.resume:
        cfg = TrainConfig(out=args.resume)
        summary = train(cfg, resume=True, progress=not args.no_progress)
    else:
        cfg = config_from_args(args, **overrides)
        summary = train(cfg, progress=not args.no_progress)
        args.resume = cfg.out
    print(json.dumps({"run": str(args.resume), **summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
