"""One run pipeline for every trainer: the RMN, the stock SB3 algorithms and the supervised baselines.

:func:`train` goes through the same steps whatever is trained — open the run directory (or resume it), seed,
load the splits, build the segment encoder, build or restore the model, learn with validations and
checkpoints, select the best model, evaluate it on the test split, write the outputs and ``summary.json`` — and
asks a :class:`Trainer` only for what differs: how the model is built, how it learns, how it predicts.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import torch
from stable_baselines3.common.utils import get_device, set_random_seed

from affect_env.encoder import atomic_torch_save
from affect_env.memory import action_dim
from agents.baselines.models import MemoryTBPTT, load_baseline, save_baseline
from agents.baselines.training import evaluate_baseline, fit_baseline, make_baseline, validation_row
from agents.config import BASELINES, STOCK_ALGORITHMS, TrainConfig
from agents.inputs import build_encoder, load_long_val, load_splits, make_env
from agents.outputs import global_row, headline_metrics, write_outputs
from agents.rmn import RMN
from agents.rmn.factory import evaluate_rmn, load_warm_start, make_rmn, validation_metrics, warm_start
from agents.runs.callbacks import CheckpointAndEval, LogProgress
from agents.runs.directory import RunDirectory, save_model, write_json
from agents.sb3_algorithms import (algorithm_class, evaluate_policy_on, evaluation_env, load_predictor,
                                   make_stock_model, save_predictor, sb3_kwargs, split_hyperparams, stock_extras)

#: the synthetic movies the writer is pretrained on by default (``WarmStartConfig.pretrain_writer_options``): a
#: quarter of the default's length and a tenth of its dependency distance, so that exact gradients through whole
#: movies are cheap and every character's introduction and reappearances fall within a few dozen segments
SHORT_MOVIES = {"length": 100, "dependency_distance": 20}
#: how the writer pretraining's BPTT updates: movies per update, Adam learning rate
PRETRAIN_BATCH_MOVIES, PRETRAIN_LR = 16, 1e-3
#: a baseline checkpoint's training state (:func:`agents.baselines.training.training_state`)
TRAINING_STATE = "training.pt"


class Trainer:
    """What one kind of model adds to the pipeline. Subclasses build, restore, train and evaluate their model.

    :param cfg: the run's config
    :param run: the run directory
    :param progress: show progress bars
    """

    def __init__(self, cfg: TrainConfig, run: RunDirectory, progress: bool) -> None:
        self.cfg, self.run, self.progress = cfg, run, progress
        self.model = None
        self.continuing = False  # whether the run goes on from its checkpoint (set by prepare)
        self.extra: dict = {}  # trainer-specific summary fields

    def prepare(self, resume: bool) -> None:
        """Checks and files before any data is loaded (a bad setting fails in a second, not after pretraining)."""

    def given_encoder(self):
        """A segment encoder the model must use (a warm start's), else ``None``."""
        return None

    def build(self, data: dict, encoder) -> None:
        raise NotImplementedError

    def learn(self, data: dict, encoder, t0: float, on_eval: Optional[Callable[[dict], None]]) -> dict:
        """Train ``self.model``; return ``timesteps``, ``updates``, ``learn_wall_s`` (and anything else)."""
        raise NotImplementedError

    def evaluate(self, dataset, encoder) -> tuple:
        """``(metrics, per-movie results)`` of the selected model on ``dataset``."""
        raise NotImplementedError


class SB3Trainer(Trainer):
    """The part shared by the RMN and the stock algorithms: SB3's ``learn`` with validations and checkpoints."""

    def validate_fn(self, data: dict, encoder) -> Callable:
        raise NotImplementedError

    def learn(self, data: dict, encoder, t0: float, on_eval) -> dict:
        cfg, model, run = self.cfg, self.model, self.run
        callback = CheckpointAndEval(run, self.validate_fn(data, encoder), cfg.run.eval_every,
                                     cfg.run.checkpoint_every, t0, on_eval, cfg.run.select_on,
                                     validate_start=self.validate_start(), before_eval=self.before_eval(),
                                     checkpoint_extra=self.checkpoint_extra())
        remaining = cfg.algorithm.timesteps - model.num_timesteps
        start, updates_before, steps_before = time.time(), model._n_updates, model.num_timesteps
        if remaining > 0:
            bar = self.progress and sys.stderr.isatty()  # a live bar in a terminal, plain lines in a log file
            callbacks = [callback] if bar or not self.progress else [callback, LogProgress(cfg.algorithm.timesteps)]
            try:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=model.num_timesteps == 0,
                            progress_bar=bar, tb_log_name=cfg.algorithm.algo)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: checkpoint where it stopped, so --resume goes on from here
                run.save_checkpoint(model, time.time() - t0, self.checkpoint_extra())
                raise
            callback.finish()
        wall = max(time.time() - start, 1e-9)
        run.save_checkpoint(model, time.time() - t0, self.checkpoint_extra())
        return {"updates": int(model._n_updates), "updates_per_s": round((model._n_updates - updates_before) / wall, 1),
                "env_steps_per_s": round((model.num_timesteps - steps_before) / wall, 1)}

    def validate_start(self) -> bool:
        return False

    def before_eval(self) -> Optional[Callable]:
        return None

    def checkpoint_extra(self) -> Optional[Callable]:
        return None


