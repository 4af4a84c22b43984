"""Recording a kernel's cells: the stage, the data that went in and came out, the models fitted.

One ``Tracker`` per IPython shell. It listens to ``pre_run_cell`` / ``post_run_cell``: before a
tracked cell it snapshots the data and estimators the cell's code names; after it, it compares,
and journals a ``cells`` row, new ``datasets`` versions with their ``lineage`` edges, fitted
``models`` (stored as skops artifacts in the train stage) and any ``notes``. Recording never
breaks the user's cell: a failure becomes one warning saying what was not recorded and why.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.capture import checkpoint as capture_checkpoint
from mlops_nb.capture import data as capture_data
from mlops_nb.capture import estimators as capture_estimators
from mlops_nb.capture import inputs as capture_inputs
from mlops_nb.capture import pii as capture_pii
from mlops_nb.capture.code import (
    CodeNames,
    Definition,
    code_facts,
    definitions_in,
    definitions_only,
    names_in,
    source_hash,
)
from mlops_nb.capture.environment import packages_in_use, platform_facts
from mlops_nb.capture.track_line import (
    STAGES,
    TRACK_CELL,
    stage_from_tags,
    track_line,
    track_options,
)
from mlops_nb.errors import MlopsError, TrackLineError
from mlops_nb.log import Log, Run
from mlops_nb.log.values import is_secret_name

__all__ = ["STAGES", "TRACK_CELL", "CellOutcome", "Tracker", "parse_track_cell_args"]
RESTORED_CELL = re.compile(r"^# mlops: restored stage=(\S*)")
RUN_ID_ENV_VAR = "MLOPS_NB_RUN_ID"  # set by the pipeline runner: record into this run
CACHE_ENV_VAR = "MLOPS_NB_CACHE"  # set by `mlops-nb run --cache`


@dataclass
class _Known:
    """The last version of a variable that this run recorded."""

    obj_id: int
    snapshot: capture_data.DataSnapshot
    dataset_id: str


@dataclass
class _Pending:
    """A tracked cell between its pre- and post-run events."""

    stage: str | None
    name: str | None
    source: str
    names: CodeNames
    started: float
    wall_start: float
    cell_id: str | None
    execution_count: int
    before: dict[str, capture_data.DataSnapshot] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)
    cache_key: str | None = None
    cached_from: tuple[str, int] | None = None  # (run id, cell seq) this cell was restored from
    not_cacheable: str | None = None  # why its result must not be reused, if it must not
    carried: list[str] = field(default_factory=list)  # objects read that only a key identifies
    opened: capture_inputs.OpenedFiles | None = None  # files Python opened while it ran
    random_state: str | None = None  # the global random generators' state before it ran
    modules_before: int = 0  # how many modules were imported before it ran
    files: dict[str, str] = field(default_factory=dict)  # input files named in its code
    options: dict[str, str] = field(default_factory=dict)  # of its %%mlops track line


@dataclass
class _Defined:
    """A function or class a cell's top-level statement made, with that statement."""

    obj: Any
    definition: Definition
    code: Any  # the function's __code__ then: replaced since means the source no longer tells
    attributes: dict[str, Any]  # a class's own attributes then: the same objects, or changed

    def still_as_defined(self, value: Any) -> bool:
        if value is not self.obj or getattr(value, "__code__", None) is not self.code:
            return False
        now = dict(vars(value)) if isinstance(value, type) else {}
        return now.keys() == self.attributes.keys() and all(
            now[k] is v for k, v in self.attributes.items()
        )


@dataclass
class _Key:
    """A cell's cache key, or why it has none; the objects only the key identifies."""

    key: str | None
    why_not: str | None = None
    carried: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class CellOutcome:
    """What the summary line shows about one recorded cell."""

    seq: int
    stage: str | None
    name: str | None
    duration_s: float
    status: str
    changes: list[str]
    changed_names: list[str]
    models: list[str]
    metrics: dict[str, float]
    notes: list[str]
    personal_data: str = ""  # "personal data: email (email), ..." for the summary line
    checks: list[Any] = field(default_factory=list)  # --expect: a CheckReport per frame checked
    failure: Exception | None = None  # --expect failed: raised into the cell after recording


