"""Pipeline runs the server starts: child processes, their error logs, and what became of them.

A run is started as ``python -m mlops_nb.server.child`` reading its request (notebook, typed
parameter values, experiment, log) as JSON on stdin, never as command-line words. The child's
stdout and stderr go to ``<log folder>/server-runs/<pid>.log``. The registry checks its children
on a timer (``reap``, also before a start); reading the states never changes them. Finished
processes stay listed for a while, so a run that died before it was recorded can be reported
with its exit code and the last line of its error output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.errors import MlopsError
from mlops_nb.log.location import LOG_ENV_VAR, local_anchor

RUNS_FOLDER = "server-runs"
_TAIL_BYTES = 8192


class TooManyRuns(MlopsError):
    """The server already runs as many pipelines as it is configured to (answered as 429)."""


@dataclass
class RunRequest:
    """What the child needs: already-checked, typed values (JSON on the child's stdin)."""

    notebook: str  # as given, relative to cwd (recorded as the run's notebook path)
    values: dict[str, Any]
    log_path: str
    cwd: str
    experiment: str | None = None


@dataclass
class Child:
    process: subprocess.Popen
    notebook: str
    log_file: Path
    started: float = field(default_factory=time.time)
    ended: float | None = None
    returncode: int | None = None
    error: str | None = None

    def state(self) -> dict[str, Any]:
        if self.returncode is None:
            state = "running"
        else:
            state = "finished" if self.returncode == 0 else "failed"
        return {
            "pid": self.process.pid, "notebook": self.notebook, "state": state,
            "returncode": self.returncode, "error": self.error, "log": str(self.log_file),
            "started": _iso(self.started), "ended": _iso(self.ended),
        }  # fmt: skip


def _iso(when: float | None) -> str | None:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.UTC).isoformat()


def runs_folder(log_path: str | os.PathLike[str]) -> Path:
    """Where the children's output is kept: ``server-runs/`` beside the log (for a team log,
    in this machine's spool folder)."""
    return local_anchor(log_path).parent / RUNS_FOLDER


def last_line(path: Path) -> str | None:
    """The last non-blank line of a file (its tail only), or None."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - _TAIL_BYTES))
            tail = file.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else None


class ProcessRegistry:
    """The pipeline runs this server started; at most ``max_running`` at once.

    Ended processes are kept ``keep_seconds`` (and at most ``keep_finished`` of them)."""

    def __init__(
        self, max_running: int = 2, keep_seconds: float = 600.0, keep_finished: int = 20
    ) -> None:
        self.max_running = max_running
        self.keep_seconds = keep_seconds
        self.keep_finished = keep_finished
        self.children: dict[int, Child] = {}
        self._timer: Any = None

    def running(self) -> int:
        return sum(1 for child in self.children.values() if child.returncode is None)

    def start(self, request: RunRequest) -> int:
        """Start a child for ``request``; TooManyRuns when the limit is reached."""
        self.reap()
        if self.running() >= self.max_running:
            raise TooManyRuns(
                f"{self.running()} pipeline runs are already running, the most this server runs "
                "at once (MlopsNbExtension.max_pipeline_runs): try again when one has ended"
            )
        folder = runs_folder(request.log_path)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"starting-{uuid.uuid4().hex}"
        spec = folder / f"{name}.json"
        spec.write_text(json.dumps(asdict(request)))
        log_file = folder / f"{name}.log"
        env = {**os.environ, LOG_ENV_VAR: request.log_path}
        try:
            with open(spec, "rb") as stdin, open(log_file, "wb") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "mlops_nb.server.child"], cwd=request.cwd, env=env,
                    stdin=stdin, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        except OSError:
            log_file.unlink(missing_ok=True)
            raise
        finally:
            spec.unlink(missing_ok=True)  # the child holds it open as its stdin
        named = folder / f"{process.pid}.log"
        os.replace(log_file, named)  # the child keeps writing through its open descriptor
        self.children[process.pid] = Child(process, request.notebook, named)
        return process.pid

    def reap(self) -> None:
        """Collect the exit of ended children (their error line too); forget old ones."""
        now = time.time()
        for child in self.children.values():
            if child.returncode is None:
                code = child.process.poll()
                if code is not None:
                    child.returncode, child.ended = code, now
                    child.error = None if code == 0 else (last_line(child.log_file) or
                                                          f"exited with code {code}")  # fmt: skip
        ended = sorted(
            (c for c in self.children.values() if c.ended is not None), key=lambda c: c.ended or 0
        )
        too_many = len(ended) - self.keep_finished
        for index, child in enumerate(ended):
            if index < too_many or now - (child.ended or now) > self.keep_seconds:
                del self.children[child.process.pid]

    def states(self) -> list[dict[str, Any]]:
        """Every listed process as of the last reap, newest first (changes nothing)."""
        children = sorted(self.children.values(), key=lambda c: c.started, reverse=True)
        return [child.state() for child in children]

    def start_reaping(self, every_ms: int = 1000) -> None:
        from tornado.ioloop import PeriodicCallback

        self._timer = PeriodicCallback(self.reap, every_ms)
        self._timer.start()

    def stop_reaping(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
