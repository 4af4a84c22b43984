"""``mlops-nb schedule``: every target's files are read by the tool that will read them.

Each target's command is also run, through the quoting its scheduler applies (sh, YAML,
Groovy, Python + Jinja, systemd, Kubernetes), against a stub ``mlops-nb`` that records its
arguments; the recorded ``-p`` pairs are read back with the run's own parameter parser. What
runs is what was checked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import REPO, debian_command, side_venv, subprocess_env

from mlops_nb.cli import SCHEDULE_TARGETS
from mlops_nb.pipeline.parameters import load_parameters, resolve
from mlops_nb.pipeline.schedule import (
    TARGETS,
    ScheduleError,
    check_cron,
    job_name,
    next_run_times,
    on_calendar,
)

CHURN = REPO / "example_notebooks" / "churn.ipynb"
BIN = Path(sys.executable).parent
OUTPUT = re.compile(r".*/[a-z0-9-]+-\d{8}-\d{6}\.ipynb")
AIRFLOW_VERSION = "3.3.2"
AIRFLOW_VENV = REPO / ".venv" / "airflow"  # .venv/ is git-ignored; Airflow's pins clash with ours
PIPES = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")  # Debian's groovy 2.4 needs Java 17

# A notebook whose parameter values need every kind of quoting, in a folder with a space and a %.
TRICKY_PARAMETERS = """label: str = "x"  # free text
layers: list[int] = [1]
options: dict = {}
flag: bool = False
rate: float = 0.1
limit: int | None = 3
"""
LABEL = 'it\'s "quoted" $HOME $(HOME) 100% {{ x }} {% y %} ${{ z }} back\\slash'
TRICKY_VALUES = {"label": LABEL, "layers": [64, 32], "options": {"a b": "c'd"}, "flag": True,
                 "rate": 0.001, "limit": None}  # fmt: skip
TRICKY_ARGS = ["-p", "label", LABEL, "-p", "layers", "[64, 32]", "-p", "options", '{"a b": "c\'d"}',
               "-p", "flag", "yes", "-p", "rate", "1e-3", "-p", "limit", "none",
               "--experiment", "night run"]  # fmt: skip
TRICKY_NOTEBOOK = "notebooks/My Tricky Notebook.ipynb"


# ---------------------------------------------------------------------- generating the files
class Scheduled:
    """A project folder and, per target, the folder its schedule files were written to."""

    def __init__(self, project: Path, notebook: str, log: Path):
        self.project, self.notebook, self.log = project, notebook, log
        self.out: dict[str, Path] = {}
        self.stdout: dict[str, str] = {}


def _start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """``mlops-nb ARGS`` started in a fresh process, as a user would run it."""
    command = [sys.executable, "-m", "mlops_nb.cli", *args]
    return subprocess.Popen(command, cwd=cwd, env=subprocess_env(), text=True, **PIPES)


def _finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _schedule_all(scheduled: Scheduled, jobs: dict[str, list[str]], before: list[str] = ()):
    """Run `mlops-nb schedule` once per job, all at once (several writers on one log)."""
    started = {}
    for key, args in jobs.items():
        scheduled.out[key] = scheduled.project / "schedules" / key
        command = [*before, "schedule", scheduled.notebook, "--out", str(scheduled.out[key]), *args]
        started[key] = _start_cli(command, scheduled.project)
    for key, process in started.items():
        result = _finished(process)
        assert result.returncode == 0, f"{key}: {result.stderr}"
        scheduled.stdout[key] = result.stdout


@pytest.fixture(scope="module")
def churn(tmp_path_factory) -> Scheduled:
    """The example notebook scheduled on every target, with -p values and a -f file."""
    project = tmp_path_factory.mktemp("churn")
    shutil.copy(CHURN, project / "churn.ipynb")
    (project / "params.yaml").write_text("seed: 7\n")
    scheduled = Scheduled(project, "churn.ipynb", project / ".mlops" / "log.duckdb")
    common = ["--cron", "0 3 * * *", "-p", "n_customers", "500", "-p", "test_size", "0.3",
              "-f", "params.yaml"]  # fmt: skip
    jobs = {target: ["--target", target, *common] for target in TARGETS}
    jobs["kubernetes-image"] = ["--target", "kubernetes", "--image", "reg.example/churn:1", *common]
    _schedule_all(scheduled, jobs)
    return scheduled


@pytest.fixture(scope="module")
def tricky(tmp_path_factory) -> Scheduled:
    """Hard-to-quote values, a notebook path with spaces, and a log outside the project."""
    base = tmp_path_factory.mktemp("tricky")
    project = base / "tricky 100% project"
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(TRICKY_PARAMETERS, metadata={"tags": ["parameters"]})
    notebook.cells = [cell, nbformat.v4.new_code_cell("print(label)")]
    (project / TRICKY_NOTEBOOK).parent.mkdir(parents=True)
    nbformat.write(notebook, project / TRICKY_NOTEBOOK)
    scheduled = Scheduled(project, TRICKY_NOTEBOOK, base / "elsewhere" / "log.duckdb")
    jobs = {target: ["--target", target, "--cron", "*/15 9-17 * * 1-5", *TRICKY_ARGS]
            for target in TARGETS}  # fmt: skip
    _schedule_all(scheduled, jobs, before=["--log", str(scheduled.log)])
    return scheduled


def test_every_cli_target_has_a_writer():
    assert set(TARGETS) == set(SCHEDULE_TARGETS)


def test_the_command_prints_files_next_runs_and_how_to_install(churn):
    lines = churn.stdout["cron"].splitlines()
    assert lines[:2] == ["wrote schedules/cron/crontab.txt", "wrote schedules/cron/run-churn.sh"]
    when = r"  \w{3} \d{4}-\d\d-\d\d 03:00 \w+"
    runs = [line.strip() for line in lines if re.fullmatch(when, line)]
    assert len(runs) == 5
    install = "to install: (crontab -l 2>/dev/null; cat schedules/cron/crontab.txt) | crontab -"
    assert lines[-1] == install
    assert "systemctl --user enable --now churn.timer" in churn.stdout["systemd"]
    assert "kubectl apply -f schedules/kubernetes/churn-cronjob.yaml" in churn.stdout["kubernetes"]
    assert "CI/CD > Schedules" in churn.stdout["gitlab"]
    assert "$AIRFLOW_HOME/dags" in churn.stdout["airflow"]


def test_schedules_are_recorded_in_the_log(churn, tricky):
    import mlops_nb

    rows = mlops_nb.open_log(churn.log, create=False).schedules()
    assert sorted(rows["target"]) == sorted([*TARGETS, "kubernetes"])
    row = rows[rows["target"] == "cron"].iloc[0]
    assert (row["notebook_path"], row["cron"]) == ("churn.ipynb", "0 3 * * *")
    assert json.loads(row["params"]) == {"seed": 7, "n_customers": 500, "test_size": 0.3}
    assert row["out_dir"] == str(churn.out["cron"])
    assert [Path(f).name for f in json.loads(row["files"])] == ["crontab.txt", "run-churn.sh"]

    rows = mlops_nb.open_log(tricky.log, create=False).schedules()  # the --log given
    assert sorted(rows["target"]) == sorted(TARGETS)
    assert set(rows["notebook_path"]) == {TRICKY_NOTEBOOK}
    assert json.loads(rows["params"][0]) == TRICKY_VALUES


# ---------------------------------------------------------------------- cron expressions
CALENDARS = [
    ("0 3 * * *", ["*-*-* 03:00:00"]),
    ("*/15 * * * *", ["*-*-* *:00/15:00"]),
    ("30 8 * * 1-5", ["Mon..Fri *-*-* 08:30:00"]),
    ("0 0,12 1 * *", ["*-*-01 00,12:00:00"]),
    ("5 4 * * 0", ["Sun *-*-* 04:05:00"]),
    ("5 4 * * 7", ["Sun *-*-* 04:05:00"]),
    ("0 0 * * 6,0", ["Sat,Sun *-*-* 00:00:00"]),
    ("0 0 1 1 *", ["*-01-01 00:00:00"]),
    ("10-20/5 */6 * 1-3 *", ["*-01..03-* 00/6:10,15,20:00"]),
    ("0 9 1,15 * 1", ["*-*-01,15 09:00:00", "Mon *-*-* 09:00:00"]),  # cron: either day field
    ("0 0 */2 * mon-wed", ["*-*-01/2 00:00:00", "Mon..Wed *-*-* 00:00:00"]),
    ("15 10 * jun-aug sat", ["Sat *-06..08-* 10:15:00"]),
    ("5/20 * * * 1/2", ["Mon,Wed,Fri *-*-* *:05/20:00"]),
    ("0 12 * * 5-7", ["Fri..Sun *-*-* 12:00:00"]),
]


@pytest.mark.parametrize(("cron", "expected"), CALENDARS)
def test_cron_converts_to_on_calendar(cron, expected):
    assert on_calendar(cron) == expected


@pytest.mark.parametrize(("cron", "calendars"), CALENDARS)
def test_systemd_fires_when_cron_does(cron, calendars):
    """systemd-analyze's own next elapses of the OnCalendar values equal croniter's times."""
    debian_command("systemd-analyze", "systemd")
    start = datetime(2026, 2, 27, 23, 59, 30, tzinfo=UTC)  # near the end of a short month
    elapses = set()
    for calendar in calendars:
        command = ["systemd-analyze", "calendar", "--iterations=8", calendar,
                   f"--base-time=@{start.timestamp():.0f}"]  # fmt: skip
        utc = {**os.environ, "TZ": "UTC"}
        shown = subprocess.run(command, capture_output=True, text=True, check=True, env=utc).stdout
        found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ ([\d-]+ [\d:]+) UTC", shown)
        elapses |= {datetime.fromisoformat(f + "+00:00") for f in found}
    assert sorted(elapses)[:8] == next_run_times(cron, 8, start)


def test_next_run_times_are_the_next_five_matches():
    friday_noon = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    times = next_run_times("30 8 * * 1-5", start=friday_noon)
    assert times == [datetime(2026, 3, day, 8, 30, tzinfo=UTC) for day in (9, 10, 11, 12, 13)]
    now = datetime.now().astimezone()
    upcoming = next_run_times("*/10 * * * *")
    assert len(upcoming) == 5 and now < upcoming[0] < upcoming[1] < upcoming[4]
    assert all(t.minute % 10 == 0 and t.second == 0 and t.tzinfo for t in upcoming)


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 0 * * * 2030", "found 6"),
        ("@daily", "found 1"),
        ("0 0 L * *", "'L' in the day-of-month field is not standard cron"),
        ("0 0 * * 1#2", "'1#2' in the day-of-week field is not standard cron"),
    ],
)
def test_only_standard_cron_is_accepted(cron, reason):
    with pytest.raises(ScheduleError, match=re.escape(reason)):
        check_cron(cron)


def test_cron_is_written_the_way_every_scheduler_reads_it():
    assert check_cron(" 0  3 * *   MON-fri ") == "0 3 * * 1-5"
    assert check_cron("5/20 * * jan,DEC 5-7") == "5-59/20 * * 1,12 0,5,6"  # no 7 for Kubernetes


REFUSALS = {  # arguments after `schedule churn.ipynb --target cron --out s`, and the reason
    "cron out of range": (["--cron", "61 * * * *"], "bad cron expression '61 * * * *': "),
    "cron fields": (["--cron", "* * *"], "expected 5 fields (minute hour day-of-month month"),
    "cron never fires": (["--cron", "0 0 31 2 *"], "'0 0 31 2 *' never fires (no such date)"),
    "unknown parameter": (["-p", "n_trees", "5"], "unknown parameter 'n_trees' (from -p)"),
    "bad -p value": (["-p", "n_customers", "many"], "parameter 'n_customers': 'many' is not int"),
    "bad -f value": (["-f", "bad.yaml"], "parameter 'test_size': 'a lot' is not float"),
    "image": (["--image", "python:3.12"], "--image is for the kubernetes, docker targets"),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Each refused command run in its own project folder, all at once."""
    started = {}
    for case, (args, _) in REFUSALS.items():
        project = tmp_path_factory.mktemp("refused")
        shutil.copy(CHURN, project / "churn.ipynb")
        (project / "bad.yaml").write_text("test_size: a lot\n")
        # a later --cron wins over the first
        args = ["--target", "cron", "--out", "s", "--cron", "0 3 * * *", *args]
        started[case] = (_start_cli(["schedule", "churn.ipynb", *args], project), project)
    return {case: (_finished(process), project) for case, (process, project) in started.items()}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_schedule_is_one_line_and_writes_nothing(case, refusals):
    result, project = refusals[case]
    assert result.returncode == 2
    assert result.stderr.startswith("mlops-nb schedule: ") and result.stderr.count("\n") == 1
    assert REFUSALS[case][1] in result.stderr, result.stderr
    assert not (project / "s").exists() and not (project / ".mlops").exists()


