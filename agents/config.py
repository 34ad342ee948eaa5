"""The recipe config: nested dataclasses, one per part of a run, validated where they are built.

A :class:`TrainConfig` holds a run's parts — :class:`DataConfig`, :class:`EncoderConfig`, :class:`MemoryConfig`,
:class:`AlgorithmConfig`, :class:`RMNConfig` (with its :class:`LongRangeConfig` and :class:`RefreshConfig`),
:class:`WarmStartConfig` and :class:`RunConfig` — and the name of the recipe it started from. Named recipes
(:data:`RECIPES`: ``default``, ``paper``) are the only place defaults live: the algorithm classes take these
objects instead of repeating their fields, and the command line (:mod:`agents.cli`) is generated from them.

Field names are unique across the parts, so a field can be named on its own (``{"tau": 0.01}``, a zoo
``key:value``, a tuning parameter), by its dotted path (``"algorithm.tau"``) or in a nested mapping
(``{"algorithm": {"tau": 0.01}}``); :meth:`TrainConfig.update` takes all three. ``config.json`` is nested.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Literal, Optional, Union, get_args, get_type_hints

import numpy as np
import tyro
import yaml

from affect_env.files import atomic_write_text
from affect_env.memory import DEFAULT_MEMORY_DIM, DEFAULT_N_SLOTS, REWARD_ERRORS, check_choice, check_count
from affect_env.presets import DEFAULT_ENV_ID, PRESETS


def parse_options(items, where: str = "options") -> dict:
    """``["length=2000", "manifest=ceap360vr"]`` -> ``{"length": 2000, "manifest": "ceap360vr"}`` (values are
    JSON where they parse as JSON, else text; JSON arrays become tuples)."""
    out = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{where} {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


#: reader options: a mapping in Python and in files, ``KEY=VALUE ...`` on the command line
Options = Annotated[dict, tyro.constructors.PrimitiveConstructorSpec(
    nargs="*", metavar="KEY=VALUE", instance_from_str=parse_options, is_instance=lambda x: isinstance(x, dict),
    str_from_instance=lambda d: [f"{k}={json.dumps(v)}" for k, v in d.items()])]
#: a weight in [0, 1], or a linear schedule [start, end, end_fraction] of the run
WeightSpec = Union[float, tuple[float, float, float]]

#: the validation scores a run can select its model on (``RunConfig.select_on``)
SelectOn = Literal["val", "long", "mean"]
SELECT_ON = get_args(SelectOn)
#: the long-range losses of the RMN recipe (``LongRangeConfig.jump_mode``)
JumpMode = Literal["credit", "jump", "adjoint"]
JUMP_MODES = get_args(JumpMode)
#: distances of the long-range loss's reads, positions of its writes
Spacing = Literal["uniform", "log", "mixed"]
SPACINGS = get_args(Spacing)
Positions = Literal["uniform", "mixed"]
POSITIONS = get_args(Positions)
Reward = Literal["mae", "mse", "mae+mse"]
assert get_args(Reward) == REWARD_ERRORS
#: every algorithm a run can train: the RMN, the stock SB3 / sb3-contrib ones, and the supervised baselines
Algo = Literal["rmn", "ddpg", "td3", "sac", "ppo", "a2c", "tqc", "recurrentppo",
               "segment", "lstm", "memory_tbptt", "transformer"]
ALGORITHMS = get_args(Algo)
STOCK_ALGORITHMS = ALGORITHMS[1:8]
BASELINES = ALGORITHMS[8:]
RecipeName = Literal["default", "paper", "quick", "rl"]
Readout = Literal["mlp", "paper"]
#: what the RMN's afterstate critic learns (``RMNConfig.critic``)
CriticKind = Literal["value", "gradient"]
CRITIC_KINDS = get_args(CriticKind)


def check_weight(name: str, spec: WeightSpec) -> WeightSpec:
    """``spec`` if it is a weight in ``[0, 1]`` or a schedule ``[start, end, end_fraction]`` of such weights."""
    values = [spec] if np.isscalar(spec) else list(spec)
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        values = []
    if len(values) not in (1, 3) or not all(0.0 <= v <= 1.0 for v in values) or (len(values) == 3 and values[2] == 0):
        raise ValueError(f"{name}: give a number in [0, 1] or [start, end, end_fraction], got {spec!r}")
    return values[0] if np.isscalar(spec) else tuple(values)


def check_positive(name: str, value, strict: bool = True):
    """``value`` if it is a number ``> 0`` (``>= 0`` with ``strict=False``), else a ``ValueError`` naming ``name``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and \
        (value > 0 if strict else value >= 0)
    if not ok:
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} 0, got {value!r}")
    return value


