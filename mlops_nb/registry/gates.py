"""Acceptance gates: conditions a candidate model's metrics must meet before it is deployed.

A condition is ``METRIC OP RIGHT`` with OP one of ``>= > <= <`` and RIGHT either

- a number: an absolute threshold, ``accuracy >= 0.8``;
- the baseline, optionally moved by an absolute amount: ``log_loss <= champion``,
  ``roc_auc >= champion - 0.01`` (may be 0.01 worse), ``f1 >= champion + 0.005``;
- the baseline moved by a relative amount: ``f1 >= champion * 1.02`` or ``f1 >= champion + 2%``
  (2 % better), ``latency_ms <= champion * 1.10`` (at most 10 % slower).

The baseline is the registered version at an alias (``--against``, default ``champion``) of a
model (``--model``, default the run's experiment); its metrics are those of its source run. The
word on the right is ``baseline`` or the alias's own name.

Semantics are MLflow's ``MetricThreshold`` (threshold, min_absolute_change,
min_relative_change, greater_is_better; ``MetricThreshold`` below converts to conditions):

- the operator says which way is better for that condition; for a condition against the
  baseline it must agree with the metric's direction: lower is better for loss/error/time-like
  names (loss, error, mse, rmse, mae, mape, time, latency, duration, ...; ``neg_`` flips it),
  higher for the usual scores, unknown otherwise (then the operator decides). Overridden per
  metric with ``--lower-is-better NAME`` / ``--greater-is-better NAME``. A threshold is taken
  as written (``accuracy <= 0.99`` as a leakage alarm is fine);
- a relative change is measured against ``|baseline|`` (MLflow divides by the baseline, which
  flips the sense for a negative one); when the baseline is 0 a required relative improvement
  falls back to MLflow's rule: strictly better than the baseline (by 1e-10);
- a metric missing on either side fails the condition;
- when the model has no version at the alias yet, conditions against it pass with a note
  ("first model"): the first model has nothing to be compared with, and absolute thresholds
  still apply;
- every condition is checked and every failure is reported, each on one line with its values.

Each checked condition is one row of ``gate_results`` in the log.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any

from mlops_nb.errors import MlopsError

LOWER_IS_BETTER = frozenset({
    "loss", "logloss", "error", "err", "errors", "mse", "rmse", "mae", "mape", "smape", "msle",
    "rmsle", "medae", "brier", "perplexity", "time", "latency", "duration", "seconds", "ms",
    "fpr", "fnr", "cost", "regret", "distance", "divergence", "drift",
    "difference",  # fairness gaps: demographic_parity_difference, equalized_odds_difference
})  # fmt: skip
GREATER_IS_BETTER = frozenset({
    "accuracy", "acc", "auc", "roc", "pr", "f1", "fbeta", "precision", "recall", "r2", "score",
    "ap", "map", "ndcg", "mcc", "kappa", "tpr", "tnr", "specificity", "sensitivity", "iou",
    "dice", "bleu", "rouge", "throughput", "gain", "lift", "coverage", "explained",
    "parity",  # demographic_parity_ratio (its _difference is caught as lower-is-better first)
})  # fmt: skip
BASELINE_WORD = "baseline"
_ZERO_MARGIN = 1e-10  # MLflow: with a 0 baseline, "relatively better" means better by this
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(r"^\s*(?P<metric>[^\s<>=!]+)\s*(?P<op>>=|<=|>|<)\s*(?P<right>.+?)\s*$")
_NUMBER_ONLY = re.compile(rf"^{_NUMBER}$")
_AGAINST = re.compile(
    rf"^(?P<ref>[A-Za-z_][\w.-]*?)\s*(?:(?P<sign>[-+*])\s*(?P<amount>{_NUMBER})\s*(?P<pct>%)?)?$"
)
_STARTS_CONDITION = re.compile(r"\s+(?=[^\s<>=!*%+-][^\s<>=!]*\s*(?:>=|<=|>|<))")


class GateError(MlopsError):
    """A condition that cannot be read, or a candidate or promotion that cannot be found."""


class GateFailed(Exception):
    """A gate did not pass (raised by ``%mlops gate`` so the cell, and a pipeline run, fail).

    Not an ``MlopsError``: it is the outcome the user asked to enforce, not a usage mistake,
    and it must reach the kernel as itself so papermill records its type and message.
    """

    def __init__(self, result: GateResult):
        super().__init__(result.failure_line())
        self.result = result


# ---------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class MetricThreshold:
    """MLflow's MetricThreshold; ``greater_is_better=None`` infers it from the metric's name."""

    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool | None = None


@dataclass(frozen=True)
class Condition:
    """One parsed condition. ``amount`` is the threshold (kind ``threshold``), the amount added
    to the baseline (``absolute``) or the share of ``|baseline|`` added to it (``relative``)."""

    text: str
    metric: str
    op: str
    kind: str
    amount: float = 0.0

    @property
    def greater(self) -> bool:
        return self.op in (">", ">=")

    @property
    def against_baseline(self) -> bool:
        return self.kind != "threshold"


@dataclass
class ConditionResult:
    condition: str
    metric: str
    value: float | None
    baseline: float | None
    required: float | None
    passed: bool
    detail: str


@dataclass
class GateResult:
    """What a gate decided: one result per condition, and where the baseline came from."""

    gate_id: str
    run_id: str
    candidate: str  # "run 1a2b3c4d" or "churn:3"
    model_name: str
    model_version: int | None  # the registered version gated (for a run: its newest, if any)
    baseline_ref: str  # "churn@champion"
    baseline_version: int | None  # None: no version at the alias yet
    results: list[ConditionResult]
    warn_only: bool = False
    promoted: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[ConditionResult]:
        return [result for result in self.results if not result.passed]

    def headline(self) -> str:
        against = f"{self.baseline_ref} (v{self.baseline_version})" if (
            self.baseline_version is not None) else f"{self.baseline_ref} (none yet)"  # fmt: skip
        total = len(self.results)
        if self.passed:
            verdict = f"gate passed: {total} condition{'s' if total != 1 else ''}"
        else:
            verdict = f"gate FAILED: {len(self.failures)} of {total} conditions failed"
            verdict += " (warn only)" if self.warn_only else ""
        return f"{verdict} · {self.candidate} against {against}"

    def failure_line(self) -> str:
        """One line naming every failed condition with its values (the pipeline run's error)."""
        failed = "; ".join(f"{r.condition} ({r.detail})" for r in self.failures)
        return f"gate failed, {len(self.failures)} of {len(self.results)} conditions: {failed}"

    def to_text(self) -> str:
        width = max((len(r.condition) for r in self.results), default=0)
        lines = [self.headline()]
        lines += [
            f"  {'PASS' if r.passed else 'FAIL'}  {r.condition:<{width}}  {r.detail}"
            for r in self.results
        ]
        if self.promoted:
            p = self.promoted
            lines.append(f"promoted {p['name']}:{p['version']} to @{p['alias']}")
        return "\n".join(lines)

    __repr__ = to_text

    def _repr_html_(self) -> str:
        color = "#2e7d32" if self.passed else ("#b45309" if self.warn_only else "#c62828")
        rows = "".join(
            f"<tr><td style='color:{'#2e7d32' if r.passed else '#c62828'}'>"
            f"{'✓' if r.passed else '✗'}</td><td><code>{escape(r.condition)}</code></td>"
            f"<td>{escape(r.detail)}</td></tr>"
            for r in self.results
        )
        return (
            f"<div class='mlops-nb-gate' style='font-size:12px;border-left:3px solid {color};"
            f"padding:2px 8px;margin:2px 0'><b style='color:{color}'>"
            f"{escape(self.headline())}</b><table>{rows}</table></div>"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate_id": self.gate_id, "passed": self.passed, "warn_only": self.warn_only,
            "run_id": self.run_id, "candidate": self.candidate, "model_name": self.model_name,
            "model_version": self.model_version, "baseline_ref": self.baseline_ref,
            "baseline_version": self.baseline_version,
            "conditions": [asdict(result) for result in self.results], "promoted": self.promoted,
        }  # fmt: skip

    def rows(self) -> list[dict[str, Any]]:
        """The ``gate_results`` rows: one per condition."""
        return [
            {"gate_id": self.gate_id, "run_id": self.run_id, "model_name": self.model_name,
             "model_version": self.model_version, "condition": r.condition, "metric": r.metric,
             "value": r.value, "baseline": r.baseline, "baseline_ref": self.baseline_ref,
             "baseline_version": self.baseline_version, "passed": r.passed, "detail": r.detail,
             "warn_only": self.warn_only, "created_at": self.created_at}
            for r in self.results
        ]  # fmt: skip


def greater_is_better(metric: str, overrides: Mapping[str, bool] | None = None) -> bool | None:
    """True/False when the metric's direction is known (an override, else its name), or None."""
    if overrides and metric in overrides:
        return overrides[metric]
    words = [w for w in re.split(r"[^a-z0-9]+", metric.lower()) if w]
    flipped = bool(words) and words[0] == "neg"  # scikit-learn's neg_log_loss, neg_mse...
    if any(w in LOWER_IS_BETTER or "loss" in w or "error" in w for w in words):
        return flipped
    if any(w in GREATER_IS_BETTER or w.startswith(("accuracy", "f1", "auc")) for w in words):
        return not flipped
    return None


def split_conditions(words: Sequence[str]) -> list[str]:
    """Conditions from command-line words, quoted (one word each) or not (``acc >= 0.8``)."""
    texts: list[str] = []
    for chunk in _STARTS_CONDITION.split(" ".join(w.strip() for w in words)):
        if chunk.strip():
            texts.append(chunk.strip())
    return texts


def parse_conditions(
    texts: Iterable[str],
    baseline: str = "champion",
    directions: Mapping[str, bool] | None = None,
) -> list[Condition]:
    """Every condition parsed; the errors of all bad ones in one GateError."""
    parsed, errors = [], []
    for text in texts:
        try:
            parsed.append(parse_condition(text, baseline, directions))
        except GateError as error:
            errors.append(str(error))
    if errors:
        raise GateError("; ".join(errors))
    if not parsed:
        raise GateError('give at least one condition, e.g. "accuracy >= 0.8"')
    return parsed


def parse_condition(
    text: str, baseline: str = "champion", directions: Mapping[str, bool] | None = None
) -> Condition:
    """``accuracy >= 0.8``, ``roc_auc >= champion - 0.01``, ``f1 >= champion * 1.02``..."""
    match = _CONDITION.match(text or "")
    if not match:
        raise GateError(
            f'cannot read condition {text!r}: write METRIC OP VALUE, e.g. "accuracy >= 0.8" or '
            f'"roc_auc >= {baseline} - 0.01" (OP: >= > <= <)'
        )
    metric, op, right = match["metric"], match["op"], match["right"]
    shown = f"{metric} {op} {right}"
    if _NUMBER_ONLY.match(right):
        return Condition(shown, metric, op, "threshold", float(right))
    against = _AGAINST.match(right)
    if not against:
        raise GateError(
            f"cannot read {right!r} in {text!r}: use a number, {baseline}, {baseline} + N, "
            f"{baseline} - N, {baseline} * F or {baseline} + N%"
        )
    if against["ref"] not in (baseline, BASELINE_WORD):
        raise GateError(
            f"{text!r} compares with {against['ref']!r}, but the baseline is the version at "
            f"{baseline!r} (--against): write {baseline} or {BASELINE_WORD}"
        )
    sign, amount = against["sign"], float(against["amount"] or 0)
    if sign == "*" and against["pct"]:
        raise GateError(f"{text!r}: write {baseline} * 1.02 or {baseline} + 2%, not both")
    if sign == "*":
        kind, amount = "relative", amount - 1.0
    elif against["pct"]:
        kind, amount = "relative", (amount if sign == "+" else -amount) / 100.0
    else:
        kind, amount = "absolute", amount if sign != "-" else -amount
    condition = Condition(shown, metric, op, kind, amount)
    direction = greater_is_better(metric, directions)
    if direction is not None and direction != condition.greater:
        better, other = ("greater", "lower") if direction else ("lower", "greater")
        raise GateError(
            f"{text!r}: {metric} is {better}-is-better, so compare it with "
            f"{'>=' if direction else '<='}; if {other} is better for it, pass "
            f"--{other}-is-better {metric}"
        )
    return condition


def from_thresholds(
    thresholds: Mapping[str, MetricThreshold],
    baseline: str = "champion",
    directions: Mapping[str, bool] | None = None,
) -> list[Condition]:
    """MLflow-style thresholds as conditions (one per field that is set)."""
    conditions = []
    for metric, spec in thresholds.items():
        greater = spec.greater_is_better
        if greater is None:
            greater = greater_is_better(metric, directions)
        greater = True if greater is None else greater
        op = ">=" if greater else "<="
        sign = 1.0 if greater else -1.0
        if spec.min_absolute_change is not None and spec.min_absolute_change <= 0:
            raise GateError(f"{metric}: min_absolute_change must be > 0")
        if spec.min_relative_change is not None and not 0 < spec.min_relative_change <= 1:
            raise GateError(f"{metric}: min_relative_change must be in (0, 1]")
        if spec.threshold is not None:
            text = f"{metric} {op} {_num(spec.threshold)}"
            conditions.append(Condition(text, metric, op, "threshold", float(spec.threshold)))
        if spec.min_absolute_change is not None:
            change = sign * spec.min_absolute_change
            text = f"{metric} {op} {baseline} {'+' if change > 0 else '-'} {_num(abs(change))}"
            conditions.append(Condition(text, metric, op, "absolute", change))
        if spec.min_relative_change is not None:
            rate = sign * spec.min_relative_change
            text = (f"{metric} {op} {baseline} {'+' if rate > 0 else '-'} "
                    f"{_num(abs(rate) * 100)}%")  # fmt: skip
            conditions.append(Condition(text, metric, op, "relative", rate))
    return conditions


# ---------------------------------------------------------------------- checking
def check(
    conditions: Iterable[Condition],
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    candidate_label: str = "the candidate",
    baseline_label: str = "champion",
) -> list[ConditionResult]:
    """Each condition against the candidate's metrics (and the baseline's; None: no baseline
    yet). Pure: no log, no I/O."""
    return [_check_one(c, candidate, baseline, candidate_label, baseline_label)
            for c in conditions]  # fmt: skip


def _check_one(
    condition: Condition,
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    candidate_label: str,
    baseline_label: str,
) -> ConditionResult:
    metric = condition.metric
    value = _number(candidate.get(metric))

    def result(passed: bool, detail: str, base: float | None = None, required=None):
        return ConditionResult(condition.text, metric, value, base, required, passed, detail)

    if condition.against_baseline and baseline is None:
        base_note = f"no version at {baseline_label} yet: passes (first model)"
        if value is None:
            return result(False, f"{metric} not logged by {candidate_label}; {base_note}")
        return result(True, f"{metric} {_num(value)}; {base_note}")
    if value is None:
        return result(False, f"{metric} not logged by {candidate_label}")
    if not condition.against_baseline:
        required = condition.amount
        passed = _meets(value, condition.op, required)
        return result(passed, f"{metric} {_num(value)}, needs {condition.op} {_num(required)}",
                      required=required)  # fmt: skip
    assert baseline is not None
    base = _number(baseline.get(metric))
    if base is None:
        return result(False, f"{metric} {_num(value)}; {baseline_label} has no {metric}")
    shown = f"{metric} {_num(value)} vs {baseline_label} {_num(base)}"
    improving = condition.amount != 0 and (condition.amount > 0) == condition.greater
    if condition.kind == "relative" and base == 0 and improving:
        # MLflow: a relative improvement on a 0 baseline means strictly better
        margin = _ZERO_MARGIN if condition.greater else -_ZERO_MARGIN
        passed = _meets(value, ">" if condition.greater else "<", base + margin)
        return result(passed, f"{shown}: needs {'>' if condition.greater else '<'} "
                      f"{_num(base)} ({baseline_label} is 0, a relative change is "
                      "undefined)", base, base)  # fmt: skip
    if condition.kind == "relative":
        required = base + condition.amount * abs(base)
        change = f" ({'+' if condition.amount >= 0 else '-'}{_num(abs(condition.amount) * 100)}%)"
    else:
        required = base + condition.amount
        change = ""
    passed = _meets(value, condition.op, required)
    return result(passed, f"{shown}: needs {condition.op} {_num(required)}{change}", base,
                  required)  # fmt: skip


def _meets(value: float, op: str, required: float) -> bool:
    slack = 1e-12 * max(1.0, abs(required))  # 0.85 - 0.01 is not quite 0.84 in binary
    if op == ">=":
        return value >= required - slack
    if op == "<=":
        return value <= required + slack
    return value > required if op == ">" else value < required


# ---------------------------------------------------------------------- against the log
def run_gate(
    log: Any,
    target: str,
    conditions: Sequence[str] | Sequence[Condition],
    *,
    model: str | None = None,
    against: str = "champion",
    directions: Mapping[str, bool] | None = None,
    warn_only: bool = False,
    record: bool = True,
) -> GateResult:
    """Gate a run (id, prefix or "latest") or a registered version (``NAME:VERSION`` /
    ``NAME@ALIAS``) against the version at ``against`` of ``model``; record one row per
    condition in ``gate_results``."""
    from mlops_nb.registry.load import ModelLoadError, resolve

    if conditions and isinstance(conditions[0], str):
        parsed = parse_conditions(conditions, against, directions)  # type: ignore[arg-type]
    else:
        parsed = list(conditions)  # type: ignore[arg-type]
        if not parsed:
            raise GateError('give at least one condition, e.g. "accuracy >= 0.8"')
    if ":" in target or "@" in target:
        try:
            version = resolve(log, target)
        except ModelLoadError as error:
            raise GateError(str(error)) from None
        name = model or str(version["name"])
        run_id = str(version.get("run_id") or "")
        metrics = {k: float(v) for k, v in (version.get("metrics") or {}).items()}
        candidate, model_version = f"{version['name']}:{version['version']}", version["version"]
        if name != version["name"]:
            model_version = None
    else:
        run = log.run(target)
        run_id, metrics = run.run_id, dict(run.metrics)
        name = model or str(run.info["experiment"])
        candidate = f"run {run_id[:8]}"
        model_version = newest_version_of_run(log, name, run_id)
    base = log.model_version(name, alias=against)
    baseline_label = against if base is None else f"{against} (v{base['version']})"
    results = check(parsed, metrics, None if base is None else base.get("metrics") or {},
                    candidate, baseline_label)  # fmt: skip
    result = GateResult(
        gate_id=uuid.uuid4().hex[:12], run_id=run_id, candidate=candidate, model_name=name,
        model_version=None if model_version is None else int(model_version),
        baseline_ref=f"{name}@{against}",
        baseline_version=None if base is None else int(base["version"]),
        results=results, warn_only=warn_only,
    )  # fmt: skip
    if record:
        record_gate(log, result)
    return result


def record_gate(log: Any, result: GateResult) -> None:
    """One ``gate_results`` row per condition."""
    for row in result.rows():
        log.record("gate_results", row)


def newest_version_of_run(log: Any, name: str, run_id: str) -> int | None:
    """The newest version of ``name`` registered from ``run_id``, or None."""
    versions = log.model_versions(name)
    if versions.empty:
        return None
    mine = versions.loc[versions["run_id"] == run_id, "version"]
    return None if mine.empty else int(mine.max())


def promote(log: Any, result: GateResult, alias: str) -> dict[str, Any]:
    """Move ``alias`` to the gated version; the reason names the conditions that passed."""
    if result.model_version is None:
        raise GateError(_unregistered(result))
    reason = "gate passed: " + "; ".join(r.condition for r in result.results)
    before = log.move_alias(result.model_name, alias, result.model_version, reason=reason)
    result.promoted = {"name": result.model_name, "version": result.model_version,
                       "alias": alias, "from_version": before, "reason": reason}  # fmt: skip
    return result.promoted


def _unregistered(result: GateResult) -> str:
    return (
        f"cannot promote: {result.candidate} has no registered version of model "
        f"{result.model_name!r}; register it first (mn.register_model or %mlops register)"
    )


def gate_from_cli(args: argparse.Namespace) -> int:
    """``mlops-nb gate``: 0 passed, 1 failed (0 with --warn-only), 2 a usage error."""
    import mlops_nb

    directions = {name: True for name in args.greater_is_better or []}
    directions.update({name: False for name in args.lower_is_better or []})
    log = mlops_nb.open_log(args.log, create=False)
    result = run_gate(log, args.target, split_conditions(args.conditions), model=args.model,
                      against=args.against, directions=directions, warn_only=args.warn_only,
                      record=False)  # fmt: skip
    if args.promote and result.model_version is None:  # say so before anything is recorded
        raise GateError(_unregistered(result))
    record_gate(log, result)
    if result.passed and args.promote:
        promote(log, result, args.promote)
    log.flush()
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.to_text())
        if args.promote and not result.passed:
            print(f"not promoted to @{args.promote}: the gate failed")
    return 0 if result.passed or args.warn_only else 1


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _num(value: float) -> str:
    return f"{value:.6g}"
