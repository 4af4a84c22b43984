"""Copy records between a log file and a team log: ``mlops-nb team push`` and ``team pull``.

A set-based copy: the source's tables are read into Arrow (a file through its store, so its
locks are respected; the lake in one read transaction), then written into the target in ONE
transaction — for the lake, under the team's merge lock, so it never interleaves with a merge
and is retried as a merge is. Copying twice adds nothing:

- tables with a key (runs, params, tags, experiments, latest metrics, model versions by
  ``version_id``, aliases) insert the keys the target lacks and update a row only where the
  source is newer (a finished run over a running one, a later alias move);
- the other tables are append-only records: the rows the target lacks are added, counted with
  their multiplicity (``EXCEPT ALL``), so a metric logged twice stays twice;
- artifacts are content-addressed: only blobs whose sha256 the lake lacks are uploaded, each in
  a transaction of its own before the records (a blob without records is harmless; a long push
  then never holds the merge lock for long).

Model version numbers are what people quote ("churn v3" in gates, requests, drift checks,
alias history); a copy keeps them. When the target already has a version of that name and
number with another identity (registered independently on both sides), the copy is refused
with one line naming them, rather than renumbering records that other rows refer to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mlops_nb.errors import MlopsError
from mlops_nb.log import lake, wide
from mlops_nb.log.location import artifacts_dir_for, blob_path, blob_sha, parse_team_location
from mlops_nb.log.sqltext import literal
from mlops_nb.log.store import get_store

# tables never copied: the log's own bookkeeping, per-machine settings, the lake's own tables
_NOT_COPIED = {"meta", "journal_progress", "run_values", "settings", "writers", "artifact_blobs"}
# table -> (key columns, when a target row with that key is replaced by the source's)
_KEYED: dict[str, tuple[tuple[str, ...], str]] = {
    "experiments": (("name",), "false"),
    "runs": (("run_id",), "b.status <> 'running'"),
    "params": (("run_id", "name"), "true"),
    "tags": (("run_id", "key"), "true"),
    "latest_metrics": (("run_id", "key"), "(b.step, b.timestamp) > (t.step, t.timestamp)"),
    "model_versions": (("version_id",), "false"),
    "model_aliases": (("name", "alias"), "b.updated_at > t.updated_at"),
}
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


class TransferError(MlopsError):
    """A push or pull that cannot be done as asked."""


@dataclass
class TransferSummary:
    """What a push or pull did."""

    runs_copied: list[str] = field(default_factory=list)
    runs_already_there: list[str] = field(default_factory=list)
    artifacts_copied: int = 0
    artifacts_already_there: int = 0
    rows_added: dict[str, int] = field(default_factory=dict)


def _no_progress(items: Iterable[Any], label: str, total: int) -> Iterable[Any]:
    return items


# ---------------------------------------------------------------------- push
def push(log_file: Path, team_location: str, progress: Progress = _no_progress) -> TransferSummary:
    """Copy every record of the log file ``log_file`` (and its artifacts) into the team log."""
    if not log_file.is_file():
        raise TransferError(f"no log file at {log_file}")
    store = get_store(log_file, create=False)
    tables = store.read(_read_all_tables)
    artifacts_dir = artifacts_dir_for(store.path)
    team = parse_team_location(team_location)
    con = lake.connect(team)
    try:
        con.execute(f"USE {lake.LAKE_ALIAS}")
        lake.check_schema(con, team.location)
        summary = TransferSummary()
        if "model_versions" in tables:  # refused before any upload (checked again, locked)
            _refuse_version_conflicts(con, tables["model_versions"])
        tables, checkpoint_files = _checkpoints_as_blobs(tables, artifacts_dir)
        shas = sorted(_blob_shas(tables))
        for sha in progress(shas, "artifacts", len(shas)):
            path = checkpoint_files.get(sha, artifacts_dir / blob_path(sha))
            uploaded = lake.run_locked(lambda: con, lambda c, s=sha, p=path: _upload_blob(c, s, p))
            if uploaded:
                summary.artifacts_copied += 1
            else:
                summary.artifacts_already_there += 1
        lake.run_locked(lambda: con, lambda c: _copy_tables(c, tables, summary, progress))
    finally:
        con.close()
    return summary


def _upload_blob(con: duckdb.DuckDBPyConnection, sha: str, path: Path) -> bool:
    if _count(con, "SELECT count(*) FROM store.artifact_blobs WHERE sha256 = ?", [sha]):
        return False
    if not path.is_file():
        raise TransferError(f"artifact {sha[:12]} is recorded in the log but missing at {path}")
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != sha:
        raise TransferError(f"artifact {sha[:12]} at {path} is corrupt (its sha256 differs)")
    blob = pa.table({
        "sha256": [sha], "size": pa.array([len(content)], pa.int64()),
        "content": pa.array([content], pa.large_binary()),
    })  # fmt: skip
    con.register("pushed_blob", blob)
    try:
        con.execute(
            "INSERT INTO store.artifact_blobs SELECT sha256, size, content, "
            "now()::TIMESTAMP FROM pushed_blob"
        )
    finally:
        con.unregister("pushed_blob")
    return True


# ---------------------------------------------------------------------- pull
def pull(
    run_ids: list[str], team_location: str, log_file: Path, progress: Progress = _no_progress
) -> TransferSummary:
    """Copy runs (given by id or unique prefix) with their records, the model versions they
    trained (and those versions' aliases and alias history) and their artifacts from the team
    log into the log file ``log_file`` (created when missing)."""
    team = parse_team_location(team_location)
    con = lake.connect(team)
    try:
        con.execute(f"USE {lake.LAKE_ALIAS}")
        lake.check_schema(con, team.location)
        con.execute("BEGIN TRANSACTION")  # one snapshot of the lake
        wanted = _full_run_ids(con, run_ids)
        tables = _read_runs(con, wanted)
        shas = sorted(_blob_shas(tables))
        store = get_store(log_file, create=True)
        artifacts_dir = artifacts_dir_for(store.path)
        summary = TransferSummary()
        for sha in progress(shas, "artifacts", len(shas)):
            target = artifacts_dir / blob_path(sha)
            if target.is_file():
                summary.artifacts_already_there += 1
                continue
            lake.download_blob(con, sha, target)
            summary.artifacts_copied += 1
        con.execute("ROLLBACK")
    finally:
        con.close()

    def copy(file: duckdb.DuckDBPyConnection) -> None:
        file.execute("BEGIN TRANSACTION")
        try:
            _copy_tables(file, tables, summary, progress)
            wide.rebuild(file)
            file.execute("COMMIT")
        except BaseException:
            file.execute("ROLLBACK")
            raise

    store.write(copy)
    return summary


def _full_run_ids(con: duckdb.DuckDBPyConnection, given: list[str]) -> list[str]:
    found = []
    for prefix in given:
        rows = con.execute(
            "SELECT run_id FROM store.runs WHERE starts_with(run_id, ?) LIMIT 2", [prefix]
        ).fetchall()
        if not rows:
            raise TransferError(f"no run {prefix!r} in the team log")
        if len(rows) > 1:
            raise TransferError(f"run id prefix {prefix!r} is ambiguous: give more characters")
        found.append(rows[0][0])
    return found


def _read_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, pa.Table]:
    """The rows of these runs: every table with a run_id, the experiments and the datasets
    their lineage names, the aliases and alias history of the versions they trained."""
    ids = ", ".join(literal(run_id) for run_id in run_ids)
    tables: dict[str, pa.Table] = {}
    for table in _store_tables(con):
        columns = _columns(con, table)
        if "run_id" in columns and table != "datasets":
            tables[table] = _arrow(con, f"SELECT * FROM store.{table} WHERE run_id IN ({ids})")
    tables["experiments"] = _arrow(
        con,
        "SELECT * FROM store.experiments WHERE name IN "
        f"(SELECT experiment FROM store.runs WHERE run_id IN ({ids}))",
    )
    tables["datasets"] = _arrow(
        con,
        f"SELECT * FROM store.datasets WHERE run_id IN ({ids}) OR dataset_id IN "
        f"(SELECT dataset_id FROM store.lineage WHERE run_id IN ({ids}))",
    )
    versions = f"SELECT name, version FROM store.model_versions WHERE run_id IN ({ids})"
    tables["model_aliases"] = _arrow(
        con, f"SELECT * FROM store.model_aliases WHERE (name, version) IN ({versions})"
    )
    tables["alias_history"] = _arrow(
        con,
        "SELECT * FROM store.alias_history WHERE name IN "
        f"(SELECT name FROM store.model_versions WHERE run_id IN ({ids}))",
    )
    return tables


# ---------------------------------------------------------------------- the copy
def _read_all_tables(con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    return {table: _arrow(con, f"SELECT * FROM store.{table}") for table in _store_tables(con)}


def _copy_tables(
    con: duckdb.DuckDBPyConnection,
    tables: dict[str, pa.Table],
    summary: TransferSummary,
    progress: Progress,
) -> None:
    """Add the source's rows the target lacks, inside the caller's transaction."""
    summary.runs_copied.clear()
    summary.runs_already_there.clear()
    summary.rows_added.clear()
    present = set(_store_tables(con))
    if "runs" in tables:
        run_ids = tables["runs"].column("run_id").to_pylist()
        known = _existing(con, "runs", "run_id", run_ids)
        summary.runs_copied += [r for r in run_ids if r not in known]
        summary.runs_already_there += [r for r in run_ids if r in known]
    if "model_versions" in tables:
        _refuse_version_conflicts(con, tables["model_versions"])
    names = [t for t in tables if t in present and tables[t].num_rows]
    for table in progress(names, "tables", len(names)):
        added = _copy_table(con, table, tables[table])
        if added:
            summary.rows_added[table] = added


def _copy_table(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> int:
    target_columns = _columns(con, table)
    columns = [c for c in target_columns if c in rows.column_names]
    listed = ", ".join(f'"{c}"' for c in columns)
    before = _count(con, f"SELECT count(*) FROM store.{table}")
    con.register("copied_rows", rows)
    try:
        new_rows = f"SELECT {listed} FROM copied_rows EXCEPT SELECT {listed} FROM store.{table}"
        if table in _KEYED:
            changed = _arrow(con, new_rows)  # DuckLake's MERGE fails on an empty source
            if changed.num_rows:
                _merge_by_key(con, table, columns, changed)
        else:
            con.execute(
                f"INSERT INTO store.{table} ({listed}) SELECT {listed} FROM copied_rows "
                f"EXCEPT ALL SELECT {listed} FROM store.{table}"
            )
    finally:
        con.unregister("copied_rows")
    return _count(con, f"SELECT count(*) FROM store.{table}") - before


def _merge_by_key(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], changed: pa.Table
) -> None:
    """Insert the keys the target lacks; replace a row where the source's is newer."""
    keys, newer = _KEYED[table]
    same = " AND ".join(f"t.{_quoted(k)} = b.{_quoted(k)}" for k in keys)
    updates = ", ".join(f"{_quoted(c)} = b.{_quoted(c)}" for c in columns if c not in keys)
    matched = f"WHEN MATCHED AND {newer} THEN UPDATE SET {updates} " if newer != "false" else ""
    con.register("changed_rows", changed)
    try:
        con.execute(
            f"MERGE INTO store.{table} t USING changed_rows b ON {same} {matched}"
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(map(_quoted, columns))}) "
            f"VALUES ({', '.join(f'b.{_quoted(c)}' for c in columns)})"
        )
    finally:
        con.unregister("changed_rows")


