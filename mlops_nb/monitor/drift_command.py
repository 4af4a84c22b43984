"""``mlops-nb drift`` and ``drift_from_log``: find the reference and the current data, test.

A reference is a file (csv, parquet), a registered model (``NAME@ALIAS``, ``NAME:VERSION``:
the profile of its training data stored at registration), or ``RUN_ID:DATASET`` (the stored
profile of that dataset version, else the value the pipeline run saved). The current data is
a file, a DataFrame, or the requests a served model answered (``--requests NAME@ALIAS
--since 1d``); with requests, the model's outputs are also tested against its outputs on its
evaluation data (prediction drift). Results go to the log's ``drift`` table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.errors import MlopsError

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_CODES_HELP = "exit codes: 0 no dataset drift, 1 dataset drift, 2 a usage error"
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DriftInputError(MlopsError):
    """A reference or current data that cannot be found or read."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mlops-nb drift``."""
    parser.add_argument(
        "--reference", "-r", required=True, metavar="REF",
        help="NAME@ALIAS or NAME:VERSION (the training data profile kept at registration), "
        "RUN_ID:DATASET (a dataset of a run), or a .csv/.parquet file",
    )  # fmt: skip
    current = parser.add_mutually_exclusive_group(required=True)
    current.add_argument("--current", "-c", metavar="FILE", help="the new data (.csv/.parquet)")
    current.add_argument(
        "--requests", metavar="NAME@ALIAS",
        help="the requests this served model answered (and its outputs: prediction drift)",
    )  # fmt: skip
    parser.add_argument(
        "--since", metavar="AGE", help="with --requests: e.g. 1d, 6h, 30m, or an ISO time (UTC)"
    )
    parser.add_argument("--format", "-f", choices=("text", "json", "html"), default="text")
    parser.add_argument("--out", "-o", metavar="FILE", help="write the report there")
    parser.add_argument("--columns", metavar="A,B", help="test only these columns")
    parser.add_argument(
        "--method", action="append", default=[], metavar="COL=METHOD",
        help="test COL with METHOD (ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div); "
        "*=METHOD for every column",
    )  # fmt: skip
    parser.add_argument(
        "--threshold", action="append", default=[], metavar="COL=VALUE",
        help="drift threshold of COL's method (*=VALUE for every column)",
    )  # fmt: skip
    parser.add_argument(
        "--drift-share", type=float, default=0.5, metavar="F",
        help="the dataset drifts when this share of columns drift (default: 0.5)",
    )  # fmt: skip
    parser.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=None,
        help="record the results in the log's drift table (default: yes when a model, a run or "
        "requests are involved; no for two files)",
    )  # fmt: skip


def needs_log(args: argparse.Namespace) -> bool:
    """Whether the command reads or writes the log (two files alone do not)."""
    if args.record:
        return True
    return bool(args.requests) or not _is_file_name(args.reference)


def run(args: argparse.Namespace, log: Any) -> int:
    """Run ``mlops-nb drift``; exit code 1 when the dataset drifted."""
    if args.since and not args.requests:
        raise DriftInputError("--since goes with --requests")
    report = drift_from_log(
        log,
        args.reference,
        current=args.current,
        requests=args.requests,
        since=args.since,
        columns=_split(args.columns),
        methods=_pairs(args.method, "--method", str),
        thresholds=_pairs(args.threshold, "--threshold", float),
        drift_share=args.drift_share,
        record=args.record,
    )
    if args.format == "json":
        text = report.to_json()
    elif args.format == "html":
        text = report.to_html()
    else:
        text = report.to_text()
    if args.out:
        Path(args.out).write_text(text + ("\n" if not text.endswith("\n") else ""))
        print(f"{report.summary()}; report written to {args.out}")
    else:
        print(text)
    if report.check_id and args.format == "text":
        print(f"recorded as check {report.check_id[:8]} (the drift view)", file=sys.stderr)
    return EXIT_DRIFT if report.dataset_drift else EXIT_NO_DRIFT


