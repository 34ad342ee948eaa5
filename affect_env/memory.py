"""The memory model in one place: action decoding, the NTM-style write, the attention read-out predictor.

Everything here is plain tensor math. The functions accept either NumPy arrays (the environments' fast
per-step paths: one movie, or a batch of movies for the batched env) or torch tensors (batched and
differentiable, for agents), with the same formulas:

* a flat action ``a`` in ``[-1, 1]^(N + 3 N d)`` is split into attention ``(N,)``, erase, content and
  input gate ``(N, d)`` each (:func:`decode_action`): gates are ``(a + 1) / 2`` in ``[0, 1]``, content is
  ``a`` itself, and attention is ``(a + 1) / 2`` renormalised to sum to 1 (uniform if all are zero);
* the write (:func:`write`) is ``m' = m * (1 - att 1^T * erase) + (att 1^T) * input * content``;
* :class:`MemoryPredictor` reads the memory with attention, ``w = softmax_n(f([e, m(n)]))``,
  ``y = g([sum_n w(n) m(n), e])``, and owns the learnable initial memory ``m0``;
* :func:`prediction_error` is the per-step error whose negative is the reward (MAE in the paper).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Array = Union[np.ndarray, torch.Tensor]
_EPS = 1e-8
REWARD_ERRORS = ("mae", "mse", "mae+mse")
#: the memory's default size: N slots (the paper's best N) of d dimensions, for the env and the agents alike
DEFAULT_N_SLOTS, DEFAULT_MEMORY_DIM = 10, 16


class WriteAction(NamedTuple):
    """The four parts of a memory write (leading batch dimensions allowed)."""

    attention: Array  # (..., N), non-negative, sums to 1
    erase: Array  # (..., N, d) in [0, 1]
    content: Array  # (..., N, d) in [-1, 1]
    input_gate: Array  # (..., N, d) in [0, 1]


def action_dim(n_slots: int, memory_dim: int) -> int:
    """Length of the flat action: ``N`` attention logits plus three ``N x d`` blocks."""
    return n_slots + 3 * n_slots * memory_dim


def _clip(x: Array, low: float, high: float) -> Array:
    return x.clamp(low, high) if isinstance(x, torch.Tensor) else np.clip(x, low, high)


def normalize_attention(att: Array) -> Array:
    """Renormalise non-negative weights to sum 1 over the last axis; an all-zero row becomes uniform."""
    total = att.sum(-1, keepdims=True) if isinstance(att, np.ndarray) else att.sum(-1, keepdim=True)
    n = att.shape[-1]
    if isinstance(att, torch.Tensor):
        return torch.where(total > _EPS, att / total.clamp_min(_EPS), torch.full_like(att, 1.0 / n))
    return np.where(total > _EPS, att / np.maximum(total, _EPS), 1.0 / n)


def decode_action(action: Array, n_slots: int, memory_dim: int) -> WriteAction:
    """Decode a flat action in ``[-1, 1]`` (values outside are clipped) into its four parts.

    Batched over leading dimensions. NumPy input takes lean paths (the environments' per-step paths: no
    ``np.clip``/``np.where`` on the hot path), with the same formulas as the torch path and the same numbers for
    one action and a batch of one.
    """
    n, d = n_slots, memory_dim
    if action.shape[-1] != action_dim(n, d):
        raise ValueError(f"action has {action.shape[-1]} values, expected N + 3*N*d = {action_dim(n, d)}")
    lead = tuple(action.shape[:-1])
    if isinstance(action, np.ndarray) and action.ndim == 1:  # the single env's per-step path, kept lean
        a = np.minimum(np.maximum(action, -1.0), 1.0)
        gates = (a + 1.0) * 0.5  # elementwise, so the same numbers as per part; content is a itself
        att = gates[:n]
        total = np.add.reduce(att)  # ndarray.sum without its Python wrapper (the same reduction)
        att = att / total if total > _EPS else np.full(n, 1.0 / n, att.dtype)
        nd = n * d
        return WriteAction(att, gates[n:n + nd].reshape(n, d), a[n + nd:n + 2 * nd].reshape(n, d),
                           gates[n + 2 * nd:].reshape(n, d))
    if isinstance(action, np.ndarray):
        a = np.minimum(np.maximum(action, -1.0), 1.0)
        att = (a[..., :n] + 1.0) * 0.5
        total = att.sum(-1, keepdims=True)
        if (total > _EPS).all():
            att = att / total
        else:  # an all-zero row (every attention value at -1) becomes uniform
            att = np.where(total > _EPS, att / np.maximum(total, _EPS), np.asarray(1.0 / n, att.dtype))
        blocks = a[..., n:].reshape(*lead, 3, n, d)
        return WriteAction(att, (blocks[..., 0, :, :] + 1.0) * 0.5, blocks[..., 1, :, :],
                           (blocks[..., 2, :, :] + 1.0) * 0.5)
    a = _clip(action, -1.0, 1.0)
    att = normalize_attention((a[..., :n] + 1.0) * 0.5)
    blocks = a[..., n:].reshape(*lead, 3, n, d)
    erase = (blocks[..., 0, :, :] + 1.0) * 0.5
    content = blocks[..., 1, :, :]
    input_gate = (blocks[..., 2, :, :] + 1.0) * 0.5
    return WriteAction(att, erase, content, input_gate)


def encode_action(parts: WriteAction) -> Array:
    """Inverse of :func:`decode_action` for parts in range (attention summing to 1): flat action in [-1, 1]."""
    att, erase, content, input_gate = parts
    lead = tuple(att.shape[:-1])
    if isinstance(att, torch.Tensor):
        blocks = torch.stack([erase * 2.0 - 1.0, content, input_gate * 2.0 - 1.0], dim=-3)
        return torch.cat([att * 2.0 - 1.0, blocks.reshape(*lead, -1)], dim=-1)
    blocks = np.stack([erase * 2.0 - 1.0, content, input_gate * 2.0 - 1.0], axis=-3)
    return np.concatenate([att * 2.0 - 1.0, blocks.reshape(*lead, -1)], axis=-1).astype(np.float32)


def write(memory: Array, parts: WriteAction) -> Array:
    """NTM-style write ``m * (1 - att 1^T * erase) + (att 1^T) * input * content`` (batched over leading dims)."""
    att = parts.attention[..., None]
    return memory * (1.0 - att * parts.erase) + att * parts.input_gate * parts.content


def add_exploration_noise(
    parts: WriteAction, std: Union[float, Sequence[float]], rng: Union[np.random.Generator, torch.Generator, None] = None
) -> WriteAction:
    """The paper's exploration: Gaussian noise on each decoded part, clipped to its range, attention renormalised.

    :param std: one standard deviation for all parts, or four (attention, erase, content, input gate).
        The paper uses variance 0.05, i.e. ``std = 0.05 ** 0.5``.
    """
    stds = [float(std)] * 4 if np.isscalar(std) else [float(s) for s in std]
    if len(stds) != 4:
        raise ValueError("std must be a scalar or four values (attention, erase, content, input gate)")
    ranges = ((0.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (0.0, 1.0))
    noisy = []
    for x, s, (lo, hi) in zip(parts, stds, ranges):
        if isinstance(x, torch.Tensor):
            noise = torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype) * s
        else:
            noise = (rng or np.random.default_rng()).normal(0.0, s, size=x.shape).astype(x.dtype)
        noisy.append(_clip(x + noise, lo, hi))
    noisy[0] = normalize_attention(noisy[0])
    return WriteAction(*noisy)


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` naming ``name`` and the choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_count(name: str, value, zero_means: str) -> int:
    """``value`` as an int if it is a whole number ``>= 0``, else a ``ValueError`` naming ``name`` and what 0 means."""
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and value >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a whole number >= 0 (0: {zero_means}), got {value!r}")
    return int(value)


def check_reward_error(kind: str) -> str:
    """``kind`` if it names a reward error (one of :data:`REWARD_ERRORS`), else a ``ValueError`` naming them."""
    return check_choice("reward", kind, REWARD_ERRORS)


def prediction_error(prediction: Array, target: Array, kind: str = "mae") -> Array:
    """Error of a prediction, averaged over the targets (last axis): the reward is its negative.

    :param kind: ``"mae"`` (mean absolute error, the paper's reward), ``"mse"`` (mean squared error) or
        ``"mae+mse"`` (their sum). MAE and MSE differ where a target is bimodal given what the predictor knows (a
        character whose attitude, +0.5 or -0.5, was not remembered): every value between the modes has the same
        expected absolute error, but only the mean minimises the squared one, so only a squared term teaches the
        predictor to hedge. The absolute term keeps the gradient bounded where errors are large.
    """
    return difference_error(prediction - target, kind)


def difference_error(diff: Array, kind: str = "mae") -> Array:
    """:func:`prediction_error` of the difference ``prediction - target`` (the environments compute the difference
    once for the reward and the episode's squared error). NumPy's mean over the last axis is its sum divided by
    the count (what ``ndarray.mean`` computes, without its Python-level overhead)."""
    kind = check_reward_error(kind)
    if kind == "mae":
        err = abs(diff)
    elif kind == "mse":
        err = diff * diff
    else:
        err = abs(diff) + diff * diff
    if isinstance(err, np.ndarray):
        return np.add.reduce(err, -1) / err.shape[-1]
    return err.mean(-1)


def _mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    layers: list = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class MemoryPredictor(nn.Module):
    """Attention read-out of the memory plus the learnable initial memory ``m0``.

    ``w = softmax_n(score([e, m(n)]))`` per read head, ``read = sum_n w(n) m(n)``,
    ``y = out([read_1, ..., read_H, e])``. With ``hidden=()``, one head and ``embed_in_output=False``
    (``y = out(read)``), both are single FC layers, as in the paper. With ``key_dim > 0`` each head's score also
    gets a content-addressing term ``q(e) . k(m(n)) / sqrt(key_dim)`` (a query from the segment matched against a
    key of each slot, as in the NTM's content addressing): the slot that holds "this face" can then be found by a
    match, which a score that only adds the segment's and the slot's contributions has to build out of many hidden
    units.

    :param embed_dim: segment embedding size ``d_e``
    :param n_slots: memory slots ``N``
    :param memory_dim: slot size ``d``
    :param n_targets: outputs (e.g. valence and arousal)
    :param hidden: hidden layer sizes of the score and output networks
    :param read_heads: number of independent attention reads
    :param m0_scale: std of the random initial ``m0`` (distinct slots break the symmetry between slots)
    :param key_dim: size of the query and key of the content-addressing term (0: none, the paper)
    :param embed_in_output: feed the segment's embedding ``e`` to the output network beside the reads (the
        paper's output reads the memory only)
    """

    def __init__(
        self,
        embed_dim: int,
        n_slots: int,
        memory_dim: int,
        n_targets: int = 2,
        hidden: Sequence[int] = (64,),
        read_heads: int = 1,
        m0_scale: float = 0.1,
        key_dim: int = 0,
        embed_in_output: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim, self.n_slots, self.memory_dim = embed_dim, n_slots, memory_dim
        self.n_targets, self.hidden, self.read_heads, self.key_dim = n_targets, tuple(hidden), read_heads, key_dim
        self.m0 = nn.Parameter(torch.randn(n_slots, memory_dim) * m0_scale)
        self.score = _mlp(embed_dim + memory_dim, self.hidden, read_heads)
        if key_dim:
            self.query = nn.Linear(embed_dim, read_heads * key_dim)
            self.key = nn.Linear(memory_dim, read_heads * key_dim, bias=False)
        self.embed_in_output = bool(embed_in_output)
        self.out = _mlp(read_heads * memory_dim + (embed_dim if embed_in_output else 0), self.hidden, n_targets)
        self._np_cache: tuple = (None, None)

    def config(self) -> dict:
        """Constructor arguments (to rebuild the module when loading)."""
        return dict(embed_dim=self.embed_dim, n_slots=self.n_slots, memory_dim=self.memory_dim,
                    n_targets=self.n_targets, hidden=list(self.hidden), read_heads=self.read_heads,
                    key_dim=self.key_dim, embed_in_output=self.embed_in_output)

    def attention(self, embedding: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Read weights ``(B, H, N)`` for embeddings ``(B, d_e)`` and memories ``(B, N, d)``."""
        # ``score([e, m(n)])`` with its first layer split: the segment's part once per sample, not once per slot
        first, d_e = self.score[0], self.embed_dim
        per_sample = F.linear(embedding, first.weight[:, :d_e], first.bias).unsqueeze(-2)
        logits = F.linear(memory, first.weight[:, d_e:]) + per_sample
        if len(self.score) > 1:
            logits = self.score[1:](logits)  # (B, N, H)
        if self.key_dim:
            h, k = self.read_heads, self.key_dim
            query = self.query(embedding).unflatten(-1, (h, k))  # (B, H, k)
            keys = self.key(memory).unflatten(-1, (h, k))  # (B, N, H, k)
            logits = logits + (keys * query.unsqueeze(-3)).sum(-1) / k ** 0.5
        return torch.softmax(logits, dim=-2).transpose(-1, -2)

    def forward(self, embedding: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Predictions ``(B, n_targets)`` from the afterstate ``(e_t, m_t)``."""
        w = self.attention(embedding, memory)  # (B, H, N)
        read = (w @ memory).flatten(-2)  # (B, H * d)
        return self.out(torch.cat([read, embedding], dim=-1) if self.embed_in_output else read)

    # ---- fast NumPy path for the environment's per-step forward ---------------------------------------
    def _numpy_weights(self) -> tuple:
        params = self.__dict__.get("_param_list")
        if params is None:
            params = self._param_list = list(self.parameters())
        versions = [p._version for p in params]
        if self._np_cache[0] != versions:
            with torch.no_grad():
                def export(net: nn.Sequential) -> list:
                    return [(np.ascontiguousarray(m.weight.detach().cpu().numpy().T, dtype=np.float32),
                             m.bias.detach().cpu().numpy().astype(np.float32)) for m in net if isinstance(m, nn.Linear)]
                score, out = export(self.score), export(self.out)
                (w0, b0), d_e = score[0], self.embed_dim
                keys = None
                if self.key_dim:
                    keys = (self.query.weight.detach().cpu().numpy().T.astype(np.float32),
                            self.query.bias.detach().cpu().numpy().astype(np.float32),
                            self.key.weight.detach().cpu().numpy().T.astype(np.float32))
                self._np_cache = (versions, (w0[:d_e].copy(), w0[d_e:].copy(), b0, score[1:], out, keys))
        return self._np_cache[1]

    def predict_numpy(self, embedding: np.ndarray, memory: np.ndarray) -> np.ndarray:
        """Forward in NumPy, equal to :meth:`forward`: ``(..., d_e)``, ``(..., N, d)`` -> ``(..., n_targets)``.

        Batched over leading dimensions (the batched environment predicts all its movies in one call); one
        sample, ``(d_e,)`` and ``(N, d)``, gives ``(n_targets,)``. Weights are re-exported only when a parameter
        changed in place (optimizer steps bump the version counters), so an agent that trains the shared module
        is always seen up to date.
        """
        w_e, w_m, b0, score_rest, out_layers, keys = self._numpy_weights()
        if memory.ndim == 2:  # one sample: the single env's per-step path (the same numbers as a batch of one)
            h = memory @ w_m + (embedding @ w_e + b0)  # first layer split: e once, slots once
            for w, b in score_rest:
                h = np.maximum(h, 0.0) @ w + b
            if keys is not None:  # content addressing: (N, H) matches of each slot's key with the head's query
                w_q, b_q, w_k = keys
                query = (embedding @ w_q + b_q).reshape(self.read_heads, self.key_dim)
                slot_keys = (memory @ w_k).reshape(len(memory), self.read_heads, self.key_dim)
                h = h + (slot_keys * query).sum(-1) / self.key_dim ** 0.5
            p = np.exp(h - np.maximum.reduce(h, 0))  # ufunc reductions: ndarray.max/sum without their wrappers
            read = (p.T @ memory) / np.add.reduce(p, 0)[:, None]  # (H, d)
            z = np.concatenate([read.ravel(), embedding]) if self.embed_in_output else read.ravel()
        else:
            z = self._read_batch(embedding, memory, w_e, w_m, b0, score_rest, keys)
        w, b = out_layers[0]
        z = z @ w + b
        for w, b in out_layers[1:]:
            z = np.maximum(z, 0.0) @ w + b
        return z

    def _read_batch(self, embedding: np.ndarray, memory: np.ndarray, w_e: np.ndarray, w_m: np.ndarray,
                    b0: np.ndarray, score_rest: list, keys: Optional[tuple]) -> np.ndarray:
        """The output network's input ``(..., H d [+ d_e])`` for a batch: attention reads of ``(..., N, d)``."""
        n, d = memory.shape[-2:]
        lead = memory.shape[:-2]
        heads = self.read_heads
        # the slots' part of the first layer in one matrix product, the segment's part once per sample
        h = (memory.reshape(-1, d) @ w_m).reshape(*lead, n, -1) + (embedding @ w_e + b0)[..., None, :]
        for w, b in score_rest:  # hidden layers of the score network, as one 2-D product each
            h = np.maximum(h, 0.0).reshape(-1, h.shape[-1]) @ w + b
        h = h.reshape(*lead, n, heads)
        if keys is not None:
            w_q, b_q, w_k = keys
            query = (embedding @ w_q + b_q).reshape(*lead, 1, heads, self.key_dim)
            slot_keys = (memory.reshape(-1, d) @ w_k).reshape(*lead, n, heads, self.key_dim)
            h = h + (slot_keys * query).sum(-1) / self.key_dim ** 0.5
        p = np.exp(h - h.max(axis=-2, keepdims=True))
        read = ((np.swapaxes(p, -1, -2) @ memory) / p.sum(axis=-2)[..., None]).reshape(*lead, heads * d)
        return np.concatenate([read, embedding], axis=-1) if self.embed_in_output else read
