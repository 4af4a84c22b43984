"""A registered model's input signature, and the check of a request's data against it.

Taken from the data the model's first step was fitted on: each column's name, kind (number,
integer, bool, string, category, datetime), whether it may be null, and for categorical and
low-cardinality text columns the values seen in training. Checking a request follows MLflow's
rules where they are sound: a missing column is an error, extra columns are dropped, only safe
widening casts are made (int to float); beyond MLflow, an unseen category is an error naming the
column and the value, since a one-hot encoder would silently score it as "none of the above".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError

MAX_CATEGORIES = 50  # text columns with at most this many values in training are closed sets
_KINDS = ("number", "integer", "bool", "string", "category", "datetime", "object")


class SignatureError(MlopsError):
    """Request data that does not fit the model's signature (one line: column and value)."""


@dataclass
class ColumnSpec:
    name: str
    kind: str  # one of _KINDS
    dtype: str  # the training dtype, as pandas spells it
    nullable: bool = True
    categories: list[Any] | None = None  # None: any value of the kind

    @cached_property
    def allowed(self) -> frozenset[Any]:
        """The categories as a set, for checking many values at once."""
        return frozenset(self.categories or ())


@dataclass
class Signature:
    columns: list[ColumnSpec] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(column) for column in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Signature:
        return cls([ColumnSpec(**column) for column in (data or {}).get("columns", [])])

    def check(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The request's columns in training order and dtypes; SignatureError when one is
        missing, of the wrong type, null where training had none, or an unseen category."""
        _refuse_missing([name for name in self.names if name not in frame.columns])
        return pd.DataFrame(
            {spec.name: _checked_column(spec, frame[spec.name]) for spec in self.columns},
            index=frame.index,
        )

    def check_columns(self, columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
        """``check`` for a request's raw columns (lists of JSON values), building the frame
        once. Well-typed columns (the usual case) are converted straight to arrays, which
        costs microseconds where pandas' per-column checks cost half a millisecond; anything
        else (nulls, wrong types, unseen values) goes through ``check``'s rules unchanged."""
        _refuse_missing([name for name in self.names if name not in columns])
        checked = {}
        for spec in self.columns:
            values = columns[spec.name]
            fast = _well_typed_column(spec, values)
            checked[spec.name] = (
                fast if fast is not None else _checked_column(spec, pd.Series(values))
            )
        rows = len(next(iter(columns.values()))) if columns else 0
        return pd.DataFrame(checked, index=pd.RangeIndex(rows), copy=False)


def signature_from_frame(frame: pd.DataFrame) -> Signature:
    """Exact: from the training data itself."""
    columns = []
    for name in frame.columns:
        values = frame[name]
        kind = _kind_of(values.dtype)
        categories = None
        if kind == "category":
            categories = [_plain(v) for v in values.cat.categories]
        elif kind == "string":
            distinct = values.dropna().unique()
            if len(distinct) <= MAX_CATEGORIES:
                categories = sorted(str(v) for v in distinct)
        columns.append(ColumnSpec(str(name), kind, str(values.dtype),
                                  bool(values.isna().any()), categories))  # fmt: skip
    return Signature(columns)


def signature_from_record(schema: dict[str, str], stats: dict[str, Any]) -> Signature:
    """From a recorded dataset version (schema and stats) when the data itself is not at hand:
    categories are known where the stats kept value counts (at most 20 distinct values)."""
    columns = []
    for name, dtype in schema.items():
        column_stats = stats.get(name) or {}
        kind = _kind_of_name(dtype)
        categories = None
        if kind in ("category", "string") and isinstance(column_stats.get("counts"), dict):
            categories = sorted(column_stats["counts"])
        nullable = bool(column_stats.get("nulls", 1))
        columns.append(ColumnSpec(name, kind, dtype, nullable, categories))
    return Signature(columns)


# ---------------------------------------------------------------------- checking
def _refuse_missing(missing: list[str]) -> None:
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5
                                          else "")  # fmt: skip
        raise SignatureError(f"missing column{'s' if len(missing) > 1 else ''}: {shown}")


def _well_typed_column(spec: ColumnSpec, values: Sequence[Any]) -> Any:
    """The column as ``_checked_column`` would return it, when every value already has the
    plain type the column takes and no check can fail; None otherwise (then the general
    rules run and name the offending value)."""
    types = set(map(type, values))
    if spec.kind in ("number", "integer") and types <= {int, float}:
        try:
            numbers = np.array(values, dtype=np.float64 if float in types else np.int64)
        except OverflowError:
            return None
        if float in types:
            if np.isnan(numbers).any():
                return None
            if spec.kind == "integer" and (numbers != np.round(numbers)).any():
                return None
        try:
            return numbers.astype(spec.dtype)
        except (TypeError, ValueError):
            return None
    if spec.kind in ("string", "category") and types <= {str}:
        if spec.categories is not None and not spec.allowed.issuperset(values):
            return None
        if spec.kind == "category":
            return pd.Categorical(values, categories=spec.categories)
        if _text_dtype(spec) is object:
            return pd.Series(np.array(values, dtype=object), dtype=object, copy=False)
        return pd.array(values, dtype=_text_dtype(spec))
    if spec.kind == "bool" and types <= {bool}:
        return np.array(values, dtype=bool).astype(spec.dtype)
    return None


