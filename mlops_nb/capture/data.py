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
  alive: hold on to the latest snapshot of a variable only. It also keeps, taken at snapshot
  time, each column's null mask (packed bits, only for columns with a null) and the pandas
  index (immutable): which cells were null, and which row is which, survive an edit in place
  (``df.drop_duplicates(inplace=True)``). ``diff`` says what its counts mean exactly.
- Stats hold values (``top``, value ``counts``, ``min``/``max``); ``to_record(private=...)``
  keeps only the null and distinct counts of personal-data columns (``capture.pii`` says which).
  A ``diff`` holds counts and column names, never a value, so it needs no such care.
- ``n_duplicate_rows`` is a sort of the row hashes, which the snapshot owns: for a large
  frame it starts on the encoder thread as soon as the hashes exist (the sort frees the GIL,
  so a diff's own work runs meanwhile); a small frame's is counted when first asked.

Where the time goes (``benchmarks/bench_capture.py``, 1,000,000 x 20, measured on 2 shared
cores): string columns dominate, at 25-50 ms each for pyarrow's dictionary encoding, which
gives both the hashes and exact distinct/top/counts; a numpy hash of the arrow buffers (8-byte
words gathered at each string's offset) measured 32 ms against 36 ms, not worth a second
hashing scheme, and a compiled kernel would mean a heavy dependency (numba). Numbers cost
2-4 ms per column for the mix (done in 32K-row chunks that stay in cache, the float's -0.0
fix written straight into the terms buffer) and 1-2 ms for the stats (chunked: no full-size
temporary, which matters at 10M rows where every fresh 80 MB array costs page faults). The
diff avoids sorting the rows that kept their index label (see ``diff``). Nothing is sampled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
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
    row_hashes: np.ndarray = field(repr=False, compare=False)
    _source: _Source | None = field(default=None, repr=False, compare=False)
    _duplicates: int | None = field(default=None, repr=False, compare=False)
    _duplicates_job: Any = field(default=None, repr=False, compare=False)  # a Future

    @property
    def data(self) -> Any:
        """The object this snapshot was computed from (None for a record read back); it may
        have been edited in place since."""
        return self._source.data if self._source is not None else None

    @property
    def n_duplicate_rows(self) -> int:
        """Rows equal to an earlier row; counted when first asked (a sort of the row hashes,
        which never change: a snapshot that is only compared never pays for it)."""
        if self._duplicates is None:
            job, self._duplicates_job = self._duplicates_job, None
            self._duplicates = job.result() if job else _count_duplicates(self.row_hashes)
        return self._duplicates

    def to_record(self, private: Iterable[str] = ()) -> dict:
        """JSON-able: everything but the row hashes (and the reference to the data). Columns
        named in ``private`` (personal data) keep counts only (see ``private_stats``)."""
        private = set(private)
        return {
            "kind": self.kind,
            "n_rows": self.n_rows,
            "n_cols": self.n_cols,
            "schema": dict(self.schema),
            "fingerprint": self.fingerprint,
            "stats": {
                name: private_stats(values) if name in private else dict(values)
                for name, values in self.stats.items()
            },
            "n_duplicate_rows": self.n_duplicate_rows,
        }


def private_stats(stats: dict) -> dict:
    """What the log keeps of a personal-data column: its null and distinct counts, never a
    value (no top, no value counts, no min/max/mean/std: a number can be an identifier)."""
    kept = {key: stats[key] for key in ("nulls", "distinct") if key in stats}
    return {**kept, "private": True}


@dataclass
class _Source:
    """The object a snapshot was computed from, and how to read its columns back for diff."""

    data: Any
    column_at: Callable[[Any, int], pd.Series]
    columns: list[str]
    dtypes: list[str]
    digests: list[tuple[int, bytes]]
    nulls: list[np.ndarray | None] = field(default_factory=list)  # packed bits, None: no null
    index: pd.Index | None = None  # a pandas index (immutable): which rows are which


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
    multisets: ``rows_removed``/``rows_added`` count the rows of one side with no equal row on
    the other, so an edited row counts as one removed and one added. ``duplicates_removed`` is
    how many removed rows were copies of another row in ``before``.

    Which row is which comes from the pandas index when it survives the cell: rows with the
    same label on both sides are the same row, provided every row matched by content was
    matched at its label (labels reset or reused by another row fail this test); without a
    usable index (polars, numpy, repeated labels) and with as many rows on both sides, row i is
    row i, on the same condition. Rows so paired give exact counts:

    - ``rows_changed``: rows present on both sides whose content differs (the removed rows
      that are not changed rows were dropped: duplicates first);
    - ``nulls_filled[c]``: cells of ``c`` null before and set after, in rows present on both
      sides (nulls that left with dropped rows are not counted); ``nulls_introduced[c]``:
      set before, null after (nulls that came with new rows are not counted).

    Otherwise ``rows_changed`` is absent and the null counts pair the rows that are equal on
    every other shared column whose null count did not change (re-read from the data and
    checked), within each group of such rows nulls paired with nulls first: the fewest cell
    changes that explain the two versions. When that is impossible too (one of those columns
    was edited in place since its snapshot) each count is the net change of the column's null
    count and ``nulls_net`` is true: "356 fewer nulls in b", which may include nulls that left
    with whole rows. When rows cannot be compared at all (no shared column of the same dtype,
    or the data edited in place since its snapshot) the row counts are net changes as well.
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
    if before.fingerprint != after.fingerprint:
        key = [name for name in common if b_types[name] == a_types[name]]
        change.update(_row_changes(before, after, key, common))
    return change


def describe_change(
    before_name: str,
    before: DataSnapshot | None,
    after_name: str,
    after: DataSnapshot,
    change: dict | None,
) -> str:
    """One line for the notebook, e.g. ``raw 10,000x12 -> clean 9,812x12: 188 duplicate rows
    dropped, 3 nulls filled in age, age: object -> float64``; ``change`` is computed when None.
    Without ``before``, a new dataset: ``y 1,000x1 (new, from df)`` when ``before_name`` names
    what it was computed from, ``y 1,000x1 (new)`` when it is empty or ``after_name``."""
    shape_after = f"{after.n_rows:,}x{after.n_cols:,}"
    if before is None:
        origin = f", from {before_name}" if before_name and before_name != after_name else ""
        return f"{after_name} {shape_after} (new{origin})"
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
    return _build("pandas", frame, _pandas_column, len(frame), columns, dtypes, index=frame.index)


def _snapshot_series(series: pd.Series) -> DataSnapshot:
    name = "0" if series.name is None else _flat_name(series.name)
    dtypes = [str(series.dtype)]
    return _build(
        "pandas-series", series, _series_column, len(series), [name], dtypes, index=series.index
    )


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
    index: pd.Index | None = None,
) -> DataSnapshot:
    """Hash and describe every column, fold their terms into row hashes, then fingerprint
    the rows and count duplicates."""
    series = [column_at(data, i) for i in range(len(columns))]
    multipliers = [_multiplier(name) for name in columns]
    row_hashes, results = _analyse_columns(series, multipliers, n_rows, with_stats)
    stats = {name: result[0] for name, result in zip(columns, results, strict=True)}
    digests = [result[1] for result in results]
    nulls = [result[2] for result in results]
    header = json.dumps([kind, columns, dtypes, n_rows], separators=(",", ":")).encode()
    fingerprint = hashlib.sha256(header)
    fingerprint.update(memoryview(row_hashes))
    # a large frame's duplicate count (a sort, which frees the GIL) starts now on the
    # encoder thread: a diff needs it, and does its own work meanwhile
    job = _encoder().submit(_count_duplicates, row_hashes) if n_rows >= _ENCODE_AHEAD_ROWS else None
    return DataSnapshot(
        kind=kind,
        n_rows=n_rows,
        n_cols=len(columns),
        schema=schema if schema is not None else dict(zip(columns, dtypes, strict=True)),
        fingerprint=fingerprint.hexdigest(),
        stats=stats,
        row_hashes=row_hashes,
        _source=_Source(data, column_at, columns, dtypes, digests, nulls, index),
        _duplicates_job=job,
    )


def _analyse_columns(
    series: list[pd.Series], multipliers: list[int], n_rows: int, want_stats: bool
) -> tuple[np.ndarray, list[tuple[dict, tuple[int, bytes] | None, np.ndarray | None]]]:
    """(row hashes, (stats, digest, packed null mask) per column).

    Dictionary-encoding large pyarrow text columns is the costliest step and pyarrow does it
    without the GIL: it starts on a second thread while this one hashes the other columns (on
    a busy machine this gains nothing, on an idle one it hides most of the text's cost). Row
    hashes are a sum over columns, so the order in which columns are folded does not matter.
    """
    row_hashes = np.zeros(n_rows, dtype=np.uint64)
    ahead = {
        index: _encoder().submit(_arrow_factorize, column.array)
        for index, column in enumerate(series)
        if n_rows >= _ENCODE_AHEAD_ROWS and _is_arrow_text(column)
    }
    results: list[Any] = [None] * len(series)
    order = [i for i in range(len(series)) if i not in ahead] + list(ahead)
    for index in order:
        coded = ahead[index].result() if index in ahead else None
        results[index] = _analyse(
            series[index], multipliers[index], row_hashes, want_stats, coded=coded
        )
    return row_hashes, results


_ENCODE_AHEAD_ROWS = 100_000
_ENCODERS: dict[int, ThreadPoolExecutor] = {}


def _encoder() -> ThreadPoolExecutor:
    """This process's encoding thread (a forked child must not use its parent's: the thread
    did not survive the fork, and work handed to it would never run)."""
    pid = os.getpid()
    if pid not in _ENCODERS:
        _ENCODERS[pid] = ThreadPoolExecutor(1, thread_name_prefix="mlops-nb-encode")
    return _ENCODERS[pid]


def _is_arrow_text(series: pd.Series) -> bool:
    """pandas' pyarrow-backed strings (pandas 3's ``str``) or an ArrowDtype text column."""
    if not isinstance(series.array, pd.arrays.ArrowExtensionArray):
        return False
    if isinstance(series.dtype, pd.StringDtype):
        return True
    import pyarrow as pa

    dtype = getattr(series.dtype, "pyarrow_dtype", None)
    return dtype is not None and (pa.types.is_string(dtype) or pa.types.is_large_string(dtype))


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
    coded: tuple[np.ndarray, pd.Index] | None = None,
) -> tuple[dict, tuple[int, bytes] | None, np.ndarray | None]:
    """Add each cell's term (its hash times the column's multiplier) to ``into``, the row
    hashes being built, and return (stats, digest of the terms, null mask packed in bits or
    None when no cell is null); only stats when ``into`` is None, only the digest and the
    nulls (stats empty) unless ``want_stats``."""
    dtype = series.dtype
    digest = None
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        labels = series.cat.categories
        if into is not None:
            digest = _fold_codes(labels, codes, multiplier, into)
        stats = _coded_stats(codes, labels, None) if want_stats else {}
        return stats, digest, _packed_nulls(codes < 0)
    numbers = _numeric_view(series)
    if numbers is not None:
        values, nulls, temporal = numbers
        if into is not None:
            digest = _fold_numbers(values, nulls, multiplier, into)
        stats = _number_stats(series, values, nulls, temporal) if want_stats else {}
        return stats, digest, None if nulls is None else _packed_nulls(nulls)
    codes, labels, by_repr = (*coded, False) if coded is not None else _factorize(series)
    if into is not None:
        digest = _fold_codes(labels, codes, multiplier, into)
    stats = _coded_stats(codes, labels, series if by_repr else None) if want_stats else {}
    return stats, digest, _packed_nulls(codes < 0)


