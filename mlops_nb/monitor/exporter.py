"""``mlops-nb exporter``: the log's monitoring figures on ``/metrics`` for Prometheus.

A custom collector (prometheus-client's idiom for values that live in a database) reads the
log at scrape time, in one short read (``Log.monitoring_snapshot``): nothing is cached between
scrapes, and the DuckDB file is not held between them (the log's reader lets go of it when
idle), so pipelines, servers and notebooks keep writing while Prometheus scrapes.

What it shows, all prefixed ``mlops_nb_``, with low-cardinality labels only (no run ids,
request ids or users):

- ``experiment_metric{experiment,metric}``: the latest finished run's metrics per experiment;
- ``model_version_metric{model,version,metric}``: each registered version's metrics;
- ``model_alias_info{model,alias,version} 1``: where each alias (champion...) points;
- ``runs{experiment,status}``: how many runs are in each status;
- ``pipeline_last_success_timestamp_seconds{pipeline}``, ``pipeline_last_duration_seconds``:
  per notebook pipeline (``mlops-nb run``), the same names the Pushgateway gets;
- ``drift_share{model}``, ``dataset_drift{model}``, ``drift_check_timestamp_seconds{model}``:
  the latest drift check per model; ``column_drift_score{model,target,column,method}``: per
  column, of the latest check per model and target (inputs, predictions);
- ``model_performance{model,kind,metric}`` (kind ``realized`` or ``estimated``): the latest
  window per model, kind and metric (its value at training time is the version's metric);
- ``log_requests_total{model,version,code}``: served requests recorded in the log;
- ``exporter_scrape_error`` (1 when the log could not be read) and
  ``exporter_scrape_duration_seconds``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pandas as pd
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mlops_nb.errors import MlopsError

PREFIX = "mlops_nb_"

# name -> (kind, help, labels); the order is the order of the /metrics page
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "experiment_metric": ("gauge", "Metrics of the latest finished run of each experiment",
                          ("experiment", "metric")),
    "model_version_metric": ("gauge", "Metrics of each registered model version",
                             ("model", "version", "metric")),
    "model_alias_info": ("gauge", "The version each alias of a model points at (value 1)",
                         ("model", "alias", "version")),
    "runs": ("gauge", "Runs in the log by experiment and status", ("experiment", "status")),
    "pipeline_last_success_timestamp_seconds": (
        "gauge", "When the latest successful run of a notebook pipeline ended", ("pipeline",)),
    "pipeline_last_duration_seconds": (
        "gauge", "How long the latest ended run of a notebook pipeline took", ("pipeline",)),
    "drift_share": ("gauge", "Share of columns that drifted in the latest drift check (0..1)",
                    ("model",)),
    "dataset_drift": ("gauge", "1 when the latest drift check found dataset drift, else 0",
                      ("model",)),
    "drift_check_timestamp_seconds": ("gauge", "When the latest drift check ran", ("model",)),
    "column_drift_score": ("gauge", "Drift score per column in the latest check (per target)",
                           ("model", "target", "column", "method")),
    "model_performance": ("gauge", "Live performance in the latest window (realized from "
                          "labels, or estimated before they arrive)", ("model", "kind", "metric")),
    "log_requests": ("counter", "Served requests recorded in the log, by version and HTTP status",
                     ("model", "version", "code")),
    "exporter_scrape_error": ("gauge", "1 when the last scrape could not read the log", ()),
    "exporter_scrape_duration_seconds": ("gauge", "Time this scrape took to read the log", ()),
}  # fmt: skip


class LogCollector:
    """Yields the log's monitoring figures as metric families, read when Prometheus scrapes."""

    def __init__(self, log: Any):
        self.log = log

    def describe(self) -> Iterator[Metric]:
        """The families' names, so that registering the collector does not read the log."""
        for name in FAMILIES:
            yield _family(name)

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            snapshot = self.log.monitoring_snapshot()
        except Exception as error:  # noqa: BLE001 - a scrape reports it, the exporter lives on
            print(f"mlops-nb exporter: cannot read {self.log.path}: {_first_line(error)}",
                  file=sys.stderr, flush=True)  # fmt: skip
            yield _single("exporter_scrape_error", 1.0)
            yield _single("exporter_scrape_duration_seconds", time.perf_counter() - started)
            return
        families = families_from(snapshot)
        yield from families.values()
        yield _single("exporter_scrape_error", 0.0)
        yield _single("exporter_scrape_duration_seconds", time.perf_counter() - started)


