"""The ``mlops-nb`` command line: read the experiment log from a terminal, CI or a scheduler.

Every command has ``--help``; an error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_nb._version import __version__
from mlops_nb.errors import MlopsError

FORMATS = ("table", "csv", "json")
_LOG_HELP = "log file (default: $MLOPS_NB_LOG, else .mlops/log.duckdb in the nearest folder up)"
_TABLE_RUN_COLUMNS = ["run_id", "experiment", "name", "status", "start_time", "duration_s"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlops-nb",
        description="Notebook-native MLOps: query the experiment log (a DuckDB file).",
    )
    parser.add_argument("--version", action="version", version=f"mlops-nb {__version__}")
    parser.add_argument("--log", metavar="PATH", help=_LOG_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--log", metavar="PATH", help=_LOG_HELP, default=argparse.SUPPRESS)
        return sub

    runs = add("runs", "List runs, one row each, with params and latest metrics as columns.")
    runs.add_argument("--experiment", "-e", metavar="NAME", help="only this experiment")
    runs.add_argument(
        "--where", "-w", metavar="SQL",
        help="SQL condition, e.g. \"params.lr < 0.1 OR metrics.acc > 0.9\"",
    )  # fmt: skip
    runs.add_argument("--order-by", metavar="SQL", help='e.g. "metrics.acc DESC"')
    runs.add_argument("--limit", "-n", type=int, metavar="N", help="at most N runs")
    runs.add_argument("--format", "-f", choices=FORMATS, default="table")
    runs.add_argument(
        "--columns", metavar="A,B", help="columns to show in the table (default: main ones)"
    )

    show = add("show", "Show everything recorded about one run.")
    show.add_argument(
        "run_id", metavar="RUN_ID", help='a run id, a unique prefix of one, or "latest"'
    )
    show.add_argument("--format", "-f", choices=("text", "json"), default="text")

    sql = add("sql", "Run a read-only SQL query over the log's views (runs, params, metrics...).")
    sql.add_argument("query", metavar="QUERY", help='e.g. "SELECT * FROM runs LIMIT 5"')
    sql.add_argument("--format", "-f", choices=FORMATS, default="table")

    experiments = add("experiments", "List experiments with their number of runs.")
    experiments.add_argument("--format", "-f", choices=FORMATS, default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args)
    except MlopsError as error:
        print(f"mlops-nb {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mlops-nb {args.command}: interrupted", file=sys.stderr)
        return 130


def _open(args: argparse.Namespace):
    from mlops_nb import open_log

    return open_log(args.log, create=False)


def _cmd_runs(args: argparse.Namespace) -> int:
    frame = _open(args).runs(
        experiment=args.experiment, where=args.where, order_by=args.order_by, limit=args.limit
    )
    if args.format == "table":
        if args.columns:
            wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise MlopsError(f"no column {missing[0]!r}; columns: {', '.join(frame.columns)}")
        else:
            wanted = _TABLE_RUN_COLUMNS + [
                c for c in frame.columns if c.startswith(("params.", "metrics."))
            ]
        frame = frame[wanted].copy()
        if "run_id" in frame:
            frame["run_id"] = frame["run_id"].str[:8]
    print(render(frame, args.format))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    record = _open(args).run(args.run_id)
    if args.format == "json":
        payload = {
            "info": record.info, "params": record.params, "metrics": record.metrics,
            "tags": record.tags,
            "metric_history": _records(record.metric_history),
            "artifacts": _records(record.artifacts), "cells": _records(record.cells),
            "datasets": _records(record.datasets), "models": _records(record.models),
        }  # fmt: skip
        print(json.dumps(_no_nan(payload), default=_json_value, indent=2))
    else:
        print(record.to_text())
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    print(render(_open(args).sql(args.query), args.format))
    return 0


def _cmd_experiments(args: argparse.Namespace) -> int:
    print(render(_open(args).experiments(), args.format))
    return 0


_COMMANDS = {
    "runs": _cmd_runs,
    "show": _cmd_show,
    "sql": _cmd_sql,
    "experiments": _cmd_experiments,
}


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame as an aligned text table, CSV, or JSON records."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return json.dumps(_records(frame), default=_json_value, indent=2)
    if frame.empty:
        return "(no rows)"
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S")
        elif pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.6g}")
    shown = shown.astype(object).where(shown.notna(), "")
    return shown.to_string(index=False, max_colwidth=60)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values as None (JSON null, not NaN)."""
    return _no_nan(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
