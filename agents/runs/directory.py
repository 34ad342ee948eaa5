"""A run directory: where a run's files live, and how they are written so that nothing is ever lost.

::

    config.json        the TrainConfig (nested; the recipe and every field)
    features.json      how the dataset's tables were extracted from movies (copied from the dataset, if it has one)
    encoder.pt         the segment encoder (with the train split's normalisation statistics)
    writer_pretrain/   the RMN's writer pretraining, a memory_tbptt run of its own (when the recipe has one)
    checkpoint/        the latest checkpoint: model.zip, replay.pkl, predictor.pt (stock algorithms) or
                       training.pt (a baseline's, after every epoch), best_<step>/ (the best models as they were
                       then), state.json (written last)
    eval_log.csv       validation metrics during training (training curves)
    best_model.zip     the best model on validation so far (best/<score>.zip for each score of a second set)
    model.zip          the selected model (model.pt for a baseline)
    metrics.csv        test metrics, global and per movie; error_by_position.csv along the movies
    predictions/       one CSV per test movie; figures/ PNG figures; tb/ TensorBoard logs
    summary.json       headline numbers, wall time, the recipe and its overrides

Every file is written atomically (:mod:`affect_env.files`); a checkpoint's ``state.json`` is written after its
other files, so an interrupted write leaves the previous checkpoint usable.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from affect_env.features.extract import MANIFEST as EXTRACTION_MANIFEST
from affect_env.files import atomic_path, atomic_write_text
from agents.config import TrainConfig

#: what a run directory keeps of the best models so far (``model.pt``: a baseline's best epoch so far)
BEST_ENTRIES = ("best_model.zip", "best_model.json", "best", "model.pt")


def save_model(model, path: Path) -> None:
    """``model.save`` (SB3) written atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


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


