"""Who did what: the audit trail, ``team grant``/``team roles``, maintainer-only actions and
the sidebar's reader role.

A file log records the OS user; a team log the authenticated PostgreSQL login
(``session_user``). The lake scenario runs with real PostgreSQL in the team venv (DuckDB 1.5.5
with the DuckLake extensions): the superuser initialises the lake and grants bob writer, carol
maintainer and dave reader; bob records a run but may not move an alias; carol registers and
moves one; the admin moves it again; the audit view says who did each.
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap

import duckdb
import pytest

import mlops_nb
from mlops_nb.log import schema

pytest_plugins = ["team_servers"]


def audit(log) -> list[tuple[str, str, str]]:
    rows = log.sql('SELECT action, who, subject FROM audit ORDER BY "when", action')
    return [tuple(row) for row in rows.itertuples(index=False)]


# ---------------------------------------------------------------------- file logs
def test_a_file_log_audits_runs_registrations_alias_moves_gate_overrides_and_purges(tmp_path):
    from mlops_nb.log.apply import os_user
    from mlops_nb.registry.gates import record_gate, run_gate
    from mlops_nb.retention import purge

    log = mlops_nb.open_log(tmp_path / "log.duckdb")
    with log.start_run(experiment="audit") as run:
        run.log_metrics({"acc": 0.5})
    version = log.add_model_version({"name": "m", "run_id": run.run_id})
    log.move_alias("m", "champion", version, reason="first")
    gate = run_gate(log, run.run_id, ["acc >= 0.9"], model="m", warn_only=True, record=False)
    record_gate(log, gate)
    passed = run_gate(log, run.run_id, ["acc >= 0.1"], model="m", warn_only=True, record=False)
    record_gate(log, passed)  # a gate that passed overrides nothing
    with log.start_run(experiment="scratch") as scratch:
        pass
    purge(log, run_id=scratch.run_id)
    log.flush()

    found = audit(log)
    me = os_user()
    assert {(action, who) for action, who, _ in found} == {
        ("run", me), ("register", me), ("alias", me), ("gate_override", me), ("purge", me),
    }  # fmt: skip
    assert [a for a, _, _ in found].count("gate_override") == 1
    assert ("alias", me, "m@champion") in found and ("register", me, "m v1") in found
    details = log.sql("SELECT details FROM audit WHERE action = 'gate_override'").iloc[0, 0]
    assert details == "failed: acc >= 0.9"
    log.close()


def test_a_version_9_file_log_migrates_on_open_and_keeps_its_recorded_users(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    schema.migrate(con, 0, 9)
    con.execute(
        "INSERT INTO store.runs (run_id, experiment, status, user_name) "
        "VALUES ('old', 'e', 'finished', 'someone')"
    )
    con.close()

    log = mlops_nb.open_log(path, create=False)
    assert audit(log) == [("run", "someone", "old")]
    assert log.sql("SELECT value FROM store.meta WHERE key = 'schema_version'").iloc[0, 0] == "10"
    log.close()


# ---------------------------------------------------------------------- a team log
RECORD_RUN = textwrap.dedent(
    """
    import mlops_nb as mn

    log = mn.open_log()
    with log.start_run(experiment="team") as run:
        run.log_metrics({"acc": 0.8})
    log.close()
    print(run.run_id)
    """
)

REGISTER = textwrap.dedent(
    """
    import sys
    import mlops_nb as mn

    log = mn.open_log()
    print(log.add_model_version({"name": "m", "run_id": sys.argv[1]}))
    log.close()
    """
)

DIES_MID_RUN = textwrap.dedent(
    """
    import os, signal
    import mlops_nb as mn

    log = mn.open_log()
    run = log.start_run(experiment="team")
    log.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    """
)

# the sidebar's way of opening the log, with MLOPS_NB_READER_LOG set; then a write through it
READER_SERVER = textwrap.dedent(
    """
    import json, sys
    from mlops_nb.server.handlers import open_log

    log = open_log(sys.argv[1])
    runs = log.runs()
    outcome = {"runs": sorted(runs["status"]), "user": log._store.database_user()}
    log._store.append({"op": "row", "table": "notes", "row": {"run_id": "x", "kind": "k",
                       "message": "a reader's write", "created_at": 0.0}})
    try:
        log._store.flush()
        outcome["write"] = "accepted"
    except Exception as error:
        outcome["write"] = str(error)
    print(json.dumps(outcome))
    """
)


@pytest.fixture(scope="module")
def team(postgres_server, tmp_path_factory):
    """A lake initialised by the superuser, with bob, carol and dave granted a role each."""
    from test_team_log import cli, new_database, script, team_env

    root = tmp_path_factory.mktemp("audit")
    dbname = new_database(postgres_server)

    def env(user: str, **extra: str) -> dict:
        made = team_env(postgres_server, dbname, root / f"spool-{user}", host=f"host-{user}")
        made["MLOPS_NB_LOG"] = f"ducklake:postgres:{postgres_server.dsn(dbname, user)}"
        return {**made, **extra}

    admin = env(postgres_server.user)
    init = cli(admin, "team", "init", "--data", str(root / "shared")).stdout
    granted = [
        cli(admin, "team", "grant", user, role).stdout
        for user, role in (("bob", "writer"), ("carol", "maintainer"), ("dave", "reader"))
    ]
    bobs_run = script(env("bob"), RECORD_RUN).strip().splitlines()[-1]  # a writer records
    return {"env": env, "cli": cli, "admin": admin, "init": init, "granted": granted,
            "bobs_run": bobs_run,
            "server": postgres_server, "dbname": dbname}  # fmt: skip


def test_team_grant_creates_logins_and_team_roles_lists_them(team):
    assert "created the log schema 10" in team["init"]
    assert "bob is now writer (mlops_nb_writer)" in team["granted"][0]
    members = json.loads(team["cli"](team["admin"], "team", "roles", "-f", "json").stdout)
    # roles are the PostgreSQL cluster's, which other test modules share: check this test's
    roles = {member["user"]: member["role"] for member in members}
    assert {user: roles.get(user) for user in ("bob", "carol", "dave")} == {
        "bob": "writer", "carol": "maintainer", "dave": "reader",
    }  # fmt: skip
    passwords = team["server"].psql(
        "SELECT rolname, rolpassword IS NULL FROM pg_authid WHERE rolname IN ('bob', 'dave') "
        "ORDER BY 1"
    )
    assert passwords.splitlines() == ["bob|t", "dave|t"]
    refused = team["cli"](team["admin"], "team", "grant", "eve", "owner", check=False)
    assert refused.returncode == 2 and "invalid choice: 'owner'" in refused.stderr
    not_admin = team["cli"](team["env"]("carol"), "team", "grant", "eve", "admin", check=False)
    assert not_admin.returncode != 0 and len(not_admin.stderr.strip().splitlines()) == 1
    assert "could not grant admin to eve: " in not_admin.stderr
    assert 'must have admin option on role "mlops_nb_reader"' in not_admin.stderr  # PostgreSQL's
    assert team["server"].psql("SELECT count(*) FROM pg_roles WHERE rolname = 'eve'") == "0"


def test_a_writer_records_runs_a_maintainer_registers_and_the_audit_says_who(team):
    from test_team_log import script

    cli, env = team["cli"], team["env"]
    run_id = team["bobs_run"]

    version = script(env("carol"), REGISTER, run_id).strip().splitlines()[-1]
    assert version == "1"

    refused = cli(env("bob"), "models", "alias", "m", "champion", "1", check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (  # one line, no traceback
        "mlops-nb models: moving a model alias needs the maintainer role on the team log: "
        "bob is not a member of mlops_nb_maintainer (ask an administrator: mlops-nb team "
        "grant bob maintainer)"
    )
    cli(env("carol"), "models", "alias", "m", "champion", "1", "--reason", "first")
    cli(team["admin"], "models", "alias", "m", "staging", "1")

    rows = json.loads(cli(team["admin"], "sql", 'SELECT action, who, subject FROM audit '
                          'ORDER BY "when"', "-f", "json").stdout)  # fmt: skip
    who = {(row["action"], row["subject"]): row["who"] for row in rows}
    assert who[("run", run_id)] == "bob"
    assert who[("register", "m v1")] == "carol"
    assert who[("alias", "m@champion")] == "carol"
    assert who[("alias", "m@staging")] == team["server"].user
    assert len(rows) == 4  # bob's refused move left nothing


def test_the_sidebar_with_a_reader_login_cannot_write(team, tmp_path):
    from team_servers import team_python
    from test_team_log import script

    from mlops_nb.log.lake import CRASH_TIMEOUT_ENV

    server = team["server"]
    reader = f"ducklake:postgres:{server.dsn(team['dbname'], 'dave')}"
    env = team["env"]("dave", MLOPS_NB_READER_LOG=reader, MLOPS_NB_SPOOL=str(tmp_path / "sp"))
    # bob's machine dies mid-run: a reader may not mark the run crashed, and reads on
    killed = team["env"]("bob", MLOPS_NB_SPOOL=str(tmp_path / "bob-dies"))
    done = subprocess.run([str(team_python()), "-c", DIES_MID_RUN], env=killed, timeout=120)
    assert done.returncode == -signal.SIGKILL
    env[CRASH_TIMEOUT_ENV] = "0.2"
    outcome = json.loads(script(env, READER_SERVER, str(tmp_path / "unused.duckdb")))
    assert outcome["user"] == "dave"
    assert outcome["runs"] == ["finished", "running"]  # a writer marks it crashed, not dave
    assert "permission denied for table" in outcome["write"], outcome  # PostgreSQL's refusal


INIT_AT_VERSION_9 = textwrap.dedent(
    """
    import sys
    from mlops_nb.log import lake, schema

    schema.SCHEMA_VERSION = 9  # what the previous release created
    print("\\n".join(lake.initialise(sys.argv[1], sys.argv[2])))
    """
)


def test_team_init_migrates_a_version_9_team_log(postgres_server, tmp_path):
    from test_team_log import cli, new_database, script, team_env

    env = team_env(postgres_server, new_database(postgres_server), tmp_path / "spool")
    old = script(env, INIT_AT_VERSION_9, env["MLOPS_NB_LOG"], str(tmp_path / "shared"))
    assert "created the log schema 9" in old
    refused = cli(env, "runs", check=False)
    assert "has an older log schema: run mlops-nb team init" in refused.stderr

    assert "migrated the log schema 9 -> 10" in cli(env, "team", "init").stdout
    run_id = script(env, RECORD_RUN).strip().splitlines()[-1]
    rows = json.loads(cli(env, "sql", "SELECT who, subject FROM audit", "-f", "json").stdout)
    assert rows == [{"who": postgres_server.user, "subject": run_id}]
