"""Supervised baselines over the cached segment embeddings ``e_t`` (the same embeddings the RMN sees).

Every model maps a chunk of consecutive embeddings ``(B, L, d_e)`` plus a carried state to predictions
``(B, L, n_targets)`` and the new state, so that training (truncated BPTT) and streaming prediction share
one code path:

* :class:`SegmentRegressor` (``"segment"``): an MLP on ``e_t`` alone, no memory (the per-clip model);
* :class:`LSTMBaseline` (``"lstm"``): an LSTM over the whole movie, its learnable initial state ``(h0, c0)``;
* :class:`MemoryTBPTT` (``"memory_tbptt"``): *the RMN's own memory* — the write network is
  :class:`agents.rmn.networks.SlotActor` writing through :func:`affect_env.memory.write`, the read-out is
  :class:`affect_env.memory.MemoryPredictor` with its learnable ``m0`` — trained end to end by
  backpropagation through the writes instead of by reinforcement learning;
* :class:`WindowTransformer` (``"transformer"``): a Transformer that sees the last ``window`` segments
  (learned age embeddings, padding masked at the start of a movie) and predicts the newest one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from affect_env.encoder import SegmentEncoder, atomic_torch_save, encoder_from_payload
from affect_env.memory import DEFAULT_MEMORY_DIM, DEFAULT_N_SLOTS, MemoryPredictor, write
from agents.config import BASELINES
from agents.rmn.networks import SlotActor, erase_biases, mlp

MODEL_NAMES = BASELINES


class SequenceModel(nn.Module):
    """Common interface: ``forward(e, state) -> (predictions, state)`` over a chunk of consecutive segments.

    ``recurrent`` models carry information across chunks in ``state`` (so truncated BPTT makes sense);
    the others only need the state for their input window (the transformer) or not at all.
    """

    name = "base"
    recurrent = False

    def initial_state(self, batch_size: int) -> Any:
        """The state before a movie's first segment, for ``batch_size`` movies."""
        return None

    def detach_state(self, state: Any) -> Any:
        """Cut the graph between chunks (truncated BPTT)."""
        if state is None:
            return None
        if isinstance(state, torch.Tensor):
            return state.detach()
        return type(state)(self.detach_state(s) for s in state)

    def config(self) -> dict:
        """Constructor keyword arguments (saved with checkpoints)."""
        raise NotImplementedError


