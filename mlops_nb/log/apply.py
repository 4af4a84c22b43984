"""Turn journal records into rows of the log's tables, one batch per transaction.

Each journal line is a small JSON object with an ``op``. A batch is grouped by table and
inserted with one set-based statement per table through Arrow (row-by-row ``executemany`` is
~1000x slower in DuckDB). The byte offset reached in the journal is written in the same
transaction, so a batch is applied exactly once even if the merging process dies midway.

The same records land in a team lake (DuckLake, ``lake=True``), which has no primary keys,
``ON CONFLICT``, ``INSERT OR REPLACE/IGNORE`` or ``RETURNING`` on updates: there, an upsert is
one MERGE in the merge's transaction (merges are serialised by the lake's lock, so
no other merge runs meanwhile), and ``store.run_values`` is not kept (the lake computes it).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mlops_nb.log import wide
from mlops_nb.log.sqltext import literal as _literal

# Tables whose rows are journaled as-is (``{"op": "row", "table": ..., "row": {...}}``).
ROW_TABLES = (
    "cells", "datasets", "lineage", "artifacts", "models", "environment", "notes", "schedules",
    "checkpoints", "gate_results", "requests", "feedback", "profiles", "drift", "performance",
    "monitor_events", "pii_findings", "expectations", "check_results", "fairness", "importances",
    "erasures",
)  # fmt: skip
# Registry records, applied one by one in journal order (a version is numbered, an alias moved
# and its history written inside the merge's transaction, so concurrent writers cannot race).
REGISTRY_OPS = ("model_version", "alias")
_TIME_FIELDS = ("start_time", "end_time", "created_at", "window_start", "window_end")
_RUN_COLUMNS = (
    "run_id", "experiment", "name", "status", "start_time", "end_time", "user_name", "host",
    "pid", "source", "notebook_path", "notebook_hash", "git_commit", "git_dirty",
    "parent_run_id", "writer_id", "error", "db_user",
)  # fmt: skip
# record tables whose rows say who did it (``db_user``, stamped at merge time)
_AUDITED_ROWS = ("gate_results", "erasures")
# at most this much of another process's journal is merged with ours (it merges the rest)
NEIGHBOUR_BYTES = 1024 * 1024
_BULK_OPS = ("bulk_metrics", "blob")  # journal lines pointing at a bulk file


def os_user() -> str:
    """Who runs this process, as a file log records it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _ts(column: str) -> str:
    """SQL turning epoch seconds (DOUBLE) into a naive UTC TIMESTAMP, independent of TimeZone."""
    return f"make_timestamp(CAST({column} * 1000000 AS BIGINT))"


