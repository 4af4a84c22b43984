"""Roles on a real team log: PostgreSQL, not mlops-nb, refuses what a role may not do.

A lake is created by the superuser (DuckDB 1.5.5 with the offline DuckLake extensions, in the
team venv), ``mlops_nb.log.roles`` sets up the group roles and grants three people a role each,
and each person then connects as themselves: the reader queries but cannot insert (not even
through raw SQL on the catalog), the writer inserts and updates but cannot create tables, the
admin flushes inlined rows (dropping tables the writer's commits created). A reader keeps
reading tables created after the grants, and the audit user is the person's login.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

pytest_plugins = ["team_servers"]

SCENARIO = textwrap.dedent(
    """
    import json, sys
    import duckdb
    from mlops_nb.log import roles

    config = json.loads(sys.argv[1])
    outcome = {}

    def connect(user):
        con = duckdb.connect()
        for statement in config["load"]:
            con.execute(statement)
        attach = config["attach"].replace("user=postgres", "user=" + user)
        con.execute(attach)
        return con

    def attempt(name, con, sql):
        try:
            rows = con.execute(sql).fetchall()
            outcome[name] = {"ok": True, "rows": [list(map(str, r)) for r in rows]}
        except duckdb.Error as error:
            outcome[name] = {"ok": False, "error": str(error)}

    admin = connect("postgres")  # the superuser makes the lake, as `team init` would
    admin.execute("CREATE SCHEMA lake.store")
    admin.execute("CREATE TABLE lake.store.runs (run_id VARCHAR, status VARCHAR)")
    admin.execute("INSERT INTO lake.store.runs VALUES ('r0', 'finished')")
    meta = "__ducklake_metadata_lake"

    def execute(statements):
        for statement in statements:
            admin.execute(f"CALL postgres_execute('{meta}', {roles.literal(statement)})")

    execute(roles.setup_statements("lake_catalog"))
    for user, role in (("alice", "reader"), ("bob", "writer"), ("carol", "admin")):
        execute(roles.grant_statements(user, role))
    execute(roles.grant_statements("bob", "writer"))  # twice: nothing changes
    admin.close()

    reader = connect("alice")
    attempt("reader_select", reader, "SELECT count(*) FROM lake.store.runs")
    attempt("reader_insert", reader, "INSERT INTO lake.store.runs VALUES ('r9', 'x')")
    attempt("reader_raw_insert", reader,
            f"CALL postgres_execute('{meta}', 'INSERT INTO lake_catalog.ducklake_snapshot "
            "SELECT * FROM lake_catalog.ducklake_snapshot LIMIT 1')")
    attempt("reader_users", reader, f"SELECT * FROM postgres_query('{meta}', "
            "'SELECT session_user::text, current_user::text')")
    reader.close()

    writer = connect("bob")
    attempt("writer_insert", writer, "INSERT INTO lake.store.runs VALUES ('r1', 'running')")
    attempt("writer_insert_many", writer,
            "INSERT INTO lake.store.runs SELECT 'm' || i, 'finished' FROM range(200) t(i)")
    attempt("writer_update", writer, "UPDATE lake.store.runs SET status = 'finished' "
            "WHERE run_id = 'r1'")
    attempt("writer_create", writer, "CREATE TABLE lake.store.extra (a INTEGER)")
    attempt("writer_users", writer, f"SELECT * FROM postgres_query('{meta}', "
            "'SELECT session_user::text, current_user::text')")
    writer.close()

    owner = connect("carol")
    attempt("admin_alter", owner, "ALTER TABLE lake.store.runs ADD COLUMN note VARCHAR")
    owner.close()
    writer = connect("bob")  # a new inlined-rows table appears with the schema change
    attempt("writer_after_alter", writer, "INSERT INTO lake.store.runs VALUES ('r2', 'ok', 'n')")
    writer.close()
    reader = connect("alice")
    attempt("reader_after_alter", reader, "SELECT count(*), count(note) FROM lake.store.runs")
    reader.close()
    owner = connect("carol")
    attempt("admin_flush", owner, "CALL ducklake_flush_inlined_data('lake')")
    attempt("admin_count", owner, "SELECT count(*) FROM lake.store.runs")
    owner.close()
    print(json.dumps(outcome))
    """
)


@pytest.fixture(scope="module")
def outcome(postgres_server, tmp_path_factory):
    from team_servers import (
        ducklake_attach_statement,
        ducklake_load_statements,
        team_python,
        team_site_packages,
    )

    postgres_server.create_database("roles_lake")
    data = tmp_path_factory.mktemp("roles-data")
    data.chmod(0o777)
    config = {
        "load": ducklake_load_statements(team_site_packages()),
        "attach": ducklake_attach_statement(postgres_server, "roles_lake", f"{data}/",
                                            metadata_schema="lake_catalog"),
    }  # fmt: skip
    result = subprocess.run(
        [str(team_python()), "-c", SCENARIO, json.dumps(config)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1]), postgres_server


def test_a_reader_queries_and_postgresql_refuses_its_inserts(outcome):
    found, _ = outcome
    assert found["reader_select"] == {"ok": True, "rows": [["1"]]}
    for attempt in ("reader_insert", "reader_raw_insert"):
        assert not found[attempt]["ok"]
        assert "permission denied for table" in found[attempt]["error"]


def test_a_writer_records_but_cannot_create_tables(outcome):
    found, _ = outcome
    for attempt in ("writer_insert", "writer_insert_many", "writer_update", "writer_after_alter"):
        assert found[attempt]["ok"], found[attempt]
    assert not found["writer_create"]["ok"]
    assert "permission denied" in found["writer_create"]["error"]


def test_tables_made_after_the_grants_stay_readable_and_the_admin_maintains(outcome):
    found, _ = outcome
    assert found["admin_alter"]["ok"], found["admin_alter"]
    assert found["reader_after_alter"] == {"ok": True, "rows": [["203", "1"]]}
    assert found["admin_flush"]["ok"], found["admin_flush"]
    assert found["admin_count"]["rows"] == [["203"]]


def test_the_audit_user_is_the_login_and_new_roles_have_no_password(outcome):
    found, server = outcome
    assert found["reader_users"]["rows"] == [["alice", "mlops_nb_reader"]]
    assert found["writer_users"]["rows"] == [["bob", "mlops_nb_writer"]]
    passwords = server.psql(
        "SELECT rolname, rolpassword IS NULL FROM pg_authid "
        "WHERE rolname IN ('alice', 'bob', 'carol') ORDER BY 1"
    )
    assert passwords.splitlines() == ["alice|t", "bob|t", "carol|t"]


def test_unknown_roles_and_odd_user_names_are_refused():
    from mlops_nb.log.roles import RoleError, grant_statements

    with pytest.raises(RoleError, match="unknown role 'owner'"):
        grant_statements("alice", "owner")
    with pytest.raises(RoleError, match="not a plain PostgreSQL role name"):
        grant_statements("alice; DROP TABLE x", "reader")
