"""Train an agent on ``LiRISMemory-v0`` end to end: data, encoder, learning, checkpoints, evaluation.

``train(config)`` is what ``python -m agents.train_ddpg`` runs. A run directory holds::

    config.json        the TrainConfig
    encoder.pt         the segment encoder (with the train split's normalisation statistics)
    writer_pretrain/   the writer pretraining: a memory_tbptt baseline run the agent starts from (see
                       :func:`pretrain_writer`; absent with pretrain_writer_epochs=0 or init_from)
    checkpoint/        latest periodic checkpoint (model.zip, replay.pkl, best_<step>/: the best models as they
                       were then, state.json), written atomically
    eval_log.csv       validation metrics during training (training curves)
    best_model.zip     the model with the best validation score so far (gap_closed, else -MSE)
    model.zip          the selected model: the best on validation (SB3 zip: actor, critic, predictor, m0,
                       encoder, statistics)
    metrics.csv        test metrics, global and per movie
    predictions/       one CSV per test movie: time, prediction and truth per target
    figures/           predictions.png, memory_attention.png, training_curves.png
    tb/                TensorBoard logs
    summary.json       headline numbers and wall time
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import set_random_seed

from affect_env.data import FeatureStats, MovieDataset, load_dataset
from affect_env.encoder import PoolingEncoder, SegmentEncoder, pretrain_encoder
from affect_env.env import LiRISMemoryEnv
from affect_env.memory import check_choice, check_count, check_reward_error
from agents.baselines.models import MemoryTBPTT
from agents.baselines.training import load_baseline, train_baseline
from agents.config import SELECT_ON, TrainConfig
from agents.rmn import RMN
from agents.rmn.buffers import POSITIONS, SPACINGS
from agents.rmn.networks import check_write_top_k, erase_biases
from agents.rmn.rmn import JUMP_MODES, check_adjoint, check_refresh, weight_schedule

SPLITS = ("train", "val", "test")


def load_split(cfg: TrainConfig, split: str, **options) -> MovieDataset:
    """The config's dataset ``split`` with its targets, read with :func:`split_options` and ``options`` on top."""
    return load_dataset(cfg.dataset, split, targets=cfg.targets, segment_seconds=cfg.segment_seconds,
                        **{**split_options(cfg, split), **options})


def load_splits(cfg: TrainConfig) -> dict:
    """``{split: MovieDataset}`` for the config's dataset and targets (the train split with the config's
    ``train_dataset_options`` on top of its ``dataset_options``)."""
    return {s: load_split(cfg, s) for s in SPLITS}


def load_long_val(cfg: TrainConfig) -> Optional[MovieDataset]:
    """The second validation set (the validation split read with ``long_val_options`` on top), or ``None``."""
    return load_split(cfg, "val", **cfg.long_val_options) if cfg.long_val_options else None


def check_rmn_only_options(cfg: TrainConfig, entry: str) -> None:
    """``ValueError`` where a config asks ``entry`` (an algorithm other than the RMN agent's) for a second
    validation set, which only :func:`train` scores, or for a warm start, which only the RMN agent takes."""
    if cfg.long_val_options or cfg.select_on != "val":
        raise ValueError(f"{entry}: long_val_options (--long-val-option) and select_on (--select-on) are for the "
                         "RMN agent (python -m agents.train_ddpg) only")
    if cfg.init_from:
        raise ValueError(f"{entry}: init_from (--init-from) is for the RMN agent (python -m agents.train_ddpg) only")


def split_options(cfg: TrainConfig, split: str) -> dict:
    """The dataset reader's options for ``split``: ``train_dataset_options`` apply to the train split only."""
    return {**cfg.dataset_options, **(cfg.train_dataset_options if split == "train" else {})}


