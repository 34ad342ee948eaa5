"""From movie files to per-movie feature tables in the generic table format (:mod:`affect_env.data.tables`).

:func:`extract_movie` decodes one movie (PyAV), runs the chosen modalities' extractors on its frames and its
audio, aligns everything on one time grid (:mod:`affect_env.features.grid`) and, given annotations, adds the
target columns (:mod:`affect_env.features.annotations`). :func:`extract_videos` does that for many files, in
parallel processes, writes ``<movie_id>.parquet`` (or ``.csv``) per movie and the folder's manifest
``features.json``, and skips the movies a previous run already extracted with the same settings.

The manifest records how the tables were made: the :class:`ExtractionSettings`, the columns of each modality,
the library versions and, per movie, its source, length, modalities present or missing, and shot cuts. A
training run copies it (``RUN/features.json``), so ``python -m agents.predict RUN --input movie.mp4`` extracts
new movies exactly as the training data were.
"""
from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from affect_env.data.types import DataError, PathLike
from affect_env.features.acoustic import AudioFeatures, MusicFeatures
from affect_env.features.annotations import Annotation, find_annotation, targets_on_grid
from affect_env.features.deep import (
    DEEP_MODALITIES, ExpressionFeatures, PlacesFeatures, PoseFeatures, VGGishFeatures, check_weights_given,
)
from affect_env.features.grid import grid_rows, grid_times
from affect_env.features.media import VIDEO_SUFFIXES, MediaInfo, audio_chunks, probe, video_frames
from affect_env.features.visual import FaceFeatures, SceneFeatures
from affect_env.files import atomic_path, atomic_write_text
from affect_env.progress import progress_bar

__all__ = [
    "AUDIO_MODALITIES", "MANIFEST", "MODALITIES", "OFFLINE_MODALITIES", "VIDEO_MODALITIES", "ExtractionReport",
    "ExtractionSettings", "extract_movie", "extract_videos", "list_videos", "movie_id", "read_manifest",
]

#: The extraction manifest's file name, in a folder of extracted tables and in a run trained on one.
MANIFEST = "features.json"
MANIFEST_FORMAT = "affect_env.features/1"
#: Modalities that need no downloaded weights (the default).
OFFLINE_MODALITIES = ("scene", "faces", "audio", "music")
#: Modalities computed on the video frames / on the audio (``vggish``, ``places``, ``expression``, ``pose`` need
#: weights: :mod:`affect_env.features.deep`).
VIDEO_MODALITIES = ("scene", "faces", "places", "expression", "pose")
AUDIO_MODALITIES = ("audio", "music", "vggish")
MODALITIES = ("scene", "faces", "audio", "music", "vggish", "places", "expression", "pose")
TABLE_FORMATS = ("parquet", "csv")
#: audio is analysed in chunks of this many seconds, each with this much context on either side
AUDIO_CHUNK_SECONDS = 120.0
AUDIO_CONTEXT_SECONDS = 8.0
#: a file longer than this gets its own progress bar (seconds decoded)
LONG_FILE_SECONDS = 60.0