def drift_from_log(
    log: Any,
    reference: str,
    current: str | Path | pd.DataFrame | None = None,
    requests: str | None = None,
    since: Any = None,
    *,
    record: bool | None = None,
    **options: Any,
) -> Any:
    """Resolve ``reference`` and the current data (a file, a DataFrame, or the requests of
    ``requests`` since ``since``), test them with ``monitor.drift.drift(**options)``, and
    record the results when ``record`` (default: when a model, run or requests are involved).
    """
    from mlops_nb.monitor.drift import drift

    if (current is None) == (requests is None):
        raise DriftInputError("give the current data: a file or DataFrame, or requests=NAME@ALIAS")
    ref = resolve_reference(log, reference)
    served = None
    if requests is not None:
        served = served_frames(log, requests, since)
        frame, current_label = served.inputs, served.label
    elif isinstance(current, pd.DataFrame):
        frame, current_label = current, "DataFrame"
    else:
        frame, current_label = read_frame(current), str(current)
    report = drift(ref.data, frame, **options)
    report.reference_label, report.current_label = ref.label, current_label
    model_name, model_version = ref.model_name, ref.model_version
    if served is not None:
        model_name, model_version = served.model_name, served.model_version
        report.predictions = _prediction_drift(log, served, options.get("drift_share", 0.5))
    involved = ref.model_name is not None or ref.from_log or served is not None
    if record if record is not None else involved:
        record_report(log, report, model_name, model_version)
    return report


def record_report(
    log: Any, report: Any, model_name: str | None = None, model_version: int | None = None
) -> str:
    """Write a report's rows to the ``drift`` table under a new check id (also set on it)."""
    if log is None:
        raise DriftInputError("no log to record the results in (give --log or --no-record)")
    report.check_id = uuid.uuid4().hex
    for row in report.records(report.check_id, model_name, model_version):
        log.record("drift", row)
    log.flush()
    return report.check_id


# ---------------------------------------------------------------------- the reference
@dataclass
class Reference:
    data: pd.DataFrame | dict
    label: str
    model_name: str | None = None
    model_version: int | None = None
    from_log: bool = False


def resolve_reference(log: Any, text: str) -> Reference:
    """A file, ``NAME@ALIAS`` / ``NAME:VERSION`` / ``NAME``, or ``RUN_ID:DATASET``."""
    if _is_file_name(text):
        return Reference(read_frame(text), Path(text).name)
    if log is None:
        raise DriftInputError(f"{text!r} is not a file, and there is no log to look it up in")
    name, _, after = str(text).partition(":")
    if after and not after.isdigit():
        return _run_dataset(log, name, after)
    from mlops_nb.registry.load import resolve

    record = resolve(log, text)
    version = int(record["version"])
    found = log.profiles(model_name=record["name"], model_version=version, kind="inputs")
    if found.empty:
        raise DriftInputError(
            f"model {record['name']}:{version} has no stored profile of its training data "
            "(it is kept when the model is registered): give the training data as a file"
        )
    label = f"{record['name']}:{version} training data"
    return Reference(_profile(found), label, record["name"], version, from_log=True)


def _run_dataset(log: Any, run_id: str, dataset: str) -> Reference:
    """The stored profile of a run's dataset (its last version, or ``NAME@vN``), else the
    value the pipeline run saved under that name."""
    record = log.run(run_id)
    name, _, version = dataset.partition("@v")
    datasets = record.datasets
    if len(datasets):
        matches = datasets[datasets["name"] == name]
        if version:
            matches = matches[matches["version"] == int(version)]
        if len(matches):
            dataset_id = str(matches.sort_values("version").iloc[-1]["dataset_id"])
            found = log.profiles(dataset_id=dataset_id)
            if len(found):
                return Reference(_profile(found), f"{record.run_id[:8]}:{dataset}", from_log=True)
    saved = log.checkpoints(record.run_id, names=[name])
    if saved.empty:
        raise DriftInputError(
            f"run {record.run_id[:8]} has no profile and no saved value of {name!r}: "
            "run the notebook with mlops-nb run (values are saved), or give a file"
        )
    from mlops_nb.capture.checkpoint import load_saved

    row = saved.iloc[0]
    if str(row["format"]) not in ("parquet", "polars.parquet"):
        raise DriftInputError(f"{name!r} of run {record.run_id[:8]} is not a table")
    value = load_saved(log, name, str(row["format"]), str(row["path"]))
    frame = value if isinstance(value, pd.DataFrame) else value.to_pandas()
    return Reference(frame, f"{record.run_id[:8]}:{dataset}", from_log=True)


def _profile(found: pd.DataFrame) -> dict:
    profile = found.iloc[0]["profile"]
    return json.loads(profile) if isinstance(profile, str) else dict(profile)


def _is_file_name(text: str) -> bool:
    path = Path(str(text))
    return path.suffix.lower() in (".csv", ".parquet", ".pq") or path.is_file()


