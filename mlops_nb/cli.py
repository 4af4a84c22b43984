"""The ``mlops-nb`` command line: read the experiment log from a terminal, CI or a scheduler.

Every command has ``--help``; an error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_nb._version import __version__
from mlops_nb.errors import MlopsError

FORMATS = ("table", "csv", "json")
_LOG_HELP = (
    "log file, or a team log ducklake:postgres:<conninfo> (default: $MLOPS_NB_LOG, else "
    ".mlops/log.duckdb in the nearest folder up)"
)
_TABLE_RUN_COLUMNS = ["run_id", "experiment", "name", "status", "start_time", "duration_s"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


_AS_OF_HELP = (
    "a team log as it was then: a date (2026-11-01), a date and time (UTC unless it says "
    "+HH:MM) or a snapshot version"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlops-nb",
        description="Notebook-native MLOps: run notebooks as pipelines and query the "
        "experiment log (a DuckDB file).",
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
    runs.add_argument("--as-of", metavar="WHEN", help=_AS_OF_HELP)

    show = add("show", "Show everything recorded about one run.")
    show.add_argument(
        "run_id", metavar="RUN_ID", help='a run id, a unique prefix of one, or "latest"'
    )
    show.add_argument("--format", "-f", choices=("text", "json"), default="text")

    sql = add("sql", "Run a read-only SQL query over the log's views (runs, params, metrics...).")
    sql.add_argument("query", metavar="QUERY", help='e.g. "SELECT * FROM runs LIMIT 5"')
    sql.add_argument("--format", "-f", choices=FORMATS, default="table")
    sql.add_argument("--as-of", metavar="WHEN", help=_AS_OF_HELP)

    experiments = add("experiments", "List experiments with their number of runs.")
    experiments.add_argument("--format", "-f", choices=FORMATS, default="table")

    run = add("run", "Run a notebook as a pipeline (papermill), recorded as one run.")
    run.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb to run (local or s3://...)")
    _add_run_options(run)
    run.add_argument(
        "--resume", metavar="RUN_ID", help="continue a failed run from its failed stage"
    )
    run.add_argument("--docs", metavar="DIR", help="write the run's documentation there at the end")
    run.add_argument(
        "--cache", action="store_true",
        help="restore stages whose code, parameters and inputs match a recorded successful stage",
    )  # fmt: skip
    run.add_argument(
        "--smoke", action="store_true",
        help="a quick check with small values: the notebook's '# mlops: smoke NAME=VALUE ...' "
        "line (its parameters cell), -p overriding; recorded in EXPERIMENT-smoke",
    )  # fmt: skip
    run.add_argument(
        "--run-id-file", metavar="FILE", help="write the run's id there (for the next CI job)"
    )

    pipeline = add("pipeline", "Describe a notebook as a pipeline.")
    pipeline_commands = pipeline.add_subparsers(
        dest="pipeline_command", metavar="COMMAND", parser_class=_Parser, required=True
    )
    show_pipeline = pipeline_commands.add_parser(
        "show", help="stages, typed parameters, datasets of the last run, schedules",
        description="Show a notebook's stages, typed parameters, the datasets each stage read "
        "and wrote in its last recorded run, and its schedules.",
    )  # fmt: skip
    show_pipeline.add_argument("notebook", metavar="NOTEBOOK")
    show_pipeline.add_argument("--format", "-f", choices=("text", "json"), default="text")
    show_pipeline.add_argument("--log", metavar="PATH", help=_LOG_HELP, default=argparse.SUPPRESS)

    sweep = add("sweep", "Run a notebook over a grid (or a random sample) of parameters.")
    sweep.add_argument("notebook", metavar="NOTEBOOK")
    sweep.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUES"),
        help="comma-separated values to sweep, e.g. -p lr 0.01,0.1,1",
    )  # fmt: skip
    sweep.add_argument("-f", "--file", metavar="PARAMS.yaml", help="fixed parameter values")
    sweep.add_argument("--workers", type=int, metavar="N", help="parallel runs (default: cores)")
    sweep.add_argument("--engine", choices=("local", "dask"), default="local")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:8786)")
    sweep.add_argument("--metric", metavar="NAME", help="rank the runs by this metric")
    sweep.add_argument("--goal", choices=("max", "min"), default="max")
    sweep.add_argument("--random", type=int, metavar="K", help="K random combinations, not all")
    sweep.add_argument("--seed", type=int, default=0, help="seed for --random")
    sweep.add_argument("--experiment", "-e", metavar="NAME")
    sweep.add_argument("--out", metavar="DIR", help="where output notebooks go")
    sweep.add_argument("--cwd", metavar="DIR", help="working directory of each run")
    sweep.add_argument("--kernel", "-k", metavar="NAME", help="kernel name (default: python3)")
    sweep.add_argument("--timeout", type=float, metavar="S", help="per-cell timeout in seconds")

    schedule = add(
        "schedule", "Write the files that run a notebook (or mlops-nb monitor) on a schedule."
    )
    schedule.add_argument("notebook", metavar="NOTEBOOK", nargs="?")
    schedule.add_argument(
        "--monitor", metavar='"NAME@ALIAS [OPTIONS]"',
        help='schedule `mlops-nb monitor` instead of a notebook run, e.g. --monitor '
        '"churn@champion --requests --since 1d --retrain churn.ipynb -p data_path new.csv '
        '--promote-if \'accuracy >= champion - 0.01\'"',
    )  # fmt: skip
    schedule.add_argument("--cron", required=True, metavar="EXPR", help='e.g. "0 3 * * *"')
    schedule.add_argument("--target", required=True, choices=SCHEDULE_TARGETS)
    schedule.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    schedule.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    schedule.add_argument("-f", "--file", metavar="PARAMS.yaml")
    schedule.add_argument("--experiment", "-e", metavar="NAME")
    schedule.add_argument("--image", metavar="IMAGE", help="container image (kubernetes, docker)")
    _add_cicd_command(add)

    serve = add("serve", "Serve a registered model over HTTP (MLflow and Open Inference v2).")
    serve.add_argument(
        "model", nargs="?", metavar="NAME[@ALIAS|:VERSION]",
        help="the model; with @ALIAS the server follows the alias when it moves",
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")
    serve.add_argument("--port", type=int, default=8080, help="default: 8080")
    serve.add_argument("--workers", type=int, default=1, metavar="N", help="server processes")
    serve.add_argument(
        "--log-sample", type=float, default=1.0, metavar="F",
        help="fraction of answered requests recorded in the log (default: 1; errors: all)",
    )  # fmt: skip
    serve.add_argument("--model-dir", metavar="DIR", help="an exported model folder, not the log")
    serve.add_argument(
        "--trust", nargs="+", action="extend", default=[], metavar="TYPE",
        help="types the model file may hold beyond the built-in trusted list",
    )  # fmt: skip
    serve.add_argument("--max-body", type=float, default=64, metavar="MB", help="default: 64")
    serve.add_argument("--max-batch-rows", type=int, default=4096, metavar="N",
                       help="rows per predict call (default: 4096)")  # fmt: skip
    serve.add_argument("--max-wait-ms", type=float, default=2.0, metavar="MS",
                       help="longest wait to fill a batch (default: 2)")  # fmt: skip

    predict = add("predict", "Score a CSV or Parquet file with a registered model.")
    predict.add_argument("model", metavar="NAME[@ALIAS|:VERSION]")
    predict.add_argument("--input", "-i", required=True, metavar="FILE", help=".csv or .parquet")
    predict.add_argument("--output", "-o", required=True, metavar="FILE", help=".csv or .parquet")
    predict.add_argument("--chunk-rows", type=int, default=10_000, metavar="N",
                         help="rows per chunk (default: 10000)")  # fmt: skip
    predict.add_argument("--trust", nargs="+", action="extend", default=[], metavar="TYPE")
    predict.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    deploy = add("deploy", "Write the files that serve a registered model from a container.")
    deploy.add_argument("ref", metavar="NAME@ALIAS", help="NAME@ALIAS, NAME:VERSION or NAME")
    deploy.add_argument("--target", required=True, choices=DEPLOY_TARGETS)
    deploy.add_argument("--out", required=True, metavar="DIR", help="the image's build folder")
    deploy.add_argument("--image", metavar="IMAGE", help="default: mlops-nb-NAME:VERSION")
    deploy.add_argument("--port", type=int, metavar="N", help="default: 8080")
    deploy.add_argument("--workers", type=int, metavar="N", help="server processes (default: 1)")
    deploy.add_argument("--replicas", type=int, metavar="N", help="kubernetes pods (default: 2)")
    deploy.add_argument("--max-replicas", type=int, metavar="N", help="autoscaler (default: 5)")
    deploy.add_argument("--cpu-target", type=int, metavar="PCT", help="autoscaler (default: 70)")
    deploy_install = deploy.add_mutually_exclusive_group()
    deploy_install.add_argument(
        "--install", metavar="COMMAND",
        help="how the image installs mlops-nb, e.g. \"pip install mlops-nb==X\" (default: a "
        "wheel copied into DIR/wheels/, built from this checkout)",
    )  # fmt: skip
    deploy_install.add_argument("--wheel", metavar="FILE", help="the mlops-nb wheel to copy in")

    docs = add("docs", "Write the documentation of a notebook pipeline and one of its runs.")
    docs.add_argument("notebook", metavar="NOTEBOOK")
    docs.add_argument("--run", metavar="RUN_ID", help="default: the latest finished run of it")
    docs.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    docs.add_argument("--format", default="html,md", metavar="html,md", help="default: both")

    gate = add("gate", "Check a model's metrics against thresholds and the version at an alias.")
    gate.add_argument(
        "target", metavar="RUN_ID|NAME:VERSION", help="a run (id, prefix, latest) or a version"
    )
    gate.add_argument(
        "conditions", nargs="+", metavar="CONDITION",
        help='e.g. "accuracy >= 0.8" "roc_auc >= champion - 0.01" "f1 >= champion * 1.02"',
    )  # fmt: skip
    gate.add_argument("--model", metavar="NAME", help="the model (default: the run's experiment)")
    gate.add_argument("--against", default="champion", metavar="ALIAS", help="default: champion")
    gate.add_argument("--warn-only", action="store_true", help="report, but exit 0 on failure")
    gate.add_argument("--promote", metavar="ALIAS", help="when it passes, move ALIAS to it")
    gate.add_argument("--lower-is-better", action="append", metavar="METRIC", default=[])
    gate.add_argument("--greater-is-better", action="append", metavar="METRIC", default=[])
    gate.add_argument("--format", "-f", choices=("text", "json"), default="text")

    exporter = add("exporter", "Serve the log's monitoring figures on /metrics for Prometheus.")
    exporter.add_argument("--port", type=int, default=9108, help="default: 9108")
    exporter.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")

    alerts = add("alerts", "Write Prometheus alerting rules from the log's schedules and gates.")
    alerts.add_argument("--out", required=True, metavar="FILE", help="the rules file (YAML)")
    alerts.add_argument(
        "--for", dest="for_", default="10m", metavar="DURATION",
        help="how long a condition holds before it fires (default: 10m)",
    )  # fmt: skip
    alerts.add_argument(
        "--min", action="append", default=[], metavar="METRIC=VALUE",
        help="live performance floor for models without a recorded gate, e.g. accuracy=0.8",
    )  # fmt: skip
    alerts.add_argument("--max", action="append", default=[], metavar="METRIC=VALUE",
                        help="ceiling for lower-is-better metrics, e.g. log_loss=0.5")  # fmt: skip
    alerts.add_argument(
        "--slack", metavar="DURATION",
        help="extra time before a scheduled pipeline is late (default: a quarter of its "
        "interval, at least 5m)",
    )  # fmt: skip
    alerts.add_argument("--max-error-rate", type=float, default=0.05, metavar="F",
                        help="share of 5xx answers of a server (default: 0.05)")  # fmt: skip
    alerts.add_argument("--rate-window", default="5m", metavar="DURATION",
                        help="window of the error rate (default: 5m)")  # fmt: skip
    alerts.add_argument("--alias", default="champion",
                        help="the alias served models must follow (default: champion)")  # fmt: skip

    from mlops_nb.registry.commands import add_parser as add_models_parser

    add_models_parser(add("models", "The model registry: versions, aliases, history."), _Parser)

    from mlops_nb.monitor import drift_command

    drift_command.add_arguments(
        add(
            "drift",
            "Test each column of new data (a file, or a served model's requests) for drift "
            "against a reference, as Evidently's defaults do. " + drift_command.EXIT_CODES_HELP,
        )
    )

    from mlops_nb.monitor.options import EXIT_CODES_HELP
    from mlops_nb.monitor.options import add_arguments as add_monitor_arguments

    add_monitor_arguments(
        add(
            "monitor",
            "Check a live model for drift and performance; on "
            "drift, retrain, gate and promote. " + EXIT_CODES_HELP,
        )
    )

    from mlops_nb import validate_command

    validate_command.add_arguments(
        add(
            "validate",
            "Check data against expectations (inferred from a recorded dataset, a registered "
            "model's training data, or a .yaml file), or infer them. "
            + validate_command.EXIT_CODES_HELP,
        )
    )
    _add_retention_commands(add)
    from mlops_nb import team

    team.add_parser(add("team", "Set up and look after a team log (DuckLake on PostgreSQL)."),
                    _Parser)  # fmt: skip
    return parser


def _add_cicd_command(add: Any) -> None:
    """``cicd`` (mlops_nb/pipeline/cicd.py)."""
    cicd = add(
        "cicd",
        "Write a CI/CD pipeline (GitLab CI, GitHub Actions, Jenkins) that tests, trains, gates, "
        "registers, deploys and documents a notebook on every push.",
    )
    cicd.add_argument("notebook", metavar="NOTEBOOK", help="inside this folder (the repository)")
    cicd.add_argument("--target", required=True, choices=CICD_TARGETS)
    cicd.add_argument("--out", required=True, metavar="DIR", help="where to write the file")
    cicd.add_argument(
        "--gate", action="append", default=[], metavar="CONDITION",
        help='a condition the trained run must meet, e.g. "accuracy >= champion - 0.01" '
        "(repeat for more; at least one)",
    )  # fmt: skip
    cicd.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="a value for the train run",
    )  # fmt: skip
    cicd.add_argument("-f", "--file", metavar="PARAMS.yaml", help="values for the train run")
    cicd.add_argument(
        "--smoke-parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="a value for the smoke run of the test stage, over the notebook's smoke set",
    )  # fmt: skip
    cicd.add_argument("--experiment", "-e", metavar="NAME")
    cicd.add_argument("--model", metavar="NAME", help="registered model (default: the experiment)")
    cicd.add_argument("--model-var", metavar="VAR", help="the fitted model (default: model)")
    cicd.add_argument(
        "--install", metavar="COMMAND",
        help="how each job installs the project and mlops-nb (default: pip install with the "
        "project's requirements.txt or pyproject, plus mlops-nb)",
    )  # fmt: skip
    cicd.add_argument(
        "--deploy", choices=DEPLOY_TARGETS, default="kubernetes",
        help="what the deploy job writes and applies (default: kubernetes)",
    )  # fmt: skip
    cicd.add_argument(
        "--image", metavar="REPOSITORY",
        help="where the model image is pushed, tagged with the commit (default: GitLab's "
        "registry; GitHub, Jenkins: the IMAGE_REPOSITORY variable)",
    )  # fmt: skip
    cicd.add_argument("--image-install", metavar="COMMAND",
                      help="how the model image installs mlops-nb")  # fmt: skip
    cicd.add_argument("--default-branch", default="main", metavar="BRANCH",
                      help="Jenkins: the branch that deploys (default: main)")  # fmt: skip


def _add_retention_commands(add: Any) -> None:
    """``purge``, ``forget``, ``retention`` and ``storage`` (mlops_nb/retention.py)."""
    purge = add("purge", "Remove old checkpoints, request payloads and unregistered artifacts "
                "(files and rows), and record what went (counts, never contents).")  # fmt: skip
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", metavar="DURATION",
                       help="checkpoints, request payloads and unregistered artifacts older "
                       "than this, e.g. 90d, 12h, 2w")  # fmt: skip
    which.add_argument(
        "--run", metavar="RUN_ID", help="the checkpoints and unregistered artifacts of this run"
    )
    which.add_argument(
        "--requests-before",
        metavar="DATE",
        help="request payloads recorded before this date (UTC), e.g. 2024-05-01",
    )
    purge.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    purge.add_argument(
        "--compact",
        action="store_true",
        help="then rewrite the log file, so removed payloads leave no bytes in it (the log is "
        "locked while it is copied)",
    )
    purge.add_argument("--format", "-f", choices=("text", "json"), default="text")

    forget = add(
        "forget",
        "Find one person's value in a column of every stored request and "
        "checkpoint (through the keyed hashes), remove them, and say where it was.",
    )
    forget.add_argument("--column", required=True, metavar="COLUMN", help="e.g. email")
    forget.add_argument("--value", required=True, metavar="VALUE", help="e.g. alice@example.com")
    forget.add_argument("--dry-run", action="store_true", help="say where it is; change nothing")
    forget.add_argument(
        "--no-compact",
        action="store_true",
        help="do not rewrite the log file afterwards (removed payloads may leave bytes in its "
        "free space until reused)",
    )
    forget.add_argument("--format", "-f", choices=("text", "json"), default="text")

    retention = add(
        "retention",
        "Show or set how long checkpoints, request payloads and "
        "artifacts are kept (applied when a writer opens a log file, once a day; on a team "
        "log by team maintain, or now with --apply).",
    )
    for kind, what in (("checkpoints", "pipeline checkpoints"),
                       ("requests", "served requests' payloads"),
                       ("artifacts", "artifacts no registered version needs")):  # fmt: skip
        retention.add_argument(
            f"--{kind}",
            metavar="DURATION",
            help=f"keep {what} this long, e.g. 30d ('off': forever)",
        )
    retention.add_argument("--apply", action="store_true", help="apply the policy now")
    retention.add_argument("--dry-run", action="store_true", help="with --apply: change nothing")
    retention.add_argument("--format", "-f", choices=("text", "json"), default="text")

    storage = add(
        "storage",
        "Where personal data of this project lives: checkpoints, "
        "request logs, artifacts; how old, whether encrypted.",
    )
    storage.add_argument("--format", "-f", choices=("text", "json"), default="text")


SCHEDULE_TARGETS = (
    "cron", "systemd", "airflow", "kubernetes", "gitlab", "github", "jenkins", "docker",
)  # fmt: skip
DEPLOY_TARGETS = ("docker", "compose", "kubernetes")
CICD_TARGETS = ("gitlab", "github", "jenkins")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="a parameter value, checked against the notebook's parameters cell",
    )  # fmt: skip
    parser.add_argument("-f", "--file", metavar="PARAMS.yaml", help="parameter values (YAML)")
    parser.add_argument("-o", "--output", metavar="OUTPUT", help="the executed notebook's path")
    parser.add_argument("--experiment", "-e", metavar="NAME")
    parser.add_argument("--cwd", metavar="DIR", help="working directory of the kernel")
    parser.add_argument("--kernel", "-k", metavar="NAME", help="kernel name (default: python3)")
    parser.add_argument("--timeout", type=float, metavar="S", help="per-cell timeout in seconds")
    parser.add_argument(
        "--pushgateway", metavar="URL",
        help="push duration, last success, failures and metrics to this Prometheus "
        "Pushgateway at the end (default: $MLOPS_NB_PUSHGATEWAY)",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # `mlops-nb runs | head`: the reader left, nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        return 0
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
        experiment=args.experiment,
        where=args.where,
        order_by=args.order_by,
        limit=args.limit,
        as_of=args.as_of,
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
    print(render(_open(args).sql(args.query, as_of=args.as_of), args.format))
    return 0


def _cmd_experiments(args: argparse.Namespace) -> int:
    print(render(_open(args).experiments(), args.format))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from mlops_nb.pipeline.runner import run_from_cli

    return run_from_cli(args)


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from mlops_nb.pipeline.describe import show_from_cli

    return show_from_cli(args)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from mlops_nb.pipeline.sweep import sweep_from_cli

    return sweep_from_cli(args)


def _cmd_schedule(args: argparse.Namespace) -> int:
    from mlops_nb.pipeline.schedule import schedule_from_cli

    return schedule_from_cli(args)


def _cmd_cicd(args: argparse.Namespace) -> int:
    from mlops_nb.pipeline.cicd import cicd_from_cli

    return cicd_from_cli(args)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from mlops_nb.deploy import deploy_from_cli

    return deploy_from_cli(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlops_nb.serve.app import serve_from_cli

    return serve_from_cli(args)


def _cmd_predict(args: argparse.Namespace) -> int:
    from mlops_nb.serve.batch import predict_from_cli

    return predict_from_cli(args)


def _cmd_docs(args: argparse.Namespace) -> int:
    from mlops_nb.docs.build import docs_from_cli

    return docs_from_cli(args)


def _cmd_gate(args: argparse.Namespace) -> int:
    from mlops_nb.registry.gates import gate_from_cli

    return gate_from_cli(args)


def _cmd_monitor(args: argparse.Namespace) -> int:
    from mlops_nb.monitor_loop import monitor_from_cli

    return monitor_from_cli(args)


def _cmd_exporter(args: argparse.Namespace) -> int:
    from mlops_nb.monitor.exporter import exporter_from_cli

    return exporter_from_cli(args)


def _cmd_alerts(args: argparse.Namespace) -> int:
    from mlops_nb.monitor.alerts import alerts_from_cli

    return alerts_from_cli(args)


def _cmd_models(args: argparse.Namespace) -> int:
    from mlops_nb.registry.commands import models_from_cli

    return models_from_cli(args, _open(args), render)


def _cmd_drift(args: argparse.Namespace) -> int:
    from mlops_nb.monitor import drift_command

    return drift_command.run(args, _open(args) if drift_command.needs_log(args) else None)


def _cmd_validate(args: argparse.Namespace) -> int:
    from mlops_nb import validate_command

    return validate_command.run(args, _open(args) if validate_command.needs_log(args) else None)


def _cmd_retention_commands(args: argparse.Namespace) -> int:
    from mlops_nb import retention

    command = getattr(retention, f"{args.command}_from_cli")
    return command(args, _open(args))


def _cmd_team(args: argparse.Namespace) -> int:
    from mlops_nb.team import team_from_cli

    return team_from_cli(args)


_COMMANDS = {
    "team": _cmd_team,
    "purge": _cmd_retention_commands,
    "forget": _cmd_retention_commands,
    "retention": _cmd_retention_commands,
    "storage": _cmd_retention_commands,
    "models": _cmd_models,
    "drift": _cmd_drift,
    "validate": _cmd_validate,
    "monitor": _cmd_monitor,
    "runs": _cmd_runs,
    "show": _cmd_show,
    "sql": _cmd_sql,
    "experiments": _cmd_experiments,
    "run": _cmd_run,
    "docs": _cmd_docs,
    "gate": _cmd_gate,
    "pipeline": _cmd_pipeline,
    "sweep": _cmd_sweep,
    "schedule": _cmd_schedule,
    "cicd": _cmd_cicd,
    "serve": _cmd_serve,
    "predict": _cmd_predict,
    "deploy": _cmd_deploy,
    "exporter": _cmd_exporter,
    "alerts": _cmd_alerts,
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
