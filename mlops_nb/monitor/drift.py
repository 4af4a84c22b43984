"""Data drift: per column, the test Evidently 0.7 picks by default, computed fast.

``drift(reference, current)`` compares a reference (a DataFrame, or the profile the log keeps
of one: ``monitor.profile.profile_frame``) with current data, column by column:

- reference of at most 1,000 values: two-sample KS for numerical columns with more than 5
  distinct values (drift when p <= 0.05), chi-square for categorical columns with more than 2
  values and numerical ones with 3..5 (p < 0.05), Z-test on proportions for at most 2 values;
- larger references: Wasserstein distance divided by the reference's standard deviation for
  numerical columns with more than 5 values (drift when >= 0.1), Jensen-Shannon distance on
  binned data otherwise (>= 0.1); text columns: a domain classifier's ROC AUC (as Evidently).

The dataset drifts when the share of drifted columns reaches ``drift_share``. Each method and
threshold can be set per column (``methods={"age": "psi"}``, ``"*"`` for all columns).

Speed: every numerical column is sorted once per side, and everything else (KS, Wasserstein as
a merge of the two sorted arrays, histograms as ``searchsorted`` on bin edges, distinct values)
is read off the sorted arrays; categories are counted once with ``value_counts``. With a
profile as the reference the numbers come from its quantiles instead: see docs/drift.md for
which results are exact and how close the others are.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.monitor import profile as profiles
from mlops_nb.monitor.profile import CATEGORICAL, NUMERICAL, TEXT

SMALL_REFERENCE = 1000  # Evidently: at most this many reference values -> p-value tests
STURGES_MIN_UNIQUE = 20  # more distinct reference values -> Sturges bins, else proportions
CHART_BINS = 30
CHART_CATEGORIES = 12


class DriftError(MlopsError):
    """Drift could not be computed as asked (unknown method, a method for another type...)."""


# ---------------------------------------------------------------------- the public entry
def drift(
    reference: pd.DataFrame | Mapping[str, Any],
    current: pd.DataFrame,
    *,
    columns: Iterable[str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DriftReport:
    """Test each column of ``current`` against ``reference`` (a DataFrame or a profile)."""
    if not isinstance(current, pd.DataFrame):
        raise DriftError("the current data must be a pandas DataFrame")
    is_profile = isinstance(reference, Mapping)
    if is_profile:
        reference_columns = list(reference.get("columns", {}))
    elif isinstance(reference, pd.DataFrame):
        reference_columns = [str(c) for c in reference.columns]
    else:
        raise DriftError("the reference must be a pandas DataFrame or a stored profile (dict)")
    current = current.rename(columns=str)
    methods = dict(methods or {})
    thresholds = dict(thresholds or {})
    for name, method in methods.items():
        if method not in METHODS and method not in TEXT_METHODS:
            raise DriftError(f"unknown drift method {method!r} for {name!r}: use {_method_list()}")
    wanted = [str(c) for c in columns] if columns is not None else reference_columns
    for name in list(methods) + list(thresholds) + (list(wanted) if columns is not None else []):
        if name != "*" and name not in reference_columns and name not in current.columns:
            raise DriftError(f"no column {name!r} in the reference or the current data")
    rows, charts, skipped = [], {}, {}
    for name in wanted:
        if name not in reference_columns:
            skipped[name] = "not in the reference"
            continue
        if name not in current.columns:
            skipped[name] = "not in the current data"
            continue
        outcome = _test_column(
            name,
            _reference_column(reference, name, is_profile),
            current[name],
            methods.get(name, methods.get("*")),
            thresholds.get(name, thresholds.get("*")),
        )
        if isinstance(outcome, str):
            skipped[name] = outcome
            continue
        row, chart = outcome
        rows.append(row)
        charts[name] = chart
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    results = results.astype({"drifted": bool, "exact": bool})
    drifted = results.loc[results["drifted"], "column"].tolist()
    share = len(drifted) / len(results) if len(results) else 0.0
    return DriftReport(
        results=results,
        share=share,
        dataset_drift=bool(len(results)) and share >= drift_share,
        drifted_columns=drifted,
        drift_share=drift_share,
        charts=charts,
        skipped=skipped,
        n_reference=int(reference.get("n_rows", 0)) if is_profile else len(reference),
        n_current=len(current),
    )


RESULT_COLUMNS = [
    "column", "column_type", "method", "score", "threshold", "drifted", "exact",
    "n_reference", "n_current",
]  # fmt: skip


# ---------------------------------------------------------------------- the report
@dataclass
class DriftReport:
    """Per-column drift results, the dataset verdict and the data behind the charts."""

    results: pd.DataFrame
    share: float
    dataset_drift: bool
    drifted_columns: list[str]
    drift_share: float = 0.5
    charts: dict[str, dict] = field(default_factory=dict, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)
    n_reference: int = 0
    n_current: int = 0
    reference_label: str = "reference"
    current_label: str = "current"
    check_id: str | None = None
    predictions: DriftReport | None = None  # the served outputs against evaluation outputs

    def summary(self) -> str:
        """One line: "3 of 5 columns drifted: income, age, region"."""
        total = len(self.results)
        noun = "column" if total == 1 else "columns"
        if not self.drifted_columns:
            return f"none of {total} {noun} drifted"
        return (
            f"{len(self.drifted_columns)} of {total} {noun} drifted: "
            f"{', '.join(self.drifted_columns)}"
        )

    def to_text(self) -> str:
        """A readable table and the summary line (terminals, papermill outputs)."""
        lines = [self._text_table(self.results)]
        for name, why in self.skipped.items():
            lines.append(f"not tested: {name} ({why})")
        verdict = "dataset drift" if self.dataset_drift else "no dataset drift"
        lines.append(
            f"{self.summary()} (share {self.share:.2f}, {verdict} at {self.drift_share:g})"
        )
        if self.predictions is not None and len(self.predictions.results):
            row = self.predictions.results.iloc[0]
            state = "drifted" if row["drifted"] else "did not drift"
            lines.append(
                f"predictions {state}: {row['method']} {_number(row['score'])} "
                f"(threshold {_number(row['threshold'])})"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        data = {
            "summary": self.summary(),
            "dataset_drift": bool(self.dataset_drift),
            "share": float(self.share),
            "drift_share": float(self.drift_share),
            "drifted_columns": list(self.drifted_columns),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "reference": self.reference_label,
            "current": self.current_label,
            "check_id": self.check_id,
            "columns": [_json_row(row) for row in self.results.to_dict(orient="records")],
            "skipped": dict(self.skipped),
        }
        if self.predictions is not None:
            data["predictions"] = self.predictions.to_dict()
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_html(self, title: str | None = None) -> str:
        """One self-contained page: the verdict, the table, a chart per column (inline SVG)."""
        from mlops_nb.monitor.report import render_html

        return render_html(self, title=title)

    def records(
        self,
        check_id: str,
        model_name: str | None = None,
        model_version: int | None = None,
        reference_label: str | None = None,
        current_label: str | None = None,
        target: str = "inputs",
        created_at: float | None = None,
    ) -> list[dict[str, Any]]:
        """Rows for ``log.record("drift", row)``: one per column, one for the dataset (and the
        prediction drift's rows, target ``predictions``)."""
        common = {
            "check_id": check_id,
            "model_name": model_name,
            "model_version": model_version,
            "reference": reference_label or self.reference_label,
            "current": current_label or self.current_label,
            "created_at": time.time() if created_at is None else created_at,
        }
        rows = []
        for row in self.results.to_dict(orient="records"):
            rows.append({
                **common, "target": target, "column_name": row["column"],
                "column_type": row["column_type"], "method": row["method"],
                "score": _finite(row["score"]), "threshold": _finite(row["threshold"]),
                "drifted": bool(row["drifted"]), "exact": bool(row["exact"]),
                "n_reference": int(row["n_reference"]), "n_current": int(row["n_current"]),
            })  # fmt: skip
        if target == "inputs":
            rows.append({
                **common, "target": "dataset", "column_name": "*", "column_type": None,
                "method": "share_of_drifted_columns", "score": float(self.share),
                "threshold": float(self.drift_share), "drifted": bool(self.dataset_drift),
                "exact": bool(self.results["exact"].all()) if len(self.results) else True,
                "n_reference": int(self.n_reference), "n_current": int(self.n_current),
            })  # fmt: skip
        if self.predictions is not None:
            rows += self.predictions.records(
                check_id, model_name, model_version, target="predictions",
                created_at=common["created_at"],
            )  # fmt: skip
        return rows

    @staticmethod
    def _text_table(results: pd.DataFrame) -> str:
        if results.empty:
            return "(no columns tested)"
        shown = results[["column", "column_type", "method", "score", "threshold", "drifted"]]
        shown = shown.assign(
            score=shown["score"].map(_number),
            threshold=shown["threshold"].map(_number),
            drifted=shown["drifted"].map({True: "DRIFT", False: "-"}),
            exact=results["exact"].map({True: "exact", False: "approx"}),
        )
        return shown.to_string(index=False)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}"


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _json_row(row: dict) -> dict:
    return {
        key: (_finite(v) if isinstance(v, float) else v.item() if hasattr(v, "item") else v)
        for key, v in row.items()
    }


