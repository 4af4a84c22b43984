"""REST handlers over the experiment log, for the JupyterLab sidebar.

Every log call runs in a thread executor, so a slow read (or one waiting for a writer's lock)
never blocks the server's event loop. Filters arrive as structured JSON and are handed to the
log as ``Condition`` objects (log/filters.py binds their values), so no SQL text from the
browser, and none of ours, is written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import mimetypes
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

import mlops_nb
from mlops_nb.errors import MlopsError, RunNotFoundError
from mlops_nb.log.filters import STAGE_TAG, Condition, Sort, conditions_from_json
from mlops_nb.log.location import (
    default_log_location,
    is_team_location,
    local_anchor,
    log_exists,
)
from mlops_nb.server import AUTH_RESOURCE
from mlops_nb.server import models as registry_views
from mlops_nb.server.processes import ProcessRegistry, RunRequest, TooManyRuns

MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000  # beyond any log's size; keeps the offset a small integer
_VALUE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RUN_ID = re.compile(r"[0-9a-zA-Z_-]+")
PROGRESS_TAG = "mlops.progress"
READER_LOG_ENV_VAR = "MLOPS_NB_READER_LOG"


class BadRequest(Exception):
    """An input the API refuses; its message goes back to the browser as is."""


@contextlib.contextmanager
def parsing(what: str, *also: type[Exception]) -> Iterator[None]:
    """Turn the ValueError/TypeError/KeyError (and ``also``) of reading ``what`` into a 400."""
    try:
        yield
    except (ValueError, TypeError, KeyError, *also) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadRequest(f"bad {what}: {detail}") from None


# ---------------------------------------------------------------------- the log, off the loop
def log_path(root_dir: str) -> str:
    """The log the CLI would use if started in the server's root folder: a file's path, or a
    team log's location (``ducklake:postgres:...``)."""
    return default_log_location(root_dir)


def open_log(path: str) -> mlops_nb.Log | None:
    """The log, or None while nobody has written one yet (list endpoints are then empty).
    With ``$MLOPS_NB_READER_LOG`` (the team log with a reader's login) the sidebar reads
    through that instead, so PostgreSQL refuses any write it might attempt."""
    path = os.environ.get(READER_LOG_ENV_VAR) or path
    if not log_exists(path):
        return None
    return mlops_nb.open_log(path, create=False)


def warm_team_log(root_dir: str) -> None:
    """On a team log, make the first run search now, while the server starts: it builds this
    process's in-memory run table (about a second at 100,000 runs), which the sidebar's first
    page would otherwise wait for. Failures are the handlers' to report, later."""
    path = os.environ.get(READER_LOG_ENV_VAR) or log_path(root_dir)
    if not is_team_location(path):
        return
    with contextlib.suppress(Exception):
        log = open_log(path)
        if log is not None:
            log.runs(limit=1)