def build_encoder(cfg: TrainConfig, data: dict, out: Path, progress: bool = True) -> SegmentEncoder:
    """The run's segment encoder: reuse ``out/encoder.pt`` (resume), load a given one, or make/pretrain it."""
    saved = out / "encoder.pt"
    if saved.exists():
        return SegmentEncoder.load(saved)
    if cfg.init_from:
        encoder = load_warm_start(cfg)[1]
    elif cfg.encoder == "pooling":
        encoder = PoolingEncoder(FeatureStats.fit(data["train"]))
    elif cfg.encoder == "lstm":
        encoder, history = pretrain_encoder(
            data["train"], data["val"], hidden_size=cfg.encoder_hidden,
            reconstruction_weight=cfg.encoder_reconstruction, epochs=cfg.encoder_epochs, seed=cfg.seed,
            progress=progress)
        pd.DataFrame(history).to_csv(out / "encoder_history.csv", index=False)
    else:
        path = Path(cfg.encoder)
        if not path.exists():
            raise ValueError(f"--encoder {cfg.encoder}: give 'lstm', 'pooling' or the path of a saved encoder")
        encoder = SegmentEncoder.load(path)
    encoder.save(saved)
    return encoder


def check_config(cfg: TrainConfig) -> None:
    """The agent's settings checked before any data is loaded or encoder trained (a ``ValueError`` names the field).

    The same checks run again where the agent is built; here they fail in a second, not after the pretraining.
    """
    check_write_top_k(cfg.write_top_k)
    weight_schedule("write_top_k_weight", cfg.write_top_k_weight)
    weight_schedule("same_step_credit", cfg.same_step_credit)
    erase_biases(cfg.erase_bias, cfg.memory_dim)
    check_reward_error(cfg.reward)
    check_choice("jump_mode", cfg.jump_mode, JUMP_MODES)
    check_choice("jump_spacing", cfg.jump_spacing, SPACINGS)
    check_choice("jump_positions", cfg.jump_positions, POSITIONS)
    check_adjoint(cfg.jump_mode, cfg.jump_weight, cfg.refresh_every, cfg.adjoint_step)
    check_refresh(cfg.refresh_movies, cfg.refresh_window)
    check_choice("select_on", cfg.select_on, SELECT_ON)
    if cfg.select_on != "val" and not cfg.long_val_options:
        raise ValueError(f"select_on={cfg.select_on!r} scores a second validation set: give its options "
                         "(long_val_options, or --long-val-option KEY=VALUE)")
    check_count("pretrain_writer_epochs", cfg.pretrain_writer_epochs, "no writer pretraining")
    if cfg.pretrain_writer_options is not None and not isinstance(cfg.pretrain_writer_options, dict):
        raise ValueError("pretrain_writer_options must be a JSON object of dataset reader options (or null: the "
                         f"default), got {cfg.pretrain_writer_options!r}")
    if cfg.init_from:
        load_warm_start(cfg)


#: the fields a warm-start model must share with the agent's config (``TrainConfig.init_from``)
WARM_START_FIELDS = ("n_slots", "memory_dim", "net_arch", "predictor_hidden", "read_heads", "read_key_dim",
                     "coupled_gates", "write_top_k")


def load_warm_start(cfg: TrainConfig) -> tuple:
    """``(model, encoder)`` of the ``memory_tbptt`` run named by ``cfg.init_from``, checked against ``cfg``.

    :raises ValueError: naming the run and the field where it is not a ``memory_tbptt`` model, does not predict
        ``len(cfg.targets)`` targets, or its networks differ from the agent's (:data:`WARM_START_FIELDS`), or where
        ``cfg.encoder`` names another encoder than the run's own
    """
    where = f"init_from {cfg.init_from}"
    if cfg.encoder != "lstm":
        raise ValueError(f"{where}: the agent takes that run's segment encoder; leave encoder at its default "
                         f"(got {cfg.encoder!r})")
    try:
        model, encoder = load_baseline(Path(cfg.init_from))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if model.name != "memory_tbptt":
        raise ValueError(f"{where}: a {model.name!r} model; a warm start needs a memory_tbptt run "
                         "(python -m agents.train_baseline --model memory_tbptt)")
    saved, wanted = model.config(), cfg.to_dict()  # both hold sizes as lists
    mismatched = [f"{k} {saved[k]!r} (config: {wanted[k]!r})" for k in WARM_START_FIELDS if saved[k] != wanted[k]]
    if saved["n_targets"] != len(cfg.targets):
        mismatched.append(f"n_targets {saved['n_targets']} (config: {len(cfg.targets)} targets)")
    if mismatched:
        raise ValueError(f"{where}: its networks differ from the agent's: {'; '.join(mismatched)}")
    return model, encoder


