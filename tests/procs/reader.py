"""A reader process: queries the log in a loop until STOP_FILE exists (or a time limit).

usage: reader.py LOG_PATH STOP_FILE MAX_SECONDS
Prints "queries <n> errors <m>" and exits 1 if any query raised.
"""

import os
import sys
import time

import mlops_nb as mn
from mlops_nb.errors import LogNotFoundError

log_path, stop_file, max_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + max_seconds
queries = errors = 0
log = None
while not os.path.exists(stop_file) and time.monotonic() < deadline:
    try:
        if log is None:
            log = mn.open_log(log_path, create=False)
        log.sql("SELECT count(*) FROM metrics")
        log.runs(where="status = 'running' OR status = 'finished'", limit=10)
        queries += 1
    except LogNotFoundError:
        time.sleep(0.01)
    except Exception as error:  # noqa: BLE001 - counted and reported
        errors += 1
        print("error:", type(error).__name__, error, file=sys.stderr, flush=True)
print("queries", queries, "errors", errors, flush=True)
sys.exit(1 if errors else 0)
