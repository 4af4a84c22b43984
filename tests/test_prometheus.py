"""Prometheus: `mlops-nb exporter`, the Pushgateway push of `mlops-nb run`, `mlops-nb alerts`.

The exporter's text is checked value by value against what the log holds; the rules with the
real `promtool` (check and unit tests on synthetic series); and the whole chain with the real
Debian `prometheus` and `prometheus-pushgateway` started on loopback ports, scraping a real
exporter, a real `mlops-nb serve` and the gateway, asked through Prometheus' HTTP API."""

from __future__ import annotations

import fcntl
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import debian_command, run_cli, subprocess_env
from nbformat.v4 import new_code_cell, new_notebook
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

import mlops_nb as mn
from mlops_nb.monitor.alerts import format_duration, parse_duration
from mlops_nb.monitor.exporter import LogCollector
from mlops_nb.monitor.pushgateway import push_run_of_log
from mlops_nb.registry.gates import run_gate
from mlops_nb.registry.register import register_pipeline

ALLOWED_LABELS = {"experiment", "metric", "model", "version", "alias", "status", "pipeline",
                  "target", "column", "method", "kind", "code"}  # fmt: skip


# ---------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(condition, what: str, seconds: float = 60.0):
    """Poll ``condition`` until it returns something truthy, or fail saying what."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} (last: {last!r})")


class Process:
    """A real server process on loopback, ready when ``ready_url`` answers 200; stopped by PID."""

    def __init__(self, command: list[str], ready_url: str, cwd: Path | None = None):
        self.output = (cwd or Path.cwd()) / f"{Path(command[0]).name}-{os.getpid()}-{id(self)}.log"
        with open(self.output, "w") as sink:
            self.proc = subprocess.Popen(command, env=subprocess_env(), cwd=cwd, stdout=sink,
                                         stderr=subprocess.STDOUT)  # fmt: skip

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{command[0]} exited: {self.output.read_text()[-2000:]}")
            try:
                return httpx.get(ready_url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        try:
            until(ready, f"{ready_url} to answer", seconds=90)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def cli(log_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), *args]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, from a Prometheus text page."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def exporter_text(log) -> str:
    registry = CollectorRegistry()
    registry.register(LogCollector(log))
    return generate_latest(registry).decode()


def drift_check(log, check_id: str, model: str, columns: dict[str, tuple[float, bool]],
                share: float, when: float, target: str = "inputs") -> None:  # fmt: skip
    """One drift check as the drift part records it: a row per column and a 'dataset' row."""
    common = {"check_id": check_id, "model_name": model, "model_version": 1, "reference": "ref",
              "current": "cur", "n_reference": 100, "n_current": 100, "exact": True,
              "created_at": when}  # fmt: skip
    for column, (score, drifted) in columns.items():
        log.record("drift", {**common, "target": target, "column_name": column,
                             "column_type": "num", "method": "ks", "score": score,
                             "threshold": 0.05, "drifted": drifted})  # fmt: skip
    if target == "inputs":
        log.record("drift", {**common, "target": "dataset", "column_name": None,
                             "method": "share", "score": share, "threshold": 0.5,
                             "drifted": share >= 0.5})  # fmt: skip


def performance(log, model: str, kind: str, metric: str, number: float, window_end: float):
    log.record("performance", {
        "check_id": f"p{window_end}", "model_name": model, "model_version": 1, "kind": kind,
        "metric": metric, "value": number, "baseline": 0.9, "window_start": window_end - 3600,
        "window_end": window_end, "n_rows": 50, "created_at": window_end,
    })  # fmt: skip


def request(log, request_id: str, model: str, version: int | None, status: int) -> None:
    log.record("requests", {"request_id": request_id, "model_name": model,
                            "model_version": version, "protocol": "mlflow", "status": status,
                            "n_rows": 1, "latency_ms": 2.0, "created_at": time.time()})  # fmt: skip


@pytest.fixture
def monitored_log(log_path):
    """A log with runs, pipeline runs, versions and aliases, drift checks, performance windows
    and requests, plus the ids that must never appear as labels."""
    log = mn.open_log(log_path)
    ids = []
    for accuracy in (0.80, 0.85):
        with log.start_run(experiment="churn") as run:
            run.log_metrics({"accuracy": accuracy, "f1": accuracy - 0.1})
        ids.append(run.run_id)
        time.sleep(0.01)
    failed = log.start_run(experiment="churn")
    failed.end("failed", error="boom")
    ids.append(failed.run_id)
    pipeline = {"source": "papermill", "notebook_path": "pipelines/train.ipynb"}
    with log.start_run(experiment="train", **pipeline) as good:
        time.sleep(0.05)
    late = log.start_run(experiment="train", **pipeline)
    late.end("failed", error="late")
    child = log.start_run(experiment="train", parent_run_id=good.run_id, **pipeline)
    child.end("finished")  # a sweep child: not a pipeline run of its own
    ids += [good.run_id, late.run_id, child.run_id]
    first = log.add_model_version({"name": "churn", "run_id": ids[1],
                                   "metrics": {"accuracy": 0.85, "f1": 0.75}})  # fmt: skip
    second = log.add_model_version({"name": "churn", "metrics": {"accuracy": 0.88}})
    log.move_alias("churn", "champion", first)
    log.move_alias("churn", "challenger", second)
    now = time.time()
    drift_check(log, "old-check", "churn", {"age": (0.5, False), "region": (0.5, False)}, 0.0,
                now - 600)  # fmt: skip
    drift_check(log, "new-check", "churn", {"age": (0.001, True), "region": (0.2, False)}, 0.5,
                now)  # fmt: skip
    drift_check(log, "pred-check", "churn", {"prediction": (0.03, True)}, 0.0, now - 60,
                target="predictions")  # fmt: skip
    performance(log, "churn", "realized", "accuracy", 0.9, now - 3600)
    performance(log, "churn", "realized", "accuracy", 0.7, now)
    performance(log, "churn", "estimated", "accuracy", 0.75, now)
    for number in range(3):
        request(log, f"req-ok-{number}", "churn", 1, 200)
    request(log, "req-bad", "churn", None, 400)
    request(log, "req-two", "churn", 2, 200)
    ids += ["req-ok-0", "req-bad", "req-two"]
    log.flush()
    return log, ids, {"good": good.run_id, "late": late.run_id}


# ---------------------------------------------------------------------- the exporter's text
def test_the_exporter_shows_what_the_log_holds_under_prometheus_names(monitored_log):
    log, ids, runs = monitored_log
    text = exporter_text(log)
    found = samples(text)
    assert value(found, "mlops_nb_experiment_metric", experiment="churn", metric="accuracy") == 0.85
    assert value(found, "mlops_nb_experiment_metric", experiment="churn", metric="f1") == (
        pytest.approx(0.75)
    )
    assert value(found, "mlops_nb_model_version_metric", model="churn", version="1",
                 metric="accuracy") == 0.85  # fmt: skip
    assert value(found, "mlops_nb_model_version_metric", model="churn", version="2",
                 metric="accuracy") == 0.88  # fmt: skip
    assert value(found, "mlops_nb_model_alias_info", model="churn", alias="champion",
                 version="1") == 1  # fmt: skip
    assert value(found, "mlops_nb_model_alias_info", model="churn", alias="challenger",
                 version="2") == 1  # fmt: skip
    assert value(found, "mlops_nb_runs", experiment="churn", status="finished") == 2
    assert value(found, "mlops_nb_runs", experiment="churn", status="failed") == 1
    assert value(found, "mlops_nb_runs", experiment="train", status="finished") == 2

    good, late = log.run(runs["good"]).info, log.run(runs["late"]).info
    assert value(
        found, "mlops_nb_pipeline_last_success_timestamp_seconds", pipeline="train"
    ) == pytest.approx(good["end_time"].timestamp(), abs=1e-3)
    assert value(found, "mlops_nb_pipeline_last_duration_seconds", pipeline="train") == (
        pytest.approx(late["duration_s"], abs=1e-3)
    )  # the latest ended run: the failed one

    assert value(found, "mlops_nb_drift_share", model="churn") == 0.5  # the newest check
    assert value(found, "mlops_nb_dataset_drift", model="churn") == 1
    assert value(found, "mlops_nb_column_drift_score", model="churn", target="inputs",
                 column="age", method="ks") == 0.001  # fmt: skip
    assert value(found, "mlops_nb_column_drift_score", model="churn", target="predictions",
                 column="prediction", method="ks") == 0.03  # fmt: skip
    columns = {dict(labels)["column"] for name, labels in found
               if name == "mlops_nb_column_drift_score"}  # fmt: skip
    assert columns == {"age", "region", "prediction"}  # one check per target, not older ones

    assert value(found, "mlops_nb_model_performance", model="churn", kind="realized",
                 metric="accuracy") == 0.7  # the latest window  # fmt: skip
    assert value(found, "mlops_nb_model_performance", model="churn", kind="estimated",
                 metric="accuracy") == 0.75  # fmt: skip
    assert value(found, "mlops_nb_log_requests_total", model="churn", version="1",
                 code="200") == 3  # fmt: skip
    assert value(found, "mlops_nb_log_requests_total", model="churn", version="",
                 code="400") == 1  # fmt: skip
    assert value(found, "mlops_nb_exporter_scrape_error") == 0

    families = list(text_string_to_metric_families(text))
    assert all(f.name.startswith("mlops_nb_") for f in families)
    for family in families:
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample
            if family.name.endswith("_info"):
                assert sample.value == 1
    for secret in [*ids, getpass_user()]:
        assert secret not in text  # no run ids, request ids or users as labels


def getpass_user() -> str:
    import getpass

    return f'"{getpass.getuser()}"'


def test_registering_the_collector_reads_nothing_and_describe_names_every_family(monitored_log):
    log, _, _ = monitored_log
    lock_path = log.path.parent / (log.path.name + ".lock")
    registry = CollectorRegistry()
    done = threading.Event()
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a reader would wait here until the lock is free
        thread = threading.Thread(target=lambda: (registry.register(LogCollector(log)),
                                                  done.set()), daemon=True)  # fmt: skip
        thread.start()
        thread.join(timeout=20)
        registered = done.is_set()
    thread.join(timeout=20)
    assert registered, "registering the collector read the log"
    collector = LogCollector(log)
    described = {family.name for family in collector.describe()}
    collected = {family.name for family in collector.collect()}
    assert described == collected


def test_an_unreadable_log_is_a_scrape_error_not_a_crash(tmp_path):
    log = mn.open_log(tmp_path / "gone" / "log.duckdb")
    log.close()
    (tmp_path / "gone" / "log.duckdb").unlink()
    found = samples(exporter_text(log))
    assert value(found, "mlops_nb_exporter_scrape_error") == 1


def test_the_exporter_process_reads_new_records_and_holds_no_lock_between_scrapes(log_path):
    log = mn.open_log(log_path)
    with log.start_run(experiment="churn") as run:
        run.log_metric("accuracy", 0.8)
    log.flush()
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    exporter = Process(cli(log_path, "exporter", "--port", str(port)), url)
    try:
        assert value(samples(httpx.get(url).text), "mlops_nb_drift_share", model="churn") is None

        def lock_free():
            with open(log_path.parent / (log_path.name + ".lock"), "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

        until(lock_free, "the exporter to let go of the log after a scrape", seconds=10)
        drift_check(log, "c1", "churn", {"age": (0.001, True)}, 1.0, time.time())
        log.flush()
        found = samples(httpx.get(url).text)
        assert value(found, "mlops_nb_drift_share", model="churn") == 1.0
        assert value(found, "mlops_nb_experiment_metric", experiment="churn",
                     metric="accuracy") == 0.8  # fmt: skip
    finally:
        exporter.stop()


def test_the_exporter_on_a_missing_log_is_one_line(tmp_path):
    result = run_cli("--log", tmp_path / "none" / "log.duckdb", "exporter", "--port",
                     str(free_port()))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no log at" in result.stderr


# ---------------------------------------------------------------------- the Pushgateway push
def test_a_push_that_fails_is_one_warning_and_changes_nothing(log_path, capsys):
    log = mn.open_log(log_path)
    with log.start_run(experiment="train") as run:
        run.log_metric("accuracy", 0.9)
    dead = f"http://127.0.0.1:{free_port()}"
    assert not push_run_of_log(dead, log, "pipelines/train.ipynb", run.run_id, True, 1.0)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"mlops-nb run: warning: could not push to the Pushgateway at {dead}: "
    )


# ---------------------------------------------------------------------- alerting rules
@pytest.fixture
def promtool():
    return debian_command("promtool", "prometheus")


def test_alert_rules_pass_promtool_and_follow_the_schedules_and_gates(tmp_path, log_path,
                                                                      promtool):  # fmt: skip
    log = mn.open_log(log_path)
    log.add_schedule("pipelines/train.ipynb", "0 3 * * *", "cron", {}, "out", [])
    log.add_schedule("pipelines/weekdays.ipynb", "30 6 * * 1-5", "cron", {}, "out", [])
    log.add_schedule("monitor churn@champion", "0 * * * *", "cron", {}, "out", [])
    first = log.add_model_version({"name": "churn", "metrics": {"accuracy": 0.85}})
    log.move_alias("churn", "champion", first)
    log.add_model_version({"name": "churn", "metrics": {"accuracy": 0.90, "log_loss": 0.3}})
    assert run_gate(log, "churn:2", ["accuracy >= champion - 0.01", "accuracy >= 0.8",
                                     "log_loss <= 0.5"]).passed  # fmt: skip
    log.flush()
    rules_file = tmp_path / "rules.yml"
    result = run_cli("--log", log_path, "alerts", "--out", rules_file, "--for", "5m",
                     "--min", "f1=0.7", "--min", "accuracy=0.6")  # fmt: skip
    assert result.returncode == 0, result.stderr
    checked = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True,
                             text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rules = yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]
    by_name: dict[str, list[dict]] = {}
    for rule in rules:
        by_name.setdefault(rule["alert"], []).append(rule)
        assert rule["for"] == "5m" and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    late = {rule["labels"]["pipeline"]: rule["expr"] for rule in by_name["MlopsNbPipelineLate"]}
    assert set(late) == {"train", "weekdays"}  # the scheduled monitor is not a pipeline
    assert late["train"].endswith(f"> {86400 + 21600}")  # a day, plus a quarter of it
    assert late["weekdays"].endswith(f"> {3 * 86400 + 3 * 21600}")  # Friday to Monday
    bars = {rule["labels"]["condition"]: rule["expr"]
            for rule in by_name["MlopsNbPerformanceBelowGate"]}  # fmt: skip
    assert bars == {
        # the strictest of the gate's accuracy conditions: champion 0.85 - 0.01
        "accuracy >= 0.84": 'mlops_nb_model_performance{model="churn",metric="accuracy"} < 0.84',
        "log_loss <= 0.5": 'mlops_nb_model_performance{model="churn",metric="log_loss"} > 0.5',
        # --min: for the models the gate does not cover
        "accuracy >= 0.6": 'mlops_nb_model_performance{metric="accuracy",model!~"churn"} < 0.6',
        "f1 >= 0.7": 'mlops_nb_model_performance{metric="f1"} < 0.7',
    }
    for name in ("MlopsNbDatasetDrift", "MlopsNbServingErrorRate",
                 "MlopsNbServedVersionNotChampion"):  # fmt: skip
        assert len(by_name[name]) == 1

    tests_file = tmp_path / "rules_test.yml"
    tests_file.write_text(yaml.safe_dump(_promtool_tests(rules_file.name), sort_keys=False))
    tested = subprocess.run([promtool, "test", "rules", str(tests_file)], capture_output=True,
                            text=True, cwd=tmp_path)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def _promtool_tests(rules_file: str) -> dict:
    """Synthetic series: churn drifts (the alert fires once it has held 5m), iris does not; a
    server answers with version 2 while the champion is version 1; the train pipeline last
    succeeded at time 0."""
    exporter = {"job": "mlops_nb_exporter", "instance": "exporter:9108"}
    server = {"job": "serve", "instance": "serve:8080"}

    def series(name: str, values: str, **labels: str) -> dict:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"{name}{{{text}}}", "values": values}

    drift_annotations = {
        "summary": "Dataset drift on model churn",
        "description": "60% of the columns of churn drifted in its latest drift check. See "
        "mlops-nb drift and the drift view of the log.",
    }
    no_drift = {"interval": "1m", "input_series": [
        series("mlops_nb_drift_share", "0.2x30", model="iris", **exporter),
        series("mlops_nb_dataset_drift", "0x30", model="iris", **exporter),
    ], "alert_rule_test": [
        {"eval_time": "20m", "alertname": "MlopsNbDatasetDrift", "exp_alerts": []},
    ]}  # fmt: skip
    drift = {"interval": "1m", "input_series": [
        series("mlops_nb_drift_share", "0.6x30", model="churn", **exporter),
        series("mlops_nb_dataset_drift", "1x30", model="churn", **exporter),
        series("mlops_nb_drift_share", "0.2x30", model="iris", **exporter),
        series("mlops_nb_dataset_drift", "0x30", model="iris", **exporter),
    ], "alert_rule_test": [
        {"eval_time": "3m", "alertname": "MlopsNbDatasetDrift", "exp_alerts": []},  # pending
        {"eval_time": "10m", "alertname": "MlopsNbDatasetDrift", "exp_alerts": [
            {"exp_labels": {"severity": "warning", "model": "churn", **exporter},
             "exp_annotations": drift_annotations}]},
    ]}  # fmt: skip
    champion = {"interval": "1m", "input_series": [
        series("mlops_nb_model_info", "1x30", model="churn", version="2", sha256="ab12",
               **server),
        series("mlops_nb_model_alias_info", "1x30", model="churn", alias="champion",
               version="1", **exporter),
    ], "alert_rule_test": [
        {"eval_time": "10m", "alertname": "MlopsNbServedVersionNotChampion", "exp_alerts": [
            {"exp_labels": {"severity": "warning", "model": "churn", "version": "2",
                            "sha256": "ab12", **server},
             "exp_annotations": {
                 "summary": "serve:8080 serves churn version 2, not the champion",
                 "description": "The server at serve:8080 answers with churn version 2 while "
                 "champion points at another version. A server started with NAME@champion "
                 "follows the alias within seconds; one started with NAME:VERSION does not."}},
        ]},
    ]}  # fmt: skip
    late = {"interval": "1m", "input_series": [
        series("mlops_nb_pipeline_last_success_timestamp_seconds", "0x3000", pipeline="train",
               **exporter),
    ], "alert_rule_test": [
        {"eval_time": "1d", "alertname": "MlopsNbPipelineLate", "exp_alerts": []},
        {"eval_time": "2d", "alertname": "MlopsNbPipelineLate", "exp_alerts": [
            {"exp_labels": {"severity": "warning", "pipeline": "train"},
             "exp_annotations": {
                 "summary": "Pipeline train has not succeeded for over 1d6h",
                 "description": "train is scheduled '0 3 * * *' (at most 1d between runs); its "
                 "last success was 2d 0h 0m 0s ago. See mlops-nb runs and the scheduler's own "
                 "log."}}]},
    ]}  # fmt: skip
    return {"rule_files": [rules_file], "evaluation_interval": "1m",
            "tests": [no_drift, drift, champion, late]}  # fmt: skip


def test_durations_read_and_written_as_prometheus_spells_them():
    assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400
    assert parse_duration("2d") == 172800 and parse_duration("0s") == 0
    assert format_duration(108000) == "1d6h" and format_duration(300) == "5m"
    for bad in ("", "10", "m", "1.5h", "10 m"):
        with pytest.raises(Exception, match="is not a duration"):
            parse_duration(bad, "--for")


def test_alerts_refuses_bad_options_in_one_line(tmp_path, log_path):
    mn.open_log(log_path).close()
    for args in (["--for", "ten minutes"], ["--min", "accuracy"], ["--max-error-rate", "2"]):
        result = run_cli("--log", log_path, "alerts", "--out", tmp_path / "r.yml", *args)
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("mlops-nb alerts:")


# ---------------------------------------------------------------------- the real Prometheus
def _pipeline_notebook(path: Path) -> Path:
    parameters = new_code_cell("fail = False")
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        parameters,
        new_code_cell("%%mlops track train\nimport mlops_nb as mn\nmn.log_metric('rows', 42.0)"),
        new_code_cell("if fail:\n    raise ValueError('asked to fail')"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))
    return path


def _registered_model(log) -> float:
    """churn version 1 at champion, from a run that logged its accuracy; returns it."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 200), "income": rng.normal(50, 15, 200)})
    target = (frame["age"] + rng.normal(0, 5, 200) > 40).astype(int)
    model = LogisticRegression().fit(frame, target)
    accuracy = float(model.score(frame, target))
    with log.start_run(experiment="churn") as run:
        run.log_metric("accuracy", accuracy)
    register_pipeline(log, "churn", model, training_frame=frame, run_id=run.run_id,
                      alias="champion")  # fmt: skip
    return accuracy


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, promql: str) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def wait_for(self, promql: str, expected: float, seconds: float = 60.0) -> float:
        def matches():
            found = self.value(promql)
            return found is not None and math.isclose(found, expected, rel_tol=1e-9)

        until(matches, f"{promql} == {expected}", seconds)
        return expected


