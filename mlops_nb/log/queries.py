"""The log's named questions: the SQL that other parts need, with bound parameters.

``Log`` exposes each as a method (``log.notes(run_id)``, ``log.cache_hit(key)``...), so the
docs builder, the server, the pipeline runner and the tracker ask questions by name and never
write SQL themselves. Every function takes an open read connection and full run ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

# A notebook is matched by the path recorded for its runs, or by its file name: papermill runs
# record the path they were given (often relative), interactive kernels the session's path.
_OF_NOTEBOOK = "(notebook_path = $path OR notebook_path = $name OR ends_with(notebook_path, $tail))"


def notebook_args(notebook: str | Path) -> dict[str, str]:
    name = Path(notebook).name
    return {"path": str(notebook), "name": name, "tail": "/" + name}


def notebook_runs(
    con: duckdb.DuckDBPyConnection, notebook: str | Path, status: str | None, limit: int | None
) -> pd.DataFrame:
    """Runs of one notebook, newest first: run_id, status, start_time, name."""
    args: dict[str, object] = notebook_args(notebook)
    sql = f"SELECT run_id, status, start_time, name FROM runs WHERE {_OF_NOTEBOOK}"
    if status is not None:
        sql += " AND status = $status"
        args["status"] = status
    sql += " ORDER BY start_time DESC"
    if limit is not None:
        sql += " LIMIT $limit"
        args["limit"] = int(limit)
    return con.execute(sql, args).df()


def schedules(con: duckdb.DuckDBPyConnection, notebook: str | Path | None) -> pd.DataFrame:
    """Recorded schedules, newest first (of one notebook when given)."""
    if notebook is None:
        return con.execute("SELECT * FROM schedules ORDER BY created_at DESC").df()
    return con.execute(
        f"SELECT * FROM schedules WHERE {_OF_NOTEBOOK} ORDER BY created_at DESC",
        notebook_args(notebook),
    ).df()


def environment(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """kind, name, version of what a run ran on (python, platform, packages)."""
    return con.execute(
        "SELECT kind, name, version FROM environment WHERE run_id = ? ORDER BY kind, lower(name)",
        [run_id],
    ).df()


def notes(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """cell_seq, kind, message of the notes a run's tracker wrote, oldest first."""
    return con.execute(
        "SELECT cell_seq, kind, message FROM notes WHERE run_id = ? ORDER BY created_at",
        [run_id],
    ).df()


def checkpoints(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    names: Sequence[str] | None,
    before: int | None,
    cell: int | None,
) -> pd.DataFrame:
    """The newest saved value per name: name, format, path, cell_seq, stage, cache_key."""
    sql = (
        "SELECT name, format, path, cell_seq, stage, cache_key FROM checkpoints WHERE run_id = $run"
    )
    args: dict[str, object] = {"run": run_id}
    if names is not None:
        sql += " AND list_contains($names, name)"
        args["names"] = list(names)
    if before is not None:
        sql += " AND cell_seq < $before"
        args["before"] = int(before)
    if cell is not None:
        sql += " AND cell_seq = $cell"
        args["cell"] = int(cell)
    sql += " QUALIFY row_number() OVER (PARTITION BY name ORDER BY cell_seq DESC) = 1 ORDER BY name"
    return con.execute(sql, args).df()


