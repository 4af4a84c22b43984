"""``mlops-nb exporter``: how long a Prometheus scrape of a big log takes.

    python benchmarks/bench_exporter.py           # 10,000 runs, 100 models (the issue's target)
    python benchmarks/bench_exporter.py --quick   # 1,000 runs, 20 models

The log is built through the Python API (runs with metrics; versions, aliases, drift checks,
performance windows and served requests as records), then a real ``mlops-nb exporter``
process is scraped over HTTP as Prometheus would: each scrape after a pause longer than the
log reader's idle linger, so every scrape pays for opening the file (the exporter holds no
lock between scrapes). Target: a scrape under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import mlops_nb as mn  # noqa: E402

TARGET_MS = 100.0
PROMETHEUS_HEADERS = {  # what Prometheus 2.x sends with a scrape
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (not the target's)")
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    runs, models = (1_000, 20) if args.quick else (10_000, 100)
    workdir = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-exporter-"))
    print(f"mlops_nb {mn.__version__}; {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {datetime.now():%Y-%m-%d %H:%M}; {runs:,} runs, "
          f"{models} models")  # fmt: skip
    try:
        log_path = workdir / ".mlops" / "log.duckdb"
        started = time.perf_counter()
        counts = build_log(log_path, runs, models)
        print(f"built the log in {time.perf_counter() - started:.1f} s: {counts}")
        times, samples = scrape_times(log_path, args.scrapes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    median, worst = statistics.median(times), max(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    verdict = f"PASS (< {TARGET_MS:.0f} ms)" if median < TARGET_MS else (
        f"FAIL (>= {TARGET_MS:.0f} ms)")  # fmt: skip
    print()
    print(f"{'measure':58} {'value':>10}  target")
    print(f"{f'scrape of {runs:,} runs, {models} models ({samples:,} series), median ms':58} "
          f"{median:>10.1f}  {verdict}")  # fmt: skip
    print(f"{'  p90 / worst of ' + str(len(times)) + ' scrapes, ms':58} "
          f"{f'{p90:.1f} / {worst:.1f}':>10}")  # fmt: skip
    return 0 if median < TARGET_MS or args.quick else 1


def build_log(path: Path, runs: int, models: int) -> dict[str, int]:
    """Runs in 10 experiments (a tenth of them pipeline runs of 5 notebooks, some failed),
    2 versions per model with a champion, 10 drift checks of 20 columns, 20 performance
    windows x 2 kinds x 3 metrics, and 200 requests per model."""
    rng = np.random.default_rng(0)
    log = mn.open_log(path)
    for i in range(runs):
        pipeline = i % 10 == 0
        context = {"source": "papermill", "notebook_path": f"pipes/p{i // 10 % 5}.ipynb"} if (
            pipeline) else {}  # fmt: skip
        run = log.start_run(experiment=f"exp{i % 10}", params={"lr": 0.01 * (i % 7)}, **context)
        run.log_metrics({f"m{j}": float(rng.random()) for j in range(5)})
        run.end("failed" if i % 50 == 7 else "finished")
        if i % 5000 == 4999:
            log.flush()
    now = time.time()
    records = 0
    for m in range(models):
        name = f"model{m:03d}"
        for _ in range(2):
            scores = {metric: float(rng.random()) for metric in ("accuracy", "f1", "roc_auc")}
            log.add_model_version({"name": name, "metrics": scores})
        log.move_alias(name, "champion", 2)
        for check in range(10):
            when = now - 3600 * (10 - check)
            check_id = f"{name}-c{check}"
            for c in range(20):
                score = float(rng.random())
                log.record("drift", {"check_id": check_id, "model_name": name,
                                     "model_version": 2, "target": "inputs",
                                     "column_name": f"col{c}", "method": "wasserstein",
                                     "score": score, "threshold": 0.1, "drifted": score >= 0.1,
                                     "created_at": when})  # fmt: skip
            log.record("drift", {"check_id": check_id, "model_name": name, "model_version": 2,
                                 "target": "dataset", "column_name": None, "method": "share",
                                 "score": 0.4, "threshold": 0.5, "drifted": False,
                                 "created_at": when})  # fmt: skip
            records += 21
        for window in range(20):
            for kind in ("realized", "estimated"):
                for metric in ("accuracy", "f1", "roc_auc"):
                    log.record("performance", {
                        "check_id": f"{name}-w{window}", "model_name": name,
                        "model_version": 2, "kind": kind, "metric": metric,
                        "value": float(rng.random()), "baseline": 0.9,
                        "window_start": now - 3600 * (window + 1),
                        "window_end": now - 3600 * window, "n_rows": 100, "created_at": now,
                    })  # fmt: skip
                    records += 1
        for r in range(200):
            log.record("requests", {"request_id": f"{name}-r{r}", "model_name": name,
                                    "model_version": 1 + r % 2, "protocol": "mlflow",
                                    "status": 200 if r % 20 else 400, "n_rows": 1,
                                    "latency_ms": 1.0, "created_at": now - r})  # fmt: skip
            records += 1
    log.flush()
    log.close()
    return {"runs": runs, "versions": 2 * models, "records": records}


def scrape_times(log_path: Path, scrapes: int) -> tuple[list[float], int]:
    """Milliseconds per HTTP scrape of a real exporter process."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), "exporter",
         "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        body = _wait_for(url, proc)
        samples = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        times = []
        scrape = urllib.request.Request(url, headers=PROMETHEUS_HEADERS)
        for _ in range(scrapes):
            time.sleep(0.3)  # longer than the reader's linger: each scrape opens the file
            started = time.perf_counter()
            with urllib.request.urlopen(scrape, timeout=30) as response:
                response.read()
            times.append((time.perf_counter() - started) * 1000)
        return times, samples
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(url: str, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the exporter exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    sys.exit("the exporter did not answer within 60 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
