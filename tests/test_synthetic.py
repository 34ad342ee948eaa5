"""The synthetic default dataset: deterministic, disjoint splits, and exact oracle / no-memory predictions."""
import numpy as np
import pandas as pd
import pytest

from affect_env.data import DataError, load_dataset
from affect_env.data.synthetic import SyntheticConfig, _World, load_synthetic

SMALL = dict(n_movies=(40, 4, 4), length=260, dependency_distance=200)


def test_deterministic_and_disjoint_splits():
    a, b = load_synthetic("train", **SMALL), load_synthetic("train", **SMALL)
    assert all(np.array_equal(x.features, y.features) and np.array_equal(x.targets, y.targets) for x, y in zip(a, b))
    val = load_synthetic("val", **SMALL)
    train_keys = {m.features[:8].tobytes() for m in a}
    assert not any(m.features[:8].tobytes() in train_keys for m in val)
    assert {m.movie_id for m in a}.isdisjoint(m.movie_id for m in val)


def test_shapes_and_modalities():
    ds = load_dataset("synthetic", "val", **SMALL)
    assert [m.name for m in ds.modalities] == ["audio", "music", "scene", "pose", "face"]
    assert ds.target_names == ("valence", "arousal")
    m = ds.movies[0]
    assert m.features.shape == (260, ds.frames_per_segment, ds.feature_dim)
    assert m.targets.shape == m.oracle.shape == m.no_memory.shape == (260, 2)
    assert ds.has_oracle


def test_oracle_beats_no_memory_by_a_wide_margin():
    ds = load_synthetic("train", n_movies=(32, 0, 0))
    y = np.concatenate([m.targets for m in ds])
    mse_oracle = ((np.concatenate([m.oracle for m in ds]) - y) ** 2).mean()
    mse_nomem = ((np.concatenate([m.no_memory for m in ds]) - y) ** 2).mean()
    noise = SyntheticConfig().target_noise ** 2
    assert mse_oracle == pytest.approx(noise, rel=0.05)  # only the target noise is left
    assert mse_nomem > 4 * mse_oracle


def test_oracle_is_the_conditional_mean_given_the_latent_story():
    """Residuals y - oracle are pure noise: zero mean, noise variance, uncorrelated with every latent."""
    cfg = SyntheticConfig(n_movies=(64, 0, 0))
    ds = load_synthetic("train", config=cfg)
    res = np.concatenate([m.targets - m.oracle for m in ds])
    assert np.abs(res.mean(axis=0)).max() < 3 * cfg.target_noise / np.sqrt(len(res))
    assert res.std(axis=0) == pytest.approx([cfg.target_noise] * 2, rel=0.03)
    # No structure left: the residual does not correlate with the oracle or with any feature of the segment.
    feats = np.concatenate([m.features.mean(axis=1) for m in ds])
    oracle = np.concatenate([m.oracle for m in ds])
    for k in range(2):
        corr = [abs(np.corrcoef(res[:, k], f)[0, 1]) for f in np.hstack([feats, oracle]).T]
        assert max(corr) < 0.03


def _segment_class(features: np.ndarray) -> np.ndarray:
    """The exact latent code shown in each segment: the sign pattern of the frame-averaged features."""
    return (features.mean(axis=1) > 0).astype(np.uint8)


