"""Readers for the paper's datasets: MediaEval 2018 "Emotional Impact of Movies" and continuous LIRIS-ACCEDE.

Both are licensed and cannot ship; point the reader at the directory where you unpacked them.

**MediaEval 2018 layout** (``root`` holds one directory per set and kind; ``{SET}`` is ``DevSet-Part1``
(movies 00-13), ``DevSet-Part2`` (14-43), ``DevSet-Part3`` (44-53) or ``TestSet`` (54-65/66); movies
are discovered from the files on disk, never from these ranges)::

    MEDIAEVAL18-{SET}-Valence_Arousal-annotations/annotations/MEDIAEVAL18_NN_Valence-Arousal.txt
        tab-separated, header ``Time  Valence  Arousal``, one row per second (``Time`` = 0, 1, 2, ...)
    MEDIAEVAL18-{SET}-Visual_features/visual_features/MEDIAEVAL18_NN/{feat}/MEDIAEVAL18_NN-IIIII_{feat}.txt
        one line of comma-separated floats per second IIIII (note the hyphen); {feat} in acc (256),
        cedd (144), cl (33), eh (80), fcth (192), gabor (60), jcd (168), sc (64), tamura (18), lbp (256),
        fc6 (4096)
    MEDIAEVAL18-{SET}-Audio_features/audio_features/MEDIAEVAL18_NN/MEDIAEVAL18_NN_IIIII.csv
        a Weka ARFF file (openSMILE emobase2010) despite the name; the one row after ``@data`` is
        ``name, 1582 values, class`` (name and class are dropped); one file per second (5-s window)
    MEDIAEVAL18-{SET}-Fear-annotations/.../MEDIAEVAL18_NN*.txt   (optional, see :func:`read_fear_annotation`)

The inner ``annotations`` / ``visual_features`` / ``audio_features`` level may be missing.

**Alignment.** Every file is placed at the second index parsed from its *name* (never its list
position). Each modality (one per visual descriptor, ``audio``) and each per-second target file covers
its own range of seconds; a movie keeps the seconds common to all of them. Inside a modality's range, a
missing second (no file, an empty file, no annotation row) is filled by carrying the previous second
forward when the run of missing seconds is at most ``max_gap`` long and the modality misses at most
``max_missing`` seconds in all; otherwise the movie is skipped. A movie is also skipped when the common
range is shorter than ``min_overlap`` times the longest modality (e.g. annotations covering 100 s of a
3,000 s film). Every fill, cut and skip is reported in ``Movie.notes`` / ``MovieDataset.notes`` and on
the ``affect_env.data`` logger.

**Segments** are the windows ``[i*S, (i+1)*S)`` of ``S = segment_seconds`` seconds anchored at second 0
(so segment times do not depend on which modalities are loaded) that lie entirely in the common range;
partial windows at either end are dropped (noted). ``K = S`` frames per segment (one per second); frame
``k`` of segment ``i`` is second ``i*S + k``; ``times[i] = i*S``. A segment's target is the mean of the
per-second annotation rows inside it (``fear``: the fraction of the segment annotated as fearful).

**Splits.** ``test`` = movies of the TestSet directories; the DevSet movies are split into ``val`` =
``val_movies`` if given, else ``round(val_fraction * n_dev)`` movies at evenly spaced positions of the
dev ids sorted by number (position ``floor((j + 0.5) * n_dev / n_val)``, ``j = 0 .. n_val-1``), and
``train`` = the rest. See :func:`mediaeval_splits`.

**Continuous LIRIS-ACCEDE** (:func:`load_liris_continuous`): ``<Title>_Valence.txt`` /
``<Title>_Arousal.txt`` (header ``Time  Mean  Std``) in ``root`` or ``root/annotations``, features from
user-provided tables ``root/features/<Title>.csv`` or ``.parquet`` with a ``time`` column (seconds) and
numeric feature columns; annotation rows and feature rows are averaged per second ``floor(time)`` and
then aligned exactly like MediaEval.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from affect_env.data.types import DataError, Modality, Movie, MovieDataset

__all__ = [
    "AUDIO_DIM", "DESCRIPTOR_DIMS", "SPLITS", "is_liris_continuous_root", "is_mediaeval_root",
    "liris_continuous_splits", "load_liris_continuous", "load_mediaeval", "mediaeval_splits",
    "read_audio_arff", "read_fear_annotation", "read_valence_arousal",
]

logger = logging.getLogger("affect_env.data")

PathLike = Union[str, Path]
SPLITS = ("train", "val", "test")
#: Visual descriptors of MediaEval 2018 and their documented dimensions (5,367 in all), in output order.
DESCRIPTOR_DIMS: Dict[str, int] = {
    "acc": 256, "cedd": 144, "cl": 33, "eh": 80, "fcth": 192, "gabor": 60, "jcd": 168, "sc": 64,
    "tamura": 18, "lbp": 256, "fc6": 4096,
}
#: openSMILE emobase2010 feature count of the MediaEval 2018 audio files.
AUDIO_DIM = 1582
VA_HEADER = ("Time", "Valence", "Arousal")
LIRIS_HEADER = ("Time", "Mean", "Std")
TARGET_NAMES = ("valence", "arousal", "fear")
IMPUTE_MODES = ("ffill", "zero")

_SET_DIR = re.compile(
    r"^MEDIAEVAL18-(?P<set>.+?)-(?P<kind>Valence_Arousal-annotations|Visual_features|Audio_features"
    r"|Fear-annotations)$", re.IGNORECASE)
_VA_FILE = re.compile(r"^(MEDIAEVAL18_\d+)_Valence-Arousal\.txt$", re.IGNORECASE)
_MOVIE_DIR = re.compile(r"^MEDIAEVAL18_\d+$")
_FEAR_FILE = re.compile(r"^(MEDIAEVAL18_\d+)(?:[_\-.].*)?\.(?:txt|csv|tsv)$", re.IGNORECASE)
_CHUNK_BYTES = 32 << 20  # parse per-second files in blocks of about this many bytes


# ================================================================================================ notes
class _Notes:
    """Human-readable reports, kept in a list and logged on ``affect_env.data``."""

    def __init__(self) -> None:
        self.items: List[str] = []

    def add(self, message: str, level: int = logging.WARNING) -> None:
        """Record ``message`` and log it at ``level``."""
        self.items.append(message)
        logger.log(level, message)


class _SkipMovie(Exception):
    """A movie cannot be used; the message says why (it becomes a note)."""


# ====================================================================================== numeric parsing
def _float_cells(cells: Sequence, path: Path, where: Callable[[int], str]) -> np.ndarray:
    """Convert strings/bytes to float64, raising a :class:`DataError` at the first non-numeric cell.

    :param cells: the values of one row
    :param path: file, for messages
    :param where: maps a cell index to its description (``"column 3"``)
    """
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass
    for j, cell in enumerate(cells):
        text = cell.decode(errors="replace") if isinstance(cell, bytes) else str(cell)
        try:
            float(text)
        except ValueError:
            raise DataError(f"{path}: {where(j)}: non-numeric value {text.strip()!r}") from None
    raise DataError(f"{path}: cannot read the values as numbers")  # pragma: no cover - float() accepted all


def _check_finite(values: np.ndarray, allow: bool, where: Callable[[int, int], str]) -> None:
    """Raise a :class:`DataError` at the first NaN / inf of a 2-d array unless ``allow``."""
    if allow:
        return
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise DataError(f"{where(i, j)}: value {values[i, j]} is not finite (pass impute='ffill' to carry the "
                        f"last valid value forward)")


def _parse_rows_fast(rows: List[bytes], dim: int) -> Optional[np.ndarray]:
    """Parse comma-separated rows of ``dim`` values with pyarrow (multi-threaded); ``None`` if it fails."""
    try:
        import io

        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None
    data = b"\n".join(r.replace(b",", b"\n") for r in rows)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=["v"]),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={"v": pa.float64()}, null_values=[],
                                                 strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    values = table.column(0).to_numpy()
    if values.size != len(rows) * dim:
        return None
    return values.reshape(len(rows), dim)


def _parse_rows(rows: List[bytes], paths: List[Path], dim: int, allow_nonfinite: bool,
                describe: Callable[[Path, int], str]) -> np.ndarray:
    """Parse per-second rows (each ``dim`` comma-separated values) into ``(n, dim)`` float32.

    Uses pyarrow on the whole block; falls back to row-by-row NumPy, which names the file and column of
    the first bad value.

    :param rows: one ``bytes`` row per file, already stripped
    :param paths: the file of each row
    :param dim: values per row (already checked)
    :param allow_nonfinite: keep NaN / inf (for ``impute``) instead of raising
    :param describe: ``(file, 0-based value index) -> description`` (``"column 5"``) for messages
    """
    values = _parse_rows_fast(rows, dim) if rows else np.zeros((0, dim))
    if values is None:
        values = np.stack([_float_cells(r.split(b","), p, lambda j, p=p: describe(p, j))
                           for r, p in zip(rows, paths)])
    _check_finite(values, allow_nonfinite, lambda i, j: f"{paths[i]}: {describe(paths[i], j)}")
    return values.astype(np.float32)


def _strip_row(raw: bytes, path: Path) -> bytes:
    """One line of comma-separated values, stripped (a trailing comma is tolerated)."""
    row = raw.strip().rstrip(b",").strip()
    if b"\n" in row:
        n = len([ln for ln in row.splitlines() if ln.strip()])
        raise DataError(f"{path}: {n} non-empty lines, expected one line of comma-separated values")
    if b"," not in row and len(row.split()) > 1:
        row = b",".join(row.split())  # whitespace-separated values
    return row


def _split_text_table(path: Path) -> Tuple[List[int], List[List[str]]]:
    """Non-empty lines of a delimited text file, split on tabs (or commas, or whitespace).

    :return: file line numbers (1-based) and the fields of each line
    """
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    numbered = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not numbered:
        return [], []
    first = numbered[0][1]
    if "\t" in first:
        rows = [[c.strip() for c in ln.split("\t")] for _, ln in numbered]
    elif "," in first:
        rows = [[c.strip() for c in ln.split(",")] for _, ln in numbered]
    else:
        rows = [ln.split() for _, ln in numbered]
    return [n for n, _ in numbered], rows


def _table_values(path: Path, line_nos: List[int], rows: List[List[str]], columns: Sequence[int],
                  names: Sequence[str], allow_nonfinite: bool) -> np.ndarray:
    """Numeric ``(n_rows, len(columns))`` float64 array of the chosen columns of a split text table.

    Every row must have as many fields as the first row (or header); errors name file, line and column.
    """
    n_cols = len(names)
    for line_no, row in zip(line_nos, rows):
        if len(row) != n_cols:
            raise DataError(f"{path}: line {line_no}: {len(row)} columns, expected {n_cols} "
                            f"({', '.join(names)})")
    if not rows:
        return np.zeros((0, len(columns)))
    cells = np.array([[row[c] for c in columns] for row in rows], dtype=object)
    try:
        values = cells.astype(np.float64)
    except ValueError:
        for i, row in enumerate(cells):
            _float_cells(list(row), path, lambda j, i=i: f"line {line_nos[i]}, column {names[columns[j]]!r}")
        raise  # pragma: no cover - the loop raised
    _check_finite(values, allow_nonfinite,
                  lambda i, j: f"{path}: line {line_nos[i]}, column {names[columns[j]]!r}")
    return values


def _read_header_table(path: Path, header: Sequence[str], allow_nonfinite: bool) -> np.ndarray:
    """Read a text table whose first line must be ``header`` (case-insensitive); all columns numeric."""
    line_nos, rows = _split_text_table(path)
    if not rows:
        raise DataError(f"{path}: file is empty (expected header {' '.join(header)!r} and one row per second)")
    got = rows[0]
    if [c.lower() for c in got] != [c.lower() for c in header]:
        raise DataError(f"{path}: line {line_nos[0]}: header {got}, expected {list(header)} (tab-separated)")
    return _table_values(path, line_nos[1:], rows[1:], range(len(header)), list(header), allow_nonfinite)


# ============================================================================================ file readers
def read_valence_arousal(path: PathLike, allow_nonfinite: bool = False) -> np.ndarray:
    """Read a MediaEval 2018 ``MEDIAEVAL18_NN_Valence-Arousal.txt`` file.

    :param path: the file (tab-separated, header ``Time Valence Arousal``)
    :param allow_nonfinite: keep NaN / inf instead of raising
    :return: ``(n_rows, 3)`` float64 array of time (seconds), valence, arousal
    """
    return _read_header_table(Path(path), VA_HEADER, allow_nonfinite)


def _arff_attribute_name(raw: bytes, index: int) -> str:
    """Name of the ``index``-th (0-based) ``@attribute`` of an ARFF header, or ``""``."""
    names = re.findall(rb"^\s*@attribute\s+(\S+)", raw, flags=re.IGNORECASE | re.MULTILINE)
    return names[index].decode(errors="replace") if index < len(names) else ""


def _arff_data_row(raw: bytes, path: Path) -> Optional[bytes]:
    """The single data row of an ARFF file (``None`` when the file is empty or has no data row)."""
    if not raw.strip():
        return None
    at = raw.lower().rfind(b"@data")
    if at < 0:
        raise DataError(f"{path}: no '@data' line (expected a Weka ARFF file written by openSMILE)")
    lines = [ln.strip() for ln in raw[at + 5:].splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(b"%")]
    if not lines:
        return None
    if len(lines) > 1:
        raise DataError(f"{path}: {len(lines)} data rows after '@data', expected 1")
    return lines[0]


def _arff_values(row: bytes, path: Path) -> bytes:
    """The feature values of an ARFF data row: drop the first field (name) and the last (class)."""
    first = row.find(b",")
    last = row.rfind(b",")
    if first < 0 or last <= first:
        raise DataError(f"{path}: '@data' row has {row.count(b',') + 1} fields, expected name, values, class")
    return row[first + 1:last]


def read_audio_arff(path: PathLike, allow_nonfinite: bool = False) -> Optional[np.ndarray]:
    """Read one MediaEval 2018 audio file (an openSMILE ARFF file named ``.csv``).

    :param path: the file
    :param allow_nonfinite: keep NaN / inf instead of raising
    :return: the feature vector (float32, 1582 values for emobase2010), or ``None`` when the file is
        empty or has no data row
    """
    path = Path(path)
    raw = path.read_bytes()
    row = _arff_data_row(raw, path)
    if row is None:
        return None
    values = _arff_values(row, path)
    dim = values.count(b",") + 1
    return _parse_rows([values], [path], dim, allow_nonfinite, _arff_column)[0]


def _arff_column(path: Path, j: int) -> str:
    """Describe value ``j`` of an ARFF data row (column ``j + 2`` of the row, attribute ``j + 1``)."""
    name = _arff_attribute_name(path.read_bytes(), j + 1)
    return f"'@data' row, column {j + 2}" + (f" (attribute {name})" if name else "")


def _fear_columns(names: List[str]) -> Tuple[Optional[int], Optional[int], Optional[int], Optional[int]]:
    """Indices of the start, end, fear-flag and time columns of a fear header (``None`` if absent)."""
    low = [n.lower() for n in names]

    def find(test: Callable[[str], bool]) -> Optional[int]:
        return next((i for i, n in enumerate(low) if test(n)), None)

    start = find(lambda n: n.startswith("start") or n.startswith("begin"))
    end = find(lambda n: n.startswith("end") or n.startswith("stop"))
    fear = find(lambda n: "fear" in n)
    time = find(lambda n: n in ("t", "sec", "second", "seconds") or n.startswith("time"))
    return start, end, fear, time


def _is_header(row: List[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return True
    return False


def read_fear_annotation(path: PathLike) -> Tuple[str, np.ndarray]:
    """Read a fear annotation file in either of the two accepted formats.

    * **per-second**: a column of 0/1 values, one row per second: a header naming a ``fear`` column (and
      optionally a ``time`` column), or no header with one column (row ``i`` = second ``i``) or two
      columns ``second, 0/1`` (consecutive integer seconds and only 0/1 values);
    * **intervals**: one fear episode per row, ``start, end`` in seconds: a header with ``start`` and
      ``end`` columns (an optional ``fear`` column keeps only rows with a non-zero flag; other columns
      such as an id are ignored), or no header with two columns ``start, end`` or three ``id, start, end``.

    :param path: the file (tab-, comma- or whitespace-separated)
    :return: ``("per_second", (n, 2) [second, fear in [0, 1]])`` or ``("intervals", (m, 2) [start, end])``
    """
    path = Path(path)
    line_nos, rows = _split_text_table(path)
    if not rows:
        return "intervals", np.zeros((0, 2))  # no fear episode
    start, end, fear, time = _fear_columns(rows[0])
    if _is_header(rows[0]) and (fear is not None or (start is not None and end is not None)
                                or len(rows[0]) != 3):
        names, line_nos, rows = rows[0], line_nos[1:], rows[1:]
        if start is not None and end is not None:
            cols = [start, end] + ([fear] if fear is not None else [])
            values = _table_values(path, line_nos, rows, cols, names, False)
            if fear is not None:
                values = values[values[:, 2] != 0, :2]
            return "intervals", _check_intervals(path, values, line_nos)
        if fear is not None:
            cols = ([time] if time is not None else []) + [fear]
            values = _table_values(path, line_nos, rows, cols, names, False)
            seconds = values[:, 0] if time is not None else np.arange(len(values), dtype=np.float64)
            return "per_second", _check_per_second(path, seconds, values[:, -1], line_nos)
        raise DataError(f"{path}: line 1: header {names} has neither 'start'/'end' columns (intervals) nor a "
                        f"'fear' column (per-second 0/1)")
    names = [f"#{j + 1}" for j in range(len(rows[0]))]
    if len(names) == 3:  # id, start, end: the id may be text
        values = _table_values(path, line_nos, rows, [1, 2], names, False)
        return "intervals", _check_intervals(path, values, line_nos)
    values = _table_values(path, line_nos, rows, range(len(names)), names, False)
    if values.shape[1] == 1:
        return "per_second", _check_per_second(path, np.arange(len(values), dtype=np.float64), values[:, 0],
                                               line_nos)
    if values.shape[1] == 2 and _looks_per_second(values):
        return "per_second", _check_per_second(path, values[:, 0], values[:, 1], line_nos)
    if values.shape[1] == 2:
        return "intervals", _check_intervals(path, values, line_nos)
    raise DataError(f"{path}: {values.shape[1]} columns without a header; expected 1 (0/1 per second), "
                    f"2 (second, 0/1 or start, end) or 3 (id, start, end)")


def _looks_per_second(values: np.ndarray) -> bool:
    """Two columns that are consecutive integer seconds and 0/1 flags."""
    t, flag = values[:, 0], values[:, 1]
    consecutive = len(t) > 1 and bool(np.all(np.diff(t) == 1)) and float(t[0]) == int(t[0])
    return consecutive and bool(np.isin(flag, (0.0, 1.0)).all())


def _check_per_second(path: Path, seconds: np.ndarray, flags: np.ndarray, line_nos: List[int]) -> np.ndarray:
    bad = np.flatnonzero((flags < 0) | (flags > 1))
    if bad.size:
        raise DataError(f"{path}: line {line_nos[bad[0]]}: fear value {flags[bad[0]]} is not in [0, 1]")
    return np.column_stack([seconds, flags])


def _check_intervals(path: Path, values: np.ndarray, line_nos: List[int]) -> np.ndarray:
    bad = np.flatnonzero((values[:, 0] < 0) | (values[:, 1] < values[:, 0]))
    if bad.size:
        raise DataError(f"{path}: line {line_nos[bad[0]]}: fear interval start {values[bad[0], 0]}, end "
                        f"{values[bad[0], 1]} (need 0 <= start <= end, in seconds)")
    return values


# ============================================================================================= tracks
@dataclass
class _Track:
    """One per-second signal of one movie (a modality, or a per-second annotation file).

    :param name: modality name, or the annotation file name, used in notes
    :param seconds: sorted, unique second indices that have a value
    :param values: ``(len(seconds), dim)`` values
    :param describe_missing: says why second ``s`` has no value (which file or row was expected)
    :param file_of: the file holding second ``s`` (for notes)
    :param empty: seconds whose file exists but holds no value, with the file
    """

    name: str
    seconds: np.ndarray
    values: np.ndarray
    describe_missing: Callable[[int], str]
    file_of: Callable[[int], str]
    empty: Dict[int, Path] = field(default_factory=dict)


def _per_second(times: np.ndarray, values: np.ndarray, path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Average rows per second ``floor(time)``; negative or non-finite times raise."""
    if len(times) and (not np.all(np.isfinite(times)) or times.min() < 0):
        i = int(np.flatnonzero(~np.isfinite(times) | (times < 0))[0])
        raise DataError(f"{path}: data row {i + 1}: time {times[i]} is not a finite, non-negative number of "
                        f"seconds")
    secs = np.floor(times + 1e-9).astype(np.int64)
    uniq, inverse, counts = np.unique(secs, return_inverse=True, return_counts=True)
    if len(uniq) == len(secs):
        order = np.argsort(secs, kind="stable")
        return secs[order], values[order]
    sums = np.zeros((len(uniq), values.shape[1]))
    np.add.at(sums, inverse, values)
    return uniq, sums / counts[:, None]


