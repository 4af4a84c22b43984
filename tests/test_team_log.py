"""The team log: the same log on DuckLake (catalog in a real PostgreSQL, files in a folder or a
real S3 server), written by many processes standing for many machines.

DuckLake's extensions load only into DuckDB 1.5.5, which our venv does not hold (it has 2.0):
every scenario that touches a lake runs in a subprocess of ``team_python()``, a venv with
DuckDB 1.5.5 and the offline extensions over our own packages. A "machine" is a process with
its own spool folder (``MLOPS_NB_SPOOL``) and host name (``MLOPS_NB_HOSTNAME``).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

import mlops_nb
from mlops_nb.errors import MlopsError
from mlops_nb.log.schema import SCHEMA_VERSION

pytest_plugins = ["team_servers"]

RECORD_RUNS = textwrap.dedent(
    """
    import json, sys
    import mlops_nb as mn

    log = mn.open_log()
    made = []
    for i in range(3):
        with log.start_run(experiment="team", params={"lr": 0.1 * (i + 1), "depth": i,
                           "kind": f"k{i}"}, tags={"owner": "alice"}) as run:
            for step in range(3):
                run.log_metrics({"loss": 1.0 / (step + 1 + i), "acc": 0.5 + 0.1 * step})
            artifact = f"{sys.argv[1]}/model-{i}.bin"
            open(artifact, "wb").write(bytes([i]) * 1000)
            sha = run.log_artifact(artifact)
            made.append({"run_id": run.run_id, "sha": sha})
    log.close()
    print(json.dumps(made))
    """
)

FETCH_ARTIFACT = textwrap.dedent(
    """
    import sys
    import mlops_nb as mn

    log = mn.open_log()
    path = log.artifact_file(f"{sys.argv[1][:2]}/{sys.argv[1]}")
    print(path, len(path.read_bytes()), path.read_bytes()[:1].hex())
    """
)


# ---------------------------------------------------------------------- helpers
def team_env(postgres, dbname: str, spool: Path, host: str = "machine-a", **extra: str) -> dict:
    """The environment of a process on a "machine": the team log, its spool and host name."""
    from conftest import subprocess_env

    return subprocess_env(
        MLOPS_NB_LOG=f"ducklake:postgres:{postgres.dsn(dbname)}",
        MLOPS_NB_SPOOL=str(spool),
        MLOPS_NB_HOSTNAME=host,
        **extra,
    )


def s3_env(s3) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_REGION": "us-east-1", "MLOPS_NB_S3_ENDPOINT": f"http://{s3.endpoint}",
        "MLOPS_NB_S3_URL_STYLE": "path",
    }  # fmt: skip


def cli(env: dict, *args: str, cwd: Path | None = None, check: bool = True, timeout: float = 120):
    """``mlops-nb ARGS`` in the team venv."""
    from team_servers import team_python

    done = subprocess.run(
        [str(team_python()), "-m", "mlops_nb.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"mlops-nb {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def script(env: dict, code: str, *args: str, cwd: Path | None = None, timeout: float = 120):
    """Run ``code`` with the team venv's Python; returns its stdout (it must succeed)."""
    from team_servers import team_python

    done = subprocess.run(
        [str(team_python()), "-c", code, *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"script failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def new_database(postgres) -> str:
    name = f"lake_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    return name


# ---------------------------------------------------------------------- 1. init, record, read
@pytest.mark.parametrize("storage", ["folder", "s3"])
def test_init_then_runs_recorded_by_a_script_read_back_everywhere(
    storage, postgres_server, s3_server, tmp_path
):
    dbname = new_database(postgres_server)
    extra = s3_env(s3_server) if storage == "s3" else {}
    env = team_env(postgres_server, dbname, tmp_path / "spool-a", **extra)
    data = s3_server.url(dbname) if storage == "s3" else str(tmp_path / "shared")

    missing = cli(env, "runs", check=False)
    assert missing.returncode == 2
    assert "does not exist: run mlops-nb team init" in missing.stderr

    first = cli(env, "team", "init", "--data", data).stdout
    assert (
        "created the DuckLake catalog" in first
        and f"created the log schema {SCHEMA_VERSION}" in first
    )
    assert "nothing to do" in cli(env, "team", "init").stdout  # a second init adds nothing

    made = json.loads(script(env, RECORD_RUNS, str(tmp_path)))
    runs = json.loads(cli(env, "runs", "--format", "json").stdout)
    assert sorted(r["run_id"] for r in runs) == sorted(m["run_id"] for m in made)
    by_lr = {round(r["params.lr"], 3): r for r in runs}
    assert set(by_lr) == {0.1, 0.2, 0.3}
    assert by_lr[0.3]["params.depth"] == 2 and by_lr[0.3]["params.kind"] == "k2"
    assert by_lr[0.3]["metrics.loss"] == pytest.approx(0.2)
    assert all(r["status"] == "finished" and r["metrics.acc"] == pytest.approx(0.7) for r in runs)

    filtered = cli(env, "runs", "--where", "params.depth >= 1 AND metrics.loss < 0.3", "-f", "csv")
    assert len(filtered.stdout.strip().splitlines()) == 1 + 2
    shown = json.loads(cli(env, "show", made[0]["run_id"], "--format", "json").stdout)
    assert shown["tags"] == {"owner": "alice"} and len(shown["metric_history"]) == 6
    assert shown["artifacts"][0]["sha256"] == made[0]["sha"]
    counted = cli(env, "sql", "SELECT count(*) AS n FROM metrics", "--format", "json").stdout
    assert json.loads(counted) == [{"n": 18}]

    # another machine (its own spool) fetches an artifact's bytes from the lake's storage
    other = team_env(postgres_server, dbname, tmp_path / "spool-b", host="machine-b", **extra)
    fetched = script(other, FETCH_ARTIFACT, made[2]["sha"]).split()
    assert fetched[1:] == ["1000", "02"]
    assert Path(fetched[0]).is_relative_to(tmp_path / "spool-b")
    if storage == "folder":
        stored = [str(p) for p in (tmp_path / "shared").rglob("*.parquet")]
    else:
        stored = s3_server.client("lsf", "-R", f"s3:{s3_server.bucket}/{dbname}").stdout.split()
    assert any(name.endswith(".parquet") for name in stored)  # the artifact's bytes


def test_every_process_of_a_team_uses_one_duckdb_minor_version(postgres_server, tmp_path):
    dbname = new_database(postgres_server)
    env = team_env(postgres_server, dbname, tmp_path / "spool")
    cli(env, "team", "init", "--data", str(tmp_path / "shared"))
    script(env, textwrap.dedent(
        """
        from mlops_nb.log import lake
        from mlops_nb.log.location import default_log_location, parse_team_location

        con = lake.connect(parse_team_location(default_log_location()))
        con.execute("UPDATE lake.store.meta SET value = '1.4.4' WHERE key = 'duckdb_version'")
        """
    ))  # fmt: skip
    refused = cli(env, "runs", check=False)
    assert refused.returncode == 2
    assert "written with DuckDB 1.4.x and this is DuckDB 1.5.5" in refused.stderr
    assert "pip install 'duckdb==1.4.4'" in refused.stderr


def test_a_team_log_is_named_by_a_project_config_file(tmp_path, monkeypatch):
    from mlops_nb.log.location import default_log_location, local_anchor

    (tmp_path / ".mlops").mkdir()
    (tmp_path / ".mlops" / "config").write_text(
        'log = "ducklake:postgres:host=db.example dbname=team"\ndata = "s3://bucket/team/"\n'
    )
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("MLOPS_NB_SPOOL", str(tmp_path / "spool"))
    location = default_log_location(tmp_path / "notebooks")
    assert location == "ducklake:postgres:host=db.example dbname=team"
    assert local_anchor(location).parent == tmp_path / "spool"
    monkeypatch.setenv("MLOPS_NB_LOG", str(tmp_path / "mine.duckdb"))  # the environment wins
    assert default_log_location(tmp_path / "notebooks") == str(tmp_path / "mine.duckdb")


def test_a_password_in_the_location_is_refused_before_connecting(tmp_path):
    for location in (
        "ducklake:postgres:host=db dbname=lake user=alice password=s3cret",
        "ducklake:postgres:postgresql://alice:s3cret@db/lake",
    ):
        with pytest.raises(MlopsError, match="PGPASSWORD, ~/.pgpass or a PGSERVICE") as refused:
            mlops_nb.open_log(location)
        assert "s3cret" not in str(refused.value)
    with pytest.raises(MlopsError, match="ducklake:postgres:<conninfo>"):
        mlops_nb.open_log("ducklake:sqlite:team.db")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------- 3. many machines, kills
WRITER = textwrap.dedent(
    """
    import sys, time
    import mlops_nb as mn

    runs, name, pause = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    log = mn.open_log()
    for i in range(runs):
        time.sleep(pause)  # some work: a writer merges many times, kills land mid-way
        params = {f"p{k}": k * 1000 + i for k in range(10)}
        with log.start_run(experiment="load", name=f"{name}-{i}", params=params) as run:
            for step in range(2):
                run.log_metrics({f"m{k}": k + step + i / 100 for k in range(10)})
        print(run.run_id, flush=True)  # acknowledged: every record of the run is journaled
    log.close()
    """
)

CHECK_LOAD = """
SELECT (SELECT count(*) FROM runs) AS runs,
       (SELECT count(*) FROM (SELECT name FROM runs GROUP BY name HAVING count(*) > 1)) AS twice,
       (SELECT count(*) FROM (SELECT run_id, name FROM params GROUP BY ALL HAVING count(*) > 1))
           AS params_twice,
       (SELECT count(*) FROM (SELECT run_id, key, step FROM metrics GROUP BY ALL
                              HAVING count(*) > 1)) AS metrics_twice,
       (SELECT count(*) FROM (SELECT name FROM store.experiments GROUP BY name
                              HAVING count(*) > 1)) AS experiments_twice
"""

PER_RUN = """
SELECT r.name, r.status, (SELECT count(*) FROM params p WHERE p.run_id = r.run_id) AS params,
       (SELECT count(*) FROM metrics m WHERE m.run_id = r.run_id) AS points,
       (SELECT count(*) FROM latest_metrics m WHERE m.run_id = r.run_id) AS latest
FROM runs r ORDER BY r.name
"""


def test_many_machines_lose_nothing_acknowledged_through_kills(postgres_server, tmp_path):
    """4 machines x 8 writers and a reader; two writers SIGKILLed, the writers' PostgreSQL
    connections terminated once: every acknowledged run is there once, with all its records."""
    import signal
    import threading
    import time

    from team_servers import team_python

    dbname = new_database(postgres_server)
    machines = [f"machine-{m}" for m in "abcd"]
    envs = {m: team_env(postgres_server, dbname, tmp_path / m, host=m) for m in machines}
    cli(envs["machine-a"], "team", "init", "--data", str(tmp_path / "shared"))
    runs_each, killed = 20, {("machine-a", 3), ("machine-c", 5)}

    writers = {}
    for machine in machines:
        for number in range(8):
            writers[(machine, number)] = subprocess.Popen(
                [str(team_python()), "-c", WRITER, str(runs_each), f"{machine}-{number}", "0.15"],
                env=envs[machine], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
    acked: dict[tuple[str, int], list[str]] = {key: [] for key in writers}

    def collect(key):
        for line in writers[key].stdout:
            acked[key].append(line.strip())

    readers = [threading.Thread(target=collect, args=(key,), daemon=True) for key in writers]
    for thread in readers:
        thread.start()

    polls: list[subprocess.CompletedProcess] = []
    stop_polling = threading.Event()

    def poll():
        env = team_env(postgres_server, dbname, tmp_path / "reader", host="reader")
        while not stop_polling.is_set():
            polls.append(cli(env, "runs", "-f", "csv", "-n", "5", check=False, timeout=300))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()

    deadline = time.monotonic() + 240
    terminated = False
    while any(p.poll() is None for p in writers.values()) and time.monotonic() < deadline:
        for key in killed:
            if writers[key].poll() is None and len(acked[key]) >= 4:
                writers[key].send_signal(signal.SIGKILL)
        if not terminated and sum(map(len, acked.values())) >= 100:
            postgres_server.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()",
                dbname=dbname,
            )
            terminated = True
        time.sleep(0.2)
    stop_polling.set()
    for key, process in writers.items():
        process.wait(timeout=60)
        if key not in killed:
            errors = process.stderr.read()
            assert process.returncode == 0 and "Error" not in errors, errors
    for thread in readers:
        thread.join(timeout=10)
    poller.join(timeout=300)
    assert terminated and polls
    assert all(done.returncode == 0 for done in polls), [p.stderr for p in polls if p.returncode]

    # another process on each machine opens the log: its dead writers' journals are merged
    for machine in machines:
        cli(envs[machine], "runs", "-n", "1")
    env = envs["machine-b"]
    totals = json.loads(cli(env, "sql", CHECK_LOAD, "-f", "json").stdout)[0]
    assert totals == {"runs": totals["runs"], "twice": 0, "params_twice": 0,
                      "metrics_twice": 0, "experiments_twice": 0}  # fmt: skip
    rows = {r["name"]: r for r in json.loads(cli(env, "sql", PER_RUN, "-f", "json").stdout)}
    for (machine, number), run_ids in acked.items():
        expected = runs_each if (machine, number) not in killed else len(run_ids)
        assert len(run_ids) == expected, (machine, number)
        for i in range(expected):
            assert rows[f"{machine}-{number}-{i}"] == {
                "name": f"{machine}-{number}-{i}", "status": "finished",
                "params": 10, "points": 20, "latest": 10,
            }  # fmt: skip
    begun = set()
    for machine, number in killed:  # the run a killed writer was in reads crashed, if begun
        assert len(acked[(machine, number)]) < runs_each  # killed mid-way
        name = f"{machine}-{number}-{len(acked[(machine, number)])}"
        assert rows.get(name, {"status": "crashed"})["status"] == "crashed"
        begun.add(name)
    acked_names = {f"{m}-{n}-{i}" for (m, n), ids in acked.items() for i in range(len(ids))}
    assert set(rows) - acked_names <= begun
    assert totals["runs"] == len(rows)


# ---------------------------------------------------------------------- 4. crashes elsewhere
HOLD_A_RUN = textwrap.dedent(
    """
    import os, signal, sys, time
    import mlops_nb as mn

    log = mn.open_log()
    run = log.start_run(experiment="crash", name=sys.argv[1])
    run.log_metric("x", 1.0)
    log.flush()
    print(run.run_id, flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # until the test says so
    run.end()
    log.close()
    """
)


def test_a_run_whose_machine_went_silent_reads_crashed_after_the_timeout(postgres_server, tmp_path):
    import time

    from team_servers import team_python

    dbname = new_database(postgres_server)
    timeout = {"MLOPS_NB_CRASH_TIMEOUT_S": "4"}
    envs = {m: team_env(postgres_server, dbname, tmp_path / m, host=m, **timeout) for m in "abc"}
    cli(envs["a"], "team", "init", "--data", str(tmp_path / "shared"))
    holders = {
        machine: subprocess.Popen(
            [str(team_python()), "-c", HOLD_A_RUN, f"on-{machine}", fate],
            env=envs[machine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for machine, fate in (("a", "die"), ("c", "live"))
    }
    for process in holders.values():
        assert process.stdout.readline().strip()
    assert holders["a"].wait(timeout=30) == -9
    live_since = time.monotonic()

    def statuses() -> dict[str, dict]:
        rows = json.loads(cli(envs["b"], "runs", "-f", "json").stdout)
        return {row["name"]: row for row in rows}

    seen = statuses()  # machine b cannot tell yet: a's heartbeat is recent
    assert seen["on-a"]["status"] == "running" and seen["on-c"]["status"] == "running"
    deadline = time.monotonic() + 60
    while seen["on-a"]["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = statuses()
    assert seen["on-a"]["status"] == "crashed"
    assert "sent no heartbeat for 4 s" in seen["on-a"]["error"]
    while time.monotonic() - live_since < 8:  # twice the timeout: c's heartbeats keep it alive
        time.sleep(0.5)
    assert statuses()["on-c"]["status"] == "running"
    holders["c"].communicate("\n", timeout=60)
    assert holders["c"].returncode == 0
    assert statuses()["on-c"]["status"] == "finished"


# ---------------------------------------------------------------------- 2. the example pipeline
PASSWORD = "pg-pass-0d9e7c1b"  # trust authentication ignores it; it must still go nowhere


def test_the_example_pipeline_and_its_model_on_the_team_log_leak_no_credential(
    postgres_server, s3_server, tmp_path
):
    """`mlops-nb run` hands the kernel the team log; the model registered from that run is
    loaded on another machine from the lake's storage (S3); the PostgreSQL password and the S3
    secret in the environment are in no file written, no row of the log or its catalog."""
    import shutil

    from conftest import REPO

    dbname = new_database(postgres_server)
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "example_notebooks" / "churn.ipynb", project)
    secrets = {**s3_env(s3_server), "PGPASSWORD": PASSWORD}
    env = team_env(postgres_server, dbname, tmp_path / "spool-a", **secrets)
    cli(env, "team", "init", "--data", s3_server.url(dbname))

    ran = cli(env, "run", "churn.ipynb", cwd=project, timeout=300)
    assert "finished" in ran.stdout + ran.stderr
    registered = cli(env, "models", "register", "churn", "--alias", "champion", cwd=project)
    assert "registered churn:1" in registered.stdout
    listed = cli(env, "models", "list", "-f", "json", cwd=project).stdout
    assert [(m["name"], m["version"], m["aliases"]) for m in json.loads(listed)] == [
        ("churn", 1, "champion")
    ]
    run = json.loads(cli(env, "show", "latest", "-f", "json", cwd=project).stdout)
    assert run["info"]["source"] == "papermill" and run["info"]["status"] == "finished"
    assert [c["stage"] for c in run["cells"]][2:] == [
        "ingest", "clean", "explore", "features", "train", "train", "evaluate",
    ]  # fmt: skip
    assert run["metrics"]["accuracy"] > 0.7

    other = team_env(postgres_server, dbname, tmp_path / "spool-b", host="machine-b", **secrets)
    loaded = cli(other, "models", "load", "churn@champion", cwd=tmp_path)
    assert "churn:1" in loaded.stdout
    assert list((tmp_path / "spool-b" / "artifacts").rglob("*"))  # fetched into b's cache

    schedule, deploy = tmp_path / "schedule", tmp_path / "deploy"
    cli(env, "schedule", "churn.ipynb", "--cron", "0 3 * * *", "--target", "kubernetes",
        "--out", str(schedule), cwd=project)  # fmt: skip
    cli(env, "deploy", "churn@champion", "--target", "kubernetes", "--out", str(deploy),
        "--install", "pip install mlops-nb", cwd=project)  # fmt: skip
    written = "".join(p.read_text() for p in schedule.rglob("*") if p.is_file())
    assert env["MLOPS_NB_LOG"] in written  # the scheduled job records into the team log

    dump = cli(env, "sql", "SELECT * FROM runs, params, environment WHERE "
               "runs.run_id = params.run_id AND runs.run_id = environment.run_id",
               "-f", "csv", cwd=project).stdout  # fmt: skip
    catalog = subprocess.run(
        [str(postgres_server.bin_dir / "pg_dump"), "-d", postgres_server.dsn(dbname)],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    folders = [tmp_path / "spool-a", tmp_path / "spool-b", schedule, deploy, project,
               s3_server.root / s3_server.bucket / dbname]  # fmt: skip
    for secret in (PASSWORD, s3_server.secret):
        assert secret.encode() not in catalog and secret not in dump
        for folder in folders:
            for path in folder.rglob("*"):
                assert not path.is_file() or secret.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------------- 5. maintenance
def test_maintain_while_writers_write_loses_nothing_and_doubles_nothing(postgres_server, tmp_path):
    from team_servers import team_python

    dbname = new_database(postgres_server)
    env = team_env(postgres_server, dbname, tmp_path / "spool")
    cli(env, "team", "init", "--data", str(tmp_path / "shared"))
    writers = [
        subprocess.Popen(
            [str(team_python()), "-c", WRITER, "15", f"w{number}", "0.1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for number in range(4)
    ]
    maintained = []
    while any(w.poll() is None for w in writers) or not maintained:
        maintained.append(cli(env, "team", "maintain", "--keep", "0s").stdout)
    outputs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outputs]
    assert any("flushed inlined rows to Parquet: 0" not in text for text in maintained)

    totals = json.loads(cli(env, "sql", CHECK_LOAD, "-f", "json").stdout)[0]
    assert totals == {"runs": 60, "twice": 0, "params_twice": 0, "metrics_twice": 0,
                      "experiments_twice": 0}  # fmt: skip
    rows = json.loads(cli(env, "sql", PER_RUN, "-f", "json").stdout)
    assert {(r["status"], r["params"], r["points"], r["latest"]) for r in rows} == {
        ("finished", 10, 20, 10)
    }
    assert "expired snapshots" in maintained[-1]
    assert "deleted files no snapshot needs" in cli(env, "team", "maintain").stdout


# ---------------------------------------------------------------------- the kept run table
KEPT_RUN_TABLE = textwrap.dedent(
    """
    import json
    import mlops_nb as mn
    from mlops_nb.errors import QueryError
    from mlops_nb.log.lake import RunTable

    log = mn.open_log()
    store = log._store

    def record(i, tags=None, **extra):
        with log.start_run(experiment="kept", params={"lr": 0.1 * i, "kind": f"k{i % 2}",
                           **extra}, tags=tags) as run:
            run.log_metrics({"loss": 1.0 / (i + 1)})
        log.flush()

    def step(name):
        where, order = "params.kind = 'k1'", "metrics.loss DESC"
        found = log.runs(where=where, order_by=order)  # all: the lake's cursor
        pages_alike = True  # a page from the private copy == the same page read on the lake
        for offset in range(len(found) + 1):
            page = log.runs(where=where, order_by=order, limit=2, offset=offset)
            on_lake = log.runs(where=f"{where} AND (tags IS NULL OR TRUE)", order_by=order,
                               limit=2, offset=offset)  # (a tags join: never the copy)
            pages_alike &= page.to_json(date_format="iso") == on_lake.to_json(date_format="iso")
            pages_alike &= page.dtypes.to_dict() == on_lake.dtypes.to_dict()
            pages_alike &= page["run_id"].tolist() == found["run_id"].tolist()[offset:offset + 2]

        def kept_and_rebuilt(con):  # the kept table against one built afresh, same snapshot
            kept_name, _ = store.run_values(con)
            kept = con.execute(f"SELECT * FROM {kept_name} ORDER BY run_id").fetchall()
            fresh = RunTable()
            fresh.bring_to(con)
            fresh.register(con)
            return kept, con.execute(f"SELECT * FROM {fresh.NAME} ORDER BY run_id").fetchall()

        kept, rebuilt = store.read(kept_and_rebuilt)
        return {"name": name, "found": found["run_id"].tolist(),
                "pages_alike": pages_alike,
                "count": log.count_runs(where=where),
                "from_copy": store._run_table.searches,
                "losses": found["metrics.loss"].tolist(), "status": found["status"].tolist(),
                "same": repr(kept) == repr(rebuilt), "snapshot": store._run_table.snapshot,
                "builds": store._run_table.builds,
                "columns": sorted(c for c in found.columns if c.startswith("params.")),
                "tags": found["tags"].tolist()}

    steps = []
    for i in range(4):
        record(i)
    steps.append(step("first"))
    record(5)                                               # a new run: brought forward
    steps.append(step("new run"))
    open_run = log.start_run(experiment="kept", params={"lr": 0.0, "kind": "k1"})
    open_run.log_metrics({"loss": 50.0})
    log.flush()
    steps.append(step("running"))
    open_run.log_metrics({"loss": 99.0})                    # its latest metric moves
    open_run.end()
    log.flush()
    steps.append(step("ended"))
    record(7, extra_param=3)                                # a new column: built again
    steps.append(step("new column"))
    record(9, tags={"owner": "bob"})                        # the first tag: brought forward
    steps.append(step("tagged"))
    # a search reading another table of the log, or a wrong one: answered by the lake
    by_table = log.runs(where="run_id IN (SELECT run_id FROM store.params WHERE name = "
                        "'kind' AND value = 'k1')", order_by="metrics.loss DESC", limit=50)
    try:
        log.runs(where="params.no_such_param > 1", limit=5)
        wrong = None
    except QueryError as error:
        wrong = str(error)
    print(json.dumps({"steps": steps, "by_table": by_table["run_id"].tolist(), "wrong": wrong}))
    """
)


def test_the_kept_run_table_follows_every_change_of_the_lake(postgres_server, tmp_path):
    dbname = new_database(postgres_server)
    env = team_env(postgres_server, dbname, tmp_path / "spool")
    cli(env, "team", "init", "--data", str(tmp_path / "shared"))
    done = json.loads(script(env, KEPT_RUN_TABLE))
    steps = done["steps"]
    first, new_run, running, ended, new_column, tagged = steps
    for step in steps:
        assert step["same"], step["name"]  # kept == built afresh at the same snapshot
        assert step["pages_alike"], step["name"]
        assert step["count"] == len(step["found"]), step["name"]
    searched = [step["from_copy"] for step in steps]  # the pages and counts of each step
    assert searched == sorted(set(searched)) and searched[0] >= 4
    assert len(first["found"]) == 2 and len(new_run["found"]) == 3
    assert new_run["snapshot"] > first["snapshot"]
    # built once, brought forward through new runs and moving metrics, built again for a column
    assert [step["builds"] for step in (first, new_run, running, ended)] == [1, 1, 1, 1]
    assert new_column["builds"] == 2
    assert running["losses"][0] == 50.0 and running["status"][0] == "running"
    assert ended["losses"][0] == 99.0 and ended["status"][0] == "finished"
    assert ended["found"][0] == running["found"][0]
    assert len(new_column["found"]) == 5
    assert new_column["columns"] == ["params.extra_param", "params.kind", "params.lr"]
    assert not any(new_column["tags"])
    assert tagged["builds"] == 2 and {"owner": "bob"} in tagged["tags"]
    assert done["by_table"] == tagged["found"]
    assert "no_such_param" in done["wrong"]


# ---------------------------------------------------------------------- a served model
REGISTER_SMALL_MODEL = textwrap.dedent(
    """
    import numpy as np, pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    import mlops_nb as mn
    from mlops_nb.registry.register import register_pipeline

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 80, 300), "charges": rng.random(300) * 100})
    target = (frame["charges"] > 50).astype(int)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(frame, target)
    log = mn.open_log()
    register_pipeline(log, "churn", model, training_frame=frame, alias="champion")
    log.close()
    """
)


def test_a_served_model_records_its_requests_in_the_team_log_even_when_killed(
    postgres_server, tmp_path
):
    import signal
    import socket
    import time

    import httpx
    from conftest import stop_process
    from team_servers import team_python

    dbname = new_database(postgres_server)
    pod = team_env(postgres_server, dbname, tmp_path / "spool-pod", host="pod-1")
    cli(pod, "team", "init", "--data", str(tmp_path / "shared"))
    script(pod, REGISTER_SMALL_MODEL)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(team_python()), "-m", "mlops_nb.cli", "serve", "churn@champion", "--port", str(port)],
        env=pod, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        body = {"dataframe_split": {"columns": ["age", "charges"], "data": [[30, 70.0]]}}
        answered = []
        for i in range(30):
            response = httpx.post(url + "/invocations", json=body, timeout=30,
                                  headers={"X-Request-Id": f"pod-{i}"})  # fmt: skip
            assert response.status_code == 200 and response.json()["predictions"] == [1]
            answered.append(f"pod-{i}")
        os.kill(server.pid, signal.SIGKILL)  # no close: the helper process makes a last merge
        server.wait(timeout=30)
    finally:
        stop_process(server)
    # another machine (its own spool: it cannot recover the pod's journal) sees every request
    laptop = team_env(postgres_server, dbname, tmp_path / "spool-laptop", host="laptop")
    query = "SELECT request_id FROM requests WHERE model_name = 'churn' ORDER BY request_id"
    deadline = time.monotonic() + 60
    while True:
        rows = json.loads(cli(laptop, "sql", query, "--format", "json").stdout)
        if len(rows) >= len(answered) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(r["request_id"] for r in rows) == sorted(answered)
    # drift of those requests against the training profile, checked on the laptop, recorded
    # in the team log and read on a third machine
    drift = cli(laptop, "drift", "--reference", "churn@champion", "--requests",
                "churn@champion", "--format", "json", check=False)  # fmt: skip
    assert drift.returncode in (0, 1), drift.stderr
    desk = team_env(postgres_server, dbname, tmp_path / "spool-desk", host="desk")
    checked = json.loads(cli(desk, "sql", 'SELECT "column", n_current FROM drift ORDER BY 1',
                             "--format", "json").stdout)  # fmt: skip
    assert {(row["column"], row["n_current"]) for row in checked} >= {
        ("age", len(answered)),
        ("charges", len(answered)),
    }
