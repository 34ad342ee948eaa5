"""Training of the supervised baselines on the RMN's data, splits, embeddings and metrics.

:func:`fit_baseline` trains one model of :mod:`agents.baselines.models` by MSE on the per-segment targets with
early stopping on the validation MSE; the run layer (:mod:`agents.runs`) gives it the same splits and segment
encoder as the RMN for the same config, so the embeddings are exactly the RMN's.

Recurrent models (``lstm``, ``memory_tbptt``) are trained by truncated BPTT over whole movies: the state is
carried from one window of ``bptt_window`` segments to the next and detached between windows (one optimizer step
per window); ``bptt_window=0`` backpropagates through the whole movie. ``segment`` and ``transformer`` are
trained on shuffled minibatches of segments (with their input windows).
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from affect_env.progress import progress_bar
from agents.baselines.models import MemoryTBPTT, SequenceModel, build_model
from agents.config import TrainConfig
from agents.outputs import global_row, score_predictions
from agents.rollout import rollout


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid segments (``mask (B, L)``) and all targets."""
    sq = ((pred - target) ** 2).mean(dim=-1) * mask
    return sq.sum() / mask.sum().clamp_min(1.0)


def pad_movies(arrays: Sequence[np.ndarray], device: torch.device) -> tuple:
    """Stack variable-length ``(T_i, k)`` arrays into ``(B, T_max, k)`` plus a ``(B, T_max)`` validity mask."""
    t_max = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), t_max, arrays[0].shape[1]), np.float32)
    mask = np.zeros((len(arrays), t_max), np.float32)
    for b, a in enumerate(arrays):
        out[b, :len(a)] = a
        mask[b, :len(a)] = 1.0
    return torch.as_tensor(out, device=device), torch.as_tensor(mask, device=device)


def tbptt_losses(model: SequenceModel, e: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                 window: int) -> Iterator[torch.Tensor]:
    """Truncated BPTT along a batch of movies: yield the loss of each window of ``window`` segments.

    The state is carried into the next window *detached*, so a window's loss only reaches the writes made
    inside that window (and, through the carried values, nothing earlier). ``window <= 0``: one window, the
    whole movie (full BPTT). Call ``backward`` / ``step`` on each yielded loss before asking for the next.

    :param e: embeddings ``(B, T, d_e)``
    :param y: targets ``(B, T, n)``
    :param mask: ``(B, T)``, 1 on real segments (0 on padding after a shorter movie's end)
    """
    length = e.shape[1]
    step = length if window <= 0 else int(window)
    state = model.initial_state(e.shape[0])
    for start in range(0, length, step):
        sl = slice(start, start + step)
        pred, state = model(e[:, sl], state)
        yield masked_mse(pred, y[:, sl], mask[:, sl])
        state = model.detach_state(state)


@torch.no_grad()
def predict_movies(model: SequenceModel, embeddings: Sequence[np.ndarray], chunk: int = 512,
                   batch_movies: int = 64, device: Optional[str] = None) -> list:
    """Streaming predictions ``(T_i, n_targets)`` per movie, ``chunk`` segments at a time.

    Only the carried state (and one chunk's activations) is held, so memory use does not grow with the
    movie's length. Movies of similar length are batched together.
    """
    model.eval()
    device = device or next(model.parameters()).device
    results: list = [None] * len(embeddings)
    order = np.argsort([-len(e) for e in embeddings], kind="stable")
    for s in range(0, len(order), batch_movies):
        idx = order[s:s + batch_movies]
        lengths = [len(embeddings[i]) for i in idx]
        t_max, d = max(lengths), embeddings[idx[0]].shape[1]
        preds = np.zeros((len(idx), t_max, model.n_targets), np.float32)
        state = model.initial_state(len(idx))
        for start in range(0, t_max, chunk):
            stop = min(start + chunk, t_max)
            e = np.zeros((len(idx), stop - start, d), np.float32)
            for b, i in enumerate(idx):
                part = embeddings[i][start:stop]
                e[b, :len(part)] = part
            pred, state = model(torch.as_tensor(e, device=device), state)
            preds[:, start:stop] = pred.cpu().numpy()
        for b, i in enumerate(idx):
            results[i] = preds[b, :lengths[b]]
    return results


