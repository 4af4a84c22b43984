"""``mlops-nb predict``: score a CSV or Parquet file in chunks, recorded like served requests.

Each chunk is checked against the signature, predicted, appended to the output (the input
columns plus ``prediction``, ``request_id`` and ``row_index``, so ground truth can be sent back
to ``POST /feedback`` or recorded later), and journaled as one ``requests`` row (protocol
``batch``). The output is written under a temporary name and renamed at the end: a failed run
leaves no half file. A bad value stops the run with one line naming the file row and column.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.registry.load import LoadedModel, load_model
from mlops_nb.registry.signature import SignatureError
from mlops_nb.serve.model import predict_frame
from mlops_nb.serve.protocol import Table


class PredictError(MlopsError):
    """A batch scoring run that cannot go on (bad file, bad value)."""


def predict_file(
    log: Any,
    model: LoadedModel,
    source: Path,
    target: Path,
    chunk_rows: int = 10_000,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``source`` into ``target``; returns counts and the batch id."""
    from tqdm import tqdm

    in_format, out_format = _format(source), _format(target)
    batch_id = uuid.uuid4().hex[:12]
    temporary = target.with_name(f".{target.name}.{batch_id}.tmp")
    writer = None
    rows = chunks = 0
    total = _row_count(source, in_format)
    bar = tqdm(total=total, unit="rows", desc=f"{model.name}:{model.version}",
               disable=not progress, leave=False)  # fmt: skip
    try:
        for number, chunk in enumerate(_chunks(source, in_format, chunk_rows)):
            started = time.perf_counter()
            request_id = f"{batch_id}-{number}"
            try:
                predictions = predict_frame(model, chunk)
            except SignatureError as error:
                raise PredictError(f"{source.name}, rows {rows + 1}-{rows + len(chunk)}: "
                                   f"{error}") from None  # fmt: skip
            except Exception as error:  # noqa: BLE001 - one line, not a traceback
                where = f"rows {rows + 1}-{rows + len(chunk)}"
                raise PredictError(
                    f"{source.name}: the model could not score {where}: {error}"
                ) from None
            out = chunk.copy()
            out["prediction"] = predictions
            out["request_id"] = request_id
            out["row_index"] = range(len(chunk))
            writer = _write(out, temporary, out_format, writer)
            if log is not None:
                table = Table({str(c): chunk[c].astype(object).where(chunk[c].notna(), None)
                               .tolist() for c in chunk.columns}, len(chunk))  # fmt: skip
                log.record("requests", {
                    "request_id": request_id, "model_name": model.name,
                    "model_version": model.version, "protocol": "batch", "status": 200,
                    "n_rows": len(chunk),
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                    "inputs": orjson.dumps(table.as_split(), default=str).decode(),
                    "outputs": orjson.dumps(predictions.tolist(), default=str).decode(),
                    "error": None, "server": f"predict:{source.name}", "created_at": time.time(),
                })  # fmt: skip
            rows += len(chunk)
            chunks += 1
            bar.update(len(chunk))
        if writer is not None and out_format == "parquet":
            writer.close()
            writer = None
        if chunks == 0:
            raise PredictError(f"{source} has no rows")
        os.replace(temporary, target)
    finally:
        bar.close()
        if writer is not None and out_format == "parquet":
            writer.close()
        temporary.unlink(missing_ok=True)
    return {"rows": rows, "chunks": chunks, "batch_id": batch_id}


def predict_from_cli(args: Any) -> int:
    import sys

    from mlops_nb import open_log

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise PredictError(f"no input file {source}")
    _format(source)
    _format(target)
    log = open_log(args.log, create=False)
    model = load_model(log, args.model, trust=args.trust)
    done = predict_file(log, model, source, target, chunk_rows=args.chunk_rows,
                        progress=not args.quiet and sys.stderr.isatty())  # fmt: skip
    log.flush()
    print(f"{done['rows']} rows scored by {model.name}:{model.version} -> {target} "
          f"(recorded as requests {done['batch_id']}-0..{done['chunks'] - 1})")  # fmt: skip
    return 0


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise PredictError(f"{path.name}: use a .csv or .parquet file")


def _row_count(path: Path, fmt: str) -> int | None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def _chunks(path: Path, fmt: str, size: int) -> Iterator[pd.DataFrame]:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
                yield batch.to_pandas()
        else:
            yield from pd.read_csv(path, chunksize=size)
    except (OSError, ValueError) as error:
        raise PredictError(f"{path.name} could not be read: {str(error).splitlines()[0]}") from None


def _write(frame: pd.DataFrame, path: Path, fmt: str, writer: Any) -> Any:
    if fmt == "csv":
        frame.to_csv(path, mode="a" if writer else "w", header=not writer, index=False)
        return True
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table.cast(writer.schema))
    return writer
