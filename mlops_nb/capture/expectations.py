"""Data checks: what a dataset is expected to look like, and the check of new data against it.

Expectations are inferred from a recorded dataset version (``infer_expectations`` from the
frame itself, ``expectations_from_stats`` from the stats the log kept when the frame is gone),
stored with that version as JSON, and written to or read from a YAML file a person can edit
(tighten a range, drop a value from ``allowed``, add a ``pattern``). Per column:

- ``dtype``: checked as a kind of value, not as an exact pandas dtype: integers are fine where
  floats were seen, floats holding whole numbers where integers were (a CSV column with a gap
  reads as float64), text that parses as numbers or dates where those were seen. The rows
  whose value cannot be read as the kind fail; the other checks then see only readable values.
- ``nullable``, ``min``/``max`` (numbers and dates), ``allowed`` values (pandas categories and
  low-cardinality text: at most 20 distinct values each seen twice on average, or at most 5% of
  the values distinct and at most 200 of them), ``unique`` (a key: every value distinct and a
  name such as ``id``, ``customer_id``, ``orderKey``), ``pattern`` (a regex, written by hand),
  ``required`` (false: the column may be absent), ``personal`` (never show its values).
- ``strict: true`` at the top fails columns the file does not list.

``check_frame`` runs every check and reports each one: the column, the check, how many rows
fail, a few row numbers (positions: 0 is the first row) and a few failing values, except for
personal-data columns (``private=`` and columns marked ``personal``), whose values are never
shown, stored or inferred (no ranges, no allowed values).

Why not pandera (its YAML format would have been the file format): the inference we need goes
beyond ``infer_schema`` (low-cardinality text, keys, the log's stats when the frame is gone),
the report needs counts and a bounded number of examples per check with values withheld for
personal data (pandera's ``failure_cases`` lists every failing value), and the served model runs
the same checks on each batch of requests, where a small vectorised pass is all it can afford.
Pure functions of DataFrames: no log, no IPython.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError

FORMAT = "mlops-nb expectations 1"
MAX_CATEGORIES = 20  # at most this many distinct values (each seen twice on average): a closed set
CATEGORY_SHARE = 0.05  # or at most this share of the values distinct...
MAX_ALLOWED = 200  # ...and at most this many: longer lists are not worth editing by hand
N_EXAMPLES = 5
CHECKS = ("present", "dtype", "nullable", "min", "max", "allowed", "unique", "pattern",
          "unexpected")  # fmt: skip
# What the served model checks per batch: the signature already refuses (400) missing columns,
# wrong types, nulls where training had none and unseen categories; "unique" means nothing
# for a batch of requests.
SERVING_CHECKS = ("min", "max", "allowed", "pattern")
_CAMEL_KEY = re.compile(r"[a-z0-9](Id|ID|Key|KEY|Uuid|UUID)$")
_OBJECT_DTYPES = {"text": "str", "integer": "int64", "number": "float64", "bool": "bool",
                  "datetime": "datetime64[ns]"}  # fmt: skip
_COLUMN_KEYS = ("dtype", "nullable", "min", "max", "allowed", "unique", "pattern", "personal",
                "required")  # fmt: skip
_HEADER = """\
# Expectations for mlops-nb data checks: %%mlops track STAGE --expect THIS_FILE, or
# mlops-nb validate --against THIS_FILE DATA.csv. Edit freely. Per column: dtype, nullable,
# min, max, allowed (the values it may take), unique, pattern (a regex every text value must
# match), required (false: the column may be absent), personal (never show its values).
# strict: true fails columns not listed here.
"""


class ExpectationsError(MlopsError):
    """An expectations file or spec that cannot be used (one line: where and why)."""


class ExpectationsFailed(Exception):
    """Data failed its checks (raised so the cell, and a pipeline run, fail).

    Not an ``MlopsError``: it is the outcome the user asked to enforce, not a usage mistake,
    and it must reach the kernel as itself so papermill records its type and message.
    """

    def __init__(self, *reports: CheckReport):
        super().__init__("; ".join(report.failure_line() for report in reports))
        self.reports = list(reports)


# ---------------------------------------------------------------------- the expectations
@dataclass
class ColumnExpectation:
    """What one column is expected to hold; None means "not checked"."""

    name: str
    dtype: str | None = None
    nullable: bool = True
    min: Any = None
    max: Any = None
    allowed: list[Any] | None = None
    unique: bool = False
    pattern: str | None = None
    personal: bool = False
    required: bool = True

    @property
    def kind(self) -> str:
        return kind_of_dtype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """Only what is set (a short, readable file)."""
        out: dict[str, Any] = {"dtype": self.dtype, "nullable": self.nullable}
        for key in ("min", "max", "allowed", "pattern"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key, default in (("unique", False), ("personal", False), ("required", True)):
            if getattr(self, key) != default:
                out[key] = getattr(self, key)
        return out


@dataclass
class Expectations:
    """The expectations of a dataset, column by column."""

    columns: dict[str, ColumnExpectation] = field(default_factory=dict)
    strict: bool = False
    dataset: str | None = None  # what they were inferred from, for the record
    n_rows: int | None = None
    source: str = "inferred"  # 'inferred' or 'file'

    @property
    def personal_columns(self) -> set[str]:
        return {name for name, column in self.columns.items() if column.personal}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        if self.dataset:
            out["dataset"] = self.dataset
        if self.n_rows is not None:
            out["n_rows"] = int(self.n_rows)
        out["strict"] = self.strict
        out["columns"] = {name: column.to_dict() for name, column in self.columns.items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default)

    def to_yaml(self) -> str:
        import yaml

        return _HEADER + yaml.safe_dump(
            _plain_tree(self.to_dict()), sort_keys=False, allow_unicode=True, width=100
        )

    @classmethod
    def from_dict(
        cls, data: Any, source: str = "inferred", where: str = "expectations"
    ) -> Expectations:
        """From ``to_dict()``'s shape (a stored spec or an edited file); a mistake in it is an
        ``ExpectationsError`` naming the column and the key."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
            raise ExpectationsError(f"{where}: expected a mapping with 'columns:'")
        unknown = set(data) - {"format", "dataset", "n_rows", "strict", "columns"}
        if unknown:
            raise ExpectationsError(f"{where}: unknown key {sorted(unknown)[0]!r} at the top")
        columns = {}
        for name, spec in data["columns"].items():
            columns[str(name)] = _column_from_dict(str(name), spec or {}, where)
        n_rows = data.get("n_rows")
        return cls(columns, bool(data.get("strict", False)), data.get("dataset"),
                   int(n_rows) if n_rows is not None else None, source)  # fmt: skip

    @classmethod
    def from_json(cls, text: str, source: str = "inferred") -> Expectations:
        return cls.from_dict(json.loads(text), source)

    @classmethod
    def from_yaml(cls, text: str, where: str = "expectations file") -> Expectations:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            first = str(error).splitlines()[0]
            raise ExpectationsError(f"{where} is not valid YAML: {first}") from None
        return cls.from_dict(data, "file", where)


