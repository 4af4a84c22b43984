"""Shared fixtures: every test gets its own log file in a temporary folder."""

from __future__ import annotations

import fcntl
import os
import shutil
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


def side_venv(folder: Path, packages: list[str], *, over_ours: bool = False) -> Path:
    """The Python of a venv of its own at ``folder`` holding ``packages`` (for pins that clash
    with ours), made once under a lock (parallel test runs wait for one install) and made
    again when the list changes. ``over_ours``: our venv's site-packages (mlops_nb included)
    are added after its own, so it differs from ours only in ``packages``."""
    python = folder / "bin" / "python"
    stamp, wanted = folder / "installed.txt", " ".join(packages)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == wanted):
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
            if over_ours:
                ours = next(Path(p) for p in sys.path if p.endswith("site-packages"))
                (venv_site_packages(python) / "mlops_nb_base_venv.pth").write_text(
                    f"import site; site.addsitedir({str(ours)!r})\n"
                )
            subprocess.run([python, "-m", "pip", "install", "-q", *packages],
                           check=True, timeout=1200)  # fmt: skip
            stamp.write_text(wanted)
    return python


def venv_site_packages(python: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return python.parent.parent / "lib" / version / "site-packages"


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process a test started: SIGTERM, then SIGKILL if it has not gone in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


def debian_command(command: str, package: str) -> str:
    """The path of ``command``, installing Debian's ``package`` with apt-get (once, under a lock
    shared by every test process) when it is missing. CI runs as root on Debian, so there it
    is always found or installed; elsewhere the test is skipped with the reason."""
    found = shutil.which(command)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        reason = f"{command} is missing and apt-get cannot install {package} here (CI runs as root)"
        pytest.skip(reason)
    with open("/tmp/mlops-nb-test-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which(command) is None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-qq"]
            subprocess.run([*apt, "update"], env=env, check=True, capture_output=True, timeout=600)
            subprocess.run([*apt, "install", "--no-install-recommends", package], env=env,
                           check=True, capture_output=True, timeout=1200)  # fmt: skip
    return shutil.which(command) or command


@pytest.fixture
def shell():
    """A real IPython shell with ``%load_ext mlops_nb``; its run is stopped and the shell
    cleared afterwards, so no test sees another's (``get_ipython()`` is None again)."""
    import builtins

    from IPython.core.interactiveshell import InteractiveShell

    from mlops_nb.log import api as log_api

    was_ipython = hasattr(builtins, "__IPYTHON__")
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext mlops_nb", store_history=True)
    yield ip
    tracker = ip._mlops_tracker
    if tracker is not None and tracker.run is not None:
        tracker.stop()
    ip.run_cell("%unload_ext mlops_nb")
    log_api._ACTIVE_RUNS.clear()
    InteractiveShell.clear_instance()
    if not was_ipython:  # later tests run as a plain script again
        builtins.__dict__.pop("__IPYTHON__", None)
