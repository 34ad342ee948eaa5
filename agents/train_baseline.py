"""Train a supervised baseline on the RMN's data, splits and segment embeddings.

    python -m agents.train_baseline --model {segment,lstm,memory_tbptt,transformer} [--window 64] [--epochs 30]
        [--dataset synthetic|PATH] [--encoder lstm|pooling|PATH] [--out runs/NAME] ...

``segment``: per-segment MLP (no memory); ``lstm``: LSTM trained by truncated BPTT over whole movies;
``memory_tbptt``: the RMN's write/read networks trained end to end by (truncated) BPTT (``--window 0`` =
full BPTT); ``transformer``: causal Transformer over the last ``--window`` segments. Writes model.pt,
metrics.csv, predictions/, figures/ and summary.json into ``--out`` (default ``runs/baseline-MODEL``).
"""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from agents.baselines.models import MODEL_NAMES
from agents.cli import add_training_arguments, config_from_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.train_baseline", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, choices=MODEL_NAMES, help="which baseline")
    parser.add_argument("--window", type=int, default=64,
                        help="TBPTT window in segments (0 = full BPTT) / transformer attention window (default 64)")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (early stopping on val MSE)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size of the MLP, LSTM and transformer")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--batch-movies", type=int, default=8, help="movies per batch (recurrent models)")
    parser.add_argument("--batch-size", type=int, default=256, help="segments per minibatch (MLP, transformer)")
    parser.add_argument("--patience", type=int, default=5, help="epochs without val improvement before stopping")
    add_training_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from agents.baselines.training import train_baseline

    args = build_parser().parse_args(argv)
    if args.resume:
        raise ValueError("--resume is not supported by agents.train_baseline: rerun with a new --out")
    for name in ("epochs", "hidden", "batch_movies", "batch_size", "patience"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    overrides = {} if args.out else {"out": f"runs/baseline-{args.model}"}
    cfg = config_from_args(args, **overrides)
    summary = train_baseline(cfg, args.model, window=args.window, epochs=args.epochs, hidden=args.hidden,
                             lr=args.lr, batch_movies=args.batch_movies, batch_size=args.batch_size,
                             patience=args.patience, progress=not args.no_progress)
    print(json.dumps({"run": cfg.out, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