def read_file(path: str | Path) -> Expectations:
    """An expectations YAML file (``ExpectationsError`` when missing or wrong)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ExpectationsError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    return Expectations.from_yaml(text, where=str(path))


def write_file(expectations: Expectations, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(expectations.to_yaml(), encoding="utf-8")
    return path


def is_expectations_file(text: str) -> bool:
    return Path(str(text)).suffix.lower() in (".yaml", ".yml")


def _column_from_dict(name: str, spec: Any, where: str) -> ColumnExpectation:
    if not isinstance(spec, dict):
        raise ExpectationsError(f"{where}: column {name!r}: expected a mapping of checks")
    unknown = [key for key in spec if key not in _COLUMN_KEYS]
    if unknown:
        raise ExpectationsError(
            f"{where}: column {name!r}: unknown key {unknown[0]!r} (use {', '.join(_COLUMN_KEYS)})"
        )
    column = ColumnExpectation(name, **{k: v for k, v in spec.items() if v is not None})
    if column.allowed is not None and not isinstance(column.allowed, list):
        raise ExpectationsError(f"{where}: column {name!r}: allowed must be a list of values")
    if column.pattern is not None:
        try:
            re.compile(str(column.pattern))
        except re.error as error:
            raise ExpectationsError(
                f"{where}: column {name!r}: pattern {column.pattern!r} is not a regex: {error}"
            ) from None
    for key in ("min", "max"):
        value = getattr(column, key)
        if isinstance(value, date | datetime):
            setattr(column, key, pd.Timestamp(value).isoformat())
        elif value is not None and column.kind in ("integer", "number") and not _is_number(value):
            raise ExpectationsError(f"{where}: column {name!r}: {key} {value!r} is not a number")
    for key in ("nullable", "unique", "personal", "required"):
        if not isinstance(getattr(column, key), bool):
            raise ExpectationsError(f"{where}: column {name!r}: {key} must be true or false")
    return column


# ---------------------------------------------------------------------- inference
def infer_expectations(
    frame: Any, *, private: Iterable[str] = (), dataset: str | None = None
) -> Expectations:
    """Expectations of ``frame`` (pandas or polars): exact, from the data itself. Columns in
    ``private`` keep their dtype, nullability and uniqueness, never a value (no range, no
    allowed values)."""
    frame = as_pandas(frame)
    private = set(private)
    columns = {}
    for label in frame.columns:
        name = str(label)
        series = frame[label]
        if isinstance(series, pd.DataFrame):  # a repeated label: the first column
            series = series.iloc[:, 0]
        columns[name] = _infer_column(name, series, name in private)
    return Expectations(columns, dataset=dataset, n_rows=len(frame))


def _infer_column(name: str, series: pd.Series, personal: bool) -> ColumnExpectation:
    kind = kind_of_series(series)
    nulls = series.isna()
    present = series[~nulls]
    dtype = str(series.dtype)
    if pd.api.types.is_object_dtype(series.dtype):  # say what the objects are
        dtype = _OBJECT_DTYPES.get(kind, dtype)
    column = ColumnExpectation(name, dtype, bool(nulls.any()), personal=personal)
    if kind in ("integer", "text") and looks_like_key(name) and len(present) > 1:
        column.unique = bool(not present.duplicated().any())
    if personal or present.empty:
        return column
    if kind in ("integer", "number"):
        numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        finite = numbers[np.isfinite(numbers)]
        if len(finite):
            low, high = finite.min(), finite.max()
            as_int = kind == "integer"
            column.min = int(low) if as_int else float(low)
            column.max = int(high) if as_int else float(high)
    elif kind == "datetime":
        column.min, column.max = present.min().isoformat(), present.max().isoformat()
    elif kind == "category":
        categories = [_plain(v) for v in series.cat.categories]
        if len(categories) <= MAX_ALLOWED:
            column.allowed = categories
    elif kind == "text":
        counts = present.value_counts()
        if is_closed_set(len(counts), len(present)):
            column.allowed = sorted(str(v) for v in counts.index)
    return column


def expectations_from_stats(
    schema: dict[str, str],
    stats: dict[str, dict],
    n_rows: int,
    *,
    private: Iterable[str] = (),
    dataset: str | None = None,
) -> Expectations:
    """From a recorded dataset version's schema and stats when the frame itself is gone:
    approximate where the stats are (allowed values only where value counts were kept, at most
    20 distinct; uniqueness only for text, whose distinct count is kept)."""
    private = set(private)
    columns = {}
    for name, dtype in schema.items():
        found = stats.get(name) or {}
        kind = kind_of_dtype(dtype)
        nulls = found.get("nulls")
        personal = name in private or bool(found.get("private"))  # the log kept counts only
        column = ColumnExpectation(name, str(dtype), nullable=nulls is None or int(nulls) > 0,
                                   personal=personal)  # fmt: skip
        n_values = n_rows - int(nulls or 0)
        distinct = found.get("distinct")
        if kind == "text" and looks_like_key(name) and distinct is not None and n_values > 1:
            column.unique = int(distinct) == n_values
        if not column.personal:
            if kind in ("integer", "number", "datetime"):
                for key in ("min", "max"):
                    value = found.get(key)
                    if kind == "datetime" and isinstance(value, str):
                        setattr(column, key, pd.Timestamp(value).isoformat())
                    elif kind != "datetime" and _is_number(value) and math.isfinite(value):
                        setattr(column, key, int(value) if kind == "integer" else float(value))
            counts = found.get("counts")
            closed = isinstance(counts, dict) and (
                kind == "category" or is_closed_set(len(counts), n_values)
            )
            if kind in ("text", "category", "any") and closed:
                column.allowed = sorted(str(v) for v in counts)
        columns[name] = column
    return Expectations(columns, dataset=dataset, n_rows=int(n_rows))


def is_closed_set(n_distinct: int, n_values: int) -> bool:
    """Few distinct values for many rows: categories, not free text or identifiers."""
    if n_distinct == 0:
        return False
    if n_distinct <= MAX_CATEGORIES and n_distinct * 2 <= n_values:
        return True
    return n_distinct <= MAX_ALLOWED and n_distinct <= CATEGORY_SHARE * n_values


def looks_like_key(name: str) -> bool:
    """``id``, ``customer_id``, ``order-key``, ``customerId``, ``CustomerID``, ``uuid``..."""
    if re.search(r"^(id|key|uuid|guid)$|[_\W](id|key|uuid|guid)$", name, re.IGNORECASE):
        return True
    return bool(_CAMEL_KEY.search(name))


# ---------------------------------------------------------------------- kinds of values
def kind_of_dtype(dtype: str | None) -> str:
    """integer, number, bool, datetime, text, category, or any (not checked)."""
    if not dtype:
        return "any"
    lowered = str(dtype).lower()
    if lowered.startswith("categor"):
        return "category"
    if lowered.startswith("bool"):
        return "bool"
    if lowered.startswith(("int", "uint")):
        return "integer"
    if lowered.startswith(("float", "double", "decimal")):
        return "number"
    if lowered.startswith(("datetime", "timestamp", "date")):
        return "datetime"
    if lowered in ("str", "string", "text", "utf8", "large_string") or lowered.startswith(
        ("string", "str[")
    ):
        return "text"
    return "any"


def kind_of_series(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "text"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        return {"string": "text", "integer": "integer", "floating": "number",
                "mixed-integer-float": "number", "boolean": "bool",
                "datetime": "datetime"}.get(inferred, "any")  # fmt: skip
    return "any"


# ---------------------------------------------------------------------- checking
@dataclass
class CheckResult:
    """One check of one column: how many rows failed it, and a few of them."""

    column: str
    check: str
    expected: str
    n_failing: int
    n_rows: int
    example_rows: list[int] = field(default_factory=list)
    example_values: list[Any] | None = field(default_factory=list)  # None: personal data

    @property
    def passed(self) -> bool:
        return self.n_failing == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column, "check": self.check, "expected": self.expected,
            "n_failing": self.n_failing, "n_rows": self.n_rows, "passed": self.passed,
            "example_rows": self.example_rows, "example_values": self.example_values,
        }  # fmt: skip

    def line(self) -> str:
        """``age · max (<= 79): 2 of 1,000 rows, e.g. rows 12, 907: 120, 150``"""
        head = f"{self.column} · {self.check} ({self.expected}): "
        if self.check in ("present", "unexpected"):
            return head + ("missing" if self.check == "present" else "not expected")
        rows = f"{_count(self.n_failing, 'row')}" if self.n_failing == self.n_rows else (
            f"{self.n_failing:,} of {_count(self.n_rows, 'row')}")  # fmt: skip
        text = head + rows
        if self.example_rows:
            more = ", ..." if self.n_failing > len(self.example_rows) else ""
            numbers = ", ".join(str(r) for r in self.example_rows)
            text += f", e.g. row{'s' if len(self.example_rows) > 1 else ''} {numbers}{more}"
        if self.example_values is None:
            text += " (values not shown: personal data)"
        elif self.example_values:
            text += ": " + ", ".join(_shown(v) for v in self.example_values)
        return text


@dataclass
class CheckReport:
    """The outcome of checking one frame against expectations: every check, failed or not."""

    target: str
    expectation: str
    n_rows: int
    results: list[CheckResult]
    warn_only: bool = False
    check_id: str | None = None

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        where = f"{_count(self.n_rows, 'row')} of {self.target} against {self.expectation}"
        if self.passed:
            return f"data check passed: {_count(len(self.results), 'check')} on {where}"
        warn = " (warn only)" if self.warn_only else ""
        return (f"data check FAILED{warn}: {len(self.failures)} of "
                f"{_count(len(self.results), 'check')} failed on {where}")  # fmt: skip

    def failure_line(self) -> str:
        """One line for an exception: every failed check with its count of rows."""
        parts = [f"{r.column} {r.check} ({_count(r.n_failing, 'row')})" for r in self.failures]
        return (f"data check failed on {self.target} against {self.expectation}: "
                f"{len(self.failures)} of {_count(len(self.results), 'check')}: "
                + "; ".join(parts))  # fmt: skip

    def to_text(self) -> str:
        return "\n".join([self.summary(), *(f"  {r.line()}" for r in self.failures)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "target": self.target, "expectation": self.expectation,
            "n_rows": self.n_rows, "n_checks": len(self.results),
            "n_failed": len(self.failures), "check_id": self.check_id,
            "failures": [r.to_dict() for r in self.failures],
            "checks": [r.to_dict() for r in self.results],
        }  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    def records(
        self, check_id: str, run_id: str | None, cell_seq: int | None, created_at: float
    ) -> list[dict[str, Any]]:
        """Rows of the ``check_results`` table, one per check."""
        return [{
            "check_id": check_id, "run_id": run_id, "cell_seq": cell_seq,
            "target": self.target, "expectation": self.expectation, "column_name": r.column,
            "check_name": r.check, "n_failing": int(r.n_failing), "n_rows": int(r.n_rows),
            "example_rows": list(r.example_rows), "example_values": r.example_values,
            "passed": r.passed, "created_at": created_at,
        } for r in self.results]  # fmt: skip

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        colour = "#15803d" if self.passed else ("#b45309" if self.warn_only else "#b91c1c")
        head = f"<div style='color:{colour};font-weight:600'>{escape(self.summary())}</div>"
        if self.passed:
            return f"<div class='mlops-nb-checks' style='font-size:12px'>{head}</div>"
        rows = "".join(
            "<tr>" + "".join(f"<td style='padding:1px 8px'>{escape(str(cell))}</td>" for cell in (
                r.column, r.check, r.expected, f"{r.n_failing:,} of {r.n_rows:,}",
                ", ".join(map(str, r.example_rows)),
                "(personal data)" if r.example_values is None
                else ", ".join(_shown(v) for v in r.example_values),
            )) + "</tr>"
            for r in self.failures
        )  # fmt: skip
        titles = ("column", "check", "expected", "failing rows", "example rows", "example values")
        header = "".join(f"<th style='text-align:left;padding:1px 8px'>{t}</th>" for t in titles)
        return (
            f"<div class='mlops-nb-checks' style='font-size:12px'>{head}"
            f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def check_frame(
    frame: Any,
    expectations: Expectations,
    *,
    private: Iterable[str] = (),
    target: str = "data",
    expectation: str | None = None,
    checks: Iterable[str] = CHECKS,
) -> CheckReport:
    """Check ``frame`` against ``expectations``: every check of every column, each with its
    count of failing rows and a few examples (values withheld for ``private`` columns and
    those the expectations mark ``personal``)."""
    frame = as_pandas(frame)
    hidden = set(private) | expectations.personal_columns
    n_rows = len(frame)
    results = []
    for column, check, expected, failing in failing_rows(frame, expectations, checks):
        if failing is None:  # the whole column: missing, or not expected
            values = None if column in hidden else []
            results.append(CheckResult(column, check, expected, n_rows, n_rows, [], values))
            continue
        positions = np.flatnonzero(failing)
        examples = positions[:N_EXAMPLES].tolist()
        values = None
        if column not in hidden:
            values = _example_values(_series(frame, column), positions)
        results.append(CheckResult(column, check, expected, len(positions), n_rows, examples,
                                   values))  # fmt: skip
    label = expectation or expectations.dataset or "expectations"
    return CheckReport(target, label, n_rows, results)


def failing_rows(
    frame: pd.DataFrame, expectations: Expectations, checks: Iterable[str] = CHECKS
) -> Iterator[tuple[str, str, str, np.ndarray | None]]:
    """(column, check, expected, boolean mask of failing rows) for each check that applies;
    the mask is None when the check concerns the whole column (missing or unexpected).
    The one implementation behind ``check_frame`` and the served model's checks."""
    wanted = set(checks)
    present = {str(label) for label in frame.columns}
    for name, column in expectations.columns.items():
        if name not in present:
            if column.required and "present" in wanted:
                yield name, "present", "column present", None
            continue
        if _applies(column, wanted):
            yield from _column_checks(_series(frame, name), column, wanted)
    if expectations.strict and "unexpected" in wanted:
        for name in sorted(present - set(expectations.columns)):
            yield name, "unexpected", "not listed (strict)", None