def merge_journal(
    con: duckdb.DuckDBPyConnection,
    journal_dir: Path,
    journal: str,
    load_bulk: Callable[[Path], pa.Table],
    db_user: str | None = None,
) -> int:
    """Apply the not-yet-merged complete lines of one journal file; return records applied."""
    unmerged = _unmerged(con, journal_dir, journal)
    if unmerged is None:
        return 0
    records, offset = unmerged
    con.execute("BEGIN TRANSACTION")
    try:
        bulk_files = apply_records(con, records, journal_dir, load_bulk, db_user=db_user)
        con.execute(
            "INSERT OR REPLACE INTO store.journal_progress VALUES (?, ?)", [journal, offset]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for bulk in bulk_files:
        with contextlib.suppress(FileNotFoundError):
            os.remove(bulk)
    return len(records)


def merge_journals_into_lake(
    con: duckdb.DuckDBPyConnection,
    journal_dir: Path,
    journals: list[str],
    load_bulk: Callable[[Path], pa.Table],
    db_user: str | None = None,
    before_bulk: Collection[str] = (),
) -> tuple[list[Path], dict[str, int]]:
    """``merge_journal`` for a team lake, inside the caller's (serialised) transaction, which
    reads the offsets too, so a redo after an unknown COMMIT outcome adds nothing; several
    journals make one batch (a statement per table, not per journal). A journal in
    ``before_bulk`` (another live process's) is merged up to its first bulk line: that process
    holds the bulk data in memory and merges it itself. Returns the bulk files consumed and
    the offset reached in each journal that moved on."""
    if not journals:
        return [], {}
    applied = dict(
        con.execute(
            "SELECT journal, applied_bytes FROM store.journal_progress "
            "WHERE list_contains(?, journal)",
            [journals],
        ).fetchall()
    )
    records: list[dict[str, Any]] = []
    reached = {}
    for journal in journals:
        limit = NEIGHBOUR_BYTES if journal in before_bulk else None
        unmerged = _read_unmerged(
            journal_dir, journal, applied.get(journal, 0), journal in before_bulk, limit
        )
        if unmerged is not None:
            records += unmerged[0]
            reached[journal] = unmerged[1]
    if not reached:
        return [], {}
    bulk_files = apply_records(con, records, journal_dir, load_bulk, lake=True, db_user=db_user)
    con.register("batch_progress", pa.table({
        "journal": list(reached), "applied_bytes": pa.array(list(reached.values()), pa.int64()),
    }))  # fmt: skip
    _upsert_into_lake(con, "journal_progress", "batch_progress", ("journal",))
    return bulk_files, reached


def _unmerged(
    con: duckdb.DuckDBPyConnection, journal_dir: Path, journal: str
) -> tuple[list[dict[str, Any]], int] | None:
    """The complete journal lines after the merged offset, and the offset after them."""
    row = con.execute(
        "SELECT applied_bytes FROM store.journal_progress WHERE journal = ?", [journal]
    ).fetchone()
    return _read_unmerged(journal_dir, journal, row[0] if row else 0)


def _read_unmerged(
    journal_dir: Path,
    journal: str,
    start: int,
    before_bulk: bool = False,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], int] | None:
    """The complete lines of a journal from byte ``start`` (up to the first line pointing at
    a bulk file, if ``before_bulk``; within ``limit`` bytes), and the offset after them; None
    when there are none."""
    try:
        with open(journal_dir / journal, "rb") as handle:
            handle.seek(start)
            data = handle.read(-1 if limit is None else limit)
    except FileNotFoundError:
        return None
    end = data.rfind(b"\n") + 1  # a trailing partial line was never acknowledged: leave it
    if end == 0:
        return None
    records = []
    reached = 0
    for line in data[:end].splitlines(keepends=True):
        try:
            record = _parse_line(line)
        except ValueError:
            reached += len(line)
            continue
        if before_bulk and isinstance(record, dict) and record.get("op") in _BULK_OPS:
            break
        records.append(record)
        reached += len(line)
    return (records, start + reached) if reached else None


