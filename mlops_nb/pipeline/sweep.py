"""``mlops-nb sweep``: a grid (or a random sample) of parameters, each a child run of one sweep.

Children run in parallel on an engine: the local process pool by default, or a Dask
distributed cluster (``--engine dask [--scheduler ADDRESS]``), so a team that outgrows one
machine points the same command at its cluster. Every child is an ordinary ``mlops-nb run``
(its own kernel and process) writing to the shared log; a child that fails does not stop the
others. The sweep ends with a table ranked by ``--metric``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.log.filters import Condition, Sort
from mlops_nb.pipeline.notebook import read_pipeline
from mlops_nb.pipeline.parameters import (
    Parameter,
    ParameterError,
    check_value,
    load_values_file,
    resolve,
)
from mlops_nb.pipeline.runner import local_path, run_notebook

SWEEP_TAG = "mlops.kind"


def sweep_from_cli(args: argparse.Namespace) -> int:
    if not Path(args.notebook).is_file():
        raise MlopsError(f"no notebook at {args.notebook}")
    pipeline = read_pipeline(args.notebook)
    fixed = resolve(pipeline.parameters, [], load_values_file(args.file) if args.file else None)
    grid = parse_grid(pipeline.parameters, args.parameter)
    combinations = choose(grid, args.random, args.seed)
    if args.engine == "local" and args.scheduler:
        raise MlopsError("--scheduler needs --engine dask")
    summary = run_sweep(
        args.notebook, fixed, combinations, engine=args.engine, workers=args.workers,
        scheduler=args.scheduler, experiment=args.experiment, log_path=getattr(args, "log", None),
        out_dir=args.out, cwd=args.cwd, kernel=args.kernel, timeout=args.timeout,
        metric=args.metric, goal=args.goal,
    )  # fmt: skip
    print(summary["table"])
    failed = summary["failed"]
    print(f"sweep {summary['sweep_run_id'][:8]}: {len(combinations) - failed} of "
          f"{len(combinations)} runs finished in {summary['seconds']:.1f} s")  # fmt: skip
    return 1 if failed else 0


def parse_grid(parameters: list[Parameter], pairs: list[list[str]]) -> dict[str, list[Any]]:
    """``-p lr 0.01,0.1,1`` -> {"lr": [0.01, 0.1, 1.0]}, each value checked against its type."""
    declared = {p.name: p for p in parameters}
    grid: dict[str, list[Any]] = {}
    for name, text in pairs:
        if name not in declared:
            known = ", ".join(declared) or "none: the notebook has no parameters cell"
            raise ParameterError(f"unknown parameter {name!r}; known: {known}")
        raw_values = _split_values(text)
        if not raw_values:
            raise ParameterError(f"parameter {name!r}: no values to sweep in {text!r}")
        grid[name] = [check_value(declared[name], raw, from_text=True) for raw in raw_values]
    if not grid:
        raise MlopsError("nothing to sweep: give -p NAME V1,V2,... at least once")
    return grid


def choose(grid: dict[str, list[Any]], sample: int | None, seed: int) -> list[dict[str, Any]]:
    """Every combination, or ``sample`` of them drawn without replacement."""
    names = list(grid)
    combinations = [dict(zip(names, values, strict=True))
                    for values in itertools.product(*grid.values())]  # fmt: skip
    if sample is not None:
        if sample < 1:
            raise MlopsError("--random needs a positive number of runs")
        combinations = random.Random(seed).sample(combinations, min(sample, len(combinations)))
    return combinations


def run_sweep(
    notebook: str,
    fixed: dict[str, Any],
    combinations: list[dict[str, Any]],
    *,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    experiment: str | None = None,
    log_path: str | None = None,
    out_dir: str | None = None,
    cwd: str | None = None,
    kernel: str | None = None,
    timeout: float | None = None,
    metric: str | None = None,
    goal: str = "max",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run every combination as a child of one sweep run; returns the ranked table and counts."""
    import time

    import mlops_nb

    started = time.perf_counter()
    pipeline = read_pipeline(notebook)
    log = mlops_nb.open_log(log_path)
    sweep = log.start_run(
        experiment=experiment or pipeline.experiment,
        name=f"sweep {Path(notebook).stem}",
        params={"sweep.size": len(combinations), "sweep.engine": engine, **fixed},
        tags={SWEEP_TAG: "sweep"},
        source="papermill",
    )
    sweep.log_param("sweep.grid", _grid_of(combinations))
    log.flush()
    out_folder = Path(out_dir) if out_dir else log.path.parent / "outputs" / sweep.run_id[:8]
    out_folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        {"notebook": local_path(notebook) or notebook, "values": {**fixed, **combination},
         "output": str(out_folder / f"{Path(notebook).stem}-{index + 1:03d}.ipynb"),
         "experiment": experiment or pipeline.experiment, "log_path": log.location,
         "cwd": local_path(cwd or "."), "kernel": kernel, "timeout": timeout,
         "parent_run_id": sweep.run_id}
        for index, combination in enumerate(combinations)
    ]  # fmt: skip
    if engine == "dask" and "://" not in notebook:  # for workers that don't share our folders
        text = Path(notebook).read_text(encoding="utf-8")
        for job in jobs:
            job["notebook_text"] = text
    if engine == "local":
        threads = _threads_per_run(workers, len(jobs))
        for job in jobs:
            job["kernel_env"] = threads
    run_jobs = _ENGINES[engine]
    results: list[dict[str, Any]] = []
    bar = _progress(len(jobs), progress)
    for result in run_jobs(jobs, workers, scheduler):
        results.append(result)
        bar(result)
    failed = sum(1 for r in results if r["status"] != "finished")
    table = ranked_table(log, sweep.run_id, list(combinations[0]) if combinations else [],
                         metric, goal)  # fmt: skip
    if metric and not table.empty and f"metrics.{metric}" in table:
        best = table.iloc[0]
        sweep.log_metric(f"best_{metric}", float(best[f"metrics.{metric}"]))
        sweep.set_tags({"mlops.best_run": best["run_id"]})
    sweep.end("finished" if failed < len(jobs) else "failed",
              error=f"{failed} of {len(jobs)} runs failed" if failed else None)  # fmt: skip
    log.flush()
    return {"sweep_run_id": sweep.run_id, "results": results, "failed": failed,
            "table": _render(table), "frame": table,
            "seconds": time.perf_counter() - started}  # fmt: skip


