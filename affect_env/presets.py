"""Difficulty presets of the synthetic benchmark: one registered Gymnasium id per movie length.

:data:`PRESETS` is the one table (env id -> synthetic ``dataset_options``); ``affect_env`` registers every id in it,
with the single env (``gym.make``) and the batched env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``).
Agents look a preset up by id (``--env LiRISMemory-Short-v0``) with :func:`preset_options`.

Each preset keeps the synthetic generator's story and scales its time axis: the movie ``length``, the
``dependency_distance`` (the fewest segments between a character's introduction and a reappearance that needs it),
and the ``intro_span`` (introductions fall in segments ``[opening, opening + intro_span)``). The number of train
movies shrinks as movies grow so that a split stays around half a million segments (a few hundred MB of features,
seconds to generate); val/test keep enough movies for a steady mean. Every preset has the synthetic data's exact
``oracle`` and ``no_memory`` references, so ``gap_closed`` is defined on each.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

#: env id -> ``dataset_options`` of the synthetic data (the id ``LiRISMemory-v0`` is the generator's defaults)
PRESETS: Mapping[str, Mapping] = MappingProxyType({
    "LiRISMemory-Short-v0": MappingProxyType(dict(
        n_movies=(1024, 32, 32), length=100, dependency_distance=20, intro_span=10)),
    "LiRISMemory-v0": MappingProxyType(dict(
        n_movies=(1024, 32, 32), length=400, dependency_distance=200, intro_span=20)),
    "LiRISMemory-Long-v0": MappingProxyType(dict(
        n_movies=(256, 16, 16), length=2_000, dependency_distance=1_000, intro_span=50)),
    "LiRISMemory-Marathon-v0": MappingProxyType(dict(
        n_movies=(48, 8, 8), length=10_000, dependency_distance=5_000, intro_span=200)),
})

#: the default id (400-segment movies, dependencies from 200 segments)
DEFAULT_ENV_ID = "LiRISMemory-v0"


def preset_options(env_id: str) -> dict:
    """The synthetic ``dataset_options`` of the preset ``env_id`` (a fresh dict, safe to modify).

    :raises ValueError: naming ``env_id`` and the known ids if it is not a preset.
    """
    name = env_id.split(":", 1)[-1]  # "affect_env:LiRISMemory-Short-v0" works too
    if name not in PRESETS:
        raise ValueError(f"env_id must be one of the presets {list(PRESETS)}, got {env_id!r}")
    return dict(PRESETS[name])
