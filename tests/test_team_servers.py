"""The team-log test servers themselves: a throwaway PostgreSQL cluster and a local S3 server.

DuckLake itself needs DuckDB 1.5.5 with its offline extensions, which this venv does not hold;
these tests prove the servers (and the SQL we hand to DuckDB) with psql and rclone only.
"""

from __future__ import annotations

import os
import pwd
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# registered as a plugin (not imported here first), so every module that lists it shares one
# cluster and one S3 server per session; helpers are imported inside the tests for that reason
pytest_plugins = ["team_servers"]


def test_postgres_runs_on_loopback_as_the_postgres_user(postgres_server):
    dsn = postgres_server.create_database("servers_check")
    row = postgres_server.psql(
        "SELECT current_user, inet_server_addr(), current_setting('server_version_num')",
        dbname="servers_check",
    )
    user, address, version = row.split("|")
    assert (user, address) == ("postgres", "127.0.0.1")
    assert int(version) >= 150000
    assert "password" not in dsn
    # the fixture stops the server by this PID; as root it runs as the postgres user
    status = Path(f"/proc/{postgres_server.pid}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert uid == expected


def test_a_reader_role_is_refused_an_insert_by_postgresql(postgres_server):
    from team_servers import PsqlError

    postgres_server.create_database("roles_check")
    postgres_server.psql(
        "CREATE SCHEMA lake; CREATE TABLE lake.snapshot (id BIGINT); "
        "INSERT INTO lake.snapshot VALUES (1); CREATE ROLE team_reader LOGIN; "
        "GRANT USAGE ON SCHEMA lake TO team_reader; "
        "GRANT SELECT ON ALL TABLES IN SCHEMA lake TO team_reader",
        dbname="roles_check",
    )
    as_reader = {"dbname": "roles_check", "user": "team_reader"}
    assert postgres_server.psql(
        "SELECT current_user, count(*) FROM lake.snapshot", **as_reader
    ) == ("team_reader|1")
    with pytest.raises(PsqlError, match="permission denied for table snapshot"):
        postgres_server.psql("INSERT INTO lake.snapshot VALUES (2)", **as_reader)


def test_s3_server_keeps_objects_as_files_and_checks_credentials(s3_server, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    put = s3_server.client("copyto", str(source), f"s3:{s3_server.bucket}/artifacts/ab/model.bin")
    assert put.returncode == 0, put.stderr
    listed = s3_server.client("lsf", "-R", f"s3:{s3_server.bucket}/artifacts")
    assert sorted(listed.stdout.split()) == ["ab/", "ab/model.bin"]
    assert (s3_server.root / s3_server.bucket / "artifacts/ab/model.bin").read_bytes() == b"weights"

    wrong = s3_server.client("lsf", f"s3:{s3_server.bucket}", secret="not-the-secret")
    assert wrong.returncode != 0 and "SignatureDoesNotMatch" in wrong.stderr
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"http://{s3_server.endpoint}/{s3_server.bucket}/", timeout=10)
    assert anonymous.value.code in (400, 403)


def test_ducklake_statements_name_the_servers_and_no_password(postgres_server, s3_server, tmp_path):
    from team_servers import ducklake_attach_statement, ducklake_load_statements

    on_s3 = ducklake_attach_statement(postgres_server, "team", s3_server.url("data"))
    assert on_s3 == (
        f"ATTACH 'ducklake:postgres:dbname=team host=127.0.0.1 port={postgres_server.port} "
        "user=postgres' AS lake (DATA_PATH 's3://lake/data/')"
    )
    reader = ducklake_attach_statement(
        postgres_server, "team", user="team_reader", metadata_schema="lake", read_only=True
    )
    assert reader.endswith("user=team_reader' AS lake (METADATA_SCHEMA 'lake', READ_ONLY)")
    assert f"ENDPOINT '{s3_server.endpoint}'" in s3_server.secret_statement()
    with pytest.raises(FileNotFoundError, match="pip install duckdb==1.5.5"):
        ducklake_load_statements(tmp_path)
