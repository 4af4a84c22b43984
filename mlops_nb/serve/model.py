"""The served model: which version answers now, hot reload, and batched scoring.

``ServedModel`` holds the current ``LoadedModel``. When it was started from an alias, a thread
asks the log every ``poll_s`` where the alias points (one small query); when it moved, the new
version is loaded in that thread (sha256 and skops checks as at startup) and swapped in with
one assignment. A batch reads ``current`` once, so every request of a batch is answered by
one version and says which.

``Batcher`` groups concurrent requests into one predict call: it takes whatever is queued
when the previous batch ends (up to ``max_rows`` rows / ``max_requests`` requests), and waits
up to ``max_wait_s`` for more only while other requests are still being received. The data
of a batch becomes one DataFrame, checked against the signature once; when that fails (or the
model raises), each request is checked and scored alone, so only the bad ones are refused.
Scoring runs in one thread, off the event loop.

Requests are checked twice. The signature refuses (400) what the model cannot score: a
missing column, a wrong type, a null where training had none, an unseen category. The data
checks of the training data (``capture/expectations.py``: ranges, allowed values of text the
signature leaves open) are then run on each scored batch, and what fails is answered all the
same: a value outside the training range is usually a real case the model should answer
(refusing it would turn a shift in the data into an outage), but it is worth seeing. Each
such request's row in the log says which checks failed and on how many rows (``error``
column, status 200, never a value), and ``/metrics`` counts the rows per column and check
(``mlops_nb_input_check_failures_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_nb.registry.load import LoadedModel, ModelLoadError, ModelRef, load_model
from mlops_nb.registry.signature import SignatureError
from mlops_nb.serve.protocol import BadRequest, Table


@dataclass
class Outcome:
    """What one request gets back: the version that answered, predictions or an error."""

    version: int
    predictions: Any = None  # a numpy array slice
    error: BadRequest | None = None
    checks: list[tuple[str, str, int]] = field(default_factory=list)  # (column, check, rows)


class ServedModel:
    """The version being served, and the thread that follows an alias."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        log: Any = None,
        ref: ModelRef | None = None,
        trust: Iterable[str] = (),
        poll_s: float = 1.0,
        on_switch: Callable[[LoadedModel, LoadedModel], None] | None = None,
    ):
        self.current = model
        self._log = log
        self._ref = ref
        self._trust = tuple(trust)
        self._poll_s = poll_s
        self._on_switch = on_switch
        self._refused: set[int] = set()  # versions that failed to load: not retried
        self._unchanged_since: Any = None  # the log's change token at the last check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def follows_alias(self) -> bool:
        return self._log is not None and self._ref is not None and self._ref.alias is not None

    def start(self) -> None:
        if self.follows_alias and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="mlops-nb-alias", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check_alias(self) -> bool:
        """Load and switch to the version the alias points at now; True when it switched."""
        assert self._ref is not None and self._ref.alias is not None
        token = self._log.change_token()  # a stat, where the query opens the file
        if token is not None and token == self._unchanged_since:
            return False
        record = self._log.model_version(self._ref.name, alias=self._ref.alias)
        self._unchanged_since = token
        if record is None:
            return False
        version = int(record["version"])
        if version == self.current.version or version in self._refused:
            return False
        try:
            new = load_model(self._log, f"{self._ref.name}:{version}", trust=self._trust)
        except ModelLoadError as error:
            self._refused.add(version)
            print(f"mlops-nb serve: keeping version {self.current.version}: {error}",
                  file=sys.stderr)  # fmt: skip
            return False
        old, self.current = self.current, new
        if self._on_switch:
            self._on_switch(old, new)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.check_alias()
            except Exception as error:  # noqa: BLE001 - a log hiccup must not stop serving
                print(f"mlops-nb serve: alias check failed: {error}", file=sys.stderr)


