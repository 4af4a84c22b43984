"""``mlops-nb validate`` and what links data checks to the log: find expectations, record checks.

An expectations reference is one of:

- ``FILE.yaml``: an expectations file (written by ``--infer``, edited by hand);
- ``NAME@ALIAS`` or ``NAME:VERSION``: the expectations of a registered version's training
  data, kept with the version when it was registered (in its signature, so an exported model
  has them too);
- ``RUN_ID:DATASET`` or ``RUN_ID:DATASET@vN``: a dataset version a run recorded (its last
  version of that name, or version N). The first time they are asked for, its expectations are
  inferred from the best source at hand and stored with the version (``expectations`` table,
  source 'inferred'): the frame itself when the kernel that made it still holds it, else the
  value the pipeline run saved (a checkpoint), else the stats the log kept of it.

Personal data: a column flagged or declared in the reference's ``pii_findings`` (the latest
finding per dataset version and column), or marked ``personal`` in the expectations, gets no
value inferred for it and none shown or recorded when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.capture.expectations import (
    CheckReport,
    Expectations,
    check_frame,
    expectations_from_stats,
    infer_expectations,
    is_expectations_file,
    read_file,
    write_file,
)
from mlops_nb.errors import MlopsError

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_CODES_HELP = "exit codes: 0 every check passed, 1 a check failed, 2 a usage error"
PRIVATE_STATUSES = ("flagged", "declared")
_TABLE_KINDS = ("pandas", "pandas-series", "polars")


class ValidateError(MlopsError):
    """Expectations or data that cannot be found or used (one line: which and why)."""


@dataclass
class Resolved:
    """Expectations found for a reference, with what to call them and what not to show."""

    expectations: Expectations
    label: str
    dataset_id: str | None = None
    private: set[str] = field(default_factory=set)
    from_log: bool = False


# ---------------------------------------------------------------------- the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mlops-nb validate``."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--infer", metavar="RUN_ID:DATASET",
        help="infer the expectations of a recorded dataset version (RUN_ID:DATASET or "
        "RUN_ID:DATASET@vN), store them with it and print them as YAML (or write --out)",
    )  # fmt: skip
    what.add_argument(
        "--against", metavar="REF",
        help="check FILE against these expectations: RUN_ID:DATASET, a .yaml file, or "
        "NAME@ALIAS / NAME:VERSION (a registered model's training data)",
    )  # fmt: skip
    parser.add_argument("data", nargs="?", metavar="FILE", help="the data to check (.csv/.parquet)")
    parser.add_argument("--out", "-o", metavar="FILE.yaml", help="with --infer: write them there")
    parser.add_argument("--format", "-f", choices=("text", "json"), default="text")
    parser.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=None,
        help="record the results in the log's check_results (default: yes when the "
        "expectations come from the log, no for a .yaml file)",
    )  # fmt: skip


def needs_log(args: argparse.Namespace) -> bool:
    """A .yaml file checked without --record needs no log."""
    return bool(args.infer or args.record or not is_expectations_file(args.against))


def run(args: argparse.Namespace, log: Any) -> int:
    """Run ``mlops-nb validate``; exit code 1 when a check failed."""
    if args.infer:
        if args.data:
            raise ValidateError("--infer takes no data file (use --against REF FILE to check)")
        resolved = resolve_expectations(log, args.infer)
        if args.out:
            write_file(resolved.expectations, args.out)
            print(f"wrote the expectations of {resolved.label} "
                  f"({len(resolved.expectations.columns)} columns) to {args.out}")  # fmt: skip
        else:
            print(resolved.expectations.to_yaml(), end="")
        return EXIT_PASSED
    if not args.data:
        raise ValidateError("give the data to check: mlops-nb validate --against REF FILE")
    if args.out:
        raise ValidateError("--out goes with --infer")
    from mlops_nb.monitor.drift_command import read_frame

    resolved = resolve_expectations(log, args.against)
    report = check_frame(
        read_frame(args.data), resolved.expectations, private=resolved.private,
        target=str(args.data), expectation=resolved.label,
    )  # fmt: skip
    if args.record if args.record is not None else resolved.from_log:
        record_report(log, report)
    print(report.to_json() if args.format == "json" else report.to_text())
    if report.check_id and args.format == "text":
        print(f"recorded as check {report.check_id[:8]} (the check_results view)", file=sys.stderr)
    return EXIT_PASSED if report.passed else EXIT_FAILED


def record_report(
    log: Any, report: CheckReport, run_id: str | None = None, cell_seq: int | None = None
) -> str:
    """Write a report's rows to ``check_results`` under a new check id (also set on it)."""
    if log is None:
        raise ValidateError("no log to record the results in (give --log or --no-record)")
    report.check_id = uuid.uuid4().hex
    for row in report.records(report.check_id, run_id, cell_seq, time.time()):
        log.record("check_results", row)
    log.flush()
    return report.check_id


