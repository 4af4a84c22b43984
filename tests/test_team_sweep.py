"""A sweep on a team log whose runs execute on Dask workers of other "machines": a real
``dask scheduler`` and two ``dask worker`` processes, each worker with its own spool folder
and host name (see test_team_log.py), started and stopped by PID.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

pytest_plugins = ["team_servers"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_workers(scheduler: str, count: int, env: dict) -> None:
    """Until ``count`` workers have joined the scheduler (a sweep submitted before then
    would run everything on the first one)."""
    from team_servers import team_python

    code = (
        "import sys; from distributed import Client; "
        "c = Client(sys.argv[1], timeout=60); c.wait_for_workers(int(sys.argv[2]), timeout=120)"
    )
    subprocess.run([str(team_python()), "-c", code, scheduler, str(count)], env=env,
                   check=True, timeout=180, capture_output=True)  # fmt: skip


def test_a_sweep_runs_on_dask_workers_of_other_machines_into_the_team_log(
    postgres_server, tmp_path
):
    from conftest import REPO, stop_process
    from team_servers import team_python
    from test_team_log import cli, new_database, team_env

    dbname = new_database(postgres_server)
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "example_notebooks" / "churn.ipynb", project)
    laptop = team_env(postgres_server, dbname, tmp_path / "spool-laptop", host="laptop")
    cli(laptop, "team", "init", "--data", str(tmp_path / "shared"))

    port = _free_port()
    scheduler = f"tcp://127.0.0.1:{port}"
    dask = [str(team_python()), "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": tmp_path}
    processes = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=laptop,
            **quiet,
        )  # fmt: skip
    ]
    try:
        for host in ("worker-1", "worker-2"):
            env = team_env(postgres_server, dbname, tmp_path / f"spool-{host}", host=host)
            processes.append(subprocess.Popen(
                [*dask, "worker", scheduler, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard"], env=env, **quiet))  # fmt: skip
        _wait_for_workers(scheduler, 2, laptop)
        swept = cli(laptop, "sweep", "churn.ipynb", "-p", "n_estimators", "10,20,30,40",
                    "-p", "n_customers", "1500", "--engine", "dask", "--scheduler", scheduler,
                    "--metric", "accuracy", cwd=project, timeout=600)  # fmt: skip
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=20)
    assert "4 of 4 runs finished" in swept.stdout, swept.stdout + swept.stderr

    # a fourth machine reads the whole sweep: the children, where they ran, the ranking
    desk = team_env(postgres_server, dbname, tmp_path / "spool-desk", host="desk")
    query = ("SELECT r.host, r.status, p.value AS n_estimators, r.parent_run_id FROM runs r "
             "JOIN params p ON p.run_id = r.run_id AND p.name = 'n_estimators' "
             "ORDER BY n_estimators")  # fmt: skip
    deadline = time.monotonic() + 60
    while True:  # the sweep run itself is merged when its process ends; children likewise
        children = json.loads(cli(desk, "sql", query, "--format", "json").stdout)
        children = [row for row in children if row["parent_run_id"]]
        if len(children) == 4 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(int(row["n_estimators"]) for row in children) == [10, 20, 30, 40]
    assert {row["status"] for row in children} == {"finished"}
    assert {row["host"] for row in children} <= {"worker-1", "worker-2"}
    assert len({row["parent_run_id"] for row in children}) == 1
    sweep = json.loads(cli(desk, "show", children[0]["parent_run_id"], "-f", "json").stdout)
    assert sweep["info"]["host"] == "laptop"
    assert sweep["metrics"]["best_accuracy"] > 0.7
