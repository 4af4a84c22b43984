"""``mlops-nb run --resume RUN_ID``: continue a failed pipeline run from its failed stage.

The failed run saved what each cell wrote (``checkpoints``). A fresh kernel runs a copy of the
notebook in which every cell before the failed stage is replaced by its imports and its
``def``/``class`` statements (modules and functions are not data), then one cell restores the
saved values as they were before that stage, and the rest runs as written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import nbformat
from nbformat.v4 import new_code_cell

from mlops_nb.capture.code import definitions_only
from mlops_nb.errors import MlopsError
from mlops_nb.pipeline.notebook import Pipeline


@dataclass
class ResumePlan:
    failed_run_id: str
    stage: str
    restore_before: int  # the failed run's cell_seq where the failed stage starts
    resume_index: int  # the notebook cell index where execution really starts
    skipped_cells: int
    skipped_seconds: float
    params: dict


def plan_resume(log, failed_run_id: str, pipeline: Pipeline) -> ResumePlan:
    """Where to restart, checked against what the failed run recorded."""
    record = log.run(failed_run_id)
    status = record.info["status"]
    if status not in ("failed", "crashed"):
        raise MlopsError(
            f"run {record.run_id[:8]} is {status}: only a failed or crashed run can be resumed"
        )
    cells = record.cells.sort_values("cell_seq")
    failed = cells[cells["status"] == "error"]
    if failed.empty:
        raise MlopsError(f"run {record.run_id[:8]} has no failed cell to resume from")
    first_failed = failed.iloc[0]
    stage = first_failed["stage"]
    if not isinstance(stage, str):
        raise MlopsError(
            f"run {record.run_id[:8]} failed in cell {first_failed['cell_seq']}, which belongs "
            "to no stage: mark the notebook's cells with stages to resume it"
        )
    before_failure = cells[cells["cell_seq"] <= first_failed["cell_seq"]]
    stage_start = int(first_failed["cell_seq"])
    for row in before_failure.iloc[::-1].itertuples():  # back to the start of that stage
        if row.stage != stage:
            break
        stage_start = int(row.cell_seq)
    saved = len(log.checkpoints(record.run_id, before=stage_start))
    if stage_start > 1 and saved == 0:
        raise MlopsError(
            f"run {record.run_id[:8]} saved no checkpoints (was it run with mlops-nb run?)"
        )
    marked = [c for c in pipeline.cells if c.stage == stage and c.marked]
    if not marked:
        raise MlopsError(f"the notebook has no stage {stage!r} any more: cannot resume there")
    skipped = cells[cells["cell_seq"] < stage_start]
    return ResumePlan(
        failed_run_id=record.run_id,
        stage=stage,
        restore_before=stage_start,
        resume_index=marked[0].index,
        skipped_cells=len(skipped),
        skipped_seconds=float(skipped["duration_s"].sum()),
        params=record.params,
    )


def notebook_for_resume(
    notebook: nbformat.NotebookNode, plan: ResumePlan, pipeline: Pipeline
) -> nbformat.NotebookNode:
    """A copy: cells before the resume point reduced to definitions, then a restore cell
    (which leaves the parameters alone: this run's values win over the failed run's)."""
    resumed = copy.deepcopy(notebook)
    for index, cell in enumerate(resumed.cells[: plan.resume_index]):
        if cell.cell_type != "code" or index == pipeline.parameters_index:
            continue
        stage = _stage_marker_text(cell)
        cell.source = f"# mlops: restored stage={stage} from={plan.failed_run_id}\n" + (
            definitions_only(cell.source)
        )
    keep = ",".join(p.name for p in pipeline.parameters)
    restore = new_code_cell(
        "# mlops: restored stage=\n"
        f"%mlops restore {plan.failed_run_id} --before {plan.restore_before}"
        + (f" --except {keep}" if keep else "")
    )
    restore.metadata["tags"] = ["mlops-restore"]
    resumed.cells.insert(plan.resume_index, restore)
    return resumed


def _stage_marker_text(cell: nbformat.NotebookNode) -> str:
    from mlops_nb.pipeline.notebook import stage_marker

    return stage_marker(cell) or ""
