"""mlops_nb: notebook-native MLOps on a DuckDB experiment log.

import mlops_nb as mn
log = mn.open_log()
with log.start_run(experiment="churn", params={"lr": 0.1}) as run:
    run.log_metric("loss", 0.3)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlops_nb._version import __version__
from mlops_nb.errors import MlopsError
from mlops_nb.log import Log, Run, RunRecord, active_run


def open_log(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Log:
    """Open (or create) the experiment log; see DESIGN.md for where it is looked for."""
    from mlops_nb.capture.environment import run_context

    return Log(path, create=create, run_defaults=run_context)


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext mlops_nb`` registers ``%mlops`` / ``%%mlops`` and the cell hooks."""
    from mlops_nb.notebook import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    from mlops_nb.notebook import unload_ipython_extension as unload

    unload(shell)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """``jpserver_extensions = {"mlops_nb": true}`` finds the REST API in mlops_nb.server."""
    return [{"module": "mlops_nb.server"}]


def register_model(
    name: str,
    run: str | None = None,
    model: str = "model",
    steps: list[str] | None = None,
    *,
    log: Log | None = None,
    verify: bool = True,
    alias: str | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    labels: str | None = None,
) -> dict[str, Any]:
    """Assemble ``steps`` + ``model`` fitted in a run into one pipeline, prove it reproduces
    the run's recorded predictions, and register it as the next version of ``name``.

    Without ``run``, inside a notebook: the active run, with the objects taken from the
    caller's namespace. Elsewhere, the run's saved values (a run made with ``mlops-nb run``).
    ``labels`` names the evaluation labels (e.g. ``"y_test"``) when they cannot be found; they
    let monitoring estimate performance before live labels arrive.
    """
    import sys

    from mlops_nb.registry.assemble import register_model as register

    namespace = None
    if run is None and log is None:
        try:
            active = active_run()
        except MlopsError:
            active = None
        if active is not None:
            run, log = active.run_id, active.log
            namespace = sys._getframe(1).f_globals  # the notebook's namespace when called there
    return register(
        log or open_log(), name, run=run, model=model, steps=steps, namespace=namespace,
        verify=verify, description=description, tags=tags, alias=alias, labels=labels,
    )  # fmt: skip


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record a metric on the active run (started by ``%mlops track`` or ``start_run``)."""
    active_run().log_metric(key, value, step=step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    active_run().log_metrics(metrics, step=step)


def log_param(name: str, value: Any) -> None:
    active_run().log_param(name, value)


def log_params(params: Mapping[str, Any]) -> None:
    active_run().log_params(params)


__all__ = [
    "Log", "MlopsError", "Run", "RunRecord", "__version__", "active_run", "log_metric",
    "log_metrics", "log_param", "log_params", "open_log", "register_model",
]  # fmt: skip
