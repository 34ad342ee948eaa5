"""Train the RMN agent (DDPG with an afterstate critic) — the project's main job.

    python -m agents.train_ddpg --env LiRISMemory-v0 [--recipe default|paper] [--config FILE] [--FIELD VALUE ...]

Pretrains the segment encoder (unless one is given) and, with the default recipe, the writer (full BPTT on short
movies), trains the RMN agent with a progress bar, evaluates on the test split and writes model, metrics,
predictions, figures and TensorBoard logs into ``--out``. ``--help`` lists every field, grouped by part.
"""
from __future__ import annotations

from typing import Optional, Sequence

from agents.cli import Command, parse_command, run_cli, train_and_report


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_command(Command, argv, "python -m agents.train_ddpg", __doc__.split("\n")[0],
                         defaults={"algo": "rmn"})
    if args.train.algorithm.algo != "rmn":
        raise ValueError(f"--algo {args.train.algorithm.algo}: agents.train_ddpg trains the RMN; use agents.train")
    out = str(args.resume) if args.resume else args.train.run.out
    return train_and_report(args.train.update({"out": out}), resume=bool(args.resume), progress=args.progress)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
