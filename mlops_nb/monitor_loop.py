"""``mlops-nb monitor``: check a live model and, when its inputs drift, close the loop.

One call checks drift of the model's inputs (a file, or the requests it answered), and its
live performance when labels exist; on drift, with ``--retrain``, it runs the training
notebook on the new data, registers the result, gates it against the current model and
promotes it when the gate passes. A running ``mlops-nb serve`` follows the alias and switches
to the new version by itself. Every step lands in ``monitor_events`` with the reason that
triggered it, so the docs and the sidebar can say why a model changed.

This module composes the parts from the top (drift and performance from ``monitor/``, the run
from ``pipeline/``, registration and gates from ``registry/``); they do not call each other.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.errors import MlopsError
from mlops_nb.monitor.options import (
    EXIT_DRIFT,
    EXIT_GATE_FAILED,
    EXIT_OK,
    EXIT_RETRAIN_FAILED,
)


class MonitorError(MlopsError):
    """A monitor call that cannot start: a bad reference, file or option (one line)."""


@dataclass
class MonitorResult:
    """What one ``monitor`` call found and did; ``code`` is the process exit code."""

    code: int
    model: str
    version: int
    drifted: bool = False
    reason: str = ""
    check_id: str | None = None
    retrain_run_id: str | None = None
    new_version: int | None = None
    promoted: bool = False
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code, "model": self.model, "version": self.version,
            "drifted": self.drifted, "reason": self.reason, "check_id": self.check_id,
            "retrain_run_id": self.retrain_run_id, "new_version": self.new_version,
            "promoted": self.promoted,
        }  # fmt: skip


def monitor(
    log: Any,
    ref: str,
    *,
    current: str | Path | None = None,
    requests: bool = False,
    since: str | None = None,
    labels: str | Path | None = None,
    retrain: str | Path | None = None,
    parameters: Sequence[tuple[str, str]] = (),
    promote_if: Sequence[str] = (),
    experiment: str | None = None,
    drift_share: float = 0.5,
    echo: Any = print,
) -> MonitorResult:
    """Check ``ref`` (``NAME@ALIAS``) and, on drift with ``retrain``, retrain, gate, promote."""
    from mlops_nb.registry.load import ModelLoadError, parse_ref, resolve

    try:
        target = parse_ref(ref)
        champion = resolve(log, target)
    except ModelLoadError as error:
        raise MonitorError(str(error)) from None
    if (current is None) == (not requests):
        raise MonitorError("give the data to check: --current FILE or --requests [--since 1d]")
    if retrain is not None and not promote_if:
        raise MonitorError(
            "--retrain needs the gate the new model must pass, e.g. --promote-if "
            '"accuracy >= champion - 0.01"'
        )
    name, alias = str(champion["name"]), target.alias or "champion"
    version = int(champion["version"])
    result = MonitorResult(EXIT_OK, name, version)
    say = _Reporter(log, name, alias, result, echo)

    report = _drift(log, ref, current, requests, since, drift_share)
    result.check_id = _check_id(report)
    result.drifted = bool(report.dataset_drift)
    result.reason = _drift_reason(report)
    say.event(
        "drift",
        "drift" if result.drifted else "no drift",
        result.reason,
        check_id=result.check_id,
        from_version=version,
        detail={"share": float(report.share), "columns": list(report.drifted_columns)},
    )
    _performance(log, ref, say, current, labels, requests, since)

    if not result.drifted:
        return result
    if retrain is None:
        result.code = EXIT_DRIFT
        say.line(f"{name}@{alias} (v{version}) drifted; not retrained (no --retrain given)")
        return result
    return _retrain_and_gate(log, champion, alias, retrain, parameters, promote_if,
                             experiment, result, say)  # fmt: skip


# ---------------------------------------------------------------------- steps
def _drift(
    log: Any, ref: str, current: Any, requests: bool, since: str | None, drift_share: float
) -> Any:
    from mlops_nb.monitor.drift_command import drift_from_log

    if not 0 < drift_share <= 1:
        raise MonitorError(f"--drift-share must be in (0, 1], not {drift_share}")
    if current is not None:
        return drift_from_log(log, ref, current=str(current), record=True, drift_share=drift_share)
    return drift_from_log(log, ref, requests=ref, since=since, record=True,
                          drift_share=drift_share)  # fmt: skip


def _performance(
    log: Any, ref: str, say: _Reporter, current: Any, labels: Any, requests: bool, since: Any
) -> None:
    """Live performance when it can be measured: the labels of a file, feedback on requests,
    or an estimate from calibrated probabilities. Never stops the check when it cannot."""
    from mlops_nb.monitor import performance

    try:
        if labels is not None and current is not None:
            frame = _file_performance(log, ref, current, labels)
        elif requests:
            frame = performance.performance_from_log(log, ref, since=since, record=True)
        else:
            return
    except MlopsError as error:
        say.line(f"performance not measured: {error}")
        return
    for note in frame.attrs.get("notes", []):
        say.line(f"note: {note}")
    if frame.empty:
        return
    text = performance.performance_text(frame)
    say.event("performance", "measured", text.splitlines()[0] if text else "",
              detail=_latest_values(frame))  # fmt: skip
    for line in text.splitlines()[1:]:
        say.line(line)


def _file_performance(log: Any, ref: str, current: Any, labels: Any) -> Any:
    """The live model's realized performance on a labelled file (``--current`` + ``--labels``),
    recorded like feedback-based performance."""
    import pandas as pd

    from mlops_nb.monitor import performance
    from mlops_nb.monitor.drift_command import read_frame
    from mlops_nb.registry.load import load_model

    loaded = load_model(log, ref)
    rows, truth = read_frame(str(current)), read_frame(str(labels))
    if truth.shape[1] != 1 or len(truth) != len(rows):
        raise MonitorError(
            f"--labels must be one column with a label per row of --current ({len(rows)} rows; "
            f"{labels} has {len(truth)} rows and {truth.shape[1]} columns)"
        )
    outputs = loaded.outputs or {}
    frame = pd.DataFrame({
        "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        "prediction": list(loaded.pipeline.predict(rows)), "label": list(truth.iloc[:, 0]),
    })  # fmt: skip
    probabilities = None
    if outputs.get("task") == "classification" and outputs.get("probabilities"):
        probabilities = performance.predict_proba(loaded.pipeline, rows)
    evaluation = performance.evaluation_of(log, loaded.name, loaded.version)
    result = performance.realized_performance(
        frame, task=str(outputs.get("task")), classes=outputs.get("classes"),
        baseline=performance.baselines(evaluation, loaded.record), probabilities=probabilities,
    ).assign(kind="realized", check_id=uuid.uuid4().hex, model_name=loaded.name,
             model_version=loaded.version)  # fmt: skip
    performance.record_performance(log, result)
    return result


def _retrain_and_gate(
    log: Any,
    champion: dict[str, Any],
    alias: str,
    notebook: str | Path,
    parameters: Sequence[tuple[str, str]],
    promote_if: Sequence[str],
    experiment: str | None,
    result: MonitorResult,
    say: _Reporter,
) -> MonitorResult:
    from mlops_nb.pipeline.notebook import read_pipeline
    from mlops_nb.pipeline.parameters import resolve as resolve_parameters
    from mlops_nb.pipeline.runner import _load, run_notebook
    from mlops_nb.registry.assemble import register_model
    from mlops_nb.registry.gates import record_gate, run_gate, split_conditions

    name = result.model
    notebook = str(notebook)
    if not Path(notebook).is_file():
        raise MonitorError(f"no notebook at {notebook} (--retrain)")
    pipeline = read_pipeline(notebook, _load(notebook))
    values = resolve_parameters(pipeline.parameters, [list(p) for p in parameters], None)
    say.line(f"retraining with {notebook} because {result.reason}")
    log.flush()  # the run's kernel opens the same log
    run = run_notebook(notebook, values, experiment=experiment, log_path=log.location,
                       pipeline=pipeline, tags={"mlops_nb.trigger": result.reason})  # fmt: skip
    result.retrain_run_id = run.run_id
    if run.status != "finished":
        result.code = EXIT_RETRAIN_FAILED
        say.event("retrain", "failed", f"the retraining run failed: {run.error}",
                  run_id=run.run_id, from_version=result.version)  # fmt: skip
        return result
    say.event("retrain", "finished", f"retrained because {result.reason}", run_id=run.run_id,
              from_version=result.version)  # fmt: skip

    steps = champion.get("steps")
    registered = register_model(
        log, name, run=run.run_id, model=str(champion.get("model_var") or "model"),
        steps=list(steps) if isinstance(steps, list) else None, alias="challenger",
        description=f"retrained because {result.reason}",
    )  # fmt: skip
    result.new_version = int(registered["version"])
    say.event("register", "registered", f"v{result.new_version} registered as challenger",
              run_id=run.run_id, to_version=result.new_version)  # fmt: skip

    log.flush()
    gate = run_gate(log, f"{name}:{result.new_version}", split_conditions(list(promote_if)),
                    against=alias, record=False)  # fmt: skip
    record_gate(log, gate)
    say.event("gate", "passed" if gate.passed else "failed", gate.headline(),
              run_id=run.run_id, from_version=result.version, to_version=result.new_version,
              detail=gate.to_dict())  # fmt: skip
    for line in gate.to_text().splitlines():
        say.line(line)
    if not gate.passed:
        result.code = EXIT_GATE_FAILED
        return result
    conditions = "; ".join(r.condition for r in gate.results)
    reason = f"retrained because {result.reason}; gate passed: {conditions}"
    log.move_alias(name, alias, result.new_version, reason=reason)
    result.promoted = True
    say.event("promote", "promoted", f"@{alias} moved from v{result.version} to "
              f"v{result.new_version}", run_id=run.run_id, from_version=result.version,
              to_version=result.new_version)  # fmt: skip
    log.flush()
    return result


# ---------------------------------------------------------------------- helpers
class _Reporter:
    """Prints progress lines and records each step as a ``monitor_events`` row."""

    def __init__(self, log: Any, name: str, alias: str, result: MonitorResult, echo: Any):
        self.log, self.name, self.alias, self.result, self.echo = log, name, alias, result, echo

    def line(self, text: str) -> None:
        self.result.lines.append(text)
        if self.echo is not None:
            self.echo(text)

    def event(self, step: str, outcome: str, reason: str, **fields: Any) -> None:
        self.line(f"{step}: {outcome}" + (f" - {reason}" if reason else ""))
        self.log.record("monitor_events", {
            "event_id": uuid.uuid4().hex[:12], "model_name": self.name, "alias": self.alias,
            "step": step, "outcome": outcome, "reason": reason,
            "run_id": fields.get("run_id"), "check_id": fields.get("check_id"),
            "from_version": fields.get("from_version"), "to_version": fields.get("to_version"),
            "detail": json.dumps(fields.get("detail") or {}, default=str),
            "created_at": time.time(),
        })  # fmt: skip


def _drift_reason(report: Any) -> str:
    """ "3 of 5 columns drifted: income, age, region" (the words the docs and events use)."""
    return str(report.summary())


def _check_id(report: Any) -> str | None:
    return getattr(report, "check_id", None)


def _latest_values(frame: Any) -> dict[str, Any]:
    latest = frame.sort_values("window_start").groupby(["kind", "metric"]).tail(1)
    return {f"{r.kind}.{r.metric}": float(r.value) for r in latest.itertuples()}


def monitor_from_cli(args: argparse.Namespace) -> int:
    import mlops_nb

    log = mlops_nb.open_log(args.log, create=False)
    quiet = args.format == "json"
    result = monitor(
        log, args.ref, current=args.current, requests=args.requests, since=args.since,
        labels=args.labels, retrain=args.retrain, parameters=args.parameter,
        promote_if=args.promote_if, experiment=args.experiment, drift_share=args.drift_share,
        echo=None if quiet else print,
    )  # fmt: skip
    log.flush()
    if quiet:
        print(json.dumps(result.to_dict(), indent=2))
    return result.code
