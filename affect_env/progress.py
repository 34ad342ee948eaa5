"""Progress bars that suit both a terminal and a log file.

In a terminal a tqdm bar redraws itself ten times a second. Where stderr goes to a file (a job's log, ``nohup``),
every redraw is appended to the file, so a long loop leaves thousands of carriage-return updates in it; there the
bar is redrawn at most every :data:`LOG_INTERVAL` seconds, which keeps a readable record of progress.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable, Optional

from tqdm.auto import tqdm

#: seconds between two redraws of a bar whose output is not a terminal
LOG_INTERVAL = 30.0


def progress_bar(iterable: Optional[Iterable] = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, redrawn at most every :data:`LOG_INTERVAL` seconds where stderr is not a
    terminal (unless ``mininterval`` is given)."""
    stream = kwargs.get("file") or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs.setdefault("mininterval", LOG_INTERVAL)
    return tqdm(iterable, **kwargs)
