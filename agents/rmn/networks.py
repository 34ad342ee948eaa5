"""Networks of the RMN agent, shared across memory slots.

Every network applies one small MLP to each slot's ``[e_t, m(n), mean_n m]`` (plus a learned slot
embedding, so slots can specialise), which fits the problem's symmetry and costs ``O(N)`` small matmuls
instead of flat ``N d``-wide layers.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from affect_env.memory import WriteAction, check_count
from agents.config import MemoryConfig


def mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: type = nn.ReLU) -> nn.Sequential:
    """``Linear -> activation`` for each hidden size, then a final ``Linear`` to ``n_out``."""
    layers: list = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), activation()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class SlotFeatures(nn.Module):
    """Per-slot input ``[e, m(n), mean_n m, slot_embedding(n)]`` -> hidden features ``(B, N, hidden[-1])``.

    The first layer is split so that the embedding's part is computed once per sample, not once per slot.
    """

    def __init__(self, embed_dim: int, n_slots: int, memory_dim: int, hidden: Sequence[int], slot_embed_dim: int = 8):
        super().__init__()
        self.slot_embedding = nn.Parameter(torch.randn(n_slots, slot_embed_dim) * 0.5)
        self.embed_in = nn.Linear(embed_dim, hidden[0])
        self.slot_in = nn.Linear(2 * memory_dim + slot_embed_dim, hidden[0], bias=False)
        self.rest = mlp(hidden[0], hidden[1:-1], hidden[-1]) if len(hidden) > 1 else None
        self.out_dim = hidden[-1]

    def forward(self, embedding: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        b, n, _ = memory.shape
        pooled = memory.mean(dim=1, keepdim=True).expand_as(memory)
        slots = self.slot_embedding.unsqueeze(0).expand(b, -1, -1)
        h = self.slot_in(torch.cat([memory, pooled, slots], dim=-1)) + self.embed_in(embedding).unsqueeze(1)
        h = torch.relu(h)
        return h if self.rest is None else torch.relu(self.rest(h))


def erase_biases(spec: Union[float, Sequence[float]], memory_dim: int) -> Union[float, list]:
    """Initial erase-gate biases from a config value and the slot size ``d``: one number (every dimension),
    ``[first, last]`` spread linearly over the ``d`` dimensions, or ``d`` values (see
    :meth:`agents.config.MemoryConfig.erase_biases`, which this asks: it is for callers that hold the two
    values rather than a :class:`~agents.config.MemoryConfig`).

    :raises ValueError: when ``spec`` is a list of neither 2 nor ``d`` values
    """
    return MemoryConfig(memory_dim=memory_dim, erase_bias=spec).erase_biases()


def check_top_k_weight(weight: float) -> float:
    """``weight`` as a float in ``[0, 1]`` (the share of the top-k write in the attention)."""
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"the top-k write's weight must be in [0, 1], got {weight}")
    return float(weight)


class SlotActor(nn.Module):
    """Deterministic write policy ``mu(e_t, m_{t-1})`` returning the four parts of the write.

    Attention is a softmax over per-slot logits; erase and input gates are sigmoids, content is tanh.

    :param erase_bias: initial bias of the erase-gate logits (negative: keep the memory by default): one value,
        or one per memory dimension (several time scales in every slot, see :func:`erase_biases`)
    :param input_bias: initial bias of the input-gate logits
    :param coupled_gates: use the erase gate as the input gate too (a GRU-like convex update
        ``m' = m + att * z * (content - m)``: one decision per value, "how much to overwrite", and memory values
        stay within ``[-1, 1]``); the action still carries all four parts
    :param write_top_k: write only the ``k`` slots with the largest attention logits (the softmax runs over those,
        the others get exactly zero weight, so a slot the writer does not choose stays as it is); 0 or
        ``k >= n_slots``: all slots (so a study over ``n_slots`` keeps one ``write_top_k`` for every N)
    :param top_k_weight: with ``write_top_k``, the attention is ``w * top_k + (1 - w) * full softmax`` (1: the
        top-k write alone); the agent can raise it over a run (``RMN``'s ``write_top_k_weight``)
    """

    def __init__(self, embed_dim: int, n_slots: int, memory_dim: int, hidden: Sequence[int] = (128, 128),
                 erase_bias: Union[float, Sequence[float]] = 0.0, input_bias: float = 0.0,
                 coupled_gates: bool = False, write_top_k: int = 0, top_k_weight: float = 1.0):
        super().__init__()
        write_top_k = check_count("write_top_k", write_top_k, "all slots")
        self.n_slots, self.memory_dim, self.coupled_gates = n_slots, memory_dim, coupled_gates
        self.write_top_k = write_top_k if 0 < write_top_k < n_slots else 0
        self.top_k_weight = check_top_k_weight(top_k_weight)
        self.features = SlotFeatures(embed_dim, n_slots, memory_dim, hidden)
        self.head = nn.Linear(self.features.out_dim, 1 + 3 * memory_dim)
        with torch.no_grad():
            d = memory_dim
            self.head.bias[1:1 + d].copy_(torch.as_tensor(erase_bias, dtype=torch.float32).expand(d))
            self.head.bias[1 + 2 * d:].fill_(input_bias)

    def forward(self, embedding: torch.Tensor, memory: torch.Tensor) -> WriteAction:
        out = self.head(self.features(embedding, memory))  # (B, N, 1 + 3d)
        d = self.memory_dim
        logits = out[..., 0]
        attention = torch.softmax(logits, dim=-1)
        if self.write_top_k and self.top_k_weight > 0:
            kth = logits.topk(self.write_top_k, dim=-1).values[..., -1:]
            top_k = torch.softmax(logits.masked_fill(logits < kth, float("-inf")), dim=-1)
            w = self.top_k_weight
            attention = top_k if w == 1.0 else w * top_k + (1.0 - w) * attention
        erase = torch.sigmoid(out[..., 1:1 + d])
        content = torch.tanh(out[..., 1 + d:1 + 2 * d])
        input_gate = erase if self.coupled_gates else torch.sigmoid(out[..., 1 + 2 * d:])
        return WriteAction(attention, erase, content, input_gate)


class AfterstateCritic(nn.Module):
    """``Q(c_t, m_t)``: the value of the memory *after* the write, read with attention over slots; ``c_t`` is the
    segment's embedding ``e_t``, optionally with a summary of the movie so far (the critic's context).

    Per-slot features are pooled by a learned softmax attention and by their mean, then mapped to a scalar.
    The last layer starts at zero (as for synthetic-gradient models) so early gradients into the actor are
    small and unbiased.
    """

    def __init__(self, embed_dim: int, n_slots: int, memory_dim: int, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.features = SlotFeatures(embed_dim, n_slots, memory_dim, hidden)
        h = self.features.out_dim
        self.attend = nn.Linear(h, 1)
        self.value = mlp(2 * h + embed_dim, (h,), 1)
        with torch.no_grad():
            self.value[-1].weight.zero_()
            self.value[-1].bias.zero_()

    def forward(self, embedding: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        f = self.features(embedding, memory)  # (B, N, h)
        w = torch.softmax(self.attend(f), dim=1)
        pooled = torch.cat([(w * f).sum(dim=1), f.mean(dim=1), embedding], dim=-1)
        return self.value(pooled)  # (B, 1)


class GradientMember(nn.Module):
    """One network of a value-gradient critic: slot features of ``[c, m(n), ...]`` -> ``(B, N, d)``, with its last
    layer at zero."""

    def __init__(self, context_dim: int, n_slots: int, memory_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.features = SlotFeatures(context_dim, n_slots, memory_dim, hidden)
        self.head = nn.Linear(self.features.out_dim, memory_dim)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()

    def forward(self, context: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(context, memory))


class AfterstateGradientCritic(GradientMember):
    """``G(c_{t+1}, m_t)``: the gradient of the (scaled) value of the memory after the write, one ``d`` vector
    per slot, ``(B, N, d)``: the critic of value-gradient learning (dual heuristic programming).

    Its input ``c`` is the next segment's embedding, optionally with a summary of the movie so far. The last
    layer starts at zero, so the writer first learns from its immediate reward alone and the bootstrapped
    gradient grows in as the critic learns it.

    The network learns ``G / scale``, ``scale`` the running root mean square of its targets (adaptive target
    normalisation that preserves the outputs, as PopArt does for values, van Hasselt et al. 2016): value gradients
    are small numbers whose size changes as the predictor learns, and without it Adam's steps, whose size does not
    follow the loss's scale, would leave the critic's noise far above the gradients it should carry.

    With ``members > 1`` it is an ensemble: networks initialised apart, each trained on the same targets
    (:meth:`member_outputs`), whose mean is ``G``. Their fitting errors differ, so the mean's error is smaller than
    one network's, which matters where the true gradient is small and the critic's error is what the writer would
    follow. The first member is this module's own ``features`` and ``head`` (a one-member critic is one network).
    """

    def __init__(self, context_dim: int, n_slots: int, memory_dim: int, hidden: Sequence[int] = (128, 128),
                 members: int = 1):
        super().__init__(context_dim, n_slots, memory_dim, hidden)
        self.others = nn.ModuleList(GradientMember(context_dim, n_slots, memory_dim, hidden)
                                    for _ in range(int(members) - 1))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("mean_square", torch.zeros(()))  # running mean of the targets' squares
        self.register_buffer("weight", torch.zeros(()))  # its bias correction: the running mean of ones

    @property
    def members(self) -> int:
        """The ensemble's size."""
        return 1 + len(self.others)

    def member_outputs(self, context: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Each member's ``G / scale``, ``(members, B, N, d)`` (what each network is trained on)."""
        own = super().forward(context, memory)
        return torch.stack([own] + [m(context, memory) for m in self.others]) if self.others else own.unsqueeze(0)

    def normalised(self, context: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``G / scale``: the members' mean."""
        return self.member_outputs(context, memory).mean(dim=0)

    def forward(self, context: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.scale * self.normalised(context, memory)

    @torch.no_grad()
    def track(self, target_mean_square: float, rate: float = 0.01) -> float:
        """Move the running mean square of the targets by ``rate`` towards this batch's, and ``scale`` to its root;
        returns the new scale (to :meth:`rescale` the target network with)."""
        self.mean_square.mul_(1.0 - rate).add_(rate * float(target_mean_square))
        self.weight.mul_(1.0 - rate).add_(rate)
        new = float(torch.sqrt(self.mean_square / self.weight).clamp_min(1e-12))
        self.rescale(new)
        return new

    @torch.no_grad()
    def rescale(self, new_scale: float) -> None:
        """Set ``scale``, keeping the outputs: every member's last layer is multiplied by ``old / new``."""
        ratio = float(self.scale) / new_scale
        for head in [self.head] + [m.head for m in self.others]:
            head.weight.mul_(ratio)
            head.bias.mul_(ratio)
        self.scale.fill_(new_scale)


class NumpySlotActor:
    """The same forward as a :class:`SlotActor`, in NumPy for one segment at a time (streaming inference).

    Small per-step torch calls dominate the cost of streaming one long movie, and NumPy runs the same few small
    matrix products with far less overhead per call. Weights are re-exported whenever the torch module's
    parameters change.
    """

    def __init__(self, actor: SlotActor) -> None:
        self.actor = actor
        self._params = list(actor.parameters())
        self._versions: Optional[list] = None

    def _weights(self) -> tuple:
        versions = [p._version for p in self._params]
        if versions != self._versions:
            f = self.actor.features

            def lin(layer: nn.Linear) -> tuple:
                w = layer.weight.detach().cpu().numpy().T.astype(np.float32)
                b = None if layer.bias is None else layer.bias.detach().cpu().numpy().astype(np.float32)
                return np.ascontiguousarray(w), b

            rest = [] if f.rest is None else [lin(m) for m in f.rest if isinstance(m, nn.Linear)]
            self._cache = (f.slot_embedding.detach().cpu().numpy(), lin(f.embed_in), lin(f.slot_in)[0], rest,
                           lin(self.actor.head))
            self._versions = versions
        return self._cache

    def __call__(self, embedding: np.ndarray, memory: np.ndarray) -> WriteAction:
        """The write parts for ``memory`` ``(..., N, d)`` and ``embedding`` ``(..., d_e)`` (one segment, or a
        batch of movies at one step)."""
        slot_emb, (w_e, b_e), w_s, rest, (w_h, b_h) = self._weights()
        n = memory.shape[-2]
        pooled = np.broadcast_to(memory.mean(axis=-2, keepdims=True), memory.shape)
        slots = np.broadcast_to(slot_emb, memory.shape[:-1] + slot_emb.shape[-1:])
        x = np.concatenate([memory, pooled, slots], axis=-1).reshape(-1, w_s.shape[0])  # 2-D products: one BLAS call
        h = (x @ w_s).reshape(-1, n, w_s.shape[1]) + (embedding.reshape(-1, w_e.shape[0]) @ w_e + b_e)[:, None, :]
        h = np.maximum(h, 0.0).reshape(-1, w_s.shape[1])
        for i, (w, b) in enumerate(rest):
            h = h @ w + b
            if i < len(rest) - 1:
                h = np.maximum(h, 0.0)
        if rest:
            h = np.maximum(h, 0.0)
        out = (h @ w_h + b_h).reshape(*memory.shape[:-1], w_h.shape[1])
        d = self.actor.memory_dim
        logits = out[..., 0] - out[..., 0].max(axis=-1, keepdims=True)
        attention = np.exp(logits)
        attention /= attention.sum(axis=-1, keepdims=True)
        k, w = self.actor.write_top_k, self.actor.top_k_weight
        if k and w > 0:
            kth = np.partition(logits, -k, axis=-1)[..., -k:-k + 1]
            top_k = np.where(logits < kth, 0.0, attention)
            top_k /= top_k.sum(axis=-1, keepdims=True)
            attention = top_k if w == 1.0 else w * top_k + (1.0 - w) * attention
        erase = 0.5 * (np.tanh(0.5 * out[..., 1:1 + d]) + 1.0)  # sigmoid without overflow
        content = np.tanh(out[..., 1 + d:1 + 2 * d])
        input_gate = erase if self.actor.coupled_gates else 0.5 * (np.tanh(0.5 * out[..., 1 + 2 * d:]) + 1.0)
        return WriteAction(attention, erase, content, input_gate)
