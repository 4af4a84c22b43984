"""What a cell that combined recorded datasets did: a join (merge) or a concatenation.

Judged from the frames alone, as the tracker sees them: the cell read two or more DataFrames
and wrote one whose columns come from several of them. A join's keys are the columns its two
sides share that the result kept under the same name (pandas' default ``on``); its counts are
computed again with pandas on the key columns only: rows of each side that found a partner
(a left merge against the other side's distinct keys, so a duplicated key never multiplies
rows), rows repeating a key already seen on the same side, rows with a null key (pandas
matches null keys with each other, which is rarely what was meant), and shared columns whose
dtypes disagree. A concatenation (the result has as many rows as its sources together) reports
rows per source, columns only some sources had (nulls in the others' rows) and dtype
disagreements. Index joins (``a.join(b)``) and frames sharing no column are not described.

Cost: a few hash passes over the key columns. Sides above ``MAX_ROWS`` rows are not analysed
(``skipped`` says so): the tracker must stay cheap on big frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

MAX_ROWS = 1_000_000  # per side; larger joins are named but not counted
_SUFFIXES = ("_x", "_y")  # pandas' default suffixes for shared columns that are not keys


@dataclass
class Combination:
    """One join of two sources, or one concatenation of several, that made ``result``."""

    kind: str  # "join" or "concat"
    result: str
    sources: list[str]
    result_rows: int
    rows: dict[str, int]
    keys: list[str] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)  # rows whose key found a partner
    duplicated_keys: dict[str, int] = field(default_factory=dict)  # rows repeating a key
    null_keys: dict[str, int] = field(default_factory=dict)
    dtype_conflicts: dict[str, dict[str, str]] = field(default_factory=dict)  # col -> src -> dtype
    only_in: dict[str, list[str]] = field(default_factory=dict)  # concat: column -> its sources
    skipped: str | None = None

    def unmatched(self, source: str) -> int:
        return self.rows[source] - self.matched.get(source, 0)

    def phrase(self) -> str:
        """One line for the cell summary and the log's notes."""
        if self.kind == "concat":
            counts = " + ".join(f"{self.rows[s]:,}" for s in self.sources)
            text = (f"concat {' + '.join(self.sources)} -> {self.result} "
                    f"{self.result_rows:,} rows ({counts})")  # fmt: skip
            parts = []
            if self.only_in:
                listed = list(self.only_in.items())[:5]
                shown = ", ".join(f"{c} ({', '.join(s)})" for c, s in listed)
                parts.append(f"columns only in some sources: {shown}")
        else:
            left, right = self.sources
            text = (f"join {left} + {right} on {', '.join(self.keys)} -> {self.result} "
                    f"{self.result_rows:,} rows")  # fmt: skip
            parts = [self.skipped] if self.skipped else [
                f"{s}: {self.matched[s]:,} of {self.rows[s]:,} rows matched"
                + (f" ({self.unmatched(s):,} unmatched)" if self.unmatched(s) else "")
                for s in self.sources
            ]  # fmt: skip
            for what, counts in (("duplicated keys", self.duplicated_keys),
                                 ("null keys", self.null_keys)):  # fmt: skip
                found = [f"{n:,} in {s}" for s, n in counts.items() if n]
                if found:
                    parts.append(f"{what}: {', '.join(found)}")
        if self.dtype_conflicts:
            shown = "; ".join(
                f"{column} ({', '.join(f'{t} in {s}' for s, t in types.items())})"
                for column, types in list(self.dtype_conflicts.items())[:5]
            )
            parts.append(f"dtypes differ: {shown}")
        return text + (": " + "; ".join(parts) if parts else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "result": self.result, "sources": self.sources,
            "result_rows": self.result_rows, "rows": self.rows, "keys": self.keys,
            "matched": self.matched, "duplicated_keys": self.duplicated_keys,
            "null_keys": self.null_keys, "dtype_conflicts": self.dtype_conflicts,
            "only_in": self.only_in, "skipped": self.skipped,
        }  # fmt: skip


def describe_combination(
    sources: dict[str, Any], result_name: str, result: Any
) -> list[Combination]:
    """How ``result`` was made from ``sources`` (name -> DataFrame, in the order the code
    names them), if it is a concatenation or a chain of joins of them; else an empty list."""
    if not isinstance(result, pd.DataFrame):
        return []
    frames = {
        name: frame
        for name, frame in sources.items()
        if isinstance(frame, pd.DataFrame) and frame is not result
        and _contributes(frame, result)
    }  # fmt: skip
    if len(frames) < 2:
        return []
    concat = _concatenation(frames, result_name, result)
    if concat is not None:
        return [concat]
    return _joins(frames, result_name, result)