def _applies(column: ColumnExpectation, wanted: set[str]) -> bool:
    """Whether any of the ``wanted`` checks is set for the column (else it is not read)."""
    has = {
        "dtype": column.kind != "any", "nullable": not column.nullable,
        "min": column.min is not None, "max": column.max is not None,
        "allowed": column.allowed is not None, "unique": column.unique,
        "pattern": column.pattern is not None,
    }  # fmt: skip
    return any(has.get(check, False) for check in wanted)


def _series(frame: pd.DataFrame, name: str) -> pd.Series:
    """The column whose label reads ``name`` (the first, when a label repeats)."""
    if name in frame.columns and frame.columns.is_unique:
        return frame[name]
    position = [str(label) for label in frame.columns].index(name)
    return frame.iloc[:, position]


def _column_checks(
    series: pd.Series, column: ColumnExpectation, wanted: set[str]
) -> Iterator[tuple[str, str, str, np.ndarray]]:
    name, kind = column.name, column.kind
    nulls = _nulls(series)
    values, unreadable = _readable(series, kind, nulls)
    if "dtype" in wanted and kind != "any":
        yield name, "dtype", f"{kind} ({column.dtype})", unreadable
    if "nullable" in wanted and not column.nullable:
        yield name, "nullable", "no nulls", nulls
    usable = ~nulls & ~unreadable
    if kind in ("integer", "number", "datetime"):
        for key, expected, compare in (("min", ">=", np.less), ("max", "<=", np.greater)):
            bound = getattr(column, key)
            if bound is None or key not in wanted:
                continue
            shown = str(bound) if kind == "datetime" else _shown(bound)
            yield name, key, f"{expected} {shown}", _outside(values, bound, kind, compare, usable)
    if column.allowed is not None and "allowed" in wanted:
        outside = usable & ~_isin(values, column.allowed, kind)
        yield name, "allowed", _allowed_text(column.allowed), outside
    if column.unique and "unique" in wanted:
        repeated = pd.Series(values).duplicated(keep="first").to_numpy(dtype=bool)
        yield name, "unique", "unique values", repeated & usable
    if column.pattern is not None and "pattern" in wanted:
        text = pd.Series(values, dtype=object).where(usable, "").astype(str)
        matched = text.str.fullmatch(column.pattern).to_numpy(dtype=bool, na_value=False)
        yield name, "pattern", f"matches {column.pattern}", usable & ~matched


