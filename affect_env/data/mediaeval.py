"""Reader for the MediaEval 2018 "Emotional Impact of Movies" dataset (:func:`load_mediaeval`).

The data are licensed and cannot ship; point the reader at the directory where you unpacked them.

**Layout** (``root`` holds one directory per set and kind; ``{SET}`` is ``DevSet-Part1`` (movies 00-13),
``DevSet-Part2`` (14-43), ``DevSet-Part3`` (44-53) or ``TestSet`` (54-65/66); movies are discovered from
the files on disk, never from these ranges)::

    MEDIAEVAL18-{SET}-Valence_Arousal-annotations/annotations/MEDIAEVAL18_NN_Valence-Arousal.txt
        tab-separated, header ``Time  Valence  Arousal``, one row per second (``Time`` = 0, 1, 2, ...)
    MEDIAEVAL18-{SET}-Visual_features/visual_features/MEDIAEVAL18_NN/{feat}/MEDIAEVAL18_NN-IIIII_{feat}.txt
        one line of comma-separated floats per second IIIII (note the hyphen); {feat} in acc (256),
        cedd (144), cl (33), eh (80), fcth (192), gabor (60), jcd (168), sc (64), tamura (18), lbp (256),
        fc6 (4096)
    MEDIAEVAL18-{SET}-Audio_features/audio_features/MEDIAEVAL18_NN/MEDIAEVAL18_NN_IIIII.csv
        a Weka ARFF file (openSMILE emobase2010) despite the name; the one row after ``@data`` is
        ``name, 1582 values, class`` (name and class are dropped); one file per second (5-s window)
    MEDIAEVAL18-{SET}-Fear-annotations/.../MEDIAEVAL18_NN*.txt   (optional, see :mod:`affect_env.data.fear`)

The inner ``annotations`` / ``visual_features`` / ``audio_features`` level may be missing.

**Alignment** (:mod:`affect_env.data.align`). Every file is placed at the second index parsed from its
*name* (never its list position). Each modality (one per visual descriptor, ``audio``) and each per-second
target file covers its own range of seconds; a movie keeps the seconds common to all of them. Inside a
modality's range, a missing second (no file, an empty file, no annotation row) is filled by carrying the
previous second forward when the run of missing seconds is at most ``max_gap`` long and the modality misses
at most ``max_missing`` seconds in all; otherwise the movie is skipped. A movie is also skipped when the
common range is shorter than ``min_overlap`` times the longest modality (e.g. annotations covering 100 s
of a 3,000 s film). Every fill, cut and skip is reported in ``Movie.notes`` / ``MovieDataset.notes`` and
on the ``affect_env.data`` logger.

**Segments** are the windows ``[i*S, (i+1)*S)`` of ``S = segment_seconds`` seconds anchored at second 0
(so segment times do not depend on which modalities are loaded) that lie entirely in the common range;
partial windows at either end are dropped (noted). ``K = S`` frames per segment (one per second); frame
``k`` of segment ``i`` is second ``i*S + k``; ``times[i] = i*S``. A segment's target is the mean of the
per-second annotation rows inside it (``fear``: the fraction of the segment annotated as fearful).

**Splits.** ``test`` = movies of the TestSet directories; the DevSet movies are split into ``val`` =
``val_movies`` if given, else ``round(val_fraction * n_dev)`` movies at evenly spaced positions of the
dev ids sorted by number (position ``floor((j + 0.5) * n_dev / n_val)``, ``j = 0 .. n_val-1``), and
``train`` = the rest. See :func:`mediaeval_splits`.

The older continuous LIRIS-ACCEDE reader lives in :mod:`affect_env.data.liris` and the fear-file parser in
:mod:`affect_env.data.fear`; both are re-exported here, where they used to be.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from affect_env.data.align import (
    AlignConfig, MovieInputs, Notes, SkipMovie, Track, assemble, check_options, file_track, logger, movie_bar,
    span,
)
from affect_env.data.fear import read_fear_annotation
from affect_env.data.liris import is_liris_continuous_root, liris_continuous_splits, load_liris_continuous
from affect_env.data.readers import (
    arff_column, arff_row_values, parse_rows, read_header_table, strip_row,
)
from affect_env.data.types import SPLITS, DataError, Modality, Movie, MovieDataset, PathLike

__all__ = [
    "AUDIO_DIM", "DESCRIPTOR_DIMS", "SPLITS", "is_liris_continuous_root", "is_mediaeval_root",
    "liris_continuous_splits", "load_liris_continuous", "load_mediaeval", "mediaeval_splits",
    "read_audio_arff", "read_fear_annotation", "read_valence_arousal",
]

#: Visual descriptors of MediaEval 2018 and their documented dimensions (5,367 in all), in output order.
DESCRIPTOR_DIMS: Dict[str, int] = {
    "acc": 256, "cedd": 144, "cl": 33, "eh": 80, "fcth": 192, "gabor": 60, "jcd": 168, "sc": 64,
    "tamura": 18, "lbp": 256, "fc6": 4096,
}
#: openSMILE emobase2010 feature count of the MediaEval 2018 audio files.
AUDIO_DIM = 1582
VA_HEADER = ("Time", "Valence", "Arousal")
TARGET_NAMES = ("valence", "arousal", "fear")

_SET_DIR = re.compile(
    r"^MEDIAEVAL18-(?P<set>.+?)-(?P<kind>Valence_Arousal-annotations|Visual_features|Audio_features"
    r"|Fear-annotations)$", re.IGNORECASE)
_VA_FILE = re.compile(r"^(MEDIAEVAL18_\d+)_Valence-Arousal\.txt$", re.IGNORECASE)
_MOVIE_DIR = re.compile(r"^MEDIAEVAL18_\d+$")
_FEAR_FILE = re.compile(r"^(MEDIAEVAL18_\d+)(?:[_\-.].*)?\.(?:txt|csv|tsv)$", re.IGNORECASE)
_CHUNK_BYTES = 32 << 20  # parse per-second files in blocks of about this many bytes


# ============================================================================================ file readers
def read_valence_arousal(path: PathLike, allow_nonfinite: bool = False) -> np.ndarray:
    """Read a MediaEval 2018 ``MEDIAEVAL18_NN_Valence-Arousal.txt`` file.

    :param path: the file (tab-separated, header ``Time Valence Arousal``)
    :param allow_nonfinite: keep NaN / inf instead of raising
    :return: ``(n_rows, 3)`` float64 array of time (seconds), valence, arousal
    """
    return read_header_table(Path(path), VA_HEADER, allow_nonfinite)


def read_audio_arff(path: PathLike, allow_nonfinite: bool = False) -> Optional[np.ndarray]:
    """Read one MediaEval 2018 audio file (an openSMILE ARFF file named ``.csv``).

    :param path: the file
    :param allow_nonfinite: keep NaN / inf instead of raising
    :return: the feature vector (float32, 1582 values for emobase2010), or ``None`` when the file is
        empty or has no data row
    """
    path = Path(path)
    values = arff_row_values(path.read_bytes(), path)
    if values is None:
        return None
    dim = values.count(b",") + 1
    return parse_rows([values], [path], dim, allow_nonfinite, arff_column)[0]


# ================================================================================= one file per second
def _numbered_files(directory: Path, pattern: re.Pattern) -> List[Tuple[int, Path]]:
    """Files of ``directory`` whose name matches ``pattern`` (group 1 = second index), sorted by second."""
    found: Dict[int, Path] = {}
    for entry in directory.iterdir():
        m = pattern.match(entry.name)
        if not m:
            continue
        sec = int(m.group(1))
        if sec in found:
            raise DataError(f"{directory}: files {found[sec].name} and {entry.name} both hold second {sec}")
        found[sec] = entry
    return sorted(found.items())


class _Dims:
    """Dimension of each modality, fixed by its first non-empty file; later files must agree."""

    def __init__(self) -> None:
        self.dims: Dict[str, Tuple[int, Path]] = {}

    def check(self, modality: str, dim: int, path: Path) -> None:
        """Record or verify the dimension of ``modality`` seen in ``path``."""
        if modality not in self.dims:
            self.dims[modality] = (dim, path)
            expected = AUDIO_DIM if modality == "audio" else DESCRIPTOR_DIMS.get(modality)
            if expected is not None and dim != expected:
                logger.info("%s: %s has %d values per second (the MediaEval 2018 release has %d)",
                            path, modality, dim, expected)
            return
        ref, ref_path = self.dims[modality]
        if dim != ref:
            raise DataError(f"{path}: {dim} values, but {modality} has {ref} values per second in {ref_path}")


@dataclass(frozen=True)
class _SecondFiles:
    """How to read one modality stored as one file per second.

    :param name: modality name
    :param directory: where the files are
    :param pattern: file-name regex, group 1 = the second index
    :param file_name: the file name expected for second ``s``
    :param extract: file bytes -> the comma-separated values (``None`` or ``b""`` = no value)
    :param describe: ``(file, value index) -> column description`` for error messages
    """

    name: str
    directory: Path
    pattern: re.Pattern
    file_name: Callable[[int], str]
    extract: Callable[[bytes, Path], Optional[bytes]]
    describe: Callable[[Path, int], str]


def _read_second_files(spec: _SecondFiles, dims: _Dims, allow_nonfinite: bool) -> Track:
    """Read one-file-per-second features into a track, parsing in blocks of about 32 MB."""
    seconds, blocks, empty = [], [], {}
    rows: List[bytes] = []
    paths: List[Path] = []
    size = 0
    for sec, path in _numbered_files(spec.directory, spec.pattern):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc}") from exc
        row = spec.extract(raw, path)
        if not row:
            empty[sec] = path
            continue
        dims.check(spec.name, row.count(b",") + 1, path)
        seconds.append(sec)
        rows.append(row)
        paths.append(path)
        size += len(row)
        if size >= _CHUNK_BYTES:
            blocks.append(parse_rows(rows, paths, dims.dims[spec.name][0], allow_nonfinite, spec.describe))
            rows, paths, size = [], [], 0
    if rows:
        blocks.append(parse_rows(rows, paths, dims.dims[spec.name][0], allow_nonfinite, spec.describe))
    dim = dims.dims[spec.name][0] if spec.name in dims.dims else 0
    values = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
    return Track(spec.name, np.asarray(seconds, dtype=np.int64), values,
                 lambda s: f"no file {spec.file_name(s)} in {spec.directory}", spec.file_name, empty)


def _visual_files(desc_dir: Path, movie_id: str, desc: str) -> _SecondFiles:
    """``MEDIAEVAL18_NN-IIIII_{desc}.txt`` files of one descriptor of one movie."""
    return _SecondFiles(
        desc, desc_dir, re.compile(rf"^{re.escape(movie_id)}-(\d+)_{re.escape(desc)}\.txt$"),
        lambda s: f"{movie_id}-{s:05d}_{desc}.txt", strip_row, lambda p, j: f"column {j + 1}")


def _audio_files(audio_dir: Path, movie_id: str) -> _SecondFiles:
    """``MEDIAEVAL18_NN_IIIII.csv`` (ARFF) files of one movie."""
    return _SecondFiles(
        "audio", audio_dir, re.compile(rf"^{re.escape(movie_id)}_(\d+)\.csv$", re.IGNORECASE),
        lambda s: f"{movie_id}_{s:05d}.csv", arff_row_values, arff_column)


# ========================================================================================= discovery
@dataclass
class _MovieFiles:
    """Where one MediaEval movie's files are (``None`` when that kind is absent)."""

    movie_id: str
    set_name: str
    va_file: Optional[Path] = None
    visual_dir: Optional[Path] = None
    audio_dir: Optional[Path] = None
    fear_file: Optional[Path] = None


