"""From a movie file to an emotion curve: ``python -m affect_env.features extract``, training on the extracted
tables and ``python -m agents.predict RUN --input movie.mp4``.

Every movie is written here with PyAV from NumPy: a grey luminance ramp, a hard cut at 4 s to a blue scene, a
white square that moves (0-2 s and after the cut) and stands still (2-4 s), and a 440 Hz tone for 5 s, then
silence. The extracted features must follow what was put in; a tiny RMN trained on four such movies must
predict a movie file end to end; every bad input is one line naming its file.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

av = pytest.importorskip("av", reason="the video extra is not installed: pip install 'affect-rmn[video]'")

from affect_env.data.tables import load_tables  # noqa: E402
from affect_env.features import MANIFEST, ExtractionSettings, extract_movie, read_manifest  # noqa: E402
from affect_env.features import extract as extract_module  # noqa: E402
from affect_env.features.__main__ import main as extract_main  # noqa: E402
from affect_env.features.deep import ResNet18, VGGish  # noqa: E402
from agents import predict, train_ddpg  # noqa: E402
from agents.cli import run_cli  # noqa: E402
from agents.rmn.factory import predict_dataset  # noqa: E402
from agents.runs import load_model_file  # noqa: E402
from benchmarks import extraction as extraction_benchmark  # noqa: E402
from benchmarks.extraction import mux_audio  # noqa: E402

FPS, SECONDS, CUT, TONE_END = 25, 8.0, 4.0, 5.0
TINY = {"n_slots": 4, "memory_dim": 8, "net_arch": [32, 32], "predictor_hidden": [16], "batch_size": 32,
        "learning_starts": 100, "timesteps": 300, "encoder": "pooling", "eval_every": 150, "checkpoint_every": 150,
        "device": "cpu", "pretrain_writer_epochs": 0, "seed": 0}


def make_movie(path: Path, seconds: float = SECONDS, audio: bool = True, size=(160, 96), codec: str = "mpeg4",
               brightness: float = 1.0) -> Path:
    """Write the test movie (see the module docstring) with PyAV; ``brightness`` scales the ramp."""
    w, h = size
    container = av.open(str(path), "w")
    video = container.add_stream(codec, rate=FPS)
    video.width, video.height, video.pix_fmt, video.bit_rate = w, h, "yuv420p", 2_000_000
    if audio:
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
    for i in range(int(round(seconds * FPS))):
        t = i / FPS
        level = (40 + 150 * t / seconds) * brightness
        img = np.empty((h, w, 3), np.float32)
        img[:] = level if t < CUT else (0.3 * level, 0.5 * level, 1.2 * level)  # RGB: grey, then blue
        x = (4 * i) % (w - 20) if (t < 2.0 or t >= CUT) else 60
        img[40:60, x:x + 20] = 250
        frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if audio:
        tt = np.arange(int(seconds * 16000)) / 16000
        wave = np.where(tt < TONE_END, 0.5 * np.sin(2 * np.pi * 440 * tt), 0.0).astype(np.float32)
        mux_audio(container, sound, wave[None], 16000, "mono")
    container.close()
    return path


def extract(argv, capsys) -> tuple:
    """``(exit code, stderr lines)`` of ``python -m affect_env.features extract ARGV --no-progress``."""
    code = extract_main(["extract", *[str(a) for a in argv], "--no-progress", "--jobs", "1"])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def annotation(seconds: float, phase: float) -> pd.DataFrame:
    """A generic per-movie annotation: 4 Hz ``time, valence, arousal`` over the whole movie."""
    t = np.arange(0, seconds + 1e-9, 0.25)
    return pd.DataFrame({"time": t, "valence": np.sin(t + phase), "arousal": np.cos(0.5 * t + phase)})


# ------------------------------------------------------------------------------------ what is extracted
@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("one")
    movie = make_movie(root / "ramp.mp4")
    out = root / "tables"
    assert extract_main(["extract", str(movie), "--out", str(out), "--no-progress", "--jobs", "1"]) == 0
    return movie, out, pd.read_parquet(out / "ramp.parquet"), read_manifest(out)


def test_features_follow_the_movie(extracted):
    _, _, table, manifest = extracted
    t = table["time"].to_numpy()
    np.testing.assert_allclose(t, np.arange(40) / 5.0)  # 5 rows per second over the 8 s
    lum = table["scene_luminance"].to_numpy()
    for shot in (t < CUT, t >= CUT):
        assert np.all(np.diff(lum[shot]) > 0)  # the ramp rises inside each shot
    # the cut is found at the right frame (within one), and counted in the row that holds it only
    cuts = manifest["movies"]["ramp"]["cuts"]
    assert len(cuts) == 1 and abs(cuts[0] - CUT) <= 1 / FPS + 1e-6
    assert table["scene_cuts"].sum() == 1 and table.loc[table["scene_cuts"] == 1, "time"].item() == CUT
    motion = table["scene_motion"].to_numpy()
    assert motion[(t >= 0.2) & (t < 2.0)].mean() > 2 * motion[(t >= 2.2) & (t < CUT)].mean()  # square moves / stops
    loud = table["audio_Loudness_sma3"].to_numpy()
    assert loud[(t >= 0.5) & (t < TONE_END - 0.5)].min() > 20 * max(loud[t >= TONE_END + 0.5].max(), 1e-3)
    chroma = table[[c for c in table.columns if c.startswith("music_chroma_")]].to_numpy()
    assert (chroma[(t >= 0.5) & (t < TONE_END - 0.5)].argmax(axis=1) == 9).all()  # 440 Hz is an A
    assert table["faces_count"].max() == 0  # no face was drawn
    assert np.isfinite(table.drop(columns="time").to_numpy()).all()


def test_the_tables_are_generic_tables_and_remember_how_they_were_made(extracted):
    _, out, table, manifest = extracted
    ds = load_tables(out, "train", require_targets=False, manifest=_all_train(out))
    assert ds.frames_per_segment == 5 and ds.movies[0].features.shape == (8, 5, table.shape[1] - 1)
    assert manifest["settings"] == ExtractionSettings().to_dict()
    assert list(manifest["columns"]) == ["scene", "faces", "audio", "music"]
    assert sum(len(c) for c in manifest["columns"].values()) == table.shape[1] - 1
    assert manifest["versions"]["av"] and manifest["movies"]["ramp"]["missing"] == {}


def _all_train(folder: Path) -> Path:
    path = folder.parent / "all_train.json"
    path.write_text(json.dumps({p.stem: "train" for p in folder.glob("*.parquet")}))
    return path


def test_a_rerun_skips_what_is_done_and_other_settings_are_refused(extracted, capsys):
    movie, out, _, _ = extracted
    before = (out / "ramp.parquet").stat().st_mtime_ns
    assert extract_main(["extract", str(movie), "--out", str(out), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 1 and (out / "ramp.parquet").stat().st_mtime_ns == before
    code, err = extract([movie, "--out", out, "--rate", "10"], capsys)
    assert code == 2 and len(err) == 1 and str(out / MANIFEST) in err[0] and "rate: 10.0 != 5.0" in err[0], err


def test_audio_in_chunks_gives_the_features_of_the_whole_signal(extracted, monkeypatch):
    """Long movies are analysed in chunks with context on either side: cut the 8-s movie into 4-s chunks (8 s of
    context, more than any analysis window) and the audio and music features are those of the whole signal."""
    movie, _, table, _ = extracted
    monkeypatch.setattr(extract_module, "AUDIO_CHUNK_SECONDS", 4.0)
    chunked, _ = extract_movie(movie, ExtractionSettings(modalities=("audio", "music")))
    columns = [c for c in chunked.columns if c != "time"]
    np.testing.assert_allclose(chunked[columns].to_numpy(), table[columns].to_numpy(), rtol=1e-4, atol=1e-4)


def make_portrait_movie(path: Path) -> Path:
    """4 s of grey, Grace Hopper's portrait (matplotlib's sample image) in the right half from 2 s."""
    cv2 = pytest.importorskip("cv2")
    portrait_file = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not portrait_file.is_file():
        pytest.skip("matplotlib's sample data are not installed")
    portrait = cv2.cvtColor(cv2.resize(cv2.imread(str(portrait_file)), (154, 180)), cv2.COLOR_BGR2RGB)
    container = av.open(str(path), "w")
    video = container.add_stream("mpeg4", rate=FPS)
    video.width, video.height, video.pix_fmt, video.bit_rate = 320, 180, "yuv420p", 2_000_000
    for i in range(4 * FPS):
        img = np.full((180, 320, 3), 90, np.uint8)
        if i >= 2 * FPS:
            img[:, 160:314] = portrait
        for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    container.close()
    return path


def test_faces_are_counted_sized_and_placed(tmp_path):
    path = make_portrait_movie(tmp_path / "portrait.mp4")
    table, _ = extract_movie(path, ExtractionSettings(modalities=("faces",), face_fps=2))
    before, after = table[table["time"] < 2.0], table[table["time"] >= 2.0]
    assert (before["faces_count"] == 0).all() and (before["faces_area"] == 0).all()
    assert (after["faces_count"] == 1).all() and (after["faces_area"] > 0.05).all()
    assert after["faces_x"].between(0.65, 0.85).all() and after["faces_y"].between(0.2, 0.5).all()


def test_modalities_choose_the_columns(tmp_path):
    movie = make_movie(tmp_path / "m.mp4", seconds=3.0)
    table, entry = extract_movie(movie, ExtractionSettings(modalities=("audio",), rate=2))
    assert [c for c in table.columns if not c.startswith("audio_")] == ["time"] and len(table) == 6
    assert entry["modalities"] == ["audio"] and "scene" not in entry["timings"]


# ------------------------------------------------------------------------------------------- bad input
def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


def _truncated(tmp_path: Path) -> Path:
    good = make_movie(tmp_path / "whole.mp4", seconds=2.0)
    path = tmp_path / "truncated.mp4"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    good.unlink()
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _unsupported(tmp_path: Path) -> Path:
    """An AVI whose video codec tag no FFmpeg decoder knows (MPEG-4 Part 2 with its tag renamed)."""
    good = make_movie(tmp_path / "good.avi", seconds=1.0, audio=False)
    path = tmp_path / "unknown_codec.avi"
    path.write_bytes(good.read_bytes().replace(b"FMP4", b"ZZZ9"))
    good.unlink()
    return path


@pytest.mark.parametrize("make,message", [
    (_corrupt, "cannot open as a movie"), (_truncated, "cannot open as a movie"),
    (_empty, "empty file (0 bytes)"), (_unsupported, "unsupported video codec"),
])
def test_bad_movie_files_are_one_line_naming_the_file(make, message, tmp_path, capsys):
    bad = make(tmp_path)
    code, err = extract([bad, "--out", tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {bad}: ") and message in err[0], err
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_a_bad_file_does_not_stop_the_others(tmp_path, capsys):
    folder = tmp_path / "movies"
    folder.mkdir()
    make_movie(folder / "good.mp4", seconds=2.0)
    _empty(folder)
    code, err = extract([folder, "--out", tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1 and str(folder / "empty.mp4") in err[0]
    assert (tmp_path / "out" / "good.parquet").is_file()


def test_no_audio_stream_leaves_the_audio_modalities_out(tmp_path, capsys):
    movie = make_movie(tmp_path / "silent_film.mp4", seconds=2.0, audio=False)
    code, err = extract([movie, "--out", tmp_path / "out"], capsys)
    assert code == 0 and len(err) == 1, err
    assert err[0] == (f"warning: {movie}: modalities missing from its table: audio (no audio stream), "
                      f"music (no audio stream)")
    table = pd.read_parquet(tmp_path / "out" / "silent_film.parquet")
    assert not [c for c in table.columns if c.startswith(("audio_", "music_"))] and "scene_luminance" in table
    entry = read_manifest(tmp_path / "out")["movies"]["silent_film"]
    assert entry["modalities"] == ["scene", "faces"] and set(entry["missing"]) == {"audio", "music"}


def test_annotations_that_do_not_cover_the_movie_name_the_file(tmp_path, capsys):
    movie = make_movie(tmp_path / "short_ann.mp4", seconds=4.0)
    (tmp_path / "ann").mkdir()
    annotation(2.0, 0.0).to_csv(tmp_path / "ann" / "short_ann.csv", index=False)
    code, err = extract([movie, "--out", tmp_path / "out", "--annotations", tmp_path / "ann"], capsys)
    assert code == 2 and len(err) == 1, err
    assert str(tmp_path / "ann" / "short_ann.csv") in err[0] and str(movie) in err[0]
    assert "annotation times 0-2 s do not cover the movie" in err[0]


# ------------------------------------------------------------------------------- train -> predict
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    """Four annotated movies (two generic CSV, two LIRIS-ACCEDE annotations) -> tables (extracted by two
    processes) -> a tiny RMN run (300 steps, the smallest budget that makes updates)."""
    root = tmp_path_factory.mktemp("roundtrip")
    videos, ann = root / "videos", root / "annotations"
    videos.mkdir()
    ann.mkdir()
    for i, name in enumerate(["A_1", "B_1", "C_1", "D_1"]):
        make_movie(videos / f"{name}.mp4", seconds=6.0, brightness=0.7 + 0.1 * i)
        curve = annotation(6.0, i)
        if i < 2:
            curve.to_csv(ann / f"{name}.csv", index=False)
        else:
            per_second = curve[curve["time"] % 1 == 0]
            for target in ("Valence", "Arousal"):
                lines = [f"{t:g}\t{v:.4f}\t0.1" for t, v in zip(per_second["time"], per_second[target.lower()])]
                (ann / f"{name}_{target}.txt").write_text("Time\tMean\tStd\n" + "\n".join(lines) + "\n")
    tables = root / "tables"
    assert extract_main(["extract", str(videos), "--out", str(tables), "--annotations", str(ann),
                         "--no-progress", "--jobs", "2"]) == 0  # two worker processes
    config = root / "tiny.json"
    config.write_text(json.dumps(TINY))
    run = root / "run"
    assert run_cli(train_ddpg.main, ["--config", str(config), "--dataset", str(tables), "--out", str(run),
                                     "--no-progress"]) == 0
    return videos, tables, run


def test_trained_on_extracted_movies_the_run_keeps_the_extraction_manifest(trained):
    _, tables, run = trained
    kept, made = (json.loads((folder / MANIFEST).read_text()) for folder in (run, tables))
    assert kept["settings"] == made["settings"] and kept["columns"] == made["columns"]
    liris = pd.read_parquet(tables / "C_1.parquet")
    row = liris["time"] == 2.0  # LIRIS per-second means, interpolated at the row centre 2.1 s
    expected = np.interp(2.1, [2, 3], [np.sin(2 + 2), np.sin(3 + 2)])
    assert abs(liris.loc[row, "valence"].item() - expected) < 1e-3


def test_predict_from_a_movie_file(trained, tmp_path, capsys):
    videos, tables, run = trained
    out = tmp_path / "pred"
    code = run_cli(predict.main, [str(run), "--input", str(videos / "D_1.mp4"), "--output", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "D_1.csv")
    assert list(table.columns) == ["time", "valence", "arousal"] and list(table["time"]) == list(range(6))
    assert (out / "mediaeval" / "D_1_Valence-Arousal.txt").read_text().startswith("Time\tValence\tArousal\n")
    assert (out / "figures" / "predictions.png").stat().st_size > 0
    assert (out / "features" / "D_1.parquet").is_file() and (out / "features" / MANIFEST).is_file()
    # the same curve as predicting the training table of that movie: the extraction is the training one
    model = load_model_file(run, "cpu")
    ds = load_tables(tables, "test", manifest=_only(tmp_path, "D_1"))
    np.testing.assert_allclose(table[["valence", "arousal"]].to_numpy(), predict_dataset(model, ds)[0]["prediction"],
                               rtol=1e-5, atol=1e-6)
    # another movie into the same folder: only it is predicted, the first one's features are kept for a rerun
    code = run_cli(predict.main, [str(run), "--input", str(videos / "C_1.mp4"), "--output", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert list(pd.read_csv(out / "index.csv")["movie_id"]) == ["C_1"]
    assert sorted(p.stem for p in (out / "features").glob("*.parquet")) == ["C_1", "D_1"]


def _only(tmp_path: Path, movie: str) -> Path:
    path = tmp_path / "only.json"
    path.write_text(json.dumps({m: ("test" if m == movie else "train") for m in ["A_1", "B_1", "C_1", "D_1"]}))
    return path


def test_predict_refuses_a_movie_without_the_models_modalities(trained, tmp_path, capsys):
    _, _, run = trained
    movie = make_movie(tmp_path / "mute.mp4", seconds=3.0, audio=False)
    code = run_cli(predict.main, [str(run), "--input", str(movie), "--output", str(tmp_path / "o"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {movie}: modalities audio, music missing (audio: no audio stream")


def test_a_model_trained_on_other_features_refuses_movie_files(trained, tmp_path, capsys):
    videos, _, run = trained
    other = tmp_path / "run_on_tables"
    shutil.copytree(run, other)
    (other / MANIFEST).unlink()
    config = json.loads((other / "config.json").read_text())
    config["data"]["dataset"] = "tests/data/ceap360vr_subset"
    (other / "config.json").write_text(json.dumps(config))
    code = run_cli(predict.main, [str(other), "--input", str(videos), "--output", str(tmp_path / "o"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert "trained on the dataset 'tests/data/ceap360vr_subset', not on features extracted from movies" in err[0]


# ------------------------------------------------------------------------------- optional deep extractors
def test_deep_extractors_load_their_weights_and_follow_the_movie(tmp_path, capsys):
    """VGGish and the Places365 ResNet-18 through their real loading code, on random weights saved the way
    their releases are (a plain state dict; a CSAIL checkpoint with ``module.`` keys)."""
    torch.manual_seed(0)
    vggish, places = tmp_path / "vggish.pth", tmp_path / "places.pth.tar"
    torch.save(VGGish().state_dict(), vggish)
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in ResNet18(365).state_dict().items()}}, places)
    movie = make_movie(tmp_path / "deep.mp4")
    code, err = extract([movie, "--out", tmp_path / "out", "--modalities", "vggish,places",
                         "--weights", f"vggish={vggish}", "--weights", f"places={places}"], capsys)
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "out" / "deep.parquet")
    t = table["time"].to_numpy()
    emb = table[[f"vggish_{i}" for i in range(128)]].to_numpy()
    scene = table[[f"places_{i}" for i in range(512)]].to_numpy()
    assert table.shape == (40, 1 + 128 + 512) and np.isfinite(table.to_numpy()).all()
    assert np.abs(emb[t < 4.0].mean(0) - emb[t >= TONE_END + 1.5].mean(0)).max() > 1e-4  # tone vs silence
    assert np.abs(scene[t < CUT].mean(0) - scene[t >= CUT + 1].mean(0)).max() > 1e-4  # grey vs blue shot
    settings = read_manifest(tmp_path / "out")["settings"]
    assert settings["weights"] == {"places": str(places), "vggish": str(vggish)}


def fer_plus_network() -> torch.nn.Module:
    """The FER+ architecture (Barsoum et al. 2016: VGG13 on 64 x 64 grey faces, 8 classes), random weights."""
    layers, channels = [], 1
    for width, convs in ((64, 2), (128, 2), (256, 3), (256, 3)):
        for _ in range(convs):
            layers += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU()]
            channels = width
        layers += [torch.nn.MaxPool2d(2), torch.nn.Dropout(0.25)]
    layers += [torch.nn.Flatten(), torch.nn.Linear(256 * 4 * 4, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
               torch.nn.ReLU(), torch.nn.Linear(1024, 8)]
    return torch.nn.Sequential(*layers).eval()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript ONNX exporter, kept for the test
def test_the_expression_network_reads_the_largest_face(tmp_path, capsys):
    """FER+ as the ONNX model zoo ships it (an ONNX file run by OpenCV), here exported with random weights."""
    pytest.importorskip("onnx", reason="exporting the test network to ONNX needs the onnx package")
    torch.manual_seed(0)
    onnx_file = tmp_path / "fer_plus.onnx"
    torch.onnx.export(fer_plus_network(), (torch.zeros(1, 1, 64, 64),), str(onnx_file), dynamo=False,
                      input_names=["Input3"], output_names=["Plus692_Output_0"])
    movie = make_portrait_movie(tmp_path / "portrait.mp4")
    code, err = extract([movie, "--out", tmp_path / "out", "--modalities", "expression", "--face-fps", "2",
                         "--weights", f"expression={onnx_file}"], capsys)
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "out" / "portrait.parquet")
    probs = table[[c for c in table.columns if c.startswith("expression_") and c != "expression_face"]]
    assert list(probs.columns) == ["expression_neutral", "expression_happiness", "expression_surprise",
                                   "expression_sadness", "expression_anger", "expression_disgust", "expression_fear",
                                   "expression_contempt"]
    face = table["time"] >= 2.0
    assert (table.loc[~face, "expression_face"] == 0).all() and (probs[~face].to_numpy() == 0).all()
    assert (table.loc[face, "expression_face"] == 1).all()
    np.testing.assert_allclose(probs[face].sum(axis=1), 1.0, atol=1e-5)
    code, err = extract([movie, "--out", tmp_path / "o2", "--modalities", "expression", "--weights",
                         f"expression={tmp_path / 'portrait.mp4'}"], capsys)
    assert code == 2 and len(err) == 1 and "not an ONNX expression network" in err[0], err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript ONNX exporter, kept for the test
def test_the_pose_network_gives_each_keypoint_its_heatmap_peak(tmp_path, capsys):
    """OpenPose's contract (368 x 368 image / 255 -> 18 keypoint heatmaps + background + 38 affinity fields at
    1/8 resolution) as an ONNX file with random weights; the peak of each heatmap is its keypoint."""
    pytest.importorskip("onnx", reason="exporting the test network to ONNX needs the onnx package")
    torch.manual_seed(0)
    onnx_file = tmp_path / "pose.onnx"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 57, 8, stride=8), torch.nn.Sigmoid()).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 368, 368),), str(onnx_file), dynamo=False)
    movie = make_movie(tmp_path / "body.mp4", seconds=2.0)
    code, err = extract([movie, "--out", tmp_path / "out", "--modalities", "pose", "--deep-fps", "2",
                         "--weights", f"pose={onnx_file}"], capsys)
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "out" / "body.parquet")
    assert list(table.columns[1:4]) == ["pose_nose_conf", "pose_nose_x", "pose_nose_y"] and table.shape[1] == 55
    conf = table[[c for c in table.columns if c.endswith("_conf")]].to_numpy()
    xy = table[[c for c in table.columns if c.endswith(("_x", "_y"))]].to_numpy()
    assert ((conf > 0) & (conf < 1)).all() and ((xy > 0) & (xy < 1)).all()
    caffe = tmp_path / "pose_iter_440000.caffemodel"
    caffe.write_bytes(b"not a model")
    code, err = extract([movie, "--out", tmp_path / "o2", "--modalities", "pose", "--weights", f"pose={caffe}"], capsys)
    assert code == 2 and len(err) == 1 and "no .prototxt beside this Caffe model" in err[0], err


def test_a_deep_extractor_without_weights_says_so_in_one_line(tmp_path, capsys):
    movie = make_movie(tmp_path / "m.mp4", seconds=1.0)
    code, err = extract([movie, "--out", tmp_path / "out", "--modalities", "scene,vggish"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: vggish: no weights: give --weights vggish=PATH") and "download" in err[0]
    code, err = extract([movie, "--out", tmp_path / "out", "--modalities", "places", "--weights",
                         f"places={tmp_path / 'vggish.pth'}"], capsys)
    assert code == 2 and len(err) == 1 and "places weights file not found" in err[0], err


# ------------------------------------------------------------------------------------------ benchmark
def test_the_extraction_benchmark_reports_every_stage(tmp_path, capsys):
    assert extraction_benchmark.main(["--seconds", "2", "--heights", "360", "--jobs", "1", "--out", str(tmp_path),
                                      "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "extraction.csv")
    assert list(table["what"]) == ["decode video", "decode audio", "scene", "faces", "audio", "music",
                                   "all, 1 process, 1 thread", "all, 1 process, 2 threads", "all, 1 process"]
    assert (table["x_idle_cores"] > 0).all() and (table["movie_s"] > 0).all()
    assert "| 360p | all, 1 process, 1 thread |" in capsys.readouterr().out
