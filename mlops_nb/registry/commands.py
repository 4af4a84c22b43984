"""``mlops-nb models``: list, show, register, move aliases, their history, load, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.registry.load import export_model, load_model, parse_ref, resolve


def add_parser(models: argparse.ArgumentParser, parser_class: type) -> None:
    """The ``models`` subcommands, under the parser ``cli.py`` made for ``models``."""
    subparsers = models.add_subparsers(dest="action", metavar="ACTION", parser_class=parser_class)
    formats = ("table", "csv", "json")

    class _Actions:  # every action also takes --log, as every other command does
        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
            action = subparsers.add_parser(name, **kwargs)
            action.add_argument(
                "--log",
                metavar="PATH",
                default=argparse.SUPPRESS,
                help="log file (default: $MLOPS_NB_LOG or .mlops/log.duckdb)",
            )
            return action

    actions = _Actions()

    listing = actions.add_parser("list", help="registered versions and their aliases")
    listing.add_argument("name", nargs="?", metavar="NAME", help="only this model")
    listing.add_argument("--format", "-f", choices=formats, default="table")

    show = actions.add_parser("show", help="one version: signature, outputs, metrics, lineage")
    show.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]")
    show.add_argument("--format", "-f", choices=("text", "json"), default="text")

    register = actions.add_parser(
        "register", help="assemble, verify and register a model a run fitted",
        description="Chain the run's fitted preprocessing and model into one pipeline, check it "
        "reproduces the run's recorded predictions, and record it as a new version.",
    )  # fmt: skip
    add_register_options(register)
    register.add_argument("--run", default="latest", metavar="RUN_ID", help="default: latest")

    alias = actions.add_parser("alias", help="point an alias at a version (recorded)")
    alias.add_argument("name", metavar="NAME")
    alias.add_argument("alias", metavar="ALIAS")
    alias.add_argument("version", nargs="?", type=int, metavar="VERSION")
    alias.add_argument("--reason", metavar="TEXT", help="why (kept in the alias history)")
    alias.add_argument("--delete", action="store_true", help="remove the alias")

    history = actions.add_parser(
        "history", help="every alias move; --at DATE: where the aliases pointed then"
    )
    history.add_argument("name", nargs="?", metavar="NAME")
    history.add_argument("--alias", metavar="ALIAS")
    history.add_argument("--at", metavar="DATE", help="e.g. 2026-11-01 or 2026-11-01T12:00 (UTC)")
    history.add_argument("--format", "-f", choices=formats, default="table")

    load = actions.add_parser("load", help="load a version (checks sha256 and trusted types)")
    load.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]")
    load.add_argument("--trust", action="append", default=[], metavar="TYPE")
    load.add_argument("--allow-pickle", action="store_true")

    export = actions.add_parser("export", help="write model file + manifest.json to a folder")
    export.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]")
    export.add_argument("out", metavar="DIR")

    explain = actions.add_parser(
        "explain", help="permutation importance of each input column (measured if missing)",
        description="The drop of the model's score on its evaluation data when one raw input "
        "column is shuffled (mean and std over repeats), recorded at registration; measured "
        "now from the source run's saved values when it was not.",
    )  # fmt: skip
    explain.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]")
    explain.add_argument("--format", "-f", choices=("text", "json"), default="text")
    explain.add_argument("--recompute", action="store_true", help="measure again and record")


def add_register_options(register: argparse.ArgumentParser) -> None:
    """What ``mlops-nb models register`` and ``%mlops register`` both take."""
    register.add_argument("name", metavar="NAME")
    register.add_argument("--model", default="model", metavar="VAR", help="default: model")
    register.add_argument(
        "--steps", metavar="VAR,VAR", help="the fitted transformers before the model, in order "
        "(default: proposed from the recorded lineage)",
    )  # fmt: skip
    register.add_argument("--alias", metavar="ALIAS", help="point this alias at the new version")
    register.add_argument("--description", metavar="TEXT")
    register.add_argument("--no-verify", action="store_true", help="skip the prediction check")
    register.add_argument(
        "--labels", metavar="VAR", help="the true labels of the evaluation data, kept for "
        "performance monitoring (default: found in the run, e.g. y_test)",
    )  # fmt: skip


def models_from_cli(args: argparse.Namespace, log: Any, render: Any) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise MlopsError(
            "give an action: list, show, register, alias, history, load, export, explain"
        )
    if action == "list":
        frame = log.model_versions(args.name)
        if args.format == "table" and not frame.empty:
            frame = _list_table(frame)
        print(
            render(frame, args.format)
            if not frame.empty or args.format != "table"
            else "no models registered yet (mlops-nb models register NAME --run RUN_ID)"
        )
    elif action == "show":
        record = resolve(log, args.ref)
        print(json.dumps(record, indent=2, default=str) if args.format == "json"
              else version_text(record))  # fmt: skip
    elif action == "register":
        from mlops_nb.registry.assemble import register_model

        steps = None if args.steps is None else [s.strip() for s in args.steps.split(",") if s]
        record = register_model(
            log, args.name, run=args.run, model=args.model, steps=steps,
            verify=not args.no_verify, description=args.description, alias=args.alias,
            labels=args.labels,
        )  # fmt: skip
        print(registered_text(record))
    elif action == "alias":
        if args.delete == (args.version is not None):
            raise MlopsError("give a VERSION to point the alias at, or --delete")
        before = log.move_alias(args.name, args.alias, args.version, args.reason)
        after = "removed" if args.delete else f"-> version {args.version}"
        was = f"(was version {before})" if before is not None else "(new alias)"
        print(f"{args.name}@{args.alias} {after} {was}")
    elif action == "history":
        _history(args, log, render)
    elif action == "load":
        loaded = load_model(log, args.ref, trust=args.trust, allow_pickle=args.allow_pickle)
        steps = " -> ".join(name for name, _ in getattr(loaded.pipeline, "steps", [])) or type(
            loaded.pipeline).__name__  # fmt: skip
        print(f"{loaded.name}:{loaded.version} loaded ({steps}); sha256 {loaded.sha256[:12]} ok; "
              f"{len(loaded.signature.columns)} input columns")  # fmt: skip
    elif action == "export":
        manifest = export_model(log, parse_ref(args.ref), Path(args.out))
        print(f"wrote {manifest.parent / json.loads(manifest.read_text())['file']} and {manifest}")
    elif action == "explain":
        from mlops_nb.registry.explain import importances_text, version_importances

        record, table = version_importances(log, args.ref, recompute=args.recompute)
        if args.format == "json":
            rows = table[["feature", "importance_mean", "importance_std", "metric", "n_repeats",
                          "n_rows"]].to_dict(orient="records")  # fmt: skip
            print(json.dumps({"name": record["name"], "version": int(record["version"]),
                              "importances": rows}, indent=2))  # fmt: skip
        else:
            print(importances_text(record, table))
    return 0


def version_text(record: dict[str, Any]) -> str:
    """A readable page about one version."""
    lines = [
        f"{record['name']}:{record['version']}"
        + (f"  aliases: {', '.join(record['aliases'])}" if record.get("aliases") else "")
    ]
    for label in ("run_id", "model_var", "user", "created_at", "description", "artifact_sha256"):
        value = record.get(label)
        if value is not None and value == value and value != "":
            lines.append(f"  {label + ':':17} {value}")
    if record.get("steps") is not None:
        lines.append(
            f"  {'pipeline:':17} {' -> '.join([*record['steps'], str(record['model_var'])])}"
        )
    verification = record.get("verification") or {}
    if verification.get("verified"):
        lines.append(f"  {'verified:':17} reproduces {verification['predictions']} on "
                     f"{verification['input']} ({verification['rows']:,} rows)")  # fmt: skip
    elif verification:
        lines.append(f"  {'verified:':17} no ({verification.get('reason', '')})")
    outputs = record.get("outputs") or {}
    if outputs:
        classes = f", classes {outputs['classes']}" if outputs.get("classes") else ""
        lines.append(f"  {'outputs:':17} {outputs.get('task')}{classes}")
    columns = (record.get("signature") or {}).get("columns", [])
    if columns:
        lines.append("inputs:")
        for column in columns:
            allowed = f" in {column['categories']}" if column.get("categories") else ""
            null = "" if column.get("nullable") else ", not null"
            lines.append(f"  {column['name']}: {column['kind']} ({column['dtype']}{null}){allowed}")
    if record.get("metrics"):
        lines.append("metrics:")
        lines += [f"  {k} = {v:.6g}" for k, v in record["metrics"].items()]
    return "\n".join(lines)


def registered_text(record: dict[str, Any]) -> str:
    chain = " -> ".join([*(record.get("steps") or []), str(record.get("model_var"))])
    verification = record.get("verification") or {}
    check = (f"verified: same predictions as {verification['predictions']} on "
             f"{verification['input']} ({verification['rows']:,} rows)"
             if verification.get("verified") else "not verified")  # fmt: skip
    aliases = f"; aliases: {', '.join(record['aliases'])}" if record.get("aliases") else ""
    return f"registered {record['name']}:{record['version']} ({chain}); {check}{aliases}"


def _list_table(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame[["name", "version", "aliases", "run_id", "model_var", "user", "created_at"]]
    shown = shown.copy()
    shown["aliases"] = shown["aliases"].map(lambda a: ", ".join(a) if len(a) else "")
    shown["run_id"] = shown["run_id"].map(lambda r: r[:8] if isinstance(r, str) else "")
    metrics = frame["metrics"].map(lambda m: json.loads(m) if isinstance(m, str) else {})
    keys = sorted({k for m in metrics for k in m})[:4]
    for key in keys:
        shown[key] = metrics.map(lambda m, key=key: m.get(key))
    return shown


def _history(args: argparse.Namespace, log: Any, render: Any) -> None:
    if args.at:
        aliases = log.aliases(args.name)
        pairs = sorted({(r.name, r.alias) for r in log.alias_history(args.name).itertuples()}
                       | {(r.name, r.alias) for r in aliases.itertuples()})  # fmt: skip
        if args.alias:
            pairs = [p for p in pairs if p[1] == args.alias]
        rows = [{"name": n, "alias": a, "version": log.alias_at(n, a, args.at)} for n, a in pairs]
        print(render(pd.DataFrame(rows, columns=["name", "alias", "version"]), args.format))
        return
    print(render(log.alias_history(args.name, args.alias), args.format))
