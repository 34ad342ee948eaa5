"""Synthetic long-dependency movies: the embedded default dataset, with an exact Bayes oracle.

Each movie is generated from a small latent story, modelled on the paper's example ("the same fight scene
is tense in a crime film and funny in a comedy"):

* **genre** ``g`` (one of ``n_genres``), shown *only* in the ``music`` modality of the first
  ``opening_segments`` segments. It changes how every scene type maps to valence and arousal for the
  whole movie.
* **scene type** ``s_t`` (one of ``n_scene_types``, i.i.d. per segment), shown in every segment
  (``scene`` modality, and redundantly in ``audio``).
* **characters**: ``n_characters`` identities drawn from a pool of ``character_pool`` faces, each with an
  attitude ``a_c`` in {-1, +1}. A character's attitude is shown (``pose`` modality) only in the segment
  where it is introduced (early in the movie). It reappears (``face`` modality shows who, ``pose`` shows
  nothing) only ``dependency_distance`` or more segments later, and then shifts valence by
  ``character_effect * a_c``.
* **arc**: arousal builds with recent tension, an exponential moving average (decay ``arc_decay``) of the
  tension of the scene types seen so far.
* **noise**: every feature frame gets uniform noise; targets get Gaussian noise of std ``target_noise``.

Every feature is a ±1 code of its latent plus uniform noise of amplitude ``feature_noise < 1``, so the
sign of each feature recovers its code: latents shown in a segment are exactly identifiable from it. That
makes two predictions exact and cheap:

* ``oracle[t] = E[y_t | segments 0..t]``: genre, attitudes and the tension history are all known from the
  history, so only the target noise is left: ``MSE_oracle = target_noise**2`` in expectation.
* ``no_memory[t] = E[y_t | segment t]``: the genre is marginalised out (uniform prior) after the opening,
  a reappearing character's attitude has mean 0, and ``E[EMA_t | s_t] = (1 - decay) tension(s_t) +
  decay * mean_tension`` because past scenes are independent of the current one and the EMA starts at the
  mean tension.

``gap_closed = (MSE_no_memory - MSE_model) / (MSE_no_memory - MSE_oracle)`` then measures how much of what
memory *can* buy a model actually bought (0 = no better than the best memory-less model, 1 = oracle).
Each movie also marks (``Movie.components``) the cells where memory pays for one cause, so ``gap_closed`` is
reported per cause too: ``valence_genre`` (valence after the opening, no reappearing character: only the
genre is missing), ``valence_characters`` (valence where a character reappears: genre and attitude missing)
and ``arousal_genre_arc`` (arousal after the opening: genre and tension history missing).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional, Union

import numpy as np

from affect_env.data.types import SPLITS, DataError, Modality, Movie, MovieDataset

TARGETS = ("valence", "arousal")


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic movie generator (all defaults are the embedded default dataset).

    :param n_movies: movies per split as ``(train, val, test)``
    :param length: segments per movie ``T`` (scales to 10,000 and more), or ``(shortest, longest)``: each movie
        draws its own length, uniformly in that range (both included), as real films differ in length
    :param dependency_distance: minimum number of segments between a character's introduction (where its
        attitude is shown) and any of its reappearances (where the attitude sets valence)
    :param n_characters: latent facts per movie besides the genre (character attitudes to remember)
    :param target_noise: std of Gaussian noise on the targets (the oracle's irreducible error)
    :param feature_noise: amplitude of the uniform noise on the ±1 feature codes (must be < 1)
    :param frames_per_segment: ``K`` frames per segment
    :param seed: seed of the movie stream (splits and movies get disjoint sub-streams)
    :param world_seed: seed of the fixed "world" (scene tables, codes), shared by all splits
    """

    n_movies: tuple = (1024, 32, 32)
    length: Union[int, tuple] = 400
    dependency_distance: int = 200
    n_characters: int = 4
    character_pool: int = 12
    n_genres: int = 3
    n_scene_types: int = 8
    opening_segments: int = 5
    intro_span: int = 20
    reappear_prob: float = 0.3
    genre_effect: float = 0.2
    character_effect: float = 0.5
    arc_effect: float = 3.0
    arc_decay: float = 0.95
    target_noise: float = 0.1
    feature_noise: float = 0.8
    frames_per_segment: int = 4
    modality_dims: tuple = (("audio", 6), ("music", 4), ("scene", 6), ("pose", 3), ("face", 6))
    seed: int = 0
    world_seed: int = 0

    def __post_init__(self) -> None:
        try:  # a number, or a pair given as a list (JSON, --dataset-options length=[400,2000]) or tuple
            length = tuple(int(x) for x in self.length) if isinstance(self.length, (list, tuple)) else int(self.length)
        except (TypeError, ValueError):
            raise DataError(f"synthetic config: length must be a number of segments or [shortest, longest], "
                            f"got {self.length!r}") from None
        object.__setattr__(self, "length", length)
        problems = []
        shortest = self.length_range[0]
        if isinstance(self.length, tuple) and (len(self.length) != 2 or self.length[0] > self.length[1]):
            problems.append(f"length must be a number of segments or (shortest, longest), got {list(self.length)}")
        elif shortest < 1:
            problems.append(f"length must be at least 1 segment, got {self.length}")
        if len(self.n_movies) != 3 or min(self.n_movies) < 0:
            problems.append(f"n_movies must be three counts (train, val, test), got {self.n_movies}")
        if not 0 <= self.feature_noise < 1:
            problems.append(f"feature_noise must be in [0, 1) so codes stay identifiable, got {self.feature_noise}")
        if self.n_characters > self.character_pool:
            problems.append(f"n_characters ({self.n_characters}) > character_pool ({self.character_pool})")
        if self.intro_span < self.n_characters:
            problems.append(f"intro_span ({self.intro_span}) must be >= n_characters ({self.n_characters})")
        first_use = self.opening_segments + self.intro_span + self.dependency_distance
        if self.n_characters and shortest <= first_use:
            problems.append(
                f"length ({shortest}) must exceed opening_segments + intro_span + dependency_distance "
                f"({first_use}) so characters can reappear"
            )
        if not 0 <= self.arc_decay < 1:
            problems.append(f"arc_decay must be in [0, 1), got {self.arc_decay}")
        dims = dict(self.modality_dims)
        needs = {"audio": self.n_scene_types, "music": self.n_genres + 1, "scene": self.n_scene_types,
                 "pose": 3, "face": self.character_pool + 1}
        for name, count in needs.items():
            if name not in dims:
                problems.append(f"modality {name!r} missing from modality_dims")
            elif 2 ** dims[name] < count:
                problems.append(f"modality {name!r} needs >= {int(np.ceil(np.log2(count)))} dims for {count} codes")
        if problems:
            raise DataError("synthetic config: " + "; ".join(problems))

    @property
    def length_range(self) -> tuple:
        """``(shortest, longest)`` movie length in segments (equal for a fixed ``length``)."""
        if isinstance(self.length, tuple):
            return (self.length[0], self.length[-1]) if self.length else (0, 0)
        return (int(self.length), int(self.length))

    def movie_length(self, split_index: int, index: int) -> int:
        """The length of movie ``index`` of split ``split_index`` (its own sub-stream, so a fixed ``length``
        leaves every movie exactly as it was)."""
        shortest, longest = self.length_range
        if shortest == longest:
            return shortest
        return int(np.random.default_rng([self.seed, split_index, index, 1]).integers(shortest, longest + 1))


