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
# Options of the track line that take a value: spelling -> key in ``track_options()``.
# --sensitive COLUMN[,COLUMN]: fairness of the cell's predictions per group of COLUMN, with
# --labels VAR / --predictions VAR when they cannot be found (capture/fairness.py).
VALUE_OPTIONS = {
    "--name": "name", "-n": "name",
    "--sensitive": "sensitive", "--labels": "labels", "--predictions": "predictions",
    "--expect": "expect",
}  # fmt: skip
# Options without a value: spelling -> key (its value in ``track_options()`` is "true").
# --expect REF checks the DataFrames the cell wrote (capture/expectations.py); a failure
# fails the cell unless --warn-only.
FLAG_OPTIONS = {"--warn-only": "warn_only"}


def parse_track_args(arguments: str) -> tuple[str, str | None]:
    """``(stage, name)`` from what follows ``%%mlops track``: ``STAGE`` and ``--name NAME`` in
    either order (``-n NAME`` and ``--name=NAME`` too)."""
    stage, options = parse_track_line(arguments)
    return stage, options.get("name")


def parse_track_line(arguments: str) -> tuple[str, dict[str, str]]:
    """``(stage, options)`` from what follows ``%%mlops track``: the stage and each option of
    ``VALUE_OPTIONS`` given (``--opt VALUE`` or ``--opt=VALUE``), in any order."""
    try:
        words = shlex.split(arguments)
    except ValueError as error:
        raise TrackLineError(f"%%mlops track: {error}") from None
    stage: str | None = None
    options: dict[str, str] = {}
    while words:
        word = words.pop(0)
        spelling, given, value = word.partition("=")
        if spelling in VALUE_OPTIONS and spelling.startswith("--" if given else "-"):
            if not given:
                if not words:
                    raise TrackLineError(f"%%mlops track: {word} needs a value")
                value = words.pop(0)
            options[VALUE_OPTIONS[spelling]] = value
        elif word in FLAG_OPTIONS:
            options[FLAG_OPTIONS[word]] = "true"
        elif word.startswith("-"):
            raise TrackLineError(
                f"%%mlops track: unknown option {word} (use STAGE [--name NAME] "
                "[--sensitive COLUMN [--labels VAR] [--predictions VAR]] "
                "[--expect RUN_ID:DATASET|FILE.yaml [--warn-only]])"
            )
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
    if ("labels" in options or "predictions" in options) and "sensitive" not in options:
        raise TrackLineError("%%mlops track: --labels and --predictions go with --sensitive")
    if "warn_only" in options and "expect" not in options:
        raise TrackLineError("%%mlops track: --warn-only goes with --expect")
    return stage, options


def track_options(source: str) -> dict[str, str]:
    """The options of a cell's ``%%mlops track`` line (``{}`` for any other cell)."""
    match = TRACK_CELL.match(source)
    return parse_track_line(match.group(1))[1] if match else {}


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
