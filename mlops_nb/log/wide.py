"""``store.run_values``: one row per run with its ``runs`` columns, then one typed column per
param and per latest metric.

Searching runs by params and metrics is the query users run most (the sidebar, ``mlops-nb
runs --where``). Pivoting the long ``params`` / ``latest_metrics`` tables and joining them at
query time costs tens of milliseconds (DuckDB spends most of it planning); keeping this
denormalised table up to date at merge time makes the search a single-table scan. Dynamic
columns are named ``params.<name>`` and ``metrics.<key>`` and are added as new names appear;
a column's type widens when a later value needs it (BIGINT -> DOUBLE -> VARCHAR).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from mlops_nb.log.sqltext import identifier as _ident
from mlops_nb.log.sqltext import literal as _literal

_SQL_TYPE_OF_PARAM = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN"}
_VALUE_EXPR = {
    # TRY_CAST: an integer wider than BIGINT reads NULL here (exact in params), never an error
    "BIGINT": "TRY_CAST(max(value_num) FILTER ({}) AS BIGINT)",
    "DOUBLE": "max(value_num) FILTER ({})",
    "BOOLEAN": "CAST(max(value_num) FILTER ({}) AS BOOLEAN)",
    "VARCHAR": "max(value) FILTER ({})",
}


RUN_COLUMNS_DDL = (
    "run_id VARCHAR PRIMARY KEY, experiment VARCHAR, name VARCHAR, status VARCHAR, "
    'start_time TIMESTAMP, end_time TIMESTAMP, duration_s DOUBLE, "user" VARCHAR, '
    "host VARCHAR, pid INTEGER, source VARCHAR, notebook_path VARCHAR, notebook_hash VARCHAR, "
    "git_commit VARCHAR, git_dirty BOOLEAN, parent_run_id VARCHAR, error VARCHAR"
)
_RUN_FIELDS = (
    "experiment", "name", "status", "start_time", "end_time", "duration_s", '"user"', "host",
    "pid", "source", "notebook_path", "notebook_hash", "git_commit", "git_dirty",
    "parent_run_id", "error",
)  # fmt: skip


def existing_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The param and metric columns of ``store.run_values`` and their SQL types."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'store' AND table_name = 'run_values' "
        "AND (starts_with(column_name, 'params.') OR starts_with(column_name, 'metrics.'))"
    ).fetchall()
    return dict(rows)


def refresh_runs(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str]) -> None:
    """Copy the ``runs`` columns of these runs from ``store.runs`` (after a start or an end)."""
    sources = (
        "experiment, name, status, start_time, end_time, "
        "date_diff('millisecond', start_time, end_time) / 1000.0, user_name, host, pid, source, "
        "notebook_path, notebook_hash, git_commit, git_dirty, parent_run_id, error"
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in _RUN_FIELDS)
    con.execute(
        f"INSERT INTO store.run_values (run_id, {', '.join(_RUN_FIELDS)}) "
        f"SELECT run_id, {sources} FROM store.runs "
        "WHERE run_id IN (SELECT unnest($ids::VARCHAR[])) "
        f"ON CONFLICT (run_id) DO UPDATE SET {updates}",
        {"ids": sorted(set(run_ids))},
    )


def refresh_params(
    con: duckdb.DuckDBPyConnection, kinds_by_name: dict[str, set[str]], run_ids: Iterable[str]
) -> None:
    """Re-pivot the given params of the given runs from ``store.params`` into the wide table."""
    if not kinds_by_name:
        return
    columns = existing_columns(con)
    wanted: dict[str, str] = {}
    widened = []
    for name, kinds in kinds_by_name.items():
        column = f"params.{name}"
        wanted[column] = _widen(columns.get(column), kinds)
        if _ensure_column(con, column, columns.get(column), wanted[column]):
            widened.append(name)
    _upsert_params(con, wanted, run_ids)
    if widened:  # values of other runs were converted by ALTER; redo them from the source
        changed = {f"params.{name}": wanted[f"params.{name}"] for name in widened}
        others = con.execute(
            "SELECT DISTINCT run_id FROM store.params WHERE list_contains($names, name)",
            {"names": widened},
        ).fetchall()
        _upsert_params(con, changed, [row[0] for row in others])


def _upsert_params(
    con: duckdb.DuckDBPyConnection, wanted: dict[str, str], run_ids: Iterable[str]
) -> None:
    fields = [
        _VALUE_EXPR[sql_type].format(f"WHERE name = {_literal(column[7:])}")
        + f" AS {_ident(column)}"
        for column, sql_type in wanted.items()
    ]
    names = ", ".join(_literal(column[7:]) for column in wanted)
    _upsert(con, wanted, fields, "store.params", f"name IN ({names})", run_ids)


def refresh_metrics(
    con: duckdb.DuckDBPyConnection, keys: Iterable[str], run_ids: Iterable[str]
) -> None:
    """Re-pivot the given latest metrics of the given runs into the wide table."""
    keys = sorted(set(keys))
    if not keys:
        return
    columns = existing_columns(con)
    wanted = {f"metrics.{key}": "DOUBLE" for key in keys}
    for column in wanted:
        _ensure_column(con, column, columns.get(column), "DOUBLE")
    fields = [
        f"max(value) FILTER (WHERE key = {_literal(column[8:])}) AS {_ident(column)}"
        for column in wanted
    ]
    in_list = ", ".join(_literal(k) for k in keys)
    _upsert(con, wanted, fields, "store.latest_metrics", f"key IN ({in_list})", run_ids)


def pivot_names(
    con: duckdb.DuckDBPyConnection, prefix: str = ""
) -> tuple[dict[str, set[str]], set[str]]:
    """The wide relation's dynamic columns as the long tables under ``<prefix>store`` hold
    them: each param name with the value types it was logged with, and the metric keys."""
    kinds: dict[str, set[str]] = {}
    for name, kind in con.execute(
        f"SELECT DISTINCT name, value_type FROM {prefix}store.params"
    ).fetchall():
        kinds.setdefault(name, set()).add(kind)
    keys = {row[0] for row in con.execute(
        f"SELECT DISTINCT key FROM {prefix}store.latest_metrics").fetchall()}  # fmt: skip
    return kinds, keys


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the wide table from the long tables (used when migrating an older log)."""
    kinds, keys = pivot_names(con)
    all_runs = [row[0] for row in con.execute("SELECT run_id FROM store.runs").fetchall()]
    refresh_runs(con, all_runs)
    refresh_params(con, kinds, all_runs)
    refresh_metrics(con, keys, all_runs)


