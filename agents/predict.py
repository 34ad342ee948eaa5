"""Predict valence / arousal of new movies with a trained RMN model, streaming along each whole movie.

    python -m agents.predict MODEL --input PATH --output DIR [--format auto|tables|mediaeval|video]
        [--split all|train|val|test] [--segment-seconds S] [--targets valence,arousal] [--device auto]

``MODEL`` is a run directory or a ``model.zip``: the RMN policy carries the segment encoder with its
normalisation statistics, so raw features -> embeddings -> memory writes -> predictions all come from
the zip. The run's ``config.json`` (next to the zip, or one level up for ``checkpoint/model.zip`` or
``best/<score>.zip``) gives the defaults: target names, segment length and the reader options of the training data.

Writes ``DIR/<movie_id>.csv`` (per-second ``time`` and one column per target), the MediaEval 2018 style
``DIR/mediaeval/<movie_id>_Valence-Arousal.txt`` (when the targets include valence and arousal),
``DIR/index.csv`` (one row per movie), ``DIR/notes.txt`` (the readers' notes) and
``DIR/figures/predictions.png``. See ``docs/predict.md``.

``PATH`` may also be a movie file or a folder of movies (``--format video``, detected from the suffixes): they
are first extracted into ``DIR/features/`` with the settings the model's training tables were extracted with
(the run's ``features.json``, see :mod:`affect_env.features`), then predicted as tables.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from affect_env.data import SPLITS, DataError, Movie, MovieDataset, detect_format, load_dataset
from affect_env.data.mediaeval import load_mediaeval, mediaeval_splits
from affect_env.data.readers import TABLE_SUFFIXES
from affect_env.data.tables import list_table_files, load_tables
from affect_env.features import MANIFEST, VIDEO_SUFFIXES, extract_videos, list_videos, read_manifest
from affect_env.features import movie_id as video_movie_id
from affect_env.files import atomic_path, atomic_write_text
from affect_env.progress import progress_bar
from agents.cli import run_cli
from agents.plots import plt
from agents.rollout import rollout
from agents.runs import load_model_file
from agents.runs.evaluation import load_config, run_directory

__all__ = ["FORMATS", "SPLIT_CHOICES", "check_feature_dim", "extract_for_model", "is_video_input", "iter_datasets",
           "load_run", "mediaeval_text", "per_second", "per_second_table", "predict_movie", "predict_movies",
           "training_extraction"]

PathLike = Union[str, Path]
FORMATS = ("auto", "tables", "mediaeval", "video")
SPLIT_CHOICES = ("all", "train", "val", "test")
#: reader options of the training run (``config.json``'s ``dataset_options``) reused at prediction time:
#: how to read a file always; how to split the directory only for ``--split train|val|test``
READ_OPTIONS = {
    "tables": ("time_column", "feature_columns", "modalities", "frames_per_segment", "impute"),
    "mediaeval": ("visual_features", "audio", "impute", "max_gap", "max_missing", "min_overlap"),
}
SPLIT_OPTIONS = {
    "tables": ("manifest", "split_fractions", "group_pattern"),
    "mediaeval": ("val_fraction", "val_movies"),
}
MEDIAEVAL_DIR = "mediaeval"
#: where the features of movie files given as input are extracted, inside the output folder
FEATURES_DIR = "features"
MEDIAEVAL_HEADER = "Time\tValence\tArousal"
_EPS = 1e-9


# ------------------------------------------------------------------------------------------------ model
def load_run(model_path: PathLike, device: str = "auto") -> tuple:
    """``(model, config or None)``: the RMN model and its run's :class:`~agents.config.TrainConfig`.

    :param model_path: a run directory or a ``model.zip``
    :param device: ``auto``, ``cpu`` or ``cuda``
    :raises ValueError: no model there, an unreadable model, or a model without a segment encoder
    """
    path = Path(model_path)
    model = load_model_file(path, device)
    if getattr(model.policy, "encoder", None) is None:
        raise ValueError(f"{path}: the model carries no segment encoder, so it cannot read raw features")
    return model, load_config(path)


def _target_names(model, cfg, targets: Optional[Sequence[str]], model_path: PathLike) -> Tuple[str, ...]:
    """``--targets``, else the run's, else ``valence, arousal`` for a two-target model; checked against it."""
    n = int(model.policy.n_targets)
    if targets is not None:
        names = tuple(targets)
    elif cfg is not None:
        names = tuple(cfg.data.targets)
    elif n == 2:
        names = ("valence", "arousal")
    else:
        raise ValueError(f"{model_path}: no config.json next to the model and it predicts {n} target(s): "
                         f"name them with --targets")
    if len(names) != n:
        raise ValueError(f"{model_path}: the model predicts {n} target(s), but the targets are {list(names)}")
    return names


