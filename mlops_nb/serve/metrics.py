"""What ``/metrics`` says, in Prometheus' text format (prometheus-client).

Requests by endpoint and status code, refusals by error code, a latency histogram, batch sizes
(requests and rows per predict call), the served version as an info metric
(``mlops_nb_model_info{model,version,sha256} 1``), reloads, and the distribution of
predictions: a counter per class for a classifier, a histogram of values for a regressor.

One registry per process. With several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by
``mlops-nb serve`` before they start and every scrape sums all workers (prometheus-client's
multiprocess mode); the info metric is then a gauge per live worker.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384)
_MAX_CLASSES = 50  # more distinct predicted values than this: not labelled one by one


class ServeMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: this process is the server
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = None if self.multiprocess else CollectorRegistry()
        self._registry = registry
        kwargs: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.requests = Counter(
            "mlops_nb_requests", "Requests answered, by endpoint and HTTP status code",
            ["endpoint", "code"], **kwargs,
        )  # fmt: skip
        self.errors = Counter(
            "mlops_nb_request_errors", "Requests refused, by HTTP status and error code",
            ["code", "error_code"], **kwargs,
        )  # fmt: skip
        self.latency = Histogram(
            "mlops_nb_request_latency_seconds", "Time from request to response, by endpoint",
            ["endpoint"], buckets=_LATENCY_BUCKETS, **kwargs,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "mlops_nb_batch_requests", "Requests grouped into one predict call",
            buckets=_BATCH_BUCKETS, **kwargs,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "mlops_nb_batch_rows", "Rows in one predict call", buckets=_BATCH_BUCKETS, **kwargs
        )
        info_kwargs = {"multiprocess_mode": "liveall"} if self.multiprocess else {}
        self.model_info = Gauge(
            "mlops_nb_model_info", "The model version being served (value 1)",
            ["model", "version", "sha256"], **kwargs, **info_kwargs,
        )  # fmt: skip
        self.reloads = Counter(
            "mlops_nb_model_reloads", "Switches to another version after an alias moved",
            ["model"], **kwargs,
        )  # fmt: skip
        self.recorded = Counter(
            "mlops_nb_requests_recorded", "Requests written to the log (after --log-sample)",
            ["result"], **kwargs,
        )  # fmt: skip
        self.predicted_class = Counter(
            "mlops_nb_predictions", "Predicted rows by version and predicted class",
            ["model", "version", "prediction"], **kwargs,
        )  # fmt: skip
        self.predicted_value = Histogram(
            "mlops_nb_prediction_value", "Distribution of predicted values (regression)",
            ["model", "version"], **kwargs,
        )  # fmt: skip
        self.input_check_failures = Counter(
            "mlops_nb_input_check_failures",
            "Request rows outside the training data (answered all the same), by column and check",
            ["model", "column", "check"], **kwargs,
        )  # fmt: skip
        self._children: dict[tuple[str, ...], Any] = {}

    def serving(self, model: Any, previous: Any = None) -> None:
        """Mark ``model`` as the served version (and ``previous`` as no longer)."""
        if previous is not None:
            labels = (previous.name, str(previous.version), previous.sha256[:12])
            if self.multiprocess:
                self.model_info.labels(*labels).set(0)
            else:
                with contextlib.suppress(KeyError):
                    self.model_info.remove(*labels)
            self.reloads.labels(model.name).inc()
        self.model_info.labels(model.name, str(model.version), model.sha256[:12]).set(1)

    def answered(self, endpoint: str, code: int, seconds: float, error_code: str | None) -> None:
        key = ("r", endpoint, str(code))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(endpoint, str(code))
        child.inc()
        key = ("l", endpoint)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(endpoint)
        child.observe(seconds)
        if error_code is not None:
            self.errors.labels(str(code), error_code).inc()

    def input_checks(self, model_name: str, checks: list[tuple[str, str, int]]) -> None:
        """Rows of an answered request that failed a data check (serve/model.py)."""
        for column, check, rows in checks:
            self.input_check_failures.labels(model_name, column, check).inc(rows)

    def batch(self, model: Any, n_requests: int, n_rows: int, predictions: Any) -> None:
        """Called from the scoring thread after each predict call."""
        self.batch_requests.observe(n_requests)
        self.batch_rows.observe(n_rows)
        values = np.asarray(predictions)
        version = str(model.version)
        if values.dtype.kind == "f" and (model.outputs or {}).get("task") != "classification":
            histogram = self.predicted_value.labels(model.name, version)
            for value in values[:1000].tolist():
                histogram.observe(value)
            return
        kinds, counts = np.unique(values.astype(str), return_counts=True)
        for kind, count in zip(kinds[:_MAX_CLASSES].tolist(), counts.tolist(), strict=False):
            self.predicted_class.labels(model.name, version, kind).inc(count)

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        assert self._registry is not None
        return generate_latest(self._registry)
