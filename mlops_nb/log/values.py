"""Typed parameter values, and the redaction of secret-looking ones before they reach disk."""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

SECRET_MARKERS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
REDACTED = "***"


def is_secret_name(name: str) -> bool:
    """Names like ``db_password`` or ``API_KEY`` hold values that must never be stored."""
    lowered = name.lower().replace("-", "_")
    return any(marker in lowered for marker in SECRET_MARKERS)


def encode_param(name: str, value: Any) -> list[Any]:
    """``[name, display text, type, numeric value or None, JSON]`` for the params table."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a param name must be a non-empty string, got {name!r}")
    if is_secret_name(name):
        return [name, REDACTED, "redacted", None, json.dumps(REDACTED)]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # numpy scalar -> Python
    if value is None:
        return [name, "None", "none", None, "null"]
    if isinstance(value, bool):
        return [name, str(value), "bool", float(value), json.dumps(value)]
    if isinstance(value, numbers.Integral):
        return [name, str(int(value)), "int", float(value), json.dumps(int(value))]
    if isinstance(value, numbers.Real):
        number = float(value)
        text = repr(number)
        encoded = json.dumps(number) if math.isfinite(number) else json.dumps(text)
        return [name, text, "float", number, encoded]
    if isinstance(value, str):
        return [name, value, "str", None, json.dumps(value)]
    if isinstance(value, (list, tuple, dict)):
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            return [name, repr(value), "object", None, json.dumps(repr(value))]
        kind = "dict" if isinstance(value, dict) else "list"
        return [name, encoded, kind, None, encoded]
    return [name, repr(value), "object", None, json.dumps(repr(value))]


def decode_param(value_type: str, value_json: str | None, display: str) -> Any:
    """The Python value a param was logged with (``***`` for redacted ones)."""
    if value_type in ("object", "redacted") or value_json is None:
        return display
    decoded = json.loads(value_json)
    if value_type == "float" and isinstance(decoded, str):
        return float(decoded)  # inf / nan were stored as text
    return decoded


def check_metric(key: str, value: Any) -> float:
    """Metrics are named numbers; say clearly what is wrong otherwise."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a metric name must be a non-empty string, got {key!r}")
    if not isinstance(value, numbers.Real):
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        else:
            raise TypeError(
                f"metric {key!r} must be a number, got {type(value).__name__} {value!r}"
            )
    return float(value)
