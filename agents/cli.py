"""The command line of every training entry point, generated from the recipe config (:mod:`agents.config`).

Every field of :class:`~agents.config.TrainConfig` is a flag named after it (``--n-slots``, ``--tau``,
``--dataset-options length=2000``), grouped in ``--help`` by the part it belongs to, with the recipe's value shown
as its default. Values are resolved in this order: the named recipe (``--recipe``), then a ``--config`` file
(JSON or YAML), then the flags. Entry points with options of their own (a study's, an ablation's) subclass
:class:`Command` and get the same parsing.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar

import tyro

from affect_env.data import DataError
from agents.config import TrainConfig, field_names, read_config_file, recipe, unchecked
from agents.runs.directory import RunDirectory
from agents.runs.pipeline import train


@dataclass
class Command:
    """The options of a training command beside the config's fields."""

    config: Optional[Path] = None
    """JSON or YAML file of config fields (nested, dotted or bare names), applied on top of the recipe"""
    paper_faithful: bool = False
    """the paper's recipe as written: an alias of --recipe paper"""
    resume: Optional[Path] = None
    """continue the interrupted run in this directory (its own config is used)"""
    progress: bool = True
    """progress bars (--no-progress: none)"""
    train: TrainConfig = field(default_factory=TrainConfig)


C = TypeVar("C", bound=Command)


def parse_command(cls: type[C], argv: Optional[Sequence[str]], prog: str, description: str,
                  defaults: Optional[dict] = None) -> C:
    """Parse ``argv`` into ``cls`` (a :class:`Command`): recipe, then ``--config`` file, then flags.

    :param defaults: config fields this entry point sets before the file and the flags (e.g. its ``out``)
    :raises ValueError: for a bad recipe, config file or value (the message names the file or field)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", default=None)
    pre.add_argument("--paper-faithful", action="store_true")
    pre.add_argument("--config", type=Path, default=None)
    known, _ = pre.parse_known_args(argv)
    name = known.recipe or ("paper" if known.paper_faithful else "default")
    if known.paper_faithful and name != "paper":
        raise ValueError(f"--paper-faithful is --recipe paper; it contradicts --recipe {name}")
    base = recipe(name)
    with unchecked():  # the file and the flags may change fields together: the whole config is checked below
        if defaults:
            base = base.update(defaults, prog)
        if known.config is not None:
            base = base.update(read_config_file(known.config), str(known.config))
    with unchecked():  # values are checked below, as one config, so a bad one is reported in one line
        parsed = tyro.cli(cls, args=argv, default=cls(train=base), prog=prog, description=description,
                          config=(tyro.conf.OmitArgPrefixes,))
    where = "command line" if known.config is None else f"command line and {known.config}"
    parsed.train = TrainConfig.from_dict(parsed.train.to_dict(), where)
    return parsed


def explicit_fields(argv: Optional[Sequence[str]], command: Command) -> set:
    """The config fields the user set, by a flag or in the ``--config`` file (per-algorithm defaults leave them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    names = set(command.train.flat())
    chosen = {f for f in flags if f in names}
    if command.config is not None:
        chosen |= field_names(read_config_file(command.config), str(command.config))
    return chosen


def report_interrupt(out) -> int:
    """Say on Ctrl-C how to go on with the run in ``out``; the exit status 130."""
    if RunDirectory(out).has_checkpoint():
        print(f"interrupted: continue with --resume {out} (its last checkpoint is kept)", file=sys.stderr)
    else:
        print(f"interrupted before the first checkpoint: --resume {out} starts the training again (a finished "
              "encoder and writer pretraining are kept)", file=sys.stderr)
    return 130


def train_and_report(cfg: TrainConfig, resume: bool = False, progress: bool = True, **kwargs) -> int:
    """Train ``cfg`` (:func:`agents.runs.train`, with ``kwargs``) and print its run directory and summary as JSON;
    on Ctrl-C or SIGTERM say how to go on (:func:`report_interrupt`). The exit status: 0, or 130 if interrupted."""
    try:
        summary = train(cfg, resume=resume, progress=progress, **kwargs)
    except KeyboardInterrupt:
        return report_interrupt(cfg.run.out)
    print(json.dumps({"run": cfg.run.out, **summary}, indent=2))
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_cli(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None,
            interrupted: str = "interrupted") -> int:
    """Run ``main``; bad data or arguments print one ``error:`` line and exit 2, without a traceback.

    :param interrupted: the line printed on Ctrl-C (exit status 130)
    """
    signal.signal(signal.SIGTERM, _interrupt)  # a polite kill stops a run as Ctrl-C does: checkpointed
    try:
        return main(argv)
    except (DataError, ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