# ============================================================================================ settings
@dataclass(frozen=True)
class ExtractionSettings:
    """How movies become tables; every field changes the features, so all of them are recorded.

    :param modalities: which extractors run, in column order (:data:`MODALITIES`)
    :param rate: grid rows per second (the table's frame rate; with 1-s segments, ``K = rate``)
    :param width: frames are decoded scaled to this width in pixels (the scene analysis uses half of it)
    :param face_fps: frames per second searched for faces (1: a face is a slow cue at the 1-s segments the agents
        read, and the search is the costliest offline stage)
    :param face_cascade: a Haar cascade XML file (default: OpenCV's frontal-face cascade)
    :param cut_threshold: content score (mean absolute HSV difference, 0-255) that starts a new shot
    :param min_shot_seconds: shortest shot (a cut closer to the previous one is ignored)
    :param cut_window: seconds of the centred window of ``scene_cut_rate``
    :param audio_rate: audio is decoded as mono at this sampling rate (Hz)
    :param key_window: seconds of chroma averaged for the key and mode strength
    :param targets: target columns taken from the annotation files
    :param table_format: ``parquet`` or ``csv``
    :param deep_fps: frames per second given to the ``places`` and ``pose`` networks
    :param weights: ``{deep modality: weights file or "download"}`` (:mod:`affect_env.features.deep`)
    """

    modalities: Tuple[str, ...] = OFFLINE_MODALITIES
    rate: float = 5.0
    width: int = 320
    face_fps: float = 1.0
    face_cascade: Optional[str] = None
    cut_threshold: float = 27.0
    min_shot_seconds: float = 0.5
    cut_window: float = 10.0
    audio_rate: int = 16000
    key_window: float = 5.0
    targets: Tuple[str, ...] = ("valence", "arousal")
    table_format: str = "parquet"
    deep_fps: float = 1.0
    weights: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "targets", tuple(self.targets))
        pairs = self.weights.items() if isinstance(self.weights, dict) else self.weights
        object.__setattr__(self, "weights", tuple(sorted((str(k), str(v)) for k, v in pairs)))
        bad = [k for k, _ in self.weights if k not in DEEP_MODALITIES]
        if bad:
            raise DataError(f"weights for {bad}: only the deep modalities {', '.join(DEEP_MODALITIES)} take weights")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise DataError(f"modalities {unknown or '(none)'}: choose among {', '.join(MODALITIES)}")
        if len(set(self.modalities)) != len(self.modalities):
            raise DataError(f"modalities {list(self.modalities)} repeat a name")
        for name in ("rate", "face_fps", "cut_window", "key_window", "min_shot_seconds", "cut_threshold",
                     "deep_fps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise DataError(f"{name}={value!r}: must be a positive number")
        for name in ("width", "audio_rate"):
            value = getattr(self, name)
            if int(value) != value or value < 16:
                raise DataError(f"{name}={value!r}: must be a whole number >= 16")
        if self.table_format not in TABLE_FORMATS:
            raise DataError(f"table_format={self.table_format!r}: choose one of {list(TABLE_FORMATS)}")
        if not self.targets:
            raise DataError("at least one target column is needed")

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples as lists, ``weights`` as a dict)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["weights"] = dict(self.weights)
        return out

    def weights_of(self, name: str) -> Optional[str]:
        """The weights given for deep modality ``name``, or ``None``."""
        return dict(self.weights).get(name)

    @classmethod
    def from_dict(cls, data: dict, source: PathLike = "settings") -> "ExtractionSettings":
        """Settings from :meth:`to_dict` output (e.g. a manifest's ``settings``); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"{source}: unknown extraction setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def features_differ(self, other: "ExtractionSettings") -> List[str]:
        """``"name: mine != other"`` for each field that changes the features (all but ``targets``)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if k != "targets" and mine[k] != theirs[k]]


