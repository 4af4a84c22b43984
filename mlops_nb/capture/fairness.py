"""Fairness of a classifier's predictions across the groups of a sensitive column.

``fairness(y_true, y_pred, sensitive)`` computes, per group and overall, with fairlearn's
``MetricFrame`` semantics: accuracy, selection rate, true positive rate (recall), false
positive rate (both 0 for a group with no positives or no negatives, as fairlearn) and the row
count; and the three summary numbers a gate checks:

- ``demographic_parity_difference``: largest minus smallest selection rate between groups;
- ``demographic_parity_ratio``: smallest over largest selection rate (1 is parity; the
  "four-fifths rule" asks for at least 0.8);
- ``equalized_odds_difference``: the larger of the TPR difference and the FPR difference
  between groups (fairlearn's ``agg="worst_case"``).

Binary labels: the positive class is ``pos_label``, else 1 (or True) when the labels are 0/1,
else the second of the classifier's ``classes`` (scikit-learn's convention), else the last of
the sorted labels. Multiclass (more than two classes): each class is taken in turn as the
positive one against the rest; per group, ``selection_rate[c]`` is the share of the group's
rows predicted as class ``c``, ``tpr[c]`` and ``fpr[c]`` likewise; the summary numbers are the
worst over the classes (the largest differences, the smallest ratio; a class predicted for no
group at all has no ratio and is skipped).

Counted with numpy, not with fairlearn itself: its MetricFrame takes about a second per
10,000 rows, which a notebook cell would wait for; tests/test_fairness.py checks that every
number equals fairlearn's (fairlearn is a test dependency only). Pure functions of arrays (no
log, no IPython): the tracker and ``mn.fairness`` call them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError

SUMMARY = ("demographic_parity_difference", "demographic_parity_ratio",
           "equalized_odds_difference")  # fmt: skip
OVERALL = "*"  # the group of the rows that hold overall values and the summary numbers
MISSING = "(missing)"  # the group of rows whose sensitive value is null
_WORSE_IS_HIGHER = {"demographic_parity_difference": True, "demographic_parity_ratio": False,
                    "equalized_odds_difference": True}  # fmt: skip


class FairnessError(MlopsError):
    """Fairness cannot be computed from what was given (one line saying why)."""


@dataclass
class FairnessReport:
    """Per-group metrics of one sensitive column, the overall values and the summary."""

    sensitive: str
    by_group: pd.DataFrame  # index: group (text); columns: accuracy, selection_rate, ..., count
    overall: dict[str, float]
    summary: dict[str, float]
    classes: list[Any]
    positive: Any = None  # the positive class of a binary task; None for multiclass
    sources: dict[str, str] = field(default_factory=dict)  # what the values were: y_true: y_test

    @property
    def n_rows(self) -> int:
        return int(self.overall.get("count", 0))

    def rows(self) -> list[dict[str, Any]]:
        """One record per (group, metric), the overall values and the summary at group '*'."""
        found = []
        for group, values in self.by_group.iterrows():
            count = int(values["count"])
            found += [{"sensitive": self.sensitive, "group_name": str(group), "metric": metric,
                       "value": _number(value), "n_rows": count}
                      for metric, value in values.items()]  # fmt: skip
        for metric, value in [*self.overall.items(), *self.summary.items()]:
            found.append({"sensitive": self.sensitive, "group_name": OVERALL, "metric": metric,
                          "value": _number(value), "n_rows": self.n_rows})  # fmt: skip
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitive": self.sensitive, "positive": _plain(self.positive),
            "classes": [_plain(c) for c in self.classes], "summary": dict(self.summary),
            "overall": dict(self.overall), "sources": dict(self.sources),
            "by_group": {str(g): {k: _number(v) for k, v in row.items()}
                         for g, row in self.by_group.iterrows()},
        }  # fmt: skip

    def summary_text(self) -> str:
        """``region: demographic parity difference 0.12 (ratio 0.83), equalized odds difference
        0.2, 3 groups``."""
        s = self.summary
        return (
            f"{self.sensitive}: demographic parity difference "
            f"{_shown(s['demographic_parity_difference'])} (ratio "
            f"{_shown(s['demographic_parity_ratio'])}), equalized odds difference "
            f"{_shown(s['equalized_odds_difference'])}, {len(self.by_group)} groups"
        )

    def __repr__(self) -> str:
        table = self.by_group.to_string(float_format=lambda v: f"{v:.4g}")
        what = (f"positive class {self.positive!r}" if self.positive is not None
                else f"classes {self.classes!r}, one against the rest")  # fmt: skip
        return f"fairness by {self.summary_text()}\n({what}, {self.n_rows:,} rows)\n{table}"

    def _repr_html_(self) -> str:
        s = self.summary
        cells = "".join(
            f"<td style='padding:2px 8px'>{escape(label)}<br><b>{_shown(s[key])}</b></td>"
            for key, label in (("demographic_parity_difference", "demographic parity difference"),
                               ("demographic_parity_ratio", "demographic parity ratio"),
                               ("equalized_odds_difference", "equalized odds difference"))
        )  # fmt: skip
        table = self.by_group.to_html(float_format=lambda v: f"{v:.4g}", border=0)
        return (f"<div class='mlops-nb-fairness'><div><b>Fairness by "
                f"{escape(self.sensitive)}</b> · {self.n_rows:,} rows</div>"
                f"<table><tr>{cells}</tr></table>{table}</div>")  # fmt: skip


def fairness(
    y_true: Any,
    y_pred: Any,
    sensitive: Any,
    *,
    pos_label: Any = None,
    classes: Sequence[Any] | None = None,
    name: str | None = None,
) -> FairnessReport:
    """Per-group metrics and the summary differences of ``y_pred`` against ``y_true`` over the
    groups of ``sensitive`` (all three aligned row by row); see the module docstring."""
    truth, predicted = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    groups = _groups(sensitive)
    column = name or _name_of(sensitive) or "sensitive"
    if not len(truth) == len(predicted) == len(groups):
        raise FairnessError(f"y_true, y_pred and {column} differ in length "
                            f"({len(truth)}, {len(predicted)}, {len(groups)})")  # fmt: skip
    if len(truth) == 0:
        raise FairnessError("no rows to measure fairness on")
    known = list(classes) if classes is not None else _sorted_classes(truth, predicted)
    positive = _positive(known, pos_label, truth, predicted)
    codes, names = _factorize(groups)
    count = np.bincount(codes, minlength=len(names)).astype(float)

    def per_group(flags: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=flags.astype(float), minlength=len(names))

    right = _equal(truth, predicted)
    by_group = {"accuracy": per_group(right) / count}
    overall = {"accuracy": float(right.mean())}
    worst = {"demographic_parity_difference": 0.0, "demographic_parity_ratio": np.nan,
             "equalized_odds_difference": 0.0}  # fmt: skip
    for target in [positive] if positive is not None else known:
        actual, chosen = _equal(truth, target), _equal(predicted, target)
        suffix = "" if positive is not None else f"[{_plain(target)}]"
        positives = per_group(actual)
        rates = {
            "selection_rate": (per_group(chosen) / count, chosen.mean()),
            "tpr": (_rate(per_group(actual & chosen), positives),
                    _rate((actual & chosen).sum(), actual.sum())),
            "fpr": (_rate(per_group(~actual & chosen), count - positives),
                    _rate((~actual & chosen).sum(), (~actual).sum())),
        }  # fmt: skip
        for metric, (values, everyone) in rates.items():
            by_group[metric + suffix] = values
            overall[metric + suffix] = float(everyone)
        selection, tpr, fpr = (rates[m][0] for m in ("selection_rate", "tpr", "fpr"))
        worst["demographic_parity_difference"] = max(
            worst["demographic_parity_difference"], float(np.ptp(selection))
        )
        worst["equalized_odds_difference"] = max(
            worst["equalized_odds_difference"], float(np.ptp(tpr)), float(np.ptp(fpr))
        )
        top = selection.max()  # 0: no group was predicted as target, no ratio (fairlearn: NaN)
        ratio = float(selection.min() / top) if top > 0 else np.nan
        if np.isnan(worst["demographic_parity_ratio"]) or ratio < worst["demographic_parity_ratio"]:
            worst["demographic_parity_ratio"] = ratio
    by_group["count"], overall["count"] = count, float(len(truth))
    metric_order = list(by_group)
    by_group = pd.DataFrame(by_group, index=pd.Index([str(g) for g in names], name=column))
    overall = {k: overall[k] for k in metric_order}
    return FairnessReport(column, by_group, overall, worst, [_plain(c) for c in known], positive)


def run_metrics(reports: Sequence[FairnessReport]) -> dict[str, float]:
    """The summary numbers as run metrics: plain names hold the worst over the sensitive
    columns (what a gate checks); with several columns, ``NAME_COLUMN`` holds each one's."""
    metrics: dict[str, float] = {}
    for key, higher_is_worse in _WORSE_IS_HIGHER.items():
        values = [r.summary[key] for r in reports if not np.isnan(r.summary[key])]
        if values:
            metrics[key] = max(values) if higher_is_worse else min(values)
        elif reports:
            metrics[key] = float("nan")
        if len(reports) > 1:
            for report in reports:
                metrics[f"{key}_{_identifier(report.sensitive)}"] = report.summary[key]
    return metrics