def _file_track(path: Path, table: np.ndarray) -> _Track:
    """A track named after ``path`` from a table whose first column is time in seconds."""
    secs, vals = _per_second(table[:, 0], table[:, 1:], path)
    return _Track(path.name, secs, vals, lambda s: f"no row for second {s} in {path}", lambda s: path.name)


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


def _read_second_files(spec: _SecondFiles, dims: _Dims, allow_nonfinite: bool) -> _Track:
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
            blocks.append(_parse_rows(rows, paths, dims.dims[spec.name][0], allow_nonfinite, spec.describe))
            rows, paths, size = [], [], 0
    if rows:
        blocks.append(_parse_rows(rows, paths, dims.dims[spec.name][0], allow_nonfinite, spec.describe))
    dim = dims.dims[spec.name][0] if spec.name in dims.dims else 0
    values = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
    return _Track(spec.name, np.asarray(seconds, dtype=np.int64), values,
                  lambda s: f"no file {spec.file_name(s)} in {spec.directory}", spec.file_name, empty)


def _visual_files(desc_dir: Path, movie_id: str, desc: str) -> _SecondFiles:
    """``MEDIAEVAL18_NN-IIIII_{desc}.txt`` files of one descriptor of one movie."""
    return _SecondFiles(
        desc, desc_dir, re.compile(rf"^{re.escape(movie_id)}-(\d+)_{re.escape(desc)}\.txt$"),
        lambda s: f"{movie_id}-{s:05d}_{desc}.txt", _strip_row, lambda p, j: f"column {j + 1}")