# ---------------------------------------------------------------------- the command that runs
def _stubs(folder: Path) -> Path:
    """A bin folder whose mlops-nb and pip record their arguments, working folder and log."""
    stub = folder / "stub-bin" / "stub"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(f"""#!{sys.executable}
import json, os, sys, time
call = {{"program": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "cwd": os.getcwd(),
        "log": os.environ.get("MLOPS_NB_LOG")}}
with open(os.environ["STUB_RECORD"], "a") as record:
    record.write(json.dumps(call) + "\\n")
time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
""")
    stub.chmod(0o755)
    for name in ("mlops-nb", "pip"):
        if not (stub.parent / name).exists():
            (stub.parent / name).symlink_to(stub)
    return stub.parent


def _stub_env(folder: Path, **extra: str) -> dict[str, str]:
    record = folder / f"calls-{time.monotonic_ns()}.jsonl"
    return {"PATH": f"{_stubs(folder)}:/usr/bin:/bin", "STUB_RECORD": str(record), **extra}


def _calls(env: dict[str, str]) -> list[dict]:
    record = Path(env["STUB_RECORD"])
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def _run_shell(command: str, cwd: Path, tmp_path: Path, **env: str) -> list[dict]:
    """Run a command line with sh as the scheduler would; the stubs' recorded calls."""
    stub_env = _stub_env(tmp_path, **env)
    subprocess.run(["sh", "-c", command], cwd=cwd, env=stub_env, check=True, timeout=30)
    return _calls(stub_env)


