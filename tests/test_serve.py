"""``mlops-nb serve`` and ``mlops-nb predict`` as users run them: real server processes on
loopback, started with Popen and stopped by their PID, answering real HTTP requests."""

from __future__ import annotations

import csv
import json
import operator
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, subprocess_env
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import mlops_nb as mn
from mlops_nb.registry.register import register_pipeline

COLUMNS = ["age", "tenure_months", "monthly_charges", "contract", "region"]
CATEGORIES = ["contract", "region"]


# ---------------------------------------------------------------------- helpers
def churn_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Churn-like data shaped as the example notebook's cleaned table (a few columns)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(float),
        "tenure_months": rng.integers(0, 72, n),
        "monthly_charges": rng.normal(60, 15, n).round(2),
        "contract": pd.Categorical(rng.choice(["month-to-month", "one-year", "two-year"], n)),
        "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
    })  # fmt: skip
    churned = (frame["contract"] == "month-to-month") & (frame["tenure_months"] < 20)
    return frame, churned.astype(int)


def churn_pipeline(frame: pd.DataFrame, target: pd.Series, trees: int = 4, seed: int = 0):
    """The example's preprocessing (one-hot + scaling) and a small forest."""
    preprocess = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORIES),
        ("numbers", StandardScaler(), ["age", "tenure_months", "monthly_charges"]),
    ])  # fmt: skip
    forest = RandomForestClassifier(n_estimators=trees, max_depth=4, random_state=seed)
    return Pipeline([("preprocess", preprocess), ("model", forest)]).fit(frame, target)


def rows_of(frame: pd.DataFrame) -> list[list]:
    return frame.astype(object).values.tolist()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real ``mlops-nb serve`` process on loopback."""

    def __init__(self, log_path: Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), "serve", *args,
             "--port", str(self.port)],
            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("the server did not answer /health")

    def post(self, path: str, client: httpx.Client | None = None, **kwargs) -> httpx.Response:
        return (client or httpx).post(self.url + path, timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def until(condition, what: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found is not None and found is not False:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


class Load:
    """Client threads sending one-row requests until stopped; every answer is kept."""

    def __init__(self, server: Server, rows: list[list], threads: int = 4):
        self.answers: list[tuple[int, str | None, str | None]] = []  # status, version, id
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(server, rows, n), daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, server: Server, rows: list[list], number: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = number
            while not self._stop.is_set():
                body = {"dataframe_split": {"columns": COLUMNS, "data": [rows[i % len(rows)]]}}
                i += 1
                try:
                    response = server.post("/invocations", client, json=body)
                except httpx.TransportError as error:
                    with self._lock:
                        self.failures.append(type(error).__name__)
                    return
                answer = (response.status_code, response.headers.get("x-model-version"),
                          response.headers.get("x-request-id"))  # fmt: skip
                with self._lock:
                    self.answers.append(answer)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A log with models ``churn`` and ``moving`` (version 1 at champion, a different version
    2), the first pipeline and test data."""
    folder = tmp_path_factory.mktemp("serve")
    log_path = folder / ".mlops" / "log.duckdb"
    frame, target = churn_frame(300)
    first = churn_pipeline(frame, target, trees=4, seed=0)
    second = churn_pipeline(frame, target, trees=3, seed=1)
    log = mn.open_log(log_path)
    register_pipeline(log, "churn", first, training_frame=frame, alias="champion")
    register_pipeline(log, "churn", second, training_frame=frame)
    register_pipeline(log, "moving", first, training_frame=frame, alias="champion")
    register_pipeline(log, "moving", second, training_frame=frame)
    log.flush()
    test_frame, _ = churn_frame(40, seed=7)
    return {"log": log, "path": log_path, "model": first, "second": second, "test": test_frame}


@pytest.fixture(scope="module")
def server(registry):
    running = Server(registry["path"], "churn@champion", "--max-body", "0.05")
    yield running
    running.stop()


def _recorded(log, column: str = "request_id") -> set[str]:
    return set(log.sql(f"SELECT {column} FROM requests")[column])