def check_feature_dim(dataset: MovieDataset, model, source: PathLike, model_path: PathLike = "the model") -> None:
    """Raise one :class:`DataError` naming the input and both dimensions when they differ.

    :param dataset: the loaded input
    :param model: an RMN model whose policy carries the segment encoder
    :param source: the input, for the message
    :param model_path: the model, for the message
    """
    expected = int(model.policy.encoder.feature_dim)
    got = int(dataset.feature_dim)
    if got != expected:
        layout = ", ".join(f"{m.name} {m.dim}" for m in dataset.modalities)
        columns = next((n for n in dataset.notes if str(n).startswith("features (")), None)
        raise DataError(f"{source}: the input has {got} feature(s) per frame ({layout}) but the model's encoder "
                        f"expects {expected} ({model_path}); give the features the model was trained on"
                        + (f"; input {columns}" if columns else ""))


# ------------------------------------------------------------------------------------------------ input
def _options(cfg, kind: str, split: str) -> dict:
    """The training run's reader options that apply to ``kind`` (split rules only for a named split)."""
    if cfg is None:
        return {}
    if kind == "synthetic":
        return dict(cfg.data.dataset_options) if cfg.data.dataset == "synthetic" else {}
    keys = READ_OPTIONS.get(kind, ()) + (SPLIT_OPTIONS.get(kind, ()) if split != "all" else ())
    return {k: v for k, v in cfg.data.dataset_options.items() if k in keys}


def iter_datasets(source: PathLike, kind: str, split: str, targets: Sequence[str],
                  segment_seconds: Optional[float], options: Optional[dict] = None,
                  progress: bool = True, only: Optional[Sequence[str]] = None) -> Iterator[Tuple[str, MovieDataset]]:
    """``(split label, MovieDataset)`` of the input, one split at a time, targets optional.

    * ``tables`` with ``split="all"``: every table file of the directory in one dataset (labelled
      ``"all"``), through a temporary manifest that lists every file; no split rule is applied.
    * ``mediaeval`` with ``split="all"``: each non-empty split of the root in turn (DevSet -> train / val,
      TestSet -> test).
    * a named split: that split under the input's own rule (``splits.csv``, the run's manifest, ...).

    :param source: a directory of per-movie tables, a MediaEval 2018 root, or ``"synthetic"``
    :param kind: ``tables``, ``mediaeval`` or ``synthetic``
    :param split: ``all``, ``train``, ``val`` or ``test``
    :param targets: target names (files may lack them: zero targets, noted)
    :param segment_seconds: segment length, ``None`` for the reader's default
    :param options: further reader options (e.g. ``feature_columns``, ``visual_features``)
    :param progress: progress bars of the MediaEval reader
    :param only: with ``tables`` and ``split="all"``: the movie ids to load (default: every file)
    """
    options = dict(options or {})
    if segment_seconds is not None:
        options["segment_seconds"] = float(segment_seconds)
    targets = tuple(targets)
    if kind == "tables":
        if split != "all":
            yield split, load_tables(source, split, targets=targets, require_targets=False, **options)
            return
        if "manifest" in options:
            raise DataError("--split all predicts every file: a manifest only makes sense with a named split")
        files = list_table_files(source)
        with tempfile.TemporaryDirectory(prefix="predict_") as tmp:
            manifest = Path(tmp) / "all_files.json"
            manifest.write_text(json.dumps({p.stem: "test" if only is None or p.stem in only else "train"
                                            for p in files}))
            ds = load_tables(source, "test", targets=targets, require_targets=False, manifest=manifest, **options)
        ds.split = "all"
        ds.notes = ["splits: none (--split all: every table file of the directory)"] + \
            [n for n in ds.notes if not str(n).startswith("splits: manifest")]
        yield "all", ds
    elif kind == "mediaeval":

        split_kw = {k: options[k] for k in ("val_fraction", "val_movies") if k in options}
        names = mediaeval_splits(source, **split_kw)
        wanted = [s for s in SPLITS if names[s]] if split == "all" else [split]
        for s in wanted:
            yield s, load_mediaeval(source, s, targets=targets, require_targets=False, progress=progress, **options)
    elif kind == "synthetic":
        for s in (SPLITS if split == "all" else (split,)):
            yield s, load_dataset("synthetic", s, targets=targets, segment_seconds=segment_seconds, **options)
    elif kind == "liris_continuous":
        raise DataError(f"{source}: continuous LIRIS-ACCEDE layout: to predict, point --input at its feature "
                        f"tables directory with --format tables")
    else:
        raise DataError(f"{source}: unknown input format {kind!r}; choose one of {list(FORMATS)}")


