"""Train and evaluate the supervised baselines on the RMN's data, splits, embeddings, metrics and outputs.

``train_baseline(cfg, "lstm", window=64)`` is what ``python -m agents.train_baseline`` runs. It loads the
splits with :func:`agents.training.load_splits` and the segment encoder with
:func:`agents.training.build_encoder` (so the embeddings are exactly the RMN's for the same config), fits the
model on the per-segment targets by MSE with early stopping on the validation MSE, and writes::

    config.json      the TrainConfig (data, encoder, memory sizes, seed)
    encoder.pt       the segment encoder
    model.pt         the best model (by validation MSE) with its encoder, written atomically
    eval_log.csv     validation metrics after every epoch (training curves)
    metrics.csv      test metrics, global and per movie (with gap_closed on synthetic data)
    predictions/     one CSV per test movie
    figures/         predictions.png, training_curves.png (memory_attention.png for memory_tbptt)
    summary.json     headline numbers, epochs, wall time

Recurrent models (``lstm``, ``memory_tbptt``) are trained by truncated BPTT over whole movies: the state is
carried from one window of ``window`` segments to the next and detached between windows (one optimizer step
per window); ``window=0`` backpropagates through the whole movie. ``segment`` and ``transformer`` are
trained on shuffled minibatches of segments (with their input windows).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.utils import get_device, set_random_seed
from tqdm.auto import tqdm

from affect_env.encoder import SegmentEncoder, encoder_from_payload
from agents.baselines.models import MODEL_NAMES, MemoryTBPTT, SequenceModel, build_model, model_from_config
from agents.config import TrainConfig
from agents.metrics import evaluate_predictions


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
        from agents.rollout import rollout

        model.eval()
        return rollout(model.actor, model.predictor, embeddings, device=str(next(model.parameters()).device))
    return [{"prediction": p} for p in predict_movies(model, embeddings)]


def _global_metrics(preds: list, dataset) -> dict:
    row = evaluate_predictions(preds, dataset).iloc[0].to_dict()
    row.pop("scope", None)
    return {k: float(v) for k, v in row.items()}


def _atomic_torch_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_baseline(path: Path, model: SequenceModel, encoder: SegmentEncoder, extra: Optional[dict] = None) -> None:
    """Write the model (name, config, weights) and its segment encoder to ``path`` atomically."""
    payload = {"model": model.name, "config": model.config(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "encoder": dict(encoder.spec(), state_dict={k: v.detach().cpu() for k, v in encoder.state_dict().items()}),
               **(extra or {})}
    _atomic_torch_save(payload, Path(path))


def evaluate_baseline(model: SequenceModel, embeddings: Sequence[np.ndarray], dataset) -> tuple:
    """``(metrics DataFrame, per-movie results)`` of ``model`` on ``dataset``, whose movies ``embeddings`` encode."""
    results = predict_results(model, embeddings)
    return evaluate_predictions([r["prediction"] for r in results], dataset), results


def load_baseline(path: Path, device: str = "cpu") -> tuple:
    """``(model, encoder)`` from a ``model.pt`` written by :func:`save_baseline` (or its run directory)."""
    path = Path(path)
    path = path / "model.pt" if path.is_dir() else path
    if not path.exists():
        raise ValueError(f"{path}: no baseline model found (give a run directory or its model.pt)")
    payload = torch.load(path, map_location=device, weights_only=False)
    model = model_from_config(payload["model"], payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), encoder_from_payload(payload["encoder"])


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


def make_baseline(cfg: TrainConfig, model_name: str, embed_dim: int, n_targets: int, window: int = 64,
                  hidden: int = 64) -> SequenceModel:
    """The baseline ``model_name`` sized by ``cfg`` (memory sizes and networks as the RMN's for ``memory_tbptt``)."""
    return build_model(model_name, embed_dim, n_targets, window=max(int(window), 1), hidden=hidden,
                       n_slots=cfg.n_slots, memory_dim=cfg.memory_dim, net_arch=cfg.net_arch,
                       predictor_hidden=cfg.predictor_hidden, read_heads=cfg.read_heads,
                       erase_bias=cfg.erase_bias, input_bias=cfg.input_bias,
                       coupled_gates=bool(getattr(cfg, "coupled_gates", False)), read_key_dim=cfg.read_key_dim,
                       write_top_k=cfg.write_top_k)


def train_baseline(cfg: TrainConfig, model_name: str, window: int = 64, epochs: int = 30, hidden: int = 64,
                   lr: float = 1e-3, batch_movies: int = 8, batch_size: int = 256, patience: int = 5,
                   clip: float = 1.0, progress: bool = True) -> dict:
    """Train baseline ``model_name`` per ``cfg`` (data, encoder, sizes, seed, ``cfg.out``); evaluate on test.

    :param model_name: ``"segment"``, ``"lstm"``, ``"memory_tbptt"`` or ``"transformer"``
    :param window: TBPTT window of the recurrent models in segments (``0`` = full BPTT through whole movies),
        and the transformer's attention window (must be >= 1)
    :param epochs: maximum passes over the training split
    :param hidden: hidden size of the segment MLP, the LSTM and the transformer
    :param lr: Adam learning rate
    :param batch_movies: movies per batch (recurrent models)
    :param batch_size: segments per minibatch (segment MLP, transformer)
    :param patience: epochs without a better validation MSE before stopping
    :param clip: gradient-norm clipping
    :param progress: show a tqdm bar over epochs
    :return: the summary (also ``summary.json``): test metrics, best validation metrics, epochs, wall time
    """
    from agents.evaluate import write_outputs
    from agents.training import build_encoder, check_rmn_only_options, load_splits

    if model_name not in MODEL_NAMES:
        raise ValueError(f"--model {model_name}: choose one of {', '.join(MODEL_NAMES)}")
    check_rmn_only_options(cfg, f"--model {model_name}")
    if window < 0 or (model_name == "transformer" and window < 1):
        raise ValueError(f"--window {window}: must be >= 1 for the transformer, >= 0 (0 = full BPTT) otherwise")
    if epochs < 1:
        raise ValueError(f"--epochs {epochs}: must be >= 1")
    out = Path(cfg.out)
    if (out / "model.pt").exists():
        raise ValueError(f"{out} already holds a baseline run (model.pt): choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
    torch.set_num_threads(cfg.threads)  # --threads, as for the RMN: spare threads spin on a shared 2-core host
    set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = get_device(cfg.device)

    t0 = time.time()
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, out, progress)
    emb = {s: encoder.embed_dataset(d) for s, d in data.items()}
    train_targets = [m.targets.astype(np.float32) for m in data["train"]]
    n_targets = len(data["train"].target_names)
    model = make_baseline(cfg, model_name, encoder.embed_dim, n_targets, window, hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    index = None
    if not model.recurrent:
        index = _WindowIndex(emb["train"], train_targets, model.window if model_name == "transformer" else 1)

    log_path = out / "eval_log.csv"
    if log_path.exists():
        log_path.unlink()
    best, best_epoch, stale, seen, updates = float("inf"), 0, 0, 0, 0
    learn_wall = 0.0
    bar = tqdm(range(1, epochs + 1), desc=f"{model_name}", disable=not progress, unit="epoch")
    for epoch in bar:
        t_epoch = time.time()
        if model.recurrent:
            n, u = _train_sequences(model, optimizer, emb["train"], train_targets, window, batch_movies, rng,
                                    device, clip)
        else:
            n, u = _train_positions(model, optimizer, index, batch_size, rng, device, clip)
        learn_wall += time.time() - t_epoch
        seen, updates = seen + n, updates + u
        val = _global_metrics(predict_movies(model, emb["val"]), data["val"])
        row = {"timesteps": seen, "epoch": epoch, "wall_s": round(time.time() - t0, 1), **val}
        pd.DataFrame([row]).to_csv(log_path, mode="a", header=not log_path.exists(), index=False)
        bar.set_postfix(val_mse=f"{val['mse']:.4f}")
        if val["mse"] < best:
            best, best_epoch, stale = val["mse"], epoch, 0
            save_baseline(out / "model.pt", model, encoder, {"window": window, "epoch": epoch})
        else:
            stale += 1
            if stale >= patience:
                break
    bar.close()

    model, _ = load_baseline(out / "model.pt", device=str(device))
    metrics, results = evaluate_baseline(model, emb["test"], data["test"])
    write_outputs(out, metrics, results, data["test"])
    val = _global_metrics(predict_movies(model, emb["val"]), data["val"])
    g = metrics.iloc[0]
    summary = {"model": model_name, "window": int(window), "epochs": int(epoch), "best_epoch": int(best_epoch),
               "segments_seen": int(seen), "updates": int(updates),
               "n_params": int(sum(p.numel() for p in model.parameters())),
               "train_wall_s": round(time.time() - t0, 1),
               "updates_per_s": round(updates / max(learn_wall, 1e-9), 1), "test_mse": float(g["mse"])}
    summary.update({f"val_{k}": v for k, v in val.items() if k in ("mse", "gap_closed")})
    for k in ("gap_closed", "mse_oracle", "mse_no_memory"):
        if k in metrics.columns:
            summary[f"test_{k}"] = float(g[k])
    for name in data["test"].target_names:
        summary[f"test_{name}_pcc"] = float(g[f"{name}_pcc"])
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out / "summary.json")
    return summary
