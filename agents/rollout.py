"""Streaming inference: run a write policy and a predictor along whole movies, memory flat in length."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from affect_env.memory import MemoryPredictor, WriteAction, write
from affect_env.progress import progress_bar
from agents.rmn.networks import NumpySlotActor, SlotActor


@torch.no_grad()
def rollout(
    write_policy: Callable[[torch.Tensor, torch.Tensor], WriteAction],
    predictor: MemoryPredictor,
    embeddings: Sequence[np.ndarray],
    device: str = "cpu",
    batch_movies: int = 64,
    progress: bool = False,
) -> list:
    """Predict every segment of every movie, a batch of movies at a time, one segment at a time.

    Only the current memory ``(B, N, d)`` is kept, so memory use does not grow with movie length.

    :param write_policy: ``(e_t, m_{t-1}) -> WriteAction`` (e.g. an RMN actor)
    :param predictor: reads ``(e_t, m_t)``; its ``m0`` starts every movie
    :param embeddings: one ``(T_i, d_e)`` array per movie
    :param progress: a progress bar over the segments of all movies (an evaluation a user waits on)
    :return: one dict per movie with ``prediction (T, n_targets)`` and ``attention (T, N)`` (the write's)
    """
    if len(embeddings) == 1 and isinstance(write_policy, SlotActor) and str(device) == "cpu":
        return [stream_movie(NumpySlotActor(write_policy), predictor, embeddings[0])]
    results: list = [None] * len(embeddings)
    order = np.argsort([-len(e) for e in embeddings])  # batch movies of similar length together
    bar = progress_bar(total=sum(len(e) for e in embeddings), desc="predict", unit="segment", disable=not progress,
               mininterval=2.0)
    for start in range(0, len(order), batch_movies):
        idx = order[start:start + batch_movies]
        lengths = np.array([len(embeddings[i]) for i in idx])
        t_max = int(lengths.max())
        e_all = np.zeros((len(idx), t_max, embeddings[idx[0]].shape[1]), np.float32)
        for b, i in enumerate(idx):
            e_all[b, :lengths[b]] = embeddings[i]
        e_all_t = torch.as_tensor(e_all, device=device)
        m = predictor.m0.unsqueeze(0).expand(len(idx), -1, -1).clone()
        preds = np.zeros((len(idx), t_max, predictor.n_targets), np.float32)
        atts = np.zeros((len(idx), t_max, predictor.n_slots), np.float32)
        for t in range(t_max):
            e = e_all_t[:, t]
            parts = write_policy(e, m)
            m = write(m, parts)
            preds[:, t] = predictor(e, m).cpu().numpy()
            atts[:, t] = parts.attention.cpu().numpy()
            bar.update(int((lengths > t).sum()))
        for b, i in enumerate(idx):
            results[i] = {"prediction": preds[b, :lengths[b]], "attention": atts[b, :lengths[b]]}
    bar.close()
    return results


def stream_movie(write_policy: Callable[[np.ndarray, np.ndarray], WriteAction], predictor: MemoryPredictor,
                 embedding: np.ndarray) -> dict:
    """One movie, one segment at a time, in NumPy (the fast path for a single long movie on the CPU).

    :param write_policy: NumPy ``(e_t, m_{t-1}) -> WriteAction`` (e.g. :class:`~agents.rmn.networks.NumpySlotActor`)
    :return: ``{"prediction": (T, n_targets), "attention": (T, N)}``
    """
    memory = predictor.m0.detach().cpu().numpy().astype(np.float32)
    preds = np.zeros((len(embedding), predictor.n_targets), np.float32)
    atts = np.zeros((len(embedding), predictor.n_slots), np.float32)
    for t, e in enumerate(np.asarray(embedding, np.float32)):
        parts = write_policy(e, memory)
        memory = write(memory, parts)
        preds[t] = predictor.predict_numpy(e, memory)
        atts[t] = parts.attention
    return {"prediction": preds, "attention": atts}
