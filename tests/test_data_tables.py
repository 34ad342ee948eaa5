"""Generic per-sequence tables (affect_env.data.tables): real CEAP-360VR fixture plus broken-file checks."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affect_env.data.align import fill_nonfinite
from affect_env.data.tables import assign_splits, load_tables, shipped_manifest
from affect_env.data.types import DataError, Modality

FIXTURE = Path(__file__).parent / "data" / "ceap360vr_subset"
FULL = Path("/work/shared/data/ceap360vr")
FEATURES = ["luminance", "head_pitch", "head_yaw", "fixation"]


def participants(ds) -> set:
    return {m.movie_id.split("_")[0] for m in ds.movies}


def fixture_copy(tmp_path: Path) -> Path:
    root = tmp_path / "ceap"
    root.mkdir()
    for p in FIXTURE.glob("*.csv"):
        shutil.copy(p, root / p.name)
    return root


def table(n: int = 30, step: float = 0.1, **extra) -> pd.DataFrame:
    """A valid small sequence: ``n`` rows every ``step`` s, two features, two targets."""
    t = np.round(np.arange(n) * step, 6)
    df = pd.DataFrame({"time": t, "f1": np.sin(t), "f2": t * 2.0, "valence": np.cos(t), "arousal": t / 10.0})
    for k, v in extra.items():
        df[k] = v
    return df


def write(root: Path, name: str, content) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    else:
        path.write_text(content)
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_tables(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------- real fixture
def test_fixture_loads_with_expected_layout():
    ds = load_tables(FIXTURE, "train")
    assert [m.movie_id for m in ds] == ["P01_V1", "P01_V2", "P02_V1", "P02_V2"]
    assert ds.frames_per_segment == 10 and ds.segment_seconds == 1.0
    assert ds.modalities == (Modality("features", 4),)
    assert ds.target_names == ("valence", "arousal")
    assert ds.name == "ceap360vr_subset" and ds.split == "train"
    for movie in ds:
        assert movie.features.shape == (60, 10, 4) and movie.features.dtype == np.float32
        assert movie.targets.shape == (60, 2) and movie.targets.dtype == np.float32
        np.testing.assert_allclose(movie.times, np.arange(60.0))
        assert Path(movie.source).name == movie.movie_id + ".csv"


def test_frames_are_nearest_window_rows_to_subinterval_centres():
    movie = load_tables(FIXTURE, "train").movies[0]
    df = pd.read_csv(FIXTURE / "P01_V1.csv")
    window = np.floor(df.time).astype(int)
    same_rows = 0
    for i, rows in df.groupby(window):  # a plain loop reference of the documented rule
        times = rows.time.to_numpy()
        centres = i + (np.arange(10) + 0.5) / 10
        nearest = [int(np.argmin(np.round(np.abs(times - c), 9))) for c in centres]
        np.testing.assert_allclose(movie.features[i], rows[FEATURES].to_numpy()[nearest], rtol=1e-6)
        same_rows += nearest == list(range(10))
    # most windows hold 10 rows (jittered stamps such as 17.09 ... 17.99) and get exactly those rows
    assert same_rows >= 50
    # window 59 holds 59.0 ... 59.9 and 59.98 (11 rows): the last frame is 59.98, the row nearest 59.95
    last = df[(df.time >= 59) & (df.time < 60)]
    np.testing.assert_allclose(movie.features[59, -1], last[FEATURES].to_numpy()[-1], rtol=1e-6)


def test_segment_target_is_mean_of_window_rows():
    ds = load_tables(FIXTURE, "val")
    for movie in ds:
        df = pd.read_csv(movie.source)
        expected = df.groupby(np.floor(df.time).astype(int))[["valence", "arousal"]].mean().to_numpy()
        assert expected.shape == movie.targets.shape
        np.testing.assert_allclose(movie.targets, expected, rtol=1e-5, atol=1e-6)
    # the trace really varies, so the mean is not trivially equal to a single row
    assert np.std(ds.movies[0].targets[:, 1]) > 0.05


def test_default_split_is_subject_independent_and_deterministic():
    splits = {s: load_tables(FIXTURE, s) for s in ("train", "val", "test")}
    assert participants(splits["train"]) == {"P01", "P02"}
    assert participants(splits["val"]) == {"P23"}
    assert participants(splits["test"]) == {"P27"}
    ids = [m.movie_id for s in splits.values() for m in s]
    assert sorted(ids) == sorted(p.stem for p in FIXTURE.glob("*.csv"))
    again = load_tables(FIXTURE, "val")
    assert [m.movie_id for m in again] == [m.movie_id for m in splits["val"]]
    np.testing.assert_array_equal(again.movies[0].features, splits["val"].movies[0].features)


def test_assign_splits_rule_with_many_groups():
    stems = [f"S{i:02d}_clip{j}" for i in range(20) for j in range(3)] + ["lonely"]
    split_of = assign_splits(stems)
    groups = {}
    for stem, split in split_of.items():
        groups.setdefault(stem.split("_")[0], set()).add(split)
    assert all(len(s) == 1 for s in groups.values())  # a subject never spans two splits
    order = sorted(groups)
    per_split = [[g for g in order if groups[g] == {s}] for s in ("train", "val", "test")]
    assert [len(x) for x in per_split] == [15, 3, 3]  # 21 groups: round(14.7)=15, round(3.15)=3, rest 3
    assert per_split[0] == order[:15] and per_split[2] == order[18:]  # sorted groups, contiguous blocks
    assert assign_splits(list(reversed(stems))) == split_of


def test_shipped_manifest_on_subset_and_by_path():
    assert shipped_manifest("ceap360vr").name == "ceap360vr_splits.csv"
    by_name = load_tables(FIXTURE, "val", manifest="ceap360vr")
    by_path = load_tables(FIXTURE, "val", manifest=shipped_manifest("ceap360vr"))
    assert [m.movie_id for m in by_name] == [m.movie_id for m in by_path] == ["P23_V1", "P23_V2"]
    assert any("248 listed movie(s) have no file here" in n for n in by_name.notes)


def test_splits_csv_in_directory_is_used_and_is_not_a_movie(tmp_path):
    root = fixture_copy(tmp_path)
    rows = ["movie,split"] + [f"{p.stem},{'test' if p.stem.startswith('P01') else 'train'}"
                              for p in sorted(root.glob("*.csv"))]
    write(root, "splits.csv", "\n".join(rows) + "\n")
    test = load_tables(root, "test")
    assert [m.movie_id for m in test] == ["P01_V1", "P01_V2"]
    assert len(load_tables(root, "train")) == 6
    assert len(load_tables(root, "val")) == 0


def test_json_manifest(tmp_path):
    root = fixture_copy(tmp_path)
    mapping = {p.stem + ".csv": ("val" if "V2" in p.stem else "train") for p in root.glob("*.csv")}
    manifest = write(tmp_path, "m.json", json.dumps(mapping))
    val = load_tables(root, "val", manifest=manifest)
    assert sorted(m.movie_id for m in val) == ["P01_V2", "P02_V2", "P23_V2", "P27_V2"]


def test_manifest_unknown_split_value(tmp_path):
    root = fixture_copy(tmp_path)
    rows = ["movie,split"] + [f"{p.stem},train" for p in sorted(root.glob("*.csv"))]
    rows[3] = rows[3].replace("train", "validation")
    manifest = write(tmp_path, "m.csv", "\n".join(rows) + "\n")
    msg = error_of(root, "train", manifest=manifest)
    assert "m.csv" in msg and "row 3 (line 4)" in msg and "'validation'" in msg and "P02_V1" in msg


def test_manifest_missing_a_file_names_it(tmp_path):
    root = fixture_copy(tmp_path)
    rows = ["movie,split"] + [f"{p.stem},train" for p in sorted(root.glob("*.csv")) if p.stem != "P23_V2"]
    rows.append("P23_V9,val")  # a typo
    manifest = write(tmp_path, "m.csv", "\n".join(rows) + "\n")
    msg = error_of(root, "train", manifest=manifest)
    assert "P23_V2.csv" in msg and "not listed in manifest" in msg and "P23_V9" in msg


def test_full_shared_dataset_with_shipped_manifest():
    if not FULL.is_dir():
        pytest.skip(f"{FULL} (the full CEAP-360VR tables) is not present on this machine")
    splits = {s: load_tables(FULL, s, manifest="ceap360vr") for s in ("train", "val", "test")}
    assert [len(participants(splits[s])) for s in ("train", "val", "test")] == [22, 4, 6]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [176, 32, 48]
    assert participants(splits["val"]) == {"P23", "P24", "P25", "P26"}
    assert all(m.features.shape == (60, 10, 4) for s in splits.values() for m in s)


def test_256_files_split_into_all_groups(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    sources = sorted(FIXTURE.glob("*.csv"))
    for i in range(256):
        shutil.copy(sources[i % len(sources)], root / f"S{i // 8:03d}_V{i % 8}.csv")
    ds = load_tables(root, "train")
    assert len(ds) + len(load_tables(root, "val")) + len(load_tables(root, "test")) == 256


def test_parquet_round_trip(tmp_path):
    root = tmp_path / "pq"
    root.mkdir()
    for p in FIXTURE.glob("*.csv"):
        pd.read_csv(p).to_parquet(root / (p.stem + ".parquet"), index=False)
    from_csv = load_tables(FIXTURE, "train")
    from_pq = load_tables(root, "train")
    assert [m.movie_id for m in from_pq] == [m.movie_id for m in from_csv]
    for a, b in zip(from_csv, from_pq):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.targets, b.targets)


# --------------------------------------------------------------------------------- segmentation rules
def test_irregular_sampling_picks_nearest_row_inside_window(tmp_path):
    t = np.array([0.0, 0.3, 0.45, 0.95, 1.4, 1.95])
    df = pd.DataFrame({"time": t, "f1": np.arange(6.0), "valence": np.arange(6.0) * 2, "arousal": 0.0})
    write(tmp_path / "d", "A_1.csv", df)
    movie = load_tables(tmp_path / "d", "train", frames_per_segment=4).movies[0]
    # window 0 sample times .125, .375, .625, .875 -> rows 0, 1 (tie .3/.45 goes to the earlier), 2, 3
    np.testing.assert_array_equal(movie.features[0, :, 0], [0, 1, 2, 3])
    # window 1 sample times 1.125 ... 1.875 -> rows 4, 4, 4, 5; never row 3 (t=.95), although it is
    # nearer to 1.125 than row 4 is: a segment only sees its own rows
    np.testing.assert_array_equal(movie.features[1, :, 0], [4, 4, 4, 5])
    np.testing.assert_allclose(movie.targets[:, 0], [np.mean([0, 2, 4, 6]), np.mean([8, 10])])


def test_trailing_partial_window_dropped_below_half_segment(tmp_path):
    write(tmp_path / "short", "A_1.csv", table(n=24))  # rows to 2.3 s: last window covers 0.4 s
    write(tmp_path / "long", "A_1.csv", table(n=26))  # rows to 2.5 s: last window covers 0.6 s
    short = load_tables(tmp_path / "short", "train", frames_per_segment=10)
    long = load_tables(tmp_path / "long", "train", frames_per_segment=10)
    assert short.movies[0].n_segments == 2 and long.movies[0].n_segments == 3
    assert any("dropped the last" in n and "4 row(s)" in n for n in short.movies[0].notes)
    # kept partial window: 6 rows (2.0..2.5) give frames 0..5; past the last row the last row is held
    np.testing.assert_allclose(long.movies[0].features[2, :, 0], np.sin([2.0, 2.1, 2.2, 2.3, 2.4] + [2.5] * 5),
                               rtol=1e-6)
    np.testing.assert_allclose(long.movies[0].targets[2, 1], np.mean(np.arange(20, 26) * 0.01), rtol=1e-6)


def test_default_k_is_median_rows_per_window_over_all_files(tmp_path):
    root = tmp_path / "d"
    write(root, "A_1.csv", table(n=40, step=0.25))  # 4 rows per 1 s window
    write(root, "B_1.csv", table(n=40, step=0.25))
    write(root, "C_1.csv", table(n=100, step=0.1))  # 10 rows per window, but the minority of windows
    for split in ("train", "val", "test"):
        assert load_tables(root, split).frames_per_segment == 4
    assert load_tables(root, "train", segment_seconds=2.0).frames_per_segment == 8


def test_modalities_order_the_feature_columns(tmp_path):
    write(tmp_path / "d", "A_1.csv", table(f3=7.0))
    ds = load_tables(tmp_path / "d", "train", modalities={"b": ["f2", "f3"], "a": ["f1"]}, frames_per_segment=2)
    assert ds.modalities == (Modality("b", 2), Modality("a", 1))
    frame = ds.movies[0].features[0, 0]  # nearest row to t=0.25 (tie 0.2 / 0.3 -> 0.2)
    np.testing.assert_allclose(frame, [0.4, 7.0, np.sin(0.2)], rtol=1e-6)  # f2=2t, f3=7, f1=sin(t)
    np.testing.assert_allclose(ds.movies[0].features[1, 1, 2], np.sin(1.7), rtol=1e-6)  # t=1.75 -> 1.7


def test_explicit_feature_columns_and_targets(tmp_path):
    write(tmp_path / "d", "A_1.csv", table())
    ds = load_tables(tmp_path / "d", "train", feature_columns=["f2"], targets=("arousal",), frames_per_segment=1)
    assert ds.feature_dim == 1 and ds.target_names == ("arousal",)
    np.testing.assert_allclose(ds.movies[0].targets[:, 0], [np.mean(np.arange(10) * 0.01 + s * 0.1)
                                                            for s in range(3)], rtol=1e-5)


def test_text_column_is_ignored_and_noted(tmp_path):
    write(tmp_path / "d", "A_1.csv", table(subject="anna"))
    ds = load_tables(tmp_path / "d", "train")
    assert ds.feature_dim == 2
    assert any("ignored non-numeric column(s): ['subject']" in n for n in ds.notes)


# ------------------------------------------------------------------------------------------ bad input
def test_nan_feature_names_file_row_column(tmp_path):
    df = table()
    df.loc[12, "f2"] = np.nan
    write(tmp_path / "d", "A_1.csv", df)
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "row 13 (line 14)" in msg and "'f2'" in msg and "impute" in msg


def test_inf_target_names_file_row_column(tmp_path):
    df = table()
    df.loc[4, "arousal"] = np.inf
    write(tmp_path / "d", "A_1.csv", df)
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "row 5 (line 6)" in msg and "'arousal'" in msg and "inf" in msg


def test_impute_ffill_and_zero_fill_and_report(tmp_path):
    df = table()
    df.loc[[12, 13], "f2"] = np.nan
    df.loc[0, "valence"] = np.nan  # leading gap: takes the first valid value
    write(tmp_path / "d", "A_1.csv", df)
    ff = load_tables(tmp_path / "d", "train", impute="ffill", frames_per_segment=10)
    f2 = ff.movies[0].features[1, :, 1]  # rows 10..19 of f2 = 2 t
    np.testing.assert_allclose(f2[2:4], [2.2, 2.2], rtol=1e-6)
    expected_v0 = np.mean(np.r_[np.cos(0.1), np.cos(np.arange(1, 10) * 0.1)])
    np.testing.assert_allclose(ff.movies[0].targets[0, 0], expected_v0, rtol=1e-6)
    assert any("imputed 2 value(s) in column 'f2' (ffill)" in n for n in ff.notes)
    assert any("imputed 1 value(s) in column 'valence' (ffill)" in n for n in ff.notes)
    zero = load_tables(tmp_path / "d", "train", impute="zero", frames_per_segment=10)
    np.testing.assert_allclose(zero.movies[0].features[1, 2:4, 1], [0.0, 0.0])
    assert any("A_1.csv: imputed 2 value(s) in column 'f2' (zero)" in n for n in zero.notes)


def test_fill_nonfinite_is_the_one_imputation_of_every_reader():
    """The rule shared by the tables and the per-second readers: per column, ffill (leading gaps take the
    first finite value) or zero; dtype kept; a column ffill cannot fill raises the caller's message."""
    x = np.array([[np.nan, 1.0], [2.0, np.inf], [np.nan, 3.0], [4.0, np.nan]], dtype=np.float32)
    filled, bad = fill_nonfinite(x, "ffill", lambda j: f"col {j}")
    np.testing.assert_array_equal(filled, [[2, 1], [2, 1], [2, 3], [4, 3]])
    assert filled.dtype == np.float32 and int(bad.sum()) == 4 and np.isnan(x[0, 0])  # input untouched
    zero, _ = fill_nonfinite(x, "zero", lambda j: f"col {j}")
    np.testing.assert_array_equal(zero, [[0, 1], [2, 0], [0, 3], [4, 0]])
    clean = np.ones((3, 2))
    same, none = fill_nonfinite(clean, "ffill", lambda j: f"col {j}")
    assert same is clean and not none.any()
    with pytest.raises(DataError, match="^col 1$"):
        fill_nonfinite(np.array([[1.0, np.nan], [2.0, np.nan]]), "ffill", lambda j: f"col {j}")
    np.testing.assert_array_equal(fill_nonfinite(np.array([[np.nan]]), "zero", str)[0], [[0.0]])


