"""``python -m affect_env.features extract PATH... --out DIR``: movie files to per-movie feature tables.

Each movie becomes ``DIR/<movie id>.parquet`` (or ``.csv``) in the generic table format, and ``DIR/features.json``
records the settings, the columns of each modality and every movie. With ``--annotations ANN`` the tables also
get the targets (``ANN/<stem>.csv`` with ``time,valence,arousal``, or LIRIS-ACCEDE ``<stem>_Valence.txt`` /
``<stem>_Arousal.txt``), ready for ``python -m agents.train_ddpg --dataset DIR``. A rerun skips the movies already
extracted. A movie that cannot be extracted is one ``error:`` line naming its file (exit status 2 at the end).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from affect_env.data.types import DataError
from affect_env.features.extract import MODALITIES, TABLE_FORMATS, ExtractionSettings, extract_videos

DEFAULTS = ExtractionSettings()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m affect_env.features", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="extract feature tables from movie files",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ex.add_argument("paths", nargs="+", type=Path, help="movie files and/or folders of movies")
    ex.add_argument("--out", required=True, type=Path, help="folder of the tables and features.json")
    ex.add_argument("--modalities", default=",".join(DEFAULTS.modalities),
                    help=f"comma-separated, among {', '.join(MODALITIES)}")
    ex.add_argument("--annotations", type=Path, default=None,
                    help="folder of annotation files: <stem>.csv (time + targets) or LIRIS-ACCEDE "
                         "<stem>_Valence.txt / <stem>_Arousal.txt")
    ex.add_argument("--targets", default=",".join(DEFAULTS.targets), help="target columns of the annotations")
    ex.add_argument("--rate", type=float, default=DEFAULTS.rate, help="table rows per second")
    ex.add_argument("--width", type=int, default=DEFAULTS.width, help="frames decoded at this width (pixels)")
    ex.add_argument("--face-fps", type=float, default=DEFAULTS.face_fps, help="frames per second searched for faces")
    ex.add_argument("--face-cascade", default=None, help="Haar cascade XML (default: OpenCV's frontal face)")
    ex.add_argument("--cut-threshold", type=float, default=DEFAULTS.cut_threshold,
                    help="mean HSV difference (0-255) that starts a new shot")
    ex.add_argument("--audio-rate", type=int, default=DEFAULTS.audio_rate, help="audio sampling rate (Hz)")
    ex.add_argument("--format", default=DEFAULTS.table_format, choices=TABLE_FORMATS, help="table file format")
    ex.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                    help="weights of a deep modality (vggish, places, expression, pose): a file, or NAME=download for "
                         "the authors' release; once per modality")
    ex.add_argument("--deep-fps", type=float, default=DEFAULTS.deep_fps,
                    help="frames per second given to places and pose (expression follows --face-fps)")
    ex.add_argument("--jobs", type=int, default=None, help="parallel processes (default: one per core)")
    ex.add_argument("--force", action="store_true", help="extract again what is already done")
    ex.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _names(text: str) -> tuple:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _pair(text: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise DataError(f"--weights {text}: expected NAME=PATH (or NAME=download)")
    return name.strip(), value.strip()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; bad input prints ``error:`` lines (one per file) and returns 2."""
    args = _parser().parse_args(argv)
    try:
        weights = dict(_pair(w) for w in args.weights)
        settings = ExtractionSettings(
            modalities=_names(args.modalities), rate=args.rate, width=args.width, face_fps=args.face_fps,
            face_cascade=args.face_cascade, cut_threshold=args.cut_threshold, audio_rate=args.audio_rate,
            targets=_names(args.targets), table_format=args.format, deep_fps=args.deep_fps, weights=weights)
        report = extract_videos(args.paths, args.out, settings, annotations=args.annotations, jobs=args.jobs,
                                force=args.force, progress=not args.no_progress,
                                on_failure=lambda line: print(f"error: {line}", file=sys.stderr))
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the tables already written are complete (written atomically)", file=sys.stderr)
        return 130
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(json.dumps({"out": str(report.out), "extracted": len(report.done), "skipped": len(report.skipped),
                      "failed": len(report.failed), "wall_s": round(report.wall_s, 1)}, indent=2))
    return 2 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
