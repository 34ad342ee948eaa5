"""What the command lines of a study (:mod:`tuning.optimize`) and of the ablation (:mod:`tuning.ablate_slots`)
share: parsing with the training commands' flags (:func:`agents.cli.parse_command`), no ``--resume``, and no
flag fixing a field that the tool itself sets per trial or per run."""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

from agents.cli import C, explicit_fields, parse_command


def flag_fields(argv: Optional[Sequence[str]], command: C) -> set:
    """The config fields given as flags on the command line (a ``--config`` file's fields are not counted)."""
    return explicit_fields(argv, dataclasses.replace(command, config=None))


def parse_tool_command(cls: type[C], argv: Optional[Sequence[str]], prog: str, description: str, *,
                       resume_hint: str, set_by_tool: Mapping[str, str]) -> tuple[C, set]:
    """Parse ``argv`` into ``cls`` and refuse what a tool that trains many runs cannot take.

    :param resume_hint: why ``--resume`` is refused and what to do instead
    :param set_by_tool: ``{config field: why it cannot be given as a flag}``; a ``--config`` file may hold these
        fields (e.g. a study's ``best_params.json`` as the base of another study): the tool replaces them
    :return: the parsed command and the config fields given as flags (:func:`flag_fields`)
    :raises ValueError: naming the flag
    """
    args = parse_command(cls, argv, prog, description)
    if args.resume:
        raise ValueError(f"--resume {args.resume}: {resume_hint}")
    flags = flag_fields(argv, args)
    values = args.train.flat()
    for name, why in set_by_tool.items():
        if name in flags:
            raise ValueError(f"--{name.replace('_', '-')} {values[name]}: {why}")
    return args, flags


__all__ = ["flag_fields", "parse_tool_command"]
