"""Removing what the log and its artifact store hold: purges, the erasure of one person's
value, and the retention policy that purges on its own once a day.

Everything here runs on a read-write connection under the writer lock (``Store.write``), so
other processes' merges wait (their records stay in their journals and are merged after) and
the removal is one transaction: rows are deleted or blanked, one ``erasures`` row says what
went (counts and bytes, never contents), and the files no remaining row references are listed
in ``store.settings`` under ``erasure.pending_files``, all committed together. The files are
deleted after the commit, then the list is cleared. A crash in between leaves rows that no
longer point at those files and a list that the next erasure (or the next writer to open the
log) finishes: no row ever points at a deleted file, and no file to delete is forgotten.

What "referenced" means. A content-addressed file (``artifacts/<sha[:2]>/<sha>``) stays while
its sha256 appears in any remaining row: a registered version's ``model_versions``
``artifact_sha256`` (the pipeline it serves) or the ``sha256`` of one of its ``parts`` (the
fitted steps it was assembled from), an ``artifacts`` row, or a ``models`` row's
``artifact_sha256``. A purge never removes rows whose sha256 a registered version holds, so a
version's files survive any purge of its run; other ``artifacts`` rows are deleted and other
``models`` rows lose their ``artifact_sha256`` (the model's description stays, its file goes).
The same bytes logged again by a later run are kept for that run. A checkpoint file
(``artifacts/checkpoints/<run>/<cell>/<name>.<format>``) stays while a ``checkpoints`` row
names its path. Purges by age or by run leave runs that are still ``running`` alone (a live
kernel may be about to restore them); erasing a value does not.

When a checkpoint of a cell is removed, the cell's other checkpoints lose their cache key: a
later ``--cache`` run must not restore that cell with a value missing.

On a team log (``LakeStore.write``: a maintainer's, holding the team's merge lock) the same
code runs on the lake. An artifact's bytes are a ``store.artifact_blobs`` row there, deleted
in the erasure's transaction when no remaining row references its sha256; the pending list
then only removes this machine's cached copy and its checkpoint files (other machines'
checkpoint files stay in their spools, unreferenced). DuckLake keeps what was deleted in older
snapshots, files and statistics until ``mlops-nb team maintain`` rewrites the files holding
deleted rows and expires the snapshots: an erasure is complete once a maintenance has expired
every snapshot older than it (``--keep 0s`` at once). The retention policy is not applied when
a team log is opened (every reader and writer of the team would); ``team maintain`` and a
maintainer's ``mlops-nb retention --apply`` apply it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from mlops_nb.errors import MlopsError
from mlops_nb.log.apply import os_user
from mlops_nb.log.location import artifacts_dir_for, blob_path
from mlops_nb.log.sqltext import identifier, literal

PENDING_KEY = "erasure.pending_files"
RETENTION_KINDS = ("checkpoints", "requests", "artifacts")
LAST_APPLIED_KEY = "retention.last_applied"
DB_USER_VARIABLE = "mlops_nb_db_user"  # set by a team log's store: the PostgreSQL login
RETENTION_EVERY_S = 86400.0  # a policy is applied at most once a day per log
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SHA256 = re.compile(r"[0-9a-f]{64}")

_RUNNING = "SELECT run_id FROM store.runs WHERE status = 'running'"
_REGISTERED = (
    "SELECT artifact_sha256 AS sha256 FROM store.model_versions "
    "WHERE artifact_sha256 IS NOT NULL UNION "
    "SELECT unnest(json_extract_string(parts, '$[*].sha256')) FROM store.model_versions"
)


class ErasureError(MlopsError):
    """A purge, an erasure or a retention setting that cannot be done as asked."""


@dataclass(frozen=True)
class Scope:
    """The rows an erasure removes. Purges select by time and run: checkpoints and artifacts
    created before a moment (or of one run, or both), request payloads before a moment.
    Erasing a value selects exact rows: requests by id, checkpoints by file path."""

    checkpoints_before: datetime | None = None
    artifacts_before: datetime | None = None
    requests_before: datetime | None = None
    run_id: str | None = None  # checkpoints and artifacts of this run, whatever their age
    request_ids: tuple[str, ...] | None = None
    checkpoint_paths: tuple[str, ...] | None = None

    @property
    def by_value(self) -> bool:
        return self.request_ids is not None or self.checkpoint_paths is not None


# ---------------------------------------------------------------------- erasing
def erase(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    *,
    action: str,
    criteria: Mapping[str, Any],
    artifacts_dir: Path,
    dry_run: bool = False,
    settings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Remove what ``scope`` selects and record it as one ``erasures`` row (``action``:
    purge, forget or retention; ``criteria`` as given, JSON); returns the counts (with
    ``dry_run``, what would be removed, and nothing changes). ``settings`` are written in the
    same transaction (the retention policy's last run)."""
    if not dry_run:
        finish_pending(con, artifacts_dir)
    con.execute("BEGIN TRANSACTION")
    try:
        removed, files = _remove(con, scope)
        removed["files"] = len(files)
        removed["bytes"] = _removed_bytes(con, artifacts_dir, files)
        _delete_blobs(con, files)
        if dry_run:
            con.execute("ROLLBACK")
            return removed
        removed["erasure_id"] = uuid.uuid4().hex
        con.execute(
            "INSERT INTO store.erasures (erasure_id, action, criteria, removed, user_name, "
            "created_at, db_user) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [removed["erasure_id"], action, json.dumps(dict(criteria), default=str),
             json.dumps({k: v for k, v in removed.items() if k != "erasure_id"}), os_user(),
             _utc(time.time()), _database_user(con)],
        )  # fmt: skip
        _put_settings(con, {**(settings or {}), PENDING_KEY: json.dumps(sorted(files))})
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finish_pending(con, artifacts_dir)
    return removed


