"""``mlops-nb`` as a user runs it: real processes, real log files, exit codes and stderr."""

from __future__ import annotations

import csv
import io
import json

from conftest import run_cli

import mlops_nb as mn


def _seed(log_path):
    log = mn.open_log(log_path)
    for lr, acc in [(0.1, 0.8), (0.01, 0.9)]:
        with log.start_run(experiment="churn", params={"lr": lr}) as run:
            run.log_metric("acc", acc)
    log.close()
    return log


def test_runs_in_every_format(log_path):
    _seed(log_path)
    table = run_cli("--log", log_path, "runs", "--order-by", "metrics.acc DESC")
    assert table.returncode == 0, table.stderr
    header, first, second = table.stdout.splitlines()
    assert "params.lr" in header and "metrics.acc" in header
    assert "0.01" in first and "0.9" in first and "0.1" in second
    rows = list(csv.DictReader(io.StringIO(run_cli("--log", log_path, "runs", "-f", "csv").stdout)))
    assert sorted(float(r["metrics.acc"]) for r in rows) == [0.8, 0.9]
    records = json.loads(run_cli("--log", log_path, "runs", "-f", "json", "-n", "1").stdout)
    assert len(records) == 1 and records[0]["experiment"] == "churn"
    assert records[0]["git_commit"] is None  # JSON null, not NaN


def test_runs_finds_the_log_from_a_subfolder(log_path, tmp_path):
    _seed(log_path)
    sub = tmp_path / "notebooks" / "eda"
    sub.mkdir(parents=True)
    shown = run_cli("runs", "--where", "params.lr > 0.05", "-f", "csv", cwd=sub)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 2


def test_show_and_sql(log_path):
    _seed(log_path)
    run_id = mn.open_log(log_path).runs(where="params.lr = 0.1")["run_id"][0]
    shown = run_cli("--log", log_path, "show", run_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert f"run {run_id}  (finished)" in shown.stdout and "lr = 0.1" in shown.stdout
    as_json = json.loads(run_cli("--log", log_path, "show", run_id, "-f", "json").stdout)
    assert as_json["params"] == {"lr": 0.1} and as_json["metrics"] == {"acc": 0.8}
    counted = run_cli("--log", log_path, "sql", "SELECT count(*) AS n FROM runs", "-f", "json")
    assert json.loads(counted.stdout) == [{"n": 2}]
    experiments = run_cli("--log", log_path, "experiments", "-f", "csv")
    assert experiments.stdout.splitlines()[1].startswith("churn,")


def test_errors_are_one_line_on_stderr_with_exit_code_2(log_path, tmp_path):
    _seed(log_path)
    cases = {
        ("show", "nosuchrun"): "no run 'nosuchrun'",
        ("sql", "SELEC 1"): "SQL error",
        ("sql", "DELETE FROM store.runs"): "read-only",
        ("runs", "--where", "params.nope = 1"): "unknown param 'nope'",
        ("runs", "--format", "xml"): "invalid choice",
        ("frobnicate",): "invalid choice",
    }
    for args, message in cases.items():
        result = run_cli("--log", log_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr, (args, result.stderr)
    missing = run_cli("--log", tmp_path / "none" / "log.duckdb", "runs")
    assert missing.returncode == 2 and "no log at" in missing.stderr
    assert not (tmp_path / "none").exists()  # reading never creates a log


def test_help_and_version_for_every_command():
    assert run_cli("--version").stdout.strip() == f"mlops-nb {mn.__version__}"
    for command in ("runs", "show", "sql", "experiments", "run", "pipeline", "sweep", "schedule"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage: mlops-nb " + command in result.stdout