def test_column_without_any_finite_value_cannot_be_forward_filled(tmp_path):
    df = table()
    df["f2"] = np.nan
    write(tmp_path / "d", "A_1.csv", df)
    assert "column 'f2' has no finite value to forward-fill from" in error_of(tmp_path / "d", "train", impute="ffill")
    ds = load_tables(tmp_path / "d", "train", impute="zero", frames_per_segment=10)
    assert np.all(ds.movies[0].features[:, :, 1] == 0)


def test_missing_target_column_lists_available(tmp_path):
    write(tmp_path / "d", "A_1.csv", table().drop(columns="arousal"))
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "'arousal'" in msg and "['time', 'f1', 'f2', 'valence']" in msg


def test_missing_time_column(tmp_path):
    write(tmp_path / "d", "A_1.csv", table().rename(columns={"time": "t"}))
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "time column 'time'" in msg and "'t'" in msg


def test_non_monotonic_time_names_row(tmp_path):
    df = table()
    df.loc[7, "time"] = 0.55  # data row 8 (0-based 7) goes back below data row 7 (t=0.6)
    write(tmp_path / "d", "A_1.csv", df)
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "row 8 (line 9)" in msg and "'time'" in msg and "not increasing" in msg


def test_non_numeric_value_names_row_column_value(tmp_path):
    df = table().astype({"f1": object})
    df.loc[5, "f1"] = "1,5"
    write(tmp_path / "d", "A_1.csv", df)
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "row 6 (line 7)" in msg and "'f1'" in msg and "'1,5'" in msg


