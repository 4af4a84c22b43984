"""Retention and erasure on real logs: two real ``mlops-nb run`` pipelines (one made 100 days
old), a version registered from the old one, served requests with hashed emails; then purges
by age, run and date, ``forget`` of one email, the retention policy applied by a writer that
opens the log, the storage report, a crash midway, and a purge racing a writer process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, subprocess_env
from nbformat.v4 import new_code_cell, new_notebook

import mlops_nb as mn
from mlops_nb import retention
from mlops_nb.capture import checkpoint, pii
from mlops_nb.log.erasure import PENDING_KEY, ErasureError
from mlops_nb.registry.load import load_model

ALICE = "alice@example.com"
DAY = 86400.0


# ---------------------------------------------------------------------- the project
def _notebook(path: Path) -> None:
    parameters = new_code_cell("rows: int = 30")
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        parameters,
        new_code_cell("%%mlops track ingest\nimport pandas as pd\n"
                      "customers = pd.read_csv('customers.csv').head(rows)"),
        new_code_cell("%%mlops track clean\nclean = customers.dropna().reset_index(drop=True)\n"
                      "features = clean[['age', 'income']]\nlabels = clean['churned']"),
        new_code_cell("%%mlops track train\nfrom sklearn.linear_model import LogisticRegression\n"
                      "model = LogisticRegression().fit(features, labels)"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))


def _customers(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    emails = [f"user{i}@example.org" for i in range(n)]
    emails[3] = ALICE
    frame = pd.DataFrame({"email": emails, "age": rng.integers(18, 80, n),
                          "income": rng.normal(50, 10, n).round(1)})  # fmt: skip
    frame["churned"] = (frame["age"] < 40).astype(int)
    return frame


def _income(request: int) -> float:
    """A value only request ``r<request>`` holds, to look for in the log file's bytes."""
    return 70000.0 + request + 0.4375


def _in_log_file(log, text: str) -> bool:
    log.close()
    return text.encode() in log.path.read_bytes()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    """Built once: run A (100 days old, a version registered from it), run B (today), and
    five requests (two 100 days old; Alice's email in one old and one new)."""
    folder = tmp_path_factory.mktemp("project")
    _customers().to_csv(folder / "customers.csv", index=False)
    _notebook(folder / "customers.ipynb")
    runs = []
    for rows in ("30", "25"):
        result = run_cli("run", "customers.ipynb", "-p", "rows", rows, cwd=folder)
        assert result.returncode == 0, result.stderr
    log_path = folder / ".mlops" / "log.duckdb"
    log = mn.open_log(log_path)
    runs = log.runs(order_by="start_time")["run_id"].tolist()
    old, new = runs
    mn.register_model("churn", run=old, log=log, alias="champion", verify=False)
    key = pii.hash_key(log_path)
    now = time.time()
    sent = [
        (ALICE, 100),
        ("bob@example.org", 100),
        (ALICE, 0),
        ("carol@example.org", 0),
        ("dan@example.org", 0),
    ]  # (email, days ago)
    for i, (email, age) in enumerate(sent):
        log.record("requests", {
            "request_id": f"r{i}", "model_name": "churn", "model_version": 1,
            "protocol": "mlflow", "status": 200, "n_rows": 1, "latency_ms": 1.0,
            "inputs": json.dumps({"columns": ["age", "income", "email"],
                                  "data": [[41, _income(i), pii.keyed_hash(email, key)]]}),
            "outputs": "[0]", "server": "test", "created_at": now - age * DAY,
        })  # fmt: skip
    log.close()
    with duckdb.connect(str(log_path)) as con:  # run A happened 100 days ago
        for table in ("checkpoints", "artifacts", "models", "datasets", "cells"):
            column = "start_time" if table == "cells" else "created_at"
            con.execute(f"UPDATE store.{table} SET {column} = {column} - INTERVAL 100 DAY "
                        "WHERE run_id = ?", [old])  # fmt: skip
        con.execute("UPDATE store.runs SET start_time = start_time - INTERVAL 100 DAY, "
                    "end_time = end_time - INTERVAL 100 DAY WHERE run_id = ?", [old])  # fmt: skip
    return {"folder": folder, "old": old, "new": new}


