"""The whole loop, end to end, with real processes: the example notebook trained and served,
shifted traffic, ``mlops-nb monitor`` flags the shifted columns only, retrains on new labelled
data, the gate passes, the champion moves to version 2, the running server switches without a
failed request, and Prometheus shows the drift and the new version."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, debian_command, subprocess_env
from test_prometheus import Process, Prometheus, cli, free_port
from test_serve import Server, until

import mlops_nb
from mlops_nb.capture.checkpoint import load_value

CHURN = REPO / "example_notebooks" / "churn.ipynb"
SHIFTED = ("monthly_charges", "support_calls")
SMALL = ["-p", "n_customers", "2000", "-p", "n_estimators", "30"]


def _cli(project: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlops_nb.cli", *args]
    return subprocess.run(command, cwd=project, env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def _shift(frame: pd.DataFrame) -> pd.DataFrame:
    """New customers pay more and call support more often; nothing else changes."""
    shifted = frame.copy()
    shifted["monthly_charges"] = shifted["monthly_charges"] + 45.0
    shifted["support_calls"] = shifted["support_calls"] + 4
    return shifted


def _new_customers(n_rows: int, seed: int) -> pd.DataFrame:
    """A fresh export made by the notebook's own generator (its ingest cell), then shifted."""
    cell = next(c for c in nbformat.read(CHURN, 4).cells if c.get("id") == "ingest")
    source = "\n".join(cell.source.splitlines()[1:])  # without the %%mlops line
    definitions = source.split("\ncustomers = ")[0]
    namespace: dict = {"seed": seed, "n_customers": n_rows}
    exec(definitions, namespace)  # noqa: S102 - the example's own code, to make its data
    customers = namespace["make_customers"](n_rows, np.random.default_rng(seed))
    return _shift(customers)


