"""RMN: DDPG with an afterstate critic and a jointly trained predictor (the paper's method, plus its recipe).

The actor writes the memory, the critic values the memory *after* the write, and the predictor reads it:

* critic:  ``Q(e_t, m_t) <- s r_t + gamma Q'(e_{t+1}, T(m_t, mu'(e_{t+1}, m_t)))`` (no bootstrap at a movie's
  end), with ``r_t = -MAE(pred(e_t, m_t), y_t)`` (or ``-MSE``) recomputed with the *current* predictor from the
  stored label, since stored rewards go stale as the predictor learns, and ``s`` the value scale;
* actor + predictor (one optimizer): maximise ``r_t + gamma Q(e_{t+1}, T(m_t, mu(e_{t+1}, m_t)))`` with
  ``m_t = T(m_{t-1}, mu(e_t, m_{t-1}))``; ``m0`` is trained through the first write of each movie.

With ``recipe.critic="gradient"`` the critic learns the value's gradient ``G(c_t, m_{t-1}) = s dV/dm_{t-1}`` instead,
by a bootstrapped vector-Jacobian product through one write, or ``recipe.critic_steps`` writes (dual heuristic
programming), and the actor follows ``gamma G(c_{t+1}, m_t) / s`` through its write; the critic's context ``c`` may add
a running mean of the movie so far (``recipe.history_decay``), and ``G`` may be the mean of an ensemble
(``recipe.critic_ensemble``).

Beyond the paper, the recipe (:class:`~agents.config.RMNConfig`, explained in ``docs/recipe.md``) adds a
long-range loss (:mod:`agents.rmn.long_range`), a periodic refresh of the stored memories with the current writer
(:mod:`agents.rmn.refresh`), an actor objective over ``window`` writes, a scaled same-step gradient into the
write, per-part exploration noise, a schedule of the top-k write's share, a value scale and the reward's error.
The networks are in :mod:`agents.rmn.policies` and :mod:`agents.rmn.networks`, the replay in
:mod:`agents.rmn.buffers`.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DDPG
from stable_baselines3.common.save_util import load_from_pkl
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule, polyak_update

from affect_env.memory import WriteAction, add_exploration_noise, encode_action, prediction_error, write
from agents.config import AlgorithmConfig, RMNConfig, TrainConfig, WeightSpec
from agents.rmn.buffers import LabelReplayBuffer, WindowSamples, start_memory
from agents.rmn.long_range import LongRangeLoss, make_long_range
from agents.rmn.networks import NumpySlotActor
from agents.rmn.policies import RMNPolicy
from agents.rmn.refresh import Refresher


#: updates between two measurements of the writer's gradient share by source (:meth:`RMN._writer_shares`)
WRITER_SHARE_EVERY = 20


def weight_schedule(spec: WeightSpec) -> Schedule:
    """A weight over the run from a validated :data:`~agents.config.WeightSpec`: a number, or
    ``[start, end, end_fraction]`` (linear over the first ``end_fraction`` of the run, then ``end``)."""
    return ConstantSchedule(float(spec)) if np.isscalar(spec) else LinearSchedule(*(float(v) for v in spec))


class WorkerGradients(NamedTuple):
    """What the worker thread computes in an update (:meth:`RMN._critic_and_long_range_gradients`)."""

    critic_loss: float
    q_mean: float
    critic_gradients: tuple  # in _critic_parameters() order
    long_range_loss: Optional[float]  # None without a long-range loss (or nothing to train it on yet)
    long_range_gradients: Optional[tuple]  # weighted by jump_weight, in _actor_parameters() order
    target_mean_square: Optional[float] = None  # the value-gradient critic's targets' mean square (its scale)


class RMN(DDPG):
    """Reinforcement-learned Memory Network agent (a Stable-Baselines3 DDPG subclass).

    :param policy: ``"RMNPolicy"`` (or the class); its networks' sizes come from ``policy_kwargs``
        (``memory=MemoryConfig(...)``, ``n_targets``, ``encoder_spec``: see :class:`RMNPolicy`)
    :param env: a ``LiRISMemory-v0`` env (one env; its predictor is replaced by this agent's, "shared" mode)
    :param recipe: everything of the method beyond SB3's arguments: the critic's kind and context, exploration,
        value scale, reward, same-step credit, top-k weight, window, worker thread, long-range loss and refresh
        (default ``RMNConfig()``; the dataclass validated itself). A mapping of its fields (nested or by name, as
        in a config file) is taken over the default recipe's. Saved with the model
    :param learning_rate: Adam learning rate of the actor + predictor and of the critic (or a schedule)
    :param buffer_size: replay size in steps
    :param learning_starts: random-write steps before learning starts
    :param batch_size: minibatch size (windows)
    :param tau: soft update coefficient of the target actor and critic
    :param gamma: discount, the paper's lambda
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: updates per ``train_freq`` (the update-to-data ratio)
    :param tensorboard_log: the log location for tensorboard (None: no logging)
    :param policy_kwargs: keyword arguments of the policy
    :param verbose: 0 no output, 1 info messages, 2 debug messages
    :param seed: seed of the random generators (and of the exploration noise's own generator)
    :param device: device (cpu, cuda, ...) of the networks; ``"auto"``: CUDA where present
    :param _init_setup_model: whether to build the networks on creation
    """

    policy_aliases = {"RMNPolicy": RMNPolicy}
    policy: RMNPolicy
    replay_buffer: LabelReplayBuffer

    def __init__(
        self,
        policy: Union[str, type[RMNPolicy]],
        env: Union[GymEnv, str],
        recipe: Union[RMNConfig, dict, None] = None,
        learning_rate: Union[float, Schedule] = AlgorithmConfig.learning_rate,
        buffer_size: int = AlgorithmConfig.buffer_size,
        learning_starts: int = AlgorithmConfig.learning_starts,
        batch_size: int = AlgorithmConfig.batch_size,
        tau: float = AlgorithmConfig.tau,
        gamma: float = AlgorithmConfig.gamma,
        train_freq: Union[int, tuple[int, str]] = AlgorithmConfig.train_freq,
        gradient_steps: int = AlgorithmConfig.gradient_steps,
        tensorboard_log: Optional[str] = None,
        policy_kwargs: Optional[dict[str, Any]] = None,
        verbose: int = 0,
        seed: Optional[int] = None,
        device: Union[torch.device, str] = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if isinstance(recipe, dict):  # plain values (e.g. a zoo hyperparameter file), over the default recipe's
            recipe = TrainConfig.from_dict({"rmn": recipe}, "recipe").rmn
        recipe = RMNConfig() if recipe is None else recipe
        # the recipe decides what the critic learns and sees
        policy_kwargs = {**(policy_kwargs or {}), "critic": recipe.critic,
                         "critic_members": recipe.critic_ensemble, "history": recipe.history_decay > 0}
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=train_freq, gradient_steps=gradient_steps,
            action_noise=None, replay_buffer_class=LabelReplayBuffer,
            replay_buffer_kwargs={"history_decay": recipe.history_decay}, tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs, verbose=verbose, seed=seed, device=device, _init_setup_model=False,
        )
        self.recipe = recipe
        # the schedules' current values: state that is saved with the model (a loaded model resumes from them)
        self._same_step_weight = weight_schedule(self.recipe.same_step_credit)(1.0)
        self._top_k_weight = weight_schedule(self.recipe.write_top_k_weight)(1.0)
        self._last_refresh = 0  # update count of the last refresh
        self._refreshed_rows: Optional[np.ndarray] = None  # buffer rows of the last partial refresh (None: all)
        self._worker: Optional[ThreadPoolExecutor] = None
        self.noise_rng = np.random.default_rng(seed)  # exploration noise
        if _init_setup_model:
            self._setup_model()

    # ---- setup -----------------------------------------------------------------------------------------
    def _setup_model(self) -> None:
        """SB3's setup (policy, replay, schedules), then what derives from the recipe (rebuilt on load)."""
        if self.n_envs != 1:
            raise ValueError("RMN trains on one env (its replay keeps each movie's steps in order)")
        super()._setup_model()
        self.predictor = self.policy.predictor
        self._same_step_schedule = weight_schedule(self.recipe.same_step_credit)
        self._top_k_schedule = weight_schedule(self.recipe.write_top_k_weight)
        self.long_range: Optional[LongRangeLoss] = make_long_range(self.recipe.long_range)
        self.refresher = Refresher(self.policy, self.recipe, self.device, self._submit)
        self.policy.set_write_top_k_weight(self._top_k_weight)  # a loaded model's, as it was when saved
        if self.env is not None:
            self.share_predictor_with_env()

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["predictor", "_worker", "_refreshed_rows", "_same_step_schedule",
                                                  "_top_k_schedule", "long_range", "refresher"]

    @property
    def reward_error(self) -> str:
        """The error whose negative is the reward (``recipe.reward``)."""
        return self.recipe.reward

    @property
    def value_scale(self) -> float:
        """The critic learns this times the discounted return (``recipe.critic_scale(gamma)``)."""
        return self.recipe.critic_scale(self.gamma)

    def share_predictor_with_env(self) -> None:
        """Make the env evaluate (not train) this agent's predictor and start movies from its ``m0``."""
        self.env.env_method("set_predictor", self.policy.predictor, "shared")

    def set_env(self, env, force_reset: bool = True) -> None:
        super().set_env(env, force_reset=force_reset)
        self.share_predictor_with_env()

    def load_replay_buffer(self, path, truncate_last_traj: bool = True) -> None:
        """Load a pickled :class:`LabelReplayBuffer` (SB3's loader only accepts its own buffer classes)."""
        buffer = load_from_pkl(path, self.verbose)
        if not isinstance(buffer, LabelReplayBuffer):
            raise ValueError(f"{path}: not an RMN replay buffer ({type(buffer).__name__})")
        buffer.device = self.device
        self.replay_buffer = buffer

    # ---- exploration: the paper's per-part noise ---------------------------------------------------------
    def _sample_action(self, learning_starts: int, action_noise=None, n_envs: int = 1) -> tuple:
        """Random writes before ``learning_starts``, then the actor's write with Gaussian noise on each decoded
        part (attention, erase, content, input gate; ``recipe.exploration_std``), clipped to range."""
        if self.num_timesteps < learning_starts:
            action = np.array([self.action_space.sample() for _ in range(n_envs)])
            return action, action
        # one write per step costs far less in NumPy than in torch (per-call overhead); the noise comes from the
        # agent's own generator (seeded by ``seed``, saved with the model so a resumed run continues its stream)
        actor = self._numpy_actor()
        memory, segment = self._last_obs["memory"], self._last_obs["segment"]
        action = np.stack([
            encode_action(add_exploration_noise(actor(np.asarray(segment[i], np.float32),
                                                      np.asarray(memory[i], np.float32)),
                                                self.recipe.exploration_std, self.noise_rng))
            for i in range(n_envs)])
        return action, action

    def _numpy_actor(self) -> NumpySlotActor:
        """The policy's NumPy mirror of the current actor."""
        return self.policy.numpy_actor()

    # ---- refresh -----------------------------------------------------------------------------------------
    def refresh_memories(self, batch_movies: int = 64, movies: int = 0) -> int:
        """Recompute the stored afterstates and sensitivities of every complete stored movie with the current actor
        (and, for the adjoint loss, the adjoints of every whole one) (:meth:`Refresher.refresh_memories`).

        :param batch_movies: movies per batch of the recomputation
        :param movies: recompute only this many whole stored movies, drawn at random (0 = every complete one), and
            with ``refresh_window`` only a stretch of each; their rows are kept in ``_refreshed_rows`` for the
            samplers until the next refresh
        :return: the number of refreshed steps
        """
        refreshed, self._refreshed_rows = self.refresher.refresh_memories(self.replay_buffer, batch_movies, movies)
        return refreshed

    def refresh(self, fit_steps: Optional[int] = None, movies: int = 0) -> dict:
        """Recompute the stored memories with the current writer, then let the predictor catch up with it.

        Called every ``refresh_every`` updates (with ``movies=refresh_movies``), and by the training loop before
        each validation (every movie), so that every evaluated (and selected) model reads memories the way its own
        writer makes them. The catch-up is there because between refreshes the writer drifts while the predictor
        is trained on memories the writer no longer makes, and a predictor that lags its writer reads wrongly.

        :param fit_steps: predictor-only gradient steps on the refreshed memories (default ``refresh_fit``)
        :param movies: recompute only this many stored movies, drawn at random (0 = every one); the catch-up
            steps then sample from those movies
        :return: ``refreshed_steps`` and, when fitted, the predictor's mean ``refresh_fit_loss``
        """
        fit_steps = self.recipe.refresh.refresh_fit if fit_steps is None else int(fit_steps)
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

    def _refresh_due(self) -> bool:
        every = self.recipe.refresh.refresh_every
        return bool(every) and self._n_updates - self._last_refresh >= every

    # ---- the update --------------------------------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 128) -> None:
        """``gradient_steps`` updates of the critic, the actor + predictor and (optionally) the long-range loss.

        Every gradient of an update is taken at the parameters as they were before it (the actor's objective reads
        the critic before this update's critic step, where SB3's DDPG steps the critic first), and nothing is
        written until all are computed. The critic's loss and the long-range loss are differentiated in a worker
        thread meanwhile (``recipe.update_thread``); without it they run here, with the same results.
        """
        if self.replay_buffer.size() < batch_size:  # too little data to sample windows from yet
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        self._update_weight_schedules()
        if self.long_range is not None:
            self.long_range.prepare(self)
        logs: dict[str, list] = {"critic_loss": [], "actor_loss": [], "q": [], "predictor_mae": [],
                                 "long_range_loss": []}
        shares: Optional[dict] = None
        for _ in range(gradient_steps):
            self._n_updates += 1
            if self._refresh_due():
                self.refresh(movies=self.recipe.refresh.refresh_movies)
            batch = self.replay_buffer.sample_windows(batch_size, max(self.recipe.window, self.recipe.critic_steps))
            long_range = None if self.long_range is None else \
                self.long_range.sample(self.replay_buffer, batch_size, self._same_step_weight)

            # critic loss and long-range gradient (in the worker), actor loss (here), all at the same parameters
            worker = self._submit(self._critic_and_long_range_gradients, batch, long_range)
            actor_loss, predictor_mae, terms = self._actor_loss(batch)
            measure = self._n_updates % WRITER_SHARE_EVERY == 0  # the diagnostic, on the side
            norms = self._writer_gradient_norms(terms) if measure else None
            actor_gradients = torch.autograd.grad(actor_loss, self._actor_parameters(), allow_unused=True)
            critic = worker.result()
            if measure:
                shares = self._writer_shares(norms, critic.long_range_gradients)

            # gradient assembly and optimizer steps: the actor's gradient plus the weighted long-range one
            self._set_gradients(self._critic_parameters(), critic.critic_gradients)
            self.critic.optimizer.step()
            self._set_gradients(self._actor_parameters(), actor_gradients, critic.long_range_gradients)
            self.actor.optimizer.step()

            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            if critic.target_mean_square is not None:  # the value-gradient critic's scale, both networks'
                self.critic_target.rescale(self.critic.track(critic.target_mean_square))
            polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)

            logs["critic_loss"].append(critic.critic_loss)
            logs["actor_loss"].append(actor_loss.item())
            logs["q"].append(critic.q_mean)
            logs["predictor_mae"].append(predictor_mae)
            if critic.long_range_loss is not None:
                logs["long_range_loss"].append(critic.long_range_loss)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", float(np.mean(values)))
        for source, share in (shares or {}).items():
            self.logger.record(f"train/writer_share_{source}", share)

    def _writer_gradient_norms(self, terms: dict) -> dict:
        """The norm of the gradient each term of the actor objective (``reward``: the immediate rewards',
        ``critic``: the critic's bootstrap term) sends into the write network. Computed on the side, every
        :data:`WRITER_SHARE_EVERY` updates, with extra backward passes: training itself is unchanged."""
        writer = [p for p in self.actor.parameters() if p.requires_grad]
        norms = {}
        for source, loss in terms.items():
            grads = torch.autograd.grad(loss, writer, retain_graph=True, allow_unused=True)
            norms[source] = float(torch.sqrt(sum(((g ** 2).sum() for g in grads if g is not None), torch.zeros(()))))
        return norms

    def _writer_shares(self, norms: dict, long_range_gradients: Optional[tuple]) -> Optional[dict]:
        """The writer's gradient share by source, summing to 1: the actor objective's terms (``norms``) and the
        weighted long-range loss (where the recipe has one). Where the writer learns from is the diagnostic of
        whether a learned critic carries the long-range credit (``writer_share_critic``) or another term does."""
        norms = dict(norms)
        if long_range_gradients is not None:
            writer = {id(p) for p in self.actor.parameters()}
            squares = ((g ** 2).sum() for p, g in zip(self._actor_parameters(), long_range_gradients)
                       if g is not None and id(p) in writer)
            norms["long_range"] = float(torch.sqrt(sum(squares, torch.zeros(()))))
        total = sum(norms.values())
        return {k: v / total for k, v in norms.items()} if total > 0 else None

    def _update_weight_schedules(self) -> None:
        """Move ``same_step_credit`` and the top-k write's share along their schedules (and log them)."""
        self._same_step_weight = self._same_step_schedule(self._current_progress_remaining)
        self.logger.record("train/same_step_credit", self._same_step_weight)
        if self.policy.write_top_k:
            self._top_k_weight = self._top_k_schedule(self._current_progress_remaining)
            self.policy.set_write_top_k_weight(self._top_k_weight)
            self.logger.record("train/write_top_k_weight", self._top_k_weight)

    # ---- the losses --------------------------------------------------------------------------------------
    def _reward(self, embedding: torch.Tensor, memory: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``r = -MAE`` (or ``-MSE``) of the current predictor on afterstates, ``(B,)`` (the reward, recomputed)."""
        return -prediction_error(self.predictor(embedding, memory), target, self.reward_error)

    def _start_memory(self, prev_memory: torch.Tensor, starts_movie: torch.Tensor) -> torch.Tensor:
        """``m_{t-1}``: the stored memory, or the live (trainable) ``m0`` where the window starts a movie."""
        return start_memory(self.predictor.m0, prev_memory, starts_movie)

    def _context(self, batch: WindowSamples, i: int) -> torch.Tensor:
        """The critic's input at window step ``i``: ``e``, or ``[e, h]`` where the critic sees the movie's history."""
        if batch.history is None:
            return batch.segments[:, i]
        return torch.cat([batch.segments[:, i], batch.history[:, i]], dim=-1)

    def _critic_loss(self, batch: WindowSamples) -> tuple[torch.Tensor, float, Optional[float]]:
        """The critic's bootstrapped loss on the first step of each window, the mean ``Q`` (or ``|G|``) and, for the
        value-gradient critic, its targets' mean square (for its scale)."""
        if self.recipe.critic == "gradient":
            return self._gradient_critic_loss(batch)
        return self._value_critic_loss(batch)

    def _value_critic_loss(self, batch: WindowSamples) -> tuple[torch.Tensor, float, None]:
        """The TD loss of the afterstate critic ``Q(c_t, m_t)`` on the first step of each window, and the mean ``Q``.

        The reward is scaled by ``value_scale``: with ``1 - gamma`` the critic learns in average-reward units, and
        the bootstrap term of the actor objective then weighs like one step's reward instead of
        ``1 / (1 - gamma)`` of them.
        """
        e, m, y = batch.segments[:, 0], batch.afterstates[:, 0], batch.targets[:, 0]
        with torch.no_grad():
            e_next = batch.segments[:, 1]
            m_next = write(m, self.actor_target(e_next, m))
            bootstrap = self.critic_target(self._context(batch, 1), m_next).squeeze(-1)
            target_q = self.value_scale * self._reward(e, m, y) + self.gamma * (1.0 - batch.dones[:, 0]) * bootstrap
        q = self.critic(self._context(batch, 0), m).squeeze(-1)
        return F.mse_loss(q, target_q), q.mean().item(), None

    def _gradient_critic_loss(self, batch: WindowSamples) -> tuple[torch.Tensor, float, float]:
        """The value-gradient critic's bootstrapped loss (dual heuristic programming), the mean ``|G|`` and the
        targets' mean square.

        ``G(c_t, m_{t-1})`` learns ``s dW/dm_{t-1}``, ``W`` the discounted sum of the rewards from step ``t`` on and
        ``s`` the value scale, towards the ``n``-step target (``n = recipe.critic_steps``)

            ``d/dm_{t-1} [s sum_{i<n} gamma^i r_{t+i}(m_{t+i}) + gamma^n <G'(c_{t+n}, m_{t+n-1}), m_{t+n-1}>]``,
            ``m_{t+i} = T(m_{t+i-1}, mu'(e_{t+i}, m_{t+i-1}))``,

        with ``G'`` held fixed and nothing after the movie's end: one vector-Jacobian product through ``n`` writes of
        the target writer (their decisions' dependence on the memory included). For ``n = 1`` it is
        ``(dm_t / dm_{t-1})^T [s dr_t/dm_t + gamma G'(c_{t+1}, m_t)]``, the adjoint recursion of BPTT with its tail
        bootstrapped by the target critic; either way the cost of an update does not depend on the movie's length.
        """
        m_prev = self._start_memory(batch.prev_memory, batch.starts_movie).detach().requires_grad_(True)
        m, carried, discount = m_prev, torch.zeros((), device=m_prev.device), 1.0
        for i in range(self.recipe.critic_steps):
            e = batch.segments[:, i]
            m = write(m, self.actor_target(e, m))
            reward = batch.alive[:, i] * self._reward(e, m, batch.targets[:, i])
            carried = carried + discount * self.value_scale * reward.sum()
            discount *= self.gamma
        last = self.recipe.critic_steps - 1
        with torch.no_grad():
            keep = (batch.alive[:, last] * (1.0 - batch.dones[:, last]))[:, None, None]
            g_next = keep * self.critic_target(self._context(batch, last + 1), m)
        target = torch.autograd.grad(carried + discount * (g_next * m).sum(), m_prev)[0]
        g = self.critic.member_outputs(self._context(batch, 0), m_prev.detach())  # every member, the same target
        loss = F.mse_loss(g, (target / self.critic.scale).expand_as(g))
        return loss, (g.detach().mean(dim=0) * self.critic.scale).abs().mean().item(), float((target ** 2).mean())

    def _actor_loss(self, batch: WindowSamples) -> tuple[torch.Tensor, float, dict]:
        """``-(sum_i gamma^i r_{s+i} + gamma^L Q(e_{s+L}, T(m_{s+L-1}, mu(...))))`` over the window of ``L =
        recipe.window`` writes (``Q``'s term is :meth:`_future`, whatever the critic learns), which trains the actor,
        the predictor and ``m0``.

        :return: the loss, the predictor's mean error over the window, and the loss's two terms (``reward``: the
            immediate rewards', ``critic``: the bootstrap's) for the writer's gradient shares
        """
        m = self._start_memory(batch.prev_memory, batch.starts_movie)
        loss = torch.zeros((), device=m.device)
        discount, maes, L = 1.0, [], self.recipe.window
        for i in range(L):
            e = batch.segments[:, i]
            parts = self.actor(e, m)
            written = write(m, parts)
            r = self._reward(e, self._same_step_view(m, parts, written), batch.targets[:, i])
            loss = loss - discount * (batch.alive[:, i] * r).mean()
            maes.append(-r.detach().mean().item())
            m = written
            discount *= self.gamma
        keep_going = batch.alive[:, L - 1] * (1.0 - batch.dones[:, L - 1])
        bootstrap = self._critic_weight() * discount * (keep_going * self._future(batch, m)).mean()
        terms = {"reward": loss, "critic": -bootstrap}
        return loss - bootstrap, float(np.mean(maes)), terms

    def _critic_weight(self) -> float:
        """The critic term's weight in the actor objective: ``recipe.critic_weight``, or 0 during the first
        ``recipe.critic_warmup`` updates (the critic learns meanwhile)."""
        return self.recipe.critic_weight if self._n_updates > self.recipe.critic_warmup else 0.0

    def _future(self, batch: WindowSamples, m: torch.Tensor) -> torch.Tensor:
        """What the critic says of the future of the window's last afterstate ``m``, ``(B,)``, differentiable in
        ``m`` (and through it in the writes that made it).

        ``"value"``: ``Q(c, T(m, mu(e, m)))`` at the next segment (the paper). ``"gradient"``: the linear
        surrogate ``<G(c, m), m> / s`` with ``G`` held fixed, whose gradient in ``m`` is the critic's estimate of
        ``dW/dm``, the future return's gradient (its value means nothing)."""
        L = self.recipe.window
        context = self._context(batch, L)
        if self.recipe.critic == "gradient":
            with torch.no_grad():  # G is held fixed: no graph through the critic
                g = self.critic(context, m)
            return (g * m).sum(dim=(1, 2)) / self.value_scale
        next_parts = self.actor(batch.segments[:, L], m)
        m_next = self._same_step_view(m, next_parts, write(m, next_parts))
        return self.critic(context, m_next).squeeze(-1)

    def _same_step_view(self, memory: torch.Tensor, parts: WriteAction, written: torch.Tensor) -> torch.Tensor:
        """``written = T(memory, parts)`` as a read at the same step sees it: the same value, with the gradient into
        the write's decision scaled by ``same_step_credit`` (the memory before it keeps its full gradient).

        At full weight the same-step gradient pays the writer for copying features of the current segment into
        the memory, a feed-forward shortcut that overwrites the memory at every step; the value of every loss, and
        what it teaches the predictor and ``m0``, stay as they are.
        """
        w = self._same_step_weight
        if w == 1.0:
            return written
        return write(memory, type(parts)(*(w * p + (1.0 - w) * p.detach() for p in parts)))

    def _critic_and_long_range_gradients(self, batch: WindowSamples, long_range) -> WorkerGradients:
        """The critic's TD loss differentiated with respect to the critic's parameters, and the weighted long-range
        loss with respect to the actor optimizer's. Writes no ``.grad`` and no parameter, so it runs in the worker
        thread beside the actor objective's differentiation.

        :param long_range: the long-range loss's sample (``None``: no long-range loss this update)
        """
        critic_loss, q_mean, target_mean_square = self._critic_loss(batch)
        critic_gradients = torch.autograd.grad(critic_loss, self._critic_parameters())
        done = WorkerGradients(critic_loss.item(), q_mean, critic_gradients, None, None, target_mean_square)
        if long_range is None:
            return done
        loss = self.long_range.loss(self, long_range)
        gradients = torch.autograd.grad(self.long_range.weight * loss, self._actor_parameters(), allow_unused=True)
        return done._replace(long_range_loss=loss.item(), long_range_gradients=gradients)

    # ---- gradients and the worker thread -----------------------------------------------------------------
    def _actor_parameters(self) -> list:
        return [p for group in self.actor.optimizer.param_groups for p in group["params"] if p.requires_grad]

    def _critic_parameters(self) -> list:
        return [p for group in self.critic.optimizer.param_groups for p in group["params"] if p.requires_grad]

    @staticmethod
    def _set_gradients(parameters: list, *gradients) -> None:
        """``p.grad`` = the sum of the given gradient lists (each in ``parameters`` order; ``None`` entries skipped)."""
        for i, p in enumerate(parameters):
            parts = [g[i] for g in gradients if g is not None and g[i] is not None]
            p.grad = None
            for g in parts:
                p.grad = g if p.grad is None else p.grad + g

    def _submit(self, fn, *args) -> Future:
        """``fn(*args)`` in the worker thread (started on first use), or right here without ``update_thread``.

        The worker keeps a second CPU core busy during an update (and half of a refresh's movie groups); the
        computation is the same either way.
        """
        if not self.recipe.update_thread:
            done: Future = Future()
            done.set_result(fn(*args))
            return done
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmn-update")
        return self._worker.submit(fn, *args)