# ---------------------------------------------------------------------- the current data
def read_frame(path: str | Path) -> pd.DataFrame:
    """A .csv or .parquet file as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise DriftInputError(f"no file {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise DriftInputError(f"cannot read {str(path)!r}: {error}") from None
    raise DriftInputError(f"{str(path)!r}: give a .csv or .parquet file")


@dataclass
class Served:
    inputs: pd.DataFrame
    outputs: pd.Series
    model_name: str
    model_version: int
    label: str


def served_frames(log: Any, ref: str, since: Any = None) -> Served:
    """The inputs (one frame) and outputs of the requests the version at ``ref`` answered."""
    from mlops_nb.registry.load import resolve

    record = resolve(log, ref)
    name, version = record["name"], int(record["version"])
    start = parse_since(since)
    answered = log.served_requests(name, version, start)
    window = "" if start is None else f" since {start:%Y-%m-%d %H:%M} UTC"
    if answered.empty:
        raise DriftInputError(f"no answered requests of {name}:{version}{window}")
    columns: list[str] | None = None
    rows: list[list[Any]] = []
    outputs: list[Any] = []
    for inputs, predicted in zip(answered["inputs"], answered["outputs"], strict=True):
        body = json.loads(inputs) if isinstance(inputs, str) else inputs
        if columns is None:
            columns = list(body["columns"])
        elif list(body["columns"]) != columns:
            body = _reordered(body, columns)
        rows.extend(body["data"])
        if predicted is not None:
            outputs.extend(json.loads(predicted) if isinstance(predicted, str) else predicted)
    frame = pd.DataFrame(rows, columns=columns)
    label = f"{len(answered)} requests to {name}:{version}{window}"
    return Served(frame, pd.Series(outputs, name="prediction"), name, version, label)


def _reordered(body: dict, columns: list[str]) -> dict:
    """A request whose columns came in another order (or with some missing: None)."""
    position = {c: i for i, c in enumerate(body["columns"])}
    data = [[row[position[c]] if c in position else None for c in columns] for row in body["data"]]
    return {"columns": columns, "data": data}


def parse_since(since: Any) -> datetime | None:
    """``1d``, ``6h``, ``30m``, ``2w``, ``90s`` ago, an ISO time (UTC), or a datetime; as the
    naive UTC time the log stores."""
    if since is None or since == "":
        return None
    if isinstance(since, timedelta):
        return datetime.now(UTC).replace(tzinfo=None) - since
    if isinstance(since, datetime):
        return since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
    match = _AGE.match(str(since))
    if match:
        amount = timedelta(**{_AGE_UNITS[match[2]]: float(match[1])})
        return datetime.now(UTC).replace(tzinfo=None) - amount
    try:
        moment = pd.Timestamp(str(since))
    except ValueError:
        raise DriftInputError(
            f"bad --since {since!r}: use e.g. 1d, 6h, 30m or 2026-01-31T12:00"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return moment.to_pydatetime()


def _prediction_drift(log: Any, served: Served, drift_share: float) -> Any:
    """The served outputs against the model's outputs on its evaluation data, if stored."""
    from mlops_nb.monitor.drift import drift

    found = log.profiles(
        model_name=served.model_name, model_version=served.model_version, kind="evaluation"
    )
    if found.empty or served.outputs.empty:
        return None
    predictions = _profile(found).get("predictions")
    if not predictions:
        return None
    reference = pd.DataFrame({"prediction": pd.Series(predictions).infer_objects()})
    current = pd.DataFrame({"prediction": served.outputs.infer_objects()})
    report = drift(reference, current, drift_share=drift_share)
    report.reference_label = f"{served.model_name}:{served.model_version} evaluation outputs"
    report.current_label = f"outputs of {served.label}"
    return report


# ---------------------------------------------------------------------- option parsing
def _split(text: str | None) -> list[str] | None:
    return None if not text else [c.strip() for c in text.split(",") if c.strip()]


def _pairs(items: list[str], option: str, convert: Any) -> dict[str, Any]:
    pairs = {}
    for item in items:
        column, sep, value = item.rpartition("=")
        if not sep or not column or not value:
            raise DriftInputError(f"bad {option} {item!r}: use COLUMN=VALUE (or *=VALUE)")
        try:
            pairs[column] = convert(value)
        except ValueError:
            raise DriftInputError(f"bad {option} {item!r}: {value!r} is not a number") from None
    return pairs