class Tracker:
    """This kernel's recording state: the run, the cell counter, the last known data versions."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.log: Log | None = None
        self.run: Run | None = None
        self.record_all = False
        self.checkpointing = False  # on in pipeline runs: what each cell wrote is saved
        self.caching = False  # on with `mlops-nb run --cache`: reuse matching recorded cells
        self._produced_by: dict[str, str] = {}  # variable -> cache key of the cell that wrote it
        self._cache_hits: dict[str, tuple[_Key, str, int]] = {}  # raw hash -> (key, run, seq)
        self._defined: dict[int, _Defined] = {}  # id(function or class) -> its statement
        self._defining: tuple[dict[str, Definition], dict[str, Any]] | None = None
        self.show_summary = True
        self.notebook_path: str | None = None
        self.cell_seq = 0
        self.pending: _Pending | None = None
        self.last_outcome: CellOutcome | None = None
        self._known: dict[str, _Known] = {}
        self._versions: dict[str, int] = {}
        self._models = 0
        self._writers: dict[str, tuple[str, str]] = {}  # variable -> (cell id, source hash)
        self._cell_sources: dict[str, str] = {}  # cell id -> hash of the code it last ran
        self._last_index: int | None = None
        self._last_stage: str | None = None
        self._modules_seen: set[str] = set()
        self._packages_seen: set[str] = set()
        self._warned: set[str] = set()
        self._notebook_cache: tuple[float, dict[str, tuple[int, str, list[str]]]] | None = None
        self._tags_by_hash: dict[str, list[str]] = {}
        self.pii_allowed: set[str] = set()  # %mlops pii --allow: not personal data after all
        self.pii_declared: dict[str, str] = {}  # %mlops pii --declare: column -> kind
        self._pii_scans: dict[str, list[capture_pii.Finding]] = {}  # fingerprint -> scan

    # ------------------------------------------------------------------ lifecycle
    def start(
        self,
        experiment: str | None = None,
        log_path: str | None = None,
        record_all: bool = False,
        name: str | None = None,
    ) -> str:
        """Start recording into a new run, or keep the current one (``%mlops track``)."""
        import mlops_nb

        self.record_all = record_all or self.record_all
        if self.run is not None:
            return f"recording into run {self.run.run_id[:8]} ({self.run.experiment})"
        self.notebook_path = self._find_notebook()
        self.log = mlops_nb.open_log(log_path)
        context = {"notebook_path": self.notebook_path} if self.notebook_path else {}
        handed_over = os.environ.get(RUN_ID_ENV_VAR)
        if handed_over:  # a pipeline runner owns this run: record into it, do not end it
            self.run = self.log.attach_run(handed_over)
            self.record_all = True
            self.checkpointing = True
            self.caching = os.environ.get(CACHE_ENV_VAR) == "1"
        else:
            name = name or self._run_name()
            self.run = self.log.start_run(experiment=experiment, name=name, **context)
        self._record_environment(first=True)
        where = f"{self.log.path}"
        return f"recording into run {self.run.run_id[:8]} ({self.run.experiment}) in {where}"

    def _run_name(self) -> str | None:
        """An interactive run is named after its notebook: ``tryout``, then ``tryout #2``..."""
        if not self.notebook_path or self.log is None:
            return None
        earlier = len(self.log.notebook_runs(self.notebook_path))
        stem = Path(self.notebook_path).stem
        return stem if earlier == 0 else f"{stem} #{earlier + 1}"

    def stop(self) -> str:
        if self.run is None:
            return "not recording"
        run, self.run = self.run, None
        if run.owned:
            run.end("finished")
        else:
            run.detach()
        assert self.log is not None
        self.log.flush()
        self._known.clear()
        return f"run {run.run_id[:8]} finished"

    def status(self) -> str:
        if self.run is None:
            return "not recording (start with %mlops track)"
        lines = [
            f"run {self.run.run_id} ({self.run.experiment})",
            f"log: {self.log.path if self.log else '?'}",
            f"cells recorded: {self.cell_seq}",
            f"recording: {'every cell' if self.record_all else 'marked cells only'}",
        ]
        if self.notebook_path:
            lines.append(f"notebook: {self.notebook_path}")
        store = self.log._store if self.log else None
        if store is not None and store.flush_error is not None:
            lines.append(f"last write to the log failed: {store.flush_error}")
        return "\n".join(lines)

    def decide_pii(
        self, allow: list[str], declare: list[str], kind: str | None = None
    ) -> str:  # fmt: skip
        """``%mlops pii --allow/--declare``: decisions for the rest of this kernel's run (later
        cells record their findings with status allowed/declared); noted in the run."""
        messages = []
        for column in allow:
            self.pii_declared.pop(column, None)
            self.pii_allowed.add(column)
            messages.append(f"{column}: allowed (not personal data)")
        for column in declare:
            self.pii_allowed.discard(column)
            self.pii_declared[column] = kind or "personal"
            messages.append(f"{column}: declared personal data ({kind or 'personal'})")
        if self.run is not None:
            for message in messages:
                self.run.log_record("notes", {"run_id": self.run.run_id, "cell_seq": self.cell_seq,
                                              "kind": "pii", "message": message,
                                              "created_at": time.time()})  # fmt: skip
        return "\n".join(messages) or self.pii_status()

    def pii_status(self) -> str:
        """What ``%mlops pii`` alone shows: this run's decisions and flagged columns."""
        lines = []
        if self.pii_allowed:
            lines.append("allowed: " + ", ".join(sorted(self.pii_allowed)))
        if self.pii_declared:
            lines.append("declared: " + ", ".join(f"{c} ({k})" for c, k in
                                                  sorted(self.pii_declared.items())))  # fmt: skip
        if self.run is not None and self.log is not None:
            self.log.flush()
            for row in capture_pii.pii_summary(self.log, self.run.run_id):
                share = "" if row["share"] is None else f", {row['share']:.0%} of values"
                lines.append(f"{row['dataset']}.{row['column']}: {row['kind']} "
                             f"(by {row['method']}{share}) {row['status']}")  # fmt: skip
        return "\n".join(lines) or "no personal data found or declared in this run"

    # ------------------------------------------------------------------ events
    def pre_run_cell(self, info: Any) -> None:
        self.pending = None
        self._defining = None
        try:
            self._note_definitions(info.raw_cell or "")
        except Exception as error:  # noqa: BLE001 - recording must never break the cell
            self._warn("defs", f"definitions not recorded: {type(error).__name__}: {error}")
        try:
            self._before_cell(info)
        except Exception as error:  # noqa: BLE001 - recording must never break the cell
            self._warn("pre", f"this cell will not be recorded: {type(error).__name__}: {error}")
            self.pending = None

    def post_run_cell(self, result: Any) -> None:
        pending, self.pending = self.pending, None
        self._bind_definitions()
        if pending is not None and pending.opened is not None:
            pending.files |= pending.opened.stop(self._excluded_folders())
        if pending is None or self.run is None:
            return
        try:
            outcome = self._after_cell(pending, result)
        except Exception as error:  # noqa: BLE001 - recording must never break the cell
            self._warn("post", f"this cell was not recorded: {type(error).__name__}: {error}")
            return
        self.last_outcome = outcome
        store = self.log._store if self.log else None
        if store is not None and store.flush_error is not None:
            self._warn(
                "flush",
                f"records are kept in the journal but could not reach the log yet: "
                f"{store.flush_error}",
            )
        if self.show_summary:
            from mlops_nb.notebook.display import CellSummary

            self._display(CellSummary(outcome))
        for report in outcome.checks:
            if self.show_summary or not report.passed:
                self._display(report)
        if outcome.failure is not None:
            self._fail_cell(result, outcome.failure)

    # ------------------------------------------------------------------ before a cell
    def _before_cell(self, info: Any) -> None:
        raw = info.raw_cell or ""
        cell_id = getattr(info, "cell_id", None)
        stage, name, source = self._stage_of(raw, info, cell_id)
        if stage is None and not self.record_all:
            self._forget(names_in(raw).touched)  # an unrecorded cell may change them
            return
        if stage is None:
            stage = self._last_stage  # an unmarked cell belongs to the stage before it
        else:
            self._last_stage = stage
        if self.run is None:
            if self.log is None and stage is None:
                return
            self.start()
        names = names_in(source)
        pending = _Pending(
            stage=stage,
            name=name,
            source=source,
            names=names,
            started=time.perf_counter(),
            wall_start=time.time(),
            cell_id=cell_id,
            execution_count=getattr(self.shell, "execution_count", 0),
            options=track_options(raw),
        )
        namespace = self.shell.user_ns
        for variable in sorted(names.touched):
            value = namespace.get(variable)
            if value is None:
                continue
            if capture_data.is_data(value):
                pending.before[variable] = self._current_snapshot(variable, value)
            elif capture_estimators.is_estimator(value):
                pending.tokens[variable] = capture_estimators.fit_token(value)
        self._check_staleness(pending)
        hit = self._cache_hits.pop(source_hash(raw.rstrip()), None)
        keyed = None
        if hit is not None:
            keyed, run_id, seq = hit
            pending.cached_from = (run_id, seq)
        elif self.checkpointing:
            keyed = self._keyed(pending.source, names)
            pending.random_state = capture_inputs.random_state()
            pending.modules_before = len(sys.modules)
            pending.opened = capture_inputs.OpenedFiles()
        if keyed is not None:
            pending.cache_key, pending.not_cacheable = keyed.key, keyed.why_not
            pending.carried, pending.files = keyed.carried, dict(keyed.files)
        if pending.opened is not None:
            pending.opened.start()
        pending.started = time.perf_counter()  # do not count our own snapshots
        self.pending = pending

    def _stage_of(self, raw: str, info: Any, cell_id: str | None):
        """(stage, name, code) from a ``%%mlops track`` line or an ``mlops:STAGE`` cell tag."""
        restored = RESTORED_CELL.match(raw)
        if restored:  # a cell a resumed pipeline skipped: keep its stage in the record
            return restored.group(1) or None, None, raw
        marked = _track_line(raw)
        if marked is not None:
            return marked
        tags = []
        meta = getattr(info, "cell_meta", None) or {}
        if isinstance(meta, dict) and isinstance(meta.get("tags"), list):
            tags = meta["tags"]
        elif cell_id:
            tags = self._notebook_cells().get(cell_id, (0, "", []))[2]
        else:  # papermill sends no cell id: find the saved cell by its code
            tags = self._tags_by_source().get(source_hash(raw), [])
        return stage_from_tags(tags), None, raw

    def _current_snapshot(self, variable: str, value: Any) -> capture_data.DataSnapshot:
        known = self._known.get(variable)
        if known is not None and known.obj_id == id(value):
            return known.snapshot
        snapshot = capture_data.snapshot(value)
        assert snapshot is not None
        return snapshot

    def _forget(self, variables: set[str]) -> None:
        for variable in variables:
            self._known.pop(variable, None)

    def _check_staleness(self, pending: _Pending) -> None:
        """Note reads of variables written by code that has changed since, and order jumps."""
        cells = self._notebook_cells()
        for variable in sorted(pending.names.reads):
            writer = self._writers.get(variable)
            if writer is None:
                continue
            writer_cell, written_with = writer
            current = cells.get(writer_cell, (0, None, []))[1] or self._cell_sources.get(
                writer_cell
            )
            if current and current != written_with:
                pending.notes.append((
                    "stale-input",
                    f"reads {variable!r}, written by cell {writer_cell} whose code has changed "
                    "since it ran",
                ))  # fmt: skip
        if pending.cell_id and pending.cell_id in cells:
            index = cells[pending.cell_id][0]
            if self._last_index is not None and index < self._last_index:
                pending.notes.append((
                    "out-of-order",
                    f"cell {pending.cell_id} (#{index + 1} in the notebook) ran after "
                    f"cell #{self._last_index + 1}",
                ))  # fmt: skip
            self._last_index = index

    # ------------------------------------------------------------------ after a cell
    def _after_cell(self, pending: _Pending, result: Any) -> CellOutcome:
        duration = time.perf_counter() - pending.started
        run = self.run
        assert run is not None
        self.cell_seq += 1
        seq = self.cell_seq
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        namespace = self.shell.user_ns
        inputs: dict[str, str] = {}  # variable -> dataset id read
        outputs: dict[str, capture_data.DataSnapshot] = {}
        changes: list[str] = []
        changed_names: list[str] = []
        rows: list[tuple[str, dict[str, Any]]] = []
        personal: list[capture_pii.Finding] = []  # personal-data findings of its datasets

        for variable in sorted(pending.names.touched):
            value = namespace.get(variable)
            before = pending.before.get(variable)
            if not capture_data.is_data(value):
                continue
            after = capture_data.snapshot(value)
            assert after is not None
            if before is not None and variable in pending.names.reads | pending.names.mutates:
                inputs[variable] = self._dataset_id_for(variable, before, seq, rows, personal)
            if before is not None and before.fingerprint == after.fingerprint:
                self._remember(variable, value, after, inputs.get(variable))
                continue
            outputs[variable] = after
        input_snapshots = {v: pending.before[v] for v in inputs}
        # in the order the cell's code first mentions them, as the user reads it
        ordered = sorted(outputs.items(), key=lambda item: _position(pending.source, item[0]))
        for variable, after in ordered:
            before = pending.before.get(variable)
            parent_name, parent = (
                (variable, before)
                if before is not None
                else _closest_parent(after, input_snapshots)
            )
            change = capture_data.diff(parent, after) if parent is not None else None
            dataset_id = self._new_version(variable, after, seq, change, rows, personal)
            self._remember(variable, namespace[variable], after, dataset_id)
            rows.append(("lineage", {"run_id": run.run_id, "cell_seq": seq,
                                     "dataset_id": dataset_id, "direction": "out"}))  # fmt: skip
            source_name = parent_name or ", ".join(input_snapshots) or variable
            changes.append(capture_data.describe_change(source_name, parent,
                                                        variable, after, change))  # fmt: skip
            changed_names.append(f"{variable} {after.n_rows:,}x{after.n_cols:,}")
        for dataset_id in inputs.values():
            rows.append(("lineage", {"run_id": run.run_id, "cell_seq": seq,
                                     "dataset_id": dataset_id, "direction": "in"}))  # fmt: skip

        if len(inputs) >= 2 and outputs:
            self._note_combinations(pending, list(inputs), [v for v, _ in ordered])
        checks: list[Any] = []
        check_failure = None
        if "expect" in pending.options and not error:
            written = [v for v, _ in ordered] + sorted(pending.names.writes - set(outputs))
            checks, check_failure = self._check_outputs(pending, seq, written, rows, personal)
            error = check_failure or error
        models = self._fitted_models(pending, seq, inputs, outputs, rows)
        code_hash = source_hash(pending.source)
        for variable in pending.names.writes | pending.names.mutates:
            if pending.cell_id:
                self._writers[variable] = (pending.cell_id, code_hash)
        if pending.cell_id:
            self._cell_sources[pending.cell_id] = code_hash
        status = "error" if error else "ok"
        metrics = run.drain_recent()
        if not error and RESTORED_CELL.match(pending.source):
            status = "restored"
        elif not error and pending.cached_from is not None:
            status = "cached"
            source_run, source_seq = pending.cached_from
            pending.notes.append(("cached", f"restored from run {source_run} cell {source_seq}"))
            self._note_producer(pending)
        elif not error and self.checkpointing:
            if pending.random_state not in (None, capture_inputs.random_state()) and (
                _drew_from_global_random(pending.source, pending.modules_before)
            ):
                pending.not_cacheable = (
                    "it draws from or seeds the global random generator (random, numpy.random), "
                    "which a restore cannot replay: pass a seeded Generator or random_state"
                )
            if pending.not_cacheable and self.caching:
                self._warn(f"nocache:{code_hash}", f"not cached: {pending.not_cacheable}")
            # a cell that logs metrics is not reused: its metrics must be logged again
            fair = "sensitive" in pending.options  # nor one that measures fairness
            self._checkpoint(pending, seq, rows, cacheable=not metrics and not fair)
        rows.append(("cells", {
            "run_id": run.run_id, "cell_seq": seq, "cell_id": pending.cell_id,
            "execution_count": pending.execution_count, "stage": pending.stage,
            "name": pending.name, "source": pending.source, "source_hash": code_hash,
            "start_time": pending.wall_start, "end_time": pending.wall_start + duration,
            "duration_s": duration, "status": status,
            "error_type": type(error).__name__ if error else None,
            "error_message": str(error) if error else None,
            "reads": sorted(pending.names.reads), "writes": sorted(pending.names.writes),
        }))  # fmt: skip
        for kind, message in pending.notes:
            rows.append(("notes", {"run_id": run.run_id, "cell_seq": seq, "kind": kind,
                                   "message": message, "created_at": time.time()}))  # fmt: skip
            if kind in ("stale-input", "out-of-order"):
                self._warn(kind, f"this run is not reproducible as recorded: {message}")
        for table, row in rows:
            run.log_record(table, row)
        if "sensitive" in pending.options and not error:
            self._fairness(pending, seq)
            metrics.update(run.drain_recent())
        self._record_environment(first=False)
        return CellOutcome(
            seq=seq,
            stage=pending.stage,
            name=pending.name,
            duration_s=duration,
            status="error" if error else "ok",
            changes=changes,
            changed_names=changed_names,
            models=models,
            metrics=metrics,
            notes=[message for _, message in pending.notes],
            personal_data=capture_pii.describe(personal),
            checks=checks,
            failure=check_failure,
        )

    def _fairness(self, pending: _Pending, seq: int) -> None:
        """``--sensitive COLUMN[,COLUMN]``: fairness of the labels this cell predicted, per
        group of each column (``fairness`` rows; the summary numbers as run metrics, so gates
        see them). What cannot be measured is a note on the cell, never a failure."""
        from mlops_nb.capture.fairness import (
            FairnessError,
            fairness,
            find_sensitive,
            record_fairness,
        )
        from mlops_nb.registry.assemble import cell_evaluation

        run, log = self.run, self.log
        assert run is not None and log is not None
        options, namespace = pending.options, self.shell.user_ns

        def note(message: str) -> None:
            pending.notes.append(("fairness", message))
            run.log_record("notes", {"run_id": run.run_id, "cell_seq": seq, "kind": "fairness",
                                     "message": message, "created_at": time.time()})  # fmt: skip

        try:
            log.flush()  # this cell's datasets and lineage, for the search below
            found = cell_evaluation(log, run.run_id, seq, namespace, labels=options.get("labels"),
                                    predictions=options.get("predictions"))  # fmt: skip
            missing = [n for n in (found.labels, found.predictions) if n not in namespace]
            if missing:
                raise FairnessError(f"no variable {missing[0]!r} in the notebook")
            truth, predicted = namespace[found.labels], namespace[found.predictions]
            classes = getattr(namespace.get(found.model or ""), "classes_", None)
            reports = []
            for column in [c.strip() for c in options["sensitive"].split(",") if c.strip()]:
                source, values = find_sensitive(
                    namespace, column, len(predicted), labels=truth,
                    near=[found.labels, found.input or found.predictions],
                )  # fmt: skip
                if self._holds_personal_data(column, values):  # groups named by their hashes
                    key = capture_pii.hash_key(self.log.path, team=self.log.is_team)
                    values = [capture_pii.keyed_hash(v, key) for v in list(values)]
                    note(f"{column} holds personal data: its groups are shown as keyed hashes")
                report = fairness(truth, predicted, values, name=column,
                                  classes=None if classes is None else list(classes))  # fmt: skip
                where = column if source == column else f"{source}[{column!r}]"
                report.sources = {"y_true": found.labels, "y_pred": found.predictions,
                                  "sensitive": where}  # fmt: skip
                reports.append(report)
        except Exception as problem:  # noqa: BLE001 - recording must never break the cell
            why = str(problem) if isinstance(problem, MlopsError) else (
                f"{type(problem).__name__}: {problem}")  # fmt: skip
            note(f"fairness not measured: {why}")
            return
        if found.also:
            note(
                f"fairness of {found.predictions} ({found.model or 'model unknown'}); "
                f"{', '.join(found.also)} could be meant too: choose with --predictions VAR"
            )
        record_fairness(run, reports, cell_seq=seq, model_name=found.model)

    def _holds_personal_data(self, column: str, values: Any) -> bool:
        """Whether a sensitive column's values are personal data (its name or a value scan,
        as for recorded frames): their group labels must not reach the log as they are."""
        import pandas as pd

        found = capture_pii.scan_frame(pd.DataFrame({column: list(values)}))
        return any(f.status in ("flagged", "declared") for f in found)

    def _note_combinations(self, pending: _Pending, read: list[str], written: list[str]) -> None:
        """A cell that joined or concatenated recorded frames: what the join did (matched and
        unmatched rows, duplicated keys, dtypes that disagree) becomes a ``join`` note."""
        from mlops_nb.capture.joins import describe_combination

        namespace = self.shell.user_ns
        ordered = sorted(read, key=lambda name: _position(pending.source, name))
        sources = {name: pending.before[name].data for name in ordered if name in pending.before}
        try:
            for variable in written:
                for found in describe_combination(sources, variable, namespace.get(variable)):
                    pending.notes.append(("join", found.phrase()))
        except Exception as problem:  # noqa: BLE001 - recording must never break the cell
            self._warn("join", f"joins not described: {type(problem).__name__}: {problem}")

    def _check_outputs(
        self, pending: _Pending, seq: int, written: list[str], rows: list, personal: list
    ) -> tuple[list[Any], Exception | None]:
        """``--expect REF``: check the DataFrames the cell wrote against REF's expectations.
        Every check is recorded (``check_results``) and every failure shown; the exception to
        fail the cell with comes back, unless ``--warn-only``."""
        from mlops_nb.capture import expectations as capture_expectations
        from mlops_nb.validate_command import resolve_expectations

        run, log = self.run, self.log
        assert run is not None and log is not None
        ref, warn_only = pending.options["expect"], "warn_only" in pending.options
        namespace = self.shell.user_ns
        live = {known.dataset_id: namespace[name] for name, known in self._known.items()
                if name in namespace and id(namespace[name]) == known.obj_id}  # fmt: skip
        try:
            resolved = resolve_expectations(log, ref, live=live)
        except MlopsError as problem:
            if not warn_only:
                return [], capture_expectations.ExpectationsError(f"--expect {ref}: {problem}")
            pending.notes.append(("check", f"data check not run: --expect {ref}: {problem}"))
            return [], None
        frames = _frames_to_check(namespace, written, resolved.expectations, ref)
        if not frames:
            pending.notes.append(("check", f"--expect {ref}: the cell wrote no DataFrame to check"))
            return [], None
        private = resolved.private | set(capture_pii.private_columns(personal))
        private |= set(self.pii_declared)
        reports, now = [], time.time()
        for variable, frame in frames.items():
            known = self._known.get(variable)
            target = known.dataset_id if known is not None else variable
            report = capture_expectations.check_frame(
                frame, resolved.expectations, private=private, target=target,
                expectation=resolved.label,
            )  # fmt: skip
            report.warn_only, report.check_id = warn_only, uuid.uuid4().hex
            records = report.records(report.check_id, run.run_id, seq, now)
            rows.extend(("check_results", row) for row in records)
            if resolved.expectations.source == "file" and known is not None:
                rows.append(("expectations", {
                    "expectation_id": uuid.uuid4().hex, "dataset_id": known.dataset_id,
                    "run_id": run.run_id, "dataset_name": variable, "source": "file",
                    "spec": resolved.expectations.to_json(), "created_at": now,
                }))  # fmt: skip
            reports.append(report)
        failed = [report for report in reports if not report.passed]
        if not failed or warn_only:
            return reports, None
        return reports, capture_expectations.ExpectationsFailed(*failed)

    def _fail_cell(self, result: Any, failure: Exception) -> None:
        """Fail the cell after the fact, as if its code had raised ``failure``: the kernel
        answers with an error (papermill stops the pipeline there) and shows one line."""
        if result is not None:
            result.error_in_exec = failure
        self.shell.showtraceback((type(failure), failure, None), exception_only=True)

    def _dataset_id_for(
        self, variable: str, snapshot, seq: int, rows: list, personal: list | None = None
    ) -> str:
        """The recorded version this snapshot is; recorded now if it came from elsewhere."""
        known = self._known.get(variable)
        if known is not None and known.snapshot.fingerprint == snapshot.fingerprint:
            return known.dataset_id
        return self._new_version(variable, snapshot, None, None, rows, personal)

    def _new_version(
        self, variable: str, snapshot, seq: int | None, change, rows: list,
        personal: list | None = None,
    ) -> str:  # fmt: skip
        """Record a dataset version: its stats (counts only for personal-data columns) and
        one ``pii_findings`` row per column that holds personal data."""
        run = self.run
        assert run is not None
        version = self._versions.get(variable, 0) + 1
        self._versions[variable] = version
        dataset_id = f"{run.run_id[:8]}:{variable}@v{version}"
        findings = self._personal_data(snapshot)
        now = time.time()
        for finding in findings:
            rows.append(("pii_findings", finding.to_row(
                dataset_id=dataset_id, run_id=run.run_id, cell_seq=self.cell_seq,
                dataset_name=variable, created_at=now)))  # fmt: skip
        if personal is not None:
            personal.extend(findings)
        record = snapshot.to_record(private=capture_pii.private_columns(findings))
        rows.append(("datasets", {
            "dataset_id": dataset_id, "run_id": run.run_id, "cell_seq": seq, "name": variable,
            "version": version, "kind": record["kind"], "fingerprint": record["fingerprint"],
            "n_rows": record["n_rows"], "n_cols": record["n_cols"], "schema": record["schema"],
            "stats": record["stats"], "diff": change, "created_at": time.time(),
        }))  # fmt: skip
        return dataset_id

    def _personal_data(self, snapshot) -> list[capture_pii.Finding]:
        """The personal-data columns of a snapshot's frame, with this run's ``%mlops pii``
        decisions applied; the scan itself is remembered per content (fingerprint)."""
        frame = snapshot.data
        if snapshot.kind == "numpy" or frame is None:
            return []
        found = self._pii_scans.get(snapshot.fingerprint)
        if found is None:
            found = capture_pii.scan_frame(frame)
            if len(self._pii_scans) >= 256:
                self._pii_scans.clear()
            self._pii_scans[snapshot.fingerprint] = found
        return capture_pii.apply_decisions(found, list(snapshot.schema), self.pii_declared,
                                           self.pii_allowed)  # fmt: skip

    def _remember(self, variable: str, value: Any, snapshot, dataset_id: str | None) -> None:
        if dataset_id is not None:
            self._known[variable] = _Known(id(value), snapshot, dataset_id)

    def _fitted_models(self, pending: _Pending, seq: int, inputs, outputs, rows) -> list[str]:
        run = self.run
        assert run is not None
        fitted = []
        namespace = self.shell.user_ns
        candidates = {**{v: self._known[v] for v in inputs if v in self._known}}
        for variable in sorted(pending.names.touched):
            value = namespace.get(variable)
            if not capture_estimators.is_estimator(value):
                continue
            token = capture_estimators.fit_token(value)
            if token is None or token == pending.tokens.get(variable, None):
                continue
            described = capture_estimators.describe_estimator(value)
            fit_on = _fit_dataset(described, {**candidates, **{
                v: self._known[v] for v in outputs if v in self._known}})  # fmt: skip
            self._models += 1
            model_id = f"{run.run_id[:8]}:{variable}#{self._models}"
            sha = self._store_model(value, variable) if pending.stage == "train" else None
            rows.append(("models", {
                "model_id": model_id, "run_id": run.run_id, "cell_seq": seq, "name": variable,
                "class_name": described["class_name"], "params": described["params"],
                "n_features_in": described.get("n_features_in"),
                "feature_names": described.get("feature_names_in"),
                "output_features": described.get("output_features"),
                "fit_dataset_id": fit_on, "artifact_sha256": sha, "created_at": time.time(),
            }))  # fmt: skip
            fitted.append(f"{variable}: {described['class_name'].rsplit('.', 1)[-1]}")
        return fitted

    def _checkpoint(self, pending: _Pending, seq: int, rows: list, cacheable: bool) -> None:
        """Save what the cell wrote, so a failed pipeline can resume after this cell (and,
        when every value could be saved, a later run with the same inputs can reuse it)."""
        run = self.run
        assert run is not None and self.log is not None
        namespace = self.shell.user_ns
        folder = self.log.artifacts_dir / "checkpoints" / run.run_id / str(seq)
        saved_rows = []
        complete = True
        for variable in sorted(pending.names.writes | pending.names.mutates):
            if variable not in namespace:
                continue
            value = namespace[variable]
            if not capture_checkpoint.is_checkpointable(variable, value):
                continue
            if is_secret_name(variable):  # never on disk; its cell reruns instead of a restore
                complete = False
                continue
            key = None
            private = self._private_columns(variable, value)
            if private and self._pii_checkpoints() == "skip":
                complete = False
                setting = capture_checkpoint.PII_CHECKPOINTS_ENV
                pending.notes.append(("personal-data", f"{variable} not checkpointed: it holds "
                                      f"personal data ({', '.join(private)}) and {setting}=skip; "
                                      "a resume will lack it"))  # fmt: skip
                continue
            if private:  # encrypted with a key kept outside the log
                try:
                    key = capture_pii.encryption_key(self.log.path, team=self.log.is_team)
                except capture_pii.PersonalDataKeyError as error:  # a team log without its key
                    complete = False
                    pending.notes.append(("personal-data", f"{variable} not checkpointed: "
                                          f"{error}; a resume will lack it"))  # fmt: skip
                    self._warn("pii-key", f"personal data is not checkpointed: {error}")
                    continue
            saved = capture_checkpoint.save_value(value, folder, variable, key=key)
            if saved is None:
                complete = False
                self._warn("checkpoint", f"{variable!r} cannot be saved: a resume will lack it")
                continue
            fmt, path = saved
            size = path.stat().st_size
            saved_rows.append({
                "run_id": run.run_id, "cell_seq": seq, "stage": pending.stage,
                "name": variable, "format": fmt, "path": self.log.store_checkpoint(path),
                "size": size, "cache_key": None, "created_at": time.time(),
            })  # fmt: skip
        reusable = cacheable and complete and saved_rows and not pending.not_cacheable
        key = pending.cache_key if reusable else None
        files = [[path, identity] for path, identity in sorted(pending.files.items())]
        for row in saved_rows:
            row["cache_key"] = key
            row["inputs"] = files
            rows.append(("checkpoints", row))
        self._note_producer(pending)

    def _private_columns(self, variable: str, value: Any) -> list[str]:
        """The personal-data columns of a value a cell wrote (none for what is not a frame)."""
        if not capture_data.is_data(value):
            return []
        snapshot = self._current_snapshot(variable, value)
        return list(capture_pii.private_columns(self._personal_data(snapshot)))

    def _pii_checkpoints(self) -> str:
        """``encrypt`` or ``skip`` (MLOPS_NB_PII_CHECKPOINTS); a bad setting skips, and says so."""
        try:
            return capture_checkpoint.pii_checkpoints()
        except MlopsError as error:
            self._warn("pii-checkpoints", f"{error}; personal data is not checkpointed")
            return "skip"

    def _note_producer(self, pending: _Pending) -> None:
        """Objects the cell wrote, or read and may have changed, are now known by its key;
        by nothing when its result depends on more than its key (they lose their identity)."""
        touched = pending.names.writes | pending.names.mutates | set(pending.carried)
        for variable in touched:
            if pending.cache_key and not pending.not_cacheable:
                self._produced_by[variable] = pending.cache_key
            else:
                self._produced_by.pop(variable, None)

    def _cache_key(self, source: str, names: CodeNames) -> str | None:
        """The cell's cache key, or None when its inputs cannot all be identified."""
        return self._keyed(source, names).key

    def _keyed(self, source: str, names: CodeNames) -> _Key:
        """Hash of the cell's code and of everything its result depends on: the variables it
        reads (a data fingerprint, a plain value, or the key of the cell that made the
        object), the source of the notebook functions and classes it calls, transitively, and
        their default values, the version of installed modules (the files of local ones), and
        the files it names. ``why_not`` says which input has no identity the cache can check."""
        facts = code_facts(source)
        if facts is None:
            return _Key(None, "its code is not plain Python (a magic or shell command hides "
                        "what it reads)")  # fmt: skip
        namespace = self.shell.user_ns
        parts = [source.rstrip()]  # IPython may add a final newline before transforming
        strings, carried = set(facts.strings), []
        readers = {r for r in facts.reader_calls if not _reads_nothing(facts, r, self.shell)}
        queue, seen = sorted(names.reads | facts.reads), set()
        if facts.dynamic or facts.assigns_globals:
            what = sorted(facts.dynamic) or [f"global {n}" for n in sorted(facts.assigns_globals)]
            return _Key(None, f"it uses {what[0]}, whose reads and writes cannot be seen")
        while queue:
            variable = queue.pop(0)
            if variable in seen or variable not in namespace:
                continue
            seen.add(variable)
            value = namespace[variable]
            if variable in ("In", "Out", "get_ipython", "exit", "quit"):
                return _Key(None, f"it uses IPython's {variable}")
            if isinstance(value, types.ModuleType):
                parts.append(f"{variable}=module:{capture_inputs.module_identity(value)}")
            elif isinstance(value, (types.FunctionType, type, types.BuiltinFunctionType)):
                defined = self._defined.get(id(value))
                if defined is not None and defined.still_as_defined(value):
                    made = defined.definition
                    if made.facts.dynamic or made.facts.assigns_globals:
                        return _Key(None, f"{variable}() changes or reads globals out of sight "
                                    "(global, exec, eval, globals())")  # fmt: skip
                    defaults = self._defaults_key(value)
                    if defaults is None:
                        return _Key(None, f"a default argument of {variable}() has no identity "
                                    "the cache can check")  # fmt: skip
                    parts.append(f"{variable}=def:{source_hash(made.source)}:{defaults}")
                    queue.extend(sorted(made.facts.reads))
                    strings |= made.facts.strings
                    readers |= made.facts.reader_calls
                    strings |= capture_inputs.strings_in_value(_defaults(value))
                elif sys.modules.get(getattr(value, "__module__", None) or "__main__") not in (
                    None, sys.modules.get("__main__"),
                ):  # imported from a module: that module's identity  # fmt: skip
                    module = sys.modules[value.__module__]
                    parts.append(f"{variable}=module:{capture_inputs.module_identity(module)}")
                else:
                    return _Key(None, f"{variable} is a function or class whose code was not "
                                "recorded (make it with a top-level def or class)")  # fmt: skip
            elif capture_data.is_data(value):
                parts.append(f"{variable}={self._current_snapshot(variable, value).fingerprint}")
            elif (simple := capture_checkpoint.simple_value_key(value)) is not None:
                parts.append(f"{variable}={simple}")
                strings |= capture_inputs.strings_in_value(value)
            elif variable in self._produced_by:
                parts.append(f"{variable}=<{self._produced_by[variable]}>")
                strings |= capture_inputs.strings_in_value(value)
                carried.append(variable)
            else:
                kind = type(value).__name__
                return _Key(None, f"it reads {variable!r} ({kind}), which has no identity the "
                            "cache can check (not data, not a plain value, not made by a "
                            "cached cell)")  # fmt: skip
        remote = capture_inputs.remote_location(strings)
        if remote is not None:
            return _Key(None, f"it reads {remote}, a remote location the cache cannot check")
        try:
            files = capture_inputs.files_named(strings, self._excluded_folders())
        except capture_inputs.Unidentified as error:
            return _Key(None, f"its input files cannot be identified: {error}")
        if readers and not files:
            reader = sorted(readers)[0]
            return _Key(None, f"it calls {reader}() on a path the cache cannot see in its code "
                        "or in the variables it reads")  # fmt: skip
        parts.extend(f"file:{path}={identity}" for path, identity in sorted(files.items()))
        return _Key(source_hash("\n".join(parts)), None, carried, files)

    def _defaults_key(self, function: Any) -> str | None:
        """The default argument values a function was made with (evaluated at its def)."""
        parts = []
        for value in _defaults(function):
            defined = self._defined.get(id(value))
            if capture_data.is_data(value):
                parts.append(capture_data.snapshot(value).fingerprint)  # type: ignore[union-attr]
            elif defined is not None and defined.still_as_defined(value):
                parts.append(source_hash(defined.definition.source))
            elif (simple := capture_checkpoint.simple_value_key(value)) is not None:
                parts.append(simple)
            else:
                return None
        return source_hash(repr(parts))

    def _note_definitions(self, raw: str) -> None:
        """Before any cell: its top-level def/class statements, and what the names held.

        Only cache keys use them, and only pipeline runs key cells (``checkpointing``), so an
        interactive kernel does not parse every cell a second time for them."""
        if not self.checkpointing or ("def " not in raw and "class " not in raw):
            return
        found = definitions_in(_strip_track_line(raw))
        if found:
            namespace = self.shell.user_ns
            self._defining = (found, {name: namespace.get(name) for name in found})

    def _bind_definitions(self) -> None:
        """After any cell: tie each function or class it made to the statement that made it."""
        defining, self._defining = self._defining, None
        if defining is None:
            return
        found, before = defining
        namespace = self.shell.user_ns
        for name, definition in found.items():
            value = namespace.get(name)
            if value is None or value is before.get(name):
                continue  # the statement did not run (an error before it)
            if isinstance(value, (types.FunctionType, type)):
                attributes = dict(vars(value)) if isinstance(value, type) else {}
                code = getattr(value, "__code__", None)
                self._defined[id(value)] = _Defined(value, definition, code, attributes)

    def _excluded_folders(self) -> list[Path]:
        """The log's own folder: checkpoints and outputs are not a cell's inputs."""
        return [self.log.path.parent] if self.log is not None else []

    def cache_transform(self, lines: list[str]) -> list[str]:
        """Input transformer: a cell matching a recorded one is replaced by a restore."""
        if not self.caching or self.run is None or self.log is None or not lines:
            return lines
        raw = "".join(lines)
        try:
            marked = _track_line(raw)
        except Exception:  # noqa: BLE001 - a bad %%mlops line: the cell reports it when it runs
            return lines
        if marked is not None:
            body, head = marked[2], [lines[0]]
        elif self._tagged_stage(raw) is not None:
            body, head = raw, []
        else:
            return lines
        try:
            keyed = self._keyed(body, names_in(body))
            key = keyed.key
            if key is None:
                self._warn(f"nocache:{source_hash(body)}", f"not cached: {keyed.why_not}")
                return lines
            found = self.log.cache_hit(key)
        except Exception as error:  # noqa: BLE001 - no cache then, the cell just runs
            self._warn("cache", f"cache lookup failed, running the cell: {error}")
            return lines
        if found is None:
            return lines
        run_id, seq = found
        try:
            changed = capture_inputs.still_the_same(self.log.cache_inputs(run_id, seq))
        except Exception as error:  # noqa: BLE001 - cannot check the files: run the cell
            changed = f"? ({error})"
        if changed is not None:
            self._warn(f"nocache:{source_hash(body)}",
                       f"not restored from the cache: {changed} changed since")  # fmt: skip
            return lines
        self._cache_hits[source_hash(raw.rstrip())] = (keyed, run_id, seq)
        replacement = f"%mlops restore {run_id} --cell {seq}\n" + definitions_only(body)
        return [*head, *[line + "\n" for line in replacement.splitlines()]]

    def _tagged_stage(self, raw: str) -> str | None:
        """The ``mlops:STAGE`` tag of this code's cell in the saved notebook, if any."""
        tags = self._tags_by_source()
        found = tags.get(source_hash(raw)) or tags.get(source_hash(raw.removesuffix("\n")))
        return stage_from_tags(found or [])

    def restore(
        self,
        run_id: str,
        before: int | None = None,
        cell: int | None = None,
        skip: set[str] | frozenset[str] = frozenset(),
    ) -> list[str]:
        """Load checkpoints of ``run_id`` into the namespace; returns the names restored."""
        log = self.log
        if log is None:
            import mlops_nb

            log = mlops_nb.open_log(create=False)
        full_id = log.run(run_id).run_id
        saved = log.checkpoints(full_id, before=before, cell=cell)
        restored = []
        for row in saved.itertuples():
            if row.name in skip:
                continue
            value = capture_checkpoint.load_saved(log, row.name, row.format, row.path)
            self.shell.user_ns[row.name] = value
            restored.append(row.name)
        return sorted(restored)

    def _store_model(self, estimator: Any, variable: str) -> str | None:
        """Save a fitted model in the skops format (pickle only if skops cannot)."""
        run = self.run
        assert run is not None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{variable}.skops"
            try:
                import skops.io

                skops.io.dump(estimator, path)
            except Exception as error:  # noqa: BLE001 - fall back, and say so
                import pickle

                path = Path(folder) / f"{variable}.pkl"
                path.write_bytes(pickle.dumps(estimator))
                self._warn("skops", f"{variable} saved with pickle (skops could not: {error})")
            return run.log_artifact(path, kind="model")

    def _record_environment(self, first: bool) -> None:
        run = self.run
        if run is None:
            return
        now = time.time()
        facts = platform_facts() if first else []
        for distribution, version in packages_in_use(self._modules_seen):
            if distribution not in self._packages_seen:
                self._packages_seen.add(distribution)
                facts.append(("package", distribution, version))
        for kind, name, version in facts:
            run.log_record("environment", {"run_id": run.run_id, "kind": kind, "name": name,
                                           "version": version, "created_at": now})  # fmt: skip

    # ------------------------------------------------------------------ the notebook file
    def _find_notebook(self) -> str | None:
        """The notebook this kernel runs: from the pipeline runner, or the Jupyter session."""
        for candidate in (
            os.environ.get("MLOPS_NB_NOTEBOOK"),
            self.shell.user_ns.get("__session__"),
            os.environ.get("JPY_SESSION_NAME"),
        ):
            if candidate and str(candidate).endswith(".ipynb"):
                return str(candidate)
        return None

    def _notebook_cells(self) -> dict[str, tuple[int, str, list[str]]]:
        """Cell id -> (index, source hash, tags) of the saved notebook, re-read when it changes."""
        path = self.notebook_path or self._find_notebook()
        if not path:
            return {}
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return {}
        if self._notebook_cache and self._notebook_cache[0] == mtime:
            return self._notebook_cache[1]
        cells: dict[str, tuple[int, str, list[str]]] = {}
        by_hash: dict[str, list[str]] = {}
        try:
            with open(path, encoding="utf-8") as handle:
                notebook = json.load(handle)
            for index, cell in enumerate(notebook.get("cells", [])):
                source = cell.get("source", "")
                source = "".join(source) if isinstance(source, list) else source
                tags = cell.get("metadata", {}).get("tags", [])
                by_hash[source_hash(source)] = tags
                if cell.get("id"):
                    cells[cell["id"]] = (index, source_hash(_strip_track_line(source)), tags)
        except (OSError, ValueError):
            return {}
        self._notebook_cache = (mtime, cells)
        self._tags_by_hash = by_hash
        return cells

    def _tags_by_source(self) -> dict[str, list[str]]:
        """Source hash -> tags of the saved notebook's cells (a cell's code identifies it)."""
        self._notebook_cells()
        return self._tags_by_hash

    # ------------------------------------------------------------------ output
    def _warn(self, kind: str, message: str) -> None:
        """One line on stderr, once per kind of problem."""
        if kind in self._warned:
            return
        self._warned.add(kind)
        print(f"mlops: {message}", file=sys.stderr)

    def _display(self, summary: Any) -> None:
        from IPython.display import display

        display(summary)


