"""The Python API on a real log file: recording, querying, and the errors users see."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import subprocess_env

import mlops_nb as mn
from mlops_nb.errors import NoActiveRunError, QueryError, RunNotFoundError
from mlops_nb.log.location import default_log_path


def test_log_location_follows_env_var_then_nearest_mlops_folder_then_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    nested = project / "notebooks" / "deep"
    nested.mkdir(parents=True)
    assert default_log_path(nested) == nested / ".mlops" / "log.duckdb"
    (project / ".mlops").mkdir()
    assert default_log_path(nested) == project / ".mlops" / "log.duckdb"
    monkeypatch.setenv("MLOPS_NB_LOG", str(tmp_path / "elsewhere.duckdb"))
    assert default_log_path(nested) == tmp_path / "elsewhere.duckdb"
    monkeypatch.delenv("MLOPS_NB_LOG")
    monkeypatch.chdir(nested)
    assert mn.open_log().path == project / ".mlops" / "log.duckdb"


def test_a_run_block_ends_finished_or_failed_with_the_exception(log_path):
    log = mn.open_log(log_path)
    with log.start_run(experiment="churn", name="good") as run:
        run.log_metric("acc", 0.9)
    with pytest.raises(ZeroDivisionError), log.start_run(experiment="churn", name="bad"):
        1 / 0  # noqa: B018
    runs = log.runs(order_by="start_time")
    assert runs["name"].tolist() == ["good", "bad"]
    assert runs["status"].tolist() == ["finished", "failed"]
    assert runs["error"].tolist()[1] == "ZeroDivisionError: division by zero"
    assert runs["source"].tolist() == ["script", "script"]
    assert (runs["duration_s"] >= 0).all()


def test_params_keep_their_types_and_secrets_never_reach_disk(log_path):
    log = mn.open_log(log_path)
    params = {"lr": 0.05, "depth": np.int64(7), "use_pca": True, "model": "forest",
              "layers": [64, 32], "grid": {"C": [1, 10]}, "seed": None,
              "db_password": "hunter2", "API_KEY": "sk-123", "github_token": "ghp_x"}  # fmt: skip
    with log.start_run(params=params) as run:
        pass
    log.flush()
    record = log.run(run.run_id)
    assert record.params["lr"] == 0.05 and isinstance(record.params["depth"], int)
    assert record.params["use_pca"] is True and record.params["layers"] == [64, 32]
    assert record.params["grid"] == {"C": [1, 10]} and record.params["seed"] is None
    for secret in ("db_password", "API_KEY", "github_token"):
        assert record.params[secret] == "***"
    types = log.sql("SELECT name, value_type FROM params").set_index("name")["value_type"]
    assert types["lr"] == "float" and types["depth"] == "int" and types["model"] == "str"
    for path in log_path.parent.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"hunter2" not in content and b"sk-123" not in content, path


def test_metric_history_steps_latest_values_and_batches(log_path):
    log = mn.open_log(log_path)
    with log.start_run() as run:
        for value in (0.9, 0.7, 0.4):
            run.log_metric("loss", value)  # steps 0, 1, 2
        run.log_metric("loss", 0.8, step=1)  # a late point for an old step
        run.log_metrics({"acc": 0.5, "f1": 0.4}, step=0)
        run.log_metrics({"acc": 0.6, "f1": 0.45})
        added = run.log_batch({"key": ["val_loss"] * 1000, "value": np.linspace(1, 0, 1000)})
    assert added == 1000
    record = log.run(run.run_id)
    history = record.metric_history
    loss = history[history["key"] == "loss"].sort_values(["step", "timestamp"])
    assert loss["step"].tolist() == [0, 1, 1, 2]
    assert record.metrics == {"acc": 0.6, "f1": 0.45, "loss": 0.4, "val_loss": 0.0}
    val = history[history["key"] == "val_loss"]
    assert val["step"].tolist() == list(range(1000))
    with pytest.raises(TypeError, match="metric 'acc' must be a number, got str"):
        run.log_metric("acc", "high")


def test_runs_filters_with_or_orders_by_metrics_and_limits(log_path):
    log = mn.open_log(log_path)
    for lr, acc, model in [(0.1, 0.80, "forest"), (0.01, 0.95, "linear"), (1.0, 0.60, "forest"),
                           (0.5, 0.70, "boost")]:  # fmt: skip
        with log.start_run(experiment="grid", params={"lr": lr, "model": model}) as run:
            run.log_metric("acc", acc)
    with log.start_run(experiment="other", params={"lr": 3}) as run:
        run.set_tags({"team": "fraud"})
    grid = log.runs(experiment="grid")
    assert len(grid) == 4
    assert {"params.lr", "params.model", "metrics.acc", "tags"} <= set(grid.columns)
    chosen = log.runs(where="params.lr < 0.05 OR params.model = 'boost'", order_by="metrics.acc")
    assert chosen["metrics.acc"].tolist() == [0.70, 0.95]
    top = log.runs(where="metrics.acc IS NOT NULL", order_by="metrics.acc DESC", limit=2)
    assert top["params.lr"].tolist() == [0.01, 0.1]
    assert log.runs(where="tags['team'] = 'fraud'")["experiment"].tolist() == ["other"]
    page = log.runs(order_by="metrics.acc DESC NULLS LAST", limit=2, offset=1)
    assert page["metrics.acc"].tolist() == [0.80, 0.70]  # the 2nd and 3rd best
    assert log.count_runs() == 5 and log.count_runs(experiment="grid") == 4
    assert log.count_runs(where="params.lr < 0.05 OR params.model = 'boost'") == 2
    assert log.runs(where="name = 'params.lr'").empty  # a string literal is left alone
    with pytest.raises(QueryError, match="unknown param 'depth'.*params logged: lr, model"):
        log.runs(where="params.depth > 3")
    with pytest.raises(QueryError, match="bad where"):
        log.runs(where="metrics.acc >")


def test_a_param_that_changes_type_widens_its_column(log_path):
    log = mn.open_log(log_path)
    for value in (3, 2.5, "auto"):
        with log.start_run(params={"C": value}):
            pass
    log.flush()
    values = log.runs(order_by="start_time")["params.C"].tolist()
    assert values == ["3", "2.5", "auto"]


def test_sql_is_read_only_and_one_statement(log_path):
    log = mn.open_log(log_path)
    with log.start_run():
        pass
    assert log.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1
    for statement in (
        "DELETE FROM store.runs",
        "DROP VIEW runs",
        "COPY runs TO 'x.csv'",
        "ATTACH 'other.duckdb'",
        "CREATE TABLE t (a INT)",
        "SET threads = 1",
    ):
        with pytest.raises(QueryError, match="read-only"):
            log.sql(statement)
    with pytest.raises(QueryError, match="one SQL statement at a time"):
        log.sql("SELECT 1; SELECT 2")
    with pytest.raises(QueryError, match="SQL error"):
        log.sql("SELECT nope FROM runs")
    assert log.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1


def test_run_lookup_by_prefix_and_clear_errors(log_path):
    log = mn.open_log(log_path)
    with log.start_run(run_id="abcdef0011223344") as run:
        run.log_param("k", 1)
    assert log.run("abcdef").params == {"k": 1}
    with pytest.raises(RunNotFoundError, match="no run 'zzzz'"):
        log.run("zzzz")
    with log.start_run(run_id="abcdef9999"):
        pass
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        log.run("abcdef")
    with pytest.raises(RunNotFoundError, match="not a run id"):
        log.run("'; DROP TABLE runs; --")


def test_artifacts_are_stored_once_by_content(log_path, tmp_path):
    log = mn.open_log(log_path)
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("same bytes")
    second.write_text("same bytes")
    with log.start_run() as run:
        digest_a = run.log_artifact(first)
        digest_b = run.log_artifact(second, name="copy.txt")
    assert digest_a == digest_b
    stored = [p for p in log.artifacts_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].read_text() == "same bytes"
    artifacts = log.run(run.run_id).artifacts
    assert artifacts["name"].tolist() == ["a.txt", "copy.txt"]
    assert set(artifacts["sha256"]) == {digest_a}
    with pytest.raises(FileNotFoundError, match="is not a file"):
        run.log_artifact(tmp_path)


def test_module_level_logging_uses_the_active_run(log_path):
    with pytest.raises(NoActiveRunError, match="no active run"):
        mn.log_metric("acc", 1.0)
    log = mn.open_log(log_path)
    with log.start_run() as run:
        mn.log_metric("acc", 0.5)
        mn.log_params({"lr": 0.1})
    record = log.run(run.run_id)
    assert record.metrics == {"acc": 0.5} and record.params == {"lr": 0.1}


def test_other_processes_see_records_within_a_second_or_so_without_a_flush(log_path, tmp_path):
    mn.open_log(log_path)
    script = tmp_path / "slow.py"
    script.write_text(
        "import time, mlops_nb as mn\n"
        f"run = mn.open_log({str(log_path)!r}).start_run(name='live')\n"
        "run.log_metric('progress', 0.25)\n"
        "print('logged', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, str(script)], env=subprocess_env(),
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "logged"
        logged_at = time.monotonic()
        log = mn.open_log(log_path)
        seen = pd.DataFrame()
        while seen.empty and time.monotonic() - logged_at < 10:
            seen = log.sql("SELECT value FROM metrics WHERE key = 'progress'")
            time.sleep(0.1)
        assert seen["value"].tolist() == [0.25]
        assert log.runs()["status"].tolist() == ["running"]  # alive, so not crashed
    finally:
        child.kill()
        child.wait()
    assert mn.open_log(log_path).runs()["status"].tolist() == ["crashed"]


def test_structured_filters_bind_their_values_and_check_their_fields(log_path):
    from mlops_nb.log.filters import Condition, Sort

    log = mn.open_log(log_path)
    for name, lr in (("it's", 0.1), ("plain", 0.5), ("x' OR '1'='1", 0.9)):
        with log.start_run(experiment="quotes", name=name, params={"lr": lr}) as run:
            run.log_metric("acc", lr)
            run.set_tags({"mlops.stage": "train" if lr < 0.6 else "evaluate"})
    found = log.runs(filters=[Condition("name", "=", "it's")])
    assert found["name"].tolist() == ["it's"]
    injected = log.runs(filters=[Condition("name", "=", "x' OR '1'='1")])
    assert injected["name"].tolist() == ["x' OR '1'='1"]
    ranked = log.runs(filters=[Condition("params.lr", ">=", 0.1)], order_by=Sort("metrics.acc"))
    assert ranked["name"].tolist() == ["x' OR '1'='1", "plain", "it's"]
    staged = log.runs(filters=[Condition("stage", "=", "train")], order_by=Sort("name", False))
    assert staged["name"].tolist() == ["it's", "plain"]
    assert log.count_runs(filters=[Condition("name", "contains", "PLA")]) == 1
    with pytest.raises(QueryError, match="unknown param 'nope'"):
        log.runs(filters=[Condition("params.nope", "=", 1)])
    with pytest.raises(QueryError, match="unknown field"):
        log.runs(filters=[Condition("name; DROP TABLE runs", "=", 1)])
    with pytest.raises(QueryError, match="unknown filter op"):
        log.runs(filters=[Condition("name", "LIKE", "%")])


def test_runs_of_a_notebook_are_found_by_path_or_file_name(log_path):
    log = mn.open_log(log_path)
    for path, status in (("work/churn.ipynb", "finished"), ("/abs/work/churn.ipynb", "failed"),
                         ("other.ipynb", "finished"), ("churn.ipynb.bak", "finished")):  # fmt: skip
        run = log.start_run(experiment="nb", notebook_path=path)
        run.end(status)
    found = log.notebook_runs("churn.ipynb")
    assert sorted(found["status"]) == ["failed", "finished"]
    latest_finished = log.latest_run_of("/somewhere/else/churn.ipynb")
    assert log.run(latest_finished).info["notebook_path"] == "work/churn.ipynb"
    assert log.latest_run_of("missing.ipynb") is None
    assert log.notebook_runs("churn.ipynb", status="failed", limit=1)["status"].tolist() == [
        "failed"
    ]


def test_a_deleted_log_gives_one_warning_from_the_background_and_a_clear_error(tmp_path):
    """Deleting the log's folder while a process writes and reads: no traceback from any
    thread, one warning saying what was not recorded, one-line errors on reads, and opening
    the log again starts a new one."""
    script = tmp_path / "delete.py"
    script.write_text(
        "import shutil, sys, time\n"
        "import mlops_nb as mn\n"
        "from mlops_nb.errors import LogGoneError\n"
        "folder = sys.argv[1] + '/.mlops'\n"
        "log = mn.open_log(folder + '/log.duckdb')\n"
        "run = log.start_run(experiment='x')\n"
        "run.log_metric('a', 1.0)\n"
        "log.flush()\n"
        "for i in range(30):\n"
        "    try:\n"
        "        log.runs()\n"
        "    except LogGoneError as error:\n"
        "        print('read:', error)\n"
        "    if i == 5:\n"
        "        shutil.rmtree(folder)\n"
        "    run.log_metric('a', float(i))\n"
        "    time.sleep(0.05)\n"
        "time.sleep(1.5)\n"
        "fresh = mn.open_log(folder + '/log.duckdb')\n"
        "with fresh.start_run(experiment='again') as again:\n"
        "    again.log_metric('b', 2.0)\n"
        "print('fresh runs:', fresh.runs()['experiment'].tolist())\n"
    )
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env=subprocess_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("mlops:")]
    assert len(warnings) == 1, done.stderr
    assert "was deleted while this process was using it" in warnings[0]
    assert "records were not recorded" in warnings[0]
    reads = [line for line in done.stdout.splitlines() if line.startswith("read:")]
    assert reads and all("was deleted while this process was using it" in r for r in reads)
    assert "fresh runs: ['again']" in done.stdout


def test_journal_lines_keep_nan_infinity_wide_integers_and_long_text(log_path):
    """Plain records are journaled by orjson, the rest by json: both must read back exactly."""
    log = mn.open_log(log_path)
    with log.start_run(experiment="journal") as run:
        run.log_metric("loss", float("nan"))
        run.log_metric("ratio", float("inf"))
        run.log_metric("acc", 0.25)
        run.log_param("seed", 2**70)
        run_id = run.run_id
    text = '{"columns": ["name"], "data": [["Zoë \\"quoted\\"\\nline"]]}' * 20_000
    row = {"request_id": "r1", "model_name": "m", "model_version": 1, "status": 200,
           "n_rows": 1, "inputs": text, "created_at": time.time()}  # fmt: skip
    log.record("requests", row)
    log.flush()
    metrics = log.sql(f"SELECT key, value FROM metrics WHERE run_id = '{run_id}' ORDER BY key")
    values = dict(zip(metrics["key"], metrics["value"], strict=True))
    assert values["acc"] == 0.25 and np.isinf(values["ratio"]) and np.isnan(values["loss"])
    assert log.run(run_id).params["seed"] == 2**70
    stored = log.sql("SELECT inputs FROM requests WHERE request_id = 'r1'")["inputs"].iloc[0]
    assert stored == text
