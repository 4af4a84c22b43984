"""``mlops-nb alerts``: Prometheus alerting rules built from what the log knows.

The rules read the series of ``mlops-nb exporter`` (and of the Pushgateway, which gets the same
pipeline names) and of served models' own ``/metrics`` (``mlops_nb_requests_total``,
``mlops_nb_model_info``):

- ``MlopsNbPipelineLate``, per scheduled notebook: no success within the longest gap between
  two firings of its cron expression, plus slack (default: a quarter of that gap, at least
  5 minutes). A pipeline that never succeeded has no series yet, so it does not fire;
- ``MlopsNbDatasetDrift``: the latest drift check of a model found dataset drift;
- ``MlopsNbPerformanceBelowGate``: live or estimated performance below the bar of the model's
  newest recorded acceptance gate (``gate_results``), else below ``--min METRIC=VALUE`` (or
  above ``--max METRIC=VALUE`` for lower-is-better metrics);
- ``MlopsNbServingErrorRate``: the share of 5xx answers of a server over ``--rate-window``;
- ``MlopsNbServedVersionNotChampion``: a server answers with a version other than the one the
  champion alias points at.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mlops_nb.errors import MlopsError

GROUP = "mlops_nb"
DEFAULT_FOR = "10m"
DEFAULT_ERROR_RATE = 0.05
DEFAULT_RATE_WINDOW = "5m"
MIN_SLACK_S = 300.0
_FIRINGS = 500  # cron firings looked at to find the longest gap between two of them
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?"
                       r"(?:(\d+)ms)?$")  # fmt: skip
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1),
          ("ms", 0.001))  # fmt: skip
# the operator a gate requires -> the comparison that means "the bar is not met"
_FAILS = {">=": "<", ">": "<=", "<=": ">", "<": ">="}


class AlertsError(MlopsError):
    """An option of ``mlops-nb alerts`` that cannot be read (one line saying why)."""


@dataclass(frozen=True)
class Bar:
    """A level a model's live metric must keep: ``metric op value``, and where it came from."""

    model: str | None  # None: every model without a bar of its own for this metric
    metric: str
    op: str
    value: float
    source: str


def build_rules(
    log: Any,
    *,
    for_: str = DEFAULT_FOR,
    minimums: Mapping[str, float] | None = None,
    maximums: Mapping[str, float] | None = None,
    slack: str | None = None,
    max_error_rate: float = DEFAULT_ERROR_RATE,
    rate_window: str = DEFAULT_RATE_WINDOW,
    alias: str = "champion",
) -> list[dict[str, Any]]:
    """The alerting rules for this log's schedules, models and gates (Prometheus rule dicts)."""
    parse_duration(for_, "--for")
    parse_duration(rate_window, "--rate-window")
    if not 0 < max_error_rate <= 1:
        raise AlertsError(f"--max-error-rate must be in (0, 1], got {max_error_rate}")
    slack_s = None if slack is None else parse_duration(slack, "--slack")
    rules = [_late(pipeline, cron, gap, slack_s, for_)
             for pipeline, cron, gap in scheduled_pipelines(log)]  # fmt: skip
    rules.append(_drift(for_))
    bars = gate_bars(log, alias) + option_bars(minimums or {}, maximums or {})
    rules += [_performance(bar, bars, for_) for bar in bars]
    rules.append(_error_rate(max_error_rate, rate_window, for_))
    rules.append(_not_champion(alias, for_))
    return rules


def rules_yaml(rules: list[dict[str, Any]], source: str = "") -> str:
    """The rules file Prometheus loads (``rule_files``) and promtool checks."""
    header = f"# Prometheus alerting rules written by mlops-nb alerts{source}\n"
    return header + yaml.safe_dump(
        {"groups": [{"name": GROUP, "rules": rules}]}, sort_keys=False, width=1000
    )


