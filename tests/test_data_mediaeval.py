"""Tests of the MediaEval 2018 and continuous LIRIS-ACCEDE readers on fake trees in the real layout.

Every feature vector written here starts with ``[second, movie number]`` so a test can check that frame
``k`` of segment ``t`` is exactly second ``times[t] + k`` of the right movie.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd
import pytest

from affect_env.data import DataError, detect_format, load_dataset
from affect_env.data.mediaeval import (
    is_liris_continuous_root, is_mediaeval_root, liris_continuous_splits, load_liris_continuous, load_mediaeval,
    mediaeval_splits, read_audio_arff, read_fear_annotation,
)

S = 5
SMALL_DIMS = {"cl": 3, "tamura": 2, "fc6": 4}


# ------------------------------------------------------------------------------------------ tree writer
@dataclass
class FakeMovie:
    """One movie of a fake MediaEval tree; the defaults give a clean movie."""

    nn: int
    set_name: str = "DevSet-Part1"
    n_seconds: int = 33                      # visual features: seconds 0 .. n_seconds - 1
    dims: Dict[str, int] = field(default_factory=lambda: dict(SMALL_DIMS))
    audio_dim: int = 4
    audio_start: int = 0
    audio_copies: bool = False               # audio starts at 00001; 00001 and 00002 are copies of 00003
    audio_extra: int = 2                     # audio has this many seconds more than the visual features
    va_rows: Optional[int] = None            # default n_seconds - 1 rows
    va: bool = True
    missing_audio: Sequence[int] = ()
    missing_visual: Dict[str, Sequence[int]] = field(default_factory=dict)
    empty_visual: Dict[str, Sequence[int]] = field(default_factory=dict)
    visual_stop: Dict[str, int] = field(default_factory=dict)   # descriptor -> number of seconds written

    @property
    def movie_id(self) -> str:
        return f"MEDIAEVAL18_{self.nn:02d}"


def vector(sec: int, nn: int, dim: int) -> list:
    return [float(sec), float(nn)] + [0.25 * j for j in range(dim - 2)]


def valence(sec, nn):
    return np.asarray(sec) / 1000 + nn / 100


def arousal(sec, nn):
    return -np.asarray(sec) / 1000


def arff_text(values: Sequence[float]) -> str:
    attrs = "\n".join(f"@attribute emobase_feat_{i} numeric" for i in range(len(values)))
    row = ",".join(repr(float(v)) for v in values)
    return (f"@relation 'openSMILE_features'\n\n@attribute name string\n{attrs}\n@attribute class numeric\n\n"
            f"@data\n\n'noname',{row},?\n")


def set_dir(root: Path, set_name: str, kind: str) -> Path:
    return root / f"MEDIAEVAL18-{set_name}-{kind}"


def va_path(root: Path, m: FakeMovie) -> Path:
    return set_dir(root, m.set_name, "Valence_Arousal-annotations") / "annotations" / \
        f"{m.movie_id}_Valence-Arousal.txt"


def visual_path(root: Path, m: FakeMovie, desc: str, sec: int) -> Path:
    return set_dir(root, m.set_name, "Visual_features") / "visual_features" / m.movie_id / desc / \
        f"{m.movie_id}-{sec:05d}_{desc}.txt"


def audio_path(root: Path, m: FakeMovie, sec: int) -> Path:
    return set_dir(root, m.set_name, "Audio_features") / "audio_features" / m.movie_id / \
        f"{m.movie_id}_{sec:05d}.csv"


def write_movie(root: Path, m: FakeMovie) -> None:
    for desc, dim in m.dims.items():
        for sec in range(m.visual_stop.get(desc, m.n_seconds)):
            if sec in m.missing_visual.get(desc, ()):
                continue
            p = visual_path(root, m, desc, sec)
            p.parent.mkdir(parents=True, exist_ok=True)
            empty = sec in m.empty_visual.get(desc, ())
            p.write_text("" if empty else ",".join(repr(v) for v in vector(sec, m.nn, dim)) + "\n")
    first = 1 if m.audio_copies else m.audio_start
    for sec in range(first, m.n_seconds + m.audio_extra):
        if sec in m.missing_audio:
            continue
        p = audio_path(root, m, sec)
        p.parent.mkdir(parents=True, exist_ok=True)
        source = 3 if m.audio_copies and sec < 3 else sec
        p.write_text(arff_text(vector(source, m.nn, m.audio_dim)))
    if m.va:
        p = va_path(root, m)
        p.parent.mkdir(parents=True, exist_ok=True)
        secs = np.arange(m.n_seconds - 1 if m.va_rows is None else m.va_rows)
        rows = [f"{s}\t{valence(s, m.nn):.6f}\t{arousal(s, m.nn):.6f}" for s in secs]
        p.write_text("Time\tValence\tArousal\n" + "\n".join(rows) + "\n")


def write_tree(root: Path, movies: Sequence[FakeMovie]) -> Path:
    for m in movies:
        write_movie(root, m)
    return root


def write_fear(root: Path, m: FakeMovie, text: str) -> Path:
    p = set_dir(root, m.set_name, "Fear-annotations") / "annotations" / f"{m.movie_id}_Fear.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


GLITCHY = [
    FakeMovie(0),
    FakeMovie(1, audio_copies=True),                                   # audio starts at 00001 (copies)
    FakeMovie(2, missing_visual={"cl": (10, 11, 12)}),                 # a 3-s gap: more than the policy fills
    FakeMovie(6, missing_audio=(13,)),                                 # like movie 06's missing audio second
    FakeMovie(18, "DevSet-Part2", n_seconds=40, visual_stop={"fc6": 25}),   # fc6 stops early
    FakeMovie(27, "DevSet-Part2", empty_visual={"cl": (6,)}),          # MEDIAEVAL18_27-00006_cl.txt is empty
    FakeMovie(44, "DevSet-Part3"),
    FakeMovie(46, "DevSet-Part3", n_seconds=40, va_rows=6),            # annotations far shorter than features
    FakeMovie(54, "TestSet", va=False),
    FakeMovie(55, "TestSet", va=False),
]
BY_NN = {m.nn: m for m in GLITCHY}


@pytest.fixture(scope="module")
def mediaeval_root(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("mediaeval"), GLITCHY)


@pytest.fixture(scope="module")
def dev_all(mediaeval_root) -> Dict[str, object]:
    """Every DevSet movie loaded (val_movies=[] puts them all in train)."""
    ds = load_mediaeval(mediaeval_root, "train", val_movies=[], progress=False)
    return {"ds": ds, "movies": {m.movie_id: m for m in ds}}


def offsets(ds) -> Dict[str, int]:
    out, col = {}, 0
    for mod in ds.modalities:
        out[mod.name] = col
        col += mod.dim
    return out


def assert_aligned(ds, movie, skip_seconds: Dict[str, Sequence[int]] = {}) -> None:
    """Frame k of segment t of every modality is second times[t] + k of this movie."""
    nn = int(movie.movie_id.rsplit("_", 1)[1])
    secs = movie.times[:, None] + np.arange(ds.frames_per_segment)[None, :]
    for name, col in offsets(ds).items():
        got = movie.features[:, :, col].astype(np.float64)
        keep = ~np.isin(secs, skip_seconds.get(name, ()))
        np.testing.assert_array_equal(got[keep], secs[keep], err_msg=f"{movie.movie_id} {name}")
        assert np.all(movie.features[:, :, col + 1] == nn), f"{movie.movie_id} {name}: frames of another movie"


def notes_about(notes: Sequence[str], *words: str) -> list:
    return [n for n in notes if all(w in n for w in words)]


# --------------------------------------------------------------------------------------------- layout
def test_detects_roots_and_dispatches(mediaeval_root, tmp_path):
    assert is_mediaeval_root(mediaeval_root)
    assert not is_mediaeval_root(tmp_path)
    assert detect_format(str(mediaeval_root)) == "mediaeval"
    ds = load_dataset(str(mediaeval_root), split="val", segment_seconds=3, progress=False)
    assert ds.name == "mediaeval2018" and ds.split == "val" and ds.frames_per_segment == 3


def test_modalities_dims_and_segment_shapes(dev_all):
    ds = dev_all["ds"]
    assert [(m.name, m.dim) for m in ds.modalities] == [("cl", 3), ("tamura", 2), ("fc6", 4), ("audio", 4)]
    assert ds.target_names == ("valence", "arousal")
    movie = dev_all["movies"]["MEDIAEVAL18_00"]
    # visual 0-32, audio 0-34, V/A 0-31: common 0-31 -> six whole 5-s segments, trailing 30-31 dropped
    assert movie.features.shape == (6, S, 13) and movie.features.dtype == np.float32
    np.testing.assert_array_equal(movie.times, np.arange(6) * S)
    assert notes_about(movie.notes, "MEDIAEVAL18_00", "trailing partial segment", "30-31")


def test_every_frame_is_its_second(dev_all):
    ds = dev_all["ds"]
    for movie in ds:
        skip = {"cl": (6,)} if movie.movie_id == "MEDIAEVAL18_27" else \
            {"audio": (13,)} if movie.movie_id == "MEDIAEVAL18_06" else {}
        assert_aligned(ds, movie, skip)


def test_target_is_mean_of_the_seconds_in_the_segment(dev_all):
    movie = dev_all["movies"]["MEDIAEVAL18_44"]
    secs = movie.times[:, None] + np.arange(S)
    np.testing.assert_allclose(movie.targets[:, 0], valence(secs, 44).mean(1), atol=1e-6)
    np.testing.assert_allclose(movie.targets[:, 1], arousal(secs, 44).mean(1), atol=1e-6)


def test_audio_starting_at_00001_with_copies_is_aligned_by_file_name(mediaeval_root):
    ds = load_mediaeval(mediaeval_root, "train", val_movies=[], segment_seconds=1, visual_features=["cl"],
                        progress=False)
    movie = next(m for m in ds if m.movie_id == "MEDIAEVAL18_01")
    audio = offsets(ds)["audio"]
    assert movie.times[0] == 1  # no audio for second 0
    # seconds 1 and 2 hold the copies of second 3 (kept where they are); from 3 on each frame is its second
    np.testing.assert_array_equal(movie.features[:4, 0, audio], [3, 3, 3, 4])
    np.testing.assert_array_equal(movie.features[:4, 0, 0], [1, 2, 3, 4])
    assert notes_about(movie.notes, "MEDIAEVAL18_01", "copies", "MEDIAEVAL18_01_00003.csv")


def test_isolated_missing_audio_second_is_carried_forward_and_reported(dev_all):
    ds, movie = dev_all["ds"], dev_all["movies"]["MEDIAEVAL18_06"]
    audio = offsets(ds)["audio"]
    t, k = divmod(13, S)
    assert movie.features[t, k, audio] == 12          # second 13 holds second 12's audio
    assert movie.features[t, k, 0] == 13              # the visual frame is untouched
    assert notes_about(movie.notes, "MEDIAEVAL18_06", "audio", "MEDIAEVAL18_06_00013.csv", "carrying")
    assert notes_about(ds.notes, "MEDIAEVAL18_06_00013.csv")


def test_missing_second_is_logged_as_a_warning(mediaeval_root, caplog):
    with caplog.at_level(logging.WARNING, logger="affect_env.data"):
        load_mediaeval(mediaeval_root, "train", val_movies=[], visual_features=["tamura"], progress=False)
    assert any("MEDIAEVAL18_06_00013.csv" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_empty_descriptor_file_is_a_missing_second(dev_all):
    movie = dev_all["movies"]["MEDIAEVAL18_27"]
    t, k = divmod(6, S)
    assert movie.features[t, k, 0] == 5  # cl of second 6 carried from second 5
    assert notes_about(movie.notes, "MEDIAEVAL18_27", "MEDIAEVAL18_27-00006_cl.txt", "empty")


def test_long_gap_skips_the_movie_unless_the_policy_allows_it(mediaeval_root, dev_all):
    assert "MEDIAEVAL18_02" not in dev_all["movies"]
    assert notes_about(dev_all["ds"].notes, "MEDIAEVAL18_02", "skipped", "MEDIAEVAL18_02-00010_cl.txt")
    ds = load_mediaeval(mediaeval_root, "train", val_movies=[], max_gap=3, progress=False)
    movie = next(m for m in ds if m.movie_id == "MEDIAEVAL18_02")
    assert movie.features[2, 2, 0] == 9  # second 12 holds second 9's cl (carried through the gap)


def test_descriptor_stopping_early_cuts_the_movie(dev_all):
    movie = dev_all["movies"]["MEDIAEVAL18_18"]
    assert movie.n_segments == 5  # fc6 covers seconds 0-24 only
    assert notes_about(movie.notes, "MEDIAEVAL18_18", "fc6 ends at second 24 (MEDIAEVAL18_18-00024_fc6.txt)", "cut")


def test_short_annotations_skip_the_movie_or_cut_it(mediaeval_root, dev_all):
    assert "MEDIAEVAL18_46" not in dev_all["movies"]
    assert notes_about(dev_all["ds"].notes, "MEDIAEVAL18_46", "skipped", "MEDIAEVAL18_46_Valence-Arousal.txt",
                       "min_overlap")
    ds = load_mediaeval(mediaeval_root, "val", val_movies=[46], min_overlap=0.0, progress=False)
    (movie,) = ds.movies
    assert movie.n_segments == 1  # 6 annotation rows: seconds 0-5, one whole segment
    assert notes_about(movie.notes, "MEDIAEVAL18_46_Valence-Arousal.txt ends at second 5")


# --------------------------------------------------------------------------------------------- splits
def test_splits_are_disjoint_deterministic_and_cover_the_dev_set(mediaeval_root):
    splits = mediaeval_splits(mediaeval_root, val_fraction=0.3)
    dev = {f"MEDIAEVAL18_{m.nn:02d}" for m in GLITCHY if m.set_name != "TestSet"}
    assert set(splits["train"]) | set(splits["val"]) == dev
    assert not set(splits["train"]) & set(splits["val"])
    assert splits["test"] == ["MEDIAEVAL18_54", "MEDIAEVAL18_55"]
    # 8 dev movies, round(0.3 * 8) = 2 at sorted positions floor(0.5 * 4) = 2 and floor(1.5 * 4) = 6
    assert splits["val"] == ["MEDIAEVAL18_02", "MEDIAEVAL18_44"]
    assert mediaeval_splits(mediaeval_root, val_fraction=0.3) == splits
    explicit = mediaeval_splits(mediaeval_root, val_movies=[6, "MEDIAEVAL18_27"])
    assert explicit["val"] == ["MEDIAEVAL18_06", "MEDIAEVAL18_27"]
    with pytest.raises(DataError, match="MEDIAEVAL18_54"):
        mediaeval_splits(mediaeval_root, val_movies=["54"])


def test_loaded_train_and_val_do_not_share_movies(mediaeval_root):
    train = load_mediaeval(mediaeval_root, "train", visual_features=["tamura"], progress=False)
    val = load_mediaeval(mediaeval_root, "val", visual_features=["tamura"], progress=False)
    assert {m.movie_id for m in val} == {"MEDIAEVAL18_18"}
    assert not {m.movie_id for m in train} & {m.movie_id for m in val}
    assert train.modalities == val.modalities


def test_test_split_without_annotations(mediaeval_root):
    with pytest.raises(DataError, match="require_targets=False"):
        load_mediaeval(mediaeval_root, "test", progress=False)
    ds = load_mediaeval(mediaeval_root, "test", require_targets=False, progress=False)
    assert [m.movie_id for m in ds] == ["MEDIAEVAL18_54", "MEDIAEVAL18_55"]
    assert all(np.all(m.targets == 0) for m in ds)
    assert notes_about(ds.notes, "MEDIAEVAL18_54", "targets are zeros")
    assert_aligned(ds, ds.movies[0])


def test_descriptor_subset_and_no_audio(mediaeval_root):
    ds = load_mediaeval(mediaeval_root, "val", visual_features=("fc6", "cl"), audio=False, progress=False)
    assert [m.name for m in ds.modalities] == ["fc6", "cl"]
    assert ds.feature_dim == 7
    assert_aligned(ds, ds.movies[0])
    with pytest.raises(DataError, match="lbp"):
        load_mediaeval(mediaeval_root, "val", visual_features=["lbp"], progress=False)


# --------------------------------------------------------------------------------------------- errors
@pytest.fixture
def one_movie(tmp_path) -> FakeMovie:
    m = FakeMovie(3, n_seconds=12)
    write_tree(tmp_path, [m])
    return m


def load_one(root: Path, **kw):
    return load_mediaeval(root, "val", val_movies=[3], progress=False, **kw)


def rewrite_va(root: Path, m: FakeMovie, line_no: int, new_line: str) -> Path:
    p = va_path(root, m)
    lines = p.read_text().splitlines()
    lines[line_no - 1] = new_line
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("line_no, new_line, pattern", [
    (4, "2\t0.1\tabc", r"line 4, column 'Arousal': non-numeric value 'abc'"),
    (1, "Second\tValence\tArousal", r"line 1: header"),
    (6, "4\t0.1", r"line 6: 2 columns, expected 3"),
    (3, "1\tnan\t0.2", r"line 3, column 'Valence'.*not finite"),
])
def test_bad_annotation_file_names_file_row_and_column(tmp_path, one_movie, line_no, new_line, pattern):
    p = rewrite_va(tmp_path, one_movie, line_no, new_line)
    with pytest.raises(DataError, match=pattern) as info:
        load_one(tmp_path)
    assert str(p) in str(info.value)


def test_impute_ffill_carries_nan_forward(tmp_path, one_movie):
    rewrite_va(tmp_path, one_movie, 4, "2\tnan\t-0.002")  # line 4 = second 2
    ds = load_one(tmp_path, impute="ffill", segment_seconds=1)
    np.testing.assert_allclose(ds.movies[0].targets[2, 0], valence(1, 3), atol=1e-6)
    assert notes_about(ds.notes, "MEDIAEVAL18_03", "imputed")


def test_bad_visual_value_names_file_and_column(tmp_path, one_movie):
    p = visual_path(tmp_path, one_movie, "tamura", 7)
    p.write_text("7.0,oops\n")
    with pytest.raises(DataError, match=r"MEDIAEVAL18_03-00007_tamura\.txt: column 2: non-numeric value 'oops'"):
        load_one(tmp_path)


def test_descriptor_dim_disagreement_names_the_file(tmp_path, one_movie):
    visual_path(tmp_path, one_movie, "cl", 9).write_text("9.0,3.0,1.0,2.0\n")
    with pytest.raises(DataError, match=r"MEDIAEVAL18_03-00009_cl\.txt: 4 values, but cl has 3"):
        load_one(tmp_path)


def test_bad_audio_value_names_file_column_and_attribute(tmp_path, one_movie):
    p = audio_path(tmp_path, one_movie, 5)
    p.write_text(p.read_text().replace("'noname',5.0,3.0,", "'noname',5.0,x3,"))
    with pytest.raises(DataError, match=r"MEDIAEVAL18_03_00005\.csv: '@data' row, column 3 \(attribute "
                                        r"emobase_feat_1\): non-numeric value 'x3'"):
        load_one(tmp_path)


# ------------------------------------------------------------------------------------------ real dims
def test_real_dimensions_and_arff_audio(tmp_path):
    m = FakeMovie(7, n_seconds=11, dims={"cl": 33, "fc6": 4096}, audio_dim=1582, audio_extra=0)
    write_tree(tmp_path, [m])
    values = read_audio_arff(audio_path(tmp_path, m, 4))
    assert values.shape == (1582,) and values[0] == 4 and values[1] == 7
    ds = load_mediaeval(tmp_path, "val", val_movies=[7], progress=False)
    assert [(x.name, x.dim) for x in ds.modalities] == [("cl", 33), ("fc6", 4096), ("audio", 1582)]
    (movie,) = ds.movies
    assert movie.features.shape == (2, S, 33 + 4096 + 1582)
    assert_aligned(ds, movie)
    np.testing.assert_array_equal(movie.features[1, 2, 2:33], vector(7, 7, 33)[2:])


# ----------------------------------------------------------------------------------------------- fear
FEAR_FORMATS = {
    "per_second_header": ("Time\tFear\n" + "\n".join(f"{s}\t{int(5 <= s < 8)}" for s in range(20)), "per_second"),
    "per_second_bare": ("\n".join(str(int(5 <= s < 8)) for s in range(20)), "per_second"),
    "intervals_header": ("Start\tEnd\n5\t8\n", "intervals"),
    "intervals_id": ("MEDIAEVAL18_08 5 8\n", "intervals"),
}


@pytest.mark.parametrize("name", sorted(FEAR_FORMATS))
def test_fear_target_in_both_formats(tmp_path, name):
    text, kind = FEAR_FORMATS[name]
    m = FakeMovie(8, n_seconds=21)
    write_tree(tmp_path, [m])
    path = write_fear(tmp_path, m, text)
    assert read_fear_annotation(path)[0] == kind
    ds = load_mediaeval(tmp_path, "val", val_movies=[8], targets=("valence", "fear"), progress=False)
    assert ds.target_names == ("valence", "fear")
    # fear seconds 5, 6, 7: 3/5 of segment 1, nothing elsewhere
    np.testing.assert_allclose(ds.movies[0].targets[:, 1], [0, 0.6, 0, 0])
    label = "per-second 0/1 column" if kind == "per_second" else "start/end intervals"
    assert notes_about(ds.notes, "fear annotation format found", label)
    assert notes_about(ds.movies[0].notes, "MEDIAEVAL18_08", path.name)


def test_fear_requested_but_missing_skips_movie(tmp_path):
    movies = [FakeMovie(8, n_seconds=21), FakeMovie(9, n_seconds=21)]
    write_tree(tmp_path, movies)
    write_fear(tmp_path, movies[0], "Start\tEnd\n1\t2\n")
    ds = load_mediaeval(tmp_path, "train", val_movies=[], targets=("fear",), progress=False)
    assert [m.movie_id for m in ds] == ["MEDIAEVAL18_08"]
    assert notes_about(ds.notes, "MEDIAEVAL18_09", "skipped", "fear")


# --------------------------------------------------------------------------------------- LIRIS-ACCEDE
LIRIS_TITLES = ["After_The_Rain", "Big Buck Bunny", "Chatter", "Damaged_Kung_Fu", "Elephants_Dream", "Full_Service"]


def write_liris(root: Path, n_seconds: int = 17, parquet_title: str = "Chatter") -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "features").mkdir()
    for i, title in enumerate(LIRIS_TITLES):
        secs = np.arange(n_seconds)
        for name, sign in (("Valence", 1), ("Arousal", -1)):
            rows = "\n".join(f"{s}\t{sign * (s / 100 + i):.4f}\t0.1" for s in secs)
            (root / "annotations" / f"{title}_{name}.txt").write_text("Time\tMean\tStd\n" + rows + "\n")
        t = np.arange(0, n_seconds + 1, 0.5)  # 2 rows per second, one second longer than the annotations
        df = pd.DataFrame({"time": t, "sec": np.floor(t), "movie": float(i), "half": t % 1})
        if title == parquet_title:
            df.to_parquet(root / "features" / f"{title}.parquet")
        else:
            df.to_csv(root / "features" / f"{title}.csv", index=False)
    return root


def test_liris_continuous_reads_and_aligns_per_second(tmp_path):
    root = write_liris(tmp_path)
    assert is_liris_continuous_root(root) and detect_format(str(root)) == "liris_continuous"
    splits = liris_continuous_splits(root)
    assert sorted(sum(splits.values(), [])) == sorted(LIRIS_TITLES)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [4, 1, 1]
    all_movies = []
    for split in ("train", "val", "test"):
        ds = load_liris_continuous(root, split, progress=False)
        assert [(m.name, m.dim) for m in ds.modalities] == [("features", 3)]
        all_movies += ds.movies
    assert len(all_movies) == 6 and "Big_Buck_Bunny" in {m.movie_id for m in all_movies}
    movie = all_movies[0]
    i = LIRIS_TITLES.index(movie.movie_id.replace("_", " ") if movie.movie_id == "Big_Buck_Bunny"
                           else movie.movie_id)
    assert movie.n_segments == 3  # 17 annotated seconds -> 3 whole segments
    secs = movie.times[:, None] + np.arange(S)
    np.testing.assert_array_equal(movie.features[:, :, 0], secs)       # rows averaged per floor(time)
    np.testing.assert_array_equal(movie.features[:, :, 1], i)
    np.testing.assert_allclose(movie.features[:, :, 2], 0.25)           # mean of 0.0 and 0.5
    np.testing.assert_allclose(movie.targets[:, 0], (secs / 100 + i).mean(1), atol=1e-4)


def test_liris_manifest_and_bad_feature_value(tmp_path):
    root = write_liris(tmp_path)
    manifest = tmp_path / "splits.json"
    manifest.write_text(json.dumps({"Chatter": "test", "Full_Service": "val", "After_The_Rain": "train"}))
    ds = load_liris_continuous(root, "test", manifest=manifest, progress=False)
    assert [m.movie_id for m in ds] == ["Chatter"]
    csv = root / "features" / "Full_Service.csv"
    df = pd.read_csv(csv)
    df["movie"] = df["movie"].astype(object)
    df.loc[4, "movie"] = "bad"
    df.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"Full_Service\.csv: row 5 \(line 6\), column 'movie': non-numeric"):
        load_liris_continuous(root, "val", manifest=manifest, progress=False)


def test_liris_header_only_feature_table_skips_the_film(tmp_path):
    """The shared table reader keeps LIRIS's rule: a feature table with a header and no rows is a film without
    data (skipped, noted), not an error as it is for the generic tables."""
    root = write_liris(tmp_path)
    (root / "features" / "Elephants_Dream.csv").write_text("time,sec,movie,half\n")
    split = next(s for s, titles in liris_continuous_splits(root).items() if "Elephants_Dream" in titles)
    ds = load_liris_continuous(root, split, progress=False)
    assert "Elephants_Dream" not in {m.movie_id for m in ds}
    assert notes_about(ds.notes, "Elephants_Dream", "skipped", "no data")


def test_liris_nan_feature_is_an_error_unless_imputed(tmp_path):
    root = write_liris(tmp_path)
    csv = root / "features" / "Full_Service.csv"
    df = pd.read_csv(csv)
    df.loc[3, "movie"] = np.nan  # second 1 (two rows per second)
    df.to_csv(csv, index=False)
    split = next(s for s, titles in liris_continuous_splits(root).items() if "Full_Service" in titles)
    with pytest.raises(DataError, match=r"Full_Service\.csv: row 4 \(line 5\), column 'movie'.*not finite"):
        load_liris_continuous(root, split, progress=False)
    ds = load_liris_continuous(root, split, impute="ffill", segment_seconds=1, progress=False)
    movie = next(m for m in ds if m.movie_id == "Full_Service")
    i = LIRIS_TITLES.index("Full_Service")
    # rows are averaged per second first, so second 1 is NaN; ffill carries second 0 into it
    np.testing.assert_array_equal(movie.features[:3, 0, 1], [i, i, i])
    np.testing.assert_array_equal(movie.features[:3, 0, 0], [0, 1, 2])
    assert notes_about(ds.notes, "Full_Service: features: 1 non-finite value(s) imputed (ffill)")
