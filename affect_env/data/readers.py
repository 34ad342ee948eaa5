"""Low-level file parsing shared by every dataset reader: numbers out of text files and tables, with errors
that name the file, the line or row, and the column.

* **Delimited text tables** (tab-, comma- or whitespace-separated, optional header): :func:`split_text_table`,
  :func:`table_values`, :func:`read_header_table` (MediaEval / LIRIS-ACCEDE annotation files, fear files).
* **One row of values per file** (MediaEval's one file per second): :func:`strip_row` for a comma-separated
  line, :func:`arff_row_values` for the data row of a Weka ARFF file, then :func:`parse_rows` on whole blocks
  of rows (pyarrow, multi-threaded; a NumPy fallback names the first bad cell).
* **CSV / Parquet data frames** (generic per-movie tables, LIRIS-ACCEDE feature tables): :func:`read_table`,
  :func:`numeric_columns`, :func:`row_ref`.

The dataset readers differ in layout, not in how a cell becomes a float or how a bad one is reported, so
that is written once, here. Nothing in this module knows about movies, seconds or splits.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from affect_env.data.types import DataError

__all__ = [
    "CSV_SUFFIXES", "PARQUET_SUFFIXES", "TABLE_SUFFIXES", "arff_column", "arff_data_row", "arff_row_values",
    "check_finite", "float_cells", "numeric_columns", "parse_rows", "read_header_table", "read_table",
    "row_ref", "split_text_table", "strip_row", "table_values",
]

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


# ====================================================================================== numeric cells
def float_cells(cells: Sequence, path: Path, where: Callable[[int], str]) -> np.ndarray:
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


def check_finite(values: np.ndarray, allow: bool, where: Callable[[int, int], str]) -> None:
    """Raise a :class:`DataError` at the first NaN / inf of a 2-d array unless ``allow``."""
    if allow:
        return
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise DataError(f"{where(i, j)}: value {values[i, j]} is not finite (pass impute='ffill' to carry the "
                        f"last valid value forward)")


# ================================================================================ one row per file
def _parse_rows_fast(rows: List[bytes], dim: int) -> Optional[np.ndarray]:
    """Parse comma-separated rows of ``dim`` values with pyarrow (multi-threaded); ``None`` if it fails."""
    try:
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


def parse_rows(rows: List[bytes], paths: List[Path], dim: int, allow_nonfinite: bool,
               describe: Callable[[Path, int], str]) -> np.ndarray:
    """Parse per-file rows (each ``dim`` comma-separated values) into ``(n, dim)`` float32.

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
        values = np.stack([float_cells(r.split(b","), p, lambda j, p=p: describe(p, j))
                           for r, p in zip(rows, paths)])
    check_finite(values, allow_nonfinite, lambda i, j: f"{paths[i]}: {describe(paths[i], j)}")
    return values.astype(np.float32)


def strip_row(raw: bytes, path: Path) -> bytes:
    """One line of comma-separated values, stripped (a trailing comma is tolerated)."""
    row = raw.strip().rstrip(b",").strip()
    if b"\n" in row:
        n = len([ln for ln in row.splitlines() if ln.strip()])
        raise DataError(f"{path}: {n} non-empty lines, expected one line of comma-separated values")
    if b"," not in row and len(row.split()) > 1:
        row = b",".join(row.split())  # whitespace-separated values
    return row


def _arff_attribute_name(raw: bytes, index: int) -> str:
    """Name of the ``index``-th (0-based) ``@attribute`` of an ARFF header, or ``""``."""
    names = re.findall(rb"^\s*@attribute\s+(\S+)", raw, flags=re.IGNORECASE | re.MULTILINE)
    return names[index].decode(errors="replace") if index < len(names) else ""


def arff_data_row(raw: bytes, path: Path) -> Optional[bytes]:
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


