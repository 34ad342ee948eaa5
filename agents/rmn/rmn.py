"""RMN: DDPG with an afterstate critic and a jointly trained predictor (the paper's method, plus options).

The actor writes the memory, the critic values the memory *after* the write, and the predictor reads it:

* critic:  ``Q(e_t, m_t) <- r_t + gamma Q'(e_{t+1}, T(m_t, mu'(e_{t+1}, m_t)))`` (no bootstrap at a movie's
  end), with ``r_t = -MAE(pred(e_t, m_t), y_t)`` (or ``-MSE``) recomputed with the *current* predictor from the
  stored label, since stored rewards go stale as the predictor learns;
* actor + predictor (one optimizer): maximise ``r_t + gamma Q(e_{t+1}, T(m_t, mu(e_{t+1}, m_t)))`` with
  ``m_t = T(m_{t-1}, mu(e_t, m_{t-1}))``; ``m0`` is trained through the first write of each movie.

Both objectives of an update are differentiated at the same parameters (the actor's reads the critic before this
update's critic step, where SB3's DDPG first steps the critic), which lets the two run in parallel threads.

Options that go beyond the paper (each off in ``agents.config.TrainConfig.apply_paper_faithful``): periodic
recomputation of the stored memories with the current actor (after which the predictor alone catches up with
the writer), a long-range loss that asks the write at step
``k`` to help predict a later step ``j`` of the same movie (the "credit" loss, or the simpler "jump" loss), an
actor objective over ``window`` consecutive writes before bootstrapping with the critic, a scaled gradient from
the same step's prediction into the write (``same_step_credit``), per-part exploration noise, gate-bias
initialisation, coupled (GRU-like) gates (in the policy), a value scale and a squared-error reward.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DDPG
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule, polyak_update

from affect_env.memory import (add_exploration_noise, check_choice, check_count, check_reward_error,
                               encode_action, prediction_error, write)
from agents.rmn.buffers import POSITIONS, SPACINGS, LabelReplayBuffer, log_keep_step
from agents.rmn.networks import NumpySlotActor
from agents.rmn.policies import RMNPolicy

PAPER_NOISE_STD = 0.05 ** 0.5  # the paper's exploration: variance 0.05 on each action part
JUMP_MODES = ("credit", "jump", "adjoint")
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


def check_refresh(refresh_movies: int, refresh_window: int) -> None:
    """``ValueError`` unless the partial refresh's movie count and stretch length are whole numbers ``>= 0``."""
    check_count("refresh_movies", refresh_movies, "every stored movie")
    check_count("refresh_window", refresh_window, "whole movies")


class RefreshStretch(NamedTuple):
    """Consecutive steps of one stored movie that a refresh recomputes with the current writer."""

    rows: np.ndarray  # buffer rows of the stretch, in time order
    before: int  # buffer row of the stored m_{s-1} the stretch starts from, or -1: it starts the movie (m0)
    after: np.ndarray  # rows of the same movie after the stretch (kept; their cumulative log-keeps are shifted)
    whole: bool  # the movie has ended, so the stretch's later reads are all stored (it gets adjoints)


def check_adjoint(jump_mode: str, jump_weight: float, refresh_every: int, adjoint_step: float) -> None:
    """``ValueError`` unless the adjoint loss's settings can work (its adjoints are stored at each refresh)."""
    if not adjoint_step > 0:
        raise ValueError(f"adjoint_step must be > 0, got {adjoint_step}")
    if jump_mode == "adjoint" and jump_weight > 0 and refresh_every <= 0:
        raise ValueError("jump_mode='adjoint' stores its adjoints at each refresh: set refresh_every > 0")


def weight_schedule(name: str, spec: Union[float, Sequence[float]]):
    """A weight in ``[0, 1]`` over the run: a number, or ``[start, end, end_fraction]`` (linear, then ``end``)."""
    values = [float(spec)] if np.isscalar(spec) else [float(v) for v in spec]
    if len(values) not in (1, 3) or not all(0.0 <= v <= 1.0 for v in values) or (len(values) == 3 and values[2] == 0):
        raise ValueError(f"{name}: give a number in [0, 1] or [start, end, end_fraction], got {spec!r}")
    return ConstantSchedule(values[0]) if len(values) == 1 else LinearSchedule(*values)