def warm_start(model: RMN, source: MemoryTBPTT) -> None:
    """Copy a ``memory_tbptt`` model's write network (into the actor and its target), predictor and ``m0`` into
    ``model``'s policy; the critic keeps its fresh weights."""
    model.policy.actor.load_state_dict(source.actor.state_dict())
    model.policy.actor_target.load_state_dict(source.actor.state_dict())
    model.policy.predictor.load_state_dict(source.predictor.state_dict())


#: the synthetic movies the writer is pretrained on by default (``TrainConfig.pretrain_writer_options``): a
#: quarter of the default's length and a tenth of its dependency distance, so that exact gradients through whole
#: movies are cheap and every character's introduction and reappearances fall within a few dozen segments
SHORT_MOVIES = {"length": 100, "dependency_distance": 20}
#: how the writer pretraining's BPTT updates: movies per update, Adam learning rate
PRETRAIN_BATCH_MOVIES, PRETRAIN_LR = 16, 1e-3


def pretrain_writer_options(cfg: TrainConfig) -> dict:
    """The dataset reader options of the writer pretraining's train split, on top of the train split's own:
    ``cfg.pretrain_writer_options``, or by default :data:`SHORT_MOVIES` for the synthetic set and none for others."""
    if cfg.pretrain_writer_options is not None:
        return dict(cfg.pretrain_writer_options)
    return dict(SHORT_MOVIES) if cfg.dataset == "synthetic" else {}


def pretrain_writer(cfg: TrainConfig, out: Path, progress: bool = True) -> MemoryTBPTT:
    """The agent's write network, predictor and ``m0`` trained end to end by full BPTT (``cfg.pretrain_writer_epochs``
    epochs of a ``memory_tbptt`` baseline on the train split read with :func:`pretrain_writer_options`, with the
    run's encoder ``out/encoder.pt``), kept in ``out/writer_pretrain/``: the model of its best validation epoch.

    A finished pretraining (its ``summary.json`` written) made with the same settings is reused, so an interrupted
    run resumes after it; an unfinished one, or one made with other settings, is redone from the start.
    """
    run = out / "writer_pretrain"
    sub = cfg.update({"train_dataset_options": {**cfg.train_dataset_options, **pretrain_writer_options(cfg)},
                      "encoder": str(out / "encoder.pt"), "out": str(run), "long_val_options": {},
                      "select_on": "val", "init_from": "", "pretrain_writer_epochs": 0})
    epochs = cfg.pretrain_writer_epochs
    if not _finished_pretraining(run, sub, epochs):
        shutil.rmtree(run, ignore_errors=True)
        train_baseline(sub, "memory_tbptt", window=0, epochs=epochs, lr=PRETRAIN_LR,
                       batch_movies=PRETRAIN_BATCH_MOVIES, patience=epochs, progress=progress)
    return load_baseline(run / "model.pt")[0]


def _finished_pretraining(run: Path, cfg: TrainConfig, epochs: int) -> bool:
    """Whether ``run`` holds a finished writer pretraining of ``epochs`` epochs made with the settings ``cfg``."""
    if not (run / "summary.json").exists() or not (run / "config.json").exists():
        return False
    done = json.loads((run / "summary.json").read_text())
    used = json.loads((run / "config.json").read_text())
    return done.get("epochs") == epochs and used == json.loads(json.dumps(cfg.to_dict()))