def cache_hit(con: duckdb.DuckDBPyConnection, cache_key: str) -> tuple[str, int] | None:
    """The newest successful cell saved under ``cache_key``: (run_id, cell_seq), or None."""
    row = con.execute(
        "SELECT k.run_id, k.cell_seq FROM checkpoints k JOIN cells c "
        "ON c.run_id = k.run_id AND c.cell_seq = k.cell_seq "
        "WHERE k.cache_key = ? AND c.status = 'ok' ORDER BY k.created_at DESC LIMIT 1",
        [cache_key],
    ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def cache_inputs(
    con: duckdb.DuckDBPyConnection, run_id: str, cell_seq: int
) -> list[tuple[str, str]]:
    """(path, identity) of the files a cell read while it ran, saved with its checkpoints."""
    row = con.execute(
        "SELECT inputs FROM checkpoints WHERE run_id = ? AND cell_seq = ? "
        "AND inputs IS NOT NULL LIMIT 1",
        [run_id, int(cell_seq)],
    ).fetchone()
    return [(str(path), str(identity)) for path, identity in json.loads(row[0])] if row else []


def cached_cells(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[int, float]:
    """How many of a run's cells came from the cache, and the seconds they took where they
    were computed (the tracker notes each restore as ``... run <id> cell <seq>``)."""
    row = con.execute(
        "SELECT count(*), sum(o.duration_s) FROM notes n "
        "JOIN cells o ON o.run_id = regexp_extract(n.message, 'run ([0-9a-f]+) cell', 1) "
        "AND o.cell_seq = CAST(regexp_extract(n.message, 'cell ([0-9]+)$', 1) AS INTEGER) "
        "WHERE n.run_id = ? AND n.kind = 'cached'",
        [run_id],
    ).fetchone()
    return (int(row[0]), float(row[1] or 0.0)) if row else (0, 0.0)


def stage_flows(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """stage, direction (in/out), dataset label ``name@vN (RxC)`` of a run's lineage."""
    return con.execute(
        "SELECT c.stage, l.direction, d.name || '@v' || d.version || ' (' || d.n_rows || 'x' "
        "|| d.n_cols || ')' AS dataset FROM lineage l "
        "JOIN cells c ON c.run_id = l.run_id AND c.cell_seq = l.cell_seq "
        "JOIN datasets d ON d.dataset_id = l.dataset_id AND d.run_id = l.run_id "
        "WHERE l.run_id = ? ORDER BY l.cell_seq, d.name",
        [run_id],
    ).df()


# ---------------------------------------------------------------------- model registry
_JSON_FIELDS = ("steps", "parts", "signature", "outputs", "metrics", "packages", "verification",
                "tags")  # fmt: skip


def version_number(con: duckdb.DuckDBPyConnection, version_id: str) -> int | None:
    row = con.execute(
        "SELECT version FROM store.model_versions WHERE version_id = ?", [version_id]
    ).fetchone()
    return int(row[0]) if row else None


def model_versions(con: duckdb.DuckDBPyConnection, name: str | None) -> pd.DataFrame:
    """Versions newest first, each with the list of aliases that point at it."""
    sql = (
        "SELECT v.name, v.version, v.run_id, v.model_var, v.artifact_sha256, v.format, "
        "v.metrics, v.user, v.description, v.created_at, "
        "coalesce(list(a.alias ORDER BY a.alias) FILTER (a.alias IS NOT NULL), []) AS aliases "
        "FROM model_versions v LEFT JOIN model_aliases a USING (name, version)"
    )
    args: list[object] = []
    if name is not None:
        sql += " WHERE v.name = ?"
        args.append(name)
    sql += " GROUP BY ALL ORDER BY v.name, v.version DESC"
    return con.execute(sql, args).df()


def model_version(
    con: duckdb.DuckDBPyConnection, name: str, version: int | None, alias: str | None
) -> dict[str, object] | None:
    if alias is not None:
        found = con.execute(
            "SELECT version FROM store.model_aliases WHERE name = ? AND alias = ?", [name, alias]
        ).fetchone()
        if not found:
            return None
        version = int(found[0])
    sql = "SELECT * FROM model_versions WHERE name = ?"
    args: list[object] = [name]
    if version is not None:
        sql += " AND version = ?"
        args.append(int(version))
    frame = con.execute(sql + " ORDER BY version DESC LIMIT 1", args).df()
    if frame.empty:
        return None
    record = frame.iloc[0].to_dict()
    for key in _JSON_FIELDS:
        if isinstance(record.get(key), str):
            record[key] = json.loads(record[key])
    record["version"] = int(record["version"])
    record["aliases"] = [
        row[0]
        for row in con.execute(
            "SELECT alias FROM store.model_aliases WHERE name = ? AND version = ? ORDER BY alias",
            [name, record["version"]],
        ).fetchall()
    ]
    return record


def aliases(con: duckdb.DuckDBPyConnection, name: str | None) -> pd.DataFrame:
    if name is None:
        return con.execute("SELECT * FROM model_aliases ORDER BY name, alias").df()
    return con.execute("SELECT * FROM model_aliases WHERE name = ? ORDER BY alias", [name]).df()


def alias_history(
    con: duckdb.DuckDBPyConnection, name: str | None, alias: str | None
) -> pd.DataFrame:
    sql = "SELECT * FROM alias_history WHERE TRUE"
    args: list[object] = []
    if name is not None:
        sql += " AND name = ?"
        args.append(name)
    if alias is not None:
        sql += " AND alias = ?"
        args.append(alias)
    return con.execute(sql + " ORDER BY moved_at, name, alias", args).df()


def alias_at(con: duckdb.DuckDBPyConnection, name: str, alias: str, moment: object) -> int | None:
    """The ``to_version`` of the last move of the alias at or before ``moment``."""
    row = con.execute(
        "SELECT to_version FROM store.alias_history WHERE name = ? AND alias = ? "
        "AND moved_at <= ? ORDER BY moved_at DESC LIMIT 1",
        [name, alias, moment],
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def gate_results(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The acceptance-gate conditions checked for a run, oldest gate first."""
    return con.execute(
        "SELECT gate_id, model_name, model_version, condition, metric, value, baseline, "
        "baseline_ref, baseline_version, passed, detail, created_at FROM gate_results "
        "WHERE run_id = ? ORDER BY created_at, gate_id",
        [run_id],
    ).df()


# ---------------------------------------------------------------------- monitoring
def _where(filters: dict[str, object]) -> tuple[str, list[object]]:
    """`` WHERE a = ? AND ...`` for the filters that are given (None means any)."""
    given = {column: value for column, value in filters.items() if value is not None}
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column in given), list(given.values())


def profiles(
    con: duckdb.DuckDBPyConnection,
    *,
    dataset_id: str | None,
    model_name: str | None,
    model_version: int | None,
    kind: str | None,
) -> pd.DataFrame:
    """Stored reference profiles, newest first (``profile`` is JSON text)."""
    where, args = _where({
        "dataset_id": dataset_id, "model_name": model_name, "model_version": model_version,
        "kind": kind,
    })  # fmt: skip
    return con.execute(f"SELECT * FROM profiles{where} ORDER BY created_at DESC", args).df()


def drift_results(
    con: duckdb.DuckDBPyConnection,
    *,
    model_name: str | None,
    check_id: str | None,
    since: object | None,
) -> pd.DataFrame:
    """Drift test results, newest check first, columns in the order they were tested."""
    where, args = _where({"model_name": model_name, "check_id": check_id})
    if since is not None:
        where += (" AND" if where else " WHERE") + ' "when" >= ?'
        args.append(since)
    return con.execute(f'SELECT * FROM drift{where} ORDER BY "when" DESC, check_id', args).df()


def performance_results(
    con: duckdb.DuckDBPyConnection, *, model_name: str | None, kind: str | None
) -> pd.DataFrame:
    """Live performance per window (realized or estimated), oldest window first."""
    where, args = _where({"model_name": model_name, "kind": kind})
    return con.execute(f"SELECT * FROM performance{where} ORDER BY window_start, metric", args).df()


def monitor_events(con: duckdb.DuckDBPyConnection, model_name: str | None) -> pd.DataFrame:
    """What ``mlops-nb monitor`` did, oldest first."""
    where, args = _where({"model_name": model_name})
    return con.execute(f"SELECT * FROM monitor_events{where} ORDER BY created_at", args).df()


def served_requests(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    model_version: int | None,
    since: object | None,
) -> pd.DataFrame:
    """Answered requests of a model (inputs and outputs as JSON text), oldest first."""
    where, args = _where({"model_name": model_name, "model_version": model_version})
    where += " AND status = 200"
    if since is not None:
        where += " AND created_at >= ?"
        args.append(since)
    return con.execute(
        "SELECT request_id, model_version, created_at, inputs, outputs FROM requests"
        f"{where} ORDER BY created_at",
        args,
    ).df()


def labelled_predictions(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    model_version: int | None,
    since: object | None,
) -> pd.DataFrame:
    """Served rows that received a feedback label: request, row, prediction, label, when,
    and the request's inputs (JSON text, all its rows: pick ``row_index``)."""
    where, args = _where({"model_name": model_name, "model_version": model_version})
    where += " AND label IS NOT NULL"
    if since is not None:
        where += " AND created_at >= ?"
        args.append(since)
    return con.execute(
        "SELECT request_id, row_index, model_version, created_at, prediction, label, outputs, "
        f"inputs FROM predictions{where} ORDER BY created_at, request_id, row_index",
        args,
    ).df()


def latest_drift_checks(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The rows of the newest drift check of each version of a model (the ``drift`` view's
    columns), newest check first, each check's rows in the order they were recorded."""
    return con.execute(
        "WITH latest AS (SELECT arg_max(check_id, created_at) AS check_id FROM store.drift "
        "WHERE model_name = ? GROUP BY model_version) "
        'SELECT d.check_id, d.created_at AS "when", d.model_name, d.model_version, d.reference, '
        'd.current, d.target, d.column_name AS "column", d.column_type, d.method, d.score, '
        "d.threshold, d.drifted, d.exact, d.n_reference, d.n_current "
        "FROM store.drift d JOIN latest USING (check_id) WHERE d.model_name = ? "
        "ORDER BY d.created_at DESC, d.check_id, d.rowid",
        [model_name, model_name],
    ).df()


def latest_performance(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The newest window of each (version, kind, metric) of a model's live performance."""
    return con.execute(
        "SELECT * FROM performance WHERE model_name = ? QUALIFY row_number() OVER ("
        "PARTITION BY model_version, kind, metric ORDER BY window_end DESC, created_at DESC) = 1 "
        "ORDER BY model_version DESC, kind, metric",
        [model_name],
    ).df()


def recent_monitor_events(
    con: duckdb.DuckDBPyConnection, model_name: str, limit: int
) -> pd.DataFrame:
    """What ``mlops-nb monitor`` did to a model, newest first, at most ``limit`` events."""
    return con.execute(
        "SELECT * FROM monitor_events WHERE model_name = ? ORDER BY created_at DESC LIMIT ?",
        [model_name, limit],
    ).df()


def fairness(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str | None,
    model_name: str | None,
    model_version: int | None,
) -> pd.DataFrame:
    """Recorded fairness rows (the ``fairness`` view's columns), oldest first, each
    evaluation's rows in the order they were recorded."""
    where, args = _where({"run_id": run_id, "model_name": model_name,
                          "model_version": model_version})  # fmt: skip
    return con.execute(
        'SELECT run_id, cell_seq, model_name, model_version, sensitive, group_name AS "group", '
        f"metric, value, n_rows, created_at FROM store.fairness{where} ORDER BY created_at, rowid",
        args,
    ).df()


def importances(
    con: duckdb.DuckDBPyConnection, model_name: str, model_version: int
) -> pd.DataFrame:
    """The latest permutation importances of a model version, most important first."""
    return con.execute(
        "SELECT * FROM importances WHERE model_name = ? AND model_version = ? "
        "QUALIFY created_at = max(created_at) OVER () ORDER BY importance_mean DESC, feature",
        [model_name, model_version],
    ).df()


def pii_findings(
    con: duckdb.DuckDBPyConnection, *, run_id: str | None, dataset_id: str | None
) -> pd.DataFrame:
    """Personal-data findings (the ``pii_findings`` view's columns), oldest first."""
    where, args = _where({"run_id": run_id, "dataset_id": dataset_id})
    return con.execute(
        f"SELECT * FROM store.pii_findings{where} ORDER BY created_at, rowid", args
    ).df()


def expectations(
    con: duckdb.DuckDBPyConnection, *, dataset_id: str | None, run_id: str | None
) -> pd.DataFrame:
    """Stored expectations of dataset versions (``spec`` is JSON text), newest first."""
    where, args = _where({"dataset_id": dataset_id, "run_id": run_id})
    return con.execute(
        f"SELECT * FROM store.expectations{where} ORDER BY created_at DESC, rowid DESC", args
    ).df()


def check_results(
    con: duckdb.DuckDBPyConnection, *, run_id: str | None, check_id: str | None
) -> pd.DataFrame:
    """Recorded data checks (the ``check_results`` view's columns), oldest first, each
    check's rows in the order they were recorded."""
    where, args = _where({"run_id": run_id, "check_id": check_id})
    return con.execute(
        'SELECT check_id, run_id, cell_seq, target, expectation, column_name AS "column", '
        'check_name AS "check", n_failing, n_rows, example_rows, example_values, passed, '
        f"created_at FROM store.check_results{where} ORDER BY created_at, rowid",
        args,
    ).df()


# ---------------------------------------------------------------------- Prometheus exporter
# A pipeline is a notebook run headlessly (`mlops-nb run`): its name is the notebook's stem,
# as in the Pushgateway's grouping key. Sweep children (they have a parent) are left out.
_PIPELINE = r"regexp_replace(regexp_extract(notebook_path, '[^/\\]+$'), '\.ipynb$', '')"

_MONITORING_SNAPSHOT = {
    "experiment_metrics": """
        WITH latest AS (
            SELECT experiment, arg_max(run_id, end_time) AS run_id FROM store.runs
            WHERE status = 'finished' GROUP BY experiment)
        SELECT l.experiment, m.key AS metric, m.value
        FROM latest l JOIN store.latest_metrics m USING (run_id)""",
    "runs_by_status": """
        SELECT experiment, status, count(*) AS runs FROM store.runs GROUP BY ALL""",
    "pipelines": f"""
        SELECT {_PIPELINE} AS pipeline,
               max(epoch(end_time)) FILTER (status = 'finished') AS last_success,
               arg_max(epoch(end_time) - epoch(start_time), end_time)
                   FILTER (status IN ('finished', 'failed')) AS last_duration
        FROM store.runs
        WHERE source = 'papermill' AND notebook_path IS NOT NULL AND parent_run_id IS NULL
        GROUP BY ALL""",
    "version_metrics": "SELECT name, version, metrics FROM store.model_versions",
    "aliases": "SELECT name, alias, version FROM store.model_aliases",
    "dataset_drift": """
        SELECT model_name, arg_max(score, created_at) AS share,
               arg_max(drifted, created_at) AS drifted, max(epoch(created_at)) AS checked_at
        FROM store.drift WHERE target = 'dataset' AND model_name IS NOT NULL GROUP BY ALL""",
    "column_drift": """
        WITH latest AS (
            SELECT model_name, target, arg_max(check_id, created_at) AS check_id
            FROM store.drift WHERE target <> 'dataset' AND model_name IS NOT NULL GROUP BY ALL)
        SELECT d.model_name, d.target, d.column_name, d.method, d.score
        FROM store.drift d JOIN latest l USING (model_name, target, check_id)""",
    "performance": """
        SELECT model_name, kind, metric, arg_max(value, (window_end, created_at)) AS value
        FROM store.performance WHERE model_name IS NOT NULL GROUP BY ALL""",
    "requests": """
        SELECT model_name, model_version, status, count(*) AS requests
        FROM store.requests GROUP BY ALL""",
}


def monitoring_snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The latest figures a Prometheus scrape shows, one small frame each (see
    ``_MONITORING_SNAPSHOT``): aggregates only, so it stays fast on a big log."""
    return {name: con.execute(sql).df() for name, sql in _MONITORING_SNAPSHOT.items()}


def latest_gate_results(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The conditions of the newest recorded gate of each model (one row per condition)."""
    return con.execute(
        "WITH latest AS (SELECT model_name, arg_max(gate_id, created_at) AS gate_id "
        "FROM store.gate_results WHERE model_name IS NOT NULL GROUP BY model_name) "
        "SELECT g.model_name, g.model_version, g.condition, g.metric, g.value, g.baseline, "
        "g.baseline_ref, g.passed, g.created_at FROM store.gate_results g "
        "JOIN latest USING (model_name, gate_id) ORDER BY g.model_name, g.metric"
    ).df()


# ---------------------------------------------------------------------- retention and erasure
def stored_checkpoints(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every checkpoint with its run (experiment, status), the dataset version it saved (the
    newest of that name in its run made at or before its cell) and that version's personal-data
    columns (flagged or declared), oldest first."""
    return con.execute(
        "WITH d AS (SELECT run_id, name, coalesce(cell_seq, -1) AS cell_seq, dataset_id "
        "FROM store.datasets), "
        "p AS (SELECT dataset_id, list(DISTINCT column_name ORDER BY column_name) AS columns "
        "FROM store.pii_findings WHERE status <> 'allowed' GROUP BY dataset_id) "
        "SELECT k.run_id, r.experiment, r.status AS run_status, k.cell_seq, k.stage, k.name, "
        "k.format, k.path, k.size, k.created_at, d.dataset_id, "
        "coalesce(p.columns, []::VARCHAR[]) AS personal_columns "
        "FROM store.checkpoints k LEFT JOIN store.runs r USING (run_id) "
        "ASOF LEFT JOIN d ON d.run_id = k.run_id AND d.name = k.name AND k.cell_seq >= d.cell_seq "
        "LEFT JOIN p ON p.dataset_id = d.dataset_id "
        "ORDER BY k.created_at, k.run_id, k.cell_seq, k.name"
    ).df()


def request_logs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per served model and version: requests, stored payloads (oldest, newest, bytes) and the
    newest stored inputs (to tell which columns are kept as keyed hashes)."""
    return con.execute(
        "SELECT model_name, model_version, count(*) AS requests, "
        "count(*) FILTER (inputs IS NOT NULL OR outputs IS NOT NULL) AS payloads, "
        "min(created_at) FILTER (inputs IS NOT NULL OR outputs IS NOT NULL) AS oldest_payload, "
        "max(created_at) FILTER (inputs IS NOT NULL OR outputs IS NOT NULL) AS newest_payload, "
        "sum(coalesce(strlen(inputs), 0) + coalesce(strlen(outputs), 0)) AS payload_bytes, "
        "arg_max(inputs, created_at) FILTER (inputs IS NOT NULL) AS latest_inputs "
        "FROM store.requests GROUP BY ALL ORDER BY model_name, model_version"
    ).df()


def payloads_holding(con: duckdb.DuckDBPyConnection, needles: Sequence[str]) -> pd.DataFrame:
    """Requests whose stored inputs contain any of ``needles`` (texts), oldest first."""
    if not needles:
        return pd.DataFrame(columns=["request_id", "model_name", "model_version", "created_at",
                                     "inputs"])  # fmt: skip
    args = {f"n{i}": str(needle) for i, needle in enumerate(needles)}
    found = " OR ".join(f"contains(inputs, ${name})" for name in args)
    return con.execute(
        "SELECT request_id, model_name, model_version, created_at, inputs FROM store.requests "
        f"WHERE inputs IS NOT NULL AND ({found}) ORDER BY created_at",
        args,
    ).df()


def stored_artifacts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Artifacts per kind (file, model, notebook...): count, bytes, oldest, newest."""
    return con.execute(
        "SELECT kind, count(*) AS artifacts, sum(size) AS bytes, min(created_at) AS oldest, "
        "max(created_at) AS newest FROM store.artifacts GROUP BY kind ORDER BY kind"
    ).df()


def erasures(con: duckdb.DuckDBPyConnection, limit: int | None) -> pd.DataFrame:
    """What purges, erasures and the retention policy removed (the ``erasures`` view), newest
    first."""
    sql = (
        'SELECT erasure_id, action, criteria, removed, user_name AS "user", created_at '
        "FROM store.erasures ORDER BY created_at DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql).df()