def _audio_values(raw: bytes, path: Path) -> Optional[bytes]:
    row = _arff_data_row(raw, path)
    return None if row is None else _arff_values(row, path)


def _audio_files(audio_dir: Path, movie_id: str) -> _SecondFiles:
    """``MEDIAEVAL18_NN_IIIII.csv`` (ARFF) files of one movie."""
    return _SecondFiles(
        "audio", audio_dir, re.compile(rf"^{re.escape(movie_id)}_(\d+)\.csv$", re.IGNORECASE),
        lambda s: f"{movie_id}_{s:05d}.csv", _audio_values, _arff_column)


# =========================================================================================== alignment
@dataclass(frozen=True)
class _AlignConfig:
    """Alignment policy shared by the MediaEval and LIRIS readers (see the module docstring)."""

    segment_seconds: int
    max_gap: int
    max_missing: int
    min_overlap: float
    impute: Optional[str]


def _runs(missing: np.ndarray) -> List[Tuple[int, int]]:
    """Runs ``(first, last)`` of consecutive integers in a sorted array."""
    if not len(missing):
        return []
    breaks = np.flatnonzero(np.diff(missing) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(missing) - 1]])
    return [(int(missing[a]), int(missing[b])) for a, b in zip(starts, ends)]


def _span(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


def _why_missing(track: _Track, sec: int) -> str:
    if sec in track.empty:
        return f"file {track.empty[sec]} is empty"
    return track.describe_missing(sec)


def _densify(track: _Track, movie_id: str, cfg: _AlignConfig, notes: _Notes) -> Tuple[int, np.ndarray]:
    """Dense values over the track's own range ``[first, last]``, filling isolated missing seconds.

    :return: ``(first second, (last - first + 1, dim) values)``
    :raises _SkipMovie: no data, or more / longer gaps than the policy allows
    """
    if len(track.seconds) == 0:
        where = f" ({len(track.empty)} empty file(s), e.g. {next(iter(track.empty.values()))})" if track.empty else ""
        raise _SkipMovie(f"{track.name}: no data{where}; expected e.g. {track.describe_missing(0)}")
    first, last = int(track.seconds[0]), int(track.seconds[-1])
    for sec, path in sorted(track.empty.items()):
        if not first <= sec <= last:
            notes.add(f"{movie_id}: {track.name}: file {path} is empty; second {sec} lies outside the seconds "
                      f"{first}-{last} that have data, so it is not used")
    dense = np.empty((last - first + 1, track.values.shape[1]), dtype=track.values.dtype)
    dense[track.seconds - first] = track.values
    present = np.zeros(last - first + 1, dtype=bool)
    present[track.seconds - first] = True
    missing = np.flatnonzero(~present) + first
    runs = _runs(missing)
    if runs:
        longest = max(b - a + 1 for a, b in runs)
        detail = "; ".join(f"second {_span(a, b)} ({_why_missing(track, a)})" for a, b in runs[:5])
        if longest > cfg.max_gap or len(missing) > cfg.max_missing:
            raise _SkipMovie(
                f"{track.name}: {len(missing)} missing second(s) in {len(runs)} gap(s), longest {longest} s "
                f"(policy: fill gaps of at most max_gap={cfg.max_gap} s and at most "
                f"max_missing={cfg.max_missing} s per modality): {detail}")
        for sec in missing:
            dense[sec - first] = dense[sec - first - 1]
        notes.add(f"{movie_id}: {track.name}: {len(missing)} missing second(s) filled by carrying the previous "
                  f"second forward: {detail}")
    return first, _impute(dense, f"{movie_id}: {track.name}", cfg.impute, notes)


def _impute(dense: np.ndarray, where: str, impute: Optional[str], notes: _Notes) -> np.ndarray:
    """Replace NaN / inf (only present when ``impute`` is set) column-wise: ``ffill`` or ``zero``."""
    bad = ~np.isfinite(dense)
    if impute is None or not bad.any():
        return dense
    n_bad = int(bad.sum())
    if impute == "zero":
        dense = np.where(bad, 0, dense).astype(dense.dtype)
    else:
        if bad.all(axis=0).any():
            j = int(np.flatnonzero(bad.all(axis=0))[0])
            raise DataError(f"{where}: column {j + 1} has no finite value at all; nothing to carry forward")
        rows = np.arange(len(dense))[:, None]
        idx = np.maximum.accumulate(np.where(bad, -1, rows), axis=0)
        first_valid = np.argmax(~bad, axis=0)
        idx = np.where(idx < 0, first_valid[None, :], idx)
        dense = np.take_along_axis(dense, idx, axis=0)
    notes.add(f"{where}: {n_bad} non-finite value(s) imputed ({impute})")
    return dense


@dataclass
class _MovieInputs:
    """Everything read for one movie, before alignment.

    :param features: one track per modality, in modality order
    :param targets: per-target source: ``("track", name, column)``, ``("intervals", array)`` or ``("zeros",)``
    :param target_tracks: per-second target tracks by name (they take part in the common range)
    """

    movie_id: str
    source: str
    features: List[_Track]
    targets: List[tuple]
    target_tracks: Dict[str, _Track] = field(default_factory=dict)


def _common_range(movie_id: str, ranges: Dict[str, Tuple[int, int]], tracks: Dict[str, _Track],
                  cfg: _AlignConfig, notes: _Notes) -> Tuple[int, int]:
    """Seconds covered by every track; notes cuts, skips when the overlap is too small."""
    lo = max(a for a, _ in ranges.values())
    hi = min(b for _, b in ranges.values())
    desc = ", ".join(f"{k} {a}-{b}" for k, (a, b) in ranges.items())
    if hi < lo:
        raise _SkipMovie(f"modalities share no second ({desc})")
    longest = max(b - a + 1 for a, b in ranges.values())
    overlap = (hi - lo + 1) / longest
    if overlap < cfg.min_overlap:
        raise _SkipMovie(f"the seconds common to all modalities ({lo}-{hi}, {hi - lo + 1} s) are only "
                         f"{overlap:.0%} of the longest modality ({longest} s), below min_overlap="
                         f"{cfg.min_overlap:g} ({desc})")
    lost = max(max(lo - a, 0) + max(b - hi, 0) for a, b in ranges.values())
    if lost:
        first = min(a for a, _ in ranges.values())
        last = max(b for _, b in ranges.values())
        limits = [_limit(k, "starts", a, tracks[k]) for k, (a, _) in ranges.items() if a == lo > first] + \
                 [_limit(k, "ends", b, tracks[k]) for k, (_, b) in ranges.items() if b == hi < last]
        level = logging.WARNING if lost > max(10, 2 * cfg.segment_seconds) else logging.INFO
        notes.add(f"{movie_id}: modalities cover different seconds ({desc}); cut to the common seconds "
                  f"{lo}-{hi}, up to {lost} s dropped ({'; '.join(limits)})", level)
    return lo, hi


def _limit(name: str, verb: str, sec: int, track: _Track) -> str:
    """``"fc6 ends at second 24 (MEDIAEVAL18_18-00024_fc6.txt)"``."""
    where = track.file_of(sec)
    return f"{name} {verb} at second {sec}" + ("" if where == name else f" ({where})")


def _grid(movie_id: str, lo: int, hi: int, s: int, notes: _Notes) -> Tuple[int, int]:
    """First second and number of whole ``s``-second segments (anchored at 0) inside ``[lo, hi]``."""
    g0 = -(-lo // s) * s
    n = (hi + 1 - g0) // s
    if n <= 0:
        raise _SkipMovie(f"the common seconds {lo}-{hi} hold no whole {s}-s segment")
    head, tail = g0 - lo, hi + 1 - (g0 + n * s)
    if head or tail:
        parts = ([f"leading seconds {lo}-{g0 - 1}"] if head else []) + \
                ([f"trailing partial segment (seconds {g0 + n * s}-{hi})"] if tail else [])
        notes.add(f"{movie_id}: dropped the {' and the '.join(parts)}: segments are whole {s}-s windows "
                  f"starting at multiples of {s} s", logging.INFO)
    return g0, n


def _interval_coverage(intervals: np.ndarray, secs: np.ndarray) -> np.ndarray:
    """Fraction of each second ``[s, s+1)`` covered by the union of ``intervals``."""
    merged: List[List[float]] = []
    for start, end in sorted(map(tuple, intervals)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    cover = np.zeros(len(secs))
    for start, end in merged:
        cover += np.clip(np.minimum(end, secs + 1.0) - np.maximum(start, secs), 0.0, 1.0)
    return cover


def _assemble(inputs: _MovieInputs, cfg: _AlignConfig, notes: _Notes) -> Movie:
    """Align all tracks of one movie on the second index and cut it into segments.

    :raises _SkipMovie: when a policy says the movie cannot be used
    """
    mid, s = inputs.movie_id, cfg.segment_seconds
    tracks = {t.name: t for t in list(inputs.features) + list(inputs.target_tracks.values())}
    if len(tracks) != len(inputs.features) + len(inputs.target_tracks):
        raise DataError(f"{inputs.source}: two signals of {mid} share a name: {[t.name for t in inputs.features]} "
                        f"{list(inputs.target_tracks)}")
    dense = {name: _densify(track, mid, cfg, notes) for name, track in tracks.items()}
    ranges = {k: (a, a + len(v) - 1) for k, (a, v) in dense.items()}
    lo, hi = _common_range(mid, ranges, tracks, cfg, notes)
    g0, n_seg = _grid(mid, lo, hi, s, notes)
    secs = g0 + np.arange(n_seg * s)
    dim = sum(t.values.shape[1] for t in inputs.features)
    feats = np.empty((len(secs), dim), dtype=np.float32)
    col = 0
    for track in inputs.features:
        start, values = dense[track.name]
        feats[:, col:col + values.shape[1]] = values[secs - start]
        col += values.shape[1]
    per_second = np.zeros((len(secs), len(inputs.targets)))
    for j, spec in enumerate(inputs.targets):
        if spec[0] == "track":
            start, values = dense[spec[1]]
            per_second[:, j] = values[secs - start, spec[2]]
        elif spec[0] == "intervals":
            per_second[:, j] = _interval_coverage(spec[1], secs.astype(np.float64))
    targets = per_second.reshape(n_seg, s, -1).mean(axis=1)
    return Movie(movie_id=mid, features=feats.reshape(n_seg, s, dim), targets=targets.astype(np.float32),
                 times=(g0 + s * np.arange(n_seg)).astype(np.float64), source=inputs.source,
                 notes=list(notes.items))


# ============================================================================================ options
def _check_common(split: str, segment_seconds: float, impute: Optional[str], max_gap: int, max_missing: int,
                  min_overlap: float) -> _AlignConfig:
    """Validate the options shared by both readers."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {list(SPLITS)}")
    s = float(segment_seconds)
    if not math.isfinite(s) or s < 1 or s != int(s):
        raise DataError(f"segment_seconds={segment_seconds!r}: must be a whole number of seconds >= 1 "
                        f"(the features have one frame per second)")
    if impute is not None and impute not in IMPUTE_MODES:
        raise DataError(f"impute={impute!r}: must be None or one of {list(IMPUTE_MODES)}")
    if int(max_gap) < 0 or int(max_missing) < 0:
        raise DataError(f"max_gap={max_gap!r} and max_missing={max_missing!r} must be >= 0")
    if not 0.0 <= float(min_overlap) <= 1.0:
        raise DataError(f"min_overlap={min_overlap!r} must be in [0, 1]")
    return _AlignConfig(int(s), int(max_gap), int(max_missing), float(min_overlap), impute)


def _n_pick(n: int, fraction: float) -> int:
    """How many of ``n`` items a fraction selects: rounded half up, at least 1 and at most ``n - 1``."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, int(math.floor(fraction * n + 0.5))))


def _spread(ids: Sequence[str], k: int) -> List[str]:
    """``k`` ids at evenly spaced positions ``floor((j + 0.5) * n / k)`` of the sorted list ``ids``."""
    n = len(ids)
    return [ids[int((j + 0.5) * n / k)] for j in range(k)]


def _progress(items: Sequence, desc: str, progress: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return items
    return tqdm(items, desc=desc, unit="movie", disable=not progress or len(items) == 0)


# ======================================================================================= MediaEval 2018
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


def _descriptor_sets(index: Dict[str, _MovieFiles]) -> Dict[str, set]:
    """Descriptor sub-directories present for each movie that has visual features."""
    return {m: {p.name for p in f.visual_dir.iterdir() if p.is_dir()}
            for m, f in index.items() if f.visual_dir is not None}


def _choose_descriptors(index: Dict[str, _MovieFiles], requested: Optional[Sequence[str]],
                        notes: _Notes) -> Tuple[str, ...]:
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


def _fear_source(files: _MovieFiles, require_targets: bool, notes: _Notes,
                 tracks: Dict[str, _Track]) -> Tuple[tuple, Optional[str]]:
    """Where the ``fear`` target of one movie comes from; adds a per-second track to ``tracks``.

    :return: the target spec and the format found (``None`` without a file)
    """
    mid = files.movie_id
    if files.fear_file is None:
        if require_targets:
            raise _SkipMovie("no fear annotation file (target 'fear' requested)")
        notes.add(f"{mid}: no fear annotations; fear target is zeros (require_targets=False)")
        return ("zeros",), None
    kind, values = read_fear_annotation(files.fear_file)
    if kind == "per_second":
        track = _file_track(files.fear_file, values)
        tracks[track.name] = track
        notes.add(f"{mid}: fear annotations read from {files.fear_file} as a per-second 0/1 column "
                  f"({len(values)} rows)", logging.INFO)
        return ("track", track.name, 0), kind
    notes.add(f"{mid}: fear annotations read from {files.fear_file} as start/end intervals "
              f"({len(values)} interval(s)); seconds outside every interval are 0", logging.INFO)
    return ("intervals", values), kind


def _target_specs(files: _MovieFiles, targets: Tuple[str, ...], require_targets: bool, allow_nonfinite: bool,
                  notes: _Notes) -> Tuple[List[tuple], Dict[str, _Track], Optional[str]]:
    """Read the annotation files of one movie and say where each target column comes from.

    :return: one spec per target (see :class:`_MovieInputs`), the per-second annotation tracks, and the
        fear format found
    """
    mid = files.movie_id
    tracks: Dict[str, _Track] = {}
    va = None
    if any(t in ("valence", "arousal") for t in targets):
        if files.va_file is not None:
            va = _file_track(files.va_file, read_valence_arousal(files.va_file, allow_nonfinite))
            tracks[va.name] = va
        elif require_targets:
            raise _SkipMovie(f"no valence/arousal annotation file {mid}_Valence-Arousal.txt")
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
                    allow_nonfinite: bool, notes: _Notes) -> List[_Track]:
    """Read every selected modality of one movie (visual descriptors, then audio)."""
    mid = files.movie_id
    tracks = []
    for desc in descriptors:
        desc_dir = files.visual_dir / desc if files.visual_dir is not None else None
        if desc_dir is None or not desc_dir.is_dir():
            raise _SkipMovie(f"no visual descriptor directory visual_features/{mid}/{desc}")
        tracks.append(_read_second_files(_visual_files(desc_dir, mid, desc), dims, allow_nonfinite))
    if audio:
        if files.audio_dir is None:
            raise _SkipMovie(f"no audio_features/{mid} directory")
        track = _read_second_files(_audio_files(files.audio_dir, mid), dims, allow_nonfinite)
        _note_audio_padding(track, files.audio_dir, mid, notes)
        tracks.append(track)
    return tracks


def _note_audio_padding(track: _Track, audio_dir: Path, movie_id: str, notes: _Notes) -> None:
    """Note leading audio seconds that are exact copies of the next one (openSMILE window padding)."""
    v, s = track.values, track.seconds
    r = 1
    while r < len(v) and s[r] == s[0] + r and np.array_equal(v[r], v[0]):
        r += 1
    if r > 1:
        notes.add(f"{movie_id}: audio: files of seconds {_span(int(s[0]), int(s[r - 2]))} in {audio_dir} are "
                  f"exact copies of {track.file_of(int(s[r - 1]))} (padding of the 5-s window); kept at their "
                  f"own seconds", logging.INFO)


def _load_mediaeval_movie(files: _MovieFiles, descriptors: Sequence[str], audio: bool,
                          targets: Tuple[str, ...], require_targets: bool, dims: _Dims,
                          cfg: _AlignConfig, notes: _Notes) -> Tuple[Movie, Optional[str]]:
    """Read, align and segment one MediaEval movie (raises :class:`_SkipMovie` per the policies).

    :return: the movie and the fear-annotation format found (``None`` when not read)
    """
    allow = cfg.impute is not None
    specs, target_tracks, fear_format = _target_specs(files, targets, require_targets, allow, notes)
    features = _feature_tracks(files, descriptors, audio, dims, allow, notes)
    source = str(files.va_file or files.visual_dir or files.audio_dir)
    inputs = _MovieInputs(files.movie_id, source, features, specs, target_tracks)
    return _assemble(inputs, cfg, notes), fear_format


def _check_targets(targets: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """Validate the requested target names (default valence, arousal)."""
    if targets is None:
        return "valence", "arousal"
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets or any(t not in TARGET_NAMES for t in targets) or len(set(targets)) != len(targets):
        raise DataError(f"targets={targets!r}: must be distinct names from {list(TARGET_NAMES)}")
    return targets


def _note_fear_formats(formats: List[str], notes: _Notes) -> None:
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
    cfg = _check_common(split, segment_seconds, impute, max_gap, max_missing, min_overlap)
    targets = _check_targets(targets)
    root = Path(root)
    if not is_mediaeval_root(root):
        raise DataError(f"{root}: no MEDIAEVAL18-{{SET}}-... directory (not a MediaEval 2018 root)")
    index = _discover(root)
    ds_notes = _Notes()
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
    for mid in _progress(ids, f"MediaEval 2018 {split}", progress):
        notes = _Notes()
        try:
            movie, fear_format = _load_mediaeval_movie(index[mid], descriptors, audio, targets, require_targets,
                                                       dims, cfg, notes)
            movies.append(movie)
            formats += [fear_format] if fear_format else []
        except _SkipMovie as exc:
            notes.add(f"{mid}: skipped: {exc}")
        ds_notes.items.extend(notes.items)
    _note_fear_formats(formats, ds_notes)
    if not movies:
        raise DataError(f"{root}: no usable movie in split {split!r}: "
                        + " | ".join(n for n in ds_notes.items if ": skipped: " in n))
    return MovieDataset(movies, modalities, targets, cfg.segment_seconds, float(cfg.segment_seconds),
                        name="mediaeval2018", split=split, notes=ds_notes.items)


# ================================================================================= continuous LIRIS-ACCEDE
def _liris_annotation_dir(root: Path) -> Optional[Path]:
    for d in (root, root / "annotations"):
        if d.is_dir() and any(d.glob("*_Valence.txt")):
            return d
    return None


def is_liris_continuous_root(path: PathLike) -> bool:
    """Whether ``path`` (or ``path/annotations``) holds continuous LIRIS-ACCEDE ``*_Valence.txt`` files.

    :param path: candidate dataset root
    """
    path = Path(path)
    return path.is_dir() and _liris_annotation_dir(path) is not None


def _liris_titles(ann_dir: Path, notes: _Notes) -> List[str]:
    """Titles with both a ``_Valence.txt`` and an ``_Arousal.txt`` file, sorted."""
    valence = {p.name[: -len("_Valence.txt")] for p in ann_dir.glob("*_Valence.txt")}
    arousal = {p.name[: -len("_Arousal.txt")] for p in ann_dir.glob("*_Arousal.txt")}
    for title in sorted(valence ^ arousal):
        have = "Valence" if title in valence else "Arousal"
        notes.add(f"{title}: only {ann_dir / f'{title}_{have}.txt'} exists (no "
                  f"{'Arousal' if have == 'Valence' else 'Valence'} file); film not used")
    return sorted(valence & arousal)


def _safe_id(title: str) -> str:
    """File-system safe movie id for a film title."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", title).strip("._") or "movie"


def liris_continuous_splits(root: PathLike, manifest: Optional[PathLike] = None,
                            split_fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> Dict[str, List[str]]:
    """Titles of each split of a continuous LIRIS-ACCEDE root.

    Without ``manifest``: titles sorted, first 70 % (rounded half up) ``train``, next 15 % ``val``, rest
    ``test`` (the rule of :func:`affect_env.data.tables.assign_splits`, one group per film). With a
    manifest (CSV ``movie,split`` or JSON ``{movie: split}``, movie = title), titles it does not list are
    not used.

    :param root: dataset root
    :param manifest: optional split manifest
    :param split_fractions: (train, val, test) fractions for the rule
    :return: ``{"train": [...], "val": [...], "test": [...]}``
    """
    return _liris_splits(Path(root), manifest, split_fractions, _Notes())[0]


def _liris_splits(root: Path, manifest: Optional[PathLike], split_fractions: Sequence[float],
                  notes: _Notes) -> Tuple[Dict[str, List[str]], Path]:
    from affect_env.data.tables import assign_splits, read_manifest

    ann_dir = _liris_annotation_dir(root)
    if ann_dir is None:
        raise DataError(f"{root}: no *_Valence.txt file in it or in its annotations/ directory")
    titles = _liris_titles(ann_dir, notes)
    if manifest is not None:
        split_of = read_manifest(manifest)
        unknown = sorted(set(split_of) - set(titles))
        if unknown:
            raise DataError(f"{manifest}: films {unknown[:5]} have no annotation files in {ann_dir}")
        unlisted = [t for t in titles if t not in split_of]
        if unlisted:
            notes.add(f"{manifest}: {len(unlisted)} film(s) not listed, not used: {unlisted[:5]}", logging.INFO)
    else:
        split_of = assign_splits(titles, group_pattern=r"^(.+)$", split_fractions=split_fractions)
    return {s: [t for t in titles if split_of.get(t) == s] for s in SPLITS}, ann_dir


def _feature_table(features_dir: Path, title: str) -> Optional[Path]:
    for suffix in (".csv", ".parquet", ".pq"):
        p = features_dir / f"{title}{suffix}"
        if p.is_file():
            return p
    return None


def _read_frame(path: Path):
    """Read a feature table with pandas (errors name the file)."""
    import pandas as pd

    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # any pandas / pyarrow / OS error means the file cannot be read
        raise DataError(f"{path}: cannot read feature table: {type(exc).__name__}: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _time_column(path: Path, columns: Sequence[str]) -> str:
    match = [c for c in columns if c.lower() == "time"]
    if not match:
        raise DataError(f"{path}: no 'time' column (seconds); columns: {list(columns)[:10]}")
    return match[0]


def _liris_modalities(path: Path, columns: List[str],
                      modalities: Optional[Mapping[str, Sequence[str]]]) -> Tuple[Tuple[Modality, ...], List[str]]:
    """Modality layout and ordered feature columns (default: one ``features`` modality, file order)."""
    time_col = _time_column(path, columns)
    if modalities is None:
        cols = [c for c in columns if c != time_col]
        if not cols:
            raise DataError(f"{path}: no feature column besides {time_col!r}")
        return (Modality("features", len(cols)),), cols
    cols, mods = [], []
    for name, names in modalities.items():
        names = list(names)
        missing = [c for c in names if c not in columns]
        if missing or not names:
            raise DataError(f"{path}: modality {name!r}: columns {missing or '(none)'} not in the table")
        cols += names
        mods.append(Modality(str(name), len(names)))
    return tuple(mods), cols


def _feature_values(path: Path, df, cols: List[str], allow_nonfinite: bool) -> np.ndarray:
    """Numeric ``(rows, len(cols))`` array; errors name file, row and column."""
    import pandas as pd

    out = np.empty((len(df), len(cols)))
    row_ref = (lambda i: f"row {i + 1} (line {i + 2})") if path.suffix.lower() == ".csv" else \
        (lambda i: f"row {i + 1}")
    for j, c in enumerate(cols):
        col = df[c]
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & col.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: {row_ref(i)}, column {c!r}: non-numeric value {col.iloc[i]!r}")
        out[:, j] = values
    _check_finite(out, allow_nonfinite, lambda i, j: f"{path}: {row_ref(i)}, column {cols[j]!r}")
    return out


def _liris_feature_track(path: Path, cols: List[str], allow_nonfinite: bool) -> _Track:
    """Feature table -> per-second track (rows averaged per second ``floor(time)``)."""
    df = _read_frame(path)
    time_col = _time_column(path, list(df.columns))
    missing = [c for c in cols if c not in df.columns]
    extra = [c for c in df.columns if c not in cols and c != time_col]
    if missing:
        raise DataError(f"{path}: feature columns {missing[:5]} missing (the first feature table has them)"
                        + (f"; unexpected {extra[:5]}" if extra else ""))
    times = _feature_values(path, df, [time_col], False)[:, 0]
    secs, vals = _per_second(times, _feature_values(path, df, cols, allow_nonfinite), path)
    return _Track("features", secs, vals.astype(np.float32), lambda s: f"no row with {s} <= time < {s + 1} in {path}",
                  lambda s: path.name)


def _split_track(track: _Track, modalities: Sequence[Modality]) -> List[_Track]:
    """One track per modality (columns in modality order) so notes and ranges are per modality."""
    out, col = [], 0
    for m in modalities:
        out.append(_Track(m.name, track.seconds, track.values[:, col:col + m.dim], track.describe_missing,
                          track.file_of))
        col += m.dim
    return out


def load_liris_continuous(
    root: PathLike,
    split: str = "train",
    *,
    segment_seconds: float = 5,
    features_dir: Optional[PathLike] = None,
    modalities: Optional[Mapping[str, Sequence[str]]] = None,
    manifest: Optional[PathLike] = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    impute: Optional[str] = None,
    max_gap: int = 1,
    max_missing: int = 5,
    min_overlap: float = 0.5,
    progress: bool = True,
) -> MovieDataset:
    """Load one split of the continuous LIRIS-ACCEDE annotations with user-provided feature tables.

    Annotations: ``<Title>_Valence.txt`` / ``<Title>_Arousal.txt`` (tab-separated, header
    ``Time Mean Std``; the ``Mean`` is the target) in ``root`` or ``root/annotations``. Features:
    ``features_dir/<Title>.csv`` or ``.parquet`` with a ``time`` column (seconds) and numeric columns, one
    row per frame; every table must have the columns of the first one (sorted by title). Annotation and
    feature rows are averaged per second ``floor(time)``, then aligned and segmented as for MediaEval
    (module docstring).

    :param root: dataset root
    :param split: ``"train"``, ``"val"`` or ``"test"`` (see :func:`liris_continuous_splits`)
    :param segment_seconds: ``S``, seconds per segment (whole number); ``K = S``
    :param features_dir: directory of the feature tables (default ``root/features``)
    :param modalities: ``{modality: [columns]}`` (default one modality ``features`` with every column)
    :param manifest: split manifest (CSV ``movie,split`` or JSON ``{movie: split}``, movie = title)
    :param split_fractions: (train, val, test) fractions of the sorted titles without a manifest
    :param impute: ``None``, ``"ffill"`` or ``"zero"`` for NaN / inf values
    :param max_gap: longest run of missing seconds filled by carrying the previous second forward
    :param max_missing: most missing seconds filled per modality of a film
    :param min_overlap: skip a film whose common seconds are below this fraction of its longest signal
    :param progress: show a tqdm progress bar over films
    :return: the split, ``name="liris_accede_continuous"``
    """
    cfg = _check_common(split, segment_seconds, impute, max_gap, max_missing, min_overlap)
    root = Path(root)
    ds_notes = _Notes()
    splits, ann_dir = _liris_splits(root, manifest, split_fractions, ds_notes)
    fdir = Path(features_dir) if features_dir is not None else root / "features"
    all_titles = [t for s in SPLITS for t in splits[s]]
    tables = {t: _feature_table(fdir, t) for t in sorted(all_titles)}
    first = next((p for p in tables.values() if p is not None), None)
    if first is None:
        raise DataError(f"{fdir}: no feature table <Title>.csv / .parquet for any film (the continuous "
                        f"LIRIS-ACCEDE release has no features; provide one table per film with a 'time' column)")
    mods, cols = _liris_modalities(first, list(_read_frame(first).columns), modalities)
    ds_notes.add(f"split {split!r}: {len(splits[split])} film(s); features from {fdir} ({len(cols)} columns, "
                 f"layout of {first.name}); rows averaged per second", logging.INFO)
    allow = impute is not None
    movies = []
    for title in _progress(splits[split], f"LIRIS-ACCEDE {split}", progress):
        notes = _Notes()
        mid = _safe_id(title)
        try:
            if tables[title] is None:
                raise _SkipMovie(f"no feature table {fdir / (title + '.csv')} (or .parquet)")
            feats = _split_track(_liris_feature_track(tables[title], cols, allow), mods)
            paths = [ann_dir / f"{title}_Valence.txt", ann_dir / f"{title}_Arousal.txt"]
            ann = [_file_track(p, _read_header_table(p, LIRIS_HEADER, allow)[:, :2]) for p in paths]
            inputs = _MovieInputs(mid, str(paths[0]), feats, [("track", t.name, 0) for t in ann],
                                  {t.name: t for t in ann})
            movies.append(_assemble(inputs, cfg, notes))
        except _SkipMovie as exc:
            notes.add(f"{mid}: skipped: {exc}")
        ds_notes.items.extend(notes.items)
    return MovieDataset(movies, mods, ("valence", "arousal"), cfg.segment_seconds, float(cfg.segment_seconds),
                        name="liris_accede_continuous", split=split, notes=ds_notes.items)