def _packed_nulls(mask: np.ndarray) -> np.ndarray | None:
    """A null mask in 1/8 of the memory (kept by the snapshot for the diff), None if no null."""
    return np.packbits(mask) if mask.any() else None


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
    if kind not in "f" and not (kind in "iu" and values.dtype.itemsize == 8):
        as_int = np.empty(width, dtype=np.int64)
    null_term = _null_term(multiplier)

    def fill(start: int, stop: int, out: np.ndarray) -> None:
        chunk = values[start:stop]
        if kind == "f":  # float64 bits, written where the terms go: one buffer stays in cache
            bits = np.add(chunk, 0.0, out=out.view(np.float64)).view(np.uint64)
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
        # take() converts narrower indices itself, slowly
        np.take(table, codes[start:stop].astype(np.intp, copy=False), out=out)

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
    n_nulls = 0 if nulls is None else int(np.count_nonzero(nulls))
    stats: dict[str, Any] = {"nulls": n_nulls}
    n_valid = len(values) - n_nulls
    if temporal:
        stats["min"] = _text(series.min()) if n_valid else None
        stats["max"] = _text(series.max()) if n_valid else None
    elif values.dtype.kind == "b":
        n_true = sum(int(np.count_nonzero(chunk)) for chunk in _valid_chunks(values, nulls))
        counts = {"True": n_true, "False": n_valid - n_true}
        present = [label for label, n in counts.items() if n]
        stats["distinct"] = len(present)
        stats["top"] = max(present, key=counts.__getitem__) if present else None
        stats["counts"] = {label: counts[label] for label in present}
    elif n_valid == 0:
        stats.update({"min": None, "max": None, "mean": None, "std": None})
    else:
        lows, highs = [], []
        for chunk in _valid_chunks(values, nulls):
            if len(chunk):
                lows.append(chunk.min())
                highs.append(chunk.max())
        low, high = min(lows), max(highs)
        stats["min"], stats["max"] = _number(low), _number(high)
        stats["mean"], stats["std"] = _mean_std(values, nulls, n_valid)
        if values.dtype.kind in "iu" and int(high) - int(low) < _COUNTS:
            # a few small integers: class labels, cluster ids, ratings
            counts = np.zeros(int(high) - int(low) + 1, dtype=np.int64)
            for chunk in _valid_chunks(values, nulls):
                counts += np.bincount((chunk - low).astype(np.intp), minlength=len(counts))
            stats["counts"] = {str(int(low) + i): int(n) for i, n in enumerate(counts) if n}
    return stats


