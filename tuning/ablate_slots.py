"""The paper's memory-size ablation (its Fig. 5): RMN performance against the number of memory slots N.

    python -m tuning.ablate_slots [--n 1 2 4 10 20] [--seeds 3] [--timesteps T] [--out DIR] [--config F] ...

Trains the RMN once per (N, seed) with :func:`agents.runs.train` into ``<out>/runs/n<N>_seed<S>/`` and
writes into ``<out>``:

* ``runs.csv``: one row per run (N, seed, validation and test metrics, wall time);
* ``ablation.csv``: per N, the mean, sample standard deviation (ddof=1), min and max over seeds of each
  test metric;
* ``ablation.md``: that table in markdown, ``mean ± std [min, max]`` per N (also printed);
* ``ablation.png``: test MSE (and ``gap_closed`` where the dataset has an oracle) against N, mean ± one
  standard deviation over seeds as error bars, every seed as a dot.

The sizes default to :data:`DEFAULT_NS` and the seeds to 0, 1, 2 (``--seeds`` seeds from ``--seed``). Resumable:
runs whose ``summary.json`` exists are read, not retrained (so a call with more sizes or seeds trains only the new
runs); an interrupted run with a checkpoint is continued. Every flag of ``python -m agents.train_ddpg`` applies to
the runs (``--env``, ``--recipe``, ``--timesteps``, ...) except ``--n-slots`` (the ablation sets N) and
``--resume``; ``--seed`` is the first seed, and the ablation directory is ``--out`` (default
``runs/ablate_slots``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import pandas as pd

from affect_env.files import atomic_write_text
from affect_env.progress import progress_bar
from agents.cli import Command, run_cli
from agents.config import TrainConfig
from agents.runs import train
from agents.runs.directory import RunDirectory
from tuning.commands import parse_tool_command
from tuning.plots import plot_ablation

#: the memory sizes of the ablation by default
DEFAULT_NS = (1, 2, 4, 10, 20)
#: summary keys copied into runs.csv (when present)
RUN_COLUMNS = ("test_mse", "test_gap_closed", "val_mse", "val_gap_closed", "test_mse_oracle", "test_mse_no_memory",
               "train_wall_s", "updates_per_s")


def run_dir(out: Union[str, Path], n_slots: int, seed: int) -> Path:
    """Where the run of ``(n_slots, seed)`` lives: ``<out>/runs/n<N>_seed<S>``."""
    return Path(out) / "runs" / f"n{n_slots}_seed{seed}"


def _check_same_config(path: Path, cfg: TrainConfig) -> None:
    saved = TrainConfig.load(path / "config.json").flat()
    new = cfg.flat()
    diff = [f"{k}={saved.get(k)!r} (now {new.get(k)!r})" for k in sorted(new) if k != "out" and saved.get(k) != new[k]]
    if diff:
        raise ValueError(f"{path}: this run was trained with {', '.join(diff)}; use the same settings to "
                         "resume the ablation, or another --out")


def run_ablation(base: TrainConfig, ns: Sequence[int], seeds: Sequence[int], out: Union[str, Path], *,
                 progress: bool = True, train_fn: Callable = train) -> pd.DataFrame:
    """Train (or read back) one RMN per (N, seed) and return the runs table (also ``<out>/runs.csv``).

    :param base: the settings of every run (``n_slots``, ``seed`` and ``out`` are replaced)
    :param ns: the memory sizes N
    :param seeds: the training seeds
    :param out: the ablation directory
    :param progress: a tqdm bar over the runs
    :param train_fn: the training function (default :func:`agents.runs.train`)
    :return: one row per run: ``n_slots``, ``seed``, ``run``, ``skipped`` (read back) and :data:`RUN_COLUMNS`
    """
    ns, seeds = [int(n) for n in ns], [int(s) for s in seeds]
    if not ns or any(n < 1 for n in ns):
        raise ValueError(f"--n {' '.join(map(str, ns))}: give memory sizes >= 1")
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(n, s) for n in sorted(set(ns)) for s in dict.fromkeys(seeds)]
    rows = []
    bar = progress_bar(jobs, desc="N-ablation", unit="run", disable=not progress)
    for n, seed in bar:
        bar.set_postfix(N=n, seed=seed)
        path = run_dir(out, n, seed)
        cfg = base.update({"n_slots": n, "seed": seed, "out": str(path)}, "ablation")
        summary_file = path / "summary.json"
        skipped = summary_file.exists()
        if skipped:
            _check_same_config(path, cfg)
            summary = json.loads(summary_file.read_text())
        elif RunDirectory(path).has_checkpoint():
            _check_same_config(path, cfg)
            summary = train_fn(cfg, resume=True, progress=False)
        else:
            summary = train_fn(cfg, progress=False)
        rows.append({"n_slots": n, "seed": seed, "run": str(path), "skipped": skipped,
                     **{k: summary[k] for k in RUN_COLUMNS if k in summary}})
        # after every run: partial results survive an interruption
        atomic_write_text(out / "runs.csv", pd.DataFrame(rows).to_csv(index=False))
    return pd.DataFrame(rows)


def ablation_metrics(runs: pd.DataFrame) -> list:
    """The metrics the ablation reports: ``test_mse``, and ``test_gap_closed`` when the dataset has an oracle."""
    return [m for m in ("test_mse", "test_gap_closed") if m in runs.columns and runs[m].notna().any()]


def summarize_ablation(runs: pd.DataFrame, metrics: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Per N: ``n_seeds`` and, per metric, ``_mean``, ``_std`` (sample std over seeds, ddof=1; NaN with one
    seed), ``_min`` and ``_max``."""
    metrics = list(metrics or ablation_metrics(runs))
    groups = runs.groupby("n_slots")
    table = pd.DataFrame({"n_slots": sorted(runs["n_slots"].unique())})
    table["n_seeds"] = groups.size().reindex(table["n_slots"]).to_numpy()
    for m in metrics:
        for stat in ("mean", "std", "min", "max"):
            table[f"{m}_{stat}"] = groups[m].agg(stat).reindex(table["n_slots"]).to_numpy()
    return table


