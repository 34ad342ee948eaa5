"""The run layer: a run directory (:mod:`~agents.runs.directory`), its validation and checkpoint callback
(:mod:`~agents.runs.callbacks`), the one pipeline that trains any model into it (:mod:`~agents.runs.pipeline`),
and the evaluation of a finished run (:mod:`~agents.runs.evaluation`). CLIs, studies and benchmarks call these."""
from agents.runs.evaluation import evaluate_run, load_model_file
from agents.runs.pipeline import pretrain_writer, train

__all__ = ["evaluate_run", "load_model_file", "pretrain_writer", "train"]
