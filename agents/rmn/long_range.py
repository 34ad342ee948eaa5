"""The RMN's long-range losses: a write trained on how it serves later reads of its movie.

The one-step actor objective only sees the read right after a write (and the critic's estimate of the rest),
so a write that a read hundreds of steps later depends on gets little direct signal. A long-range loss
replays a stored write ``k`` with the current actor and scores it on later steps of the same movie:

* :class:`CreditLoss` (``jump_mode="credit"``): ``jump_reads`` sampled later reads, each along the stored
  memories with the stored sensitivity ``dm_j / dm_k``;
* :class:`AdjointLoss` (``"adjoint"``): every later read at once, through an adjoint stored at each refresh
  (:mod:`agents.rmn.refresh`);
* :class:`JumpLoss` (``"jump"``): one read right after the write, as if nothing were written in between.

Each strategy draws its own replayed steps (:meth:`LongRangeLoss.sample`) and turns them into a loss of the
actor and the predictor (:meth:`LongRangeLoss.loss`); the agent weighs it by ``jump_weight`` and adds its
gradient to the actor's (:meth:`agents.rmn.rmn.RMN.train`). :func:`make_long_range` builds one from a
:class:`~agents.config.LongRangeConfig`.
"""
from __future__ import annotations

from typing import Optional

import torch
from stable_baselines3 import DDPG

from affect_env.memory import prediction_error, write
from agents.config import LongRangeConfig
from agents.rmn.buffers import AdjointSamples, CreditSamples, JumpSamples, LabelReplayBuffer, start_memory


class LongRangeLoss:
    """A long-range loss: which replayed steps it needs and how it scores the current writer on them.

    :param config: the recipe's settings (kept by reference: a change to it applies from the next update)
    """

    def __init__(self, config: LongRangeConfig) -> None:
        self.config = config

    @property
    def weight(self) -> float:
        """The loss's weight beside the actor objective (``jump_weight``)."""
        return float(self.config.jump_weight)

    def prepare(self, agent: DDPG) -> None:  # agent: the RMN (annotated by its base class: no import cycle)
        """Called before each round of gradient steps (nothing by default)."""

    def sample(self, buffer: LabelReplayBuffer, batch_size: int, same_step_weight: float = 1.0):
        """The replayed steps of one gradient step, or ``None`` when there is nothing to train on yet.

        :param same_step_weight: the agent's current ``same_step_credit``
        """
        raise NotImplementedError

    def loss(self, agent: DDPG, sample) -> torch.Tensor:
        """The loss (a scalar) of the agent's current actor and predictor on ``sample``."""
        raise NotImplementedError


class CreditLoss(LongRangeLoss):
    """The write at step ``k``, carried to later steps ``j`` along the stored writes, must help predict ``y_j``.

    ``m_j ~ m_j(stored) + keep_{k->j} * (T(m_{k-1}, mu(e_k, m_{k-1})) - m_k(stored))``: the forward value is the
    stored (refreshed) memory, so the predictor reads what it will read at test time, and the gradient into the
    write at ``k`` is the exact derivative of the loss at ``j`` along the write's linear path
    ``dm_j / dm_k = prod (1 - att * erase)`` (the path through the later writes' decisions is dropped). Erasing at
    ``k`` what a later step needs is penalised, which teaches retention; with ``j - k`` uniform
    (``jump_spacing="uniform"``) the pairs are an unbiased sample of the truncated backpropagation-through-time
    gradient. Each write is read at ``jump_reads`` later steps: the actor runs once per write, only the predictor
    per read.
    """

    def sample(self, buffer: LabelReplayBuffer, batch_size: int, same_step_weight: float = 1.0) -> CreditSamples:
        """Writes placed as ``jump_positions`` says, each with ``jump_reads`` later reads spaced as
        ``jump_spacing`` says, up to ``jump_distance`` away; below full ``same_step_credit``, at distances ``>= 1``
        only (a read at ``k`` itself is the same-step read that weight scales)."""
        c = self.config
        nearest = 0 if same_step_weight == 1.0 else 1
        return buffer.sample_credit(batch_size, c.jump_distance, c.jump_reads, c.jump_spacing,
                                    min_distance=nearest, positions=c.jump_positions)

    def loss(self, agent: DDPG, pairs: CreditSamples) -> torch.Tensor:
        m = start_memory(agent.predictor.m0, pairs.prev_memory, pairs.starts_movie)
        m_k = write(m, agent.actor(pairs.segment, m))
        m_j = pairs.later_memory + pairs.keep * (m_k - pairs.memory).unsqueeze(1)  # (B, J, N, d)
        y = agent.predictor(pairs.later_segment.flatten(0, 1), m_j.flatten(0, 1)).view_as(pairs.later_target)
        error = prediction_error(y, pairs.later_target, agent.reward_error)
        return (error * pairs.valid).sum() / pairs.valid.sum().clamp_min(1.0)


