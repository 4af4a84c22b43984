"""DataFrames and arrays as plain records: shape, schema, an exact fingerprint, column stats,
and what changed between two versions of a dataset.

Everything rests on one primitive: a uint64 hash per cell, computed column by column (a
vectorised mix of the bits for numbers, bools and datetimes; pandas' stable siphash of each
distinct value for strings, categoricals and objects). A row's hash is the sum over its columns
of ``cell hash * a multiplier derived from the column's name``. Because the sum is linear, the
hash of a row over a subset of columns is the full row hash minus the dropped columns' terms,
which is what ``diff`` needs when two versions do not have the same columns. The fingerprint
is a sha256 of the kind, column names, dtypes and row count, then of the row hashes in order.

Decisions worth knowing:

- The pandas index is not content: ``reset_index(drop=True)`` keeps the fingerprint; row order
  is content: sorting changes it.
- Nulls are one value whatever their spelling (None, NaN, NaT, pd.NA) and -0.0 equals 0.0.
- Objects that are not strings (in object columns) are compared by type and repr, so 1 and "1"
  differ; lists in cells work. An object whose repr shows its address (a plain class without
  __repr__) fingerprints differently in another process.
- ``distinct`` and ``top`` are exact at any size: the strings are dictionary-encoded for
  hashing anyway, and counting the codes is cheap; ``distinct_approx`` is therefore never set.
- A snapshot keeps a reference to the object it was computed from (not a copy, and not a weak
  reference: a notebook often rebinds ``df = df.dropna()``, which would free the old frame just
  when its diff is wanted). ``diff`` re-reads only the columns it needs from it and checks each
  against a digest taken at snapshot time, so data mutated in place since is never trusted; the
  counts then fall back to net row changes. Whoever keeps snapshots around keeps the frames
  alive: hold on to the latest snapshot of a variable only.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

_MASK64 = (1 << 64) - 1
_NULL_HASH = 0x9E3779B97F4A7C15  # the hash of a null cell, whatever its spelling
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_TOP_CHARS = 100  # a "top" value is shown, not stored whole
_CHUNK = 1 << 15  # rows hashed at a time: the mix's passes stay in the CPU cache
_COUNTS = 20  # a column with at most this many distinct values gets its value counts


@dataclass
class DataSnapshot:
    """What a dataset looked like at one moment; ``to_record()`` is what gets logged."""

    kind: str
    n_rows: int
    n_cols: int
    schema: dict[str, str]
    fingerprint: str
    stats: dict[str, dict]
    n_duplicate_rows: int
    row_hashes: np.ndarray = field(repr=False, compare=False)
    _source: _Source | None = field(default=None, repr=False, compare=False)

    def to_record(self) -> dict:
        """JSON-able: everything but the row hashes (and the reference to the data)."""
        return {
            "kind": self.kind,
            "n_rows": self.n_rows,
            "n_cols": self.n_cols,
            "schema": dict(self.schema),
            "fingerprint": self.fingerprint,
            "stats": {name: dict(values) for name, values in self.stats.items()},
            "n_duplicate_rows": self.n_duplicate_rows,
        }


@dataclass
class _Source:
    """The object a snapshot was computed from, and how to read its columns back for diff."""

    data: Any
    column_at: Callable[[Any, int], pd.Series]
    columns: list[str]
    dtypes: list[str]
    digests: list[tuple[int, bytes]]


def is_data(value: Any) -> bool:
    """A pandas DataFrame or Series, a polars DataFrame, or a numpy array that is not 0-d."""
    if isinstance(value, pd.DataFrame | pd.Series):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return _is_polars_frame(value)


def snapshot(value: Any) -> DataSnapshot | None:
    """Describe ``value`` (see the module docstring); None when it is not data."""
    if isinstance(value, pd.DataFrame):
        return _snapshot_pandas(value)
    if isinstance(value, pd.Series):
        return _snapshot_series(value)
    if isinstance(value, np.ndarray):
        return _snapshot_numpy(value) if value.ndim > 0 else None
    if _is_polars_frame(value):
        return _snapshot_polars(value)
    return None


def diff(before: DataSnapshot, after: DataSnapshot) -> dict:
    """What changed from ``before`` to ``after``, as a JSON-able dict.

    Rows are matched by content over the columns both versions share with the same dtype, as
    multisets: an edited row counts as one removed and one added. ``duplicates_removed`` is how
    many removed rows were copies of another row in ``before``. When rows cannot be compared
    (no such column, or data edited in place since its snapshot) the counts are net changes.
    """
    b_cols, a_cols = _columns_of(before), _columns_of(after)
    b_set, a_set = set(b_cols), set(a_cols)
    b_types, a_types = _dtypes_of(before), _dtypes_of(after)
    common = [name for name in a_cols if name in b_set]
    change: dict[str, Any] = {
        "rows_before": before.n_rows,
        "rows_after": after.n_rows,
        "rows_added": 0,
        "rows_removed": 0,
        "duplicates_removed": 0,
        "columns_added": [name for name in a_cols if name not in b_set],
        "columns_dropped": [name for name in b_cols if name not in a_set],
        "dtype_changes": _dtype_changes(before, after, common, b_types, a_types),
        "nulls_filled": {},
        "nulls_introduced": {},
        "values_changed": (
            before.n_rows == after.n_rows
            and b_cols == a_cols
            and before.fingerprint != after.fingerprint
        ),
    }
    for name, b_stats in before.stats.items():
        a_stats = after.stats.get(name)
        if a_stats is None or "nulls" not in b_stats or "nulls" not in a_stats:
            continue
        delta = a_stats["nulls"] - b_stats["nulls"]
        if delta < 0:
            change["nulls_filled"][name] = -delta
        elif delta > 0:
            change["nulls_introduced"][name] = delta
    if before.fingerprint != after.fingerprint:
        key = [name for name in common if b_types[name] == a_types[name]]
        change.update(_row_changes(before, after, key))
    return change


def describe_change(
    before_name: str,
    before: DataSnapshot | None,
    after_name: str,
    after: DataSnapshot,
    change: dict | None,
) -> str:
    """One line for the notebook, e.g. ``raw 10,000x12 -> clean 9,812x12: 188 duplicate rows
    dropped, 3 nulls filled in age, age: object -> float64``; ``change`` is computed when None."""
    shape_after = f"{after.n_rows:,}x{after.n_cols:,}"
    if before is None:
        return f"{after_name} {shape_after} (new)"
    if change is None:
        change = diff(before, after)
    target = shape_after if after_name == before_name else f"{after_name} {shape_after}"
    head = f"{before_name} {before.n_rows:,}x{before.n_cols:,} -> {target}"
    phrases = change_phrases(change)
    if not phrases:  # nothing counted: the same content, or the same content moved around
        if before.fingerprint == after.fingerprint:
            phrases = ["no change"]
        elif sorted(_columns_of(before)) == sorted(_columns_of(after)):
            phrases = ["columns reordered"]
        else:
            phrases = ["content changed"]
    return f"{head}: {', '.join(phrases)}"


# --- snapshots, one per kind -------------------------------------------------------------


def _snapshot_pandas(frame: pd.DataFrame) -> DataSnapshot:
    columns = _unique_names([_flat_name(name) for name in frame.columns])
    dtypes = [str(dtype) for dtype in frame.dtypes]
    return _build("pandas", frame, _pandas_column, len(frame), columns, dtypes)


def _snapshot_series(series: pd.Series) -> DataSnapshot:
    name = "0" if series.name is None else _flat_name(series.name)
    return _build("pandas-series", series, _series_column, len(series), [name], [str(series.dtype)])


def _snapshot_polars(frame: Any) -> DataSnapshot:
    columns = _unique_names([str(name) for name in frame.columns])
    dtypes = [str(dtype) for dtype in frame.dtypes]
    return _build("polars", frame, _polars_column, frame.height, columns, dtypes)


def _snapshot_numpy(array: np.ndarray) -> DataSnapshot:
    """Rows are the first axis; columns are the fields of a structured array, or the
    positions in a row (a 3-d array's rows are flattened). Stats are per column up to 2-d,
    over all values above (one column per pixel would say little)."""
    n_rows = array.shape[0]
    schema = {"dtype": str(array.dtype), "shape": "x".join(str(n) for n in array.shape)}
    if array.dtype.names and array.ndim == 1:
        columns = list(array.dtype.names)
        dtypes = [str(array.dtype.fields[name][0]) for name in columns]
        return _build("numpy", array, _numpy_field, n_rows, columns, dtypes, schema=schema)
    if array.ndim == 1:
        return _build("numpy", array, _numpy_whole, n_rows, ["0"], [str(array.dtype)], schema)
    width = math.prod(array.shape[1:])
    rows = array.reshape(n_rows, width)  # a view unless the array is not contiguous
    columns = [str(i) for i in range(width)]
    dtypes = [str(array.dtype)] * width
    if array.ndim == 2:
        return _build("numpy", rows, _numpy_column, n_rows, columns, dtypes, schema=schema)
    snap = _build("numpy", rows, _numpy_column, n_rows, columns, dtypes, schema, False)
    snap.stats = {"values": _analyse(_as_series(array.reshape(-1)), 0, None)[0]}
    return snap


def _pandas_column(frame: pd.DataFrame, i: int) -> pd.Series:
    return frame.iloc[:, i]


def _series_column(series: pd.Series, i: int) -> pd.Series:
    return series


def _polars_column(frame: Any, i: int) -> pd.Series:
    return frame.to_series(i).to_pandas(use_pyarrow_extension_array=True)


def _numpy_field(array: np.ndarray, i: int) -> pd.Series:
    return _as_series(array[array.dtype.names[i]])


def _numpy_whole(array: np.ndarray, i: int) -> pd.Series:
    return _as_series(array)


def _numpy_column(rows: np.ndarray, i: int) -> pd.Series:
    return _as_series(rows[:, i])


def _as_series(values: np.ndarray) -> pd.Series:
    if values.dtype.names or values.ndim > 1:  # records, or a field that is itself an array
        # compare them as (nested) Python tuples
        return pd.Series([_freeze(v) for v in values.tolist()], dtype=object)
    return pd.Series(values, copy=False)


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _build(
    kind: str,
    data: Any,
    column_at: Callable[[Any, int], pd.Series],
    n_rows: int,
    columns: list[str],
    dtypes: list[str],
    schema: dict[str, str] | None = None,
    with_stats: bool = True,
) -> DataSnapshot:
    """Hash and describe every column, fold their terms into row hashes, then fingerprint
    the rows and count duplicates."""
    series = [column_at(data, i) for i in range(len(columns))]
    multipliers = [_multiplier(name) for name in columns]
    row_hashes, results = _analyse_columns(series, multipliers, n_rows, with_stats)
    stats = {name: column_stats for name, (column_stats, _) in zip(columns, results, strict=True)}
    digests = [digest for _, digest in results]
    header = json.dumps([kind, columns, dtypes, n_rows], separators=(",", ":")).encode()
    fingerprint = hashlib.sha256(header)
    fingerprint.update(memoryview(row_hashes))
    return DataSnapshot(
        kind=kind,
        n_rows=n_rows,
        n_cols=len(columns),
        schema=schema if schema is not None else dict(zip(columns, dtypes, strict=True)),
        fingerprint=fingerprint.hexdigest(),
        stats=stats,
        n_duplicate_rows=_count_duplicates(row_hashes),
        row_hashes=row_hashes,
        _source=_Source(data, column_at, columns, dtypes, digests),
    )


def _analyse_columns(
    series: list[pd.Series], multipliers: list[int], n_rows: int, want_stats: bool
) -> tuple[np.ndarray, list[tuple[dict, tuple[int, bytes] | None]]]:
    """(row hashes, (stats, digest) per column). One thread: a second one, tried for the
    string columns (pyarrow hashes without the GIL), measured no faster on 2 cores."""
    row_hashes = np.zeros(n_rows, dtype=np.uint64)
    results = [
        _analyse(column, multiplier, row_hashes, want_stats)
        for column, multiplier in zip(series, multipliers, strict=True)
    ]
    return row_hashes, results


def _count_duplicates(row_hashes: np.ndarray) -> int:
    """Rows equal to an earlier row: equal neighbours once sorted (numpy's SIMD sort is fast)."""
    ordered = np.sort(row_hashes)
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


# --- one column: cell hashes and stats ---------------------------------------------------


def _analyse(
    series: pd.Series,
    multiplier: int,
    into: np.ndarray | None,
    want_stats: bool = True,
) -> tuple[dict, tuple[int, bytes] | None]:
    """Add each cell's term (its hash times the column's multiplier) to ``into``, the row
    hashes being built, and return (stats, digest of the terms); only stats when ``into`` is
    None, only the digest (stats empty) unless ``want_stats``."""
    dtype = series.dtype
    digest = None
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        labels = series.cat.categories
        if into is not None:
            digest = _fold_codes(labels, codes, multiplier, into)
        return _coded_stats(codes, labels, None) if want_stats else {}, digest
    numbers = _numeric_view(series)
    if numbers is not None:
        values, nulls, temporal = numbers
        if into is not None:
            digest = _fold_numbers(values, nulls, multiplier, into)
        return _number_stats(series, values, nulls, temporal) if want_stats else {}, digest
    codes, labels, by_repr = _factorize(series)
    if into is not None:
        digest = _fold_codes(labels, codes, multiplier, into)
    return _coded_stats(codes, labels, series if by_repr else None) if want_stats else {}, digest


def _fold(into: np.ndarray, fill: Callable[[int, int, np.ndarray], None]) -> tuple[int, bytes]:
    """Compute a column's terms chunk by chunk (``fill(start, stop, out)``) so that the
    several passes of the mix run in cache, add them to ``into`` and return their digest: the
    sum of the terms (any value edited) and a strided sample (rows reordered)."""
    n = len(into)
    buffer = np.empty(min(n, _CHUNK), dtype=np.uint64)
    step = min(_CHUNK, 1 << max(0, (n // 1024).bit_length() - 1))  # divides _CHUNK
    total = 0
    samples = []
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        out = buffer[: stop - start]
        fill(start, stop, out)
        into[start:stop] += out
        total += int(out.sum(dtype=np.uint64))
        samples.append(out[::step].tobytes())
    return total & _MASK64, b"".join(samples)


def _fold_numbers(
    values: np.ndarray, nulls: np.ndarray | None, multiplier: int, into: np.ndarray
) -> tuple[int, bytes]:
    """Terms for numbers: the 64-bit pattern of each value (floats as float64 with -0.0 as
    0.0, other numbers as int64), mixed."""
    width = min(len(values), _CHUNK)
    scratch = np.empty(width, dtype=np.uint64)
    kind = values.dtype.kind
    if kind == "f":
        as_float = np.empty(width, dtype=np.float64)
    elif not (kind in "iu" and values.dtype.itemsize == 8):
        as_int = np.empty(width, dtype=np.int64)
    null_term = _null_term(multiplier)

    def fill(start: int, stop: int, out: np.ndarray) -> None:
        chunk = values[start:stop]
        if kind == "f":
            bits = np.add(chunk, 0.0, out=as_float[: stop - start]).view(np.uint64)
        elif kind in "iu" and values.dtype.itemsize == 8:
            bits = chunk.view(np.uint64)
        else:
            bits = as_int[: stop - start]
            np.copyto(bits, chunk, casting="unsafe")
            bits = bits.view(np.uint64)
        _mix(bits, multiplier, out, scratch[: stop - start])
        if nulls is not None:
            out[nulls[start:stop]] = null_term

    return _fold(into, fill)


def _fold_codes(
    labels: Any, codes: np.ndarray, multiplier: int, into: np.ndarray
) -> tuple[int, bytes]:
    """Terms for coded columns: each distinct label hashed once, picked by code (-1, a null,
    picks the null term appended at the end)."""
    table = np.append(_hash_labels(labels, multiplier), _null_term(multiplier))

    def fill(start: int, stop: int, out: np.ndarray) -> None:
        np.take(table, codes[start:stop], out=out)

    return _fold(into, fill)


def _numeric_view(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None, bool] | None:
    """(numpy values, null mask or None, temporal) for numbers, bools, datetimes, timedeltas.

    Datetimes and timedeltas come back as int64 (UTC for tz-aware ones); None for the rest.
    """
    dtype = series.dtype
    if getattr(getattr(dtype, "pyarrow_dtype", None), "tz", None):
        # a pyarrow timestamp with a time zone: the same instants in UTC, as pandas does below
        import pyarrow as pa

        naive = pa.array(series.array).cast(pa.timestamp(dtype.pyarrow_dtype.unit))
        values = np.asarray(naive.to_numpy(zero_copy_only=False))
    elif isinstance(dtype, pd.DatetimeTZDtype):
        values = series.to_numpy(dtype=f"datetime64[{dtype.unit}]")
    elif isinstance(dtype, np.dtype):
        if dtype.kind not in "biufmM":
            return None
        values = series.to_numpy()
    else:  # nullable (Int64, boolean...) and pyarrow-backed dtypes
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if not isinstance(numpy_dtype, np.dtype) or numpy_dtype.kind not in "biufmM":
            return None
        if numpy_dtype.kind in "mM":
            try:
                values = series.astype(numpy_dtype).to_numpy()
            except (TypeError, ValueError):
                return None
        elif isinstance(series.array, pd.arrays.ArrowExtensionArray):
            return (*_arrow_numbers(series.array), False)
        else:
            mask = series.isna().to_numpy()
            fill = False if numpy_dtype.kind == "b" else 0
            values = series.to_numpy(dtype=numpy_dtype, na_value=fill)
            return values, (mask if mask.any() else None), False
    if values.dtype.kind in "mM":
        mask = np.isnat(values)
        return values.view(np.int64), (mask if mask.any() else None), True
    if values.dtype.kind == "f":
        mask = np.isnan(values)
        return values, (mask if mask.any() else None), False
    return values, None, False


def _arrow_numbers(array: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, null mask or None) of a pyarrow-backed numeric column, read by pyarrow
    itself: pandas' to_numpy(na_value=...) is several times slower on these."""
    import pyarrow as pa

    data = pa.array(array)
    if data.null_count == 0:
        return np.asarray(data.to_numpy(zero_copy_only=False)), None
    nulls = np.asarray(data.is_null().to_numpy(zero_copy_only=False))
    filled = data.fill_null(pa.scalar(False if pa.types.is_boolean(data.type) else 0, data.type))
    return np.asarray(filled.to_numpy(zero_copy_only=False)), nulls


def _mix(bits: np.ndarray, multiplier: int, out: np.ndarray, scratch: np.ndarray) -> None:
    """multiply, xor-shift, multiply: a bijective 64-bit mix, with the column's multiplier
    folded into the last constant so that it costs no extra pass."""
    np.multiply(bits, np.uint64(_MIX1), out=out)
    np.right_shift(out, np.uint64(32), out=scratch)
    out ^= scratch
    out *= np.uint64(_MIX2 * multiplier & _MASK64)


def _null_term(multiplier: int) -> np.uint64:
    return np.uint64(_NULL_HASH * multiplier & _MASK64)


def _factorize(series: pd.Series) -> tuple[np.ndarray, Any, bool]:
    """(codes with -1 for nulls, distinct values, whether those are keys made from reprs).

    Values that cannot be hashed (lists, dicts, arrays in cells) are compared by their repr.
    """
    if isinstance(series.array, pd.arrays.ArrowExtensionArray):
        coded = _arrow_factorize(series.array)
        if coded is not None:
            return coded[0], coded[1], False
    try:
        codes, labels = pd.factorize(series, use_na_sentinel=True)
        return codes, labels, False
    except (TypeError, NotImplementedError):
        keys = [None if _is_null(v) else _key(v) for v in series.to_numpy(dtype=object)]
        codes, labels = pd.factorize(np.array(keys, dtype=object), use_na_sentinel=True)
        return codes, labels, True


def _arrow_factorize(array: Any) -> tuple[np.ndarray, pd.Index] | None:
    """pd.factorize for pyarrow-backed columns (pandas 3 strings, polars columns) without its
    conversions: the int32 codes pyarrow makes are used as they are. None when pyarrow cannot
    dictionary-encode the type (lists, structs...)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        encoded = pc.dictionary_encode(pa.array(array), null_encoding="mask")
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid):
        return None
    if isinstance(encoded, pa.ChunkedArray):  # one dictionary for all chunks, as pandas does
        encoded = encoded.combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy()
    return codes, pd.Index(pd.arrays.ArrowExtensionArray(encoded.dictionary))


def _is_null(value: Any) -> bool:
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def _key(value: Any) -> str:
    """A string standing for ``value``: strings as they are, the rest typed so 1 != "1"."""
    if isinstance(value, str):
        return value
    return f"\x00{type(value).__qualname__}:{value!r}"


def _hash_labels(labels: Any, multiplier: int) -> np.ndarray:
    """Terms for each distinct value (category labels, factorize uniques): numbers as numbers,
    strings with pandas' stable siphash, anything else through a typed repr."""
    numbers = _numeric_view(pd.Series(labels, copy=False))
    terms = np.zeros(len(labels), dtype=np.uint64)
    if numbers is not None:
        _fold_numbers(numbers[0], numbers[1], multiplier, terms)
        return terms
    objects = np.asarray(labels, dtype=object)
    if pd.api.types.infer_dtype(objects, skipna=False) not in ("string", "empty"):
        objects = np.array([_key(v) for v in objects], dtype=object)
    _mix(pd.util.hash_array(objects, categorize=False), multiplier, terms, np.empty_like(terms))
    return terms


def _number_stats(
    series: pd.Series, values: np.ndarray, nulls: np.ndarray | None, temporal: bool
) -> dict:
    stats: dict[str, Any] = {"nulls": 0 if nulls is None else int(nulls.sum())}
    valid = values if nulls is None else values[~nulls]
    if temporal:
        stats["min"] = _text(series.min()) if len(valid) else None
        stats["max"] = _text(series.max()) if len(valid) else None
    elif values.dtype.kind == "b":
        n_true = int(np.count_nonzero(valid))
        counts = {"True": n_true, "False": len(valid) - n_true}
        present = [label for label, n in counts.items() if n]
        stats["distinct"] = len(present)
        stats["top"] = max(present, key=counts.__getitem__) if present else None
        stats["counts"] = {label: counts[label] for label in present}
    else:
        empty = len(valid) == 0
        stats["min"] = None if empty else _number(valid.min())
        stats["max"] = None if empty else _number(valid.max())
        stats["mean"], stats["std"] = _mean_std(valid)
        low = None if empty or values.dtype.kind not in "iu" else int(valid.min())
        if low is not None and int(valid.max()) - low < _COUNTS:
            # a few small integers: class labels, cluster ids, ratings
            counts = np.bincount((valid - low).astype(np.intp))
            stats["counts"] = {str(low + i): int(n) for i, n in enumerate(counts) if n}
    return stats


def _mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and sample std in two reads (a sum, a sum of squares), centring first only when
    the one-pass formula would lose precision (values far from zero relative to their spread).
    einsum, not np.dot: BLAS threads made dot 10x slower and erratic on a 2-core machine."""
    n = len(values)
    if n == 0:
        return None, None
    as_float = values.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):  # infinities: inf - inf is NaN
        mean = float(as_float.mean())
        if n == 1 or not math.isfinite(mean):
            return _number(mean), None
        square_sum = float(np.einsum("i,i->", as_float, as_float))
        variance = (square_sum - n * mean * mean) / (n - 1)
        if not variance > 1e-6 * mean * mean:
            centered = as_float - mean
            variance = float(np.einsum("i,i->", centered, centered)) / (n - 1)
    return _number(mean), _number(math.sqrt(max(variance, 0.0)))


def _coded_stats(codes: np.ndarray, labels: Any, by_repr: pd.Series | None) -> dict:
    """nulls, distinct and top from factorize-style codes (exact: no sampling needed)."""
    shifted = np.add(codes, 1, dtype=np.int32 if codes.dtype.itemsize <= 4 else np.int64)
    counts = np.bincount(shifted, minlength=len(labels) + 1)
    stats: dict[str, Any] = {"nulls": int(counts[0]), "distinct": int(np.count_nonzero(counts[1:]))}
    if stats["distinct"] == 0:
        stats["top"] = None
        return stats
    top = int(np.argmax(counts[1:]))
    # when labels are repr keys, show the original value instead
    value = labels[top] if by_repr is None else by_repr.iloc[int(np.argmax(codes == top))]
    stats["top"] = _text(value)
    if by_repr is None and stats["distinct"] <= _COUNTS:
        present = np.flatnonzero(counts[1:])
        stats["counts"] = {_text(labels[i]): int(counts[i + 1]) for i in present}
    return stats


def _number(value: Any) -> int | float | str | None:
    """A JSON-safe number: ints stay ints, infinities become "inf"/"-inf", NaN None."""
    if isinstance(value, np.integer | int) and not isinstance(value, bool | np.bool_):
        return int(value)
    value = float(value)
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else str(value)


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _TOP_CHARS else text[: _TOP_CHARS - 1] + "\u2026"


# --- row hashes ----------------------------------------------------------------------------


def _multiplier(name: str) -> int:
    """An odd 64-bit multiplier per column name, so a cell's term depends on its column."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


def _flat_name(name: Any) -> str:
    """Column labels as strings; MultiIndex tuples joined with dots, empty levels skipped."""
    if isinstance(name, tuple):
        return ".".join(str(part) for part in name if str(part) != "")
    return str(name)


def _unique_names(names: list[str]) -> list[str]:
    """Repeated labels get a suffix as pandas' CSV reader does: x, x.1, x.2."""
    seen: dict[str, int] = {}
    taken = set(names)
    unique = []
    for name in names:
        if name not in seen:
            seen[name] = 0
            unique.append(name)
            continue
        candidate = name
        while candidate in taken:
            seen[name] += 1
            candidate = f"{name}.{seen[name]}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def _is_polars_frame(value: Any) -> bool:
    polars = sys.modules.get("polars")  # never import polars just to say "no"
    return polars is not None and isinstance(value, polars.DataFrame)


# --- diff ----------------------------------------------------------------------------------


def _columns_of(snap: DataSnapshot) -> list[str]:
    if snap._source is not None:
        return snap._source.columns
    return [] if snap.kind == "numpy" else list(snap.schema)


def _dtypes_of(snap: DataSnapshot) -> dict[str, str]:
    if snap._source is not None:
        return dict(zip(snap._source.columns, snap._source.dtypes, strict=True))
    return {} if snap.kind == "numpy" else dict(snap.schema)


def _dtype_changes(
    before: DataSnapshot,
    after: DataSnapshot,
    common: list[str],
    b_types: dict[str, str],
    a_types: dict[str, str],
) -> dict[str, list[str]]:
    """{column: [old, new]}; for two numpy arrays, {"dtype": [old, new]} (one dtype each)."""
    if before.kind == "numpy" and after.kind == "numpy":
        old, new = before.schema["dtype"], after.schema["dtype"]
        return {} if old == new else {"dtype": [old, new]}
    return {
        name: [b_types[name], a_types[name]] for name in common if b_types[name] != a_types[name]
    }


def _row_changes(before: DataSnapshot, after: DataSnapshot, key: list[str]) -> dict[str, int]:
    """rows_added, rows_removed, duplicates_removed: a multiset difference of row hashes over
    the ``key`` columns; net counts when rows cannot be compared (no shared columns, or data
    edited in place since its snapshot)."""
    b_keys = _key_hashes(before, key) if key else None
    a_keys = _key_hashes(after, key) if key else None
    if b_keys is None or a_keys is None:
        removed = max(0, before.n_rows - after.n_rows)
        lost_duplicates = max(0, before.n_duplicate_rows - after.n_duplicate_rows)
        return {
            "rows_added": max(0, after.n_rows - before.n_rows),
            "rows_removed": removed,
            "duplicates_removed": min(removed, lost_duplicates),
        }
    if len(b_keys) == len(a_keys) and np.array_equal(b_keys, a_keys):
        return {"rows_added": 0, "rows_removed": 0, "duplicates_removed": 0}
    groups, b_counts, a_counts = _count_both(b_keys, a_keys)
    kept = np.minimum(b_counts, a_counts)
    removed = b_counts - kept
    n_kept = int(kept.sum())
    duplicates = 0
    if n_kept < len(b_keys):
        if b_keys is before.row_hashes:  # the key is every column: equal key, equal row
            copies = np.maximum(b_counts - 1, 0)
            duplicates = int(np.minimum(removed, copies).sum())
        else:
            duplicates = _removed_copies(before, b_keys, groups, b_counts, removed)
    return {
        "rows_added": len(a_keys) - n_kept,
        "rows_removed": len(b_keys) - n_kept,
        "duplicates_removed": duplicates,
    }


def _count_both(b_keys: np.ndarray, a_keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """(distinct keys, count in before, count in after) with one sort: the lowest bit of
    each hash is swapped for the side it comes from, so a group is a run of equal high bits."""
    tagged = np.empty(len(b_keys) + len(a_keys), dtype=np.uint64)
    np.bitwise_and(b_keys, np.uint64(_MASK64 - 1), out=tagged[: len(b_keys)])
    np.bitwise_or(a_keys, np.uint64(1), out=tagged[len(b_keys) :])
    tagged.sort()
    groups = tagged >> np.uint64(1)
    starts = _run_starts(groups)
    a_counts = np.add.reduceat(tagged & np.uint64(1), starts).astype(np.int64)
    sizes = np.diff(starts, append=len(tagged))
    return groups[starts], sizes - a_counts, a_counts


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins in a sorted array."""
    if len(ordered) == 0:
        return np.zeros(0, dtype=np.intp)
    edges = np.empty(len(ordered), dtype=bool)
    edges[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=edges[1:])
    return np.flatnonzero(edges)


def _removed_copies(
    before: DataSnapshot,
    b_keys: np.ndarray,
    groups: np.ndarray,
    b_counts: np.ndarray,
    removed: np.ndarray,
) -> int:
    """How many removed rows were whole-row copies in ``before`` when the key is only some of
    its columns: rows equal on the key may still differ elsewhere. Only groups that lost rows
    and hold several are looked at, usually few."""
    candidates = (removed > 0) & (b_counts > 1)
    if not candidates.any():
        return 0
    b_groups = b_keys >> np.uint64(1)
    members = _member_rows(b_groups, groups[candidates])
    key, full = b_groups[members], before.row_hashes[members]
    order = np.lexsort((full, key))
    key, full = key[order], full[order]
    new_row = np.ones(len(key), dtype=np.int64)
    new_row[1:] = (key[1:] != key[:-1]) | (full[1:] != full[:-1])
    distinct = np.add.reduceat(new_row, _run_starts(key))  # in sorted order, as groups are
    copies = b_counts[candidates] - distinct
    return int(np.minimum(removed[candidates], copies).sum())


def _member_rows(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Positions of ``values`` found in the sorted ``members``: a small bitmap on the low bits
    rules out most rows in one cache-friendly pass, an exact test settles the rest."""
    size = 1 << max(10, min(24, (len(members) * 16).bit_length()))
    low_bits = np.uint64(size - 1)
    table = np.zeros(size, dtype=bool)
    table[(members & low_bits).astype(np.intp)] = True
    maybe = np.flatnonzero(table[(values & low_bits).astype(np.intp)])
    return maybe[np.isin(values[maybe], members)]


def _key_hashes(snap: DataSnapshot, key: list[str]) -> np.ndarray | None:
    """Row hashes over the ``key`` columns only, from whichever side is cheaper to re-read:
    the full row hash minus the other columns' terms, or the key columns' terms summed."""
    source = snap._source
    if source is None:
        return None
    key_set = set(key)
    others = [name for name in source.columns if name not in key_set]
    if not others:  # every column (maybe in another order: the sum does not care)
        return snap.row_hashes
    if len(others) <= len(key):
        terms = _verified_terms(snap, others)
        if terms is not None:
            return snap.row_hashes - terms
    return _verified_terms(snap, key)


def _verified_terms(snap: DataSnapshot, names: list[str]) -> np.ndarray | None:
    """Sum of the ``names`` columns' terms, re-read from the snapshot's data; None if any
    column no longer matches its digest (the object was edited in place since)."""
    source = snap._source
    assert source is not None
    total = np.zeros(snap.n_rows, dtype=np.uint64)
    position = {name: i for i, name in enumerate(source.columns)}
    for name in names:
        i = position[name]
        try:
            column = source.column_at(source.data, i)
            if len(column) != snap.n_rows:
                return None
            _, digest = _analyse(column, _multiplier(name), total, want_stats=False)
        except (IndexError, KeyError, ValueError, TypeError):  # reshaped in place
            return None
        if digest != source.digests[i]:
            return None
    return total


# --- the one-line summary ------------------------------------------------------------------


def change_phrases(change: dict | None) -> list[str]:
    """What a ``diff`` record counted, in words: the one description of a data change, used by
    the notebook's summary line and the generated docs alike. Rows are matched by content, so
    an edited row is one removed and one added: such pairs are reported as changed rows. Keys
    missing from a record (logs written by older versions) count as nothing changed."""
    if not change:
        return []
    phrases = []
    duplicates = _int(change.get("duplicates_removed"))
    added = _int(change.get("rows_added"))
    other_removed = max(0, _int(change.get("rows_removed")) - duplicates)
    edited = min(other_removed, added)  # an edited row is one out, one in
    if duplicates:
        phrases.append(f"{_count(duplicates, 'duplicate row')} dropped")
    if other_removed - edited:
        phrases.append(f"{_count(other_removed - edited, 'row')} removed")
    if edited:
        phrases.append(f"{_count(edited, 'row')} changed")
    if added - edited:
        phrases.append(f"{_count(added - edited, 'row')} added")
    for key, verb in (("columns_added", "added"), ("columns_dropped", "dropped")):
        names = [str(name) for name in change.get(key) or []]
        if names:
            phrases.append(f"{_count(len(names), 'column')} {verb} ({_names(names)})")
    for key, verb in (("nulls_filled", "filled"), ("nulls_introduced", "introduced")):
        per_column = {str(k): _int(n) for k, n in (change.get(key) or {}).items()}
        if 0 < len(per_column) <= 3:
            phrases += [f"{_count(n, 'null')} {verb} in {name}" for name, n in per_column.items()]
        elif per_column:
            total = sum(per_column.values())
            phrases.append(f"{_count(total, 'null')} {verb} in {len(per_column)} columns")
    dtypes = change.get("dtype_changes") or {}
    if len(dtypes) <= 3:
        phrases += [f"{name}: {old} -> {new}" for name, (old, new) in dtypes.items()]
    else:
        phrases.append(f"{len(dtypes)} dtypes changed")
    if not phrases and change.get("values_changed"):  # the same rows and columns, moved
        phrases.append("rows reordered")
    return phrases


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and value == value else 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, +{len(names) - limit} more"