_STATS_CHUNK = 1 << 16  # rows read at a time: no full-size temporary, even at 10M rows


def _valid_chunks(values: np.ndarray, nulls: np.ndarray | None):
    """The non-null values, a chunk at a time (views when there is no null)."""
    for start in range(0, len(values), _STATS_CHUNK):
        chunk = values[start : start + _STATS_CHUNK]
        yield chunk if nulls is None else chunk[~nulls[start : start + _STATS_CHUNK]]


def _mean_std(
    values: np.ndarray, nulls: np.ndarray | None, n: int
) -> tuple[float | None, float | None]:
    """Mean and sample std of the ``n`` non-null values in one read (sums and sums of
    squares, chunk by chunk), reading again centred only when the one-pass formula would lose
    precision (values far from zero relative to their spread). einsum, not np.dot: BLAS
    threads made dot 10x slower and erratic on a 2-core machine."""
    with np.errstate(invalid="ignore", over="ignore"):  # infinities: inf - inf is NaN
        total = square_sum = 0.0
        for chunk in _float_chunks(values, nulls):
            total += float(chunk.sum())
            square_sum += float(np.einsum("i,i->", chunk, chunk))
        mean = total / n
        if n == 1 or not math.isfinite(mean):
            return _number(mean), None
        variance = (square_sum - n * mean * mean) / (n - 1)
        if not variance > 1e-6 * mean * mean:
            variance = 0.0
            for chunk in _float_chunks(values, nulls):
                centered = chunk - mean
                variance += float(np.einsum("i,i->", centered, centered))
            variance /= n - 1
    return _number(mean), _number(math.sqrt(max(variance, 0.0)))