class AdjointLoss(LongRangeLoss):
    """The credit loss's gradient summed over every later read of the movie, through the stored adjoint.

    ``<A_k, D> + |D|^2 / (2 adjoint_step)`` with ``D = T(m_{k-1}, mu(e_k, m_{k-1})) - m_k(stored)``: its first
    term is the first-order change of the later reads' weighted error from rewriting step ``k`` with the current
    actor, and its gradient into the write at ``D = 0`` is ``A_k dm_k/dtheta``, the truncated-BPTT gradient along
    the writes' linear path (as in :class:`CreditLoss`), of all the reads at once instead of ``jump_reads``
    sampled ones, weighted over the distances as ``jump_spacing`` says
    (:func:`~agents.rmn.refresh.adjoint_horizons`). ``A_k`` comes from the predictor and memories of the last
    refresh (:func:`~agents.rmn.refresh.reverse_adjoint`), so this loss needs periodic refreshes.

    The second term is a trust region: the linear model ``<A_k, D>`` of the reads' error is only valid near the
    stored write, and it is unbounded below, so without the term the writer would keep running along it until
    the memories break. With it the loss stops pulling once the write has moved ``-adjoint_step * A_k``.
    """

    def prepare(self, agent: DDPG) -> None:
        """The first adjoints, as soon as a whole movie is stored (later ones come with the periodic refresh)."""
        if not agent.replay_buffer.adjoint_ready.any():
            agent.refresh_memories()

    def sample(self, buffer: LabelReplayBuffer, batch_size: int,
               same_step_weight: float = 1.0) -> Optional[AdjointSamples]:
        """Writes with a stored adjoint, placed as ``jump_positions`` says; ``None`` before any is stored."""
        if not buffer.adjoint_ready.any():
            return None
        return buffer.sample_adjoint(batch_size, self.config.jump_positions)

    def loss(self, agent: DDPG, writes: AdjointSamples) -> torch.Tensor:
        m = start_memory(agent.predictor.m0, writes.prev_memory, writes.starts_movie)
        moved = write(m, agent.actor(writes.segment, m)) - writes.memory
        step = float(self.config.adjoint_step)
        loss = (writes.adjoint * moved).sum(dim=(-2, -1)) + moved.square().sum(dim=(-2, -1)) / (2 * step)
        return loss.mean()


class JumpLoss(LongRangeLoss):
    """The memory right after the write at step ``i`` must predict a later step ``j`` of the same movie, as if
    nothing were written in between (``j - i`` log-uniform up to ``jump_distance``)."""

    def sample(self, buffer: LabelReplayBuffer, batch_size: int, same_step_weight: float = 1.0) -> JumpSamples:
        return buffer.sample_jumps(batch_size, self.config.jump_distance)

    def loss(self, agent: DDPG, jumps: JumpSamples) -> torch.Tensor:
        m = start_memory(agent.predictor.m0, jumps.prev_memory, jumps.starts_movie)
        m = write(m, agent.actor(jumps.segment, m))
        return prediction_error(agent.predictor(jumps.later_segment, m), jumps.later_target, agent.reward_error).mean()


#: the strategy of each ``jump_mode``
LONG_RANGE_LOSSES = {"credit": CreditLoss, "adjoint": AdjointLoss, "jump": JumpLoss}


def make_long_range(config: LongRangeConfig) -> Optional[LongRangeLoss]:
    """The long-range loss ``config.jump_mode`` names, or ``None`` when ``jump_weight`` is 0 (the paper)."""
    if not config.jump_weight > 0:
        return None
    return LONG_RANGE_LOSSES[config.jump_mode](config)
