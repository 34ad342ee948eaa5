"""Parameter importances of a study (:func:`optuna.importance.get_param_importances`), as a CSV and a figure.

The importances rank the parameters the sampler draws, over the completed trials (pruned and failed trials have
no final value): with a horizon range that is ``horizon`` (log scale), not ``gamma``, which is a fixed function
of it recorded per trial (:class:`tuning.optimize.SearchSpace`); with ``--gamma-range`` it is ``gamma``.

The evaluator is fANOVA (:class:`optuna.importance.FanovaImportanceEvaluator`, a random forest on the trials,
seeded so that the files do not change between two writes of the same trials) where scikit-learn is installed,
else PED-ANOVA (:class:`optuna.importance.PedAnovaImportanceEvaluator`, Optuna 5's default, no extra package).
fANOVA is preferred: PED-ANOVA compares the top 10% of the trials with the rest, one or two trials in a study of
a few dozen.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Union

import optuna
import pandas as pd
from optuna.search_space import intersection_search_space
from optuna.trial import TrialState

from affect_env.files import atomic_write_text
from tuning.plots import plot_param_importances

#: below this many completed trials no importances are computed (the first trials are random draws; a forest on
#: fewer points ranks noise)
MIN_TRIALS_FOR_IMPORTANCES = 5
#: below this many completed trials the importances are marked indicative only
RELIABLE_TRIALS_FOR_IMPORTANCES = 10
#: the evaluator choices: ``auto`` is fANOVA where scikit-learn is installed, else PED-ANOVA
EvaluatorName = Literal["auto", "fanova", "ped-anova"]


@dataclass
class Importances:
    """The importances of a study's parameters, or why there are none.

    :param values: ``{parameter: importance}`` (normalised to sum 1, most important first); empty when skipped
    :param evaluator: ``"fanova"`` or ``"ped-anova"``
    :param n_trials: the completed trials they come from
    :param note: why they were skipped, or the caveat of a small study; ``None`` otherwise
    """

    values: Dict[str, float] = field(default_factory=dict)
    evaluator: str = ""
    n_trials: int = 0
    note: Optional[str] = None

    @property
    def skipped(self) -> bool:
        return not self.values

    def to_dict(self) -> dict:
        return {"values": dict(self.values), "evaluator": self.evaluator, "n_trials": self.n_trials,
                "note": self.note}


def make_evaluator(name: EvaluatorName = "auto", seed: int = 0) -> Tuple[optuna.importance.BaseImportanceEvaluator,
                                                                         str]:
    """The importance evaluator ``name`` and its resolved name (``auto``: fANOVA with scikit-learn, else PED-ANOVA).

    :raises ValueError: for an unknown name, or ``fanova`` without scikit-learn
    """
    has_sklearn = importlib.util.find_spec("sklearn") is not None
    if name == "auto":
        name = "fanova" if has_sklearn else "ped-anova"
    if name == "fanova":
        if not has_sklearn:
            raise ValueError("importance evaluator fanova: needs scikit-learn (pip install scikit-learn); "
                             "or use ped-anova")
        return optuna.importance.FanovaImportanceEvaluator(seed=seed), name
    if name == "ped-anova":
        return optuna.importance.PedAnovaImportanceEvaluator(), name
    raise ValueError(f"importance evaluator {name}: choose auto, fanova or ped-anova")


def sampled_params(trials: List[optuna.trial.FrozenTrial]) -> List[str]:
    """The parameters the sampler drew in every one of ``trials`` with one distribution: fixed parameters (a
    horizon study's ``gamma``, a one-value range) and parameters of only some trials are left out."""
    space = intersection_search_space(trials)
    return sorted(name for name, dist in space.items() if not dist.single())


def param_importances(study: optuna.Study, evaluator: EvaluatorName = "auto", seed: int = 0) -> Importances:
    """The importances of the sampled parameters (:func:`sampled_params`) over the completed trials; skipped,
    with a note, below :data:`MIN_TRIALS_FOR_IMPORTANCES` completed trials or when nothing varies."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    evaluator_obj, name = make_evaluator(evaluator, seed)
    result = Importances(evaluator=name, n_trials=len(complete))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
        result.note = (f"skipped: {len(complete)} completed trial(s), importances need at least "
                       f"{MIN_TRIALS_FOR_IMPORTANCES}")
        return result
    params = [p for p in sampled_params(complete) if len({t.params[p] for t in complete}) > 1]
    if not params:
        result.note = "skipped: no sampled parameter varies across the completed trials"
        return result
    if len({t.value for t in complete}) < 2:
        result.note = "skipped: every completed trial has the same objective value"
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA's small-sample warnings: the note below says it
            values = optuna.importance.get_param_importances(study, evaluator=evaluator_obj, params=params)
    except (RuntimeError, ValueError) as err:
        result.note = f"skipped: {name} failed: {err}"
        return result
    result.values = {k: float(v) for k, v in values.items()}
    if len(complete) < RELIABLE_TRIALS_FOR_IMPORTANCES:
        result.note = (f"indicative only: from {len(complete)} completed trials, too few to rank the parameters "
                       f"reliably (>= {RELIABLE_TRIALS_FOR_IMPORTANCES})")
    return result


def write_importances(study: optuna.Study, out: Union[str, Path], metric: str,
                      evaluator: EvaluatorName = "auto") -> Tuple[Importances, dict]:
    """Write ``param_importances.csv`` (``parameter``, ``importance``, ``evaluator``, ``n_trials``) and
    ``param_importances.png`` into ``out``, or, when skipped, neither (stale ones are removed).

    :return: the importances and ``{"param_importances": path of the figure or the note why there is none}``
    """
    out = Path(out)
    result = param_importances(study, evaluator)
    csv, png = out / "param_importances.csv", out / "param_importances.png"
    if result.skipped:
        for stale in (csv, png):
            stale.unlink(missing_ok=True)
        return result, {"param_importances": result.note}
    table = pd.DataFrame({"parameter": list(result.values), "importance": list(result.values.values()),
                          "evaluator": result.evaluator, "n_trials": result.n_trials})
    atomic_write_text(csv, table.to_csv(index=False))
    title = f"{result.evaluator} over {result.n_trials} completed trials of study {study.study_name}"
    if result.note:
        title += f"\n{result.note}"
    figure = plot_param_importances(result.values, png, f"importance for validation {metric}", title)
    return result, {"param_importances": figure}


__all__ = ["Importances", "MIN_TRIALS_FOR_IMPORTANCES", "RELIABLE_TRIALS_FOR_IMPORTANCES", "make_evaluator",
           "param_importances", "sampled_params", "write_importances"]
