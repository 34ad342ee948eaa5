"""The SB3 callback of a run: validation, best-model keeping and checkpoints on a schedule."""
from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Callable, Optional

import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from affect_env.memory import check_choice
from agents.config import SELECT_ON
from agents.runs.directory import RunDirectory, save_model, write_json


def selection_scores(row: dict) -> dict:
    """The scores a model can be selected on, from one validation row (higher is better): ``"val"``, the
    validation split's ``gap_closed`` (``-mse`` where the dataset has no oracle), and, where the row scored a
    second validation set (``long_*`` columns), ``"long"``, its score, and ``"mean"``, the mean of the two."""
    scores = {"val": row.get("gap_closed", -row["mse"])}
    if "long_mse" in row:
        scores["long"] = row.get("long_gap_closed", -row["long_mse"])
        scores["mean"] = 0.5 * (scores["val"] + scores["long"])
    return scores


class LastValues(KVWriter):
    """An SB3 logger output that keeps the values of the last dump (the logger forgets them once dumped)."""

    def __init__(self) -> None:
        self.values: dict = {}

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        self.values = {k: v for k, v in key_values.items() if isinstance(v, (int, float))}


class LogProgress(BaseCallback):
    """Progress as plain lines, every tenth of the run (``step 20,000/200,000 (10%), 0:02:01 elapsed, about
    0:18:09 left``): what a progress bar shows, readable where the output goes to a log file."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = int(total)
        self.start_step, self.start_time, self.next_tenth = 0, 0.0, 1

    def _on_training_start(self) -> None:
        self.start_step, self.start_time = self.model.num_timesteps, time.time()
        self.next_tenth = self.start_step * 10 // max(self.total, 1) + 1

    def _on_step(self) -> bool:
        n = self.model.num_timesteps
        if self.total and n * 10 >= self.next_tenth * self.total:
            elapsed = time.time() - self.start_time
            left = (self.total - n) * elapsed / max(n - self.start_step, 1)
            print(f"step {n:,}/{self.total:,} ({n / self.total:.0%}), {timedelta(seconds=int(elapsed))} elapsed, "
                  f"about {timedelta(seconds=int(left))} left", file=sys.stderr, flush=True)
            self.next_tenth = n * 10 // self.total + 1
        return True


class CheckpointAndEval(BaseCallback):
    """Every ``eval_every`` steps: validation metrics to ``eval_log.csv`` and the best model so far (by
    ``select_on``, see :func:`selection_scores`) to ``best_model.zip``; every ``checkpoint_every``: an atomic
    checkpoint (model, replay buffer, ``checkpoint_extra``'s files, progress) that ``--resume`` continues from.

    Where the rows score a second validation set, the best model by each score is also kept, in
    ``best/<score>.zip`` (with its row in ``best/<score>.json``), so that one run shows what each choice picks.

    :param evaluate_fn: the validation row of a model
    :param on_eval: called with each validation row; raising from it (e.g. ``optuna.TrialPruned``) stops the run
    :param validate_start: validate the model before it trains as well (a warm-started agent keeps its start
        where no later model beats it)
    :param before_eval: called with the model before each validation (the RMN refreshes its stored memories, so
        that the evaluated predictor reads memories its own writer makes)
    """

    def __init__(self, run: RunDirectory, evaluate_fn: Callable, eval_every: int, checkpoint_every: int, t0: float,
                 on_eval: Optional[Callable[[dict], None]] = None, select_on: str = "val",
                 validate_start: bool = False, before_eval: Optional[Callable] = None,
                 checkpoint_extra: Optional[Callable] = None) -> None:
        super().__init__()
        self.run, self.evaluate_fn, self.on_eval, self.before_eval = run, evaluate_fn, on_eval, before_eval
        self.validate_start, self.checkpoint_extra = validate_start, checkpoint_extra
        self.eval_every, self.checkpoint_every, self.t0 = eval_every, checkpoint_every, t0
        self.select_on = check_choice("select_on", select_on, SELECT_ON)
        self.last_eval: Optional[dict] = None
        self.dumped = LastValues()
        self.best_scores: dict = {}  # score name -> best value so far (resuming: those of the interrupted part)
        for name in SELECT_ON:
            path = run.path / "best" / f"{name}.json"
            if path.exists():
                self.best_scores[name] = selection_scores(json.loads(path.read_text()))[name]
        best = run.path / "best_model.json"
        if best.exists():
            self.best_scores[self.select_on] = selection_scores(json.loads(best.read_text()))[self.select_on]

    def _on_training_start(self) -> None:
        """Resuming: forget the validations after the checkpoint, which the resumed run redoes, and make the
        checkpoint's own validation where it is due and missing (a run stopped during that validation)."""
        self.model.logger.output_formats.append(self.dumped)
        n = self.model.num_timesteps
        validate_now = bool(self.validate_start and self.eval_every and n == 0)
        self.run.truncate_eval_log(lambda steps: steps < n if validate_now else steps <= n)
        if validate_now:
            self._validate()
        elif n > 0 and self.eval_every and n % self.eval_every == 0 and not self.run.has_eval_row(n):
            self._validate_due()

    def _validate(self) -> dict:
        """Validation metrics of the model now, logged (``eval_log.csv``, TensorBoard) and kept if best."""
        row = {"timesteps": self.model.num_timesteps, "wall_s": round(time.time() - self.t0, 1),
               **self.evaluate_fn(self.model), **self.training_values()}
        self.run.append_eval_row(row)
        for k, v in row.items():
            if k != "timesteps":
                self.logger.record(f"eval/{k}", v)
        self.last_eval = row
        self._keep_best(row)
        return row

    def _validate_due(self) -> dict:
        """A scheduled validation: ``before_eval`` (the RMN's refresh), then :meth:`_validate`."""
        if self.before_eval is not None:
            self.before_eval(self.model)
        return self._validate()

    def _on_step(self) -> bool:
        n = self.model.num_timesteps
        row = None
        if self.eval_every and n % self.eval_every == 0:
            row = self._validate_due()
        if self.checkpoint_every and n % self.checkpoint_every == 0:  # after the evaluation's refresh, so that a
            self.save_checkpoint()  # resumed run goes on alike
        if row is not None and self.on_eval is not None:
            self.on_eval(row)
        return True

    def training_values(self) -> dict:
        """The latest training losses, episode reward and (the RMN) writer's gradient shares the algorithm logged
        (SB3's ``train/*`` and ``rollout/ep_rew_mean``), for the training-curves figure: ``train_<name>``,
        ``rollout_ep_rew_mean``."""
        values = {**self.dumped.values, **self.model.logger.name_to_value}
        out = {k.replace("/", "_"): float(v) for k, v in values.items()
               if (k.startswith("train/") and (k.endswith("loss") or k.startswith("train/writer_share_")))
               or k == "rollout/ep_rew_mean"}
        return dict(sorted(out.items()))

    def finish(self) -> None:
        """The end of training: validate the final model too, unless its step was just validated, so that a run
        of any budget is validated at its end and its best model chosen among all it made."""
        last = self.last_eval
        if last is None and self.run.eval_log.exists():
            last = {"timesteps": int(pd.read_csv(self.run.eval_log)["timesteps"].iloc[-1])}
        if last is None or last["timesteps"] != self.model.num_timesteps:
            self._validate_due()

    def save_checkpoint(self) -> None:
        self.run.save_checkpoint(self.model, time.time() - self.t0, self.checkpoint_extra)

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
            paths = [self.run.path / "best" / name] if len(scores) > 1 else []
            if name == self.select_on:
                paths.append(self.run.path / "best_model")
            for path in paths:
                save_model(self.model, path.with_suffix(".zip"))
                write_json(path.with_suffix(".json"), row)