class RMNTrainer(SB3Trainer):
    """The RMN agent (:mod:`agents.rmn`), with its warm start or writer pretraining."""

    def prepare(self, resume: bool) -> None:
        self.continuing = resume and self.run.has_checkpoint()
        # a run continuing from its checkpoint holds its warm start already: the init_from run may be gone by now
        self.warm = load_warm_start(self.cfg) if self.cfg.warm_start.init_from and not self.continuing else None

    def given_encoder(self):
        return None if self.warm is None else self.warm[1]

    def build(self, data: dict, encoder) -> None:
        cfg = self.cfg
        env = make_env(cfg, data["train"], encoder)
        env.reset(seed=cfg.run.seed)
        if self.continuing:
            ckpt = self.run.checkpoint
            self.model = RMN.load(ckpt / "model.zip", env=env, device=cfg.run.device)
            self.model.load_replay_buffer(ckpt / "replay.pkl")
            self.model.tensorboard_log = str(self.run.tensorboard)
            return
        self.model = make_rmn(cfg, env, encoder, str(self.run.tensorboard))
        if self.warm is not None:
            warm_start(self.model, self.warm[0])
        elif cfg.warm_start.pretrains:
            warm_start(self.model, pretrain_writer(cfg, self.run.path, self.progress))

    def validate_fn(self, data: dict, encoder) -> Callable:
        val_embeddings = encoder.embed_dataset(data["val"])
        long_val = load_long_val(self.cfg)
        long_embeddings = None if long_val is None else encoder.embed_dataset(long_val)

        def validate(model) -> dict:
            row = validation_metrics(model, data["val"], val_embeddings)
            if long_val is not None:
                row.update({f"long_{k}": v for k, v in validation_metrics(model, long_val, long_embeddings).items()})
            return row

        self.validate = validate
        return validate

    def validate_start(self) -> bool:
        return (self.warm is not None or self.cfg.warm_start.pretrains) and not self.continuing

    def before_eval(self) -> Optional[Callable]:
        return (lambda model: model.refresh()) if self.cfg.rmn.refresh.refresh_every else None

    def select(self) -> None:
        """Keep the best model on validation as ``model.zip``, and say which it is (``selected``)."""
        best = self.run.path / "best_model.zip"
        if best.exists():
            self.model = RMN.load(best, env=self.model.get_env(), device=self.cfg.run.device)
            row = json.loads((self.run.path / "best_model.json").read_text())
            score = "gap_closed" if "gap_closed" in row else "mse"
            n = len(pd.read_csv(self.run.eval_log)) if self.run.eval_log.exists() else 1
            start = " (its starting point: no later model beat it)" if row["timesteps"] == 0 else ""
            self.extra["selected"] = (f"the model of step {row['timesteps']}{start}, the best validation {score} "
                                      f"({row[score]:.4g}) of {n} validation(s)")
        else:
            self.extra["selected"] = "the final model (no validation was made)"
        save_model(self.model, self.run.path / "model.zip")

    def evaluate(self, dataset, encoder) -> tuple:
        return evaluate_rmn(self.model, dataset)

    def final_validation(self, data: dict, encoder) -> dict:
        return self.validate(self.model)

    def summary(self, learned: dict) -> dict:
        cfg = self.cfg
        out = {"trained_timesteps": int(cfg.algorithm.timesteps), "selected": self.extra["selected"]}
        if cfg.data.long_val_options:
            out["select_on"] = cfg.run.select_on
        pretrained = self.run.path / "writer_pretrain" / "summary.json"
        if cfg.warm_start.pretrains and pretrained.exists():  # the writer pretraining's own scores
            before = json.loads(pretrained.read_text())
            out["pretrain_writer"] = {k: before[k] for k in ("epochs", "best_epoch", "train_wall_s", "val_gap_closed",
                                                             "test_gap_closed", "test_mse") if k in before}
        return out


