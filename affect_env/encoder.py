"""Segment encoders: ``K`` frames x ``D`` features -> one embedding ``e_t`` per segment.

* :class:`LSTMSegmentEncoder` — the paper's: frames (modalities concatenated per frame) go through an LSTM,
  the last hidden state is ``e_t``. :func:`pretrain_encoder` fits it with a per-segment regression head on
  the train split (early stopping on val) and :meth:`SegmentEncoder.save` stores it with its normalisation
  statistics.
* :class:`PoolingEncoder` — parameter-free default: mean and std over the frames of the standardised
  features, so the environment works without any training.

Both standardise raw features with the train split's :class:`~affect_env.data.FeatureStats`, which they carry
(and save), so a model always sees features scaled the way it was trained.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from affect_env.data.normalization import FeatureStats
from affect_env.data.types import MovieDataset
from affect_env.files import atomic_path
from affect_env.progress import progress_bar


class SegmentEncoder(nn.Module):
    """Base class: ``forward(x)`` maps standardised ``(B, K, D)`` frames to ``(B, embed_dim)``."""

    kind = "base"

    def __init__(self, stats: FeatureStats) -> None:
        super().__init__()
        self.stats = stats
        self.feature_dim = int(len(stats.mean))

    @property
    def embed_dim(self) -> int:
        raise NotImplementedError

    @property
    def bounds(self) -> tuple:
        """``(low, high)`` of every embedding value (the env's observation bounds)."""
        return (-np.inf, np.inf)

    def config(self) -> dict:
        return {}

    @torch.no_grad()
    def embed_movie(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Embeddings ``(T, embed_dim)`` float32 of one movie's raw ``(T, K, D)`` features."""
        self.eval()
        device = next(self.parameters(), torch.zeros(0)).device
        out = []
        for start in range(0, len(features), batch_size):
            x = torch.as_tensor(self.stats.transform(features[start:start + batch_size]), device=device)
            out.append(self(x).float().cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.float32)

    def embed_dataset(self, dataset: MovieDataset) -> list:
        """One ``(T, embed_dim)`` array per movie."""
        return [self.embed_movie(m.features) for m in dataset]

    def save(self, path: Union[str, Path]) -> None:
        """Write the encoder (kind, config, weights, normalisation stats) atomically to ``path``."""
        payload = dict(self.spec(), state_dict={k: v.detach().cpu() for k, v in self.state_dict().items()})
        atomic_torch_save(payload, path)

    @staticmethod
    def load(path: Union[str, Path], map_location: str = "cpu") -> "SegmentEncoder":
        payload = torch.load(path, map_location=map_location, weights_only=False)
        return encoder_from_payload(payload)

    def spec(self) -> dict:
        """Kind, config and normalisation stats (JSON-friendly): enough to rebuild it, weights aside."""
        return {"kind": self.kind, "config": self.config(), "stats": self.stats.to_dict()}


def encoder_from_payload(payload: dict) -> SegmentEncoder:
    """Rebuild an encoder from :meth:`SegmentEncoder.spec` (plus ``state_dict`` weights, when present)."""
    stats = FeatureStats.from_dict(payload["stats"])
    cls = {"pooling": PoolingEncoder, "lstm": LSTMSegmentEncoder}[payload["kind"]]
    enc = cls(stats, **payload["config"])
    if "state_dict" in payload:
        enc.load_state_dict(payload["state_dict"])
    return enc


class PoolingEncoder(SegmentEncoder):
    """Parameter-free: per-feature mean and std over the ``K`` frames of standardised features (``2 D`` dims)."""

    kind = "pooling"

    @property
    def embed_dim(self) -> int:
        return 2 * self.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=-1)


class LSTMSegmentEncoder(SegmentEncoder):
    """The paper's fusion: per-frame concatenated modalities -> LSTM -> last hidden state (in (-1, 1)).

    :param stats: feature normalisation statistics of the train split
    :param hidden_size: embedding size ``d_e``
    """

    kind = "lstm"

    def __init__(self, stats: FeatureStats, hidden_size: int = 64) -> None:
        super().__init__(stats)
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(self.feature_dim, hidden_size, batch_first=True)

    @property
    def embed_dim(self) -> int:
        return self.hidden_size

    @property
    def bounds(self) -> tuple:
        return (-1.0, 1.0)

    def config(self) -> dict:
        return {"hidden_size": self.hidden_size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return h[-1]


def atomic_torch_save(obj, path: Union[str, Path]) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename: never a half-written file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _segments(dataset: MovieDataset, stats: FeatureStats) -> tuple:
    x = np.concatenate([stats.transform(m.features) for m in dataset]).astype(np.float32)
    y = np.concatenate([m.targets for m in dataset]).astype(np.float32)
    return torch.as_tensor(x), torch.as_tensor(y)


def pretrain_encoder(
    train: MovieDataset,
    val: MovieDataset,
    hidden_size: int = 64,
    reconstruction_weight: float = 1.0,
    epochs: int = 30,
    batch_size: int = 256,
    learning_rate: float = 3e-3,
    patience: int = 4,
    seed: int = 0,
    device: Union[str, torch.device] = "cpu",
    stats: Optional[FeatureStats] = None,
    progress: bool = True,
) -> tuple:
    """Fit an :class:`LSTMSegmentEncoder` with a per-segment regression head; early stop on val MSE.

    The paper pretrains with the regression head only (``reconstruction_weight=0``). By default we add a
    second head that reconstructs the segment's mean standardised features, so the embedding keeps what no
    single segment's target needs but a memory does (e.g. who is on screen, whose attitude only matters
    hundreds of segments later).

    :return: ``(encoder, history)`` with the best-on-val weights and a list of per-epoch dicts
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    stats = stats or FeatureStats.fit(train)
    x_tr, y_tr = _segments(train, stats)
    x_va, y_va = _segments(val, stats)
    enc = LSTMSegmentEncoder(stats, hidden_size).to(device)
    head = nn.Linear(hidden_size, y_tr.shape[1]).to(device)
    recon = nn.Linear(hidden_size, x_tr.shape[2]).to(device)
    params = list(enc.parameters()) + list(head.parameters()) + list(recon.parameters())
    opt = torch.optim.Adam(params, lr=learning_rate)

    def losses(x: torch.Tensor, y: torch.Tensor) -> tuple:
        e = enc(x)
        mse = ((head(e) - y) ** 2).mean()
        rec = ((recon(e) - x.mean(dim=1)) ** 2).mean()
        return mse, rec

    best, best_state, history, bad = np.inf, None, [], 0
    bar = progress_bar(range(epochs), desc="pretrain encoder", disable=not progress, leave=False)
    for epoch in bar:
        enc.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            mse, rec = losses(x_tr[idx].to(device), y_tr[idx].to(device))
            loss = mse + reconstruction_weight * rec
            opt.zero_grad()
            loss.backward()
            opt.step()
        enc.eval()
        with torch.no_grad():
            parts = [losses(x_va[i:i + 4096].to(device), y_va[i:i + 4096].to(device)) for i in range(0, len(x_va), 4096)]
            n = [min(4096, len(x_va) - i) for i in range(0, len(x_va), 4096)]
            val_mse = float(sum(p[0].item() * k for p, k in zip(parts, n)) / sum(n))
            val_rec = float(sum(p[1].item() * k for p, k in zip(parts, n)) / sum(n))
        history.append({"epoch": epoch, "val_mse": val_mse, "val_reconstruction": val_rec})
        bar.set_postfix(val_mse=f"{val_mse:.4f}")
        score = val_mse + reconstruction_weight * val_rec
        if score < best - 1e-6:
            best, best_state, bad = score, copy.deepcopy(enc.state_dict()), 0
        else:
            bad += 1
            if bad >= patience:
                break
    enc.load_state_dict(best_state)
    return enc.cpu().eval(), history


def make_encoder(
    spec: Union[str, SegmentEncoder, None], train: MovieDataset, stats: Optional[FeatureStats] = None
) -> SegmentEncoder:
    """An encoder from ``spec``: an instance, ``"pooling"`` (default), or a path saved by :meth:`SegmentEncoder.save`."""
    if isinstance(spec, SegmentEncoder):
        return spec
    if spec in (None, "pooling"):
        return PoolingEncoder(stats or FeatureStats.fit(train))
    path = Path(str(spec))
    if path.exists():
        return SegmentEncoder.load(path)
    raise ValueError(f"encoder {spec!r}: give 'pooling', a SegmentEncoder, or the path of a saved encoder")
