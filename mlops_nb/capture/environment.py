"""What a run records about where it ran: how it was started, the notebook, the git state."""

from __future__ import annotations

import builtins
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PIPELINE_ENV_VAR = "MLOPS_NB_PIPELINE"  # set by ``mlops-nb run`` for the kernel it starts


def run_context() -> dict[str, Any]:
    """Fields for a new run: source (interactive/papermill/script), notebook, git commit."""
    source = detect_source()
    notebook = os.environ.get("MLOPS_NB_NOTEBOOK") or os.environ.get("JPY_SESSION_NAME")
    context: dict[str, Any] = {"source": source}
    if notebook:
        context["notebook_path"] = notebook
        context["notebook_hash"] = file_sha256(notebook)
    anchor = Path(notebook).parent if notebook else Path.cwd()
    context.update(git_state(anchor))
    return context


def detect_source() -> str:
    if os.environ.get(PIPELINE_ENV_VAR):
        return "papermill"
    # An IPython shell sets builtins.__IPYTHON__ while it runs (capture/ must not import it);
    # a kernel is a running IPKernelApp, not merely ipykernel imported (nbclient imports it).
    kernel_app = getattr(sys.modules.get("ipykernel.kernelapp"), "IPKernelApp", None)
    if getattr(builtins, "__IPYTHON__", False) or (
        kernel_app is not None and kernel_app.initialized()
    ):
        return "interactive"
    return "script"


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


_GIT_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}
_GIT_CACHE_SECONDS = 30.0


def git_state(folder: Path) -> dict[str, Any]:
    """``git_commit`` and ``git_dirty`` of the repository holding ``folder``, if any.

    Cached for a few seconds: a script starting a thousand runs must not run git each time.
    """
    key = str(folder)
    cached = _GIT_CACHE.get(key)
    if cached and time.monotonic() - cached[0] < _GIT_CACHE_SECONDS:
        return dict(cached[1])
    state = _read_git_state(folder)
    _GIT_CACHE[key] = (time.monotonic(), state)
    return dict(state)


def _read_git_state(folder: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        if commit.returncode != 0:
            return {}
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def platform_facts() -> list[tuple[str, str, str]]:
    """``(kind, name, version)`` of the interpreter and machine a run executes on."""
    import platform

    facts = [
        ("python", "python", platform.python_version()),
        ("python", "implementation", platform.python_implementation()),
        ("platform", "system", f"{platform.system()} {platform.release()}"),
        ("platform", "machine", platform.machine()),
        ("executable", "path", sys.executable),
    ]
    kernel = os.environ.get("MLOPS_NB_KERNEL")
    if kernel:
        facts.append(("kernel", "name", kernel))
    if "ipykernel" in sys.modules:
        facts.append(("kernel", "ipykernel", getattr(sys.modules["ipykernel"], "__version__", "?")))
    return facts


_DISTRIBUTIONS: dict[str, list[str]] | None = None


def packages_in_use(already_seen: set[str]) -> list[tuple[str, str]]:
    """``(distribution, version)`` for top-level modules imported now and not seen before.

    Updates ``already_seen`` with the module names it looked at, so calling it after every
    cell only costs a set difference.
    """
    from importlib import metadata

    global _DISTRIBUTIONS
    if _DISTRIBUTIONS is None:
        _DISTRIBUTIONS = metadata.packages_distributions()
    top_level = {name.split(".", 1)[0] for name in list(sys.modules)} - already_seen
    already_seen |= top_level
    found: dict[str, str] = {}
    for module in top_level:
        for distribution in _DISTRIBUTIONS.get(module, []):
            if distribution not in found:
                try:
                    found[distribution] = metadata.version(distribution)
                except metadata.PackageNotFoundError:
                    continue
    return sorted(found.items())
