"""A writer process: one run with N metric points, acknowledging each on stdout.

usage: writer.py LOG_PATH N [--no-end] [--flush-each]
Prints "run <id>" first, then "<i>" after each log_metric call returns.
"""

import sys
import time

import mlops_nb as mn

log_path, count = sys.argv[1], int(sys.argv[2])
flags = set(sys.argv[3:])
log = mn.open_log(log_path)
run = log.start_run(experiment="stress", params={"writer": sys.argv[2]})
print("run", run.run_id, flush=True)
worst_flush = 0.0
for i in range(count):
    run.log_metric("x", float(i), step=i)
    if "--flush-each" in flags:
        started = time.perf_counter()
        log.flush()
        worst_flush = max(worst_flush, time.perf_counter() - started)
    print(i, flush=True)
if "--no-end" not in flags:
    run.end()
    log.close()
print("worst_flush", worst_flush, flush=True)
