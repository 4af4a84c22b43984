"""The team log against MLflow's tracking server, side by side, on the same PostgreSQL.

    .venv/bin/pip install -e '.[test,bench]'     # MLflow, psycopg, boto3
    python benchmarks/bench_team.py [--writers 8] [--runs-each 50] [--search-runs 100000]

Starts a throwaway PostgreSQL 15 cluster and an S3 server (``rclone serve s3``) on loopback,
exactly as the tests do, and stops both by PID at the end. mlops_nb writes a team log
(DuckLake: catalog in database ``lake``, files in ``s3://lake/team/``) from the team venv
(DuckDB 1.5.5 with the offline extensions); MLflow runs ``mlflow server
--backend-store-uri postgresql://.../mlflow --artifacts-destination s3://lake/mlflow/``.

1. ``--writers`` processes at once, each recording ``--runs-each`` runs of 10 params + 10
   metrics: runs/s until every run is durable and visible (for mlops_nb: merged into the
   lake, when each process has closed its log; for MLflow: answered by its server), and how
   many were lost (target: at least 5x MLflow's runs/s, 0 lost).
2. A param + metric filter, top 100 by a metric, over ``--search-runs`` runs (target: under
   0.5 s and at least 20x faster than MLflow's ``search_runs``). Our runs are recorded through
   the API (8 processes); MLflow's are inserted into its tables with SQL (through its API they
   would take hours).
3. The sidebar's first page over that team log: a real ``jupyter lab`` from the team venv and
   Debian's Chromium, as benchmarks/bench_sidebar.py does (target: under 1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from team_servers import running_postgres, running_s3, team_python  # noqa: E402

WHERE = "params.model = 'forest' AND metrics.m2 < 0.5"
ORDER = "metrics.m1 DESC"
RESULTS: list[tuple[str, str, str, str, str]] = []

OUR_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import mlops_nb as mn

    runs, writer = int(sys.argv[1]), int(sys.argv[2])
    log = mn.open_log()
    log._store.become_writer()  # connect and attach before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()  # the gate
    for i in range(runs):
        rng = np.random.default_rng(writer * 1_000_003 + i)
        with log.start_run(experiment=f"writer-{writer}") as run:
            run.log_params({"model": ("forest", "linear", "boosting")[i % 3],
                            "lr": 0.001 * (i % 97), **{f"p{j}": (i * 7 + j) % 101
                                                       for j in range(8)}})
            run.log_metrics({f"m{j}": float(rng.random()) for j in range(10)})
    log.close()
    """
)

MLFLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    runs, writer = int(sys.argv[1]), int(sys.argv[2])
    uri = sys.argv[3]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bench").experiment_id
    lost = 0
    print("ready", flush=True)
    sys.stdin.readline()  # the gate
    for i in range(runs):
        rng = np.random.default_rng(writer * 1_000_003 + i)
        try:
            run = client.create_run(experiment)
            now = int(time.time() * 1000)
            params = {"model": ("forest", "linear", "boosting")[i % 3], "lr": 0.001 * (i % 97),
                      **{f"p{j}": (i * 7 + j) % 101 for j in range(8)}}
            metrics = [Metric(f"m{j}", float(rng.random()), now, 0) for j in range(10)]
            client.log_batch(run.info.run_id, metrics=metrics,
                             params=[Param(k, str(v)) for k, v in params.items()])
            client.set_terminated(run.info.run_id)
        except Exception as error:
            lost += 1
            print(f"writer {writer}: {type(error).__name__}: {str(error)[:120]}", file=sys.stderr)
    print(lost)
    """
)

OUR_SEARCH = textwrap.dedent(
    """
    import json, statistics, sys, time
    import mlops_nb as mn

    where, order = sys.argv[1], sys.argv[2]
    log = mn.open_log()
    first = log.runs(where=where, order_by=order, limit=100)
    assert len(first) == 100, len(first)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        log.runs(where=where, order_by=order, limit=100)
        times.append(time.perf_counter() - started)
    total = int(log.sql("SELECT count(*) AS n FROM runs")["n"][0])
    print(json.dumps({"median": statistics.median(times), "runs": total}))
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs-each", type=int, default=50)
    parser.add_argument(
        "--search-runs",
        type=int,
        default=100_000,
        help="runs for the search and sidebar parts (0 skips both)",
    )
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--no-sidebar", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-team-"))
    work.chmod(0o755)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    try:
        with running_postgres() as postgres, running_s3() as s3:
            for name in ("lake", "search", "mlflow"):
                postgres.create_database(name)
            ours = _our_env(postgres, s3, "lake", work / "spool-writers")
            _team(ours, "init", "--data", s3.url("team"))
            mlflow = None if args.no_mlflow else _start_mlflow(postgres, s3, work)
            try:
                bench_writers(ours, mlflow, args.writers, args.runs_each, postgres)
                if args.search_runs > 0:  # 0: the writers part only
                    search_env = _our_env(postgres, s3, "search", work / "spool-search")
                    _team(search_env, "init", "--data", s3.url("search"))
                    bench_search(search_env, mlflow, args.search_runs, args.writers, postgres)
                if args.search_runs > 0 and not args.no_sidebar:
                    bench_sidebar(search_env, work, args.search_runs)
            finally:
                if mlflow is not None:
                    _stop(mlflow["process"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'measure':58} {'mlops_nb':>12} {'MLflow':>12} {'ratio':>8}  target")
    for name, a, b, ratio, verdict in RESULTS:
        print(f"{name:58} {a:>12} {b:>12} {ratio:>8}  {verdict}")
    print(f"(load average at end {os.getloadavg()[0]:.1f})")
    return 1 if any(row[4].startswith("FAIL") for row in RESULTS) else 0


# ---------------------------------------------------------------------- 1. writers
def bench_writers(ours: dict, mlflow: dict | None, writers: int, runs_each: int, postgres) -> None:
    expected = writers * runs_each
    seconds = _at_once(team_python(), OUR_WRITER, ours, writers, runs_each)
    counted = _our_count(ours)
    ours_rate, ours_lost = expected / seconds, expected - counted
    theirs_rate = theirs_lost = None
    if mlflow is not None:
        env = {**os.environ, **mlflow["client_env"]}
        seconds = _at_once(Path(sys.executable), MLFLOW_WRITER, env, writers, runs_each,
                           mlflow["uri"])  # fmt: skip
        stored = postgres.psql("SELECT count(*) FROM runs WHERE status = 'FINISHED'",
                               dbname="mlflow")  # fmt: skip
        theirs_rate, theirs_lost = expected / seconds, expected - int(stored)
    _record(f"{writers} writer processes, runs/s (10 params + 10 metrics)", ours_rate,
            theirs_rate, 5.0)  # fmt: skip
    _report((f"{writers} writer processes, runs lost of {expected:,}", str(ours_lost),
                    "-" if theirs_lost is None else str(theirs_lost), "-",
                    "PASS (0 lost)" if ours_lost == 0 else "FAIL"))  # fmt: skip


def _at_once(python: Path, code: str, env: dict, writers: int, runs_each: int, *extra) -> float:
    """Start the writers, wait until each has imported and connected (its "ready" line), open
    the gate (a line on every stdin) and time them until the last one exits."""
    processes = [
        subprocess.Popen([str(python), "-c", code, str(runs_each), str(w), *extra], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for w in range(writers)
    ]  # fmt: skip
    for process in processes:
        if process.stdout.readline().strip() != "ready":
            _, errors = process.communicate(timeout=600)
            raise SystemExit(f"a writer failed to start: {errors[-2000:]}")
    started = time.time()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        _, errors = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise SystemExit(f"a writer failed: {errors[-2000:]}")
    return time.time() - started


def _our_count(env: dict) -> int:
    done = _team_cli(env, "sql", "SELECT count(*) AS n FROM runs WHERE status = 'finished'",
                     "--format", "json")  # fmt: skip
    return int(json.loads(done)[0]["n"])


# ---------------------------------------------------------------------- 2. search
def bench_search(env: dict, mlflow: dict | None, count: int, writers: int, postgres) -> None:
    started = time.perf_counter()
    each = -(-count // writers)
    _at_once(team_python(), OUR_WRITER, env, writers, each)
    print(f"recorded {each * writers:,} runs in the team log in "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    before = json.loads(_script(env, OUR_SEARCH, WHERE, ORDER))
    _team(env, "maintain", "--keep", "0s")
    after = json.loads(_script(env, OUR_SEARCH, WHERE, ORDER))
    theirs = None
    if mlflow is not None:
        _fill_mlflow(postgres, each * writers)
        theirs = _mlflow_search(mlflow)
    label = f"filter + top 100 over {after['runs']:,} runs, ms (after team maintain)"
    _record(label, after["median"] * 1000, theirs * 1000 if theirs else None, 20.0,
            lower_is_better=True, limit_ms=500)  # fmt: skip
    _report(("the same before team maintain, ms", f"{before['median'] * 1000:.1f}",
                    "-", "-", ""))  # fmt: skip


def _fill_mlflow(postgres, count: int) -> None:
    """MLflow's own tables filled with SQL: the same params and metrics as ours."""
    experiment = postgres.psql("SELECT experiment_id FROM experiments WHERE name = 'bench'",
                               dbname="mlflow")  # fmt: skip
    sql = f"""
    INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,
                      status, start_time, end_time, source_version, lifecycle_stage,
                      artifact_uri, experiment_id)
      SELECT 's' || i, 's' || i, 'LOCAL', '', '', 'bench', 'FINISHED', 0, 1, '', 'active',
             '', {experiment} FROM generate_series(1, {count}) AS i;
    INSERT INTO params (key, value, run_uuid)
      SELECT 'model', (ARRAY['forest', 'linear', 'boosting'])[1 + i % 3], 's' || i
      FROM generate_series(1, {count}) AS i;
    INSERT INTO params (key, value, run_uuid)
      SELECT 'p' || j, ((i * 7 + j) % 101)::text, 's' || i
      FROM generate_series(1, {count}) AS i, generate_series(0, 8) AS j;
    INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
      SELECT 'm' || j, random(), 0, 's' || i, 0, false
      FROM generate_series(1, {count}) AS i, generate_series(0, 9) AS j;
    INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)
      SELECT key, value, timestamp, step, is_nan, run_uuid FROM metrics
      WHERE run_uuid LIKE 's%';
    ANALYZE;
    """
    postgres.psql(sql, dbname="mlflow")


def _mlflow_search(mlflow: dict) -> float:
    code = textwrap.dedent(
        """
        import json, statistics, sys, time
        from mlflow.tracking import MlflowClient
        client = MlflowClient(sys.argv[1])
        experiment = client.get_experiment_by_name("bench").experiment_id
        where = "params.model = 'forest' and metrics.m2 < 0.5"
        def search():
            return client.search_runs([experiment], filter_string=where,
                                      order_by=["metrics.m1 DESC"], max_results=100)
        assert len(search()) == 100
        times = []
        for _ in range(5):
            started = time.perf_counter()
            search()
            times.append(time.perf_counter() - started)
        print(statistics.median(times))
        """
    )
    env = {**os.environ, **mlflow["client_env"]}
    done = subprocess.run([sys.executable, "-c", code, mlflow["uri"]], capture_output=True,
                          text=True, timeout=3600, env=env)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"MLflow search failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- 3. the sidebar
def bench_sidebar(env: dict, work: Path, count: int, loads: int = 3) -> None:
    from labserver import launch_chromium, open_runs, open_sidebar, running_lab, runs_area
    from playwright.sync_api import sync_playwright

    root = work / "lab-root"
    root.mkdir()
    team = {key: env[key] for key in env if key.startswith(("MLOPS_NB", "AWS_"))}
    # the team venv's jupyter finds our extension (installed in the main venv) through these
    base = Path(sys.prefix)
    team["JUPYTER_PATH"] = str(base / "share" / "jupyter")
    team["JUPYTER_CONFIG_PATH"] = str(base / "etc" / "jupyter")
    times = []
    with running_lab(root, root / ".mlops" / "unused.duckdb", python=str(team_python()),
                     extra_env=team) as lab, sync_playwright() as playwright:  # fmt: skip
        browser = launch_chromium(playwright)
        for load in range(loads):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(lab.page_url(f"lab/workspaces/bench-{load}"))
            open_sidebar(page)
            open_runs(page)
            times.append(float(page.get_attribute(runs_area(), "data-first-page-ms")))
            page.close()
        browser.close()
    median = statistics.median(times)
    print(f"sidebar first page, each load (a new page each time), ms: "
          f"{', '.join(f'{t:.0f}' for t in times)}")  # fmt: skip
    _report((f"sidebar: runs tab → first page, {count:,} runs in the team log, ms",
                    f"{median:.0f}", "-", "-",
                    "PASS (< 1,000 ms)" if median < 1000 else "FAIL (>= 1,000 ms)"))  # fmt: skip


# ---------------------------------------------------------------------- servers and helpers
def _our_env(postgres, s3, dbname: str, spool: Path) -> dict:
    return {
        **os.environ,
        "MLOPS_NB_LOG": f"ducklake:postgres:{postgres.dsn(dbname)}",
        "MLOPS_NB_SPOOL": str(spool),
        "AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_REGION": "us-east-1", "MLOPS_NB_S3_ENDPOINT": f"http://{s3.endpoint}",
        "MLOPS_NB_S3_URL_STYLE": "path",
    }  # fmt: skip


def _start_mlflow(postgres, s3, work: Path) -> dict:
    port = _free_port()
    client_env = {
        "AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": f"http://{s3.endpoint}",
    }  # fmt: skip
    backend = f"postgresql://{postgres.user}@{postgres.host}:{postgres.port}/mlflow"
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
        "--port", str(port), "--backend-store-uri", backend,
        "--artifacts-destination", "s3://lake/mlflow/", "--workers", "4",
    ]  # fmt: skip
    with open(work / "mlflow-server.log", "w") as log:
        process = subprocess.Popen(command, env={**os.environ, **client_env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((work / "mlflow-server.log").read_text()[-2000:]) from None
            time.sleep(0.5)
    _wait_until_idle(process.pid)  # its other workers answer /health only once imported
    created = subprocess.run(
        [sys.executable, "-c", "import sys; from mlflow.tracking import MlflowClient; "
         "MlflowClient(sys.argv[1]).create_experiment('bench')", uri],
        env={**os.environ, **client_env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if created.returncode != 0:
        raise SystemExit(created.stderr[-2000:])
    return {"process": process, "uri": uri, "client_env": client_env}


def _wait_until_idle(pid: int, timeout_s: float = 120) -> None:
    """Until a process and its children use under 5% of a core over a second: a server whose
    workers are still starting would slow whatever is measured next."""
    import psutil

    def cpu_seconds() -> float:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    deadline = time.monotonic() + timeout_s
    before = cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds()
        if now - before < 0.05:
            return
        before = now


def _team(env: dict, *args: str) -> str:
    return _team_cli(env, "team", *args)


def _team_cli(env: dict, *args: str) -> str:
    done = subprocess.run([str(team_python()), "-m", "mlops_nb.cli", *args], env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"mlops-nb {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


def _script(env: dict, code: str, *args: str) -> str:
    done = subprocess.run([str(team_python()), "-c", code, *args], env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"script failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _stop(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _report(row: tuple[str, str, str, str, str]) -> None:
    """Keep a result for the table at the end, and print it now (a later part may fail)."""
    RESULTS.append(row)
    print("  ".join(row), flush=True)


def _record(name, ours, theirs, target, *, lower_is_better=False, limit_ms=None) -> None:
    ratio = None if theirs is None else (theirs / ours if lower_is_better else ours / theirs)
    verdicts = []
    if ratio is not None and target is not None:
        verdicts.append(ratio >= target)
    if limit_ms is not None:
        verdicts.append(ours < limit_ms)
    text = "" if not verdicts else ("PASS" if all(verdicts) else "FAIL")
    goal = []
    if target is not None and ratio is not None:
        goal.append(f">= {target:g}x")
    if limit_ms is not None:
        goal.append(f"< {limit_ms} ms")
    _report((name, f"{ours:,.1f}", "-" if theirs is None else f"{theirs:,.1f}",
                    "-" if ratio is None else f"{ratio:.1f}x",
                    f"{text} ({', '.join(goal)})" if text else ""))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
