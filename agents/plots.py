"""Figures a person can open: predictions vs truth (paper Fig. 7), memory-write heatmap (Fig. 6), curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_predictions(path: Path, movies: Sequence, predictions: Sequence[np.ndarray], target_names: Sequence[str],
                     max_movies: int = 3) -> None:
    """Predicted vs true curves for the first ``max_movies`` movies, one row per movie, one column per target; the
    legend sits below the panels, off the curves."""
    n = min(max_movies, len(movies))
    fig, axes = plt.subplots(n, len(target_names), figsize=(6 * len(target_names), 2.4 * n + 0.6), squeeze=False)
    for r in range(n):
        movie, pred = movies[r], predictions[r]
        for c, name in enumerate(target_names):
            ax = axes[r, c]
            ax.plot(movie.times, movie.targets[:, c], color="0.3", lw=1, label="truth")
            if movie.oracle is not None:
                ax.plot(movie.times, movie.oracle[:, c], color="tab:green", lw=0.8, alpha=0.6, label="oracle")
            ax.plot(movie.times, pred[:, c], color="tab:red", lw=1, label="prediction")
            ax.set_title(f"{movie.movie_id} — {name}", fontsize=9)
            ax.set_xlabel("time (s)")
            ax.set_ylabel(name)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory_attention(path: Path, movie_id: str, attention: np.ndarray, times: np.ndarray) -> None:
    """Heatmap of the write attention over slots (rows) along the movie (columns)."""
    fig, ax = plt.subplots(figsize=(10, 2.8))
    im = ax.imshow(attention.T, aspect="auto", interpolation="nearest", cmap="viridis",
                   extent=(float(times[0]), float(times[-1]) + 1, attention.shape[1] - 0.5, -0.5))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("memory slot")
    ax.set_title(f"memory-write attention, {movie_id}")
    fig.colorbar(im, ax=ax, label="attention")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(path: Path, log: pd.DataFrame) -> None:
    """The run's curves from ``eval_log.csv``: the validation scores (``gap_closed`` where known, MSE; a second
    validation set's beside the first's), and, where logged, the training losses, the writer's gradient share by
    source (the RMN: critic, immediate reward, long-range loss) and the episode reward, all against environment
    steps (segments seen for the epoch-trained baselines)."""
    x_label = "segments seen" if "epoch" in log.columns else "environment steps"
    panels = [(c, f"validation {c}") for c in ("gap_closed", "mse") if c in log.columns]
    losses = [c for c in log.columns if c.startswith("train_") and c.endswith("_loss")]
    if losses:
        panels.append((losses, "training losses"))
    shares = [c for c in log.columns if c.startswith("train_writer_share_")]
    if shares:
        panels.append((shares, "writer's gradient share by source"))
    if "rollout_ep_rew_mean" in log.columns:
        panels.append(("rollout_ep_rew_mean", "episode reward (training)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, (cols, title) in zip(axes[0], panels):
        for col in ([cols] if isinstance(cols, str) else cols):
            shown = log[["timesteps", col]].dropna()
            label = col.removeprefix("train_writer_share_").removeprefix("train_")
            ax.plot(shown["timesteps"], shown[col], marker="o", ms=3, label=label)
            if f"long_{col}" in log.columns:
                ax.plot(log["timesteps"], log[f"long_{col}"], marker="s", ms=3, label="second validation set")
        if len(ax.get_lines()) > 1:
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x_label)
        ax.set_ylabel(title.split(" (")[0])
        ax.grid(alpha=0.3)
    if len(log) < 2:
        fig.suptitle("one validation so far: a longer run draws curves", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error_by_position(path: Path, table: pd.DataFrame) -> None:
    """Squared error along the movies (:func:`agents.metrics.error_by_position`), with the oracle's and the
    memory-less prediction's where the dataset knows them."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    middle = (table["start"] + table["end"]) / 2
    ax.plot(middle, table["mse"], marker="o", color="tab:red", label="model")
    for col, color, label in (("mse_no_memory", "0.5", "memory-less"), ("mse_oracle", "tab:green", "oracle")):
        if col in table.columns:
            ax.plot(middle, table[col], ls="--", color=color, label=label)
    ax.set_title("error along the movies", fontsize=9)
    ax.set_xlabel("segment (middle of each stretch)")
    ax.set_ylabel("mean squared error")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
