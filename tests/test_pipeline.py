"""`mlops-nb run`, `pipeline show`, typed parameters and sweeps, with real kernels."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import REPO, run_cli, subprocess_env
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import mlops_nb as mn
from mlops_nb.pipeline.parameters import ParameterError, load_parameters, parse_parameters, resolve

CHURN = REPO / "example_notebooks" / "churn.ipynb"
PAPERMILL_NOTEBOOKS = Path(papermill.__file__).parent / "tests" / "notebooks"
SMALL = ["-p", "n_customers", "1500", "-p", "n_estimators", "20"]


def _notebook(path: Path, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


def _tagged(source: str, *tags: str):
    cell = new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


# ---------------------------------------------------------------------- typed parameters
def test_parameters_cell_types_defaults_and_help():
    parameters = parse_parameters(
        "from typing import Literal, Optional\n"
        "lr: float = 0.1  # learning rate\n"
        "model: Literal['forest', 'linear'] = 'forest'  # which classifier\n"
        "layers: list[int] = [64, 32]\n"
        "limit: int | None = None\n"
        "grid: dict[str, float] = {'C': 1.0}\n"
        "verbose = False\n"
        "name: Optional[str] = None\n"
    )
    described = {p.name: (str(p.type), p.default, p.help) for p in parameters}
    assert described == {
        "lr": ("float", 0.1, "learning rate"),
        "model": ("one of 'forest', 'linear'", "forest", "which classifier"),
        "layers": ("list[int]", [64, 32], ""),
        "limit": ("int or None", None, ""),
        "grid": ("dict[str, float]", {"C": 1.0}, ""),
        "verbose": ("bool", False, ""),
        "name": ("str or None", None, ""),
    }
    values = resolve(parameters, [("lr", "0.5"), ("layers", "[1, 2]"), ("limit", "none"),
                                  ("verbose", "yes"), ("grid", '{"C": 3}')],
                     {"model": "linear", "name": "x"})  # fmt: skip
    assert values == {"model": "linear", "name": "x", "lr": 0.5, "layers": [1, 2],
                      "limit": None, "verbose": True, "grid": {"C": 3.0}}  # fmt: skip
    for pair, message in [
        (("lr", "fast"), "parameter 'lr': 'fast' is not float"),
        (("model", "tree"), "is not one of 'forest', 'linear'"),
        (("layers", "[1, 'a']"), "is not list[int]"),
        (("limit", "1.5"), "is not int or None"),
        (("verbose", "maybe"), "use true/false"),
        (("depth", "3"), "unknown parameter 'depth'"),
    ]:
        with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
            resolve(parameters, [pair])


def test_a_parameters_cell_that_does_not_parse_is_read_as_tolerantly_as_papermill_does(tmp_path):
    """papermill's own complex_parameters.ipynb: a broken last line, a multi-line list with a
    ``# type:`` comment, a string annotation, an expression default."""
    import ast

    notebook = PAPERMILL_NOTEBOOKS / "complex_parameters.ipynb"
    theirs = papermill.inspect_notebook(str(notebook))
    ours = {p.name: p for p in load_parameters(notebook)}
    assert set(theirs) <= set(ours)  # papermill skips d = a == 3 (two '='); it parses for us
    for name, described in theirs.items():
        assert ours[name].default == ast.literal_eval(described["default"]), name
        assert ours[name].help == described["help"], name
    assert (str(ours["a"].type), str(ours["b"].type), str(ours["c"].type)) == (
        "float", "list[str]", "any or None")  # fmt: skip
    assert (ours["d"].default, str(ours["d"].type)) == ("a == 3", "any")
    shown = run_cli("pipeline", "show", notebook, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "  a: float = 2.25  # Variable a" in shown.stdout
    assert "  b: list[str] = ['Hello', 'World']  # Nice list" in shown.stdout
    assert shown.stderr.strip() == (
        "mlops-nb pipeline show: warning: the parameters cell's line 14 does not parse and was "
        "skipped: = 2"
    )


def test_bad_parameters_fail_before_any_kernel_starts(tmp_path):
    started = time.monotonic()
    result = run_cli("run", CHURN, "-p", "n_estimators", "many", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("mlops-nb run: parameter 'n_estimators': 'many' is not int")
    unknown = run_cli("run", CHURN, "-p", "depth", "3", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown parameter 'depth'" in unknown.stderr
    values = tmp_path / "params.yaml"
    values.write_text("test_size: half\n")
    from_file = run_cli("run", CHURN, "-f", values, cwd=tmp_path)
    assert from_file.returncode == 2 and "'test_size': 'half' is not float" in from_file.stderr
    assert not (tmp_path / ".mlops").exists()  # nothing was started or recorded
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------------- mlops-nb run
def test_run_records_one_run_with_params_cells_progress_and_output(tmp_path):
    result = run_cli("run", CHURN, *SMALL, "-p", "max_depth", "4", "-o", tmp_path / "out.ipynb",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout
    assert "[mlops] cell 4/10 (ingest)" in result.stderr  # plain lines when not a terminal
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    runs = log.runs()
    assert len(runs) == 1
    record = log.run(runs["run_id"][0])
    assert record.info["status"] == "finished" and record.info["source"] == "papermill"
    assert record.info["notebook_hash"] and record.info["experiment"] == "churn"
    assert record.params["n_customers"] == 1500 and record.params["max_depth"] == 4
    assert record.params["test_size"] == 0.25  # defaults are recorded too
    assert record.tags["mlops.progress"] == "10/10" and record.tags["mlops.stage"] == "evaluate"
    assert len(record.cells) == 10 and set(record.cells["status"]) == {"ok"}
    stages = [s for s in record.cells["stage"] if isinstance(s, str)]
    assert stages == ["ingest", "clean", "explore", "features", "train", "train", "evaluate"]
    assert "accuracy" in record.metrics
    assert (tmp_path / "out.ipynb").is_file()
    assert "notebook" in set(record.artifacts["kind"])


def test_a_failing_cell_fails_the_run_with_cell_stage_and_error(tmp_path):
    notebook = _notebook(tmp_path / "fails.ipynb", [
        _tagged("rows: int = 10", "parameters"),
        new_code_cell("%%mlops track ingest\ndata = list(range(rows))"),
        new_code_cell("%%mlops track train\nraise ValueError(f'cannot train on {len(data)} rows')"),
        new_code_cell("never = True"),
    ])  # fmt: skip
    result = run_cli("run", notebook, "-p", "rows", "3", "-o", tmp_path / "out.ipynb",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    message = [line for line in result.stderr.splitlines() if line.startswith("mlops-nb run:")]
    assert message == [
        "mlops-nb run: cell 4 (stage train) failed: ValueError: cannot train on 3 rows"
    ]
    assert (tmp_path / "out.ipynb").is_file()  # the output notebook is kept
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    record = log.run("latest")
    assert record.info["status"] == "failed"
    assert record.info["error"] == "cell 4 (stage train) failed: ValueError: cannot train on 3 rows"
    cells = record.cells.set_index("cell_seq")
    assert cells["status"].tolist()[-1] == "error" and cells["error_type"].tolist()[-1] == (
        "ValueError"
    )


def test_stages_marked_only_by_tags_are_recorded_in_a_pipeline_run(tmp_path):
    notebook = _notebook(tmp_path / "tagged.ipynb", [
        new_markdown_cell("# Tagged pipeline"),
        _tagged("import pandas as pd\nraw = pd.DataFrame({'a': [1, 1, 2]})", "mlops:ingest"),
        _tagged("clean = raw.drop_duplicates()", "mlops:clean"),
        new_code_cell("n = len(clean)"),
    ])  # fmt: skip
    result = run_cli("run", notebook, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = mn.open_log(tmp_path / ".mlops" / "log.duckdb").run("latest")
    assert record.cells["stage"].tolist() == ["ingest", "clean", "clean"]
    clean = record.datasets.set_index("name").loc["clean"]
    assert json.loads(clean["diff"])["duplicates_removed"] == 1


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("simple_execute.ipynb", {"msg": "hello"}),
        ("no_parameters.ipynb", {}),
        ("broken1.ipynb", {}),
        ("sysexit0.ipynb", {}),
        ("sysexit1.ipynb", {}),
        ("systemexit.ipynb", {}),
    ],
)
def test_behaves_like_papermill_on_papermills_own_notebooks(tmp_path, name, parameters):
    from mlops_nb.pipeline.runner import run_notebook

    source = PAPERMILL_NOTEBOOKS / name
    try:
        papermill.execute_notebook(str(source), str(tmp_path / "papermill.ipynb"),
                                   parameters=parameters, progress_bar=False,
                                   kernel_name="python3")  # fmt: skip
        papermill_ok = True
    except Exception:  # noqa: BLE001 - whatever papermill raises counts as a failure
        papermill_ok = False
    result = run_notebook(str(source), parameters, output=str(tmp_path / "ours.ipynb"),
                          log_path=str(tmp_path / "log.duckdb"), progress=False)  # fmt: skip
    assert (result.status == "finished") == papermill_ok
    assert (tmp_path / "ours.ipynb").is_file()
    record = mn.open_log(tmp_path / "log.duckdb").run(result.run_id)
    assert record.info["status"] == result.status
    if not papermill_ok:
        assert record.info["error"]


def test_ctrl_c_stops_the_run_records_it_and_leaves_no_kernel(tmp_path):
    import signal

    import psutil

    runner = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "run",
         str(PAPERMILL_NOTEBOOKS / "keyboard_interrupt.ipynb")],  # a cell that sleeps 60 s
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kernels = [c for c in psutil.Process(runner.pid).children(recursive=True)
                       if "ipykernel" in " ".join(c.cmdline())]  # fmt: skip
            if kernels:
                break
            time.sleep(0.2)
        assert kernels, "the kernel never started"
        time.sleep(2)  # inside the sleeping cell
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130
    assert err.strip().splitlines()[-1] == "mlops-nb run: interrupted"
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kernels)
    record = mn.open_log(tmp_path / ".mlops" / "log.duckdb").run("latest")
    assert (record.info["status"], record.info["error"]) == ("failed", "interrupted")


# ---------------------------------------------------------------------- pipeline show
def test_pipeline_show_lists_stages_typed_parameters_and_last_run_data(tmp_path):
    before = run_cli("pipeline", "show", CHURN, "-f", "json", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    described = json.loads(before.stdout)
    assert [s["name"] for s in described["stages"]] == [
        "ingest", "clean", "explore", "features", "train", "evaluate",
    ]  # fmt: skip
    parameters = {p["name"]: p for p in described["parameters"]}
    assert parameters["n_estimators"] == {
        "name": "n_estimators", "type": "int", "annotation": "int", "default": 200,
        "help": "trees in the random forest", "choices": None,
    }  # fmt: skip
    assert described["last_run"] is None
    assert run_cli("run", CHURN, *SMALL, cwd=tmp_path).returncode == 0
    text = run_cli("pipeline", "show", CHURN, cwd=tmp_path).stdout
    assert "n_estimators: int = 200  # trees in the random forest" in text
    assert "2. clean" in text
    assert "reads:  raw@v1 (1688x12)" in text and "writes: clean@v1 (1500x12)" in text


def test_a_notebook_without_annotations_is_one_stage(tmp_path):
    notebook = _notebook(tmp_path / "plain.ipynb", [new_code_cell("a = 1"),
                                                    new_code_cell("b = a + 1")])  # fmt: skip
    described = json.loads(run_cli("pipeline", "show", notebook, "-f", "json",
                                   cwd=tmp_path).stdout)  # fmt: skip
    assert [(s["name"], len(s["cells"])) for s in described["stages"]] == [("plain", 2)]
    assert described["parameters"] == []


# ---------------------------------------------------------------------- sweeps
def test_local_sweep_runs_the_grid_as_children_and_ranks_them(tmp_path):
    result = run_cli("sweep", CHURN, "-p", "n_estimators", "10,30", "-p", "max_depth", "2,6",
                     "-p", "n_customers", "1500", "--metric", "roc_auc", "--workers", "2",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[0].split()[:5] == ["rank", "run_id", "status", "params.n_estimators",
                                    "params.max_depth"]  # fmt: skip
    assert [line.split()[2] for line in table[1:5]] == ["finished"] * 4
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    sweep = log.runs(where="tags['mlops.kind'] = 'sweep'")
    assert len(sweep) == 1 and sweep["status"][0] == "finished"
    children = log.runs(where=f"parent_run_id = '{sweep['run_id'][0]}'",
                        order_by="metrics.roc_auc DESC")  # fmt: skip
    assert len(children) == 4
    combos = {(r["params.n_estimators"], r["params.max_depth"]) for _, r in children.iterrows()}
    assert combos == {(10, 2), (10, 6), (30, 2), (30, 6)}
    ranked_ids = [line.split()[1] for line in table[1:5]]
    assert ranked_ids == [run_id[:8] for run_id in children["run_id"]]
    assert sweep["metrics.best_roc_auc"][0] == children["metrics.roc_auc"].max()


def test_a_failing_child_does_not_stop_the_sweep(tmp_path):
    notebook = _notebook(tmp_path / "flaky.ipynb", [
        _tagged("x: int = 1", "parameters"),
        new_code_cell("%%mlops track train\nassert x != 2, 'x=2 is broken'\n"
                      "import mlops_nb as mn\nmn.log_metric('score', x * 10)"),
    ])  # fmt: skip
    result = run_cli("sweep", notebook, "-p", "x", "1,2,3", "--metric", "score", "--goal", "min",
                     "--workers", "2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert "2 of 3 runs finished" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()[1:4]]
    assert [row[2] for row in rows] == ["finished", "finished", "failed"]
    assert [row[-1] for row in rows[:2]] == ["10", "30"]  # ranked by score, lowest first


def test_a_dask_worker_without_the_sweeps_folders_runs_the_notebook_text_it_was_sent(tmp_path):
    """A worker on another machine: neither the notebook, nor the sweep's working folder, nor
    its output folder exist there; the job carries the notebook's text."""
    from mlops_nb.pipeline import sweep

    notebook = _notebook(tmp_path / "elsewhere.ipynb", [
        _tagged("x: int = 1", "parameters"),
        new_code_cell("%%mlops track train\nimport os, mlops_nb as mn\n"
                      "mn.log_metric('score', x * 10)\nmn.log_param('cwd', os.getcwd())"),
    ])  # fmt: skip
    text = notebook.read_text()
    notebook.unlink()
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    log_path = tmp_path / ".mlops" / "log.duckdb"
    job = {"notebook": str(notebook), "notebook_text": text, "values": {"x": 4},
           "output": str(not_a_folder / "out.ipynb"), "cwd": str(tmp_path / "gone"),
           "experiment": "far", "log_path": str(log_path), "kernel": None, "timeout": None,
           "parent_run_id": None}  # fmt: skip
    result = sweep._run_child(job)
    assert result["status"] == "finished", result
    assert Path(result["output"]).is_file() and Path(result["output"]).name == "out.ipynb"
    record = mn.open_log(log_path).run(result["run_id"])
    assert record.metrics["score"] == 40
    assert record.params["cwd"] == str(Path(result["output"]).parent)  # its own folder
    assert record.info["name"] == "elsewhere"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dask_sweep_on_a_real_scheduler_and_workers(tmp_path):
    port = _free_port()
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
    env = subprocess_env()
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    worker = subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2",
                               "--nthreads", "1", "--no-dashboard"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        result = run_cli("sweep", CHURN, "-p", "n_estimators", "10,20,30", "-p", "n_customers",
                         "1500", "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}",
                         "--metric", "accuracy", cwd=tmp_path)  # fmt: skip
    finally:
        worker.terminate()
        scheduler.terminate()
        for process in (worker, scheduler):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert result.returncode == 0, result.stderr
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    children = log.runs(where="parent_run_id IS NOT NULL")
    assert sorted(children["params.n_estimators"]) == [10, 20, 30]
    assert set(children["status"]) == {"finished"}
    sweep_pid = log.runs(where="parent_run_id IS NULL")["pid"][0]
    assert sweep_pid not in set(children["pid"])  # the runs executed on the Dask workers


# ---------------------------------------------------------------------- resume
def test_resume_continues_a_failed_run_and_matches_a_full_run(tmp_path):
    small = ["-p", "n_customers", "1500", "-p", "n_estimators", "20"]
    failed = run_cli("run", CHURN, *small, "-p", "max_depth", "0", cwd=tmp_path)
    assert failed.returncode == 1 and "(stage train) failed: InvalidParameterError" in failed.stderr
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    failed_id = log.run("latest").run_id
    resumed = run_cli("run", CHURN, "--resume", failed_id[:8], "-p", "max_depth", "4",
                      cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from run {failed_id[:8]} at stage train: skipped 7 cells" in resumed.stdout
    resumed_record = log.run("latest")
    assert resumed_record.tags["mlops.resumed_from"] == failed_id
    assert resumed_record.params["max_depth"] == 4 and resumed_record.params["n_customers"] == 1500
    # setup, parameters, injected parameters, 4 skipped stages, the restore cell, then the rest
    assert resumed_record.cells["status"].tolist() == [
        "restored", "ok", "ok", "restored", "restored", "restored", "restored", "restored",
        "ok", "ok", "ok",
    ]  # fmt: skip
    full = run_cli("run", CHURN, *small, "-p", "max_depth", "4", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    full_record = log.run("latest")
    assert resumed_record.metrics == full_record.metrics

    def fingerprints(record):
        data = record.datasets.set_index("name")
        return {name: data.loc[name, "fingerprint"] for name in ("predicted", "churn_probability")}

    assert fingerprints(resumed_record) == fingerprints(full_record)
    again = run_cli("run", CHURN, "--resume", full_record.run_id, cwd=tmp_path)
    assert again.returncode == 2 and "only a failed or crashed run can be resumed" in again.stderr


def test_cache_restores_matching_cells_and_gives_the_same_results(tmp_path):
    small = ["-p", "n_customers", "1500", "-p", "n_estimators", "20", "--cache"]
    first = run_cli("run", CHURN, *small, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "restored from the cache" not in first.stdout  # nothing recorded yet to reuse
    second = run_cli("run", CHURN, *small, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "6 cells restored from the cache, saving" in second.stdout
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    runs = log.runs(order_by="start_time")
    computed, cached = log.run(runs["run_id"][0]), log.run(runs["run_id"][1])
    stages = cached.cells.dropna(subset=["stage"]).set_index("cell_seq")
    assert stages["status"].tolist() == [
        "cached", "cached", "cached", "cached", "cached", "cached", "ok",
    ]  # every stage but evaluate, which logs metrics and so always runs  # fmt: skip
    assert cached.metrics == computed.metrics
    fingerprint = {r.name: r.fingerprint for r in computed.datasets.itertuples()}
    assert {r.name: r.fingerprint for r in cached.datasets.itertuples()
            if r.name in ("predicted", "churn_probability")} == {
        name: fingerprint[name] for name in ("predicted", "churn_probability")
    }  # fmt: skip
    changed = run_cli("run", CHURN, *small[:-1], "-p", "max_depth", "3", "--cache", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    # max_depth is only read by the train stage: stages before it still come from the cache
    latest = log.run("latest").cells.dropna(subset=["stage"])
    assert latest["status"].tolist()[:4] == ["cached"] * 4
    assert latest.set_index("stage").loc["evaluate", "status"] == "ok"


# ---------------------------------------------------------------------- what a cache key covers
_HELPERS = """\
def factor():
    return {factor}


def scale(values):
    return [value * factor() for value in values]


class Summer:
    def total(self, values):
        return sum(scale(values))
"""


def _cache_notebook(path: Path, factor: int = 2, label: str = "v1") -> Path:
    return _notebook(path, [
        _tagged('data_path = "numbers.txt"', "parameters"),
        new_code_cell(_HELPERS.format(factor=factor)),
        new_code_cell("%%mlops track --name load ingest\n"
                      "numbers = [int(word) for word in open(data_path).read().split()]"),
        new_code_cell("%%mlops track features --name scaling\nscaled = scale([1, 2, 3])"),
        _tagged(f"label = {label!r}", "mlops:train"),
        new_code_cell("%%mlops track evaluate\ndoubled = Summer().total([1, 1])"),
        new_code_cell("%%mlops track explore\nimport random\n\nnoise = random.random()"),
        new_code_cell("import json\nprint('VALUES', json.dumps({'numbers': numbers, "
                      "'scaled': scaled, 'label': label, 'doubled': doubled}))"),
    ])  # fmt: skip


def _cached_run(tmp_path: Path, notebook: Path) -> tuple[dict, dict, str]:
    """Run with --cache: status per stage, the values the notebook ends with, its output."""
    result = run_cli("run", notebook, "--cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = mn.open_log(tmp_path / ".mlops" / "log.duckdb").run("latest")
    staged = record.cells.dropna(subset=["stage"])
    statuses = dict(zip(staged["stage"], staged["status"], strict=True))
    output = nbformat.read(record.tags["mlops.output"], as_version=4)
    text = "".join(o.get("text", "") for cell in output.cells for o in cell.get("outputs", []))
    values = json.loads(text.split("VALUES ", 1)[1].splitlines()[0])
    return statuses, values, text


def test_cache_reruns_exactly_the_cells_whose_helpers_files_or_code_changed(tmp_path):
    (tmp_path / "numbers.txt").write_text("1 2 3")
    notebook = _cache_notebook(tmp_path / "steps.ipynb")
    everything = {"ingest": "ok", "features": "ok", "train": "ok", "evaluate": "ok",
                  "explore": "ok"}  # fmt: skip
    assert _cached_run(tmp_path, notebook)[0] == everything
    statuses, values, text = _cached_run(tmp_path, notebook)
    assert statuses == {"ingest": "cached", "features": "cached", "train": "cached",
                        "evaluate": "cached", "explore": "ok"}  # fmt: skip
    assert values == {"numbers": [1, 2, 3], "scaled": [2, 4, 6], "label": "v1", "doubled": 4}
    assert "not cached: it draws from or seeds the global random generator" in text
    # a helper called through another helper (scale -> factor, Summer.total -> scale -> factor)
    _cache_notebook(notebook, factor=3)
    statuses, values, _ = _cached_run(tmp_path, notebook)
    assert statuses == {"ingest": "cached", "features": "ok", "train": "cached",
                        "evaluate": "ok", "explore": "ok"}  # fmt: skip
    assert values == {"numbers": [1, 2, 3], "scaled": [3, 6, 9], "label": "v1", "doubled": 6}
    # the file the ingest cell reads (named by a parameter), and a cell marked by a tag
    (tmp_path / "numbers.txt").write_text("4 5")
    _cache_notebook(notebook, factor=3, label="v2")
    statuses, values, _ = _cached_run(tmp_path, notebook)
    assert statuses == {"ingest": "ok", "features": "cached", "train": "ok",
                        "evaluate": "cached", "explore": "ok"}  # fmt: skip
    assert values == {"numbers": [4, 5], "scaled": [3, 6, 9], "label": "v2", "doubled": 6}
    cells = mn.open_log(tmp_path / ".mlops" / "log.duckdb").run("latest").cells
    assert cells.set_index("stage").loc["ingest", "name"] == "load"  # --name before the stage
    assert cells.set_index("stage").loc["features", "name"] == "scaling"


def test_pipeline_show_and_the_tracker_read_the_track_line_alike(tmp_path):
    notebook = _notebook(tmp_path / "named.ipynb", [
        new_code_cell("%%mlops track --name tidy clean\nx = 1"),
        new_code_cell("%%mlops track train -n fit\ny = 2"),
        new_code_cell("%%mlops track --name=check evaluate\nz = 3"),
        new_code_cell("%%mlops track --bogus train\nnever = 1"),
    ])  # fmt: skip
    described = json.loads(run_cli("pipeline", "show", notebook, "-f", "json",
                                   cwd=tmp_path).stdout)  # fmt: skip
    assert [s["name"] for s in described["stages"]] == ["clean", "train", "evaluate"]
    from mlops_nb.capture.track_line import parse_track_args
    from mlops_nb.errors import TrackLineError

    assert parse_track_args("--name tidy clean") == parse_track_args("clean --name tidy")
    with pytest.raises(TrackLineError, match="unknown option --bogus"):
        parse_track_args("--bogus train")