# ------------------------------------------------------------------------------------------ movie files
def is_video_input(source: PathLike) -> bool:
    """Whether ``source`` is a movie file (a video suffix) or a folder holding movie files and no table."""
    path = Path(source)
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    if not path.is_dir():
        return False
    suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file()}
    return bool(suffixes & set(VIDEO_SUFFIXES)) and not suffixes & set(TABLE_SUFFIXES)


def training_extraction(model_path: PathLike, config) -> dict:
    """The extraction manifest of the model's training tables: the run's ``features.json`` (copied there at
    training), else the training dataset's.

    :raises DataError: the model was not trained on features extracted from movies (one line saying which
        data it was trained on)
    """
    run = run_directory(model_path) if Path(model_path).exists() else None
    for folder in (run, Path(str(config.data.dataset)) if config is not None else None):
        if folder is not None and (folder / MANIFEST).is_file():
            return read_manifest(folder)
    trained_on = f"the dataset {config.data.dataset!r}" if config is not None else "features of its own"
    raise DataError(f"{model_path}: this model was trained on {trained_on}, not on features extracted from movies "
                    f"(no {MANIFEST} in {run or 'its run'} or its dataset), so it cannot read a movie file; give it "
                    f"tables with its training columns, or train it on extracted movies "
                    f"(python -m affect_env.features)")


def extract_for_model(videos: PathLike, out: PathLike, manifest: dict, model_path: PathLike = "the model",
                      progress: bool = True) -> Path:
    """Extract the movie file(s) ``videos`` into ``out`` with the training data's settings and check that every
    movie has every modality and column the model was trained on.

    :param videos: a movie file or a folder of movies
    :param out: the folder of the extracted tables (a rerun skips what is already there)
    :param manifest: the training data's extraction manifest (:func:`training_extraction`)
    :return: ``out``
    :raises DataError: a movie that cannot be extracted, or lacks a modality (e.g. no audio stream) or column
        the model was trained on; one line naming the file
    """
    settings = manifest["settings_obj"]
    report = extract_videos([videos], out, settings, progress=progress, force=False)
    if report.failed:
        raise DataError("; ".join(report.failed.values()))
    trained = manifest.get("columns", {})
    extracted = read_manifest(out)["movies"]
    for path in list_videos([videos]):
        entry = next((e for e in extracted.values() if e["source"] == str(path)), None)
        if entry is None:  # pragma: no cover - extract_videos reported it
            raise DataError(f"{path}: not extracted")
        absent = [m for m in trained if m not in entry["columns"]]
        if absent:
            why = "; ".join(f"{m}: {entry['missing'].get(m, 'not extracted')}" for m in absent)
            raise DataError(f"{path}: modalities {', '.join(absent)} missing ({why}), but the model "
                            f"{model_path} was trained with them")
        for name, cols in trained.items():
            if entry["columns"][name] != cols:
                diff = sorted(set(cols) ^ set(entry["columns"][name]))
                raise DataError(f"{path}: modality {name} gives columns that differ from the model's training "
                                f"data ({model_path}): {diff[:5]} (another library version?)")
    return Path(out)


# ------------------------------------------------------------------------------------------- prediction
def predict_movie(model, movie: Movie) -> np.ndarray:
    """Deterministic ``(T, n_targets)`` predictions of one movie from its raw features.

    Embeds the segments with the policy's encoder, then runs :func:`agents.rollout.rollout`, which keeps
    only the current memory: any movie length works.
    """

    policy = model.policy
    policy.set_training_mode(False)
    embeddings = policy.encoder.embed_movie(movie.features)
    return rollout(policy.actor, policy.predictor, [embeddings], device=str(policy.device))[0]["prediction"]


