"""Shared fixtures: small synthetic data so every test runs in seconds."""
from pathlib import Path

import pytest
import torch

from affect_env.data import load_dataset

# The networks under test are small: one thread is faster than two competing ones (and keeps CI steady).
torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "data"
CEAP_SUBSET = FIXTURES / "ceap360vr_subset"
SMALL_SYNTHETIC = dict(n_movies=(6, 2, 2), length=240, dependency_distance=200, intro_span=10)


@pytest.fixture(scope="session")
def small_synthetic():
    """``{split: MovieDataset}`` of a few short synthetic movies."""
    return {s: load_dataset("synthetic", s, **SMALL_SYNTHETIC) for s in ("train", "val", "test")}