def record_fairness(
    run: Any,
    reports: Sequence[FairnessReport],
    *,
    cell_seq: int | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
) -> dict[str, float]:
    """Journal the reports' rows (the ``fairness`` view) and their summary numbers as metrics
    of ``run`` (a ``Run``: SQL and gates see them); returns those metrics."""
    now = time.time()
    for report in reports:
        for row in report.rows():
            run.log_record("fairness", {
                "run_id": run.run_id, "cell_seq": cell_seq, "model_name": model_name,
                "model_version": model_version, **row, "created_at": now,
            })  # fmt: skip
    metrics = run_metrics(reports)
    if metrics:
        run.log_metrics(metrics)
    return metrics


def find_sensitive(
    namespace: Mapping[str, Any],
    column: str,
    n_rows: int,
    *,
    labels: Any = None,
    near: Iterable[str] = (),
) -> tuple[str, pd.Series]:
    """The values of the sensitive ``column`` for the evaluated rows, and where they were
    found: a variable named ``column`` with ``n_rows`` values, else the column of a DataFrame
    with ``n_rows`` rows (the evaluation input, e.g. ``X_test``). Among several frames: the
    one whose index is the labels' index, then one whose name shares a suffix with ``near``
    (``y_test`` -> ``X_test``), then by name. Rows are put in the labels' order when both have
    the same index labels in another order."""
    direct = namespace.get(column)
    if _is_values(direct) and len(direct) == n_rows:
        return column, pd.Series(np.asarray(direct).ravel(), name=column)
    label_index = labels.index if isinstance(labels, (pd.Series, pd.DataFrame)) else None
    suffixes = {n.split("_", 1)[1] for n in near if "_" in n}
    candidates = []
    for variable, value in namespace.items():
        if variable.startswith("_") or not isinstance(value, pd.DataFrame):
            continue
        if column not in value.columns or len(value) != n_rows:
            continue
        same_index = label_index is not None and value.index.equals(label_index)
        same_suffix = "_" in variable and variable.split("_", 1)[1] in suffixes
        candidates.append((not same_index, not same_suffix, variable))
    if not candidates:
        raise FairnessError(
            f"no {column!r} values for the {n_rows:,} evaluated rows: keep a DataFrame with a "
            f"{column!r} column and those rows (e.g. X_test), or a Series named {column}"
        )
    variable = min(candidates)[2]
    values = namespace[variable][column]
    reordered = label_index is not None and not values.index.equals(label_index)
    if reordered and values.index.is_unique and set(values.index) == set(label_index):
        values = values.reindex(label_index)
    return variable, values.reset_index(drop=True).rename(column)