def _refuse_version_conflicts(con: duckdb.DuckDBPyConnection, versions: pa.Table) -> None:
    """A model version of the same name and number but another identity: refused."""
    con.register("copied_versions", versions)
    try:
        clash = con.execute(
            "SELECT b.name, b.version FROM copied_versions b JOIN store.model_versions t "
            "ON t.name = b.name AND t.version = b.version AND t.version_id <> b.version_id "
            "ORDER BY b.name, b.version LIMIT 1"
        ).fetchone()
    finally:
        con.unregister("copied_versions")
    if clash:
        raise TransferError(
            f"model {clash[0]!r} version {clash[1]} already exists in the target log as another "
            "registration: nothing was copied (register it again there, or rename it here)"
        )


def _checkpoints_as_blobs(
    tables: dict[str, pa.Table], artifacts_dir: Path
) -> tuple[dict[str, pa.Table], dict[str, Path]]:
    """A log file keeps a checkpoint at ``checkpoints/<run>/<cell>/<file>``, a team log as a
    content-addressed blob (``<sha[:2]>/<sha>``, so any machine can fetch it): the checkpoint
    rows to copy, pointing at their blobs, and the file holding each blob's bytes. A row
    whose file is gone (purged) is copied as it is."""
    table = tables.get("checkpoints")
    if table is None or "path" not in table.column_names:
        return tables, {}
    files: dict[str, Path] = {}
    paths = []
    for path in table.column("path").to_pylist():
        file = artifacts_dir / str(path)
        if path and not blob_sha(path) and file.is_file():
            sha = hashlib.sha256(file.read_bytes()).hexdigest()
            files[sha] = file
            path = blob_path(sha)
        paths.append(path)
    index = table.column_names.index("path")
    column = pa.array(paths, table.schema.field("path").type)
    return {**tables, "checkpoints": table.set_column(index, "path", column)}, files


