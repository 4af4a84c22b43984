"""Structured run filters and sorts: ``field op value`` conditions that log/ turns into SQL
with bound parameters.

Code outside log/ (the sidebar's server, the widgets, the docs builder) describes which runs it
wants with these objects instead of writing SQL text, so no id or name it was handed can ever
change the meaning of a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_nb.errors import QueryError
from mlops_nb.log.sqltext import identifier

FILTER_OPS = ("=", "!=", "<", "<=", ">", ">=", "contains")
# Columns of the runs table a condition or a sort may name (as the runs view spells them).
RUN_FIELDS = (
    "run_id", "experiment", "name", "status", "start_time", "end_time", "duration_s", "user",
    "host", "pid", "source", "notebook_path", "git_commit", "git_dirty", "parent_run_id", "error",
)  # fmt: skip
STAGE_TAG = "mlops.stage"
_VALUE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Condition:
    """``field op value``: field is a run column, ``params.<name>``, ``metrics.<key>``,
    ``tags.<key>`` or ``stage`` (the stage a running pipeline is in); value None means NULL."""

    field: str
    op: str = "="
    value: Any = None

    @classmethod
    def from_json(cls, data: Any) -> Condition:
        """A condition from ``{"field": ..., "op": ..., "value": ...}`` (checked)."""
        if not isinstance(data, Mapping) or set(data) - {"field", "op", "value"}:
            raise QueryError('each filter is {"field": ..., "op": ..., "value": ...}')
        return cls(data.get("field"), data.get("op", "="), data.get("value"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Sort:
    """Order runs by one field (the same names as ``Condition``); missing values last."""

    field: str
    descending: bool = True


def conditions_from_json(data: Any) -> list[Condition]:
    """A JSON list of condition objects (as the sidebar sends them)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise QueryError("filter must be a JSON list of conditions")
    return [Condition.from_json(item) for item in data]


class Compiler:
    """Turns conditions and sorts into SQL over the store's run relation ``v`` (a file log's
    ``store.run_values``, a team log's pivot of its long tables) and tags ``t``."""

    def __init__(self, columns: Mapping[str, str]):
        self.columns = columns  # the params./metrics. columns that exist
        self.args: dict[str, Any] = {}
        self.needs_tags = False

    def where(self, conditions: Iterable[Condition]) -> str | None:
        parts = [self._condition(condition) for condition in conditions]
        return " AND ".join(f"({part})" for part in parts) or None

    def order(self, sort: Sort) -> str:
        return f"{self.column(sort.field)} {'DESC' if sort.descending else 'ASC'} NULLS LAST"

    def column(self, field: Any) -> str:
        """The SQL spelling of a field, after checking its name."""
        if not isinstance(field, str):
            raise QueryError(f"field must be a string, got {field!r}")
        if field == "stage":
            field = f"tags.{STAGE_TAG}"
        kind, _, name = field.partition(".")
        if kind == "tags" and name:
            self.needs_tags = True
            return f"t.tags[{self._bind(name)}]"
        if kind in ("params", "metrics") and name:
            if not _VALUE_NAME.fullmatch(name):
                raise QueryError(f"bad {kind[:-1]} name {name!r}: letters, digits, _ . - only")
            if field not in self.columns:
                known = sorted(c.split(".", 1)[1] for c in self.columns if c.startswith(kind))
                raise QueryError(
                    f"unknown {kind[:-1]} {name!r}; {kind} logged: {', '.join(known) or 'none yet'}"
                )
            return f"v.{identifier(field)}"
        if field in RUN_FIELDS:
            return f"v.{identifier(field)}"
        raise QueryError(
            f"unknown field {field!r}: use params.<name>, metrics.<name>, tags.<key>, stage or "
            f"one of {', '.join(RUN_FIELDS)}"
        )

    def _condition(self, condition: Condition) -> str:
        column = self.column(condition.field)
        op, value = condition.op, condition.value
        if op not in FILTER_OPS:
            raise QueryError(f"unknown filter op {op!r}: use one of {' '.join(FILTER_OPS)}")
        if value is None:
            if op not in ("=", "!="):
                raise QueryError(f"null can only be compared with = or !=, not {op}")
            return f"{column} IS {'NOT ' if op == '!=' else ''}NULL"
        if op == "contains":
            return f"contains(lower(CAST({column} AS VARCHAR)), lower({self._bind(str(value))}))"
        return f"{column} {op} {self._bind(_checked(value))}"

    def _bind(self, value: Any) -> str:
        name = f"f{len(self.args)}"
        self.args[name] = value
        return f"${name}"


def _checked(value: Any) -> Any:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QueryError(f"filter value must be a finite number, got {value!r}")
        return value
    raise QueryError(f"filter value must be a string, number, boolean or null, got {value!r}")