# ============================================================================================== input
def movie_id(path: PathLike) -> str:
    """File-system safe movie id of a movie file: its stem, runs of other characters as ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._") or "movie"


def list_videos(inputs: Sequence[PathLike]) -> List[Path]:
    """Movie files of ``inputs``: each file as given (whatever its suffix), and the files of each folder with a
    video suffix (:data:`VIDEO_SUFFIXES`), sorted; two files with the same movie id are an error.

    :raises DataError: a missing path, a folder without videos, no input, or a duplicate movie id
    """
    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no video file in it (suffixes {', '.join(VIDEO_SUFFIXES)})")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path}: not found")
    if not files:
        raise DataError("no movie file given")
    seen: Dict[str, Path] = {}
    for p in files:
        mid = movie_id(p)
        if mid in seen and seen[mid].resolve() != p.resolve():
            raise DataError(f"{p}: same movie id {mid!r} as {seen[mid]}; rename one of them")
        seen[mid] = p
    return list(dict.fromkeys(files))


# ========================================================================================= one movie
def _video_extractors(settings: ExtractionSettings) -> dict:
    out = {}
    for name in settings.modalities:
        if name == "scene":
            out[name] = SceneFeatures(settings.cut_threshold, settings.min_shot_seconds, settings.cut_window)
        elif name == "faces":
            out[name] = FaceFeatures(settings.face_fps, settings.face_cascade)
        elif name == "places":
            out[name] = PlacesFeatures(settings.weights_of("places"), settings.deep_fps)
        elif name == "expression":
            out[name] = ExpressionFeatures(settings.weights_of("expression"), settings.face_fps, settings.face_cascade)
        elif name == "pose":
            out[name] = PoseFeatures(settings.weights_of("pose"), settings.deep_fps)
    return out


def _audio_extractors(settings: ExtractionSettings) -> dict:
    out = {}
    for name in settings.modalities:
        if name == "audio":
            out[name] = AudioFeatures()
        elif name == "music":
            out[name] = MusicFeatures(settings.key_window)
        elif name == "vggish":
            out[name] = VGGishFeatures(settings.weights_of("vggish"))
    return out


def _bar(info: MediaInfo, what: str, show: bool, position: int):
    """A progress bar over the seconds of one long file (a no-op bar for short files or without progress)."""
    long_file = info.duration > LONG_FILE_SECONDS
    return progress_bar(total=round(info.duration, 1), desc=f"{info.path.name} {what}", unit="s", leave=False,
                position=position, disable=not (show and long_file))


def _video_pass(info: MediaInfo, extractors: dict, settings: ExtractionSettings, threads: int,
                timings: dict, progress: bool, position: int) -> float:
    """Feed every frame to the video extractors; return the end time of the video (last frame + one frame)."""
    last, step = 0.0, 1.0 / info.fps if info.fps > 0 else 0.0
    start = time.thread_time()
    spent = dict.fromkeys(extractors, 0.0)
    with _bar(info, "video", progress, position) as bar:
        for t, frame in video_frames(info, settings.width, threads):
            for name, ext in extractors.items():
                t0 = time.thread_time()
                ext.update(t, frame)
                spent[name] += time.thread_time() - t0
            last = max(last, t)
            if round(last, 1) > bar.n:
                bar.update(round(round(last, 1) - bar.n, 1))
    timings.update(spent)
    timings["decode_video"] = time.thread_time() - start - sum(spent.values())
    return last + step


def _audio_pass(info: MediaInfo, extractors: dict, settings: ExtractionSettings, timings: dict,
                progress: bool, position: int) -> float:
    """Feed the audio chunks to the audio extractors; return the end time of the audio."""
    end = 0.0
    rate = int(settings.audio_rate)
    start = time.thread_time()
    spent = dict.fromkeys(extractors, 0.0)
    with _bar(info, "audio", progress, position) as bar:
        for t0, samples, keep_from, keep_to in audio_chunks(info, rate, AUDIO_CHUNK_SECONDS, AUDIO_CONTEXT_SECONDS):
            for name, ext in extractors.items():
                c0 = time.thread_time()
                ext.update(t0, samples, rate, keep_from, keep_to)
                spent[name] += time.thread_time() - c0
            end = t0 + len(samples) / rate
            bar.update(round(max(0.0, min(keep_to, info.duration) - bar.n), 1))
    timings.update(spent)
    timings["decode_audio"] = time.thread_time() - start - sum(spent.values())
    return end


def extract_movie(path: PathLike, settings: ExtractionSettings = ExtractionSettings(),
                  annotation: Optional[Annotation] = None, threads: int = 1, progress: bool = False,
                  position: int = 0) -> Tuple[pd.DataFrame, dict]:
    """Extract one movie's features (and targets) on the grid.

    Audio modalities of a movie without an audio stream are left out of its table and listed under
    ``missing`` (never filled in); the grid spans the time every decoded stream covers.

    :param path: the movie file
    :param settings: what to extract and how
    :param annotation: its annotation files (:func:`~affect_env.features.annotations.find_annotation`), or
        ``None`` for a table without targets
    :param threads: threads this movie may use: with 2 or more, the audio pass runs in a thread beside the video
        pass, and the video decoder gets the rest
    :param progress: progress bars over the seconds of a long file
    :param position: the bars' line (one per parallel process)
    :return: ``(table, entry)``: the table (``time``, the features of each present modality in settings order,
        then the targets) and the movie's manifest entry (``duration``, ``rows``, ``modalities``, ``missing``,
        ``cuts``, ``timings``: CPU seconds per stage, of the thread that ran it, so they do not depend on other
        jobs sharing the cores; decoding done by FFmpeg's own threads (``threads`` > 2) is not counted)
    :raises DataError: the file cannot be decoded, is shorter than one grid row, or the annotation does not
        cover it; one line naming the file
    """
    path = Path(path)
    info = probe(path)
    missing = {}
    if not info.has_audio:
        missing = {m: "no audio stream" for m in settings.modalities if m in AUDIO_MODALITIES}
    timings: dict = {}
    audio_timings: dict = {}
    ends = {}
    video_ext = _video_extractors(settings)
    audio_ext = _audio_extractors(settings) if info.has_audio else {}
    with ThreadPoolExecutor(1) as pool:
        # with threads to spare, the audio pass runs beside the video pass (FFmpeg, OpenCV, openSMILE and NumPy
        # release the GIL); its own timings stay apart
        audio_job = None
        if audio_ext and threads > 1 and video_ext:
            audio_job = pool.submit(_audio_pass, info, audio_ext, settings, audio_timings, progress, position + 1)
        if video_ext:
            ends["video"] = _video_pass(info, video_ext, settings, max(1, threads - 1) if audio_job else threads,
                                        timings, progress, position)
        if audio_job is not None:
            ends["audio"] = audio_job.result()
        elif audio_ext:
            ends["audio"] = _audio_pass(info, audio_ext, settings, audio_timings, progress, position)
    timings.update(audio_timings)
    if not ends:
        raise DataError(f"{path}: no audio stream, and only audio modalities were asked for "
                        f"({', '.join(settings.modalities)})")
    span = min(ends.values())
    n_rows = grid_rows(span, settings.rate)
    if n_rows == 0:
        raise DataError(f"{path}: lasts {span:.3g} s, shorter than one grid row ({1 / settings.rate:g} s)")
    notes = []
    if max(ends.values()) - span > 1.0:
        notes.append(f"streams end at {', '.join(f'{k} {v:.2f} s' for k, v in ends.items())}: the table covers "
                     f"the {span:.2f} s they share")
    table = {"time": grid_times(n_rows, settings.rate)}
    columns: Dict[str, List[str]] = {}
    extractors = {**video_ext, **audio_ext}
    for name in settings.modalities:
        if name in extractors:
            t0 = time.thread_time()
            cols, values = extractors[name].finish(n_rows, settings.rate)
            timings[name] = timings.get(name, 0.0) + time.thread_time() - t0
            bad = ~np.isfinite(values)
            if bad.any():
                raise DataError(f"{path}: modality {name}: {int(bad.sum())} non-finite value(s) in column "
                                f"{cols[int(np.argwhere(bad)[0][1])]!r}")
            columns[name] = list(cols)
            table.update({c: values[:, j].astype(np.float32) for j, c in enumerate(cols)})
    if annotation is not None:
        values = targets_on_grid(annotation, settings.targets, n_rows, settings.rate, path)
        table.update({c: values[:, j].astype(np.float32) for j, c in enumerate(settings.targets)})
    entry = {
        "source": str(path), "file_size": path.stat().st_size, "file_mtime": path.stat().st_mtime,
        "duration": round(n_rows / settings.rate, 6), "rows": n_rows, "fps": info.fps,
        "size": [info.width, info.height], "video_codec": info.video_codec, "audio_codec": info.audio_codec,
        "modalities": [m for m in settings.modalities if m in columns], "missing": missing, "columns": columns,
        "cuts": [round(t, 4) for t in getattr(video_ext.get("scene"), "cuts", [])],
        "annotation": None if annotation is None else [str(p) for p in annotation[1]],
        "notes": notes, "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return pd.DataFrame(table), entry


# ========================================================================================== manifest
def library_versions() -> dict:
    """Installed versions of the libraries the extractors use (``None`` where not installed)."""
    out = {}
    for name in ("av", "opencv-python-headless", "opensmile", "librosa", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_manifest(path: PathLike) -> dict:
    """The extraction manifest ``path`` (a ``features.json`` file, or a folder holding one), checked.

    :raises DataError: missing, unreadable, or not an extraction manifest
    """
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise DataError(f"{file}: no extraction manifest (the tables were not extracted from movies by "
                        f"python -m affect_env.features extract)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: cannot read the extraction manifest: {exc}") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != MANIFEST_FORMAT:
        raise DataError(f"{file}: not an extraction manifest (format {found!r}, expected {MANIFEST_FORMAT!r})")
    data["settings_obj"] = ExtractionSettings.from_dict(data.get("settings", {}), file)
    return data


def _write_manifest(out: Path, settings: ExtractionSettings, movies: dict) -> None:
    columns: Dict[str, List[str]] = {}
    for entry in movies.values():
        for name, cols in entry.get("columns", {}).items():
            columns.setdefault(name, cols)
    data = {"format": MANIFEST_FORMAT, "settings": settings.to_dict(),
            "columns": {m: columns[m] for m in settings.modalities if m in columns},
            "targets": list(settings.targets), "versions": library_versions(),
            "movies": dict(sorted(movies.items()))}
    atomic_write_text(out / MANIFEST, json.dumps(data, indent=1) + "\n")


def _write_table(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False, float_format="%.7g")
        else:
            table.to_parquet(tmp, index=False)


# ======================================================================================= many movies
@dataclass
class ExtractionReport:
    """What :func:`extract_videos` did.

    :param out: the tables' folder
    :param done: movie ids extracted now
    :param skipped: movie ids already extracted with the same settings (a rerun)
    :param failed: ``{file: one-line reason}`` of the movies that could not be extracted
    :param warnings: one line per movie with missing modalities or other notes
    :param wall_s: wall time
    """

    out: Path
    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    wall_s: float = 0.0


def _extract_one(path: str, settings: dict, annotation: Optional[Annotation], out: str, threads: int,
                 progress: bool, position: int) -> Tuple[Optional[dict], Optional[str]]:
    """Worker: extract one movie and write its table; ``(entry, None)`` or ``(None, one-line error)``."""
    with contextlib.suppress(ImportError):
        import cv2
        cv2.setNumThreads(threads)
    try:
        cfg = ExtractionSettings.from_dict(settings)
        table, entry = extract_movie(path, cfg, annotation, threads, progress, position)
        name = f"{movie_id(path)}.{cfg.table_format}"
        _write_table(table, Path(out) / name)
        entry["table"] = name
        return entry, None
    except DataError as exc:
        return None, str(exc)
    except Exception as exc:  # anything else FFmpeg or a library raises: still one line naming the file
        return None, f"{path}: {type(exc).__name__}: {exc}"


def _pool_context():
    """The worker processes' start method: ``forkserver`` where there is one (a clean server process imports this
    module once and forks each worker from it: quick, and safe whatever threads the caller runs), else
    ``spawn``. A plain fork of the caller is not used: a caller that already ran OpenCV, openSMILE or torch
    holds threads whose locks a forked child inherits and can deadlock on."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _is_done(entry: Optional[dict], path: Path, out: Path, annotation: Optional[Annotation]) -> bool:
    if not entry or not (out / entry.get("table", "")).is_file():
        return False
    stat = path.stat()
    wanted = None if annotation is None else [str(p) for p in annotation[1]]
    return (entry.get("source") == str(path) and entry.get("file_size") == stat.st_size
            and entry.get("file_mtime") == stat.st_mtime and entry.get("annotation") == wanted)