def predict_results(model: SequenceModel, embeddings: Sequence[np.ndarray]) -> list:
    """``[{"prediction": (T, n), ...}]`` per movie, as :func:`agents.evaluate.write_outputs` expects.

    ``memory_tbptt`` goes through :func:`agents.rollout.rollout` — the RMN's own inference — which also
    returns the write attention (for the memory-attention figure).
    """
    if isinstance(model, MemoryTBPTT):
        model.eval()
        return rollout(model.actor, model.predictor, embeddings, device=str(next(model.parameters()).device))
    return [{"prediction": p} for p in predict_movies(model, embeddings)]


def evaluate_baseline(model: SequenceModel, embeddings: Sequence[np.ndarray], dataset) -> tuple:
    """``(metrics DataFrame, per-movie results)`` of ``model`` on ``dataset``, whose movies ``embeddings`` encode."""
    return score_predictions(predict_results(model, embeddings), dataset)


def _train_sequences(model, optimizer, embeddings, targets, window, batch_movies, rng, device, clip) -> tuple:
    """One epoch of truncated BPTT over all training movies. Returns (segments seen, optimizer steps)."""
    model.train()
    order = rng.permutation(len(embeddings))
    seen = updates = 0
    for s in range(0, len(order), batch_movies):
        idx = order[s:s + batch_movies]
        e, mask = pad_movies([embeddings[i] for i in idx], device)
        y, _ = pad_movies([targets[i] for i in idx], device)
        for loss in tbptt_losses(model, e, y, mask, window):
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            updates += 1
        seen += int(mask.sum().item())
    return seen, updates


class _WindowIndex:
    """All (movie, t) positions of a split with their input windows of ``W`` segments (zero-padded)."""

    def __init__(self, embeddings: Sequence[np.ndarray], targets: Sequence[np.ndarray], window: int) -> None:
        pad = window - 1
        d = embeddings[0].shape[1]
        blocks, offsets, pos = [], [], 0
        for e in embeddings:
            blocks += [np.zeros((pad, d), np.float32), e.astype(np.float32)]
            offsets.append(pos + pad)
            pos += pad + len(e)
        self.flat = torch.as_tensor(np.concatenate(blocks))
        self.offsets = np.array(offsets)
        self.movie = np.concatenate([np.full(len(e), i) for i, e in enumerate(embeddings)])
        self.t = np.concatenate([np.arange(len(e)) for e in embeddings])
        self.targets = torch.as_tensor(np.concatenate(targets).astype(np.float32))
        self.window = window

    def __len__(self) -> int:
        return len(self.t)

    def batch(self, rows: np.ndarray) -> tuple:
        ages = np.arange(-(self.window - 1), 1)  # oldest first
        at = self.offsets[self.movie[rows]][:, None] + self.t[rows][:, None] + ages[None, :]
        valid = torch.as_tensor(self.t[rows][:, None] + ages[None, :] >= 0)
        return self.flat[torch.as_tensor(at)], valid, self.targets[torch.as_tensor(rows)]