def _parse_line(line: bytes) -> Any:
    """orjson for speed; json for the lines that carry NaN or infinity (orjson refuses them)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def apply_records(
    con: duckdb.DuckDBPyConnection,
    records: list[dict[str, Any]],
    journal_dir: Path,
    load_bulk: Callable[[Path], pa.Table],
    *,
    lake: bool = False,
    db_user: str | None = None,
) -> list[Path]:
    """Insert a batch of records; returns the bulk files it consumed (to delete after commit).
    Runs, registrations, alias moves, gate results and erasures are stamped with ``db_user``,
    the authenticated database user merging them (the OS user when not given)."""
    db_user = db_user or os_user()
    experiments: dict[str, float] = {}
    runs: list[dict[str, Any]] = []
    status_updates: dict[str, dict[str, Any]] = {}
    params: dict[tuple[str, str], list[Any]] = {}
    tags: dict[tuple[str, str], str] = {}
    metrics: dict[str, list[Any]] = {"run_id": [], "key": [], "value": [], "step": [], "t": []}
    bulk_files: list[Path] = []
    bulk_runs: list[str] = []
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in ROW_TABLES}
    registry: list[dict[str, Any]] = []
    blobs: list[Path] = []

    for record in records:
        op = record.get("op")
        if op == "m":
            _add_metric(metrics, record["r"], record["k"], record["v"], record["s"], record["t"])
        elif op == "ms":
            for key, value, step, t in record["items"]:
                _add_metric(metrics, record["r"], key, value, step, t)
        elif op == "bulk_metrics":
            bulk_files.append(journal_dir / record["file"])
            bulk_runs.append(record["r"])
        elif op == "params":
            for name, value, value_type, value_num, value_json in record["items"]:
                params[(record["run_id"], name)] = [value, value_type, value_num, value_json]
        elif op == "tags":
            for key, value in record["items"].items():
                tags[(record["run_id"], key)] = value
        elif op == "run_start":
            experiments.setdefault(record["run"]["experiment"], record["run"]["start_time"])
            runs.append({**record["run"], "db_user": record["run"].get("db_user") or db_user})
        elif op in ("run_end", "run_resume"):
            status_updates[record["run_id"]] = record
        elif op == "row" and record.get("table") in rows:
            row = record["row"]
            if record["table"] in _AUDITED_ROWS and not row.get("db_user"):
                row = {**row, "db_user": db_user}
            rows[record["table"]].append(row)
        elif op in REGISTRY_OPS:
            registry.append({**record, "db_user": record.get("db_user") or db_user})
        elif op == "blob" and lake:
            blobs.append(journal_dir / record["file"])

    if experiments:
        _register(con, "batch_experiments", {
            "name": list(experiments), "t": list(experiments.values()),
        })  # fmt: skip
        if lake:
            con.execute(
                f"INSERT INTO store.experiments SELECT name, {_ts('t')} FROM batch_experiments "
                "WHERE name NOT IN (SELECT name FROM store.experiments)"
            )
        else:
            con.execute(
                f"INSERT OR IGNORE INTO store.experiments SELECT name, {_ts('t')} "
                "FROM batch_experiments"
            )
    if runs:
        if lake:  # MERGE needs each run once; one started and ended here is inserted ended
            latest = {run["run_id"]: run for run in runs}.values()
            runs = [_ended(run, status_updates.pop(run["run_id"], None)) for run in latest]
        columns = {c: [_run_value(run, c) for run in runs] for c in _RUN_COLUMNS}
        _register(con, "batch_runs", columns)
        if lake:
            _upsert_into_lake(con, "runs", "batch_runs", ("run_id",))
        else:
            con.execute("INSERT OR REPLACE INTO store.runs SELECT * FROM batch_runs")
            wide.refresh_runs(con, (run["run_id"] for run in runs))
    if params:
        _register(con, "batch_params", {
            "run_id": [k[0] for k in params], "name": [k[1] for k in params],
            "value": [v[0] for v in params.values()], "value_type": [v[1] for v in params.values()],
            "value_num": [v[2] for v in params.values()],
            "value_json": [v[3] for v in params.values()],
        })  # fmt: skip
        if lake:
            _upsert_into_lake(con, "params", "batch_params", ("run_id", "name"))
        else:
            con.execute(
                "INSERT INTO store.params SELECT * FROM batch_params ON CONFLICT (run_id, name) "
                "DO UPDATE SET value = excluded.value, value_type = excluded.value_type, "
                "value_num = excluded.value_num, value_json = excluded.value_json"
            )
    if params and not lake:
        kinds_by_name: dict[str, set[str]] = {}
        for (_, name), value in params.items():
            kinds_by_name.setdefault(name, set()).add(value[1])
        wide.refresh_params(con, kinds_by_name, {run_id for run_id, _ in params})
    if tags:
        _register(con, "batch_tags", {
            "run_id": [k[0] for k in tags], "key": [k[1] for k in tags],
            "value": list(tags.values()),
        })  # fmt: skip
        if lake:
            _upsert_into_lake(con, "tags", "batch_tags", ("run_id", "key"))
        else:
            con.execute(
                "INSERT INTO store.tags SELECT * FROM batch_tags ON CONFLICT (run_id, key) "
                "DO UPDATE SET value = excluded.value"
            )
    if metrics["run_id"] or bulk_files:
        bulk = [
            (load_bulk(path), run_id) for path, run_id in zip(bulk_files, bulk_runs, strict=True)
        ]
        _insert_metrics(con, metrics, bulk, lake=lake)
    for table, table_rows in rows.items():
        if table_rows:
            con.register(f"batch_{table}", _rows_table(table_rows))
            con.execute(f"INSERT INTO store.{table} BY NAME SELECT * FROM batch_{table}")
    if status_updates:
        updates = list(status_updates.values())
        _register(con, "batch_status", {
            "run_id": [u["run_id"] for u in updates],
            "status": [u.get("status", "running") for u in updates],
            "t": [u.get("t") for u in updates],
            "error": [u.get("error") for u in updates],
            "writer_id": [u.get("writer_id") for u in updates],
            "resume": [u["op"] == "run_resume" for u in updates],
        })  # fmt: skip
        con.execute(
            f"UPDATE store.runs SET status = u.status, "
            f"end_time = CASE WHEN u.resume THEN NULL ELSE {_ts('u.t')} END, "
            "error = u.error, writer_id = coalesce(u.writer_id, runs.writer_id) "
            "FROM batch_status u WHERE runs.run_id = u.run_id"
        )
        if not lake:
            wide.refresh_runs(con, status_updates)
    for record in registry:
        if record["op"] == "model_version":
            row = {**record["row"], "db_user": record["row"].get("db_user") or record["db_user"]}
            _add_model_version(con, row, lake=lake)
        else:
            _move_alias(con, record, lake=lake)
    for number, path in enumerate(blobs):
        con.register(f"batch_blob_{number}", load_bulk(path))
        con.execute(
            "INSERT INTO store.artifact_blobs SELECT sha256, size, content, created_at "
            f"FROM batch_blob_{number} WHERE sha256 NOT IN "
            "(SELECT sha256 FROM store.artifact_blobs)"
        )
    return bulk_files + blobs


def _ended(run: dict[str, Any], update: dict[str, Any] | None) -> dict[str, Any]:
    """A run's start with its later end (or resume) applied, as the status UPDATE would."""
    if update is None:
        return run
    resumed = update["op"] == "run_resume"
    return {
        **run, "status": update.get("status", "running"), "error": update.get("error"),
        "end_time": None if resumed else update.get("t"),
        "writer_id": update.get("writer_id") or run.get("writer_id"),
    }  # fmt: skip