def alerts_from_cli(args: argparse.Namespace) -> int:
    from mlops_nb import open_log

    log = open_log(args.log, create=False)
    rules = build_rules(
        log, for_=args.for_, minimums=_pairs(args.min, "--min"),
        maximums=_pairs(args.max, "--max"), slack=args.slack,
        max_error_rate=args.max_error_rate, rate_window=args.rate_window, alias=args.alias,
    )  # fmt: skip
    text = rules_yaml(rules, f" from {log.path} on {datetime.now():%Y-%m-%d %H:%M}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    kinds: dict[str, int] = {}
    for rule in rules:
        kinds[rule["alert"]] = kinds.get(rule["alert"], 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in kinds.items())
    print(f"wrote {len(rules)} rules to {out}: {summary}")
    return 0


# ---------------------------------------------------------------------- from the log
def scheduled_pipelines(log: Any) -> list[tuple[str, str, float]]:
    """(pipeline, cron, longest gap in seconds) per scheduled notebook, newest schedule wins."""
    from mlops_nb.pipeline.schedule import next_run_times

    found: dict[str, tuple[str, str, float]] = {}
    for row in log.schedules().itertuples():  # newest first
        path = str(row.notebook_path or "")
        pipeline = Path(path).stem
        if not path.endswith(".ipynb") or pipeline in found:
            continue  # not a notebook run (a scheduled `mlops-nb monitor`), or an older one
        times = next_run_times(str(row.cron), count=_FIRINGS)
        gap = max((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False))
        found[pipeline] = (pipeline, str(row.cron), gap)
    return sorted(found.values())


def gate_bars(log: Any, alias: str = "champion") -> list[Bar]:
    """The bar each condition of a model's newest gate set, strictest per model and metric.

    A condition against the baseline (``accuracy >= champion - 0.01``) sets the level the
    gated version had to reach; one whose baseline was missing (first model) sets none."""
    from mlops_nb.registry.gates import GateError, parse_condition

    bars: dict[tuple[str, str, bool], Bar] = {}
    for row in log.latest_gate_results().itertuples():
        against = str(row.baseline_ref or "").partition("@")[2] or alias
        try:
            condition = parse_condition(str(row.condition), against)
        except GateError:
            continue  # written with directions given on its command line: not ours to guess
        level = _required(condition.kind, condition.amount, row.baseline)
        if level is None:
            continue
        version = "" if _missing(row.model_version) else f":{int(row.model_version)}"
        bar = Bar(str(row.model_name), condition.metric, condition.op, level,
                  f"the gate of {row.model_name}{version}: {condition.text}")  # fmt: skip
        key = (bar.model or "", bar.metric, condition.greater)
        kept = bars.get(key)
        stricter = kept is None or (level > kept.value if condition.greater else level < kept.value)
        if stricter:
            bars[key] = bar
    return list(bars.values())


def option_bars(minimums: Mapping[str, float], maximums: Mapping[str, float]) -> list[Bar]:
    """Bars for every model from ``--min`` / ``--max`` (models with a gate bar keep theirs)."""
    return [Bar(None, metric, ">=", float(value), f"--min {metric}={_num(value)}")
            for metric, value in minimums.items()] + [
            Bar(None, metric, "<=", float(value), f"--max {metric}={_num(value)}")
            for metric, value in maximums.items()]  # fmt: skip


# ---------------------------------------------------------------------- the rules
def _rule(name: str, expr: str, for_: str, severity: str, summary: str, description: str,
          **labels: str) -> dict[str, Any]:  # fmt: skip
    return {
        "alert": name, "expr": expr, "for": for_, "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": description},
    }  # fmt: skip


def _late(pipeline: str, cron: str, gap: float, slack: float | None, for_: str) -> dict[str, Any]:
    allowed = gap + (max(gap / 4, MIN_SLACK_S) if slack is None else slack)
    series = f"mlops_nb_pipeline_last_success_timestamp_seconds{{pipeline={_quote(pipeline)}}}"
    return _rule(
        "MlopsNbPipelineLate",
        f"time() - max by (pipeline) ({series}) > {allowed:.0f}",
        for_, "warning",
        f"Pipeline {pipeline} has not succeeded for over {format_duration(allowed)}",
        f"{pipeline} is scheduled '{cron}' (at most {format_duration(gap)} between runs); its "
        "last success was {{ $value | humanizeDuration }} ago. See mlops-nb runs and the "
        "scheduler's own log.",
        pipeline=pipeline,
    )  # fmt: skip


def _drift(for_: str) -> dict[str, Any]:
    return _rule(
        "MlopsNbDatasetDrift",
        "mlops_nb_drift_share and on (model) (mlops_nb_dataset_drift == 1)",
        for_, "warning",
        "Dataset drift on model {{ $labels.model }}",
        "{{ $value | humanizePercentage }} of the columns of {{ $labels.model }} drifted in its "
        "latest drift check. See mlops-nb drift and the drift view of the log.",
    )  # fmt: skip