def _train_positions(model, optimizer, index: _WindowIndex, batch_size, rng, device, clip) -> tuple:
    """One epoch over shuffled minibatches of segments (segment MLP, windowed transformer)."""
    model.train()
    order = rng.permutation(len(index))
    updates = 0
    for s in range(0, len(order), batch_size):
        windows, valid, y = index.batch(order[s:s + batch_size])
        windows, valid, y = windows.to(device), valid.to(device), y.to(device)
        if hasattr(model, "forward_windows"):
            pred = model.forward_windows(windows, valid)
        else:
            pred, _ = model(windows[:, -1:], None)
            pred = pred[:, 0]
        loss = ((pred - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        updates += 1
    return len(order), updates


def make_baseline(cfg: TrainConfig, embed_dim: int, n_targets: int) -> SequenceModel:
    """The baseline ``cfg.algorithm.algo`` sized by ``cfg`` (for ``memory_tbptt`` the RMN's memory and networks)."""
    m = cfg.memory
    return build_model(cfg.algorithm.algo, embed_dim, n_targets, window=max(cfg.baseline.bptt_window, 1),
                       hidden=cfg.baseline.hidden, n_slots=m.n_slots, memory_dim=m.memory_dim, net_arch=m.net_arch,
                       predictor_hidden=m.predictor_hidden, read_heads=m.read_heads, erase_bias=m.erase_bias,
                       input_bias=m.input_bias, coupled_gates=m.coupled_gates, read_key_dim=m.read_key_dim,
                       write_top_k=m.write_top_k, embed_in_output=m.readout != "paper")


def validation_row(model: SequenceModel, embeddings: Sequence[np.ndarray], dataset) -> dict:
    """Global metrics of ``model`` on ``dataset`` by streaming prediction (early stopping, the final summary)."""
    return global_row(score_predictions([{"prediction": p} for p in predict_movies(model, embeddings)], dataset)[0])


def training_state(model: SequenceModel, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                   counters: dict) -> dict:
    """Everything :func:`fit_baseline` needs to go on exactly where it is: the weights, the optimizer's moments,
    both random streams (the minibatch order, torch's) and the loop's ``counters``."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "counters": dict(counters)}


def fit_baseline(cfg: TrainConfig, model: SequenceModel, emb: dict, data: dict,
                 on_epoch: Callable[[dict, bool, dict], None], progress: bool = True,
                 resume: Optional[dict] = None) -> dict:
    """Train ``model`` per ``cfg.baseline``: epochs of (truncated) BPTT over whole movies for the recurrent models,
    of shuffled segment minibatches for the others, each followed by a validation; stop after ``patience`` epochs
    without a better validation MSE.

    :param emb: ``{split: embeddings}``; ``data``: ``{split: MovieDataset}``
    :param on_epoch: called after each epoch with its validation row (``timesteps`` = segments seen, ``epoch``,
        metrics), whether it is the best so far (where the caller keeps the model) and the
        :func:`training_state` after it (where the caller checkpoints)
    :param resume: a :func:`training_state` to go on from; the rest of the run is then the same as if it had
        never stopped
    :return: ``epochs``, ``best_epoch``, ``segments_seen``, ``updates``, ``learn_wall_s``
    """
    b = cfg.baseline
    rng = np.random.default_rng(cfg.run.seed)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=b.baseline_lr)
    counters = {"epoch": 0, "best": float("inf"), "best_epoch": 0, "stale": 0, "seen": 0, "updates": 0,
                "learn_wall_s": 0.0}
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        rng.bit_generator.state = resume["numpy_rng"]
        torch.set_rng_state(resume["torch_rng"])
        counters.update(resume["counters"])
    train_targets = [m.targets.astype(np.float32) for m in data["train"]]
    index = None
    if not model.recurrent:
        index = _WindowIndex(emb["train"], train_targets, model.window if model.name == "transformer" else 1)
    c = counters
    bar = progress_bar(total=b.epochs, initial=c["epoch"], desc=model.name, disable=not progress, unit="epoch")
    while c["epoch"] < b.epochs and c["stale"] < b.patience:
        t_epoch = time.time()
        if model.recurrent:
            n, u = _train_sequences(model, optimizer, emb["train"], train_targets, b.bptt_window, b.batch_movies,
                                    rng, device, b.clip)
        else:
            n, u = _train_positions(model, optimizer, index, b.segment_batch_size, rng, device, b.clip)
        c["epoch"] += 1
        c["learn_wall_s"] += time.time() - t_epoch
        c["seen"], c["updates"] = c["seen"] + n, c["updates"] + u
        val = validation_row(model, emb["val"], data["val"])
        improved = val["mse"] < c["best"]
        if improved:
            c["best"], c["best_epoch"], c["stale"] = val["mse"], c["epoch"], 0
        else:
            c["stale"] += 1
        bar.update()
        bar.set_postfix(val_mse=f"{val['mse']:.4f}")
        on_epoch({"timesteps": c["seen"], "epoch": c["epoch"], **val}, improved,
                 training_state(model, optimizer, rng, c))
    bar.close()
    return {"epochs": int(c["epoch"]), "best_epoch": int(c["best_epoch"]), "segments_seen": int(c["seen"]),
            "updates": int(c["updates"]), "learn_wall_s": c["learn_wall_s"]}