def _read_back(call: dict, scheduled: Scheduled) -> dict:
    """The typed values the run would get from the recorded -p pairs, and the other options."""
    argv = call["argv"]
    assert argv[:2] == ["run", scheduled.notebook]
    assert argv[-2] == "-o" and OUTPUT.fullmatch(argv[-1]), argv
    pairs, rest, i = [], argv[2:-2], 0
    while i < len(rest) and rest[i] == "-p":
        pairs.append((rest[i + 1], rest[i + 2]))
        i += 3
    parameters = load_parameters(scheduled.project / scheduled.notebook)
    return {"values": resolve(parameters, pairs), "options": rest[i:], "output": argv[-1]}


def _commands(target: str, scheduled: Scheduled, request) -> list[tuple[str, dict]]:
    """(shell command, extra environment) as the target's scheduler would hand them to sh."""
    out = scheduled.out[target]
    if target == "systemd":
        service = (out / f"{_name(scheduled)}.service").read_text()
        exec_start = re.search(r"^ExecStart=/bin/sh -c (\".*\")$", service, re.M)[1]
        environment = re.search(r"^Environment=(.*)$", service, re.M)[1]
        words = re.findall(r'"(?:[^"\\]|\\.)*"', environment)
        variables = dict(_systemd_unquote(word).split("=", 1) for word in words)
        assert variables["PATH"].startswith(f"{BIN}:")
        directory = re.search(r"^WorkingDirectory=(.*)$", service, re.M)[1]
        assert directory.replace("%%", "%") == str(scheduled.project)
        return [(_systemd_unquote(exec_start), {"MLOPS_NB_LOG": variables["MLOPS_NB_LOG"]})]
    if target == "airflow":
        dag = request.getfixturevalue("airflow_dags")["dags"][_name(scheduled)]
        assert dag["cwd"] == str(scheduled.project) and dag["append_env"]
        assert dag["env"]["PATH"].startswith(f"{BIN}:")
        return [(dag["rendered_command"], {"MLOPS_NB_LOG": dag["env"]["MLOPS_NB_LOG"]})]
    if target == "kubernetes":
        manifest = (out / f"{_name(scheduled)}-cronjob.yaml").read_text()
        cronjob = list(yaml.safe_load_all(manifest))[1]
        container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["sh", "-c"]
        env = {e["name"]: e["value"] for e in container["env"]}
        return [(container["args"][0].replace("$$", "$"), env)]  # Kubernetes turns $$ into $
    if target == "gitlab":
        job = yaml.safe_load((out / ".gitlab-ci.yml").read_text())[f"run-{_name(scheduled)}"]
        return [(line, {}) for line in job["script"]]
    if target == "github":
        workflow = yaml.safe_load((out / f".github/workflows/{_name(scheduled)}.yml").read_text())
        steps = workflow["jobs"]["run"]["steps"]
        runs = [s["run"].replace("${{ '${{' }}", "${{") for s in steps if "run" in s]
        return [(run, {}) for run in runs]  # GitHub evaluates ${{ '${{' }} to ${{
    if target == "jenkins":
        tmp_path = request.getfixturevalue("tmp_path")
        venv = scheduled.project / ".mlops-venv" / "bin"  # where the install stage puts them
        venv.mkdir(parents=True, exist_ok=True)
        for name in ("mlops-nb", "pip"):
            if not (venv / name).exists():
                (venv / name).symlink_to(_stubs(tmp_path) / name)
        install, run = _groovy_shell_steps(out / "Jenkinsfile", tmp_path)
        assert install.startswith("python3 -m venv .mlops-venv && ")
        return [(install.split(" && ", 1)[1], {}), (run, {})]
    if target == "docker":
        from dockerfile_parse import DockerfileParser

        cmd = json.loads(DockerfileParser(path=str(out / "Dockerfile")).cmd)
        assert cmd[:2] == ["sh", "-c"]
        return [(cmd[2], {})]
    raise AssertionError(f"no reader for {target}")