def _float_chunks(values: np.ndarray, nulls: np.ndarray | None):
    """The non-null values as float64, a chunk at a time, in one reused buffer."""
    buffer = np.empty(min(len(values), _STATS_CHUNK), dtype=np.float64)
    for chunk in _valid_chunks(values, nulls):
        if chunk.dtype == np.float64:
            yield chunk
        else:
            out = buffer[: len(chunk)]
            np.copyto(out, chunk, casting="unsafe")
            yield out


def _coded_stats(codes: np.ndarray, labels: Any, by_repr: pd.Series | None) -> dict:
    """nulls, distinct and top from factorize-style codes (exact: no sampling needed)."""
    if len(codes) and codes.min() >= 0:  # no null: no need to shift -1 out of the way
        counts = np.append(0, np.bincount(codes, minlength=len(labels)))
    else:
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


def _row_changes(
    before: DataSnapshot, after: DataSnapshot, key: list[str], common: list[str]
) -> dict[str, Any]:
    """Row and null counts (see ``diff``): rows matched by content over the ``key`` columns,
    and, where rows can be paired by identity, the changed rows and null cells; net counts when
    rows cannot be compared (no shared column, or data edited in place since its snapshot)."""
    b_keys = _key_hashes(before, key) if key else None
    a_keys = _key_hashes(after, key) if key else None
    if b_keys is None or a_keys is None:
        return {**_net_rows(before, after), **_net_nulls(before, after, common)}
    positions = _label_positions(before, after)  # per row of after: its row in before, or -1
    paired = positions is not None or len(b_keys) == len(a_keys)  # else: row i is row i
    # rows equal at the same label are matched without sorting; the rest by content
    if positions is None and paired:
        a_same = b_same = b_keys == a_keys
    elif positions is None or len(b_keys) == 0:
        a_same, b_same = np.zeros(len(a_keys), dtype=bool), np.zeros(len(b_keys), dtype=bool)
    else:
        a_same = b_keys[positions] == a_keys  # -1 reads the last row: masked out below
        a_same &= positions >= 0
        b_same = np.zeros(len(b_keys), dtype=bool)
        b_same[positions[a_same]] = True
    b_rest, a_rest = np.flatnonzero(~b_same), np.flatnonzero(~a_same)
    groups, b_counts, a_counts = _count_both(b_keys[b_rest], a_keys[a_rest])
    kept = np.minimum(b_counts, a_counts)
    n_kept = int(kept.sum())
    counts: dict[str, Any] = {
        "rows_added": len(a_rest) - n_kept,
        "rows_removed": len(b_rest) - n_kept,
    }
    if paired and n_kept == 0:
        # every row found by content was found at its label: labels say which row is which
        if positions is None:
            b_pos = a_pos = slice(None)
            n_pairs, dropped = len(a_keys), np.zeros(0, dtype=np.intp)
        else:
            found = positions >= 0
            all_found = bool(found.all())
            b_pos = positions if all_found else positions[found]
            a_pos = slice(None) if all_found else found
            n_pairs = len(b_pos)
            b_paired = np.zeros(len(b_keys), dtype=bool)
            b_paired[b_pos] = True
            dropped = np.flatnonzero(~b_paired)
        counts["rows_changed"] = n_pairs - int(np.count_nonzero(a_same))
        groups, removed = np.unique(b_keys[dropped] >> np.uint64(1), return_counts=True)
        counts["duplicates_removed"] = _removed_copies(before, b_keys, groups, removed)
        counts.update(_nulls_by_pairs(before, after, common, b_pos, a_pos))
    else:
        counts["duplicates_removed"] = _removed_copies(before, b_keys, groups, b_counts - kept)
        # rows in groups of equal keys that lost or gained rows; the others are unchanged
        uneven = groups[b_counts != a_counts]
        b_moved = b_rest[_member_rows(b_keys[b_rest] >> np.uint64(1), uneven)]
        a_moved = a_rest[_member_rows(a_keys[a_rest] >> np.uint64(1), uneven)]
        rows = (b_keys, a_keys, b_moved, a_moved)
        counts.update(_nulls_by_content(before, after, key, common, rows))
    return counts