class RMN(DDPG):
    """Reinforcement-learned Memory Network agent (Stable-Baselines3 DDPG subclass).

    :param policy: ``"RMNPolicy"`` (or the class)
    :param env: a ``LiRISMemory-v0`` env (one env; its predictor is replaced by this agent's, "shared" mode)
    :param learning_rate: Adam learning rate of the actor + predictor and of the critic
    :param buffer_size: replay size in steps
    :param learning_starts: random-write steps before learning starts
    :param batch_size: minibatch size (windows)
    :param tau: soft update coefficient of the target actor and critic
    :param gamma: discount, the paper's lambda
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: updates per ``train_freq`` (the update-to-data ratio)
    :param exploration_std: Gaussian noise std on the decoded attention, erase, content and input gate (one
        value or four); noisy parts are clipped to range and the attention renormalised
    :param window: writes unrolled in the actor objective before bootstrapping with the critic (1 = paper)
    :param jump_weight: weight of the long-range loss (0 = paper)
    :param jump_distance: the largest distance between a write and a read of the long-range loss
    :param jump_mode: the long-range loss: ``"credit"`` (the write at step ``k`` is carried to ``jump_reads``
        later steps ``j`` along the stored memories with the stored sensitivity ``dm_j / dm_k``; see
        :meth:`_credit_loss`), ``"adjoint"`` (the same gradient summed over *every* later step of the movie,
        weighted as ``jump_spacing`` says, through an adjoint stored at each refresh; see :meth:`_adjoint_loss`;
        needs ``refresh_every``) or ``"jump"`` (the memory right after the write at ``i`` must predict step ``j``,
        as if nothing were written in between, ``j - i`` log-uniform; see :meth:`_jump_loss`)
    :param jump_reads: later steps read per write in the credit loss
    :param jump_spacing: distances of the credit loss's reads: ``"uniform"`` (the truncated
        backpropagation-through-time gradient), ``"log"`` (log-uniform: near reads weigh more) or ``"mixed"``
        (each read one or the other with probability 1/2: short-range dependencies such as a running average
        get many reads without losing the far ones)
    :param jump_positions: where in their movie the credit loss's writes lie: ``"uniform"`` (every stored step
        alike) or ``"mixed"`` (half of them moved to a log-uniform earlier position, so the opening, where what
        matters for the rest of the movie is shown, gets many more of the long-range loss's writes)
    :param adjoint_step: the adjoint loss's trust region ``eta``: the loss is ``<A_k, D> + |D|^2 / (2 eta)`` for a
        write that moved ``D`` from the stored one, so its gradient at the stored write is the adjoint ``A_k`` and
        it stops pulling once the write has moved ``-eta A_k``. Without it the linear model ``<A_k, D>`` of the
        reads' error, stored at the last refresh, is unbounded below, and the writer runs along it until the
        memories break (measured: the validation ``gap_closed`` fell from 0.28 to 0 at 75k steps)
    :param refresh_every: every this many updates, recompute the stored afterstates of every replayed movie by
        running the current (noise-free) actor from ``m0`` over its stored segments (0 = never, the paper).
        Stored memories otherwise come from old policies and hold what the current one would not have kept
        (the stale-state problem of recurrent replay); here the write is known and the data do not depend on
        the actions, so the memories can simply be recomputed
    :param refresh_fit: after each refresh, the predictor (with the writer fixed) takes this many gradient steps
        on the refreshed memories (0 = none): between refreshes the writer drifts while the predictor is trained
        on memories the writer no longer makes, and a predictor that lags the writer reads its memory wrongly
    :param refresh_movies: how many stored movies each periodic refresh recomputes (0 = every one): a random
        draw of that many whole movies, from which the adjoint loss's writes and the predictor's catch-up steps
        are then drawn until the next refresh. The refresh then costs the same for any replay size, so it can
        run every few updates and the adjoints the writer follows are never more than ``refresh_every`` updates
        old. The refresh before each validation still recomputes every movie
    :param refresh_window: with ``refresh_movies``, recompute only a stretch of this many steps of each drawn movie
        (0 = the whole movie): for half of the movies the opening, for the others a stretch at a uniformly drawn
        place, started from the stored memory before it (which the writer of an earlier refresh made). A refresh
        steps along its movies one write at a time, so its cost is set by the longest movie; with long training
        movies a stretch keeps it at that of short ones. Steps after it keep their memories, which the next
        refreshes redo
    :param refresh_tail: with ``refresh_window``, the adjoints of a stretch also carry the reads after it, through
        the stored memories and writes of the rest of its movie (a predictor pass over them and one product, no
        writes), as a whole-movie refresh's do, at about half again a stretch's cost; ``False`` (default): the
        reads inside the stretch only (its last steps get fewer reads)
    :param reward: the error whose negative is the reward, recomputed at update time and used by the
        long-range loss too: ``"mae"`` (the paper), ``"mse"`` or ``"mae+mse"`` (the project's recipe; see
        :func:`affect_env.memory.prediction_error`)
    :param same_step_credit: how much the prediction at step ``t`` itself trains the write at ``t`` (1 = the
        paper: the immediate reward's full gradient flows into the write that precedes it; 0 = none): a number,
        or ``[start, end, end_fraction]`` for a linear change over the first ``end_fraction`` of the run. The value
        of every loss is unchanged, and so is what it teaches the predictor and ``m0``; only the gradient into
        the same step's write decision is scaled, in the actor objective (the immediate reward, and the next
        write inside the bootstrap term). Below 1 the credit loss reads at distances ``>= 1`` only. At full
        weight the same-step gradient pays the writer for copying features of the current segment into the
        memory, a feed-forward shortcut that overwrites the memory at every step
    :param write_top_k_weight: with the policy's ``write_top_k``, the share of the top-k write in the write
        attention (``w * top_k + (1 - w) * softmax``; 1: the top-k write alone): a number, or ``[start, end,
        end_fraction]`` as for ``same_step_credit``. Rising from 0, the writer first learns with every slot
        written and ends writing only its ``k`` chosen slots, so slots it does not choose stay exactly as they are
        over any movie length
    :param value_scale: the critic learns ``value_scale`` times the discounted return (1 = the paper). With
        ``1 - gamma`` it learns in average-reward units, and in the actor objective the long-range term then
        weighs like one step's reward instead of ``1 / (1 - gamma)`` of them
    :param update_thread: differentiate the critic's loss and the long-range loss in a worker thread while the main
        thread differentiates the actor's objective. Every gradient of an update is taken at the parameters as they
        were before it (the actor's objective reads the critic before this update's critic step), and nothing is
        written until both threads are done; an update then keeps two CPU cores busy instead of one. The
        computation is the same either way (``False`` runs the worker's part in the main thread), so results do
        not depend on it
    """

    policy_aliases = {"RMNPolicy": RMNPolicy}
    policy: RMNPolicy

    def __init__(
        self,
        policy: Union[str, type[RMNPolicy]],
        env: Union[GymEnv, str],
        learning_rate: Union[float, Schedule] = 3e-4,
        buffer_size: int = 300_000,
        learning_starts: int = 2_000,
        batch_size: int = 128,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: Union[int, tuple[int, str]] = 1,
        gradient_steps: int = 1,
        exploration_std: Union[float, Sequence[float]] = PAPER_NOISE_STD,
        window: int = 1,
        jump_weight: float = 0.0,
        jump_distance: int = 400,
        jump_mode: str = "credit",
        jump_reads: int = 1,
        jump_spacing: str = "uniform",
        jump_positions: str = "uniform",
        adjoint_step: float = 10.0,
        same_step_credit: Union[float, Sequence[float]] = 1.0,
        write_top_k_weight: Union[float, Sequence[float]] = 1.0,
        value_scale: float = 1.0,
        update_thread: bool = True,
        refresh_every: int = 0,
        refresh_fit: int = 0,
        refresh_movies: int = 0,
        refresh_window: int = 0,
        refresh_tail: bool = False,
        reward: str = "mae",
        tensorboard_log: Optional[str] = None,
        policy_kwargs: Optional[dict[str, Any]] = None,
        verbose: int = 0,
        seed: Optional[int] = None,
        device: Union[torch.device, str] = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=train_freq, gradient_steps=gradient_steps,
            action_noise=None, replay_buffer_class=LabelReplayBuffer, tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs, verbose=verbose, seed=seed, device=device, _init_setup_model=False,
        )
        self.exploration_std = exploration_std if np.isscalar(exploration_std) else list(exploration_std)
        self.window = int(window)
        self.jump_weight, self.jump_distance = float(jump_weight), int(jump_distance)
        check_choice("jump_mode", jump_mode, JUMP_MODES)
        check_choice("jump_spacing", jump_spacing, SPACINGS)
        check_choice("jump_positions", jump_positions, POSITIONS)
        self.jump_mode, self.jump_reads, self.jump_spacing = jump_mode, int(jump_reads), jump_spacing
        self.jump_positions = jump_positions
        check_adjoint(jump_mode, jump_weight, refresh_every, adjoint_step)
        self.adjoint_step = float(adjoint_step)
        self.same_step_credit = same_step_credit if np.isscalar(same_step_credit) else list(same_step_credit)
        self._same_step_schedule = weight_schedule("same_step_credit", same_step_credit)
        self._same_step_weight = self._same_step_schedule(1.0)
        self.write_top_k_weight = write_top_k_weight if np.isscalar(write_top_k_weight) else list(write_top_k_weight)
        self._top_k_schedule = weight_schedule("write_top_k_weight", write_top_k_weight)
        self._top_k_weight = self._top_k_schedule(1.0)
        self.value_scale = float(value_scale)
        self.update_thread = bool(update_thread)
        self._worker: Optional[ThreadPoolExecutor] = None
        self.refresh_every, self.refresh_fit = int(refresh_every), int(refresh_fit)
        check_refresh(refresh_movies, refresh_window)
        self.refresh_movies, self.refresh_window = int(refresh_movies), int(refresh_window)
        self.refresh_tail = bool(refresh_tail)
        self._last_refresh = 0  # update count of the last refresh
        self._refreshed_rows: Optional[np.ndarray] = None  # buffer rows of the last partial refresh (None: all)
        self.reward_error = check_reward_error(reward)
        self.noise_rng = np.random.default_rng(seed)  # exploration noise
        if _init_setup_model:
            self._setup_model()

    # ---- setup -----------------------------------------------------------------------------------------
    def _setup_model(self) -> None:
        if self.n_envs != 1:
            raise ValueError("RMN trains on one env (its replay keeps each movie's steps in order)")
        super()._setup_model()
        self.predictor = self.policy.predictor
        self.policy.set_write_top_k_weight(self._top_k_weight)  # a loaded model's, as it was when saved
        if self.env is not None:
            self.share_predictor_with_env()

    def share_predictor_with_env(self) -> None:
        """Make the env evaluate (not train) this agent's predictor and start movies from its ``m0``."""
        self.env.env_method("set_predictor", self.policy.predictor, "shared")

    def set_env(self, env, force_reset: bool = True) -> None:
        super().set_env(env, force_reset=force_reset)
        self.share_predictor_with_env()

    def load_replay_buffer(self, path, truncate_last_traj: bool = True) -> None:
        """Load a pickled :class:`LabelReplayBuffer` (SB3's loader only accepts its own buffer classes)."""
        from stable_baselines3.common.save_util import load_from_pkl

        buffer = load_from_pkl(path, self.verbose)
        if not isinstance(buffer, LabelReplayBuffer):
            raise ValueError(f"{path}: not an RMN replay buffer ({type(buffer).__name__})")
        buffer.device = self.device
        self.replay_buffer = buffer

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["predictor", "_np_actor", "_worker", "_refreshed_rows"]

    # ---- exploration: the paper's per-part noise ---------------------------------------------------------
    def _sample_action(self, learning_starts: int, action_noise=None, n_envs: int = 1) -> tuple:
        if self.num_timesteps < learning_starts:
            action = np.array([self.action_space.sample() for _ in range(n_envs)])
            return action, action
        # one write per step runs several times faster in NumPy than in torch; the noise comes from the agent's
        # own generator (seeded by ``seed``, saved with the model so a resumed run continues its stream)
        actor = self._numpy_actor()
        memory, segment = self._last_obs["memory"], self._last_obs["segment"]
        action = np.stack([
            encode_action(add_exploration_noise(actor(np.asarray(segment[i], np.float32),
                                                      np.asarray(memory[i], np.float32)),
                                                self.exploration_std, self.noise_rng))
            for i in range(n_envs)])
        return action, action

    def _numpy_actor(self) -> NumpySlotActor:
        """A NumPy mirror of the current actor (rebuilt when the policy's actor is replaced, e.g. on load)."""
        if getattr(self, "_np_actor", None) is None or self._np_actor.actor is not self.actor:
            self._np_actor = NumpySlotActor(self.actor)
        return self._np_actor

    # ---- learning --------------------------------------------------------------------------------------
    def _reward(self, embedding: torch.Tensor, memory: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``r = -MAE`` (or ``-MSE``) of the current predictor on afterstates, ``(B,)`` (the reward, recomputed)."""
        return -prediction_error(self.predictor(embedding, memory), target, self.reward_error)

    def _start_memory(self, prev_memory: torch.Tensor, starts_movie: torch.Tensor) -> torch.Tensor:
        """``m_{t-1}``: the stored memory, or the live (trainable) ``m0`` where the window starts a movie."""
        m0 = self.predictor.m0.unsqueeze(0).expand_as(prev_memory)
        return torch.where(starts_movie[:, None, None], m0, prev_memory)

    def _critic_loss(self, batch) -> tuple:
        e, m, y = batch.segments[:, 0], batch.afterstates[:, 0], batch.targets[:, 0]
        with torch.no_grad():
            e_next = batch.segments[:, 1]
            m_next = write(m, self.actor_target(e_next, m))
            bootstrap = self.critic_target(e_next, m_next).squeeze(-1)
            target_q = self.value_scale * self._reward(e, m, y) + self.gamma * (1.0 - batch.dones[:, 0]) * bootstrap
        q = self.critic(e, m).squeeze(-1)
        return F.mse_loss(q, target_q), q.mean().item()

    def _actor_loss(self, batch) -> tuple:
        """``-(sum_i gamma^i r_{s+i} + gamma^L Q(e_{s+L}, T(m_{s+L-1}, mu(...))))`` over the window.

        :return: the loss and the predictor's mean error over the window
        """
        m = self._start_memory(batch.prev_memory, batch.starts_movie)
        loss = torch.zeros((), device=m.device)
        discount, maes = 1.0, []
        for i in range(self.window):
            e = batch.segments[:, i]
            parts = self.actor(e, m)
            written = write(m, parts)
            r = self._reward(e, self._same_step_view(m, parts, written), batch.targets[:, i])
            loss = loss - discount * (batch.alive[:, i] * r).mean()
            maes.append(-r.detach().mean().item())
            m = written
            discount *= self.gamma
        keep_going = batch.alive[:, -1] * (1.0 - batch.dones[:, -1])
        e_next = batch.segments[:, self.window]
        next_parts = self.actor(e_next, m)
        m_next = self._same_step_view(m, next_parts, write(m, next_parts))
        loss = loss - discount * (keep_going * self.critic(e_next, m_next).squeeze(-1)).mean()
        return loss, float(np.mean(maes))

    def _same_step_view(self, memory: torch.Tensor, parts, written: torch.Tensor) -> torch.Tensor:
        """``written = T(memory, parts)`` as a read at the same step sees it: the same value, with the gradient into
        the write's decision scaled by ``same_step_credit`` (the memory before it keeps its full gradient)."""
        w = self._same_step_weight
        if w == 1.0:
            return written
        return write(memory, type(parts)(*(w * p + (1.0 - w) * p.detach() for p in parts)))

    def _long_range_sample(self, batch_size: int):
        """The replayed steps of one long-range loss: write/read pairs (``"credit"``), writes with their stored
        adjoints (``"adjoint"``; ``None`` before any is stored) or jumps (``"jump"``)."""
        if self.jump_mode == "jump":
            return self.replay_buffer.sample_jumps(batch_size, self.jump_distance)
        if self.jump_mode == "adjoint":
            if not self.replay_buffer.adjoint_ready.any():
                return None
            return self.replay_buffer.sample_adjoint(batch_size, self.jump_positions)
        nearest = 0 if self._same_step_weight == 1.0 else 1  # a read at k itself is a same-step read
        return self.replay_buffer.sample_credit(batch_size, self.jump_distance, self.jump_reads, self.jump_spacing,
                                                min_distance=nearest, positions=self.jump_positions)

    def _long_range_loss(self, sample) -> torch.Tensor:
        losses = {"credit": self._credit_loss, "adjoint": self._adjoint_loss, "jump": self._jump_loss}
        return losses[self.jump_mode](sample)

    def _actor_parameters(self) -> list:
        return [p for group in self.actor.optimizer.param_groups for p in group["params"] if p.requires_grad]

    def _critic_parameters(self) -> list:
        return [p for group in self.critic.optimizer.param_groups for p in group["params"] if p.requires_grad]

    def _critic_and_long_range_gradients(self, batch, long_range) -> tuple:
        """The critic's TD loss differentiated with respect to the critic's parameters, and the weighted long-range
        loss with respect to the actor optimizer's. Writes no ``.grad`` and no parameter, so it runs in the worker
        thread beside the actor objective's differentiation.

        :return: the critic loss, the mean ``Q``, the critic's gradients, the long-range loss (``None`` without
            one) and its gradients (``None`` without one)
        """
        critic_loss, q_mean = self._critic_loss(batch)
        critic_gradients = torch.autograd.grad(critic_loss, self._critic_parameters())
        if long_range is None:
            return critic_loss.item(), q_mean, critic_gradients, None, None
        jump = self._long_range_loss(long_range)
        jump_gradients = torch.autograd.grad(self.jump_weight * jump, self._actor_parameters(), allow_unused=True)
        return critic_loss.item(), q_mean, critic_gradients, jump.item(), jump_gradients

    def _submit(self, fn, *args) -> Future:
        """``fn(*args)`` in the worker thread (started on first use), or right here without ``update_thread``."""
        if not self.update_thread:
            done: Future = Future()
            done.set_result(fn(*args))
            return done
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmn-update")
        return self._worker.submit(fn, *args)

    @staticmethod
    def _set_gradients(parameters: list, *gradients) -> None:
        """``p.grad`` = the sum of the given gradient lists (each in ``parameters`` order; ``None`` entries skipped)."""
        for i, p in enumerate(parameters):
            parts = [g[i] for g in gradients if g is not None and g[i] is not None]
            p.grad = None
            for g in parts:
                p.grad = g if p.grad is None else p.grad + g

    def _jump_loss(self, jumps) -> torch.Tensor:
        """Memory written at step i must help predict step j = i + k of the same movie (no writes between)."""
        m = self._start_memory(jumps.prev_memory, jumps.starts_movie)
        m = write(m, self.actor(jumps.segment, m))
        return prediction_error(self.predictor(jumps.later_segment, m), jumps.later_target, self.reward_error).mean()

    def _credit_loss(self, pairs) -> torch.Tensor:
        """The write at step k, carried to a later step j along the stored writes, must help predict y_j.

        ``m_j ~ m_j(stored) + keep_{k->j} * (T(m_{k-1}, mu(e_k, m_{k-1})) - m_k(stored))``: the forward value is
        the stored (refreshed) memory, so the predictor reads what it will read at test time, and the gradient
        into the write at ``k`` is the exact derivative of the loss at ``j`` along the write's linear path
        ``dm_j / dm_k = prod (1 - att * erase)`` (the path through the later writes' decisions is dropped).
        Erasing at ``k`` what a later step needs is penalised, which teaches retention; with ``j - k`` uniform
        (``jump_spacing="uniform"``) the pairs are an unbiased sample of the truncated
        backpropagation-through-time gradient. Each write is read at ``jump_reads`` later steps: the actor runs
        once per write, only the predictor per read.
        """
        m = self._start_memory(pairs.prev_memory, pairs.starts_movie)
        m_k = write(m, self.actor(pairs.segment, m))
        m_j = pairs.later_memory + pairs.keep * (m_k - pairs.memory).unsqueeze(1)  # (B, J, N, d)
        y = self.predictor(pairs.later_segment.flatten(0, 1), m_j.flatten(0, 1)).view_as(pairs.later_target)
        error = prediction_error(y, pairs.later_target, self.reward_error)
        return (error * pairs.valid).sum() / pairs.valid.sum().clamp_min(1.0)

    def _adjoint_loss(self, writes) -> torch.Tensor:
        """The credit loss's gradient summed over every later read of the movie, through the stored adjoint.

        ``<A_k, D> + |D|^2 / (2 adjoint_step)`` with ``D = T(m_{k-1}, mu(e_k, m_{k-1})) - m_k(stored)``: its first
        term is the first-order change of the later reads' weighted error from rewriting step ``k`` with the
        current actor, and its gradient into the write at ``D = 0`` is ``A_k dm_k/dtheta``, the truncated-BPTT
        gradient along the writes' linear path (as in :meth:`_credit_loss`), of all the reads at once instead of
        ``jump_reads`` sampled ones. ``A_k`` comes from the predictor and memories of the last refresh (see
        :func:`reverse_adjoint`); the second term keeps the write where that linear model holds.
        """
        m = self._start_memory(writes.prev_memory, writes.starts_movie)
        moved = write(m, self.actor(writes.segment, m)) - writes.memory
        loss = (writes.adjoint * moved).sum(dim=(-2, -1)) + moved.square().sum(dim=(-2, -1)) / (2 * self.adjoint_step)
        return loss.mean()

    def refresh_memories(self, batch_movies: int = 64, movies: int = 0) -> int:
        """Recompute the stored afterstates and sensitivities of every complete stored movie with the current actor
        (and, for the adjoint loss, the adjoints of every whole one; steps of any other movie lose theirs).

        Groups of ``batch_movies`` movies run as batches, alternately in the worker thread (with ``update_thread``)
        and in this one; each group writes only its own movies' rows.

        :param movies: recompute only this many whole stored movies, drawn at random (0 = every complete one), and
            with ``refresh_window`` only a stretch of each; their rows are kept in ``_refreshed_rows`` for the
            samplers until the next refresh
        :return: the number of refreshed steps
        """
        buf = self.replay_buffer
        episodes = buf.complete_episodes()
        drawn = False
        if movies:
            whole = [g for g in episodes if buf.dones[g[-1]] > 0]
            if len(whole) > movies:
                episodes = [whole[i] for i in np.random.choice(len(whole), size=movies, replace=False)]
                drawn = True
        stretches = [self._stretch(g, self.refresh_window if movies else 0) for g in episodes]
        partial = drawn or (movies and self.refresh_window)
        self._refreshed_rows = np.concatenate([s.rows for s in stretches]) if partial and stretches else None
        stretches.sort(key=lambda s: len(s.rows))
        if self.jump_mode == "adjoint":  # before the threads: allocate, and forget what is not refreshed now
            if buf.adjoint is None:
                buf.adjoint = np.zeros_like(buf.afterstates)
            buf.adjoint_ready[:] = False
        groups = [stretches[start:start + batch_movies] for start in range(0, len(stretches), batch_movies)]
        beside = [self._submit(self._refresh_group, group) for group in groups[1::2]]
        refreshed = sum(self._refresh_group(group) for group in groups[0::2])
        return refreshed + sum(job.result() for job in beside)

    def _stretch(self, rows: np.ndarray, window: int) -> RefreshStretch:
        """The stretch of the stored movie ``rows`` a refresh recomputes: all of it, or (``window`` > 0 and a
        longer movie) ``window`` steps, from its opening with probability 1/2, else from a uniformly drawn step."""
        whole = bool(self.replay_buffer.dones[rows[-1]] > 0)
        if not window or len(rows) <= window:
            return RefreshStretch(rows, -1, rows[:0], whole)
        start = 0 if np.random.random() < 0.5 else np.random.randint(1, len(rows) - window + 1)
        end = start + window
        return RefreshStretch(rows[start:end], int(rows[start - 1]) if start else -1, rows[end:], whole)

    @torch.no_grad()
    def _refresh_group(self, group: list) -> int:
        """Rerun the current actor over the stored segments of the stretches ``group`` (:class:`RefreshStretch`),
        each from ``m0`` or from the stored memory before it, and store the new afterstates and cumulative
        log-keeps (and adjoints); returns the number of steps."""
        buf = self.replay_buffer
        idx, lengths = padded_rows([s.rows for s in group])  # (B, L)
        m0 = self.predictor.m0.detach().cpu().numpy()
        start = np.stack([buf.afterstates[s.before] if s.before >= 0 else m0 for s in group])
        after, log_keep = self._write_pass(buf.segments[idx], start)
        adjoint = self._movie_adjoints(group, idx, after, log_keep) if self.jump_mode == "adjoint" else None
        after, log_keep = after.cpu().numpy(), torch.cumsum(log_keep, dim=1).cpu().numpy()
        for b, s in enumerate(group):
            n = len(s.rows)
            carried = log_keep[b, :n] + (buf.log_keep[s.before] if s.before >= 0 else 0.0)
            if len(s.after):  # later steps keep their own writes: shift their running sum by the stretch's change
                buf.log_keep[s.after] += carried[-1] - buf.log_keep[s.rows[-1]]
            buf.afterstates[s.rows] = after[b, :n]
            buf.log_keep[s.rows] = carried
            if adjoint is not None and s.whole:  # whole movies only: a running one lacks its future
                buf.store_adjoint(s.rows, adjoint[b, :n])
        return sum(lengths)

    @torch.no_grad()
    def _write_pass(self, segments: np.ndarray, start: Optional[np.ndarray] = None) -> tuple:
        """The current noise-free writer run along ``segments`` ``(B, L, d_e)`` from ``start`` ``(B, N, d)`` (default
        ``m0``): the afterstates and each write's ``log(1 - att * erase)``, both ``(B, L, N, d)`` tensors on the
        agent's device.

        On the CPU the pass runs in NumPy (:class:`NumpySlotActor`, batched over the movies): one step is a few
        small matrix products, which NumPy runs with far less overhead per call than torch.
        """
        if start is None:
            start = np.repeat(self.predictor.m0.detach().cpu().numpy()[None], len(segments), axis=0)
        if self.device.type == "cpu":
            actor = self._numpy_actor()
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
            parts = self.actor(segments[:, t], memory)
            memory = write(memory, parts)
            after[:, t] = memory
            log_keep[:, t] = log_keep_step(parts.attention.unsqueeze(-1) * parts.erase)
        return after, log_keep

    def _movie_adjoints(self, group: list, idx: np.ndarray, after: torch.Tensor, log_keep: torch.Tensor) -> np.ndarray:
        """Adjoints ``(B, L, N, d)`` of the refreshed stretches ``group`` at rows ``idx`` (padded beyond their
        lengths): the current predictor's error gradient at every afterstate, carried back along the writes
        (:func:`reverse_adjoint`), with ``refresh_tail`` the reads after each stretch as well (:meth:`_later_reads`)."""
        lengths = [len(s.rows) for s in group]
        horizons, weights = adjoint_horizons(self.jump_distance, self.jump_spacing)
        tail = self._later_reads(group, horizons) if self.refresh_tail else None
        grads = self._error_grads(idx, lengths, after)
        return reverse_adjoint(grads, torch.exp(log_keep), horizons, weights, tail=tail,
                               ends=[n - 1 for n in lengths]).cpu().numpy()

    def _later_reads(self, group: list, horizons: np.ndarray) -> Optional[torch.Tensor]:
        """The reads after each stretch of ``group`` in its (ended) movie, carried back to the stretch's last step
        through the stored afterstates and writes (:func:`adjoint_tail`), ``(H, B, N, d)``; None when no stretch
        has any: the rest of a movie is read by the current predictor from memories an earlier writer made, as
        between two refreshes the whole replay is."""
        buf = self.replay_buffer
        idx, lengths = padded_rows([np.concatenate([s.rows[-1:], s.after]) if s.whole else s.rows[-1:]
                                    for s in group])
        if idx.shape[1] == 1:
            return None
        stored = torch.as_tensor(buf.afterstates[idx], device=self.device)
        grads = self._error_grads(idx, lengths, stored)
        return adjoint_tail(grads, torch.as_tensor(buf.log_keep[idx], device=self.device), horizons)

    def _error_grads(self, idx: np.ndarray, lengths: list, after: torch.Tensor) -> torch.Tensor:
        """``d error_t / d m_t`` of the current predictor at the afterstates ``after`` ``(B, L, N, d)`` of the stored
        steps at rows ``idx``, zero beyond each movie's ``lengths``."""
        buf = self.replay_buffer
        segments = torch.as_tensor(buf.segments[idx], device=self.device)
        targets = torch.as_tensor(buf.targets[idx], device=self.device)
        real = torch.as_tensor(np.arange(idx.shape[1])[None, :] < np.array(lengths)[:, None],
                               dtype=after.dtype, device=self.device)
        grads = torch.empty_like(after)
        for t in range(0, after.shape[1], ADJOINT_CHUNK):  # each step's error depends on its own memory only: a
            chunk = slice(t, t + ADJOINT_CHUNK)  # graph of a few hundred steps at a time, whatever the movie's length
            with torch.enable_grad():
                memory = after[:, chunk].detach().requires_grad_(True)
                y = self.predictor(segments[:, chunk].flatten(0, 1), memory.flatten(0, 1))
                error = prediction_error(y, targets[:, chunk].flatten(0, 1), self.reward_error).view_as(real[:, chunk])
                grads[:, chunk], = torch.autograd.grad((error * real[:, chunk]).sum(), memory)
        return grads

    def refresh(self, fit_steps: Optional[int] = None, movies: int = 0) -> dict:
        """Recompute the stored memories with the current writer, then let the predictor catch up with it.

        Called every ``refresh_every`` updates (with ``movies=refresh_movies``), and by the training loop before
        each validation (every movie), so that every evaluated (and selected) model reads memories the way its own
        writer makes them.

        :param fit_steps: predictor-only gradient steps on the refreshed memories (default ``refresh_fit``)
        :param movies: recompute only this many stored movies, drawn at random (0 = every one); the catch-up
            steps then sample from those movies
        :return: ``refreshed_steps`` and, when fitted, the predictor's mean ``refresh_fit_loss``
        """
        fit_steps = self.refresh_fit if fit_steps is None else int(fit_steps)
        self._last_refresh = self._n_updates
        info = {"refreshed_steps": self.refresh_memories(movies=movies)}
        if fit_steps > 0 and self.replay_buffer.size() >= self.batch_size:
            losses = []
            for _ in range(fit_steps):
                batch = self.replay_buffer.sample_windows(self.batch_size, 1, among=self._refreshed_rows)
                loss = -self._reward(batch.segments[:, 0], batch.afterstates[:, 0], batch.targets[:, 0]).mean()
                self.actor.optimizer.zero_grad()  # the writer's gradients stay None: Adam leaves it unchanged
                loss.backward()
                self.actor.optimizer.step()
                losses.append(loss.item())
            info["refresh_fit_loss"] = float(np.mean(losses))
        if getattr(self, "_logger", None) is not None:  # a loaded model has no logger until it learns
            for key, value in info.items():
                self.logger.record(f"train/{key}", value)
        return info

    def train(self, gradient_steps: int, batch_size: int = 128) -> None:
        if self.replay_buffer.size() < batch_size:  # too little data to sample windows from yet
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        self._same_step_weight = self._same_step_schedule(self._current_progress_remaining)
        self.logger.record("train/same_step_credit", self._same_step_weight)
        if self.policy.write_top_k:
            self._top_k_weight = self._top_k_schedule(self._current_progress_remaining)
            self.policy.set_write_top_k_weight(self._top_k_weight)
            self.logger.record("train/write_top_k_weight", self._top_k_weight)
        logs: dict[str, list] = {"critic_loss": [], "actor_loss": [], "q": [], "predictor_mae": [],
                                 "long_range_loss": []}
        if self.jump_mode == "adjoint" and self.jump_weight > 0 and not self.replay_buffer.adjoint_ready.any():
            self.refresh_memories()  # the first adjoints, as soon as a whole movie is stored
        for _ in range(gradient_steps):
            self._n_updates += 1
            if self.refresh_every and self._n_updates - self._last_refresh >= self.refresh_every:
                self.refresh(movies=self.refresh_movies)
            batch = self.replay_buffer.sample_windows(batch_size, self.window)
            long_range = self._long_range_sample(batch_size) if self.jump_weight > 0 else None
            # every gradient is taken at the same parameters, the critic's and the long-range loss's in the worker
            worker = self._submit(self._critic_and_long_range_gradients, batch, long_range)
            actor_loss, mae = self._actor_loss(batch)
            actor_gradients = torch.autograd.grad(actor_loss, self._actor_parameters(), allow_unused=True)
            critic_loss, q_mean, critic_gradients, jump, jump_gradients = worker.result()

            self._set_gradients(self._critic_parameters(), critic_gradients)
            self.critic.optimizer.step()
            self._set_gradients(self._actor_parameters(), actor_gradients, jump_gradients)
            self.actor.optimizer.step()
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
            logs["critic_loss"].append(critic_loss)
            logs["actor_loss"].append(actor_loss.item())
            logs["q"].append(q_mean)
            logs["predictor_mae"].append(mae)
            if jump is not None:
                logs["long_range_loss"].append(jump)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", float(np.mean(values)))