def _name(scheduled: Scheduled) -> str:
    return job_name(scheduled.notebook)


def _systemd_unquote(word: str) -> str:
    """A double-quoted unit-file word as systemd reads it (C escapes, %% and $$)."""
    assert word[0] == word[-1] == '"'
    return re.sub(r"\\(.)|%%|\$\$", lambda m: m[1] or m[0][0], word[1:-1])


MONITOR = ["churn@champion", "--requests", "--since", "1d", "--retrain", "churn.ipynb", "-p",
           "data_path", "new data/customers 100% $HOME.csv", "--promote-if",
           "accuracy >= champion - 0.01"]  # fmt: skip


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> Scheduled:
    """``mlops-nb monitor`` with retraining scheduled on every target."""
    project = tmp_path_factory.mktemp("monitored")
    shutil.copy(CHURN, project / "churn.ipynb")
    scheduled = Scheduled(project, "monitor-churn", project / ".mlops" / "log.duckdb")
    started = {}
    for target in TARGETS:
        scheduled.out[target] = project / "schedules" / target
        args = ["schedule", "--monitor", shlex.join(MONITOR), "--cron", "*/30 * * * *",
                "--target", target, "--out", str(scheduled.out[target])]  # fmt: skip
        started[target] = _start_cli(args, project)
    for target, process in started.items():
        result = _finished(process)
        assert result.returncode == 0, f"{target}: {result.stderr}"
        scheduled.stdout[target] = result.stdout
    return scheduled


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_can_run_the_monitor_command(target, monitored, tmp_path, request):
    if target == "cron":
        script = monitored.out["cron"] / "run-monitor-churn.sh"
        commands = [(str(script), {})]
    else:
        commands = _commands(target, monitored, request)
    calls = []
    for command, env in commands:
        calls += _run_shell(command, monitored.project, tmp_path, **env)
    runs = [call for call in calls if call["program"] == "mlops-nb"]
    assert [run["argv"] for run in runs] == [["monitor", *MONITOR]]
    written = [p for p in monitored.out[target].rglob("*") if p.suffix != ".dockerignore"]
    written = [path for path in written if path.is_file()]
    assert all("mlops-nb monitor churn@champion" in path.read_text() for path in written)