def _inner(set_dir: Path, name: str) -> Path:
    """``set_dir/name`` when that level exists (as in the release archives), else ``set_dir``."""
    sub = set_dir / name
    return sub if sub.is_dir() else set_dir


def _set_dirs(root: Path) -> List[Tuple[str, str, Path]]:
    """``(set name, kind, directory)`` of every ``MEDIAEVAL18-{SET}-{kind}`` directory in ``root``."""
    out = []
    for entry in sorted(root.iterdir()):
        m = _SET_DIR.match(entry.name)
        if m and entry.is_dir():
            out.append((m.group("set"), m.group("kind").lower(), entry))
    return out


def is_mediaeval_root(path: PathLike) -> bool:
    """Whether ``path`` holds MediaEval 2018 ``MEDIAEVAL18-{SET}-...`` directories.

    :param path: candidate dataset root
    """
    path = Path(path)
    return path.is_dir() and bool(_set_dirs(path))


def _movie_key(movie_id: str) -> Tuple[int, str]:
    return int(movie_id.rsplit("_", 1)[1]), movie_id


def _discover(root: Path) -> Dict[str, _MovieFiles]:
    """Find every movie of a MediaEval root and its files (globbing, no hard-coded ranges)."""
    movies: Dict[str, _MovieFiles] = {}

    def get(movie_id: str, set_name: str, where: Path) -> _MovieFiles:
        files = movies.setdefault(movie_id, _MovieFiles(movie_id, set_name))
        if files.set_name != set_name:
            raise DataError(f"{where}: {movie_id} appears in set {set_name!r} and in set {files.set_name!r}")
        return files

    for set_name, kind, set_dir in _set_dirs(root):
        if kind == "valence_arousal-annotations":
            for p in sorted(_inner(set_dir, "annotations").iterdir()):
                m = _VA_FILE.match(p.name)
                if m:
                    get(m.group(1).upper(), set_name, p).va_file = p
        elif kind in ("visual_features", "audio_features"):
            for p in sorted(_inner(set_dir, kind).iterdir()):
                if _MOVIE_DIR.match(p.name) and p.is_dir():
                    files = get(p.name, set_name, p)
                    setattr(files, "visual_dir" if kind == "visual_features" else "audio_dir", p)
        else:
            for p in sorted(set_dir.rglob("*")):
                m = _FEAR_FILE.match(p.name)
                if m and p.is_file():
                    files = get(m.group(1).upper(), set_name, p)
                    if files.fear_file is not None:
                        raise DataError(f"{p}: second fear file for {files.movie_id} (also {files.fear_file})")
                    files.fear_file = p
    return dict(sorted(movies.items(), key=lambda kv: _movie_key(kv[0])))