def check_at_least_one(name: str, value) -> int:
    """``value`` as an int if it is a whole number ``>= 1``, else a ``ValueError`` naming ``name``."""
    if check_count(name, value, "none") < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_sizes(name: str, sizes, allow_empty: bool = True) -> tuple:
    """``sizes`` as a tuple of whole numbers ``>= 1`` (layer sizes)."""
    sizes = (sizes,) if np.isscalar(sizes) else tuple(sizes)
    if (not sizes and not allow_empty) or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
        raise ValueError(f"{name} must be a list of layer sizes >= 1, got {list(sizes)}")
    return tuple(int(s) for s in sizes)


_CHECKS = contextvars.ContextVar("config_checks", default=True)


@contextlib.contextmanager
def unchecked():
    """Build config parts without checking them (a command-line parser fills them in, then one check of the
    whole config reports the first bad field in one line)."""
    token = _CHECKS.set(False)
    try:
        yield
    finally:
        _CHECKS.reset(token)


class Part:
    """A config part: checked where it is built (:meth:`check` raises a ``ValueError`` naming the field)."""

    def __post_init__(self) -> None:
        if _CHECKS.get():
            self.check()

    def check(self) -> None:
        pass


@dataclass
class DataConfig(Part):
    """Data: the dataset, its reader options and the targets."""

    dataset: str = "synthetic"
    """'synthetic' (the embedded movies) or a data directory (MediaEval 2018, LIRIS-ACCEDE, tables)"""
    dataset_options: Options = field(default_factory=dict)
    """dataset reader options, KEY=VALUE (JSON values), e.g. length=2000 dependency_distance=1000 manifest=NAME"""
    train_dataset_options: Options = field(default_factory=dict)
    """reader options for the train split only, on top of dataset_options (validation and test keep those)"""
    long_val_options: Options = field(default_factory=dict)
    """reader options of a second validation set on top of the validation split's (e.g. length=2000); empty: none"""
    targets: tuple[str, ...] = ("valence", "arousal")
    """the target columns to predict"""
    segment_seconds: Optional[float] = None
    """segment length in seconds for real data (None: the dataset's own)"""

    def check(self) -> None:
        self.targets = tuple(self.targets)
        if not self.targets:
            raise ValueError("targets: give at least one target column")
        for name in ("dataset_options", "train_dataset_options", "long_val_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of reader options, got {getattr(self, name)!r}")
        if self.segment_seconds is not None:
            check_positive("segment_seconds", self.segment_seconds)


@dataclass
class EncoderConfig(Part):
    """Segment encoder: the LSTM that fuses each segment's frames into its embedding e_t."""

    encoder: str = "lstm"
    """'lstm' (pretrained here), 'pooling' (parameter-free) or the path of a saved encoder"""
    encoder_hidden: int = 64
    """the LSTM's hidden size (the embedding size)"""
    encoder_reconstruction: float = 1.0
    """weight of the frame-reconstruction term in the encoder's pretraining (0: targets only)"""
    encoder_epochs: int = 10
    """epochs of the encoder's pretraining"""

    def check(self) -> None:
        check_at_least_one("encoder_hidden", self.encoder_hidden)
        check_positive("encoder_reconstruction", self.encoder_reconstruction, strict=False)
        check_count("encoder_epochs", self.encoder_epochs, "no pretraining")


