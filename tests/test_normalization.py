"""FeatureStats: fit on the train split, standardise any split, save / load as JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from affect_env.data import FeatureStats as ExportedStats
from affect_env.data.normalization import FeatureStats
from affect_env.data.tables import load_tables
from affect_env.data.types import DataError, Modality, Movie, MovieDataset

FIXTURE = Path(__file__).parent / "data" / "ceap360vr_subset"


@pytest.fixture(scope="module")
def splits():
    return {s: load_tables(FIXTURE, s) for s in ("train", "val")}


def all_frames(ds: MovieDataset) -> np.ndarray:
    return np.concatenate([m.features.reshape(-1, ds.feature_dim) for m in ds]).astype(np.float64)


def dataset(features: list, name: str = "toy", split: str = "train") -> MovieDataset:
    movies = [Movie(f"m{i}", f.astype(np.float32), np.zeros((len(f), 1), np.float32), np.arange(len(f), dtype=float))
              for i, f in enumerate(features)]
    d = features[0].shape[-1]
    return MovieDataset(movies, (Modality("x", d),), ("valence",), features[0].shape[1], 1.0, name, split)


def test_stats_equal_numpy_over_train_split(splits):
    stats = FeatureStats.fit(splits["train"])
    frames = all_frames(splits["train"])
    np.testing.assert_allclose(stats.mean, frames.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, frames.std(axis=0), rtol=1e-10)
    assert stats.count == len(frames) == 4 * 60 * 10
    assert stats.fitted_on == "ceap360vr_subset:train"
    assert ExportedStats is FeatureStats
    # fitted on train only: the val split's own mean is different
    assert not np.allclose(stats.mean, all_frames(splits["val"]).mean(axis=0))


def test_apply_standardises_train_and_uses_train_stats_elsewhere(splits):
    stats = FeatureStats.fit(splits["train"])
    train = stats.apply(splits["train"])
    frames = all_frames(train)
    np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-5)
    assert train.movies[0].features.dtype == np.float32
    assert train.movies[0].features.shape == splits["train"].movies[0].features.shape
    np.testing.assert_array_equal(train.movies[0].targets, splits["train"].movies[0].targets)
    assert train.split == "train" and any("standardised" in n for n in train.notes)
    val = stats.apply(splits["val"])
    raw = splits["val"].movies[1].features.astype(np.float64)
    np.testing.assert_allclose(val.movies[1].features, (raw - stats.mean) / stats.std, rtol=1e-5, atol=1e-5)
    # the input dataset is left untouched
    assert splits["train"].movies[0].features.mean() > 10


def test_save_load_round_trip(tmp_path, splits):
    stats = FeatureStats.fit(splits["train"])
    path = stats.save(tmp_path / "sub" / "stats.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["stats.json"]  # no temp file left behind
    data = json.loads(path.read_text())
    assert data["mean"] == stats.mean.tolist() and data["modalities"] == [["features", 4]]
    loaded = FeatureStats.load(path)
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)
    assert (loaded.count, loaded.modalities, loaded.fitted_on) == (stats.count, stats.modalities, stats.fitted_on)
    x = splits["val"].movies[0].features
    np.testing.assert_array_equal(loaded.transform(x), stats.transform(x))
    stats.save(path)  # overwriting in place works (os.replace)
    assert FeatureStats.from_dict(stats.to_dict()).dim == 4


def test_constant_column_is_centred_not_blown_up():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3, 2))
    a[..., 1] = 4.0
    stats = FeatureStats.fit(dataset([a]))
    assert stats.std[1] == 0.0 and stats.scale[1] == 1.0
    out = stats.apply(dataset([a])).movies[0].features
    np.testing.assert_array_equal(out[..., 1], 0.0)
    b = a.copy()
    b[..., 1] = 6.5  # another split holding another constant stays finite: just shifted
    np.testing.assert_allclose(stats.transform(b)[..., 1], 2.5)


def test_one_pass_fit_is_accurate_when_mean_dwarfs_std():
    rng = np.random.default_rng(1)
    movies = [(3e6 + rng.normal(size=(50, 4, 3))).astype(np.float32) for _ in range(20)]
    stats = FeatureStats.fit(dataset(movies))
    frames = np.concatenate([m.reshape(-1, 3) for m in movies]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, frames.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, frames.std(axis=0), rtol=1e-9)


def test_layout_mismatch_and_bad_files_are_errors(tmp_path, splits):
    stats = FeatureStats.fit(splits["train"])
    with pytest.raises(DataError, match="3 feature dims, stats have 4"):
        stats.apply(dataset([np.zeros((2, 10, 3))]))
    with pytest.raises(DataError, match="modalities"):
        stats.apply(dataset([np.zeros((2, 10, 4))]))
    with pytest.raises(DataError, match="last dim 5"):
        stats.transform(np.zeros((3, 5)))
    bad = tmp_path / "bad.json"
    bad.write_text('{"mean": [0, 1]}')
    with pytest.raises(DataError, match=r"bad\.json: missing field 'std'"):
        FeatureStats.load(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        FeatureStats.load(bad)
