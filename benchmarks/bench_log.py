"""mlops_nb's experiment log against MLflow's default sqlite store, side by side, in one run.

    make bench                      # installs the `bench` extra (mlflow) and runs this
    python benchmarks/bench_log.py --quick   # smaller sizes, for a look in under a minute

Each figure is measured the same way for both tools on the same machine, and printed with the
ratio and the target from the issue. A write is counted when the tool has made it durable and
visible to other processes (mlops_nb: merged into the DuckDB file; MLflow: committed).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mlops_nb as mn  # noqa: E402

RESULTS: list[tuple[str, str, str, str, str]] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (not the targets')")
    parser.add_argument("--no-mlflow", action="store_true", help="measure mlops_nb alone")
    args = parser.parse_args()
    sizes = _sizes(args.quick)
    workdir = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-"))
    mlflow = None if args.no_mlflow else _import_mlflow()
    print(f"mlops_nb {mn.__version__} vs MLflow {mlflow.__version__ if mlflow else '-'}; "
          f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{datetime.now():%Y-%m-%d %H:%M}; sizes: {sizes}")  # fmt: skip
    try:
        bench_runs(workdir, mlflow, sizes["runs"])
        bench_log_metric(workdir, mlflow, sizes["points"], sizes["mlflow_calls"])
        bench_batch(workdir, mlflow, sizes["points"])
        bench_search(workdir, mlflow, sizes["search_runs"], sizes["big_search_runs"])
        bench_concurrent(workdir, mlflow, sizes["writers"], sizes["runs_per_writer"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"{'measure':58} {'mlops_nb':>14} {'MLflow':>14} {'ratio':>8}  target")
    failed = 0
    for name, ours, theirs, ratio, verdict in RESULTS:
        print(f"{name:58} {ours:>14} {theirs:>14} {ratio:>8}  {verdict}")
        failed += verdict.startswith("FAIL")
    return 1 if failed and not args.quick else 0


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"runs": 200, "points": 20_000, "mlflow_calls": 300, "search_runs": 1_000,
                "big_search_runs": 5_000, "writers": 8, "runs_per_writer": 10}  # fmt: skip
    return {"runs": 1_000, "points": 100_000, "mlflow_calls": 2_000, "search_runs": 10_000,
            "big_search_runs": 100_000, "writers": 8, "runs_per_writer": 50}  # fmt: skip


# ---------------------------------------------------------------------- the measures
def bench_runs(workdir: Path, mlflow, count: int) -> None:
    """Runs with 10 params and 10 metrics each, through log_params / log_metrics."""
    log = mn.open_log(workdir / "runs" / "log.duckdb")
    started = time.perf_counter()
    for i in range(count):
        with log.start_run(experiment="bench") as run:
            run.log_params(_params(i))
            run.log_metrics(_metrics(i))
    log.flush()
    ours = count / (time.perf_counter() - started)
    log.close()
    theirs = None
    if mlflow:
        _mlflow_store(mlflow, workdir / "runs-mlflow")
        started = time.perf_counter()
        for i in range(count):
            with mlflow.start_run():
                mlflow.log_params(_params(i))
                mlflow.log_metrics(_metrics(i))
        theirs = count / (time.perf_counter() - started)
    _record(f"{count:,} runs x (10 params + 10 metrics), runs/s", ours, theirs, 10)


def bench_log_metric(workdir: Path, mlflow, points: int, mlflow_calls: int) -> None:
    """Metric points one call at a time (MLflow timed on fewer calls: it takes ~3 ms each)."""
    log = mn.open_log(workdir / "metric" / "log.duckdb")
    run = log.start_run(experiment="bench")
    started = time.perf_counter()
    for step in range(points):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    log.flush()
    ours = points / (time.perf_counter() - started)
    run.end()
    log.close()
    theirs = None
    if mlflow:
        _mlflow_store(mlflow, workdir / "metric-mlflow")
        with mlflow.start_run():
            started = time.perf_counter()
            for step in range(mlflow_calls):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            theirs = mlflow_calls / (time.perf_counter() - started)
    _record(f"{points:,} points via log_metric calls, points/s", ours, theirs, 100)


def bench_batch(workdir: Path, mlflow, points: int) -> None:
    """Metric points in one batch (MLflow's log_batch takes at most 1,000 per call)."""
    frame = pd.DataFrame({"key": "loss", "value": np.random.default_rng(0).random(points),
                          "step": np.arange(points)})  # fmt: skip
    log = mn.open_log(workdir / "batch" / "log.duckdb")
    with log.start_run(experiment="warm-up") as warm_up:  # both tools get a warm-up call
        warm_up.log_batch(frame.head(10))
    log.flush()
    run = log.start_run(experiment="bench")
    started = time.perf_counter()
    run.log_batch(frame)
    log.flush()
    ours = points / (time.perf_counter() - started)
    run.end()
    log.close()
    theirs = None
    if mlflow:
        from mlflow.entities import Metric

        _mlflow_store(mlflow, workdir / "batch-mlflow")
        client = mlflow.tracking.MlflowClient()
        with mlflow.start_run() as active:
            now = int(time.time() * 1000)
            metrics = [Metric("loss", float(v), now, int(s))
                       for v, s in zip(frame["value"], frame["step"], strict=True)]  # fmt: skip
            client.log_batch(active.info.run_id, metrics=metrics[:10])
            started = time.perf_counter()
            for offset in range(0, points, 1000):
                client.log_batch(active.info.run_id, metrics=metrics[offset : offset + 1000])
            theirs = points / (time.perf_counter() - started)
    _record(f"{points:,} points in one batch, points/s", ours, theirs, 50)


def bench_search(workdir: Path, mlflow, count: int, big_count: int) -> None:
    """Param-and-metric filter, top 100 by a metric: median of 20 queries after a warm-up."""
    where = "params.model = 'forest' AND metrics.m2 < 0.5"
    order = "metrics.m1 DESC"
    ours = _time_ours(_filled_log(workdir / "search", count), where, order)
    theirs = None
    if mlflow:
        experiment = _filled_mlflow(mlflow, workdir / "search-mlflow", count)
        theirs = _median_seconds(lambda: mlflow.search_runs(
            experiment_ids=[experiment], filter_string=where.replace("AND", "and"),
            order_by=[order], max_results=100,
        ))  # fmt: skip
    _record(f"search over {count:,} runs, ms (lower is better)", ours * 1000,
            theirs * 1000 if theirs else None, 20, lower_is_better=True)  # fmt: skip
    big = _time_ours(_filled_log(workdir / "search-big", big_count), where, order)
    verdict = "PASS (< 50 ms)" if big < 0.050 else "FAIL (>= 50 ms)"
    RESULTS.append((f"search over {big_count:,} runs (mlops_nb alone), ms",
                    f"{big * 1000:.1f}", "-", "-", verdict))  # fmt: skip


def bench_concurrent(workdir: Path, mlflow, writers: int, runs_each: int) -> None:
    """Writer processes at once, each recording runs of 10 params + 10 metrics; count losses."""
    expected = writers * runs_each * 20
    log_path = workdir / "concurrent" / "log.duckdb"
    mn.open_log(log_path).close()
    seconds = _in_processes(_ours_writer, log_path, writers, runs_each)
    log = mn.open_log(log_path)
    stored = int(log.sql("SELECT (SELECT count(*) FROM params) + (SELECT count(*) FROM metrics)"
                         " AS n")["n"][0])  # fmt: skip
    ours_rate, ours_lost = expected / seconds, expected - stored
    theirs_rate = theirs_lost = None
    if mlflow:
        folder = workdir / "concurrent-mlflow"
        _mlflow_store(mlflow, folder)  # initialised from one process first
        seconds = _in_processes(_mlflow_writer, folder, writers, runs_each)
        stored = _mlflow_count(folder)
        theirs_rate, theirs_lost = expected / seconds, expected - stored
    _record(f"{writers} writer processes, records/s", ours_rate, theirs_rate, None)
    RESULTS.append((f"{writers} writer processes, records lost of {expected:,}", str(ours_lost),
                    "-" if theirs_lost is None else str(theirs_lost), "-",
                    "PASS (0 lost)" if ours_lost == 0 else "FAIL"))  # fmt: skip


# ---------------------------------------------------------------------- data and helpers
def _params(i: int) -> dict:
    return {"model": ("forest", "linear", "boosting")[i % 3], "lr": 0.001 * (i % 97),
            **{f"p{j}": (i * 7 + j) % 101 for j in range(8)}}  # fmt: skip


def _metrics(i: int) -> dict:
    rng = np.random.default_rng(i)
    return {f"m{j}": float(rng.random()) for j in range(10)}


def _filled_log(folder: Path, count: int) -> mn.Log:
    log = mn.open_log(folder / "log.duckdb")
    for i in range(count):
        with log.start_run(experiment="bench") as run:
            run.log_params(_params(i))
            run.log_metrics(_metrics(i))
        if i % 5000 == 4999:
            log.flush()
    log.flush()
    return log


def _time_ours(log: mn.Log, where: str, order: str) -> float:
    result = log.runs(where=where, order_by=order, limit=100)
    assert len(result) == 100, len(result)
    return _median_seconds(lambda: log.runs(where=where, order_by=order, limit=100))


def _filled_mlflow(mlflow, folder: Path, count: int) -> str:
    from mlflow.entities import Metric, Param, RunTag

    _mlflow_store(mlflow, folder)
    client = mlflow.tracking.MlflowClient()
    experiment = client.create_experiment("search")
    for i in range(count):
        run = client.create_run(experiment, tags={"mlflow.runName": f"r{i}"})
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in _metrics(i).items()],
            params=[Param(k, str(v)) for k, v in _params(i).items()],
            tags=[RunTag("bench", "yes")],
        )
        client.set_terminated(run.info.run_id)
    return experiment


