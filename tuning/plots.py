"""Figures of a tuning study and of the memory-size ablation (matplotlib, written as PNG)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from affect_env.files import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically (workers finishing together never leave a half-written figure)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _optuna_plot(fn, study: optuna.Study, path: Path, xlabel: Optional[str] = None,
                 ylabel: Optional[str] = None, title: Optional[str] = None, **kwargs) -> Path:
    """Draw one of :mod:`optuna.visualization.matplotlib`'s plots into ``path``; its global style change
    (``plt.style.use("ggplot")``) is undone afterwards, so later figures of the process keep theirs."""
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = fn(study, **kwargs)
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=9)
        return _save(ax.figure, path)


def plot_study(study: optuna.Study, out: Path, metric: str) -> dict:
    """Write the study's figures into ``out``; returns ``{name: path or reason it was skipped}``.

    * ``optimization_history.png``: objective per trial and the best so far
    * ``intermediate_values.png``: validation ``metric`` reported during each trial (pruning curves)
    * ``objective_vs_n_slots.png``: objective against the memory size N

    The importances figure is drawn by :mod:`tuning.importances` (with :func:`plot_param_importances`).
    """
    import optuna.visualization.matplotlib as ovm

    out = Path(out)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written: dict = {}
    if not complete:
        return {"all": "skipped: no completed trial yet"}

    written["optimization_history"] = _optuna_plot(ovm.plot_optimization_history, study,
                                                   out / "optimization_history.png",
                                                   target_name=f"validation {metric}")

    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        written["intermediate_values"] = _optuna_plot(ovm.plot_intermediate_values, study,
                                                      out / "intermediate_values.png",
                                                      xlabel="environment steps", ylabel=f"validation {metric}")

    written["objective_vs_n_slots"] = plot_objective_vs_n(study, out / "objective_vs_n_slots.png", metric)
    return written


#: axis labels of parameters whose name alone does not say what was sampled
PARAM_LABELS = {"horizon": "horizon 1/(1-gamma) (log)", "tau": "tau (log)", "n_slots": "N (memory slots)",
                "gamma": "gamma (lambda)", "learning_rate": "learning rate (log)"}


def plot_param_importances(importances: dict, path: Path, xlabel: str, title: str) -> Path:
    """Horizontal bars of ``{parameter: importance}``, the most important on top, each labelled with its value.

    :param importances: normalised importances, e.g. from :func:`optuna.importance.get_param_importances`
    :param xlabel: the x axis, e.g. ``"importance for validation gap_closed"``
    :param title: the title (the evaluator, the trials and any caveat)
    """
    names = list(importances)[::-1]
    values = [importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.45 * len(names)))
    bars = ax.barh([PARAM_LABELS.get(n, n) for n in names], values, color="C0")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max(values) * 1.15))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_objective_vs_n(study: optuna.Study, path: Path, metric: str) -> Path:
    """Objective of every completed trial (dots) against N, the per-N median (line), and the last reported
    value of pruned trials (crosses)."""
    rows = [(t.params["n_slots"], t.value, "complete") for t in
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "n_slots" in t.params]
    rows += [(t.params["n_slots"], t.intermediate_values[t.last_step], "pruned") for t in
             study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
             if "n_slots" in t.params and t.last_step is not None]
    df = pd.DataFrame(rows, columns=["n_slots", "value", "state"])
    fig, ax = plt.subplots(figsize=(6, 4))
    done = df[df.state == "complete"]
    ax.scatter(done.n_slots, done.value, color="C0", label="completed trial", zorder=3)
    pruned = df[df.state == "pruned"]
    if len(pruned):
        ax.scatter(pruned.n_slots, pruned.value, color="C3", marker="x", label="pruned (last report)", zorder=3)
    if len(done):
        med = done.groupby("n_slots").value.median()
        ax.plot(med.index, med.values, color="C0", alpha=0.5, label="median per N")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("memory slots N")
    ax.set_ylabel(f"validation {metric} ({study.direction.name.lower()})")
    ax.set_title(f"study {study.study_name}: objective vs memory size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ablation(table: pd.DataFrame, runs: pd.DataFrame, metrics: list, path: Path,
                  references: Optional[dict] = None) -> Path:
    """Performance against memory size: one panel per metric, the mean over seeds with ± one standard
    deviation (sample std, ddof=1; no bar with a single seed) as error bars, and each seed as a dot.

    :param table: per-N aggregates with ``<metric>_mean`` and ``<metric>_std`` columns
    :param runs: one row per (N, seed) run with the metric columns
    :param references: optional ``{metric: {label: value}}`` horizontal reference lines
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.errorbar(table["n_slots"], table[f"{metric}_mean"], yerr=table[f"{metric}_std"].fillna(0.0),
                    marker="o", capsize=4, label="mean ± std over seeds")
        ax.scatter(runs["n_slots"], runs[metric], color="k", s=10, alpha=0.5, label="one seed", zorder=3)
        for k, (label, value) in enumerate((references or {}).get(metric, {}).items()):
            ax.axhline(value, ls="--", color=f"C{k + 2}", lw=1, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(table["n_slots"])
        ax.set_xticklabels([str(n) for n in table["n_slots"]])
        ax.set_xlabel("memory slots N")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("RMN performance vs memory size (paper Fig. 5)")
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_study", "plot_objective_vs_n", "plot_param_importances", "plot_ablation", "PARAM_LABELS"]