def _checked_column(spec: ColumnSpec, values: pd.Series) -> pd.Series:
    nulls = values.isna()
    if not spec.nullable and nulls.any():
        raise SignatureError(
            f"column {spec.name!r}: null in row {_first(nulls)}, training data had no nulls"
        )
    present = values[~nulls]
    if spec.kind in ("number", "integer"):
        return _numbers(spec, values, present)
    if spec.kind == "bool":
        if not present.map(lambda v: isinstance(v, bool | np.bool_)).all():
            bad = present[~present.map(lambda v: isinstance(v, bool | np.bool_))]
            raise SignatureError(f"column {spec.name!r}: {_show(bad.iloc[0])} is not a boolean")
        return values.astype(spec.dtype if not nulls.any() else "boolean")
    if spec.kind == "datetime":
        try:
            return pd.to_datetime(values).astype(spec.dtype)
        except (ValueError, TypeError) as error:
            raise SignatureError(f"column {spec.name!r}: not a date/time ({error})") from None
    if spec.kind in ("string", "category"):
        if spec.categories is not None:
            unseen = present[~present.isin(spec.categories)]
            if len(unseen):
                known = ", ".join(map(str, spec.categories[:8]))
                more = ", ..." if len(spec.categories) > 8 else ""
                raise SignatureError(
                    f"column {spec.name!r}: unseen category {_show(unseen.iloc[0])} "
                    f"(known: {known}{more})"
                )
        else:
            texts = present.map(lambda v: isinstance(v, str))
            if not bool(texts.all()):
                raise SignatureError(
                    f"column {spec.name!r}: {_show(present[~texts].iloc[0])} is not text"
                )
        if spec.kind == "category":
            return pd.Series(pd.Categorical(values, categories=spec.categories), index=values.index)
        dtype = _text_dtype(spec)
        return values if dtype is None else values.astype(dtype)
    return values


def _text_dtype(spec: ColumnSpec) -> Any:
    """Text reaches the model as Python strings in an object column, as scikit-learn takes
    it (it turns pandas' default ``str`` columns into that anyway, at a cost per request);
    an explicitly chosen ``string`` dtype is kept; None: as the request's values come."""
    if spec.dtype in ("str", "object"):
        return object
    return spec.dtype if spec.dtype == "string" else None


def _numbers(spec: ColumnSpec, values: pd.Series, present: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype) or not (
        pd.api.types.is_numeric_dtype(values.dtype) or len(present) == 0
    ):
        is_number = present.map(
            lambda v: (
                isinstance(v, int | float | np.integer | np.floating)
                and not isinstance(v, bool | np.bool_)
            )
        )
        if not bool(is_number.all()):
            raise SignatureError(
                f"column {spec.name!r}: {_show(present[~is_number].iloc[0])} is not a number"
            )
    numbers = pd.to_numeric(values, errors="coerce")
    if spec.kind == "integer":
        fractional = numbers.notna() & (numbers != numbers.round())
        if fractional.any():
            raise SignatureError(
                f"column {spec.name!r}: {_show(values[fractional].iloc[0])} is not an integer"
            )
        if numbers.isna().any():
            return numbers.astype("Float64").astype("float64")
        _refuse_out_of_range(spec, values, numbers)
    try:
        return numbers.astype(spec.dtype)
    except (TypeError, ValueError):
        return numbers


def _refuse_out_of_range(spec: ColumnSpec, values: pd.Series, numbers: pd.Series) -> None:
    """An integer the training dtype cannot hold would wrap around silently when cast."""
    try:
        limits = np.iinfo(np.dtype(spec.dtype))
    except (TypeError, ValueError):  # a pandas nullable dtype: pandas itself refuses
        return
    outside = (numbers < limits.min) | (numbers > limits.max)
    if outside.any():
        raise SignatureError(
            f"column {spec.name!r}: {_show(values[outside].iloc[0])} is out of range for "
            f"{spec.dtype}"
        )


def _kind_of(dtype: Any) -> str:
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
    if pd.api.types.is_string_dtype(dtype):
        return "string"
    return "object"


def _kind_of_name(dtype: str) -> str:
    lowered = dtype.lower()
    if lowered == "category":
        return "category"
    if lowered.startswith("bool"):
        return "bool"
    if lowered.startswith(("int", "uint")):
        return "integer"
    if lowered.startswith(("float", "double")):
        return "number"
    if lowered.startswith("datetime"):
        return "datetime"
    if lowered in ("str", "string", "object") or lowered.startswith("string"):
        return "string"
    return "object"


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _show(value: Any) -> str:
    text = repr(_plain(value))
    return text if len(text) <= 40 else text[:37] + "..."


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