def _net_rows(before: DataSnapshot, after: DataSnapshot) -> dict[str, int]:
    removed = max(0, before.n_rows - after.n_rows)
    lost_duplicates = max(0, before.n_duplicate_rows - after.n_duplicate_rows)
    return {
        "rows_added": max(0, after.n_rows - before.n_rows),
        "rows_removed": removed,
        "duplicates_removed": min(removed, lost_duplicates),
    }


def _net_nulls(before: DataSnapshot, after: DataSnapshot, common: list[str]) -> dict[str, Any]:
    """The change in each column's null count, marked ``nulls_net``: cells cannot be paired."""
    filled, introduced = {}, {}
    for name in common:
        b_stats, a_stats = before.stats.get(name) or {}, after.stats.get(name) or {}
        if "nulls" not in b_stats or "nulls" not in a_stats:
            continue
        delta = a_stats["nulls"] - b_stats["nulls"]
        if delta < 0:
            filled[name] = -delta
        elif delta > 0:
            introduced[name] = delta
    result: dict[str, Any] = {"nulls_filled": filled, "nulls_introduced": introduced}
    if filled or introduced:
        result["nulls_net"] = True
    return result


def _nulls_by_pairs(
    before: DataSnapshot,
    after: DataSnapshot,
    common: list[str],
    b_pos: np.ndarray,
    a_pos: np.ndarray,
) -> dict[str, dict[str, int]]:
    """Cells null on one side and set on the other, in rows paired by label (or position),
    from the null masks kept at snapshot time (so an edit in place since does not matter)."""
    filled, introduced = {}, {}
    b_masks, a_masks = _null_masks(before), _null_masks(after)
    for name in common:
        b_packed, a_packed = b_masks.get(name), a_masks.get(name)
        if b_packed is None and a_packed is None:
            continue
        b_null = None if b_packed is None else _unpacked(b_packed, before.n_rows, b_pos)
        a_null = None if a_packed is None else _unpacked(a_packed, after.n_rows, a_pos)
        if a_null is None or b_null is None:  # nulls on one side only
            n_filled = 0 if b_null is None else int(np.count_nonzero(b_null))
            n_introduced = 0 if a_null is None else int(np.count_nonzero(a_null))
        else:
            n_filled = int(np.count_nonzero(b_null & ~a_null))
            n_introduced = int(np.count_nonzero(a_null & ~b_null))
        if n_filled:
            filled[name] = n_filled
        if n_introduced:
            introduced[name] = n_introduced
    return {"nulls_filled": filled, "nulls_introduced": introduced}