@dataclass
class MemoryConfig(Part):
    """Memory and the networks that write and read it (the env, the RMN's policy and the BPTT baselines)."""

    n_slots: int = DEFAULT_N_SLOTS
    """memory slots N"""
    memory_dim: int = DEFAULT_MEMORY_DIM
    """slot size d"""
    net_arch: tuple[int, ...] = (64, 64)
    """hidden layers of the write network and the critic (slot-shared)"""
    predictor_hidden: tuple[int, ...] = (64,)
    """hidden layers of the read-out's score and output networks (empty: single FC layers)"""
    readout: Readout = "mlp"
    """the read-out: 'mlp' (predictor_hidden layers, e_t also fed to the output) or 'paper' (single FC layers,
    y = FC(read))"""
    read_heads: int = 1
    """independent attention reads of the predictor"""
    read_key_dim: int = 0
    """content addressing in the read (query . key); 0: the paper's read"""
    erase_bias: Union[float, tuple[float, ...]] = (0.0, -9.0)
    """initial erase-gate bias: one value, or [first, last] spread over each slot's dimensions (time scales)"""
    input_bias: float = 0.0
    """initial input-gate bias"""
    coupled_gates: bool = True
    """GRU-like gates: the input gate is 1 - erase (False: independent gates, the paper)"""
    write_top_k: int = 2
    """write only the k most attended slots (the others stay exactly as they are); 0 or >= N: all"""

    def check(self) -> None:
        for name in ("n_slots", "memory_dim", "read_heads"):
            if check_count(name, getattr(self, name), "none") < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        self.net_arch = check_sizes("net_arch", self.net_arch, allow_empty=False)
        self.predictor_hidden = check_sizes("predictor_hidden", self.predictor_hidden)
        check_choice("readout", self.readout, get_args(Readout))
        if self.readout == "paper" and (self.predictor_hidden or self.read_heads != 1 or self.read_key_dim):
            raise ValueError("readout='paper' is the paper's single-FC read-out: set predictor_hidden=[], "
                             "read_heads=1 and read_key_dim=0, or readout='mlp' for hidden layers")
        check_count("read_key_dim", self.read_key_dim, "the paper's read")
        check_count("write_top_k", self.write_top_k, "all slots")
        if not np.isscalar(self.erase_bias):
            self.erase_bias = tuple(float(v) for v in self.erase_bias)
            if len(self.erase_bias) != 2 and len(self.erase_bias) != self.memory_dim:
                raise ValueError(f"erase_bias: give one number, [first, last] or {self.memory_dim} values, "
                                 f"got {len(self.erase_bias)}")

    def erase_biases(self) -> Union[float, list]:
        """The initial erase-gate biases per dimension: a number, or ``[first, last]`` spread linearly over the
        ``d`` dimensions of every slot (fast and slow dimensions in each slot, in the spirit of the "chrono"
        initialisation of LSTM gates, Tallec & Ollivier 2018), or the ``d`` values given."""
        if np.isscalar(self.erase_bias):
            return float(self.erase_bias)
        if len(self.erase_bias) == 2 and self.memory_dim > 1:
            return np.linspace(self.erase_bias[0], self.erase_bias[1], self.memory_dim).tolist()
        return list(self.erase_bias)


@dataclass
class AlgorithmConfig(Part):
    """Algorithm and optimisation: SB3's arguments, shared by the RMN and the stock algorithms."""

    algo: Algo = "rmn"
    """the algorithm: the RMN, a stock SB3 / sb3-contrib one (its zoo defaults apply) or a supervised baseline"""
    timesteps: int = 200_000
    """environment steps (segments) of training"""
    learning_rate: float = 3e-4
    """Adam learning rate"""
    final_learning_rate: Optional[float] = 3e-5
    """linear decay of the learning rate to this value over the run (None: constant)"""
    batch_size: int = 128
    """minibatch size"""
    buffer_size: int = 300_000
    """replay size in steps"""
    learning_starts: int = 2_000
    """random-write steps before learning starts"""
    tau: float = 0.005
    """soft update rate of the target networks"""
    gamma: float = 0.99
    """discount, the paper's lambda"""
    train_freq: int = 4
    """update the model every train_freq steps"""
    gradient_steps: int = 1
    """gradient steps per update"""

    def check(self) -> None:
        check_choice("algo", self.algo, ALGORITHMS)
        check_count("learning_starts", self.learning_starts, "none")
        for name in ("timesteps", "batch_size", "buffer_size", "train_freq", "gradient_steps"):
            if check_count(name, getattr(self, name), "none") < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        check_positive("learning_rate", self.learning_rate)
        if self.final_learning_rate is not None:
            check_positive("final_learning_rate", self.final_learning_rate, strict=False)
        if not (isinstance(self.tau, (int, float)) and 0 < self.tau <= 1):
            raise ValueError(f"tau must lie in (0, 1], got {self.tau!r}")
        if not (isinstance(self.gamma, (int, float)) and 0 <= self.gamma < 1):
            raise ValueError(f"gamma must lie in [0, 1) (a discount below 1: bootstrapped values stay finite), "
                             f"got {self.gamma!r}")