def extract_videos(inputs: Sequence[PathLike], out: PathLike, settings: ExtractionSettings = ExtractionSettings(),
                   annotations: Optional[PathLike] = None, jobs: Optional[int] = None, force: bool = False,
                   progress: bool = True, on_failure: Optional[Callable[[str], None]] = None) -> ExtractionReport:
    """Extract every movie of ``inputs`` into ``out`` (one table per movie, plus ``features.json``).

    A movie already in ``out``'s manifest with the same source file (size and modification time), the same
    annotation and the same settings is skipped. A movie that fails is reported (``report.failed``, one line
    naming the file) and the others go on.

    :param inputs: movie files and / or folders of movies (:func:`list_videos`)
    :param out: the tables' folder (created)
    :param settings: what to extract and how
    :param annotations: a folder of annotation files (generic ``STEM.csv`` or LIRIS-ACCEDE
        ``STEM_Valence.txt`` / ``STEM_Arousal.txt``); every movie must have one
    :param jobs: parallel processes (default: one per CPU core, at most one per movie)
    :param force: extract again even what is done, and replace a manifest with other settings
    :param progress: progress bars over files and, for long files, over their seconds
    :param on_failure: called with each failure's line as it happens (e.g. to print it)
    :raises DataError: bad inputs, or ``out`` holds tables extracted with other settings (without ``force``)
    """
    t_start = time.time()
    for name in settings.modalities:
        if name in DEEP_MODALITIES:
            check_weights_given(name, settings.weights_of(name))
    files = list_videos(inputs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    report = ExtractionReport(out)
    movies: dict = {}
    if (out / MANIFEST).is_file() and not force:
        old = read_manifest(out)
        differ = settings.features_differ(old["settings_obj"])
        if differ:
            raise DataError(f"{out / MANIFEST}: the tables there were extracted with other settings "
                            f"({'; '.join(differ)}); use another --out, or --force to extract everything again")
        movies = old.get("movies", {})
    todo = []
    for path in files:
        mid = movie_id(path)
        annotation = None
        if annotations is not None:
            annotation = find_annotation(annotations, path.stem)
            if annotation is None:
                msg = (f"{path}: no annotation for it in {annotations} (expected {path.stem}.csv, or "
                       f"{path.stem}_Valence.txt and {path.stem}_Arousal.txt)")
                report.failed[str(path)] = msg
                if on_failure:
                    on_failure(msg)
                continue
        if not force and _is_done(movies.get(mid), path, out, annotation):
            report.skipped.append(mid)
        else:
            todo.append((path, annotation))
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_jobs = max(1, min(int(jobs) if jobs else cores, len(todo) or 1))
    threads = max(1, cores // n_jobs)
    args = [(str(p), settings.to_dict(), a, str(out), threads, progress, 1 + 2 * (i % n_jobs))
            for i, (p, a) in enumerate(todo)]

    def record(path: str, entry: Optional[dict], error: Optional[str]) -> None:
        mid = movie_id(path)
        if error is not None:
            report.failed[path] = error
            stale = movies.pop(mid, None)
            if stale and (out / stale.get("table", "")).is_file():
                (out / stale["table"]).unlink()
            if on_failure:
                on_failure(error)
        else:
            movies[mid] = entry
            report.done.append(mid)
            if entry["missing"]:
                gone = ", ".join(f"{m} ({why})" for m, why in entry["missing"].items())
                report.warnings.append(f"{path}: modalities missing from its table: {gone}")
            report.warnings += [f"{path}: {n}" for n in entry["notes"]]
        _write_manifest(out, settings, movies)

    with progress_bar(total=len(todo), desc="extract", unit="movie", disable=not progress or not todo) as bar:
        if n_jobs == 1:
            for a in args:
                record(a[0], *_extract_one(*a))
                bar.update()
        else:
            with ProcessPoolExecutor(n_jobs, mp_context=_pool_context()) as pool:
                futures = {pool.submit(_extract_one, *a): a[0] for a in args}
                for future in as_completed(futures):
                    record(futures[future], *future.result())
                    bar.update()
    if not todo and movies:
        _write_manifest(out, settings, movies)
    report.wall_s = time.time() - t_start
    return report