def _remove(con: duckdb.DuckDBPyConnection, scope: Scope) -> tuple[dict[str, Any], list[str]]:
    """Inside the transaction: delete and blank the selected rows; returns the counts and the
    files (relative to the artifact store) that no remaining row references."""
    removed: dict[str, Any] = {"checkpoints": 0, "request_payloads": 0, "request_bytes": 0,
                               "artifacts": 0, "models_unstored": 0}  # fmt: skip
    files: list[str] = []
    runs: set[str] = set()

    where, args = _checkpoint_filter(scope)
    if where:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erase_checkpoints AS SELECT rowid AS row_id, run_id, "
            f"cell_seq, path FROM store.checkpoints WHERE {where}",
            args,
        )
        con.execute(
            "DELETE FROM store.checkpoints WHERE rowid IN (SELECT row_id FROM erase_checkpoints)"
        )
        con.execute(
            "UPDATE store.checkpoints k SET cache_key = NULL WHERE cache_key IS NOT NULL AND "
            "EXISTS (SELECT 1 FROM erase_checkpoints e WHERE e.run_id = k.run_id "
            "AND e.cell_seq = k.cell_seq)"
        )
        removed["checkpoints"] = _count(con, "SELECT count(*) FROM erase_checkpoints")
        runs |= _column(con, "SELECT DISTINCT run_id FROM erase_checkpoints")
        files += sorted(_column(con,
            "SELECT DISTINCT path FROM erase_checkpoints WHERE path IS NOT NULL AND path NOT IN "
            "(SELECT path FROM store.checkpoints WHERE path IS NOT NULL)"))  # fmt: skip

    where, args = _artifact_filter(scope)
    if where:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erase_artifacts AS SELECT rowid AS row_id, run_id, "
            f"sha256 FROM store.artifacts WHERE {where} AND (sha256 IS NULL OR sha256 NOT IN "
            f"({_REGISTERED}))",
            args,
        )
        con.execute(
            "DELETE FROM store.artifacts WHERE rowid IN (SELECT row_id FROM erase_artifacts)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erase_models AS SELECT rowid AS row_id, run_id, "
            f"artifact_sha256 AS sha256 FROM store.models WHERE {where} AND artifact_sha256 "
            f"IS NOT NULL AND artifact_sha256 NOT IN ({_REGISTERED})",
            args,
        )
        con.execute(
            "UPDATE store.models SET artifact_sha256 = NULL "
            "WHERE rowid IN (SELECT row_id FROM erase_models)"
        )
        removed["artifacts"] = _count(con, "SELECT count(*) FROM erase_artifacts")
        removed["models_unstored"] = _count(con, "SELECT count(*) FROM erase_models")
        runs |= _column(con, "SELECT run_id FROM erase_artifacts UNION SELECT run_id FROM "
                             "erase_models")  # fmt: skip
        unreferenced = _column(con,
            "SELECT DISTINCT sha256 FROM (SELECT sha256 FROM erase_artifacts UNION ALL "
            "SELECT sha256 FROM erase_models) WHERE sha256 IS NOT NULL "
            "AND sha256 NOT IN (SELECT sha256 FROM store.artifacts WHERE sha256 IS NOT NULL) "
            "AND sha256 NOT IN (SELECT artifact_sha256 FROM store.models "
            f"WHERE artifact_sha256 IS NOT NULL) AND sha256 NOT IN ({_REGISTERED})")  # fmt: skip
        files += sorted(blob_path(sha) for sha in unreferenced if _SHA256.fullmatch(sha))

    where, args = _request_filter(scope)
    if where:
        selected = f"{where} AND (inputs IS NOT NULL OR outputs IS NOT NULL)"
        by_model = con.execute(
            "SELECT model_name, count(*), sum(coalesce(strlen(inputs), 0) + "
            f"coalesce(strlen(outputs), 0)) FROM store.requests WHERE {selected} "
            "GROUP BY model_name ORDER BY model_name",
            args,
        ).fetchall()
        con.execute(
            f"UPDATE store.requests SET inputs = NULL, outputs = NULL WHERE {selected}", args
        )
        removed["request_payloads"] = sum(int(n) for _, n, _ in by_model)
        removed["request_bytes"] = sum(int(b or 0) for _, _, b in by_model)
        removed["request_models"] = {str(m): int(n) for m, n, _ in by_model}
    removed["runs"] = sorted(r for r in runs if r)
    # on a lake, checkpoints and artifacts are blobs of one store: bytes that a row left in
    # place still points at (an artifact holding a checkpoint's bytes, or the reverse) stay
    referenced = _still_referenced(con, files)
    return removed, [path for path in files if path not in referenced]


