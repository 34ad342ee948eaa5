"""Helpers shared by the benchmark scripts: their command line and report, machine description, markdown
tables, CSV output, RSS."""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from agents.config import TrainConfig

#: the supervised baselines a benchmark trains, by name (``memory_bptt``: ``memory_tbptt`` by full BPTT)
BASELINE_MODELS = ("segment", "lstm", "memory_tbptt", "memory_bptt", "transformer")


def machine_description() -> str:
    """``"<N> CPU cores, no GPU (torch <v>, <k> threads)"`` or the CUDA device's name."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cores} CPU cores, {gpu} ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s))")


def stamp() -> str:
    """Today's date, the machine and its current load (other processes share the cores), for table headers."""
    load = f", load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    return f"{_dt.date.today().isoformat()} on {machine_description()}{load}"


def set_threads(n: int = 1) -> None:
    """Limit torch's intra-op threads (benchmarks share the machine; 1 thread gives stable timings)."""
    torch.set_num_threads(n)


@dataclass
class NetworkSizes:
    """The memory and network sizes a benchmark gives the RMN and the memory baselines (defaults: 10 slots of 32,
    slot MLPs of 64 x 64, a read-out hidden layer of 64). Each benchmark's settings extend it."""

    n_slots: int = 10
    memory_dim: int = 32
    net_arch: tuple = (64, 64)
    predictor_hidden: tuple = (64,)

    def memory_fields(self, read_out: bool = True) -> dict:
        """These sizes as :class:`~agents.config.TrainConfig` fields (``read_out=False``: without
        ``predictor_hidden``, for the paper recipe's single-FC read-out)."""
        out = {"n_slots": self.n_slots, "memory_dim": self.memory_dim, "net_arch": tuple(self.net_arch)}
        return {**out, "predictor_hidden": tuple(self.predictor_hidden)} if read_out else out


@dataclass
class BaselineSizes:
    """How a benchmark trains the supervised baselines (:data:`BASELINE_MODELS`); each benchmark's settings
    extend it.

    :param epochs: most epochs (early stopping on the validation MSE after ``patience`` epochs without progress)
    :param window: TBPTT window of ``lstm`` and ``memory_tbptt``, attention window of ``transformer``
    :param hidden: hidden size of the segment MLP, the LSTM and the transformer
    :param batch_size: segments per minibatch of the segment MLP and the transformer
    :param batch_movies: movies per truncated-BPTT batch of the recurrent baselines
    """

    epochs: int = 30
    window: int = 64
    hidden: int = 64
    patience: int = 5
    batch_size: int = 256
    batch_movies: int = 8

    def baseline_config(self, model: str, cfg: TrainConfig, where: str = "benchmark settings") -> TrainConfig:
        """``cfg`` for the baseline ``model``: its algo (``memory_bptt``: ``memory_tbptt`` with full BPTT) and these
        epochs, window, sizes and batches.

        :raises ValueError: naming ``model`` and the baselines, for another name
        """
        if model not in BASELINE_MODELS:
            raise ValueError(f"{model!r} is not a supervised baseline; choose from {', '.join(BASELINE_MODELS)}")
        name, window = ("memory_tbptt", 0) if model == "memory_bptt" else (model, self.window)
        return cfg.update({"algo": name, "bptt_window": window, "epochs": self.epochs, "hidden": self.hidden,
                           "patience": self.patience, "segment_batch_size": self.batch_size,
                           "batch_movies": self.batch_movies}, where)


def benchmark_parser(name: str, doc: str, quick: str,
                     out_help: str = "where to write the CSV/markdown") -> argparse.ArgumentParser:
    """The command line every benchmark shares: ``python -m benchmarks.<name> [--quick] [--out DIR]
    [--no-progress]``, described by the first line of its module docstring ``doc``; ``quick`` says what
    ``--quick`` does. Each benchmark adds its own options."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"), help=out_help)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def parse_benchmark_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The parsed arguments; from here on torch runs on one thread (:func:`set_threads`)."""
    args = parser.parse_args(argv)
    set_threads(1)
    return args


def report(table: pd.DataFrame, args: argparse.Namespace, name: str, title: str, details: str,
           runs: Optional[pd.DataFrame] = None) -> int:
    """Write and print a benchmark's table under the header ``<title> (<quick|full>: <details>). Measured
    <stamp>.`` (``<out>/<name>.csv``, ``<out>/<name>.md``), and its per-run rows as ``<out>/<name>_runs.csv``
    where given; return the exit status 0."""
    out = Path(args.out)
    if runs is not None:
        out.mkdir(parents=True, exist_ok=True)
        runs.to_csv(out / f"{name}_runs.csv", index=False)
    header = f"{title} ({'quick' if args.quick else 'full'}: {details}). Measured {stamp()}."
    print(write_table(table, out, name, header))
    return 0


def mean_spread(values: Iterable[float], digits: int = 3) -> str:
    """``"mean ± std"`` of the finite values (sample std; just the mean for one value; ``"—"`` for none)."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _cell(x, floatfmt: str) -> str:
    if isinstance(x, (float, np.floating)):
        return "—" if not np.isfinite(x) else format(float(x), floatfmt)
    return "—" if x is None else str(x)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g", columns: Optional[Sequence[str]] = None) -> str:
    """A GitHub markdown table of ``df`` (no external dependency)."""
    cols = list(columns or df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df[cols].iterrows():
        lines.append("| " + " | ".join(_cell(row[c], floatfmt) for c in cols) + " |")
    return "\n".join(lines)


def write_table(df: pd.DataFrame, out: Path, name: str, header: str, floatfmt: str = ".4g") -> str:
    """Write ``<out>/<name>.csv`` and ``<out>/<name>.md`` (header + table); return the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    text = f"{header}\n\n{markdown_table(df, floatfmt)}\n"
    (out / f"{name}.md").write_text(text)
    return text


def current_rss_mib() -> float:
    """Resident set size of this process now, in MiB (Linux ``/proc``; else the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


class SavedTensorMeter:
    """Bytes of distinct tensor storages autograd saves for backward inside ``with meter:``.

    This is the training graph's activation memory (what full BPTT keeps for every step), measured exactly
    and independently of the allocator; parameters saved by reference are counted once. Storages are kept
    alive until the ``with`` block ends (so a freed address reused by a later graph is not mistaken for an
    already counted one): measure peak RSS and time outside the block.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self._seen: set = set()
        self._keep: list = []

    def _pack(self, t):
        try:
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in self._seen:
                self._seen.add(key)
                self._keep.append(storage)
                self.bytes += storage.nbytes()
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
            pass
        return t

    @staticmethod
    def _unpack(t):
        return t

    def __enter__(self) -> "SavedTensorMeter":
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
        self._keep.clear()

    @property
    def mib(self) -> float:
        return self.bytes / (1024.0 * 1024.0)