class SegmentRegressor(SequenceModel):
    """Per-segment MLP ``y_t = f(e_t)``: the best a model without memory can do.

    :param embed_dim: embedding size ``d_e``
    :param n_targets: outputs per segment
    :param hidden: hidden layer sizes
    """

    name = "segment"

    def __init__(self, embed_dim: int, n_targets: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.embed_dim, self.n_targets, self.hidden = int(embed_dim), int(n_targets), [int(h) for h in hidden]
        self.net = mlp(self.embed_dim, self.hidden, self.n_targets)

    def config(self) -> dict:
        return dict(embed_dim=self.embed_dim, n_targets=self.n_targets, hidden=self.hidden)

    def forward(self, e: torch.Tensor, state: Any = None) -> tuple:
        return self.net(e), state


class LSTMBaseline(SequenceModel):
    """LSTM over the whole movie, ``y_t = W h_t + b``, with a learnable initial state.

    :param embed_dim: embedding size ``d_e``
    :param n_targets: outputs per segment
    :param hidden_size: LSTM state size
    :param num_layers: stacked LSTM layers
    """

    name = "lstm"
    recurrent = True

    def __init__(self, embed_dim: int, n_targets: int, hidden_size: int = 64, num_layers: int = 1) -> None:
        super().__init__()
        self.embed_dim, self.n_targets = int(embed_dim), int(n_targets)
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.lstm = nn.LSTM(self.embed_dim, self.hidden_size, num_layers=self.num_layers, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(self.num_layers, 1, self.hidden_size))
        self.c0 = nn.Parameter(torch.zeros(self.num_layers, 1, self.hidden_size))
        self.head = nn.Linear(self.hidden_size, self.n_targets)

    def config(self) -> dict:
        return dict(embed_dim=self.embed_dim, n_targets=self.n_targets, hidden_size=self.hidden_size,
                    num_layers=self.num_layers)

    def initial_state(self, batch_size: int) -> tuple:
        return (self.h0.expand(-1, batch_size, -1).contiguous(), self.c0.expand(-1, batch_size, -1).contiguous())

    def forward(self, e: torch.Tensor, state: Optional[tuple] = None) -> tuple:
        state = self.initial_state(e.shape[0]) if state is None else state
        h, state = self.lstm(e, state)
        return self.head(h), state


class MemoryTBPTT(SequenceModel):
    """The RMN's memory (same write and read networks, same ``m0``) trained by backpropagation through time.

    Per segment: ``m_t = write(m_{t-1}, actor(e_t, m_{t-1}))`` and ``y_t = predictor(e_t, m_t)``, exactly as
    the RMN's environment and :func:`agents.rollout.rollout` compute them. The constructor arguments are those
    of :class:`agents.rmn.policies.RMNPolicy`, so ``actor`` and ``predictor`` have the RMN's state-dict layout.

    :param embed_dim: embedding size ``d_e``
    :param n_slots: memory slots ``N``
    :param memory_dim: slot size ``d``
    :param n_targets: outputs per segment
    :param net_arch: hidden sizes of the write network (the RMN actor's ``net_arch``)
    :param predictor_hidden: hidden sizes of the predictor's score and output networks
    :param read_heads: attention reads of the predictor
    :param read_key_dim: query/key size of the predictor's content addressing (0: none)
    :param erase_bias: initial erase-gate logit bias of the write network (one value, ``[first, last]`` or per dim)
    :param input_bias: initial input-gate logit bias of the write network
    :param coupled_gates: the write network uses its erase gate as input gate (as the RMN's ``coupled_gates``)
    :param write_top_k: write only the ``k`` most attended slots (as the RMN's ``write_top_k``; 0: every slot)
    """

    name = "memory_tbptt"
    recurrent = True

    def __init__(self, embed_dim: int, n_slots: int, memory_dim: int, n_targets: int,
                 net_arch: Sequence[int] = (64, 64), predictor_hidden: Sequence[int] = (64,), read_heads: int = 1,
                 erase_bias: Any = 0.0, input_bias: float = 0.0, coupled_gates: bool = False,
                 read_key_dim: int = 0, write_top_k: int = 0, embed_in_output: bool = True) -> None:
        super().__init__()
        self._config = dict(embed_dim=int(embed_dim), n_slots=int(n_slots), memory_dim=int(memory_dim),
                            n_targets=int(n_targets), net_arch=[int(h) for h in net_arch],
                            predictor_hidden=[int(h) for h in predictor_hidden], read_heads=int(read_heads),
                            erase_bias=erase_biases(erase_bias, memory_dim), input_bias=float(input_bias),
                            coupled_gates=bool(coupled_gates), read_key_dim=int(read_key_dim),
                            write_top_k=int(write_top_k))
        if not embed_in_output:  # the paper's read-out; absent from the config of models saved before it existed
            self._config["embed_in_output"] = False
        gates = {"coupled_gates": True} if coupled_gates else {}  # only passed when used
        self.actor = SlotActor(embed_dim, n_slots, memory_dim, list(net_arch), self._config["erase_bias"], input_bias,
                               write_top_k=int(write_top_k), **gates)
        self.predictor = MemoryPredictor(embed_dim, n_slots, memory_dim, n_targets, hidden=list(predictor_hidden),
                                         read_heads=read_heads, key_dim=int(read_key_dim),
                                         embed_in_output=embed_in_output)

    @property
    def n_targets(self) -> int:
        return self.predictor.n_targets

    def config(self) -> dict:
        return dict(self._config)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.predictor.m0.unsqueeze(0).expand(batch_size, -1, -1)

    def step(self, e: torch.Tensor, memory: torch.Tensor) -> tuple:
        """One segment: ``(y_t, m_t)`` from ``e_t (B, d_e)`` and ``m_{t-1} (B, N, d)``."""
        memory = write(memory, self.actor(e, memory))
        return self.predictor(e, memory), memory

    def forward(self, e: torch.Tensor, state: Optional[torch.Tensor] = None) -> tuple:
        memory = self.initial_state(e.shape[0]) if state is None else state
        preds = []
        for t in range(e.shape[1]):
            y, memory = self.step(e[:, t], memory)
            preds.append(y)
        return torch.stack(preds, dim=1), memory


class WindowTransformer(SequenceModel):
    """Causal Transformer over the last ``window`` segments: ``y_t = f(e_{t-W+1}, ..., e_t)``.

    Each window's tokens get a learned embedding of their age; slots before the movie's start are masked
    out as keys. The window holds only past and current segments and only the newest token's output is
    used, so ``y_t`` never depends on a later segment (causality comes from the window itself; within it,
    tokens attend to each other freely, which also guarantees every query sees at least one valid key).
    The state between chunks is the last ``W - 1`` embeddings and their validity.

    :param embed_dim: embedding size ``d_e``
    :param n_targets: outputs per segment
    :param window: segments seen per prediction ``W``
    :param d_model: token size
    :param n_heads: attention heads
    :param n_layers: encoder layers
    :param max_batch: windows evaluated at once (bounds the activation memory of long chunks)
    """

    name = "transformer"

    def __init__(self, embed_dim: int, n_targets: int, window: int = 64, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, max_batch: int = 4096) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"transformer: window must be >= 1 segment, got {window}")
        self.embed_dim, self.n_targets, self.window = int(embed_dim), int(n_targets), int(window)
        self.d_model, self.n_heads, self.n_layers, self.max_batch = int(d_model), int(n_heads), int(n_layers), int(max_batch)
        self.inp = nn.Linear(self.embed_dim, self.d_model)
        self.age = nn.Parameter(torch.randn(self.window, self.d_model) * 0.02)  # index 0 = oldest, W-1 = now
        layer = nn.TransformerEncoderLayer(self.d_model, self.n_heads, dim_feedforward=2 * self.d_model,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, self.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.d_model)
        self.head = nn.Linear(self.d_model, self.n_targets)

    def config(self) -> dict:
        return dict(embed_dim=self.embed_dim, n_targets=self.n_targets, window=self.window, d_model=self.d_model,
                    n_heads=self.n_heads, n_layers=self.n_layers, max_batch=self.max_batch)

    def forward_windows(self, windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Predictions ``(M, n_targets)`` for ``M`` windows ``(M, W, d_e)`` (oldest first) with ``valid (M, W)``."""
        outs = []
        *lower, last = self.encoder.layers
        for s in range(0, len(windows), self.max_batch):
            w, v = windows[s:s + self.max_batch], valid[s:s + self.max_batch]
            x = self.inp(w) + self.age
            for layer in lower:
                x = layer(x, src_key_padding_mask=~v)
            outs.append(self.head(self.norm(self._newest_token(last, x, ~v))))
        return torch.cat(outs) if outs else windows.new_zeros(0, self.n_targets)

    @staticmethod
    def _newest_token(layer: nn.TransformerEncoderLayer, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """The pre-norm encoder ``layer``'s output ``(M, d_model)`` at the newest token only: the same numbers as
        ``layer(x, src_key_padding_mask=padding)[:, -1]`` with one query instead of ``W`` (attention and the
        feed-forward block work per token; only the newest is read), so the last layer's work shrinks ``W``-fold."""
        h = layer.norm1(x)
        attended = layer.self_attn(h[:, -1:], h, h, key_padding_mask=padding, need_weights=False)[0]
        now = x[:, -1] + layer.dropout1(attended[:, 0])
        feed = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(now)))))
        return now + layer.dropout2(feed)

    def initial_state(self, batch_size: int) -> tuple:
        w = self.window - 1
        return (torch.zeros(batch_size, w, self.embed_dim, device=self.age.device),
                torch.zeros(batch_size, w, dtype=torch.bool, device=self.age.device))

    def forward(self, e: torch.Tensor, state: Optional[tuple] = None) -> tuple:
        b, length, _ = e.shape
        context, ok = self.initial_state(b) if state is None else state
        full = torch.cat([context.to(e.dtype), e], dim=1)  # (B, W-1+L, d_e)
        full_ok = torch.cat([ok, torch.ones(b, length, dtype=torch.bool, device=e.device)], dim=1)
        windows = full.unfold(1, self.window, 1).permute(0, 1, 3, 2)  # (B, L, W, d_e)
        valid = full_ok.unfold(1, self.window, 1)  # (B, L, W)
        y = self.forward_windows(windows.reshape(b * length, self.window, -1), valid.reshape(b * length, -1))
        keep = self.window - 1
        new_state = (full[:, full.shape[1] - keep:], full_ok[:, full.shape[1] - keep:])
        return y.reshape(b, length, -1), new_state