def _is_test_set(set_name: str) -> bool:
    return "test" in set_name.lower()


def _normalize_movie_id(value: Union[str, int]) -> str:
    """``5``, ``"05"`` or ``"MEDIAEVAL18_05"`` -> ``"MEDIAEVAL18_05"``."""
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return f"MEDIAEVAL18_{int(text):02d}"
    return text.upper()


# ============================================================================================= splits
def _n_pick(n: int, fraction: float) -> int:
    """How many of ``n`` items a fraction selects: rounded half up, at least 1 and at most ``n - 1``."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, int(math.floor(fraction * n + 0.5))))


def _spread(ids: Sequence[str], k: int) -> List[str]:
    """``k`` ids at evenly spaced positions ``floor((j + 0.5) * n / k)`` of the sorted list ``ids``."""
    n = len(ids)
    return [ids[int((j + 0.5) * n / k)] for j in range(k)]


def _splits_of(index: Dict[str, _MovieFiles], val_fraction: float,
               val_movies: Optional[Sequence[Union[str, int]]]) -> Tuple[Dict[str, List[str]], str]:
    """Split the discovered movies; also returns a sentence describing the rule used."""
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"val_fraction={val_fraction!r} must be in [0, 1)")
    dev = [m for m, f in index.items() if not _is_test_set(f.set_name)]
    test = [m for m, f in index.items() if _is_test_set(f.set_name)]
    if val_movies is not None:
        val = sorted({_normalize_movie_id(v) for v in val_movies}, key=_movie_key)
        unknown = [v for v in val if v not in dev]
        if unknown:
            raise DataError(f"val_movies: {unknown} are not DevSet movies found on disk "
                            f"(DevSet movies: {dev[:3]}...{dev[-3:] if dev else ''})")
        rule = f"val = val_movies given explicitly ({len(val)} of {len(dev)} DevSet movies)"
    else:
        val = _spread(dev, _n_pick(len(dev), float(val_fraction)))
        rule = (f"val = {len(val)} of {len(dev)} DevSet movies at evenly spaced positions of the sorted ids "
                f"(val_fraction={val_fraction:g})")
    train = [m for m in dev if m not in set(val)]
    return {"train": train, "val": val, "test": test}, rule


def mediaeval_splits(root: PathLike, val_fraction: float = 0.15,
                     val_movies: Optional[Sequence[Union[str, int]]] = None) -> Dict[str, List[str]]:
    """Movie ids of each split of a MediaEval 2018 root, without reading any feature.

    ``test`` = TestSet movies; ``val`` = ``val_movies`` if given (ids, ``"05"`` or ``5``), else
    ``round(val_fraction * n_dev)`` DevSet movies at evenly spaced positions of the sorted dev ids;
    ``train`` = the other DevSet movies. Deterministic; depends only on which movies are on disk.

    :param root: dataset root
    :param val_fraction: fraction of DevSet movies used for validation
    :param val_movies: explicit validation movies (overrides ``val_fraction``)
    :return: ``{"train": [...], "val": [...], "test": [...]}`` sorted by movie number
    """
    root = Path(root)
    if not is_mediaeval_root(root):
        raise DataError(f"{root}: no MEDIAEVAL18-{{SET}}-... directory (not a MediaEval 2018 root)")
    return _splits_of(_discover(root), val_fraction, val_movies)[0]


# ============================================================================================ loading
def _descriptor_sets(index: Dict[str, _MovieFiles]) -> Dict[str, set]:
    """Descriptor sub-directories present for each movie that has visual features."""
    return {m: {p.name for p in f.visual_dir.iterdir() if p.is_dir()}
            for m, f in index.items() if f.visual_dir is not None}


def _choose_descriptors(index: Dict[str, _MovieFiles], requested: Optional[Sequence[str]],
                        notes: Notes) -> Tuple[str, ...]:
    """Visual descriptors to load, identical for every split of the root.

    Default: the descriptors present for every movie with visual features, in :data:`DESCRIPTOR_DIMS`
    order (others sorted after); those present for only some movies are left out (noted).
    """
    per_movie = _descriptor_sets(index)
    union = set().union(*per_movie.values()) if per_movie else set()
    order = {d: i for i, d in enumerate(DESCRIPTOR_DIMS)}
    if requested is not None:
        requested = tuple(dict.fromkeys([requested] if isinstance(requested, str) else requested))
        unknown = [d for d in requested if d not in union]
        if unknown:
            raise DataError(f"visual_features: {unknown} not found in any movie's visual_features directory; "
                            f"found: {sorted(union, key=lambda d: (order.get(d, 99), d))}")
        return requested
    common = set.intersection(*per_movie.values()) if per_movie else set()
    for d in sorted(union - common):
        lacking = [m for m, ds in per_movie.items() if d not in ds]
        notes.add(f"visual descriptor {d!r} is missing for {len(lacking)} movie(s) ({', '.join(lacking[:5])}"
                  f"{'...' if len(lacking) > 5 else ''}): not loaded; pass visual_features=[...] to require it "
                  f"(movies without it are then skipped)")
    return tuple(sorted(common, key=lambda d: (order.get(d, len(order)), d)))


def _first_dim(spec: _SecondFiles, dims: _Dims) -> None:
    """Record the dimension of the first non-empty file of ``spec`` (if any)."""
    for _, path in _numbered_files(spec.directory, spec.pattern):
        row = spec.extract(path.read_bytes(), path)
        if row:
            dims.check(spec.name, row.count(b",") + 1, path)
            return


def _reference_dims(index: Dict[str, _MovieFiles], descriptors: Sequence[str], audio: bool) -> _Dims:
    """Fix every modality's dimension from its first non-empty file over the whole root (all splits)."""
    dims = _Dims()
    wanted = list(descriptors) + (["audio"] if audio else [])
    for files in index.values():
        for desc in descriptors:
            desc_dir = files.visual_dir / desc if files.visual_dir is not None else None
            if desc not in dims.dims and desc_dir is not None and desc_dir.is_dir():
                _first_dim(_visual_files(desc_dir, files.movie_id, desc), dims)
        if audio and "audio" not in dims.dims and files.audio_dir is not None:
            _first_dim(_audio_files(files.audio_dir, files.movie_id), dims)
        if all(m in dims.dims for m in wanted):
            return dims
    missing = [m for m in wanted if m not in dims.dims]
    raise DataError(f"modalities {missing}: no non-empty feature file in any movie")