def _add_model_version(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], lake: bool = False
) -> None:
    """The next version number of ``row["name"]``, given here: the merge is serialised."""
    values = _row(row)
    columns = [c for c in values if c != "version"]
    if lake:
        if _count(con, "model_versions", "version_id", values["version_id"]):
            return
        con.execute(
            f"INSERT INTO store.model_versions ({', '.join(columns)}, version) "
            f"SELECT {', '.join('?' for _ in columns)}, coalesce(max(version), 0) + 1 "
            "FROM store.model_versions WHERE name = ?",
            [*(values[c] for c in columns), values["name"]],
        )
        return
    con.execute(
        f"INSERT INTO store.model_versions ({', '.join(columns)}, version) "
        f"SELECT {', '.join('?' for _ in columns)}, coalesce(max(version), 0) + 1 "
        "FROM store.model_versions WHERE name = ? ON CONFLICT (version_id) DO NOTHING",
        [*(values[c] for c in columns), values["name"]],
    )


def _move_alias(con: duckdb.DuckDBPyConnection, record: dict[str, Any], lake: bool = False) -> None:
    """Point an alias at a version (or remove it: version None) and record the move."""
    name, alias, version = record["name"], record["alias"], record.get("version")
    when = _to_datetime(record["t"])
    found = con.execute(
        "SELECT version FROM store.model_aliases WHERE name = ? AND alias = ?", [name, alias]
    ).fetchone()
    previous = found[0] if found else None
    if (
        version is not None
        and not con.execute(
            "SELECT count(*) FROM store.model_versions WHERE name = ? AND version = ?",
            [name, version],
        ).fetchone()[0]
    ):
        return  # checked before journaling; a version that vanished is not pointed at
    if version is None or lake:
        con.execute("DELETE FROM store.model_aliases WHERE name = ? AND alias = ?", [name, alias])
    if version is not None and lake:
        con.execute(
            "INSERT INTO store.model_aliases VALUES (?, ?, ?, ?, ?, ?)",
            [name, alias, version, record.get("user"), record.get("reason"), when],
        )
    elif version is not None:
        con.execute(
            "INSERT OR REPLACE INTO store.model_aliases VALUES (?, ?, ?, ?, ?, ?)",
            [name, alias, version, record.get("user"), record.get("reason"), when],
        )
    con.execute(
        "INSERT INTO store.alias_history (name, alias, from_version, to_version, user_name, "
        "reason, moved_at, db_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [name, alias, previous, version, record.get("user"), record.get("reason"), when,
         record.get("db_user")],
    )  # fmt: skip