async def off_loop(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


# ---------------------------------------------------------------------- JSON values
def plain(value: Any) -> Any:
    """A JSON-ready copy: timestamps as ISO text, numpy scalars as Python, NaN as null."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars and arrays
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return None if value != value else value.isoformat()  # pandas NaT is not equal to itself
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def records(frame: Any) -> list[dict[str, Any]]:
    return [plain(row) for row in frame.to_dict(orient="records")]


# ---------------------------------------------------------------------- runs table rows
def run_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A runs-table row: run columns, then params, metrics and progress grouped."""
    out: dict[str, Any] = {"params": {}, "metrics": {}}
    for key, value in row.items():
        kind, _, name = key.partition(".")
        if kind in ("params", "metrics") and name:
            value = plain(value)
            if value is not None:
                out[kind][name] = value
        else:
            out[key] = plain(value)
    tags = out.get("tags") or {}
    out["stage"] = tags.get(STAGE_TAG)
    out["progress"] = tags.get(PROGRESS_TAG) if out.get("status") == "running" else None
    return out


# ---------------------------------------------------------------------- reads (in a thread)
def read_experiments(path: str) -> list[dict[str, Any]]:
    log = open_log(path)
    return [] if log is None else records(log.experiments())


def read_runs(path: str, query: dict[str, Any]) -> dict[str, Any]:
    page, size = query["page"], query["page_size"]
    log = open_log(path)
    if log is None:
        return {"total": 0, "page": page, "page_size": size, "runs": []}
    rows = log.runs(experiment=query["experiment"], filters=query["filters"],
                    order_by=query["sort"], limit=size, offset=(page - 1) * size)  # fmt: skip
    total = log.count_runs(experiment=query["experiment"], filters=query["filters"])
    return {
        "total": total, "page": page, "page_size": size,
        "runs": [run_summary(row) for row in rows.to_dict(orient="records")],
    }  # fmt: skip


def read_progress(path: str) -> list[dict[str, Any]]:
    log = open_log(path)
    if log is None:
        return []
    frame = log.runs(filters=[Condition("status", "=", "running")])
    keep = ("run_id", "experiment", "name", "status", "start_time", "stage", "progress")
    return [
        {k: v for k, v in run_summary(row).items() if k in keep}
        for row in frame.to_dict(orient="records")
    ]


def read_run(path: str, run_id: str, root_dir: str) -> dict[str, Any]:
    from mlops_nb.docs.lineage import build_graph

    log = require_log(path)
    record = log.run(run_id)
    graph = build_graph(record.cells, record.datasets, record.lineage, record.models)
    histories: dict[str, list[dict[str, Any]]] = {}
    for point in records(record.metric_history):
        histories.setdefault(point["key"], []).append(
            {"step": point["step"], "value": point["value"], "timestamp": point["timestamp"]}
        )
    docs = docs_index(path, record.run_id)
    return {
        "info": plain(record.info),
        "params": plain(record.params),
        "metrics": plain(record.metrics),
        "metric_history": histories,
        "tags": plain(record.tags),
        "cells": records(record.cells.drop(columns=["source"], errors="ignore")),
        "datasets": records(record.datasets),
        "lineage": records(record.lineage),
        "artifacts": [
            {**artifact, "url": f"artifacts/{record.run_id}/{artifact['sha256']}"}
            for artifact in records(record.artifacts)
        ],
        "models": records(record.models),
        "environment": records(log.environment(record.run_id)),
        "notes": records(log.notes(record.run_id)),
        "docs": docs,
        "notebook": relative_notebook(root_dir, record.info.get("notebook_path")),
        "governance": run_governance(log, record.run_id),
        "graph": {
            "nodes": [
                {k: getattr(node, k) for k in ("key", "label", "detail", "kind", "layer", "row")}
                for node in graph.nodes.values()
            ],
            "edges": [list(edge) for edge in graph.edges],
        },
    }


def run_governance(log: mlops_nb.Log, run_id: str) -> dict[str, Any]:
    """A run's data checks (each failure; example values only for columns that are not
    personal data), its personal-data findings (latest per dataset version and column) and
    its fairness per sensitive column (summary numbers and per-group table)."""
    from mlops_nb.capture.fairness import fairness_card
    from mlops_nb.capture.pii import pii_summary
    from mlops_nb.validate_command import PRIVATE_STATUSES, checks_summary

    personal = pii_summary(log, run_id)
    private = {row["column"] for row in personal if row["status"] in PRIVATE_STATUSES}
    checks = checks_summary(log, run_id)
    for check in checks:
        for failure in check["failures"]:
            if failure["column"] in private:  # a check recorded before the column was flagged
                failure["example_values"] = None
    return plain({"checks": checks, "personal_data": personal,
                  "fairness": fairness_card(log.fairness(run_id=run_id))})  # fmt: skip


def relative_notebook(root_dir: str, notebook_path: Any) -> str | None:
    """A run's notebook relative to the server's root (what the docs form posts), if inside."""
    if not isinstance(notebook_path, str) or not notebook_path.endswith(".ipynb"):
        return None
    root = Path(root_dir).resolve()
    target = (root / notebook_path).resolve()
    if not target.is_file() or not target.is_relative_to(root):
        return None
    return target.relative_to(root).as_posix()


def read_compare(path: str, ids: list[str]) -> dict[str, Any]:
    log = require_log(path)
    found = [log.run(run_id) for run_id in ids]
    run_ids = [record.run_id for record in found]
    names = sorted({name for record in found for name in record.params})
    params = []
    for name in names:
        values = [plain(record.params.get(name)) for record in found]
        params.append({
            "name": name, "values": dict(zip(run_ids, values, strict=True)),
            "differs": any(v != values[0] for v in values[1:]),
        })  # fmt: skip
    keys = sorted({key for record in found for key in record.metrics})
    metrics = {
        key: {record.run_id: plain(record.metrics.get(key)) for record in found} for key in keys
    }
    histories: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in found:
        for point in records(record.metric_history):
            per_run = histories.setdefault(point["key"], {}).setdefault(record.run_id, [])
            per_run.append({"step": point["step"], "value": point["value"]})
    return {
        "runs": [
            {k: plain(record.info.get(k)) for k in ("run_id", "name", "experiment", "status")}
            for record in found
        ],
        "params": params,
        "metrics": metrics,
        "metric_history": histories,
    }


def require_log(path: str) -> mlops_nb.Log:
    log = open_log(path)
    if log is None:
        raise RunNotFoundError(f"no log at {path} yet: no runs recorded")
    return log


def read_models(path: str) -> list[dict[str, Any]]:
    log = open_log(path)
    return [] if log is None else plain(registry_views.list_models(log))


def read_model(path: str, name: str) -> dict[str, Any]:
    log = open_log(path)
    if log is None:
        raise registry_views.ModelNotFound(f"no registered model {name!r}: no log yet")
    return plain(registry_views.read_model(log, name))


def move_model_alias(path: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    log = open_log(path)
    if log is None:
        raise registry_views.ModelNotFound(f"no registered model {name!r}: no log yet")
    return registry_views.move_alias(log, name, data)


def artifact_file(path: str, run_id: str, sha256: str) -> tuple[Path, str]:
    """The stored file of one of the run's artifacts, checked to be inside the artifact store."""
    if not _SHA256.fullmatch(sha256):
        raise BadRequest("artifact id must be a sha256 (64 lowercase hex digits)")
    log = require_log(path)
    record = log.run(run_id)
    matches = record.artifacts[record.artifacts["sha256"] == sha256]
    if matches.empty:
        raise RunNotFoundError(f"run {record.run_id[:8]} has no artifact {sha256[:12]}")
    row = matches.iloc[0]
    log.artifact_file(str(row["stored_path"]))  # a team log's artifact is fetched once
    return inside(log.artifacts_dir, str(row["stored_path"])), str(row["name"])


def inside(folder: Path, relative: str) -> Path:
    """``folder/relative`` if it is an existing file within folder (no ``..``, no absolute)."""
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise BadRequest(f"bad file path {relative!r}: a relative path without '..' is needed")
    with parsing(f"file path {relative[:80]!r}", OSError):  # a NUL byte, a name too long...
        base = folder.resolve()
        target = (base / relative).resolve()
        exists = target.is_file()
    if not target.is_relative_to(base):
        raise BadRequest(f"bad file path {relative!r}: outside the store")
    if not exists:
        raise RunNotFoundError(f"no file {relative!r}")
    return target


def docs_dir(path: str) -> Path:
    return local_anchor(path).parent / "docs"


def docs_index(path: str, run_id: str) -> str | None:
    """The URL (relative to the API root) of a run's generated HTML docs, if any were made."""
    folder = docs_dir(path) / run_id[:8]
    pages = sorted(folder.glob("*.html")) if folder.is_dir() else []
    return f"docs-files/{run_id[:8]}/{pages[0].name}" if pages else None


def make_docs(path: str, notebook: Path, run_id: str | None) -> str:
    from mlops_nb.docs.build import build_docs

    log = require_log(path)
    if run_id:
        full = log.run(run_id).run_id
    else:
        latest = log.latest_run_of(notebook)
        if latest is None:
            raise BadRequest(f"no finished run of {notebook.name} in the log: run it first")
        full = latest
    out = docs_dir(path) / full[:8]
    written = build_docs(notebook, out, full, ("html",), path)
    return f"docs-files/{full[:8]}/{written[0].name}"


# ---------------------------------------------------------------------- pipeline runs
def inside_root(root_dir: str, relative: str, what: str = "path") -> Path:
    """``root/relative`` for a path given relative to the server's root: no ``..``, no
    absolute path, and not leading outside through a symbolic link."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise BadRequest(f"{what} {relative!r} must be relative to the root, without '..'")
    root = Path(root_dir).resolve()
    with parsing(f"{what} {relative[:80]!r}", OSError):  # a NUL byte, a name too long...
        target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise BadRequest(f"{what} {relative!r} is outside the server's root folder")
    return target


def notebook_in_root(root_dir: str, notebook: Any) -> Path:
    """An existing ``.ipynb`` inside the server's root folder, given relative to it."""
    if not isinstance(notebook, str) or not notebook:
        raise BadRequest("notebook must be a path relative to the server's root folder")
    target = inside_root(root_dir, notebook, "notebook")
    if target.suffix != ".ipynb":
        raise BadRequest(f"notebook {notebook!r} is not a .ipynb file")
    with parsing(f"notebook {notebook[:80]!r}", OSError):
        exists = target.is_file()
    if not exists:
        raise BadRequest(f"no notebook {notebook!r} in the server's root folder")
    return target


def parameter_values(data: dict[str, Any]) -> dict[str, Any]:
    """The request's ``parameters`` object (name: value), to be checked against the notebook."""
    values = data.get("parameters") or {}
    if not isinstance(values, dict):
        raise BadRequest("parameters must be a JSON object of name: value")
    return values


def check_parameters(notebook: Path, values: dict[str, Any]) -> dict[str, Any]:
    from mlops_nb.pipeline.parameters import load_parameters, resolve

    with parsing(f"notebook {notebook.name}"):  # not JSON, not a notebook's structure
        parameters = load_parameters(notebook)
    return resolve(parameters, [], values)


def read_parameters(notebook: Path) -> list[dict[str, Any]]:
    from mlops_nb.pipeline.parameters import load_parameters

    with parsing(f"notebook {notebook.name}"):
        parameters = load_parameters(notebook)
    return [plain(p.to_record()) for p in parameters]


def experiment_name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not _VALUE_NAME.fullmatch(value)):
        raise BadRequest(f"bad experiment name {value!r}: letters, digits, _ . - only")
    return value


def pipeline_request(root_dir: str, log_file: str, data: dict[str, Any]) -> RunRequest:
    """POST /pipeline/runs: the notebook, its checked and typed values, the experiment."""
    notebook = notebook_in_root(root_dir, data.get("notebook"))
    experiment = experiment_name(data.get("experiment"))
    values = check_parameters(notebook, parameter_values(data))
    relative = notebook.relative_to(Path(root_dir).resolve()).as_posix()
    return RunRequest(relative, values, str(log_file), root_dir, experiment)


# ---------------------------------------------------------------------- handlers
class BaseHandler(APIHandler):
    """JSON answers and one-line errors: 400 bad input, 404 unknown id, 429 too many runs,
    500 (logged with its traceback) for anything else.

    Every method is ``@authorized`` on ``auth_resource``: GET needs ``read``, writing docs or
    schedules ``write``, starting a pipeline ``execute``, so a deployment's Authorizer can
    allow reading the log while refusing to run code."""

    auth_resource = AUTH_RESOURCE

    @property
    def root_dir(self) -> str:
        return self.settings["mlops_nb_root_dir"]

    @property
    def log_file(self) -> str:
        return log_path(self.root_dir)

    def reply(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(plain(payload)))

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message.strip().splitlines()[0] if message else ""}))

    async def guarded(self, work: Callable[[], Any]) -> None:
        """Run ``work`` (a coroutine function) and map every error to a one-line answer."""
        try:
            await work()
        except tornado.web.HTTPError:
            raise
        except (RunNotFoundError, registry_views.ModelNotFound) as error:
            self.fail(404, str(error))
        except TooManyRuns as error:
            self.fail(429, str(error))
        except (BadRequest, MlopsError) as error:
            self.fail(400, str(error))
        except Exception as error:  # noqa: BLE001 - a bug: logged in full, one line answered
            self.log.error("mlops_nb: %s %s failed", self.request.method, self.request.path,
                           exc_info=True)  # fmt: skip
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            self.fail(500, f"internal error ({type(error).__name__}{': ' + text if text else ''})"
                      "; the server log has the details")  # fmt: skip

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as error:
            raise BadRequest(f"the request body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise BadRequest("the request body must be a JSON object")
        return data

    def int_argument(self, name: str, default: int, most: int) -> int:
        text = self.get_query_argument(name, str(default))
        try:
            value = int(text)
        except ValueError:
            raise BadRequest(f"{name} must be an integer, got {text[:40]!r}") from None
        if not 1 <= value <= most:
            raise BadRequest(f"{name} must be from 1 to {most}, got {text[:40]}")
        return value


class HealthHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        path = self.log_file
        self.reply({"ok": True, "version": mlops_nb.__version__, "log": str(path),
                    "log_exists": log_exists(path)})  # fmt: skip


class ExperimentsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        async def work() -> None:
            self.reply(await off_loop(read_experiments, self.log_file))

        await self.guarded(work)


class RunsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        async def work() -> None:
            raw_filter = self.get_query_argument("filter", "")
            try:
                filters = conditions_from_json(json.loads(raw_filter) if raw_filter else [])
            except ValueError:
                raise BadRequest("filter must be a JSON list of conditions") from None
            for name in ("status", "stage"):
                value = self.get_query_argument(name, "")
                if value:
                    filters.append(Condition(name, "=", value))
            order = self.get_query_argument("order", "desc").lower()
            if order not in ("asc", "desc"):
                raise BadRequest(f"order must be asc or desc, got {order!r}")
            sort = self.get_query_argument("sort", "")
            query = {
                "experiment": self.get_query_argument("experiment", "") or None,
                "filters": filters,
                "sort": Sort(sort, descending=order == "desc") if sort else None,
                "page": self.int_argument("page", 1, MAX_PAGE),
                "page_size": self.int_argument("page_size", 50, MAX_PAGE_SIZE),
            }
            self.reply(await off_loop(read_runs, self.log_file, query))

        await self.guarded(work)


class RunHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        async def work() -> None:
            self.reply(await off_loop(read_run, self.log_file, run_id, self.root_dir))

        await self.guarded(work)


class CompareHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        async def work() -> None:
            ids = [i.strip() for i in self.get_query_argument("ids", "").split(",") if i.strip()]
            if not ids:
                raise BadRequest("ids must list run ids separated by commas")
            if len(ids) > 50:
                raise BadRequest(f"compare at most 50 runs at a time, got {len(ids)}")
            bad = [i for i in ids if not _RUN_ID.fullmatch(i)]
            if bad:
                raise BadRequest(f"{bad[0]!r} is not a run id")
            self.reply(await off_loop(read_compare, self.log_file, ids))

        await self.guarded(work)


class FileHandler(BaseHandler):
    """Sends one file; the subclasses decide which file and are the only confinement check."""

    async def send(self, target: Path, download_name: str | None = None) -> None:
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if download_name:
            safe = re.sub(r'["\\\r\n]', "_", download_name)
            self.set_header("Content-Disposition", f'attachment; filename="{safe}"')
        self.finish(await off_loop(target.read_bytes), set_content_type=content_type)


class ArtifactHandler(FileHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str, sha256: str) -> None:
        async def work() -> None:
            target, name = await off_loop(artifact_file, self.log_file, run_id, sha256)
            await self.send(target, name)

        await self.guarded(work)


class DocsFileHandler(FileHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, relative: str) -> None:
        async def work() -> None:
            target = await off_loop(inside, docs_dir(self.log_file), relative)
            await self.send(target)

        await self.guarded(work)


class DocsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("write")
    async def post(self) -> None:
        async def work() -> None:
            data = self.body()
            notebook = notebook_in_root(self.root_dir, data.get("notebook"))
            run_id = data.get("run_id")
            if run_id is not None and not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
                raise BadRequest(f"{run_id!r} is not a run id")
            url = await off_loop(make_docs, self.log_file, notebook, run_id)
            self.reply({"url": url})

        await self.guarded(work)


class PipelineParametersHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        async def work() -> None:
            notebook = notebook_in_root(self.root_dir, self.get_query_argument("notebook", ""))
            self.reply(await off_loop(read_parameters, notebook))

        await self.guarded(work)


class PipelineRunsHandler(BaseHandler):
    """GET lists the processes as last checked (a read: nothing is reaped or forgotten);
    POST starts one (``execute``), or answers 429 when the configured number already run."""

    @property
    def registry(self) -> ProcessRegistry:
        return self.settings["mlops_nb_processes"]

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.reply(self.registry.states())

    @tornado.web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        async def work() -> None:
            data = self.body()
            request = await off_loop(pipeline_request, self.root_dir, self.log_file, data)
            pid = self.registry.start(request)
            self.reply({"started": True, "pid": pid}, status=202)

        await self.guarded(work)


def schedule_notebook(root_dir: str, log_file: Path, data: dict[str, Any]) -> dict[str, Any]:
    """POST /schedule: ``mlops-nb schedule`` for a notebook and folder inside the root."""
    from mlops_nb.pipeline.schedule import format_run_time, write_schedule

    notebook = notebook_in_root(root_dir, data.get("notebook"))
    for key in ("cron", "target", "out"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise BadRequest(f"{key} must be a non-empty string")
    out = inside_root(root_dir, data["out"], "out")
    root = Path(root_dir).resolve()
    written = write_schedule(
        notebook, data["cron"], data["target"], values=parameter_values(data), out=out,
        project=root, log_path=log_file,
    )  # fmt: skip
    return {
        "files": [path.relative_to(root).as_posix() for path in written.files],
        "next_runs": [format_run_time(when) for when in written.upcoming],
        "install": written.install,
        "note": written.note,
    }


class ScheduleHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("write")
    async def post(self) -> None:
        async def work() -> None:
            data = self.body()
            self.reply(await off_loop(schedule_notebook, self.root_dir, self.log_file, data))

        await self.guarded(work)


class ProgressHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        async def work() -> None:
            self.reply(await off_loop(read_progress, self.log_file))

        await self.guarded(work)


class ModelsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        async def work() -> None:
            self.reply(await off_loop(read_models, self.log_file))

        await self.guarded(work)


class ModelHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized("read")
    async def get(self, name: str) -> None:
        async def work() -> None:
            self.reply(await off_loop(read_model, self.log_file, name))

        await self.guarded(work)


class ModelAliasesHandler(BaseHandler):
    """POST points an alias at a version (``write``); the move is recorded with its reason."""

    @tornado.web.authenticated
    @authorized("write")
    async def post(self, name: str) -> None:
        async def work() -> None:
            data = self.body()
            self.reply(await off_loop(move_model_alias, self.log_file, name, data))

        await self.guarded(work)


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    ("health", HealthHandler),
    ("experiments", ExperimentsHandler),
    ("runs", RunsHandler),
    (r"runs/([^/]+)", RunHandler),
    ("compare", CompareHandler),
    (r"artifacts/([^/]+)/([^/]+)", ArtifactHandler),
    ("docs", DocsHandler),
    (r"docs-files/(.*)", DocsFileHandler),
    ("pipeline/parameters", PipelineParametersHandler),
    ("pipeline/runs", PipelineRunsHandler),
    ("schedule", ScheduleHandler),
    ("progress", ProgressHandler),
    ("models", ModelsHandler),
    (r"models/([^/]+)", ModelHandler),
    (r"models/([^/]+)/aliases", ModelAliasesHandler),
]