def _median_seconds(call, repeats: int = 20) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _in_processes(target, path: Path, writers: int, runs_each: int) -> float:
    context = multiprocessing.get_context("spawn")
    start_gate = context.Event()
    processes = [context.Process(target=target, args=(str(path), runs_each, w, start_gate))
                 for w in range(writers)]  # fmt: skip
    for process in processes:
        process.start()
    time.sleep(3)  # let every process import its library before the clock starts
    started = time.perf_counter()
    start_gate.set()
    for process in processes:
        process.join()
    return time.perf_counter() - started


def _ours_writer(path: str, runs_each: int, writer: int, start_gate) -> None:
    log = mn.open_log(path)
    start_gate.wait()
    for i in range(runs_each):
        with log.start_run(experiment=f"writer-{writer}") as run:
            run.log_params(_params(i))
            run.log_metrics(_metrics(i))
    log.close()


def _mlflow_writer(folder: str, runs_each: int, writer: int, start_gate) -> None:
    mlflow = _import_mlflow()
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    start_gate.wait()
    for i in range(runs_each):
        try:
            with mlflow.start_run():
                mlflow.log_params(_params(i))
                mlflow.log_metrics(_metrics(i))
        except Exception as error:  # noqa: BLE001 - a lost run is what we count
            print(f"MLflow writer {writer}: {type(error).__name__}: {str(error)[:100]}",
                  file=sys.stderr)  # fmt: skip