def families_from(snapshot: dict[str, pd.DataFrame]) -> dict[str, Metric]:
    """The metric families for one snapshot of the log (pure: no I/O)."""
    out = {name: _family(name) for name in FAMILIES if not name.startswith("exporter_")}

    def add(name: str, frame: pd.DataFrame, labels: list[str], value: str) -> None:
        """One sample per row of ``frame``: label values from ``labels``, value from ``value``."""
        family = out[name]
        columns = [_labels(frame[column]) for column in labels]
        for *label_values, number in zip(*columns, _numbers(frame[value]), strict=True):
            if number == number:  # not NaN: a missing value is no sample
                family.add_metric(label_values, number)

    add("experiment_metric", snapshot["experiment_metrics"], ["experiment", "metric"], "value")
    versions = snapshot["version_metrics"]
    version_metrics = pd.DataFrame(
        [(name, version, metric, value)
         for name, version, text in zip(versions["name"].tolist(), versions["version"].tolist(),
                                         versions["metrics"].tolist(), strict=True)
         for metric, value in _json(text).items()],
        columns=["model", "version", "metric", "value"],
    )  # fmt: skip
    add("model_version_metric", version_metrics, ["model", "version", "metric"], "value")
    add("model_alias_info", snapshot["aliases"].assign(one=1), ["name", "alias", "version"], "one")
    add("runs", snapshot["runs_by_status"], ["experiment", "status"], "runs")
    pipelines = snapshot["pipelines"]
    add("pipeline_last_success_timestamp_seconds", pipelines, ["pipeline"], "last_success")
    add("pipeline_last_duration_seconds", pipelines, ["pipeline"], "last_duration")
    drift = snapshot["dataset_drift"]
    add("drift_share", drift, ["model_name"], "share")
    add("dataset_drift", drift, ["model_name"], "drifted")
    add("drift_check_timestamp_seconds", drift, ["model_name"], "checked_at")
    add("column_drift_score", snapshot["column_drift"],
        ["model_name", "target", "column_name", "method"], "score")  # fmt: skip
    add("model_performance", snapshot["performance"], ["model_name", "kind", "metric"], "value")
    add("log_requests", snapshot["requests"], ["model_name", "model_version", "status"],
        "requests")  # fmt: skip
    return out


# ---------------------------------------------------------------------- the command
def exporter_from_cli(args: argparse.Namespace) -> int:
    """``mlops-nb exporter``: serve ``/metrics`` until interrupted."""
    from mlops_nb import open_log

    log = open_log(args.log, create=False)  # a missing log is one line, before listening
    registry = CollectorRegistry()
    registry.register(LogCollector(log))
    try:
        server = make_server(args.host, args.port, metrics_app(registry),
                             WSGIServer, handler_class=_QuietHandler)  # fmt: skip
    except OSError as error:
        raise MlopsError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    print(f"mlops-nb exporter: {log.path} on http://{args.host}:{args.port}/metrics",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def metrics_app(registry: CollectorRegistry) -> Callable[..., list[bytes]]:
    """A WSGI app: ``/metrics`` in Prometheus' text format, always, uncompressed.

    prometheus-client's own app would answer Prometheus in OpenMetrics and gzip it, which
    costs more than the log read on a big log, for nothing a loopback scrape needs."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"mlops-nb exporter: the metrics are at /metrics\n"]
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


# ---------------------------------------------------------------------- helpers
def _family(name: str) -> Metric:
    kind, help_text, labels = FAMILIES[name]
    maker = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return maker(PREFIX + name, help_text, labels=list(labels))


def _single(name: str, value: float) -> Metric:
    family = _family(name)
    family.add_metric([], value)
    return family


def _labels(column: pd.Series) -> list[str]:
    """Label values: numbers as written (versions, status codes), missing ones as ''."""
    return column.astype("string").fillna("").tolist()


def _numbers(column: pd.Series) -> list[float]:
    """Sample values as floats (flags as 1.0/0.0), NaN where a value is missing."""
    numbers = pd.to_numeric(column, errors="coerce").astype("Float64")
    return numbers.to_numpy(dtype=float, na_value=math.nan).tolist()


def _json(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