# ---------------------------------------------------------------------- column data
@dataclass
class _Numbers:
    """A numerical column: its sorted values (exact) or a profile's knots (approximate)."""

    n: int
    ordered: np.ndarray | None = None
    sketch: dict | None = None

    def __post_init__(self) -> None:
        if self.sketch is not None:
            self.knots = np.asarray(self.sketch["knots"], dtype="float64")
            self.share_below = np.asarray(self.sketch["below"], dtype="float64") / self.n
            self.share_at_most = self.share_below + np.asarray(self.sketch["at"]) / self.n

    @property
    def exact(self) -> bool:
        return self.ordered is not None

    @property
    def minimum(self) -> float:
        return float(self.ordered[0]) if self.exact else float(self.sketch["min"])

    @property
    def maximum(self) -> float:
        return float(self.ordered[-1]) if self.exact else float(self.sketch["max"])

    def std(self) -> float:
        return float(np.std(self.ordered)) if self.exact else float(self.sketch["std"])

    def n_unique(self) -> int:
        if self.exact:
            return int(np.count_nonzero(np.diff(self.ordered))) + 1 if self.n else 0
        return int(self.sketch["n_unique"])

    def uniques_counts(self) -> tuple[np.ndarray, np.ndarray]:
        starts = np.concatenate([[0], np.flatnonzero(np.diff(self.ordered)) + 1])
        counts = np.diff(np.concatenate([starts, [self.ordered.size]]))
        return self.ordered[starts], counts

    def below(self, points: np.ndarray) -> np.ndarray:
        """How many values are < each point."""
        if self.exact:
            return np.searchsorted(self.ordered, points, side="left").astype("float64")
        return self.n * self._knot_share(points, self.share_below)

    def at_most(self, points: np.ndarray) -> np.ndarray:
        """How many values are <= each point."""
        if self.exact:
            return np.searchsorted(self.ordered, points, side="right").astype("float64")
        return self.n * self._knot_share(points, self.share_at_most)

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        """Counts per bin with ``np.histogram``'s rule: [a, b) bins, the last one closed."""
        inner = self.below(edges[:-1])
        return np.diff(np.concatenate([inner, [self.at_most(edges[-1:])[0]]]))

    def integral(self) -> bool:
        """Whole numbers only (for charts: bins that do not fall between two values)."""
        if self.exact:
            return bool(np.all(np.mod(self.ordered, 1) == 0))
        return str(self.sketch.get("dtype", "")).lower().startswith(("int", "uint"))

    def quantile(self, share: float) -> float:
        if self.exact:
            return float(self.ordered[int(round(share * (self.n - 1)))])
        return float(np.interp(share, self.share_at_most, self.knots))

    def _knot_share(self, points: np.ndarray, on_knot: np.ndarray) -> np.ndarray:
        """The profile's distribution function: exact on a knot (``on_knot`` says whether a
        value equal to the knot counts), linear between two knots."""
        points = np.asarray(points, dtype="float64")
        knots = self.knots
        index = np.searchsorted(knots, points, side="left")  # knots[index - 1] < x <= knots[index]
        safe = np.clip(index, 1, knots.size - 1)
        on = (index < knots.size) & (knots[np.minimum(index, knots.size - 1)] == points)
        lo, hi = knots[safe - 1], knots[safe]
        start, end = self.share_at_most[safe - 1], self.share_below[safe]
        between = start + (end - start) * np.clip((points - lo) / (hi - lo), 0.0, 1.0)
        share = np.where(index == 0, 0.0, np.where(index >= knots.size, 1.0, between))
        return np.where(on, on_knot[np.minimum(index, knots.size - 1)], share)


