"""Train a supervised baseline on the RMN's data, splits and segment embeddings.

    python -m agents.train_baseline --algo {segment,lstm,memory_tbptt,transformer} [--bptt-window 64]
        [--epochs 30] [--dataset synthetic|PATH] [--encoder lstm|pooling|PATH] [--out runs/NAME] ...
    python -m agents.train_baseline --resume runs/NAME     # go on from the last finished epoch

``segment``: per-segment MLP (no memory); ``lstm``: LSTM trained by truncated BPTT over whole movies;
``memory_tbptt``: the RMN's write/read networks trained end to end by (truncated) BPTT (``--bptt-window 0`` =
full BPTT); ``transformer``: causal Transformer over the last ``--bptt-window`` segments. The same as
``python -m agents.train --algo MODEL``; the default ``--out`` is ``runs/baseline-MODEL``.
"""
from __future__ import annotations

from typing import Optional, Sequence

from agents.cli import Command, explicit_fields, parse_command, run_cli, train_and_report
from agents.config import BASELINES


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_command(Command, argv, "python -m agents.train_baseline", __doc__.split("\n")[0],
                         defaults={"algo": "lstm"})
    if args.resume:
        cfg = args.train.update({"out": str(args.resume)})
    else:
        cfg = args.train
        if cfg.algorithm.algo not in BASELINES:
            raise ValueError(f"--algo {cfg.algorithm.algo}: choose a baseline: {', '.join(BASELINES)}")
        if "out" not in explicit_fields(argv, args):
            cfg = cfg.update({"out": f"runs/baseline-{cfg.algorithm.algo}"})
    return train_and_report(cfg, resume=bool(args.resume), progress=args.progress)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