class StockTrainer(SB3Trainer):
    """A stock SB3 / sb3-contrib algorithm on the env in its ``"online"`` predictor mode; the env's predictor is
    saved beside the model (``predictor.pt``) and frozen for evaluation."""

    def __init__(self, cfg: TrainConfig, run: RunDirectory, progress: bool, hyperparams: Optional[dict] = None):
        super().__init__(cfg, run, progress)
        self.hyperparams = hyperparams

    def prepare(self, resume: bool) -> None:
        cfg, run = self.cfg, self.run
        self.continuing = resume and run.has_checkpoint()
        saved = run.path / "hyperparams.json"
        if resume and saved.exists():
            self.extras = json.loads(saved.read_text()).get("hyperparams", {})
        else:
            self.extras = stock_extras(cfg.algorithm.algo, self.hyperparams)
        # the constructor arguments checked now, before any data is loaded
        sb3_kwargs(cfg, cfg.algorithm.algo, self.extras, action_dim(cfg.memory.n_slots, cfg.memory.memory_dim))

    def build(self, data: dict, encoder) -> None:
        cfg = self.cfg
        env = make_env(cfg, data["train"], encoder, predictor_hidden=cfg.memory.predictor_hidden)
        env.reset(seed=cfg.run.seed)
        if self.continuing:
            ckpt = self.run.checkpoint
            env.set_predictor(load_predictor(ckpt / "predictor.pt"), "online")
            self.model = algorithm_class(cfg.algorithm.algo).load(ckpt / "model.zip", env=env, device=cfg.run.device)
            if (ckpt / "replay.pkl").exists() and hasattr(self.model, "load_replay_buffer"):
                self.model.load_replay_buffer(ckpt / "replay.pkl")
            self.model.tensorboard_log = str(self.run.tensorboard)
        else:
            write_json(self.run.path / "hyperparams.json", {"algo": cfg.algorithm.algo, "hyperparams": self.extras})
            self.model = make_stock_model(cfg, env, self.extras, str(self.run.tensorboard))
        self.env, self.encoder = env, encoder

    def validate_fn(self, data: dict, encoder) -> Callable:
        val_env = evaluation_env(self.cfg, data["val"], encoder, self.env.predictor)  # sees the predictor train
        return lambda model: global_row(evaluate_policy_on(model, val_env)[0])

    def checkpoint_extra(self) -> Callable:
        return lambda ckpt: save_predictor(self.env.predictor, ckpt / "predictor.pt")

    def select(self) -> None:
        """Keep the final model (as SB3's own scripts do; ``best_model.zip`` is the best on validation)."""
        save_model(self.model, self.run.path / "model.zip")
        save_predictor(self.env.predictor, self.run.path / "predictor.pt")
        self.predictor = load_predictor(self.run.path / "predictor.pt")  # evaluate exactly what was saved

    def evaluate(self, dataset, encoder) -> tuple:
        return evaluate_policy_on(self.model, evaluation_env(self.cfg, dataset, encoder, self.predictor))

    def final_validation(self, data: dict, encoder) -> dict:
        return global_row(self.evaluate(data["val"], encoder)[0])

    def summary(self, learned: dict) -> dict:
        return {"selected": f"the final model (step {int(self.model.num_timesteps)}); best_model.zip is the best on "
                            "validation"}


