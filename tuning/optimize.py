"""Optuna studies over the RMN's tau, gamma (the paper's lambda) and memory size N.

    python -m tuning.optimize --study NAME [--storage URL] [--n-trials 20] [--timeout S] [--algo rmn]
                              [--dataset synthetic|PATH] [--timesteps N] [--seed S] [--out DIR] ...

Each trial trains the RMN with :func:`agents.training.train` into ``<out>/trials/<number>/`` and reports the
validation metric every ``eval_every`` steps to the pruner (median pruning by default). The objective is the
validation ``gap_closed`` (maximised) on datasets with an oracle (synthetic), else the validation ``mse``
(minimised). The study lives in ``<out>/study.db`` (SQLite) unless ``--storage`` names a journal file
(``journal:PATH``) or a database URL; any number of workers can run the same command on the same study.
After the trials, ``<out>`` holds ``best_params.json`` (a ``--config`` for ``python -m agents.train_ddpg``),
``best_trial.json``, ``trials.csv`` and PNG figures (see :func:`write_study_outputs`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import optuna
from optuna.trial import TrialState

from agents.config import TrainConfig
from agents.metrics import has_gap
from tuning.storage import dashboard_command, fail_running_trials, open_study, resolve_storage_url

#: metric -> optimisation direction
DIRECTIONS = {"gap_closed": "maximize", "mse": "minimize"}
DEFAULT_LR_RANGE = (1e-5, 3e-3)
DEFAULT_MEMORY_DIMS = (8, 16, 32, 64)
DEFAULT_BATCH_SIZES = (32, 64, 128, 256)


@dataclass
class SearchSpace:
    """The hyperparameters a study samples; their names are :class:`~agents.config.TrainConfig` fields.

    :param tau: ``(low, high)`` of the target-network update rate, sampled on a log scale
    :param gamma: ``(low, high)`` of the discount (the paper's lambda), sampled uniformly
    :param n_slots: ``(low, high)`` of the number of memory slots N (integers, inclusive)
    :param learning_rate: ``(low, high)`` sampled on a log scale, or ``None`` to keep the base config's
    :param memory_dim: slot sizes to choose from, or ``None`` to keep the base config's
    :param batch_size: batch sizes to choose from, or ``None`` to keep the base config's
    """

    tau: Tuple[float, float] = (1e-3, 0.1)
    gamma: Tuple[float, float] = (0.5, 0.999)
    n_slots: Tuple[int, int] = (1, 32)
    learning_rate: Optional[Tuple[float, float]] = None
    memory_dim: Optional[Tuple[int, ...]] = None
    batch_size: Optional[Tuple[int, ...]] = None

    def __post_init__(self) -> None:
        for name in ("tau", "gamma", "n_slots", "learning_rate"):
            rng = getattr(self, name)
            if rng is None:
                continue
            if len(rng) != 2 or not rng[0] <= rng[1]:
                raise ValueError(f"--{name.replace('_', '-')}-range {' '.join(map(str, rng))}: give LOW HIGH "
                                 "with LOW <= HIGH")
        if not (0 < self.tau[0] and self.tau[1] <= 1):
            raise ValueError(f"--tau-range {self.tau[0]} {self.tau[1]}: tau must lie in (0, 1]")
        if not (0 <= self.gamma[0] and self.gamma[1] <= 1):
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
        """Sample one point: ``{TrainConfig field: value}``."""
        params = {
            "tau": trial.suggest_float("tau", self.tau[0], self.tau[1], log=True),
            "gamma": trial.suggest_float("gamma", self.gamma[0], self.gamma[1]),
            "n_slots": trial.suggest_int("n_slots", int(self.n_slots[0]), int(self.n_slots[1])),
        }
        if self.learning_rate is not None:
            params["learning_rate"] = trial.suggest_float("learning_rate", *self.learning_rate, log=True)
        if self.memory_dim is not None:
            params["memory_dim"] = trial.suggest_categorical("memory_dim", [int(v) for v in self.memory_dim])
        if self.batch_size is not None:
            params["batch_size"] = trial.suggest_categorical("batch_size", [int(v) for v in self.batch_size])
        return params

    def to_dict(self) -> dict:
        return _jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


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
        from affect_env.data import load_dataset

        val = load_dataset(cfg.dataset, "val", targets=cfg.targets, segment_seconds=cfg.segment_seconds,
                           **cfg.dataset_options)
        defined = has_gap(val)
        if objective == "gap_closed" and not defined:
            raise ValueError(f"--objective gap_closed: dataset {cfg.dataset} has no oracle, or no gap between its "
                             "oracle and the memory-less prediction on the validation split; use mse")
        objective = "gap_closed" if defined else "mse"
    return objective, DIRECTIONS[objective]


class RMNObjective:
    """The objective of a study: train the RMN with the trial's parameters, return a validation metric.

    :param base: the settings shared by every trial (the sampled fields are replaced)
    :param space: what to sample
    :param out: the study directory; trial ``k`` trains into ``out/trials/k``
    :param metric: ``"gap_closed"`` or ``"mse"`` (reported every ``base.eval_every`` steps for pruning)
    :param train_fn: the training function (:func:`agents.training.train`)
    """

    def __init__(self, base: TrainConfig, space: SearchSpace, out: Union[str, Path], metric: str,
                 train_fn: Optional[Callable] = None) -> None:
        self.base, self.space, self.out, self.metric = base, space, Path(out), metric
        self.train_fn = train_fn

    def trial_config(self, trial: optuna.Trial) -> TrainConfig:
        """The trial's config: base, sampled parameters, ``out/trials/<number>``, no periodic checkpoints
        (a killed trial is failed and replaced, never resumed)."""
        params = self.space.suggest(trial)
        run_dir = self.out / "trials" / str(trial.number)
        return self.base.update({**params, "out": str(run_dir), "checkpoint_every": 0}, "trial")

    def __call__(self, trial: optuna.Trial) -> float:
        train_fn = self.train_fn
        if train_fn is None:
            from agents.training import train as train_fn
        cfg = self.trial_config(trial)
        run_dir = Path(cfg.out)
        if run_dir.exists():  # left by a study that was deleted; trial numbers are never reused in one study
            shutil.rmtree(run_dir)
        trial.set_user_attr("run_dir", str(run_dir))
        summary = train_fn(cfg, progress=False, on_eval=self.pruning_callback(trial))
        for key in ("test_mse", "test_gap_closed", "val_mse", "val_gap_closed", "train_wall_s", "updates_per_s"):
            if key in summary:
                trial.set_user_attr(key, summary[key])
        value = float(summary[f"val_{self.metric}"])
        if not math.isfinite(value):
            raise FloatingPointError(f"trial {trial.number}: validation {self.metric} is {value} (diverged)")
        return value

    def pruning_callback(self, trial: optuna.Trial) -> Callable[[dict], None]:
        """The ``on_eval`` hook of :func:`agents.training.train`: report the validation metric at the row's
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

    :param base: the settings shared by all trials (its ``out`` is ignored)
    :param out: the study directory (trials, outputs, and the default SQLite storage ``study.db``)
    :param storage: ``None`` (``<out>/study.db``), ``journal:PATH`` or a database URL
    :param n_trials: trials this call adds (``None`` with a ``timeout``: until the timeout)
    :param objective: ``"auto"``, ``"gap_closed"`` or ``"mse"`` (see :func:`resolve_objective`)
    :param pruner: default :func:`make_pruner` ``("median")``
    :param sampler: default :class:`optuna.samplers.TPESampler` with 5 random startup trials
    :param max_total_trials: stop once the study holds this many finished trials (over all workers)
    :param heartbeat_interval: RDB storages record a heartbeat this often (seconds); trials without one for
        ``grace_period`` seconds (default twice the interval) are failed when a worker asks for a trial
    :param fail_running: first mark every ``RUNNING`` trial ``FAIL`` (only when no other worker is alive)
    :param write_outputs: write :func:`write_study_outputs` at the end
    :param train_fn: the training function (default :func:`agents.training.train`)
    :return: the study
    """
    out = Path(out)
    space = space or SearchSpace()
    if base.algo != "rmn":
        raise ValueError(f"--algo {base.algo}: tuning supports the rmn agent only")
    if n_trials is not None and n_trials < 0:
        raise ValueError(f"--n-trials {n_trials}: must be >= 0")
    metric, direction = resolve_objective(base, objective)
    base_attrs = {k: v for k, v in base.to_dict().items() if k != "out"}
    url = resolve_storage_url(storage, out)
    out.mkdir(parents=True, exist_ok=True)
    study = open_study(
        study_name, url, out, direction=direction,
        sampler=sampler or optuna.samplers.TPESampler(n_startup_trials=5),
        pruner=pruner or make_pruner(), heartbeat_interval=heartbeat_interval, grace_period=grace_period,
        user_attrs={"objective": metric, "algo": base.algo, "base_config": _jsonable(base_attrs),
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
        study.optimize(RMNObjective(base, space, out, metric, train_fn), n_trials=n_trials, timeout=timeout,
                       catch=catch, callbacks=callbacks, gc_after_trial=True, show_progress_bar=progress)
    if write_outputs:
        write_study_outputs(study, out)
    return study


def best_config(study: optuna.Study, out: Union[str, Path]) -> TrainConfig:
    """The study's base config with the best trial's parameters, training into ``<out>/best``."""
    base = dict(study.user_attrs.get("base_config", {}))
    return TrainConfig.from_dict({**base, **study.best_params, "out": str(Path(out) / "best")},
                                 f"study {study.study_name}")


def state_counts(study: optuna.Study) -> dict:
    """``{state name: number of trials}`` of every state present."""
    counts: dict = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_study_outputs(study: optuna.Study, out: Union[str, Path]) -> dict:
    """Write the study's results into ``out`` (each file atomically, so finishing workers may overlap):

    * ``trials.csv``: :meth:`optuna.Study.trials_dataframe` (one row per trial, every state)
    * ``best_params.json``: a full :class:`~agents.config.TrainConfig` (base settings + best parameters,
      ``out`` = ``<out>/best``) for ``python -m agents.train_ddpg --config``
    * ``best_trial.json``: the best trial's number, value, objective, direction, parameters and test
      metrics, and the trial counts per state
    * figures (see :func:`tuning.plots.plot_study`)

    :return: ``{"best": best_trial.json's content or None, "figures": {name: path or reason skipped}}``
    """
    from tuning.plots import plot_study

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = study.trials_dataframe()
    tmp = out / f".trials.csv.{os.getpid()}.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out / "trials.csv")
    metric = study.user_attrs.get("objective", "value")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {"best": None, "figures": {"all": "skipped: no completed trial yet"}}
    best = study.best_trial
    cfg = best_config(study, out)
    _atomic_text(out / "best_params.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    info = {"study": study.study_name, "objective": f"validation {metric}",
            "direction": study.direction.name.lower(), "number": best.number, "value": best.value,
            "params": best.params, "user_attrs": best.user_attrs, "trials": state_counts(study)}
    _atomic_text(out / "best_trial.json", json.dumps(info, indent=2) + "\n")
    return {"best": info, "figures": plot_study(study, out, metric)}


def markdown_best(info: dict) -> str:
    """A short markdown summary of ``best_trial.json``'s content."""
    lines = [f"best trial #{info['number']} of study `{info['study']}`: {info['objective']} = {info['value']:.4f} "
             f"({info['direction']})", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in info["params"].items()]
    extra = {k: v for k, v in info["user_attrs"].items() if k.startswith("test_")}
    lines += [f"| {k} | {v:.4f} |" for k, v in extra.items()]
    lines += ["", "trials: " + ", ".join(f"{n} {s}" for s, n in sorted(info["trials"].items()))]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from agents.cli import add_training_arguments

    p = argparse.ArgumentParser(prog="python -m tuning.optimize", description=__doc__.split("\n")[0])
    p.add_argument("--study", required=True, help="study name (workers with the same name share the study)")
    p.add_argument("--storage", default=None,
                   help="journal:PATH or a database URL (default: sqlite:///<out>/study.db)")
    p.add_argument("--n-trials", type=int, default=None, help="trials this worker adds (default 20 without --timeout)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--max-total-trials", type=int, default=None, help="stop once the study has this many trials")
    p.add_argument("--algo", default="rmn", choices=["rmn"], help="agent to tune (default rmn)")
    p.add_argument("--objective", default="auto", choices=["auto", "gap_closed", "mse"],
                   help="validation metric: auto (default) = gap_closed (maximised) where the dataset has an "
                        "oracle, else mse (minimised)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="steps between validation reports to the pruner (default: the --config file's "
                        "eval_every, else timesteps/5)")
    p.add_argument("--tau-range", nargs=2, type=float, default=SearchSpace.tau, metavar=("LO", "HI"),
                   help=f"tau range, log scale (default {SearchSpace.tau[0]} {SearchSpace.tau[1]})")
    p.add_argument("--gamma-range", nargs=2, type=float, default=SearchSpace.gamma, metavar=("LO", "HI"),
                   help=f"gamma (lambda) range (default {SearchSpace.gamma[0]} {SearchSpace.gamma[1]})")
    p.add_argument("--n-range", nargs=2, type=int, default=SearchSpace.n_slots, metavar=("LO", "HI"),
                   help=f"memory slots N range, integers (default {SearchSpace.n_slots[0]} {SearchSpace.n_slots[1]})")
    p.add_argument("--tune-learning-rate", nargs="*", type=float, default=None, metavar="LO HI",
                   help=f"also tune the learning rate (log scale; default range {DEFAULT_LR_RANGE})")
    p.add_argument("--tune-memory-dim", nargs="*", type=int, default=None, metavar="D",
                   help=f"also tune the slot size among these (default {DEFAULT_MEMORY_DIMS})")
    p.add_argument("--tune-batch-size", nargs="*", type=int, default=None, metavar="B",
                   help=f"also tune the batch size among these (default {DEFAULT_BATCH_SIZES})")
    p.add_argument("--pruner", default="median", choices=["median", "none"], help="pruner (default median)")
    p.add_argument("--pruner-startup-trials", type=int, default=3, help="median pruner: trials before pruning (default 3)")
    p.add_argument("--pruner-warmup-steps", type=int, default=0, help="median pruner: steps before pruning (default 0)")
    p.add_argument("--sampler-seed", type=int, default=None, help="TPE sampler seed (give each worker its own)")
    p.add_argument("--startup-trials", type=int, default=5, help="random trials before TPE (default 5)")
    p.add_argument("--heartbeat-interval", type=int, default=60,
                   help="seconds between heartbeats of running trials (database storages; 0 disables; default 60)")
    p.add_argument("--grace-period", type=int, default=None,
                   help="seconds without heartbeat before a running trial is failed (default 2 x interval)")
    p.add_argument("--fail-running", action="store_true",
                   help="first mark all RUNNING trials FAIL (only when no other worker is alive)")
    p.add_argument("--create-only", action="store_true", help="create the storage and study, then exit")
    add_training_arguments(p)
    p._option_string_actions["--out"].help = "study directory (default runs/tuning/<study>)"
    return p


def config_and_space(args: argparse.Namespace) -> Tuple[TrainConfig, SearchSpace]:
    """The base config and search space of the command line (tuned fields cannot also be fixed)."""
    from agents.cli import config_from_args

    for flag, value in (("--tau", args.tau), ("--gamma", args.gamma), ("--n-slots", args.n_slots)):
        if value is not None:
            name = {"--tau": "--tau-range", "--gamma": "--gamma-range", "--n-slots": "--n-range"}[flag]
            raise ValueError(f"{flag} {value}: tuned by the study; set its range with {name} LO HI "
                             "(equal bounds fix it)")
    if args.resume:
        raise ValueError(f"--resume {args.resume}: a study resumes by running the same command again")
    if args.memory_dim is not None and args.tune_memory_dim is not None:
        raise ValueError("--memory-dim and --tune-memory-dim: give one of them")
    lr = args.tune_learning_rate
    if lr is not None and len(lr) not in (0, 2):
        raise ValueError(f"--tune-learning-rate {' '.join(map(str, lr))}: give no value or LO HI")
    space = SearchSpace(
        tau=tuple(args.tau_range), gamma=tuple(args.gamma_range), n_slots=tuple(args.n_range),
        learning_rate=None if lr is None else tuple(lr or DEFAULT_LR_RANGE),
        memory_dim=None if args.tune_memory_dim is None else tuple(args.tune_memory_dim or DEFAULT_MEMORY_DIMS),
        batch_size=None if args.tune_batch_size is None else tuple(args.tune_batch_size or DEFAULT_BATCH_SIZES))
    cfg = config_from_args(args, algo=args.algo)
    if args.eval_every is not None:
        if args.eval_every < 1:
            raise ValueError(f"--eval-every {args.eval_every}: must be >= 1")
        cfg.eval_every = args.eval_every
    elif not (args.config and "eval_every" in json.loads(Path(args.config).read_text())):
        cfg.eval_every = max(1, cfg.timesteps // 5)
    return cfg, space


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    base, space = config_and_space(args)
    out = Path(args.out or Path("runs") / "tuning" / args.study)
    url = resolve_storage_url(args.storage, out)
    n_trials = args.n_trials if (args.n_trials is not None or args.timeout) else 20
    if args.n_trials is not None and args.n_trials < 0:
        raise ValueError(f"--n-trials {args.n_trials}: must be >= 0")
    if args.create_only:
        n_trials, timeout = 0, None
    else:
        timeout = args.timeout
    metric, direction = resolve_objective(base, args.objective)
    print(f"study {args.study!r} in {url}: objective = validation {metric} ({direction}); "
          f"trials write into {out / 'trials'}", file=sys.stderr)
    try:
        study = run_study(
            args.study, base, out, storage=args.storage, n_trials=n_trials, timeout=timeout, space=space,
            objective=metric,
            pruner=make_pruner(args.pruner, args.pruner_startup_trials, args.pruner_warmup_steps),
            sampler=optuna.samplers.TPESampler(seed=args.sampler_seed, n_startup_trials=args.startup_trials),
            max_total_trials=args.max_total_trials, heartbeat_interval=args.heartbeat_interval or None,
            grace_period=args.grace_period, fail_running=args.fail_running, progress=not args.no_progress,
            write_outputs=not args.create_only)
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept in the study; run the same command to add trials",
              file=sys.stderr)
        return 130
    if args.create_only:
        print(f"created study {args.study!r} in {url}; start workers with the same command without --create-only")
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
    from agents.cli import run_cli

    raise SystemExit(run_cli(main))