def arff_row_values(raw: bytes, path: Path) -> Optional[bytes]:
    """The comma-separated feature values of an ARFF file's one data row (name and class dropped), or
    ``None`` when the file is empty or has no data row."""
    row = arff_data_row(raw, path)
    return None if row is None else _arff_values(row, path)


def arff_column(path: Path, j: int) -> str:
    """Describe value ``j`` of an ARFF data row (column ``j + 2`` of the row, attribute ``j + 1``)."""
    name = _arff_attribute_name(path.read_bytes(), j + 1)
    return f"'@data' row, column {j + 2}" + (f" (attribute {name})" if name else "")


# ================================================================================ delimited text tables
def split_text_table(path: Path) -> Tuple[List[int], List[List[str]]]:
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


def table_values(path: Path, line_nos: List[int], rows: List[List[str]], columns: Sequence[int],
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
            float_cells(list(row), path, lambda j, i=i: f"line {line_nos[i]}, column {names[columns[j]]!r}")
        raise  # pragma: no cover - the loop raised
    check_finite(values, allow_nonfinite,
                 lambda i, j: f"{path}: line {line_nos[i]}, column {names[columns[j]]!r}")
    return values


def read_header_table(path: Path, header: Sequence[str], allow_nonfinite: bool) -> np.ndarray:
    """Read a text table whose first line must be ``header`` (case-insensitive); all columns numeric."""
    line_nos, rows = split_text_table(path)
    if not rows:
        raise DataError(f"{path}: file is empty (expected header {' '.join(header)!r} and one row per second)")
    got = rows[0]
    if [c.lower() for c in got] != [c.lower() for c in header]:
        raise DataError(f"{path}: line {line_nos[0]}: header {got}, expected {list(header)} (tab-separated)")
    return table_values(path, line_nos[1:], rows[1:], range(len(header)), list(header), allow_nonfinite)


# ========================================================================== CSV / Parquet data frames
def row_ref(path: Path, i: int) -> str:
    """Human row reference for 0-based data row ``i`` of a table (header excluded; CSV adds the line)."""
    if path.suffix.lower() in CSV_SUFFIXES:
        return f"row {i + 1} (line {i + 2})"
    return f"row {i + 1}"


def read_table(path: Path, allow_no_rows: bool = False) -> pd.DataFrame:
    """Read one CSV (``.csv``) or Parquet (any other suffix) file into a data frame with string column names.

    :param path: the file
    :param allow_no_rows: accept a header without rows (an empty frame) instead of raising
    :raises DataError: the file cannot be read, is empty, or repeats a column name
    """
    try:
        if path.suffix.lower() in CSV_SUFFIXES:
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header, no rows)") from None
    except Exception as exc:  # pandas / pyarrow / OS / decoding errors all mean "cannot read this file"
        kind = "CSV" if path.suffix.lower() in CSV_SUFFIXES else "Parquet"
        raise DataError(f"{path}: cannot read as {kind}: {type(exc).__name__}: {exc}") from exc
    if len(df) == 0 and not allow_no_rows:
        raise DataError(f"{path}: empty file (header only, no rows); columns: {list(df.columns)}")
    if not all(isinstance(c, str) for c in df.columns):
        df.columns = [str(c) for c in df.columns]
    if df.columns.has_duplicates:
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise DataError(f"{path}: column name(s) {dup} appear more than once")
    return df


def numeric_columns(path: Path, df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``(n, len(columns))`` float64 of the named columns; a non-numeric value raises naming its row and
    column (empty cells become NaN)."""
    out = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        s = df[c]
        if s.dtype.kind in "biuf":
            out[:, j] = s.to_numpy(dtype=np.float64)
            continue
        num = pd.to_numeric(s, errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy() & s.notna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{path}: {row_ref(path, i)}, column {c!r}: non-numeric value {s.iloc[i]!r}"
                            f" ({len(bad)} such value(s) in this column)")
        out[:, j] = num.to_numpy(dtype=np.float64, na_value=np.nan)
    return out