class BaselineTrainer(Trainer):
    """A supervised baseline (:mod:`agents.baselines`), trained by epochs with early stopping; its best model on
    validation is ``model.pt``. After every epoch it writes a checkpoint (the training state of
    :func:`~agents.baselines.training.training_state` and the best model so far), so an interrupted run resumes from
    its last finished epoch and ends as if it had not stopped."""

    def prepare(self, resume: bool) -> None:
        self.continuing = resume and self.run.has_checkpoint()

    def build(self, data: dict, encoder) -> None:
        n_targets = len(data["train"].target_names)
        self.device = get_device(self.cfg.run.device)
        self.model = make_baseline(self.cfg, encoder.embed_dim, n_targets).to(self.device)
        self.emb = {s: encoder.embed_dataset(d) for s, d in data.items()}

    def learn(self, data: dict, encoder, t0: float, on_eval) -> dict:
        run, cfg = self.run, self.cfg
        state = None
        if self.continuing:
            state = torch.load(run.checkpoint / TRAINING_STATE, map_location=self.device, weights_only=False)
            seen = state["counters"]["seen"]
            run.truncate_eval_log(lambda steps: steps <= seen)  # the epochs after the checkpoint are redone
        elif run.eval_log.exists():
            run.eval_log.unlink()

        def on_epoch(row: dict, best: bool, training: dict) -> None:
            row = {"timesteps": row["timesteps"], "epoch": row["epoch"], "wall_s": round(time.time() - t0, 1),
                   **{k: v for k, v in row.items() if k not in ("timesteps", "epoch")}}
            run.append_eval_row(row)
            if best:
                save_baseline(run.path / "model.pt", self.model, encoder,
                              {"window": cfg.baseline.bptt_window, "epoch": row["epoch"]})
            run.write_checkpoint(row["timesteps"], time.time() - t0,
                                 lambda ckpt: atomic_torch_save(training, ckpt / TRAINING_STATE))
            if on_eval is not None:
                on_eval(row)

        stats = fit_baseline(cfg, self.model, self.emb, data, on_epoch, self.progress, resume=state)
        wall = max(stats.pop("learn_wall_s"), 1e-9)
        self.extra = {"model": cfg.algorithm.algo, "window": int(cfg.baseline.bptt_window), **stats,
                      "n_params": int(sum(p.numel() for p in self.model.parameters())),
                      "selected": f"the model of epoch {stats['best_epoch']} of {stats['epochs']}, the best "
                                  "validation MSE"}
        return {"updates": stats["updates"], "updates_per_s": round(stats["updates"] / wall, 1)}

    def select(self) -> None:
        self.model, _ = load_baseline(self.run.path / "model.pt", device=str(self.device))

    def evaluate(self, dataset, encoder) -> tuple:
        return evaluate_baseline(self.model, encoder.embed_dataset(dataset), dataset)

    def final_validation(self, data: dict, encoder) -> dict:
        return validation_row(self.model, self.emb["val"], data["val"])

    def summary(self, learned: dict) -> dict:
        return dict(self.extra)


def seed_process(cfg: TrainConfig) -> None:
    """Set torch's CPU threads (``threads``) and seed Python's, NumPy's and torch's generators (``seed``)."""
    torch.set_num_threads(cfg.run.threads)
    set_random_seed(cfg.run.seed)