def _nulls_by_content(
    before: DataSnapshot,
    after: DataSnapshot,
    key: list[str],
    common: list[str],
    rows: tuple[np.ndarray, ...],
) -> dict[str, Any]:
    """Null cells that changed when rows cannot be paired by label: for each column, rows are
    paired on every other key column whose null count did not change (the ``key`` hash minus
    those columns' terms, re-read and checked); net counts if a column cannot be re-read.
    ``rows``: the key hashes of both sides, and the positions of the rows not matched by
    content (a matched row has the same value in every key column: nothing to count)."""
    b_keys, a_keys, b_moved, a_moved = rows
    b_all, a_all = np.arange(len(b_keys)), np.arange(len(a_keys))
    b_masks, a_masks = _null_masks(before), _null_masks(after)
    nully = [c for c in common if b_masks.get(c) is not None or a_masks.get(c) is not None]
    if not nully:
        return {"nulls_filled": {}, "nulls_introduced": {}}
    b_nulls = {c: _unpacked(b_masks.get(c), before.n_rows, slice(None)) for c in nully}
    a_nulls = {c: _unpacked(a_masks.get(c), after.n_rows, slice(None)) for c in nully}
    key_set = set(key)
    changed = [c for c in nully if b_nulls[c].sum() != a_nulls[c].sum()]
    terms: dict[tuple[int, str], np.ndarray | None] = {}

    def without(side: int, snap: DataSnapshot, keys: np.ndarray, names: list[str], at):
        keys = keys[at]
        for name in names:
            if (side, name) not in terms:
                terms[side, name] = _verified_terms(snap, [name])
            if terms[side, name] is None:
                return None
            keys = keys - terms[side, name][at]
        return keys

    filled, introduced = {}, {}
    for name in nully:
        # a column outside the key may differ in rows matched by content: look at them all
        b_at, a_at = (b_moved, a_moved) if name in key_set else (b_all, a_all)
        drop = [c for c in dict.fromkeys([*changed, name]) if c in key_set]
        b_other = without(0, before, b_keys, drop, b_at)
        a_other = without(1, after, a_keys, drop, a_at)
        if b_other is None or a_other is None:
            return _net_nulls(before, after, common)
        n_filled, n_introduced = _paired_null_changes(
            b_other, b_nulls[name][b_at], a_other, a_nulls[name][a_at]
        )
        if n_filled:
            filled[name] = n_filled
        if n_introduced:
            introduced[name] = n_introduced
    return {"nulls_filled": filled, "nulls_introduced": introduced}