def build_model(name: str, embed_dim: int, n_targets: int, window: int = 64, hidden: int = 64,
                n_slots: int = DEFAULT_N_SLOTS, memory_dim: int = DEFAULT_MEMORY_DIM,
                net_arch: Sequence[int] = (64, 64),
                predictor_hidden: Sequence[int] = (64,), read_heads: int = 1, erase_bias: Any = 0.0,
                input_bias: float = 0.0, coupled_gates: bool = False, read_key_dim: int = 0,
                write_top_k: int = 0, embed_in_output: bool = True) -> SequenceModel:
    """A baseline by name (one of :data:`MODEL_NAMES`).

    :param window: the transformer's input window (the recurrent models' TBPTT window is a training option)
    :param hidden: hidden size of the segment MLP (two layers), the LSTM and the transformer's tokens
    :param n_slots: memory slots (``memory_tbptt``)
    :param memory_dim: slot size (``memory_tbptt``)
    :param net_arch: write network hidden sizes (``memory_tbptt``, as the RMN's actor)
    :param predictor_hidden: predictor hidden sizes (``memory_tbptt``, as the RMN's predictor)
    :param write_top_k: slots written per step (``memory_tbptt``, as the RMN's; 0: every slot)
    """
    if name == "segment":
        return SegmentRegressor(embed_dim, n_targets, (hidden, hidden))
    if name == "lstm":
        return LSTMBaseline(embed_dim, n_targets, hidden)
    if name == "memory_tbptt":
        return MemoryTBPTT(embed_dim, n_slots, memory_dim, n_targets, net_arch, predictor_hidden, read_heads,
                           erase_bias, input_bias, coupled_gates, read_key_dim, write_top_k, embed_in_output)
    if name == "transformer":
        return WindowTransformer(embed_dim, n_targets, window=window, d_model=hidden)
    raise ValueError(f"unknown baseline model {name!r}; choose one of {MODEL_NAMES}")