def make_env(cfg: TrainConfig, dataset: MovieDataset, encoder: SegmentEncoder, **kwargs) -> LiRISMemoryEnv:
    return LiRISMemoryEnv(dataset=dataset, encoder=encoder, n_slots=cfg.n_slots, memory_dim=cfg.memory_dim,
                          targets=None, reward=cfg.reward, **kwargs)


def make_rmn(cfg: TrainConfig, env: LiRISMemoryEnv, encoder: SegmentEncoder, tensorboard_log: Optional[str]) -> RMN:
    """An RMN agent configured by ``cfg``, carrying ``encoder`` (weights and statistics) in its policy."""
    policy_kwargs = dict(n_targets=env.n_targets, net_arch=list(cfg.net_arch),
                         predictor_hidden=list(cfg.predictor_hidden), read_heads=cfg.read_heads,
                         read_key_dim=cfg.read_key_dim, erase_bias=cfg.erase_bias, input_bias=cfg.input_bias,
                         coupled_gates=cfg.coupled_gates, write_top_k=cfg.write_top_k, encoder_spec=encoder.spec())
    model = RMN(
        "RMNPolicy", env, learning_rate=learning_rate_schedule(cfg), buffer_size=min(cfg.buffer_size, cfg.timesteps + 1),
        learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
        train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps, exploration_std=cfg.exploration_std,
        window=cfg.window, jump_weight=cfg.jump_weight, jump_distance=cfg.jump_distance,
        jump_mode=cfg.jump_mode, jump_reads=cfg.jump_reads, jump_spacing=cfg.jump_spacing,
        jump_positions=cfg.jump_positions, adjoint_step=cfg.adjoint_step,
        value_scale=cfg.value_scale, same_step_credit=cfg.same_step_credit,
        write_top_k_weight=cfg.write_top_k_weight, refresh_every=cfg.refresh_every,
        refresh_fit=cfg.refresh_fit, refresh_movies=cfg.refresh_movies, refresh_window=cfg.refresh_window,
        refresh_tail=cfg.refresh_tail, reward=cfg.reward,
        update_thread=cfg.update_thread,
        tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs, seed=cfg.seed, device=cfg.device,
    )
    model.policy.encoder.load_state_dict(encoder.state_dict())
    if cfg.init_from:
        warm_start(model, load_warm_start(cfg)[0])
    return model


def learning_rate_schedule(cfg: TrainConfig):
    """A constant rate, or a linear decay from ``learning_rate`` to ``final_learning_rate`` over the run."""
    if cfg.final_learning_rate is None:
        return cfg.learning_rate
    start, end = cfg.learning_rate, cfg.final_learning_rate
    return lambda progress_remaining: end + (start - end) * progress_remaining


