"""The two wire protocols, parsed into one shape and answered from one shape.

A request body becomes a ``Table``: column name -> list of raw values, plus the row count, with
no pandas on the way (a one-row request must cost microseconds here; the batcher builds one
DataFrame for many requests). Anything malformed raises ``BadRequest`` with the HTTP status,
the MLflow error code and one line naming what was wrong. No web framework is imported here.

MLflow scoring protocol (``POST /invocations``): JSON with exactly one of ``dataframe_split``,
``dataframe_records``, ``instances``, ``inputs`` (plus optional ``params``), or ``text/csv``.
Open Inference Protocol v2 (``POST /v2/models/{name}/infer``): ``inputs`` is a list of tensors,
one per column (``name``, ``shape``, ``datatype``, ``data``), or one 2-D tensor whose columns are
the model's columns in signature order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)


class BadRequest(Exception):
    """A request the server refuses: status, MLflow error code, one-line message."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Table:
    """Raw request data, column by column (values as the client sent them)."""

    columns: dict[str, list[Any]]
    n_rows: int
    rows: list[list[Any]] | None = None  # the request's own rows, when it sent rows

    def as_split(self) -> dict[str, Any]:
        """The MLflow ``dataframe_split`` form: what the request log stores, and what can be
        sent to ``/invocations`` again to replay a request."""
        names = list(self.columns)
        if self.rows is not None:
            return {"columns": names, "data": self.rows}
        return {
            "columns": names,
            "data": [list(row) for row in zip(*self.columns.values(), strict=False)],
        }


# ---------------------------------------------------------------------- MLflow
def parse_mlflow(body: bytes, content_type: str, column_order: Sequence[str]) -> Table:
    """An ``/invocations`` body as a Table; ``column_order`` names list-shaped rows."""
    media = media_type(content_type)
    if media in CSV_TYPES:
        return parse_csv(body)
    if media not in JSON_TYPES:
        raise BadRequest(
            f"content type {content_type or '(none)'!r} is not supported: send application/json "
            "or text/csv",
            status=415,
            code="BAD_REQUEST",
        )
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise BadRequest(
            "the JSON body must be an object with one of: " + ", ".join(MLFLOW_KEYS),
            code="INVALID_PARAMETER_VALUE",
        )
    given = [key for key in MLFLOW_KEYS if key in payload]
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        raise BadRequest(
            f"the JSON body must have exactly one of {', '.join(MLFLOW_KEYS)} (it has {what})",
            code="INVALID_PARAMETER_VALUE",
        )
    key = given[0]
    data = payload[key]
    if key == "dataframe_split":
        return _from_split(data)
    if key == "dataframe_records":
        return _from_records(data, key)
    return _from_tensor_like(data, key, column_order)


def parse_csv(body: bytes) -> Table:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as error:  # noqa: BLE001 - pandas raises many types for bad CSV
        raise BadRequest(f"the CSV body could not be read: {_line(error)}",
                         code="MALFORMED_REQUEST") from None  # fmt: skip
    columns = {str(name): frame[name].astype(object).where(frame[name].notna(), None).tolist()
               for name in frame.columns}  # fmt: skip
    return Table(columns, len(frame))


