"""The RMN agent built from a :class:`~agents.config.TrainConfig`, its warm start, and its evaluation.

This is the trainer-side glue between the recipe config and the algorithm (:class:`~agents.rmn.rmn.RMN`):
which policy sizes, which SB3 arguments, which learning-rate schedule, how a BPTT-taught writer is copied in,
and how a trained agent predicts along whole movies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from affect_env.data import MovieDataset
from affect_env.encoder import SegmentEncoder
from affect_env.env import LiRISMemoryEnv
from agents.baselines.models import MemoryTBPTT, load_baseline
from agents.config import TrainConfig
from agents.outputs import global_row, score_predictions
from agents.rmn.rmn import RMN
from agents.rollout import rollout

#: the fields a warm-start model must share with the agent's config (``WarmStartConfig.init_from``)
WARM_START_FIELDS = ("n_slots", "memory_dim", "net_arch", "predictor_hidden", "read_heads", "read_key_dim",
                     "coupled_gates", "write_top_k")


def learning_rate_schedule(cfg: TrainConfig):
    """A constant rate, or a linear decay from ``learning_rate`` to ``final_learning_rate`` over the run."""
    algo = cfg.algorithm
    if algo.final_learning_rate is None:
        return algo.learning_rate
    start, end = algo.learning_rate, algo.final_learning_rate
    return lambda progress_remaining: end + (start - end) * progress_remaining


def make_rmn(cfg: TrainConfig, env: LiRISMemoryEnv, encoder: SegmentEncoder, tensorboard_log: Optional[str] = None,
             warm: Optional[MemoryTBPTT] = None) -> RMN:
    """An RMN agent configured by ``cfg``, carrying ``encoder`` (weights and statistics) in its policy, its writer,
    predictor and ``m0`` copied from ``warm`` where given (:func:`warm_start`)."""
    a = cfg.algorithm
    model = RMN(
        "RMNPolicy", env, recipe=cfg.rmn, learning_rate=learning_rate_schedule(cfg),
        buffer_size=min(a.buffer_size, a.timesteps + 1), learning_starts=a.learning_starts, batch_size=a.batch_size,
        tau=a.tau, gamma=a.gamma, train_freq=a.train_freq, gradient_steps=a.gradient_steps,
        tensorboard_log=tensorboard_log, seed=cfg.run.seed, device=cfg.run.device,
        policy_kwargs=dict(memory=cfg.memory, n_targets=env.n_targets, encoder_spec=encoder.spec()),
    )
    model.policy.encoder.load_state_dict(encoder.state_dict())
    if warm is not None:
        warm_start(model, warm)
    return model


def load_warm_start(cfg: TrainConfig, source: Optional[str] = None) -> tuple:
    """``(model, encoder)`` of the ``memory_tbptt`` run ``source`` (default ``cfg.warm_start.init_from``), checked
    against ``cfg``.

    :raises ValueError: naming the run and the field where it is not a ``memory_tbptt`` model, does not predict
        ``len(cfg.data.targets)`` targets, or its networks differ from the agent's (:data:`WARM_START_FIELDS`)
    """
    source = source or cfg.warm_start.init_from
    where = f"init_from {source}"
    try:
        model, encoder = load_baseline(Path(source))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if model.name != "memory_tbptt":
        raise ValueError(f"{where}: a {model.name!r} model; a warm start needs a memory_tbptt run "
                         "(python -m agents.train --algo memory_tbptt)")
    saved, wanted = model.config(), cfg.to_dict()["memory"]  # both hold sizes as lists
    mismatched = [f"{k} {saved[k]!r} (config: {wanted[k]!r})" for k in WARM_START_FIELDS if saved[k] != wanted[k]]
    if saved.get("embed_in_output", True) != (cfg.memory.readout != "paper"):
        mismatched.append(f"readout (config: {cfg.memory.readout!r})")
    if saved["n_targets"] != len(cfg.data.targets):
        mismatched.append(f"n_targets {saved['n_targets']} (config: {len(cfg.data.targets)} targets)")
    if mismatched:
        raise ValueError(f"{where}: its networks differ from the agent's: {'; '.join(mismatched)}")
    return model, encoder


def warm_start(model: RMN, source: MemoryTBPTT) -> None:
    """Copy a ``memory_tbptt`` model's write network (into the actor and its target), predictor and ``m0`` into
    ``model``'s policy; the critic keeps its fresh weights."""
    model.policy.actor.load_state_dict(source.actor.state_dict())
    model.policy.actor_target.load_state_dict(source.actor.state_dict())
    model.policy.predictor.load_state_dict(source.predictor.state_dict())


def predict_dataset(model: RMN, dataset: MovieDataset, embeddings: Optional[Sequence[np.ndarray]] = None,
                    progress: bool = False) -> list:
    """Deterministic predictions of an RMN model for every movie: ``[{"prediction", "attention"}, ...]``."""
    policy = model.policy
    policy.set_training_mode(False)
    if embeddings is None:
        if policy.encoder is None:
            raise ValueError("this model carries no segment encoder: pass embeddings")
        embeddings = policy.encoder.embed_dataset(dataset)
    return rollout(policy.actor, policy.predictor, embeddings, device=str(policy.device), progress=progress)


def evaluate_rmn(model: RMN, dataset: MovieDataset, embeddings: Optional[Sequence[np.ndarray]] = None,
                 progress: bool = False) -> tuple:
    """``(metrics DataFrame, per-movie results)`` of ``model`` on ``dataset``."""
    return score_predictions(predict_dataset(model, dataset, embeddings, progress), dataset)


def validation_metrics(model: RMN, dataset: MovieDataset, embeddings: Sequence[np.ndarray]) -> dict:
    """Global metrics of the model on ``dataset`` (training curves, model selection, tuning)."""
    return global_row(evaluate_rmn(model, dataset, embeddings)[0])
