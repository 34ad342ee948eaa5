"""``python -m agents.predict``: per-second predictions of new (unannotated) movies from a trained RMN run.

One tiny RMN is trained once on the CEAP-360VR fixture (4 features per frame, 1-s segments); every test
predicts with it through the CLI entry point and checks the files a user gets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from affect_env.data import load_dataset
from affect_env.data.mediaeval import load_mediaeval, read_valence_arousal
from agents.cli import run_cli
from agents.config import TrainConfig
from agents.rmn.factory import predict_dataset
from agents.runs import load_model_file as load_model
from agents.runs import train
from agents.predict import main, per_second
from test_data_mediaeval import FakeMovie, write_tree

CEAP = Path(__file__).parent / "data" / "ceap360vr_subset"
FEATURES = ["time", "luminance", "head_pitch", "head_yaw", "fixation"]
IDS = sorted(p.stem for p in CEAP.glob("*.csv"))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A run directory of a tiny RMN trained on the CEAP fixture (pooling encoder, 300 steps)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("predict") / "run"
    cfg = TrainConfig().update(dict(
        dataset=str(CEAP), dataset_options={"manifest": "ceap360vr"}, encoder="pooling", timesteps=300,
        learning_starts=100, batch_size=32, n_slots=4, memory_dim=8, net_arch=(32, 32), predictor_hidden=(16,),
        eval_every=150, checkpoint_every=150, device="cpu", pretrain_writer_epochs=0, out=str(out)))
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def unannotated(tmp_path_factory) -> Path:
    """The CEAP fixture files without their valence / arousal columns: new movies to predict."""
    root = tmp_path_factory.mktemp("new_movies")
    for p in CEAP.glob("*.csv"):
        pd.read_csv(p)[FEATURES].to_csv(root / p.name, index=False)
    return root


@pytest.fixture(scope="session")
def predicted(run_dir, unannotated, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predictions")
    assert main([str(run_dir), "--input", str(unannotated), "--output", str(out), "--no-progress"]) == 0
    return out


def run(argv, capsys) -> tuple:
    """``(exit code, stderr lines)`` of the CLI as ``python -m agents.predict`` runs it."""
    code = run_cli(main, [str(a) for a in argv] + ["--no-progress"])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def expected_per_second(prediction: np.ndarray, seconds_per_segment: int) -> np.ndarray:
    return np.repeat(prediction, seconds_per_segment, axis=0)


# ------------------------------------------------------------------------------------------- tables
def test_one_per_second_csv_per_unannotated_file(predicted):
    assert sorted(p.stem for p in predicted.glob("*.csv") if p.name != "index.csv") == IDS
    for movie_id in IDS:
        table = pd.read_csv(predicted / f"{movie_id}.csv")
        assert list(table.columns) == ["time", "valence", "arousal"]
        assert table["time"].dtype.kind == "i"
        # the files hold 10 Hz rows over 0 .. 59.9 s: 60 one-second segments, every second covered
        np.testing.assert_array_equal(table["time"], np.arange(60))
        assert np.isfinite(table[["valence", "arousal"]].to_numpy()).all()
    index = pd.read_csv(predicted / "index.csv")
    assert list(index["movie_id"]) == IDS and (index["seconds"] == 60).all() and (index["first_second"] == 0).all()
    notes = (predicted / "notes.txt").read_text()
    assert "P27_V1.csv: no target column(s) ['valence', 'arousal']" in notes and "predictions only" in notes
    assert (predicted / "figures" / "predictions.png").stat().st_size > 0


def test_predictions_equal_predict_dataset_on_the_annotated_data(run_dir, predicted):
    model = load_model(run_dir, "cpu")
    for split in ("train", "val", "test"):
        ds = load_dataset(str(CEAP), split, manifest="ceap360vr")
        for movie, result in zip(ds, predict_dataset(model, ds)):
            table = pd.read_csv(predicted / f"{movie.movie_id}.csv")
            np.testing.assert_allclose(table[["valence", "arousal"]].to_numpy(), result["prediction"],
                                       rtol=1e-5, atol=1e-6)


def test_mediaeval_style_files(predicted):
    for movie_id in IDS:
        path = predicted / "mediaeval" / f"{movie_id}_Valence-Arousal.txt"
        assert path.read_text().splitlines()[0] == "Time\tValence\tArousal"
        rows = read_valence_arousal(path)  # the MediaEval reader accepts them
        table = pd.read_csv(predicted / f"{movie_id}.csv")
        np.testing.assert_array_equal(rows[:, 0], table["time"])
        np.testing.assert_allclose(rows[:, 1:], table[["valence", "arousal"]].to_numpy(), atol=5.1e-7)


def test_named_split_uses_the_runs_manifest(run_dir, tmp_path, capsys):
    code, err = run([run_dir / "model.zip", "--input", CEAP, "--output", tmp_path, "--split", "test"], capsys)
    assert code == 0, err
    assert sorted(p.stem for p in tmp_path.glob("P*.csv")) == ["P27_V1", "P27_V2"]
    assert set(pd.read_csv(tmp_path / "index.csv")["split"]) == {"test"}


# ----------------------------------------------------------------------------------------- MediaEval
def test_mediaeval_tree_end_to_end(run_dir, tmp_path, capsys):
    """Visual (2) + audio (2) dims match the model's 4; TestSet movies have no annotations at all."""
    dims = dict(dims={"cl": 2}, audio_dim=2)
    root = write_tree(tmp_path / "me", [FakeMovie(0, **dims), FakeMovie(1, audio_copies=True, **dims),
                                        FakeMovie(54, "TestSet", va=False, **dims)])
    out = tmp_path / "out"
    code, err = run([run_dir, "--input", root, "--output", out], capsys)
    assert code == 0, err
    model = load_model(run_dir, "cpu")
    index = pd.read_csv(out / "index.csv").set_index("movie_id")
    seen = []
    for split in ("train", "val", "test"):
        ds = load_mediaeval(root, split, require_targets=False, progress=False)
        for movie, result in zip(ds, predict_dataset(model, ds)):
            seen.append(movie.movie_id)
            table = pd.read_csv(out / f"{movie.movie_id}.csv")
            start = int(movie.times[0])
            # 5-s segments: each segment's prediction on each of its 5 seconds, from its first second
            np.testing.assert_array_equal(table["time"], np.arange(start, start + 5 * movie.n_segments))
            np.testing.assert_allclose(table[["valence", "arousal"]].to_numpy(),
                                       expected_per_second(result["prediction"], 5), rtol=1e-5, atol=1e-6)
            assert index.loc[movie.movie_id, "split"] == split
            assert (out / "mediaeval" / f"{movie.movie_id}_Valence-Arousal.txt").is_file()
    assert sorted(seen) == ["MEDIAEVAL18_00", "MEDIAEVAL18_01", "MEDIAEVAL18_54"]
    assert index.loc["MEDIAEVAL18_01", "first_second"] == 5  # audio starts at second 1: [0, 5) is dropped


