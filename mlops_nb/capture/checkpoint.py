"""Saving and loading the values a pipeline cell wrote, each in the format that suits it.

DataFrames as Parquet, numpy arrays as ``.npy``, scikit-learn estimators with skops, anything
else picklable with pickle. Modules, functions and classes are not saved: a resumed run gets
them back by re-running the import and ``def``/``class`` statements of the skipped cells.

A value holding personal data is saved encrypted when the caller passes a ``key``
(``pii.encryption_key``): the same bytes, AES-256-GCM encrypted in memory before they reach
the disk, in a file whose format says so (``parquet.enc``). ``load_value`` decrypts them with
the key of the log the file is stored under; without it, one line says what is missing.
``load_saved`` reads a checkpoint row of a log, a team log's from any machine.
``PII_CHECKPOINTS_ENV`` chooses between encrypting such values and not saving them at all.
"""

from __future__ import annotations

import io
import os
import pickle
import types
from pathlib import Path
from typing import Any, BinaryIO

from mlops_nb.capture import estimators, pii
from mlops_nb.errors import MlopsError

_SKIPPED_NAMES = {"In", "Out", "get_ipython", "exit", "quit"}
_SIMPLE = (int, float, str, bool, bytes, type(None))
ENCRYPTED = ".enc"  # the suffix of the format (and file) of an encrypted checkpoint
PII_CHECKPOINTS_ENV = "MLOPS_NB_PII_CHECKPOINTS"  # encrypt (default) or skip


def pii_checkpoints() -> str:
    """What to do with a value that holds personal data: ``encrypt`` it or ``skip`` it."""
    setting = os.environ.get(PII_CHECKPOINTS_ENV, "encrypt").strip().lower() or "encrypt"
    if setting not in ("encrypt", "skip"):
        raise MlopsError(f"{PII_CHECKPOINTS_ENV} must be encrypt or skip, not {setting!r}")
    return setting


def is_checkpointable(name: str, value: Any) -> bool:
    """Worth saving: a user variable that is not a module, function, class or IPython's own."""
    if name.startswith("_") or name in _SKIPPED_NAMES:
        return False
    return not isinstance(
        value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
    )


def save_value(
    value: Any, folder: Path, name: str, key: bytes | None = None
) -> tuple[str, Path] | None:
    """Write ``value`` under ``folder``, encrypted with ``key`` when given; (format, path), or
    None when it cannot be saved."""
    folder.mkdir(parents=True, exist_ok=True)
    for fmt, writer in _writers_for(value):
        if key is not None:
            buffer = io.BytesIO()
            try:
                writer(value, buffer)
            except Exception:  # noqa: BLE001 - try the next format, pickle last
                continue
            path = folder / f"{name}.{fmt}{ENCRYPTED}"
            path.write_bytes(pii.encrypt(buffer.getvalue(), key))
            return fmt + ENCRYPTED, path
        path = folder / f"{name}.{fmt}"
        try:
            writer(value, path)
        except Exception:  # noqa: BLE001 - try the next format, pickle last
            path.unlink(missing_ok=True)
            continue
        return fmt, path
    return None


def load_saved(log: Any, name: str, fmt: str, stored_path: str) -> Any:
    """The value a run of ``log`` (a ``Log``) saved as a checkpoint row (name, format, path):
    its file from ``log.artifact_file`` (a team log fetches another machine's from its
    storage), decrypted with the log's key (a team log's is the team's ``MLOPS_NB_KEY``)."""
    path = log.artifact_file(stored_path)
    return load_value(fmt, path, team=log.is_team, name=f"{name}.{fmt}")


def load_value(fmt: str, path: Path, *, team: bool = False, name: str | None = None) -> Any:
    """Read back a value written by ``save_value`` (decrypting it with the key of the log it
    is stored under when its format ends with ``.enc``; ``team``: a team log's key)."""
    if fmt.endswith(ENCRYPTED):
        shown = name or path.name
        key = pii.artifact_encryption_key(path, team=team, name=shown)
        plain = pii.decrypt(path.read_bytes(), key, what=f"checkpoint {shown}")
        return _read(fmt.removesuffix(ENCRYPTED), io.BytesIO(plain))
    return _read(fmt, path)


def _read(fmt: str, source: Path | BinaryIO) -> Any:
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(source)
    if fmt == "polars.parquet":
        import polars as pl

        return pl.read_parquet(source)
    if fmt == "npy":
        import numpy as np

        return np.load(source, allow_pickle=False)
    if fmt == "skops":
        import skops.io

        data = source.read_bytes() if isinstance(source, Path) else source.read()
        return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            return pickle.load(handle)
    return pickle.load(source)


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


def _write_pandas(frame: Any, target: Path | BinaryIO) -> None:
    """Parquet when it gives the frame back exactly (pickle is tried next otherwise)."""
    if not all(isinstance(column, str) for column in frame.columns):
        raise TypeError("parquet needs string column names")
    from pandas.api.types import is_object_dtype

    if any(is_object_dtype(dtype) for dtype in frame.dtypes):
        raise TypeError("object columns would come back with another dtype")
    frame.to_parquet(target)


def _write_numpy(array: Any, target: Path | BinaryIO) -> None:
    import numpy as np

    if isinstance(target, Path):  # np.save would append .npy to a str path
        with open(target, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    else:
        np.save(target, array, allow_pickle=False)


def _write_skops(estimator: Any, target: Path | BinaryIO) -> None:
    import skops.io

    skops.io.dump(estimator, target)


def _write_pickle(value: Any, target: Path | BinaryIO) -> None:
    if isinstance(target, Path):
        with open(target, "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(value, target, protocol=pickle.HIGHEST_PROTOCOL)
