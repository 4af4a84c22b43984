"""``mlops-nb run``: execute a notebook with papermill and record it as one run.

The runner owns the run (starts it with the typed parameters, ends it finished or failed).
The kernel records into the same run: the runner starts it with the mlops_nb extension
loaded and ``%mlops track`` executed, and hands it the run id and log path through its
environment (papermill leaves no marker inside the kernel). While cells execute, the
runner writes progress (cell k of n, current stage) as run tags the sidebar can poll.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb.errors import MlopsError
from mlops_nb.log.api import DEFAULT_EXPERIMENT
from mlops_nb.log.values import is_secret_name
from mlops_nb.pipeline.notebook import Pipeline, read_pipeline, stage_marker
from mlops_nb.pipeline.parameters import load_smoke_pairs, load_values_file, resolve
from mlops_nb.pipeline.secrets import hide_secrets, secrets_from_environment

PROGRESS_TAG = "mlops.progress"
STAGE_TAG = "mlops.stage"
OUTPUT_TAG = "mlops.output"
RESUMED_TAG = "mlops.resumed_from"
SMOKE_TAG = "mlops.smoke"  # "true" on a smoke run, which is recorded in EXPERIMENT-smoke


class PipelineFailed(MlopsError):
    """A cell of the pipeline raised; the run is recorded as failed."""


@dataclass
class PipelineResult:
    run_id: str
    status: str
    output: str
    seconds: float
    error: str | None = None
    failed_cell: int | None = None
    failed_stage: str | None = None
    resumed: Any = None  # the ResumePlan when this run resumed a failed one
    cached_cells: int = 0
    cached_seconds: float = 0.0


def run_from_cli(args: argparse.Namespace) -> int:
    notebook = args.notebook
    _check_readable(notebook)
    loaded = _load(notebook)
    pipeline = read_pipeline(notebook, loaded)
    for warning in pipeline.parameter_warnings():
        print(f"mlops-nb run: warning: {warning}", file=sys.stderr)
    file_values = load_values_file(args.file) if args.file else None
    smoke = getattr(args, "smoke", False)
    smoke_set = load_smoke_pairs(loaded) if smoke else []
    if smoke and not smoke_set and not args.parameter:
        raise MlopsError(
            f"{notebook} declares no smoke parameters: add a line such as "
            "'# mlops: smoke n_rows=500' to its parameters cell, or give them with -p"
        )
    values = resolve(pipeline.parameters, args.parameter, file_values, smoke=smoke_set)
    experiment = args.experiment
    if smoke:  # kept apart, so a smoke run is never the run a gate or a comparison picks
        base = experiment or pipeline.experiment or os.environ.get("MLOPS_NB_EXPERIMENT")
        experiment = f"{base or DEFAULT_EXPERIMENT}-smoke"
    result = run_notebook(
        notebook,
        values,
        output=args.output,
        experiment=experiment,
        log_path=_log_of(args),
        cwd=args.cwd,
        kernel=args.kernel,
        timeout=args.timeout,
        pipeline=pipeline,
        resume=args.resume,
        cache=args.cache,
        tags={SMOKE_TAG: "true"} if smoke else None,
    )
    run_id_file = getattr(args, "run_id_file", None)
    if run_id_file:  # how the next CI job finds this run, even in a log others write to
        Path(run_id_file).parent.mkdir(parents=True, exist_ok=True)
        Path(run_id_file).write_text(result.run_id + "\n")
    gateway = getattr(args, "pushgateway", None) or os.environ.get("MLOPS_NB_PUSHGATEWAY")
    if gateway:  # a scheduled batch run reports to Prometheus; a failed push only warns
        import mlops_nb
        from mlops_nb.monitor.pushgateway import push_run_of_log

        push_run_of_log(gateway, mlops_nb.open_log(_log_of(args)), notebook, result.run_id,
                        result.status == "finished", result.seconds)  # fmt: skip
    if result.resumed is not None:
        plan = result.resumed
        saved = f"{plan.skipped_seconds:.1f} s"
        print(f"resumed from run {plan.failed_run_id[:8]} at stage {plan.stage}: skipped "
              f"{plan.skipped_cells} cells, saving {saved} of work")  # fmt: skip
    if result.cached_cells:
        print(f"{result.cached_cells} cells restored from the cache, saving "
              f"{result.cached_seconds:.1f} s of work")  # fmt: skip
    if args.docs and result.status == "finished":
        from mlops_nb.docs.build import build_docs

        for written in build_docs(notebook, args.docs, result.run_id, log_path=_log_of(args)):
            print(f"docs: {written}")
    if result.status != "finished":
        print(f"mlops-nb run: {result.error}", file=sys.stderr)
        print(f"run {result.run_id} failed; output notebook kept: {result.output}", file=sys.stderr)
        return 1
    print(f"run {result.run_id} finished in {result.seconds:.1f} s; output: {result.output}")
    return 0


def run_notebook(
    notebook: str,
    values: dict[str, Any],
    *,
    output: str | None = None,
    experiment: str | None = None,
    log_path: str | None = None,
    cwd: str | None = None,
    kernel: str | None = None,
    timeout: float | None = None,
    pipeline: Pipeline | None = None,
    parent_run_id: str | None = None,
    progress: bool | None = None,
    tags: dict[str, str] | None = None,
    resume: str | None = None,
    cache: bool = False,
    kernel_env: dict[str, str] | None = None,
) -> PipelineResult:
    """Execute ``notebook`` with ``values`` (already validated) and record it as one run.

    ``resume``: the id of a failed run of this notebook to continue from its failed stage.
    ``cache``: cells whose code and inputs match a recorded successful cell are restored.
    ``kernel_env``: extra environment variables for the kernel (a sweep limits BLAS threads).
    """
    import papermill

    import mlops_nb

    started = time.perf_counter()
    nb = _load(notebook)
    pipeline = pipeline or read_pipeline(notebook, nb)
    log = mlops_nb.open_log(log_path)
    plan = None
    previous: dict[str, Any] = {}
    if resume:
        from mlops_nb.pipeline.resume import notebook_for_resume, plan_resume

        plan = plan_resume(log, resume, pipeline)
        declared = {p.name for p in pipeline.parameters}
        # secrets were recorded as ***: give them again (-p or MLOPS_NB_SECRET_<NAME>)
        previous = {k: v for k, v in plan.params.items() if k in declared
                    and not is_secret_name(k)}  # fmt: skip
        values = previous | values
        tags = {**(tags or {}), RESUMED_TAG: plan.failed_run_id}
    values = secrets_from_environment([p.name for p in pipeline.parameters], values, os.environ)
    effective = {p.name: p.default for p in pipeline.parameters} | values
    run = log.start_run(
        experiment=experiment or pipeline.experiment,
        name=Path(notebook).stem,
        params=effective,
        parent_run_id=parent_run_id,
        source="papermill",
        notebook_path=_display_path(notebook),
        notebook_hash=_notebook_hash(notebook),
    )
    output = output or str(
        log.path.parent / "outputs" / f"{Path(notebook).stem}-{run.run_id[:8]}.ipynb"
    )
    if "://" not in output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    run.set_tags({OUTPUT_TAG: output, **(tags or {})})
    log.flush()  # the run is visible (and `running`) before the kernel starts
    environment = {
        "MLOPS_NB_RUN_ID": run.run_id,
        "MLOPS_NB_LOG": log.location,
        "MLOPS_NB_PIPELINE": "1",
        "MLOPS_NB_NOTEBOOK": local_path(notebook) or notebook,
        "MLOPS_NB_KERNEL": kernel or "python3",
        "MLOPS_NB_CACHE": "1" if cache else "0",
        **(kernel_env or {}),
    }
    # secret values reach the kernel through its environment, never the output notebook
    values, secret_environment = hide_secrets(values)
    environment.update(secret_environment)
    mode = (
        ("bar" if sys.stderr.isatty() else "lines")
        if progress is None
        else ("bar" if progress else "off")
    )
    reporter = _Progress(run, mode)
    try:
        papermill.execute_notebook(
            notebook_for_resume(nb, plan, pipeline) if plan else notebook,
            output,
            parameters=values,
            kernel_name=kernel or "python3",
            cwd=cwd,
            progress_bar=False,
            execution_timeout=timeout,
            engine_name=_ENGINE_NAME,
            mlops_progress=reporter,
            kernel_manager_class=_kernel_manager_with(environment, _kernel_log(output)),
            extra_arguments=[
                "--IPKernelApp.extensions=mlops_nb",
                "--IPKernelApp.exec_lines=%mlops track",
            ],  # fmt: skip
        )
    except KeyboardInterrupt:
        run.end("failed", error="interrupted")
        log.flush()
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the notebook ends the run
        reporter.close()
        message, cell, stage = _describe_failure(error, pipeline, reporter, output)
        run.end("failed", error=message)
        _store_output(run, output)
        log.flush()
        return PipelineResult(run.run_id, "failed", output, time.perf_counter() - started,
                              message, cell, stage, plan)  # fmt: skip
    reporter.close()
    _store_output(run, output)
    run.end("finished")
    log.flush()
    cached, saved = log.cached_cells(run.run_id) if cache else (0, 0.0)
    return PipelineResult(run.run_id, "finished", output, time.perf_counter() - started,
                          resumed=plan, cached_cells=cached, cached_seconds=saved)  # fmt: skip


# ---------------------------------------------------------------------- progress
class _Progress:
    """Cell k of n and the current stage: as run tags, and on the terminal."""

    def __init__(self, run, mode: str):
        self.run = run
        self.stage: str | None = None
        self.cell_number = 0
        self.total = 0
        self.bar = None
        self.mode = mode  # "bar" on a terminal, "lines" in logs, "off" for sweep children

    def start(self, notebook) -> None:
        self.total = sum(1 for cell in notebook.cells if cell.cell_type == "code")
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="cell", desc="starting", file=sys.stderr)

    def cell_started(self, cell, index: int) -> None:
        if cell.cell_type != "code":
            return
        self.cell_number += 1
        self.stage = stage_marker(cell) or self.stage
        self.run.set_tags({PROGRESS_TAG: f"{self.cell_number}/{self.total}",
                           STAGE_TAG: self.stage or ""})  # fmt: skip
        label = f"cell {self.cell_number}/{self.total}" + (f" ({self.stage})" if self.stage else "")
        if self.bar is not None:
            self.bar.set_description(self.stage or "cells")
        elif self.mode == "lines":
            print(f"[mlops] {label}", file=sys.stderr, flush=True)

    def cell_finished(self, cell) -> None:
        if cell.cell_type == "code" and self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _make_engine():
    """A papermill engine (registered once) that reports each cell to a ``_Progress``."""
    from papermill.engines import NBClientEngine, papermill_engines

    class RecordingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            reporter: _Progress | None = kwargs.pop("mlops_progress", None)
            if reporter is not None:
                reporter.start(nb_man.nb)
                started, completed = nb_man.cell_start, nb_man.cell_complete

                def cell_start(cell, cell_index=None, **more):
                    reporter.cell_started(cell, cell_index)
                    return started(cell, cell_index, **more)

                def cell_complete(cell, cell_index=None, **more):
                    reporter.cell_finished(cell)
                    return completed(cell, cell_index, **more)

                nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(_ENGINE_NAME, RecordingEngine)


_ENGINE_NAME = "mlops_nb"


def _kernel_manager_with(environment: dict[str, str], kernel_log: Path | None = None):
    """A kernel manager class whose kernels get ``environment`` (thread-safe, unlike os.environ)
    and write their own stderr (ipykernel's transport warnings...) to ``kernel_log``."""
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kwargs):  # type: ignore[override]
            env = dict(kwargs.pop("env", None) or os.environ)
            env.update(environment)
            if kernel_log is not None and "stderr" not in kwargs:
                kwargs["stderr"] = open(kernel_log, "ab")  # noqa: SIM115 - the kernel owns it
            return await super().start_kernel(env=env, **kwargs)

    return RunKernelManager