@dataclass
class _Categories:
    """A categorical column as counts per value (or per salted hash of a private value)."""

    counts: pd.Series
    salt: str | None = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def _reference_column(reference: Any, name: str, is_profile: bool) -> Any:
    """The reference column as a Series, or its profile entry (with the salt if private)."""
    if not is_profile:
        return reference[name]
    entry = dict(reference["columns"][name])
    if entry.get("private"):
        entry["salt"] = reference.get("salt")
    return entry


def _numbers(series: pd.Series) -> _Numbers:
    values = np.sort(profiles.numeric_values(series))
    return _Numbers(n=int(values.size), ordered=values)


def _categories(series: pd.Series, salt: str | None = None) -> _Categories:
    counts = profiles.category_counts(series)
    if salt is not None:
        keys = [profiles.hash_value(v, salt) for v in counts.index]
        counts = pd.Series(counts.to_numpy(), index=pd.Index(keys, dtype="object"))
        counts = counts.groupby(level=0, sort=False).sum()
    return _Categories(counts=counts, salt=salt)


def _numbers_from_entry(entry: dict) -> _Numbers | str:
    if entry.get("private"):
        return "private: the profile keeps no values"
    try:
        return _numbers_kept(entry)
    except (TypeError, ValueError):
        return "numbers in the current data, not in the reference"


