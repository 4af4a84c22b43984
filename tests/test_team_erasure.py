"""Purge, forget and retention on a real team log (PostgreSQL catalog, shared-folder data).

The superuser initialises the lake and grants bob writer, carol maintainer and erin admin
(who runs ``team maintain``). Bob records two runs with an artifact each (random bytes, so a
file holding them is found by its bytes) and served requests, one holding a person's e-mail
address; carol registers a version of the second run's artifact. Everything runs as
``mlops-nb`` or a script in the team venv, one process per "machine" (its own spool folder).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest_plugins = ["team_servers"]

EMAIL = "alice.erasure@example.com"

RECORD = textwrap.dedent(
    """
    import json, os, sys, time
    import mlops_nb as mn

    log = mn.open_log()
    made = {}
    for name in ("a", "b"):
        with log.start_run(experiment="erasure") as run:
            content = os.urandom(1000)
            path = os.path.join(sys.argv[1], f"model-{name}.bin")
            open(path, "wb").write(content)
            made[name] = {"run_id": run.run_id, "sha": run.log_artifact(path),
                          "hex": content.hex()}
    now = time.time()
    for request_id, email, age in (("r-alice", sys.argv[2], 0), ("r-recent", "bo@x.org", 0),
                                   ("r-old", "old@x.org", 7200)):
        log.record("requests", {
            "request_id": request_id, "model_name": "m", "model_version": 1,
            "protocol": "v2", "status": 200, "n_rows": 1, "latency_ms": 1.0,
            "inputs": json.dumps({"columns": ["email", "x"], "data": [[email, 1]]}),
            "outputs": "[1]", "error": None, "server": "test", "created_at": now - age})
    log.close()
    print(json.dumps(made))
    """
)

REGISTER = textwrap.dedent(
    """
    import sys
    import mlops_nb as mn

    log = mn.open_log()
    print(log.add_model_version({"name": "m", "run_id": sys.argv[1],
                                 "artifact_sha256": sys.argv[2]}))
    log.close()
    """
)

RECORD_OLD_REQUEST = textwrap.dedent(
    """
    import json, time
    import mlops_nb as mn

    log = mn.open_log()
    log.record("requests", {
        "request_id": "r-old-2", "model_name": "m", "model_version": 1, "protocol": "v2",
        "status": 200, "n_rows": 1, "latency_ms": 1.0,
        "inputs": '{"columns": ["x"], "data": [[1]]}',
        "outputs": "[1]", "error": None, "server": "test", "created_at": time.time() - 7200})
    log.close()
    """
)


@pytest.fixture(scope="module")
def team(postgres_server, tmp_path_factory):
    from test_team_log import cli, new_database, script, team_env

    root = tmp_path_factory.mktemp("erasure")
    dbname = new_database(postgres_server)

    def env(user: str) -> dict:
        made = team_env(postgres_server, dbname, root / f"spool-{user}", host=f"host-{user}")
        made["MLOPS_NB_LOG"] = f"ducklake:postgres:{postgres_server.dsn(dbname, user)}"
        return made

    admin = env(postgres_server.user)
    cli(admin, "team", "init", "--data", str(root / "shared"))
    for user, role in (("bob", "writer"), ("carol", "maintainer"), ("erin", "admin")):
        cli(admin, "team", "grant", user, role)
    made = json.loads(script(env("bob"), RECORD, str(root), EMAIL).strip().splitlines()[-1])
    version = script(env("carol"), REGISTER, made["b"]["run_id"], made["b"]["sha"])
    assert version.strip().splitlines()[-1] == "1"
    return {"env": env, "admin": admin, "made": made, "root": root,
            "server": postgres_server, "dbname": dbname}  # fmt: skip


def mlops(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    from test_team_log import cli

    return cli(env, *args, check=check)


def query(env: dict, sql: str, *extra: str) -> list[dict]:
    return json.loads(mlops(env, "sql", sql, "-f", "json", *extra).stdout)


def files_holding(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def erased_by(team: dict, action: str) -> list[str]:
    """Who the audit trail says purged, forgot or applied retention (``action``), in order."""
    rows = query(team["admin"], "SELECT who FROM audit WHERE action = 'purge' AND "
                 f"starts_with(details, '{action}') ORDER BY \"when\"")  # fmt: skip
    return [row["who"] for row in rows]


def catalog_dump(team: dict) -> str:
    """Everything PostgreSQL holds for the lake, as pg_dump writes it."""
    server = team["server"]
    return subprocess.run(
        [str(server.bin_dir / "pg_dump"), "-d", server.dsn(team["dbname"])],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def test_a_writer_may_not_purge_forget_or_set_retention(team):
    bob = team["env"]("bob")
    refusal = (
        "needs the maintainer role on the team log: bob is not a member of mlops_nb_maintainer "
        "(ask an administrator: mlops-nb team grant bob maintainer)"
    )
    for args in (
        ("purge", "--run", team["made"]["a"]["run_id"]),
        ("forget", "--column", "email", "--value", EMAIL),
        ("retention", "--requests", "1h"),
    ):
        refused = mlops(bob, *args, check=False)
        assert refused.returncode != 0
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert refused.stderr.strip().endswith(refusal), refused.stderr
    assert erased_by(team, "") == []


def test_a_purge_removes_a_runs_blob_but_keeps_a_registered_versions(team):
    made, carol, admin = team["made"], team["env"]("carol"), team["admin"]
    purged = json.loads(mlops(carol, "purge", "--run", made["a"]["run_id"], "-f", "json").stdout)
    assert purged["removed"]["artifacts"] == 1 and purged["removed"]["files"] == 1
    assert purged["removed"]["bytes"] == 1000
    assert "team maintain --keep 0s" in purged["complete_after"]
    kept = json.loads(mlops(carol, "purge", "--run", made["b"]["run_id"], "-f", "json").stdout)
    assert kept["removed"]["artifacts"] == 0  # its bytes are a registered version's

    blobs = {row["sha256"] for row in query(admin, "SELECT sha256 FROM store.artifact_blobs")}
    assert made["b"]["sha"] in blobs and made["a"]["sha"] not in blobs
    assert erased_by(team, "purge") == ["carol", "carol"]  # the audit trail's database user

    mlops(team["admin"], "team", "maintain", "--keep", "0s")  # the superuser, this time
    shared = team["root"] / "shared"
    assert files_holding(shared, bytes.fromhex(made["a"]["hex"])) == []
    assert files_holding(shared, bytes.fromhex(made["b"]["hex"]))  # still stored
    bobs_cache = team["root"] / "spool-bob"
    assert files_holding(bobs_cache, bytes.fromhex(made["b"]["hex"]))


def test_forget_erases_a_value_from_the_tables_and_after_maintenance_from_time_travel(team):
    carol, admin = team["env"]("carol"), team["admin"]
    holding = f"SELECT count(*) AS n FROM requests WHERE inputs LIKE '%{EMAIL}%'"
    before = datetime.now(UTC).isoformat()
    assert query(admin, holding) == [{"n": 1}]

    forgotten = json.loads(
        mlops(carol, "forget", "--column", "email", "--value", EMAIL, "-f", "json").stdout
    )
    assert forgotten["removed"]["request_payloads"] == 1
    assert "team maintain --keep 0s" in forgotten["complete_after"]
    assert query(admin, holding) == [{"n": 0}]
    assert query(admin, holding, "--as-of", before) == [{"n": 1}]  # time travel still reads it
    assert EMAIL in catalog_dump(team)

    mlops(team["env"]("erin"), "team", "maintain", "--keep", "0s")
    refused = mlops(admin, "sql", holding, "--as-of", before, check=False)
    assert refused.returncode != 0 and "has no snapshot at" in refused.stderr
    assert EMAIL not in catalog_dump(team)
    assert files_holding(team["root"] / "shared", EMAIL.encode()) == []
    assert erased_by(team, "forget") == ["carol"]


def test_a_maintainer_sets_and_applies_retention_and_maintenance_applies_it(team):
    from test_team_log import script

    carol, admin = team["env"]("carol"), team["admin"]
    payload = "SELECT request_id, inputs IS NOT NULL AS kept FROM requests ORDER BY request_id"

    status = json.loads(mlops(carol, "retention", "--requests", "1h", "--apply", "-f",
                              "json").stdout)  # fmt: skip
    assert status["policy"] == {"requests": "1h"}
    assert status["applied"]["request_payloads"] == 1  # r-old, two hours old
    kept = {row["request_id"]: row["kept"] for row in query(admin, payload)}
    assert kept["r-old"] is False and kept["r-recent"] is True

    # opening the team log never applies the policy: maintenance (or --apply) does
    script(team["env"]("bob"), RECORD_OLD_REQUEST)
    mlops(team["env"]("bob"), "runs")
    assert {r["request_id"]: r["kept"] for r in query(admin, payload)}["r-old-2"] is True
    done = mlops(team["env"]("erin"), "team", "maintain", "--keep", "7d").stdout
    assert "applied the retention policy: removed 0 checkpoints, 1 request payloads" in done
    kept = {row["request_id"]: row["kept"] for row in query(admin, payload)}
    assert kept["r-old-2"] is False and kept["r-recent"] is True
    assert erased_by(team, "retention") == ["carol", "erin"]


SAME_BYTES = textwrap.dedent(
    """
    import json, os, time
    import mlops_nb as mn

    log = mn.open_log()
    made = {}
    for pair in ("artifact-purged", "checkpoint-purged"):
        content = os.urandom(800)  # one run's artifact and another run's checkpoint hold it
        with log.start_run(experiment="same-bytes") as run:
            path = os.path.join(log.artifacts_dir, f"{pair}.bin")
            open(path, "wb").write(content)
            run.log_artifact(path)
            artifact_run = run.run_id
        with log.start_run(experiment="same-bytes") as run:
            saved = log.artifacts_dir / "checkpoints" / run.run_id / "1" / "value.pkl"
            saved.parent.mkdir(parents=True)
            saved.write_bytes(content)
            stored = log.store_checkpoint(saved)
            log.record("checkpoints", {
                "run_id": run.run_id, "cell_seq": 1, "stage": "train", "name": "value",
                "format": "pickle", "path": stored, "size": len(content), "cache_key": None,
                "created_at": time.time()})
            checkpoint_run = run.run_id
        made[pair] = {"artifact_run": artifact_run, "checkpoint_run": checkpoint_run,
                      "path": stored, "hex": content.hex()}
    log.close()
    print(json.dumps(made))
    """
)

READ_STORED = textwrap.dedent(
    """
    import sys
    import mlops_nb as mn

    print(mn.open_log().artifact_file(sys.argv[1]).read_bytes().hex())
    """
)


def test_bytes_shared_by_an_artifact_and_a_checkpoint_outlive_a_purge_of_either(team):
    """On a team log checkpoints and artifacts are blobs of one store: a purge must not
    delete bytes that a row it leaves still points at."""
    from test_team_log import script

    made = json.loads(script(team["env"]("bob"), SAME_BYTES).strip().splitlines()[-1])
    carol = team["env"]("carol")
    first, second = made["artifact-purged"], made["checkpoint-purged"]
    mlops(carol, "purge", "--run", first["artifact_run"])
    mlops(carol, "purge", "--run", second["checkpoint_run"])
    reader = team["env"]("erin")  # another machine: an empty spool, so fetched from the lake
    for pair in (first, second):
        assert script(reader, READ_STORED, pair["path"]).strip() == pair["hex"]
    left = query(team["admin"], "SELECT run_id FROM store.checkpoints WHERE run_id IN "
                 f"('{first['checkpoint_run']}', '{second['checkpoint_run']}')")  # fmt: skip
    assert [row["run_id"] for row in left] == [first["checkpoint_run"]]
    # once nothing points at them, the bytes go
    mlops(carol, "purge", "--run", first["checkpoint_run"])
    mlops(carol, "purge", "--run", second["artifact_run"])
    blobs = {
        row["sha256"] for row in query(team["admin"], "SELECT sha256 FROM store.artifact_blobs")
    }
    assert not {first["path"].split("/")[-1], second["path"].split("/")[-1]} & blobs