def test_no_memory_prediction_is_the_mean_given_the_current_segment():
    """Group segments by everything one segment shows; the group means of y equal the no-memory prediction."""
    ds = load_synthetic("train", n_movies=(300, 0, 0), length=260, dependency_distance=200)
    keys = np.concatenate([_segment_class(m.features) for m in ds])
    y = np.concatenate([m.targets for m in ds]).astype(np.float64)
    nomem = np.concatenate([m.no_memory for m in ds]).astype(np.float64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    # the no-memory prediction is a function of the segment's code alone ...
    high = np.full((len(counts), 2), -np.inf)
    low = np.full((len(counts), 2), np.inf)
    np.maximum.at(high, inverse, nomem)
    np.minimum.at(low, inverse, nomem)
    assert (high - low).max() < 1e-5
    # ... and it is the conditional mean of the target: every group's empirical mean matches it
    # Segments of one movie share its genre, so the standard error is clustered by movie.
    resid = y - nomem
    movie = np.concatenate([np.full(m.n_segments, i) for i, m in enumerate(ds)])
    tested = np.flatnonzero(counts >= 30)
    assert len(tested) >= 50  # scenes x (nobody, each reappearing face, intros, opening genres)
    bias, se = np.zeros((len(tested), 2)), np.zeros((len(tested), 2))
    for row, g in enumerate(tested):
        sel = inverse == g
        bias[row] = resid[sel].mean(axis=0)
        cluster_sums = np.zeros((len(ds), 2))
        np.add.at(cluster_sums, movie[sel], resid[sel] - bias[row])
        se[row] = np.sqrt((cluster_sums ** 2).sum(axis=0)) / sel.sum()
    assert (np.abs(bias) < 5 * se).all()


def test_long_movies_and_dependency_distance():
    cfg = SyntheticConfig(n_movies=(0, 0, 1), length=10_000, dependency_distance=5_000)
    m = load_synthetic("test", config=cfg).movies[0]
    assert m.features.shape[0] == 10_000
    codes = _World(cfg).codes
    shown = np.sign(m.features.mean(axis=1))
    face, pose = shown[:, -6:], shown[:, -9:-6]
    someone = ~(face == codes["face"][-1]).all(axis=1)
    neutral = (pose == codes["pose"][2]).all(axis=1)
    intros, reappearances = np.flatnonzero(someone & ~neutral), np.flatnonzero(someone & neutral)
    assert len(intros) == cfg.n_characters and intros.max() < cfg.opening_segments + cfg.intro_span
    assert len(reappearances) > 100 and reappearances.min() >= intros.min() + 5_000
    # a reappearance is where remembering the attitude pays: the oracle's valence moves away from the
    # no-memory one by more than the genre alone moves it elsewhere
    diff = np.abs(m.oracle[:, 0] - m.no_memory[:, 0])
    genre_only = (np.arange(10_000) >= cfg.opening_segments) & ~someone
    assert diff[reappearances].mean() > 1.5 * diff[genre_only].mean()


def test_a_length_range_gives_each_movie_its_own_length_and_leaves_fixed_lengths_alone():
    """``length=(shortest, longest)``: lengths vary per movie, within the range, the same on every load; the
    movies of a fixed length are exactly those of before (the length has its own random sub-stream)."""
    ranged = load_synthetic("train", **dict(SMALL, length=[240, 600]))
    lengths = [len(m.targets) for m in ranged]
    assert min(lengths) >= 240 and max(lengths) <= 600 and len(set(lengths)) > 20
    assert [len(m.targets) for m in load_synthetic("train", **dict(SMALL, length=(240, 600)))] == lengths
    for m in ranged.movies[:3]:
        assert m.features.shape[0] == m.oracle.shape[0] == m.no_memory.shape[0] == len(m.times)
        assert m.components["valence_genre"].shape == (len(m.targets), 2)
    fixed = load_synthetic("train", **SMALL)
    again = load_synthetic("train", **dict(SMALL, length=(260, 260)))
    assert all(np.array_equal(a.features, b.features) and np.array_equal(a.targets, b.targets)
               for a, b in zip(fixed, again))


def test_bad_config_is_reported():
    with pytest.raises(DataError, match="length"):
        load_synthetic("train", length=100, dependency_distance=200)
    with pytest.raises(DataError, match=r"length \(150\) must exceed"):
        load_synthetic("train", length=[150, 900], dependency_distance=200)
    with pytest.raises(DataError, match="shortest, longest"):
        load_synthetic("train", length=[900, 300])
    for bad in ("long", [400, "x"]):  # e.g. --dataset-option length=long: an error naming the field, no traceback
        with pytest.raises(DataError, match="length must be a number of segments"):
            load_synthetic("train", length=bad)
    with pytest.raises(DataError, match="feature_noise"):
        load_synthetic("train", feature_noise=1.5)
    with pytest.raises(DataError, match="split"):
        load_synthetic("dev")


def test_error_by_position_shows_where_along_the_movies_a_memory_fades():
    """The metrics along the movies pool each stretch of positions over the movies long enough to reach it: a
    prediction that is the oracle's for the first 100 segments and memory-less after them closes the whole gap in
    the stretches before 100 and none after."""
    from agents.metrics import error_by_position, evaluate_predictions

    ds = load_synthetic("val", **{**SMALL, "length": [230, 330]})
    lengths = np.array([len(m) for m in ds])
    assert len(set(lengths)) > 1
    fading = [np.concatenate([m.oracle[:100], m.no_memory[100:]]) for m in ds]
    table = error_by_position(fading, ds, stretch=50)
    assert table["start"].tolist() == list(range(0, lengths.max(), 50)) and table["end"].iloc[-1] == lengths.max()
    assert table["movies"].tolist() == [int((lengths > s).sum()) for s in table["start"]]
    assert table["segments"].tolist() == [int(np.clip(lengths - s, 0, 50).sum()) for s in table["start"]]
    early, late = table["start"] < 100, table["start"] >= 100
    assert table.loc[early, "gap_closed"].dropna().size == 2 and np.allclose(table.loc[early, "gap_closed"], 1.0)
    assert table.loc[late, "gap_closed"].dropna().size > 0 and np.allclose(table.loc[late, "gap_closed"].dropna(), 0.0)
    first = np.concatenate([p[:50] for p in fading]), np.concatenate([m.targets[:50] for m in ds])
    assert table["valence_mse"].iloc[0] == pytest.approx(float(((first[0][:, 0] - first[1][:, 0]) ** 2).mean()))
    # the stretches together are the whole split: their MSEs, weighted by their segments, give the global one
    overall = evaluate_predictions(fading, ds).iloc[0]
    assert (table["mse"] * table["segments"]).sum() / table["segments"].sum() == pytest.approx(overall["mse"])
    # by default a tenth of the longest movie per row
    default = error_by_position(fading, ds)
    assert default["end"].iloc[0] == -(-lengths.max() // 10) and default["end"].iloc[-1] == lengths.max()
    for bad in (-1, 2.5, "10"):
        with pytest.raises(ValueError, match="stretch must be a whole number"):
            error_by_position(fading, ds, stretch=bad)


def test_component_masks_mark_where_each_cause_moves_the_oracle():
    """Outside a cause's cells, knowing that cause changes nothing; inside, per-cause gap_closed is exact."""
    from agents.metrics import evaluate_predictions

    ds = load_synthetic("val", **SMALL)
    no_chars = load_synthetic("val", **SMALL, character_effect=0.0)
    for m, m0 in zip(ds, no_chars):
        assert set(m.components) == {"valence_genre", "valence_characters", "arousal_genre_arc"}
        moved = np.abs(m.oracle - m0.oracle) > 1e-6  # where an attitude moves the oracle ...
        moved &= np.abs(m.no_memory - m0.no_memory) < 1e-6  # ... and one segment does not show it
        np.testing.assert_array_equal(moved, m.components["valence_characters"])
        assert not (m.components["valence_genre"] & m.components["valence_characters"]).any()
        assert not m.components["arousal_genre_arc"][:, 0].any()
        assert m.components["arousal_genre_arc"][SyntheticConfig().opening_segments:, 1].all()
    # a prediction that is the oracle on the character cells and memory-less elsewhere closes exactly those
    # cells' gap, and only part of the overall one
    mix = [np.where(m.components["valence_characters"], m.oracle, m.no_memory) for m in ds]
    row = evaluate_predictions(mix, ds).iloc[0]
    assert row["gap_closed_valence_characters"] == pytest.approx(1.0)
    assert row["gap_closed_valence_genre"] == pytest.approx(0.0)
    assert row["gap_closed_arousal_genre_arc"] == pytest.approx(0.0)
    assert 0.0 < row["gap_closed"] < 1.0
    # a cause switched off leaves no gap there: its share is left out (not a division by zero), the others stay
    no_arc = load_synthetic("val", **SMALL, arc_effect=0.0, genre_effect=0.0)
    row = evaluate_predictions([m.oracle for m in no_arc], no_arc).iloc[0]
    assert "gap_closed_arousal_genre_arc" not in row.index and "gap_closed_valence_genre" not in row.index
    assert row["gap_closed_valence_characters"] == pytest.approx(1.0) and row["gap_closed"] == pytest.approx(1.0)
    # with no memory dependency at all, gap_closed is undefined and left out (model selection then uses the MSE)
    none = load_synthetic("val", **SMALL, arc_effect=0.0, genre_effect=0.0, character_effect=0.0)
    row = evaluate_predictions([m.no_memory for m in none], none).iloc[0]
    assert not any(k.startswith("gap_closed") for k in row.index if not pd.isna(row[k]))
    # selecting one target keeps the masks aligned with the remaining column
    arousal = ds.select_targets(["arousal"])
    np.testing.assert_array_equal(arousal.movies[0].components["arousal_genre_arc"][:, 0],
                                  ds.movies[0].components["arousal_genre_arc"][:, 1])