def test_monitor_schedules_are_recorded_and_checked_when_written(monitored, tmp_path):
    import mlops_nb

    log = mlops_nb.open_log(monitored.log, create=False)
    recorded = log.schedules()
    assert set(recorded["notebook_path"]) == {"monitor:churn@champion"}
    assert sorted(recorded["target"]) == sorted(TARGETS)
    shutil.copy(CHURN, tmp_path / "churn.ipynb")
    secret = nbformat.v4.new_notebook()
    secret.cells = [
        nbformat.v4.new_code_cell('api_token: str = ""', metadata={"tags": ["parameters"]})
    ]
    nbformat.write(secret, tmp_path / "secret.ipynb")
    refused = {
        "a notebook too": (["churn.ipynb", "--monitor", "churn@champion --requests"],
                           "with --monitor, give the notebook"),
        "bad option": (["--monitor", "churn@champion --requests --bogus"], "--bogus"),
        "no data": (["--monitor", "churn@champion"], "--current"),
        "bad -p": (["--monitor", "churn@champion --requests --retrain churn.ipynb -p seed x "
                    "--promote-if 'accuracy >= 0.5'"], "seed"),
        "no notebook": (["--monitor", "churn@champion --requests --retrain gone.ipynb"],
                        "no notebook at gone.ipynb"),
        "a secret": (["--monitor", "churn@champion --requests --retrain secret.ipynb -p api_token "
                      "s3cr3t --promote-if 'accuracy >= 0.5'"], "MLOPS_NB_SECRET_API_TOKEN"),
    }  # fmt: skip
    for case, (args, expected) in refused.items():
        command = ["schedule", *args, "--cron", "0 * * * *", "--target", "cron", "--out", "s"]
        result = _finished(_start_cli(command, tmp_path))
        assert result.returncode == 2, case
        assert result.stderr.startswith("mlops-nb schedule: ") and expected in result.stderr, (
            case, result.stderr)  # fmt: skip
        assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "cron"])
