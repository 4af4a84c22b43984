"""``mlops-nb serve`` against ``mlflow models serve``, side by side, in one run.

    .venv/bin/pip install 'mlflow>=3'          # the `bench` extra
    PATH=.venv/bin:$PATH python benchmarks/bench_serve.py [--workers 1] [--seconds 8]

Same model for both: the example notebook's preprocessing (one-hot + scaling in a
ColumnTransformer) and its random forest (200 trees, depth 8), fitted here on churn-like data;
registered in an mlops_nb log, and saved with ``mlflow.sklearn.save_model`` (with a signature).
Same worker count, loopback only, one server at a time. The load client is a small asyncio
HTTP/1.1 client with keep-alive connections (on uvloop when installed), running on the same
machine: it sends MLflow ``dataframe_split`` bodies to ``/invocations`` on both servers.

Also measured, to justify the stack: a bare ``/ping`` on uvicorn through FastAPI (what MLflow
uses), Starlette, and a plain ASGI callable (what mlops_nb uses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CATEGORIES = {
    "contract": ["month-to-month", "one-year", "two-year"],
    "payment_method": ["electronic-check", "mailed-check", "bank-transfer", "credit-card"],
    "internet_service": ["dsl", "fiber", "none"],
    "region": ["north", "south", "east", "west", "central"],
}
RESULTS: list[tuple[str, str, str, str, str]] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0, help="per load measurement")
    parser.add_argument("--rounds", type=int, default=10, help="turns between the servers")
    parser.add_argument("--no-frameworks", action="store_true", help="skip the /ping comparison")
    args = parser.parse_args()
    if shutil.which("uvicorn") is None:
        sys.exit("put the venv's bin/ on PATH: mlflow models serve launches `uvicorn` by name")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        frame, target = churn_data(5000)
        pipeline = fit_pipeline(frame, target)
        bodies = [_split(frame.iloc[[i]]) for i in range(200)]
        big = _split(frame.sample(10_000, replace=True, random_state=1))
        log_path = work / ".mlops" / "log.duckdb"
        _register(log_path, pipeline, frame)
        mlflow_dir = _save_mlflow(work / "mlflow-model", pipeline, frame)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")

        ours_cmd = [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), "serve",
                    "churn@champion", "--workers", str(args.workers)]  # fmt: skip
        servers = {
            "mlflow": start(["mlflow", "models", "serve", "-m", str(mlflow_dir), "--env-manager",
                             "local", "-w", str(args.workers), "-h", "127.0.0.1"], "-p"),
            "ours": start(ours_cmd, "--port"),
            "quiet": start([*ours_cmd, "--log-sample", "0"], "--port"),
        }  # fmt: skip
        try:
            figures = measure(servers, bodies, big, args.seconds, args.rounds)
        finally:
            for proc, _ in servers.values():
                stop(proc)
        theirs, ours, quiet = figures["mlflow"], figures["ours"], figures["quiet"]
        _row("one-row requests, concurrency 1: p50 ms", ours["c1_p50"], theirs["c1_p50"],
             lower_is_better=True, target=1.0)  # fmt: skip
        _row("one-row requests, concurrency 1: requests/s", ours["c1_rps"], theirs["c1_rps"])
        _row("one-row requests, concurrency 32: requests/s", ours["c32_rps"], theirs["c32_rps"],
             target=5.0)  # fmt: skip
        _row("one-row requests, concurrency 32: p99 ms", ours["c32_p99"], theirs["c32_p99"],
             lower_is_better=True)  # fmt: skip
        _row("one 10,000-row request: rows/s", ours["big_rows_s"], theirs["big_rows_s"],
             target=1.5)  # fmt: skip
        _row("server RSS after the load, MB", ours["rss_mb"], theirs["rss_mb"],
             lower_is_better=True)  # fmt: skip
        _row("mlops_nb, concurrency 32 req/s: logging on vs off", ours["c32_rps"],
             quiet["c32_rps"], target=0.9, names=("on", "off"))  # fmt: skip
        _row("mlops_nb, concurrency 1 p50 ms: logging on vs off", ours["c1_p50"],
             quiet["c1_p50"], lower_is_better=True, names=("on", "off"))  # fmt: skip
        if not args.no_frameworks:
            frameworks(work, args.seconds / 2)
        print()
        print(f"{'measure':52} {'mlops_nb':>12} {'MLflow':>12} {'ratio':>8}  target")
        for name, a, b, ratio, verdict in RESULTS:
            print(f"{name:52} {a:>12} {b:>12} {ratio:>8}  {verdict}")
        print(f"(workers: {args.workers}; batch sizes seen by mlops_nb at concurrency 32: "
              f"mean {ours['mean_batch']:.1f} requests; load average at end "
              f"{os.getloadavg()[0]:.1f})")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------- the model
def churn_data(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Columns and dtypes of the example notebook's features (after its clean stage)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 81, n).astype(float),
        "tenure_months": rng.integers(0, 73, n),
        "monthly_charges": rng.normal(65, 20, n).round(2).clip(15),
        "total_charges": rng.normal(2000, 900, n).round(2).clip(0),
        "contract": rng.choice(CATEGORIES["contract"], n, p=[0.55, 0.25, 0.2]),
        "payment_method": rng.choice(CATEGORIES["payment_method"], n),
        "internet_service": rng.choice(CATEGORIES["internet_service"], n),
        "support_calls": rng.poisson(1.5, n),
        "region": rng.choice(CATEGORIES["region"], n),
        "signup_year": rng.integers(2019, 2026, n),
    })  # fmt: skip
    logit = -1 + 1.8 * (frame["contract"] == "month-to-month") - 0.03 * frame["tenure_months"]
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def fit_pipeline(frame: pd.DataFrame, target: pd.Series):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [c for c in frame.columns if c not in CATEGORIES]
    preprocess = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         list(CATEGORIES)),
        ("numbers", StandardScaler(), numbers),
    ])  # fmt: skip
    forest = RandomForestClassifier(n_estimators=200, max_depth=8, random_state=0, n_jobs=1)
    return Pipeline([("preprocess", preprocess), ("model", forest)]).fit(frame, target)


def _register(log_path: Path, pipeline, frame: pd.DataFrame) -> None:
    import mlops_nb as mn
    from mlops_nb.registry.register import register_pipeline

    log = mn.open_log(log_path)
    register_pipeline(log, "churn", pipeline, training_frame=frame, alias="champion")
    log.close()


def _save_mlflow(folder: Path, pipeline, frame: pd.DataFrame) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(frame, pipeline.predict(frame))
    mlflow.sklearn.save_model(
        pipeline, str(folder), signature=signature, skops_trusted_types=["sklearn.tree._tree.Tree"]
    )
    return folder


def _split(frame: pd.DataFrame) -> bytes:
    data = frame.astype(object).values.tolist()
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": data}}).encode()


# ---------------------------------------------------------------------- measuring a server
def start(command: list[str], port_flag: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*command, port_flag, str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    _wait_ready(proc, port)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(servers: dict, bodies, big, seconds: float, rounds: int) -> dict:
    """Rounds that take turns between the servers (all started, one loaded at a time, the
    order reversed every other round), so a change in the machine's other load hits each of
    them alike; the 10,000-row requests take turns the same way."""
    runs: dict[str, dict[str, list]] = {n: {"c1": [], "c32": []} for n in servers}
    batches = {n: [0.0, 0] for n in servers}
    for _, port in servers.values():
        asyncio.run(_load(port, bodies, 32, 1.0))  # warm up
    for turn in range(rounds):
        for name in list(servers)[:: 1 if turn % 2 == 0 else -1]:
            port = servers[name][1]
            runs[name]["c1"].append(asyncio.run(_load(port, bodies, 1, seconds / rounds)))
            before = _batch_counts(port)[0]
            c32 = asyncio.run(_load(port, bodies, 32, seconds / rounds))
            runs[name]["c32"].append(c32)
            batches[name][0] += _batch_counts(port)[0] - before
            batches[name][1] += c32["count"]
    big_times: dict[str, list[float]] = {n: [] for n in servers if n != "quiet"}
    for turn in range(9 if big is not None else 0):
        for name in list(big_times)[:: 1 if turn % 2 == 0 else -1]:
            big_times[name].append(asyncio.run(_one(servers[name][1], big)))
    out = {}
    for name, (proc, _port) in servers.items():
        c1 = _pooled(runs[name]["c1"])
        c32 = _pooled(runs[name]["c32"])
        figures = {"c1_p50": c1["p50"], "c1_rps": c1["rps"], "c32_rps": c32["rps"],
                   "c32_p99": c32["p99"], "rss_mb": _rss(proc.pid) / 1e6}  # fmt: skip
        calls, answered = batches[name]
        figures["mean_batch"] = answered / calls if calls else float("nan")
        if big_times.get(name):
            figures["big_rows_s"] = 10_000 / statistics.median(big_times[name])
        errors = c1["errors"] + c32["errors"]
        print(f"{name}: c1 p50 {c1['p50']:.2f} ms, c32 {c32['rps']:.0f} req/s "
              f"(p99 {c32['p99']:.1f} ms), non-200 answers: {errors}")  # fmt: skip
        out[name] = figures
    return out


def _pooled(parts: list[dict]) -> dict:
    latencies = sorted(x for part in parts for x in part["latencies"])
    elapsed = sum(part["elapsed"] for part in parts)
    return {
        "rps": len(latencies) / elapsed, "errors": sum(part["errors"] for part in parts),
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }  # fmt: skip


async def _load(port: int, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(number: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = number
        while time.perf_counter() < stop:
            body = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            status, _ = await _exchange(reader, writer, port, body)
            latencies.append(time.perf_counter() - started)
            errors += status != 200
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "count": len(ordered), "rps": len(ordered) / elapsed, "errors": errors,
        "latencies": ordered, "elapsed": elapsed,
        "p50": ordered[len(ordered) // 2] * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }  # fmt: skip


async def _one(port: int, body: bytes) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    status, answer = await _exchange(reader, writer, port, body)
    took = time.perf_counter() - started
    writer.close()
    assert status == 200 and len(json.loads(answer)["predictions"]) == 10_000, answer[:200]
    return took


async def _exchange(reader, writer, port: int, body: bytes, path: str = "/invocations"):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    writer.write(head + body)
    return await _response(reader)


async def _response(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return status, await reader.readexactly(length)


def _batch_counts(port: int) -> tuple[float, float]:
    """(predict calls, rows) from mlops_nb's /metrics; zeros for MLflow (no /metrics)."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except Exception:  # noqa: BLE001 - MLflow has no /metrics
        return 0.0, 0.0
    values = {}
    for line in text.decode().splitlines():
        if line.startswith(("mlops_nb_batch_requests_count", "mlops_nb_batch_rows_sum")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values.get("mlops_nb_batch_requests_count", 0.0), values.get(
        "mlops_nb_batch_rows_sum", 0.0
    )


def _wait_ready(proc: subprocess.Popen, port: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def _rss(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------- the web stack
_APPS = """
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

fastapi_app = FastAPI()

@fastapi_app.get("/ping")
def fastapi_ping():
    return Response(content="\\n", status_code=200, media_type="application/json")

async def starlette_ping(request):
    return Response(content="\\n", status_code=200, media_type="application/json")

starlette_app = Starlette(routes=[Route("/ping", starlette_ping)])

async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1")]})
    await send({"type": "http.response.body", "body": b"\\n"})
"""


def frameworks(work: Path, seconds: float) -> None:
    (work / "bench_apps.py").write_text(_APPS)
    rates = {}
    for app in ("fastapi_app", "starlette_app", "asgi_app"):
        port = _free_port()
        proc = subprocess.Popen(
            ["uvicorn", f"bench_apps:{app}", "--port", str(port), "--log-level", "warning",
             "--no-access-log"], cwd=work, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        try:
            _wait_ready(proc, port)
            asyncio.run(_ping_load(port, 32, 1.0))
            rates[app] = asyncio.run(_ping_load(port, 32, seconds))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    print("bare GET /ping on uvicorn, concurrency 32, requests/s: " + ", ".join(
        f"{app.removesuffix('_app')} {rate:,.0f}" for app, rate in rates.items()))  # fmt: skip
    _row("bare /ping req/s: plain ASGI vs FastAPI", rates["asgi_app"], rates["fastapi_app"],
         names=("asgi", "fastapi"))  # fmt: skip
    _row("bare /ping req/s: plain ASGI vs Starlette", rates["asgi_app"], rates["starlette_app"],
         names=("asgi", "starlette"))  # fmt: skip


async def _ping_load(port: int, concurrency: int, seconds: float) -> float:
    count = 0
    stop = time.perf_counter() + seconds
    request = f"GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def client() -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            writer.write(request)
            await _response(reader)
            count += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return count / (time.perf_counter() - began)


def _row(name, ours, theirs, *, lower_is_better=False, target=None, names=None) -> None:
    ratio = theirs / ours if lower_is_better else ours / theirs
    verdict = "" if target is None else ("PASS" if ratio >= target else "FAIL") + (
        f" (>= {target}x)")  # fmt: skip
    if names:
        name = f"{name} ({names[0]} / {names[1]})"
    RESULTS.append((name, f"{ours:,.2f}", f"{theirs:,.2f}", f"{ratio:,.2f}x", verdict))


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(main())
