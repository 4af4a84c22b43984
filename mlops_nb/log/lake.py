"""A team log: the same log on DuckLake, its catalog in PostgreSQL and its data files in an
S3 bucket or a shared folder, written by many processes on many machines.

Writes keep the file backend's journal (``store.JournalStore``): every record is one
``write(2)`` to this process's journal in a local spool folder, never on shared storage, and
a background thread merges new lines at most once a second. A merge is one lake transaction:

- serialised across the team by a PostgreSQL advisory lock, taken in a transaction of its own
  *before* the merge's transaction begins (a DuckLake transaction reads the catalog as of its
  start: taking the lock inside it would apply a batch to a stale view of the tables);
- holding the records, the journal offset they reach, and this writer's heartbeat, so a merge
  is applied exactly once even when its COMMIT's outcome is unknown (a lost connection): the
  offset is read inside the transaction, and a redo adds nothing;
- retried as a whole on a transaction conflict or a lost connection (a failed commit leaves
  nothing behind), with DuckLake's own retries raised;
- a group commit: it also takes the new lines of the other live writers of this spool that
  write to this lake as the same database user (``<writer>.who`` in the spool), up to their
  first bulk line (whose data its writer holds in memory). After the COMMIT, still holding the
  lock, it notes how far each journal is merged (``<journal>.merged``), so a writer whose
  lines were taken skips its own merge. Eight writers closing at once make one merge, not
  eight that wait for each other.

Crashes: a writer on this machine is known dead at once (its ``.alive`` flock in the spool is
free), as with a file log. A writer elsewhere is dead when its heartbeat in ``store.writers``
is older than ``MLOPS_NB_CRASH_TIMEOUT_S`` (120 s): its runs then read ``crashed``. A writer
with open runs commits a heartbeat when it has not merged for ``heartbeat_s()``.

The schema is created once by ``mlops-nb team init`` (DuckLake fails under concurrent CREATE
TABLE); opening a lake that was not initialised, or has an older schema, says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_nb.errors import LogVersionError, MlopsError
from mlops_nb.log import apply, erasure, roles, schema, wide
from mlops_nb.log.erasure import DB_USER_VARIABLE
from mlops_nb.log.location import TeamLocation, local_anchor, parse_team_location
from mlops_nb.log.sqltext import literal
from mlops_nb.log.store import _ALL_STORES, JournalStore, host_name

T = TypeVar("T")

LAKE_ALIAS = "lake"
METADATA = f"__ducklake_metadata_{LAKE_ALIAS}"  # DuckLake's own name for the catalog database
LAKE_SCHEMA_VERSION = 1  # the lake-only tables below
MERGE_LOCK_KEY = 7_236_837_018_420_113_709  # any fixed 64-bit number, the same for everyone
INLINING_ROW_LIMIT = 1000
MERGE_ATTEMPTS = 10
READ_ATTEMPTS = 5
CRASH_TIMEOUT_ENV = "MLOPS_NB_CRASH_TIMEOUT_S"
DEFAULT_CRASH_TIMEOUT_S = 120.0
_EXTENSIONS = {  # extension -> the PyPI package (pip install 'mlops-nb[team]') holding its build
    "ducklake": "duckdb_extension_ducklake",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}
_RETRY_SETTINGS = {
    "ducklake_max_retry_count": 100,
    "ducklake_retry_wait_ms": 20,
    "ducklake_retry_backoff": 1.2,
}
# tables only a lake has: who writes (heartbeats) and the artifacts' bytes
_LAKE_TABLES = [
    """CREATE TABLE IF NOT EXISTS store.writers (
        writer_id VARCHAR, host VARCHAR, pid INTEGER, started_at TIMESTAMP,
        heartbeat_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS store.artifact_blobs (
        sha256 VARCHAR, size BIGINT, content BLOB, created_at TIMESTAMP)""",
]
_UNRETRIED = (  # errors in a statement's text: a retry would fail the same way
    duckdb.CatalogException,
    duckdb.BinderException,
    duckdb.ParserException,
)


# What a lost PostgreSQL (or S3) connection looks like: DuckLake's own errors, and the internal
# error it raises on an empty answer from a connection that died mid-query
_LOST_CONNECTION = re.compile(
    "server closed the connection|terminating connection|connection to server|could not "
    "connect|connection refused|no connection to the server|has been invalidated|SSL SYSCALL|"
    "broken pipe|connection reset|current transaction is aborted|INTERNAL Error|"
    "Failed to prepare|Failed to execute query|Failed to commit|unsuccessful query result",
    re.IGNORECASE,
)


_REFUSED = re.compile("permission denied", re.IGNORECASE)


def _lost_connection(error: BaseException) -> bool:
    """The text of a failure that a lost PostgreSQL or S3 connection causes."""
    return bool(_LOST_CONNECTION.search(str(error)))


class TeamLogError(MlopsError):
    """A team log that cannot be opened or used as asked."""


def download_blob(con: duckdb.DuckDBPyConnection, sha256: str, target: Path) -> None:
    """Write an artifact's bytes from the lake's storage to ``target`` (checked against its
    sha256; written under a temporary name and renamed, so a reader never sees half)."""
    row = con.execute(
        "SELECT content FROM store.artifact_blobs WHERE sha256 = ? LIMIT 1", [sha256]
    ).fetchone()
    if row is None:
        raise TeamLogError(f"artifact {sha256[:12]} is not in the team log's storage")
    content = bytes(row[0])
    if hashlib.sha256(content).hexdigest() != sha256:
        raise TeamLogError(f"artifact {sha256[:12]} in the team log's storage is corrupt")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, target)


def crash_timeout_s() -> float:
    """Seconds without a heartbeat after which another machine's writer is taken for dead."""
    text = os.environ.get(CRASH_TIMEOUT_ENV)
    try:
        return float(text) if text else DEFAULT_CRASH_TIMEOUT_S
    except ValueError:
        raise TeamLogError(f"{CRASH_TIMEOUT_ENV}={text!r} is not a number of seconds") from None


def heartbeat_s() -> float:
    """How often a writer with open runs says it is alive: well within the crash timeout."""
    return min(15.0, crash_timeout_s() / 4)


class LakeStore(JournalStore):
    """One process's handle on one team lake: its journal in the spool, merges, reads."""

    def __init__(self, team: TeamLocation):
        super().__init__(local_anchor(team.location))
        self.team = team
        self.location = team.location
        self._database: duckdb.DuckDBPyConnection | None = None
        self._connect_mutex = threading.Lock()
        self._started_at = time.time()
        self._open_runs: set[str] = set()  # runs this process started and has not ended
        self._heartbeat: threading.Thread | None = None
        self._last_beat = 0.0  # monotonic time of this writer's last committed heartbeat
        self._beat_pending = 0.0
        self._last_crash_check = 0.0
        self._recovered = False
        self._wide_lock = threading.Lock()
        self._wide_key: Any = None
        self._wide: tuple[str, dict[str, str]] | None = None
        self._run_table: RunTable | None = None  # the wide run relation, kept in memory
        self._reader: tuple[Any, duckdb.DuckDBPyConnection] | None = None  # (connection, cursor)
        self._blobs_sent: set[str] = set()
        self._neighbours_merged: dict[str, int] = {}  # journal -> bytes known merged (hints)
        self._who_said: str | None = None  # the writer id whose .who note is written
        self._as_of = threading.local()  # the snapshot this thread's read_as_of reads
        self._session: tuple[Any, dict[str, Any]] | None = None  # (connection, who it is)

    # ------------------------------------------------------------------ connecting
    def ensure_ready(self, create: bool = True) -> None:
        """Check the lake holds a log of our schema and DuckDB version (``create`` is ignored:
        only ``mlops-nb team init`` creates or migrates a lake)."""
        if self._ready:
            return
        with self._mutex:
            if self._ready:
                return
            self._retrying(lambda: self._with_cursor(lambda con: check_schema(con, self.location)))
            self._session_facts()  # who we are, known before the first write (see _say_who_writes)
            self._ready = True

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._connect_mutex:
            for attempt in range(READ_ATTEMPTS):
                if self._database is not None:
                    break
                try:
                    self._database = connect(self.team)
                except TeamLogError as error:  # a server restarting, a connection refused
                    if attempt == READ_ATTEMPTS - 1 or "does not exist" in str(error):
                        raise
                    time.sleep(0.2 * (attempt + 1))
            assert self._database is not None
            return self._database

    def database_user(self) -> str | None:
        """The authenticated PostgreSQL user (``session_user``: the person's login, not the
        group it acts as), what the audit trail records; read once per connection."""
        return self._session_facts()["user"]

    def require_maintainer(self, action: str) -> None:
        """Registering, moving aliases and purging need the maintainer role: DuckLake's catalog
        has no per-table privileges, so PostgreSQL cannot refuse them to a writer for us."""
        facts = self._session_facts()
        if not facts["maintainer"]:
            raise TeamLogError(
                f"{action} needs the maintainer role on the team log: {facts['user']} is not a "
                f"member of {MAINTAINER_GROUP} (ask an administrator: mlops-nb team grant "
                f"{facts['user']} maintainer)"
            )

    def _session_facts(self) -> dict[str, Any]:
        database = self._connection()
        if self._session is None or self._session[0] is not database:
            row = self._retrying(lambda: self._with_cursor(
                lambda con: con.execute(_SESSION_QUERY).fetchone()))  # fmt: skip
            user, maintainer = row if row else (None, "true")
            self._session = (database, {"user": user, "maintainer": maintainer == "true"})
        return self._session[1]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self._connection().cursor()
        cursor.execute(f"USE {LAKE_ALIAS}")
        return cursor

    def _reconnect(self) -> None:
        """Drop the connection after a lost server connection: the next use opens a fresh
        one (the old one is left to cursors still using it, never closed under them)."""
        with self._connect_mutex:
            self._database = None
        self._wide_key = None

    # ------------------------------------------------------------------ writing
    def _open_journal(self) -> None:
        super()._open_journal()
        if self._who_said != self.writer_id:
            self._say_who_writes()

    def append(self, record: dict[str, Any]) -> None:
        super().append(record)
        op = record.get("op")
        if op in ("run_start", "run_resume", "run_end"):
            run_id = record["run"]["run_id"] if op == "run_start" else record["run_id"]
            if op == "run_end":
                self._open_runs.discard(run_id)
            else:
                self._open_runs.add(run_id)
                self._start_heartbeat()

    def store_blob(self, path: Path, sha256: str, size: int) -> None:
        """Send an artifact's bytes to the lake (once per content), through the journal's bulk
        files so the journal line stays small."""
        if sha256 in self._blobs_sent or self._has_blob(sha256):
            self._blobs_sent.add(sha256)
            return
        table = pa.table({
            "sha256": [sha256], "size": pa.array([size], pa.int64()),
            "content": pa.array([path.read_bytes()], pa.large_binary()),
            "created_at": pa.array([_utc_now()], pa.timestamp("us")),
        })  # fmt: skip
        self.append_bulk("blob", table)
        self._blobs_sent.add(sha256)

    def fetch_blob(self, sha256: str, target: Path) -> Path:
        """The local copy of an artifact, fetched from the lake into the cache if missing."""
        if target.is_file():
            return target
        self.flush()  # this process's own artifacts first
        self.read(lambda con: download_blob(con, sha256, target))
        return target

    def _has_blob(self, sha256: str) -> bool:
        row = self.read(
            lambda con: con.execute(
                "SELECT count(*) FROM store.artifact_blobs WHERE sha256 = ?", [sha256]
            ).fetchone()
        )
        return bool(row and row[0])

    # ------------------------------------------------------------------ merging
    def _merge_lock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the lake's lock is taken inside _merge_journals

    def _merge_journals(self, journals: list[str | None], dead_writers: list[str]) -> None:
        """One transaction for this process's journals and, when it merges as a writer, the
        new lines of the other live writers of this spool who write as the same database user
        (a group commit: a writer whose lines a neighbour merged skips its own merge)."""
        db_user = self.database_user()
        if self._who_said != self.writer_id:
            self._say_who_writes()
        silent_found = self._silent_runs_found()  # before the lock: others wait while we hold it
        own = [journal for journal in journals if journal]
        grouped = self.writer_id is not None and not dead_writers  # not a recovery, nor a helper

        def merge(con: duckdb.DuckDBPyConnection) -> tuple[list[Path], dict[str, int]]:
            # decided under the lock: a merge that just ended may have taken our lines along
            mine = [journal for journal in own if not grouped or self._grew(journal)]
            neighbours = self._neighbour_journals(own) if grouped else []
            consumed, reached = apply.merge_journals_into_lake(
                con, self.journal_dir, mine + neighbours, self.load_bulk, db_user=db_user,
                before_bulk=neighbours,
            )  # fmt: skip
            for writer in dead_writers:
                apply.mark_crashed(con, writer, self._last_activity(writer), lake=True)
            self._beat(con)
            if silent_found:
                self._mark_silent_writers(con, force=True)
            return consumed, reached

        consumed, _ = self.locked(merge, after_commit=lambda done: self._say_merged(done[1]))
        for bulk in consumed:
            with contextlib.suppress(FileNotFoundError):
                os.remove(bulk)

    # a group commit's notes in the spool: <writer>.who (who it writes as) and
    # <journal>.merged (bytes of that journal known committed), written after a COMMIT only
    def _identity(self) -> str | None:
        """The lake and the database user we write as (known without a query: the session
        facts are read when the store is opened and after each reconnect)."""
        if self._session is None:
            return None
        who = f"{self.location}\n{self._session[1]['user']}"
        return hashlib.sha256(who.encode()).hexdigest()

    def _say_who_writes(self) -> None:
        """Let this spool's other writers merge our lines when they merge theirs (never
        waiting for the server: without the note each writer merges its own)."""
        identity = self._identity()
        if self.writer_id is None or identity is None:
            return
        with contextlib.suppress(OSError):
            _write_note(self.journal_dir / f"{self.writer_id}.who", identity)
            self._who_said = self.writer_id

    def _say_merged(self, reached: dict[str, int]) -> None:
        """Under the lock, after the COMMIT: how far each journal merged is now committed."""
        for journal, offset in reached.items():
            if (self.journal_dir / journal).exists():  # not deleted by its closing writer
                with contextlib.suppress(OSError):
                    _write_note(self.journal_dir / f"{journal}.merged", str(offset))
            self._neighbours_merged[journal] = offset

    def _merged_note(self, journal: str) -> int:
        try:
            return int((self.journal_dir / f"{journal}.merged").read_text())
        except (OSError, ValueError):
            return 0

    def _grew(self, journal: str) -> bool:
        """Whether a journal may hold lines not known to be merged."""
        return _file_size(self.journal_dir / journal) > self._merged_note(journal)

    def _neighbour_journals(self, own: list[str]) -> list[str]:
        """Journals of this spool's other writers writing as we do, with lines we have not
        seen merged (a dead writer's too: recovery later merges the rest and ends its runs)."""
        identity = None
        found = []
        for path in sorted(self.journal_dir.glob("*.jsonl")):
            writer = path.name.split(".", 1)[0]
            if path.name in own or writer == self.writer_id:
                continue
            size = _file_size(path)
            if size <= self._neighbours_merged.get(path.name, 0) or not self._grew(path.name):
                continue
            try:
                theirs = (self.journal_dir / f"{writer}.who").read_text()
            except OSError:
                continue
            identity = identity or self._identity()
            if identity is not None and theirs == identity:
                found.append(path.name)
        return found

    def _merged_elsewhere(self, journals: list[str | None], appended: int) -> bool:
        """A neighbour's group commit took every line this process has journaled."""
        return journals == [self._journal_name] and self._merged_note(journals[0] or "") >= (
            appended
        )

    def _merged_bytes(self, journal: str) -> int:
        row = self._retrying(lambda: self._with_cursor(lambda con: con.execute(
            "SELECT applied_bytes FROM store.journal_progress WHERE journal = ?", [journal]
        ).fetchone()))  # fmt: skip
        return row[0] if row else 0

    def locked(
        self,
        work: Callable[[duckdb.DuckDBPyConnection], T],
        after_commit: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``work`` in one lake transaction holding the team's merge lock (retried)."""
        self._beat_pending = 0.0
        result = run_locked(self._connection, work, self._reconnect, after_commit)
        self._last_beat = self._beat_pending or self._last_beat
        return result

    # ------------------------------------------------------------------ crashes
    def _beat(self, con: duckdb.DuckDBPyConnection, force: bool = False) -> None:
        """This writer's heartbeat, in the merge's transaction (every other merge skips it
        while the last one is fresh: a statement less). Only a writer with open runs needs
        one: once its runs are ended, nothing of it can read ``crashed``."""
        now = time.monotonic()
        if self.writer_id is None or (not force and now - self._last_beat < heartbeat_s() / 2):
            return
        if not force and not self._open_runs:
            return
        self._beat_pending = now
        apply.replace_row(con, "writers", {
            "writer_id": self.writer_id, "host": host_name(), "pid": os.getpid(),
            "started_at": _utc(self._started_at), "heartbeat_at": _utc_now(),
        })  # fmt: skip

    def _mark_silent_writers(self, con: duckdb.DuckDBPyConnection, force: bool = False) -> int:
        """Runs still ``running`` whose writer sent no heartbeat within the crash timeout are
        ``crashed`` (ended at its last heartbeat); checked at most every heartbeat period."""
        now = time.monotonic()
        if not force and now - self._last_crash_check < heartbeat_s():
            return 0
        self._last_crash_check = now
        cutoff = _utc(time.time() - crash_timeout_s())
        silent = _SILENT_RUNS.format(writer=literal(self.writer_id or ""))
        row = con.execute(f"SELECT count(*) FROM ({silent})", [cutoff]).fetchone()
        if not row or not row[0]:
            return 0
        con.execute(
            "UPDATE store.runs SET status = 'crashed', "
            "end_time = coalesce(s.heartbeat_at, runs.start_time), error = "
            "'the process recording this run (pid ' || coalesce(runs.pid::VARCHAR, '?') || "
            "' on ' || coalesce(runs.host, '?') || ') sent no heartbeat for "
            f"{crash_timeout_s():g} s' FROM ({silent}) s WHERE runs.run_id = s.run_id",
            [cutoff],
        )
        return int(row[0])

    def _silent_runs_found(self) -> bool:
        """Whether a crash check is due (at most every heartbeat period) and finds silent
        writers' runs: one query in a read of its own, outside the merge lock."""
        if time.monotonic() - self._last_crash_check < heartbeat_s():
            return False
        self._last_crash_check = time.monotonic()
        silent = _SILENT_RUNS.format(writer=literal(self.writer_id or ""))
        cutoff = _utc(time.time() - crash_timeout_s())
        row = self._retrying(lambda: self._with_cursor(
            lambda con: con.execute(f"SELECT count(*) FROM ({silent})", [cutoff]).fetchone()
        ))  # fmt: skip
        return bool(row and row[0])

    def _check_crashes_before_read(self) -> None:
        """A reader's share of crash detection: one cheap query; the update only when due."""
        if self._silent_runs_found():
            with self._mutex:
                try:
                    self.locked(lambda con: self._mark_silent_writers(con, force=True))
                except duckdb.Error as error:
                    if not _REFUSED.search(str(error)):
                        raise  # a reader's role may not mark them: it reads on, writers will

    def _start_heartbeat(self) -> None:
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="mlops-nb-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _heartbeat_loop(self) -> None:
        while not self._stopping and self._open_runs:
            period = heartbeat_s()
            time.sleep(period / 4)
            if self._stopping or not self._open_runs:
                return
            if time.monotonic() - self._last_beat < period / 2:  # a merge beat recently
                continue
            # a failure is retried next tick (and a merge beats as well)
            with contextlib.suppress(Exception), self._mutex:
                if self._open_runs and self._database is not None:  # not closed meanwhile
                    self.locked(lambda con: self._beat(con, force=True))

    # ------------------------------------------------------------------ recovery
    def recover_dead_writers(self) -> None:
        """Same-machine recovery, as for a file log; then the first crash check."""
        super().recover_dead_writers()
        self._recovered = True

    def _dead_writers(self) -> list[str]:
        """Writers of this spool whose ``.alive`` flock is free (other machines' writers are
        judged by their heartbeats instead)."""
        if not self.journal_dir.is_dir():
            return []
        return [
            path.name[: -len(".alive")]
            for path in sorted(self.journal_dir.glob("*.alive"))
            if path.name[: -len(".alive")] != self.writer_id
            and not self._writer_alive(path.name[: -len(".alive")])
        ]

    # ------------------------------------------------------------------ reading
    def read(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``query`` in one read transaction (one snapshot of the lake); again on a fresh
        connection when the server connection was lost meanwhile (a read changes nothing)."""
        return self._retrying(lambda: self._read_once(query))

    def _retrying(self, action: Callable[[], T]) -> T:
        """``action`` (which changes nothing, or nothing twice), again on a fresh connection
        when the server connection was lost meanwhile."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return action()
            except (duckdb.Error, MlopsError) as error:
                if attempt == READ_ATTEMPTS - 1 or not self._connection_lost(error):
                    raise
                self._reconnect()
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    def _with_cursor(self, action: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        cursor = self._cursor()
        try:
            return action(cursor)
        finally:
            cursor.close()

    def _connection_lost(self, error: BaseException) -> bool:
        """Was ``error`` a lost server connection? Said by its text, else asked of the
        connection itself (the log's queries turn DuckDB's errors into QueryErrors)."""
        if _lost_connection(error):
            return True
        if isinstance(error, (*_UNRETRIED, LogVersionError)):
            return False
        try:
            cursor = self._connection().cursor()
            try:
                cursor.execute(f"FROM postgres_query('{METADATA}', 'SELECT 1::text')").fetchall()
            finally:
                cursor.close()
        except (duckdb.Error, MlopsError):
            return True
        return False

    def _read_once(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        self.ensure_ready(create=False)
        if self.flush_before_reads and self.has_unmerged():
            self.flush()
        if not self._recovered:
            self.recover_dead_writers()
        self._check_crashes_before_read()
        with self._mutex:  # one read at a time per process, as with a file: read_cache is shared
            self.read_cache.clear()  # the lake may have changed since the last read
            cursor = self._read_cursor()
            try:
                cursor.execute("BEGIN TRANSACTION")
                return query(cursor)
            finally:
                with contextlib.suppress(duckdb.Error):
                    cursor.execute("ROLLBACK")

    def _read_cursor(self) -> duckdb.DuckDBPyConnection:
        """The cursor reads use, kept while its connection lives (under ``_mutex``): a new
        cursor's ``USE`` costs a catalog round trip, about as long as the search itself."""
        database = self._connection()
        if self._reader is None or self._reader[0] is not database:
            self._reader = (database, self._cursor())
        return self._reader[1]

    def run_values(self, con: duckdb.DuckDBPyConnection) -> tuple[str, dict[str, str]]:
        """One row per run with a column per param and latest metric (what the file
        backend's ``store.run_values`` holds).

        Reads of now get this process's in-memory copy (see ``RunTable``), brought up to the
        read's snapshot from the lake's change feed: a search over 100,000 runs then scans
        one Arrow table instead of pivoting two million rows of parquet. A read ``as_of``
        gets the pivot itself, as a subquery. (A lake attached at an older snapshot still
        names the newest as current: the moment read is part of the key.)"""
        table = self.kept_runs(con)
        if table is not None:
            table.register(con)
            return table.NAME, dict(table.columns)
        key = (_snapshot(con), self._as_of.option)
        with self._wide_lock:
            if key != self._wide_key or self._wide is None:
                kinds, keys = wide.pivot_names(con, f"{LAKE_ALIAS}.")
                query, columns = wide.view_query(kinds, keys, f"{LAKE_ALIAS}.")
                self._wide, self._wide_key = (f"({query})", columns), key
            return self._wide[0], dict(self._wide[1])

    def kept_runs(self, con: duckdb.DuckDBPyConnection) -> RunTable | None:
        """This process's run table brought to ``con``'s snapshot; None for a read ``as_of``."""
        if getattr(self._as_of, "option", None) is not None:
            return None
        with self._wide_lock:
            if self._run_table is None:
                self._run_table = RunTable()
            self._run_table.bring_to(con)
            return self._run_table

    def read_as_of(self, when: Any, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``query`` on the lake as it was at ``when`` (see ``snapshot_option``): a
        read-only ATTACH of that snapshot, views included, on a connection of its own."""
        self.ensure_ready(create=False)
        if self.flush_before_reads and self.has_unmerged():
            self.flush()
        option, shown = snapshot_option(when)
        try:
            con = connect(self.team, snapshot=option)
        except TeamLogError as error:
            raise _no_snapshot_error(error, shown, self.location) from None
        with self._mutex:  # read_cache is shared with the reads of now
            self.read_cache.clear()
            self._as_of.option = option
            try:
                con.execute(f"USE {LAKE_ALIAS}")
                con.execute("BEGIN TRANSACTION")
                return query(con)
            except duckdb.Error as error:
                raise _no_snapshot_error(error, shown, self.location) from None
            finally:
                self._as_of.option = None
                self.read_cache.clear()
                con.close()

    def write(self, change: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``change`` (a purge, an erasure, a setting: a maintainer's) on the lake while
        holding the team's merge lock, so it never interleaves with a merge; it manages its
        own transactions (log/erasure.py). This process's journal is merged first."""
        self.require_maintainer("purging, forgetting or setting retention")
        self.ensure_ready(create=False)
        self.flush()
        with self._mutex:
            return write_locked(self._connection, change, self.database_user(), self._reconnect)

    def compact(self) -> None:
        """Nothing to rewrite here: a lake's deleted values stay in its older snapshots and
        files until ``mlops-nb team maintain`` rewrites and expires them (an administrator's;
        see ``ERASURE_COMPLETE``)."""

    # ------------------------------------------------------------------ closing
    def _close_connections(self) -> None:
        self._stopping = True
        self._open_runs.clear()
        with self._connect_mutex:
            database, self._database = self._database, None
        self._reader = None
        if database is not None:
            with contextlib.suppress(duckdb.Error):
                database.close()
        self._wide_key = None
        self._recovered = False

    def _forget_after_fork(self) -> None:
        super()._forget_after_fork()
        self._database = None  # the parent's; its sockets are not ours to use
        self._run_table = None  # its private DuckDB's threads stayed in the parent


MAINTAINER_GROUP = roles.group_role("maintainer")
# who this connection is, and whether it may do a maintainer's actions (yes when the team's
# roles were never set up: then the database's own privileges are all there is)
_SESSION_SQL = (
    "SELECT session_user::text, (NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
    f"{literal(MAINTAINER_GROUP)}) OR pg_has_role(session_user, {literal(MAINTAINER_GROUP)}, "
    "'MEMBER'))::text"
)
_SESSION_QUERY = f"FROM postgres_query('{METADATA}', {literal(_SESSION_SQL)})"

_SILENT_RUNS = (
    "SELECT r.run_id, w.heartbeat_at FROM store.runs r "
    "LEFT JOIN (SELECT writer_id, max(heartbeat_at) AS heartbeat_at FROM store.writers "
    "GROUP BY writer_id) w ON w.writer_id = r.writer_id "
    "WHERE r.status = 'running' AND coalesce(r.writer_id, '') <> {writer} "
    "AND coalesce(w.heartbeat_at, r.start_time) < ?"
)


class RunTable:
    """The wide run relation of a lake as one in-memory Arrow table, kept at a snapshot.

    Built once by the pivot (``wide.view_query``), then brought forward by asking DuckLake
    which runs' rows of ``runs``, ``params`` and ``latest_metrics`` changed since
    (``ducklake_table_changes``) and pivoting only those. A new param or metric name, a
    param that needs a wider type, or a change feed no longer there (snapshots expired by
    ``team maintain``) builds it again. Registered on a reading cursor under ``NAME``.

    Searches for one page (``page``, ``count``) don't touch the lake's connection at all: a
    private in-memory DuckDB keeps a native copy under ``NATIVE`` with each row's position
    in ``_rows`` (every row brought in since the last build, stale ones included). It picks
    the page's positions, and the rows come from Arrow by position, converted by pyarrow:
    the top 100 of 100,000 runs in a few milliseconds, where sorting whole rows (or
    registering an Arrow table on a cursor of the lake, itself ~6 ms) costs several times
    that."""

    NAME = "mlops_nb_run_values"
    NATIVE = "run_values"  # in the private DuckDB: the columns of NAME, then POSITION
    POSITION = "mlops_nb_position"
    _SOURCES = ("runs", "params", "latest_metrics")

    def __init__(self) -> None:
        self.snapshot: int | None = None
        self.table: pa.Table | None = None
        self.kinds: dict[str, set[str]] = {}
        self.keys: set[str] = set()
        self.columns: dict[str, str] = {}
        self.builds = 0  # whole pivots so far (the rest were brought forward)
        self.any_tags = False  # does any run have a tag (once true, kept true)
        self.searches = 0  # pages and counts answered by the private copy
        self._native: duckdb.DuckDBPyConnection | None = None
        self._rows: pa.Table | None = None  # what NATIVE's positions point into
        self._shown: dict[str, list[str]] = {}  # a SELECT list over NAME: the columns it names

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make ``NAME`` readable on ``con``."""
        # (a read that began before our snapshot sees a few newer runs: harmless for "now")
        con.register(self.NAME, self.table)

    def bring_to(self, con: duckdb.DuckDBPyConnection) -> None:
        """Bring the table to ``con``'s snapshot."""
        snapshot = _snapshot(con)
        stale = self.table is None or self.snapshot is None
        if stale or (snapshot > self.snapshot and not self._bring_forward(con, snapshot)):
            self._build(con, snapshot)

    def page(
        self, picking: str, showing: str, args: dict[str, Any], limit: int, offset: int
    ) -> pd.DataFrame:
        """One page of runs as a DataFrame: ``picking`` is ``FROM NATIVE v WHERE ... ORDER
        BY ...`` (its positions are taken), ``showing`` the SELECT list over ``v``."""
        native = self._native_copy()
        positions = native.execute(
            f"SELECT v.{self.POSITION} {picking} LIMIT {int(limit)} OFFSET {int(offset)}", args
        ).fetchnumpy()[self.POSITION]
        if showing not in self._shown:
            as_shown = f"(SELECT * EXCLUDE ({self.POSITION}) FROM {self.NATIVE})"
            shown = native.execute(f"{showing} FROM {as_shown} v LIMIT 0").description
            self._shown[showing] = [column[0] for column in shown or []]
        assert self._rows is not None
        self.searches += 1
        return frame_as_duckdb_gives_it(self._rows.take(positions).select(self._shown[showing]))

    def count(self, source: str, args: dict[str, Any]) -> int:
        """``SELECT count(*) <source>``, where ``source`` reads ``NATIVE v``."""
        row = self._native_copy().execute(f"SELECT count(*) {source}", args).fetchone()
        self.searches += 1
        return int(row[0]) if row else 0

    def _native_copy(self) -> duckdb.DuckDBPyConnection:
        if self._native is None:
            assert self.table is not None
            rows = self.table.combine_chunks()
            numbered = rows.append_column(self.POSITION, pa.array(range(rows.num_rows), pa.int64()))
            native = duckdb.connect()
            native.from_arrow(numbered).create(self.NATIVE)
            self._native, self._rows = native, rows
        return self._native

    def _drop_native_copy(self) -> None:
        if self._native is not None:
            with contextlib.suppress(duckdb.Error):
                self._native.close()
        self._native = self._rows = None

    def _build(self, con: duckdb.DuckDBPyConnection, snapshot: int) -> None:
        kinds, keys = wide.pivot_names(con, f"{LAKE_ALIAS}.")
        query, columns = wide.view_query(kinds, keys, f"{LAKE_ALIAS}.")
        self.table = con.execute(query).fetch_arrow_table()
        self.any_tags = bool(
            con.execute(f"SELECT count(*) FROM {LAKE_ALIAS}.store.tags").fetchone()[0]  # type: ignore[index]
        )
        self.kinds, self.keys, self.columns, self.snapshot = kinds, keys, columns, snapshot
        self._drop_native_copy()
        self._shown.clear()
        self.builds += 1

    def _bring_forward(self, con: duckdb.DuckDBPyConnection, snapshot: int) -> bool:
        """Re-pivot the runs changed after our snapshot; False when a rebuild is needed."""
        assert self.table is not None and self.snapshot is not None
        start, end = self.snapshot + 1, snapshot

        def changes(source: str) -> str:
            return (
                f"ducklake_table_changes({literal(LAKE_ALIAS)}, 'store', {literal(source)}, "
                f"{start}, {end})"
            )

        try:
            union = " UNION ".join(f"SELECT run_id FROM {changes(s)}" for s in self._SOURCES)
            changed = [row[0] for row in con.execute(union).fetchall()]
            new_kinds = con.execute(
                f"SELECT DISTINCT name, value_type FROM {changes('params')}"
            ).fetchall()
            new_keys = {row[0] for row in con.execute(
                f"SELECT DISTINCT key FROM {changes('latest_metrics')}").fetchall()}  # fmt: skip
            if not self.any_tags:
                self.any_tags = bool(
                    con.execute(f"SELECT count(*) FROM {changes('tags')}").fetchone()[0]  # type: ignore[index]
                )
        except duckdb.Error:
            return False  # e.g. the snapshots in between were expired
        if not new_keys <= self.keys:
            return False
        for name, kind in new_kinds:
            if kind not in self.kinds.get(name, set()):
                return False
        if changed:
            query, _ = wide.view_query(self.kinds, self.keys, f"{LAKE_ALIAS}.", True)
            fresh = con.execute(query, {"ids": changed}).fetch_arrow_table()
            kept = self.table.filter(
                pc.invert(pc.is_in(self.table["run_id"], value_set=pa.array(changed)))
            )
            fresh = fresh.cast(kept.schema)
            self.table = pa.concat_tables([kept, fresh])
            self._bring_native_copy_forward(changed, fresh)
        self.snapshot = snapshot
        return True

    def _bring_native_copy_forward(self, changed: list[str], fresh: pa.Table) -> None:
        """Replace the changed runs' rows of the native copy; its old rows stay in ``_rows``
        (unpointed) until they outnumber the live ones, then the copy is made afresh."""
        if self._native is None or self._rows is None or self.table is None:
            return
        if self._rows.num_rows + fresh.num_rows > 2 * self.table.num_rows + 1000:
            self._drop_native_copy()
            return
        first = self._rows.num_rows
        numbered = fresh.append_column(
            self.POSITION, pa.array(range(first, first + fresh.num_rows), pa.int64())
        )
        self._native.execute(
            f"DELETE FROM {self.NATIVE} WHERE run_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": changed},
        )
        self._native.from_arrow(numbered).insert_into(self.NATIVE)
        self._rows = pa.concat_tables([self._rows, fresh])


_NULLABLE_DTYPES = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def frame_as_duckdb_gives_it(table: pa.Table) -> pd.DataFrame:
    """``table`` as a DataFrame with the dtypes DuckDB's ``.df()`` gives (a nullable integer
    or boolean dtype for a column with NULLs, objects for a string column of NULLs alone),
    in a fifth of its time: pyarrow converts strings without going through Python objects."""
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) and column.null_count == len(column):
            frame[name] = pd.Series([None] * len(column), dtype=object)
        elif column.null_count and column.type in _NULLABLE_DTYPES:
            frame[name] = column.to_pandas(types_mapper=_NULLABLE_DTYPES.get)
    return frame


# what a purge or forget on a team log leaves to do, said with its result
ERASURE_COMPLETE = (
    "the removed values stay readable in the team log's older snapshots (--as-of) and files "
    "until an administrator runs mlops-nb team maintain --keep 0s (or a maintenance's kept "
    "period has passed)"
)


def write_locked(
    connection: Callable[[], duckdb.DuckDBPyConnection],
    change: Callable[[duckdb.DuckDBPyConnection], T],
    db_user: str | None,
    reconnect: Callable[[], None] | None = None,
) -> T:
    """``change`` on a cursor of the lake while the team's merge lock is held (the cursor
    names ``db_user`` for the audit trail). Run again on a fresh connection after a lost one
    only while it had sent no COMMIT: after one, whether it landed is unknown."""
    for attempt in range(MERGE_ATTEMPTS):
        watched: _CommitWatch | None = None
        try:
            with _merge_lock_held(connection()) as check_lock:
                cursor = connection().cursor()
                try:
                    cursor.execute(f"USE {LAKE_ALIAS}")
                    if db_user:
                        cursor.execute(f"SET VARIABLE {DB_USER_VARIABLE} = {literal(db_user)}")
                    watched = _CommitWatch(cursor, check_lock)
                    return change(cast(duckdb.DuckDBPyConnection, watched))
                finally:
                    cursor.close()
        except duckdb.Error as error:
            if _REFUSED.search(str(error)):
                raise TeamLogError(
                    f"PostgreSQL refused it: {_postgres_reason(error)} (your role may not; "
                    "after an upgrade, an administrator runs mlops-nb team grant again)"
                ) from None
            if not _lost_connection(error):
                raise
            if watched is not None and watched.committed:
                raise TeamLogError(
                    "the connection to the team log was lost while committing: look at the "
                    "erasures view to see whether it was recorded, and run it again if not"
                ) from None
            if attempt == MERGE_ATTEMPTS - 1:
                raise
            if reconnect is not None:
                reconnect()
            time.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


class _CommitWatch:
    """The cursor a write's change gets: before a COMMIT it checks the merge lock is still
    held, and it remembers that a COMMIT was sent (a retry would then risk doing it twice)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, check_lock: Callable[[], None]):
        self._cursor = cursor
        self._check_lock = check_lock
        self.committed = False

    def execute(self, query: str, parameters: Any = None) -> duckdb.DuckDBPyConnection:
        if query.lstrip().upper().startswith("COMMIT"):
            self._check_lock()
            self.committed = True
        if parameters is None:
            return self._cursor.execute(query)
        return self._cursor.execute(query, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def run_locked(
    connection: Callable[[], duckdb.DuckDBPyConnection],
    work: Callable[[duckdb.DuckDBPyConnection], T],
    reconnect: Callable[[], None] | None = None,
    after_commit: Callable[[T], None] | None = None,
) -> T:
    """Run ``work`` in one lake transaction while holding the team's merge lock; the whole
    transaction is retried on a conflict or a lost connection (after ``reconnect``).
    ``after_commit`` gets the result once committed, before the lock is let go."""
    for attempt in range(MERGE_ATTEMPTS):
        try:
            with _merge_lock_held(connection()) as check_lock:
                cursor = connection().cursor()
                try:
                    cursor.execute(f"USE {LAKE_ALIAS}")
                    cursor.execute("BEGIN TRANSACTION")
                    result = work(cursor)
                    check_lock()
                    cursor.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(duckdb.Error):
                        cursor.execute("ROLLBACK")
                    raise
                finally:
                    cursor.close()
                if after_commit is not None:
                    after_commit(result)
                return result
        except duckdb.Error as error:
            retry = _lost_connection(error) or not isinstance(error, _UNRETRIED)
            if _REFUSED.search(str(error)):  # the role may not: PostgreSQL will say so again
                retry = False
            if not retry or attempt == MERGE_ATTEMPTS - 1:
                raise
            if reconnect is not None:
                reconnect()
            time.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _merge_lock_held(database: duckdb.DuckDBPyConnection) -> Iterator[Callable[[], None]]:
    """The team's merge lock: a transaction-scoped advisory lock in PostgreSQL, held by a
    transaction of its own until the merge is over (released if this process dies). It is
    taken before the merge's transaction begins, which then reads what the last holder wrote.
    Yields a check, called before COMMIT, that raises if the lock's connection was lost (the
    lock with it: a merge must not commit unserialised)."""
    holder = database.cursor()

    def check() -> None:
        holder.execute(f"FROM postgres_query('{METADATA}', 'SELECT 1::text')").fetchall()

    try:
        holder.execute("BEGIN TRANSACTION")
        holder.execute(
            f"FROM postgres_query('{METADATA}', "
            f"'SELECT pg_advisory_xact_lock({MERGE_LOCK_KEY})::text')"
        ).fetchall()
        yield check
    finally:
        with contextlib.suppress(duckdb.Error):
            holder.execute("ROLLBACK")
        holder.close()


# ---------------------------------------------------------------------- connecting
def connect(
    team: TeamLocation, data_path: str | None = None, snapshot: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as ``lake``: extensions loaded, credentials
    from the environment turned into an in-memory secret, retries raised. ``data_path`` creates
    the lake when it does not exist (``mlops-nb team init`` only); ``snapshot`` (an ATTACH
    option, ``SNAPSHOT_TIME '...'`` or ``SNAPSHOT_VERSION n``) attaches the lake read-only as
    it was then (time travel)."""
    # A PostgreSQL connection lost mid-query can make DuckLake raise an internal error, which
    # would invalidate this (in-memory, stateless) database and abort the process at its next
    # use; the lake's state is in PostgreSQL, and we reconnect instead.
    con = duckdb.connect(config={"disable_database_invalidation": True})
    try:
        con.execute("SET enable_progress_bar = false")  # stdout belongs to the program
        load_extensions(con)
        secret = s3_secret_statement()
        if secret:
            con.execute(secret)
        options = [f"DATA_PATH {literal(data_path)}"] if data_path else []
        options.append(f"CREATE_IF_NOT_EXISTS {'true' if data_path else 'false'}")
        if snapshot:
            options += ["READ_ONLY", snapshot]
        try:
            con.execute(
                f"ATTACH {literal('ducklake:postgres:' + team.conninfo)} AS {LAKE_ALIAS} "
                f"({', '.join(options)})"
            )
        except duckdb.Error as error:
            raise TeamLogError(_attach_error(team, error)) from None
        for name, value in _RETRY_SETTINGS.items():
            con.execute(f"SET GLOBAL {name} = {value}")
        return con
    except BaseException:
        con.close()
        raise


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """DuckLake, PostgreSQL and S3 support: the offline builds from PyPI when installed (the
    ``team`` extra), else DuckDB's own INSTALL (needs the internet once)."""
    version = duckdb.__version__
    for extension, package in _EXTENSIONS.items():
        offline = _offline_extension(package, extension, version)
        try:
            if offline is not None:
                con.execute(f"LOAD {literal(str(offline))}")
            else:
                con.execute(f"INSTALL {extension}")
                con.execute(f"LOAD {extension}")
        except duckdb.Error as error:
            raise TeamLogError(
                f"DuckDB {version} could not load its {extension} extension "
                f"({_first_line(error)}): install the team log's pinned DuckDB and extensions "
                "with pip install 'mlops-nb[team]'"
            ) from None


def s3_secret_statement() -> str | None:
    """DuckDB's CREATE SECRET for S3 from the usual environment variables (None without
    keys). It lives in this process's memory only: nothing writes it anywhere."""
    key_id = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key_id and secret):
        return None
    options = {"KEY_ID": key_id, "SECRET": secret}
    if os.environ.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = os.environ["AWS_SESSION_TOKEN"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["REGION"] = region
    endpoint = os.environ.get("MLOPS_NB_S3_ENDPOINT", "")
    use_ssl = os.environ.get("MLOPS_NB_S3_USE_SSL")
    if endpoint.startswith(("http://", "https://")):
        use_ssl = use_ssl or str(endpoint.startswith("https://")).lower()
        endpoint = endpoint.split("://", 1)[1]
    if endpoint:
        options["ENDPOINT"] = endpoint.rstrip("/")
    if os.environ.get("MLOPS_NB_S3_URL_STYLE"):
        options["URL_STYLE"] = os.environ["MLOPS_NB_S3_URL_STYLE"]
    text = ", ".join(f"{name} {literal(value)}" for name, value in options.items())
    ssl = ""
    if use_ssl:
        ssl = f", USE_SSL {'false' if use_ssl.lower() in ('0', 'false', 'no') else 'true'}"
    return f"CREATE OR REPLACE SECRET mlops_nb_s3 (TYPE s3, {text}{ssl})"


def check_schema(con: duckdb.DuckDBPyConnection, location: str) -> None:
    """The lake holds a log of this version's schema, written with this DuckDB minor."""
    meta = _meta(con)
    init = "run mlops-nb team init (the team's administrator)"
    if "schema_version" not in meta:
        raise TeamLogError(f"the team log {location} has no mlops_nb log yet: {init}")
    version = int(meta["schema_version"])
    if version > schema.SCHEMA_VERSION:
        raise LogVersionError(
            f"the team log {location} was written by a newer mlops_nb (log schema {version}, "
            f"this version reads up to {schema.SCHEMA_VERSION}): pip install -U mlops-nb"
        )
    if version < schema.SCHEMA_VERSION or int(meta.get("lake_schema_version", 0)) < (
        LAKE_SCHEMA_VERSION
    ):
        raise TeamLogError(f"the team log {location} has an older log schema: {init}")
    _check_duckdb_version(meta.get("duckdb_version"), location)


def _check_duckdb_version(recorded: str | None, location: str) -> None:
    if recorded and _minor(recorded) != _minor(duckdb.__version__):
        raise TeamLogError(
            f"the team log {location} is written with DuckDB {_minor(recorded)}.x and this is "
            f"DuckDB {duckdb.__version__}: everyone on a team uses one DuckDB minor version "
            f"(pip install 'duckdb=={recorded}')"
        )


# ---------------------------------------------------------------------- administration
def initialise(location: str, data_path: str | None) -> list[str]:
    """Create the lake (when missing) and the log's schema in it, or migrate an older one;
    idempotent. Returns what it did, one line each."""
    team = parse_team_location(location)
    done: list[str] = []
    try:
        con = connect(team)
    except TeamLogError as error:
        if "does not exist" not in str(error):
            raise
        if not data_path:
            raise TeamLogError(
                "the team log does not exist yet: say where its data files go with "
                "--data s3://bucket/prefix/ or a shared folder (or MLOPS_NB_DATA)"
            ) from None
        con = connect(team, data_path=_data_path(data_path))
        done.append(f"created the DuckLake catalog, data in {_data_path(data_path)}")
    try:
        con.execute(f"USE {LAKE_ALIAS}")
        done += run_locked(lambda: con, lambda cursor: _create_schema(cursor, location))
        done += _set_inlining(con)
    finally:
        con.close()
    return done or ["nothing to do: the team log is initialised and up to date"]


def _create_schema(con: duckdb.DuckDBPyConnection, location: str) -> list[str]:
    done = []
    meta = _meta(con)
    version = int(meta.get("schema_version", 0))
    if version > schema.SCHEMA_VERSION:
        raise LogVersionError(
            f"the team log {location} has log schema {version}, newer than this mlops_nb "
            f"({schema.SCHEMA_VERSION}): pip install -U mlops-nb"
        )
    _check_duckdb_version(meta.get("duckdb_version"), location)
    if version < schema.SCHEMA_VERSION:
        schema.migrate_lake(con, version)
        done.append(
            f"created the log schema {schema.SCHEMA_VERSION} ({len(schema.STABLE_VIEWS)} views)"
            if version == 0
            else f"migrated the log schema {version} -> {schema.SCHEMA_VERSION}"
        )
    if int(meta.get("lake_schema_version", 0)) < LAKE_SCHEMA_VERSION:
        for statement in _LAKE_TABLES:
            con.execute(statement)
        done.append("created the team tables store.writers and store.artifact_blobs")
    values = {
        "lake_schema_version": str(LAKE_SCHEMA_VERSION),
        "duckdb_version": meta.get("duckdb_version") or duckdb.__version__,
    }
    for key, value in values.items():
        if meta.get(key) != value:
            con.execute("DELETE FROM store.meta WHERE key = ?", [key])
            con.execute("INSERT INTO store.meta VALUES (?, ?)", [key, value])
    return done


def _set_inlining(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Small writes (a merge's rows) go to the catalog rather than one Parquet file each; an
    artifact's bytes always to a file. Scoped to the schema: DuckLake 1.5.5 crashes setting a
    global option on a lake that holds views."""
    wanted = {("SCHEMA", "store"): INLINING_ROW_LIMIT, ("TABLE", "store.artifact_blobs"): 0}
    current = {
        (scope, target): value
        for scope, target, value in con.execute(
            f"SELECT scope, scope_entry, value FROM {LAKE_ALIAS}.options() "
            "WHERE option_name = 'data_inlining_row_limit'"
        ).fetchall()
    }
    done = []
    for (scope, target), limit in wanted.items():
        if current.get((scope, target)) == str(limit):
            continue
        where = "schema => 'store'" if scope == "SCHEMA" else (
            "schema => 'store', table_name => 'artifact_blobs'")  # fmt: skip
        con.execute(f"CALL {LAKE_ALIAS}.set_option('data_inlining_row_limit', {limit}, {where})")
        done.append(f"set data inlining to {limit} rows for {target}")
    return done


def maintain(location: str, keep_s: float) -> list[str]:
    """Apply the retention policy (when there is one), flush inlined rows to Parquet, rewrite
    the files holding deleted rows (so erased values leave the current files), merge small
    files, expire snapshots older than ``keep_s`` seconds and delete the files nothing
    references any more. Safe while others write: each step holds the merge lock (so it never
    conflicts with a merge's updates; the writers' records wait in their journals meanwhile)
    and is retried as a merge is."""
    team = parse_team_location(location)
    con = connect(team)
    done = []
    try:
        con.execute(f"USE {LAKE_ALIAS}")
        check_schema(con, location)
        steps = [
            ("flushed inlined rows to Parquet",
             f"CALL ducklake_flush_inlined_data('{LAKE_ALIAS}')"),
            ("rewrote files holding deleted rows",
             f"CALL ducklake_rewrite_data_files('{LAKE_ALIAS}', delete_threshold => 0)"),
            ("merged adjacent files", f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')"),
            ("expired snapshots older than the kept period",
             f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', "
             f"older_than => now() - to_seconds({float(keep_s)!r}))"),  # now: the step's start
            ("deleted files no snapshot needs",
             f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)"),
        ]  # fmt: skip
        cutoff = _utc(time.time() - keep_s)
        catalog = _catalog_schema(con)
        forgotten = run_locked(lambda: con, lambda cursor: _forget_writers(cursor, cutoff))
        done.append(f"forgot writers silent for the kept period: {forgotten}")
        done += _apply_retention(con, location)
        for label, statement in steps:
            rows = run_locked(
                lambda: con, lambda cursor, sql=statement: cursor.execute(sql).fetchall()
            )
            done.append(f"{label}: {len(rows)}")
    finally:
        con.close()
    grants = connect(team)  # a fresh session: the one above may still hold catalog locks
    try:
        done += _grant_new_tables(grants, catalog)
    finally:
        grants.close()
    return done


def _grant_new_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """Maintenance makes catalog tables (e.g. for inlined deletes) owned by whoever runs
    it, with no grants: when the team's roles are set up, give the groups their privileges
    on them, or every writer's next merge is refused."""
    exists = con.execute(
        f"SELECT count(*) FROM postgres_query('{METADATA}', 'SELECT 1 FROM pg_roles WHERE "
        f"rolname = ''{roles.group_role('admin')}''')"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    try:
        for statement in roles.table_grant_statements(catalog):
            con.execute(f"CALL postgres_execute('{METADATA}', {literal(statement)})")
    except duckdb.Error as error:
        raise TeamLogError(
            f"maintenance made catalog tables it could not grant to the team's roles "
            f"({_postgres_reason(error)}): run mlops-nb team maintain as an admin, then "
            "mlops-nb team grant again"
        ) from None
    return ["granted the team's roles on new catalog tables"]


def _apply_retention(con: duckdb.DuckDBPyConnection, location: str) -> list[str]:
    """The team log's retention policy, applied by maintenance (never at a reader's or a
    writer's open: the whole team opens the log); checkpoint files go from this machine."""
    user_row = con.execute(_SESSION_QUERY).fetchone()
    anchor = local_anchor(location)
    removed = write_locked(
        lambda: con,
        lambda cursor: erasure.apply_retention(cursor, anchor),
        user_row[0] if user_row else None,
    )
    if removed is None:
        return []
    counts = ", ".join(
        f"{removed.get(kind, 0)} {kind.replace('_', ' ')}"
        for kind in ("checkpoints", "request_payloads", "artifacts")
    )
    return [f"applied the retention policy: removed {counts}"]


def _forget_writers(con: duckdb.DuckDBPyConnection, before: datetime) -> int:
    """Heartbeat rows of writers long gone, unless a run of theirs still reads running."""
    gone = (
        "heartbeat_at < ? AND writer_id NOT IN (SELECT writer_id FROM store.runs "
        "WHERE status = 'running' AND writer_id IS NOT NULL)"
    )
    row = con.execute(f"SELECT count(*) FROM store.writers WHERE {gone}", [before]).fetchone()
    con.execute(f"DELETE FROM store.writers WHERE {gone}", [before])
    return int(row[0]) if row else 0


def status(location: str) -> dict[str, Any]:
    """What ``mlops-nb team status`` shows: no credential is in any of it."""
    team = parse_team_location(location)
    con = connect(team)
    try:
        con.execute(f"USE {LAKE_ALIAS}")
        meta = _meta(con)
        snapshots = con.execute(
            f"SELECT count(*), max(snapshot_time) FROM {LAKE_ALIAS}.snapshots()"
        ).fetchone()
        data_path = con.execute(
            f"SELECT value FROM {LAKE_ALIAS}.options() WHERE option_name = 'data_path'"
        ).fetchone()
        writers = []
        if "lake_schema_version" in meta:
            writers = con.execute(
                "SELECT writer_id, host, pid, heartbeat_at FROM store.writers "
                "ORDER BY heartbeat_at DESC LIMIT 50"
            ).fetchall()
        user = con.execute(
            f"FROM postgres_query('{METADATA}', 'SELECT current_user::text AS u')"
        ).fetchone()
    finally:
        con.close()
    return {
        "location": location,
        "data_path": data_path[0] if data_path else None,
        "database_user": user[0] if user else None,
        "duckdb": {"lake": meta.get("duckdb_version"), "here": duckdb.__version__},
        "schema_version": meta.get("schema_version"),
        "snapshots": int(snapshots[0]) if snapshots else 0,
        "last_snapshot": str(snapshots[1]) if snapshots and snapshots[1] else None,
        "writers": [
            {"writer_id": w, "host": h, "pid": p, "heartbeat_at": str(t)} for w, h, p, t in writers
        ],
    }


def grant(location: str, user: str, role: str) -> list[str]:
    """Set up the team's group roles on the catalog (again: new catalog tables get their
    grants) and give ``user`` ``role``, its login created without a password when missing.
    An administrator's job (it changes roles and ownership in PostgreSQL)."""
    statements = roles.grant_statements(user, role)  # checks the names before connecting
    con = connect(parse_team_location(location))
    try:
        catalog = _catalog_schema(con)
        for statement in [*roles.setup_statements(catalog), *statements]:
            con.execute(f"CALL postgres_execute('{METADATA}', {literal(statement)})")
    except duckdb.Error as error:
        raise TeamLogError(
            f"could not grant {role} to {user}: {_postgres_reason(error)} (team grant is for an "
            "administrator: a login that may create roles and owns the catalog)"
        ) from None
    finally:
        con.close()
    return [
        f"set up the roles {', '.join(roles.group_role(r) for r in roles.ROLES)} on the "
        f"catalog schema {catalog}",
        f"{user} is now {role} ({roles.group_role(role)}); a login created here has no "
        "password: set one (ALTER ROLE ... PASSWORD) or use certificates",
    ]


def role_members(location: str) -> list[dict[str, str]]:
    """Who has which team role: each login that is a direct member of a group role."""
    groups = ", ".join(literal(roles.group_role(role)) for role in roles.ROLES)
    query = (
        "SELECT m.rolname::text AS login, g.rolname::text AS grp FROM pg_auth_members a "
        "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
        f"WHERE g.rolname IN ({groups}) AND m.rolcanlogin ORDER BY 1, 2"
    )
    con = connect(parse_team_location(location))
    try:
        rows = con.execute(f"FROM postgres_query('{METADATA}', {literal(query)})").fetchall()
    finally:
        con.close()
    return [{"user": user, "role": group.removeprefix("mlops_nb_")} for user, group in rows]


def _catalog_schema(con: duckdb.DuckDBPyConnection) -> str:
    """The PostgreSQL schema holding the lake's DuckLake tables."""
    query = (
        "SELECT table_schema::text FROM information_schema.tables "
        "WHERE table_name = 'ducklake_snapshot' ORDER BY 1"
    )
    found = [r[0] for r in con.execute(
        f"FROM postgres_query('{METADATA}', {literal(query)})").fetchall()]  # fmt: skip
    if len(found) != 1:
        raise TeamLogError(
            f"expected one DuckLake catalog schema in the team log's database, found "
            f"{', '.join(found) or 'none'}"
        )
    return found[0]


# ---------------------------------------------------------------------- one LakeStore per lake
_LAKES: dict[str, LakeStore] = {}
_LAKES_MUTEX = threading.Lock()


def open_lake_store(location: str, create: bool = True) -> LakeStore:
    """The process-wide LakeStore of a team location (checked, and its dead local writers'
    journals merged)."""
    team = parse_team_location(location)
    with _LAKES_MUTEX:
        store = _LAKES.get(team.location)
        if store is None:
            store = _LAKES[team.location] = LakeStore(team)
            _ALL_STORES.add(store)
    store.ensure_ready(create=create)
    store.recover_dead_writers()
    return store


def _forget_parent_lakes() -> None:
    _LAKES.clear()


os.register_at_fork(after_in_child=_forget_parent_lakes)


# ---------------------------------------------------------------------- helpers
def _offline_extension(package: str, extension: str, version: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "extensions" / f"v{version}" / f"{extension}.duckdb_extension"
        if path.is_file():
            return path
    return None


def snapshot_option(when: Any) -> tuple[str, str]:
    """The ATTACH option that opens the lake as of ``when`` and how to name it in a message:
    an int (or digits) is a snapshot version; a date, a datetime or ISO text is a time, in UTC
    unless it carries an offset (the log's own times are UTC)."""
    if isinstance(when, int) or (isinstance(when, str) and when.strip().isdigit()):
        return f"SNAPSHOT_VERSION {int(when)}", f"snapshot version {int(when)}"
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.strip())
        except ValueError:
            raise TeamLogError(
                f"as of {when!r}: give a date (2026-11-01), a date and time "
                "(2026-11-01T14:30:00, UTC unless it says +HH:MM) or a snapshot version"
            ) from None
    if isinstance(when, date) and not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day)
    if not isinstance(when, datetime):
        raise TeamLogError(f"as of {when!r}: give a date, a datetime or a snapshot version")
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    text = f"{when.isoformat(sep=' ')}+00"
    return f"SNAPSHOT_TIME {literal(text)}", f"{when.isoformat(sep=' ')} UTC"


def _no_snapshot_error(error: BaseException, shown: str, location: str) -> MlopsError:
    """One line for a time travel that found no snapshot (before the first one, or expired)."""
    text = str(error)
    if isinstance(error, MlopsError) and "No snapshot found" not in text:
        return error
    if "No snapshot found" in text or "snapshot" in text.lower():
        return TeamLogError(
            f"the team log {location} has no snapshot at {shown}: that is before its first "
            "snapshot, or older than what team maintain --keep kept"
        )
    return TeamLogError(f"reading the team log as of {shown}: {_first_line(error)}")


def _attach_error(team: TeamLocation, error: BaseException) -> str:
    text = _first_line(error)
    if "does not exist" in text and "explicitly disabled" in text:
        return f"the team log {team.location} does not exist: run mlops-nb team init --data ..."
    return f"could not open the team log {team.location}: {text}"


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? "
        "AND table_schema = 'store' AND table_name = 'meta'",
        [LAKE_ALIAS],
    ).fetchone()
    if not has_meta or not has_meta[0]:
        return {}
    return dict(con.execute(f"SELECT key, value FROM {LAKE_ALIAS}.store.meta").fetchall())


def _snapshot(con: duckdb.DuckDBPyConnection) -> Any:
    row = con.execute(f"SELECT * FROM {LAKE_ALIAS}.current_snapshot()").fetchone()
    return row[0] if row else None


def _data_path(text: str) -> str:
    """A folder made absolute (and ending in /), an s3:// URL as given."""
    if "://" in text:
        return text if text.endswith("/") else text + "/"
    return str(Path(text).expanduser().absolute()) + "/"


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _postgres_reason(error: BaseException) -> str:
    """PostgreSQL's own words in an error DuckDB wraps around the whole statement."""
    found = re.search(r"ERROR:\s+([^\n]+)", str(error))
    return found.group(1).strip() if found else _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _write_note(path: Path, text: str) -> None:
    """A small file in the spool, replaced whole (a reader never sees half of it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