MODEL_CLASSES = {cls.name: cls for cls in (SegmentRegressor, LSTMBaseline, MemoryTBPTT, WindowTransformer)}


def model_from_config(name: str, config: dict) -> SequenceModel:
    """Rebuild a model from its :meth:`SequenceModel.config` (as saved in a checkpoint)."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown baseline model {name!r} in checkpoint; choose one of {MODEL_NAMES}")
    return MODEL_CLASSES[name](**config)


def save_baseline(path: Path, model: SequenceModel, encoder: SegmentEncoder, extra: Optional[dict] = None) -> None:
    """Write the model (name, config, weights) and its segment encoder to ``path`` atomically."""
    encoder_weights = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    payload = {"model": model.name, "config": model.config(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "encoder": dict(encoder.spec(), state_dict=encoder_weights), **(extra or {})}
    atomic_torch_save(payload, Path(path))


def load_baseline(path: Path, device: str = "cpu") -> tuple:
    """``(model, encoder)`` from a ``model.pt`` written by :func:`save_baseline` (or its run directory).

    :raises ValueError: naming the file where there is none or it is not a saved baseline
    """
    path = Path(path)
    path = path / "model.pt" if path.is_dir() else path
    if not path.exists():
        raise ValueError(f"{path}: no baseline model found (give a run directory or its model.pt)")
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
        model = model_from_config(payload["model"], payload["config"])
    except (RuntimeError, EOFError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"{path}: not a saved baseline model ({type(err).__name__}: {err})") from None
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), encoder_from_payload(payload["encoder"])