@dataclass
class BaselineConfig(Part):
    """Supervised baselines (algo segment, lstm, memory_tbptt, transformer): trained by epochs of (truncated) BPTT
    or minibatches of segments, with early stopping on the validation MSE."""

    bptt_window: int = 64
    """TBPTT window of the recurrent baselines in segments (0: full BPTT), the transformer's attention window"""
    epochs: int = 30
    """maximum passes over the training split"""
    hidden: int = 64
    """hidden size of the segment MLP, the LSTM and the transformer"""
    baseline_lr: float = 1e-3
    """Adam learning rate of the baselines"""
    batch_movies: int = 8
    """movies per batch (recurrent baselines)"""
    segment_batch_size: int = 256
    """segments per minibatch (segment MLP, transformer)"""
    patience: int = 5
    """epochs without a better validation MSE before stopping"""
    clip: float = 1.0
    """gradient-norm clipping"""

    def check(self) -> None:
        check_count("bptt_window", self.bptt_window, "full BPTT")
        for name in ("epochs", "hidden", "batch_movies", "segment_batch_size", "patience"):
            if check_count(name, getattr(self, name), "none") < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        check_positive("baseline_lr", self.baseline_lr)
        check_positive("clip", self.clip)


@dataclass
class LongRangeConfig(Part):
    """The RMN recipe's long-range loss: a write trained on the later reads of its movie."""

    jump_weight: float = 10.0
    """weight of the long-range loss (0: none, the paper)"""
    jump_distance: int = 400
    """largest write-to-read distance"""
    jump_mode: JumpMode = "adjoint"
    """'adjoint' (every later read, through adjoints stored at each refresh), 'credit' (jump_reads sampled reads
    along the stored memories) or 'jump' (a read right after the write)"""
    jump_reads: int = 2
    """'credit': later reads per write"""
    jump_spacing: Spacing = "uniform"
    """weighting (or sampling) of the reads' distances"""
    jump_positions: Positions = "mixed"
    """positions of the loss's writes in their movie: 'uniform', or 'mixed' (half moved early)"""
    adjoint_step: float = 100.0
    """'adjoint': trust region, how far (times the adjoint) a write may move per refresh"""

    def check(self) -> None:
        check_positive("jump_weight", self.jump_weight, strict=False)
        check_at_least_one("jump_distance", self.jump_distance)
        check_choice("jump_mode", self.jump_mode, JUMP_MODES)
        check_count("jump_reads", self.jump_reads, "none")
        check_choice("jump_spacing", self.jump_spacing, SPACINGS)
        check_choice("jump_positions", self.jump_positions, POSITIONS)
        check_positive("adjoint_step", self.adjoint_step)


@dataclass
class RefreshConfig(Part):
    """The RMN recipe's refresh: stored memories recomputed with the current writer."""

    refresh_every: int = 25
    """recompute the stored memories every this many updates (0: never, the paper)"""
    refresh_fit: int = 10
    """predictor-only steps after each refresh, on the refreshed memories"""
    refresh_movies: int = 8
    """movies recomputed per refresh, drawn at random (0: all)"""
    refresh_window: int = 0
    """with refresh_movies, recompute a stretch of this many steps of each (0: whole movies)"""
    refresh_tail: bool = False
    """with refresh_window, the stretch's adjoints also carry the reads after it"""

    def check(self) -> None:
        check_count("refresh_every", self.refresh_every, "never")
        check_count("refresh_fit", self.refresh_fit, "none")
        check_count("refresh_movies", self.refresh_movies, "every stored movie")
        check_count("refresh_window", self.refresh_window, "whole movies")