def _readable(series: pd.Series, kind: str, nulls: np.ndarray) -> tuple[Any, np.ndarray]:
    """The column's values read as ``kind`` (numbers as float64, dates as datetime64, the
    rest as they are) and the mask of non-null values that cannot be read so."""
    none = np.zeros(len(series), dtype=bool)
    actual = kind_of_series(series)
    if kind in ("integer", "number"):
        if actual == "bool":
            return np.full(len(series), np.nan), ~nulls
        if actual in ("integer", "number") and isinstance(series.dtype, np.dtype):
            values = series.to_numpy().astype(float, copy=False)
        elif actual in ("integer", "number"):  # nullable Int64, Float64, arrow numbers
            values = series.to_numpy(dtype=float, na_value=np.nan)
        else:
            numbers = pd.to_numeric(series, errors="coerce")
            values = np.asarray(numbers.to_numpy(dtype=float, na_value=np.nan))
        unreadable = ~nulls & np.isnan(values)
        if kind == "integer":
            finite = np.isfinite(values)
            fractional = np.zeros(len(values), dtype=bool)
            fractional[finite] = values[finite] != np.round(values[finite])
            unreadable |= fractional
        return values, unreadable
    if kind == "datetime":
        if actual == "datetime":
            return _naive(series), none
        parsed = _parse_dates(series) if actual in ("text", "any") else pd.Series(
            pd.NaT, index=series.index, dtype="datetime64[ns]")  # fmt: skip
        return _naive(parsed), ~nulls & parsed.isna().to_numpy(dtype=bool)
    if kind == "bool":
        if actual == "bool":
            return series.to_numpy(dtype=object), none
        is_bool = series.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        return series.to_numpy(dtype=object), ~nulls & ~is_bool
    if kind in ("text", "category"):
        if actual in ("text", "category"):
            return series.to_numpy(dtype=object), none
        is_text = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        return series.to_numpy(dtype=object), ~nulls & ~is_text
    return series.to_numpy(dtype=object), none


