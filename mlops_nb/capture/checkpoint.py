"""Saving and loading the values a pipeline cell wrote, each in the format that suits it.

DataFrames as Parquet, numpy arrays as ``.npy``, scikit-learn estimators with skops, anything
else picklable with pickle. Modules, functions and classes are not saved: a resumed run gets
them back by re-running the import and ``def``/``class`` statements of the skipped cells.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

from mlops_nb.capture import estimators

_SKIPPED_NAMES = {"In", "Out", "get_ipython", "exit", "quit"}
_SIMPLE = (int, float, str, bool, bytes, type(None))


def is_checkpointable(name: str, value: Any) -> bool:
    """Worth saving: a user variable that is not a module, function, class or IPython's own."""
    if name.startswith("_") or name in _SKIPPED_NAMES:
        return False
    return not isinstance(
        value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
    )


def save_value(value: Any, folder: Path, name: str) -> tuple[str, Path] | None:
    """Write ``value`` under ``folder``; (format, path), or None when it cannot be saved."""
    folder.mkdir(parents=True, exist_ok=True)
    for fmt, writer in _writers_for(value):
        path = folder / f"{name}.{fmt}"
        try:
            writer(value, path)
        except Exception:  # noqa: BLE001 - try the next format, pickle last
            path.unlink(missing_ok=True)
            continue
        return fmt, path
    return None


def load_value(fmt: str, path: Path) -> Any:
    """Read back a value written by ``save_value``."""
    if fmt == "parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        return frame
    if fmt == "polars.parquet":
        import polars as pl

        return pl.read_parquet(path)
    if fmt == "npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if fmt == "skops":
        import skops.io

        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    with open(path, "rb") as handle:
        return pickle.load(handle)


def simple_value_key(value: Any) -> str | None:
    """A stable text for plain values (numbers, strings, tuples/lists of them), else None."""
    if isinstance(value, _SIMPLE):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, (list, tuple)) and len(value) <= 1000:
        parts = [simple_value_key(item) for item in value]
        if all(part is not None for part in parts):
            return f"{type(value).__name__}:[{','.join(parts)}]"  # type: ignore[arg-type]
    if isinstance(value, dict) and len(value) <= 1000:
        parts = [f"{k!r}={simple_value_key(v)}" for k, v in sorted(value.items(), key=repr)]
        if all(not part.endswith("=None") for part in parts):
            return "dict:{" + ",".join(parts) + "}"
    return None


def _writers_for(value: Any):
    module = type(value).__module__
    if module.startswith("pandas") and hasattr(value, "to_parquet"):
        yield "parquet", _write_pandas
    elif module.startswith("polars") and hasattr(value, "write_parquet"):
        yield "polars.parquet", lambda v, p: v.write_parquet(p)
    elif module == "numpy" and hasattr(value, "dtype") and value.dtype != object:
        yield "npy", _write_numpy
    elif estimators.is_estimator(value):
        yield "skops", _write_skops
    yield "pickle", _write_pickle


def _write_pandas(frame: Any, path: Path) -> None:
    """Parquet when it gives the frame back exactly (pickle is tried next otherwise)."""
    if not all(isinstance(column, str) for column in frame.columns):
        raise TypeError("parquet needs string column names")
    from pandas.api.types import is_object_dtype

    if any(is_object_dtype(dtype) for dtype in frame.dtypes):
        raise TypeError("object columns would come back with another dtype")
    frame.to_parquet(path)


def _write_numpy(array: Any, path: Path) -> None:
    import numpy as np

    with open(path, "wb") as handle:  # np.save would append .npy to a str path
        np.save(handle, array, allow_pickle=False)


def _write_skops(estimator: Any, path: Path) -> None:
    import skops.io

    skops.io.dump(estimator, path)


def _write_pickle(value: Any, path: Path) -> None:
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