def test_mediaeval_dimension_mismatch_is_one_clear_line(run_dir, tmp_path, capsys):
    root = write_tree(tmp_path / "me", [FakeMovie(54, "TestSet", va=False)])  # cl 3 + tamura 2 + fc6 4 + audio 4
    code, err = run([run_dir, "--input", root, "--output", tmp_path / "out", "--format", "mediaeval"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and str(root) in err[0]
    assert "has 13 feature(s) per frame" in err[0] and "expects 4" in err[0]


# ------------------------------------------------------------------------------------------- errors
def test_wrong_feature_dim_exits_2_naming_both_dims(run_dir, tmp_path, capsys):
    df = pd.read_csv(CEAP / "P27_V1.csv")[FEATURES]
    df["pupil"] = 1.0
    (tmp_path / "in").mkdir()
    df.to_csv(tmp_path / "in" / "X_1.csv", index=False)
    code, err = run([run_dir, "--input", tmp_path / "in", "--output", tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and str(tmp_path / "in") in err[0]
    assert "has 5 feature(s)" in err[0] and "expects 4" in err[0] and "'pupil'" in err[0]
    assert not (tmp_path / "out" / "X_1.csv").exists()


def test_missing_model_and_bad_input_exit_2(run_dir, unannotated, tmp_path, capsys):
    code, err = run([tmp_path / "no_run", "--input", unannotated, "--output", tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1 and "no_run" in err[0] and "no model.zip" in err[0], err
    code, err = run([run_dir, "--input", tmp_path / "nowhere", "--output", tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1 and "nowhere" in err[0] and "not found" in err[0], err
    bad = tmp_path / "bad"
    bad.mkdir()
    df = pd.read_csv(CEAP / "P27_V1.csv")[FEATURES].astype({"luminance": object})
    df.loc[3, "luminance"] = "dark"
    df.to_csv(bad / "X_1.csv", index=False)
    code, err = run([run_dir, "--input", bad, "--output", tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1, err
    assert "X_1.csv" in err[0] and "row 4 (line 5)" in err[0] and "'luminance'" in err[0] and "'dark'" in err[0]
    code, err = run([run_dir, "--input", unannotated, "--output", tmp_path / "o", "--targets", "valence"], capsys)
    assert code == 2 and len(err) == 1 and "predicts 2 target(s)" in err[0], err


# ------------------------------------------------------------------------------------ per-second rule
def test_per_second_assigns_each_segment_to_the_seconds_it_covers():
    pred = np.array([[1.0], [3.0], [5.0]])
    seconds, values = per_second(np.array([10.0, 12.0, 14.0]), pred, 2.0)
    np.testing.assert_array_equal(seconds, np.arange(10, 16))
    np.testing.assert_array_equal(values[:, 0], [1, 1, 3, 3, 5, 5])
    # segments that split a second: overlap-weighted mean
    seconds, values = per_second(np.array([0.0, 1.5]), np.array([[0.0], [2.0]]), 1.5)
    np.testing.assert_array_equal(seconds, [0, 1, 2])
    np.testing.assert_allclose(values[:, 0], [0.0, 1.0, 2.0])
    seconds, values = per_second(np.arange(4) * 0.5, np.array([[0.0], [2.0], [4.0], [8.0]]), 0.5)
    np.testing.assert_allclose(values[:, 0], [1.0, 6.0])