def _nulls(series: pd.Series) -> np.ndarray:
    """Which values are null (numpy numbers without building a Series: a served batch is
    checked per request batch, where pandas' overhead is most of the cost)."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return np.zeros(len(series), dtype=bool)
    if isinstance(dtype, np.dtype) and dtype.kind in "fc":
        return np.isnan(series.to_numpy())
    return series.isna().to_numpy(dtype=bool, na_value=True)


def _parse_dates(series: pd.Series) -> pd.Series:
    """Text read as dates (UTC; a value that does not parse becomes NaT)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": parsed one by one
        try:
            return pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        except (TypeError, ValueError):
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")


def _naive(series: pd.Series) -> np.ndarray:
    """datetime64 values in UTC without a zone, so bounds compare whatever the zone."""
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.to_numpy(dtype="datetime64[ns]")


def _outside(values: Any, bound: Any, kind: str, compare: Any, usable: np.ndarray) -> np.ndarray:
    if kind == "datetime":
        moment = pd.Timestamp(bound)
        if moment.tzinfo is not None:
            moment = moment.tz_convert("UTC").tz_localize(None)
        limit: Any = np.datetime64(moment.to_datetime64(), "ns")
    else:
        limit = float(bound)
    out = np.zeros(len(values), dtype=bool)
    out[usable] = compare(values[usable], limit)
    return out


