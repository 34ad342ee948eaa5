"""Atomic file writes: the project's one way to write a file that must never be left half-written.

Every writer (a run's checkpoints, models, tables, figures, a study's results, the encoder) writes into a
temporary file in the target's own folder and renames it over the target (:func:`os.replace`, atomic on POSIX
and Windows). A crash or Ctrl-C leaves either the old file or the new one, never a truncated one, and two
processes finishing together never mix their bytes.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path`` (mode 0644, as
    ordinary files get), on an exception it is removed and ``path`` is left as it was.

    The temporary name keeps ``path``'s suffix (``.model.zip.x1y2.tmp.zip``), so writers that add or check a
    suffix (SB3's ``save``, matplotlib's ``savefig``) write exactly there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