# ---------------------------------------------------------------------- helpers
def _log_of(args: argparse.Namespace) -> str | None:
    return getattr(args, "log", None)


def _describe_failure(
    error: Exception, pipeline: Pipeline, reporter: _Progress, output: str | None = None
):
    """One line: which cell, which stage, which exception."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        cell_number = reporter.cell_number or (error.cell_index + 1)
        stage = reporter.stage
        where = f"cell {cell_number}" + (f" (stage {stage})" if stage else "")
        what = f"{error.ename}: {error.evalue}"
        if not str(error.evalue).strip():
            what = _printed_error(output, error.exec_count) or what
        return f"{where} failed: {what}", cell_number, stage
    name = type(error).__name__
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"the notebook could not run: {name}{': ' + detail if detail else ''}", None, None


def _printed_error(output: str | None, execution_count: int | None) -> str | None:
    """The last line the failed cell printed on stderr: a magic's UsageError (e.g. the
    ``%mlops restore`` of a resume) is printed there, so papermill's error has no message."""
    if output is None or execution_count is None:
        return None
    from papermill.iorw import load_notebook_node

    try:
        cells = load_notebook_node(output).cells
    except Exception:  # noqa: BLE001 - no output to read: the error as papermill gave it
        return None
    for cell in cells:
        if cell.get("execution_count") == execution_count:
            lines = [line.strip() for out in cell.get("outputs", [])
                     if out.get("output_type") == "stream" and out.get("name") == "stderr"
                     for line in str(out.get("text", "")).splitlines() if line.strip()]  # fmt: skip
            return lines[-1] if lines else None
    return None