def parse_track_cell_args(arguments: str) -> tuple[str, str | None]:
    """``STAGE [--name NAME]`` from the rest of a ``%%mlops track`` line (UsageError if bad)."""
    from mlops_nb.capture.track_line import parse_track_args

    try:
        return parse_track_args(arguments)
    except TrackLineError as error:
        from IPython.core.error import UsageError

        raise UsageError(str(error)) from None


def _defaults(function: Any) -> list[Any]:
    """A function's default argument values, keyword-only ones in name order."""
    keywords = getattr(function, "__kwdefaults__", None) or {}
    return [
        *(getattr(function, "__defaults__", None) or ()),
        *(keywords[k] for k in sorted(keywords)),
    ]


def _track_line(raw: str) -> tuple[str, str | None, str] | None:
    """(stage, name, body) of a ``%%mlops track`` cell (UsageError if its line is bad)."""
    try:
        return track_line(raw)
    except TrackLineError as error:
        from IPython.core.error import UsageError

        raise UsageError(str(error)) from None


def _strip_track_line(source: str) -> str:
    match = TRACK_CELL.match(source)
    return source[match.end() :].removeprefix("\n") if match else source


def _closest_parent(after, inputs: dict[str, Any]) -> tuple[str | None, Any]:
    """The input a new dataset is a changed version of (``clean = raw.drop_duplicates()``),
    to diff with: one that carried most of its columns over (at least half of the input's and
    half of the new one's), then most shared columns, then the closest row count. A new value
    computed from an input (``y = (df["a"] > 0).astype(int)``: one column of three) and an
    aggregate (a few rows out of many) have none: they are new, derived from their inputs."""
    best: tuple[tuple[int, int], str | None, Any] = ((-1, -1), None, None)
    for name, snapshot in inputs.items():
        shared = len(set(snapshot.schema) & set(after.schema))
        carried = shared * 2 >= len(snapshot.schema) and shared * 2 >= len(after.schema)
        derived_rows = after.n_rows >= 0.01 * snapshot.n_rows
        if not shared or not carried or not derived_rows:
            continue
        score = (shared, -abs(snapshot.n_rows - after.n_rows))
        if score > best[0]:
            best = (score, name, snapshot)
    return best[1], best[2]