class Traffic:
    """A client sending shifted rows in small requests until stopped; every answer kept."""

    def __init__(self, server: Server, frame: pd.DataFrame):
        self.answers: list[tuple[int, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        columns = list(frame.columns)
        rows = json.loads(frame.to_json(orient="values", date_format="iso"))
        self._bodies = [
            {"dataframe_split": {"columns": columns, "data": rows[i : i + 25]}}
            for i in range(0, len(rows), 25)
        ]
        self._thread = threading.Thread(target=self._send, args=(server,), daemon=True)
        self._thread.start()

    def _send(self, server: Server) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                try:
                    response = server.post("/invocations", client,
                                           json=self._bodies[i % len(self._bodies)])  # fmt: skip
                except httpx.TransportError as error:
                    self.errors.append(type(error).__name__)
                    return
                self.answers.append((response.status_code, response.headers.get("x-model-version")))
                i += 1
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example notebook run once (small) and its model registered as churn@champion."""
    project = tmp_path_factory.mktemp("monitoring")
    shutil.copy(CHURN, project / "churn.ipynb")
    run = _cli(project, "run", "churn.ipynb", *SMALL)
    assert run.returncode == 0, run.stderr
    registered = _cli(project, "models", "register", "churn", "--alias", "champion")
    assert registered.returncode == 0, registered.stderr
    log = mlops_nb.open_log(project / ".mlops" / "log.duckdb", create=False)
    record = log.run("latest")
    saved = log.checkpoints(record.run_id, names=["X_test"]).iloc[0]
    x_test = load_value(str(saved["format"]), log.artifacts_dir / str(saved["path"]))
    log.close()
    _new_customers(2000, seed=7).to_csv(project / "new customers.csv", index=False)
    return project, x_test


def test_monitor_without_retraining_exits_3_on_drift_and_0_without(trained, tmp_path):
    """Runs first: the next test moves the champion to a model of the shifted data."""
    project, x_test = trained
    _shift(x_test).to_csv(tmp_path / "shifted.csv", index=False)
    x_test.to_csv(tmp_path / "same.csv", index=False)
    monitor = ["monitor", "churn@champion", "--drift-share", "0.2", "--current"]
    drifted = _cli(project, *monitor, str(tmp_path / "shifted.csv"))
    assert drifted.returncode == 3, drifted.stdout + drifted.stderr
    assert "not retrained" in drifted.stdout
    calm = _cli(project, *monitor, str(tmp_path / "same.csv"))
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "none of 10 columns drifted" in calm.stdout
    refused = _cli(project, "monitor", "churn@champion", "--requests", "--retrain", "churn.ipynb")
    assert refused.returncode == 2 and "--promote-if" in refused.stderr


def test_monitor_retrains_on_drift_and_the_server_follows_the_new_champion(trained):
    project, x_test = trained
    log_path = project / ".mlops" / "log.duckdb"
    server = Server(log_path, "churn@champion")
    traffic, watching = None, []
    try:
        prometheus = _prometheus(project, log_path, server, watching)
        traffic = Traffic(server, _shift(x_test))
        until(lambda: len(traffic.answers) >= 40, "shifted traffic answered")
        reader = mlops_nb.open_log(log_path, create=False)  # the server merges every few seconds
        until(lambda: len(reader.served_requests("churn")) >= 40, "requests in the log")
        reader.close()

        monitored = _cli(
            project, "monitor", "churn@champion", "--requests", "--retrain", "churn.ipynb",
            "-p", "data_path", "new customers.csv", "-p", "n_estimators", "30",
            "--promote-if", "accuracy >= champion - 0.05", "--drift-share", "0.2",
        )  # fmt: skip
        assert monitored.returncode == 0, monitored.stdout + monitored.stderr
        assert "2 of 10 columns drifted: monthly_charges, support_calls" in monitored.stdout

        log = mlops_nb.open_log(log_path, create=False)
        assert log.model_version("churn", alias="champion")["version"] == 2
        until(lambda: any(v == "2" for _, v in traffic.answers[-5:]), "answers from version 2")
        traffic.stop()
        assert not traffic.errors
        assert {status for status, _ in traffic.answers} == {200}
        assert {version for _, version in traffic.answers} == {"1", "2"}

        drift = log.drift_results("churn")
        inputs = drift[(drift["target"] == "inputs") & drift["drifted"]]
        assert set(inputs["column"]) == set(SHIFTED)
        steps = log.monitor_events("churn")
        assert list(steps["step"])[-6:] == ["drift", "performance", "retrain", "register", "gate",
                                       "promote"]  # fmt: skip
        retrain = steps[steps["step"] == "retrain"].iloc[0]
        assert retrain["reason"] == (
            "retrained because 2 of 10 columns drifted: monthly_charges, support_calls"
        )
        # Prometheus sees the drift the log holds and the new champion, served
        share = float(drift[(drift["target"] == "dataset")].iloc[0]["score"])
        prometheus.wait_for('mlops_nb_drift_share{model="churn"}', share)
        prometheus.wait_for('mlops_nb_dataset_drift{model="churn"}', 1.0)
        prometheus.wait_for('mlops_nb_model_alias_info{model="churn",alias="champion",version="2"}',
                            1.0)  # fmt: skip
        prometheus.wait_for('mlops_nb_model_info{job="serve",version="2"}', 1.0)
        moves = log.alias_history("churn", "champion")
        assert moves.iloc[-1]["to_version"] == 2
        assert moves.iloc[-1]["reason"].startswith("retrained because 2 of 10 columns drifted")
        log.close()
    finally:
        if traffic is not None:
            traffic.stop()
        for process in watching:
            process.stop()
        server.stop()


def _prometheus(project: Path, log_path: Path, server: Server, started: list) -> Prometheus:
    """The real Prometheus scraping the exporter (the log) and the served model, every second."""
    binary = debian_command("prometheus", "prometheus")
    ports = {"exporter": free_port(), "prometheus": free_port()}
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "exporter",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]},
            {"job_name": "serve", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]},
        ],
    }  # fmt: skip
    (project / "prometheus.yml").write_text(yaml.safe_dump(config))
    started.append(Process(cli(log_path, "exporter", "--port", str(ports["exporter"])),
                           f"http://127.0.0.1:{ports['exporter']}/metrics"))  # fmt: skip
    url = f"http://127.0.0.1:{ports['prometheus']}"
    started.append(Process(
        [binary, f"--config.file={project / 'prometheus.yml'}",
         f"--storage.tsdb.path={project / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
        f"{url}/-/ready", cwd=project,
    ))  # fmt: skip
    return Prometheus(url)
