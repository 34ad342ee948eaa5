"""Every method at one env-step budget on a synthetic preset or a real dataset: the RMN recipes, the stock SB3
algorithms, the supervised baselines, and (synthetic) the oracle and memory-less references.

    python -m benchmarks.algorithms [--preset short|default|long|marathon] [--quick] [--timesteps N]
        [--seeds 0 1 2] [--methods rmn rmn-rl td3 lstm ...] [--encoder lstm|pooling|PATH] [--out DIR]
        [--storage URL [--study-name NAME]] [--report-only] [--rerun]     (--algos: another name for --methods)
    python -m benchmarks.algorithms --dataset PATH [--dataset-options KEY=VALUE ...] [the options above but --preset]

Methods (:data:`METHODS`): ``rmn``, ``rmn-rl`` and ``rmn-paper`` (the RMN's ``default``, ``rl`` and ``paper``
recipes, :func:`agents.config.recipe`), the stock SB3 / sb3-contrib algorithms (their sections of
``agents/hyperparams/LiRISMemory-v0.yml``), and the supervised baselines of :mod:`benchmarks.quality` (trained by
epochs with early stopping: their env steps are not comparable, the table gives their epochs and wall time). Every
run goes through :func:`agents.runs.train` with the preset's data (its ``env`` id and its ``dataset_options``),
the same memory size, segment encoder (an LSTM encoder is pretrained once per seed and shared by path), step
budget, validation schedule and seed. The oracle and the memory-less optimum are reference rows (``gap_closed``
1 and 0 by definition) with their test MSE and PCC on the preset's test movies.

With ``--dataset PATH`` (a real dataset directory, e.g. CEAP-360VR with ``--dataset-options manifest=ceap360vr``)
every run reads that dataset with those reader options instead (no preset: the env id is the default and plays no
part), there are no references and no ``gap_closed``: the tables give test MSE, PCC and CCC per target and their
means, and the curves validation MSE (lower is better).

Writes to ``--out``: ``algorithms_runs.csv`` (one row per run), ``algorithms.csv`` and ``algorithms.md`` (mean ±
std over seeds, with the references), ``algorithms_curves.csv`` and ``algorithms_curves.png`` (validation
``gap_closed``, on real data validation MSE, against env steps, :mod:`benchmarks.curves`), and the run directories
``algorithm_runs/<method>/seed<k>``. A finished run (its ``benchmark.json``, written last) is not trained again
unless ``--rerun``, and an unfinished one goes on from its last checkpoint, so a killed benchmark resumes where it
stopped.

With ``--storage`` (``sqlite:///...``, ``journal:PATH``, ``postgresql://...``) the (method, seed) pairs are trials
of one Optuna study: every worker enqueues the pairs that have no result and no trial waiting or running, then
runs waiting trials until none is left, and stores each run's row and curve as user attributes of its trial; the
tables come from every ``COMPLETE`` trial of the study. See :func:`run_worker`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from affect_env.files import atomic_write_text
from affect_env.presets import DEFAULT_ENV_ID, PRESETS, preset_options
from affect_env.progress import progress_bar
from agents.cli import run_cli
from agents.config import STOCK_ALGORITHMS, TrainConfig, parse_options, recipe
from agents.inputs import load_split
from agents.metrics import evaluate_predictions
from agents.runs import train
from agents.runs.directory import RunDirectory
from agents.runs.shared import shared_encoder
from agents.sb3_algorithms import algorithm_config
from benchmarks.common import BASELINE_MODELS, BaselineSizes, benchmark_parser, mean_spread, parse_benchmark_args, \
    report
from benchmarks.curves import METRICS, curve_table, plot_curves
from tuning.storage import display_url, fail_running_trials, file_lock, lock_file_for, make_storage, \
    open_study, resolve_storage_url, settings_diff

#: method -> the RMN recipe it trains
RMN_RECIPES: Mapping[str, str] = MappingProxyType({"rmn": "default", "rmn-rl": "rl", "rmn-paper": "paper"})
#: the methods trained by env steps: the RMN recipes and the stock SB3 / sb3-contrib algorithms
RL_METHODS = (*RMN_RECIPES, *STOCK_ALGORITHMS)
#: every method the benchmark trains, in table order (the supervised baselines after the RL methods)
METHODS = (*RL_METHODS, *BASELINE_MODELS)
#: the reference rows: the Bayes oracle (gap_closed 1) and the best memory-less prediction (gap_closed 0)
REFERENCES = MappingProxyType({"oracle": 1.0, "no_memory": 0.0})
#: ``--preset`` names -> env ids (the env ids themselves are accepted too)
PRESET_NAMES: Mapping[str, str] = MappingProxyType(
    {(env.split("-")[1].lower() if env.count("-") == 2 else "default"): env for env in PRESETS})
#: default env-step budget per preset (about 200, 150, 100 and 50 train movies' worth of steps)
PRESET_TIMESTEPS: Mapping[str, int] = MappingProxyType({
    "LiRISMemory-Short-v0": 20_000, "LiRISMemory-v0": 60_000, "LiRISMemory-Long-v0": 200_000,
    "LiRISMemory-Marathon-v0": 500_000})
#: the first columns of ``algorithms_runs.csv`` on a synthetic preset (then the test PCC per target, then the mean
#: CCC, the final validation MSE and the test MSE and CCC per target)
RUN_COLUMNS = ["method", "kind", "algo", "recipe", "seed", "timesteps", "epochs", "test_mse", "pcc", "gap_closed",
               "val_gap_closed", "wall_s", "env_steps_per_s"]
#: the first columns of ``algorithms_runs.csv`` on a real dataset (then the test MSE, PCC and CCC per target)
REAL_RUN_COLUMNS = ["method", "kind", "algo", "recipe", "seed", "timesteps", "epochs", "test_mse", "pcc", "ccc",
                    "val_mse", "wall_s", "env_steps_per_s"]
#: the ``dataset`` of the synthetic presets
SYNTHETIC = "synthetic"
#: the file a finished run writes last into its directory: its row, curve and settings digest
RECORD_FILE = "benchmark.json"
#: the settings only the RL methods read (their budget), and those only the supervised baselines read
RL_FIELDS = ("timesteps", "eval_every")
SUPERVISED_FIELDS = tuple(f.name for f in dataclasses.fields(BaselineSizes))
#: ``identity(kind)`` -> the budget fields it leaves out (the other kind's; ``"shared"``: both)
LEFT_OUT_OF = MappingProxyType({None: (), "rl": SUPERVISED_FIELDS, "supervised": RL_FIELDS,
                                "shared": RL_FIELDS + SUPERVISED_FIELDS})


@dataclass
class AlgorithmBenchmarkSettings(BaselineSizes):
    """What every method shares (defaults: the ``LiRISMemory-v0`` preset, its budget, three seeds).

    :param methods: the methods to train (:data:`METHODS`)
    :param preset: the synthetic preset's env id (:data:`affect_env.presets.PRESETS`); on a real dataset the
        default, which plays no part
    :param dataset: ``"synthetic"`` (the preset's movies) or a real dataset directory
    :param timesteps: env steps of every RL method
    :param eval_every: validation every this many env steps (the curves' points)
    :param dataset_options: reader options on top of the preset's (e.g. fewer movies for ``--quick``); on a real
        dataset, its reader options (e.g. ``{"manifest": "ceap360vr"}``)
    :param encoder: ``"lstm"`` (pretrained once per seed, shared), ``"pooling"`` or an encoder file
    :param overrides: :class:`~agents.config.TrainConfig` fields imposed on every method (e.g. ``learning_starts``)
    :param epochs: the supervised baselines' most passes over the train split: 100, as many as the ``rmn``
        recipe's own writer pretraining by BPTT gets, with early stopping after ``patience`` epochs without a
        better validation MSE (25: a memory net by BPTT can stall for 20 epochs before it learns the long
        dependencies)
    """

    methods: tuple = METHODS
    seeds: tuple = (0, 1, 2)
    preset: str = DEFAULT_ENV_ID
    dataset: str = SYNTHETIC
    timesteps: int = PRESET_TIMESTEPS[DEFAULT_ENV_ID]
    eval_every: int = PRESET_TIMESTEPS[DEFAULT_ENV_ID] // 10
    dataset_options: dict = field(default_factory=dict)
    n_slots: int = 10
    memory_dim: int = 32
    encoder: str = "lstm"
    overrides: dict = field(default_factory=dict)
    device: str = "cpu"
    epochs: int = 100
    patience: int = 25

    def identity(self, kind: Optional[str] = None) -> dict:
        """The settings that make a run what it is, as plain JSON values: all but ``methods`` and ``seeds`` (a
        study's settings); for ``kind`` ``"rl"`` or ``"supervised"`` only those the runs of that kind read (no
        :data:`SUPERVISED_FIELDS` for the RL methods, no :data:`RL_FIELDS` for the baselines: a new budget of one
        kind does not retrain the other); ``"shared"``: neither. ``dataset`` is left out when synthetic, so
        synthetic benchmarks keep the identity (and the studies and finished runs) they had before it existed."""
        drop = {"methods", "seeds", *LEFT_OUT_OF[kind]}
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in drop}
        if out["dataset"] == SYNTHETIC:
            del out["dataset"]
        return json.loads(json.dumps(out))

    @property
    def synthetic(self) -> bool:
        """Whether the runs read a synthetic preset (with references and ``gap_closed``)."""
        return self.dataset == SYNTHETIC

    def digest(self, kind: Optional[str] = None) -> str:
        """A short hash of :meth:`identity` (of ``kind``): what a finished run's record names."""
        return hashlib.sha256(json.dumps(self.identity(kind), sort_keys=True).encode()).hexdigest()[:12]


def preset_settings(preset: str = DEFAULT_ENV_ID) -> AlgorithmBenchmarkSettings:
    """The full benchmark on ``preset`` (a name of :data:`PRESET_NAMES` or an env id): its default budget
    (:data:`PRESET_TIMESTEPS`), ten validations per run."""
    env = check_preset(preset)
    steps = PRESET_TIMESTEPS[env]
    return AlgorithmBenchmarkSettings(preset=env, timesteps=steps, eval_every=steps // 10)


def quick_settings(preset: str = DEFAULT_ENV_ID) -> AlgorithmBenchmarkSettings:
    """A few minutes on 2 CPU cores: the preset's movies, 8/4/4 of them, a small memory, a pooling encoder,
    2,048 env steps, small baselines of 3 epochs, one seed.

    2,048 is a whole number of PPO (1,024) and RecurrentPPO (512) rollouts, so they take the same steps as the
    others (on-policy algorithms always finish their last rollout; the table reports the steps taken).
    """
    return replace(preset_settings(preset), seeds=(0,), timesteps=2_048, eval_every=512, n_slots=4, memory_dim=8,
                   encoder="pooling", dataset_options={"n_movies": [8, 4, 4]}, overrides={"learning_starts": 500},
                   epochs=3, window=32, hidden=32, patience=2)


def dataset_settings(dataset: str, options: Optional[Mapping] = None,
                     quick: bool = False) -> AlgorithmBenchmarkSettings:
    """The benchmark on a real ``dataset`` directory read with ``options`` (its reader options, none of a preset's):
    :func:`quick_settings`'s sizes and budget with ``quick``, else :func:`preset_settings`'s (the default preset's
    budget, 60,000 env steps)."""
    s = quick_settings(DEFAULT_ENV_ID) if quick else preset_settings(DEFAULT_ENV_ID)
    return replace(s, preset=DEFAULT_ENV_ID, dataset=check_dataset(dataset), dataset_options=dict(options or {}))


def check_dataset(dataset: str) -> str:
    """``dataset`` as the runs will name it: ``"synthetic"`` or an existing directory.

    :raises ValueError: naming ``--dataset`` and the path
    """
    name = str(dataset)
    if name == SYNTHETIC:
        return name
    if not Path(name).is_dir():
        raise ValueError(f"--dataset {name}: not a directory (give 'synthetic' or a dataset directory, e.g. "
                         "../shared/data/ceap360vr)")
    return name


def dataset_label(s: AlgorithmBenchmarkSettings) -> str:
    """The data's short name: the preset's env id, or the dataset directory's name."""
    return s.preset if s.synthetic else Path(s.dataset).resolve().name


def check_preset(preset: str) -> str:
    """The env id of ``preset``: a name of :data:`PRESET_NAMES` or one of the env ids.

    :raises ValueError: naming ``--preset`` and the choices
    """
    name = str(preset).split(":", 1)[-1]
    if name.lower() in PRESET_NAMES:
        return PRESET_NAMES[name.lower()]
    if name in PRESETS:
        return name
    raise ValueError(f"--preset {preset}: choose one of {', '.join(PRESET_NAMES)} (or an env id: "
                     f"{', '.join(PRESETS)})")


def check_method(method: str, flag: str = "--methods") -> str:
    """``method``'s name in :data:`METHODS` (case and ``-``/``_`` are forgiven; ``ppo_lstm`` is recurrentppo).

    :raises ValueError: naming ``flag``, the bad value and the choices
    """
    name = str(method).strip().lower()
    name = {"ppo_lstm": "recurrentppo", "ppo-lstm": "recurrentppo"}.get(name, name)
    for candidate in (name, name.replace("_", "-"), name.replace("-", "_")):
        if candidate in METHODS:
            return candidate
    if name.replace("-", "_") in REFERENCES:
        raise ValueError(f"{flag} {method}: a reference row, always in the table (nothing to train)")
    raise ValueError(f"{flag} {method}: unknown method; choose from {' '.join(METHODS)}")


def method_kind(method: str) -> str:
    """``"rl"`` (trained by env steps), ``"supervised"`` (by epochs) or ``"reference"``."""
    return "reference" if method in REFERENCES else "supervised" if method in BASELINE_MODELS else "rl"


def data_options(s: AlgorithmBenchmarkSettings) -> dict:
    """The reader options of every run: on a synthetic preset the preset's, then the settings'
    ``dataset_options``; on a real dataset the settings' ``dataset_options`` alone."""
    if not s.synthetic:
        return dict(s.dataset_options)
    return {**preset_options(s.preset), **s.dataset_options}


def method_config(method: str, s: AlgorithmBenchmarkSettings, seed: int, out: Path,
                  encoder: Optional[str] = None) -> TrainConfig:
    """The config of one run: the method's own starting point with the benchmark's shared settings.

    The RMN methods start from their recipe, the others from the default recipe; all get the preset (``env`` and
    its ``dataset_options``, which also name it to the shared encoder's cache) or the real dataset and its reader
    options (the ``env`` id then stays the default and plays no part), memory size, encoder, budget,
    validation schedule, seed, device and ``out`` (RL runs checkpoint at each validation, so that a killed run goes
    on from there). Stock algorithms then take their zoo section for everything else, the baselines
    :class:`BaselineSizes`; the settings' ``overrides`` go on top of every method.

    :param encoder: the encoder to use (default: the settings' ``encoder``)
    """
    method = check_method(method)
    shared = {"env": s.preset, "dataset": s.dataset, "dataset_options": data_options(s), "n_slots": s.n_slots,
              "memory_dim": s.memory_dim, "encoder": encoder or s.encoder, "timesteps": s.timesteps, "seed": seed,
              "eval_every": s.eval_every, "checkpoint_every": s.eval_every, "device": s.device, "out": str(out)}
    cfg = recipe(RMN_RECIPES.get(method, "default")).update(shared, "benchmark settings")
    if method in STOCK_ALGORITHMS:
        cfg = algorithm_config(method, cfg, keep={*shared, *s.overrides})
    elif method in BASELINE_MODELS:
        cfg = s.baseline_config(method, cfg)
    return cfg.update(dict(s.overrides), "benchmark overrides")


def seed_encoder(s: AlgorithmBenchmarkSettings, seed: int, out: Path) -> str:
    """The encoder every method of ``seed`` reads: ``"pooling"``/a file as they are; ``"lstm"``: pretrained once
    (per data, encoder settings and seed) into ``out/encoders/`` under a file lock, and given by path."""
    if s.encoder != "lstm":
        return s.encoder
    cache = Path(out) / "encoders"
    with file_lock(cache / f"seed{seed}.lock"):
        return shared_encoder(method_config("rmn", s, seed, cache), cache).encoding.encoder


def run_dir(out: Path, method: str, seed: int) -> Path:
    return Path(out) / "algorithm_runs" / method / f"seed{seed}"


def read_curve(path: Path) -> list:
    """The validation curve of a run's ``eval_log.csv``: ``[{"timesteps", "gap_closed", "mse"[, "epoch"]}, ...]``
    (``gap_closed`` on synthetic data only)."""
    if not Path(path).exists():
        return []
    log = pd.read_csv(path)
    cols = [c for c in ("timesteps", "epoch", "gap_closed", "mse") if c in log.columns]
    return [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()} for row in log[cols].to_dict("records")]


def run_row(method: str, seed: int, summary: dict, wall_s: float) -> dict:
    """The runs-table row of one finished run: :data:`RUN_COLUMNS`, then the test PCC per target, then ``ccc``
    (the mean test CCC), ``val_mse`` and the test MSE and CCC per target where the summary has them (runs made
    before summaries had them lack these)."""
    kind = method_kind(method)
    targets = [k[len("test_"):-len("_pcc")] for k in summary if k.startswith("test_") and k.endswith("_pcc")]
    # the RMN's summary "timesteps" are those of the model it kept (selected on validation, possibly an earlier
    # one), "trained_timesteps" the steps it took; on-policy algorithms finish their last rollout
    steps = max(summary["timesteps"], summary.get("trained_timesteps", 0)) if kind == "rl" else None
    row = {"method": method, "kind": kind, "algo": summary["algo"],
           "recipe": summary.get("recipe", "") if method in RMN_RECIPES else "", "seed": int(seed),
           "timesteps": steps, "epochs": summary.get("epochs") if kind == "supervised" else None,
           "test_mse": summary["test_mse"],
           "pcc": float(np.mean([summary[f"test_{t}_pcc"] for t in targets])) if targets else None,
           "gap_closed": summary.get("test_gap_closed"), "val_gap_closed": summary.get("val_gap_closed"),
           "wall_s": round(wall_s, 1),
           "env_steps_per_s": round(steps / max(summary["train_wall_s"], 1e-9), 1) if steps else None}
    row.update({f"{t}_pcc": summary[f"test_{t}_pcc"] for t in targets})
    cccs = [summary.get(f"test_{t}_ccc") for t in targets]
    row["ccc"] = float(np.mean(cccs)) if targets and None not in cccs else None
    row["val_mse"] = summary.get("val_mse")
    for t in targets:
        row.update({f"{t}_mse": summary.get(f"test_{t}_mse"), f"{t}_ccc": summary.get(f"test_{t}_ccc")})
    return row


def run_method(method: str, seed: int, s: AlgorithmBenchmarkSettings, out: Path) -> dict:
    """Train and test ``method`` with ``seed`` into :func:`run_dir` and return its record, ``{"settings": digest,
    "row": run_row, "curve": read_curve}``, also written last as the run's :data:`RECORD_FILE`.

    An unfinished run of the same config (a killed worker's) goes on from its last checkpoint, made at each
    validation (RL) or epoch (baselines); anything else in the directory, a finished run included, is replaced.
    Wall time is the run's (data, writer pretraining, training, validations, test, its earlier parts included),
    not the shared encoder's."""
    path = run_dir(out, method, seed)
    cfg = method_config(method, s, seed, path, seed_encoder(s, seed, out))
    run = RunDirectory(path)
    resume = run.continues(cfg)
    if not resume:
        shutil.rmtree(path, ignore_errors=True)
    start = time.time() - (run.checkpoint_state()["wall_s"] if resume else 0.0)
    summary = train(cfg, resume=resume, progress=False)
    record = {"settings": s.digest(method_kind(method)), "row": run_row(method, seed, summary, time.time() - start),
              "curve": read_curve(path / "eval_log.csv")}
    atomic_write_text(path / RECORD_FILE, json.dumps(record, indent=1) + "\n")
    return record


def load_record(out: Path, method: str, seed: int, s: AlgorithmBenchmarkSettings) -> Optional[dict]:
    """The record of a finished run of ``method`` and ``seed`` made with the settings its kind reads
    (:meth:`~AlgorithmBenchmarkSettings.identity`), else ``None``. Records made before runs named their kind's
    settings name all of them: they match when every setting is the same."""
    path = run_dir(out, method, seed) / RECORD_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("settings") in (s.digest(method_kind(method)), s.digest()) else None


def benchmark_pairs(s: AlgorithmBenchmarkSettings) -> list:
    """The (method, seed) pairs of ``s`` to run, seed-major: every method of the first seed before the next seed, so
    that a benchmark stopped part-way has whole seeds to compare."""
    return [(check_method(m), int(seed)) for seed in s.seeds for m in s.methods]


def run_local(s: AlgorithmBenchmarkSettings, out: Path, rerun: bool = False, progress: bool = True) -> list:
    """Every (method, seed) of the settings in this process; a run finished with the same settings (its
    :data:`RECORD_FILE`) is read back instead of trained again, unless ``rerun``. Returns the records."""
    pairs = benchmark_pairs(s)
    records = []
    bar = progress_bar(pairs, desc="algorithms", disable=not progress)
    for method, seed in bar:
        bar.set_postfix_str(f"{method} seed {seed}")
        record = None if rerun else load_record(out, method, seed, s)
        records.append(record or run_method(method, seed, s, out))
    return records


# ---- a seed sweep shared through an Optuna storage --------------------------------------------------------------
class FailedElsewhere(RuntimeError):
    """The trial was marked finished by another worker (a stale heartbeat, ``--fail-running``) while it ran."""


def open_benchmark_study(s: AlgorithmBenchmarkSettings, storage: str, study_name: str, out: Path,
                         heartbeat_interval: Optional[int] = 60, grace_period: Optional[int] = None) -> optuna.Study:
    """The benchmark's study in ``storage`` (created, or loaded when it exists). A new study stores the settings
    (:meth:`~AlgorithmBenchmarkSettings.identity`) as its user attribute ``settings``; a worker whose shared
    settings (``identity("shared")``: data, memory size, encoder, overrides, device) differ from the study's is
    refused, with an error naming the field. The budget of either kind (:data:`RL_FIELDS`,
    :data:`SUPERVISED_FIELDS`) may change: each trial names the settings of its run (:func:`trial_settings`), so
    only the runs of the kind whose budget changed run again."""
    url = resolve_storage_url(storage, out)
    Path(out).mkdir(parents=True, exist_ok=True)
    study = open_study(study_name, url, out, direction="minimize", heartbeat_interval=heartbeat_interval,
                       grace_period=grace_period, user_attrs={"benchmark": "benchmarks.algorithms"},
                       initial_attrs={"settings": s.identity()})
    theirs, mine = study_settings(study).identity("shared"), s.identity("shared")
    if theirs != mine:
        raise ValueError(f"study {study_name!r} in {display_url(url)} was created with {settings_diff(theirs, mine)}: "
                         "use the same data, memory, encoder and overrides to add runs to it, or another "
                         "--study-name / --out")
    return study


def study_settings(study: optuna.Study) -> AlgorithmBenchmarkSettings:
    """The settings the benchmark study was created with (its user attribute ``settings``).

    :raises ValueError: naming the study, if it is not a benchmark study (another tool's study of that name)
    """
    if "settings" not in study.user_attrs:
        raise ValueError(f"study {study.study_name!r} is not a benchmarks.algorithms study (it has no settings): "
                         "give another --study-name")
    return AlgorithmBenchmarkSettings(**study.user_attrs["settings"])


def load_benchmark_study(url: str, study_name: str) -> optuna.Study:
    """The existing benchmark study ``study_name`` in ``url`` (to report on it; nothing is created).

    :raises ValueError: naming the study, the storage and the benchmark studies it holds
    """
    storage = make_storage(url, heartbeat_interval=None)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [x.study_name for x in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise ValueError(f"--study-name {study_name}: no such study in {display_url(url)} (studies there: "
                         f"{', '.join(names) or 'none'})") from None
    if "settings" not in study.user_attrs:
        raise ValueError(f"study {study_name!r} in {display_url(url)} is not a benchmarks.algorithms study")
    return study


def _pair(trial) -> tuple:
    attrs = trial.user_attrs
    return attrs.get("method"), attrs.get("seed")


def trial_settings(trial, created: AlgorithmBenchmarkSettings) -> dict:
    """The settings the run of a (method, seed) trial reads: those it names (user attribute ``settings``, the
    identity of its method's kind), or for a trial made before trials named them, those of the study it is in
    (``created``: :func:`study_settings`)."""
    return trial.user_attrs.get("settings") or created.identity(method_kind(_pair(trial)[0]))


def enqueue_missing(study: optuna.Study, s: AlgorithmBenchmarkSettings, rerun: bool = False) -> list:
    """Enqueue a trial for each pair of ``s`` that needs one; return the pairs enqueued.

    A pair needs one when it has no ``COMPLETE`` trial with the settings of its kind in ``s`` (or ``rerun``) and
    no trial with them waiting or running for that result. Each enqueued trial records those ``settings`` and
    ``requested``, the number of the pair's latest such complete trial then (-1: none), which :func:`is_duplicate`
    uses. Failed trials (a killed worker's, once its heartbeat is stale) leave their pair without a live trial, so
    the pair is enqueued again. Call it under the storage's file lock.
    """
    created = study_settings(study)
    trials = [t for t in study.get_trials(deepcopy=False) if _pair(t)[0] is not None]
    added = []
    for method, seed in benchmark_pairs(s):
        wanted = s.identity(method_kind(method))
        mine = [t for t in trials if _pair(t) == (method, seed) and trial_settings(t, created) == wanted]
        latest = max((t.number for t in mine if t.state == TrialState.COMPLETE), default=-1)
        live = [t for t in mine if t.state in (TrialState.WAITING, TrialState.RUNNING)
                and t.user_attrs.get("requested") == latest]
        if live or (latest >= 0 and not rerun):
            continue
        study.enqueue_trial({}, user_attrs={"method": method, "seed": int(seed), "requested": latest,
                                            "settings": wanted})
        added.append((method, seed))
    return added


def is_duplicate(study: optuna.Study, trial) -> Optional[int]:
    """The number of an earlier trial that asks for the same result as ``trial`` (same pair, settings and
    ``requested``, not failed or pruned), else ``None``. Workers on several machines may enqueue one pair at the
    same moment; the trial with the lowest number runs and the others are pruned as duplicates."""
    created = study_settings(study)

    def key(t) -> tuple:
        return (*_pair(t), t.user_attrs.get("requested"), trial_settings(t, created))

    for other in study.get_trials(deepcopy=False):
        if other.number < trial.number and _pair(other)[0] is not None and key(other) == key(trial) \
                and other.state not in (TrialState.FAIL, TrialState.PRUNED):
            return other.number
    return None


def run_worker(study: optuna.Study, s: AlgorithmBenchmarkSettings, out: Path, url: str, rerun: bool = False,
               progress: bool = True) -> int:
    """Run the study's (method, seed) trials in this process until none is waiting; return how many it ran.

    First the settings' pairs that need a run are enqueued (:func:`enqueue_missing`, under the storage's file
    lock, with ``rerun`` once); then each waiting trial is popped (atomically: one worker gets it), trained
    (:func:`run_method`, with the settings the trial names) under a heartbeat and stored: its row and curve as
    user attributes, the test MSE as its value. A run this worker finished in ``out`` with those settings whose
    result the study never got (a worker killed in between, or a benchmark run without ``--storage``) is stored,
    not trained again, unless ``rerun`` or the trial asks for a new run of a pair that has one. Before each pop,
    trials whose heartbeat is older than the grace period are marked ``FAIL`` and their pairs enqueued again;
    pairs still running in other workers are left to them.
    """
    created = study_settings(study)
    lock = lock_file_for(url, out)
    ran: list = []
    first = True
    while True:
        with file_lock(lock), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
            enqueue_missing(study, s, rerun=rerun and first)
        first = False
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return len(ran)
        failed_elsewhere: list = []

        def objective(trial: optuna.Trial) -> float:
            method, seed = _pair(trial)
            if method is None:  # another worker took the last waiting trial: ask() made a fresh one
                raise optuna.TrialPruned("no (method, seed) pair was waiting")
            earlier = is_duplicate(study, trial)
            if earlier is not None:
                trial.set_user_attr("duplicate_of", earlier)
                raise optuna.TrialPruned(f"{method} seed {seed}: a duplicate of trial {earlier}")
            if progress:
                print(f"trial {trial.number}: {method} seed {seed}", file=sys.stderr, flush=True)
            settings = replace(s, **trial_settings(trial, created))
            record = None
            if trial.user_attrs.get("requested") == -1 and not rerun:
                record = load_record(out, method, seed, settings)
            record = record or run_method(method, seed, settings, out)
            if study._storage.get_trial(trial._trial_id).state.is_finished():
                failed_elsewhere.append(trial.number)
                raise FailedElsewhere(f"trial {trial.number} ({method} seed {seed}) was marked finished by another "
                                      "worker while this one ran it (no heartbeat for longer than the grace period, "
                                      "or --fail-running); its result is discarded and the pair is run again")
            trial.set_user_attr("row", record["row"])
            trial.set_user_attr("curve", record["curve"])
            trial.set_user_attr("run_dir", str(run_dir(out, method, seed)))
            ran.append(trial.number)
            value = float(record["row"]["test_mse"])
            return value if math.isfinite(value) else float("inf")

        try:
            study.optimize(objective, n_trials=1, catch=(), gc_after_trial=True)
        except (FailedElsewhere, ValueError, optuna.exceptions.UpdateFinishedTrialError) as err:
            if not failed_elsewhere:
                raise
            print(f"warning: {err}", file=sys.stderr)


def current_settings(study: optuna.Study) -> AlgorithmBenchmarkSettings:
    """The settings a report of ``study`` shows: those it was created with, each kind's budget replaced by that of
    its newest ``COMPLETE`` trial (a study whose baselines were run again with more epochs reports those)."""
    created = study_settings(study)
    newest: dict = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if _pair(t)[0] is not None:
            newest[method_kind(_pair(t)[0])] = trial_settings(t, created)
    budget = {k: v for kind, fields in (("rl", RL_FIELDS), ("supervised", SUPERVISED_FIELDS)) if kind in newest
              for k, v in newest[kind].items() if k in fields}
    return replace(created, **budget)


def study_records(study: optuna.Study, s: Optional[AlgorithmBenchmarkSettings] = None) -> tuple:
    """``(records, pending)``: the record of each (method, seed) pair's latest ``COMPLETE`` trial made with the
    settings of its kind in ``s`` (default :func:`current_settings`), and the pairs still waiting or running with
    them without a result."""
    s = s or current_settings(study)
    created = study_settings(study)
    latest: dict = {}
    pending = set()
    for t in study.get_trials(deepcopy=False):
        pair = _pair(t)
        if pair[0] is None or trial_settings(t, created) != s.identity(method_kind(pair[0])):
            continue
        if t.state == TrialState.COMPLETE and "row" in t.user_attrs:
            if pair not in latest or t.number > latest[pair].number:
                latest[pair] = t
        elif t.state in (TrialState.WAITING, TrialState.RUNNING):
            pending.add(pair)
    records = [{"row": t.user_attrs["row"], "curve": t.user_attrs.get("curve", [])} for t in latest.values()]
    return records, sorted(pending - set(latest))


# ---- the report ---------------------------------------------------------------------------------------------
def reference_rows(s: AlgorithmBenchmarkSettings) -> pd.DataFrame:
    """The oracle's and the memory-less optimum's rows on the preset's test movies: test MSE, PCC and CCC per
    target and ``gap_closed`` 1 and 0 (validation too, by definition). A real dataset has none: an empty table."""
    if not s.synthetic:
        return pd.DataFrame()
    cfg = method_config("rmn", s, 0, Path("unused"))
    test = load_split(cfg, "test")
    rows = []
    for method, share in REFERENCES.items():
        g = evaluate_predictions([getattr(m, method) for m in test], test).iloc[0]
        pccs = {f"{t}_pcc": float(g[f"{t}_pcc"]) for t in test.target_names}
        cccs = {f"{t}_ccc": float(g[f"{t}_ccc"]) for t in test.target_names}
        rows.append({"method": method, "kind": "reference", "test_mse": float(g["mse"]),
                     "pcc": float(np.mean(list(pccs.values()))), "gap_closed": share, "val_gap_closed": share,
                     **pccs, **cccs})
    return pd.DataFrame(rows)


def runs_table(records: Sequence[dict], synthetic: bool = True) -> pd.DataFrame:
    """One row per run, methods in :data:`METHODS` order, then seeds. Synthetic: :data:`RUN_COLUMNS`, then the
    other columns in the order the rows give them (PCC per target, then CCC, validation MSE, MSE and CCC per
    target); real data: :data:`REAL_RUN_COLUMNS`, then MSE, PCC and CCC per target (no ``gap_closed``)."""
    first = RUN_COLUMNS if synthetic else REAL_RUN_COLUMNS
    runs = pd.DataFrame([r["row"] for r in records])
    if runs.empty:
        return pd.DataFrame(columns=first)
    order = {m: i for i, m in enumerate(METHODS)}
    runs = runs.assign(_o=runs["method"].map(order)).sort_values(["_o", "seed"], kind="stable").drop(columns="_o")
    runs = runs.astype({"seed": "Int64", "timesteps": "Int64", "epochs": "Int64"})  # whole numbers, empty where none
    if synthetic:
        rest = [c for c in runs.columns if c not in first]
    else:
        runs = runs.drop(columns=[c for c in ("gap_closed", "val_gap_closed") if c in runs.columns])
        for c in first:
            if c not in runs.columns:
                runs[c] = None
        targets = [c[:-len("_pcc")] for c in runs.columns if c.endswith("_pcc")]
        rest = [f"{t}_{m}" for t in targets for m in ("mse", "pcc", "ccc") if f"{t}_{m}" in runs.columns]
        rest += [c for c in runs.columns if c not in first and c not in rest]
    return runs[first + rest].reset_index(drop=True)


def _complete(g: pd.DataFrame, column: str, digits: int) -> str:
    """``mean ± std`` of ``column`` over the seeds of ``g``, or ``"—"`` unless every seed has it (runs made before
    summaries had CCC lack it: a mean over some seeds only would not compare with the other columns)."""
    if column not in g.columns:
        return "—"
    values = pd.to_numeric(g[column], errors="coerce").astype(float)
    return mean_spread(values, digits) if values.notna().all() else "—"


def summarize(runs: pd.DataFrame, references: Optional[pd.DataFrame] = None, synthetic: bool = True) -> pd.DataFrame:
    """Mean ± std over seeds per method: env steps (RL) or epochs (supervised), then synthetic: test
    ``gap_closed``, final validation ``gap_closed``, test MSE, PCC and CCC per target; real data: test MSE, PCC
    and CCC (means over the targets), MSE, PCC and CCC per target, final validation MSE; then wall time and env
    steps/s; the references last (synthetic)."""
    pcc_cols = [c for c in runs.columns if c.endswith("_pcc")]
    targets = [c[:-len("_pcc")] for c in pcc_cols]
    rows = []
    for method, g in runs.groupby("method", sort=False):
        rl = g["kind"].iloc[0] == "rl"
        row = {"method": method, "kind": g["kind"].iloc[0], "seeds": len(g),
               "env steps": str(int(g["timesteps"].max())) if rl else "—",
               "epochs": "—" if rl else mean_spread(g["epochs"].astype(float), 1)}
        if synthetic:
            row.update({"gap_closed": mean_spread(g["gap_closed"].astype(float), 3),
                        "val gap_closed": mean_spread(g["val_gap_closed"].astype(float), 3),
                        "test MSE": mean_spread(g["test_mse"], 4)})
            row.update({f"{t} PCC": mean_spread(g[f"{t}_pcc"].astype(float), 3) for t in targets})
            row.update({f"{t} CCC": _complete(g, f"{t}_ccc", 3) for t in targets})
        else:
            row.update({"test MSE": mean_spread(g["test_mse"], 4), "PCC": _complete(g, "pcc", 3),
                        "CCC": _complete(g, "ccc", 3)})
            for t in targets:
                row.update({f"{t} MSE": _complete(g, f"{t}_mse", 4), f"{t} PCC": _complete(g, f"{t}_pcc", 3),
                            f"{t} CCC": _complete(g, f"{t}_ccc", 3)})
            row["val MSE"] = _complete(g, "val_mse", 4)
        row.update({"wall time (s)": mean_spread(g["wall_s"], 0),
                    "env steps/s": mean_spread(g["env_steps_per_s"].astype(float), 0) if rl else "—"})
        rows.append(row)
    for _, ref in (references if references is not None else pd.DataFrame()).iterrows():
        row = {"method": ref["method"], "kind": "reference", "seeds": "—", "env steps": "—", "epochs": "—",
               "gap_closed": f"{ref['gap_closed']:.3f}", "val gap_closed": f"{ref['val_gap_closed']:.3f}",
               "test MSE": f"{ref['test_mse']:.4f}"}
        row.update({f"{t} PCC": f"{ref[f'{t}_pcc']:.3f}" if f"{t}_pcc" in ref else "—" for t in targets})
        row.update({f"{t} CCC": f"{ref[f'{t}_ccc']:.3f}" if f"{t}_ccc" in ref else "—" for t in targets})
        row.update({"wall time (s)": "—", "env steps/s": "—"})
        rows.append(row)
    return pd.DataFrame(rows)


def describe(s: AlgorithmBenchmarkSettings) -> str:
    """The header's details: data, budget, seeds, sizes."""
    opts = data_options(s)
    budget = (f"RL methods {s.timesteps} env steps, validation every {s.eval_every}; supervised baselines <= "
              f"{s.epochs} epochs (window {s.window}, hidden {s.hidden}); N={s.n_slots}, d={s.memory_dim}, "
              f"{s.encoder} encoder; mean ± std over seeds")
    if not s.synthetic:
        given = " ".join(f"{k}={json.dumps(v)}" for k, v in opts.items())
        return (f"{dataset_label(s)} ({s.dataset}{', ' + given if given else ''}); {budget}; MSE, PCC and CCC on the "
                f"test split (PCC, CCC: means over the targets), val MSE on the validation split")
    n = opts.get("n_movies", ("?",) * 3)
    return (f"{s.preset}: {n[0]}/{n[1]}/{n[2]} train/val/test movies of {opts.get('length')} segments, dependency "
            f"distance {opts.get('dependency_distance')}; {budget}; gap_closed and MSE on the test split, val "
            f"gap_closed on the validation split")


def write_report(records: Sequence[dict], s: AlgorithmBenchmarkSettings, args, note: str = "") -> pd.DataFrame:
    """Write the tables (``report``: ``algorithms_runs.csv``, ``algorithms.csv``, ``algorithms.md``) and the
    curves (``algorithms_curves.csv``, ``algorithms_curves.png``: validation ``gap_closed``, on real data
    validation MSE) of ``records`` into ``args.out``; return the summary table."""
    out = Path(args.out)
    runs = runs_table(records, s.synthetic)
    references = reference_rows(s) if s.synthetic else None
    table = summarize(runs, references, s.synthetic)
    title = ("Methods on a synthetic preset at one env-step budget" if s.synthetic
             else f"Methods on the {dataset_label(s)} data at one env-step budget")
    report(table, args, "algorithms", title, describe(s) + (f"; {note}" if note else ""), runs=runs)
    metric = "gap_closed" if s.synthetic else "mse"
    curves = curve_table(sorted(records, key=lambda r: METHODS.index(r["row"]["method"])), references, metric)
    atomic_write_text(out / "algorithms_curves.csv", curves.to_csv(index=False))
    plot_curves(curves, out / "algorithms_curves.png",
                f"{dataset_label(s)}: {METRICS[metric]['label']}, mean over seeds (band: min–max); dashed: "
                "supervised baselines", metric)
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser("algorithms", __doc__, "a few minutes on 2 cores (8/4/4 movies, 2,048 steps, 1 seed)",
                              out_help="where to write tables, figure and runs")
    parser.add_argument("--preset", default=None,
                        help=f"synthetic preset: {', '.join(PRESET_NAMES)} or an env id (default: default; not with "
                        "a real --dataset)")
    parser.add_argument("--dataset", default=SYNTHETIC, metavar="PATH",
                        help="synthetic (default: the --preset's movies) or a dataset directory read by every method, "
                        "e.g. ../shared/data/ceap360vr (no preset, no references, no gap_closed: test MSE, PCC and "
                        "CCC, validation MSE curves)")
    parser.add_argument("--dataset-options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="reader options, JSON values, e.g. manifest=ceap360vr (synthetic: on top of the "
                        "preset's)")
    parser.add_argument("--methods", "--algos", dest="methods", nargs="+", default=None, metavar="METHOD",
                        help=f"methods (default all: {' '.join(METHODS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2; quick 0)")
    parser.add_argument("--timesteps", type=int, default=None,
                        help="env steps per RL run (default per preset: " + ", ".join(
                            f"{n} {PRESET_TIMESTEPS[e]:,}" for n, e in PRESET_NAMES.items()) + "; quick 2,048)")
    parser.add_argument("--eval-every", type=int, default=None, help="validate every N env steps (default: a tenth "
                        "of --timesteps)")
    parser.add_argument("--epochs", type=int, default=None, help="the supervised baselines' most epochs (default "
                        f"{AlgorithmBenchmarkSettings.epochs}; quick 3)")
    parser.add_argument("--patience", type=int, default=None, help="the baselines stop after this many epochs without "
                        f"a better validation MSE (default {AlgorithmBenchmarkSettings.patience}; quick 2)")
    parser.add_argument("--encoder", default=None, help="lstm (default; pretrained once per seed), pooling or a path")
    parser.add_argument("--rerun", action="store_true", help="train finished runs again")
    parser.add_argument("--report-only", action="store_true", help="train nothing: tables and figure from the "
                        "finished runs (local run directories, or every COMPLETE trial of --storage)")
    parser.add_argument("--storage", default=None, metavar="URL", help="share the (method, seed) runs between "
                        "workers: sqlite:///FILE, journal:PATH or postgresql://user@host/db")
    parser.add_argument("--study-name", default=None, help="the study in --storage (default algorithms-<env id>, "
                        "with --dataset algorithms-<its folder's name>; -quick added with --quick)")
    parser.add_argument("--heartbeat-interval", type=int, default=60, help="seconds between a running trial's "
                        "heartbeats (database storages; 0: none)")
    parser.add_argument("--grace-period", type=int, default=None, help="seconds without heartbeat before a running "
                        "trial is failed and its pair run again (default 2 x --heartbeat-interval)")
    parser.add_argument("--fail-running", action="store_true", help="first mark every RUNNING trial FAIL (journal "
                        "storage after a crash: only when no worker is alive)")
    args = parse_benchmark_args(parser, argv)

    if str(args.dataset) != SYNTHETIC and args.preset is not None:
        raise ValueError(f"--preset {args.preset} with --dataset {args.dataset}: a preset is synthetic data; give "
                         "--preset (with --dataset synthetic, the default) or a real --dataset, not both")
    dataset = check_dataset(args.dataset)
    options = parse_options(args.dataset_options or [], "--dataset-options")
    if dataset == SYNTHETIC:
        preset = "default" if args.preset is None else args.preset
        s = quick_settings(preset) if args.quick else preset_settings(preset)
        if options:
            s = replace(s, dataset_options={**s.dataset_options, **options})
    else:
        s = dataset_settings(dataset, options, quick=args.quick)
    if args.methods:
        s = replace(s, methods=tuple(dict.fromkeys(check_method(m) for m in args.methods)))
    if args.seeds:
        if min(args.seeds) < 0:
            raise ValueError(f"--seeds {' '.join(map(str, args.seeds))}: seeds are whole numbers >= 0")
        s = replace(s, seeds=tuple(dict.fromkeys(args.seeds)))
    if args.timesteps is not None:
        if args.timesteps <= 0:
            raise ValueError(f"--timesteps {args.timesteps}: must be positive")
        s = replace(s, timesteps=args.timesteps, eval_every=max(1, args.timesteps // 10))
    if args.eval_every is not None:
        if args.eval_every <= 0:
            raise ValueError(f"--eval-every {args.eval_every}: must be positive")
        s = replace(s, eval_every=args.eval_every)
    for flag, name in (("--epochs", "epochs"), ("--patience", "patience")):
        given = getattr(args, name)
        if given is not None:
            if given < 1:
                raise ValueError(f"{flag} {given}: must be a whole number >= 1")
            s = replace(s, **{name: given})
    if args.encoder:
        s = replace(s, encoder=args.encoder)
    if args.report_only and args.rerun:
        raise ValueError("--report-only with --rerun: --report-only trains nothing")
    if args.storage is None:
        for flag, given in (("--study-name", args.study_name), ("--fail-running", args.fail_running)):
            if given:
                raise ValueError(f"{flag}: give --storage too (the study's database)")
        records = []
        if args.report_only:
            records = [r for m in s.methods for seed in s.seeds if (r := load_record(args.out, m, seed, s))]
            if not records:
                raise ValueError(f"--report-only: no finished runs with these settings in {args.out}/algorithm_runs")
        else:
            records = run_local(s, args.out, rerun=args.rerun, progress=not args.no_progress)
        write_report(records, s, args)
        return 0

    url = resolve_storage_url(args.storage, args.out)
    name = args.study_name or f"algorithms-{dataset_label(s)}{'-quick' if args.quick else ''}"
    if args.report_only:
        study = load_benchmark_study(url, name)
        s = replace(current_settings(study), methods=s.methods, seeds=s.seeds)
    else:
        study = open_benchmark_study(s, url, name, args.out, args.heartbeat_interval or None, args.grace_period)
    if args.fail_running:
        failed = fail_running_trials(study)
        if failed:
            print(f"marked running trial(s) {failed} as FAIL", file=sys.stderr)
    if not args.report_only:
        ran = run_worker(study, s, args.out, url, rerun=args.rerun, progress=not args.no_progress)
        print(f"this worker ran {ran} run(s) of study {name!r} in {display_url(url)}", file=sys.stderr)
    records, pending = study_records(study, s)
    if not records:
        raise ValueError(f"study {name!r} in {display_url(url)} has no finished run yet")
    note = f"{len(pending)} run(s) still waiting or running" if pending else ""
    write_report(records, s, args, note)
    return 0

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
