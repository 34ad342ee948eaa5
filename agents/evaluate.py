"""Evaluate a trained model: metrics, per-movie prediction tables and figures.

``python -m agents.evaluate RUN_OR_MODEL [--dataset D] [--split test]`` recomputes ``metrics.csv``,
``error_by_position.csv``, ``predictions/`` and ``figures/`` of a run directory (or of a ``model.zip``, writing
next to it): an RMN, stock-algorithm or baseline run (a baseline's ``model.pt``, e.g. the writer pretraining an
RMN run keeps in ``writer_pretrain/``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from affect_env.data import SPLITS
from affect_env.memory import check_count
from agents.cli import run_cli
from agents.config import parse_options
from agents.runs import evaluate_run


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run directory, model.zip, or a baseline run's model.pt")
    parser.add_argument("--dataset", default=None, help="dataset (default: the run's)")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the run directory)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--position-stretch", type=int, default=0, metavar="N",
                        help="segments per row of error_by_position.csv (default 0: a tenth of the longest movie)")
    parser.add_argument("--dataset-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dataset reader options on top of the run's (values are JSON, else text), e.g. "
                             "length=2000 dependency_distance=1000")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    check_count("--position-stretch", args.position_stretch, "a tenth of the longest movie")
    metrics = evaluate_run(args.run, args.split, args.dataset, args.out, args.device,
                           parse_options(args.dataset_options, "--dataset-options"), args.position_stretch,
                           progress=not args.no_progress)
    g = metrics.iloc[0]
    shown = {k: round(float(g[k]), 4) for k in metrics.columns if k != "scope" and k in g and pd.notna(g[k])}
    print(json.dumps({"split": args.split, "movies": len(metrics) - 1, **shown}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
