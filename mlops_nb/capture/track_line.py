"""The ``%%mlops track STAGE [--name NAME]`` line and ``mlops:STAGE`` tags, read in one place.

The tracker (what a kernel records) and the pipeline (``pipeline show``, ``--resume``, the
docs) must agree on which stage a cell is, so both ask this module. Pure: no IPython; a bad
line raises ``TrackLineError``, which the notebook side turns into a ``UsageError``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from mlops_nb.errors import TrackLineError

STAGES = ("ingest", "clean", "explore", "features", "train", "evaluate")
TRACK_CELL = re.compile(r"^[ \t]*%%mlops[ \t]+track\b([^\n]*)")
TAG_PREFIX = "mlops:"
_STAGE_NAME = re.compile(r"[A-Za-z][\w.-]*")


def parse_track_args(arguments: str) -> tuple[str, str | None]:
    """``(stage, name)`` from what follows ``%%mlops track``: ``STAGE`` and ``--name NAME`` in
    either order (``-n NAME`` and ``--name=NAME`` too)."""
    try:
        words = shlex.split(arguments)
    except ValueError as error:
        raise TrackLineError(f"%%mlops track: {error}") from None
    stage, name = None, None
    while words:
        word = words.pop(0)
        if word in ("--name", "-n"):
            if not words:
                raise TrackLineError("%%mlops track: --name needs a value")
            name = words.pop(0)
        elif word.startswith("--name="):
            name = word.split("=", 1)[1]
        elif word.startswith("-"):
            raise TrackLineError(f"%%mlops track: unknown option {word} (use STAGE [--name NAME])")
        elif stage is None:
            stage = word
        else:
            raise TrackLineError(f"%%mlops track: one stage per cell, got {stage!r} and {word!r}")
    if stage is None:
        raise TrackLineError(
            f"%%mlops track needs a stage: one of {', '.join(STAGES)}, or a name of your own"
        )
    if not _STAGE_NAME.fullmatch(stage):
        raise TrackLineError(
            f"%%mlops track: {stage!r} is not a stage name (letters, digits, _ - .)"
        )
    return stage, name


def track_line(source: str) -> tuple[str, str | None, str] | None:
    """``(stage, name, body)`` of a cell that starts with ``%%mlops track``, None for any other
    cell; ``TrackLineError`` when the line is there but its arguments are wrong."""
    match = TRACK_CELL.match(source)
    if match is None:
        return None
    stage, name = parse_track_args(match.group(1))
    return stage, name, source[match.end() :].removeprefix("\n")


def stage_from_tags(tags: Iterable[object]) -> str | None:
    """The stage of the first ``mlops:STAGE`` cell tag, if any."""
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(TAG_PREFIX) and len(tag) > len(TAG_PREFIX):
            return tag[len(TAG_PREFIX) :]
    return None