# ---------------------------------------------------------------------- protocols
def test_mlflow_and_v2_requests_get_the_models_own_predictions(server, registry):
    test = registry["test"].head(12)
    expected = registry["model"].predict(test).tolist()
    rows = rows_of(test)
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs": {"inputs": columns},
        "instances as rows": {"instances": rows},
    }
    for form, body in bodies.items():
        response = server.post("/invocations", json=body)
        assert response.status_code == 200, (form, response.text)
        assert response.json() == {"predictions": expected}, form
        assert response.headers["x-model-version"] == "1"
        assert response.headers["x-request-id"]
    text = test.to_csv(index=False)
    response = server.post("/invocations", content=text, headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": expected}

    v2 = {"id": "abc", "inputs": [
        {"name": name, "shape": [len(rows)], "datatype": "BYTES" if name in CATEGORIES else
         "FP64", "data": columns[name]} for name in COLUMNS]}  # fmt: skip
    response = server.post("/v2/models/churn/infer", json=v2)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_name"] == "churn" and answer["model_version"] == "1"
    assert answer["id"] == "abc" and answer["outputs"][0]["data"] == expected
    assert response.headers["x-model-version"] == "1"
    matrix = {"inputs": [{"name": "x", "shape": [len(rows), 5], "datatype": "BYTES",
                          "data": rows}]}  # fmt: skip
    assert server.post("/v2/models/churn/infer", json=matrix).json()["outputs"][0]["data"] == (
        expected
    )

    for path in ("/ping", "/health", "/version", "/v2/health/live", "/v2/health/ready",
                 "/v2/models/churn", "/v2/models/churn/ready"):  # fmt: skip
        response = httpx.get(server.url + path)
        assert response.status_code == 200, path
        assert response.headers["x-model-version"] == "1"
    metadata = httpx.get(server.url + "/v2/models/churn").json()
    assert [i["name"] for i in metadata["inputs"]] == COLUMNS
    metrics = httpx.get(server.url + "/metrics").text
    assert 'mlops_nb_model_info{model="churn",sha256=' in metrics
    assert 'mlops_nb_requests_total{code="200",endpoint="mlflow"}' in metrics
    assert "mlops_nb_request_latency_seconds_bucket" in metrics
    assert "mlops_nb_batch_rows_bucket" in metrics
    assert 'mlops_nb_predictions_total{model="churn",prediction=' in metrics


def test_every_bad_input_is_a_4xx_naming_the_problem_and_the_server_keeps_serving(server):
    good = [40.0, 12, 55.0, "one-year", "north"]

    def split(row, columns=COLUMNS):
        return {"json": {"dataframe_split": {"columns": columns, "data": [row]}}}

    cases = {
        "missing column": (split(good[:4], COLUMNS[:4]), 400, "region"),
        "wrong type": (split(["old", *good[1:]]), 400, "'age': 'old' is not a number"),
        "null": (split([None, *good[1:]]), 400, "'age': null"),
        "unseen category": (split([*good[:3], "weekly", "north"]), 400, "'weekly'"),
        "fractional integer": (split([good[0], 2.5, *good[2:]]), 400, "tenure_months"),
        "row too short": (split(good[:3]), 400, "row 0 has 3 values"),
        "malformed json": (
            {"content": b'{"dataframe_split": ', "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),  # fmt: skip
        "two formats": ({"json": {"instances": [], "inputs": []}}, 400, "exactly one of"),
        "not an object": ({"json": [1, 2]}, 400, "must be an object"),
        "empty body": (
            {"content": b"", "headers": {"content-type": "application/json"}},
            400,
            "empty",
        ),  # fmt: skip
        "content type": (
            {"content": b"age=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "content type",
        ),
        "too large": (
            {
                "content": b"[" + b"1," * 40_000 + b"1]",
                "headers": {"content-type": "application/json"},
            },
            413,
            "limit",
        ),  # fmt: skip
        "csv of other columns": (
            {"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}},
            400,
            "missing columns",
        ),  # fmt: skip
    }
    for case, (request, status, words) in cases.items():
        response = server.post("/invocations", **request)
        assert response.status_code == status, (case, response.text)
        body = response.json()
        assert set(body) == {"error_code", "message"}, case
        assert words in body["message"] and "\n" not in body["message"], (case, body)
        assert response.headers["x-model-version"] == "1"
        assert server.post("/invocations", **split(good)).status_code == 200, case

    v2_cases = {
        "v2 unknown model": ("/v2/models/other/infer", {"inputs": []}, 404, "no model"),
        "v2 no inputs": ("/v2/models/churn/infer", {"x": 1}, 400, "inputs"),
        "v2 lengths differ": (
            "/v2/models/churn/infer",
            {
                "inputs": [
                    {"name": "age", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
                    {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["north"]},
                ]
            },
            400,
            "values",
        ),  # fmt: skip
        "v2 missing column": (
            "/v2/models/churn/infer",
            {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
            400,
            "missing columns",
        ),  # fmt: skip
        "v2 other version": ("/v2/models/churn/versions/9/infer", {"inputs": []}, 404, "9"),
    }
    for case, (path, body, status, words) in v2_cases.items():
        response = server.post(path, json=body)
        assert response.status_code == status, (case, response.text)
        assert words in response.json()["error"], (case, response.text)
    assert server.post("/feedback", json={"label": 1}).status_code == 400
    assert httpx.get(server.url + "/nowhere").status_code == 404
    assert httpx.get(server.url + "/invocations").status_code == 405
    metrics = httpx.get(server.url + "/metrics").text
    assert 'code="500"' not in metrics


def test_answered_and_refused_requests_are_recorded_with_feedback_in_predictions(server, registry):
    log = registry["log"]
    test = registry["test"].head(3)
    response = server.post(
        "/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": rows_of(test)}},
        headers={"x-request-id": "req-feedback"},
    )
    assert response.headers["x-request-id"] == "req-feedback"
    predictions = response.json()["predictions"]
    refused = server.post("/invocations", json={"dataframe_records": [{"age": 1}]},
                          headers={"x-request-id": "req-refused"})  # fmt: skip
    assert refused.status_code == 400
    labels = [1 - predictions[0], predictions[1], predictions[2]]
    answer = server.post("/feedback", json={"request_id": "req-feedback", "labels": labels})
    assert answer.json() == {"recorded": 3}

    def joined():
        frame = log.sql("SELECT * FROM predictions WHERE request_id = 'req-feedback' "
                        "ORDER BY row_index")  # fmt: skip
        return frame if len(frame) == 3 else None

    frame = until(joined, "the feedback to be merged")
    assert frame["model_version"].tolist() == [1, 1, 1]
    assert frame["prediction"].tolist() == [str(p) for p in predictions]
    assert (frame["prediction"] == frame["label"]).tolist() == [False, True, True]
    requests = log.sql("SELECT * FROM requests WHERE request_id IN ('req-feedback', "
                       "'req-refused') ORDER BY status")  # fmt: skip
    assert requests["status"].tolist() == [200, 400]
    assert requests["protocol"].tolist() == ["mlflow", "mlflow"]
    assert "missing columns" in requests["error"][1]
    body = '{"dataframe_split": ' + requests["inputs"][0] + "}"
    replay = server.post("/invocations", content=body.encode(), headers={
        "content-type": "application/json"})  # fmt: skip
    assert replay.json()["predictions"] == predictions  # stored inputs can be sent again


# ---------------------------------------------------------------------- hot reload, crashes
def test_an_alias_moved_under_load_fails_no_request_and_both_versions_answer(registry):
    log = registry["log"]
    rows = rows_of(registry["test"])
    server = Server(registry["path"], "moving@champion")
    try:
        load = Load(server, rows)
        until(lambda: load.count() >= 20, "answers from version 1")
        log.move_alias("moving", "champion", 2, reason="test")
        until(lambda: any(a[1] == "2" for a in list(load.answers)), "an answer from version 2")
        seen = load.count()
        until(lambda: load.count() >= seen + 20, "more answers after the switch")
        load.stop()
    finally:
        server.stop()
    assert not load.failures
    assert {status for status, _, _ in load.answers} == {200}
    versions = [version for _, version, _ in load.answers]
    assert set(versions) == {"1", "2"}
    switch = versions.index("2")
    assert set(versions[switch + len(load._threads) :]) == {"2"}  # no going back


def test_a_sigkilled_server_under_load_loses_no_answered_request(registry):
    log = registry["log"]
    server = Server(registry["path"], "churn:1")
    load = Load(server, rows_of(registry["test"]), threads=6)
    try:
        until(lambda: load.count() >= 150, "150 answered requests")
    finally:
        server.stop(signal.SIGKILL)
        load.stop()
    assert server.proc.returncode == -signal.SIGKILL
    answered = {request_id for status, _, request_id in load.answers if status == 200}
    assert len(answered) >= 150
    recorded = until(lambda: (found := _recorded(log)) >= answered and found,
                     "the dead server's journal to be merged")  # fmt: skip
    assert answered <= recorded


# ---------------------------------------------------------------------- refused models
def test_a_tampered_model_file_is_refused_at_startup(tmp_path):
    log_path = tmp_path / ".mlops" / "log.duckdb"
    frame, target = churn_frame(100)
    log = mn.open_log(log_path)
    record = register_pipeline(log, "churn", churn_pipeline(frame, target, trees=2),
                               training_frame=frame, alias="champion")  # fmt: skip
    log.close()
    sha = record["artifact_sha256"]
    artifact = log_path.parent / "artifacts" / sha[:2] / sha
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    result = run_cli("--log", str(log_path), "serve", "churn@champion", "--port",
                     str(free_port()))  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sha256" in lines[0] and "refusing" in lines[0], result.stderr


def test_an_untrusted_type_is_refused_at_startup_with_one_line(tmp_path):
    log_path = tmp_path / ".mlops" / "log.duckdb"
    frame, target = churn_frame(100)
    numbers = frame[["age", "tenure_months"]]
    pipeline = Pipeline([("pos", FunctionTransformer(operator.pos)),
                         ("model", LogisticRegression())]).fit(numbers, target)  # fmt: skip
    log = mn.open_log(log_path)
    register_pipeline(log, "odd", pipeline, training_frame=numbers, alias="champion")
    log.close()
    result = run_cli("--log", str(log_path), "serve", "odd@champion", "--port", str(free_port()))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not trusted: _operator.pos" in lines[0], result.stderr
    assert "--trust" in lines[0]


# ---------------------------------------------------------------------- batch scoring
def test_predict_scores_a_csv_in_chunks_and_records_every_chunk(registry, tmp_path):
    test = registry["test"].head(25)
    source = tmp_path / "customers.csv"
    test.to_csv(source, index=False)
    target = tmp_path / "scored.csv"
    result = run_cli("--log", str(registry["path"]), "predict", "churn@champion", "--input",
                     str(source), "--output", str(target), "--chunk-rows", "10")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "25 rows scored by churn:1" in result.stdout
    with open(target, newline="") as handle:
        scored = list(csv.DictReader(handle))
    expected = registry["model"].predict(test).tolist()
    assert [int(row["prediction"]) for row in scored] == expected
    assert [row["age"] for row in scored] == [str(v) for v in test["age"]]
    batch_ids = {row["request_id"] for row in scored}
    assert len(batch_ids) == 3
    recorded = registry["log"].sql("SELECT * FROM requests WHERE protocol = 'batch'")
    mine = recorded[recorded["request_id"].isin(batch_ids)].sort_values("request_id")
    assert mine["n_rows"].tolist() == [10, 10, 5]
    assert sum((json.loads(o) for o in mine["outputs"]), []) == expected

    bad = tmp_path / "bad.csv"
    test.assign(contract="weekly").to_csv(bad, index=False)
    result = run_cli("--log", str(registry["path"]), "predict", "churn@champion", "--input",
                     str(bad), "--output", str(tmp_path / "no.csv"))  # fmt: skip
    assert result.returncode == 2
    assert "unseen category 'weekly'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no.csv").exists()


# ---------------------------------------------------------------------- large batches
@pytest.mark.parametrize("kind", ["dense", "sparse", "pandas", "bare forest"])
def test_a_large_batch_cut_across_cores_predicts_exactly_as_one_call(kind):
    """The transformers run once; only the final estimator's rows are cut into slices."""
    from mlops_nb.registry.load import LoadedModel
    from mlops_nb.registry.signature import Signature
    from mlops_nb.serve.model import _PARALLEL_ROWS, predict_frame

    frame, target = churn_frame(3 * _PARALLEL_ROWS, seed=4)
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    if kind == "bare forest":
        frame = frame.drop(columns=CATEGORIES)
        pipeline = forest
    else:
        encode = ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=kind == "sparse"),
              CATEGORIES)],
            remainder=StandardScaler(), sparse_threshold=1.0 if kind == "sparse" else 0.0,
        )  # fmt: skip
        if kind == "pandas":
            encode.set_output(transform="pandas")
        pipeline = Pipeline([("prepare", encode), ("model", forest)])
    pipeline.fit(frame, target)
    model = LoadedModel("m", 1, pipeline, Signature([]))
    assert np.array_equal(predict_frame(model, frame), pipeline.predict(frame))
