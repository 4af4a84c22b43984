"""``mlops-nb schedule``: write the files that run a notebook pipeline on a cron schedule.

Each target (crontab, systemd, Airflow, Kubernetes, GitLab, GitHub, Jenkins, Docker) is one
small writer in ``TARGETS``, as papermill keeps its engines: it turns a ``Job`` into file texts.
All of them run the same command, built once by ``Job.command``. The cron expression and the
notebook's typed parameters are checked before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import CroniterError, croniter

from mlops_nb._version import __version__
from mlops_nb.errors import MlopsError
from mlops_nb.log.location import is_team_location, local_anchor
from mlops_nb.pipeline.parameters import (
    Parameter,
    ParameterError,
    check_value,
    load_parameters,
    load_values_file,
    resolve,
)
from mlops_nb.pipeline.secrets import check_schedulable

DEFAULT_IMAGE = "python:3.11-slim"
STAMP = "$(date +%Y%m%d-%H%M%S)"  # names each output notebook after its start time


class ScheduleError(MlopsError):
    """A schedule that cannot be written: a bad cron expression, notebook or option."""


@dataclass
class WrittenSchedule:
    """What ``write_schedule`` did: the files, the next run times and how to install them."""

    files: list[Path]
    upcoming: list[datetime]
    install: str
    note: str | None  # a warning for the user, e.g. a notebook outside the project


def schedule_from_cli(args: argparse.Namespace) -> int:
    """``mlops-nb schedule``: check everything, write the target's files, record the schedule."""
    project = Path.cwd()
    monitor = getattr(args, "monitor", None)
    if monitor is not None:
        if args.notebook or args.parameter or args.file or args.experiment:
            raise ScheduleError(
                "with --monitor, give the notebook and its -p values inside the monitor "
                'command: --monitor "churn@champion --requests --retrain NB -p NAME VALUE"'
            )
        written = write_monitor_schedule(
            monitor, args.cron, args.target, out=Path(args.out), project=project,
            image=args.image, log_path=getattr(args, "log", None),
        )  # fmt: skip
    else:
        if not args.notebook:
            raise ScheduleError('give the NOTEBOOK to schedule, or --monitor "NAME@ALIAS ..."')
        notebook = Path(args.notebook)
        if not notebook.is_file():
            raise ScheduleError(f"no notebook at {args.notebook}")
        file_values = load_values_file(args.file) if args.file else None
        written = write_schedule(
            notebook, args.cron, args.target, [tuple(p) for p in args.parameter], file_values,
            out=Path(args.out), project=project, experiment=args.experiment, image=args.image,
            log_path=getattr(args, "log", None),
        )  # fmt: skip
    for path in written.files:
        print(f"wrote {_relative(path, project)}")
    print("next runs (this machine's time zone):")
    for when in written.upcoming:
        print(f"  {format_run_time(when)}")
    if written.note:
        print(f"note: {written.note}")
    print(f"to install: {written.install}")
    return 0