class _World:
    """The fixed rules shared by all movies: code books, scene tables, tensions."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        rng = np.random.default_rng(cfg.world_seed)
        dims = dict(cfg.modality_dims)
        self.codes = {
            "audio": _codebook(rng, cfg.n_scene_types, dims["audio"]),
            "music": _codebook(rng, cfg.n_genres + 1, dims["music"]),  # last code = "no genre shown"
            "scene": _codebook(rng, cfg.n_scene_types, dims["scene"]),
            "pose": _codebook(rng, 3, dims["pose"]),  # 0: attitude -1, 1: attitude +1, 2: neutral
            "face": _codebook(rng, cfg.character_pool + 1, dims["face"]),  # last code = nobody
        }
        s, g = cfg.n_scene_types, cfg.n_genres
        base = rng.uniform(-0.4, 0.4, size=(s, 2))
        dev = rng.choice([-1.0, 1.0], size=(g, s, 2))
        dev -= dev.mean(axis=0, keepdims=True)
        dev /= np.sqrt((dev ** 2).mean(axis=0, keepdims=True)) + 1e-12  # unit variance over genres
        dev[np.isnan(dev)] = 0.0
        self.table = base[None] + cfg.genre_effect * dev  # (G, S, 2): valence, arousal
        self.tension = np.linspace(0.0, 1.0, s)[rng.permutation(s)]
        self.mean_tension = float(self.tension.mean())


def _codebook(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` distinct ±1 codes of length ``dim``."""
    picks = rng.choice(2 ** dim, size=n, replace=False)
    bits = (picks[:, None] >> np.arange(dim)[None, :]) & 1
    return (2.0 * bits - 1.0).astype(np.float32)


