"""Live performance on real logs: models registered from a notebook kernel (which keeps the
monitoring profiles), requests and feedback recorded as ``mlops-nb serve`` records them (and
by a real server process), realized performance per window and the confidence-based estimate.

The estimation tests hide the labels of a few thousand served rows, estimate accuracy, F1 and
ROC AUC from the calibrated probabilities, then send the labels and compare with the realized
values: they must agree within ``TOLERANCE`` (absolute). At 4,000 rows a realized accuracy
near 0.8 has a standard error near 0.006 and the estimate one of its own; over 15 to 20
seeds of these generators, with shifts of up to two standard deviations, the largest error
seen was 0.038 (multiclass macro F1 at the largest shift), so 0.04 is a bound the method
meets, not a loose one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import subprocess_env
from IPython.core.interactiveshell import InteractiveShell
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import mlops_nb as mn
from mlops_nb.monitor.performance import (
    PerformanceError,
    PerformanceEstimator,
    estimated_performance,
    evaluation_profile,
    performance_from_log,
    performance_text,
    realized_performance,
)
from mlops_nb.registry.load import load_model
from mlops_nb.registry.register import EvaluationData, register_pipeline

TOLERANCE = 0.04  # |estimated - realized| for accuracy, F1 and ROC AUC at 4,000 rows
DAY = 86_400.0
MONDAY = 1_767_571_200.0  # 2026-01-05 00:00 UTC: windows of one day start here


# ---------------------------------------------------------------------- data
def binary_data(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    """Labels drawn from a logistic model of the inputs; ``shift`` moves the inputs only
    (covariate shift: P(label | inputs) is unchanged)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x[:, 0] += shift
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * x[:, 2] - 0.3
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(x, columns=["a", "b", "c"]), pd.Series(label, name="label")