def test_every_target_runs_the_checked_parameters(target, churn, tricky, tmp_path, request):
    for scheduled, expected, options in (
        (churn, {"seed": 7, "n_customers": 500, "test_size": 0.3}, []),
        (tricky, TRICKY_VALUES, ["--experiment", "night run"]),
    ):
        calls = []
        for command, env in _commands(target, scheduled, request):
            calls += _run_shell(command, scheduled.project, tmp_path, **env)
        runs = [call for call in calls if call["program"] == "mlops-nb"]
        assert len(runs) == 1, calls
        read = _read_back(runs[0], scheduled)
        assert read["values"] == expected and read["options"] == options
        installs = [call["argv"] for call in calls if call["program"] == "pip"]
        if target in ("kubernetes", "gitlab", "github", "jenkins"):
            assert installs == [["install", "mlops-nb==0.1.0"]]
        if target in ("systemd", "airflow"):  # on this machine: this log, outputs beside it
            assert runs[0]["log"] == str(scheduled.log)
            output = Path(scheduled.project, read["output"])
            assert output.parent == scheduled.log.parent / "outputs"


def test_cron_wrapper_runs_the_pipeline_and_never_twice_at_once(churn, tricky, tmp_path):
    script = churn.out["cron"] / "run-churn.sh"
    assert os.access(script, os.X_OK)
    crontab = (churn.out["cron"] / "crontab.txt").read_text().splitlines()
    assert crontab[-1] == f"0 3 * * * {script}"

    env = _stub_env(tmp_path, STUB_SLEEP="2")
    first = subprocess.Popen([str(script)], env=env, cwd=tmp_path, text=True, **PIPES)
    deadline = time.monotonic() + 20
    while not _calls(env) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=10)
    assert second.returncode == 0
    assert "the previous run is still going; not starting another" in second.stdout
    assert first.wait(timeout=20) == 0, first.stderr.read()
    (call,) = _calls(env)  # the second start ran nothing
    assert call["cwd"] == str(churn.project) and call["log"] == str(churn.log)
    read = _read_back(call, churn)
    assert read["values"] == {"seed": 7, "n_customers": 500, "test_size": 0.3}
    assert read["output"].startswith(".mlops/outputs/churn-")
    run_log = (churn.project / ".mlops" / "outputs" / "churn.log").read_text()
    assert "churn: start" in run_log and "churn: exit code 0" in run_log
    assert "still going" in run_log

    env = _stub_env(tmp_path)  # quoting, a folder with a space and %, a log elsewhere
    tricky_script = tricky.out["cron"] / "run-my-tricky-notebook.sh"
    subprocess.run([str(tricky_script)], env=env, check=True, timeout=20)
    (call,) = _calls(env)
    assert call["cwd"] == str(tricky.project) and call["log"] == str(tricky.log)
    read = _read_back(call, tricky)
    assert read["values"] == TRICKY_VALUES and read["options"] == ["--experiment", "night run"]
    assert Path(read["output"]).parent == tricky.log.parent / "outputs"
    tricky_crontab = (tricky.out["cron"] / "crontab.txt").read_text().splitlines()[-1]
    assert tricky_crontab.endswith(r"100\% project/schedules/cron/run-my-tricky-notebook.sh'")