@dataclass
class RMNConfig(Part):
    """The RMN agent's recipe beyond the optimisation (docs/recipe.md explains each part)."""

    exploration_std: Union[float, tuple[float, float, float, float]] = (0.05, 0.0, 0.05, 0.0)
    """Gaussian noise std on attention, erase, content and input gate (one value or four)"""
    value_scale: Optional[float] = None
    """the critic learns value_scale times the return; None: 1 - gamma (average-reward units), 1: the paper"""
    reward: Reward = "mae+mse"
    """the error whose negative is the reward: 'mae' (the paper), 'mse' or 'mae+mse'"""
    same_step_credit: WeightSpec = (1.0, 0.2, 0.3)
    """weight of the same step's prediction in training the write: a number in [0, 1] or [start, end, fraction]"""
    write_top_k_weight: WeightSpec = 1.0
    """share of the top-k write against the full softmax: a number or [start, end, fraction]"""
    window: int = 1
    """writes unrolled in the actor objective before bootstrapping with the critic (1: the paper)"""
    critic_weight: float = 1.0
    """weight of the critic's bootstrap term in the actor objective (1: the method; 0: a control run that shows
    what the writer learns without the critic)"""
    critic_warmup: int = 0
    """updates at the start of training in which the critic learns but the actor objective leaves out its term
    (the writer follows the reward alone), so that a warm-started writer is not steered by a critic that has not
    yet learned about it (0: none)"""
    critic: CriticKind = "value"
    """'value': Q(e_t, m_t) by TD (the paper); 'gradient': the value's gradient dV/dm_t by bootstrapped
    vector-Jacobian TD through one write (dual heuristic programming), which the writer follows"""
    critic_ensemble: int = 1
    """'gradient': this many critic networks, initialised apart and trained on the same targets; the writer and
    the bootstrap follow their mean, whose error is smaller than one network's (1: one network)"""
    critic_steps: int = 1
    """'gradient': writes of the target writer the critic's target runs through before it bootstraps (n-step
    value-gradient TD: credit moves n steps back per bootstrap; 1: one-step)"""
    history_decay: float = 0.0
    """the critic also sees a running mean of the movie's segment embeddings with this decay (0: not; the critic
    is used only in training, so it may see any causal summary of the movie so far)"""
    update_thread: bool = True
    """differentiate the critic and the long-range loss in a worker thread (a second core); same results"""
    long_range: LongRangeConfig = field(default_factory=LongRangeConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)

    def check(self) -> None:
        if np.isscalar(self.exploration_std):
            check_positive("exploration_std", self.exploration_std, strict=False)
        else:
            self.exploration_std = tuple(float(v) for v in self.exploration_std)
            if len(self.exploration_std) != 4 or min(self.exploration_std) < 0:
                raise ValueError(f"exploration_std: give one std >= 0 or four (attention, erase, content, input "
                                 f"gate), got {list(self.exploration_std)}")
        if self.value_scale is not None:
            check_positive("value_scale", self.value_scale)
        check_choice("reward", self.reward, REWARD_ERRORS)
        self.same_step_credit = check_weight("same_step_credit", self.same_step_credit)
        self.write_top_k_weight = check_weight("write_top_k_weight", self.write_top_k_weight)
        check_at_least_one("window", self.window)
        check_positive("critic_weight", self.critic_weight, strict=False)
        check_count("critic_warmup", self.critic_warmup, "none")
        check_choice("critic", self.critic, CRITIC_KINDS)
        check_at_least_one("critic_ensemble", self.critic_ensemble)
        check_at_least_one("critic_steps", self.critic_steps)
        for name, value in (("critic_ensemble", self.critic_ensemble), ("critic_steps", self.critic_steps)):
            if value > 1 and self.critic != "gradient":
                raise ValueError(f"{name}={value} needs critic='gradient' (the value critic is one network trained by "
                                 "one-step TD)")
        if not (isinstance(self.history_decay, (int, float)) and 0 <= self.history_decay < 1):
            raise ValueError(f"history_decay must lie in [0, 1) (0: no history input), got {self.history_decay!r}")
        if self.long_range.jump_mode == "adjoint" and self.long_range.jump_weight > 0 and \
                self.refresh.refresh_every <= 0:
            raise ValueError("jump_mode='adjoint' stores its adjoints at each refresh: set refresh_every > 0")

    def critic_scale(self, gamma: float) -> float:
        """The critic's value scale: ``value_scale``, or ``1 - gamma`` where it is ``None``."""
        return 1.0 - gamma if self.value_scale is None else float(self.value_scale)