def _fear_source(files: _MovieFiles, require_targets: bool, notes: Notes,
                 tracks: Dict[str, Track]) -> Tuple[tuple, Optional[str]]:
    """Where the ``fear`` target of one movie comes from; adds a per-second track to ``tracks``.

    :return: the target spec and the format found (``None`` without a file)
    """
    mid = files.movie_id
    if files.fear_file is None:
        if require_targets:
            raise SkipMovie("no fear annotation file (target 'fear' requested)")
        notes.add(f"{mid}: no fear annotations; fear target is zeros (require_targets=False)")
        return ("zeros",), None
    kind, values = read_fear_annotation(files.fear_file)
    if kind == "per_second":
        track = file_track(files.fear_file, values)
        tracks[track.name] = track
        notes.add(f"{mid}: fear annotations read from {files.fear_file} as a per-second 0/1 column "
                  f"({len(values)} rows)", logging.INFO)
        return ("track", track.name, 0), kind
    notes.add(f"{mid}: fear annotations read from {files.fear_file} as start/end intervals "
              f"({len(values)} interval(s)); seconds outside every interval are 0", logging.INFO)
    return ("intervals", values), kind


def _target_specs(files: _MovieFiles, targets: Tuple[str, ...], require_targets: bool, allow_nonfinite: bool,
                  notes: Notes) -> Tuple[List[tuple], Dict[str, Track], Optional[str]]:
    """Read the annotation files of one movie and say where each target column comes from.

    :return: one spec per target (see :class:`MovieInputs`), the per-second annotation tracks, and the
        fear format found
    """
    mid = files.movie_id
    tracks: Dict[str, Track] = {}
    va = None
    if any(t in ("valence", "arousal") for t in targets):
        if files.va_file is not None:
            va = file_track(files.va_file, read_valence_arousal(files.va_file, allow_nonfinite))
            tracks[va.name] = va
        elif require_targets:
            raise SkipMovie(f"no valence/arousal annotation file {mid}_Valence-Arousal.txt")
        else:
            notes.add(f"{mid}: no valence/arousal annotations ({files.set_name}); valence/arousal targets are "
                      f"zeros (require_targets=False): use this movie for prediction only")
    fear, fear_format = (_fear_source(files, require_targets, notes, tracks) if "fear" in targets
                         else (None, None))
    specs = []
    for name in targets:
        if name == "fear":
            specs.append(fear)
        else:
            specs.append(("track", va.name, 0 if name == "valence" else 1) if va is not None else ("zeros",))
    return specs, tracks, fear_format


