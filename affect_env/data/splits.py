"""Which movie goes to which split: split manifests and the deterministic subject-independent rule.

Shared by the generic tables (:mod:`affect_env.data.tables`) and continuous LIRIS-ACCEDE
(:mod:`affect_env.data.liris`), so a manifest means the same thing, and the rule splits the same way, for both.

* A **manifest** is a CSV with columns ``movie,split``, a JSON ``{movie: split}``, or the name of a manifest
  shipped in :mod:`affect_env.data.manifests` (e.g. ``"ceap360vr"``). Movie names are file stems (a table
  suffix is stripped); splits are :data:`~affect_env.data.types.SPLITS`.
* The **rule** (:func:`assign_splits`) groups movies by the first capture group of a pattern on the id,
  sorts the groups and gives the first 70 % (rounded half up) to ``train``, the next 15 % to ``val`` and the
  rest to ``test``; with 3 or more groups none of the three is empty. One group never lands in two splits.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from affect_env.data.readers import TABLE_SUFFIXES, row_ref
from affect_env.data.types import SPLITS, DataError, PathLike

__all__ = ["MANIFEST_DIR", "assign_splits", "read_manifest", "resolve_manifest", "shipped_manifest"]

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"


def shipped_manifest(name: str) -> Path:
    """Path of a split manifest shipped with the library (``affect_env/data/manifests/{name}_splits.csv``).

    :param name: dataset name, e.g. ``"ceap360vr"``
    """
    for candidate in (MANIFEST_DIR / f"{name}_splits.csv", MANIFEST_DIR / f"{name}.csv", MANIFEST_DIR / name):
        if candidate.is_file():
            return candidate
    known = sorted(p.name for p in MANIFEST_DIR.glob("*.csv")) if MANIFEST_DIR.is_dir() else []
    raise DataError(f"manifest {name!r}: no such file and no shipped manifest of that name; shipped: {known}")


def resolve_manifest(manifest: PathLike) -> Path:
    """An existing manifest file, or a bare name looked up among the shipped manifests."""
    path = Path(manifest)
    if path.is_file():
        return path
    if path.parent == Path(".") and not path.exists():
        return shipped_manifest(str(manifest))
    raise DataError(f"{manifest}: manifest file not found")


def _movie_name(name: str) -> str:
    """Manifest entry -> movie id (a table-file suffix is stripped)."""
    name = str(name).strip()
    for suffix in TABLE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_manifest(path: PathLike) -> dict:
    """Read a split manifest: CSV with columns ``movie,split`` or JSON ``{movie: split}``.

    Movie names are file stems (a ``.csv`` / ``.parquet`` suffix is stripped); splits must be one of
    ``train``, ``val``, ``test``.

    :param path: manifest file
    :return: ``{movie: split}``
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read manifest JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise DataError(f"{path}: manifest JSON must be an object {{movie: split}}, got {type(raw).__name__}")
        pairs = [(f"key {k!r}", k, v) for k, v in raw.items()]
    else:
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:
            raise DataError(f"{path}: cannot read manifest CSV: {type(exc).__name__}: {exc}") from exc
        df.columns = [str(c).strip() for c in df.columns]
        missing = [c for c in ("movie", "split") if c not in df.columns]
        if missing:
            raise DataError(f"{path}: manifest needs columns movie,split; missing {missing}, has {list(df.columns)}")
        pairs = [(row_ref(path, i), m, s) for i, (m, s) in enumerate(zip(df["movie"], df["split"]))]
    out: dict = {}
    for where, movie, split in pairs:
        split_name = str(split).strip()
        name = _movie_name(movie)
        if split_name not in SPLITS:
            raise DataError(f"{path}: {where}: split {split!r} for movie {name!r} is not one of {list(SPLITS)}")
        if not name:
            raise DataError(f"{path}: {where}: empty movie name")
        if name in out and out[name] != split_name:
            raise DataError(f"{path}: {where}: movie {name!r} is listed as both {out[name]!r} and {split_name!r}")
        out[name] = split_name
    if not out:
        raise DataError(f"{path}: manifest lists no movies")
    return out


def _split_counts(n_groups: int, fractions: Sequence[float]) -> list:
    """Groups per split: train and val rounded half up, test the rest; none empty when >= 3 groups."""
    n_train = min(n_groups, int(math.floor(fractions[0] * n_groups + 0.5)))
    n_val = min(n_groups - n_train, int(math.floor(fractions[1] * n_groups + 0.5)))
    counts = [n_train, n_val, n_groups - n_train - n_val]
    if n_groups >= 3:
        for i in range(3):
            if counts[i] == 0 and fractions[i] > 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def assign_splits(stems: Sequence[str], group_pattern: str = r"^([^_]+)_",
                  split_fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> dict:
    """Deterministic subject-independent split of movie ids (see the module docstring).

    :param stems: movie ids (file stems)
    :param group_pattern: regex; its first capture group (or whole match without groups) is the group key
    :param split_fractions: (train, val, test) fractions of the groups, summing to 1
    :return: ``{stem: split}``
    """
    fractions = tuple(float(f) for f in split_fractions)
    if len(fractions) != 3 or any(f < 0 or not math.isfinite(f) for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions!r}")
    try:
        pattern = re.compile(group_pattern)
    except re.error as exc:
        raise DataError(f"group_pattern {group_pattern!r} is not a valid regular expression: {exc}") from exc
    group_of = {}
    for stem in stems:
        m = pattern.search(stem)
        group_of[stem] = (m.group(1) if pattern.groups else m.group(0)) if m else stem
    groups = sorted(set(group_of.values()))
    counts = _split_counts(len(groups), fractions)
    split_of_group = {}
    start = 0
    for split, count in zip(SPLITS, counts):
        for g in groups[start:start + count]:
            split_of_group[g] = split
        start += count
    return {stem: split_of_group[g] for stem, g in group_of.items()}