def _checkpoint_filter(scope: Scope) -> tuple[str, dict[str, Any]]:
    if scope.checkpoint_paths is not None:
        return "list_contains($paths, path)", {"paths": list(scope.checkpoint_paths)}
    return _age_or_run(scope, scope.checkpoints_before)


def _artifact_filter(scope: Scope) -> tuple[str, dict[str, Any]]:
    return _age_or_run(scope, scope.artifacts_before)


def _age_or_run(scope: Scope, before: datetime | None) -> tuple[str, dict[str, Any]]:
    """``created_at < $before`` and/or ``run_id = $run``, runs still running left out."""
    if scope.by_value:
        return "", {}
    conditions, args = [], {}
    if before is not None:
        conditions.append("created_at < $before")
        args["before"] = before
    if scope.run_id is not None:
        conditions.append("run_id = $run")
        args["run"] = scope.run_id
    if not conditions:
        return "", {}
    conditions.append(f"coalesce(run_id, '') NOT IN ({_RUNNING})")
    return " AND ".join(conditions), args


def _request_filter(scope: Scope) -> tuple[str, dict[str, Any]]:
    if scope.request_ids is not None:
        return "list_contains($ids, request_id)", {"ids": list(scope.request_ids)}
    if scope.requests_before is not None and not scope.by_value:
        return "created_at < $before", {"before": scope.requests_before}
    return "", {}


def finish_pending(con: duckdb.DuckDBPyConnection, artifacts_dir: Path) -> int:
    """Delete the files an erasure committed to deleting (re-checking that no row references
    them again), then clear the list; returns how many files were deleted."""
    row = con.execute("SELECT value FROM store.settings WHERE key = ?", [PENDING_KEY]).fetchone()
    if row is None:
        return 0
    paths = [p for p in json.loads(row[0] or "[]") if isinstance(p, str)]
    kept = _still_referenced(con, paths)
    running = _column(con, _RUNNING)
    deleted, left = 0, []
    for relative in paths:
        target = _inside(artifacts_dir, relative)
        if relative in kept or target is None:
            continue
        try:
            target.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        except OSError:  # not ours to delete now (permissions): tried again next time
            left.append(relative)
            continue
        parts = Path(relative).parts
        if parts[0] == "checkpoints" and len(parts) >= 3 and parts[1] not in running:
            for folder in (target.parent, target.parent.parent):  # <run>/<cell>, then <run>
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
    write_settings(con, {PENDING_KEY: json.dumps(left) if left else None})
    return deleted


