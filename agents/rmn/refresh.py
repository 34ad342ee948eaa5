"""The RMN's refresh: stored memories recomputed with the current writer, and the adjoints of the long-range loss.

Memories stored in the replay come from old policies and hold what the current one would not have kept (the
stale-state problem of recurrent replay). Here the write is known and the data do not depend on the actions,
so the memories can simply be recomputed: :class:`Refresher` reruns the current noise-free writer over the
stored segments of whole movies (or of stretches of them, :class:`RefreshStretch`) and stores the new
afterstates and the running sums of each write's ``log(1 - att * erase)`` (the sensitivities of the credit
loss). For the adjoint loss (:class:`~agents.rmn.long_range.AdjointLoss`) it also stores, at every step, the
gradient of the later reads' weighted error with respect to that step's memory, carried back along the writes
by one backward scan (:func:`reverse_adjoint`, weighted by :func:`adjoint_horizons`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import torch

from affect_env.memory import check_choice, prediction_error, write
from agents.config import SPACINGS, RMNConfig
from agents.rmn.buffers import LabelReplayBuffer, log_keep_step
from agents.rmn.policies import RMNPolicy

ADJOINT_CHUNK = 256  # steps per predictor backward pass when a refresh computes the error gradients of a movie


def adjoint_horizons(max_distance: int, spacing: str) -> tuple[np.ndarray, np.ndarray]:
    """Horizons ``h`` and weights ``w_h`` of the adjoint loss's read weighting
    ``sum_h w_h (1 - 1/h) ** (j - k - 1) / h`` over the distances ``j - k >= 1``, a weighting that sums to 1 like
    the mean over the credit loss's sampled reads: ``"uniform"`` one horizon ``max_distance``; ``"log"`` equal
    weights on the horizons 1, 2, 4, ... up to ``max_distance`` (near reads weigh more, as log-uniform
    distances do); ``"mixed"`` half on each.
    """
    check_choice("jump_spacing", spacing, SPACINGS)
    scales = np.unique(np.append(2.0 ** np.arange(int(np.log2(max(max_distance, 1))) + 1), float(max_distance)))
    log = np.full(len(scales), 1.0 / len(scales))
    far = (scales == max_distance).astype(float)
    weights = {"uniform": far, "log": log, "mixed": 0.5 * far + 0.5 * log}[spacing]
    return scales, weights


def reverse_adjoint(error_grads: torch.Tensor, step_keep: torch.Tensor, horizons: np.ndarray,
                    weights: np.ndarray, tail: Optional[torch.Tensor] = None,
                    ends: Optional[Sequence[int]] = None) -> torch.Tensor:
    """The adjoint of every step of a batch of movies along the writes' linear path, by one backward scan.

    ``A_k = sum_h w_h / h * sum_{j > k} (1 - 1/h) ** (j - k - 1) * dm_j/dm_k * g_j`` with
    ``dm_j/dm_k = prod_{k < s <= j} keep_s``, computed per horizon as ``A_k = keep_{k+1} (g_{k+1} + gamma A_{k+1})``.

    :param error_grads: ``g_t = d error_t / dm_t``, ``(B, T, N, d)`` (zero on padding after a movie's end)
    :param step_keep: ``keep_t = 1 - att_t * erase_t`` of each write, ``(B, T, N, d)``
    :param tail: the reads after the scanned steps, per horizon at step ``ends[b]`` of each movie ``b``,
        ``(H, B, N, d)`` (:func:`adjoint_tail`); default none: the scanned steps are the whole rest of the movie
    :param ends: with ``tail``, the last scanned step of each movie
    :return: ``(B, T, N, d)``; zero at the last step, which no later read depends on (without ``tail``)
    """
    gamma = torch.as_tensor(1.0 - 1.0 / horizons, dtype=error_grads.dtype, device=error_grads.device)
    scale = torch.as_tensor(weights / horizons, dtype=error_grads.dtype, device=error_grads.device)
    gamma, scale = gamma.view(-1, 1, 1, 1), scale.view(-1, 1, 1, 1)
    per_horizon = torch.zeros((len(horizons), *error_grads[:, 0].shape), dtype=error_grads.dtype,
                              device=error_grads.device)
    entering = {}  # step -> the movies whose tail enters there
    for b, end in enumerate(ends if tail is not None else ()):
        entering.setdefault(int(end), []).append(b)
    out = torch.zeros_like(error_grads)
    for t in range(error_grads.shape[1] - 1, -1, -1):
        if t < error_grads.shape[1] - 1:
            per_horizon = step_keep[:, t + 1] * (error_grads[:, t + 1] + gamma * per_horizon)
        if t in entering:
            per_horizon[:, entering[t]] += tail[:, entering[t]]
        out[:, t] = (scale * per_horizon).sum(0)
    return out


def adjoint_tail(error_grads: torch.Tensor, log_keep: torch.Tensor, horizons: np.ndarray) -> torch.Tensor:
    """Each horizon's share of the reads after step 0, carried back to step 0 along the writes, ``(H, B, N, d)``:
    ``sum_{j > 0} (1 - 1/h) ** (j - 1) * dm_j/dm_0 * g_j``, the ``tail`` of :func:`reverse_adjoint` for steps
    that end just before these. In closed form (one product, no scan): ``dm_j/dm_0 = exp(L_j - L_0)``.

    :param error_grads: ``g_t``, ``(B, M, N, d)`` (zero on padding; ``g_0`` is not used)
    :param log_keep: running sums ``L_t`` of each write's ``log(1 - att * erase)``, ``(B, M, N, d)``
    """
    steps = torch.arange(error_grads.shape[1], dtype=error_grads.dtype, device=error_grads.device)
    gamma = torch.as_tensor(1.0 - 1.0 / horizons, dtype=error_grads.dtype, device=error_grads.device)
    decay = gamma[:, None] ** (steps - 1).clamp(min=0) * (steps > 0)  # (H, M)
    return torch.einsum("hm,bmnd->hbnd", decay, torch.exp(log_keep - log_keep[:, :1]) * error_grads)


def padded_rows(rows: Sequence[np.ndarray]) -> tuple[np.ndarray, list]:
    """Buffer rows of several stored stretches as one ``(B, L)`` index, each padded with its last row to the
    longest, and their lengths."""
    lengths = [len(r) for r in rows]
    return np.stack([np.pad(r, (0, max(lengths) - len(r)), mode="edge") for r in rows]), lengths


class RefreshStretch(NamedTuple):
    """Consecutive steps of one stored movie that a refresh recomputes with the current writer."""

    rows: np.ndarray  # buffer rows of the stretch, in time order
    before: int  # buffer row of the stored m_{s-1} the stretch starts from, or -1: it starts the movie (m0)
    after: np.ndarray  # rows of the same movie after the stretch (kept; their cumulative log-keeps are shifted)
    whole: bool  # the movie has ended, so the stretch's later reads are all stored (it gets adjoints)


class Refresher:
    """Recomputes the stored memories of a replay with a policy's current writer (and the adjoints it needs).

    :param policy: the agent's policy (its actor, NumPy mirror of the actor, and predictor with ``m0``)
    :param recipe: the agent's recipe (kept by reference): ``refresh.refresh_window`` and ``refresh.refresh_tail``
        say which steps a partial refresh recomputes; adjoints are computed when the long-range loss is the
        adjoint loss, with its ``jump_distance`` and ``jump_spacing``; ``reward`` is the error they differentiate
    :param device: where the torch computations run (on the CPU the writes run in NumPy)
    :param submit: ``submit(fn, *args) -> Future``: runs half of the movie groups beside this thread (the agent's
        worker thread)
    """

    def __init__(self, policy: RMNPolicy, recipe: RMNConfig, device: torch.device, submit: Callable) -> None:
        self.policy, self.recipe, self.device, self.submit = policy, recipe, device, submit

    @property
    def adjoints(self) -> bool:
        """Whether a refresh stores adjoints: the adjoint loss is on."""
        long_range = self.recipe.long_range
        return long_range.jump_mode == "adjoint" and long_range.jump_weight > 0

    def refresh_memories(self, buffer: LabelReplayBuffer, batch_movies: int = 64,
                         movies: int = 0) -> tuple[int, Optional[np.ndarray]]:
        """Recompute the stored afterstates and sensitivities of every complete stored movie of ``buffer`` with the
        current actor (and, for the adjoint loss, the adjoints of every whole one; steps of any other movie lose
        theirs).

        Groups of ``batch_movies`` movies run as batches, alternately through ``submit`` and in this thread; each
        group writes only its own movies' rows.

        :param movies: recompute only this many whole stored movies, drawn at random (0 = every complete one), and
            with ``refresh_window`` only a stretch of each
        :return: the number of refreshed steps, and the buffer rows of a partial refresh (``None``: all)
        """
        episodes = buffer.complete_episodes()
        drawn = False
        if movies:
            whole = [g for g in episodes if buffer.dones[g[-1]] > 0]
            if len(whole) > movies:
                episodes = [whole[i] for i in np.random.choice(len(whole), size=movies, replace=False)]
                drawn = True
        window = self.recipe.refresh.refresh_window
        stretches = [self.stretch(buffer, g, window if movies else 0) for g in episodes]
        partial = drawn or (movies and window)
        rows = np.concatenate([s.rows for s in stretches]) if partial and stretches else None
        stretches.sort(key=lambda s: len(s.rows))
        if self.adjoints:  # before the threads: allocate, and forget what is not refreshed now
            if buffer.adjoint is None:
                buffer.adjoint = np.zeros_like(buffer.afterstates)
            buffer.adjoint_ready[:] = False
        groups = [stretches[start:start + batch_movies] for start in range(0, len(stretches), batch_movies)]
        beside = [self.submit(self._refresh_group, buffer, group) for group in groups[1::2]]
        refreshed = sum(self._refresh_group(buffer, group) for group in groups[0::2])
        return refreshed + sum(job.result() for job in beside), rows

    @staticmethod
    def stretch(buffer: LabelReplayBuffer, rows: np.ndarray, window: int) -> RefreshStretch:
        """The stretch of the stored movie ``rows`` a refresh recomputes: all of it, or (``window`` > 0 and a
        longer movie) ``window`` steps, from its opening with probability 1/2, else from a uniformly drawn step.

        Steps after a stretch keep their memories, which the next refreshes redo: a refresh steps along its movies
        one write at a time, so a stretch keeps the cost of a long movie's refresh at that of a short one's.
        """
        whole = bool(buffer.dones[rows[-1]] > 0)
        if not window or len(rows) <= window:
            return RefreshStretch(rows, -1, rows[:0], whole)
        start = 0 if np.random.random() < 0.5 else np.random.randint(1, len(rows) - window + 1)
        end = start + window
        return RefreshStretch(rows[start:end], int(rows[start - 1]) if start else -1, rows[end:], whole)

    @torch.no_grad()
    def _refresh_group(self, buffer: LabelReplayBuffer, group: list) -> int:
        """Rerun the current actor over the stored segments of the stretches ``group`` (:class:`RefreshStretch`),
        each from ``m0`` or from the stored memory before it, and store the new afterstates and cumulative
        log-keeps (and adjoints); returns the number of steps."""
        idx, lengths = padded_rows([s.rows for s in group])  # (B, L)
        m0 = self.policy.predictor.m0.detach().cpu().numpy()
        start = np.stack([buffer.afterstates[s.before] if s.before >= 0 else m0 for s in group])
        after, log_keep = self.write_pass(buffer.segments[idx], start)
        adjoint = self._movie_adjoints(buffer, group, idx, after, log_keep) if self.adjoints else None
        after, log_keep = after.cpu().numpy(), torch.cumsum(log_keep, dim=1).cpu().numpy()
        for b, s in enumerate(group):
            n = len(s.rows)
            carried = log_keep[b, :n] + (buffer.log_keep[s.before] if s.before >= 0 else 0.0)
            if len(s.after):  # later steps keep their own writes: shift their running sum by the stretch's change
                buffer.log_keep[s.after] += carried[-1] - buffer.log_keep[s.rows[-1]]
            buffer.afterstates[s.rows] = after[b, :n]
            buffer.log_keep[s.rows] = carried
            if adjoint is not None and s.whole:  # whole movies only: a running one lacks its future
                buffer.store_adjoint(s.rows, adjoint[b, :n])
        return sum(lengths)

    @torch.no_grad()
    def write_pass(self, segments: np.ndarray, start: Optional[np.ndarray] = None) -> tuple:
        """The current noise-free writer run along ``segments`` ``(B, L, d_e)`` from ``start`` ``(B, N, d)`` (default
        ``m0``): the afterstates and each write's ``log(1 - att * erase)``, both ``(B, L, N, d)`` tensors on the
        agent's device.

        On the CPU the pass runs in NumPy (:class:`~agents.rmn.networks.NumpySlotActor`, batched over the movies):
        one step is a few small matrix products, which NumPy runs with far less overhead per call than torch.
        """
        if start is None:
            start = np.repeat(self.policy.predictor.m0.detach().cpu().numpy()[None], len(segments), axis=0)
        if self.device.type == "cpu":
            actor = self.policy.numpy_actor()
            memory = np.array(start, np.float32)
            after = np.empty((*segments.shape[:2], *memory.shape[1:]), np.float32)
            log_keep = np.empty_like(after)
            for t in range(segments.shape[1]):
                parts = actor(segments[:, t], memory)
                memory = write(memory, parts)
                after[:, t] = memory
                log_keep[:, t] = log_keep_step(parts.attention[..., None] * parts.erase)
            return torch.from_numpy(after), torch.from_numpy(log_keep)
        segments = torch.as_tensor(segments, device=self.device)
        memory = torch.as_tensor(start, dtype=torch.float32, device=self.device).clone()
        after = torch.empty((*segments.shape[:2], *memory.shape[1:]), device=self.device)
        log_keep = torch.empty_like(after)
        for t in range(segments.shape[1]):
            parts = self.policy.actor(segments[:, t], memory)
            memory = write(memory, parts)
            after[:, t] = memory
            log_keep[:, t] = log_keep_step(parts.attention.unsqueeze(-1) * parts.erase)
        return after, log_keep

    def _movie_adjoints(self, buffer: LabelReplayBuffer, group: list, idx: np.ndarray, after: torch.Tensor,
                        log_keep: torch.Tensor) -> np.ndarray:
        """Adjoints ``(B, L, N, d)`` of the refreshed stretches ``group`` at rows ``idx`` (padded beyond their
        lengths): the current predictor's error gradient at every afterstate, carried back along the writes
        (:func:`reverse_adjoint`), with ``refresh_tail`` the reads after each stretch as well
        (:meth:`_later_reads`)."""
        lengths = [len(s.rows) for s in group]
        long_range = self.recipe.long_range
        horizons, weights = adjoint_horizons(long_range.jump_distance, long_range.jump_spacing)
        tail = self._later_reads(buffer, group, horizons) if self.recipe.refresh.refresh_tail else None
        grads = self._error_grads(buffer, idx, lengths, after)
        return reverse_adjoint(grads, torch.exp(log_keep), horizons, weights, tail=tail,
                               ends=[n - 1 for n in lengths]).cpu().numpy()

    def _later_reads(self, buffer: LabelReplayBuffer, group: list, horizons: np.ndarray) -> Optional[torch.Tensor]:
        """The reads after each stretch of ``group`` in its (ended) movie, carried back to the stretch's last step
        through the stored afterstates and writes (:func:`adjoint_tail`), ``(H, B, N, d)``; None when no stretch
        has any: the rest of a movie is read by the current predictor from memories an earlier writer made, as
        between two refreshes the whole replay is."""
        idx, lengths = padded_rows([np.concatenate([s.rows[-1:], s.after]) if s.whole else s.rows[-1:]
                                    for s in group])
        if idx.shape[1] == 1:
            return None
        stored = torch.as_tensor(buffer.afterstates[idx], device=self.device)
        grads = self._error_grads(buffer, idx, lengths, stored)
        return adjoint_tail(grads, torch.as_tensor(buffer.log_keep[idx], device=self.device), horizons)

    def _error_grads(self, buffer: LabelReplayBuffer, idx: np.ndarray, lengths: list,
                     after: torch.Tensor) -> torch.Tensor:
        """``d error_t / d m_t`` of the current predictor at the afterstates ``after`` ``(B, L, N, d)`` of the stored
        steps at rows ``idx``, zero beyond each movie's ``lengths``."""
        predictor, error_kind = self.policy.predictor, self.recipe.reward
        segments = torch.as_tensor(buffer.segments[idx], device=self.device)
        targets = torch.as_tensor(buffer.targets[idx], device=self.device)
        real = torch.as_tensor(np.arange(idx.shape[1])[None, :] < np.array(lengths)[:, None],
                               dtype=after.dtype, device=self.device)
        grads = torch.empty_like(after)
        for t in range(0, after.shape[1], ADJOINT_CHUNK):  # each step's error depends on its own memory only: a
            chunk = slice(t, t + ADJOINT_CHUNK)  # graph of a few hundred steps at a time, whatever the movie's length
            with torch.enable_grad():
                memory = after[:, chunk].detach().requires_grad_(True)
                y = predictor(segments[:, chunk].flatten(0, 1), memory.flatten(0, 1))
                error = prediction_error(y, targets[:, chunk].flatten(0, 1), error_kind).view_as(real[:, chunk])
                grads[:, chunk], = torch.autograd.grad((error * real[:, chunk]).sum(), memory)
        return grads