def test_empty_and_header_only_files(tmp_path):
    write(tmp_path / "a", "A_1.csv", "")
    msg = error_of(tmp_path / "a", "train")
    assert "A_1.csv" in msg and "empty file" in msg
    write(tmp_path / "b", "B_1.csv", "time,f1,valence,arousal\n")
    msg = error_of(tmp_path / "b", "train")
    assert "B_1.csv" in msg and "header only" in msg


def test_target_shorter_than_features(tmp_path):
    df = table()
    df.loc[25:, "valence"] = np.nan
    write(tmp_path / "d", "A_1.csv", df)
    msg = error_of(tmp_path / "d", "train")
    assert "A_1.csv" in msg and "'valence'" in msg and "up to row 25 (line 26)" in msg and "same length" in msg


def test_inconsistent_feature_columns_across_files(tmp_path):
    root = tmp_path / "d"
    write(root, "A_1.csv", table())
    write(root, "B_1.csv", table().rename(columns={"f2": "f2b"}))
    msg = error_of(root, "train")
    assert "B_1.csv" in msg and "A_1.csv" in msg and "missing ['f2']" in msg and "extra ['f2b']" in msg


def test_missing_explicit_feature_column(tmp_path):
    root = tmp_path / "d"
    write(root, "A_1.csv", table())
    write(root, "B_1.csv", table().drop(columns="f1"))
    msg = error_of(root, "train", feature_columns=["f1", "f2"])
    assert "B_1.csv" in msg and "['f1']" in msg