def per_second(times: np.ndarray, prediction: np.ndarray, segment_seconds: float) -> tuple:
    """Per-second values of per-segment predictions.

    Segment ``i`` covers ``[times[i], times[i] + S)``. Second ``s`` (the interval ``[s, s + 1)``) gets the
    mean of the predictions of the segments that overlap it, weighted by the overlap: with a whole number
    of seconds per segment (and whole-second segment starts) a segment's prediction is simply assigned to
    every second it covers. Rows run from the second where the first segment starts to the end of the last
    segment; a second no segment overlaps (a gap) is NaN.

    :param times: ``(T,)`` segment start times in seconds
    :param prediction: ``(T, n)`` per-segment predictions
    :param segment_seconds: ``S``
    :return: ``(seconds (n_s,) int64, values (n_s, n) float64)``
    """
    times = np.asarray(times, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    seconds_per = float(segment_seconds)
    ends = times + seconds_per
    first = int(np.floor(times[0] + _EPS))
    last = int(np.ceil(ends[-1] - _EPS))
    seconds = np.arange(first, last, dtype=np.int64)
    k = np.arange(int(np.ceil(seconds_per)) + 1)
    sec = np.floor(times + _EPS).astype(np.int64)[:, None] + k[None, :]          # (T, k): seconds touched
    weight = np.minimum(sec + 1, ends[:, None]) - np.maximum(sec, times[:, None])
    weight = np.where((weight > _EPS * max(1.0, seconds_per)) & (sec < last), weight, 0.0)
    index = np.clip(sec - first, 0, len(seconds) - 1)
    total = np.zeros((len(seconds), prediction.shape[1]))
    wsum = np.zeros(len(seconds))
    np.add.at(total, index.ravel(), (weight[:, :, None] * prediction[:, None, :]).reshape(-1, prediction.shape[1]))
    np.add.at(wsum, index.ravel(), weight.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(wsum[:, None] > 0, total / wsum[:, None], np.nan)
    return seconds, values


def per_second_table(movie: Movie, prediction: np.ndarray, target_names: Sequence[str],
                     segment_seconds: float) -> pd.DataFrame:
    """``time`` (whole seconds) and one column per target, one row per second (see :func:`per_second`)."""
    seconds, values = per_second(movie.times, prediction, segment_seconds)
    table = {"time": seconds}
    for j, name in enumerate(target_names):
        table[name] = values[:, j].astype(np.float32)
    return pd.DataFrame(table)


def mediaeval_text(table: pd.DataFrame) -> str:
    """A MediaEval 2018 ``*_Valence-Arousal.txt`` file: tab-separated ``Time Valence Arousal``, per second.

    :param table: a :func:`per_second_table` with ``valence`` and ``arousal`` columns (NaN rows are left out)
    """
    rows = table.dropna(subset=["valence", "arousal"])
    lines = [f"{int(t)}\t{v:.6f}\t{a:.6f}" for t, v, a in zip(rows["time"], rows["valence"], rows["arousal"])]
    return MEDIAEVAL_HEADER + "\n" + "".join(line + "\n" for line in lines)


def _plot(path: Path, tables: List[Tuple[str, pd.DataFrame]], target_names: Sequence[str]) -> None:
    """Per-second predicted curves of up to three movies (one row per movie), written atomically."""
    fig, axes = plt.subplots(len(tables), 1, figsize=(10, 2.4 * len(tables)), squeeze=False)
    for ax, (movie_id, table) in zip(axes[:, 0], tables):
        for name in target_names:
            ax.plot(table["time"], table[name], lw=1, label=name)
        ax.set_title(f"{movie_id}: predictions", fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("predicted value")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # beside the curves
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def predict_movies(model, source: PathLike, out: PathLike, *, fmt: str = "auto", split: str = "all",
                   targets: Optional[Sequence[str]] = None, segment_seconds: Optional[float] = None,
                   config=None, model_path: PathLike = "the model", progress: bool = True) -> pd.DataFrame:
    """Predict every movie of ``source`` and write the per-second prediction files into ``out``.

    :param model: an RMN model (its policy carries the segment encoder)
    :param source: a directory of per-movie tables, a MediaEval 2018 root, ``"synthetic"``, or a movie file or
        folder of movies (extracted first into ``out/features`` by :func:`extract_for_model`)
    :param out: output directory (created; existing files of the same names are replaced atomically)
    :param fmt: ``auto`` (movie files, else :func:`affect_env.data.detect_format`), ``tables``, ``mediaeval``
        or ``video``
    :param split: ``all`` (every movie) or one of ``train``, ``val``, ``test`` under the input's split rule
    :param targets: target names (default: the run's, see :func:`load_run`)
    :param segment_seconds: segment length (default: the run's, else the reader's default)
    :param config: the run's :class:`~agents.config.TrainConfig` (reader options and defaults), or ``None``
    :param model_path: the model, for messages
    :param progress: tqdm progress bars
    :return: the index: one row per movie (``movie_id``, ``split``, ``segments``, ``first_second``,
        ``seconds``, ``source``), also written to ``out/index.csv``
    """

    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt}: choose one of {list(FORMATS)}")
    if split not in SPLIT_CHOICES:
        raise ValueError(f"--split {split}: choose one of {list(SPLIT_CHOICES)}")
    names = _target_names(model, config, targets, model_path)
    if segment_seconds is None and config is not None:
        segment_seconds = config.data.segment_seconds
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out}: exists and is not a directory")
    if fmt == "video" or (fmt == "auto" and is_video_input(source)):
        if split != "all":
            raise ValueError(f"--split {split}: movie files have no splits; predict them with --split all")
        manifest = training_extraction(model_path, config)
        only = [video_movie_id(p) for p in list_videos([source])]  # DIR/features may hold earlier inputs' tables
        source, fmt = extract_for_model(source, out / FEATURES_DIR, manifest, model_path, progress), "tables"
    else:
        only = None
    kind = detect_format(str(source)) if fmt == "auto" else fmt
    mediaeval_style = "valence" in names and "arousal" in names
    rows, notes, shown = [], [], []
    for label, dataset in iter_datasets(source, kind, split, names, segment_seconds,
                                        _options(config, kind, split), progress, only):
        check_feature_dim(dataset, model, source, model_path)
        notes += [f"[{label}] {n}" for n in dataset.notes]
        for movie in progress_bar(dataset.movies, desc=f"predict {label}", unit="movie", disable=not progress):
            table = per_second_table(movie, predict_movie(model, movie), names, dataset.segment_seconds)
            atomic_write_text(out / f"{movie.movie_id}.csv", table.to_csv(index=False))
            if mediaeval_style:
                atomic_write_text(out / MEDIAEVAL_DIR / f"{movie.movie_id}_Valence-Arousal.txt",
                                   mediaeval_text(table))
            if len(shown) < 3:
                shown.append((movie.movie_id, table))
            rows.append({"movie_id": movie.movie_id, "split": label, "segments": movie.n_segments,
                         "first_second": int(table["time"].iloc[0]), "seconds": len(table),
                         "source": movie.source})
    if not rows:
        raise DataError(f"{source}: no movie to predict")
    index = pd.DataFrame(rows)
    atomic_write_text(out / "index.csv", index.to_csv(index=False))
    atomic_write_text(out / "notes.txt", "".join(f"{n}\n" for n in notes))
    _plot(out / "figures" / "predictions.png", shown, names)
    return index


# -------------------------------------------------------------------------------------------------- CLI
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.predict", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="run directory or model.zip")
    parser.add_argument("--input", required=True,
                        help="directory of per-movie tables, a MediaEval 2018 root, a movie file or a folder of movies")
    parser.add_argument("--output", required=True, type=Path, help="directory for the prediction files")
    parser.add_argument("--format", default="auto", choices=FORMATS, help="input layout (default: detected)")
    parser.add_argument("--split", default="all", choices=SPLIT_CHOICES,
                        help="all movies (default) or one split under the input's split rule")
    parser.add_argument("--segment-seconds", type=float, default=None,
                        help="segment length (default: the run's, else the reader's)")
    parser.add_argument("--targets", default=None, help="comma-separated target names (default: the run's)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    model, cfg = load_run(args.model, args.device)
    try:
        index = predict_movies(model, args.input, args.output, fmt=args.format, split=args.split, targets=targets,
                               segment_seconds=args.segment_seconds, config=cfg, model_path=args.model,
                               progress=not args.no_progress)
    except PermissionError as err:
        raise ValueError(f"{err.filename}: cannot write ({err.strerror})") from err
    except IsADirectoryError as err:
        raise ValueError(f"{err.filename}: is a directory, cannot write a file there") from err
    print(json.dumps({"output": str(args.output), "movies": len(index), "seconds": int(index["seconds"].sum()),
                      "splits": sorted(set(index["split"]))}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, interrupted="interrupted: files already written are complete (written atomically)"))
