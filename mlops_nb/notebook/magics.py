"""``%mlops`` and ``%%mlops``: the notebook's way in.

``%%mlops track STAGE`` is not executed as a cell magic: an input transformer turns its first
line into a check of the arguments, so the cell body runs exactly as if the magic were not
there (same globals, display, exceptions, execution count) while the tracker's pre/post-run
hooks record it. The other subcommands are ordinary magics routed through one argparse parser
whose errors are ``UsageError`` (one line, no traceback).
"""

from __future__ import annotations

import argparse
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool

from mlops_nb.capture.track_line import parse_track_args
from mlops_nb.errors import MlopsError, TrackLineError
from mlops_nb.notebook.tracker import TRACK_CELL, Tracker
from mlops_nb.registry.commands import add_register_options


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message)
        raise _HelpShown


class _HelpShown(Exception):
    """--help was printed; nothing else to do."""


AS_OF_HELP = (
    "a team log as it was then: a date (2026-11-01), a date and time (UTC unless it says "
    "+HH:MM, quoted when it has a space) or a snapshot version"
)
_AS_OF = re.compile(r"\s*--as-of(?:=|\s+)(?:\"([^\"]*)\"|'([^']*)'|(\S+))", re.DOTALL)


def _split_as_of(text: str) -> tuple[str | None, str]:
    """(WHEN, the query) from ``--as-of WHEN QUERY`` (``--as-of=WHEN`` too), else (None, text);
    WHEN is read by the log exactly as the command line's ``--as-of`` is."""
    if not text.lstrip().startswith("--as-of"):
        return None, text
    match = _AS_OF.match(text)
    if match is None:
        raise UsageError("%mlops sql: --as-of needs a value, e.g. --as-of 2026-11-01")
    when = next(group for group in match.groups() if group is not None)
    return when, text[match.end() :]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%mlops", description="Record this notebook's work in the mlops log.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    track = commands.add_parser(
        "track",
        help="start (or keep) recording this kernel's run",
        description="%mlops track starts recording; %%mlops track STAGE [--name NAME] marks a "
        "cell as a stage (ingest, clean, explore, features, train, evaluate, or your own).",
    )
    track.add_argument("--experiment", "-e", metavar="NAME")
    track.add_argument("--log", metavar="PATH", help="log file (default: .mlops/log.duckdb)")
    track.add_argument("--all", action="store_true", help="record every later cell too")
    track.add_argument(
        "--name", "-n", metavar="NAME", help="the run's name (default: the notebook's, numbered)"
    )
    log = commands.add_parser(
        "log",
        help="log NAME=EXPR values: numbers as metrics, the rest as params",
        description="%mlops log acc=score f1=f1_score(y, p); --param lr=0.1 logs params.",
    )
    log.add_argument("--param", action="store_true", help="log every value as a param")
    log.add_argument("assignments", nargs="+", metavar="NAME=EXPR")
    runs = commands.add_parser("runs", help="show runs (a table you can sort, filter, compare)")
    runs.add_argument("--experiment", "-e", metavar="NAME")
    runs.add_argument("--limit", "-n", type=int, default=200)
    sql = commands.add_parser("sql", help="read-only SQL over the log; returns a DataFrame")
    sql.add_argument("--as-of", metavar="WHEN", help=AS_OF_HELP + " (before the query)")
    sql.add_argument("query", nargs=argparse.REMAINDER)
    restore = commands.add_parser(
        "restore", help="load the values a recorded pipeline run saved (used by --resume)"
    )
    restore.add_argument("run_id", metavar="RUN_ID")
    restore.add_argument("--before", type=int, metavar="SEQ", help="as they were before cell SEQ")
    restore.add_argument("--cell", type=int, metavar="SEQ", help="only what cell SEQ wrote")
    restore.add_argument("--except", dest="skip", metavar="A,B", help="names to leave alone")
    docs = commands.add_parser(
        "docs", help="write this notebook's documentation for the current run",
        description="Write the documentation (HTML and Markdown) of this notebook and its run.",
    )  # fmt: skip
    docs.add_argument("--out", default="docs", metavar="DIR", help="default: ./docs")
    docs.add_argument("--format", default="html,md", metavar="html,md")
    docs.add_argument("--run", metavar="RUN_ID", help="default: this kernel's run")
    gate = commands.add_parser(
        "gate", help="check this run's metrics; a failure fails the cell (and a pipeline run)",
        description='%mlops gate "accuracy >= 0.8" "roc_auc >= champion - 0.01": thresholds and '
        "changes against the version at an alias (default champion) of a model.",
    )  # fmt: skip
    gate.add_argument("conditions", nargs="+", metavar="CONDITION")
    gate.add_argument("--model", metavar="NAME", help="default: this run's experiment")
    gate.add_argument("--against", default="champion", metavar="ALIAS")
    gate.add_argument("--warn-only", action="store_true", help="show the result, never fail")
    gate.add_argument("--lower-is-better", action="append", metavar="METRIC", default=[])
    gate.add_argument("--greater-is-better", action="append", metavar="METRIC", default=[])
    register = commands.add_parser(
        "register", help="register this run's model (with its preprocessing) as a new version",
        description="%mlops register NAME: chain the fitted preprocessing and the model into one "
        "pipeline, check it reproduces the predictions recorded in this run, and register it.",
    )  # fmt: skip
    add_register_options(register)
    drift = commands.add_parser(
        "drift", help="test new data for drift against a reference (shows the report)",
        description="%mlops drift REFERENCE CURRENT: REFERENCE is a DataFrame variable, "
        "NAME@ALIAS, NAME:VERSION, RUN_ID:DATASET or a file; CURRENT a DataFrame variable or a "
        "file; or --requests NAME@ALIAS [--since 1d] for what a served model answered.",
    )  # fmt: skip
    drift.add_argument("reference", metavar="REFERENCE")
    drift.add_argument("current", nargs="?", metavar="CURRENT")
    drift.add_argument("--requests", metavar="NAME@ALIAS")
    drift.add_argument("--since", metavar="AGE", help="with --requests: e.g. 1d, 6h")
    drift.add_argument("--columns", metavar="A,B", help="test only these columns")
    drift.add_argument("--drift-share", type=float, default=0.5, metavar="F")
    drift.add_argument("--record", action="store_true",
                       help="record in the drift view even for two frames or files")  # fmt: skip
    pii = commands.add_parser(
        "pii", help="personal data: allow a false positive, declare a column the scan missed",
        description="%mlops pii --allow COLUMN (not personal data) or --declare COLUMN "
        "[--kind KIND] (personal data, e.g. free text): applies to the cells that run after "
        "it in this run. Without options: this run's findings and decisions.",
    )  # fmt: skip
    pii.add_argument("--allow", action="append", default=[], metavar="COLUMN")
    pii.add_argument("--declare", action="append", default=[], metavar="COLUMN")
    pii.add_argument("--kind", metavar="KIND", help="of --declare columns (default: personal)")
    commands.add_parser("status", help="what is being recorded, where")
    commands.add_parser("stop", help="end this kernel's run")
    return parser


