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


class LogBar(tqdm):
    """A bar for a log file: a new postfix waits for the next timed redraw instead of forcing one."""

    def set_postfix(self, ordered_dict=None, refresh: bool = False, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = False) -> None:
        super().set_postfix_str(s, refresh)


def progress_bar(iterable: Optional[Iterable] = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``; where stderr is not a terminal, a :class:`LogBar` redrawn at most every
    :data:`LOG_INTERVAL` seconds (unless ``mininterval`` is given), postfix changes included."""
    stream = kwargs.get("file") or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(iterable, **kwargs)
    kwargs.setdefault("mininterval", LOG_INTERVAL)
    return LogBar(iterable, **kwargs)