def _feature_tracks(files: _MovieFiles, descriptors: Sequence[str], audio: bool, dims: _Dims,
                    allow_nonfinite: bool, notes: Notes) -> List[Track]:
    """Read every selected modality of one movie (visual descriptors, then audio)."""
    mid = files.movie_id
    tracks = []
    for desc in descriptors:
        desc_dir = files.visual_dir / desc if files.visual_dir is not None else None
        if desc_dir is None or not desc_dir.is_dir():
            raise SkipMovie(f"no visual descriptor directory visual_features/{mid}/{desc}")
        tracks.append(_read_second_files(_visual_files(desc_dir, mid, desc), dims, allow_nonfinite))
    if audio:
        if files.audio_dir is None:
            raise SkipMovie(f"no audio_features/{mid} directory")
        track = _read_second_files(_audio_files(files.audio_dir, mid), dims, allow_nonfinite)
        _note_audio_padding(track, files.audio_dir, mid, notes)
        tracks.append(track)
    return tracks


def _note_audio_padding(track: Track, audio_dir: Path, movie_id: str, notes: Notes) -> None:
    """Note leading audio seconds that are exact copies of the next one (openSMILE window padding)."""
    v, s = track.values, track.seconds
    r = 1
    while r < len(v) and s[r] == s[0] + r and np.array_equal(v[r], v[0]):
        r += 1
    if r > 1:
        notes.add(f"{movie_id}: audio: files of seconds {span(int(s[0]), int(s[r - 2]))} in {audio_dir} are "
                  f"exact copies of {track.file_of(int(s[r - 1]))} (padding of the 5-s window); kept at their "
                  f"own seconds", logging.INFO)