def test_prometheus_scrapes_the_exporter_a_served_model_and_the_pushgateway(tmp_path, log_path):
    prometheus_bin = debian_command("prometheus", "prometheus")
    gateway_bin = debian_command("prometheus-pushgateway", "prometheus-pushgateway")
    log = mn.open_log(log_path)
    accuracy = _registered_model(log)
    drift_check(log, "c1", "churn", {"age": (0.001, True), "income": (0.3, False)}, 0.5,
                time.time())  # fmt: skip
    log.flush()
    rules = tmp_path / "rules.yml"
    written = run_cli("--log", log_path, "alerts", "--out", rules, "--for", "0s")
    assert written.returncode == 0, written.stderr

    ports = {name: free_port() for name in ("exporter", "serve", "gateway", "prometheus")}
    gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "mlops_nb_exporter",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]},
            {"job_name": "mlops_nb_serve",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['serve']}"]}]},
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{ports['gateway']}"]}]},
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    started: list[Process] = []
    try:
        started.append(Process(
            cli(log_path, "exporter", "--port", str(ports["exporter"])),
            f"http://127.0.0.1:{ports['exporter']}/metrics",
        ))  # fmt: skip
        started.append(Process(
            cli(log_path, "serve", "churn@champion", "--port", str(ports["serve"])),
            f"http://127.0.0.1:{ports['serve']}/health",
        ))  # fmt: skip
        started.append(Process(
            [gateway_bin, f"--web.listen-address=127.0.0.1:{ports['gateway']}"],
            f"{gateway_url}/-/ready", cwd=tmp_path,
        ))  # fmt: skip
        started.append(Process(
            [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
            f"http://127.0.0.1:{ports['prometheus']}/-/ready", cwd=tmp_path,
        ))  # fmt: skip
        prometheus = Prometheus(f"http://127.0.0.1:{ports['prometheus']}")

        rows = [[41.0, 52.0], [25.0, 60.0]]
        for _ in range(3):
            answer = httpx.post(f"http://127.0.0.1:{ports['serve']}/invocations", timeout=30,
                                json={"dataframe_split": {"columns": ["age", "income"],
                                                          "data": rows}})  # fmt: skip
            assert answer.status_code == 200, answer.text

        notebook = _pipeline_notebook(tmp_path / "tiny.ipynb")
        ran = run_cli("--log", log_path, "run", notebook, "-o", tmp_path / "out1.ipynb",
                      "--pushgateway", gateway_url)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert "warning" not in ran.stderr
        failed = run_cli("--log", log_path, "run", notebook, "-p", "fail", "True", "-o",
                         tmp_path / "out2.ipynb",
                         env=subprocess_env(MLOPS_NB_PUSHGATEWAY=gateway_url))  # fmt: skip
        assert failed.returncode == 1 and "warning" not in failed.stderr

        # the gateway holds one group for the pipeline: the success stays after the failure
        pushed = samples(httpx.get(f"{gateway_url}/metrics").text)
        group = {"job": "mlops_nb", "pipeline": "tiny", "instance": ""}
        success = value(pushed, "mlops_nb_pipeline_last_success_timestamp_seconds", **group)
        failure = value(pushed, "mlops_nb_pipeline_last_failure_timestamp_seconds", **group)
        assert success is not None and failure is not None and failure > success
        assert value(pushed, "mlops_nb_pipeline_last_duration_seconds", **group) > 0
        assert value(pushed, "mlops_nb_pipeline_failures_total", **group) == 1
        assert value(pushed, "mlops_nb_pipeline_metric", metric="rows", **group) == 42.0
        pushed_groups = {dict(labels).get("pipeline") for name, labels in pushed
                         if name.startswith("mlops_nb_pipeline_")}  # fmt: skip
        assert pushed_groups == {"tiny"}  # one constant group, never one per run

        # PromQL through Prometheus gives back what the log holds
        prometheus.wait_for('mlops_nb_model_version_metric{model="churn",version="1",'
                            'metric="accuracy"}', accuracy)  # fmt: skip
        prometheus.wait_for('mlops_nb_drift_share{model="churn"}', 0.5)
        prometheus.wait_for('mlops_nb_column_drift_score{model="churn",column="age"}', 0.001)
        prometheus.wait_for('sum(mlops_nb_log_requests_total{model="churn",code="200"})', 3)
        prometheus.wait_for('mlops_nb_runs{experiment="churn",status="finished"}', 1)
        prometheus.wait_for('sum(mlops_nb_runs{status="failed"})', 1)
        prometheus.wait_for('sum(mlops_nb_requests_total{job="mlops_nb_serve",code="200"})', 3)
        served = until(lambda: prometheus.query('mlops_nb_model_info{job="mlops_nb_serve"}'),
                       "the served model's info")  # fmt: skip
        assert [(s["metric"]["model"], s["metric"]["version"]) for s in served] == [("churn", "1")]
        champion = until(lambda: prometheus.query('mlops_nb_model_alias_info{alias="champion"}'),
                         "the champion alias")  # fmt: skip
        assert champion[0]["metric"]["version"] == "1"
        prometheus.wait_for('mlops_nb_pipeline_last_success_timestamp_seconds{job="mlops_nb",'
                            'pipeline="tiny"}', success)  # fmt: skip
        from_log = until(lambda: prometheus.value(
            'mlops_nb_pipeline_last_success_timestamp_seconds{job="mlops_nb_exporter",'
            'pipeline="tiny"}'), "the pipeline's last success from the exporter")  # fmt: skip
        assert abs(from_log - success) < 60
        assert prometheus.value('mlops_nb_pipeline_last_duration_seconds{job="mlops_nb",'
                                'pipeline="tiny"}') > 0  # fmt: skip

        # the generated rules are loaded: drift fires, the served version is the champion
        def firing():
            answer = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=10).json()
            return {(a["labels"]["alertname"], a["labels"].get("model"))
                    for a in answer["data"]["alerts"] if a["state"] == "firing"}  # fmt: skip

        alerts = until(lambda: ("MlopsNbDatasetDrift", "churn") in firing() and firing(),
                       "the drift alert to fire")  # fmt: skip
        assert ("MlopsNbServedVersionNotChampion", "churn") not in alerts
    finally:
        for process in reversed(started):
            process.stop()