def _isin(values: Any, allowed: list[Any], kind: str) -> np.ndarray:
    if kind in ("integer", "number"):
        numbers = [float(v) for v in allowed if _is_number(v)]
        return np.isin(values, numbers)
    if kind in ("text", "category", "any"):
        texts = sorted({str(v) for v in allowed})
        if len(values) <= 1000:  # a few rows (a served batch): a set beats building a Series
            known = set(texts)
            found = np.fromiter((isinstance(v, str) and v in known for v in values), bool,
                                count=len(values))  # fmt: skip
        else:
            found = pd.Series(values, dtype=object).isin(texts).to_numpy(dtype=bool)
        if kind == "any":  # numbers or other objects among text: compare what they read as
            others = ~found & np.fromiter((not isinstance(v, str) for v in values), bool,
                                          count=len(values))  # fmt: skip
            known = set(texts)
            found[others] = [str(v) in known for v in values[others]]
        return found
    return pd.Series(values, dtype=object).isin(allowed).to_numpy(dtype=bool)


def _allowed_text(allowed: list[Any]) -> str:
    shown = ", ".join(_shown(v) for v in allowed[:5])
    return f"one of {shown}" + (f" (+{len(allowed) - 5} more)" if len(allowed) > 5 else "")


def _example_values(series: pd.Series, positions: np.ndarray) -> list[Any]:
    """The first few distinct failing values, in row order, as JSON-safe values."""
    seen: list[Any] = []
    keys: set[str] = set()
    for position in positions[: N_EXAMPLES * 20].tolist():
        value = _plain(series.iloc[position])
        key = repr(value)
        if key not in keys:
            keys.add(key)
            seen.append(value)
        if len(seen) == N_EXAMPLES:
            break
    return seen


# ---------------------------------------------------------------------- small helpers
def as_pandas(frame: Any) -> pd.DataFrame:
    """A pandas DataFrame from pandas or polars (a Series becomes one column)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(frame, pd.Series):
        return frame.to_frame(name="0" if frame.name is None else frame.name)
    if type(frame).__module__.startswith("polars") and hasattr(frame, "to_pandas"):
        return frame.to_pandas()
    raise ExpectationsError(f"expected a DataFrame, got {type(frame).__name__}")


def _plain(value: Any, cut: bool = True) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, times as ISO text, NaN/NaT/NA as
    None, infinities as text; long text cut to 60 characters when ``cut``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if not cut or len(value) <= 60 else value[:59] + "\u2026"
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp | datetime | date | np.datetime64):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value)
    return text[:60] if cut else text


def _plain_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_tree(v) for v in value]
    return _plain(value, cut=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:g}" if abs(value) < 1e6 else str(int(value))
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    return str(value)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _json_default(value: Any) -> Any:
    return _plain(value, cut=False)
