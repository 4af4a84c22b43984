"""A batch pipeline run reports to a Prometheus Pushgateway (``--pushgateway URL`` or
``MLOPS_NB_PUSHGATEWAY``), since Prometheus cannot scrape a process that has ended.

One push per run, with ``pushadd`` (POST) under the grouping key ``job="mlops_nb"``,
``pipeline=<notebook stem>``: minimal and the same for every run of the notebook, never per
run. ``pushadd`` replaces only the metric names it sends, so a failed run leaves the last
success in place. What it sends:

- ``mlops_nb_pipeline_last_duration_seconds``: how long this run took;
- ``mlops_nb_pipeline_last_success_timestamp_seconds``: when it ended, only on success;
- ``mlops_nb_pipeline_last_failure_timestamp_seconds``: when it ended, only on failure;
- ``mlops_nb_pipeline_failures_total``: the failed runs of this notebook in the log;
- ``mlops_nb_pipeline_metric{metric}``: the run's final metrics, only on success.

The names are those of ``mlops-nb exporter``, so one alert covers both. A push that fails is
one warning line: it never fails the run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, pushadd_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

JOB = "mlops_nb"
ENV = "MLOPS_NB_PUSHGATEWAY"
TIMEOUT_S = 10.0


def push_pipeline_run(
    gateway: str,
    pipeline: str,
    *,
    succeeded: bool,
    seconds: float,
    failures: int,
    metrics: Mapping[str, float] | None = None,
    ended_at: float | None = None,
) -> None:
    """Push one run's figures to ``gateway`` (``http://host:9091`` or ``host:9091``)."""
    registry = CollectorRegistry()
    registry.register(_RunCollector(succeeded, seconds, failures, metrics or {},
                                    time.time() if ended_at is None else ended_at))  # fmt: skip
    pushadd_to_gateway(gateway, job=JOB, registry=registry,
                       grouping_key={"pipeline": pipeline}, timeout=TIMEOUT_S)  # fmt: skip


def push_run_of_log(
    gateway: str, log: Any, notebook: str, run_id: str, succeeded: bool, seconds: float
) -> bool:
    """Push what the log holds of a finished pipeline run; on any failure print one warning
    line and return False (the run itself is not affected)."""
    pipeline = Path(notebook.rstrip("/")).stem
    try:
        metrics = dict(log.run(run_id).metrics) if succeeded else {}
        failures = len(log.notebook_runs(notebook, status="failed"))
        push_pipeline_run(gateway, pipeline, succeeded=succeeded, seconds=seconds,
                          failures=failures, metrics=metrics)  # fmt: skip
    except Exception as error:  # noqa: BLE001 - monitoring must never fail the run
        print(f"mlops-nb run: warning: could not push to the Pushgateway at {gateway}: "
              f"{_first_line(error)}", file=sys.stderr)  # fmt: skip
        return False
    return True


class _RunCollector:
    """The pushed families (a collector: no ``_created`` series, no global metrics)."""

    def __init__(self, succeeded: bool, seconds: float, failures: int,
                 metrics: Mapping[str, float], ended_at: float):  # fmt: skip
        self.succeeded, self.seconds, self.failures = succeeded, seconds, failures
        self.metrics, self.ended_at = metrics, ended_at

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("mlops_nb_pipeline_last_duration_seconds",
                                "How long the latest run of the pipeline took",
                                value=self.seconds)  # fmt: skip
        outcome = "success" if self.succeeded else "failure"
        yield GaugeMetricFamily(f"mlops_nb_pipeline_last_{outcome}_timestamp_seconds",
                                f"When the latest {outcome} of the pipeline ended",
                                value=self.ended_at)  # fmt: skip
        yield CounterMetricFamily("mlops_nb_pipeline_failures",
                                  "Failed runs of the pipeline recorded in the log",
                                  value=self.failures)  # fmt: skip
        if self.succeeded and self.metrics:
            family = GaugeMetricFamily("mlops_nb_pipeline_metric",
                                       "Final metrics of the latest successful run",
                                       labels=["metric"])  # fmt: skip
            for name, value in sorted(self.metrics.items()):
                family.add_metric([str(name)], float(value))
            yield family


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
