"""``mlops-nb team push`` / ``team pull`` between a log file and a team log, and time travel
(``as_of``) on a team log, against a real PostgreSQL catalog and a shared folder.

As in test_team_log.py, everything that touches a lake runs in the team venv (DuckDB 1.5.5);
the local log files are written by that venv too (the main venv's DuckDB 2.0 writes files
1.5.5 cannot open).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap

import pytest
from test_team_log import cli, new_database, script, team_env

pytest_plugins = ["team_servers"]

COUNTED = (
    "runs", "params", "metrics", "tags", "cells", "datasets", "lineage", "models", "artifacts",
    "environment", "model_versions", "model_aliases", "alias_history", "checkpoints",
)  # fmt: skip

COUNT_ROWS = textwrap.dedent(
    """
    import json, sys
    import mlops_nb as mn

    log = mn.open_log(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps({t: int(log.sql(f"SELECT count(*) AS n FROM store.{t}")["n"][0])
                      for t in sys.argv[2].split(",")}))
    """
)

TIME_TRAVEL = textwrap.dedent(
    """
    import json, time
    from datetime import UTC, datetime, timedelta, timezone
    import mlops_nb as mn
    from mlops_nb.errors import MlopsError

    log = mn.open_log()
    paris = timezone(timedelta(hours=1))

    def run_and_version(i):
        with log.start_run(experiment="tt", params={"i": i}) as run:
            run.log_metrics({"acc": 0.5 + i / 10, **({"late": 1.0} if i == 3 else {})})
        return log.add_model_version({"name": "m", "run_id": run.run_id, "model_var": "model"})

    first, second = run_and_version(1), run_and_version(2)
    log.move_alias("m", "champion", first)
    log.flush()
    time.sleep(1.0)
    noted = datetime.now(UTC).replace(tzinfo=None).isoformat()
    time.sleep(1.0)
    log.move_alias("m", "champion", second)
    run_and_version(3)
    log.flush()

    champion = "SELECT version FROM model_aliases WHERE name = 'm' AND alias = 'champion'"
    errors = {}
    for label, when in (("before", "2000-01-01"), ("garbled", "next tuesday")):
        try:
            log.sql("SELECT 1", as_of=when)
        except MlopsError as error:
            errors[label] = str(error)
    print(json.dumps({
        "noted": noted,
        "champion_then": int(log.sql(champion, as_of=noted)["version"][0]),
        "champion_now": int(log.sql(champion)["version"][0]),
        "history_then": log.alias_at("m", "champion", noted),
        "runs_then": len(log.runs(as_of=noted)),
        "runs_now": len(log.runs()),
        "metric_columns_then": sorted(c for c in log.runs(as_of=noted) if c.startswith("m")),
        "champion_then_aware": int(log.sql(champion, as_of=datetime.fromisoformat(noted)
                                           .replace(tzinfo=UTC).astimezone(paris))["version"][0]),
        "errors": errors,
    }))
    """
)


# ---------------------------------------------------------------------- time travel
def test_as_of_reads_the_team_log_as_it_was(postgres_server, tmp_path):
    dbname = new_database(postgres_server)
    env = team_env(postgres_server, dbname, tmp_path / "spool")
    cli(env, "team", "init", "--data", str(tmp_path / "shared"))
    seen = json.loads(script(env, TIME_TRAVEL))

    # which version was champion at the noted time: from the aliases view as it was then, and
    # from the alias history (now)
    assert seen["champion_then"] == 1 and seen["history_then"] == 1
    assert seen["champion_now"] == 2
    assert (seen["runs_then"], seen["runs_now"]) == (2, 3)
    assert seen["metric_columns_then"] == ["metrics.acc"]  # "late" came later
    assert seen["champion_then_aware"] == 1  # an aware datetime, in another time zone
    assert "has no snapshot at 2000-01-01 00:00:00 UTC" in seen["errors"]["before"]
    assert "give a date (2026-11-01)" in seen["errors"]["garbled"]

    noted = seen["noted"]
    then = cli(env, "runs", "--as-of", noted, "-f", "json").stdout
    assert len(json.loads(then)) == 2
    query = "SELECT version FROM model_aliases WHERE alias = 'champion'"
    assert json.loads(cli(env, "sql", query, "--as-of", noted, "-f", "json").stdout) == [
        {"version": 1}
    ]
    early = cli(env, "sql", "SELECT 1", "--as-of", "2000-01-01", check=False)
    assert early.returncode == 2 and len(early.stderr.strip().splitlines()) == 1
    assert "has no snapshot at 2000-01-01" in early.stderr

    local = dict(env, MLOPS_NB_LOG=str(tmp_path / "local.duckdb"))
    script(local, "import mlops_nb as mn; mn.open_log().sql('SELECT 1')")
    refused = cli(local, "runs", "--as-of", "2026-11-01", check=False)
    assert refused.returncode == 2
    assert "time travel needs a team log" in refused.stderr


# ---------------------------------------------------------------------- push and pull
@pytest.fixture(scope="module")
def churn_project(postgres_server, tmp_path_factory):
    """The example pipeline run into a local log file (by the team venv), its model registered
    as churn@champion there; and a fresh team log to push it to."""
    from conftest import REPO

    root = tmp_path_factory.mktemp("push")
    project = root / "project"
    project.mkdir()
    shutil.copy(REPO / "example_notebooks" / "churn.ipynb", project)
    dbname = new_database(postgres_server)
    team = team_env(postgres_server, dbname, root / "spool-a")
    cli(team, "team", "init", "--data", str(root / "shared"))
    local = dict(team, MLOPS_NB_LOG=str(project / ".mlops" / "log.duckdb"))
    cli(local, "run", "churn.ipynb", "-p", "n_customers", "500", "-p", "n_estimators", "20",
        cwd=project, timeout=300)  # fmt: skip
    registered = cli(local, "models", "register", "churn", "--alias", "champion", cwd=project)
    assert "registered churn:1" in registered.stdout
    return {"root": root, "project": project, "team": team, "local": local, "dbname": dbname}


LOAD_CHECKPOINTS = textwrap.dedent(
    """
    import json, sys
    import mlops_nb as mn
    from mlops_nb.capture.checkpoint import load_saved

    log = mn.open_log(sys.argv[1] if len(sys.argv) > 1 else None)
    saved = log.stored_checkpoints()
    loaded = [len(load_saved(log, row.name, row.format, row.path))
              for row in saved.itertuples(index=False) if row.format.endswith("parquet")]
    print(json.dumps({"paths": saved["path"].tolist(), "rows": loaded}))
    """
)


def counts(env: dict, log: str | None = None) -> dict[str, int]:
    return json.loads(script(env, COUNT_ROWS, log or "", ",".join(COUNTED)))


def test_pushing_the_example_log_twice_leaves_one_copy(churn_project, postgres_server):
    project, team, local = churn_project["project"], churn_project["team"], churn_project["local"]
    lake = team["MLOPS_NB_LOG"]
    before = counts(local)
    assert before["runs"] == 1 and before["model_versions"] == 1 and before["artifacts"] >= 1

    first = cli(team, "team", "push", "--log", local["MLOPS_NB_LOG"], cwd=project).stdout
    assert "1 runs pushed, 0 already there" in first
    uploaded = int(first.split("; ")[1].split()[0])
    assert uploaded >= 1
    second = cli(team, "team", "push", "--log", local["MLOPS_NB_LOG"], "--team", lake).stdout
    assert "0 runs pushed, 1 already there; 0 artifacts uploaded" in second
    assert "rows added" not in second
    assert counts(team) == before  # one copy of everything

    run_id = json.loads(cli(local, "runs", "-f", "json", cwd=project).stdout)[0]["run_id"]
    shown = json.loads(cli(team, "show", run_id, "-f", "json").stdout)
    assert shown["info"]["status"] == "finished" and shown["metrics"]["accuracy"] > 0.5
    listed = json.loads(cli(team, "models", "list", "-f", "json").stdout)
    assert [(m["name"], m["version"], m["aliases"]) for m in listed] == [("churn", 1, "champion")]

    # another machine (its own spool, no local log) loads the model from the lake's storage
    root = churn_project["root"]
    other = team_env(postgres_server, churn_project["dbname"], root / "spool-b", host="machine-b")
    loaded = cli(other, "models", "load", "churn@champion", cwd=root)
    assert "churn:1" in loaded.stdout
    assert list((root / "spool-b" / "artifacts").rglob("*"))
    # and reads the run's saved values (checkpoints), pushed as content-addressed blobs
    saved = json.loads(script(other, LOAD_CHECKPOINTS).strip().splitlines()[-1])
    assert saved["paths"] and all(re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{64}", p)
                                  for p in saved["paths"])  # fmt: skip
    assert saved["rows"] and all(n > 0 for n in saved["rows"])


def test_a_model_version_registered_on_both_sides_is_refused(churn_project, postgres_server):
    root, local = churn_project["root"], churn_project["local"]
    dbname = new_database(postgres_server)
    team = team_env(postgres_server, dbname, root / "spool-c")
    cli(team, "team", "init", "--data", str(root / "shared-c"))
    script(team, "import mlops_nb as mn; mn.open_log().add_model_version("
           "{'name': 'churn', 'model_var': 'other'})")  # fmt: skip
    refused = cli(team, "team", "push", "--log", local["MLOPS_NB_LOG"], check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "mlops-nb team: model 'churn' version 1 already exists in the target log as another "
        "registration: nothing was copied (register it again there, or rename it here)"
    ]
    assert counts(team)["runs"] == 0


def test_pull_brings_runs_and_artifacts_into_a_local_log(churn_project, tmp_path):
    project, team, local = churn_project["project"], churn_project["team"], churn_project["local"]
    cli(team, "team", "push", "--log", local["MLOPS_NB_LOG"])  # (again: adds nothing)
    run_id = json.loads(cli(local, "runs", "-f", "json", cwd=project).stdout)[0]["run_id"]
    offline = tmp_path / "offline" / "log.duckdb"

    first = cli(team, "team", "pull", run_id[:8], "--log", str(offline)).stdout
    assert "1 runs pulled, 0 already there" in first
    again = cli(team, "team", "pull", run_id, "--log", str(offline)).stdout
    assert "0 runs pulled, 1 already there; 0 artifacts downloaded" in again

    pulled = dict(team, MLOPS_NB_LOG=str(offline), MLOPS_NB_SPOOL=str(tmp_path / "spool-d"))
    assert counts(pulled) == counts(local)
    loaded = cli(pulled, "models", "load", "churn@champion", cwd=tmp_path)
    assert "churn:1" in loaded.stdout
    saved = json.loads(script(pulled, LOAD_CHECKPOINTS).strip().splitlines()[-1])
    assert saved["rows"] and all(n > 0 for n in saved["rows"])  # their files came along
    missing = cli(team, "team", "pull", "ffffffff", "--log", str(offline), check=False)
    assert missing.returncode == 2 and "no run 'ffffffff' in the team log" in missing.stderr
