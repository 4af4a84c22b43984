"""A notebook read as a pipeline: its stages, its parameters cell, its declared experiment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mlops_nb.capture.track_line import stage_from_tags, track_line
from mlops_nb.errors import TrackLineError
from mlops_nb.pipeline.parameters import Parameter, parameters_cell, parse_parameters

_TRACK_LINE = re.compile(r"^[ \t]*%mlops[ \t]+track\b(.*)$", re.MULTILINE)
_EXPERIMENT = re.compile(r"(?:--experiment|-e)[ =]+(\S+)")


@dataclass
class CellInfo:
    index: int
    cell_id: str | None
    stage: str | None  # the stage the cell belongs to (marked, or inherited from before)
    marked: bool  # True when the cell itself carries the stage (magic or tag)
    source: str


@dataclass
class Stage:
    name: str
    cells: list[CellInfo] = field(default_factory=list)


@dataclass
class Pipeline:
    path: str
    title: str | None
    parameters: list[Parameter]
    parameters_index: int | None
    cells: list[CellInfo]
    experiment: str | None
    skipped_parameter_lines: list[str] = field(default_factory=list)  # did not parse

    def parameter_warnings(self) -> list[str]:
        """One line per line of the parameters cell that was skipped because it does not parse."""
        return [
            f"the parameters cell's {where.split(':', 1)[0]} does not parse and was skipped:"
            f"{where.split(':', 1)[1]}"
            for where in self.skipped_parameter_lines
        ]

    @property
    def stages(self) -> list[Stage]:
        """Stages in notebook order; a stage used twice (train, train) is listed once."""
        stages: dict[str, Stage] = {}
        for cell in self.cells:
            if cell.stage is not None:
                stages.setdefault(cell.stage, Stage(cell.stage)).cells.append(cell)
        return list(stages.values())

    def stage_of(self, index: int) -> str | None:
        for cell in self.cells:
            if cell.index == index:
                return cell.stage
        return None


def stage_marker(cell: nbformat.NotebookNode) -> str | None:
    """The stage a cell declares itself, by ``%%mlops track STAGE`` or an ``mlops:STAGE`` tag."""
    if cell.cell_type != "code":
        return None
    try:
        marked = track_line(cell.source)
    except TrackLineError:  # the kernel will refuse this cell; it marks no stage
        return None
    if marked is not None:
        return marked[0]
    return stage_from_tags(cell.get("metadata", {}).get("tags", []))


def read_pipeline(notebook_path: str | Path, notebook: nbformat.NotebookNode | None = None):
    """Stages (unmarked cells fall into the stage before them), parameters, experiment."""
    if notebook is None:
        notebook = nbformat.read(str(notebook_path), as_version=4)
    found = parameters_cell(notebook)
    skipped: list[str] = []
    parameters = parse_parameters(found[1], skipped) if found else []
    cells: list[CellInfo] = []
    current: str | None = None
    experiment = None
    title = None
    any_marked = any(stage_marker(cell) for cell in notebook.cells)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and title is None:
            heading = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            title = heading.group(1).strip() if heading else None
        if cell.cell_type != "code":
            continue
        for line in _TRACK_LINE.findall(cell.source):
            named = _EXPERIMENT.search(line)
            experiment = named.group(1).strip("'\"") if named else experiment
        marker = stage_marker(cell)
        if marker:
            current = marker
        elif not any_marked:
            current = Path(str(notebook_path)).stem  # no annotations: one stage
        cells.append(CellInfo(index, cell.get("id"), current, bool(marker), cell.source))
    return Pipeline(
        path=str(notebook_path),
        title=title,
        parameters=parameters,
        parameters_index=found[0] if found else None,
        cells=cells,
        experiment=experiment,
        skipped_parameter_lines=skipped,
    )
