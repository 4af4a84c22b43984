"""What the log keeps of a reference dataset so drift can be computed without it.

``profile_frame(df)`` returns plain JSON-able data. A small frame (at most ``sample_limit``
rows) keeps each column's values themselves, so every drift test on it is exact. A larger one
keeps, per numerical column, min/max/mean/std and its distribution function at ~1,250 knots
(plus the exact value counts when it has at most 1,000 distinct values), and per categorical
column the exact category counts: enough to compute the Wasserstein distance, Jensen-Shannon
and PSI on Sturges bins, and KS (see docs/drift.md for how close).

Columns named in ``private`` (personal data) keep no values: no sample, no min/max, no
quantiles, no category names. A private categorical column keeps its counts keyed by a salted
hash of each value, which is all the categorical tests need; a private numerical or text
column keeps only counts and is not tested for drift.

Column types follow Evidently 0.7's inference (``column_type``) so that the test chosen per
column is the one Evidently would choose.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

PROFILE_FORMAT = "mlops_nb.profile/1"
QUANTILE_POINTS = 1001  # knots at the values of every 0.1% of the rows...
EVEN_STEPS = 256  # ...and at 256 equal steps from min to max
EXACT_COUNTS_LIMIT = 1000  # numerical columns with at most this many values keep exact counts
INTEGER_CARDINALITY_LIMIT = 10  # Evidently: integers with at most 10 values are categorical

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
TEXT = "text"
DATETIME = "datetime"
UNKNOWN = "unknown"


def profile_frame(
    frame: pd.DataFrame, *, private: Iterable[str] = (), sample_limit: int = 5000
) -> dict:
    """A JSON-able profile of ``frame`` from which drift against it can be computed later."""
    private = {str(name) for name in private}
    unknown = private - {str(c) for c in frame.columns}
    if unknown:
        raise ValueError(f"private columns not in the frame: {', '.join(sorted(unknown))}")
    exact = len(frame) <= sample_limit
    salt = secrets.token_hex(8)
    columns = {}
    for name in frame.columns:
        is_private = str(name) in private
        columns[str(name)] = _profile_column(frame[name], exact, is_private, salt)
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "n_rows": int(len(frame)),
        "exact": exact,
        "sample_limit": int(sample_limit),
        "columns": columns,
    }
    if private:
        profile["salt"] = salt
    return profile


def profile_series(
    series: pd.Series, *, name: str | None = None, private: bool = False, sample_limit: int = 5000
) -> dict:
    """The profile of one column (e.g. a model's predictions), as a one-column frame."""
    column = str(name if name is not None else (series.name if series.name is not None else "0"))
    frame = pd.DataFrame({column: series.to_numpy()})
    return profile_frame(frame, private=[column] if private else (), sample_limit=sample_limit)


def column_type(series: pd.Series) -> str:
    """Evidently 0.7's column type: numerical, categorical, text, datetime or unknown."""
    dtype = series.dtype.name
    if dtype.startswith(("float", "Float")):
        return NUMERICAL
    if dtype.startswith(("int", "uint", "Int", "UInt")):
        if series.nunique() <= INTEGER_CARDINALITY_LIMIT:
            return CATEGORICAL
        return NUMERICAL
    if dtype in ("string", "str") or dtype.startswith("string"):
        return _text_or_categorical(series)
    if dtype == "object":
        present = series.dropna()
        if len(present) == 0:
            return UNKNOWN
        if isinstance(present.iloc[0], str) and isinstance(present.iloc[-1], str):
            return _text_or_categorical(series)
        return UNKNOWN
    if dtype in ("bool", "boolean", "category"):
        return CATEGORICAL
    if dtype.startswith("datetime"):
        return DATETIME
    return UNKNOWN


def numeric_values(series: pd.Series) -> np.ndarray:
    """The finite values of a numerical column as float64 (NaN and inf dropped, as Evidently)."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def category_counts(series: pd.Series) -> pd.Series:
    """Counts of each non-null value, index = the values as JSON-able Python objects."""
    counts = series.value_counts(dropna=True, sort=False)
    counts.index = pd.Index([to_json_value(v) for v in counts.index], dtype="object")
    return counts.astype("int64")


def hash_value(value: Any, salt: str) -> str:
    """A salted hash that stands for a private category: the same value, the same key."""
    return hashlib.sha256(f"{salt}:{_canonical(value)}".encode()).hexdigest()[:16]


def to_json_value(value: Any) -> Any:
    """A numpy/pandas scalar as the plain Python value JSON can hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _canonical(value: Any) -> str:
    """One spelling per value across dtypes: 1, 1.0 and numpy 1 hash the same."""
    value = to_json_value(value)
    if isinstance(value, bool):
        return f"b:{value}"
    if isinstance(value, (int, float)):
        if float(value).is_integer():
            return f"n:{int(value)}"
        return f"n:{float(value)!r}"
    return f"s:{value}"


def _text_or_categorical(series: pd.Series) -> str:
    return TEXT if series.nunique() > series.count() * 0.5 else CATEGORICAL


def _profile_column(series: pd.Series, exact: bool, private: bool, salt: str) -> dict:
    kind = column_type(series)
    entry: dict[str, Any] = {"type": kind, "dtype": series.dtype.name}
    if private:
        entry["private"] = True
    if kind == NUMERICAL:
        values = numeric_values(series)
        entry.update(n=int(values.size), n_unique=int(np.unique(values).size))
        if private:
            return entry
        if exact:
            entry["values"] = _numbers_as_json(values, series)
            return entry
        entry.update(_numeric_summary(values))
        if entry["n_unique"] <= EXACT_COUNTS_LIMIT:
            uniques, counts = np.unique(values, return_counts=True)
            entry["counts"] = [
                [v, int(c)] for v, c in zip(uniques.tolist(), counts.tolist(), strict=True)
            ]
        return entry
    if kind in (CATEGORICAL, TEXT, UNKNOWN):
        present = series.dropna()
        entry.update(n=int(present.size), n_unique=int(present.nunique()))
        if kind != CATEGORICAL:
            if not private and exact and kind == TEXT:
                entry["values"] = [to_json_value(v) for v in present.tolist()]
            return entry
        counts = category_counts(series)
        if private:
            hashed: dict[str, int] = {}
            for value, count in counts.items():
                key = hash_value(value, salt)
                hashed[key] = hashed.get(key, 0) + int(count)
            entry["hashed_counts"] = [[k, c] for k, c in hashed.items()]
        elif exact:
            entry["values"] = [to_json_value(v) for v in present.tolist()]
        else:
            entry["counts"] = [[v, int(c)] for v, c in counts.items()]
        return entry
    present = series.dropna()
    entry.update(n=int(present.size), n_unique=int(present.nunique()))
    return entry


def _numbers_as_json(values: np.ndarray, series: pd.Series) -> list:
    if series.dtype.kind in "iu":
        return values.astype("int64").tolist()
    return values.tolist()


def _numeric_summary(values: np.ndarray) -> dict:
    """The distribution function at ~1,250 knots, exactly: the values at every 0.1% of the
    rows (dense where the data is) and 256 equal steps from min to max (the tails), each
    with how many values lie below it and on it. Between knots drift reads the rest of the
    mass as spread evenly, so a value shared by many rows (a spike at 0) stays exact."""
    if values.size == 0:
        return {}
    ordered = np.sort(values)
    ranks = np.floor(np.linspace(0.0, 1.0, QUANTILE_POINTS) * (ordered.size - 1)).astype("int64")
    steps = np.linspace(ordered[0], ordered[-1], EVEN_STEPS + 1)
    knots = np.unique(np.concatenate([ordered[ranks], steps, ordered[[0, -1]]]))
    below = np.searchsorted(ordered, knots, side="left")
    at = np.searchsorted(ordered, knots, side="right") - below
    return {
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "knots": knots.tolist(),
        "below": below.tolist(),
        "at": at.tolist(),
    }