def view_query(
    kinds_by_name: dict[str, set[str]],
    metric_keys: Iterable[str],
    prefix: str,
    only_given_runs: bool = False,
) -> tuple[str, dict[str, str]]:
    """The query a team lake reads instead of ``store.run_values``, and its param and metric
    columns with their types: the same as the table's, pivoted from ``<prefix>store.runs``,
    ``params`` and ``latest_metrics`` when it is read (a lake cannot widen a column's type,
    and each ALTER would cost a catalog table). ``only_given_runs``: of the runs in the
    ``$ids`` list parameter alone, filtered in every source (not after the pivot)."""
    where = " WHERE run_id IN (SELECT unnest($ids::VARCHAR[]))" if only_given_runs else ""
    params = {
        f"params.{name}": _widen(None, kinds) for name, kinds in sorted(kinds_by_name.items())
    }
    metrics = [f"metrics.{key}" for key in sorted(set(metric_keys))]
    param_fields = [
        _VALUE_EXPR[sql_type].format(f"WHERE name = {_literal(column[7:])}")
        + f" AS {_ident(column)}"
        for column, sql_type in params.items()
    ]
    metric_fields = [
        f"max(value) FILTER (WHERE key = {_literal(column[8:])}) AS {_ident(column)}"
        for column in metrics
    ]
    columns = [f"p.{_ident(c)}" for c in params] + [f"m.{_ident(c)}" for c in metrics]
    sql = (
        "SELECT r.run_id, r.experiment, r.name, r.status, r.start_time, r.end_time, "
        "date_diff('millisecond', r.start_time, r.end_time) / 1000.0 AS duration_s, "
        'r.user_name AS "user", r.host, r.pid, r.source, r.notebook_path, r.notebook_hash, '
        "r.git_commit, r.git_dirty, r.parent_run_id, r.error"
        + "".join(f", {column}" for column in columns)
        + f" FROM (SELECT * FROM {prefix}store.runs{where}) r"
    )
    if param_fields:
        sql += (
            f" LEFT JOIN (SELECT run_id, {', '.join(param_fields)} FROM {prefix}store.params"
            f"{where} GROUP BY run_id) p ON p.run_id = r.run_id"
        )
    if metric_fields:
        sql += (
            f" LEFT JOIN (SELECT run_id, {', '.join(metric_fields)} FROM "
            f"{prefix}store.latest_metrics{where} GROUP BY run_id) m ON m.run_id = r.run_id"
        )
    return sql, {**params, **{column: "DOUBLE" for column in metrics}}


def _upsert(
    con: duckdb.DuckDBPyConnection,
    wanted: dict[str, str],
    fields: list[str],
    source: str,
    condition: str,
    run_ids: Iterable[str],
) -> None:
    updates = ", ".join(f"{_ident(c)} = excluded.{_ident(c)}" for c in wanted)
    con.execute(
        f"INSERT INTO store.run_values (run_id, {', '.join(_ident(c) for c in wanted)}) "
        f"SELECT run_id, {', '.join(fields)} FROM {source} "
        f"WHERE {condition} AND run_id IN (SELECT unnest($ids::VARCHAR[])) GROUP BY run_id "
        f"ON CONFLICT (run_id) DO UPDATE SET {updates}",
        {"ids": sorted(set(run_ids))},
    )


def _widen(current: str | None, kinds: set[str]) -> str:
    """The narrowest SQL type holding the current column's values and the new ones."""
    types = {_SQL_TYPE_OF_PARAM.get(kind, "VARCHAR") for kind in kinds if kind != "none"}
    if current:
        types.add(current)
    if not types:
        return "VARCHAR"
    if len(types) == 1:
        return types.pop()
    if types <= {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "VARCHAR"


def _ensure_column(
    con: duckdb.DuckDBPyConnection, column: str, current: str | None, wanted: str
) -> bool:
    """Add or widen a column; True when an existing column changed type."""
    if current is None:
        con.execute(f"ALTER TABLE store.run_values ADD COLUMN {_ident(column)} {wanted}")
        return False
    if current != wanted:
        con.execute(f"ALTER TABLE store.run_values ALTER {_ident(column)} TYPE {wanted}")
        return True
    return False