# ---------------------------------------------------------------------- finding expectations
def resolve_expectations(log: Any, ref: str, live: Mapping[str, Any] | None = None) -> Resolved:
    """The expectations ``ref`` names (see the module docstring); ``live`` maps dataset ids to
    frames the caller still holds (the kernel that recorded them), the best source to infer
    from."""
    if is_expectations_file(ref):
        expectations = read_file(ref)
        return Resolved(expectations, Path(ref).name, private=expectations.personal_columns)
    if log is None:
        raise ValidateError(f"{ref!r} is not a .yaml file, and there is no log to look it up in")
    head, colon, tail = ref.partition(":")
    if not colon or tail.isdigit():
        return _model_expectations(log, ref)
    return _dataset_expectations(log, head, tail, live or {})


def _model_expectations(log: Any, ref: str) -> Resolved:
    from mlops_nb.registry.load import parse_ref, resolve

    if "@" not in ref and ":" not in ref:
        raise ValidateError(
            f"{ref!r}: give RUN_ID:DATASET, NAME@ALIAS, NAME:VERSION or a .yaml file"
        )
    parse_ref(ref)
    record = resolve(log, ref)
    spec = (record.get("signature") or {}).get("expectations")
    label = f"{record['name']}:{record['version']} training data"
    if not spec:
        raise ValidateError(
            f"model {record['name']}:{record['version']} has no stored expectations (it was "
            "registered before they were kept): use RUN_ID:DATASET of its training data"
        )
    expectations = Expectations.from_dict(spec, where=label)
    dataset_ids = [expectations.dataset] if expectations.dataset else []
    private = expectations.personal_columns | private_columns(
        log, dataset_ids, record.get("run_id")
    )
    return Resolved(expectations, label, expectations.dataset, private, from_log=True)


def _dataset_expectations(log: Any, run_id: str, dataset: str, live: Mapping[str, Any]) -> Resolved:
    record = log.run(run_id)
    name, _, version = dataset.partition("@v")
    datasets = record.datasets
    matches = datasets[datasets["name"] == name] if len(datasets) else datasets
    if version and len(matches):
        matches = matches[matches["version"] == int(version)] if version.isdigit() else matches[:0]
    if not len(matches):
        known = ", ".join(sorted(set(datasets["name"]))) if len(datasets) else "none"
        raise ValidateError(
            f"run {record.run_id[:8]} recorded no dataset {dataset!r} (its datasets: {known})"
        )
    row = matches.sort_values("version").iloc[-1]
    dataset_id = str(row["dataset_id"])
    if row["kind"] not in _TABLE_KINDS:
        raise ValidateError(f"{dataset_id} is a {row['kind']} value: data checks take tables")
    private = private_columns(log, [dataset_id], record.run_id)
    stored = log.expectations(dataset_id=dataset_id)
    stored = stored[stored["source"] == "inferred"] if len(stored) else stored
    if len(stored):
        found = stored.iloc[0]
        expectations = Expectations.from_json(str(found["spec"]), str(found["source"]))
    else:
        expectations = _infer(log, record.run_id, row, private, live.get(dataset_id))
        log.record("expectations", {
            "expectation_id": uuid.uuid4().hex, "dataset_id": dataset_id,
            "run_id": record.run_id, "dataset_name": name, "source": "inferred",
            "spec": expectations.to_json(), "created_at": time.time(),
        })  # fmt: skip
    private |= expectations.personal_columns
    return Resolved(expectations, dataset_id, dataset_id, private, from_log=True)


def _infer(log: Any, run_id: str, row: pd.Series, private: set[str], frame: Any) -> Expectations:
    """From the live frame, else the saved checkpoint, else the recorded stats."""
    dataset_id = str(row["dataset_id"])
    if frame is None:
        frame = _checkpoint_frame(log, run_id, str(row["name"]), row["cell_seq"])
    if frame is not None:
        return infer_expectations(frame, private=private, dataset=dataset_id)
    schema, stats = _decoded(row["schema"]), _decoded(row["stats"])
    return expectations_from_stats(schema, stats, int(row["n_rows"]), private=private,
                                   dataset=dataset_id)  # fmt: skip


