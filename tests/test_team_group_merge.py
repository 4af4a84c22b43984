"""Group commits on a team log: a writer's merge also takes the new lines of the other live
writers of its spool (same lake, same database user), up to their first bulk line, and each
record still lands exactly once. Real PostgreSQL, real writer processes (see test_team_log)."""

from __future__ import annotations

import json
import subprocess
import textwrap

from test_team_log import cli, new_database, script, team_env

pytest_plugins = ["team_servers"]
NOTES = {".jsonl", ".who", ".merged", ".tmp", ".alive"}

# a writer that never merges on its own until told to close (merge interval of an hour)
SLOW_WRITER = textwrap.dedent(
    """
    import sys
    import mlops_nb as mn

    log = mn.open_log()
    log.set_merge_interval(3600, flush_before_reads=False)
    for i in range(3):
        with log.start_run(experiment="slow", params={"i": i}) as run:
            run.log_metrics({"loss": 1.0 / (i + 1)})
    with log.start_run(experiment="slow", name="bulk") as run:
        run.log_batch({"key": ["curve"] * 500, "value": [float(v) for v in range(500)]})
    print("journaled", flush=True)
    sys.stdin.readline()
    log.close()
    print("closed", flush=True)
    """
)

QUICK_WRITER = textwrap.dedent(
    """
    import mlops_nb as mn

    log = mn.open_log()
    with log.start_run(experiment="quick") as run:
        run.log_metrics({"loss": 0.5})
    log.close()
    """
)

COUNTS = (
    "SELECT (SELECT count(*) FROM runs WHERE experiment = 'slow' AND status = 'finished') AS slow, "
    "(SELECT count(*) FROM runs WHERE name = 'bulk') AS bulk_runs, "
    "(SELECT count(*) FROM metrics WHERE key = 'loss') AS losses, "
    "(SELECT count(*) FROM metrics WHERE key = 'curve') AS curve, "
    "(SELECT count(*) FROM params) AS params"
)


def counts(env: dict) -> dict:
    return json.loads(cli(env, "sql", COUNTS, "--format", "json").stdout)[0]


def test_a_merge_takes_a_neighbours_lines_up_to_its_bulk_data_once(postgres_server, tmp_path):
    from team_servers import team_python

    dbname = new_database(postgres_server)
    env = team_env(postgres_server, dbname, tmp_path / "spool")
    cli(env, "team", "init", "--data", str(tmp_path / "data"))
    slow = subprocess.Popen(
        [str(team_python()), "-c", SLOW_WRITER], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert slow.stdout.readline().strip() == "journaled", slow.stderr.read()
        assert counts(env)["slow"] == 0  # the slow writer has merged nothing itself

        script(env, QUICK_WRITER)  # its merge carries the slow writer's lines along

        # up to the bulk batch (held in the slow writer's memory): its owner merges the rest
        seen = counts(env)
        assert seen == {"slow": 3, "bulk_runs": 1, "losses": 4, "curve": 0, "params": 3}

        slow.stdin.write("\n")
        slow.stdin.flush()
        assert slow.stdout.readline().strip() == "closed", slow.stderr.read()
        assert slow.wait(timeout=120) == 0
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    final = counts(env)
    assert final == {"slow": 4, "bulk_runs": 1, "losses": 4, "curve": 500, "params": 3}
    leftovers = [p.name for p in (tmp_path / "spool").rglob("*") if p.suffix in NOTES]
    assert leftovers == []  # journals merged and removed, with the group commit's notes