def _numbers_kept(entry: dict) -> _Numbers | str:
    if "values" in entry:
        values = np.sort(np.asarray(entry["values"], dtype="float64"))
        return _Numbers(n=int(values.size), ordered=values)
    if "counts" in entry:
        values = np.asarray([v for v, _ in entry["counts"]], dtype="float64")
        counts = np.asarray([c for _, c in entry["counts"]], dtype="int64")
        order = np.argsort(values, kind="stable")
        return _Numbers(n=int(counts.sum()), ordered=np.repeat(values[order], counts[order]))
    if "knots" in entry:
        return _Numbers(n=int(entry["n"]), sketch=entry)
    return "no values in the reference"


def _categories_from_entry(entry: dict) -> _Categories | str:
    if "hashed_counts" in entry:
        keys = [k for k, _ in entry["hashed_counts"]]
        counts = [c for _, c in entry["hashed_counts"]]
        series = pd.Series(counts, index=pd.Index(keys, dtype="object"), dtype="int64")
        return _Categories(counts=series, salt=entry.get("salt"))
    if "counts" in entry:
        keys = [k for k, _ in entry["counts"]]
        counts = [c for _, c in entry["counts"]]
        return _Categories(pd.Series(counts, index=pd.Index(keys, dtype="object"), dtype="int64"))
    if "values" in entry:
        return _categories(pd.Series(entry["values"], dtype="object"))
    if entry.get("private"):
        return "private: the profile keeps no values"
    return "no values in the reference"


# ---------------------------------------------------------------------- one column
def _test_column(
    name: str, reference: Any, current: pd.Series, method: str | None, threshold: float | None
) -> tuple[dict, dict] | str:
    """The result row and chart data of one column, or why it was not tested."""
    kind = profiles.column_type(current)
    if kind == profiles.UNKNOWN and isinstance(reference, dict):
        kind = reference.get("type", kind)
    if kind == TEXT:
        return _test_text(name, reference, current, method, threshold)
    if kind not in (NUMERICAL, CATEGORICAL):
        return f"{kind} columns are not tested"
    if kind == NUMERICAL:
        if not pd.api.types.is_numeric_dtype(current.dtype):
            return "numerical in the reference, not numbers in the current data"
        ref = _numbers(reference) if isinstance(reference, pd.Series) else _numbers_from_entry(
            reference)  # fmt: skip
        if isinstance(ref, str):
            return ref
        cur = _numbers(current)
    else:
        if isinstance(reference, pd.Series):
            ref = _categories(reference)
        else:
            ref = _categories_from_entry(reference)
            if isinstance(ref, str):
                return ref
        cur = _categories(current, salt=ref.salt)
    if ref.n == 0:
        return "no values in the reference"
    if cur.n == 0:
        return "no values in the current data"
    chosen = method or _default_method(kind, ref, cur)
    spec = METHODS.get(chosen)
    if spec is None or kind not in spec.kinds:
        raise DriftError(f"method {chosen!r} does not apply to {kind} column {name!r}")
    limit = spec.threshold if threshold is None else float(threshold)
    score, exact = spec.compute(kind, ref, cur)
    row = {
        "column": name, "column_type": kind, "method": chosen, "score": float(score),
        "threshold": limit, "drifted": bool(spec.drifted(score, limit)), "exact": exact,
        "n_reference": ref.n, "n_current": cur.n,
    }  # fmt: skip
    return row, _chart(kind, ref, cur)