@dataclass
class WarmStartConfig(Part):
    """Warm start of the RMN's writer: a BPTT run it starts from, or a writer pretraining by BPTT."""

    init_from: str = ""
    """a memory_tbptt run (directory or model.pt) whose write network, predictor, m0 and encoder the agent starts
    from ('': none)"""
    pretrain_writer_epochs: int = 100
    """epochs of full BPTT of the writer, predictor and m0 on short movies before the RMN trains (0: none)"""
    pretrain_writer_options: Optional[Options] = None
    """reader options of the pretraining's train split (None: short movies for synthetic data)"""

    def check(self) -> None:
        check_count("pretrain_writer_epochs", self.pretrain_writer_epochs, "no writer pretraining")
        if self.pretrain_writer_options is not None and not isinstance(self.pretrain_writer_options, dict):
            raise ValueError("pretrain_writer_options must be a mapping of dataset reader options (or null: the "
                             f"default), got {self.pretrain_writer_options!r}")

    @property
    def pretrains(self) -> bool:
        """Whether the writer is pretrained here (an ``init_from`` run replaces the pretraining)."""
        return bool(self.pretrain_writer_epochs) and not self.init_from


@dataclass
class RunConfig(Part):
    """Run: seeding, devices, validation, checkpoints and where it is written."""

    out: str = "runs/default"
    """run directory"""
    seed: int = 0
    """random seed"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda"""
    threads: int = 1
    """torch CPU threads (small networks run faster on one thread than on two busy ones)"""
    eval_every: int = 5_000
    """validate every this many steps (0: only at the end)"""
    checkpoint_every: int = 20_000
    """checkpoint every this many steps (0: none)"""
    select_on: SelectOn = "val"
    """validation score that picks the model kept: 'val', 'long' (the second set's) or 'mean'"""

    def check(self) -> None:
        check_count("seed", self.seed, "seed 0")
        check_at_least_one("threads", self.threads)
        check_count("eval_every", self.eval_every, "only at the end")
        check_count("checkpoint_every", self.checkpoint_every, "none")
        check_choice("select_on", self.select_on, SELECT_ON)
        if not str(self.out):
            raise ValueError("out: give a run directory")