def _performance(bar: Bar, bars: list[Bar], for_: str) -> dict[str, Any]:
    matchers = f"metric={_quote(bar.metric)}"
    if bar.model is not None:
        matchers = f"model={_quote(bar.model)},{matchers}"
    else:
        gated = sorted({b.model for b in bars if b.model is not None and b.metric == bar.metric
                        and (b.op in (">=", ">")) == (bar.op in (">=", ">"))})  # fmt: skip
        if gated:
            matchers += f",model!~{_quote('|'.join(re.escape(m) for m in gated))}"
    who = bar.model or "{{ $labels.model }}"
    level = _num(bar.value)
    labels = {"model": bar.model} if bar.model is not None else {}
    return _rule(
        "MlopsNbPerformanceBelowGate",
        f"mlops_nb_model_performance{{{matchers}}} {_FAILS[bar.op]} {level}",
        for_, "critical",
        f"{{{{ $labels.kind }}}} {bar.metric} of {who} does not meet {bar.op} {level}",
        f"The {{{{ $labels.kind }}}} {bar.metric} of {who} is {{{{ $value | humanize }}}} in "
        f"its latest window; it must stay {bar.op} {level} ({bar.source}).",
        **labels, condition=f"{bar.metric} {bar.op} {level}",
    )  # fmt: skip


def _error_rate(limit: float, window: str, for_: str) -> dict[str, Any]:
    def rate(matcher: str) -> str:
        return f"sum by (job, instance) (rate(mlops_nb_requests_total{matcher}[{window}]))"

    errors, answered = rate('{code=~"5.."}'), rate("")
    return _rule(
        "MlopsNbServingErrorRate",
        f"{errors} / {answered} > {limit:g}",
        for_, "critical",
        "Model server {{ $labels.instance }} fails {{ $value | humanizePercentage }} of requests",
        f"More than {limit:.0%} of the requests {{{{ $labels.instance }}}} answered over the last "
        f"{window} were server errors (5xx). See the server's stderr and its requests in the log.",
    )  # fmt: skip


def _not_champion(alias: str, for_: str) -> dict[str, Any]:
    target = f"mlops_nb_model_alias_info{{alias={_quote(alias)}}}"
    return _rule(
        "MlopsNbServedVersionNotChampion",
        f"((mlops_nb_model_info == 1) unless on (model, version) {target}) "
        f"and on (model) {target}",
        for_, "warning",
        f"{{{{ $labels.instance }}}} serves {{{{ $labels.model }}}} version "
        f"{{{{ $labels.version }}}}, not the {alias}",
        f"The server at {{{{ $labels.instance }}}} answers with {{{{ $labels.model }}}} version "
        f"{{{{ $labels.version }}}} while {alias} points at another version. A server started "
        f"with NAME@{alias} follows the alias within seconds; one started with NAME:VERSION "
        "does not.",
    )  # fmt: skip


# ---------------------------------------------------------------------- helpers
def parse_duration(text: str, option: str = "duration") -> float:
    """Seconds in a Prometheus duration (``90s``, ``10m``, ``1h30m``, ``2d``)."""
    match = _DURATION.match(text or "")
    if not text or not match or not any(match.groups()):
        raise AlertsError(f"{option}: {text!r} is not a duration: write e.g. 30s, 10m, 1h30m, 2d")
    return sum(int(amount) * seconds for amount, (_, seconds) in zip(match.groups(), _UNITS,
               strict=True) if amount)  # fmt: skip


def format_duration(seconds: float) -> str:
    """``108000`` -> ``1d6h`` (Prometheus' spelling, whole seconds)."""
    left, parts = int(round(seconds)), []
    for unit, size in _UNITS[1:-1]:
        if left >= size:
            parts.append(f"{left // int(size)}{unit}")
            left %= int(size)
    return "".join(parts) or "0s"


def _pairs(items: Iterable[str] | None, option: str) -> dict[str, float]:
    pairs = {}
    for item in items or ():
        metric, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not metric.strip() or math.isnan(number):
            raise AlertsError(f"{option} {item!r}: write METRIC=VALUE, e.g. {option} accuracy=0.8")
        pairs[metric.strip()] = number
    return pairs


def _required(kind: str, amount: float, baseline: Any) -> float | None:
    """The level a gate condition asked for (see registry.gates: MetricThreshold semantics)."""
    if kind == "threshold":
        return float(amount)
    if _missing(baseline):
        return None
    base = float(baseline)
    return base + amount * abs(base) if kind == "relative" else base + amount


def _num(value: float) -> str:
    """A threshold as written, without binary noise (0.91 - 0.01 is 0.9)."""
    return f"{round(value, 12):.12g}"


def _missing(value: Any) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _quote(text: str) -> str:
    """A PromQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