_DIED = (
    "'the process recording this run (pid ' || coalesce(pid::VARCHAR, '?') || ' on ' || "
    "coalesce(host, '?') || ') died before ending it'"
)


def mark_crashed(
    con: duckdb.DuckDBPyConnection, writer_id: str, last_seen: float | None, lake: bool = False
) -> None:
    """A writer died without ending its runs: they are ``crashed``, ended when it was last seen."""
    ended = _to_datetime(last_seen) if last_seen else datetime.now(UTC).replace(tzinfo=None)
    if lake:
        con.execute(
            "UPDATE store.runs SET status = 'crashed', end_time = ?, error = "
            f"{_DIED} WHERE writer_id = ? AND status = 'running'",
            [ended, writer_id],
        )
        return
    con.execute(
        f"UPDATE store.runs SET status = 'crashed', end_time = ?, error = {_DIED} "
        "WHERE writer_id = ? AND status = 'running' RETURNING run_id",
        [ended, writer_id],
    )
    wide.refresh_runs(con, [row[0] for row in con.fetchall()])


# "latest" means the highest step, then the latest time: one HUGEINT key compares much faster
# than a (step, timestamp) struct
_ORDER = "(step::HUGEINT * 100000000000000000 + epoch_us(timestamp))"


def _insert_metrics(
    con: duckdb.DuckDBPyConnection,
    metrics: dict[str, list[Any]],
    bulk: list[tuple[pa.Table, str]],
    lake: bool = False,
) -> None:
    """Append to the history and move ``latest_metrics`` forward, set-wise."""
    sources = []
    if metrics["run_id"]:
        _register(con, "batch_metrics_small", metrics, value_type=pa.float64())
        sources.append(
            "SELECT run_id, key, CAST(value AS DOUBLE), CAST(step AS BIGINT), "
            f"{_ts('t')} FROM batch_metrics_small"
        )
    for number, (table, run_id) in enumerate(bulk):  # built by log_batch with the final types
        con.register(f"batch_bulk_{number}", table)
        sources.append(
            f"SELECT {_literal(run_id)}, key, value, step, timestamp FROM batch_bulk_{number}"
        )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW batch_metrics (run_id, key, value, step, timestamp) AS "
        + " UNION ALL ".join(sources)
    )
    con.execute("INSERT INTO store.metrics SELECT * FROM batch_metrics")
    if lake:
        _move_latest_metrics(con)
        return
    con.execute(
        "INSERT INTO store.latest_metrics "
        f"SELECT run_id, key, arg_max(value, {_ORDER}), max(step), "
        f"arg_max(timestamp, {_ORDER}) FROM batch_metrics GROUP BY run_id, key "
        "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
        "step = excluded.step, timestamp = excluded.timestamp "
        "WHERE (excluded.step, excluded.timestamp) >= "
        "(latest_metrics.step, latest_metrics.timestamp) RETURNING run_id, key"
    )
    touched = con.fetchall()  # only the (run, key) pairs whose latest value moved
    wide.refresh_metrics(con, {key for _, key in touched}, {run_id for run_id, _ in touched})