class RunDirectory:
    """The files of one run in ``path`` (see the module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / "checkpoint"
        self.config_file = self.path / "config.json"
        self.eval_log = self.path / "eval_log.csv"
        self.summary_file = self.path / "summary.json"
        self.tensorboard = self.path / "tb"

    # ---- starting and resuming ---------------------------------------------------------------------------
    def config(self, cfg: TrainConfig, resume: bool) -> TrainConfig:
        """The config the run goes on with: ``cfg`` for a new run, the saved one to resume. Reads, writes nothing.

        :raises ValueError: resuming where no run is, or starting a new run where one already is
        """
        if resume:
            if not self.config_file.exists():
                raise ValueError(f"--resume {self.path}: no config.json there (not a run directory)")
            return TrainConfig.load(self.config_file)
        if self.has_checkpoint() or self.summary_file.exists():
            raise ValueError(f"{self.path} already holds a run: use --resume {self.path} to continue it or "
                             "another --out")
        return cfg

    def open(self, cfg: TrainConfig) -> None:
        """Create the run directory and save ``config.json``, and the dataset's extraction manifest
        (``features.json``, when its tables were extracted from movies) so that prediction from movie files
        extracts them as the training data were, even after the dataset has moved."""
        self.path.mkdir(parents=True, exist_ok=True)
        cfg.save(self.config_file)
        manifest = Path(str(cfg.data.dataset)) / EXTRACTION_MANIFEST
        if manifest.is_file():
            atomic_write_text(self.path / EXTRACTION_MANIFEST, manifest.read_text())

    def made_with(self, cfg: TrainConfig) -> bool:
        """Whether the directory holds a run (finished or not) made with exactly the config ``cfg``."""
        if not self.config_file.exists():
            return False
        try:
            used = TrainConfig.load(self.config_file)
        except ValueError:
            return False
        return used.to_dict() == cfg.to_dict()

    def continues(self, cfg: TrainConfig) -> bool:
        """Whether the directory holds an unfinished run of the config ``cfg`` with a checkpoint to go on from."""
        return self.has_checkpoint() and not self.summary_file.exists() and self.made_with(cfg)

    def has_checkpoint(self) -> bool:
        return (self.checkpoint / "state.json").exists()

    def checkpoint_state(self) -> dict:
        """The latest checkpoint's ``state.json``: ``num_timesteps``, ``wall_s``, ``best``."""
        return json.loads((self.checkpoint / "state.json").read_text())

    # ---- checkpoints ------------------------------------------------------------------------------------
    def save_checkpoint(self, model, wall_s: float, extra: Optional[Callable[[Path], None]] = None) -> None:
        """Write the checkpoint of an SB3 model: the model, its replay buffer (off-policy) and ``extra``'s files
        (:meth:`write_checkpoint`)."""
        def files(ckpt: Path) -> None:
            save_model(model, ckpt / "model.zip")
            if getattr(model, "replay_buffer", None) is not None:
                with atomic_path(ckpt / "replay.pkl") as tmp:
                    model.save_replay_buffer(tmp)
            if extra is not None:
                extra(ckpt)

        self.write_checkpoint(int(model.num_timesteps), wall_s, files)

    def write_checkpoint(self, step: int, wall_s: float, files: Callable[[Path], None]) -> None:
        """Write ``checkpoint/``: ``files(checkpoint_dir)``, a copy of the best models so far (``best_<step>/``),
        then ``state.json``. Each file is written atomically and ``state.json`` last, so a crash leaves the
        previous checkpoint's state in place."""
        ckpt = self.checkpoint
        ckpt.mkdir(parents=True, exist_ok=True)
        files(ckpt)
        best = ckpt / f"best_{step}"
        shutil.rmtree(best, ignore_errors=True)  # left by a crash
        best.mkdir()
        for entry in BEST_ENTRIES:
            copy_entry(self.path / entry, best / entry)
        write_json(ckpt / "state.json", {"num_timesteps": step, "wall_s": wall_s, "best": best.name})
        for old in ckpt.glob("best_*"):
            if old != best:
                shutil.rmtree(old)

    def restore_best(self, state: dict) -> None:
        """Resuming: put back the best models as the checkpoint described by ``state`` saw them (none where there
        is no checkpoint, ``state == {}``), so that the resumed run selects among the validations it keeps, not
        among those of the interrupted part after its checkpoint. A checkpoint written before these copies
        existed (no ``"best"`` in ``state``) leaves the best models as they are."""
        if state and "best" not in state:
            return
        for entry in BEST_ENTRIES:
            remove_entry(self.path / entry)
        if state:
            for entry in BEST_ENTRIES:
                copy_entry(self.checkpoint / state["best"] / entry, self.path / entry)

    # ---- logs and results -------------------------------------------------------------------------------
    def truncate_eval_log(self, keep: Callable[[pd.Series], pd.Series]) -> None:
        """Keep the rows of ``eval_log.csv`` for which ``keep(timesteps)`` holds (a resumed run redoes the rest)."""
        if self.eval_log.exists():
            rows = pd.read_csv(self.eval_log)
            kept = rows[keep(rows["timesteps"])]
            if len(kept) < len(rows):
                atomic_write_text(self.eval_log, kept.to_csv(index=False))

    def has_eval_row(self, step: int) -> bool:
        """Whether ``eval_log.csv`` has a validation of step ``step``."""
        return self.eval_log.exists() and bool((pd.read_csv(self.eval_log)["timesteps"] == step).any())

    def append_eval_row(self, row: dict) -> None:
        """Add a validation row to ``eval_log.csv`` (rewritten whole where the row brings new columns, such as
        the training losses, which start after the first validation)."""
        if self.eval_log.exists():
            columns = pd.read_csv(self.eval_log, nrows=0).columns
            if not set(row) <= set(columns):
                table = pd.concat([pd.read_csv(self.eval_log), pd.DataFrame([row])], ignore_index=True)
                atomic_write_text(self.eval_log, table.to_csv(index=False))
                return
            row = {c: row.get(c) for c in columns}
        pd.DataFrame([row]).to_csv(self.eval_log, mode="a", header=not self.eval_log.exists(), index=False)

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_file, summary)