@dataclass
class TrainConfig(Part):
    """Everything a training run needs; saved as ``config.json`` in the run directory."""

    recipe: RecipeName = "default"
    """the named recipe the config starts from: 'default' (the project's), 'paper' (the paper as written),
    'quick' (the default's method on a budget of minutes, to try the project) or 'rl' (reinforcement learning as
    the only long-range signal: no BPTT pretraining, no long-range loss)"""
    env: str = "LiRISMemory-v0"
    """environment id: a preset of the synthetic movies (LiRISMemory-Short-v0: 100 segments, -v0: 400, -Long-v0:
    2,000, -Marathon-v0: 10,000; their dataset_options, which dataset_options override) or LiRISMemory-v0 for
    any dataset"""
    data: DataConfig = field(default_factory=DataConfig)
    encoding: EncoderConfig = field(default_factory=EncoderConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    rmn: RMNConfig = field(default_factory=RMNConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def check(self) -> None:
        check_choice("recipe", self.recipe, get_args(RecipeName))
        env = self.env.split(":")[-1]
        if env not in PRESETS:
            raise ValueError(f"env {self.env}: choose one of {', '.join(PRESETS)}")
        if env != DEFAULT_ENV_ID and self.data.dataset != "synthetic":
            raise ValueError(f"env {self.env} is a preset of the synthetic movies; for dataset "
                             f"{self.data.dataset!r} use {DEFAULT_ENV_ID}")
        if self.run.select_on != "val" and not self.data.long_val_options:
            raise ValueError(f"select_on={self.run.select_on!r} scores a second validation set: give its options "
                             "(long_val_options KEY=VALUE ...)")
        if self.algorithm.algo != "rmn":
            if self.data.long_val_options or self.run.select_on != "val":
                raise ValueError(f"algo {self.algorithm.algo}: long_val_options and select_on are for the RMN agent")
            if self.warm_start.init_from:
                raise ValueError(f"algo {self.algorithm.algo}: init_from is for the RMN agent")
        if self.algorithm.algo == "transformer" and self.baseline.bptt_window < 1:
            raise ValueError("bptt_window must be >= 1 for the transformer (its attention window)")

    @property
    def algo(self) -> str:
        return self.algorithm.algo

    # ---- access by field name ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The nested config as plain JSON values (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def flat(self) -> dict:
        """``{field name: value}`` over every part (names are unique), as plain JSON values."""
        return dict(_flatten(self.to_dict()))

    def update(self, data: dict, where: str = "config") -> "TrainConfig":
        """A copy with the fields of ``data`` replaced: a nested mapping, dotted paths (``"memory.n_slots"``) or
        bare field names (``"n_slots"``). A new ``recipe`` takes that recipe's values, with the fields this config
        overrides kept. Every part is validated again.

        :raises ValueError: naming ``where`` and the field, for an unknown field or a bad value
        """
        data = dict(data)
        name = data.pop("recipe", self.recipe)
        if name != self.recipe:  # another recipe: its values, with this config's own overrides kept
            return TrainConfig.from_dict({"recipe": name, **self.overrides(), **data}, where)
        return TrainConfig.from_dict(_with_fields(self.to_dict(), data, where), where)

    def overrides(self) -> dict:
        """The fields that differ from the named recipe's (what ``summary.json`` records beside the recipe)."""
        base = recipe(self.recipe).flat()
        return {k: v for k, v in self.flat().items() if base.get(k) != v}

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "TrainConfig":
        """A config from a nested mapping (``config.json``) or a flat one of field names (older runs' files; a
        ``paper_faithful: true`` there selects the paper recipe). Missing fields take the recipe's defaults.

        :raises ValueError: naming ``where`` and the field
        """
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping of config fields, got {type(data).__name__}")
        data = dict(data)
        if data.pop("paper_faithful", False):
            data.setdefault("recipe", "paper")
        name = data.pop("recipe", "default")
        try:
            base = recipe(name)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        tree = _with_fields(base.to_dict(), data, where)
        try:
            return _build(cls, tree)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None

    # ---- files ---------------------------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Union[str, Path]) -> "TrainConfig":
        """A config from a JSON or YAML file of fields (nested, dotted or bare names).

        :raises ValueError: naming the file, for a missing file, bad syntax or a bad field
        """
        return cls.from_dict(read_config_file(path), str(path))


def read_config_file(path: Union[str, Path], kind: str = "config file",
                     expected: str = "a mapping of config fields") -> dict:
    """The mapping in a JSON or YAML file (a config file, the zoo's hyperparameter file).

    :raises ValueError: naming the file, and the line where it is not valid
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: {kind} not found") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {expected}")
    return data


def _with_fields(tree: dict, data: dict, where: str) -> dict:
    """The nested ``tree`` (a config's :meth:`~TrainConfig.to_dict`) with the fields named in ``data`` set."""
    for key, value in _paths(data, where):
        node = tree
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = value
    return tree


def _flatten(tree: dict):
    for key, value in tree.items():
        if key in _PART_NAMES and isinstance(value, dict):
            yield from _flatten(value)
        else:
            yield key, value


def _field_paths(cls, prefix=()) -> dict:
    """``{field name: path}`` of every leaf field under the dataclass ``cls``."""
    out = {}
    for f in fields(cls):
        sub = _PART_TYPES.get(f.name)
        if sub is not None:
            out.update(_field_paths(sub, prefix + (f.name,)))
        else:
            out[f.name] = prefix + (f.name,)
    return out


def field_names(data: dict, where: str = "config") -> set:
    """The names of the fields a mapping sets (nested mappings, dotted paths or bare names).

    :raises ValueError: naming ``where`` and an unknown field
    """
    return {path[-1] for path, _ in _paths(data, where)}


def _paths(data: dict, where: str, prefix: tuple = ()):
    """``(path, value)`` of each field named in ``data`` (nested mappings, dotted paths or bare names)."""
    for key, value in data.items():
        parts = tuple(str(key).split("."))
        if len(parts) == 1 and parts[0] in _PART_NAMES and isinstance(value, dict):
            yield from _paths(value, where, prefix + parts)
            continue
        name = parts[-1]
        path = LEAF_PATHS.get(name)
        if path is None or (len(parts) > 1 and path[-len(parts):] != parts) or \
                (prefix and path[:len(prefix)] != prefix):
            raise ValueError(f"{where}: unknown field {'.'.join(prefix + parts)!r}; the fields are: "
                             f"{', '.join(sorted(LEAF_PATHS))}")
        yield path, value


def _build(cls, tree: dict):
    unknown = sorted(set(tree) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
    kwargs, hints = {}, get_type_hints(cls)
    for f in fields(cls):
        if f.name not in tree:
            continue
        sub, value = _PART_TYPES.get(f.name), tree[f.name]
        if sub is not None:
            value = _build(sub, value)
        elif isinstance(value, list) and "tuple" in str(hints[f.name]):  # JSON's lists back to the field's tuples
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


_PART_TYPES = {"data": DataConfig, "encoding": EncoderConfig, "memory": MemoryConfig, "algorithm": AlgorithmConfig,
               "rmn": RMNConfig, "long_range": LongRangeConfig, "refresh": RefreshConfig,
               "warm_start": WarmStartConfig, "baseline": BaselineConfig, "run": RunConfig}
_PART_NAMES = frozenset(_PART_TYPES)
#: ``{field name: path in the nested config}`` for every leaf field
LEAF_PATHS = _field_paths(TrainConfig)


# ---- the named recipes ---------------------------------------------------------------------------------
def default_recipe() -> TrainConfig:
    """The project's recipe (docs/recipe.md): the paper's method plus the deviations listed there."""
    return TrainConfig()


def paper_recipe() -> TrainConfig:
    """The paper's recipe as written: one-step DDPG with an afterstate critic, noise variance 0.05 on every
    action part, the MAE reward, single FC layers in the read-out, no long-range loss, refresh or pretraining."""
    return TrainConfig(
        recipe="paper",
        encoding=EncoderConfig(encoder_reconstruction=0.0),
        memory=MemoryConfig(predictor_hidden=(), readout="paper", erase_bias=0.0, coupled_gates=False,
                            write_top_k=0),
        algorithm=AlgorithmConfig(train_freq=1, final_learning_rate=None),
        rmn=RMNConfig(exploration_std=0.05 ** 0.5, value_scale=1.0, reward="mae", same_step_credit=1.0,
                      long_range=LongRangeConfig(jump_weight=0.0),
                      refresh=RefreshConfig(refresh_every=0, refresh_fit=0, refresh_movies=0)),
        warm_start=WarmStartConfig(pretrain_writer_epochs=0),
    )


def quick_recipe() -> TrainConfig:
    """The default recipe on a budget of a few minutes on 2 CPU cores: 3 encoder epochs, 12 of writer
    pretraining, 10,000 RMN steps, validations and checkpoints scaled to that budget. A way to try the project,
    not its results."""
    return TrainConfig(recipe="quick", encoding=EncoderConfig(encoder_epochs=3),
                       algorithm=AlgorithmConfig(timesteps=10_000),
                       warm_start=WarmStartConfig(pretrain_writer_epochs=12),
                       run=RunConfig(eval_every=2_500, checkpoint_every=5_000))


def rl_recipe() -> TrainConfig:
    """Reinforcement learning as the only long-range signal (issue 37): no writer pretraining by BPTT and no
    long-range loss; the writer learns from the immediate reward and a learned, bootstrapped critic of the value's
    gradient (``critic="gradient"``), which sees a running mean of the movie so far (``history_decay``), with a
    horizon of 200 segments (``gamma=0.995``), one update per step on a replay of the last 64 movies, and refreshes
    of 100-segment stretches: every update costs the same whatever the movies' length. See docs/recipe.md."""
    return TrainConfig(
        recipe="rl",
        algorithm=AlgorithmConfig(gamma=0.995, train_freq=1, buffer_size=25_600),
        rmn=RMNConfig(critic="gradient", history_decay=0.995, long_range=LongRangeConfig(jump_weight=0.0),
                      refresh=RefreshConfig(refresh_window=100)),
        warm_start=WarmStartConfig(pretrain_writer_epochs=0))


RECIPES = {"default": default_recipe, "paper": paper_recipe, "quick": quick_recipe, "rl": rl_recipe}


def recipe(name: str) -> TrainConfig:
    """The named recipe's config (a fresh copy).

    :raises ValueError: naming the recipes
    """
    if name not in RECIPES:
        raise ValueError(f"recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name]()