def _position(source: str, name: str) -> int:
    found = re.search(rf"\b{re.escape(name)}\b", source)
    return found.start() if found else len(source)


def _frames_to_check(
    namespace: dict[str, Any], written: list[str], expectations: Any, ref: str
) -> dict[str, Any]:
    """The tables a cell wrote that ``--expect REF`` is about: the one named like REF's
    dataset if the cell wrote it, else those sharing a column with the expectations, else all."""
    frames = {
        name: namespace[name] for name in dict.fromkeys(written)
        if capture_data.is_data(namespace.get(name)) and hasattr(namespace[name], "columns")
    }  # fmt: skip
    dataset = ref.partition(":")[2].partition("@v")[0]
    if dataset in frames:
        return {dataset: frames[dataset]}
    expected = set(expectations.columns)
    sharing = {n: f for n, f in frames.items() if expected & {str(c) for c in f.columns}}
    return sharing or frames


def _fit_dataset(described: dict[str, Any], known: dict[str, _Known]) -> str | None:
    """Which recorded dataset a model was fitted on, judged by its features."""
    names = described.get("feature_names_in")
    width = described.get("n_features_in")
    best = None
    for entry in known.values():
        snapshot = entry.snapshot
        by_names = bool(names) and set(names) <= set(snapshot.schema)
        by_width = not names and bool(width) and snapshot.n_cols == width
        if (by_names or by_width) and (best is None or snapshot.n_rows > best[0]):
            best = (snapshot.n_rows, entry.dataset_id)
    return best[1] if best else None


_GLOBAL_RANDOM = re.compile(
    r"\b(?:random\.|(?:np|numpy)\.random\.(?!default_rng|Generator|RandomState)|seed\s*\()"
)


def _drew_from_global_random(source: str, modules_before: int) -> bool:
    """Whether a cell that changed the global random state drew from it itself. Some
    libraries draw at their first import (``import sklearn.compose`` does): a change that
    came with new imports, from code that names no global generator, is put down to them."""
    return len(sys.modules) == modules_before or bool(_GLOBAL_RANDOM.search(source))


def _reads_nothing(facts: Any, reader: str, shell: Any) -> bool:
    """A reader every call of which is given a variable holding no path (``""`` or None), as
    ``pd.read_csv(data_path) if data_path else ...`` with ``data_path = ""``: it opens no file.
    (Were the call made anyway, it would fail, and a failed cell is never cached.)"""
    names = facts.reader_paths.get(reader)
    if not names:
        return False
    values = [shell.user_ns.get(name, 0) for name in names]
    return all(value is None or (isinstance(value, str) and not value) for value in values)