def _kernel_log(output: str) -> Path | None:
    """Beside a local output notebook: ``<output>.kernel.log``."""
    if "://" in output:
        return None
    return Path(output).with_suffix(".kernel.log")


def _store_output(run, output: str) -> None:
    if "://" in output or not Path(output).is_file():
        return
    with contextlib.suppress(OSError):  # the run's record matters more than the copy
        run.log_artifact(output, kind="notebook")


def _load(notebook: str):
    from papermill.iorw import load_notebook_node

    try:
        return load_notebook_node(notebook)
    except FileNotFoundError:
        raise MlopsError(f"no notebook at {notebook}") from None
    except Exception as error:  # noqa: BLE001 - nbformat raises many kinds
        raise MlopsError(f"{notebook} is not a readable notebook: {error}") from None


def _check_readable(notebook: str) -> None:
    if "://" not in notebook and not Path(notebook).is_file():
        raise MlopsError(f"no notebook at {notebook}")
    if not notebook.endswith(".ipynb"):
        raise MlopsError(f"{notebook} is not a .ipynb notebook")


def local_path(notebook: str) -> str | None:
    """A local path made absolute (a kernel's or a Dask worker's working folder is not
    ours); None for a URL papermill reads."""
    return None if "://" in notebook else str(Path(notebook).absolute())


def _display_path(notebook: str) -> str:
    local = local_path(notebook)
    if local is None:
        return notebook
    try:
        return str(Path(local).relative_to(Path.cwd()))
    except ValueError:
        return local


def _notebook_hash(notebook: str) -> str | None:
    local = local_path(notebook)
    if local is None:
        return None
    return hashlib.sha256(Path(local).read_bytes()).hexdigest()


_make_engine()