def atomic_save_model(model, path: Path) -> None:
    """``model.save`` to a temporary zip then rename, so a crash never leaves a half-written model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def selection_scores(row: dict) -> dict:
    """The scores a model can be selected on, from one validation row (higher is better): ``"val"``, the
    validation split's ``gap_closed`` (``-mse`` where the dataset has no oracle), and, where the row scored a
    second validation set (``long_*`` columns), ``"long"``, its score, and ``"mean"``, the mean of the two."""
    scores = {"val": row.get("gap_closed", -row["mse"])}
    if "long_mse" in row:
        scores["long"] = row.get("long_gap_closed", -row["long_mse"])
        scores["mean"] = 0.5 * (scores["val"] + scores["long"])
    return scores


class CheckpointAndEval(BaseCallback):
    """Every ``eval_every`` steps: validation metrics to ``eval_log.csv`` and the best model so far (by
    ``select_on``, see :func:`selection_scores`) to ``best_model.zip``; every ``checkpoint_every``: an atomic
    checkpoint (model, replay buffer, progress) that ``--resume`` continues from.

    Where the rows score a second validation set, the best model by each score is also kept, in
    ``best/<score>.zip`` (with its row in ``best/<score>.json``), so that one run shows what each choice picks.
    """

    def __init__(self, run_dir: Path, evaluate_fn, eval_every: int, checkpoint_every: int, t0: float,
                 on_eval: Optional[Callable[[dict], None]] = None, select_on: str = "val",
                 validate_start: bool = False) -> None:
        super().__init__()
        self.run_dir, self.evaluate_fn, self.on_eval = run_dir, evaluate_fn, on_eval
        self.validate_start = validate_start  # a warm-started agent: validate it at step 0 as well
        self.eval_every, self.checkpoint_every, self.t0 = eval_every, checkpoint_every, t0
        self.select_on = check_choice("select_on", select_on, SELECT_ON)
        self.eval_log = run_dir / "eval_log.csv"
        self.last_eval: Optional[dict] = None
        self.best_scores: dict = {}  # score name -> best value so far (resuming: those of the interrupted part)
        for name in SELECT_ON:
            path = run_dir / "best" / f"{name}.json"
            if path.exists():
                self.best_scores[name] = selection_scores(json.loads(path.read_text()))[name]
        best = run_dir / "best_model.json"
        if best.exists():
            self.best_scores[self.select_on] = selection_scores(json.loads(best.read_text()))[self.select_on]

    def _on_training_start(self) -> None:
        """Resuming: forget the validations after the checkpoint, which the resumed run redoes. A warm-started
        agent (``validate_start``) that has not trained yet is validated first, so that the run keeps its start
        where no later model beats it on validation."""
        n = self.model.num_timesteps
        validate_now = bool(self.validate_start and self.eval_every and n == 0)
        if self.eval_log.exists():
            rows = pd.read_csv(self.eval_log)
            kept = rows[rows["timesteps"] < n] if validate_now else rows[rows["timesteps"] <= n]
            if len(kept) < len(rows):
                atomic_write_text(self.eval_log, kept.to_csv(index=False))
        if validate_now:
            self._validate()

    def _validate(self) -> dict:
        """Validation metrics of the model now, logged (``eval_log.csv``, TensorBoard) and kept if best."""
        row = {"timesteps": self.model.num_timesteps, "wall_s": round(time.time() - self.t0, 1),
               **self.evaluate_fn(self.model)}
        pd.DataFrame([row]).to_csv(self.eval_log, mode="a", header=not self.eval_log.exists(), index=False)
        for k, v in row.items():
            if k not in ("timesteps",):
                self.logger.record(f"eval/{k}", v)
        self.last_eval = row
        self._keep_best(row)
        return row

    def _on_step(self) -> bool:
        n = self.model.num_timesteps
        row = None
        if self.eval_every and n % self.eval_every == 0:
            if getattr(self.model, "refresh_every", 0):  # RMN: evaluate a predictor in step with its writer
                self.model.refresh()
            row = self._validate()
        if self.checkpoint_every and n % self.checkpoint_every == 0:  # after the evaluation's refresh, so that a
            save_checkpoint(self.model, self.run_dir, time.time() - self.t0)  # resumed run goes on alike
        if row is not None and self.on_eval is not None:
            self.on_eval(row)  # may raise (e.g. optuna.TrialPruned) to stop the run
        return True

    def _keep_best(self, row: dict) -> None:
        """Save the model as ``best_model.zip`` where ``row`` beats the best ``select_on`` score so far, and, with a
        second validation set, as ``best/<score>.zip`` for each score it beats."""
        scores = selection_scores(row)
        if self.select_on not in scores:
            raise ValueError(f"select_on={self.select_on!r}: the validation rows have no such score "
                             f"(scores: {sorted(scores)})")
        for name, score in scores.items():
            if name in self.best_scores and score <= self.best_scores[name]:
                continue
            self.best_scores[name] = score
            paths = [self.run_dir / "best" / name] if len(scores) > 1 else []
            if name == self.select_on:
                paths.append(self.run_dir / "best_model")
            for path in paths:
                atomic_save_model(self.model, path.with_suffix(".zip"))
                atomic_write_text(path.with_suffix(".json"), json.dumps(row, indent=2) + "\n")


#: what a run directory keeps of the best models so far (see :class:`CheckpointAndEval`)
BEST_ENTRIES = ("best_model.zip", "best_model.json", "best")


def save_checkpoint(model, run_dir: Path, wall_s: float) -> None:
    """Write ``run_dir/checkpoint``: the model, its replay buffer, a copy of the best models so far
    (``best_<step>/``), then ``state.json`` (steps, wall time, that copy's name). Each file is written
    atomically and ``state.json`` last, so a crash leaves the previous checkpoint's state in place."""
    ckpt = run_dir / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    atomic_save_model(model, ckpt / "model.zip")
    if getattr(model, "replay_buffer", None) is not None:
        tmp = ckpt / "replay.tmp.pkl"
        model.save_replay_buffer(tmp)
        os.replace(tmp, ckpt / "replay.pkl")
    best = ckpt / f"best_{int(model.num_timesteps)}"
    shutil.rmtree(best, ignore_errors=True)  # left by a crash
    best.mkdir()
    for entry in BEST_ENTRIES:
        copy_entry(run_dir / entry, best / entry)
    atomic_write_text(ckpt / "state.json", json.dumps({"num_timesteps": int(model.num_timesteps), "wall_s": wall_s,
                                                       "best": best.name}))
    for old in ckpt.glob("best_*"):
        if old != best:
            shutil.rmtree(old)


def restore_best(run_dir: Path, state: dict) -> None:
    """Resuming: put back the best models as the checkpoint described by ``state`` saw them (none where there is
    no checkpoint, ``state == {}``), so that the resumed run selects among the validations it keeps, not among
    those of the interrupted part after its checkpoint. A checkpoint written before these copies existed (no
    ``"best"`` in ``state``) leaves the best models as they are."""
    if state and "best" not in state:
        return
    for entry in BEST_ENTRIES:
        remove_entry(run_dir / entry)
    if state:
        for entry in BEST_ENTRIES:
            copy_entry(run_dir / "checkpoint" / state["best"] / entry, run_dir / entry)


def copy_entry(src: Path, dst: Path) -> None:
    """Copy the file or folder ``src`` (if any) to ``dst``."""
    if src.is_dir():
        shutil.copytree(src, dst)
    elif src.exists():
        shutil.copy2(src, dst)


def remove_entry(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_eval: Optional[Callable[[dict], None]] = None) -> dict:
    """Train per ``cfg`` into ``cfg.out``; with ``resume`` continue from its latest checkpoint.

    :param on_eval: called with each validation row (``timesteps``, ``wall_s``, ``mse``, ``gap_closed``...)
        every ``cfg.eval_every`` steps; raising from it stops training (used for pruning)
    :return: the summary (also written to ``summary.json``): test metrics, the final validation metrics
        (``val_*``), wall time and updates/s
    """
    from agents.evaluate import evaluate_model, validation_metrics, write_outputs

    out = Path(cfg.out)
    ckpt = out / "checkpoint"
    if resume:
        if not (out / "config.json").exists():
            raise ValueError(f"--resume {out}: no config.json there (not a run directory)")
        cfg = TrainConfig.load(out / "config.json")
    elif (ckpt / "model.zip").exists():
        raise ValueError(f"{out} already holds a run: use --resume {out} to continue it or another --out")
    continuing = resume and (ckpt / "model.zip").exists()
    pretrains = bool(cfg.pretrain_writer_epochs) and not cfg.init_from  # init_from replaces the writer pretraining
    # a run continuing from its checkpoint holds its warm start already: the init_from run may be gone by now
    check_config(cfg.update({"init_from": ""}) if continuing else cfg)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
    torch.set_num_threads(cfg.threads)
    set_random_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    t0 = time.time()
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, out, progress)
    env = make_env(cfg, data["train"], encoder)
    env.reset(seed=cfg.seed)
    val_embeddings = encoder.embed_dataset(data["val"])
    long_val = load_long_val(cfg)
    long_embeddings = None if long_val is None else encoder.embed_dataset(long_val)

    def validate(m) -> dict:
        row = validation_metrics(m, data["val"], val_embeddings)
        if long_val is not None:
            row.update({f"long_{k}": v for k, v in validation_metrics(m, long_val, long_embeddings).items()})
        return row

    done, wall_before = 0, 0.0
    if continuing:
        model = RMN.load(ckpt / "model.zip", env=env, device=cfg.device)
        model.load_replay_buffer(ckpt / "replay.pkl")
        state = json.loads((ckpt / "state.json").read_text())
        done, wall_before = state["num_timesteps"], state["wall_s"]
        model.tensorboard_log = str(out / "tb")
        restore_best(out, state)
    else:
        model = make_rmn(cfg, env, encoder, str(out / "tb"))
        if pretrains:
            warm_start(model, pretrain_writer(cfg, out, progress))
        if resume:
            restore_best(out, {})
    t0 -= wall_before

    callback = CheckpointAndEval(out, validate, cfg.eval_every, cfg.checkpoint_every, t0, on_eval, cfg.select_on,
                                 validate_start=bool(cfg.init_from or pretrains) and not continuing)
    remaining = cfg.timesteps - done
    learn_start, updates_before = time.time(), model._n_updates
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=not resume, progress_bar=progress,
                    tb_log_name="rmn")
    learn_wall = time.time() - learn_start
    updates_per_s = (model._n_updates - updates_before) / max(learn_wall, 1e-9)
    train_wall = time.time() - t0
    save_checkpoint(model, out, train_wall)
    if (out / "best_model.zip").exists():  # model selection on the validation split
        model = RMN.load(out / "best_model.zip", env=env, device=cfg.device)
    atomic_save_model(model, out / "model.zip")

    metrics, results = evaluate_model(model, data["test"])
    write_outputs(out, metrics, results, data["test"])
    g = metrics.iloc[0]
    val = validate(model)
    summary = {"timesteps": int(model.num_timesteps), "trained_timesteps": int(cfg.timesteps),
               "train_wall_s": round(train_wall, 1),
               "updates_per_s": round(updates_per_s, 1),
               "test_mse": float(g["mse"]), "paper_faithful": cfg.paper_faithful}
    if long_val is not None:
        summary["select_on"] = cfg.select_on
    summary.update(headline_metrics(metrics, val, cfg.targets))
    pretrained = out / "writer_pretrain" / "summary.json"  # absent in a run resumed from before it existed
    if pretrains and pretrained.exists():  # the writer pretraining's own scores, before the RMN trained
        before = json.loads(pretrained.read_text())
        summary["pretrain_writer"] = {k: before[k] for k in ("epochs", "best_epoch", "train_wall_s", "val_gap_closed",
                                                             "test_gap_closed", "test_mse") if k in before}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def headline_metrics(metrics: pd.DataFrame, val: dict, targets) -> dict:
    """Summary fields shared by every training entry point: final validation MSE/gap_closed and test metrics."""
    g = metrics.iloc[0]
    out = {f"val_{k}": v for k, v in val.items() if k in ("mse", "gap_closed", "long_mse", "long_gap_closed")}
    for k in ("gap_closed", "mse_oracle", "mse_no_memory"):
        if k in metrics.columns:
            out[f"test_{k}"] = float(g[k])
    for name in targets:
        out[f"test_{name}_pcc"] = float(g[f"{name}_pcc"])
    return out
