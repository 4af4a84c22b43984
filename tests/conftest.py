"""Shared fixtures: every test gets its own log file in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROCS = Path(__file__).resolve().parent / "procs"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MLOPS_NB_LOG", raising=False)
    monkeypatch.delenv("MLOPS_NB_EXPERIMENT", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def log_path(tmp_path) -> Path:
    return tmp_path / ".mlops" / "log.duckdb"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: the repository importable, nothing inherited by chance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_NB_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start_proc(script: str, *args: str, **popen_kwargs) -> subprocess.Popen:
    """Start one of the helper scripts in tests/procs/ as a real process."""
    return subprocess.Popen(
        [sys.executable, str(PROCS / script), *map(str, args)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen_kwargs,
    )


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """Run ``mlops-nb`` as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "mlops_nb.cli", *map(str, args)],
        env=env or subprocess_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
