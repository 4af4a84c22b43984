"""Merges left to a helper process (what a model server does): real processes on one log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import subprocess_env

import mlops_nb as mn

# A writer that hands its merges to a helper, journals `count` request rows in batches of
# five (one write each), says how many are journaled after each batch, then waits for input.
WRITER = """
import sys, time
import mlops_nb as mn
from mlops_nb.log import store
store.JOURNAL_ROTATE_BYTES = int(sys.argv[3])
log = mn.open_log(sys.argv[1])
log.merge_in_helper_process(0.2)
total = 0
for batch in range(int(sys.argv[2]) // 5):
    rows = [{"request_id": f"r{total + i}", "model_name": "m", "model_version": 1,
             "protocol": "mlflow", "status": 200, "n_rows": 1, "latency_ms": 1.0,
             "inputs": "x" * 200, "created_at": time.time()} for i in range(5)]
    log.record_rows("requests", rows)
    total += 5
    print(total, flush=True)
print("merger", log._store._merger.pid, flush=True)
sys.stdin.readline()
log.close()
print("closed", flush=True)
"""


def _writer(log_path, count: int, rotate_bytes: int = 8 * 1024 * 1024) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log_path), str(count), str(rotate_bytes)],
        env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _requests(log_path) -> int:
    return int(mn.open_log(log_path).sql("SELECT count(*) AS n FROM requests")["n"][0])


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _read_until_merger(writer: subprocess.Popen) -> int:
    for line in writer.stdout:  # type: ignore[union-attr]
        if line.startswith("merger"):
            return int(line.split()[1])
    raise AssertionError(writer.stderr.read())  # type: ignore[union-attr]


def test_helper_merges_a_live_writers_journal_and_deletes_what_it_moved_on_from(log_path):
    mn.open_log(log_path).close()
    writer = _writer(log_path, 400, rotate_bytes=20_000)  # about 80 rows per journal
    try:
        merger_pid = _read_until_merger(writer)
        # the writer never merges itself; the helper does, while the writer still runs
        assert _wait_for(lambda: _requests(log_path) == 400), _requests(log_path)
        folder = log_path.with_name("log.duckdb.journal")
        # rotated journals, once merged, are deleted: only the newest stays
        assert _wait_for(lambda: len(list(folder.glob("*.jsonl"))) == 1), list(folder.iterdir())
        assert next(folder.glob("*.jsonl")).name.rsplit(".", 2)[1] != "1"
        out, err = writer.communicate("\n", timeout=60)
    finally:
        writer.kill()
    assert writer.returncode == 0, err
    assert "closed" in out
    assert _requests(log_path) == 400  # and the close added nothing twice
    assert _wait_for(lambda: not os.path.exists(f"/proc/{merger_pid}"), 10)
    log = mn.open_log(log_path)
    assert log.sql("SELECT count(DISTINCT request_id) AS n FROM requests")["n"][0] == 400


def test_helper_makes_a_last_merge_when_its_writer_is_killed(log_path):
    mn.open_log(log_path).close()
    writer = _writer(log_path, 200)
    try:
        merger_pid = _read_until_merger(writer)  # every row is journaled: acknowledged
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    assert _wait_for(lambda: not os.path.exists(f"/proc/{merger_pid}"), 30)
    assert _requests(log_path) == 200