def _paired_null_changes(
    b_keys: np.ndarray, b_null: np.ndarray, a_keys: np.ndarray, a_null: np.ndarray
) -> tuple[int, int]:
    """(filled, introduced) when rows pair up within groups of equal keys: in a group of kb
    rows before (nb null) and ka after (na null), min(kb, ka) pairs, nulls paired with nulls
    first; what remains is the fewest cells that must have changed."""
    keys = np.concatenate([b_keys, a_keys])
    order = np.argsort(keys)
    is_after = np.zeros(len(keys), dtype=np.int64)
    is_after[len(b_keys) :] = 1
    is_null = np.concatenate([b_null, a_null]).astype(np.int64)
    starts = _run_starts(keys[order])
    if len(starts) == 0:
        return 0, 0
    side, null = is_after[order], is_null[order]
    ka = np.add.reduceat(side, starts)
    kb = np.diff(starts, append=len(keys)) - ka
    na = np.add.reduceat(side & null, starts)
    nb = np.add.reduceat(null, starts) - na
    pairs = np.minimum(kb, ka)
    b_paired_nulls = np.maximum(0, nb - (kb - pairs))  # at least this many stay paired
    a_paired_nulls = np.maximum(0, na - (ka - pairs))
    filled = np.maximum(0, b_paired_nulls - np.minimum(na, pairs)).sum()
    introduced = np.maximum(0, a_paired_nulls - np.minimum(nb, pairs)).sum()
    return int(filled), int(introduced)


def _null_masks(snap: DataSnapshot) -> dict[str, np.ndarray | None]:
    source = snap._source
    assert source is not None
    return dict(zip(source.columns, source.nulls, strict=True))


def _unpacked(packed: np.ndarray | None, n: int, positions: np.ndarray | slice) -> np.ndarray:
    if packed is None:
        return np.zeros(n, dtype=bool)[positions]
    return np.unpackbits(packed, count=n).view(bool)[positions]


def _range_positions(index: pd.RangeIndex, labels: np.ndarray) -> np.ndarray:
    """index.get_indexer(labels) for integer labels, by arithmetic (a few passes)."""
    positions = labels.astype(np.int64, copy=False) - index.start
    if index.step != 1:
        positions, remainder = np.divmod(positions, index.step)
        positions[remainder != 0] = -1
    positions[(positions < 0) | (positions >= len(index))] = -1
    return positions