def generate_movie(cfg: SyntheticConfig, world: _World, rng: np.random.Generator, movie_id: str,
                   length: Optional[int] = None) -> Movie:
    """Draw one movie of ``length`` segments (default: ``cfg.length``, which must then be a number): latent
    story, features, noisy targets, oracle and no-memory predictions."""
    T, K = int(cfg.length if length is None else length), cfg.frames_per_segment
    genre = int(rng.integers(cfg.n_genres))
    scenes = rng.integers(cfg.n_scene_types, size=T)

    # Characters: introduced at distinct early times, reappear >= dependency_distance later.
    cast = rng.choice(cfg.character_pool, size=cfg.n_characters, replace=False)
    attitude = rng.choice([-1.0, 1.0], size=cfg.n_characters)
    intro = cfg.opening_segments + np.sort(rng.choice(cfg.intro_span, size=cfg.n_characters, replace=False))
    face = np.full(T, -1)  # index into cast, -1 = nobody
    is_intro = np.zeros(T, dtype=bool)
    face[intro] = np.arange(cfg.n_characters)
    is_intro[intro] = True
    eligible_from = intro + cfg.dependency_distance
    appear = rng.random(T) < cfg.reappear_prob
    choice = rng.random(T)
    for t in np.flatnonzero(appear):
        if face[t] >= 0:
            continue
        ok = np.flatnonzero(eligible_from <= t)
        if len(ok):
            face[t] = ok[int(choice[t] * len(ok))]

    # Arc: EMA of scene tension, started at the mean tension.
    tension = world.tension[scenes]
    ema = np.empty(T)
    level = world.mean_tension
    for t in range(T):
        level = cfg.arc_decay * level + (1.0 - cfg.arc_decay) * tension[t]
        ema[t] = level

    present = face >= 0
    char_shift = np.where(present, attitude[np.maximum(face, 0)], 0.0) * cfg.character_effect
    oracle = world.table[genre, scenes].copy()  # (T, 2)
    oracle[:, 0] += char_shift
    oracle[:, 1] += cfg.arc_effect * (ema - world.mean_tension)

    opening = np.arange(T) < cfg.opening_segments
    no_memory = np.where(opening[:, None], world.table[genre, scenes], world.table[:, scenes].mean(axis=0))
    no_memory[:, 0] += np.where(is_intro, char_shift, 0.0)
    no_memory[:, 1] += cfg.arc_effect * (1.0 - cfg.arc_decay) * (tension - world.mean_tension)

    targets = oracle + rng.normal(0.0, cfg.target_noise, size=oracle.shape)

    # Features: codes of the latents shown in each segment, plus uniform noise per frame.
    music_code = np.where(opening, genre, cfg.n_genres)
    pose_code = np.where(is_intro, (attitude[np.maximum(face, 0)] > 0).astype(int), 2)
    face_code = np.where(present, cast[np.maximum(face, 0)], cfg.character_pool)
    per_modality = {
        "audio": world.codes["audio"][scenes],
        "music": world.codes["music"][music_code],
        "scene": world.codes["scene"][scenes],
        "pose": world.codes["pose"][pose_code],
        "face": world.codes["face"][face_code],
    }
    clean = np.concatenate([per_modality[name] for name, _ in cfg.modality_dims], axis=1)  # (T, D)
    noise = rng.uniform(-cfg.feature_noise, cfg.feature_noise, size=(T, K, clean.shape[1]))
    features = (clean[:, None, :] + noise).astype(np.float32)

    return Movie(
        movie_id=movie_id,
        features=features,
        targets=targets.astype(np.float32),
        times=np.arange(T, dtype=np.float64),
        oracle=oracle.astype(np.float32),
        no_memory=no_memory.astype(np.float32),
        source="synthetic",
        notes=[f"genre={genre}", f"cast={cast.tolist()}", f"attitude={attitude.tolist()}", f"intro={intro.tolist()}"],
        components=_component_masks(opening, present & ~is_intro),
    )


def _component_masks(opening: np.ndarray, reappears: np.ndarray) -> dict:
    """``(T, 2)`` masks of the cells whose memory-dependent part comes from each latent cause."""
    late = ~opening
    zeros = np.zeros_like(late)
    return {
        "valence_genre": np.stack([late & ~reappears, zeros], axis=1),
        "valence_characters": np.stack([reappears, zeros], axis=1),
        "arousal_genre_arc": np.stack([zeros, late], axis=1),
    }


def load_synthetic(split: str = "train", config: Optional[SyntheticConfig] = None, **overrides) -> MovieDataset:
    """The synthetic dataset's ``split`` ("train", "val" or "test"); ``overrides`` replace config fields.

    Deterministic: the same config and split always give the same movies; the three splits never share a
    movie (each movie has its own random sub-stream keyed by (seed, split, index)).
    """
    if split not in SPLITS:
        raise DataError(f"synthetic dataset: unknown split {split!r}; choose one of {SPLITS}")
    cfg = replace(config or SyntheticConfig(), **overrides) if overrides else (config or SyntheticConfig())
    world = _World(cfg)
    which = SPLITS.index(split)
    movies = []
    for i in range(cfg.n_movies[which]):
        rng = np.random.default_rng([cfg.seed, which, i])
        movies.append(generate_movie(cfg, world, rng, f"synthetic-{split}-{i:04d}", cfg.movie_length(which, i)))
    return MovieDataset(
        movies=movies,
        modalities=tuple(Modality(name, dim) for name, dim in cfg.modality_dims),
        target_names=TARGETS,
        frames_per_segment=cfg.frames_per_segment,
        segment_seconds=1.0,
        name="synthetic",
        split=split,
    )


def config_dict(cfg: SyntheticConfig) -> dict:
    """JSON-friendly view of a config (for saving with models and runs)."""
    out = asdict(cfg)
    out["n_movies"] = list(cfg.n_movies)
    if isinstance(cfg.length, tuple):
        out["length"] = list(cfg.length)
    out["modality_dims"] = [list(x) for x in cfg.modality_dims]
    return out