def _contributes(frame: pd.DataFrame, result: pd.DataFrame) -> bool:
    columns = set(map(str, result.columns))
    return any(
        str(c) in columns or any(f"{c}{s}" in columns for s in _SUFFIXES) for c in frame.columns
    )


def _concatenation(
    frames: dict[str, pd.DataFrame], result_name: str, result: pd.DataFrame
) -> Combination | None:
    result_columns = set(map(str, result.columns))
    rows = {name: len(frame) for name, frame in frames.items()}
    if len(result) != sum(rows.values()):
        return None
    columns = {name: set(map(str, frame.columns)) for name, frame in frames.items()}
    if not result_columns <= set().union(*columns.values()):
        return None
    if any(len(cols & result_columns) * 2 < len(cols) for cols in columns.values()):
        return None
    only_in = {
        column: [name for name in frames if column in columns[name]]
        for column in map(str, result.columns)
        if not all(column in cols for cols in columns.values())
    }
    return Combination(
        "concat", result_name, list(frames), len(result), rows, only_in=only_in,
        dtype_conflicts=_dtype_conflicts(frames, result_columns),
    )  # fmt: skip


def _joins(
    frames: dict[str, pd.DataFrame], result_name: str, result: pd.DataFrame
) -> list[Combination]:
    """Each source after the first joined to the earlier source that holds its keys."""
    result_columns = set(map(str, result.columns))
    names = list(frames)
    found = []
    for position, right in enumerate(names[1:], start=1):
        right_columns = set(map(str, frames[right].columns))
        for left in names[:position]:
            left_columns = set(map(str, frames[left].columns))
            keys = [
                str(c) for c in frames[left].columns
                if str(c) in right_columns and str(c) in result_columns
            ]  # fmt: skip
            if keys and _both_sides_kept(left_columns, right_columns, result_columns):
                found.append(_join(frames[left], frames[right], left, right, keys,
                                   result_name, len(result)))  # fmt: skip
                break
    return found


def _both_sides_kept(left: set[str], right: set[str], result: set[str]) -> bool:
    """The result holds a column only the left side had and one only the right side had."""

    def kept(own: set[str], other: set[str]) -> bool:
        return any(c in result and c not in other for c in own) or any(
            f"{c}{s}" in result for c in own & other for s in _SUFFIXES
        )

    return kept(left, right) and kept(right, left)


def _join(
    left: pd.DataFrame,
    right: pd.DataFrame,
    left_name: str,
    right_name: str,
    keys: list[str],
    result_name: str,
    result_rows: int,
) -> Combination:
    rows = {left_name: len(left), right_name: len(right)}
    combination = Combination(
        "join", result_name, [left_name, right_name], result_rows, rows, keys=keys,
        dtype_conflicts=_dtype_conflicts({left_name: left, right_name: right}),
    )  # fmt: skip
    if max(len(left), len(right)) > MAX_ROWS:
        combination.skipped = f"not counted: more than {MAX_ROWS:,} rows on a side"
        return combination
    left_keys, right_keys = _key_frame(left, keys), _key_frame(right, keys)
    for name, own, other in ((left_name, left_keys, right_keys),
                             (right_name, right_keys, left_keys)):  # fmt: skip
        combination.null_keys[name] = int(own.isna().any(axis=1).sum())
        combination.duplicated_keys[name] = int(own.duplicated().sum())
        try:
            paired = own.merge(other.drop_duplicates(), on=keys, how="left", indicator=True)
        except (ValueError, TypeError):  # keys of types pandas will not compare (int vs str)
            combination.skipped = "not counted: the key columns' types cannot be compared"
            return combination
        combination.matched[name] = int((paired["_merge"] == "both").sum())
    return combination


def _key_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    by_name = {str(c): c for c in frame.columns}
    picked = frame[[by_name[k] for k in keys]]
    picked.columns = keys
    return picked.reset_index(drop=True)


def _dtype_conflicts(
    frames: dict[str, pd.DataFrame], within: set[str] | None = None
) -> dict[str, dict[str, str]]:
    """Columns several sources have, with dtypes that differ between them."""
    types: dict[str, dict[str, str]] = {}
    for name, frame in frames.items():
        for column, dtype in zip(frame.columns, frame.dtypes, strict=True):
            if within is None or str(column) in within:
                types.setdefault(str(column), {})[name] = str(dtype)
    return {c: t for c, t in types.items() if len(t) > 1 and len(set(t.values())) > 1}