def ranked_table(
    log, sweep_run_id: str, swept: list[str], metric: str | None, goal: str
) -> pd.DataFrame:
    """The sweep's children, best first by ``metric`` (failed runs last)."""
    order = Sort(f"metrics.{metric}", descending=goal == "max") if metric else None
    try:
        frame = log.runs(filters=[Condition("parent_run_id", "=", sweep_run_id)], order_by=order)
    except MlopsError as error:
        raise MlopsError(f"cannot rank by {metric!r}: {error}") from None
    columns = ["run_id", "status"] + [f"params.{name}" for name in swept]
    columns += [c for c in frame.columns if c.startswith("metrics.") and frame[c].notna().any()]
    frame = frame[[c for c in columns if c in frame.columns]].copy()
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


# ---------------------------------------------------------------------- engines
def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    """One child run, in whatever process the engine gives it; never raises."""
    values = job.pop("values")
    notebook = job.pop("notebook")
    try:
        notebook = _here(notebook, job)
        result = run_notebook(notebook, values, progress=False, **job)
    except Exception as error:  # noqa: BLE001 - a broken child must not stop the sweep
        return {"run_id": None, "status": "failed", "error": f"{type(error).__name__}: {error}",
                "values": values}  # fmt: skip
    return {**asdict(result), "values": values}


def _here(notebook: str, job: dict[str, Any]) -> str:
    """The notebook to run on this machine: on a Dask worker that does not see the sweep's
    folders, a copy of the text the job carries, in a folder of its own (also its working
    folder and output folder when the sweep's are not here either)."""
    text = job.pop("notebook_text", None)
    if text is None or Path(notebook).is_file():
        return notebook
    folder = Path(tempfile.mkdtemp(prefix="mlops-nb-sweep-"))
    copy = folder / Path(notebook).name
    copy.write_text(text, encoding="utf-8")
    if not Path(job["cwd"]).is_dir():
        job["cwd"] = str(folder)
    try:
        Path(job["output"]).parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        job["output"] = str(folder / Path(job["output"]).name)
    return str(copy)


def _local_engine(jobs: list[dict], workers: int | None, scheduler: str | None) -> Iterator[dict]:
    """A pool of worker processes on this machine (spawned: each gets a clean interpreter)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    count = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = [pool.submit(_run_child, dict(job)) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def _dask_engine(jobs: list[dict], workers: int | None, scheduler: str | None) -> Iterator[dict]:
    """Each run is a task on a Dask distributed cluster (given, or a local one started here)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MlopsError(
            "--engine dask needs dask.distributed: pip install 'mlops-nb[dask]'"
        ) from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout=30)
    else:
        count = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")  # fmt: skip
        client = Client(cluster)
    try:
        futures = [client.submit(_run_child, dict(job), pure=False) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


_ENGINES: dict[str, Callable[..., Iterator[dict]]] = {"local": _local_engine, "dask": _dask_engine}


# ---------------------------------------------------------------------- helpers
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS")  # fmt: skip


def _threads_per_run(workers: int | None, jobs: int) -> dict[str, str]:
    """Share the cores between parallel kernels: numpy/scikit-learn start one BLAS/OpenMP
    thread per core in every kernel, and two kernels spinning on two cores each ran 1.3x
    faster than one instead of 1.9x (measured by benchmarks/bench_sweep.py)."""
    cores = os.cpu_count() or 1
    parallel = max(1, min(workers or cores, jobs))
    if parallel == 1:
        return {}
    per_run = str(max(1, cores // parallel))
    return {name: os.environ.get(name, per_run) for name in _THREAD_VARIABLES}


def _split_values(text: str) -> list[str]:
    """Comma-separated values; a JSON list (``[[1,2],[3]]``) lists structured values."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except ValueError:
            values = None
        if isinstance(values, list):
            return [json.dumps(v) if not isinstance(v, str) else v for v in values]
    return [part.strip() for part in text.split(",") if part.strip()]


def _grid_of(combinations: list[dict[str, Any]]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for combination in combinations:
        for name, value in combination.items():
            if value not in grid.setdefault(name, []):
                grid[name].append(value)
    return grid


def _progress(total: int, show: bool | None) -> Callable[[dict], None]:
    show = sys.stderr.isatty() if show is None else show
    if show:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="run", desc="sweep", file=sys.stderr)

        def update(result: dict) -> None:
            bar.update(1)
            if bar.n == total:
                bar.close()

        return update
    done = [0]

    def line(result: dict) -> None:
        done[0] += 1
        values = ", ".join(f"{k}={v}" for k, v in result["values"].items())
        status = result["status"] + (f" ({result['error']})" if result.get("error") else "")
        print(f"[mlops] sweep run {done[0]}/{total}: {values}: {status}", file=sys.stderr)

    return line


def _render(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no runs)"
    shown = frame.copy()
    shown["run_id"] = shown["run_id"].str[:8]
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return shown.to_string(index=False)
