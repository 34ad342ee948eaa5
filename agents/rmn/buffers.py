"""Replay buffer of the RMN agent: afterstates plus the labels read from ``infos``.

Each stored step ``t`` keeps the segment embedding ``e_t``, the afterstate memory ``m_t`` (the memory after
the write, i.e. ``next_obs["memory"]``), the ground-truth ``target_t`` from ``info["target"]``, the segment
index ``t``, an episode number and the end-of-movie flag. Rewards are *not* used for learning: they are
recomputed at update time with the current predictor (stored rewards go stale as it learns), and actions
are not needed because the afterstate critic only sees ``m_t``.

Steps are stored in order, so neighbours in the buffer are neighbours in the movie: ``m_{t-1}`` is the
previous slot's afterstate (or ``m0`` at ``t = 0``) and ``e_{t+1}`` the next slot's segment. This is what
lets :meth:`sample_windows` return contiguous windows and long jumps within one movie at no extra storage.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer

from affect_env.memory import check_choice, decode_action
from agents.config import POSITIONS, SPACINGS

LOG_KEEP_FLOOR = 20.0  # one write removes at most all but exp(-20) of a value from the stored sensitivity


def log_keep_step(overwrite):
    """``log(1 - att * erase)`` of one write, floored so a full overwrite stays finite (NumPy or torch)."""
    if isinstance(overwrite, torch.Tensor):
        return torch.log1p(-overwrite.clamp(0.0, 1.0 - 1e-6)).clamp_min(-LOG_KEEP_FLOOR)
    return np.maximum(np.log1p(-np.clip(overwrite, 0.0, 1.0 - 1e-6)), -LOG_KEEP_FLOOR).astype(np.float32)


def start_memory(m0: torch.Tensor, prev_memory: torch.Tensor, starts_movie: torch.Tensor) -> torch.Tensor:
    """``m_{t-1}`` of sampled steps: the stored memory, or the live (trainable) ``m0`` where a step starts its movie
    (the ``prev_memory`` and ``starts_movie`` of the samples below), so that ``m0`` is trained through each movie's
    first write."""
    return torch.where(starts_movie[:, None, None], m0.unsqueeze(0).expand_as(prev_memory), prev_memory)


class WindowSamples(NamedTuple):
    """``B`` windows of ``L`` consecutive steps (index ``[b, i]`` = step ``s_b + i``)."""

    segments: torch.Tensor  # (B, L + 1, d_e): e_s .. e_{s+L} (the last one for bootstrapping)
    prev_memory: torch.Tensor  # (B, N, d): m_{s-1} as stored (ignore where starts_movie)
    starts_movie: torch.Tensor  # (B,) bool: t_s == 0, use the live m0 instead
    afterstates: torch.Tensor  # (B, L, N, d): stored m_s .. m_{s+L-1}
    targets: torch.Tensor  # (B, L, n_targets)
    dones: torch.Tensor  # (B, L) float: 1 where the movie ends at that step
    alive: torch.Tensor  # (B, L) float: 0 after the movie ended inside the window
    history: Optional[torch.Tensor] = None  # (B, L + 1, d_e): h_s .. h_{s+L}, where the buffer keeps a history


class JumpSamples(NamedTuple):
    """Pairs (step ``i``, a later step ``j`` of the same movie)."""

    segment: torch.Tensor  # (B, d_e) e_i
    prev_memory: torch.Tensor  # (B, N, d) m_{i-1}
    starts_movie: torch.Tensor  # (B,) bool
    later_segment: torch.Tensor  # (B, d_e) e_j
    later_target: torch.Tensor  # (B, n_targets) y_j
    distance: torch.Tensor  # (B,) j - i


class CreditSamples(NamedTuple):
    """Write steps ``k`` with ``J`` later read steps ``j >= k`` of the same movie and the memory's sensitivity."""

    segment: torch.Tensor  # (B, d_e) e_k
    prev_memory: torch.Tensor  # (B, N, d) m_{k-1} as stored
    starts_movie: torch.Tensor  # (B,) bool: k is the movie's first step (use the live m0)
    memory: torch.Tensor  # (B, N, d) m_k as stored
    later_segment: torch.Tensor  # (B, J, d_e) e_j
    later_memory: torch.Tensor  # (B, J, N, d) m_j as stored
    later_target: torch.Tensor  # (B, J, n_targets) y_j
    keep: torch.Tensor  # (B, J, N, d) dm_j / dm_k along the stored writes: prod_{k<s<=j} (1 - att_s erase_s)
    valid: torch.Tensor  # (B, J) 1 where j is a stored step of k's movie
    distance: torch.Tensor  # (B, J) j - k (0 where not valid)


