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
from mlops_nb.log import lake, roles
from mlops_nb.log.erasure import parse_duration
from mlops_nb.log.location import (
    DATA_ENV_VAR,
    config_value,
    default_log_location,
    is_team_location,
    parse_team_location,
)

_LOCAL_HELP = "the local log file (default: .mlops/log.duckdb, found as for any command)"
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
    push = actions.add_parser(
        "push", help="Copy a local log file's runs, records and artifacts into the team log.",
        description="Copy every record of a local log file (runs, their records, datasets, "
        "registered model versions and aliases) and its missing artifacts into the team log; "
        "pushing again adds nothing.",
    )  # fmt: skip
    push.add_argument("--log", metavar="PATH", help=_LOCAL_HELP)
    push.add_argument("--team", metavar="LOCATION", help=_LOG_HELP)
    pull = actions.add_parser(
        "pull", help="Copy runs from the team log into a local log file, for offline work.",
        description="Copy runs (ids or unique prefixes) with their records, the model versions "
        "they trained and their artifacts from the team log into a local log file; pulling "
        "again adds nothing.",
    )  # fmt: skip
    pull.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    pull.add_argument("--log", metavar="PATH", help=_LOCAL_HELP)
    pull.add_argument("--team", metavar="LOCATION", help=_LOG_HELP)
    grant = action(
        "grant",
        "Give a database user a role (reader, writer, maintainer, admin), creating its login "
        "without a password when missing; an administrator's job.",
    )
    grant.add_argument("user", metavar="USER", help="the PostgreSQL login")
    grant.add_argument("role", metavar="ROLE", choices=roles.ROLES, help=", ".join(roles.ROLES))
    members = action("roles", "Who has which role on the team log.")
    members.add_argument("--format", "-f", choices=("text", "json"), default="text")


def team_from_cli(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise MlopsError("give an action: init, maintain, status, push, pull, grant or roles")
    if action in ("push", "pull"):
        return _transfer(args)
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
    elif action == "grant":
        for line in lake.grant(location, args.user, args.role):
            print(line)
    elif action == "roles":
        members = lake.role_members(location)
        if args.format == "json":
            print(json.dumps(members, indent=2))
        else:
            print("\n".join(f"{m['user']:<24} {m['role']}" for m in members) or "no roles granted")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    """``team push`` / ``team pull``: a local log file and the team log, with progress bars
    on stderr and a summary on stdout."""
    from pathlib import Path

    from tqdm import tqdm

    from mlops_nb.log import transfer
    from mlops_nb.log.location import default_log_path

    location = team_location(args.team, "--team")
    local = Path(args.log).expanduser().absolute() if args.log else default_log_path()
    if is_team_location(str(args.log or "")):
        raise MlopsError("--log is the local log file here; name the team log with --team")

    def progress(items, label, total):
        # on a terminal only (disable=None), for more than one item
        quiet = True if total < 2 else None
        return tqdm(items, desc=label, total=total, leave=False, disable=quiet)

    if args.action == "push":
        summary = transfer.push(local, location, progress)
        print(
            f"pushed {local} to {location}: {len(summary.runs_copied)} runs pushed, "
            f"{len(summary.runs_already_there)} already there; "
            f"{summary.artifacts_copied} artifacts uploaded, "
            f"{summary.artifacts_already_there} already there"
        )
    else:
        summary = transfer.pull(args.run_ids, location, local, progress)
        print(
            f"pulled into {local}: {len(summary.runs_copied)} runs pulled, "
            f"{len(summary.runs_already_there)} already there; "
            f"{summary.artifacts_copied} artifacts downloaded, "
            f"{summary.artifacts_already_there} already there"
        )
    for table, added in sorted(summary.rows_added.items()):
        print(f"  {table}: {added} rows added")
    return 0


def team_location(given: str | None, option: str = "--log") -> str:
    """The team log named by ``option``, else $MLOPS_NB_LOG or .mlops/config; checked."""
    location = given or default_log_location()
    if not is_team_location(location):
        raise MlopsError(
            f"{location} is a log file, not a team log: give {option} ducklake:postgres:<conninfo> "
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
