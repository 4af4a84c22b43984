"""``mlops-nb team``: set up and look after a team log (DuckLake, its catalog in PostgreSQL,
its files in an S3 bucket or a shared folder; see docs/team-log.md).

``init`` creates the lake and the log's schema once (the administrator's job: DuckLake fails
when several processes create tables at once), ``maintain`` compacts it while others write,
``status`` says what it is. More actions (push, pull, grant) add a function and a subparser.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from mlops_nb.errors import MlopsError
from mlops_nb.log import lake
from mlops_nb.log.erasure import parse_duration
from mlops_nb.log.location import (
    DATA_ENV_VAR,
    config_value,
    default_log_location,
    is_team_location,
    parse_team_location,
)

_LOG_HELP = "the team log, ducklake:postgres:<conninfo> (default: $MLOPS_NB_LOG, .mlops/config)"


def add_parser(team: argparse.ArgumentParser, parser_class: type) -> None:
    """The ``team`` actions, under the parser ``cli.py`` made for ``team``."""
    actions = team.add_subparsers(dest="action", metavar="ACTION", parser_class=parser_class)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--log", metavar="LOCATION", help=_LOG_HELP, default=argparse.SUPPRESS)
        return parser

    init = action(
        "init",
        "Create the team log (its DuckLake catalog and the log's tables and views) or migrate "
        "it to this version's schema; running it again changes nothing.",
    )
    init.add_argument(
        "--data", metavar="PATH",
        help="where the lake's files go: s3://bucket/prefix/ or a shared folder (default: "
        f"${DATA_ENV_VAR}, .mlops/config); only needed the first time",
    )  # fmt: skip
    maintain = action(
        "maintain",
        "Flush small inlined writes to Parquet, merge small files, expire old snapshots and "
        "delete the files nothing needs; safe while others write.",
    )
    maintain.add_argument(
        "--keep", default="7d", metavar="DURATION",
        help="keep snapshots (time travel) this long, e.g. 7d, 12h (default: 7d)",
    )  # fmt: skip
    status = action("status", "Where the team log is, its versions, snapshots and writers.")
    status.add_argument("--format", "-f", choices=("text", "json"), default="text")


def team_from_cli(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise MlopsError("give an action: init, maintain or status")
    location = team_location(getattr(args, "log", None))
    if action == "init":
        data = args.data or os.environ.get(DATA_ENV_VAR) or config_value("data")
        for line in lake.initialise(location, data):
            print(line)
    elif action == "maintain":
        for line in lake.maintain(location, parse_duration(args.keep)):
            print(line)
    elif action == "status":
        print(_status_text(lake.status(location), args.format))
    return 0


def team_location(given: str | None) -> str:
    """The team log named by --log, else $MLOPS_NB_LOG or .mlops/config; checked."""
    location = given or default_log_location()
    if not is_team_location(location):
        raise MlopsError(
            f"{location} is a log file, not a team log: give --log ducklake:postgres:<conninfo> "
            "or set MLOPS_NB_LOG (see docs/team-log.md)"
        )
    return parse_team_location(location).location


def _status_text(status: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(status, indent=2)
    duckdb = status["duckdb"]
    lines = [
        f"team log:       {status['location']}",
        f"data:           {status['data_path']}",
        f"database user:  {status['database_user']}",
        f"DuckDB:         {duckdb['lake'] or '-'} (lake), {duckdb['here']} (here)",
        f"log schema:     {status['schema_version'] or 'none: run mlops-nb team init'}",
        f"snapshots:      {status['snapshots']} (last {status['last_snapshot']})",
        f"writers:        {len(status['writers'])}",
    ]
    lines += [
        f"  {w['writer_id']}  pid {w['pid']} on {w['host']}, last heartbeat {w['heartbeat_at']}"
        for w in status["writers"]
    ]
    return "\n".join(lines)
