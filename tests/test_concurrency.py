"""Several real processes on one log: nothing acknowledged is lost, nobody sees an error."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from conftest import run_cli, start_proc, subprocess_env

import mlops_nb as mn


def test_eight_writers_and_a_looping_reader_lose_nothing(log_path, tmp_path):
    mn.open_log(log_path).close()  # the log exists before anyone races to create it
    stop_file = tmp_path / "stop"
    reader = start_proc("reader.py", log_path, stop_file, 120)
    writers = [start_proc("writer.py", log_path, 500) for _ in range(8)]
    outputs = [w.communicate(timeout=120) for w in writers]
    stop_file.touch()
    reader_out, reader_err = reader.communicate(timeout=60)

    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert "Error" not in err and "Traceback" not in err, err
        assert out.splitlines()[-2] == "499"
    assert reader.returncode == 0, reader_err
    queries = int(reader_out.split()[1])
    assert queries > 0, "the reader never managed to query the log"

    log = mn.open_log(log_path)
    counts = log.sql(
        "SELECT r.status, count(m.value) AS points, count(DISTINCT m.step) AS steps "
        "FROM runs r JOIN metrics m USING (run_id) WHERE r.experiment = 'stress' "
        "GROUP BY r.run_id, r.status"
    )
    assert len(counts) == 8
    assert counts["points"].tolist() == [500] * 8
    assert counts["steps"].tolist() == [500] * 8
    assert set(counts["status"]) == {"finished"}
    assert log.sql("SELECT count(*) AS n FROM metrics")["n"][0] == 4000
    # every writer removed its journal after its last merge
    assert not list((log_path.parent / "log.duckdb.journal").glob("*.jsonl"))


def test_sigkilled_writer_loses_no_acknowledged_record_and_reads_crashed(log_path):
    mn.open_log(log_path).close()
    rng = random.Random(7)
    for trial in range(4):
        writer = start_proc("writer.py", log_path, 1_000_000)
        run_id = writer.stdout.readline().split()[1]
        # kill at a random moment: mid-append, mid-merge, or between the two
        deadline = time.monotonic() + rng.uniform(0.3, 2.5)
        acknowledged = -1
        while time.monotonic() < deadline:
            acknowledged = int(writer.stdout.readline())
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()

        # a fresh process, read-only, is the first to look at the log afterwards
        shown = run_cli("--log", log_path, "sql",
                        f"SELECT status, count(m.step) AS n, max(m.step) AS last FROM runs r "
                        f"LEFT JOIN metrics m USING (run_id) WHERE r.run_id = '{run_id}' "
                        "GROUP BY status", "--format", "csv")  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        status, count, last = shown.stdout.splitlines()[1].split(",")
        assert status == "crashed", f"trial {trial}: {shown.stdout}"
        assert int(count) >= acknowledged + 1, f"trial {trial}: lost acknowledged points"
        assert int(last) == int(count) - 1, f"trial {trial}: a gap in the steps"


def test_writer_that_dies_before_its_first_merge_is_recovered(log_path):
    mn.open_log(log_path).close()
    writer = start_proc("writer.py", log_path, 1_000_000)
    run_id = writer.stdout.readline().split()[1]
    first = int(writer.stdout.readline())
    os.kill(writer.pid, signal.SIGKILL)  # well inside the first second: nothing merged yet
    writer.wait()
    record = mn.open_log(log_path).run(run_id)
    assert record.info["status"] == "crashed"
    assert "died" in record.info["error"]
    assert len(record.metric_history) >= first + 1


def test_busy_reader_does_not_hold_writers_back(log_path, tmp_path):
    mn.open_log(log_path).close()
    stop_file = tmp_path / "stop"
    readers = [start_proc("reader.py", log_path, stop_file, 60) for _ in range(2)]
    time.sleep(0.5)
    writer = start_proc("writer.py", log_path, 60, "--flush-each")
    out, err = writer.communicate(timeout=60)
    stop_file.touch()
    for reader in readers:
        reader.communicate(timeout=30)
        assert reader.returncode == 0
    assert writer.returncode == 0, err
    worst_flush = float(out.splitlines()[-1].split()[1])
    # a merge waits for at most one query or the reader's linger time, never for the loop
    assert worst_flush < 2.0, f"a writer waited {worst_flush:.2f}s behind readers"


def test_process_exiting_without_ending_its_run_marks_it_finished(log_path):
    writer = start_proc("writer.py", log_path, 5, "--no-end")
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    run_id = out.splitlines()[0].split()[1]
    assert mn.open_log(log_path).run(run_id).info["status"] == "finished"


def test_uncaught_exception_in_a_script_marks_its_run_failed(log_path, tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(
        "import mlops_nb as mn\n"
        f"run = mn.open_log({str(log_path)!r}).start_run(name='doomed')\n"
        "raise RuntimeError('out of memory, say')\n"
    )
    proc = subprocess.run([sys.executable, str(script)], env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1
    assert "RuntimeError" in proc.stderr
    runs = mn.open_log(log_path).runs()
    assert runs["status"].tolist() == ["failed"]
    assert runs["error"][0] == "RuntimeError: out of memory, say"
