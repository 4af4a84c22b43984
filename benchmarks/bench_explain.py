"""Explanations of the example notebook's model: how long they take, and what /explain costs
the predictions served next to it.

    python benchmarks/bench_explain.py [--seconds 8]       # from the repository root

The model is the example's preprocessing and random forest (200 trees, depth 8) on churn-like
data with its 10 raw columns (benchmarks/bench_serve.py builds it), registered with 1,000
evaluation rows. Printed:

- permutation importance at registration (1,000 rows, 5 repeats, every raw column);
- one row through ``Explainer.explain`` (32 orderings: one predict call of 32 x 11 rows),
  median and p95 over 50 rows; target < 100 ms;
- a real ``mlops-nb serve``: /invocations latency (one row per request, one client) alone, and
  while a second client sends /explain requests back to back; the ratio of the medians says
  how much explanations slow predictions down (they run in their own thread).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_serve import churn_data, fit_pipeline  # noqa: E402

TARGET_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per latency measurement")
    args = parser.parse_args()
    import mlops_nb as mn
    from mlops_nb.registry.explain import explainer_for, permutation_importances
    from mlops_nb.registry.load import load_model
    from mlops_nb.registry.register import EvaluationData, describe_outputs, register_pipeline

    frame, target = churn_data(10_000)
    pipeline = fit_pipeline(frame, target)
    test, truth = churn_data(1_000, seed=1)
    started = time.perf_counter()
    permutation_importances(pipeline, test, truth, describe_outputs(pipeline))
    print(f"permutation importance, 1,000 rows x 10 columns x 5 repeats: "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip

    folder = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    log_path = folder / "log.duckdb"
    log = mn.open_log(log_path)
    register_pipeline(log, "churn", pipeline, training_frame=frame, alias="champion",
                      evaluation=EvaluationData(test, truth, "X_test", "y_test"))  # fmt: skip
    log.flush()
    explainer = explainer_for(log, load_model(log, "churn@champion"))
    times = []
    for i in range(50):
        row = test.iloc[[i]]
        started = time.perf_counter()
        explainer.explain(row)
        times.append((time.perf_counter() - started) * 1000)
    median, p95 = statistics.median(times), sorted(times)[int(0.95 * len(times)) - 1]
    verdict = "ok" if median < TARGET_MS else "SLOWER THAN TARGET"
    print(f"/explain of one row in process: median {median:.1f} ms, p95 {p95:.1f} ms "
          f"(target < {TARGET_MS:.0f} ms: {verdict})")  # fmt: skip
    log.close()
    _served(log_path, test, args.seconds)
    return 0


def _served(log_path: Path, test, seconds: float) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), "serve", "churn@champion",
         "--port", str(port), "--log-sample", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        rows = test.astype(object).values.tolist()
        columns = list(test.columns)
        first = time.perf_counter()  # the first /explain starts the worker process
        body = {"dataframe_split": {"columns": columns, "data": [rows[0]]}}
        httpx.post(url + "/explain", json=body, timeout=120).raise_for_status()
        print(f"first /explain (starts the explaining process): "
              f"{time.perf_counter() - first:.1f} s")  # fmt: skip
        alone = _latencies(url, rows, columns, seconds)
        stop = threading.Event()
        explained = []

        def explain_loop() -> None:
            with httpx.Client(timeout=30) as client:
                i = 0
                while not stop.is_set():
                    body = {"dataframe_split": {"columns": columns, "data": [rows[i % 1000]]}}
                    started = time.perf_counter()
                    client.post(url + "/explain", json=body).raise_for_status()
                    explained.append((time.perf_counter() - started) * 1000)
                    i += 1

        thread = threading.Thread(target=explain_loop, daemon=True)
        thread.start()
        together = _latencies(url, rows, columns, seconds)
        stop.set()
        thread.join(timeout=30)
        a, t = statistics.median(alone), statistics.median(together)
        print(f"served /invocations, one row: median {a:.2f} ms alone, {t:.2f} ms while "
              f"/explain runs back to back ({t / a:.2f}x); /explain over HTTP: median "
              f"{statistics.median(explained):.1f} ms ({len(explained)} answered)")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=20)


def _latencies(url: str, rows: list, columns: list, seconds: float) -> list[float]:
    found = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as client:
        i = 0
        while time.monotonic() < deadline:
            body = {"dataframe_split": {"columns": columns, "data": [rows[i % len(rows)]]}}
            started = time.perf_counter()
            client.post(url + "/invocations", json=body).raise_for_status()
            found.append((time.perf_counter() - started) * 1000)
            i += 1
    return found


if __name__ == "__main__":
    sys.exit(main())
