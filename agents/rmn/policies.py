"""RMN policy: structured write actor, afterstate critic, predictor head (with ``m0``) and segment encoder."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch.autograd.graph import increment_version

from affect_env.encoder import SegmentEncoder, encoder_from_payload
from affect_env.memory import MemoryPredictor, WriteAction, check_choice, encode_action
from agents.config import CRITIC_KINDS, MemoryConfig, TrainConfig
from agents.rmn.networks import (AfterstateCritic, AfterstateGradientCritic, NumpySlotActor, SlotActor,
                                 check_top_k_weight)

#: keyword arguments Stable-Baselines3 gives its policies (by the algorithm, or back from a saved policy) that the
#: RMN's networks do not use
_SB3_POLICY_KWARGS = frozenset({"n_critics", "use_sde", "normalize_images", "share_features_extractor"})


class RMNPolicy(BasePolicy):
    """Policy of :class:`~agents.rmn.rmn.RMN`: everything a trained model needs to predict from raw features.

    It holds the write actor and its target, the afterstate critic and its target, the predictor (the read-out,
    with the initial memory ``m0``) and the segment encoder. The actor and the predictor share one optimizer,
    since one objective trains both; the critic has its own.

    :param observation_space: ``Dict(segment=Box(d_e), memory=Box(N, d))``
    :param action_space: ``Box(-1, 1, (N + 3 N d,))``
    :param lr_schedule: learning-rate schedule of the actor/predictor and critic optimizers
    :param memory: sizes and initial biases of the networks (``net_arch``, ``predictor_hidden``, ``readout``,
        ``read_heads``, ``read_key_dim``, ``erase_bias``, ``input_bias``, ``coupled_gates``, ``write_top_k``; a
        mapping of its fields is taken over the default recipe's). Its ``n_slots`` and ``memory_dim`` are set to
        the observation space's, as SB3 policies take their shapes from the spaces (the env's memory decides).
        Default: ``MemoryConfig()``
    :param n_targets: number of predicted targets
    :param critic: what the critic learns: ``"value"`` (``Q``) or ``"gradient"`` (``dV/dm``, per slot)
    :param critic_members: the value-gradient critic's ensemble size (``RMNConfig.critic_ensemble``)
    :param history: whether the critic's context also holds the running mean of the movie's segment embeddings
        (``RMNConfig.history_decay > 0``); only the critic sees it, the writer and the predictor do not
    :param write_top_k_weight: the share of the top-k write in the attention, against the full softmax (1: the
        top-k write alone; the agent moves it along its schedule while training)
    :param encoder_spec: the segment encoder's kind, config and normalisation stats (``SegmentEncoder.spec()``);
        its weights live in this policy's state dict, so a saved model maps raw features to predictions
    :param optimizer_class: the optimizer of the actor/predictor and of the critic
    :param optimizer_kwargs: its keyword arguments; by default Adam's fused implementation (one kernel per step
        instead of several small operations per parameter)
    :param _unused: what Stable-Baselines3 passes to its policies and this one does not use (DDPG's
        ``n_critics``, ``use_sde``, ``normalize_images``)
    :raises TypeError: for any other keyword argument (e.g. a network size given outside ``memory``)
    :raises ValueError: when ``memory.erase_bias`` lists values for another slot size than the env's
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        memory: Union[MemoryConfig, dict, None] = None,
        n_targets: int = 2,
        critic: str = "value",
        critic_members: int = 1,
        history: bool = False,
        write_top_k_weight: float = 1.0,
        encoder_spec: Optional[dict] = None,
        optimizer_class: type = torch.optim.Adam,
        optimizer_kwargs: Optional[dict] = None,
        **_unused: Any,
    ) -> None:
        unknown = sorted(set(_unused) - _SB3_POLICY_KWARGS)
        if unknown:
            raise TypeError(f"RMNPolicy got unexpected keyword arguments {unknown}: the networks' sizes and biases "
                            "come from memory=MemoryConfig(...)")
        if optimizer_kwargs is None and optimizer_class is torch.optim.Adam:
            optimizer_kwargs = {"fused": True}
        super().__init__(observation_space, action_space, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, squash_output=True)
        self.embed_dim = int(observation_space["segment"].shape[0])
        self.n_slots, self.memory_dim = (int(x) for x in observation_space["memory"].shape)
        if isinstance(memory, dict):  # plain values (e.g. a zoo hyperparameter file), over the default recipe's
            memory = TrainConfig.from_dict({"memory": memory}, "memory").memory
        memory = MemoryConfig() if memory is None else memory
        if (memory.n_slots, memory.memory_dim) != (self.n_slots, self.memory_dim):  # the env's memory decides
            memory = dataclasses.replace(memory, n_slots=self.n_slots, memory_dim=self.memory_dim)
        self.memory = memory
        self.n_targets = int(n_targets)
        self.critic_kind = check_choice("critic", critic, CRITIC_KINDS)
        self.critic_members = int(critic_members)
        self.history = bool(history)
        self.erase_bias = memory.erase_biases()
        self.write_top_k_weight = float(write_top_k_weight)
        self.encoder_spec = encoder_spec
        self._np_actor: Optional[NumpySlotActor] = None
        self._build(lr_schedule)

    @property
    def write_top_k(self) -> int:
        """How many slots a write touches (0: all; see :class:`SlotActor`)."""
        return self.memory.write_top_k

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(lr_schedule=self._dummy_schedule,  # not needed to load the policy alone (as SB3's policies)
                    memory=self.memory, n_targets=self.n_targets, critic=self.critic_kind,
                    critic_members=self.critic_members, history=self.history,
                    write_top_k_weight=self.write_top_k_weight, encoder_spec=self.encoder_spec)
        return data

    # ---- one factory method per network ----------------------------------------------------------------
    def make_actor(self) -> SlotActor:
        m = self.memory
        return SlotActor(self.embed_dim, self.n_slots, self.memory_dim, list(m.net_arch), self.erase_bias,
                         float(m.input_bias), bool(m.coupled_gates), m.write_top_k,
                         self.write_top_k_weight).to(self.device)

    def make_critic(self) -> Union[AfterstateCritic, AfterstateGradientCritic]:
        context_dim = self.embed_dim * (2 if self.history else 1)
        hidden = list(self.memory.net_arch)
        if self.critic_kind == "gradient":
            return AfterstateGradientCritic(context_dim, self.n_slots, self.memory_dim, hidden,
                                            self.critic_members).to(self.device)
        return AfterstateCritic(context_dim, self.n_slots, self.memory_dim, hidden).to(self.device)

    def make_predictor(self) -> MemoryPredictor:
        m = self.memory
        return MemoryPredictor(self.embed_dim, self.n_slots, self.memory_dim, self.n_targets,
                               hidden=list(m.predictor_hidden), read_heads=m.read_heads, key_dim=m.read_key_dim,
                               embed_in_output=m.readout != "paper").to(self.device)

    def make_encoder(self) -> Optional[SegmentEncoder]:
        return None if self.encoder_spec is None else encoder_from_payload(self.encoder_spec).to(self.device)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor, self.actor_target = self.make_actor(), self.make_actor()
        self.critic, self.critic_target = self.make_critic(), self.make_critic()
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_target.requires_grad_(False)
        self.critic_target.requires_grad_(False)
        self.predictor = self.make_predictor()
        self.encoder = self.make_encoder()
        if self.encoder is not None:
            self.encoder.requires_grad_(False)
        # The predictor (and m0) is trained jointly with the actor, by the same loss.
        self.actor.optimizer = self.make_optimizer(list(self.actor.parameters()) + list(self.predictor.parameters()),
                                                   lr_schedule(1))
        self.critic.optimizer = self.make_optimizer(self.critic.parameters(), lr_schedule(1))

    def make_optimizer(self, parameters, lr: float) -> torch.optim.Optimizer:
        """``optimizer_class`` over ``parameters``; each step marks them as changed in place.

        Fused optimizers write the parameters without bumping their version counters, which the NumPy mirrors
        of the actor and the predictor (used while collecting) read to know when to re-export the weights.
        """
        optimizer = self.optimizer_class(parameters, lr=lr, **self.optimizer_kwargs)
        optimizer.register_step_post_hook(_mark_changed)
        return optimizer

    def set_write_top_k_weight(self, weight: float) -> None:
        """The share of the top-k write in the attention of the actor and its target (see :class:`SlotActor`).

        :class:`~agents.rmn.RMN` sets it from its ``write_top_k_weight`` schedule while training and keeps the
        current value with a saved model."""
        self.write_top_k_weight = self.actor.top_k_weight = self.actor_target.top_k_weight = check_top_k_weight(weight)

    def numpy_actor(self) -> NumpySlotActor:
        """A NumPy mirror of the current actor, shared by collection and refresh (rebuilt when the actor is
        replaced; it re-exports the weights whenever they change)."""
        if self._np_actor is None or self._np_actor.actor is not self.actor:
            self._np_actor = NumpySlotActor(self.actor)
        return self._np_actor

    # ---- acting --------------------------------------------------------------------------------------
    def write_parts(self, observation: PyTorchObs) -> WriteAction:
        return self.actor(observation["segment"].float(), observation["memory"].float())

    def forward(self, observation: PyTorchObs, deterministic: bool = True) -> torch.Tensor:
        return self._predict(observation, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> torch.Tensor:
        return encode_action(self.write_parts(observation))

    def set_training_mode(self, mode: bool) -> None:
        self.actor.train(mode)
        self.critic.train(mode)
        self.predictor.train(mode)
        self.training = mode


def _mark_changed(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """Step post-hook: bump the version counter of every parameter the optimizer may have updated."""
    increment_version([p for group in optimizer.param_groups for p in group["params"]])