def _checkpoint_frame(log: Any, run_id: str, name: str, cell_seq: Any) -> Any:
    """The table a pipeline run saved after the cell that made this version, if it did."""
    if cell_seq is None or pd.isna(cell_seq):
        return None
    saved = log.checkpoints(run_id, names=[name], cell=int(cell_seq))
    if saved.empty:
        return None
    found = saved.iloc[0]
    if str(found["format"]).removesuffix(".enc") not in ("parquet", "polars.parquet"):
        return None
    from mlops_nb.capture.checkpoint import load_saved

    try:
        return load_saved(log, name, str(found["format"]), str(found["path"]))
    except (OSError, MlopsError):  # gone, or encrypted with a key not at hand: the stats
        return None


def private_columns(log: Any, dataset_ids: Iterable[str], run_id: str | None = None) -> set[str]:
    """Columns whose latest personal-data finding (per dataset version) is flagged or
    declared, among the findings of ``dataset_ids`` and of the run ``run_id``."""
    frames = [log.pii_findings(dataset_id=d) for d in dataset_ids if d]
    if run_id:
        frames.append(log.pii_findings(run_id=run_id))
    frames = [f for f in frames if len(f)]
    if not frames:
        return set()
    found = pd.concat(frames, ignore_index=True).drop_duplicates()
    found["dataset_id"] = found["dataset_id"].fillna("")
    latest = found.sort_values("created_at", kind="stable").groupby(
        ["dataset_id", "column_name"], sort=False).tail(1)  # fmt: skip
    return set(latest.loc[latest["status"].isin(PRIVATE_STATUSES), "column_name"].astype(str))


# ---------------------------------------------------------------------- for the documentation
def checks_summary(log: Any, run_id: str | None) -> list[dict[str, Any]]:
    """The data checks of a run (every recorded check when ``run_id`` is None), oldest first,
    as the datasheet shows them: what was checked against what, how many checks failed, and
    each failure (column, check, failing rows, example rows; example values None for
    personal data)."""
    rows = log.check_results(run_id=run_id)
    summary = []
    for check_id, group in rows.groupby("check_id", sort=False):
        first = group.iloc[0]
        failed = group[~group["passed"].astype(bool)]
        summary.append({
            "check_id": str(check_id), "run_id": _value(first["run_id"]),
            "cell_seq": _value(first["cell_seq"]), "target": str(first["target"]),
            "expectation": str(first["expectation"]), "n_rows": int(first["n_rows"]),
            "n_checks": len(group), "n_failed": len(failed), "passed": failed.empty,
            "created_at": first["created_at"],
            "failures": [{
                "column": str(r["column"]), "check": str(r["check"]),
                "n_failing": int(r["n_failing"]), "n_rows": int(r["n_rows"]),
                "example_rows": _decoded_list(r["example_rows"]),
                "example_values": _decoded_list(r["example_values"]),
            } for _, r in failed.iterrows()],
        })  # fmt: skip
    return summary


def expectations_summary(log: Any, run_id: str) -> list[dict[str, Any]]:
    """The expectations stored for a run's dataset versions (inferred from them, or the file
    they were checked against), newest first: dataset, source, and one row per column."""
    stored = log.expectations(run_id=run_id)
    return [{
        "dataset_id": _value(row["dataset_id"]), "dataset_name": _value(row["dataset_name"]),
        "source": str(row["source"]), "created_at": row["created_at"],
        "columns": describe_expectations(json.loads(str(row["spec"]))),
    } for _, row in stored.iterrows()]  # fmt: skip


def describe_expectations(spec: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One row per column of an expectations spec, for a table (the model card shows those of
    a version's training data: ``record["signature"]["expectations"]``): name, dtype,
    nullable, range, allowed values (at most 10 shown, with their number), unique, personal."""
    if not spec:
        return []
    expectations = Expectations.from_dict(dict(spec))
    rows = []
    for name, column in expectations.columns.items():
        allowed = column.allowed
        rows.append({
            "column": name, "dtype": column.dtype, "nullable": column.nullable,
            "min": column.min, "max": column.max, "unique": column.unique,
            "allowed": None if allowed is None else allowed[:10],
            "n_allowed": None if allowed is None else len(allowed),
            "pattern": column.pattern, "personal": column.personal,
        })  # fmt: skip
    return rows


def joins_summary(log: Any, run_id: str) -> list[dict[str, Any]]:
    """What the run's cells that joined or concatenated datasets did, one line each."""
    notes = log.notes(run_id)
    joins = notes[notes["kind"] == "join"] if len(notes) else notes
    return [{"cell_seq": _value(r["cell_seq"]), "summary": str(r["message"])}
            for _, r in joins.iterrows()]  # fmt: skip


def _decoded(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value)
    return dict(value or {})


def _decoded_list(value: Any) -> list[Any] | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return json.loads(value) if isinstance(value, str) else list(value)


def _value(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