def _mlflow_count(folder: Path) -> int:
    import sqlite3

    with sqlite3.connect(folder / "mlflow.db") as con:
        params = con.execute("SELECT count(*) FROM params").fetchone()[0]
        metrics = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    return params + metrics


def _import_mlflow():
    try:
        import mlflow
    except ImportError:
        sys.exit("MLflow is not installed: pip install -e '.[bench]' (or use --no-mlflow)")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    return mlflow


def _mlflow_store(mlflow, folder: Path) -> None:
    """A fresh sqlite store, created from this one process before anyone else touches it."""
    folder.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment("bench")


def _record(name: str, ours: float, theirs: float | None, target: float | None,
            lower_is_better: bool = False) -> None:  # fmt: skip
    if theirs is None:
        RESULTS.append((name, f"{ours:,.1f}", "-", "-", "(MLflow not measured)"))
        return
    ratio = theirs / ours if lower_is_better else ours / theirs
    verdict = "-" if target is None else (
        f"PASS (>= {target}x)" if ratio >= target else f"FAIL (< {target}x)")  # fmt: skip
    RESULTS.append((name, f"{ours:,.1f}", f"{theirs:,.1f}", f"{ratio:,.1f}x", verdict))


if __name__ == "__main__":
    sys.exit(main())
