"""RMN policy: structured write actor, afterstate critic, predictor head (with ``m0``) and segment encoder."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch.autograd.graph import increment_version

from affect_env.encoder import SegmentEncoder, encoder_from_payload
from affect_env.memory import MemoryPredictor, WriteAction, encode_action
from agents.rmn.networks import AfterstateCritic, SlotActor, check_top_k_weight, check_write_top_k, erase_biases


class RMNPolicy(BasePolicy):
    """Policy of :class:`~agents.rmn.rmn.RMN`: everything a trained model needs to predict from raw features.

    :param observation_space: ``Dict(segment=Box(d_e), memory=Box(N, d))``
    :param action_space: ``Box(-1, 1, (N + 3 N d,))``
    :param lr_schedule: learning-rate schedule of the actor/predictor and critic optimizers
    :param n_targets: number of predicted targets
    :param net_arch: hidden sizes of the slot MLPs of the actor and the critic
    :param predictor_hidden: hidden sizes of the predictor's score and output networks
    :param read_heads: attention reads of the predictor
    :param read_key_dim: query/key size of the predictor's content-addressing term (0: none)
    :param erase_bias: initial erase-gate logit bias of the actor (one value or one per memory dimension)
    :param input_bias: initial input-gate logit bias of the actor
    :param coupled_gates: the actor uses its erase gate as input gate (see :class:`SlotActor`)
    :param write_top_k: the actor writes only its ``k`` most attended slots (see :class:`SlotActor`); 0 or
        ``k >= n_slots``: all
    :param write_top_k_weight: the share of that top-k write in the attention, against the full softmax (1: the
        top-k write alone)
    :param encoder_spec: the segment encoder's kind, config and normalisation stats (``SegmentEncoder.spec()``);
        its weights live in this policy's state dict, so a saved model maps raw features to predictions
    :param optimizer_class: the optimizer of the actor/predictor and of the critic
    :param optimizer_kwargs: its keyword arguments; by default Adam's fused implementation (one kernel per step
        instead of several small operations per parameter: about 13 % more updates/s on CPU)
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        n_targets: int = 2,
        net_arch: Sequence[int] = (128, 128),
        predictor_hidden: Sequence[int] = (64,),
        read_heads: int = 1,
        read_key_dim: int = 0,
        erase_bias: Union[float, Sequence[float]] = 0.0,
        input_bias: float = 0.0,
        coupled_gates: bool = False,
        write_top_k: int = 0,
        write_top_k_weight: float = 1.0,
        encoder_spec: Optional[dict] = None,
        optimizer_class: type = torch.optim.Adam,
        optimizer_kwargs: Optional[dict] = None,
        **_unused: Any,
    ) -> None:
        if optimizer_kwargs is None and optimizer_class is torch.optim.Adam:
            optimizer_kwargs = {"fused": True}
        super().__init__(observation_space, action_space, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, squash_output=True)
        self.embed_dim = int(observation_space["segment"].shape[0])
        self.n_slots, self.memory_dim = (int(x) for x in observation_space["memory"].shape)
        self.n_targets = int(n_targets)
        self.net_arch, self.predictor_hidden, self.read_heads = list(net_arch), list(predictor_hidden), int(read_heads)
        self.read_key_dim = int(read_key_dim)
        self.erase_bias = erase_biases(erase_bias, self.memory_dim)
        self.input_bias, self.coupled_gates = float(input_bias), bool(coupled_gates)
        self.write_top_k, self.write_top_k_weight = check_write_top_k(write_top_k), float(write_top_k_weight)
        self.encoder_spec = encoder_spec
        self._build(lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(n_targets=self.n_targets, net_arch=self.net_arch, predictor_hidden=self.predictor_hidden,
                    read_heads=self.read_heads, read_key_dim=self.read_key_dim, erase_bias=self.erase_bias,
                    input_bias=self.input_bias, coupled_gates=self.coupled_gates, write_top_k=self.write_top_k,
                    write_top_k_weight=self.write_top_k_weight, encoder_spec=self.encoder_spec)
        return data

    # ---- one factory method per network ----------------------------------------------------------------
    def make_actor(self) -> SlotActor:
        return SlotActor(self.embed_dim, self.n_slots, self.memory_dim, self.net_arch,
                         self.erase_bias, self.input_bias, self.coupled_gates, self.write_top_k,
                         self.write_top_k_weight).to(self.device)

    def make_critic(self) -> AfterstateCritic:
        return AfterstateCritic(self.embed_dim, self.n_slots, self.memory_dim, self.net_arch).to(self.device)

    def make_predictor(self) -> MemoryPredictor:
        return MemoryPredictor(self.embed_dim, self.n_slots, self.memory_dim, self.n_targets,
                               hidden=self.predictor_hidden, read_heads=self.read_heads,
                               key_dim=self.read_key_dim).to(self.device)

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