def test_no_files_found(tmp_path):
    write(tmp_path / "d", "notes.txt", "hello")
    msg = error_of(tmp_path / "d", "train")
    assert str(tmp_path / "d") in msg and "no table files" in msg


def test_unreadable_files(tmp_path):
    write(tmp_path / "a", "A_1.parquet", "this is not parquet")
    msg = error_of(tmp_path / "a", "train")
    assert "A_1.parquet" in msg and "cannot read as Parquet" in msg
    write(tmp_path / "b", "B_1.csv", "time,f1,valence,arousal\n0,1,2,3\n0.1,1,2,3,4,5\n")
    msg = error_of(tmp_path / "b", "train")
    assert "B_1.csv" in msg and "cannot read as CSV" in msg and "line 3" in msg


def test_time_gap_is_an_error_unless_imputed(tmp_path):
    df = table(n=40)
    df = df[(df.time < 1.0) | (df.time >= 2.4)]
    write(tmp_path / "d", "A_1.csv", df)
    msg = error_of(tmp_path / "d", "train", frames_per_segment=10)
    assert "A_1.csv" in msg and "t=1 s and t=2 s" in msg and "row 10" in msg and "t=2.4" in msg
    ds = load_tables(tmp_path / "d", "train", frames_per_segment=10, impute="ffill")
    movie = ds.movies[0]
    np.testing.assert_allclose(movie.features[1, :, 0], np.sin(0.9), rtol=1e-6)  # held from t=0.9
    np.testing.assert_allclose(movie.targets[1], [np.cos(0.9), 0.09], rtol=1e-6)
    assert any("filled 1 empty segment(s)" in n for n in ds.notes)