def _still_referenced(con: duckdb.DuckDBPyConnection, paths: list[str]) -> set[str]:
    if not paths:
        return set()
    shas = [p.rsplit("/", 1)[-1] for p in paths if not p.startswith("checkpoints/")]
    by_sha = _column(con,
        "SELECT sha256 FROM (SELECT sha256 FROM store.artifacts UNION ALL SELECT "
        f"artifact_sha256 FROM store.models UNION ALL {_REGISTERED}) "
        "WHERE list_contains($shas, sha256)", {"shas": shas})  # fmt: skip
    by_path = _column(con, "SELECT path FROM store.checkpoints WHERE list_contains($paths, path)",
                      {"paths": paths})  # fmt: skip
    return {p for p in paths if p in by_path or p.rsplit("/", 1)[-1] in by_sha}


def compact_file(path: Path) -> None:
    """Copy the log into a fresh file and rename it over the old one. DuckDB keeps deleted
    and overwritten values in free blocks of the file until they are reused; after an
    erasure their bytes must go too. The caller holds the writer lock (nobody else has the
    file open); a crash midway leaves the old file as it was and a stray copy, replaced by
    the next compaction."""
    fresh = path.with_name(f".{path.name}.compact")
    for stray in (fresh, fresh.with_name(fresh.name + ".wal")):
        stray.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        row = con.execute("SELECT current_database()").fetchone()
        con.execute(f"ATTACH {literal(str(fresh))} AS compacted")
        con.execute(f"COPY FROM DATABASE {identifier(str(row[0]))} TO compacted")
        con.execute("DETACH compacted")
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    if path.with_name(path.name + ".wal").exists():  # not checkpointed: keep the original
        fresh.unlink(missing_ok=True)
        raise ErasureError(f"{path} could not be compacted (its write-ahead log remains)")
    os.chmod(fresh, stat.S_IMODE(path.stat().st_mode))
    descriptor = os.open(fresh, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(fresh, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# ---------------------------------------------------------------------- settings and policy
def read_settings(con: duckdb.DuckDBPyConnection, prefix: str = "") -> dict[str, str]:
    """``store.settings`` rows whose key starts with ``prefix``."""
    return dict(
        con.execute(
            "SELECT key, value FROM store.settings WHERE starts_with(key, ?) ORDER BY key",
            [prefix],
        ).fetchall()
    )


def write_settings(con: duckdb.DuckDBPyConnection, values: Mapping[str, str | None]) -> None:
    """Set (or, for None, remove) settings in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        _put_settings(con, values)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def retention_policy(settings: Mapping[str, str]) -> dict[str, str]:
    """kind -> duration text (``{"checkpoints": "30d"}``) from the ``retention.*`` settings."""
    return {
        kind: settings[f"retention.{kind}"]
        for kind in RETENTION_KINDS
        if settings.get(f"retention.{kind}")
    }


def apply_retention(
    con: duckdb.DuckDBPyConnection,
    log_path: Path,
    *,
    now: float | None = None,
    dry_run: bool = False,
) -> dict[str, Any] | None:
    """Purge what the log's retention policy says is too old (recorded as action
    ``retention``); None when there is no policy."""
    policy = retention_policy(read_settings(con, "retention."))
    if not policy:
        return None
    now = time.time() if now is None else now
    cutoffs = {kind: _utc(now - parse_duration(text)) for kind, text in policy.items()}
    scope = Scope(
        checkpoints_before=cutoffs.get("checkpoints"),
        artifacts_before=cutoffs.get("artifacts"),
        requests_before=cutoffs.get("requests"),
    )
    criteria = {"policy": policy, "before": {k: v.isoformat() for k, v in cutoffs.items()}}
    return erase(con, scope, action="retention", criteria=criteria,
                 artifacts_dir=artifacts_dir_for(log_path), dry_run=dry_run,
                 settings={LAST_APPLIED_KEY: repr(now)})  # fmt: skip


def retention_at_open(con: duckdb.DuckDBPyConnection, log_path: Path) -> None:
    """Called when a writer opens the log (under the writer lock): apply the policy if there
    is one and it has not run for a day. One small read otherwise; never fails the open."""
    try:
        settings = read_settings(con, "retention.")
        if not retention_policy(settings):
            with contextlib.suppress(duckdb.Error):
                finish_pending(con, artifacts_dir_for(log_path))
            return
        last = float(settings.get(LAST_APPLIED_KEY) or 0)
        if time.time() - last < RETENTION_EVERY_S:
            return
        apply_retention(con, log_path)
    except Exception as error:  # noqa: BLE001 - the log must open; say why once
        print(f"mlops: the retention policy of {log_path} was not applied: {error}",
              file=sys.stderr)  # fmt: skip


def parse_duration(text: str) -> float:
    """``90d`` -> seconds; units s, m, h, d, w."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match:
        raise ErasureError(f"{text!r} is not a duration: write e.g. 90d, 12h, 2w or 30m")
    return float(match.group(1)) * _UNITS[match.group(2)]


# ---------------------------------------------------------------------- helpers
def _put_settings(con: duckdb.DuckDBPyConnection, values: Mapping[str, str | None]) -> None:
    """Delete, then insert: a lake's tables have no keys for INSERT OR REPLACE."""
    for key, value in values.items():
        con.execute("DELETE FROM store.settings WHERE key = ?", [key])
        if value is not None:
            con.execute("INSERT INTO store.settings VALUES (?, ?)", [key, str(value)])


def _has_blobs(con: duckdb.DuckDBPyConnection) -> bool:
    """A team lake keeps artifacts' bytes in ``store.artifact_blobs``; a file log beside it."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'store' AND table_name = 'artifact_blobs'"
    ).fetchone()
    return bool(row and row[0])


def _file_shas(files: list[str]) -> list[str]:
    """The sha256 of the content-addressed files among ``files`` (not checkpoints)."""
    return [path.rsplit("/", 1)[-1] for path in files if not path.startswith("checkpoints/")]


def _delete_blobs(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """On a lake, the bytes of the artifacts no remaining row references (in the erasure's
    transaction: the rows and the bytes go together)."""
    shas = _file_shas(files)
    if shas and _has_blobs(con):
        con.execute(
            "DELETE FROM store.artifact_blobs WHERE list_contains($shas, sha256)", {"shas": shas}
        )


def _removed_bytes(con: duckdb.DuckDBPyConnection, artifacts_dir: Path, files: list[str]) -> int:
    """What the removed files held: a lake's blobs by their recorded size (this machine may
    have no copy), the rest by the local file's size."""
    blob_sizes: dict[str, int] = {}
    shas = _file_shas(files)
    if shas and _has_blobs(con):
        found = con.execute(
            "SELECT sha256, max(size) FROM store.artifact_blobs "
            "WHERE list_contains($shas, sha256) GROUP BY sha256",
            {"shas": shas},
        ).fetchall()
        blob_sizes = dict(found)
    return sum(
        int(blob_sizes.get(path.rsplit("/", 1)[-1]) or _size(artifacts_dir, path)) for path in files
    )


def _database_user(con: duckdb.DuckDBPyConnection) -> str:
    """Who the audit trail names: a team log's store sets the PostgreSQL login (see
    ``DB_USER_VARIABLE``); a file log's is the OS user."""
    row = con.execute(f"SELECT getvariable('{DB_USER_VARIABLE}')").fetchone()
    return str(row[0]) if row and row[0] else os_user()


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _column(
    con: duckdb.DuckDBPyConnection, sql: str, args: Mapping[str, Any] | None = None
) -> set[str]:
    return {row[0] for row in con.execute(sql, dict(args or {})).fetchall() if row[0] is not None}


def _inside(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` when it stays inside ``folder`` (a path from the log is data)."""
    target = (folder / relative).resolve()
    return target if target.is_relative_to(folder.resolve()) else None


def _size(folder: Path, relative: str) -> int:
    target = _inside(folder, relative)
    try:
        return target.stat().st_size if target is not None else 0
    except OSError:
        return 0


def _utc(epoch_seconds: float) -> datetime:
    """Naive UTC, as the log stores timestamps."""
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)
