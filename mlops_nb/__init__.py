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


def drift(
    reference: Any,
    current: Any = None,
    *,
    requests: str | None = None,
    since: Any = None,
    log: Log | None = None,
    record: bool | None = None,
    **options: Any,
) -> Any:
    """Test each column of ``current`` for drift against ``reference``, with the test
    Evidently picks by default; returns a ``DriftReport`` (a table, a summary, an HTML view).

    ``reference``: a DataFrame, or text the log resolves: ``NAME@ALIAS`` / ``NAME:VERSION``
    (the training data profile kept at registration), ``RUN_ID:DATASET`` or a file.
    ``current``: a DataFrame or a file; or ``requests="NAME@ALIAS"`` (with ``since="1d"``) for
    what a served model answered. ``options``: ``columns``, ``methods``, ``thresholds``,
    ``drift_share``. Results are recorded in the ``drift`` view when the log is involved, or
    when ``record=True``.
    """
    from mlops_nb.monitor.drift import drift as test_drift
    from mlops_nb.monitor.drift_command import drift_from_log, record_report

    if not isinstance(reference, str) and requests is None and not isinstance(current, str):
        report = test_drift(reference, current, **options)
        if record:
            report.reference_label, report.current_label = "DataFrame", "DataFrame"
            record_report(log or open_log(), report)
        return report
    if not isinstance(reference, str):
        raise MlopsError("with requests= or a file as current data, give the reference as text "
                         "(NAME@ALIAS, NAME:VERSION, RUN_ID:DATASET or a file)")  # fmt: skip
    return drift_from_log(log or open_log(), reference, current=current, requests=requests,
                          since=since, record=record, **options)  # fmt: skip


def fairness(
    y_true: Any,
    y_pred: Any,
    sensitive: Any,
    *,
    pos_label: Any = None,
    name: str | None = None,
    record: bool = False,
) -> Any:
    """Accuracy, selection rate, TPR, FPR and count per group of ``sensitive``, and the
    demographic parity difference and ratio and equalized odds difference (fairlearn's
    numbers); returns a ``FairnessReport`` (``.by_group``, ``.summary``, HTML view).

    ``record=True`` journals it into the active run: ``fairness`` rows, and the summary
    numbers as metrics that gates check (``%mlops gate "demographic_parity_ratio >= 0.8"``).
    """
    from mlops_nb.capture.fairness import fairness as measure
    from mlops_nb.capture.fairness import record_fairness

    report = measure(y_true, y_pred, sensitive, pos_label=pos_label, name=name)
    if record:
        record_fairness(active_run(), [report])
    return report


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
    "Log", "MlopsError", "Run", "RunRecord", "__version__", "active_run", "drift", "fairness",
    "log_metric", "log_metrics", "log_param", "log_params", "open_log", "register_model",
]  # fmt: skip
