"""Training configuration of the RMN agent (and of the other algorithms), as one JSON-friendly dataclass."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

#: the validation scores a run can select its model on (``TrainConfig.select_on``)
SELECT_ON = ("val", "long", "mean")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run directory.

    Defaults are the project's improved recipe; :meth:`paper_faithful` switches to the paper's as written.
    """

    env: str = "LiRISMemory-v0"
    algo: str = "rmn"
    dataset: str = "synthetic"
    dataset_options: dict = field(default_factory=dict)
    # reader options for the train split only, on top of dataset_options (e.g. longer synthetic movies to train
    # on; validation and test keep dataset_options)
    train_dataset_options: dict = field(default_factory=dict)
    # reader options of a second validation set, on top of the validation split's (e.g. {"length": 2000,
    # "dependency_distance": 1000}: longer movies); empty: none. Every validation then also scores it (long_*
    # columns in eval_log.csv) and select_on picks the model kept: "val" (the validation split's score), "long"
    # (the second set's) or "mean" (the mean of the two)
    long_val_options: dict = field(default_factory=dict)
    select_on: str = "val"
    targets: tuple = ("valence", "arousal")
    segment_seconds: Optional[float] = None
    n_slots: int = 10
    memory_dim: int = 16
    # segment encoder: "lstm" (pretrained here), "pooling" (parameter-free) or a saved encoder path
    encoder: str = "lstm"
    encoder_hidden: int = 64
    encoder_reconstruction: float = 1.0
    encoder_epochs: int = 10
    # optimisation
    timesteps: int = 200_000
    learning_rate: float = 3e-4
    final_learning_rate: Optional[float] = 3e-5  # linear decay to this value over the run (None: constant)
    batch_size: int = 128
    buffer_size: int = 300_000
    learning_starts: int = 2_000
    tau: float = 0.005
    gamma: float = 0.99
    train_freq: int = 4
    gradient_steps: int = 1
    net_arch: tuple = (64, 64)
    predictor_hidden: tuple = (64,)
    read_heads: int = 1
    read_key_dim: int = 0  # content addressing in the predictor's read (query . key); 0 = the paper's read
    # the recipe (see RMN's docstring and the README's "Deviations from the paper")
    exploration_std: Any = (0.05, 0.0, 0.05, 0.0)  # attention, erase, content, input gate
    erase_bias: Any = (0.0, -9.0)  # one value, or [first, last] spread over each slot's dimensions (time scales)
    input_bias: float = 0.0
    coupled_gates: bool = True
    write_top_k: int = 2  # write only the k most attended slots (the others stay exactly as they are); 0 or >=N: all
    # the share of that top-k write against the full softmax: a number, or [start, end, end_fraction] (linear)
    write_top_k_weight: Any = 1.0
    window: int = 1
    # the long-range loss: weight, largest write-to-read distance, kind ("adjoint": the write carried to every
    # later read of its movie at once, through an adjoint stored at each refresh; "credit": the same carried to
    # jump_reads sampled later reads along the stored memories; "jump": read right after the write), and the
    # weighting of the reads' distances ("uniform", "log" or "mixed"; for "credit" their sampling)
    jump_weight: float = 10.0
    jump_distance: int = 400
    jump_mode: str = "adjoint"
    jump_reads: int = 2
    jump_spacing: str = "uniform"
    jump_positions: str = "mixed"  # positions of the long-range loss's writes: "uniform", or "mixed" (half early)
    adjoint_step: float = 100.0  # "adjoint": trust region, how far (times the adjoint) a write may move per refresh
    # weight of the same step's prediction in training the write (1: the paper), or [start, end, end_fraction]:
    # by default 1 at the start, down linearly to 0.2 at 30 % of the run, then 0.2
    same_step_credit: Any = (1.0, 0.2, 0.3)
    value_scale: float = 0.01
    reward: str = "mae+mse"  # the error whose negative is the reward: "mae" (the paper), "mse" or "mae+mse"
    # every refresh_every updates recompute the stored memories of refresh_movies replayed movies drawn at random
    # (0: all), store their adjoints and train the predictor alone for refresh_fit steps on them; before each
    # validation every movie is recomputed
    refresh_every: int = 25
    refresh_fit: int = 10
    refresh_movies: int = 8
    # with refresh_movies, recompute only a stretch of this many steps of each drawn movie (0: whole movies), half
    # of them at the opening: a refresh then costs what one of short movies costs, however long the movies are
    refresh_window: int = 0
    # with refresh_window, a stretch's adjoints also carry the reads after it, through the stored memories (False:
    # its own reads only); no gain in two seeds of the long recipe, 1.5x a stretch's refresh cost (README)
    refresh_tail: bool = False
    # warm start: a memory_tbptt run (its directory or model.pt) whose write network, predictor, m0 and segment
    # encoder the agent starts from (its critic starts afresh); "" : none
    init_from: str = ""
    # writer pretraining (the RMN agent only; skipped with init_from): before the RMN trains, its write network,
    # predictor and m0 are trained end to end by full BPTT for this many epochs (0: none) on the train split read
    # with pretrain_writer_options on top of its own (None: short movies, SHORT_MOVIES, for the synthetic set,
    # the training movies as they are for other datasets), 16 movies per update, Adam 1e-3; the run goes into
    # writer_pretrain/ of the run directory and the agent starts from it as from init_from
    pretrain_writer_epochs: int = 100
    pretrain_writer_options: Optional[dict] = None
    paper_faithful: bool = False
    # bookkeeping
    seed: int = 0
    device: str = "auto"
    threads: int = 1  # torch CPU threads: small networks run faster on one thread than on two busy ones
    update_thread: bool = True  # the critic's and the long-range gradients in a worker thread (a 2nd core)
    eval_every: int = 5_000
    checkpoint_every: int = 20_000
    out: str = "runs/default"

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        self.net_arch = tuple(self.net_arch)
        self.predictor_hidden = tuple(self.predictor_hidden)

    def apply_paper_faithful(self) -> "TrainConfig":
        """The paper's recipe as written: one-step objective, noise variance 0.05 on every part, no extras."""
        self.paper_faithful = True
        self.exploration_std = 0.05 ** 0.5
        self.erase_bias = self.input_bias = 0.0
        self.coupled_gates = False
        self.write_top_k = 0
        self.same_step_credit = 1.0
        self.window, self.jump_weight, self.value_scale, self.refresh_every, self.refresh_fit = 1, 0.0, 1.0, 0, 0
        self.refresh_movies = 0
        self.train_freq = 1
        self.reward = "mae"
        self.final_learning_rate = None
        self.encoder_reconstruction = 0.0
        self.pretrain_writer_epochs = 0
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("targets", "net_arch", "predictor_hidden"):
            d[k] = list(d[k])
        for k in ("exploration_std", "erase_bias", "same_step_credit", "write_top_k_weight"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def update(self, data: dict, where: str = "config") -> "TrainConfig":
        """A copy with ``data``'s fields replaced (unknown fields are an error naming ``where``)."""
        merged = self.to_dict()
        merged.update(data)
        return TrainConfig.from_dict(merged, where)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "TrainConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{path}: config file not found") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of config fields")
        return cls.from_dict(data, str(path))