def fairness_card(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """What a model card shows from recorded ``fairness`` rows (the view's columns): per
    sensitive column, its latest evaluation's summary and per-group table. Plain data."""
    if rows is None or rows.empty:
        return []
    shown = []
    for column, part in rows.groupby("sensitive", sort=True):
        latest = part[part["created_at"] == part["created_at"].max()]
        found = dict(zip(latest["metric"], latest["value"], strict=True))
        summary = {m: _number(found[m]) for m in SUMMARY if m in found}
        per_group = latest[latest["group"] != OVERALL]
        metrics = list(dict.fromkeys(per_group["metric"]))
        groups = []
        for group, values in per_group.groupby("group", sort=False):
            found = dict(zip(values["metric"], values["value"], strict=True))
            groups.append({"group": str(group), **{m: _number(found.get(m)) for m in metrics}})
        overall_rows = latest[(latest["group"] == OVERALL) & latest["metric"].isin(metrics)]
        overall = dict(zip(overall_rows["metric"], overall_rows["value"].map(_number),
                           strict=True))  # fmt: skip
        shown.append({"sensitive": str(column), "summary": summary, "metrics": metrics,
                      "groups": groups, "overall": overall,
                      "n_rows": int(overall.get("count") or 0)})  # fmt: skip
    return shown


# ---------------------------------------------------------------------- helpers
def _labels(values: Any, what: str) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise FairnessError(f"{what} has {values.shape[1]} columns; give one column")
        values = values.iloc[:, 0]
    found = np.asarray(values)
    if found.ndim == 2 and 1 in found.shape:
        found = found.ravel()
    if found.ndim != 1:
        raise FairnessError(f"{what} must be one label per row, got shape {found.shape}")
    if found.dtype.kind == "f" and np.isnan(found).any():
        raise FairnessError(f"{what} holds missing values")
    return found


def _groups(sensitive: Any) -> np.ndarray:
    """The group of each row; nulls become their own group, ``(missing)``."""
    if isinstance(sensitive, pd.DataFrame):
        if sensitive.shape[1] != 1:
            raise FairnessError("give one sensitive column per call")
        sensitive = sensitive.iloc[:, 0]
    series = pd.Series(np.asarray(sensitive, dtype=object).ravel(), dtype=object)
    if series.isna().any():
        series = series.where(series.notna(), MISSING).astype(str)
    return series.to_numpy()


def _factorize(groups: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Each row's group number, and the groups in sorted order (as fairlearn's by_group)."""
    try:
        codes, names = pd.factorize(pd.Series(groups, dtype=object), sort=True)
    except TypeError:  # values that do not sort together: in order of appearance
        codes, names = pd.factorize(pd.Series(groups, dtype=object), sort=False)
    return codes, list(names)


def _equal(values: np.ndarray, other: Any) -> np.ndarray:
    """Element-wise ``==`` as a bool array, whatever the dtypes."""
    found = np.asarray(values == other)
    return found.astype(bool) if found.ndim else np.full(len(values), bool(found))


def _rate(hits: Any, total: Any) -> Any:
    """hits / total, 0 where total is 0 (scikit-learn's normalized confusion matrix, which
    fairlearn's TPR and FPR use)."""
    hits, total = np.asarray(hits, dtype=float), np.asarray(total, dtype=float)
    return np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)


def _name_of(values: Any) -> str | None:
    name = getattr(values, "name", None)
    if isinstance(values, pd.DataFrame) and values.shape[1] == 1:
        name = values.columns[0]
    return str(name) if name is not None else None


def _sorted_classes(truth: np.ndarray, predicted: np.ndarray) -> list[Any]:
    both = np.concatenate([truth.astype(object), predicted.astype(object)])
    seen = list(dict.fromkeys(both.tolist()))
    try:
        return sorted(seen)
    except TypeError:  # mixed types: in order of appearance
        return seen


def _positive(known: list[Any], pos_label: Any, truth: np.ndarray, predicted: np.ndarray) -> Any:
    """The positive class of a binary task (None for multiclass); see the module docstring."""
    if pos_label is not None:
        if len(known) > 2:
            raise FairnessError(f"pos_label is for two classes; these are {len(known)}")
        return pos_label
    if len(known) > 2:
        return None
    values = set(_plain(v) for v in known)
    if values <= {0, 1}:  # 0/1 and False/True labels: 1 is positive, even if never seen
        return True if truth.dtype == bool else 1
    return known[-1]


def _is_values(value: Any) -> bool:
    return isinstance(value, (pd.Series, np.ndarray, list)) and np.ndim(value) == 1


def _identifier(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_") or "column"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else number


def _shown(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3g}"