@pytest.fixture
def project(template, tmp_path) -> dict:
    """A fresh copy of the template project, its log open."""
    folder = tmp_path / "project"
    shutil.copytree(template["folder"], folder, symlinks=True)
    log = mn.open_log(folder / ".mlops" / "log.duckdb", create=False)
    yield {**template, "folder": folder, "log": log}
    log.close()


def _checkpoints(log, run_id: str) -> pd.DataFrame:
    saved = log.stored_checkpoints()
    return saved[saved["run_id"] == run_id]


def _files(log, run_id: str) -> list[Path]:
    return [log.artifacts_dir / p for p in _checkpoints(log, run_id)["path"]]


def _payloads(log) -> dict[str, bool]:
    frame = log.sql("SELECT request_id, inputs IS NOT NULL AS kept FROM requests")
    return dict(zip(frame["request_id"], frame["kept"], strict=True))


def _cli_json(project: dict, *args: str) -> dict:
    result = run_cli(*args, "--format", "json", cwd=project["folder"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _everything(folder: Path) -> dict[str, int]:
    """Every file under the artifact store, by path and size (to prove nothing changed)."""
    store = folder / ".mlops" / "artifacts"
    return {str(p.relative_to(store)): p.stat().st_size for p in store.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------- purge
def test_purge_older_than_removes_old_checkpoints_payloads_and_artifacts_not_registered(project):
    log, old, new = project["log"], project["old"], project["new"]
    old_files, new_files = _files(log, old), _files(log, new)
    assert old_files and all(p.is_file() for p in old_files)
    before = _everything(project["folder"])

    planned = _cli_json(project, "purge", "--older-than", "90d", "--dry-run")["removed"]
    assert planned["checkpoints"] == len(old_files)
    assert planned["request_payloads"] == 2
    assert planned["artifacts"] == 1  # run A's executed notebook; its model is registered
    assert planned["models_unstored"] == 0
    assert _everything(project["folder"]) == before  # a dry run changes nothing
    assert log.erasures().empty and all(_payloads(log).values())

    removed = _cli_json(project, "purge", "--older-than", "90d")["removed"]
    assert {k: removed[k] for k in planned if k != "erasure_id"} == planned
    assert not any(p.exists() for p in old_files)
    assert not (log.artifacts_dir / "checkpoints" / old).exists()
    assert all(p.is_file() for p in new_files) and len(_checkpoints(log, new)) == len(new_files)
    assert _checkpoints(log, old).empty
    assert _payloads(log) == {"r0": False, "r1": False, "r2": True, "r3": True, "r4": True}
    assert len(log.sql("SELECT * FROM requests")) == 5  # the requests themselves stay
    artifacts = log.sql("SELECT run_id, kind FROM artifacts")
    assert set(artifacts[artifacts["run_id"] == old]["kind"]) == {"model"}
    # the registered version still loads: its pipeline and the part it came from are kept
    assert load_model(log, "churn@champion").version == 1
    part = log.model_version("churn", 1)["parts"][0]["sha256"]
    assert (log.artifacts_dir / part[:2] / part).is_file()

    erasure = log.erasures().iloc[0]
    assert erasure["action"] == "purge"
    assert json.loads(erasure["criteria"])["older_than"] == "90d"
    recorded = json.loads(erasure["removed"])
    assert recorded["checkpoints"] == len(old_files) and recorded["bytes"] == removed["bytes"]
    assert recorded["runs"] == [old]

    again = _cli_json(project, "purge", "--older-than", "90d")["removed"]
    assert (again["checkpoints"], again["request_payloads"], again["artifacts"],
            again["files"]) == (0, 0, 0, 0)  # fmt: skip


def test_purge_of_a_run_removes_its_checkpoints_and_unregistered_model(project):
    log, old, new = project["log"], project["old"], project["new"]
    new_files, old_files = _files(log, new), _files(log, old)
    model = log.run(new).models
    sha = model["artifact_sha256"].iloc[0]
    assert (log.artifacts_dir / sha[:2] / sha).is_file()

    result = run_cli("purge", "--run", new[:8], cwd=project["folder"])
    assert result.returncode == 0, result.stderr
    assert f"removed: {len(new_files)} checkpoints" in result.stdout
    assert not any(p.exists() for p in new_files)
    assert not (log.artifacts_dir / sha[:2] / sha).exists()
    record = log.run(new)
    assert record.models["artifact_sha256"].isna().all()  # described, no longer stored
    assert record.artifacts.empty
    assert all(p.is_file() for p in old_files)  # run A untouched
    assert all(_payloads(log).values())

    with log.start_run(experiment="live") as live, pytest.raises(ErasureError, match="running"):
        retention.purge(log, run_id=live.run_id)


def test_purge_of_request_payloads_before_a_date(project):
    log = project["log"]
    files = _everything(project["folder"])
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 50 * DAY))
    assert _in_log_file(log, str(_income(0)))
    removed = _cli_json(project, "purge", "--requests-before", cutoff, "--compact")["removed"]
    assert removed["request_payloads"] == 2 and removed["checkpoints"] == 0
    assert _payloads(log) == {"r0": False, "r1": False, "r2": True, "r3": True, "r4": True}
    assert _everything(project["folder"]) == files
    # compacted: not even the free space of the file keeps the old payloads
    assert not _in_log_file(log, str(_income(0))) and _in_log_file(log, str(_income(2)))
    assert len(log.runs()) == 2 and load_model(log, "churn@champion").version == 1
    bad = run_cli("purge", "--requests-before", "last tuesday", cwd=project["folder"])
    assert bad.returncode == 2 and "not a date" in bad.stderr


# ---------------------------------------------------------------------- forget
def test_forget_finds_an_email_in_hashed_requests_and_encrypted_checkpoints(project):
    log, old, new = project["log"], project["old"], project["new"]
    found = _cli_json(project, "forget", "--column", "email", "--value", ALICE)
    key = pii.hash_key(log.path, create=False)
    assert found["value_hash"] == pii.keyed_hash(ALICE, key)
    assert found["found"]["requests"] == [
        {"model": "churn", "requests": 2, "rows": 2, "versions": [1]}
    ]
    places = {(c["run_id"], c["name"]) for c in found["found"]["checkpoints"]}
    assert places == {(run, name) for run in (old, new) for name in ("customers", "clean")}
    assert all(c["encrypted"] for c in found["found"]["checkpoints"])
    assert found["runs"] == sorted([old, new])
    assert found["removed"]["checkpoints"] == 4 and found["removed"]["request_payloads"] == 2

    assert _payloads(log) == {"r0": False, "r1": True, "r2": False, "r3": True, "r4": True}
    saved = log.stored_checkpoints()
    assert not set(saved["name"]) & {"customers", "clean"}
    assert len(_everything(project["folder"])) > 0
    for row in saved.itertuples():  # what is left does not hold her, decrypted or not
        if row.format.removesuffix(".enc") in ("parquet", "pickle"):
            value = checkpoint.load_value(row.format, log.artifacts_dir / row.path)
            if isinstance(value, pd.DataFrame | pd.Series):
                assert ALICE not in pd.DataFrame(value).astype(str).to_numpy().ravel()
    # the cell that lost a checkpoint cannot be taken from the cache any more
    keys = log.sql("SELECT cell_seq, cache_key FROM checkpoints")
    assert keys[keys["cell_seq"] == 3]["cache_key"].isna().all()
    assert keys[keys["cell_seq"] == 1]["cache_key"].notna().all()

    erasure = log.erasures().iloc[0]
    assert erasure["action"] == "forget"
    assert json.loads(erasure["criteria"]) == {"column": "email", "value_hash": found["value_hash"]}
    assert ALICE not in erasure.to_json()
    assert not _in_log_file(log, ALICE)
    # the rest of her requests went too, from the file's free space as well (compacted)
    assert not _in_log_file(log, str(_income(0))) and not _in_log_file(log, str(_income(2)))
    assert _in_log_file(log, str(_income(1)))

    again = run_cli("forget", "--column", "email", "--value", ALICE, cwd=project["folder"])
    assert again.returncode == 0 and "found nowhere" in again.stdout
    assert ALICE not in again.stdout


def test_forget_dry_run_changes_nothing(project):
    log = project["log"]
    files = _everything(project["folder"])
    found = _cli_json(project, "forget", "--column", "email", "--value", ALICE, "--dry-run")
    assert found["removed"]["checkpoints"] == 4
    assert _everything(project["folder"]) == files and all(_payloads(log).values())
    assert log.erasures().empty


# ---------------------------------------------------------------------- the policy
def test_a_writer_applies_the_retention_policy_when_it_opens_the_log_once_a_day(project):
    log, old, new = project["log"], project["old"], project["new"]
    old_files, new_files = _files(log, old), _files(log, new)
    policy = {"checkpoints": "30d", "requests": "30d", "artifacts": "60d"}
    shown = run_cli("retention", "--checkpoints", "30d", "--requests", "30d", "--artifacts",
                    "60d", cwd=project["folder"])  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "checkpoints 30d, requests 30d, artifacts 60d; last applied never" in shown.stdout
    assert _cli_json(project, "retention")["policy"] == policy

    reader = run_cli("runs", cwd=project["folder"])  # a reader opens: nothing happens
    assert reader.returncode == 0 and all(p.is_file() for p in old_files)
    log.close()

    opener = [sys.executable, "-c", "import sys, mlops_nb; mlops_nb.open_log(sys.argv[1]).close()",
              str(log.path)]  # fmt: skip
    for _ in range(2):
        done = subprocess.run(opener, env=subprocess_env(), capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
    log = project["log"] = mn.open_log(log.path, create=False)
    assert not any(p.exists() for p in old_files) and _checkpoints(log, old).empty
    assert _files(log, new) == new_files and all(p.is_file() for p in new_files)
    assert _payloads(log) == {"r0": False, "r1": False, "r2": True, "r3": True, "r4": True}
    erasures = log.erasures()
    assert erasures["action"].tolist() == ["retention"]  # the second open: not due yet
    criteria = json.loads(erasures["criteria"][0])
    assert criteria["policy"] == policy
    removed = json.loads(erasures["removed"][0])
    assert (removed["checkpoints"], removed["artifacts"]) == (len(old_files), 1)  # notebook
    kinds = log.sql("SELECT run_id, kind FROM artifacts")
    assert kinds[kinds["run_id"] == old]["kind"].tolist() == ["model"]  # registered: kept
    assert _cli_json(project, "retention")["last_applied"] is not None
    now = _cli_json(project, "retention", "--apply", "--dry-run")  # whenever it last ran
    assert now["applied"]["checkpoints"] == 0 and len(log.erasures()) == 1

    off = _cli_json(project, "retention", "--requests", "off")
    assert off["policy"] == {"checkpoints": "30d", "artifacts": "60d"}
    assert run_cli("retention", "--checkpoints", "soon", cwd=project["folder"]).returncode == 2


# ---------------------------------------------------------------------- storage
def test_the_storage_report_says_where_personal_data_lives(project):
    log, old, new = project["log"], project["old"], project["new"]
    report = retention.storage_report(log)
    personal = {(c["run_id"], c["name"]): c for c in report["checkpoints"]}
    assert set(personal) == {(run, name) for run in (old, new) for name in ("customers", "clean")}
    customers = personal[(old, "customers")]
    assert customers["personal_columns"] == ["email"] and customers["encrypted"]
    assert customers["dataset"] == "customers@v1" and customers["stage"] == "ingest"
    assert customers["bytes"] > 0 and customers["on_disk"]
    assert 99 < customers["age_days"] < 101 and personal[(new, "clean")]["age_days"] < 1
    assert report["checkpoint_totals"]["personal_not_encrypted"] == 0
    assert report["checkpoint_totals"]["checkpoints"] == len(log.stored_checkpoints())
    (requests,) = report["requests"]
    assert (requests["model"], requests["version"], requests["payloads"]) == ("churn", 1, 5)
    assert requests["hashed_columns"] == ["email"] and 99 < requests["age_days"] < 101
    assert report["key"]["present"] and report["key"]["mode"] == "0600"
    assert {a["kind"] for a in report["artifacts"]} == {"model", "notebook"}

    text = run_cli("storage", cwd=project["folder"])
    assert text.returncode == 0, text.stderr
    assert "4 hold personal data: 4 encrypted, 0 not encrypted" in text.stdout
    assert "customers@v1" in text.stdout and "churn" in text.stdout
    assert _cli_json(project, "storage")["checkpoint_totals"]["personal"] == 4


# ---------------------------------------------------------------------- failures
def test_files_left_by_an_erasure_that_died_after_its_commit_are_deleted_later(project):
    """The state a crash between the commit and the file deletions leaves: rows gone, files
    listed as pending. The next writer to open the log deletes them, unless a row took one
    back."""
    log, new = project["log"], project["new"]
    orphan = log.artifacts_dir / "checkpoints" / new / "9" / "gone.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"PAR1")
    kept = _checkpoints(log, new)["path"].iloc[0]
    log.set_settings({PENDING_KEY: json.dumps([f"checkpoints/{new}/9/gone.parquet", kept,
                                               "../../outside.txt"])})  # fmt: skip
    (project["folder"] / "outside.txt").write_text("not ours")
    log.close()
    project["log"] = log = mn.open_log(log.path)  # a writer's open finishes the erasure
    assert not orphan.exists() and not orphan.parent.exists()
    assert (log.artifacts_dir / kept).is_file()
    assert (project["folder"] / "outside.txt").is_file()
    assert PENDING_KEY not in log.settings()


_WRITER = """
import json, sys, time
import mlops_nb as mn
log = mn.open_log(sys.argv[1])
with log.start_run(experiment="writer") as run:
    for i in range(int(sys.argv[2])):
        inputs = json.dumps({"columns": ["x"], "data": [[i]]})
        log.record("requests", {"request_id": f"w{i}", "model_name": "w", "status": 200,
                                "n_rows": 1, "inputs": inputs, "outputs": "[1]",
                                "created_at": time.time() - 86400})
        run.log_metric("i", float(i), step=i)
        if i % 25 == 0:
            log.flush()
        print(i, flush=True)
log.close()
"""


def test_purges_and_compactions_while_another_process_writes_lose_none_of_its_records(
    log_path, tmp_path
):
    count = 400
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    log = mn.open_log(log_path)
    log.flush()
    writer = subprocess.Popen([sys.executable, str(script), str(log_path), str(count)],
                              env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    purges = 0
    while writer.poll() is None or purges < 3:
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        retention.purge(log, requests_before=now, compact=purges % 2 == 1)  # swaps the file
        purges += 1
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert out.split()[-1] == str(count - 1)
    requests = log.sql("SELECT request_id, n_rows FROM requests")
    assert sorted(requests["request_id"]) == sorted(f"w{i}" for i in range(count))
    points = log.sql("SELECT count(*) AS n FROM metrics WHERE key = 'i'")["n"][0]
    assert points == count
    assert len(log.erasures()) == purges
    last = retention.purge(log, requests_before=time.strftime("%Y-%m-%dT%H:%M:%S",
                                                              time.gmtime()))  # fmt: skip
    assert _payloads(log) == {f"w{i}": False for i in range(count)}
    assert last["removed"]["request_payloads"] >= 0
