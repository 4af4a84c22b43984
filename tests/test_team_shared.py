"""What a team log shares between machines besides records and artifacts: the values a
pipeline run saved (checkpoints, for ``--resume``, ``--cache`` and ``models register``) and
the personal-data key (``MLOPS_NB_KEY``, one for the team), with real PostgreSQL servers.

Each "machine" is a process with its own empty spool folder and host name (see
test_team_log.py); a pipeline runs on one, the next machine resumes or registers from it.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mlops_nb.capture import pii

pytest_plugins = ["team_servers"]

TEAM_KEY = "team-key-5f1c2a9e7d"  # handed to every machine like the database credentials
EMAILS = ["alice.smith@example.com", "bob.jones@example.org", "carol.wu@example.net"]


def people_notebook(path: Path) -> Path:
    """A small pipeline whose ingested table holds emails (its checkpoint is encrypted) and
    whose train stage fails when asked to, so that it can be resumed."""
    parameters = new_code_cell("fail: int = 0")
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        parameters,
        new_code_cell("%%mlops track ingest\nimport pandas as pd\n"
                      "people = pd.read_csv('people.csv')"),
        new_code_cell("%%mlops track features\nfeatures = people[['age', 'income']]\n"
                      "labels = people['churned']"),
        new_code_cell("%%mlops track train\nfrom sklearn.linear_model import LogisticRegression\n"
                      "if fail:\n    raise ValueError('asked to fail')\n"
                      "model = LogisticRegression().fit(features, labels)"),
        new_code_cell("%%mlops track evaluate\nimport mlops_nb as mn\n"
                      "predictions = model.predict(features)\n"
                      "mn.log_metric('accuracy', float((predictions == labels).mean()))"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))
    rows = 60
    pd.DataFrame({
        "email": [EMAILS[i % 3].replace("@", f"{i}@") for i in range(rows)],
        "age": [20 + i % 40 for i in range(rows)],
        "income": [1000.0 + 37 * i for i in range(rows)],
        "churned": [int(i % 40 > 25) for i in range(rows)],
    }).to_csv(path.parent / "people.csv", index=False)  # fmt: skip
    return path


HASH_OF_EMAIL = textwrap.dedent(
    """
    import mlops_nb as mn
    from mlops_nb.capture import pii

    log = mn.open_log()
    print(pii.keyed_hash("alice.smith@example.com", pii.hash_key(log.path, team=log.is_team)))
    """
)


@pytest.fixture(scope="module")
def team(postgres_server, tmp_path_factory):
    """A team log with its data in a shared folder, and a project folder per machine."""
    from test_team_log import cli, new_database, team_env

    root = tmp_path_factory.mktemp("shared")
    dbname = new_database(postgres_server)

    def machine(name: str, key: str | None = TEAM_KEY) -> tuple[dict, Path]:
        project = root / f"project-{name}"
        if not project.exists():
            project.mkdir()
            people_notebook(project / "people.ipynb")
        extra = {"MLOPS_NB_KEY": key} if key else {}
        env = team_env(postgres_server, dbname, root / f"spool-{name}", host=f"machine-{name}",
                       **extra)  # fmt: skip
        return env, project

    env, _ = machine("admin")
    cli(env, "team", "init", "--data", str(root / "data"))
    return {"machine": machine, "root": root, "postgres": postgres_server, "dbname": dbname}


def test_a_run_on_one_machine_is_resumed_and_registered_on_others(team):
    from test_team_log import cli

    machine = team["machine"]
    env_a, project_a = machine("a")
    ran = cli(env_a, "run", "people.ipynb", "--cache", cwd=project_a, timeout=300)
    assert "finished" in ran.stdout + ran.stderr
    finished = json.loads(cli(env_a, "show", "latest", "-f", "json", cwd=project_a).stdout)
    failed = cli(env_a, "run", "people.ipynb", "-p", "fail", "1", cwd=project_a, check=False,
                 timeout=300)  # fmt: skip
    assert failed.returncode == 1 and "asked to fail" in failed.stderr
    failed_id = json.loads(cli(env_a, "show", "latest", "-f", "json", cwd=project_a).stdout)[
        "info"]["run_id"]  # fmt: skip

    # the saved values: the table of emails encrypted, content-addressed, in the lake
    query = f"SELECT name, format, path FROM checkpoints WHERE run_id = '{failed_id}'"
    saved = json.loads(cli(env_a, "sql", query, "-f", "json").stdout)
    formats = {row["name"]: row["format"] for row in saved}
    paths = {row["name"]: row["path"] for row in saved}
    assert formats["people"] == "parquet.enc" and formats["features"] == "parquet"
    assert all(row["path"].split("/")[1].startswith(row["path"].split("/")[0]) for row in saved)

    # machine b, an empty spool: registers the model of a's finished run from its saved values
    env_b, project_b = machine("b")
    registered = cli(env_b, "models", "register", "people", "--run",
                     finished["info"]["run_id"], cwd=project_b)  # fmt: skip
    assert "registered people:1" in registered.stdout

    # machine c, an empty spool and the team's key: resumes a's failed run
    env_c, project_c = machine("c")
    resumed = cli(env_c, "run", "people.ipynb", "--resume", failed_id[:8], "-p", "fail", "0",
                  cwd=project_c, timeout=300)  # fmt: skip
    assert f"resumed from run {failed_id[:8]} at stage train" in resumed.stdout
    record = json.loads(cli(env_c, "show", "latest", "-f", "json", cwd=project_c).stdout)
    assert record["info"]["status"] == "finished"
    assert record["metrics"]["accuracy"] == finished["metrics"]["accuracy"]
    people = team["root"] / "spool-c" / "artifacts" / paths["people"]
    assert pii.is_encrypted(people.read_bytes())  # fetched as it was stored: encrypted

    # machine e, an empty spool, the same project (a shared home): reuses ingest to train
    env_e, _ = machine("e")
    cached = cli(env_e, "run", "people.ipynb", "--cache", cwd=project_a, timeout=300)
    assert "3 cells restored from the cache" in cached.stdout, cached.stdout + cached.stderr
    again = json.loads(cli(env_e, "show", "latest", "-f", "json", cwd=project_a).stdout)
    assert again["metrics"]["accuracy"] == finished["metrics"]["accuracy"]

    # machine d without the key: the encrypted table cannot be read, and it says what to set
    env_d, project_d = machine("d", key=None)
    refused = cli(env_d, "run", "people.ipynb", "--resume", failed_id[:8], "-p", "fail", "0",
                  cwd=project_d, check=False, timeout=300)  # fmt: skip
    assert refused.returncode == 1
    assert (
        f"failed: UsageError: %mlops restore: people.parquet.enc is encrypted and "
        f"{pii.TEAM_KEY_MISSING}"
    ) in refused.stderr, refused.stderr

    for spool in team["root"].glob("spool-*"):  # no per-machine key, the team's nowhere
        assert not list(spool.rglob(pii.KEY_FILE_NAME))
        for path in spool.rglob("*"):
            assert not path.is_file() or TEAM_KEY.encode() not in path.read_bytes(), path


def test_forget_on_another_machine_finds_a_value_in_the_encrypted_checkpoints(team):
    from test_team_log import cli

    env_f, project_f = team["machine"]("f")  # an empty spool: the checkpoints come from the lake
    value = EMAILS[0].replace("@", "0@")
    found = json.loads(cli(env_f, "forget", "--column", "email", "--value", value, "--dry-run",
                           "-f", "json", cwd=project_f).stdout)  # fmt: skip
    assert found["unreadable"] == []
    people = [c for c in found["found"]["checkpoints"] if c["name"] == "people"]
    assert people and all(c["rows"] == 1 and c["encrypted"] for c in people)


def test_the_same_value_hashes_alike_on_every_machine_and_not_without_the_key(team):
    from test_team_log import script

    machine = team["machine"]
    hashes = {script(machine(name)[0], HASH_OF_EMAIL).strip() for name in ("a", "e")}
    assert len(hashes) == 1 and hashes.pop().startswith(pii.HASH_PREFIX)

    from team_servers import team_python

    env, _ = machine("f", key=None)
    done = subprocess.run([str(team_python()), "-c", HASH_OF_EMAIL], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].endswith(pii.TEAM_KEY_MISSING)

    # a pipeline without the key runs, but saves no personal data, and its run says why
    from test_team_log import cli

    env, project = machine("f", key=None)
    cli(env, "run", "people.ipynb", cwd=project, timeout=300)
    run_id = json.loads(cli(env, "show", "latest", "-f", "json", cwd=project).stdout)["info"][
        "run_id"]  # fmt: skip
    query = f"SELECT message FROM notes WHERE run_id = '{run_id}' AND kind = 'personal-data'"
    notes = [row["message"] for row in json.loads(cli(env, "sql", query, "-f", "json").stdout)]
    assert f"people not checkpointed: {pii.TEAM_KEY_MISSING}; a resume will lack it" in notes
    query = f"SELECT name FROM checkpoints WHERE run_id = '{run_id}' ORDER BY name"
    saved = [row["name"] for row in json.loads(cli(env, "sql", query, "-f", "json").stdout)]
    assert "people" not in saved and "features" in saved
    assert not list((team["root"] / "spool-f").rglob(pii.KEY_FILE_NAME))


def test_a_team_log_has_no_key_but_the_teams(tmp_path, monkeypatch):
    """Without MLOPS_NB_KEY a team log has no key at all (no key file is made or read);
    a file log keeps its key file."""
    monkeypatch.delenv(pii.KEY_ENV, raising=False)
    anchor = tmp_path / "spool" / "lake"
    (tmp_path / "spool").mkdir()
    pii.key_file(tmp_path / "spool").write_text("00" * 32)  # a machine's key from before
    with pytest.raises(pii.PersonalDataKeyError, match="set MLOPS_NB_KEY"):
        pii.hash_key(anchor, team=True)
    with pytest.raises(pii.PersonalDataKeyError, match="set MLOPS_NB_KEY"):
        pii.encryption_key(anchor, team=True)
    monkeypatch.setenv(pii.KEY_ENV, TEAM_KEY)
    assert pii.hash_key(anchor, team=True) == pii.hash_key(tmp_path / "elsewhere" / "log.duckdb")


AS_OF_MAGIC = textwrap.dedent(
    """
    import time
    from datetime import UTC, datetime
    from IPython.core.interactiveshell import InteractiveShell
    import mlops_nb as mn

    log = mn.open_log()
    with log.start_run(experiment="as-of"):
        pass
    log.flush()
    time.sleep(1.5)
    between = datetime.now(UTC).isoformat(timespec="seconds")
    time.sleep(1.5)
    with log.start_run(experiment="as-of"):
        pass
    log.flush()
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext mlops_nb")
    query = "SELECT count(*) AS n FROM runs WHERE experiment = 'as-of'"
    now = ip.run_cell(f"%mlops sql {query}").result
    then = ip.run_cell(f"%mlops sql --as-of {between} {query}").result
    cell = ip.run_cell(f"%%mlops sql --as-of '{between}'\\n{query}").result
    print(int(now["n"][0]), int(then["n"][0]), int(cell["n"][0]))
    """
)


def test_mlops_sql_as_of_reads_the_team_log_as_it_was(team):
    from test_team_log import script

    printed = script(team["machine"]("a")[0], AS_OF_MAGIC)
    assert printed.strip().splitlines()[-1].split() == ["2", "1", "1"]  # now, then, then


def test_mlops_sql_as_of_is_refused_on_a_log_file_in_one_line(shell):
    from test_magics import magic_error, run

    run(shell, "%mlops track")
    refusal = ("%mlops sql: as of 2026-11-01: time travel needs a team log (a log file keeps "
               "no snapshots)")  # fmt: skip
    assert magic_error(shell, "%mlops sql --as-of 2026-11-01 SELECT * FROM runs") == refusal
    assert magic_error(shell, "%%mlops sql --as-of=2026-11-01\nSELECT * FROM runs") == refusal
    assert "--as-of needs a value" in magic_error(shell, "%mlops sql --as-of")
    assert run(shell, "%mlops sql SELECT count(*) AS n FROM runs").result["n"][0] == 1