def _blob_shas(tables: dict[str, pa.Table]) -> set[str]:
    """Blobs' content ids: logged artifacts, model files, registered versions, and the
    checkpoints stored as blobs."""
    shas: set[str] = set()
    if "checkpoints" in tables and "path" in tables["checkpoints"].column_names:
        for path in tables["checkpoints"].column("path").to_pylist():
            sha = blob_sha(path) if path else None
            if sha:
                shas.add(sha)
    for table, column in (
        ("artifacts", "sha256"),
        ("models", "artifact_sha256"),
        ("model_versions", "artifact_sha256"),
    ):
        if table in tables and column in tables[table].column_names:
            shas.update(s for s in tables[table].column(column).to_pylist() if s)
    return {s for s in shas if len(s) == 64}


def _store_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'store' "
        "AND table_type = 'BASE TABLE' AND table_catalog = current_database() ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows if row[0] not in _NOT_COPIED]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'store' "
        "AND table_name = ? AND table_catalog = current_database() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [row[0] for row in rows]


def _existing(con: duckdb.DuckDBPyConnection, table: str, column: str, values: list) -> set:
    if not values:
        return set()
    con.register("wanted_keys", pa.table({"key": values}))
    try:
        rows = con.execute(
            f"SELECT DISTINCT {column} FROM store.{table} WHERE {column} IN "
            "(SELECT key FROM wanted_keys)"
        ).fetchall()
    finally:
        con.unregister("wanted_keys")
    return {row[0] for row in rows}


def _arrow(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    return con.execute(query).to_arrow_table()


def _count(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> int:
    row = con.execute(query, params or []).fetchone()
    return int(row[0]) if row else 0


def _quoted(name: str) -> str:
    return f'"{name}"'