def _move_latest_metrics(con: duckdb.DuckDBPyConnection) -> None:
    """``latest_metrics`` on a lake: the batch's latest point per key, where it is newer."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE batch_latest AS "
        f"SELECT run_id, key, arg_max(value, {_ORDER}) AS value, max(step) AS step, "
        f"arg_max(timestamp, {_ORDER}) AS timestamp FROM batch_metrics GROUP BY run_id, key"
    )
    _upsert_into_lake(
        con, "latest_metrics", "batch_latest", ("run_id", "key"),
        "(b.step, b.timestamp) >= (t.step, t.timestamp)",
    )  # fmt: skip


def _upsert_into_lake(
    con: duckdb.DuckDBPyConnection,
    table: str,
    batch: str,
    keys: tuple[str, ...],
    newer: str = "",
) -> None:
    """``INSERT OR REPLACE`` (or ``ON CONFLICT DO UPDATE ... WHERE newer``) on a lake: one
    MERGE of a batch that holds each key once, by column name."""
    same = " AND ".join(f"t.{key} = b.{key}" for key in keys)
    condition = f" AND {newer}" if newer else ""
    con.execute(
        f"MERGE INTO store.{table} t USING {batch} b ON {same} "
        f"WHEN MATCHED{condition} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )


def replace_row(con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    """``INSERT OR REPLACE`` of one row on a lake, keyed by its first column."""
    names = list(row)
    values = ", ".join(f"? AS {name}" for name in names)
    con.execute(
        f"MERGE INTO store.{table} t USING (SELECT {values}) b ON t.{names[0]} = b.{names[0]} "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
        list(row.values()),
    )


def _count(con: duckdb.DuckDBPyConnection, table: str, column: str, value: Any) -> int:
    row = con.execute(f"SELECT count(*) FROM store.{table} WHERE {column} = ?", [value]).fetchone()
    return int(row[0]) if row else 0


def _add_metric(metrics: dict[str, list[Any]], run_id: str, key: str, value, step, t) -> None:
    metrics["run_id"].append(run_id)
    metrics["key"].append(key)
    metrics["value"].append(value)
    metrics["step"].append(step)
    metrics["t"].append(t)


def _register(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: dict[str, list[Any]],
    value_type: pa.DataType | None = None,
) -> None:
    arrays = {}
    for column, values in columns.items():
        if column == "value" and value_type is not None:
            arrays[column] = pa.array([_float(v) for v in values], type=value_type)
        elif column == "t":
            arrays[column] = pa.array(values, type=pa.float64())
        else:
            arrays[column] = pa.array(values)
    con.register(name, pa.table(arrays))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _run_value(run: dict[str, Any], column: str) -> Any:
    value = run.get(column)
    if column in _TIME_FIELDS and value is not None:
        return _to_datetime(value)
    return value


def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as one Arrow table, converted column by column (a served model's merge holds
    thousands of request rows): epoch seconds become timestamps. Rows with nested values
    (stored as JSON text) or columns mixing kinds go row by row, as ``_row`` says."""
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = None
    if table is None or any(pa.types.is_nested(field.type) for field in table.schema):
        return pa.Table.from_pylist([_row(row) for row in rows])
    for index, field in enumerate(table.schema):
        numeric = pa.types.is_floating(field.type) or pa.types.is_integer(field.type)
        if field.name in _TIME_FIELDS and numeric:
            micros = pc.round(pc.multiply(table.column(index).cast(pa.float64()), 1_000_000))
            stamps = micros.cast(pa.int64()).cast(pa.timestamp("us"))
            table = table.set_column(index, field.name, stamps)
    return table


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """Timestamps arrive as epoch seconds and nested values as objects: store both as SQL."""
    out = {}
    for key, value in row.items():
        if key in _TIME_FIELDS and isinstance(value, (int, float)):
            value = _to_datetime(value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        out[key] = value
    return out


def _to_datetime(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)
