"""A real ``jupyter lab`` on loopback and Debian's Chromium, for the sidebar tests and benchmark.

Used by tests/test_sidebar.py and benchmarks/bench_sidebar.py: seed a log, start the server
as a process (stopped by its PID), and drive the page with playwright.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import debian_command

import mlops_nb

HOSTILE = "<img src=x onerror=alert(1)>"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def launch_chromium(playwright):
    """A headless Debian Chromium driven by playwright (its own browser download is unreachable)."""
    chromium = debian_command("chromium", "chromium")
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)


def seed_bulk_runs(log_path: Path, count: int, experiment: str = "bulk") -> None:
    """``count`` finished runs with 5 params and 5 metrics each, as a sweep would leave them."""
    log = mlops_nb.open_log(log_path)
    for i in range(count):
        with log.start_run(experiment=experiment, name=f"trial-{i:05d}") as run:
            run.log_params({"lr": 0.001 * (1 + i % 50), "depth": 2 + i % 8, "model": "rf",
                            "seed": i, "batch": 32 * (1 + i % 4)})  # fmt: skip
            run.log_metrics({"accuracy": 0.5 + (i % 997) / 2000, "loss": 1.0 / (1 + i % 13),
                             "f1": 0.4 + (i % 89) / 200, "auc": 0.6 + (i % 37) / 100,
                             "latency_ms": 10 + i % 7})  # fmt: skip
    log.flush()
    log.close()


def seed_demo_runs(log_path: Path, folder: Path) -> dict[str, str]:
    """Three runs to look at: metric histories, an artifact, and one with a hostile name."""
    log = mlops_nb.open_log(log_path)
    ids = {}
    for name, lr, acc in (("baseline", 0.01, 0.81), ("tuned", 0.3, 0.93), (HOSTILE, 0.1, 0.5)):
        run = log.start_run("demo", name, params={"lr": lr, "model": "rf", "depth": 4})
        for step, value in enumerate((acc - 0.3, acc - 0.2, acc - 0.05, acc)):
            run.log_metric("acc", value, step=step)
            run.log_metric("loss", 1 - value, step=step)
        if name == "tuned":
            artifact = folder / "model-card.txt"
            artifact.write_text("the tuned model")
            run.log_artifact(artifact)
        run.end()
        ids[name] = run.run_id
        time.sleep(0.01)
    log.flush()
    log.close()
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    """A running ``jupyter lab``: its URL, token, root folder and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log_file: Path

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}{path}?token={self.token}"


def lab_environment(workdir: Path, log_path: Path) -> dict[str, str]:
    """Settings that keep the page quiet (no news or update checks) and point at the log."""
    settings = workdir / "lab-settings"
    plugin = settings / "@jupyterlab" / "apputils-extension"
    plugin.mkdir(parents=True, exist_ok=True)
    (plugin / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_NB_")}
    env.update({
        "MLOPS_NB_LOG": str(log_path),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
    })  # fmt: skip
    return env


@contextlib.contextmanager
def running_lab(
    root: Path,
    log_path: Path,
    python: str = sys.executable,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Lab]:
    """Start ``jupyter lab`` on a free loopback port; stop it by its PID however the test ends."""
    port = free_port()
    token = secrets.token_hex(16)
    workdir = root.parent / f"lab-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    server_log = workdir / "server.log"
    command = [python, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.port_retries=0", *extra_args]  # fmt: skip
    with open(server_log, "w") as out:
        process = subprocess.Popen(
            command, cwd=root, env={**lab_environment(workdir, log_path), **(extra_env or {})},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {server_log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    tail = server_log.read_text()[-2000:]
                    raise RuntimeError(f"jupyter lab did not answer: {tail}") from None
                time.sleep(0.3)
        yield Lab(url, token, root, process, server_log)
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it and its kernels), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def open_sidebar(page) -> float:
    """Click the MLOps tab in the left area; milliseconds until its experiments are listed."""
    page.wait_for_selector('.jp-SideBar [data-id="mlops-nb-sidebar"]', timeout=60_000)
    started = time.perf_counter()
    page.click('.jp-SideBar [data-id="mlops-nb-sidebar"]')
    page.wait_for_selector("#mlops-nb-sidebar .mlops-open-experiment", timeout=30_000)
    return (time.perf_counter() - started) * 1000


def runs_area(experiment: str = "") -> str:
    """The selector of the main-area runs tab of ``experiment`` ('' for all experiments)."""
    return f".mlops-runs-area[data-experiment='{experiment}']"


def open_runs(page, experiment: str = "") -> float:
    """Click an experiment in the panel (default: All experiments); milliseconds until its
    runs tab in the main area shows rows."""
    item = f"#mlops-nb-sidebar .mlops-open-experiment[data-experiment='{experiment}']"
    page.wait_for_selector(item, timeout=30_000)
    started = time.perf_counter()
    page.click(item)
    page.wait_for_selector(f"{runs_area(experiment)} .mlops-runs-table tbody tr", timeout=30_000)
    return (time.perf_counter() - started) * 1000