# ---------------------------------------------------------------------- each tool's verdict
def test_systemd_units_verify(churn, tricky):
    debian_command("systemd-analyze", "systemd")
    for scheduled in (churn, tricky):
        units = sorted(str(p) for p in scheduled.out["systemd"].iterdir())
        result = subprocess.run(
            ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # no warning
    timer = (tricky.out["systemd"] / "my-tricky-notebook.timer").read_text()
    assert "OnCalendar=Mon..Fri *-*-* 09..17:00/15:00\nPersistent=true\n" in timer
    assert "Type=oneshot\n" in (churn.out["systemd"] / "churn.service").read_text()


def test_kubernetes_manifest_validates_and_a_broken_one_does_not(churn, tmp_path):
    manifest = churn.out["kubernetes"] / "churn-cronjob.yaml"
    with_image = churn.out["kubernetes-image"] / "churn-cronjob.yaml"
    ok = _tool("kubernetes-validate", "--strict", manifest, with_image)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yaml"
    text = manifest.read_text()
    broken.write_text(text.replace("concurrencyPolicy: Forbid", "concurrencyPolicy: 5"))
    refused = _tool("kubernetes-validate", "--strict", broken)
    assert refused.returncode == 1 and "concurrencyPolicy" in refused.stdout + refused.stderr

    claim, cronjob = yaml.safe_load_all(manifest.read_text())
    spec = cronjob["spec"]
    assert (cronjob["apiVersion"], spec["schedule"]) == ("batch/v1", "0 3 * * *")
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "python:3.11-slim"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {"name": "MLOPS_NB_LOG", "value": "/data/.mlops/log.duckdb"} in container["env"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]

    cronjob = list(yaml.safe_load_all(with_image.read_text()))[1]
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg.example/churn:1"
    assert container["args"][0].startswith("mlops-nb run churn.ipynb")  # no install step


@pytest.mark.parametrize(
    ("target", "schema", "path"),
    [("gitlab", "vendor.gitlab-ci", ".gitlab-ci.yml"),
     ("github", "vendor.github-workflows", ".github/workflows/{name}.yml")],
)  # fmt: skip
def test_ci_files_match_the_vendor_schemas(target, schema, path, churn, tricky):
    files = [s.out[target] / path.format(name=_name(s)) for s in (churn, tricky)]
    result = _tool("check-jsonschema", "--builtin-schema", schema, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    if target == "gitlab":
        job = yaml.safe_load((churn.out["gitlab"] / path).read_text())["run-churn"]
        assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
        assert job["artifacts"]["paths"] == [".mlops/"]
        assert "0 3 * * *" in (churn.out["gitlab"] / path).read_text()  # in a comment
    else:
        workflow = yaml.safe_load((churn.out["github"] / ".github/workflows/churn.yml").read_text())
        triggers = workflow[True]  # YAML 1.1 reads the key `on` as true; GitHub reads "on"
        assert triggers["schedule"] == [{"cron": "0 3 * * *"}] and "workflow_dispatch" in triggers
        uses = [step.get("uses", "") for step in workflow["jobs"]["run"]["steps"]]
        assert any(u.startswith("actions/setup-python") for u in uses)
        assert any(u.startswith("actions/upload-artifact") for u in uses)


def test_airflow_imports_the_dags(airflow_dags):
    found = airflow_dags
    assert found["errors"] == {}
    churn_dag = found["dags"]["churn"]
    assert churn_dag["schedule"] == churn_dag["timetable"] == "0 3 * * *"
    assert (churn_dag["catchup"], churn_dag["max_active_runs"]) == (False, 1)
    assert churn_dag["operator"] == "BashOperator"
    assert found["dags"]["my-tricky-notebook"]["schedule"] == "*/15 9-17 * * 1-5"


def test_jenkinsfile_parses_in_groovy_and_a_broken_one_does_not(churn, tmp_path):
    jenkinsfile = (churn.out["jenkins"] / "Jenkinsfile").read_text()
    assert "triggers { cron('0 3 * * *') }" in jenkinsfile
    assert "options { disableConcurrentBuilds() }" in jenkinsfile
    assert "archiveArtifacts artifacts: '.mlops/**'" in jenkinsfile
    steps = _groovy_shell_steps(churn.out["jenkins"] / "Jenkinsfile", tmp_path)  # parses
    assert len(steps) == 2
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(jenkinsfile.replace("    options { disableConcurrentBuilds() }\n", "  }\n"))
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _groovy_shell_steps(broken, tmp_path)
    assert "unexpected token" in failed.value.stderr


def test_docker_image_and_compose(churn):
    from dockerfile_parse import DockerfileParser

    out = churn.out["docker"]
    parsed = DockerfileParser(path=str(out / "Dockerfile"))
    instructions = [(i["instruction"], i["value"]) for i in parsed.structure]
    assert parsed.baseimage == "python:3.11-slim"
    assert ("RUN", "pip install --no-cache-dir mlops-nb==0.1.0") in instructions
    assert ("COPY", ". /project") in instructions
    cmd = json.loads(parsed.cmd)
    assert cmd[2].startswith("mlops-nb run churn.ipynb -p seed 7 -p n_customers 500 ")
    comments = [value for kind, value in instructions if kind == "COMMENT"]
    assert f"0 3 * * * docker compose -f {out}/compose.yaml run --rm churn" in comments
    assert "runs the pipeline once per start" in (out / "Dockerfile").read_text()

    compose = yaml.safe_load((out / "compose.yaml").read_text())
    service = compose["services"]["churn"]
    context = (out / service["build"]["context"]).resolve()
    assert context == churn.project.resolve()
    assert (context / service["build"]["dockerfile"]).resolve() == (out / "Dockerfile").resolve()
    assert service["volumes"] == ["mlops:/project/.mlops"] and "mlops" in compose["volumes"]
    assert ".mlops" in (out / "Dockerfile.dockerignore").read_text().split()


# ---------------------------------------------------------------------- the tools themselves
def _tool(name: str, *args) -> subprocess.CompletedProcess:
    """A validator installed with the test extra, beside this Python."""
    return subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=120
    )


_AIRFLOW_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
found = {"errors": {path: str(error) for path, error in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    (task,) = dag.tasks
    found["dags"][dag_id] = {
        "schedule": dag.schedule, "timetable": dag.timetable.expression, "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs, "operator": type(task).__name__,
        "rendered_command": dag.get_template_env().from_string(task.bash_command).render(),
        "cwd": task.cwd, "env": task.env, "append_env": task.append_env,
    }
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def airflow_dags(churn, tricky, monitored, tmp_path_factory) -> dict:
    """The projects' DAG files as a real Airflow DagBag reads them."""
    dags = tmp_path_factory.mktemp("dags")
    for scheduled in (churn, tricky, monitored):
        for dag in scheduled.out["airflow"].glob("*_dag.py"):
            shutil.copy(dag, dags / dag.name)
    env = {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    command = [str(_airflow_python()), "-c", _AIRFLOW_SCRIPT, str(dags)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _airflow_python() -> Path:
    """A venv with Airflow made once (about 30 s), apart from ours: its pins clash with ours."""
    return side_venv(AIRFLOW_VENV, [f"apache-airflow=={AIRFLOW_VERSION}"])


_GROOVY_SCRIPT = """
def text = new File(args[0]).text
new GroovyShell().parse(text)  // the syntax check, without running anything
def steps = new GroovyShell().evaluate(new File(args[1]).text)
println groovy.json.JsonOutput.toJson(steps)
"""


def _groovy_shell_steps(jenkinsfile: Path, tmp_path: Path) -> list[str]:
    """Parse a Jenkinsfile with Groovy, and evaluate its ``sh '...'`` strings as Groovy does."""
    text = jenkinsfile.read_text()
    literals = re.findall(r"\bsh ('(?:[^'\\]|\\.)*')", text)
    (tmp_path / "steps.groovy").write_text("[" + ", ".join(literals) + "]")
    (tmp_path / "check.groovy").write_text(_GROOVY_SCRIPT)
    env = {**os.environ, **({"JAVA_HOME": str(JAVA_HOME)} if JAVA_HOME.is_dir() else {})}
    groovy = debian_command("groovy", "groovy")
    command = [groovy, tmp_path / "check.groovy", jenkinsfile, tmp_path / "steps.groovy"]
    result = subprocess.run(
        list(map(str, command)), env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)