def _load_mediaeval_movie(files: _MovieFiles, descriptors: Sequence[str], audio: bool,
                          targets: Tuple[str, ...], require_targets: bool, dims: _Dims,
                          cfg: AlignConfig, notes: Notes) -> Tuple[Movie, Optional[str]]:
    """Read, align and segment one MediaEval movie (raises :class:`SkipMovie` per the policies).

    :return: the movie and the fear-annotation format found (``None`` when not read)
    """
    allow = cfg.impute is not None
    specs, target_tracks, fear_format = _target_specs(files, targets, require_targets, allow, notes)
    features = _feature_tracks(files, descriptors, audio, dims, allow, notes)
    source = str(files.va_file or files.visual_dir or files.audio_dir)
    inputs = MovieInputs(files.movie_id, source, features, specs, target_tracks)
    return assemble(inputs, cfg, notes), fear_format


def _check_targets(targets: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """Validate the requested target names (default valence, arousal)."""
    if targets is None:
        return "valence", "arousal"
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets or any(t not in TARGET_NAMES for t in targets) or len(set(targets)) != len(targets):
        raise DataError(f"targets={targets!r}: must be distinct names from {list(TARGET_NAMES)}")
    return targets


def _note_fear_formats(formats: List[str], notes: Notes) -> None:
    """Dataset note saying which fear-annotation format(s) were found."""
    if not formats:
        return
    label = {"per_second": "per-second 0/1 column", "intervals": "start/end intervals"}
    counts = ", ".join(f"{label[k]} ({formats.count(k)} movie(s))" for k in sorted(set(formats)))
    notes.add(f"fear annotation format found: {counts}; target 'fear' = fraction of each segment annotated "
              f"as fear")


def load_mediaeval(
    root: PathLike,
    split: str = "train",
    *,
    segment_seconds: float = 5,
    visual_features: Optional[Sequence[str]] = None,
    audio: bool = True,
    targets: Optional[Sequence[str]] = None,
    val_fraction: float = 0.15,
    val_movies: Optional[Sequence[Union[str, int]]] = None,
    require_targets: bool = True,
    impute: Optional[str] = None,
    max_gap: int = 1,
    max_missing: int = 5,
    min_overlap: float = 0.5,
    progress: bool = True,
) -> MovieDataset:
    """Load one split of the MediaEval 2018 "Emotional Impact of Movies" data (layout: module docstring).

    :param root: directory holding the ``MEDIAEVAL18-{SET}-...`` directories
    :param split: ``"train"``, ``"val"`` (both from the DevSet) or ``"test"`` (the TestSet)
    :param segment_seconds: ``S``, seconds per segment (a whole number); ``K = S`` frames per segment
    :param visual_features: descriptors to load, in this order (default: every descriptor present for
        all movies of the root, in :data:`DESCRIPTOR_DIMS` order); ``()`` for none
    :param audio: load the openSMILE audio features (modality ``audio``, after the visual ones)
    :param targets: target names in output order, from ``valence``, ``arousal``, ``fear`` (default
        ``("valence", "arousal")``)
    :param val_fraction: fraction of DevSet movies in ``val`` (see :func:`mediaeval_splits`)
    :param val_movies: explicit validation movies (overrides ``val_fraction``)
    :param require_targets: skip movies without the requested annotations (and raise if none of the
        split has them); ``False`` gives zero targets instead (prediction only), noted per movie
    :param impute: ``None`` (NaN / inf are errors), ``"ffill"`` (carry the last valid value of the column
        forward; leading ones take the first valid value) or ``"zero"``
    :param max_gap: longest run of missing seconds filled by carrying the previous second forward
    :param max_missing: most missing seconds filled per modality of a movie; more skips the movie
    :param min_overlap: skip a movie when the seconds common to all modalities are less than this
        fraction of its longest modality
    :param progress: show a tqdm progress bar over movies
    :return: the split, ``name="mediaeval2018"``; every glitch is in ``notes``
    """
    cfg = check_options(split, segment_seconds, impute, max_gap, max_missing, min_overlap)
    targets = _check_targets(targets)
    root = Path(root)
    if not is_mediaeval_root(root):
        raise DataError(f"{root}: no MEDIAEVAL18-{{SET}}-... directory (not a MediaEval 2018 root)")
    index = _discover(root)
    ds_notes = Notes()
    splits, rule = _splits_of(index, val_fraction, val_movies)
    ids = splits[split]
    if not ids:
        raise DataError(f"{root}: split {split!r} has no movie ("
                        + ("no MEDIAEVAL18-TestSet-* directory" if split == "test" else rule) + ")")
    ds_notes.add(f"split {split!r}: {len(ids)} movie(s); test = TestSet movies; {rule}", logging.INFO)
    descriptors = _choose_descriptors(index, visual_features, ds_notes)
    if audio and not any(f.audio_dir is not None for f in index.values()):
        raise DataError(f"{root}: no MEDIAEVAL18-{{SET}}-Audio_features directory with movie folders; pass "
                        f"audio=False to load visual features only")
    if not descriptors and not audio:
        raise DataError(f"{root}: no feature selected (no visual descriptor found or requested, audio=False)")
    dims = _reference_dims(index, descriptors, audio)
    modalities = tuple(Modality(d, dims.dims[d][0]) for d in descriptors) + \
        ((Modality("audio", dims.dims["audio"][0]),) if audio else ())
    if require_targets and any(t != "fear" for t in targets) and not any(index[m].va_file for m in ids):
        raise DataError(f"{root}: no movie of split {split!r} ({ids[0]}...) has valence/arousal annotations "
                        f"(MEDIAEVAL18-{{SET}}-Valence_Arousal-annotations/annotations/*_Valence-Arousal.txt); "
                        f"pass require_targets=False to load the features for prediction only (targets = zeros)")
    movies, formats = [], []
    for mid in movie_bar(ids, f"MediaEval 2018 {split}", progress):
        notes = Notes()
        try:
            movie, fear_format = _load_mediaeval_movie(index[mid], descriptors, audio, targets, require_targets,
                                                       dims, cfg, notes)
            movies.append(movie)
            formats += [fear_format] if fear_format else []
        except SkipMovie as exc:
            notes.add(f"{mid}: skipped: {exc}")
        ds_notes.items.extend(notes.items)
    _note_fear_formats(formats, ds_notes)
    if not movies:
        raise DataError(f"{root}: no usable movie in split {split!r}: "
                        + " | ".join(n for n in ds_notes.items if ": skipped: " in n))
    return MovieDataset(movies, modalities, targets, cfg.segment_seconds, float(cfg.segment_seconds),
                        name="mediaeval2018", split=split, notes=ds_notes.items)
