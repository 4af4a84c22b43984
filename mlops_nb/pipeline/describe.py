"""``mlops-nb pipeline show``: a notebook's stages, typed parameters, data flow and schedules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlops_nb.errors import LogNotFoundError, MlopsError
from mlops_nb.pipeline.notebook import Pipeline, read_pipeline
from mlops_nb.pipeline.parameters import load_smoke_pairs


def show_from_cli(args: argparse.Namespace) -> int:
    if not Path(args.notebook).is_file():
        raise MlopsError(f"no notebook at {args.notebook}")
    description = describe(args.notebook, getattr(args, "log", None))
    for warning in description["warnings"]:
        print(f"mlops-nb pipeline show: warning: {warning}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(description, indent=2, default=str))
    else:
        print(to_text(description))
    return 0


def describe(notebook: str, log_path: str | None = None) -> dict[str, Any]:
    """Everything ``pipeline show`` prints, as plain data."""
    pipeline = read_pipeline(notebook)
    description: dict[str, Any] = {
        "notebook": notebook,
        "title": pipeline.title,
        "experiment": pipeline.experiment,
        "parameters": [p.to_record() for p in pipeline.parameters],
        "smoke": dict(load_smoke_pairs(notebook)),
        "stages": [
            {
                "name": stage.name,
                "cells": [
                    {"index": cell.index + 1, "id": cell.cell_id, "first_line": _first_line(cell)}
                    for cell in stage.cells
                ],
            }
            for stage in pipeline.stages
        ],  # fmt: skip
        "last_run": None,
        "schedules": [],
        "warnings": pipeline.parameter_warnings(),
    }
    log = _open_existing_log(log_path)
    if log is not None:
        description["last_run"] = _last_run_data(log, pipeline)
        description["schedules"] = _schedules(log, pipeline)
    return description


def to_text(description: dict[str, Any]) -> str:
    lines = [f"pipeline {description['notebook']}" + (
        f" — {description['title']}" if description["title"] else "")]  # fmt: skip
    if description["experiment"]:
        lines.append(f"experiment: {description['experiment']}")
    lines.append("parameters:" if description["parameters"] else "parameters: none")
    for p in description["parameters"]:
        help_text = f"  # {p['help']}" if p["help"] else ""
        lines.append(f"  {p['name']}: {p['type']} = {p['default']!r}{help_text}")
    if description.get("smoke"):
        pairs = " ".join(f"{name}={value}" for name, value in description["smoke"].items())
        lines.append(f"smoke run (--smoke): {pairs}")
    lines.append("stages:")
    data = (description["last_run"] or {}).get("stages", {})
    for number, stage in enumerate(description["stages"], 1):
        cells = ", ".join(str(cell["index"]) for cell in stage["cells"])
        lines.append(f"  {number}. {stage['name']}  (cells {cells})")
        flow = data.get(stage["name"])
        if flow:
            if flow["in"]:
                lines.append(f"       reads:  {', '.join(flow['in'])}")
            if flow["out"]:
                lines.append(f"       writes: {', '.join(flow['out'])}")
    if description["last_run"]:
        run = description["last_run"]
        lines.append(f"last run: {run['run_id'][:8]} ({run['status']}, {run['start_time']})")
    else:
        lines.append("last run: none recorded")
    for schedule in description["schedules"]:
        lines.append(f"schedule: {schedule['cron']} on {schedule['target']}; next runs:")
        lines += [f"  {when}" for when in schedule["next_runs"]]
    return "\n".join(lines)


def _first_line(cell) -> str:
    for line in cell.source.splitlines():
        if line.strip() and not line.lstrip().startswith("%%mlops"):
            return line.strip()[:80]
    return ""


def _open_existing_log(log_path: str | None):
    import mlops_nb

    try:
        return mlops_nb.open_log(log_path, create=False)
    except LogNotFoundError:
        return None


def _last_run_data(log, pipeline: Pipeline) -> dict[str, Any] | None:
    """The latest recorded run of this notebook, and what each stage read and wrote in it."""
    runs = log.notebook_runs(pipeline.path, limit=1)
    if runs.empty:
        return None
    run_id = runs["run_id"][0]
    flows = log.stage_flows(run_id)
    stages: dict[str, dict[str, list[str]]] = {}
    for row in flows.itertuples():
        if not isinstance(row.stage, str):
            continue
        flow = stages.setdefault(row.stage, {"in": [], "out": []})
        if row.dataset not in flow[row.direction]:
            flow[row.direction].append(row.dataset)
    return {"run_id": run_id, "status": runs["status"][0],
            "start_time": str(runs["start_time"][0])[:19], "stages": stages}  # fmt: skip


def _schedules(log, pipeline: Pipeline) -> list[dict[str, Any]]:
    from mlops_nb.pipeline.schedule import upcoming_runs

    return [
        {"cron": row.cron, "target": row.target, "next_runs": upcoming_runs(row.cron)}
        for row in log.schedules(pipeline.path).itertuples()
    ]
