"""The Python API of the experiment log: ``Log`` (open, query) and ``Run`` (record).

Writes go to the process's journal and return at once; the store merges them into the DuckDB
file at least every second (see ``store.py`` for why and how). Reads see every record this
process wrote, and everything other processes merged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from mlops_nb.errors import MlopsError, NoActiveRunError, QueryError, RunNotFoundError
from mlops_nb.log import erasure, queries, values
from mlops_nb.log.apply import os_user
from mlops_nb.log.filters import Compiler, Condition, Sort
from mlops_nb.log.location import (
    artifacts_dir_for,
    blob_path,
    blob_sha,
    is_team_location,
    resolve_location,
)
from mlops_nb.log.sqltext import identifier as _ident
from mlops_nb.log.store import JournalStore, host_name, open_store

DEFAULT_EXPERIMENT = "default"
RUN_STATUSES = ("running", "finished", "failed", "crashed")
_ALLOWED_SQL = {"SELECT", "EXPLAIN"}
_FIELD_REF = re.compile(r"\b(params|metrics)\s*\.\s*(\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*)")


class Log:
    """An experiment log: a DuckDB file, or a team log (``ducklake:postgres:...``). Cheap to
    create; one store per process and location is shared underneath.

    ``location`` is what another process needs to open the same log (a kernel, a sweep's
    workers, a schedule); ``path`` is a local anchor: the file, or for a team log a name in
    this machine's spool folder, whose parent holds the artifact cache and ``outputs/``."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        run_defaults: Callable[[], dict[str, Any]] | None = None,
    ):
        self.location = resolve_location(path)
        self._store: JournalStore = open_store(self.location, create=create)
        self.path = self._store.path
        self.artifacts_dir = artifacts_dir_for(self.path)
        self._run_defaults = run_defaults
        self._store.before_close.append(self._end_open_runs)

    def __repr__(self) -> str:
        return f"Log({self.location!r})"

    @property
    def is_team(self) -> bool:
        """A team log: shared by several machines (one personal-data key, shared files)."""
        return is_team_location(self.location)

    # ------------------------------------------------------------------ recording
    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        **context: Any,
    ) -> Run:
        """Start a run (use as a context manager: it ends ``finished`` or ``failed``).

        ``context`` may override recorded fields: source, notebook_path, notebook_hash,
        git_commit, git_dirty.
        """
        run_id = run_id or uuid.uuid4().hex
        experiment = experiment or os.environ.get("MLOPS_NB_EXPERIMENT") or DEFAULT_EXPERIMENT
        recorded = {"source": "script"}
        if self._run_defaults is not None:
            recorded.update(self._run_defaults())
        recorded.update({k: v for k, v in context.items() if v is not None})
        unknown = set(recorded) - {
            "source", "notebook_path", "notebook_hash", "git_commit", "git_dirty",
        }  # fmt: skip
        if unknown:
            raise TypeError(f"start_run() got unexpected arguments: {', '.join(sorted(unknown))}")
        self._store.append({
            "op": "run_start",
            "run": {
                "run_id": run_id, "experiment": experiment, "name": name or run_id[:8],
                "status": "running", "start_time": time.time(), "end_time": None,
                "user_name": os_user(), "host": host_name(), "pid": os.getpid(),
                "parent_run_id": parent_run_id, "writer_id": self._store.become_writer(),
                "error": None, **recorded,
            },
        })  # fmt: skip
        run = Run(self, run_id, experiment)
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
        _ACTIVE_RUNS.append(run)
        _install_excepthook()
        return run

    def resume_run(self, run_id: str) -> Run:
        """Continue recording into an existing run (it reads ``running`` again)."""
        info = self.run(run_id).info
        self._store.append({"op": "run_resume", "run_id": info["run_id"], "status": "running",
                            "writer_id": self._store.become_writer()})  # fmt: skip
        run = Run(self, info["run_id"], info["experiment"])
        _ACTIVE_RUNS.append(run)
        return run

    def add_schedule(
        self,
        notebook_path: str,
        cron: str,
        target: str,
        params: Mapping[str, Any],
        out_dir: str,
        files: list[str],
    ) -> str:
        """Record that a pipeline is scheduled (by ``mlops-nb schedule``); returns its id."""
        schedule_id = uuid.uuid4().hex[:12]
        self._store.append({"op": "row", "table": "schedules", "row": {
            "schedule_id": schedule_id, "notebook_path": notebook_path, "cron": cron,
            "target": target, "params": dict(params), "out_dir": out_dir, "files": files,
            "created_at": time.time(),
        }})  # fmt: skip
        return schedule_id

    def attach_run(self, run_id: str) -> Run:
        """Record into a run that another process owns (a pipeline runner starts and ends it)."""
        info = self.run(run_id).info
        run = Run(self, info["run_id"], info["experiment"], owned=False)
        _ACTIVE_RUNS.append(run)
        return run

    def set_merge_interval(self, seconds: float, flush_before_reads: bool = True) -> None:
        """How often this process's records are merged in the background (default 1 s), and
        whether a read merges them first (so it sees them).

        Records are durable once written to the journal either way; a longer interval only
        delays when other processes see them, and saves the merge's cost for a busy writer
        that never reads its own records back (a model server polling an alias)."""
        if not seconds > 0:
            raise ValueError(f"the merge interval must be positive, got {seconds!r}")
        self._store.merge_interval = float(seconds)
        self._store.flush_before_reads = flush_before_reads

    def change_token(self) -> Any:
        """A value that differs after any later change to the log (None when that can't be
        told without a query): lets a poller skip reading a log nobody wrote to."""
        return self._store.change_token()

    def merge_in_helper_process(self, seconds: float) -> None:
        """Merge this process's records from a helper process every ``seconds`` instead of a
        background thread: for a busy writer that never reads its own records back (a model
        server), so merging costs it neither CPU time nor the GIL. Records stay durable once
        journaled; ``close`` (or this process's death) ends the helper after a last merge."""
        if not seconds > 0:
            raise ValueError(f"the merge interval must be positive, got {seconds!r}")
        self._store.merge_in_helper_process(self.location, float(seconds))

    def flush(self) -> None:
        """Merge everything recorded so far into the log file now."""
        self._store.flush()

    def close(self) -> None:
        """End open runs of this log as ``finished`` and merge all pending records."""
        self._store.close()

    def _end_open_runs(self) -> None:
        for run in [r for r in _ACTIVE_RUNS if r.log is self]:
            if run.owned:
                run.end()
            else:
                run.detach()

    # ------------------------------------------------------------------ querying
    def sql(self, query: str, as_of: Any = None) -> pd.DataFrame:
        """Run one read-only SQL statement (SELECT / EXPLAIN) over the log's views; on a team
        log ``as_of`` (a date, a datetime, ISO text in UTC, or a snapshot version) reads the
        log as it was then."""
        if not isinstance(query, str) or not query.strip():
            raise QueryError("empty SQL query: try SELECT * FROM runs")

        def run_query(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
            try:
                statements = con.extract_statements(query)
            except duckdb.Error as error:
                raise QueryError(f"SQL error: {_first_line(error)}") from None
            if len(statements) != 1:
                raise QueryError(
                    f"one SQL statement at a time, got {len(statements)}: split the query"
                )
            kind = statements[0].type.name
            if kind not in _ALLOWED_SQL:
                raise QueryError(
                    f"the log is read-only through SQL ({kind} refused): use SELECT, or record "
                    "data through the Python API"
                )
            try:
                return con.execute(query).df()
            except duckdb.Error as error:
                raise QueryError(f"SQL error: {_first_line(error)}") from None

        return self._read(run_query, as_of)

    def _read(self, query: Callable[[duckdb.DuckDBPyConnection], Any], as_of: Any = None) -> Any:
        """``query`` on the log now, or as it was at ``as_of`` (team logs keep snapshots)."""
        if as_of is None:
            return self._store.read(query)
        read_as_of = getattr(self._store, "read_as_of", None)
        if read_as_of is None:
            raise QueryError(
                f"as of {as_of}: time travel needs a team log (a log file keeps no snapshots)"
            )
        return read_as_of(as_of, query)

    def experiments(self) -> pd.DataFrame:
        """One row per experiment with its number of runs and last start."""
        return self.sql(
            "SELECT e.name AS experiment, e.created_at, count(r.run_id) AS runs, "
            "max(r.start_time) AS last_run FROM store.experiments e "
            "LEFT JOIN store.runs r ON r.experiment = e.name GROUP BY ALL ORDER BY last_run DESC"
        )

    def runs(
        self,
        experiment: str | None = None,
        where: str | None = None,
        order_by: str | Sort | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        filters: Iterable[Condition] = (),
        as_of: Any = None,
    ) -> pd.DataFrame:
        """One row per run, with ``params.<name>`` and latest ``metrics.<key>`` columns
        (``as_of``: as the team log was then, see ``sql``).

        ``where`` and ``order_by`` are SQL over the columns of the ``runs`` view plus
        ``params.<name>`` and ``metrics.<key>``, with AND, OR, NOT, IN, LIKE...:
        ``log.runs(where="params.lr < 0.1 OR metrics.acc > 0.9", order_by="metrics.acc DESC")``
        Programs pass ``filters=[Condition("params.lr", "<", 0.1)]`` and ``order_by=Sort(...)``
        instead: their values are bound, never spliced into SQL. ``limit`` and ``offset`` give
        one page of the ordered result.
        """
        query = _RunsQuery(experiment, where, order_by, tuple(filters))
        store = self._store
        return self._read(lambda con: _query_runs(con, query, limit, store, offset), as_of)

    def count_runs(
        self,
        experiment: str | None = None,
        where: str | None = None,
        *,
        filters: Iterable[Condition] = (),
    ) -> int:
        """How many runs ``runs()`` would return (for paging)."""
        query = _RunsQuery(experiment, where, None, tuple(filters))
        store = self._store
        return store.read(lambda con: _count_runs(con, query, store))

    def run(self, run_id: str) -> RunRecord:
        """Everything recorded about one run (a unique id prefix, or "latest")."""
        return self._store.read(lambda con: _load_run(con, run_id))

    # ------------------------------------------------------------------ named questions
    # The queries other parts of mlops_nb need (see queries.py); run ids are full ids.
    def notebook_runs(
        self, notebook: str | os.PathLike[str], status: str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """Runs of a notebook (by recorded path or file name), newest first."""
        return self._store.read(lambda con: queries.notebook_runs(con, notebook, status, limit))

    def latest_run_of(
        self, notebook: str | os.PathLike[str], status: str = "finished"
    ) -> str | None:
        """The id of the newest run of a notebook with this status, or None."""
        found = self.notebook_runs(notebook, status=status, limit=1)
        return None if found.empty else str(found["run_id"][0])

    def schedules(self, notebook_path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
        """Recorded schedules, newest first (optionally of one notebook, by path or name)."""
        return self._store.read(lambda con: queries.schedules(con, notebook_path))

    def environment(self, run_id: str) -> pd.DataFrame:
        """What a run ran on: kind (python, platform, package), name, version."""
        return self._store.read(lambda con: queries.environment(con, run_id))

    def notes(self, run_id: str) -> pd.DataFrame:
        """What the tracker noted about a run's cells (stale inputs, cache hits...)."""
        return self._store.read(lambda con: queries.notes(con, run_id))

    def checkpoints(
        self,
        run_id: str,
        names: Iterable[str] | None = None,
        before: int | None = None,
        cell: int | None = None,
    ) -> pd.DataFrame:
        """The newest saved value per variable of a pipeline run (name, format, path...),
        optionally only ``names``, only cells before ``before``, or only cell ``cell``."""
        wanted = None if names is None else list(names)
        return self._store.read(lambda con: queries.checkpoints(con, run_id, wanted, before, cell))

    def cache_hit(self, cache_key: str) -> tuple[str, int] | None:
        """(run_id, cell_seq) of the newest successful cell saved under this cache key."""
        return self._store.read(lambda con: queries.cache_hit(con, cache_key))

    def cached_cells(self, run_id: str) -> tuple[int, float]:
        """How many cells of a run were restored from the cache, and the seconds that saved."""
        return self._store.read(lambda con: queries.cached_cells(con, run_id))

    def stage_flows(self, run_id: str) -> pd.DataFrame:
        """What each stage of a run read and wrote: stage, direction, dataset label."""
        return self._store.read(lambda con: queries.stage_flows(con, run_id))

    # ------------------------------------------------------------------ model registry
    def add_model_version(self, row: Mapping[str, Any]) -> int:
        """Record a registered model version; returns its number (1, 2, ... per name), which
        is given when the record is merged, so concurrent registrations never share one."""
        self._store.require_maintainer("registering a model version")
        version_id = uuid.uuid4().hex
        self._store.append({"op": "model_version", "row": {
            **row, "version_id": version_id, "user_name": os_user(), "created_at": time.time(),
        }})  # fmt: skip
        self._store.flush()
        found = self._store.read(lambda con: queries.version_number(con, version_id))
        if found is None:
            raise MlopsError(f"model version {row.get('name')!r} was not recorded")
        return found

    def model_versions(self, name: str | None = None) -> pd.DataFrame:
        """Registered versions (of one model, or all), with their aliases, newest first."""
        return self._store.read(lambda con: queries.model_versions(con, name))

    def model_version(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> dict[str, Any] | None:
        """One version as a dict (JSON fields decoded): by number, by alias, else the latest."""
        return self._store.read(lambda con: queries.model_version(con, name, version, alias))

    def move_alias(
        self, name: str, alias: str, version: int | None, reason: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version`` (None removes it), recording who, when and why;
        returns the version it pointed at before. The move is atomic across processes."""
        self._store.require_maintainer("moving a model alias")
        if version is not None and self.model_version(name, int(version)) is None:
            raise MlopsError(f"model {name!r} has no version {version}: see mlops-nb models list")
        before = self.model_version(name, alias=alias)
        self._store.append({"op": "alias", "name": name, "alias": alias,
                            "version": None if version is None else int(version),
                            "user": os_user(), "reason": reason, "t": time.time()})  # fmt: skip
        self._store.flush()
        return None if before is None else int(before["version"])

    def aliases(self, name: str | None = None) -> pd.DataFrame:
        """Where each alias points now: name, alias, version, user, reason, updated_at."""
        return self._store.read(lambda con: queries.aliases(con, name))

    def alias_history(self, name: str | None = None, alias: str | None = None) -> pd.DataFrame:
        """Every alias move, oldest first: from_version, to_version, user, reason, moved_at."""
        return self._store.read(lambda con: queries.alias_history(con, name, alias))

    def alias_at(self, name: str, alias: str, when: Any) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (a datetime or ISO text, UTC)."""
        moment = pd.Timestamp(when).tz_localize(None) if pd.Timestamp(when).tzinfo is None else (
            pd.Timestamp(when).tz_convert("UTC").tz_localize(None))  # fmt: skip
        return self._store.read(lambda con: queries.alias_at(con, name, alias, moment))

    def store_artifact(self, source: str | os.PathLike[str]) -> tuple[str, int, str]:
        """Copy a file into the content-addressed artifact store (and a team log's storage);
        returns (sha256, size, stored path relative to ``artifacts_dir``)."""
        digest, size, relative = store_artifact(Path(source), self.artifacts_dir)
        self._store.store_blob(self.artifacts_dir / relative, digest, size)
        return digest, size, relative

    def artifact_file(self, stored_path: str) -> Path:
        """The local file of a stored artifact (``<sha[:2]>/<sha>``, a checkpoint's path):
        for a team log, fetched from its storage into this machine's cache when missing."""
        folder = self.artifacts_dir.resolve()
        target = (folder / str(stored_path)).resolve()
        if not target.is_relative_to(folder):
            raise MlopsError(f"{stored_path!r} is not a path inside the artifact store")
        sha = blob_sha(str(stored_path))
        return self._store.fetch_blob(sha, target) if sha else target

    def store_checkpoint(self, path: Path) -> str:
        """The path to record for a checkpoint file a cell saved under ``artifacts_dir``. A
        team log stores it like an artifact (``<sha[:2]>/<sha>``, its bytes in the lake's
        storage) so that ``artifact_file`` on any machine gets it; a file log leaves it as is."""
        if not self.is_team:
            return str(path.relative_to(self.artifacts_dir))
        _, _, relative = self.store_artifact(path)
        path.unlink()
        for folder in (path.parent, path.parent.parent):  # checkpoints/<run>/<cell>, <run>
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
        return relative

    def record(self, table: str, row: Mapping[str, Any]) -> None:
        """Journal one row of a record table not tied to a run (requests, feedback, gate
        results): one write, durable when this returns, merged within a second."""
        self._store.append({"op": "row", "table": table, "row": dict(row)})

    def record_rows(self, table: str, rows: list[Mapping[str, Any]]) -> None:
        """``record`` for several rows at once, with one write."""
        self._store.append_many([{"op": "row", "table": table, "row": dict(r)} for r in rows])

    def gate_results(self, run_id: str) -> pd.DataFrame:
        """The acceptance-gate conditions checked for a run (one row each), oldest first."""
        return self._store.read(lambda con: queries.gate_results(con, run_id))

    # ------------------------------------------------------------------ monitoring
    def profiles(
        self,
        *,
        dataset_id: str | None = None,
        model_name: str | None = None,
        model_version: int | None = None,
        kind: str | None = None,
    ) -> pd.DataFrame:
        """Stored reference profiles (what drift tests need of a reference), newest first."""
        return self._store.read(lambda con: queries.profiles(
            con, dataset_id=dataset_id, model_name=model_name, model_version=model_version,
            kind=kind))  # fmt: skip

    def drift_results(
        self, model_name: str | None = None, check_id: str | None = None, since: Any = None
    ) -> pd.DataFrame:
        """Recorded drift tests (the ``drift`` view), newest check first."""
        return self._store.read(
            lambda con: queries.drift_results(
                con, model_name=model_name, check_id=check_id, since=since
            )
        )

    def performance(self, model_name: str | None = None, kind: str | None = None) -> pd.DataFrame:
        """Recorded live performance per window (realized or estimated), oldest first."""
        return self._store.read(
            lambda con: queries.performance_results(con, model_name=model_name, kind=kind)
        )

    def monitor_events(self, model_name: str | None = None) -> pd.DataFrame:
        """What ``mlops-nb monitor`` did and why, oldest first."""
        return self._store.read(lambda con: queries.monitor_events(con, model_name))

    def served_requests(
        self, model_name: str, model_version: int | None = None, since: Any = None
    ) -> pd.DataFrame:
        """Answered requests of a served model (inputs/outputs as JSON text), oldest first."""
        return self._store.read(
            lambda con: queries.served_requests(con, model_name, model_version, since)
        )

    def labelled_predictions(
        self, model_name: str, model_version: int | None = None, since: Any = None
    ) -> pd.DataFrame:
        """Served rows with a feedback label (prediction, label, when, the request's inputs),
        oldest first."""
        return self._store.read(
            lambda con: queries.labelled_predictions(con, model_name, model_version, since)
        )

    def monitoring_snapshot(self) -> dict[str, pd.DataFrame]:
        """The latest figures a Prometheus exporter shows, one small frame each (experiment
        metrics, runs by status, pipelines, version metrics, aliases, drift, performance,
        request counts), read in one short read."""
        return self._store.read(queries.monitoring_snapshot)

    def latest_gate_results(self) -> pd.DataFrame:
        """The conditions of each model's newest recorded acceptance gate."""
        return self._store.read(queries.latest_gate_results)

    def latest_drift_checks(self, model_name: str) -> pd.DataFrame:
        """The newest drift check of each version of a model: its rows (the ``drift`` view's
        columns), newest check first, in the order they were tested."""
        return self._store.read(lambda con: queries.latest_drift_checks(con, model_name))

    def latest_performance(self, model_name: str) -> pd.DataFrame:
        """The newest window of each (version, kind, metric) of a model's live performance."""
        return self._store.read(lambda con: queries.latest_performance(con, model_name))

    def recent_monitor_events(self, model_name: str, limit: int = 20) -> pd.DataFrame:
        """What ``mlops-nb monitor`` did to a model, newest first, at most ``limit`` events."""
        return self._store.read(lambda con: queries.recent_monitor_events(con, model_name, limit))

    def fairness(
        self,
        run_id: str | None = None,
        model_name: str | None = None,
        model_version: int | None = None,
    ) -> pd.DataFrame:
        """Recorded fairness metrics per group (group '*': overall and summary), oldest first."""
        return self._store.read(lambda con: queries.fairness(
            con, run_id=run_id, model_name=model_name, model_version=model_version))  # fmt: skip

    def importances(self, model_name: str, model_version: int) -> pd.DataFrame:
        """The latest permutation importances of a version, most important first."""
        return self._store.read(
            lambda con: queries.importances(con, model_name, int(model_version))
        )

    def pii_findings(
        self, run_id: str | None = None, dataset_id: str | None = None
    ) -> pd.DataFrame:
        """Personal-data findings per dataset version and column (status flagged, allowed or
        declared), oldest first."""
        return self._store.read(
            lambda con: queries.pii_findings(con, run_id=run_id, dataset_id=dataset_id)
        )

    def expectations(
        self, dataset_id: str | None = None, run_id: str | None = None
    ) -> pd.DataFrame:
        """Stored expectations of dataset versions (source inferred or file), newest first."""
        return self._store.read(
            lambda con: queries.expectations(con, dataset_id=dataset_id, run_id=run_id)
        )

    def check_results(self, run_id: str | None = None, check_id: str | None = None) -> pd.DataFrame:
        """Recorded data checks, one row per check of a column, oldest first."""
        return self._store.read(
            lambda con: queries.check_results(con, run_id=run_id, check_id=check_id)
        )

    def cache_inputs(self, run_id: str, cell_seq: int) -> list[tuple[str, str]]:
        """(path, identity) of the files a cached cell read, as recorded with its checkpoints."""
        return self._store.read(lambda con: queries.cache_inputs(con, run_id, cell_seq))

    # ------------------------------------------------------------------ retention and erasure
    def erase(
        self,
        scope: erasure.Scope,
        *,
        action: str,
        criteria: Mapping[str, Any],
        dry_run: bool = False,
        compact: bool = False,
    ) -> dict[str, Any]:
        """Remove the checkpoints, request payloads and artifacts ``scope`` selects, files
        included, and record it in ``erasures`` (see log/erasure.py); returns the counts.
        ``compact`` then rewrites the log file, so no byte of what went is left in it."""
        removed = self._store.write(lambda con: erasure.erase(
            con, scope, action=action, criteria=criteria, artifacts_dir=self.artifacts_dir,
            dry_run=dry_run))  # fmt: skip
        if compact and not dry_run:
            self._store.compact()
        return removed

    def apply_retention(self, dry_run: bool = False) -> dict[str, Any] | None:
        """Apply the retention policy now (whenever it last ran); None when there is none."""
        return self._store.write(
            lambda con: erasure.apply_retention(con, self.path, dry_run=dry_run)
        )

    def settings(self, prefix: str = "") -> dict[str, str]:
        """The log's settings (``store.settings``) whose key starts with ``prefix``."""
        return self._store.read(lambda con: erasure.read_settings(con, prefix))

    def set_settings(self, values: Mapping[str, str | None]) -> None:
        """Set settings of the log at once (None removes one)."""
        self._store.write(lambda con: erasure.write_settings(con, values))

    def erasures(self, limit: int | None = None) -> pd.DataFrame:
        """What purges, erasures and the retention policy removed, newest first."""
        return self._store.read(lambda con: queries.erasures(con, limit))

    def stored_checkpoints(self) -> pd.DataFrame:
        """Every checkpoint with its run, dataset version and personal-data columns."""
        return self._store.read(queries.stored_checkpoints)

    def request_logs(self) -> pd.DataFrame:
        """Per served model and version: requests, stored payloads, their age and size."""
        return self._store.read(queries.request_logs)

    def stored_artifacts(self) -> pd.DataFrame:
        """Artifacts per kind: count, bytes, oldest, newest."""
        return self._store.read(queries.stored_artifacts)

    def payloads_holding(self, needles: Iterable[str]) -> pd.DataFrame:
        """Requests whose stored inputs contain any of these texts (with the inputs)."""
        wanted = [str(n) for n in needles if n]
        return self._store.read(lambda con: queries.payloads_holding(con, wanted))


class Run:
    """A run being recorded. Its calls return at once; see the module docstring."""

    def __init__(self, log: Log, run_id: str, experiment: str, owned: bool = True):
        self.log = log
        self.run_id = run_id
        self.experiment = experiment
        self.status = "running"
        self.owned = owned  # False: another process starts and ends this run
        self._steps: dict[str, int] = defaultdict(int)
        self._recent: dict[str, float] = {}  # latest value per key since drain_recent()
        self._store = log._store

    def __repr__(self) -> str:
        return f"<Run {self.run_id[:8]} experiment={self.experiment!r} status={self.status}>"

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("finished")
        else:
            self.end("failed", error=f"{exc_type.__name__}: {exc}")

    def log_param(self, name: str, value: Any) -> None:
        self.log_params({name: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record typed params; secret-looking names are stored as ``***``."""
        items = [values.encode_param(name, value) for name, value in params.items()]
        self._store.append({"op": "params", "run_id": self.run_id, "items": items})

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Record one point; ``step`` defaults to this key's next step (0, 1, 2...)."""
        number = values.check_metric(key, value)
        step = self._next_step(key, step)
        self._recent[key] = number
        self._store.append({"op": "m", "r": self.run_id, "k": key, "v": number, "s": step,
                            "t": timestamp if timestamp is not None else time.time()})  # fmt: skip

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at the same step, in one journal write."""
        now = time.time()
        items = [
            [key, values.check_metric(key, value), self._next_step(key, step), now]
            for key, value in metrics.items()
        ]
        self._store.append({"op": "ms", "r": self.run_id, "items": items})
        self._recent.update({key: value for key, value, _, _ in items})

    def log_batch(self, points: pd.DataFrame | Mapping[str, Any]) -> int:
        """Record many metric points at once (columns key, value, and optional step, timestamp).

        The batch is written as one Parquet file, so 100k points cost milliseconds.
        """
        frame = points if isinstance(points, pd.DataFrame) else pd.DataFrame(points)
        missing = {"key", "value"} - set(frame.columns)
        if missing:
            raise ValueError(f"log_batch needs columns key and value; missing {sorted(missing)}")
        count = len(frame)
        if count == 0:
            return 0
        keys = frame["key"].astype(str)
        if "step" in frame:
            steps = frame["step"].to_numpy(dtype="int64")
        else:
            offsets = keys.map(lambda k: self._steps.get(k, 0)).to_numpy(dtype="int64")
            steps = keys.groupby(keys).cumcount().to_numpy(dtype="int64") + offsets
        unique_keys = keys.unique()
        if len(unique_keys) == 1:
            last_steps = {unique_keys[0]: int(steps.max())}
        else:
            last_steps = pd.Series(steps).groupby(keys.to_numpy()).max().to_dict()
        for key, step in last_steps.items():
            self._steps[str(key)] = max(self._steps[str(key)], int(step) + 1)
        if "timestamp" in frame:
            micros = (frame["timestamp"].to_numpy(dtype="float64") * 1e6).astype("int64")
            times = pa.array(micros, type=pa.timestamp("us"))
        else:
            times = pa.repeat(pa.scalar(int(time.time() * 1e6), pa.timestamp("us")), count)
        table = pa.table({
            "key": pa.Array.from_pandas(keys).cast(pa.string()),
            "value": pa.array(frame["value"].to_numpy(dtype="float64")),
            "step": pa.array(steps),
            "timestamp": times,
        })  # fmt: skip
        self._store.append_bulk("bulk_metrics", table, r=self.run_id)
        return count

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._store.append(
            {
                "op": "tags",
                "run_id": self.run_id,
                "items": {str(k): str(v) for k, v in tags.items()},
            }
        )

    def drain_recent(self) -> dict[str, float]:
        """Metrics logged since the last call (latest value per key); used by cell summaries."""
        recent, self._recent = self._recent, {}
        return recent

    def log_artifact(
        self, path: str | os.PathLike[str], name: str | None = None, kind: str = "file"
    ) -> str:
        """Copy a file into the content-addressed artifact store; returns its sha256."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(
                f"log_artifact: {source} is not a file (log each file of a folder, or zip it)"
            )
        digest, size, relative = self.log.store_artifact(source)
        self.log_record("artifacts", {
            "run_id": self.run_id, "name": name or source.name, "kind": kind,
            "sha256": digest, "size": size, "stored_path": relative, "created_at": time.time(),
        })  # fmt: skip
        return digest

    def log_record(self, table: str, row: Mapping[str, Any]) -> None:
        """Journal one row for a record table (cells, datasets, lineage, artifacts, models)."""
        self.log.record(table, row)

    def detach(self) -> None:
        """Stop recording into a run owned by another process, without ending it."""
        if self in _ACTIVE_RUNS:
            _ACTIVE_RUNS.remove(self)

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Mark the run ended; later calls are ignored."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        if self in _ACTIVE_RUNS:
            _ACTIVE_RUNS.remove(self)
        elif self.status != "running":
            return
        self.status = status
        self._store.append({"op": "run_end", "run_id": self.run_id, "status": status,
                            "t": time.time(), "error": error})  # fmt: skip

    def _next_step(self, key: str, step: int | None) -> int:
        if step is None:
            step = self._steps[key]
        self._steps[key] = max(self._steps[key], int(step) + 1)
        return int(step)


@dataclass
class RunRecord:
    """What ``Log.run`` returns: one run with everything recorded about it."""

    info: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, float]
    metric_history: pd.DataFrame
    tags: dict[str, str]
    cells: pd.DataFrame = field(repr=False)
    datasets: pd.DataFrame = field(repr=False)
    lineage: pd.DataFrame = field(repr=False)
    artifacts: pd.DataFrame = field(repr=False)
    models: pd.DataFrame = field(repr=False)

    @property
    def run_id(self) -> str:
        return self.info["run_id"]

    def __repr__(self) -> str:
        return self.to_text()

    def to_text(self) -> str:
        """A readable summary for terminals and ``mlops-nb show``."""
        info = self.info
        lines = [f"run {info['run_id']}  ({info['status']})"]
        for label in ("experiment", "name", "start_time", "end_time", "duration_s", "user",
                      "host", "pid", "source", "notebook_path", "git_commit", "parent_run_id",
                      "error"):  # fmt: skip
            if info.get(label) is not None and not _is_missing(info.get(label)):
                lines.append(f"  {label + ':':15} {info[label]}")
        for title, mapping in (("params", self.params), ("metrics", self.metrics),
                               ("tags", self.tags)):  # fmt: skip
            if mapping:
                lines.append(f"{title}:")
                lines += [f"  {k} = {v}" for k, v in mapping.items()]
        if len(self.cells):
            lines.append("cells:")
            for cell in self.cells.itertuples():
                label = _text(cell.stage, "-")
                if not _is_missing(cell.name):
                    label += f" ({cell.name})"
                failure = "" if _is_missing(cell.error_type) else f"  {cell.error_type}"
                lines.append(
                    f"  {cell.cell_seq:>3}  {label:24} {cell.duration_s:8.3f} s  "
                    f"{cell.status}{failure}"
                )
        if len(self.datasets):
            lines.append("datasets:")
            labels = [f"{d.name}@v{d.version}" for d in self.datasets.itertuples()]
            width = max(map(len, labels))
            for label, data in zip(labels, self.datasets.itertuples(), strict=True):
                shape = f"{data.n_rows:,}x{data.n_cols:,}"
                made_by = "outside" if _is_missing(data.cell_seq) else f"cell {data.cell_seq}"
                lines.append(
                    f"  {label:{width}}  {shape:>12}  {data.kind:13} {made_by:8} "
                    f"{data.fingerprint[:12]}"
                )
        if len(self.models):
            lines.append("models:")
            for model in self.models.itertuples():
                stored = "" if _is_missing(model.artifact_sha256) else "  stored"
                lines.append(f"  {model.name}: {model.class_name} (cell {model.cell_seq}){stored}")
        if len(self.artifacts):
            lines.append("artifacts:")
            lines += [
                f"  {a.name}  {a.kind}  {a.size:,} bytes  {a.sha256[:12]}"
                for a in self.artifacts.itertuples()
            ]
        return "\n".join(lines)


# ---------------------------------------------------------------------- the active run
_ACTIVE_RUNS: list[Run] = []
_HOOK_LOCK = threading.Lock()
_hook_installed = False


def active_run() -> Run:
    """The most recently started run of this process that has not ended."""
    if not _ACTIVE_RUNS:
        raise NoActiveRunError(
            "no active run: start one with %mlops track, or log.start_run() in a script"
        )
    return _ACTIVE_RUNS[-1]


def _install_excepthook() -> None:
    """A script that dies of an uncaught exception marks its open runs ``failed``."""
    global _hook_installed
    with _HOOK_LOCK:
        if _hook_installed:
            return
        _hook_installed = True
        previous = sys.excepthook

        def hook(exc_type, exc, tb):
            for run in list(_ACTIVE_RUNS):
                run.end("failed", error=f"{exc_type.__name__}: {exc}")
            previous(exc_type, exc, tb)

        sys.excepthook = hook


# ---------------------------------------------------------------------- artifacts
def store_artifact(source: Path, artifacts_dir: Path) -> tuple[str, int, str]:
    """Copy ``source`` to ``<sha[:2]>/<sha>`` once; returns (sha256, size, relative path)."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with (
        open(source, "rb") as reader,
        tempfile.NamedTemporaryFile(dir=artifacts_dir, delete=False, suffix=".tmp") as writer,
    ):
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    sha = digest.hexdigest()
    relative = blob_path(sha)
    target = artifacts_dir / relative
    if target.exists():
        os.remove(writer.name)
    else:
        target.parent.mkdir(exist_ok=True)
        shutil.move(writer.name, target)
    return sha, size, relative


# ---------------------------------------------------------------------- queries
@dataclass(frozen=True)
class _RunsQuery:
    """Which runs, in what order: SQL text from a user, or structured conditions."""

    experiment: str | None
    where: str | None
    order_by: str | Sort | None
    filters: tuple[Condition, ...]


def _query_runs(
    con: duckdb.DuckDBPyConnection,
    query: _RunsQuery,
    limit: int | None,
    store: JournalStore,
    offset: int = 0,
) -> pd.DataFrame:
    """One scan of the store's run relation (runs with their params and latest metrics), or
    of the copy this process keeps (``store.kept_runs``) when the runs' tags aren't needed."""
    columns, kept = _run_columns(con, store)
    select = _run_select(columns)
    compiler = Compiler(columns)
    order = ""
    if isinstance(query.order_by, Sort):
        order = compiler.order(query.order_by) + ", "
    elif query.order_by:
        order = f"{_qualify_fields(query.order_by, columns)}, "
    order = f"ORDER BY {order}v.start_time DESC"
    source = _RunsSource.of(columns, query, compiler)
    if kept is not None and limit is not None and not source.tags_join:
        with contextlib.suppress(duckdb.Error):  # then the lake's answer says what was wrong
            picking = f"{source.over(kept.NATIVE)} {order}"
            frame = kept.page(picking, select, source.args, limit, offset)
            return _with_tags(con, frame, store)
    sql = f"{select} {source.over(_run_relation(con, store))} {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if offset:
        sql += f" OFFSET {int(offset)}"
    try:
        frame = con.execute(sql, source.args).df()
    except duckdb.Error as error:
        raise QueryError(f"bad where/order by: {_first_line(error)}") from None
    return _with_tags(con, frame, store)


def _run_select(columns: dict[str, str]) -> str:
    """The SELECT list of a run search: the runs' own fields, then params, then metrics."""
    names = sorted(columns, key=lambda c: (not c.startswith("params."), c))
    return (
        f"SELECT v.* EXCLUDE ({', '.join(_ident(c) for c in columns) or 'run_id'}), "
        f"{', '.join(['v.run_id'] * (not columns) + [f'v.{_ident(c)}' for c in names])}"
    )


def _with_tags(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, store: JournalStore
) -> pd.DataFrame:
    """``frame`` with a ``tags`` column (a dict per run)."""
    tags: dict[str, Any] = {}
    if store.read_cache["has_tags"]:
        tags = dict(
            con.execute(
                "SELECT run_id, map(list(key), list(value)) FROM store.tags "
                "WHERE run_id IN (SELECT unnest($ids::VARCHAR[])) GROUP BY run_id",
                {"ids": frame["run_id"].tolist()},
            ).fetchall()
        )
    frame["tags"] = [tags.get(run_id, {}) for run_id in frame["run_id"]]
    return frame


def _count_runs(con: duckdb.DuckDBPyConnection, query: _RunsQuery, store: JournalStore) -> int:
    columns, kept = _run_columns(con, store)
    source = _RunsSource.of(columns, query, Compiler(columns))
    if kept is not None and not source.tags_join:
        with contextlib.suppress(duckdb.Error):  # then the lake's answer says what was wrong
            return int(kept.count(source.over(kept.NATIVE), source.args))
    try:
        sql = f"SELECT count(*) {source.over(_run_relation(con, store))}"
        row = con.execute(sql, source.args).fetchone()
    except duckdb.Error as error:
        raise QueryError(f"bad where: {_first_line(error)}") from None
    return int(row[0]) if row else 0


def _run_columns(con: duckdb.DuckDBPyConnection, store: JournalStore) -> tuple[dict[str, str], Any]:
    """The run relation's param and metric columns, and the store's kept copy of it (or None)."""
    cache = store.read_cache
    if "columns" not in cache:  # valid while this read-only connection lives
        kept = cache["kept"] = store.kept_runs(con)
        if kept is None:
            _run_relation(con, store)
            cache["has_tags"] = store.any_run_tags(con)
        else:
            cache["columns"], cache["has_tags"] = dict(kept.columns), kept.any_tags
    return cache["columns"], cache["kept"]


def _run_relation(con: duckdb.DuckDBPyConnection, store: JournalStore) -> str:
    """The name of the run relation on ``con`` (asked of the store on first use: a search
    answered by the kept copy never needs it)."""
    cache = store.read_cache
    if "relation" not in cache:
        cache["relation"], cache["columns"] = store.run_values(con)
    return cache["relation"]


@dataclass(frozen=True)
class _RunsSource:
    """``FROM <relation> v ... WHERE ...`` of a run search, for any relation of runs."""

    tags_join: str
    conditions: str
    args: dict[str, Any]

    @classmethod
    def of(cls, columns: dict[str, str], query: _RunsQuery, compiler: Compiler) -> _RunsSource:
        """The search's conditions and parameters (the compiler may already hold those of a
        structured sort)."""
        structured = compiler.where(query.filters)
        order_text = query.order_by if isinstance(query.order_by, str) else ""
        expression = _without_literals(f"{query.where or ''} {order_text}")
        tags_join = ""
        if compiler.needs_tags or re.search(r"\btags\b", expression):
            tags_join = (
                "LEFT JOIN (SELECT run_id, map(list(key), list(value)) AS tags FROM store.tags "
                "GROUP BY run_id) t USING (run_id)"
            )
        conditions = ""
        args: dict[str, Any] = dict(compiler.args)
        if query.experiment:
            conditions += " AND v.experiment = $experiment"
            args["experiment"] = query.experiment
        if query.where:
            conditions += f" AND ({_qualify_fields(query.where, columns)})"
        if structured:
            conditions += f" AND {structured}"
        return cls(tags_join, conditions, args)

    def over(self, relation: str) -> str:
        return f"FROM {relation} v {self.tags_join} WHERE TRUE{self.conditions}"


def _qualify_fields(expression: str, columns: dict[str, str]) -> str:
    """``params.lr`` -> ``v."params.lr"`` outside string literals; unknown names are errors."""
    pieces = re.split(r"('(?:[^']|'')*')", expression)
    for index in range(0, len(pieces), 2):  # even pieces are outside quotes

        def qualify(match: re.Match[str]) -> str:
            table, raw = match.group(1), match.group(2)
            name = raw[1:-1].replace('""', '"') if raw.startswith('"') else raw
            column = f"{table}.{name}"
            if column not in columns:
                known = sorted(c.split(".", 1)[1] for c in columns if c.startswith(table + "."))
                kind = table[:-1]
                listed = ", ".join(known) or "none yet"
                raise QueryError(f"unknown {kind} {name!r} in the query; {kind}s logged: {listed}")
            return f"v.{_ident(column)}"

        pieces[index] = _FIELD_REF.sub(qualify, pieces[index])
    return "".join(pieces)


def _without_literals(expression: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", expression)


def _load_run(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord:
    if run_id == "latest":
        row = con.execute(
            "SELECT run_id FROM store.runs ORDER BY start_time DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise RunNotFoundError("the log has no runs yet")
        run_id = row[0]
    if not run_id or not re.fullmatch(r"[0-9a-zA-Z_-]+", run_id):
        raise RunNotFoundError(f"{run_id!r} is not a run id (see mlops-nb runs)")
    matches = [
        row[0]
        for row in con.execute(
            "SELECT run_id FROM store.runs WHERE starts_with(run_id, ?) LIMIT 3", [run_id]
        ).fetchall()
    ]
    if not matches:
        raise RunNotFoundError(f"no run {run_id!r} in the log (see mlops-nb runs)")
    if len(matches) > 1:
        raise RunNotFoundError(f"run id prefix {run_id!r} is ambiguous: give more characters")
    full_id = matches[0]

    def frame(sql: str) -> pd.DataFrame:
        return con.execute(sql, [full_id]).df()

    info = frame("SELECT * FROM runs WHERE run_id = ?").iloc[0].to_dict()
    tags = dict(info.pop("tags") or {})
    params = {
        name: values.decode_param(kind, encoded, text)
        for name, text, kind, encoded in con.execute(
            "SELECT name, value, value_type, value_json FROM store.params WHERE run_id = ? "
            "ORDER BY name",
            [full_id],
        ).fetchall()
    }
    latest = dict(
        con.execute(
            "SELECT key, value FROM store.latest_metrics WHERE run_id = ? ORDER BY key", [full_id]
        ).fetchall()
    )
    return RunRecord(
        info=info,
        params=params,
        metrics=latest,
        metric_history=frame("SELECT * FROM metrics WHERE run_id = ? ORDER BY key, step"),
        tags=tags,
        cells=frame("SELECT * FROM cells WHERE run_id = ? ORDER BY cell_seq"),
        datasets=frame("SELECT * FROM datasets WHERE run_id = ? ORDER BY created_at"),
        lineage=frame("SELECT * FROM lineage WHERE run_id = ? ORDER BY cell_seq"),
        artifacts=frame("SELECT * FROM artifacts WHERE run_id = ? ORDER BY created_at"),
        models=frame("SELECT * FROM models WHERE run_id = ? ORDER BY created_at"),
    )


# ---------------------------------------------------------------------- small helpers


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _text(value: Any, default: str) -> str:
    return default if value is None or _is_missing(value) else str(value)


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


__all__ = ["Log", "Run", "RunRecord", "active_run", "MlopsError"]