def multiclass_data(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    """Three classes named by text, drawn from a multinomial logistic model of the inputs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    x[:, 0] += shift
    logits = x @ np.array([[1.5, 0.0], [-1.0, 1.2], [-0.5, -1.5]]).T
    chance = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    drawn = (rng.random((n, 1)) > chance.cumsum(axis=1)).sum(axis=1)
    names = np.array(["low", "mid", "high"])[drawn]
    return pd.DataFrame(x, columns=["u", "v"]), pd.Series(names, name="label")


# ---------------------------------------------------------------------- a notebook kernel
def register_from_notebook(log_path: Path, data: dict, cells: list[str], *lines: str) -> None:
    """Run tracked cells in a real IPython shell, then each ``%mlops register ...`` line."""
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("%load_ext mlops_nb")
        shell.run_cell(f"%mlops track --experiment perf --log {log_path}")
        shell.push(data)
        for cell in cells:
            result = shell.run_cell(cell)
            assert result.success, result.error_in_exec
        for line in lines:
            result = shell.run_cell(line)
            assert result.success, result.error_in_exec or result.error_before_exec
    finally:
        shell.run_cell("%mlops stop")
        shell.run_cell("%unload_ext mlops_nb")
        from mlops_nb.log import api as log_api

        log_api._ACTIVE_RUNS.clear()
        InteractiveShell.clear_instance()


SPLIT_AND_TRAIN = [
    "%%mlops track features\nfrom sklearn.preprocessing import StandardScaler\n"
    "X_train, X_test = data.iloc[:3000], data.iloc[3000:].reset_index(drop=True)\n"
    "y_train, y_test = labels.iloc[:3000], labels.iloc[3000:].reset_index(drop=True)",
    # fitted alone: the tracker takes the largest matching frame a fitting cell touched
    "%%mlops track features\nscaler = StandardScaler().set_output(transform='pandas')\n"
    "scaler.fit(X_train)",
    "%%mlops track features\nX_train_s, X_test_s = scaler.transform(X_train), "
    "scaler.transform(X_test)",
    "%%mlops track train\nfrom sklearn.linear_model import LogisticRegression\n"
    "clf = LogisticRegression().fit(X_train_s, y_train)",
    "%%mlops track evaluate\npredicted = clf.predict(X_test_s)",
]


@pytest.fixture(scope="module")
def binary_log(tmp_path_factory):
    """A log with ``churn:1``: scaler + logistic regression, 3,000 training rows, verified on
    X_test (4,000 rows) whose labels y_test registration finds by itself."""
    log_path = tmp_path_factory.mktemp("binary") / "log.duckdb"
    data, labels = binary_data(7000, seed=1)
    test, test_labels = data.iloc[3000:].reset_index(drop=True), labels.iloc[3000:].reset_index(
        drop=True)  # fmt: skip
    register_from_notebook(log_path, {"data": data, "labels": labels}, SPLIT_AND_TRAIN,
                           "%mlops register churn --model clf")  # fmt: skip
    log = mn.open_log(log_path, create=False)
    log.flush()
    return {"log": log, "path": log_path, "train": data.iloc[:3000], "test": test,
            "test_labels": test_labels}  # fmt: skip


@pytest.fixture(scope="module")
def multiclass_log(tmp_path_factory):
    """``levels:1``, three text classes; the labels are named with ``--labels``."""
    log_path = tmp_path_factory.mktemp("multiclass") / "log.duckdb"
    data, labels = multiclass_data(7000, seed=11)
    cells = [
        "%%mlops track features\nX_train, y_train = data.iloc[:3000], labels.iloc[:3000]\n"
        "X_holdout, truth = data.iloc[3000:], labels.iloc[3000:]",
        "%%mlops track train\nfrom sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression().fit(X_train, y_train)",
        "%%mlops track evaluate\npredicted = model.predict(X_holdout)",
    ]
    register_from_notebook(log_path, {"data": data, "labels": labels}, cells,
                           "%mlops register levels --labels truth")  # fmt: skip
    log = mn.open_log(log_path, create=False)
    log.flush()
    return {"log": log, "path": log_path}


# ---------------------------------------------------------------------- serving, as recorded
def serve_rows(log, name: str, frame: pd.DataFrame, when: float, batch: int = 100) -> list[str]:
    """Score ``frame`` with the registered model and record each batch as a request exactly as
    ``mlops-nb serve`` records one (inputs in the dataframe_split form, outputs as a list)."""
    model = load_model(log, name)
    ids = []
    for start in range(0, len(frame), batch):
        part = frame.iloc[start : start + batch]
        request_id = uuid.uuid4().hex
        log.record("requests", {
            "request_id": request_id, "model_name": model.name, "model_version": model.version,
            "protocol": "mlflow", "status": 200, "n_rows": len(part), "latency_ms": 1.0,
            "inputs": json.dumps({"columns": list(part.columns),
                                  "data": part.astype(object).values.tolist()}),
            "outputs": json.dumps(model.pipeline.predict(part).tolist()), "error": None,
            "server": "test", "created_at": when + start / len(frame),
        })  # fmt: skip
        ids.append(request_id)
    return ids


def send_feedback(log, ids: list[str], labels: list, batch: int = 100) -> None:
    """Labels sent back as ``POST /feedback {"request_id", "labels": [...]}`` records them."""
    for number, request_id in enumerate(ids):
        for row, label in enumerate(labels[number * batch : (number + 1) * batch]):
            log.record("feedback", {"request_id": request_id, "row_index": row,
                                    "label": json.dumps(label), "user_name": None,
                                    "created_at": time.time()})  # fmt: skip


def by_metric(frame: pd.DataFrame, kind: str) -> dict[str, float]:
    rows = frame[frame["kind"] == kind]
    return dict(zip(rows["metric"], rows["value"], strict=True))


# ---------------------------------------------------------------------- registration
def test_registration_keeps_the_training_profile_and_a_labelled_evaluation_sample(binary_log):
    log, test, test_labels = binary_log["log"], binary_log["test"], binary_log["test_labels"]
    record = log.model_version("churn")
    inputs = log.profiles(model_name="churn", model_version=1, kind="inputs")
    assert len(inputs) == 1 and inputs["name"][0] == "X_train" and inputs["n_rows"][0] == 3000
    profile = json.loads(inputs["profile"][0])
    assert list(profile["columns"]) == [c["name"] for c in record["signature"]["columns"]]
    assert list(profile["columns"]) == ["a", "b", "c"] and profile["exact"] is True
    assert len(profile["columns"]["a"]["values"]) == 3000
    fit_id = log.run(record["run_id"]).models.query("name == 'scaler'")["fit_dataset_id"].iloc[-1]
    assert inputs["dataset_id"][0] == fit_id

    found = log.profiles(model_name="churn", model_version=1, kind="evaluation")
    assert len(found) == 1 and found["name"][0] == "X_test" and found["n_rows"][0] == 4000
    evaluation = json.loads(found["profile"][0])
    assert evaluation["input"] == "X_test" and evaluation["labels_from"] == "y_test"
    assert (evaluation["task"], evaluation["classes"]) == ("classification", [0, 1])
    assert evaluation["sample_rows"] == 4000
    assert evaluation["labels"] == test_labels.tolist()
    pipeline = load_model(log, "churn").pipeline
    assert evaluation["predictions"] == pipeline.predict(test).tolist()
    probabilities = pipeline.predict_proba(test)
    assert np.allclose(evaluation["probabilities"], probabilities)
    metrics = evaluation["metrics"]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(test_labels, pipeline.predict(test)))
    assert metrics["f1"] == pytest.approx(f1_score(test_labels, pipeline.predict(test)))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(test_labels, probabilities[:, 1]))


def test_the_evaluation_sample_is_bounded_and_deterministic(tmp_path):
    train, train_labels = binary_data(500, seed=3)
    big, big_labels = binary_data(12_000, seed=4)
    model = LogisticRegression().fit(train, train_labels)
    log = mn.open_log(tmp_path / "log.duckdb")
    for _ in range(2):
        evaluation = EvaluationData(big, big_labels, "big", "big_labels")
        register_pipeline(log, "big", model, training_frame=train, evaluation=evaluation)
    log.flush()
    kept = log.profiles(model_name="big", kind="evaluation").sort_values("model_version")
    first, second = (json.loads(text) for text in kept["profile"])
    assert kept["n_rows"].tolist() == [12_000, 12_000]
    assert first["sample_rows"] == 10_000 == len(first["labels"]) == len(first["probabilities"])
    assert first["labels"] == second["labels"] and first["predictions"] == second["predictions"]
    # the baseline is measured on all 12,000 rows, not on the sample
    assert first["metrics"]["accuracy"] == pytest.approx(
        accuracy_score(big_labels, model.predict(big)))  # fmt: skip
    inputs = json.loads(
        log.profiles(model_name="big", model_version=1, kind="inputs")["profile"][0]
    )
    assert inputs["n_rows"] == 500 and list(inputs["columns"]) == ["a", "b", "c"]


def test_without_labels_registration_warns_and_estimation_says_it_needs_labels(tmp_path, capfd):
    log_path = tmp_path / "log.duckdb"
    data, labels = binary_data(850, seed=5)
    new = data.iloc[600:].reset_index(drop=True)
    cells = [
        "%%mlops track features\nX_train, y_train = data.iloc[:600], labels.iloc[:600]\n"
        "X_new = data.iloc[600:].reset_index(drop=True)",
        "%%mlops track train\nfrom sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression().fit(X_train, y_train)",
        "%%mlops track evaluate\npredicted = model.predict(X_new)",
    ]
    register_from_notebook(log_path, {"data": data, "labels": labels}, cells,
                           "%mlops register unlabelled",
                           "%mlops register unlabelled --labels no_such_var")  # fmt: skip
    warnings = capfd.readouterr().err
    assert "no labels found for X_new (pass --labels VAR)" in warnings
    assert "kept no value of 'no_such_var' (--labels)" in warnings
    log = mn.open_log(log_path, create=False)
    log.flush()
    kept = log.profiles(model_name="unlabelled", kind="evaluation")
    assert sorted(kept["model_version"]) == [1, 2]  # registered all the same, twice
    evaluation = json.loads(kept["profile"][0])
    assert "labels" not in evaluation and evaluation["metrics"] == {}
    assert len(evaluation["predictions"]) == len(evaluation["probabilities"]) == 250

    serve_rows(log, "unlabelled:1", new, MONDAY)
    log.flush()
    frame = performance_from_log(log, "unlabelled:1")
    assert frame.empty
    notes = " | ".join(frame.attrs["notes"])
    assert "no feedback labels for unlabelled:1 yet" in notes
    assert "estimation needs labels of the evaluation data" in notes
    assert "estimation needs labels" in performance_text(frame)
    with pytest.raises(PerformanceError, match="needs labels of the evaluation data"):
        PerformanceEstimator().fit(evaluation["probabilities"], None, [0, 1])


# ---------------------------------------------------------------------- realized
def test_realized_performance_per_window_against_the_training_baseline(binary_log, tmp_path):
    log = mn.open_log(tmp_path / "copy.duckdb")  # a fresh log with the same registered model
    source = binary_log["log"]
    pipeline = load_model(source, "churn").pipeline
    train, test, test_labels = (binary_log[k] for k in ("train", "test", "test_labels"))
    baseline = json.loads(source.profiles(model_name="churn", kind="evaluation")["profile"][0])
    register_pipeline(log, "churn", pipeline, training_frame=train,
                      evaluation=EvaluationData(test, test_labels, "X_test", "y_test"))  # fmt: skip
    days = [binary_data(300, seed=20 + day) for day in range(3)]
    truth = []
    for day, (frame, labels) in enumerate(days):
        ids = serve_rows(log, "churn", frame, MONDAY + day * DAY + 3600)
        # day 3: half the labels flipped (the world changed): realized accuracy must fall
        sent = labels.to_numpy().copy()
        if day == 2:
            sent[::2] = 1 - sent[::2]
        truth.append(sent)
        # labels arrive in the forms clients send: numbers, text, booleans
        forms = [int(v) if i % 3 == 0 else str(v) if i % 3 == 1 else bool(v)
                 for i, v in enumerate(sent)]  # fmt: skip
        send_feedback(log, ids, forms)
    log.flush()
    frame = performance_from_log(log, "churn", window="1D")
    realized = frame[frame["kind"] == "realized"]
    assert sorted(set(realized["window_start"])) == [
        pd.Timestamp(MONDAY + day * DAY, unit="s") for day in range(3)]  # fmt: skip
    assert set(realized["metric"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert (realized["n_rows"] == 300).all()
    for day, (inputs, _) in enumerate(days):
        rows = realized[realized["window_start"] == pd.Timestamp(MONDAY + day * DAY, unit="s")]
        values = dict(zip(rows["metric"], rows["value"], strict=True))
        predicted = pipeline.predict(inputs)
        assert values["accuracy"] == pytest.approx(accuracy_score(truth[day], predicted))
        assert values["f1"] == pytest.approx(f1_score(truth[day], predicted))
        auc = roc_auc_score(truth[day], pipeline.predict_proba(inputs)[:, 1])
        assert values["roc_auc"] == pytest.approx(auc)
        assert (rows["window_end"] - rows["window_start"] == pd.Timedelta("1D")).all()
    assert dict(zip(realized["metric"], realized["baseline"], strict=False)) == pytest.approx(
        baseline["metrics"])  # fmt: skip
    by_day = realized[realized["metric"] == "accuracy"].sort_values("window_start")["value"]
    assert by_day.iloc[2] < by_day.iloc[0] - 0.2
    recorded = log.performance("churn", kind="realized")
    assert len(recorded) == len(realized) and recorded["check_id"].nunique() == 1
    assert recorded["check_id"][0] == frame["check_id"][0]
    text = performance_text(frame)
    assert "performance of churn:1" in text and "2026-01-07 00:00 .. 2026-01-08 00:00" in text


def test_realized_performance_reads_labels_in_any_form_for_text_classes():
    labelled = pd.DataFrame({
        "created_at": pd.to_datetime([MONDAY, MONDAY + 10, MONDAY + DAY, MONDAY + DAY], unit="s"),
        "prediction": ['"yes"', '"no"', '"yes"', '"no"'],
        "label": ['"yes"', "no", " yes ", '"maybe"'],  # JSON text, raw text, spaces, unknown
    })  # fmt: skip
    frame = realized_performance(labelled, task="classification", classes=["no", "yes"],
                                 baseline={"accuracy": 0.9})  # fmt: skip
    accuracy = frame[frame["metric"] == "accuracy"]
    assert accuracy["value"].tolist() == [1.0, 0.5] and accuracy["baseline"].tolist() == [0.9] * 2
    regression = realized_performance(
        labelled.assign(prediction=["1.5", "2", "3", "4"], label=["1", "2", "3", '"5"']),
        task="regression", classes=None, window="1D",
    )  # fmt: skip
    first_day = regression[regression["window_start"] == pd.Timestamp(MONDAY, unit="s")]
    assert dict(zip(first_day["metric"], first_day["value"], strict=True)) == pytest.approx(
        {"mae": 0.25, "rmse": np.sqrt(0.125), "r2": 0.5})  # fmt: skip


# ---------------------------------------------------------------------- estimated
def test_estimated_binary_performance_matches_the_realized_within_the_tolerance(binary_log):
    """Labels hidden, then sent: CBPE lands within TOLERANCE of the realized accuracy, F1 and
    ROC AUC, on data like the evaluation data and on covariate-shifted data, whose realized
    accuracy moved by more than the tolerance."""
    log = binary_log["log"]
    baseline = json.loads(log.profiles(model_name="churn", kind="evaluation")["profile"][0])
    for number, shift in enumerate((0.0, 1.5)):
        current, labels = binary_data(4000, seed=30 + number, shift=shift)
        start = MONDAY + (10 + number) * DAY
        ids = serve_rows(log, "churn", current, start)
        log.flush()
        estimated = by_metric(performance_from_log(log, "churn", since=start), "estimated")
        send_feedback(log, ids, labels.tolist())
        log.flush()
        realized = by_metric(performance_from_log(log, "churn", since=start), "realized")
        for metric in ("accuracy", "f1", "roc_auc"):
            assert abs(estimated[metric] - realized[metric]) < TOLERANCE, (shift, metric)
        if shift:
            assert abs(realized["accuracy"] - baseline["metrics"]["accuracy"]) > TOLERANCE
    assert set(log.performance("churn", kind="estimated")["metric"]) == {
        "accuracy", "precision", "recall", "f1", "roc_auc"}  # fmt: skip


def test_estimated_multiclass_performance_matches_the_realized_within_the_tolerance(
    multiclass_log,
):
    log = multiclass_log["log"]
    evaluation = json.loads(log.profiles(model_name="levels", kind="evaluation")["profile"][0])
    assert evaluation["labels_from"] == "truth" and evaluation["classes"] == ["high", "low", "mid"]
    current, labels = multiclass_data(4000, seed=40, shift=1.5)
    ids = serve_rows(log, "levels", current, MONDAY + 20 * DAY)
    log.flush()
    estimated = by_metric(performance_from_log(log, "levels", record=False), "estimated")
    send_feedback(log, ids, labels.tolist())
    log.flush()
    frame = performance_from_log(log, "levels", record=False)
    realized = by_metric(frame, "realized")
    for metric in ("accuracy", "f1", "roc_auc"):
        assert abs(estimated[metric] - realized[metric]) < TOLERANCE, metric
    assert abs(realized["accuracy"] - evaluation["metrics"]["accuracy"]) > TOLERANCE
    assert log.performance("levels").empty  # record=False records nothing


def test_the_estimator_alone_calibrates_over_confident_probabilities():
    """A model twice as sure as it should be: raw confidence overstates accuracy, the
    calibrated estimate does not."""
    rng = np.random.default_rng(7)
    true_chance = rng.uniform(0.05, 0.95, size=(2, 4000))
    labels = (rng.random((2, 4000)) < true_chance).astype(int)
    sharpened = 1 / (1 + np.exp(-2 * np.log(true_chance / (1 - true_chance))))
    scores = [np.column_stack([1 - s, s]) for s in sharpened]
    estimator = PerformanceEstimator().fit(scores[0], labels[0], [0, 1])
    realized = accuracy_score(labels[1], scores[1].argmax(axis=1))
    naive = float(scores[1].max(axis=1).mean())
    estimate = estimator.estimate(scores[1])["accuracy"]
    assert abs(estimate - realized) < TOLERANCE < naive - realized
    times = pd.Series(pd.to_datetime(MONDAY + np.arange(4000) * 60.0, unit="s"))
    windows = estimated_performance(times, scores[1], estimator, window="1D")
    assert windows.groupby("window_start")["n_rows"].first().sum() == 4000
    with pytest.raises(PerformanceError, match="bad window"):
        estimated_performance(times, scores[1], estimator, window="often")


def test_evaluation_profile_of_a_regressor_keeps_its_errors(tmp_path):
    from sklearn.linear_model import LinearRegression

    frame, _ = binary_data(200, seed=8)
    target = 2 * frame["a"] - frame["b"] + np.random.default_rng(8).normal(0, 0.1, 200)
    model = LinearRegression().fit(frame, target)
    profile = evaluation_profile(model, frame, {"task": "regression"}, target)
    assert "probabilities" not in profile and profile["labels"] == target.tolist()
    assert set(profile["metrics"]) == {"mae", "rmse", "r2"} and profile["metrics"]["r2"] > 0.99


# ---------------------------------------------------------------------- a real server
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_served_model_with_feedback_gives_realized_performance(binary_log, tmp_path):
    """``mlops-nb serve`` records the requests and ``/feedback`` the labels (sent as numbers,
    text and booleans); performance_from_log reads them back into the same metrics."""
    source = binary_log["log"]
    log_path = tmp_path / "served.duckdb"
    log = mn.open_log(log_path)
    train = binary_log["train"]
    register_pipeline(log, "served", load_model(source, "churn").pipeline, training_frame=train,
                      alias="champion")  # fmt: skip
    log.flush()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), "serve", "served@champion",
         "--port", str(port)],
        env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer /health"
                time.sleep(0.2)
        inputs, labels = binary_data(90, seed=50)
        forms = [int(v) if i % 3 == 0 else str(v) if i % 3 == 1 else bool(v)
                 for i, v in enumerate(labels)]  # fmt: skip
        for start in range(0, 90, 30):
            body = {
                "dataframe_split": {
                    "columns": list(inputs.columns),
                    "data": inputs.iloc[start : start + 30].values.tolist(),
                }
            }
            answer = httpx.post(url + "/invocations", json=body, timeout=30)
            assert answer.status_code == 200
            request_id = answer.headers["x-request-id"]
            sent = httpx.post(
                url + "/feedback",
                json={"request_id": request_id, "labels": forms[start : start + 30]},
            )
            assert sent.json() == {"recorded": 30}
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    log.flush()
    frame = performance_from_log(log, "served@champion", window="3650D")
    realized = by_metric(frame, "realized")
    pipeline = load_model(log, "served").pipeline
    assert realized["accuracy"] == pytest.approx(accuracy_score(labels, pipeline.predict(inputs)))
    auc = roc_auc_score(labels, pipeline.predict_proba(inputs)[:, 1])
    assert realized["roc_auc"] == pytest.approx(auc)
    assert frame[frame["kind"] == "realized"]["n_rows"].tolist()[0] == 90
    # registered from a frame, without evaluation data: nothing to estimate with, and it says so
    assert any("kept no evaluation predictions" in note for note in frame.attrs["notes"])