def write_schedule(
    notebook: Path,
    cron: str,
    target_name: str,
    pairs: list[tuple[str, str]] | None = None,
    values: Mapping[str, Any] | None = None,
    *,
    out: Path,
    project: Path,
    experiment: str | None = None,
    image: str | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> WrittenSchedule:
    """Check the target, cron and parameters, write the files and record the schedule.

    ``values`` are typed values (a ``-f`` file, or the sidebar's form), ``pairs`` ``-p`` texts;
    nothing is written unless everything checks out.
    """
    import mlops_nb

    _target(target_name, image)
    cron = check_cron(cron)
    upcoming = next_run_times(cron)  # refuses a cron that never fires, before anything is written
    checked = _checked_values(notebook, pairs or [], values)
    check_schedulable(checked)  # a secret would sit in the files in clear
    log = mlops_nb.open_log(log_path)
    job = Job(
        name=job_name(notebook),
        notebook=_relative(notebook.absolute(), project),
        project=project,
        cron=cron,
        pairs=parameter_pairs(load_parameters(notebook), checked),
        experiment=experiment,
        image=image,
        log=log.location,
        bin_dir=_mlops_nb_dir(),
        out=out if out.is_absolute() else project / out,
    )
    return _write_job(job, target_name, log, checked, upcoming)


def write_monitor_schedule(
    command: str,
    cron: str,
    target_name: str,
    *,
    out: Path,
    project: Path,
    image: str | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> WrittenSchedule:
    """Schedule ``mlops-nb monitor COMMAND`` like a pipeline run; the command's options (and
    the retraining notebook's -p values) are checked now, not at 3 a.m."""
    import mlops_nb
    from mlops_nb.monitor.options import add_arguments

    _target(target_name, image)
    cron = check_cron(cron)
    upcoming = next_run_times(cron)
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise ScheduleError(f"--monitor: {error}") from None
    parser = _QuietParser(prog="mlops-nb monitor", add_help=False)
    add_arguments(parser)
    try:
        options = parser.parse_args(words)
    except ValueError as error:
        raise ScheduleError(f"--monitor: {error}") from None
    notebook = ""
    if options.retrain:
        retrain = Path(options.retrain)
        if not retrain.is_file():
            raise ScheduleError(f"--monitor: no notebook at {options.retrain} (--retrain)")
        check_schedulable(_checked_values(retrain, [tuple(p) for p in options.parameter], None))
        notebook = _relative(retrain.absolute(), project)
    words.remove(options.ref)  # the model first, as the files and the log name it
    words.insert(0, options.ref)
    model = options.ref.split("@")[0].split(":")[0]
    log = mlops_nb.open_log(log_path)
    job = Job(
        name=job_name(f"monitor-{model}"), notebook=notebook, project=project, cron=cron,
        pairs=[], experiment=None, image=image, log=log.location, bin_dir=_mlops_nb_dir(),
        out=out if out.is_absolute() else project / out, action=("monitor", *words),
    )  # fmt: skip
    checked = {"command": "monitor " + shlex.join(words)}
    return _write_job(job, target_name, log, checked, upcoming)


def _target(target_name: str, image: str | None) -> Target:
    target = TARGETS.get(target_name)
    if target is None:
        raise ScheduleError(f"unknown target {target_name!r}; known: {', '.join(TARGETS)}")
    if image and not target.image:
        takes = ", ".join(name for name, t in TARGETS.items() if t.image)
        raise ScheduleError(f"--image is for the {takes} targets, not {target_name}")
    return target


def _checked_values(
    notebook: Path, pairs: list[tuple[str, str]], values: Mapping[str, Any] | None
) -> dict[str, Any]:
    try:
        declared = load_parameters(notebook)
    except (OSError, ValueError) as error:
        raise ScheduleError(f"cannot read {notebook}: {error}") from None
    return resolve(declared, pairs, values)


class _QuietParser(argparse.ArgumentParser):
    """Raises instead of printing usage and exiting: the error becomes one ScheduleError."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _write_job(
    job: Job,
    target_name: str,
    log: Any,
    checked: Mapping[str, Any],
    upcoming: list[datetime],
) -> WrittenSchedule:
    """Write the target's files for ``job`` and record the schedule in the log."""
    target = TARGETS[target_name]
    project = job.project
    written = _write_files(job.out, target.write(job))
    files = [str(path) for path in written]
    log.add_schedule(job.scheduled, job.cron, target_name, checked, str(job.out), files)
    log.close()
    note = None
    if not target.local and job.notebook and Path(job.notebook).is_absolute():
        note = f"{job.notebook} is outside {project}, the folder {target_name} runs from"
    how = target.install.format(
        out=_relative(job.out, project), out_abs=job.out, name=job.name, cron=job.cron
    )
    return WrittenSchedule(written, upcoming, how, note)


# ---------------------------------------------------------------------- cron expressions
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
           ("day-of-week", 0, 7))  # fmt: skip
_NAMES = {  # field index -> the names cron accepts there
    3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_ITEM = re.compile(r"(?P<start>\*|\d+)(?:-(?P<stop>\d+))?(?:/(?P<step>\d+))?")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def check_cron(expression: str) -> str:
    """The expression as every target reads it, or a ScheduleError saying why it is refused.

    Only standard 5-field cron is accepted (numbers or names, ``*``, lists, ranges, steps):
    every target must understand it, so croniter's extensions (seconds, L, W, #, H) are out.
    Names become numbers, ``a/n`` becomes ``a-last/n`` and Sunday 7 becomes 0, which not
    every scheduler reads (Jenkins has no names, Kubernetes no 7).
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"bad cron expression {expression!r}: expected 5 fields (minute hour day-of-month "
            f"month day-of-week, e.g. '0 3 * * *'), found {len(fields)}"
        )
    fields = [_standard(text, index) for index, text in enumerate(fields)]
    try:
        croniter(" ".join(fields))
        days = [_expand(text, index) for index, text in enumerate(fields)][4]
    except (CroniterError, ValueError) as error:
        raise ScheduleError(f"bad cron expression {expression!r}: {error}") from None
    if re.search(r"\b7\b", fields[4]):
        fields[4] = ",".join(_runs(sorted(days), str, between="-"))
    return " ".join(fields)


def next_run_times(cron: str, count: int = 5, start: datetime | None = None) -> list[datetime]:
    """The next ``count`` times the expression fires after ``start`` (default: now, local time)."""
    times = croniter(check_cron(cron), start or datetime.now().astimezone())
    try:
        return [times.get_next(datetime) for _ in range(count)]
    except CroniterError:
        raise ScheduleError(f"cron expression {cron!r} never fires (no such date)") from None


def format_run_time(when: datetime) -> str:
    """How every output (CLI, pipeline show, docs, sidebar) spells a scheduled time:
    ``Mon 2026-11-30 03:00 UTC``."""
    return f"{when:%a %Y-%m-%d %H:%M %Z}".strip()


def upcoming_runs(cron: str, count: int = 5) -> list[str]:
    """The next ``count`` run times of a cron expression, as text."""
    return [format_run_time(when) for when in next_run_times(cron, count)]


def on_calendar(cron: str) -> list[str]:
    """systemd ``OnCalendar=`` values that fire exactly when the cron expression does.

    When both day fields are restricted, cron (and croniter) runs on days matching either;
    systemd requires both, so that case becomes two values (a timer may have several).
    """
    texts = check_cron(cron).split()
    minute, hour, days, months, weekdays = (_expand(t, i) for i, t in enumerate(texts))
    time = f"{_calendar(hour, 0, 23)}:{_calendar(minute, 0, 59)}:00"
    month = _calendar(months, 1, 12)
    on_days = f"*-{month}-{_calendar(days, 1, 31)} {time}"
    on_weekdays = f"{_weekday_names(weekdays)} *-{month}-* {time}".lstrip()
    if texts[2] != "*" and texts[4] != "*":
        return [on_days, on_weekdays]
    return [on_weekdays] if texts[4] != "*" else [on_days]


def _standard(text: str, index: int) -> str:
    """One field with numbers for names and ``a-last/n`` for ``a/n``."""
    names = _NAMES.get(index, [])
    first = 1 if index == 3 else 0  # months count from 1, weekdays from 0

    def number(match: re.Match[str]) -> str:
        word = match[0].lower()
        return str(names.index(word) + first) if word in names else match[0]

    text = re.sub(r"[a-zA-Z]+", number, text)
    return re.sub(r"(?<![\d-])(\d+)/", rf"\g<1>-{_last(index)}/", text)


def _last(index: int) -> int:
    """Where an open range (``*``, ``a/n``) ends: day of week 7 is Sunday again, not a day."""
    return 6 if index == 4 else _FIELDS[index][2]


def _expand(text: str, index: int) -> set[int]:
    """The values one numeric cron field matches (day of week 7 is Sunday, 0)."""
    label, low, high = _FIELDS[index]
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        start = stop = step = 0
        if match and not (match["start"] == "*" and match["stop"]):
            start = low if match["start"] == "*" else int(match["start"])
            stop = int(match["stop"] or start)
            if not match["stop"] and (match["start"] == "*" or match["step"]):
                stop = _last(index)
            step = int(match["step"] or 1)
        if not (low <= start <= stop <= high and step > 0):
            raise ValueError(
                f"{item!r} in the {label} field is not standard cron "
                f"(use {low}-{high}, *, lists a,b, ranges a-b and steps */n)"
            )
        values.update(range(start, stop + 1, step))
    return {0 if index == 4 and v == 7 else v for v in values}


def _calendar(values: set[int], low: int, high: int) -> str:
    """One OnCalendar component: ``*``, ``start/step``, or a list with ``a..b`` ranges."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    steps = {b - a for a, b in zip(ordered, ordered[1:], strict=False)}
    if len(ordered) > 2 and len(steps) == 1 and ordered[-1] + min(steps) > high:
        return f"{ordered[0]:02d}/{min(steps)}"
    return ",".join(_runs(ordered, lambda v: f"{v:02d}"))


def _weekday_names(days: set[int]) -> str:
    """Cron weekdays (0 = Sunday) as systemd names, ``Mon..Fri``; empty for every day."""
    monday_first = sorted((d - 1) % 7 for d in days)
    return "" if len(monday_first) == 7 else ",".join(_runs(monday_first, _WEEKDAYS.__getitem__))


def _runs(ordered: list[int], show: Callable[[int], str], between: str = "..") -> list[str]:
    """Runs of three or more consecutive values as ``first..last``, the others one by one."""
    parts, i = [], 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{show(ordered[i])}{between}{show(ordered[j])}")
        else:
            parts += [show(v) for v in ordered[i : j + 1]]
        i = j + 1
    return parts


# ---------------------------------------------------------------------- the command
@dataclass(frozen=True)
class Job:
    """What every target runs: one notebook with its checked parameters, when, and where."""

    name: str  # the notebook stem as [a-z0-9-]: names files, units, jobs and the DAG
    notebook: str  # relative to the project when inside it, as the generated files name it
    project: Path  # the project root: the working directory of `mlops-nb schedule`
    cron: str
    pairs: list[tuple[str, str]]  # -p NAME TEXT, read back by the run as the checked values
    experiment: str | None
    image: str | None
    log: str  # the log's location (file or team log); runs on this machine write there too
    bin_dir: str | None  # the folder of this mlops-nb, put on PATH by targets on this machine
    out: Path  # where the files are written (some name each other by absolute path)
    action: tuple[str, ...] = ()  # another mlops-nb command instead of `run` (e.g. monitor)

    def container_log(self, default: str) -> str:
        """MLOPS_NB_LOG inside a container: a team log is the same everywhere (its
        credentials come from the container's environment); a file log is ``default``."""
        return self.log if is_team_location(self.log) else default

    def command(self, outputs: str, program: str = "mlops-nb") -> str:
        """``mlops-nb run`` as one shell line; the output notebook is named by its start time."""
        if self.action:
            return shlex.join([program, *self.action])
        words = [program, "run", self.notebook]
        for name, text in self.pairs:
            words += ["-p", name, text]
        if self.experiment:
            words += ["--experiment", self.experiment]
        output = shlex.quote(f"{outputs}/{self.name}-") + STAMP + ".ipynb"
        return " ".join(shlex.quote(word) for word in words) + " -o " + output

    @property
    def local_outputs(self) -> str:
        """Where runs on this machine put output notebooks: beside the log, as the runner does."""
        return _relative(local_anchor(self.log).parent / "outputs", self.project)

    @property
    def local_path(self) -> str:
        """PATH for runs on this machine: this mlops-nb's folder, then the system's."""
        system = "/usr/local/bin:/usr/bin:/bin"
        return f"{self.bin_dir}:{system}" if self.bin_dir else system

    @property
    def install(self) -> str:
        """The pip command that gives a fresh machine this mlops-nb (and the project's needs)."""
        needs = " -r requirements.txt" if (self.project / "requirements.txt").is_file() else ""
        return f"pip install mlops-nb=={__version__}{needs}"

    @property
    def what(self) -> str:
        """What the files run, in words: the notebook, or the mlops-nb command."""
        return shlex.join(["mlops-nb", *self.action[:2]]) if self.action else self.notebook

    @property
    def scheduled(self) -> str:
        """What the log records as scheduled: the notebook, or ``monitor:NAME@ALIAS``."""
        return f"monitor:{self.action[1]}" if self.action else self.notebook

    def header(self, comment: str) -> str:
        """The first line of every generated file: what it runs, and when."""
        what = f"`{self.what}`" if self.action else f"{self.notebook} with mlops-nb"
        return f"{comment} Runs {what} on the cron schedule {self.cron!r}."


def job_name(notebook: str | os.PathLike[str]) -> str:
    """The notebook stem as ``[a-z0-9-]``: valid for units, DAG ids, jobs and Kubernetes."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(notebook).stem.lower()).strip("-")
    return name[:40].rstrip("-") or "notebook"


def parameter_pairs(declared: list[Parameter], values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Checked values as ``-p NAME TEXT`` pairs that ``mlops-nb run`` reads back unchanged.

    Text parameters go as they are, everything else as JSON (lists, dicts, true/false); each
    pair is read back here with the run's own parser, so what runs is what was checked.
    """
    by_name = {p.name: p for p in declared}
    pairs = []
    for name, value in values.items():
        parameter = by_name[name]
        for text in _candidate_texts(value):
            try:
                if check_value(parameter, text, from_text=True) == value:
                    pairs.append((name, text))
                    break
            except ParameterError:
                continue
        else:
            raise ScheduleError(f"parameter {name!r}: {value!r} cannot be given on a command line")
    return pairs


def _candidate_texts(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else []
    with contextlib.suppress(TypeError, ValueError):
        texts.append(json.dumps(value, ensure_ascii=False))
    return [*texts, repr(value)]  # a Python literal for what JSON cannot say (int dict keys)


# ---------------------------------------------------------------------- the targets
@dataclass(frozen=True)
class Target:
    """How one scheduler is told: the files to write and the one step that installs them."""

    write: Callable[[Job], dict[str, str]]  # file path under --out -> text
    install: str  # one line for the user; {out}, {out_abs}, {name} and {cron} are filled in
    local: bool = False  # runs on this machine, in this project folder, with this log
    image: bool = False  # takes --image


TARGETS: dict[str, Target] = {}


def register(
    name: str, install: str, *, local: bool = False, image: bool = False
) -> Callable[[Callable[[Job], dict[str, str]]], Callable[[Job], dict[str, str]]]:
    """Add a target; the built-in ones below register themselves the same way."""

    def add(write: Callable[[Job], dict[str, str]]) -> Callable[[Job], dict[str, str]]:
        TARGETS[name] = Target(write, install, local, image)
        return write

    return add


@register("cron", "(crontab -l 2>/dev/null; cat {out}/crontab.txt) | crontab -", local=True)
def _cron(job: Job) -> dict[str, str]:
    """A crontab line and the wrapper it starts: flock keeps runs from overlapping."""
    script_name = f"run-{job.name}.sh"
    outputs = job.local_outputs
    run_log = shlex.quote(f"{outputs}/{job.name}.log")
    path = f'PATH="$PATH":{shlex.quote(job.bin_dir)}\n' if job.bin_dir else ""
    now = "$(date '+%Y-%m-%d %H:%M:%S')"
    busy = f"{now} {job.name}: the previous run is still going; not starting another"
    script = f"""#!/bin/sh
{job.header("#")}
# Written by `mlops-nb schedule` for the line in crontab.txt. While a run is going its lock
# is held, and a second start exits 0 at once. Runs and their output are logged to
# {outputs}/{job.name}.log in the project folder.
cd {shlex.quote(str(job.project))} || exit 1
# cron's PATH is short: add the folder of the mlops-nb that wrote this
{path}export MLOPS_NB_LOG={shlex.quote(str(job.log))}
mkdir -p {shlex.quote(outputs)}
exec 9>>{shlex.quote(f"{outputs}/{job.name}.lock")}
if ! flock -n 9; then
    echo "{busy}" | tee -a {run_log}
    exit 0
fi
echo "{now} {job.name}: start" >>{run_log}
{job.command(outputs)} 9>&- >>{run_log} 2>&1
status=$?
echo "{now} {job.name}: exit code $status" >>{run_log}
exit $status
"""
    script_path = shlex.quote(str(job.out / script_name)).replace("%", "\\%")  # % ends a command
    crontab = f"""{job.header("#")}
# Written by `mlops-nb schedule`; add it to your crontab with
#   (crontab -l 2>/dev/null; cat crontab.txt) | crontab -
{job.cron} {script_path}
"""
    return {"crontab.txt": crontab, script_name: script}


@register(
    "systemd",
    "mkdir -p ~/.config/systemd/user && cp {out}/{name}.service {out}/{name}.timer "
    "~/.config/systemd/user/ && systemctl --user daemon-reload "
    "&& systemctl --user enable --now {name}.timer",
    local=True,
)
def _systemd(job: Job) -> dict[str, str]:
    """A oneshot service and its timer: systemd never starts a unit that is still running."""
    variables = {"PATH": job.local_path, "MLOPS_NB_LOG": job.log}
    environment = " ".join(_systemd_word(f"{name}={value}") for name, value in variables.items())
    service = f"""{job.header("#")}
# Written by `mlops-nb schedule`; started by {job.name}.timer. Output goes to the journal:
#   journalctl --user -u {job.name}.service
[Unit]
Description=Run {_systemd_text(job.what)} with mlops-nb

[Service]
Type=oneshot
WorkingDirectory={_systemd_text(str(job.project))}
Environment={environment}
ExecStart=/bin/sh -c {_systemd_word(job.command(job.local_outputs), dollars=True)}
"""
    calendar = "".join(f"OnCalendar={value}\n" for value in on_calendar(job.cron))
    timer = f"""{job.header("#")}
# Written by `mlops-nb schedule`: the cron expression as OnCalendar= (several lines mean
# any of them). Persistent=true starts a run missed while the machine was off.
[Unit]
Description=Schedule of {job.name}.service (cron {job.cron})

[Timer]
{calendar}Persistent=true
Unit={job.name}.service

[Install]
WantedBy=timers.target
"""
    return {f"{job.name}.service": service, f"{job.name}.timer": timer}


def _systemd_text(text: str) -> str:
    return text.replace("%", "%%")  # % starts a specifier


def _systemd_word(text: str, dollars: bool = False) -> str:
    """One double-quoted unit-file word (ExecStart= also expands $NAME: ``dollars`` escapes it)."""
    escaped = _systemd_text(text.replace("\\", "\\\\").replace('"', '\\"'))
    return '"' + (escaped.replace("$", "$$") if dollars else escaped) + '"'


@register(
    "airflow",
    'copy {out}/{name}_dag.py into "$AIRFLOW_HOME/dags" (its workers must see this project '
    "folder and mlops-nb; Airflow reads the cron in UTC unless default_timezone is set)",
    local=True,
)
def _airflow(job: Job) -> dict[str, str]:
    """An Airflow 3 DAG with one BashOperator task running the command in the project folder."""
    command = job.command(job.local_outputs)
    if any(mark in command for mark in ("{{", "{%", "{#")):  # bash_command is a Jinja template
        command = "{% raw %}" + command + "{% endraw %}"
    env = {"MLOPS_NB_LOG": str(job.log), "PATH": job.local_path}
    dag = f'''"""Runs {job.what} with mlops-nb on the cron schedule {job.cron!r}.

Written by `mlops-nb schedule`. Copy it into $AIRFLOW_HOME/dags. The task runs in
{job.project}, so the workers must see that folder and the mlops-nb named on PATH below.
"""

from datetime import datetime, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id={_quoted(job.name)},
    schedule={_quoted(job.cron)},
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,  # no backfill of the intervals before today
    max_active_runs=1,  # runs do not overlap
    tags=["mlops-nb"],
):
    BashOperator(
        task_id="run_notebook",
        bash_command={_quoted(command)},
        cwd={_quoted(str(job.project))},
        env={_quoted(env)},
        append_env=True,
    )
'''
    return {f"{job.name.replace('-', '_')}_dag.py": dag}


@register("kubernetes", "kubectl apply -f {out}/{name}-cronjob.yaml", image=True)
def _kubernetes(job: Job) -> dict[str, str]:
    """A CronJob (concurrencyPolicy: Forbid) and the volume that keeps the log between runs."""
    command = job.command("/data/.mlops/outputs")
    if job.image:
        image_note = (
            f"# The image {job.image} must hold mlops-nb and the project in /project\n"
            "# (as `mlops-nb schedule --target docker` builds it)."
        )
        mounts = ""
    else:
        image_note = (
            f"# {DEFAULT_IMAGE} has neither mlops-nb (installed at each start) nor your project:\n"
            "# copy the project into the volume's project/ folder, or build an image with\n"
            "# `mlops-nb schedule --target docker` and pass it with --image."
        )
        command = f"{job.install} && {command}"
        mounts = (
            "                - name: data\n"
            "                  mountPath: /project\n"
            "                  subPath: project\n"
        )
    manifest = f"""{job.header("#")}
# Written by `mlops-nb schedule`; the cron is read in the controller's time zone (usually UTC).
# The log, artifacts and output notebooks live on the volume {job.name}-data, under /data.
{image_note}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {job.name}-data
  labels:
    app.kubernetes.io/managed-by: mlops-nb
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 5Gi
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {job.name}
  labels:
    app.kubernetes.io/managed-by: mlops-nb
spec:
  schedule: {_quoted(job.cron)}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: pipeline
              image: {_quoted(job.image or DEFAULT_IMAGE)}
              workingDir: /project
              command: ["sh", "-c"]
              args:
                - {_quoted(command.replace("$", "$$"))}
              env:
                - name: MLOPS_NB_LOG
                  value: {_quoted(job.container_log("/data/.mlops/log.duckdb"))}
              resources:
                requests:
                  cpu: 500m
                  memory: 1Gi
                limits:
                  cpu: "2"
                  memory: 4Gi
              volumeMounts:
                - name: data
                  mountPath: /data
{mounts}          volumes:
            - name: data
              persistentVolumeClaim:
                claimName: {job.name}-data
"""
    return {f"{job.name}-cronjob.yaml": manifest}


@register(
    "gitlab",
    "commit {out}/.gitlab-ci.yml at the repository root (or merge it into yours), then create "
    "a pipeline schedule with the cron '{cron}' in CI/CD > Schedules",
)
def _gitlab(job: Job) -> dict[str, str]:
    """A job that runs only in scheduled pipelines; the schedule itself lives in GitLab's UI."""
    ci = f"""{job.header("#")}
# Written by `mlops-nb schedule`. GitLab keeps schedules in its UI: create a pipeline schedule
# with the cron {job.cron!r} (and its time zone) in CI/CD > Schedules.
# The output notebook and the log of the run are in the .mlops/ artifact.
run-{job.name}:
  image: {DEFAULT_IMAGE}
  rules:
    - if: '$CI_PIPELINE_SOURCE == "schedule"'
  resource_group: mlops-nb-{job.name}
  script:
    - {_quoted(job.install)}
    - {_quoted(job.command(".mlops/outputs"))}
  artifacts:
    when: always
    expire_in: 30 days
    paths:
      - .mlops/
"""
    return {".gitlab-ci.yml": ci}


@register(
    "github",
    "commit {out}/.github/workflows/{name}.yml as .github/workflows/{name}.yml "
    "(GitHub reads the cron in UTC)",
)
def _github(job: Job) -> dict[str, str]:
    """A workflow on a schedule (and by hand), uploading the output notebook and the log."""
    workflow = f"""{job.header("#")}
# Written by `mlops-nb schedule`; GitHub reads the cron in UTC. The output notebook and the
# log of each run are uploaded as the artifact {job.name}-run.
name: {_quoted(f"{job.name} (mlops-nb)")}
on:
  schedule:
    - cron: {_quoted(job.cron)}
  workflow_dispatch:
concurrency:
  group: mlops-nb-{job.name}
  cancel-in-progress: false
jobs:
  run:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: {_quoted(job.install)}
      - name: Run the pipeline
        run: {_quoted(_github_literal(job.command(".mlops/outputs")))}
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: {job.name}-run
          path: .mlops/
          include-hidden-files: true
"""
    return {f".github/workflows/{job.name}.yml": workflow}


def _github_literal(text: str) -> str:
    return text.replace("${{", "${{ '${{' }}")  # GitHub would evaluate it as an expression


@register(
    "jenkins",
    "commit {out}/Jenkinsfile at the repository root and create a Pipeline job from it "
    "(Jenkins reads the cron in its own time zone)",
)
def _jenkins(job: Job) -> dict[str, str]:
    """A declarative pipeline: cron trigger, no concurrent builds, install, run, archive."""
    jenkinsfile = f"""{job.header("//")}
// Written by `mlops-nb schedule`. The output notebook and the log are archived from .mlops/.
pipeline {{
    agent any
    triggers {{ cron({_groovy(job.cron)}) }}
    options {{ disableConcurrentBuilds() }}
    stages {{
        stage('Install') {{
            steps {{
                sh {_groovy("python3 -m venv .mlops-venv && .mlops-venv/bin/" + job.install)}
            }}
        }}
        stage('Run') {{
            steps {{
                sh {_groovy(job.command(".mlops/outputs", program=".mlops-venv/bin/mlops-nb"))}
            }}
        }}
    }}
    post {{
        always {{
            archiveArtifacts artifacts: '.mlops/**', allowEmptyArchive: true
        }}
    }}
}}
"""
    return {"Jenkinsfile": jenkinsfile}


def _groovy(text: str) -> str:
    """A single-quoted Groovy string: no ${...} interpolation; \\ and ' escaped, and line
    breaks written as escapes (a single-quoted string cannot span lines)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped.replace("\n", "\\n").replace("\r", "\\r") + "'"


@register(
    "docker",
    "docker compose -f {out}/compose.yaml build, then add this line to your crontab: "
    "{cron} docker compose -f {out_abs}/compose.yaml run --rm {name}",
    image=True,
)
def _docker(job: Job) -> dict[str, str]:
    """An image that runs the pipeline once per container start; the host's cron starts it."""
    compose_path = shlex.quote(str(job.out / "compose.yaml"))
    schedule_note = (
        "# The container runs the pipeline once per start; the schedule is a line in the\n"
        f"# host's crontab:\n#   {job.cron} docker compose -f {compose_path} run --rm {job.name}"
    )
    requirements = (
        "COPY requirements.txt /project/\n" if (job.project / "requirements.txt").is_file() else ""
    )
    dockerfile = f"""{job.header("#")}
# Written by `mlops-nb schedule`. Build it from the project folder (compose.yaml does).
{schedule_note}
FROM {DEFAULT_IMAGE}
WORKDIR /project
{requirements}RUN {job.install.replace("pip install", "pip install --no-cache-dir")}
COPY . /project
ENV MLOPS_NB_LOG={_env_word(job.container_log("/project/.mlops/log.duckdb"))}
CMD {json.dumps(["sh", "-c", job.command("/project/.mlops/outputs")], ensure_ascii=False)}
"""
    ignore = "# Keeps local environments and the log out of the image.\n.git\n.venv\n.mlops\n"
    context = os.path.relpath(job.project, job.out)
    compose = f"""{job.header("#")}
# Written by `mlops-nb schedule`. The log, artifacts and output notebooks are kept in the
# volume mlops between runs.
{schedule_note}
services:
  {job.name}:
    build:
      context: {_quoted(context)}
      dockerfile: {_quoted(os.path.relpath(job.out / "Dockerfile", job.project))}
    image: {_quoted(job.image or f"mlops-nb-{job.name}")}
    volumes:
      - mlops:/project/.mlops
volumes:
  mlops: {{}}
"""
    return {"Dockerfile": dockerfile, "Dockerfile.dockerignore": ignore, "compose.yaml": compose}


def _env_word(value: str) -> str:
    """A Dockerfile ENV value: quoted when it holds spaces (a team log's connection)."""
    return json.dumps(value) if any(c.isspace() or c in "\"'\\$" for c in value) else value


def _quoted(value: Any) -> str:
    """A double-quoted literal, valid as YAML and as Python (JSON's syntax is within both)."""
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------- files and paths
def _write_files(out: Path, files: Mapping[str, str]) -> list[Path]:
    written = []
    try:
        for relative, text in files.items():
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if path.suffix == ".sh":
                path.chmod(0o755)
            written.append(path)
    except OSError as error:
        raise ScheduleError(f"cannot write {error.filename}: {error.strerror}") from None
    return written


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else absolute (as runs record notebooks)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _mlops_nb_dir() -> str | None:
    """The folder of the ``mlops-nb`` that belongs to this Python, else the one on PATH."""
    if (Path(sys.executable).parent / "mlops-nb").exists():
        return str(Path(sys.executable).parent)
    found = shutil.which("mlops-nb")
    return str(Path(found).parent) if found else None