class AdjointSamples(NamedTuple):
    """Write steps ``k`` with the stored adjoint: how the later reads' error changes with ``m_k``."""

    segment: torch.Tensor  # (B, d_e) e_k
    prev_memory: torch.Tensor  # (B, N, d) m_{k-1} as stored
    starts_movie: torch.Tensor  # (B,) bool: k is the movie's first step (use the live m0)
    memory: torch.Tensor  # (B, N, d) m_k as stored
    adjoint: torch.Tensor  # (B, N, d) sum_{j>k} w_{j-k} * dm_j/dm_k * d error_j / dm_j, as of the last refresh


class LabelReplayBuffer(BaseBuffer):
    """Ordered replay of afterstates and labels for the RMN agent (``n_envs`` must be 1).

    :param buffer_size: maximum number of stored steps
    :param observation_space: the env's ``Dict(segment, memory)`` space
    :param action_space: the env's action space (actions themselves are not stored)
    :param device: where sampled tensors go
    :param n_envs: must be 1 (steps of one env are stored in order)
    :param history_decay: also keep ``h_t``, the running mean of the movie's embeddings ``e_0 .. e_t`` weighted by
        ``decay^(t - s)`` (normalised by the weights' sum, so the opening counts fully from ``t = 0``), a causal
        summary of the movie for the critic; 0: none
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Dict, action_space: spaces.Space,
                 device: Any = "auto", n_envs: int = 1, history_decay: float = 0.0, **_unused: Any) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        if n_envs != 1:
            raise ValueError("LabelReplayBuffer stores the steps of one env in order: use n_envs=1")
        seg_shape = observation_space["segment"].shape
        mem_shape = observation_space["memory"].shape
        self.segments = np.zeros((buffer_size, *seg_shape), np.float32)
        self.afterstates = np.zeros((buffer_size, *mem_shape), np.float32)
        self.targets: Optional[np.ndarray] = None  # allocated on the first add (size from info["target"])
        self.t = np.full(buffer_size, -1, np.int64)
        self.episode = np.full(buffer_size, -1, np.int64)
        self.dones = np.zeros(buffer_size, np.float32)
        # log_keep[p] = sum_{s <= t} log(1 - att_s * erase_s): how much of m_0's content survives in m_t, per
        # value; differences give the sensitivity dm_j / dm_k of the write's linear path
        self.log_keep = np.zeros((buffer_size, *mem_shape), np.float32)
        # adjoint[p]: the gradient of the later reads' weighted error with respect to m_t (set by the agent's
        # refresh, for whole stored movies only; allocated on first use), valid where adjoint_ready
        self.adjoint: Optional[np.ndarray] = None
        self.adjoint_ready = np.zeros(buffer_size, bool)
        self.history_decay = float(history_decay)
        self.history = np.zeros((buffer_size, *seg_shape), np.float32) if self.history_decay > 0 else None
        self._history_sum = np.zeros(seg_shape, np.float64)  # sum_s decay^(t - s) e_s of the movie being stored
        self._history_weight = 0.0  # sum_s decay^(t - s)
        self._episode = 0

    def __setstate__(self, state: dict) -> None:
        """Unpickle, giving a buffer saved before the adjoint loss existed an empty adjoint store (resumable runs)."""
        state.setdefault("adjoint", None)
        state.setdefault("history_decay", 0.0)
        state.setdefault("history", None)
        if "adjoint_ready" not in state:
            state["adjoint_ready"] = np.zeros(state["buffer_size"], bool)
        self.__dict__.update(state)

    def add(self, obs: dict, next_obs: dict, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
            infos: list) -> None:
        info = infos[0]
        if "target" not in info:
            raise KeyError("LabelReplayBuffer needs info['target'] from the env (LiRISMemory-v0 provides it)")
        target = np.asarray(info["target"], np.float32)
        if self.targets is None:
            self.targets = np.zeros((self.buffer_size, len(target)), np.float32)
        p = self.pos
        self.segments[p] = obs["segment"][0]
        self.afterstates[p] = next_obs["memory"][0]
        self.targets[p] = target
        self.t[p] = int(info["t"])
        self.episode[p] = self._episode
        self.dones[p] = float(done[0])
        self.adjoint_ready[p] = False
        parts = decode_action(np.asarray(action, np.float32).reshape(-1), *self.afterstates.shape[1:])
        prev = (p - 1) % self.buffer_size
        continues = self.t[p] > 0 and self.episode[prev] == self._episode  # the previous row is this movie's
        carried = self.log_keep[prev] if continues else 0.0
        self.log_keep[p] = carried + log_keep_step(parts.attention[:, None] * parts.erase)
        if self.history is not None:
            decay = self.history_decay if continues else 0.0
            self._history_sum = decay * self._history_sum + self.segments[p]
            self._history_weight = decay * self._history_weight + 1.0
            self.history[p] = self._history_sum / self._history_weight
        if done[0]:
            self._episode += 1
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0

    # ---- sampling ----------------------------------------------------------------------------------------
    def _valid_starts(self, length: int, n: int, among: Optional[np.ndarray] = None) -> np.ndarray:
        """``n`` start indices whose window of ``length`` steps lies inside one stored movie stretch (drawn from the
        rows ``among`` when given, else from every stored row)."""
        size = self.size()
        out = np.empty(0, np.int64)
        for _ in range(100):
            cand = np.random.randint(0, size, size=2 * n + 8) if among is None else np.random.choice(among, 2 * n + 8)
            ok = self._window_ok(cand, length)
            out = np.concatenate([out, cand[ok]])
            if len(out) >= n:
                return out[:n]
        raise RuntimeError(f"could not sample {n} windows of length {length} from {size} stored steps")

    def _window_ok(self, start: np.ndarray, length: int) -> np.ndarray:
        ok = np.ones(len(start), bool)
        # the previous step must be stored (or the window starts the movie)
        prev = (start - 1) % self.buffer_size
        ok &= (self.t[start] == 0) | ((self.episode[prev] == self.episode[start]) & (self.t[prev] == self.t[start] - 1))
        # every later step up to the bootstrap segment must be stored, unless the movie ended before
        ended = np.zeros(len(start), bool)
        for i in range(1, length + 1):
            was_done = self.dones[(start + i - 1) % self.buffer_size] > 0
            ended |= was_done
            ok &= ended | self._same_stretch(start, (start + i) % self.buffer_size, i)
        return ok

    def _same_stretch(self, start: np.ndarray, later: np.ndarray, distance) -> np.ndarray:
        """Whether the stored step ``later`` is the step ``distance`` after ``start`` in the same movie."""
        same = (self.episode[later] == self.episode[start]) & (self.t[later] == self.t[start] + distance)
        return same & self._written(later)

    def _written(self, idx: np.ndarray) -> np.ndarray:
        if self.full:
            return np.ones(np.shape(idx), bool)
        return idx < self.pos

    def _write_inputs(self, k: np.ndarray) -> dict:
        """What re-running the write at stored steps ``k`` needs: ``e_k``, the stored ``m_{k-1}`` and whether
        ``k`` starts its movie (then the live ``m0`` replaces ``m_{k-1}``)."""
        return dict(segment=self.to_torch(self.segments[k]),
                    prev_memory=self.to_torch(self.afterstates[(k - 1) % self.buffer_size]),
                    starts_movie=torch.as_tensor(self.t[k] == 0, device=self.device))

    def sample_windows(self, batch_size: int, length: int = 1, among: Optional[np.ndarray] = None) -> WindowSamples:
        """``batch_size`` windows of ``length`` consecutive steps (``length = 1``: plain one-step samples), starting
        at rows ``among`` when given (e.g. those of the movies just refreshed)."""
        start = self._valid_starts(length, batch_size, among)
        steps = (start[:, None] + np.arange(length + 1)[None, :]) % self.buffer_size  # (B, L + 1)
        dones = self.dones[steps[:, :length]]
        alive = np.concatenate([np.ones((len(start), 1), np.float32),
                                1.0 - np.maximum.accumulate(dones, axis=1)[:, :-1]], axis=1)
        segments = self.segments[steps]
        return WindowSamples(
            segments=self.to_torch(segments),
            prev_memory=self.to_torch(self.afterstates[(start - 1) % self.buffer_size]),
            starts_movie=torch.as_tensor(self.t[start] == 0, device=self.device),
            afterstates=self.to_torch(self.afterstates[steps[:, :length]]),
            targets=self.to_torch(self.targets[steps[:, :length]]),
            dones=self.to_torch(dones),
            alive=self.to_torch(alive),
            history=None if self.history is None else self.to_torch(self.history[steps]),
        )

    def sample_jumps(self, batch_size: int, max_distance: int) -> JumpSamples:
        """Pairs of steps ``(i, j)`` of one movie with ``j - i`` log-uniform in ``[1, max_distance]``."""
        size = self.size()
        starts, later = np.empty(0, np.int64), np.empty(0, np.int64)
        for _ in range(100):
            n = 2 * batch_size + 8
            i = np.random.randint(0, size, size=n)
            dist = np.exp(np.random.uniform(0.0, np.log(max_distance + 1), size=n)).astype(np.int64)
            dist = dist.clip(1, max_distance)
            j = (i + dist) % self.buffer_size
            ok = self._same_stretch(i, j, dist) & self._window_ok(i, 0)
            starts, later = np.concatenate([starts, i[ok]]), np.concatenate([later, j[ok]])
            if len(starts) >= batch_size:
                break
        if len(starts) == 0:
            raise RuntimeError("no pair of steps of one movie in the buffer yet")
        starts, later = starts[:batch_size], later[:batch_size]
        return JumpSamples(
            **self._write_inputs(starts),
            later_segment=self.to_torch(self.segments[later]),
            later_target=self.to_torch(self.targets[later]),
            distance=torch.as_tensor(self.t[later] - self.t[starts], device=self.device),
        )

    def sample_credit(self, batch_size: int, max_distance: int, reads: int = 1,
                      spacing: str = "uniform", min_distance: int = 0, positions: str = "uniform") -> CreditSamples:
        """``batch_size`` write steps ``k``, each with ``reads`` later steps ``j`` of its movie, ``j - k`` in
        ``[min_distance, max_distance]``: uniform, log-uniform (``spacing="log"``) or either with probability 1/2
        per read (``"mixed"``); ``valid`` is false where ``j`` lies past the stored movie. With ``dm_j / dm_k``.

        The writes are stored steps drawn uniformly (``positions="uniform"``), or, for half of them
        (``"mixed"``), moved to an earlier step of their movie, log-uniform in ``t + 1``: the opening of a
        movie, where what matters for hundreds of segments is set up, then gets a share of the writes far
        above its share of the steps (about 20 % instead of 1 % for the first 5 of 400 segments)."""
        check_choice("spacing", spacing, SPACINGS)
        check_choice("positions", positions, POSITIONS)
        if not 0 <= min_distance <= max_distance:
            raise ValueError(f"need 0 <= min_distance <= max_distance, got {min_distance} and {max_distance}")
        k = self._valid_starts(0, batch_size)
        if positions == "mixed":
            k = self._move_earlier(k, np.random.random(len(k)) < 0.5)
        shape, lo = (len(k), reads), min_distance
        dist = np.random.randint(lo, max_distance + 1, size=shape)
        if spacing != "uniform":  # log-uniform over [lo, max_distance]: exp(U(log(lo + 1), log(max + 2))) - 1
            log = np.exp(np.random.uniform(np.log(lo + 1), np.log(max_distance + 2), size=shape)).astype(np.int64) - 1
            use_log = np.ones(shape, bool) if spacing == "log" else np.random.random(shape) < 0.5
            dist = np.where(use_log, log.clip(lo, max_distance), dist)
        j = (k[:, None] + dist) % self.buffer_size
        valid = self._same_stretch(k[:, None], j, dist)
        j = np.where(valid, j, k[:, None])
        return CreditSamples(
            **self._write_inputs(k),
            memory=self.to_torch(self.afterstates[k]),
            later_segment=self.to_torch(self.segments[j]),
            later_memory=self.to_torch(self.afterstates[j]),
            later_target=self.to_torch(self.targets[j]),
            keep=self.to_torch(np.exp(self.log_keep[j] - self.log_keep[k][:, None])),
            valid=self.to_torch(valid.astype(np.float32)),
            distance=torch.as_tensor(self.t[j] - self.t[k][:, None], device=self.device),
        )

    def store_adjoint(self, rows: np.ndarray, adjoint: np.ndarray) -> None:
        """Store the adjoints ``(P, N, d)`` of the buffer rows ``rows`` (one whole movie's) and mark them ready."""
        if self.adjoint is None:
            self.adjoint = np.zeros_like(self.afterstates)
        self.adjoint[rows] = adjoint
        self.adjoint_ready[rows] = True

    def sample_adjoint(self, batch_size: int, positions: str = "uniform") -> AdjointSamples:
        """``batch_size`` write steps ``k`` among those with a stored adjoint, placed as in :meth:`sample_credit`
        (``positions``), with what re-running the write needs, the stored ``m_k`` and the adjoint."""
        check_choice("positions", positions, POSITIONS)
        ready = np.flatnonzero(self.adjoint_ready[:self.size()])
        if len(ready) == 0:
            raise RuntimeError("no stored step has an adjoint yet: the agent's refresh computes them")
        k = ready[np.random.randint(0, len(ready), size=batch_size)]
        if positions == "mixed":
            moved = self._move_earlier(k, np.random.random(len(k)) < 0.5)
            k = np.where(self.adjoint_ready[moved], moved, k)
        return AdjointSamples(**self._write_inputs(k), memory=self.to_torch(self.afterstates[k]),
                              adjoint=self.to_torch(self.adjoint[k]))

    def _move_earlier(self, k: np.ndarray, move: np.ndarray) -> np.ndarray:
        """Each ``k[move]`` replaced by a step of its movie at ``t' = floor((t + 1) ** U) - 1``, ``U ~ U[0, 1)``
        (log-uniform in ``t' + 1`` over ``[0, t]``), where that step is still stored; the others stay."""
        t = self.t[k]
        earlier = np.floor((t + 1.0) ** np.random.random(len(k))).astype(np.int64) - 1
        cand = (k - (t - earlier)) % self.buffer_size
        ok = move & self._same_stretch(cand, k, t - earlier) & self._window_ok(cand, 0)
        return np.where(ok, cand, k)

    def complete_episodes(self) -> list:
        """Buffer positions ``(P,)`` of every stored movie stretch that starts at ``t = 0``, in order.

        A stretch whose first steps were already overwritten cannot be replayed from ``m0`` and is left out.
        """
        size = self.size()
        order = np.arange(size) if not self.full else (np.arange(size) + self.pos) % self.buffer_size
        episodes = self.episode[order]
        cuts = np.flatnonzero(np.diff(episodes)) + 1
        out = []
        for run in np.split(order, cuts):
            if len(run) and self.t[run[0]] == 0 and (np.diff(self.t[run]) == 1).all():
                out.append(run)
        return out

    def sample(self, batch_size: int, env=None) -> WindowSamples:  # SB3 API
        return self.sample_windows(batch_size, 1)

    def _get_samples(self, batch_inds: np.ndarray, env=None):  # pragma: no cover - not used
        raise NotImplementedError("use sample_windows / sample_jumps")