def _default_method(kind: str, ref: _Numbers | _Categories, cur: _Numbers | _Categories) -> str:
    """Evidently 0.7's choice (``_get_default_stattest``)."""
    n_values = _n_values_joint(kind, ref, cur)
    if ref.n <= SMALL_REFERENCE:
        if kind == NUMERICAL and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == NUMERICAL and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def _n_values_joint(kind: str, ref: Any, cur: Any, enough: int = 6) -> int:
    """Distinct values of both sides together; counted exactly only when it matters (below
    ``enough``), since only "at most 2" and "at most 5" change the choice."""
    if kind == CATEGORICAL:
        return len(ref.counts.index.union(cur.counts.index))
    ref_unique, cur_unique = ref.n_unique(), cur.n_unique()
    if ref_unique >= enough or cur_unique >= enough:
        return max(ref_unique, cur_unique)
    return int(np.union1d(ref.uniques_counts()[0], cur.uniques_counts()[0]).size)


# ---------------------------------------------------------------------- the methods
@dataclass(frozen=True)
class Method:
    """A drift test: what it computes, for which column types, and when it says drift."""

    name: str
    title: str
    kinds: tuple[str, ...]
    threshold: float
    drifted: Callable[[float, float], bool]
    compute: Callable[[str, Any, Any], tuple[float, bool]]


def _ks(kind: str, ref: _Numbers, cur: _Numbers) -> tuple[float, bool]:
    from scipy import stats

    if ref.exact:
        return float(stats.ks_2samp(ref.ordered, cur.ordered).pvalue), True
    points = np.concatenate([cur.ordered, ref.knots])
    gap_right = np.abs(ref.at_most(points) / ref.n - cur.at_most(points) / cur.n)
    gap_left = np.abs(ref.below(points) / ref.n - cur.below(points) / cur.n)
    statistic = float(max(gap_right.max(), gap_left.max()))
    effective = round(ref.n * cur.n / (ref.n + cur.n))
    return float(stats.kstwo.sf(statistic, effective)), False


def _chisquare(kind: str, ref: Any, cur: Any) -> tuple[float, bool]:
    from scipy import stats

    ref_counts, cur_counts = _aligned_counts(kind, ref, cur)
    expected = ref_counts * (cur.n / ref.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cur_counts, expected).pvalue), True


def _z(kind: str, ref: Any, cur: Any) -> tuple[float, bool]:
    from scipy.stats import norm

    keys, ref_counts, cur_counts = _aligned_counts(kind, ref, cur, with_keys=True)
    if (
        np.count_nonzero(ref_counts) == 1
        and np.count_nonzero(cur_counts) == 1
        and (np.argmax(ref_counts) == np.argmax(cur_counts))
    ):
        return 1.0, True
    first = int(np.argmin(_sort_keys(keys)))
    p1 = float(ref.n - ref_counts[first]) / ref.n
    p2 = float(cur.n - cur_counts[first]) / cur.n
    pooled = float(p1 * ref.n + p2 * cur.n) / (ref.n + cur.n)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / ref.n + 1.0 / cur.n))
    return float(2 * (1 - norm.cdf(np.abs(z)))), True


def _wasserstein(kind: str, ref: _Numbers, cur: _Numbers) -> tuple[float, bool]:
    scale = max(ref.std(), 0.001)
    if ref.exact:
        return _wasserstein_sorted(ref.ordered, cur.ordered) / scale, True
    return _wasserstein_sketch(ref, cur) / scale, False


def _jensenshannon(kind: str, ref: Any, cur: Any) -> tuple[float, bool]:
    from scipy.spatial import distance

    ref_share, cur_share, exact = _binned(kind, ref, cur, fill_zeroes=False)
    return float(distance.jensenshannon(ref_share, cur_share)), exact


def _psi(kind: str, ref: Any, cur: Any) -> tuple[float, bool]:
    ref_share, cur_share, exact = _binned(kind, ref, cur, fill_zeroes=True)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share))), exact


def _kl_div(kind: str, ref: Any, cur: Any) -> tuple[float, bool]:
    from scipy import stats

    ref_share, cur_share, exact = _binned(kind, ref, cur, fill_zeroes=True)
    return float(stats.entropy(ref_share, cur_share)), exact


def _at_most(score: float, limit: float) -> bool:
    return score <= limit


def _below(score: float, limit: float) -> bool:
    return score < limit