def markdown_table(table: pd.DataFrame, metrics: Sequence[str]) -> str:
    """The ablation table in markdown: N, seeds, and per metric ``mean ± std [min, max]``."""
    head = "| N | seeds | " + " | ".join(f"{m} mean ± std [min, max]" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (2 + len(metrics))]
    for _, r in table.iterrows():
        cells = []
        for m in metrics:
            std = "n/a" if pd.isna(r[f"{m}_std"]) else f"{r[f'{m}_std']:.4f}"
            cells.append(f"{r[f'{m}_mean']:.4f} ± {std} [{r[f'{m}_min']:.4f}, {r[f'{m}_max']:.4f}]")
        lines.append(f"| {int(r['n_slots'])} | {int(r['n_seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_ablation(runs: pd.DataFrame, out: Union[str, Path]) -> pd.DataFrame:
    """``ablation.csv``, ``ablation.md`` (:func:`markdown_table`) and ``ablation.png`` of a runs table, into
    ``out``; returns the per-N table."""
    out = Path(out)
    metrics = ablation_metrics(runs)
    table = summarize_ablation(runs, metrics)
    atomic_write_text(out / "ablation.csv", table.to_csv(index=False))
    atomic_write_text(out / "ablation.md", markdown_table(table, metrics) + "\n\n(std: sample standard deviation "
                      "over seeds, ddof=1; metrics on the test split)\n")
    refs = {}
    if "test_mse_oracle" in runs.columns and "test_mse_no_memory" in runs.columns:
        refs["test_mse"] = {"oracle": float(runs["test_mse_oracle"].mean()),
                            "best memory-less": float(runs["test_mse_no_memory"].mean())}
    if "test_gap_closed" in metrics:  # gap_closed is 0 at the best memory-less prediction, 1 at the oracle
        refs["test_gap_closed"] = {"best memory-less (0)": 0.0}
    plot_ablation(table, runs, metrics, out / "ablation.png", refs)
    return table


@dataclass
class AblationCommand(Command):
    """The ablation's options beside the training flags (``--seed``: the first seed; ``--out``: the ablation
    directory)."""

    n: Tuple[int, ...] = DEFAULT_NS
    """memory sizes N to train"""
    seeds: int = 3
    """seeds per N: --seed, --seed+1, ..."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, flags = parse_tool_command(
        AblationCommand, argv, "python -m tuning.ablate_slots", __doc__.split("\n")[0],
        resume_hint="run the same command again to resume the ablation",
        set_by_tool={"n_slots": "the ablation sets N; give the sizes with --n"})
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: must be >= 1")
    base = args.train
    out = Path(base.run.out if "out" in flags else "runs/ablate_slots")
    seeds = [base.run.seed + k for k in range(args.seeds)]
    try:
        runs = run_ablation(base, args.n, seeds, out, progress=args.progress)
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; run the same command to resume", file=sys.stderr)
        return 130
    table = write_ablation(runs, out)
    print(markdown_table(table, ablation_metrics(runs)))
    print(f"\n(std = sample standard deviation over seeds, ddof=1; tables {out / 'runs.csv'}, "
          f"{out / 'ablation.csv'}, {out / 'ablation.md'}; figure {out / 'ablation.png'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