@magics_class
class MlopsMagics(Magics):
    """The ``%mlops`` magics; ``%config MlopsMagics.summary = False`` hides cell summaries."""

    summary = Bool(True, help="Show a one-line summary after each recorded cell.").tag(config=True)

    def __init__(self, shell: Any, tracker: Tracker):
        super().__init__(shell=shell)
        self.tracker = tracker
        self.parser = build_parser()
        self.observe(lambda change: setattr(tracker, "show_summary", change["new"]), "summary")

    @line_cell_magic
    def mlops(self, line: str, cell: str | None = None) -> Any:
        """%mlops COMMAND ... — run `%mlops --help` for the commands."""
        if cell is not None:
            return self._cell(line, cell)
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise UsageError(f"%mlops: {error}") from None
        if words and words[0] == "sql":  # keep the query's own quoting intact
            return self._sql(line.strip()[3:])
        if words and words[0] == "log" and "-h" not in words and "--help" not in words:
            return self._log_line(line.strip()[3:])
        try:
            args = self.parser.parse_args(words)
        except _HelpShown:
            return None
        if args.command is None:
            self.parser.print_help()
            return None
        try:
            return getattr(self, f"_{args.command}")(args)
        except MlopsError as error:
            raise UsageError(f"%mlops {args.command}: {error}") from None

    # ------------------------------------------------------------------ subcommands
    def _track(self, args: argparse.Namespace) -> None:
        try:
            message = self.tracker.start(args.experiment, args.log, args.all, args.name)
        except MlopsError as error:
            self.tracker._warn("track", f"not recording: {error}")
            return
        except OSError as error:
            self.tracker._warn("track", f"not recording, the log is not writable: {error}")
            return
        print(message)

    def _log_line(self, rest: str) -> None:
        """``NAME=EXPR`` pairs split where a new ``NAME=`` starts, so EXPR keeps its quotes."""
        as_params = False
        rest = rest.strip()
        if rest.startswith("--param"):
            as_params, rest = True, rest[len("--param") :].strip()
        if not rest:
            raise UsageError("%mlops log: expected NAME=EXPR ... (see %mlops log --help)")
        assignments = re.split(r"\s+(?=[A-Za-z_]\w*\s*=(?!=))", rest)
        self._log(argparse.Namespace(param=as_params, assignments=assignments))

    def _log(self, args: argparse.Namespace) -> None:
        from mlops_nb.log import active_run

        run = self.tracker.run or active_run()
        params, metrics = {}, {}
        for assignment in args.assignments:
            name, sep, expression = assignment.partition("=")
            name = name.strip()
            if not sep or not name.isidentifier():
                raise UsageError(f"%mlops log: expected NAME=EXPR, got {assignment!r}")
            try:
                value = self.shell.ev(expression)
            except Exception as error:  # noqa: BLE001 - the user's expression
                raise UsageError(f"%mlops log: {name}: {type(error).__name__}: {error}") from None
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            (metrics if is_number and not args.param else params)[name] = value
        if params:
            run.log_params(params)
        if metrics:
            run.log_metrics(metrics)
        logged = [*(f"{k}={v!r} (metric)" for k, v in metrics.items()),
                  *(f"{k}={v!r} (param)" for k, v in params.items())]  # fmt: skip
        print("logged " + ", ".join(logged))

    def _runs(self, args: argparse.Namespace) -> Any:
        from mlops_nb.notebook.widgets import RunsView

        return RunsView(self._log_handle(), experiment=args.experiment, limit=args.limit)

    def _restore(self, args: argparse.Namespace) -> None:
        skip = set(args.skip.split(",")) if args.skip else set()
        names = self.tracker.restore(args.run_id, before=args.before, cell=args.cell, skip=skip)
        print(f"restored {len(names)} values from run {args.run_id[:8]}: {', '.join(names)}")

    def _docs(self, args: argparse.Namespace) -> None:
        from mlops_nb.docs.build import build_docs

        notebook = self.tracker.notebook_path or self.tracker._find_notebook()
        if not notebook:
            raise UsageError(
                "%mlops docs: cannot tell which notebook this is; run it from JupyterLab, "
                "or use mlops-nb docs NOTEBOOK in a terminal"
            )
        run_id = args.run or (self.tracker.run.run_id if self.tracker.run else None)
        log = self._log_handle()
        log.flush()
        formats = [f.strip() for f in args.format.split(",") if f.strip()]
        for written in build_docs(notebook, args.out, run_id, formats, log.location):
            print(f"wrote {written}")

    def _register(self, args: argparse.Namespace) -> None:
        from mlops_nb.registry.assemble import register_model
        from mlops_nb.registry.commands import registered_text

        tracker = self.tracker
        if tracker.run is None or tracker.log is None:
            raise UsageError("%mlops register: start recording first (%mlops track)")
        tracker.log.flush()
        steps = None if args.steps is None else [s.strip() for s in args.steps.split(",") if s]
        record = register_model(
            tracker.log, args.name, run=tracker.run.run_id, model=args.model, steps=steps,
            namespace=self.shell.user_ns, verify=not args.no_verify,
            description=args.description, alias=args.alias, labels=args.labels,
        )  # fmt: skip
        print(registered_text(record))

    def _gate(self, args: argparse.Namespace) -> None:
        from IPython.display import display

        from mlops_nb.log import active_run
        from mlops_nb.registry.gates import GateFailed, run_gate, split_conditions

        run = self.tracker.run or active_run()
        directions = {name: True for name in args.greater_is_better}
        directions.update({name: False for name in args.lower_is_better})
        result = run_gate(
            self._log_handle(), run.run_id, split_conditions(args.conditions),
            model=args.model or run.experiment, against=args.against, directions=directions,
            warn_only=args.warn_only,
        )  # fmt: skip
        display(result)
        if not result.passed and not args.warn_only:
            raise GateFailed(result)

    def _drift(self, args: argparse.Namespace) -> Any:
        import mlops_nb

        if (args.current is None) == (args.requests is None):
            raise UsageError("%mlops drift: give CURRENT (a DataFrame or file) or --requests")
        namespace = self.shell.user_ns
        reference = namespace.get(args.reference, args.reference)
        current = namespace.get(args.current, args.current) if args.current else None
        columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
        needs_log = args.record or isinstance(reference, str) or isinstance(current, str) or (
            args.requests is not None)  # fmt: skip
        return mlops_nb.drift(
            reference, current, requests=args.requests, since=args.since,
            log=self._log_handle() if needs_log else None, columns=columns,
            drift_share=args.drift_share, record=True if args.record else None,
        )  # fmt: skip

    def _pii(self, args: argparse.Namespace) -> None:
        if args.kind and not args.declare:
            raise UsageError("%mlops pii: --kind goes with --declare COLUMN")
        print(self.tracker.decide_pii(args.allow, args.declare, args.kind))

    def _status(self, args: argparse.Namespace) -> None:
        print(self.tracker.status())

    def _stop(self, args: argparse.Namespace) -> None:
        print(self.tracker.stop())

    def _sql(self, query: str, options: str | None = None) -> Any:
        """``%mlops sql [--as-of WHEN] QUERY``, or ``%%mlops sql [--as-of WHEN]`` over a cell
        (``options``: the line): the query's own text is kept as written, quotes included."""
        as_of, query = _split_as_of(query if options is None else options + " " + query)
        if not query.strip():
            raise UsageError("%mlops sql: give a query, e.g. %mlops sql SELECT * FROM runs")
        try:
            return self._log_handle().sql(query, as_of=as_of)
        except MlopsError as error:
            raise UsageError(f"%mlops sql: {error}") from None

    def _cell(self, line: str, cell: str) -> Any:
        words = line.split(None, 1)
        if words and words[0] == "sql":
            return self._sql(cell, options=words[1] if len(words) > 1 else "")
        if words and words[0] == "track":
            # reached only when the input transformer did not run (e.g. run_cell_magic)
            return self.shell.run_cell(f"%%mlops {line}\n{cell}", store_history=False)
        if words and words[0] == "card":
            return self._card(cell)
        raise UsageError("%%mlops: cell commands are track STAGE, sql and card (see %mlops --help)")

    def _card(self, cell: str) -> None:
        """``%%mlops card``: model-card fields (YAML) that ``mlops-nb docs`` reads from the
        notebook; here they are only checked, so a typo shows up where it was made."""
        import yaml

        try:
            fields = yaml.safe_load(cell) or {}
        except yaml.YAMLError as error:
            first = str(error).splitlines()[0]
            raise UsageError(f"%%mlops card: the cell is not valid YAML: {first}") from None
        if not isinstance(fields, dict):
            raise UsageError("%%mlops card: write the card as YAML fields, e.g. intended_use: ...")
        print(f"model card: {len(fields)} fields ({', '.join(map(str, fields))})")

    def _log_handle(self):
        import mlops_nb

        if self.tracker.log is not None:
            return self.tracker.log
        try:
            return mlops_nb.open_log(create=False)
        except MlopsError as error:
            raise UsageError(f"%mlops: {error}") from None


def strip_track_magic(lines: list[str]) -> list[str]:
    """Input transformer: ``%%mlops track ARGS`` -> a blank first line, body unchanged.

    The cell then runs as ordinary code whose line numbers are the user's own, and a traceback
    shows nothing of ours. A bad ARGS line becomes one statement that raises the UsageError
    saying why (IPython shows it as one line), so the body does not run.
    """
    if not lines:
        return lines
    match = TRACK_CELL.match(lines[0])
    if not match:
        return lines
    try:
        parse_track_args(match.group(1))
    except TrackLineError as error:
        refusal = f"raise __import__('IPython.core.error').core.error.UsageError({str(error)!r})\n"
        return [refusal, *lines[1:]]
    return ["\n", *lines[1:]]