class Batcher:
    """Concurrent requests -> one predict call (see the module docstring)."""

    def __init__(
        self,
        served: ServedModel,
        *,
        max_rows: int = 4096,
        max_requests: int = 64,
        max_wait_s: float = 0.002,
        observe: Callable[[LoadedModel, int, int, Any], None] | None = None,
    ):
        self.served = served
        self.max_rows = max_rows
        self.max_requests = max_requests
        self.max_wait_s = max_wait_s
        self.arriving = 0  # requests being received or parsed, not yet queued
        self._observe = observe
        self._queue: asyncio.Queue[tuple[Table, asyncio.Future[Outcome]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mlops-nb-predict")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, table: Table) -> Outcome:
        assert self._queue is not None, "Batcher.start() first"
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((table, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            rows = batch[0][0].n_rows
            deadline = None
            while len(batch) < self.max_requests and rows < self.max_rows:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    if self.arriving <= 0 or self.max_wait_s <= 0:
                        break
                    deadline = deadline or loop.time() + self.max_wait_s
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                batch.append(item)
                rows += item[0].n_rows
            model = self.served.current
            tables = [table for table, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self.score, model, tables)
            except Exception as error:  # noqa: BLE001 - answered, never left hanging
                outcomes = [Outcome(model.version, error=_model_error(error))] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    def score(self, model: LoadedModel, tables: list[Table]) -> list[Outcome]:
        """Predict for several requests at once; on any failure, one by one."""
        columns = combine(tables)
        if len(tables) > 1:
            try:
                predictions, frame = predict_columns(model, columns)
            except Exception:  # noqa: BLE001 - find which request is at fault
                return [self.score(model, [table])[0] for table in tables]
            self._observed(model, tables, predictions)
            checks = self._checks(model, frame, tables)
            outcomes, start = [], 0
            for table, found in zip(tables, checks, strict=True):
                outcomes.append(Outcome(model.version, predictions[start : start + table.n_rows],
                                        checks=found))  # fmt: skip
                start += table.n_rows
            return outcomes
        try:
            predictions, frame = predict_columns(model, columns)
        except SignatureError as error:
            return [Outcome(model.version, error=BadRequest(str(error)))]
        except Exception as error:  # noqa: BLE001 - the model refused this input
            return [Outcome(model.version, error=_model_error(error))]
        self._observed(model, tables, predictions)
        return [Outcome(model.version, predictions, checks=self._checks(model, frame, tables)[0])]

    def _checks(
        self, model: LoadedModel, frame: pd.DataFrame, tables: list[Table]
    ) -> list[list[tuple[str, str, int]]]:
        """Per request, the checks of its rows that failed against the training data's
        expectations (ranges, allowed values): answered all the same, and recorded."""
        found: list[list[tuple[str, str, int]]] = [[] for _ in tables]
        expectations = input_expectations(model)
        if expectations is None:
            return found
        from mlops_nb.capture.expectations import SERVING_CHECKS, failing_rows

        bounds = np.cumsum([0, *(table.n_rows for table in tables)])
        try:
            for column, check, _, failing in failing_rows(frame, expectations, SERVING_CHECKS):
                if failing is None or not failing.any():
                    continue
                for index in range(len(tables)):
                    count = int(np.count_nonzero(failing[bounds[index] : bounds[index + 1]]))
                    if count:
                        found[index].append((column, check, count))
        except Exception:  # noqa: BLE001 - a check must never cost an answer
            return [[] for _ in tables]
        return found

    def _observed(self, model: LoadedModel, tables: list[Table], predictions: Any) -> None:
        if self._observe is not None:
            with contextlib.suppress(Exception):
                self._observe(model, len(tables), len(predictions), predictions)


def combine(tables: list[Table]) -> dict[str, list[Any]]:
    """The raw columns of several requests as one table (absent columns as nulls)."""
    if len(tables) == 1:
        return tables[0].columns
    names: dict[str, None] = {}
    for table in tables:
        names.update(dict.fromkeys(table.columns))
    columns: dict[str, list[Any]] = {}
    for name in names:
        values: list[Any] = []
        for table in tables:
            column = table.columns.get(name)
            values.extend(column if column is not None else [None] * table.n_rows)
        columns[name] = values
    return columns


def input_expectations(model: LoadedModel) -> Any:
    """The expectations of a version's training data (kept in its signature at registration),
    read once per loaded version; None when it has none."""
    key = (model.name, model.version, model.sha256)
    if key not in _EXPECTATIONS:
        from mlops_nb.capture.expectations import Expectations, ExpectationsError

        spec = (model.record.get("signature") or {}).get("expectations")
        try:
            _EXPECTATIONS[key] = Expectations.from_dict(spec) if spec else None
        except ExpectationsError:
            _EXPECTATIONS[key] = None
    return _EXPECTATIONS[key]


_EXPECTATIONS: dict[tuple[str, int, str], Any] = {}  # per loaded version


def checks_text(checks: list[tuple[str, str, int]]) -> str:
    """``outside the training data: age max (2 rows), region allowed (1 row)``"""
    parts = [f"{column} {check} ({rows} row{'s' if rows != 1 else ''})"
             for column, check, rows in checks]  # fmt: skip
    return "warning: outside the training data: " + ", ".join(parts)


_PARALLEL_ROWS = 2_000  # a batch this large is split by rows over the cores
_CORES = os.cpu_count() or 1
_SCORERS = ThreadPoolExecutor(_CORES, thread_name_prefix="mlops-nb-score")


def predict_columns(
    model: LoadedModel, columns: dict[str, list[Any]]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Predictions for a request's raw columns, and the checked frame they were made from."""
    if model.signature.columns:
        checked = model.signature.check_columns(columns)
    else:
        checked = pd.DataFrame(columns)
    return _predict_checked(model, checked), checked


def predict_frame(model: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    """Signature check, then the pipeline's predict, as a 1-D numpy array."""
    checked = model.signature.check(frame) if model.signature.columns else frame
    return _predict_checked(model, checked)


def _predict_checked(model: LoadedModel, checked: pd.DataFrame) -> np.ndarray:
    """The pipeline's predict. A large batch is cut into one slice of rows per core, scored
    at once in threads: the heavy part of most estimators (a forest's tree walks, numpy)
    runs without the GIL. Each row's prediction is exactly what one call would give, in the
    same order (the batcher already relies on rows being scored independently); measured on
    2 cores, a 10,000-row forest request took 77 ms this way, 86 ms with the forest's own
    threads (which also add the trees up in varying order). Small batches stay on this
    thread, where handing work over would cost more than it saves."""
    if len(checked) < _PARALLEL_ROWS or _CORES < 2:
        return np.asarray(model.pipeline.predict(checked))
    pipeline = model.pipeline
    final, inputs = pipeline, checked
    if isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1:
        # the transformers once, on the whole batch (what Pipeline.predict does); then only
        # the final estimator's rows are cut: its per-call overhead is not paid per slice,
        # and the slices do not fight over the GIL for pandas work (77 -> 68 ms at 10,000)
        final, inputs = pipeline.steps[-1][1], pipeline[:-1].transform(checked)
    bounds = np.linspace(0, inputs.shape[0], _CORES + 1).astype(int)
    take = inputs.iloc.__getitem__ if isinstance(inputs, pd.DataFrame) else inputs.__getitem__
    slices = [take(slice(start, stop)) for start, stop in zip(bounds, bounds[1:], strict=False)]
    parts = _SCORERS.map(final.predict, slices)
    return np.concatenate([np.asarray(part) for part in parts])


def _model_error(error: BaseException) -> BadRequest:
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    return BadRequest(f"the model could not score this input ({type(error).__name__}: {line})",
                      status=400)  # fmt: skip