def _from_split(data: Any) -> Table:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise BadRequest('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    names = data.get("columns")
    rows = data["data"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("dataframe_split.columns must be a list of column names")
    width = len(names)
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            size = len(row) if isinstance(row, list) else type(row).__name__
            raise BadRequest(
                f"dataframe_split.data row {number} has {size} values for {width} columns"
            )
    if not rows:
        raise BadRequest("dataframe_split.data has no rows")
    values = list(zip(*rows, strict=False)) if rows else [() for _ in names]
    return Table(
        {name: list(column) for name, column in zip(names, values, strict=False)},
        len(rows),
        rows,
    )


def _from_records(data: Any, key: str) -> Table:
    if not isinstance(data, list) or not data:
        raise BadRequest(f"{key} must be a non-empty list of objects (one per row)")
    names: dict[str, None] = {}
    for number, row in enumerate(data):
        if not isinstance(row, dict):
            raise BadRequest(f"{key} row {number} is {type(row).__name__}, not an object")
        names.update(dict.fromkeys(row))
    columns = {name: [row.get(name) for row in data] for name in names}
    return Table(columns, len(data))


def _from_tensor_like(data: Any, key: str, column_order: Sequence[str]) -> Table:
    """``instances`` / ``inputs``: records, a dict of columns, or rows of values."""
    if isinstance(data, dict):
        return _from_column_dict(data, key)
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return _from_records(data, key)
    if isinstance(data, list) and data and all(isinstance(row, list) for row in data):
        width = len(column_order)
        for number, row in enumerate(data):
            if len(row) != width:
                raise BadRequest(f"{key} row {number} has {len(row)} values; the model takes "
                                 f"{width} columns ({', '.join(column_order)})")  # fmt: skip
        return Table(
            {n: list(c) for n, c in zip(column_order, zip(*data, strict=False), strict=False)},
            len(data),
            data,
        )
    raise BadRequest(f"{key} must be a list of objects, a list of rows, or an object of columns")


def _from_column_dict(data: dict[str, Any], key: str) -> Table:
    columns: dict[str, list[Any]] = {}
    length = None
    for name, values in data.items():
        values = values if isinstance(values, list) else [values]
        if length is not None and len(values) != length:
            raise BadRequest(f"{key}: column {name!r} has {len(values)} values, others {length}")
        length = len(values)
        columns[str(name)] = values
    if not length:
        raise BadRequest(f"{key} has no values")
    return Table(columns, length)


# ---------------------------------------------------------------------- Open Inference v2
def parse_v2(body: bytes, content_type: str, column_order: Sequence[str]) -> tuple[Table, Any]:
    """A v2 ``infer`` body as a Table, and the request's own ``id`` (or None)."""
    media = media_type(content_type)
    if media and media not in JSON_TYPES:
        raise BadRequest(f"content type {content_type!r} is not supported: send application/json",
                         status=415)  # fmt: skip
    payload = parse_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise BadRequest('the body must be {"inputs": [{"name", "shape", "datatype", "data"}]}')
    inputs = payload["inputs"]
    if not inputs:
        raise BadRequest("inputs is empty")
    for number, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or "name" not in tensor or "data" not in tensor:
            raise BadRequest(f"inputs[{number}] must have name, shape, datatype and data")
    request_id = payload.get("id")
    known = set(column_order)
    if len(inputs) == 1 and inputs[0]["name"] not in known:
        return _from_matrix(inputs[0], column_order), request_id
    columns: dict[str, list[Any]] = {}
    length = None
    for tensor in inputs:
        name = str(tensor["name"])
        values = _flat(tensor["data"], name)
        shape = tensor.get("shape")
        if (
            isinstance(shape, list)
            and shape
            and isinstance(shape[0], int)
            and shape[0] != len(values)
        ):
            raise BadRequest(f"input {name!r}: shape {shape} but {len(values)} values")
        if length is not None and len(values) != length:
            raise BadRequest(f"input {name!r} has {len(values)} values, others {length}")
        length = len(values)
        columns[name] = values
    if not length:
        raise BadRequest("the inputs hold no values")
    return Table(columns, length), request_id


def _from_matrix(tensor: dict[str, Any], column_order: Sequence[str]) -> Table:
    shape = tensor.get("shape")
    width = len(column_order)
    if not (isinstance(shape, list) and len(shape) == 2 and shape[1] == width):
        raise BadRequest(
            f"input {tensor['name']!r} is not a column of the model ({', '.join(column_order)}); "
            f"send one input per column, or one input of shape [rows, {width}]"
        )
    data = tensor["data"]
    rows = data if data and isinstance(data[0], list) else [
        data[i : i + width] for i in range(0, len(data), width)]  # fmt: skip
    if any(len(row) != width for row in rows) or len(rows) != shape[0]:
        raise BadRequest(f"input {tensor['name']!r}: data does not match shape {shape}")
    return Table(
        {n: list(c) for n, c in zip(column_order, zip(*rows, strict=False), strict=False)},
        len(rows),
    )


def _flat(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: data must be a list")
    if data and isinstance(data[0], list):
        if any(not isinstance(row, list) or len(row) != 1 for row in data):
            raise BadRequest(f"input {name!r}: one value per row expected (shape [rows] or "
                             "[rows, 1])")  # fmt: skip
        return [row[0] for row in data]
    return data


def v2_datatype(values: Any) -> str:
    """The v2 datatype of a numpy array of predictions."""
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind, "BYTES")


# ---------------------------------------------------------------------- shared
def parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("the request body is empty", code="MALFORMED_REQUEST")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the body is not valid JSON: {_line(error)}",
                         code="MALFORMED_REQUEST") from None  # fmt: skip


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def mlflow_error(error: BadRequest) -> bytes:
    return orjson.dumps({"error_code": error.code, "message": str(error)})


def v2_error(error: BadRequest) -> bytes:
    return orjson.dumps({"error": str(error)})


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
