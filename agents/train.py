"""Train any supported algorithm on ``LiRISMemory-v0``: the RMN, a stock SB3 / sb3-contrib algorithm, or a
supervised baseline.

    python -m agents.train --algo {rmn,ddpg,td3,sac,ppo,a2c,tqc,recurrentppo,segment,lstm,memory_tbptt,transformer}
        [--dataset synthetic|PATH] [--timesteps N] [--seed S] [--out DIR] [--hyperparams KEY:VALUE ...] ...

The stock algorithms take their defaults from their section of ``agents/hyperparams/LiRISMemory-v0.yml``
(fields given as flags or in ``--config`` win), train on the env in its ``"online"`` predictor mode, and write
the same run directory as the RMN plus the env's trained predictor (``predictor.pt``). The baselines train by
epochs (``--epochs``, ``--bptt-window``...). The default ``--out`` is ``runs/<algo>``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import yaml

from agents.cli import Command, explicit_fields, parse_command, run_cli, train_and_report
from agents.sb3_algorithms import algorithm_config


@dataclass
class TrainCommand(Command):
    hyperparams: tuple[str, ...] = ()
    """extra constructor arguments of a stock algorithm, KEY:VALUE (YAML values), e.g. n_steps:256"""


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_command(TrainCommand, argv, "python -m agents.train", __doc__.split("\n")[0])
    hyperparams = parse_hyperparams(args.hyperparams)
    if args.resume:
        if hyperparams:
            raise ValueError("--hyperparams: a resumed run keeps its hyperparameters")
        return train_and_report(args.train.update({"out": str(args.resume)}), resume=True, progress=args.progress)
    cfg = args.train
    keep = explicit_fields(argv, args)
    cfg = algorithm_config(cfg.algorithm.algo, cfg, keep)
    if "out" not in keep:
        cfg = cfg.update({"out": f"runs/{cfg.algorithm.algo}"})
    return train_and_report(cfg, progress=args.progress, hyperparams=hyperparams)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
