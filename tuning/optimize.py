"""Optuna studies over the RMN's tau, gamma (the paper's lambda) and memory size N.

    python -m tuning.optimize --study NAME [--storage URL] [--n-trials 20] [--timeout S] [--algo rmn]
                              [--dataset synthetic|PATH] [--timesteps N] [--seed S] [--out DIR] ...

Each trial trains the RMN with :func:`agents.runs.train` into ``<out>/trials/<number>/`` and reports the
validation metric every ``eval_every`` steps to the pruner (median pruning by default). The objective is the
validation ``gap_closed`` (maximised) on datasets with an oracle (synthetic), else the validation ``mse``
(minimised). gamma is sampled through its horizon ``1/(1 - gamma)``, log-uniform in ``--horizon-range`` (default:
2 up to the train split's movie length), or uniformly in ``--gamma-range`` (see :class:`SearchSpace`). The study
lives in ``<out>/study.db`` (SQLite) unless ``--storage`` names a journal file (``journal:PATH``) or a database
URL; any number of workers can run the same command on the same study. After the trials, ``<out>`` holds
``best_params.json`` (a ``--config`` for ``python -m agents.train_ddpg``), ``best_trial.json``, ``summary.md``,
``trials.csv``, the parameter importances and PNG figures (see :func:`write_study_outputs`). Every flag of
``python -m agents.train_ddpg`` applies to the trials except ``--tau``, ``--gamma`` and ``--n-slots`` (the tuned
fields: give their ranges) and ``--resume``; the study directory is ``--out`` (default ``runs/tuning/<study>``).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence, Tuple, Union

import optuna
import tyro
from optuna.trial import TrialState

from affect_env.data.synthetic import SyntheticConfig
from affect_env.files import atomic_write_text
from agents.cli import Command, explicit_fields, run_cli
from agents.config import TrainConfig
from agents.inputs import load_split, split_options
from agents.metrics import has_gap
from agents.runs import train
from agents.runs.shared import shared_encoder, shared_writer
from tuning.commands import parse_tool_command
from tuning.importances import EvaluatorName, write_importances
from tuning.plots import PARAM_LABELS, plot_study
from tuning.storage import dashboard_command, display_url, fail_running_trials, open_study, resolve_storage_url

#: metric -> optimisation direction
DIRECTIONS = {"gap_closed": "maximize", "mse": "minimize"}
DEFAULT_LR_RANGE = (1e-5, 3e-3)
DEFAULT_MEMORY_DIMS = (8, 16, 32, 64)
DEFAULT_BATCH_SIZES = (32, 64, 128, 256)


#: the horizon range of a study on data whose movie length is unknown beforehand (a non-synthetic dataset): from
#: 2 segments to 1,000 (a feature film of 10-s segments is 500-1,000 segments long)
DEFAULT_HORIZON_RANGE = (2.0, 1000.0)
#: the shortest horizon of the default range: gamma = 0.5, an agent that looks one step ahead
MIN_DEFAULT_HORIZON = 2.0


def horizon_to_gamma(horizon: float) -> float:
    """The discount whose effective horizon ``1 / (1 - gamma)`` is ``horizon`` steps: ``1 - 1 / horizon``."""
    return 1.0 - 1.0 / float(horizon)


def gamma_to_horizon(gamma: float) -> float:
    """The effective horizon ``1 / (1 - gamma)`` of a discount, in steps (``inf`` for ``gamma = 1``)."""
    return math.inf if gamma >= 1 else 1.0 / (1.0 - float(gamma))


def train_movie_length(cfg: TrainConfig) -> Optional[int]:
    """The longest movie of ``cfg``'s train split in segments, from its reader options (the ``--env`` preset, then
    ``dataset_options`` and ``train_dataset_options``), without reading the data; ``None`` for a dataset other than
    the synthetic one, whose movie lengths are not in its options."""
    if cfg.data.dataset != "synthetic":
        return None
    length = split_options(cfg, "train").get("length", SyntheticConfig.length)
    return int(max(length) if isinstance(length, (list, tuple)) else length)


def default_horizon_range(cfg: TrainConfig) -> Tuple[float, float]:
    """The default horizon range of a study on ``cfg``'s data: 2 segments up to the train split's movie length
    (:func:`train_movie_length`), or :data:`DEFAULT_HORIZON_RANGE` where that length is unknown."""
    length = train_movie_length(cfg)
    if length is None:
        return DEFAULT_HORIZON_RANGE
    return MIN_DEFAULT_HORIZON, float(max(length, MIN_DEFAULT_HORIZON))


@dataclass
class SearchSpace:
    """The hyperparameters a study samples; their names are :class:`~agents.config.TrainConfig` fields, except
    ``horizon``.

    The discount gamma (the paper's lambda) is sampled one of two ways:

    * ``horizon`` (the default): its effective horizon ``H = 1 / (1 - gamma)`` (in steps, i.e. segments) is
      log-uniform in ``(low, high)``, and the trial's ``gamma`` is ``1 - 1 / H``. The trial holds both: ``horizon``
      as the sampled parameter (what the sampler models and what the importances rank) and ``gamma`` as a fixed
      parameter of that trial (a one-value distribution, so that ``best_params`` holds the field a training run
      takes). A uniform gamma spends nearly every trial on short horizons: in ``[0.5, 0.999]``, four draws in five
      have ``H < 10``, one in ten ``H >= 20`` (the short preset's dependencies) and fewer than one in a hundred
      ``H >= 200`` (the default data's); log-uniform in ``[2, 400]``, half the draws have ``H >= 28``.
    * ``gamma``: gamma uniform in ``(low, high)`` (and no ``horizon`` parameter).

    :param tau: ``(low, high)`` of the target-network update rate, sampled on a log scale
    :param horizon: ``(low, high)`` of the horizon ``1 / (1 - gamma)``, log scale, ``low >= 1``; with neither
        ``horizon`` nor ``gamma``: :data:`DEFAULT_HORIZON_RANGE` (a study's default is the data's, see
        :func:`default_horizon_range`)
    :param gamma: ``(low, high)`` of the discount, sampled uniformly; excludes ``horizon``
    :param n_slots: ``(low, high)`` of the number of memory slots N (integers, inclusive)
    :param learning_rate: ``(low, high)`` sampled on a log scale, or ``None`` to keep the base config's
    :param memory_dim: slot sizes to choose from, or ``None`` to keep the base config's
    :param batch_size: batch sizes to choose from, or ``None`` to keep the base config's
    :raises ValueError: naming the flag of a bad range, or ``--horizon-range`` and ``--gamma-range`` together
    """

    tau: Tuple[float, float] = (1e-3, 0.1)
    horizon: Optional[Tuple[float, float]] = None
    gamma: Optional[Tuple[float, float]] = None
    n_slots: Tuple[int, int] = (1, 32)
    learning_rate: Optional[Tuple[float, float]] = None
    memory_dim: Optional[Tuple[int, ...]] = None
    batch_size: Optional[Tuple[int, ...]] = None

    def __post_init__(self) -> None:
        if self.horizon is not None and self.gamma is not None:
            raise ValueError(f"--horizon-range {' '.join(map(str, self.horizon))} and --gamma-range "
                             f"{' '.join(map(str, self.gamma))}: give one of them (the horizon 1/(1 - gamma) on a "
                             "log scale, or gamma uniformly)")
        if self.horizon is None and self.gamma is None:
            self.horizon = DEFAULT_HORIZON_RANGE
        for name, flag in (("tau", "tau-range"), ("horizon", "horizon-range"), ("gamma", "gamma-range"),
                           ("n_slots", "n-range"), ("learning_rate", "tune-learning-rate")):
            rng = getattr(self, name)
            if rng is None:
                continue
            if len(rng) != 2 or not rng[0] <= rng[1]:
                raise ValueError(f"--{flag} {' '.join(map(str, rng))}: give LOW HIGH with LOW <= HIGH")
            setattr(self, name, tuple(rng))
        if not (0 < self.tau[0] and self.tau[1] <= 1):
            raise ValueError(f"--tau-range {self.tau[0]} {self.tau[1]}: tau must lie in (0, 1]")
        if self.horizon is not None and not (1 <= self.horizon[0] and math.isfinite(self.horizon[1])):
            raise ValueError(f"--horizon-range {self.horizon[0]} {self.horizon[1]}: the horizon 1/(1 - gamma) "
                             "must lie in [1, inf) steps (1: gamma = 0)")
        if self.gamma is not None and not (0 <= self.gamma[0] and self.gamma[1] <= 1):
            raise ValueError(f"--gamma-range {self.gamma[0]} {self.gamma[1]}: gamma must lie in [0, 1]")
        if self.n_slots[0] < 1:
            raise ValueError(f"--n-range {self.n_slots[0]} {self.n_slots[1]}: N must be >= 1")
        if self.learning_rate is not None and self.learning_rate[0] <= 0:
            raise ValueError(f"--tune-learning-rate {self.learning_rate[0]} {self.learning_rate[1]}: must be > 0")
        for name in ("memory_dim", "batch_size"):
            values = getattr(self, name)
            if values is not None and (not values or any(int(v) < 1 for v in values)):
                raise ValueError(f"--tune-{name.replace('_', '-')} {' '.join(map(str, values))}: "
                                 "give positive integers")

    def suggest(self, trial: optuna.Trial) -> dict:
        """Sample one point: ``{TrainConfig field: value}`` (with a horizon range, the trial also holds the
        sampled ``horizon``, which is no config field)."""
        params = {"tau": trial.suggest_float("tau", self.tau[0], self.tau[1], log=True)}
        if self.horizon is not None:
            gamma = horizon_to_gamma(trial.suggest_float("horizon", self.horizon[0], self.horizon[1], log=True))
            params["gamma"] = trial.suggest_float("gamma", gamma, gamma)  # fixed: recorded, never sampled
        else:
            params["gamma"] = trial.suggest_float("gamma", self.gamma[0], self.gamma[1])
        params["n_slots"] = trial.suggest_int("n_slots", int(self.n_slots[0]), int(self.n_slots[1]))
        if self.learning_rate is not None:
            params["learning_rate"] = trial.suggest_float("learning_rate", *self.learning_rate, log=True)
        if self.memory_dim is not None:
            params["memory_dim"] = trial.suggest_categorical("memory_dim", [int(v) for v in self.memory_dim])
        if self.batch_size is not None:
            params["batch_size"] = trial.suggest_categorical("batch_size", [int(v) for v in self.batch_size])
        return params

    def to_dict(self) -> dict:
        return _jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


#: trial parameters that are no config field: ``horizon`` (its ``gamma`` is the trial's other parameter)
DERIVED_PARAMS = ("horizon",)


def config_params(params: dict) -> dict:
    """A trial's parameters as config fields: ``horizon`` dropped (its ``gamma`` is there, or is computed)."""
    fields = {k: v for k, v in params.items() if k not in DERIVED_PARAMS}
    if "horizon" in params and "gamma" not in fields:
        fields["gamma"] = horizon_to_gamma(params["horizon"])
    return fields


def _jsonable(value):
    """``value`` as it reads back from JSON (tuples become lists), so stored and new settings compare equal."""
    return json.loads(json.dumps(value))


def resolve_objective(cfg: TrainConfig, objective: str = "auto") -> Tuple[str, str]:
    """``(metric, direction)`` of a study on ``cfg``'s dataset.

    :param objective: ``"auto"`` (``gap_closed`` when the validation split has an oracle and memory can beat the
        memory-less prediction there, else ``mse``),
        ``"gap_closed"`` or ``"mse"``
    :return: e.g. ``("gap_closed", "maximize")``
    """
    if objective not in ("auto", *DIRECTIONS):
        raise ValueError(f"--objective {objective}: choose auto, gap_closed or mse")
    if objective == "auto" or objective == "gap_closed":
        defined = has_gap(load_split(cfg, "val"))
        if objective == "gap_closed" and not defined:
            raise ValueError(f"--objective gap_closed: dataset {cfg.data.dataset} has no oracle, or no gap between its "
                             "oracle and the memory-less prediction on the validation split; use mse")
        objective = "gap_closed" if defined else "mse"
    return objective, DIRECTIONS[objective]


class RMNObjective:
    """The objective of a study: train the RMN with the trial's parameters, return a validation metric.

    :param base: the settings shared by every trial (the sampled fields are replaced)
    :param space: what to sample
    :param out: the study directory; trial ``k`` trains into ``out/trials/k``
    :param metric: ``"gap_closed"`` or ``"mse"`` (reported every ``base.run.eval_every`` steps for pruning)
    :param train_fn: the training function (default :func:`agents.runs.train`)

    ``failed_elsewhere`` lists the trials of this worker that another worker marked ``FAIL`` while they ran
    (their heartbeat went stale: this worker was paused, overloaded or cut off from the database for longer than
    the grace period); Optuna then refuses their result, and :func:`run_study` says why.
    """

    def __init__(self, base: TrainConfig, space: SearchSpace, out: Union[str, Path], metric: str,
                 train_fn: Optional[Callable] = None) -> None:
        self.base, self.space, self.out, self.metric = base, space, Path(out), metric
        self.train_fn = train_fn or train
        self.failed_elsewhere: list = []

    def trial_config(self, trial: optuna.Trial) -> TrainConfig:
        """The trial's config: base, sampled parameters, ``out/trials/<number>``, no periodic checkpoints
        (a killed trial is failed and replaced, never resumed), and the segment encoder and writer pretraining of
        its setting, made once in ``out/shared/`` for every trial that has it (:mod:`agents.runs.shared`)."""
        params = self.space.suggest(trial)
        run_dir = self.out / "trials" / str(trial.number)
        cfg = self.base.update({**params, "out": str(run_dir), "checkpoint_every": 0}, "trial")
        return shared_writer(shared_encoder(cfg, self.out / "shared"), self.out / "shared")

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = self.trial_config(trial)
        run_dir = Path(cfg.run.out)
        if run_dir.exists():  # left by a study that was deleted; trial numbers are never reused in one study
            shutil.rmtree(run_dir)
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            summary = self.train_fn(cfg, progress=False, on_eval=self.pruning_callback(trial))
        except optuna.exceptions.UpdateFinishedTrialError:  # a report to a trial that another worker failed
            self.check_still_running(trial)
            raise
        self.check_still_running(trial)
        for key in ("test_mse", "test_gap_closed", "val_mse", "val_gap_closed", "train_wall_s", "updates_per_s"):
            if key in summary:
                trial.set_user_attr(key, summary[key])
        value = float(summary[f"val_{self.metric}"])
        if not math.isfinite(value):
            raise FloatingPointError(f"trial {trial.number}: validation {self.metric} is {value} (diverged)")
        return value

    def check_still_running(self, trial: optuna.Trial) -> None:
        """Raise when another worker has finished ``trial`` meanwhile (failed it for a stale heartbeat), and
        remember it in ``failed_elsewhere``: its result can no longer be recorded."""
        state = trial.study._storage.get_trial(trial._trial_id).state
        if state.is_finished():
            self.failed_elsewhere.append(trial.number)
            raise RuntimeError(f"trial {trial.number} was marked {state.name} by another worker while this one ran "
                               "it (a stale heartbeat, or --fail-running); its result is discarded")

    def pruning_callback(self, trial: optuna.Trial) -> Callable[[dict], None]:
        """The ``on_eval`` hook of :func:`agents.runs.train`: report the validation metric at the row's
        ``timesteps`` and raise :class:`optuna.TrialPruned` when the pruner says so."""

        def on_eval(row: dict) -> None:
            step, value = int(row["timesteps"]), float(row[self.metric])
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}: validation {self.metric}={value:.4g}")

        return on_eval


def make_pruner(name: str = "median", startup_trials: int = 3, warmup_steps: int = 0) -> optuna.pruners.BasePruner:
    """``"median"`` (:class:`optuna.pruners.MedianPruner`) or ``"none"``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"--pruner {name}: choose median or none")


def run_study(study_name: str, base: TrainConfig, out: Union[str, Path], *, storage: Optional[str] = None,
              n_trials: Optional[int] = None, timeout: Optional[float] = None,
              space: Optional[SearchSpace] = None, objective: str = "auto",
              pruner: Optional[optuna.pruners.BasePruner] = None,
              sampler: Optional[optuna.samplers.BaseSampler] = None, max_total_trials: Optional[int] = None,
              heartbeat_interval: Optional[int] = 60, grace_period: Optional[int] = None,
              fail_running: bool = False, catch: tuple = (Exception,), progress: bool = True,
              write_outputs: bool = True, train_fn: Optional[Callable] = None) -> optuna.Study:
    """Create or join the study ``study_name`` and run ``n_trials`` more trials (or until ``timeout``).

    Every worker calling this with the same arguments adds its trials to the same study. A trial that raises
    one of ``catch`` is recorded as ``FAIL`` and the study goes on; ``KeyboardInterrupt`` fails the running
    trial and stops. Running it again adds trials to what is there.

    :param base: the settings shared by all trials (its ``out`` is ignored; the sampled fields are replaced)
    :param out: the study directory (trials, outputs, and the default SQLite storage ``study.db``)
    :param storage: ``None`` (``<out>/study.db``), ``journal:PATH`` or a database URL
    :param n_trials: trials this call adds (``None`` with a ``timeout``: until the timeout)
    :param space: what to sample; default :class:`SearchSpace` with the data's :func:`default_horizon_range`
    :param objective: ``"auto"``, ``"gap_closed"`` or ``"mse"`` (see :func:`resolve_objective`)
    :param pruner: default :func:`make_pruner` ``("median")``
    :param sampler: default :class:`optuna.samplers.TPESampler` with 5 random startup trials
    :param max_total_trials: stop once the study holds this many finished trials (over all workers)
    :param heartbeat_interval: RDB storages record a heartbeat this often (seconds); trials without one for
        ``grace_period`` seconds (default twice the interval) are failed when a worker asks for a trial
    :param fail_running: first mark every ``RUNNING`` trial ``FAIL`` (only when no other worker is alive)
    :param write_outputs: write :func:`write_study_outputs` at the end
    :param train_fn: the training function (default :func:`agents.runs.train`)
    :return: the study
    """
    out = Path(out)
    space = space or SearchSpace(horizon=default_horizon_range(base))
    if base.algorithm.algo != "rmn":
        raise ValueError(f"--algo {base.algorithm.algo}: tuning supports the rmn agent only")
    if n_trials is not None and n_trials < 0:
        raise ValueError(f"--n-trials {n_trials}: must be >= 0")
    metric, direction = resolve_objective(base, objective)
    # flat field names: a study created before the config was nested compares equal, and a difference names the field
    base_attrs = {k: v for k, v in base.flat().items() if k != "out"}
    url = resolve_storage_url(storage, out)
    out.mkdir(parents=True, exist_ok=True)
    study = open_study(
        study_name, url, out, direction=direction,
        sampler=sampler or optuna.samplers.TPESampler(n_startup_trials=5),
        pruner=pruner or make_pruner(), heartbeat_interval=heartbeat_interval, grace_period=grace_period,
        user_attrs={"objective": metric, "algo": base.algorithm.algo, "base_config": base_attrs,
                    "search_space": space.to_dict()})
    if fail_running:
        failed = fail_running_trials(study)
        if failed:
            print(f"marked running trial(s) {failed} as FAIL", file=sys.stderr)
    if n_trials or timeout:
        callbacks = []
        if max_total_trials is not None:
            callbacks.append(optuna.study.MaxTrialsCallback(
                max_total_trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))
        rmn_objective = RMNObjective(base, space, out, metric, train_fn)
        try:
            study.optimize(rmn_objective, n_trials=n_trials, timeout=timeout, catch=catch, callbacks=callbacks,
                           gc_after_trial=True, show_progress_bar=progress)
        except ValueError:  # Optuna's "Cannot tell a FAIL trial": the worker stops
            if not rmn_objective.failed_elsewhere:
                raise
            raise ValueError(f"trial {rmn_objective.failed_elsewhere[-1]} was marked FAIL by another worker while "
                             "this one ran it: this worker sent no heartbeat for more than --grace-period seconds "
                             "(paused, overloaded or cut off from the database), or another worker ran with "
                             "--fail-running; its result is discarded. Run the command again to add trials, with a "
                             "longer --grace-period if it recurs") from None
    if write_outputs:
        write_study_outputs(study, out)
    return study


#: a study's budget: how long each trial trains, not what the best settings are; best_params.json leaves them to
#: the recipe (a study of 3,000-step trials must not make "train the best" a 3,000-step run)
BUDGET_FIELDS = ("timesteps", "eval_every", "checkpoint_every", "encoder_epochs", "pretrain_writer_epochs", "epochs")


def best_config(study: optuna.Study, out: Union[str, Path]) -> TrainConfig:
    """The study's settings with the best trial's parameters, training into ``<out>/best``: its recipe, data and
    fixed settings, the tuned parameters, and the recipe's own budget (:data:`BUDGET_FIELDS`), not the trials'."""
    base = {k: v for k, v in study.user_attrs.get("base_config", {}).items() if k not in BUDGET_FIELDS}
    return TrainConfig.from_dict({**base, **config_params(study.best_params), "out": str(Path(out) / "best")},
                                 f"study {study.study_name}")


def state_counts(study: optuna.Study) -> dict:
    """``{state name: number of trials}`` of every state present."""
    counts: dict = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def write_study_outputs(study: optuna.Study, out: Union[str, Path],
                        importance_evaluator: EvaluatorName = "auto") -> dict:
    """Write the study's results into ``out`` (each file atomically, so finishing workers may overlap):

    * ``trials.csv``: :meth:`optuna.Study.trials_dataframe` (one row per trial, every state; a horizon study has
      ``params_horizon`` and ``params_gamma``)
    * ``best_params.json``: a full :class:`~agents.config.TrainConfig`, nested as a run's ``config.json`` (the
      study's settings + best parameters, the recipe's budget, ``out`` = ``<out>/best``), for ``python -m
      agents.train_ddpg --config``
    * ``best_trial.json``: the best trial's number, value, objective, direction, parameters and test
      metrics, the trial counts per state and the parameter importances
    * ``param_importances.csv`` and ``.png``: :func:`tuning.importances.write_importances` (not written, and
      the note says why, below :data:`~tuning.importances.MIN_TRIALS_FOR_IMPORTANCES` completed trials)
    * ``summary.md``: :func:`markdown_best`, the result to publish (best tau, gamma and its horizon, N, the
      importances)
    * figures (see :func:`tuning.plots.plot_study`)

    :param importance_evaluator: ``"auto"`` (fANOVA with scikit-learn, else PED-ANOVA), ``"fanova"`` or
        ``"ped-anova"``
    :return: ``{"best": best_trial.json's content or None, "figures": {name: path or reason skipped}}``
    """
    out = Path(out)
    atomic_write_text(out / "trials.csv", study.trials_dataframe().to_csv(index=False))
    metric = study.user_attrs.get("objective", "value")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {"best": None, "figures": {"all": "skipped: no completed trial yet"}}
    best = study.best_trial
    best_config(study, out).save(out / "best_params.json")
    importances, importance_figure = write_importances(study, out, metric, importance_evaluator)
    info = {"study": study.study_name, "objective": f"validation {metric}",
            "direction": study.direction.name.lower(), "number": best.number, "value": best.value,
            "params": best.params, "user_attrs": best.user_attrs, "trials": state_counts(study),
            "importances": importances.to_dict()}
    atomic_write_text(out / "best_trial.json", json.dumps(info, indent=2) + "\n")
    atomic_write_text(out / "summary.md", markdown_best(info) + "\n")
    return {"best": info, "figures": {**plot_study(study, out, metric), **importance_figure}}


def _param_row(name: str, value) -> str:
    """One row of :func:`markdown_best`'s parameter table (gamma with its horizon)."""
    if name == "gamma":
        return f"| gamma (lambda) | {value:.6g} (horizon 1/(1 - gamma) = {gamma_to_horizon(value):.4g} steps) |"
    label = {"tau": "tau", "n_slots": "N (n_slots)"}.get(name, name)
    return f"| {label} | {value:.4g} |" if isinstance(value, float) else f"| {label} | {value} |"


def markdown_best(info: dict) -> str:
    """A markdown summary of ``best_trial.json``'s content: the best trial's value, its parameters (tau, gamma with
    its horizon, N, ...), its test metrics, the trial counts and the parameter importances (or why there are
    none)."""
    lines = [f"best trial #{info['number']} of study `{info['study']}`: {info['objective']} = {info['value']:.4f} "
             f"({info['direction']})", "", "| parameter | value |", "|---|---|"]
    order = ["tau", "gamma", "n_slots"]
    names = [k for k in order if k in info["params"]] + [k for k in info["params"] if k not in order + ["horizon"]]
    lines += [_param_row(k, info["params"][k]) for k in names]
    extra = {k: v for k, v in info["user_attrs"].items() if k.startswith("test_")}
    lines += [f"| {k} | {v:.4f} |" for k, v in extra.items()]
    lines += ["", "trials: " + ", ".join(f"{n} {s}" for s, n in sorted(info["trials"].items()))]
    imp = info.get("importances")
    if imp:
        lines += ["", f"parameter importances ({imp['evaluator']}, {imp['n_trials']} completed trials"
                  + (f"; {imp['note']}" if imp["note"] else "") + ")" + (":" if imp["values"] else "")]
        if imp["values"]:
            lines += ["", "| parameter | importance |", "|---|---|"]
            lines += [f"| {PARAM_LABELS.get(k, k)} | {v:.3f} |" for k, v in imp["values"].items()]
    return "\n".join(lines)


@dataclass
class StudyCommand(Command):
    """A study's options beside the training flags (``--config``, ``--timesteps``, ``--out``: the study directory)."""

    study: str = tyro.MISSING
    """study name (workers with the same name share the study)"""
    storage: Optional[str] = None
    """journal:PATH or a database URL; None: sqlite:///<out>/study.db"""
    n_trials: Optional[int] = None
    """trials this worker adds; None: 20, or until --timeout"""
    timeout: Optional[float] = None
    """stop starting trials after this many seconds"""
    max_total_trials: Optional[int] = None
    """stop once the study has this many trials"""
    objective: Literal["auto", "gap_closed", "mse"] = "auto"
    """validation metric: auto = gap_closed (maximised) where the dataset has an oracle, else mse (minimised)"""
    tau_range: Tuple[float, float] = SearchSpace.tau
    """tau range LO HI, log scale"""
    horizon_range: Optional[Tuple[float, float]] = None
    """range LO HI of gamma's horizon 1/(1 - gamma) in steps, log scale (gamma = 1 - 1/H); None (the default, unless
    --gamma-range): 2 up to the train split's movie length (1000 for a non-synthetic dataset)"""
    gamma_range: Optional[Tuple[float, float]] = None
    """gamma (lambda) range LO HI, uniform, instead of --horizon-range (e.g. 0.5 0.999)"""
    n_range: Tuple[int, int] = SearchSpace.n_slots
    """memory slots N range LO HI, integers"""
    tune_learning_rate: Optional[Tuple[float, ...]] = None
    """also tune the learning rate, log scale: LO HI, or no value for 1e-05 0.003"""
    tune_memory_dim: Optional[Tuple[int, ...]] = None
    """also tune the slot size among these values (no value: 8 16 32 64)"""
    tune_batch_size: Optional[Tuple[int, ...]] = None
    """also tune the batch size among these values (no value: 32 64 128 256)"""
    pruner: Literal["median", "none"] = "median"
    """pruner of unpromising trials"""
    pruner_startup_trials: int = 3
    """median pruner: trials before pruning"""
    pruner_warmup_steps: int = 0
    """median pruner: steps before pruning"""
    sampler_seed: Optional[int] = None
    """TPE sampler seed (give each worker its own)"""
    startup_trials: int = 5
    """random trials before TPE"""
    heartbeat_interval: int = 60
    """seconds between heartbeats of running trials (database storages; 0 disables)"""
    grace_period: Optional[int] = None
    """seconds without heartbeat before a running trial is failed; None: 2 x --heartbeat-interval"""
    fail_running: bool = False
    """first mark all RUNNING trials FAIL (only when no other worker is alive)"""
    create_only: bool = False
    """create the storage and study, then exit"""


#: the tuned fields, which cannot also be fixed by a flag, and the flag of their range
TUNED_FLAGS = {"tau": "--tau-range", "gamma": "--horizon-range (of 1/(1 - gamma)) or --gamma-range",
               "n_slots": "--n-range"}


def config_and_space(argv: Optional[Sequence[str]] = None) -> Tuple[StudyCommand, TrainConfig, SearchSpace]:
    """The parsed command, the base config of the trials and the search space (tuned fields cannot also be fixed).

    ``eval_every`` (the interval of the pruner's reports) is the flag's or the ``--config`` file's, else
    ``timesteps // 5``. gamma is sampled through its horizon, in ``--horizon-range`` or else
    :func:`default_horizon_range` of the data, unless ``--gamma-range`` is given (not both).
    """
    args, flags = parse_tool_command(
        StudyCommand, argv, "python -m tuning.optimize", __doc__.split("\n")[0],
        resume_hint="a study resumes by running the same command again",
        set_by_tool={name: f"tuned by the study; set its range with {flag} LO HI (equal bounds fix it)"
                     for name, flag in TUNED_FLAGS.items()})
    if "memory_dim" in flags and args.tune_memory_dim is not None:
        raise ValueError("--memory-dim and --tune-memory-dim: give one of them")
    lr = args.tune_learning_rate
    if lr is not None and len(lr) not in (0, 2):
        raise ValueError(f"--tune-learning-rate {' '.join(map(str, lr))}: give no value or LO HI")
    cfg = args.train
    horizon = args.horizon_range
    if horizon is None and args.gamma_range is None:
        horizon = default_horizon_range(cfg)
    space = SearchSpace(
        tau=tuple(args.tau_range), horizon=None if horizon is None else tuple(horizon),
        gamma=None if args.gamma_range is None else tuple(args.gamma_range), n_slots=tuple(args.n_range),
        learning_rate=None if lr is None else tuple(lr or DEFAULT_LR_RANGE),
        memory_dim=None if args.tune_memory_dim is None else tuple(args.tune_memory_dim or DEFAULT_MEMORY_DIMS),
        batch_size=None if args.tune_batch_size is None else tuple(args.tune_batch_size or DEFAULT_BATCH_SIZES))
    if "eval_every" in flags and cfg.run.eval_every < 1:
        raise ValueError(f"--eval-every {cfg.run.eval_every}: must be >= 1 (the pruner's reports)")
    if "eval_every" not in explicit_fields(argv, args):
        cfg = cfg.update({"eval_every": max(1, cfg.algorithm.timesteps // 5)})
    if "out" not in flags:  # a --config file's out (e.g. a best_params.json's <study>/best) is not the study's
        cfg = cfg.update({"out": str(Path("runs") / "tuning" / args.study)})
    return args, cfg, space


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, base, space = config_and_space(argv)
    out = Path(base.run.out)
    url = resolve_storage_url(args.storage, out)
    n_trials = args.n_trials if (args.n_trials is not None or args.timeout) else 20
    if args.n_trials is not None and args.n_trials < 0:
        raise ValueError(f"--n-trials {args.n_trials}: must be >= 0")
    if args.create_only:
        n_trials, timeout = 0, None
    else:
        timeout = args.timeout
    metric, direction = resolve_objective(base, args.objective)
    print(f"study {args.study!r} in {display_url(url)}: objective = validation {metric} ({direction}); "
          f"trials write into {out / 'trials'}", file=sys.stderr)
    try:
        study = run_study(
            args.study, base, out, storage=args.storage, n_trials=n_trials, timeout=timeout, space=space,
            objective=metric,
            pruner=make_pruner(args.pruner, args.pruner_startup_trials, args.pruner_warmup_steps),
            sampler=optuna.samplers.TPESampler(seed=args.sampler_seed, n_startup_trials=args.startup_trials),
            max_total_trials=args.max_total_trials, heartbeat_interval=args.heartbeat_interval or None,
            grace_period=args.grace_period, fail_running=args.fail_running, progress=args.progress,
            write_outputs=not args.create_only)
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept in the study; run the same command to add trials",
              file=sys.stderr)
        return 130
    if args.create_only:
        print(f"created study {args.study!r} in {display_url(url)}; start workers with the same command without "
              "--create-only")
        return 0
    counts = state_counts(study)
    print(f"trials: {counts}; outputs in {out}; dashboard: {dashboard_command(url)}")
    if counts.get("COMPLETE"):
        info = json.loads((out / "best_trial.json").read_text())
        print(markdown_best(info))
        print(f"train the best: python -m agents.train_ddpg --config {out / 'best_params.json'}")
        return 0
    print("error: no trial has completed yet (see the log above for failures)", file=sys.stderr)
    return 1 if n_trials else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