def test_bad_options_are_reported():
    assert "unknown split" in error_of(FIXTURE, "validation")
    assert "impute" in error_of(FIXTURE, "train", impute="mean")
    assert "segment_seconds" in error_of(FIXTURE, "train", segment_seconds=0)
    assert "no shipped manifest" in error_of(FIXTURE, "train", manifest="nonexistent_dataset")


# ----------------------------------------------------------------------------- prediction-only files
def test_require_targets_false_reads_unannotated_files_with_zero_targets(tmp_path):
    root = fixture_copy(tmp_path)
    for p in sorted(root.glob("P0*.csv")):  # train files lose both targets, the others keep them
        pd.read_csv(p).drop(columns=["valence", "arousal"]).to_csv(p, index=False)
    assert "missing target column 'valence'" in error_of(root, "train")
    for split in ("train", "test"):
        ref = load_tables(FIXTURE, split)
        ds = load_tables(root, split, require_targets=False)
        assert ds.target_names == ("valence", "arousal") and ds.modalities == ref.modalities
        assert ds.frames_per_segment == ref.frames_per_segment
        for movie, expected in zip(ds, ref):
            assert movie.movie_id == expected.movie_id
            np.testing.assert_array_equal(movie.features, expected.features)
            np.testing.assert_array_equal(movie.times, expected.times)
            if split == "train":
                assert movie.targets.shape == expected.targets.shape and not movie.targets.any()
                assert any(f"{movie.movie_id}.csv: no target column(s) ['valence', 'arousal']" in n
                           and "predictions only" in n for n in ds.notes)
            else:
                np.testing.assert_array_equal(movie.targets, expected.targets)
                assert not any("no target column" in n for n in movie.notes)


def test_require_targets_false_zeroes_only_the_absent_target(tmp_path):
    write(tmp_path / "d", "A_1.csv", table().drop(columns="arousal"))
    ds = load_tables(tmp_path / "d", "train", require_targets=False, frames_per_segment=10)
    movie = ds.movies[0]
    np.testing.assert_allclose(movie.targets[:, 0], [np.cos(np.arange(10) / 10).mean(),
                                                     np.cos(np.arange(10, 20) / 10).mean(),
                                                     np.cos(np.arange(20, 30) / 10).mean()], rtol=1e-6)
    assert not movie.targets[:, 1].any()
    assert any("A_1.csv: no target column(s) ['arousal']" in n for n in ds.notes)


def test_require_targets_false_still_checks_feature_columns(tmp_path):
    root = tmp_path / "d"
    write(root, "A_1.csv", table())
    write(root, "B_1.csv", table().drop(columns=["valence", "arousal"]).rename(columns={"f2": "f3"}))
    msg = error_of(root, "train", require_targets=False)
    assert "B_1.csv" in msg and "missing ['f2']" in msg and "extra ['f3']" in msg