def _at_least(score: float, limit: float) -> bool:
    return score >= limit


_BOTH = (NUMERICAL, CATEGORICAL)
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("ks", "K-S p-value", (NUMERICAL,), 0.05, _at_most, _ks),
        Method("chisquare", "chi-square p-value", _BOTH, 0.05, _below, _chisquare),
        Method("z", "Z-test p-value", _BOTH, 0.05, _below, _z),
        Method(
            "wasserstein",
            "Wasserstein distance (normed)",
            (NUMERICAL,),
            0.1,
            _at_least,
            _wasserstein,
        ),  # fmt: skip
        Method(
            "jensenshannon", "Jensen-Shannon distance", _BOTH, 0.1, _at_least, _jensenshannon
        ),  # fmt: skip
        Method("psi", "PSI", _BOTH, 0.1, _at_least, _psi),
        Method("kl_div", "Kullback-Leibler divergence", _BOTH, 0.1, _at_least, _kl_div),
    )
}
# Text columns: a domain classifier's ROC AUC (see _test_text); the threshold is the confidence
# for the percentile variant (small references), the AUC itself for the absolute one.
TEXT_METHODS = {"perc_text_content_drift": 0.95, "abs_text_content_drift": 0.55}


def _method_list() -> str:
    return ", ".join([*METHODS, *TEXT_METHODS])


# ---------------------------------------------------------------------- the arithmetic
def _wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance(u, v) for sorted u and v: the integral of the gap
    between the two distribution functions, walked along the merged values (a stable sort
    of two sorted runs is a linear merge). Between tied values the step is 0, so counting
    ties at their last position gives scipy's sum."""
    merged_from = np.argsort(np.concatenate([u, v]), kind="stable")
    merged = np.concatenate([u, v])[merged_from]
    from_u = np.cumsum(merged_from < u.size)
    from_v = np.arange(1, merged.size + 1) - from_u
    steps = np.diff(merged)
    return float(np.sum(np.abs(from_u[:-1] / u.size - from_v[:-1] / v.size) * steps))