def _label_positions(before: DataSnapshot, after: DataSnapshot) -> np.ndarray | None:
    """For each row of ``after``, the position in ``before`` of the row with its pandas index
    label, -1 when there is none; None without an index, when labels repeat on either side,
    or when the labels are the same (then row i is row i)."""
    b_index = before._source.index if before._source is not None else None
    a_index = after._source.index if after._source is not None else None
    if b_index is None or a_index is None:
        return None
    if len(b_index) != before.n_rows or len(a_index) != after.n_rows:
        return None
    if b_index is a_index or (isinstance(b_index, pd.RangeIndex) and b_index.equals(a_index)):
        return None  # the same labels (a RangeIndex compares in O(1))
    try:
        if isinstance(b_index, pd.RangeIndex) and a_index.dtype.kind in "iu":
            positions = _range_positions(b_index, a_index.to_numpy())
        elif not b_index.is_unique:
            return None
        else:
            positions = b_index.get_indexer(a_index)
    except (TypeError, ValueError, pd.errors.InvalidIndexError):
        return None
    positions = positions.astype(np.intp, copy=False)
    found = positions if len(positions) and positions.min() >= 0 else positions[positions >= 0]
    in_order = len(found) < 2 or bool((found[1:] > found[:-1]).all())  # then labels unique
    if not in_order and np.bincount(found).max() > 1:
        return None
    return positions


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
    before: DataSnapshot, b_keys: np.ndarray, groups: np.ndarray, removed: np.ndarray
) -> int:
    """How many removed rows were whole-row copies of another row in ``before``: ``groups``
    are the sorted keys (hashes without their lowest bit) that lost ``removed`` rows. The key
    may be only some columns, so rows equal on it may still differ elsewhere: every row of
    ``before`` in those groups is looked at, usually few."""
    lost = removed > 0
    if not lost.any():
        return 0
    b_groups = b_keys >> np.uint64(1)
    members = _member_rows(b_groups, groups[lost])
    key, full = b_groups[members], before.row_hashes[members]
    order = np.lexsort((full, key))
    key, full = key[order], full[order]
    starts = _run_starts(key)  # in sorted order, as groups are
    new_row = np.ones(len(key), dtype=np.int64)
    new_row[1:] = (key[1:] != key[:-1]) | (full[1:] != full[:-1])
    copies = np.diff(starts, append=len(key)) - np.add.reduceat(new_row, starts)
    return int(np.minimum(removed[lost], copies).sum())


def _member_rows(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Positions of ``values`` found in the sorted ``members``: a small bitmap on the low bits
    rules out most rows in one cache-friendly pass, an exact test settles the rest."""
    size = 1 << max(10, min(24, (len(members) * 16).bit_length()))
    low_bits = np.uint64(size - 1)
    table = np.zeros(size, dtype=bool)
    table[(members & low_bits).view(np.int64)] = True
    maybe = np.flatnonzero(np.take(table, (values & low_bits).view(np.int64)))
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
            digest = _analyse(column, _multiplier(name), total, want_stats=False)[1]
        except (IndexError, KeyError, ValueError, TypeError):  # reshaped in place
            return None
        if digest != source.digests[i]:
            return None
    return total


# --- the one-line summary ------------------------------------------------------------------


def change_phrases(change: dict | None) -> list[str]:
    """What a ``diff`` record counted, in words: the one description of a data change, used by
    the notebook's summary line and the generated docs alike. Rows are matched by content, so
    an edited row is one removed and one added: ``rows_changed`` says how many (rows paired by
    label); without it (rows that could not be paired, older logs) as many removed and added
    rows as pair up are reported as changed. Null counts marked ``nulls_net`` are changes in
    a column's null count, worded so ("356 fewer nulls in b"). Keys missing from a record
    (logs written by older versions) count as nothing changed."""
    if not change:
        return []
    phrases = []
    duplicates = _int(change.get("duplicates_removed"))
    added = _int(change.get("rows_added"))
    other_removed = max(0, _int(change.get("rows_removed")) - duplicates)
    if "rows_changed" in change:
        edited = min(_int(change["rows_changed"]), other_removed, added)
    else:
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
    net = bool(change.get("nulls_net"))
    for key, verb in (("nulls_filled", "filled"), ("nulls_introduced", "introduced")):
        per_column = {str(k): _int(n) for k, n in (change.get(key) or {}).items()}
        if not per_column:
            continue
        if net:  # a change of the null count: nulls may have left or come with whole rows
            word = "fewer" if key == "nulls_filled" else "more"
            noun = {n: f"{n:,} {word} null" + ("" if n == 1 else "s") for n in per_column.values()}
            if len(per_column) <= 3:
                phrases += [f"{noun[n]} in {name}" for name, n in per_column.items()]
            else:
                total = sum(per_column.values())
                plural = "" if total == 1 else "s"
                phrases.append(f"{total:,} {word} null{plural} in {len(per_column)} columns")
        elif len(per_column) <= 3:
            phrases += [f"{_count(n, 'null')} {verb} in {name}" for name, n in per_column.items()]
        else:
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