def make_trainer(cfg: TrainConfig, run: RunDirectory, progress: bool, hyperparams: Optional[dict] = None) -> Trainer:
    """The :class:`Trainer` of ``cfg.algorithm.algo``; ``hyperparams`` (stock algorithms only) are extra
    constructor arguments."""
    algo = cfg.algorithm.algo
    if algo in STOCK_ALGORITHMS:
        return StockTrainer(cfg, run, progress, hyperparams)
    if hyperparams:
        raise ValueError(f"--hyperparams {', '.join(sorted(hyperparams))}: constructor arguments are for the stock "
                         f"algorithms, not --algo {algo} (set config fields as flags)")
    return BaselineTrainer(cfg, run, progress) if algo in BASELINES else RMNTrainer(cfg, run, progress)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_eval: Optional[Callable[[dict], None]] = None, hyperparams: Optional[dict] = None) -> dict:
    """Train per ``cfg`` into ``cfg.run.out``; with ``resume`` continue from its latest checkpoint.

    :param on_eval: called with each validation row (``timesteps``, ``wall_s``, ``mse``, ``gap_closed``...);
        raising from it stops training (used for pruning)
    :param hyperparams: ``key: value`` overrides: config fields (bare names) go into ``cfg``, anything else
        (stock algorithms only) to the algorithm's constructor, as in the zoo file
    :return: the summary (also ``summary.json``): the algorithm, the recipe and its overrides, test metrics, the
        final validation metrics (``val_*``), wall time and updates per second
    """
    run = RunDirectory(cfg.run.out)
    config_part, extras = split_hyperparams(hyperparams)
    if config_part and not resume:
        cfg = cfg.update(config_part, "hyperparams")
    cfg = run.config(cfg, resume)
    trainer = make_trainer(cfg, run, progress, extras)
    trainer.prepare(resume)  # every check before anything is written
    run.open(cfg)
    algo = cfg.algorithm
    if isinstance(trainer, SB3Trainer) and algo.learning_starts >= algo.timesteps:
        print(f"warning: learning_starts ({algo.learning_starts}) >= timesteps ({algo.timesteps}): the first update "
              "comes after the learning_starts random steps, so this run makes none", file=sys.stderr)
    seed_process(cfg)

    t0 = time.time()
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, run.path, progress, given=trainer.given_encoder())
    trainer.build(data, encoder)
    if resume and not trainer.continuing:
        print(f"{run.path} has no checkpoint yet: its training starts again from step 0 (a finished encoder and "
              "writer pretraining are kept)", file=sys.stderr)
    state = run.checkpoint_state() if trainer.continuing else {}
    t0 -= state.get("wall_s", 0.0)
    if resume:
        run.restore_best(state)
    learned = trainer.learn(data, encoder, t0, on_eval)
    train_wall = time.time() - t0
    trainer.select()

    metrics, results = trainer.evaluate(data["test"], encoder)
    write_outputs(run.path, metrics, results, data["test"])
    val = trainer.final_validation(data, encoder)
    model = trainer.model
    timesteps = int(model.num_timesteps) if hasattr(model, "num_timesteps") else trainer.extra["segments_seen"]
    summary = {"algo": cfg.algorithm.algo, "recipe": cfg.recipe, "overrides": cfg.overrides(),
               "timesteps": timesteps, "train_wall_s": round(train_wall, 1), **learned,
               **trainer.summary(learned), **headline_metrics(metrics, val, cfg.data.targets)}
    run.write_summary(summary)
    return summary


def pretrain_writer_options(cfg: TrainConfig) -> dict:
    """The dataset reader options of the writer pretraining's train split, on top of the train split's own:
    ``pretrain_writer_options``, or by default :data:`SHORT_MOVIES` for the synthetic set and none for others."""
    if cfg.warm_start.pretrain_writer_options is not None:
        return dict(cfg.warm_start.pretrain_writer_options)
    return dict(SHORT_MOVIES) if cfg.data.dataset == "synthetic" else {}


def pretrain_config(cfg: TrainConfig, out: Path) -> TrainConfig:
    """The config of the RMN's writer pretraining: a ``memory_tbptt`` run of full BPTT with the agent's networks
    on the train split read with :func:`pretrain_writer_options`, with the run's encoder, into
    ``out/writer_pretrain``."""
    epochs = cfg.warm_start.pretrain_writer_epochs
    return cfg.update({
        "train_dataset_options": {**cfg.data.train_dataset_options, **pretrain_writer_options(cfg)},
        "encoder": str(out / "encoder.pt"), "out": str(out / "writer_pretrain"), "long_val_options": {},
        "select_on": "val", "init_from": "", "pretrain_writer_epochs": 0, "algo": "memory_tbptt",
        "bptt_window": 0, "epochs": epochs, "baseline_lr": PRETRAIN_LR, "batch_movies": PRETRAIN_BATCH_MOVIES,
        "patience": epochs}, "writer pretraining")


def pretrain_writer(cfg: TrainConfig, out: Path, progress: bool = True) -> MemoryTBPTT:
    """The agent's write network, predictor and ``m0`` trained end to end by full BPTT (:func:`pretrain_config`),
    kept in ``out/writer_pretrain/``: the model of its best validation epoch.

    A pretraining made with the same settings is reused, so an interrupted run resumes after it, or within it from
    its last finished epoch; one made with other settings is redone from the start.
    """
    sub = pretrain_config(cfg, out)
    run = RunDirectory(sub.run.out)
    if not (run.summary_file.exists() and run.made_with(sub)):  # not a finished pretraining with these settings
        resume = run.continues(sub)
        if not resume:
            shutil.rmtree(run.path, ignore_errors=True)
        train(sub, resume=resume, progress=progress)
    return load_baseline(run.path / "model.pt")[0]

