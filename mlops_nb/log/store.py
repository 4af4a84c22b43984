"""Sharing one DuckDB log file between many processes without losing a record.

The facts we design from (measured, see docs/log-concurrency.md): DuckDB lets one process open a
file read-write, and a second opener fails at once; retrying that open until it succeeds LOSES
acknowledged commits; holding a blocking ``flock`` on a sidecar file around
open-write-close loses none; a connect costs ~13 ms, an insert on an open connection ~1 ms.

So the log is written in two steps:

1. **Journal.** Every write call of a process (a metric, a param, a run's start or end...) is
   appended as one JSON line to that process's own journal file in ``<log>.journal/``, with a
   single ``write(2)``. Nobody else writes that file, so there is no lock to wait for, and once
   the call returns the record survives the death of the process (it is in the kernel's page
   cache). Bulk data (a batch of 100k metric points) goes to an Arrow file beside the journal,
   written under a temporary name and renamed before the journal line that points at it; the
   writer merges it from memory, anyone recovering after a crash reads the file.
2. **Merge.** A background thread of the same process merges new journal lines into the DuckDB
   file at least once a second (and on ``flush()``, before the process reads, and at exit):
   it takes the sidecar lock ``<log>.lock`` exclusively, opens the file, inserts the batch,
   records in the same transaction how many bytes of the journal are merged
   (``store.journal_progress``), commits and closes. A merge interrupted at any point is either
   wholly committed or not at all, and is then redone from the recorded offset: each record
   lands exactly once.

Liveness: each writing process holds an exclusive ``flock`` on ``<writer>.alive`` for its whole
life. The kernel drops it when the process dies, however it dies. Whoever opens the log (a
reader, another writer) finds ``.alive`` files it can lock: those writers are dead, so it
merges what is left of their journals and marks their runs that still read ``running`` as
``crashed``. No pid guessing, no heartbeat timeout.

Readers take the sidecar lock shared and open the file read-only; they may keep that
connection for ``READER_LINGER_S`` of idleness so that a burst of queries costs one connect.
A writer that finds the lock taken announces itself on ``<log>.wait``; a reader checks that
before each query and lets go at once, so a reader delays a writer by at most one query or
the linger time.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import fcntl
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import orjson
import pyarrow as pa
import pyarrow.feather as feather

from mlops_nb.errors import LogGoneError, LogNotFoundError, LogVersionError, NotALogError
from mlops_nb.log import apply, erasure, schema, wide
from mlops_nb.log.location import is_team_location

T = TypeVar("T")

FLUSH_INTERVAL_S = 1.0
READER_LINGER_S = 0.15
JOURNAL_ROTATE_BYTES = 8 * 1024 * 1024
_DUCKDB_MAGIC = b"DUCK"


class JournalStore(abc.ABC):
    """What every backend shares: this process's journal (one ``write(2)`` per record), the
    background merges, the ``.alive`` liveness flock, and merging dead writers' journals.

    A backend says how a merge is serialised (``_merge_lock``), how journal lines land in its
    database (``_merge_journals``) and how far a journal was merged (``_merged_bytes``)."""

    def __init__(self, path: Path):
        self.path = path
        self.journal_dir = path.parent / (path.name + ".journal")
        self._mutex = threading.RLock()
        self._append_mutex = threading.Lock()
        self._ready = False
        # writer side, created on the first write
        self.writer_id: str | None = None
        self._alive_fd: int | None = None
        self._journal_fd: int | None = None
        self._journal_name: str | None = None
        self._journal_seq = 0
        self._bulk_seq = 0
        self._bulk_tables: dict[str, pa.Table] = {}
        self._appended = 0  # bytes appended to the current journal by this process
        self._dirty = threading.Event()
        self.merge_interval = FLUSH_INTERVAL_S  # seconds between background merges at most
        self.flush_before_reads = True  # a read sees this process's own records first
        self._stopping = False
        self._closing = threading.Event()  # wakes the flusher from its pause when closing
        self._flusher: threading.Thread | None = None
        self.flush_error: BaseException | None = None
        self._gone = False  # the file was deleted under us: stop, say so once
        self._unmerged_records = 0  # journaled since the last merge (what a loss would lose)
        self.before_close: list[Callable[[], None]] = []
        self.read_cache: dict[str, Any] = {}  # facts derived from the log while it can't change
        self._merger: subprocess.Popen[bytes] | None = None  # see merge_in_helper_process
        self._merged_sizes: dict[str, int] = {}  # a helper's view: journal bytes merged so far

    # ------------------------------------------------------------------ what a backend adds
    def require_maintainer(self, action: str) -> None:
        """Refuse ``action`` (registering, moving an alias, purging) to someone who may not:
        a file log's permissions are the file system's, so anyone who can write may."""
        return None

    @abc.abstractmethod
    def _merge_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held around a merge of journals (and while a journal is found wholly merged)."""

    @abc.abstractmethod
    def _merge_journals(self, journals: list[str | None], dead_writers: list[str]) -> None:
        """Under the merge lock: apply unmerged journal bytes; mark dead writers' runs."""

    @abc.abstractmethod
    def _merged_bytes(self, journal: str) -> int:
        """How many bytes of ``journal`` the log holds."""

    def _release_connections(self) -> None:
        """Let go of open read connections (before a recovery); none by default."""
        return None

    def _merged_elsewhere(self, journals: list[str | None], appended: int) -> bool:
        """Whether another process already merged all ``appended`` bytes of ``journals``
        (a team log's group commit); never for a file log."""
        return False

    def kept_runs(self, con: duckdb.DuckDBPyConnection) -> Any:
        """A copy of the run relation this process keeps and searches by itself (a team
        log's ``RunTable``), brought to ``con``'s moment; None when there is none."""
        return None

    def any_run_tags(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether any run has a tag (else a run search skips reading them)."""
        return bool(con.execute("SELECT count(*) FROM store.tags").fetchone()[0])

    def change_token(self) -> Any:
        """Something that differs after any later change to the log, or None when that can't
        be told cheaply (then ask the log itself)."""
        return None

    def _close_connections(self) -> None:
        """Let go of every connection and timer (at close)."""
        self._release_connections()

    def _forget_after_fork(self) -> None:
        """In a forked child: drop what belongs to the parent process, without closing it."""
        for fd in (self._alive_fd, self._journal_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._alive_fd = self._journal_fd = None
        if self._merger is not None and self._merger.stdin is not None:
            with contextlib.suppress(OSError):
                os.close(self._merger.stdin.fileno())  # the parent's helper is not ours
        self._merger = None
        self._stopping = True

    # ------------------------------------------------------------------ writing
    def append(self, record: dict[str, Any]) -> None:
        """Append one record to this process's journal; durable when this returns."""
        self.append_many([record])

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Append records with one ``write(2)``; all durable when this returns."""
        if not records:
            return
        lines = b"".join(_journal_line(record) for record in records)
        with self._append_mutex:
            if self._journal_fd is None:
                self._open_journal()
            assert self._journal_fd is not None
            _write_all(self._journal_fd, lines)
            self._appended += len(lines)
            self._unmerged_records += len(records)
            if self._merger is not None and self._appended >= JOURNAL_ROTATE_BYTES:
                os.close(self._journal_fd)  # the helper deletes it once merged
                self._journal_fd = None
                self._open_journal()
        if not self._gone and self._merger is None:
            self._dirty.set()

    def become_writer(self) -> str:
        """Open this process's journal now (if not yet) and return its writer id."""
        with self._append_mutex:
            if self._journal_fd is None:
                self._open_journal()
        assert self.writer_id is not None
        return self.writer_id

    def append_bulk(self, op: str, table: pa.Table, **fields: Any) -> None:
        """Store a large batch as a Parquet file beside the journal and journal a pointer."""
        with self._append_mutex:
            if self._journal_fd is None:
                self._open_journal()
            self._bulk_seq += 1
            name = f"{self.writer_id}.bulk{self._bulk_seq}.arrow"
        final = self.journal_dir / name
        temporary = self.journal_dir / (name + ".tmp")
        feather.write_feather(table, temporary, compression="uncompressed")
        os.replace(temporary, final)
        if self._merger is None:  # merged from memory; the file is for recovery (and helpers)
            self._bulk_tables[name] = table
        self.append({"op": op, "file": name, **fields})

    def merge_in_helper_process(self, location: str, seconds: float) -> None:
        """Leave this process's merges to a helper process (``mlops_nb.log.merger``) that
        merges its journals every ``seconds``: a busy server then spends no CPU time and no
        GIL on merging, and records are as durable as before (journaled before the call
        returns). The helper makes a last merge and exits when this process closes the store
        or dies; ``close`` merges whatever is left."""
        if self._merger is not None:
            return
        writer = self.become_writer()
        self._merger = subprocess.Popen(
            [sys.executable, "-m", "mlops_nb.log.merger", location, writer, str(seconds)],
            stdin=subprocess.PIPE,
        )
        self.flush_before_reads = False

    def merge_writer_journals(self, writer: str) -> bool:
        """For a helper: merge the journals of live ``writer`` that grew since the last call,
        and delete the ones it has moved on from once they are wholly merged; True if any."""
        journals = self._journals_of(writer)
        sizes = {name: _size(self.journal_dir / name) for name in journals}
        grown = [n for n in journals if sizes[n] != self._merged_sizes.get(n)]
        if not grown:
            return False
        with self._mutex:
            self._release_connections()
            with self._merge_lock():
                self._merge_journals(grown, dead_writers=[])
        self._merged_sizes.update(sizes)
        for name in journals[:-1]:  # the writer has moved on to a newer journal
            if self._merged_bytes(name) == sizes[name]:
                (self.journal_dir / name).unlink(missing_ok=True)
                self._merged_sizes.pop(name, None)
        return True

    def _journals_of(self, writer: str | None) -> list[str]:
        """A writer's journal files, oldest first (``<writer>.<seq>.jsonl``)."""
        names = (p.name for p in self.journal_dir.glob(f"{writer}.*.jsonl"))
        return sorted(names, key=lambda name: int(name.rsplit(".", 2)[1]))

    def _stop_merger(self) -> None:
        """Tell the helper to make its last merge (end of its input) and wait for it."""
        merger, self._merger = self._merger, None
        if merger is None:
            return
        with contextlib.suppress(OSError):
            merger.stdin.close()  # type: ignore[union-attr]
        try:
            merger.wait(timeout=60)
        except subprocess.TimeoutExpired:
            merger.kill()
            merger.wait()

    def load_bulk(self, path: Path) -> pa.Table:
        """A bulk batch: still in memory when this process wrote it, else from its file."""
        table = self._bulk_tables.pop(path.name, None)
        return table if table is not None else feather.read_table(path)

    def _open_journal(self) -> None:
        """Become a writer: take the liveness lock and open a fresh journal file."""
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        if self.writer_id is None:
            host = host_name().split(".")[0]
            self.writer_id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            # locked before it gets its name: a process recovering dead writers must never
            # find a live writer's .alive unlocked (it would delete that writer's journal)
            alive = self.journal_dir / f"{self.writer_id}.alive"
            temporary = alive.with_name(alive.name + ".tmp")
            self._alive_fd = os.open(temporary, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._alive_fd, fcntl.LOCK_EX)
            os.replace(temporary, alive)
        self._journal_seq += 1
        self._journal_name = f"{self.writer_id}.{self._journal_seq}.jsonl"
        self._journal_fd = os.open(
            self.journal_dir / self._journal_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._appended = 0
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="mlops-nb-flusher", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._dirty.wait()
            if self._stopping:
                return
            if self._closing.wait(self.merge_interval / 2):
                return  # close() makes the last merge itself, without waiting out the pause
            try:
                self.flush()
                self.flush_error = None
            except LogGoneError:
                self._report_gone()
                return
            except Exception as error:  # noqa: BLE001 - kept in the journal, retried next tick
                self.flush_error = error
                time.sleep(self.merge_interval)
                self._dirty.set()

    def has_unmerged(self) -> bool:
        return self._journal_fd is not None and self._dirty.is_set()

    def flush(self) -> None:
        """Merge everything this process has journaled into the log now."""
        if self._journal_fd is None:
            return
        with self._mutex:
            self._dirty.clear()
            with self._append_mutex:
                journals = [self._journal_name]
                if self._merger is None and self._journal_seq > 1:  # a helper's leftovers
                    journals = self._journals_of(self.writer_id)
                rotate = self._appended >= JOURNAL_ROTATE_BYTES
                merging = self._unmerged_records
                appended = self._appended
            if not merging:
                return
            if not self._merged_elsewhere(journals, appended):
                with self._merge_lock():
                    self._merge_journals(journals, dead_writers=[])
            with self._append_mutex:
                self._unmerged_records -= merging
            if rotate:
                self._rotate_journal(journals[0])

    def _rotate_journal(self, merged_name: str | None) -> None:
        """Start a new journal once the old one is large and wholly merged; delete the old."""
        with self._append_mutex:
            if self._journal_name != merged_name or self._journal_fd is None:
                return
            if os.fstat(self._journal_fd).st_size != self._merged_bytes(merged_name):
                return
            os.close(self._journal_fd)
            self._journal_fd = None
            self._open_journal()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.journal_dir / merged_name)

    # ------------------------------------------------------------------ recovery
    def recover_dead_writers(self) -> None:
        """Merge what dead writers left in their journals and mark their runs crashed."""
        dead = self._dead_writers()
        if not dead:
            return
        with self._mutex:
            self._release_connections()
            with self._merge_lock():
                dead = self._dead_writers()  # another process may have recovered them
                if not dead:
                    return
                journals = sorted(
                    p.name for writer in dead for p in self.journal_dir.glob(f"{writer}.*.jsonl")
                )
                self._merge_journals(journals, dead_writers=dead)
                for writer in dead:
                    for leftover in self.journal_dir.glob(f"{writer}.*"):
                        with contextlib.suppress(FileNotFoundError):
                            leftover.unlink()

    def _dead_writers(self) -> list[str]:
        if not self.journal_dir.is_dir():
            return []
        writers = set()
        for entry in os.scandir(self.journal_dir):
            writer = entry.name.split(".", 1)[0]
            if writer != self.writer_id and not entry.name.endswith(".tmp"):
                writers.add(writer)
        return sorted(w for w in writers if not self._writer_alive(w))

    def _writer_alive(self, writer: str) -> bool:
        """A writer is alive while some process holds the flock on its ``.alive`` file."""
        try:
            return _locked_elsewhere(self.journal_dir / f"{writer}.alive", os.O_RDONLY)
        except FileNotFoundError:
            return False

    def _last_activity(self, writer: str) -> float | None:
        times = [p.stat().st_mtime for p in self.journal_dir.glob(f"{writer}.*.jsonl")]
        return max(times) if times else None

    def _report_gone(self) -> None:
        """One warning from a background thread, saying what was not recorded; then quiet."""
        if self._reported_gone:
            return
        self._reported_gone = True
        lost = self._unmerged_records
        print(
            f"mlops: {self.path} was deleted while this process was using it: "
            f"{lost} record{' was' if lost == 1 else 's were'} not recorded (metrics, params, "
            "cells, run ends), nor will later ones be; open the log again to start a new one",
            file=sys.stderr,
        )

    _reported_gone = False

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Final merge; remove this writer's journal files once everything is in the log."""
        for callback in list(self.before_close):
            with contextlib.suppress(Exception):
                callback()
        self._stop_merger()
        self._stopping = True
        self._closing.set()
        self._dirty.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
        with self._mutex:
            if self._journal_fd is not None:
                self._dirty.set()
                try:
                    self.flush()
                except LogGoneError:
                    self._report_gone()
                os.close(self._journal_fd)
                self._journal_fd = None
                for leftover in self.journal_dir.glob(f"{self.writer_id}.*"):
                    if not leftover.name.endswith(".alive"):
                        leftover.unlink(missing_ok=True)
                (self.journal_dir / f"{self.writer_id}.alive").unlink(missing_ok=True)
            if self._alive_fd is not None:
                os.close(self._alive_fd)
                self._alive_fd = None
            self._close_connections()
            # the same Store may be used again later in this process: start as a new writer,
            # and check the file again (another process may have replaced or upgraded it)
            self._ready = False
            self.writer_id = None
            self._flusher = None
            self._stopping = False
            self._closing.clear()
            self._dirty.clear()


class Store(JournalStore):
    """One process's handle on one log file: its journal, merges, and read connections."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._lock_path = path.parent / (path.name + ".lock")
        self._wait_path = path.parent / (path.name + ".wait")
        # reader side
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._reader_lock_fd: int | None = None
        self._reader_last_used = 0.0
        self._linger_timer: threading.Timer | None = None

    def _merge_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._exclusive_lock()

    def _release_connections(self) -> None:
        self._close_reader()

    def _close_connections(self) -> None:
        self._close_reader()
        if self._linger_timer is not None:
            self._linger_timer.cancel()

    def _forget_after_fork(self) -> None:
        super()._forget_after_fork()
        if self._reader_lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._reader_lock_fd)
        self._reader_lock_fd = None

    # ------------------------------------------------------------------ opening
    def ensure_ready(self, create: bool = True) -> None:
        """Check the file is a log of a version we understand; create or migrate it if needed."""
        if self._ready:
            return
        with self._mutex:
            if self._ready:
                return
            if not self.path.exists():
                if not create:
                    raise LogNotFoundError(
                        f"no log at {self.path}: record a run first, or point --log / "
                        "MLOPS_NB_LOG at an existing log"
                    )
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._exclusive_lock():
                self._check_or_initialise(apply_retention=create)
            self._ready = True

    def _check_or_initialise(self, apply_retention: bool = False) -> None:
        """Runs under the exclusive lock: validate the file, create or migrate the schema; for
        a writer, apply the log's retention policy when it is due (one small read if not)."""
        existed = self.path.exists()
        if existed:
            _check_magic(self.path)
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as error:
            raise NotALogError(
                f"{self.path} could not be opened as a DuckDB database ({_first_line(error)}); "
                "it was left untouched: move it away or point MLOPS_NB_LOG elsewhere"
            ) from None
        try:
            version = schema.read_version(con)
            if version is None:
                if existed and not schema.is_empty_database(con):
                    raise NotALogError(
                        f"{self.path} is a DuckDB database but not an mlops_nb log; it was left "
                        "untouched: use another path for the log"
                    )
                schema.migrate(con, 0)
            elif version > schema.SCHEMA_VERSION:
                raise LogVersionError(
                    f"{self.path} was written by a newer mlops_nb (log schema {version}, this "
                    f"version reads up to {schema.SCHEMA_VERSION}): upgrade with "
                    "'pip install -U mlops-nb'"
                )
            elif version < schema.SCHEMA_VERSION:
                schema.migrate(con, version)
            if apply_retention:
                erasure.retention_at_open(con, self.path)
        finally:
            con.close()

    # ------------------------------------------------------------------ merging
    def _merged_bytes(self, journal: str) -> int:
        with self._exclusive_lock():
            con = duckdb.connect(str(self.path))
            try:
                row = con.execute(
                    "SELECT applied_bytes FROM store.journal_progress WHERE journal = ?", [journal]
                ).fetchone()
            finally:
                con.close()
        return row[0] if row else 0

    def change_token(self) -> Any:
        """The file's and its WAL's modification times and sizes, once both are at least a
        second old: a later write then gets a later time even on a coarse file-system clock."""
        token = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                found = path.stat()
            except FileNotFoundError:
                token.append(None)
                continue
            if time.time_ns() - found.st_mtime_ns < 1_000_000_000:
                return None
            token.append((found.st_mtime_ns, found.st_size, found.st_ino))
        return tuple(token)

    def _merge_journals(self, journals: list[str | None], dead_writers: list[str]) -> None:
        """Under the exclusive lock: apply unmerged journal bytes; mark dead writers' runs."""
        con = duckdb.connect(str(self.path))
        try:
            for journal in journals:
                if journal:
                    apply.merge_journal(con, self.journal_dir, journal, self.load_bulk)
            running_writers = [
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT writer_id FROM store.runs WHERE status = 'running'"
                ).fetchall()
            ]
            gone = set(dead_writers)
            for writer in running_writers:
                if writer and writer != self.writer_id and not self._writer_alive(writer):
                    gone.add(writer)
            for writer in gone:
                apply.mark_crashed(con, writer, self._last_activity(writer))
        finally:
            con.close()

    def write(self, change: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``change`` on a read-write connection under the writer lock, for what is not
        an append (erasing rows, settings); it manages its own transactions. This process's
        journal is merged first; other processes' merges wait, their records kept."""
        self.ensure_ready(create=False)
        self.flush()
        with self._mutex, self._exclusive_lock():
            con = duckdb.connect(str(self.path))
            try:
                return change(con)
            finally:
                con.close()

    def compact(self) -> None:
        """Rewrite the file with its live rows only (see ``erasure.compact_file``), under the
        writer lock: no other process has the file open then, so the copy is renamed in."""
        self.ensure_ready(create=False)
        self.flush()
        with self._mutex, self._exclusive_lock():
            erasure.compact_file(self.path)

    # ------------------------------------------------------------------ artifacts
    def store_blob(self, path: Path, sha256: str, size: int) -> None:
        """Nothing more to do: the artifacts folder beside the file is the storage."""

    def fetch_blob(self, sha256: str, target: Path) -> Path:
        """The stored file itself (beside the log file)."""
        return target

    # ------------------------------------------------------------------ reading
    def run_values(self, con: duckdb.DuckDBPyConnection) -> tuple[str, dict[str, str]]:
        """The relation with one row per run (``store.run_values``, kept at merge time) and its
        param and metric columns with their types."""
        return "store.run_values", wide.existing_columns(con)

    def read(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``query`` on a read-only connection, seeing every record this process wrote."""
        self.ensure_ready(create=False)
        if self.flush_before_reads and self.has_unmerged():
            self.flush()
        if self._reader is None:  # a fresh look at the file: first tidy up after dead writers
            self.recover_dead_writers()
        with self._mutex:
            if self._reader is not None and self._writers_waiting():
                self._close_reader()
            if self._reader is None:
                self._open_reader()
            assert self._reader is not None
            try:
                return query(self._reader.cursor())
            finally:
                self._reader_last_used = time.monotonic()
                self._schedule_linger_close()

    def _open_reader(self) -> None:
        self._check_still_there()
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._wait_for_waiting_writers()
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._reader = duckdb.connect(str(self.path), read_only=True)
        except BaseException:
            os.close(fd)
            raise
        self._reader_lock_fd = fd

    def _close_reader(self) -> None:
        self.read_cache.clear()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._reader_lock_fd is not None:
            os.close(self._reader_lock_fd)  # closing drops the shared flock
            self._reader_lock_fd = None

    def _schedule_linger_close(self) -> None:
        if self._linger_timer is not None and self._linger_timer.is_alive():
            return
        self._linger_timer = threading.Timer(READER_LINGER_S, self._close_if_idle)
        self._linger_timer.daemon = True
        self._linger_timer.start()

    def _close_if_idle(self) -> None:
        """Runs on a timer thread: never raises (a deleted folder just closes the reader)."""
        with self._mutex:
            idle = time.monotonic() - self._reader_last_used
            if self._reader is None:
                return
            try:
                close = idle >= READER_LINGER_S or self._writers_waiting()
            except OSError:
                close = True
            if close:
                self._close_reader()
                return
        self._linger_timer = None
        self._schedule_linger_close()

    def _writers_waiting(self) -> bool:
        return _locked_elsewhere(self._wait_path, os.O_RDWR | os.O_CREAT)

    def _wait_for_waiting_writers(self) -> None:
        """Let writers that are queued go first, so a busy reader cannot starve them."""
        fd = os.open(self._wait_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ locking
    def _check_still_there(self) -> None:
        """A log that existed must not be silently re-created empty when its file is deleted:
        that would scatter this process's records into a log without their runs."""
        if self._gone or (self._ready and not self.path.exists()):
            self._gone = True
            raise LogGoneError(
                f"the log {self.path} was deleted while this process was using it: open it "
                "again (a new log) or restore the file"
            )

    @contextlib.contextmanager
    def _exclusive_lock(self) -> Iterator[None]:
        """Hold the sidecar lock exclusively; announce ourselves to readers while we wait."""
        with self._mutex:
            self._close_reader()  # one process may not hold read-only and read-write at once
            self._check_still_there()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    wait_fd = os.open(self._wait_path, os.O_RDWR | os.O_CREAT, 0o644)
                    try:
                        fcntl.flock(wait_fd, fcntl.LOCK_SH)
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    finally:
                        os.close(wait_fd)
                yield
            finally:
                os.close(fd)


# ---------------------------------------------------------------------- one Store per file
_STORES: dict[str, Store] = {}
_ALL_STORES: weakref.WeakSet[JournalStore] = weakref.WeakSet()  # closed at exit, even if forgotten
_STORES_MUTEX = threading.Lock()
_ORPHANED: list[Any] = []  # objects inherited over fork(), kept so they are never closed


def get_store(path: Path, create: bool = True) -> Store:
    """The process-wide Store for ``path`` (one per file: DuckDB allows one mode per process)."""
    key = str(path.absolute())
    with _STORES_MUTEX:
        store = _STORES.get(key)
        if store is not None and store._gone:  # its file was deleted: start a new log
            with contextlib.suppress(Exception):
                store.close()
            store = None
        if store is None:
            store = _STORES[key] = Store(Path(key))
            _ALL_STORES.add(store)
    store.ensure_ready(create=create)
    store.recover_dead_writers()
    return store


def open_store(location: str, create: bool = True) -> JournalStore:
    """The process-wide store of a log location: a DuckDB file's path, or a team lake
    (``ducklake:postgres:...``, see lake.py)."""
    if is_team_location(location):
        from mlops_nb.log.lake import open_lake_store

        return open_lake_store(location, create=create)
    return get_store(Path(location), create=create)


@atexit.register
def _close_all_stores() -> None:
    """Final merges, and no DuckDB connection left for interpreter shutdown to tear down."""
    for store in list(_ALL_STORES):
        with contextlib.suppress(Exception):
            store.close()


def _forget_parent_stores() -> None:
    """In a forked child, the parent's journal and locks are not ours: start afresh."""
    for store in list(_ALL_STORES):
        _ORPHANED.append(store)
        store._forget_after_fork()
    _STORES.clear()
    _ALL_STORES.clear()


os.register_at_fork(after_in_child=_forget_parent_stores)


# ---------------------------------------------------------------------- helpers
HOSTNAME_ENV = "MLOPS_NB_HOSTNAME"


def host_name() -> str:
    """This machine's name in writer ids and runs (``$MLOPS_NB_HOSTNAME`` overrides it, so
    processes can stand for machines in tests)."""
    return os.environ.get(HOSTNAME_ENV) or socket.gethostname()


def _check_magic(path: Path) -> None:
    with open(path, "rb") as handle:
        header = handle.read(16)
    if header[8:12] != _DUCKDB_MAGIC:
        raise NotALogError(
            f"{path} is not an mlops_nb log (not a DuckDB database); it was left untouched: "
            "move it away or point MLOPS_NB_LOG elsewhere"
        )


def _locked_elsewhere(path: Path, flags: int) -> bool:
    """Whether some process holds a flock on ``path`` (tried without waiting)."""
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _write_all(fd: int, data: bytes) -> None:
    """One ``write(2)`` in practice; more only if the kernel takes part of a large one."""
    written = os.write(fd, data)
    while written < len(data):
        written += os.write(fd, data[written:])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _journal_line(record: dict[str, Any]) -> bytes:
    """One JSON line. orjson when every value is a plain scalar (or a dict of them): a served
    request's inputs are a megabyte of text that orjson escapes ten times faster; anything
    else (lists, NaN or infinite floats, which orjson would write as null) goes through json."""
    if all(_plain(value) for value in record.values()):
        with contextlib.suppress(TypeError):  # e.g. an int wider than 64 bits
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    return (json.dumps(record, default=_json_default, allow_nan=True) + "\n").encode()


def _plain(value: Any, nested: bool = False) -> bool:
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict and not nested:
        return all(type(key) is str and _plain(item, True) for key, item in value.items())
    return kind in (str, int, bool) or value is None


def _json_default(value: Any) -> Any:
    """Make numpy scalars and other common values JSON-serialisable."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