def _wasserstein_sketch(ref: _Numbers, cur: _Numbers) -> float:
    """The same integral with the reference's distribution function read from its profile
    (linear between knots), exact on each piece between two neighbouring points. The knots
    and the current values are merged in one pass (both are sorted): no search per value."""
    knots = ref.knots
    cur_values, cur_counts = cur.uniques_counts()
    values = np.concatenate([knots, cur_values])
    merged = np.argsort(values, kind="stable")
    values = values[merged]
    current_at_most = np.cumsum(np.concatenate([np.zeros(knots.size), cur_counts])[merged])
    knots_at_most = np.cumsum(merged < knots.size)
    last = np.concatenate([values[1:] != values[:-1], [True]])  # one point per value
    points = values[last]
    current_at_most, knots_at_most = current_at_most[last], knots_at_most[last]
    if points.size < 2:
        return 0.0
    left, right = points[:-1], points[1:]
    current_share = current_at_most[:-1] / cur.n
    piece = knots_at_most[:-1] - 1  # the knot at or before ``left`` (-1: before the first)
    inside = (piece >= 0) & (piece < knots.size - 1)
    safe = np.clip(piece, 0, max(knots.size - 2, 0))
    lo, hi = knots[safe], knots[np.minimum(safe + 1, knots.size - 1)]
    start_share = ref.share_at_most[safe]
    end_share = ref.share_below[np.minimum(safe + 1, knots.size - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(hi > lo, (end_share - start_share) / (hi - lo), 0.0)
    outside = np.where(piece >= knots.size - 1, 1.0, 0.0)
    start = np.where(inside, start_share + slope * (left - lo), outside)
    end = np.where(inside, start_share + slope * (right - lo), outside)
    a, b = start - current_share, end - current_share
    width = right - left
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = width * (a * a + b * b) / (2 * np.abs(b - a))
    area = np.where(a * b >= 0, width * np.abs(a + b) / 2, np.nan_to_num(crossing))
    return float(np.sum(area))


def _sturges_edges(minimum: float, maximum: float, size: int) -> np.ndarray:
    """``np.histogram_bin_edges(combined, "sturges")`` from the combined min, max and size."""
    first, last = float(minimum), float(maximum)
    width = (last - first) / (np.log2(size) + 1.0)
    if first == last:
        first, last = first - 0.5, last + 0.5
    bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, bins + 1, endpoint=True)


def _binned(kind: str, ref: Any, cur: Any, fill_zeroes: bool) -> tuple[np.ndarray, ...]:
    """Reference and current shares per bin, as Evidently's ``get_binned_data``: Sturges bins
    on the combined data for numerical columns with more than 20 distinct reference values,
    else the share of each value."""
    if kind == NUMERICAL and ref.n_unique() > STURGES_MIN_UNIQUE:
        edges = _sturges_edges(
            min(ref.minimum, cur.minimum), max(ref.maximum, cur.maximum), ref.n + cur.n
        )
        ref_share = ref.histogram(edges) / ref.n
        cur_share = cur.histogram(edges) / cur.n
        exact = ref.exact
    else:
        ref_counts, cur_counts = _aligned_counts(kind, ref, cur)
        ref_share, cur_share, exact = ref_counts / ref.n, cur_counts / cur.n, True
    if fill_zeroes:
        ref_share, cur_share = _fill_zeroes(ref_share), _fill_zeroes(cur_share)
    return ref_share, cur_share, exact


def _fill_zeroes(shares: np.ndarray) -> np.ndarray:
    shares = shares.astype("float64").copy()
    smallest = shares[shares != 0].min()
    shares[shares == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return shares


def _aligned_counts(kind: str, ref: Any, cur: Any, with_keys: bool = False) -> tuple:
    """Counts of every value seen on either side, in the same order for both."""
    if kind == NUMERICAL:
        if not ref.exact:
            raise DriftError(
                "this method needs the reference's values; its profile keeps quantiles only"
            )
        ref_values, ref_counts = ref.uniques_counts()
        cur_values, cur_counts = cur.uniques_counts()
        keys = np.union1d(ref_values, cur_values)
        aligned = np.zeros(keys.size), np.zeros(keys.size)
        aligned[0][np.searchsorted(keys, ref_values)] = ref_counts
        aligned[1][np.searchsorted(keys, cur_values)] = cur_counts
        keys = keys.tolist()
    else:
        index = ref.counts.index.union(cur.counts.index, sort=False)
        aligned = (
            ref.counts.reindex(index, fill_value=0).to_numpy(dtype="float64"),
            cur.counts.reindex(index, fill_value=0).to_numpy(dtype="float64"),
        )
        keys = index.tolist()
    return (keys, *aligned) if with_keys else aligned


def _sort_keys(keys: list) -> np.ndarray:
    """Each key's rank in sorted order (Evidently's Z-test counts the smallest key as 0)."""
    try:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
    except TypeError:
        order = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    ranks = np.empty(len(keys), dtype="int64")
    ranks[order] = np.arange(len(keys))
    return ranks


# ---------------------------------------------------------------------- text columns
def _test_text(
    name: str, reference: Any, current: pd.Series, method: str | None, threshold: float | None
) -> tuple[dict, dict] | str:
    """Evidently's text drift: a TF-IDF + linear domain classifier told to separate reference
    from current rows; its ROC AUC is the score. Needs the texts of both sides."""
    if isinstance(reference, dict):
        if "values" not in reference:
            return "text: the profile keeps no texts" if not reference.get("private") else (
                "private: the profile keeps no values")  # fmt: skip
        reference = pd.Series(reference["values"], dtype="object")
    ref = reference.dropna()
    cur = current.dropna()
    if ref.empty:
        return "no values in the reference"
    if cur.empty:
        return "no values in the current data"
    chosen = method or (
        "abs_text_content_drift" if len(ref) > SMALL_REFERENCE else "perc_text_content_drift"
    )
    if chosen not in TEXT_METHODS:
        raise DriftError(f"method {chosen!r} does not apply to text column {name!r}")
    limit = TEXT_METHODS[chosen] if threshold is None else float(threshold)
    auc, y_test = _domain_classifier_auc(ref, cur)
    if chosen == "perc_text_content_drift":
        bound = _random_auc_percentile(y_test, p_value=1 - limit)
        drifted, shown_limit = auc > bound, bound
    else:
        drifted, shown_limit = auc > limit, limit
    row = {
        "column": name, "column_type": TEXT, "method": chosen, "score": float(auc),
        "threshold": float(shown_limit), "drifted": bool(drifted), "exact": True,
        "n_reference": int(len(ref)), "n_current": int(len(cur)),
    }  # fmt: skip
    lengths = _Numbers(n=len(ref), ordered=np.sort(ref.astype(str).str.len().to_numpy(float)))
    current_lengths = np.sort(cur.astype(str).str.len().to_numpy(float))
    chart = _chart(NUMERICAL, lengths, _Numbers(n=len(cur), ordered=current_lengths))
    chart["label"] = "text length"
    return row, chart


def _domain_classifier_auc(ref: pd.Series, cur: pd.Series) -> tuple[float, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    texts = pd.concat([ref, cur], ignore_index=True)
    target = np.concatenate([np.zeros(len(ref), dtype=int), np.ones(len(cur), dtype=int)])
    x_train, x_test, y_train, y_test = train_test_split(
        texts, target, test_size=0.5, random_state=42, shuffle=True
    )
    pipeline = Pipeline([
        ("vectorization", TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")),
        ("classification", SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1",
                                         loss="modified_huber", random_state=42)),
    ])  # fmt: skip
    try:
        pipeline.fit(x_train, y_train)
    except ValueError as error:  # e.g. only stop words: nothing to tell the sides apart by
        raise DriftError(f"text drift could not be computed: {error}") from None
    return float(roc_auc_score(y_test, pipeline.predict_proba(x_test)[:, 1])), np.asarray(y_test)


def _random_auc_percentile(y_test: np.ndarray, p_value: float, rounds: int = 1000) -> float:
    """The (1 - p_value) percentile of the ROC AUC of random scores (Evidently's seeds)."""
    from sklearn.metrics import roc_auc_score

    seeds = np.random.RandomState(42).randint(0, rounds * 10, size=rounds)
    values = [roc_auc_score(y_test, np.random.RandomState(s).rand(len(y_test))) for s in seeds]
    return float(np.percentile(values, 100 * (1 - p_value)))


# ---------------------------------------------------------------------- chart data
def _chart(kind: str, ref: Any, cur: Any) -> dict:
    """Reference and current shares on common bins (numerical) or per category."""
    if kind == NUMERICAL and (ref.n_unique() > CHART_CATEGORIES or not ref.exact):
        low = min(ref.quantile(0.005), cur.quantile(0.005))
        high = max(ref.quantile(0.995), cur.quantile(0.995))
        if not high > low:
            low, high = min(ref.minimum, cur.minimum), max(ref.maximum, cur.maximum)
        if not high > low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, CHART_BINS + 1)
        if ref.integral() and cur.integral():  # whole numbers: one bin per k values, no gaps
            step = max(1, int(np.ceil((high - low + 1) / CHART_BINS)))
            edges = np.arange(np.floor(low) - 0.5, np.ceil(high) + 0.5 + step, step)
        ref_counts = _clamped_histogram(ref, edges)
        cur_counts = _clamped_histogram(cur, edges)
        return {
            "kind": "histogram", "edges": edges.tolist(),
            "reference": (ref_counts / ref.n).tolist(), "current": (cur_counts / cur.n).tolist(),
        }  # fmt: skip
    keys, ref_counts, cur_counts = _aligned_counts(kind, ref, cur, with_keys=True)
    ref_share, cur_share = ref_counts / ref.n, cur_counts / cur.n
    order = np.argsort(-(ref_share + cur_share), kind="stable")
    if all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys):
        top = sorted(order[:CHART_CATEGORIES], key=lambda i: keys[i])
        order = np.concatenate([np.asarray(top, dtype="int64"), order[CHART_CATEGORIES:]])
    labels = [_label(keys[i], getattr(ref, "salt", None)) for i in order[:CHART_CATEGORIES]]
    reference, current = ref_share[order[:CHART_CATEGORIES]], cur_share[order[:CHART_CATEGORIES]]
    if len(order) > CHART_CATEGORIES:
        rest = order[CHART_CATEGORIES:]
        labels.append(f"{len(rest)} others")
        reference = np.append(reference, ref_share[rest].sum())
        current = np.append(current, cur_share[rest].sum())
    return {
        "kind": "categories", "labels": labels,
        "reference": reference.tolist(), "current": current.tolist(),
    }  # fmt: skip


def _label(key: Any, salt: str | None) -> str:
    if salt is not None:
        return f"#{key[:8]}"
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)


def _clamped_histogram(numbers: _Numbers, edges: np.ndarray) -> np.ndarray:
    """Counts per bin, values outside the edges counted in the first or last bin."""
    counts = numbers.histogram(edges)
    counts[0] += numbers.below(edges[:1])[0]
    counts[-1] += numbers.n - numbers.at_most(edges[-1:])[0]
    return counts
