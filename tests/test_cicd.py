"""``mlops-nb cicd``: each CI file is checked by running it, not only by parsing it.

GitLab: the generated ``.gitlab-ci.yml`` runs with gitlab-ci-local (shell executor, one fresh
build folder per job, artifacts carried as GitLab carries them) in a throwaway git repository
holding the example notebook. GitHub Actions and Jenkins have no local runner here: a small
driver runs each job's ``run:`` steps (each stage's ``sh`` steps, read by evaluating the
Jenkinsfile with Debian's groovy) in order, in one workspace, with the environment the file
sets. ``docker`` and ``kubectl`` are stubs that record what they were asked; for the quoting
checks ``mlops-nb`` and ``pip`` are too, and the recorded ``-p`` pairs are read back with the
run's own parameter parser.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import REPO, debian_command, subprocess_env

from mlops_nb.cli import CICD_TARGETS
from mlops_nb.errors import MlopsError
from mlops_nb.pipeline.cicd import TARGETS, CicdError, default_install, write_cicd
from mlops_nb.pipeline.parameters import load_parameters, resolve, smoke_pairs

CHURN = REPO / "example_notebooks" / "churn.ipynb"
BIN = Path(sys.executable).parent
JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")  # Debian's groovy 2.4 needs Java 17
# The newest gitlab-ci-local that runs on Node 20 (Debian's): 4.74 and later call
# Set.prototype.union, which Node has from version 22.
GITLAB_CI_LOCAL = "4.73.0"
GITLAB_CI_LOCAL_HOME = Path.home() / ".cache" / "mlops-nb-test" / "gitlab-ci-local"

GATES = ["--gate", "accuracy >= champion - 0.01", "--gate", "roc_auc >= 0.6"]
TRAIN = ["-p", "n_customers", "1000", "-p", "n_estimators", "20"]  # small: a test, not a model
# A job here finds mlops-nb on PATH (this checkout, as the tests run it): nothing reinstalled.
INSTALL = ["--install", "mlops-nb --version"]
IMAGE = "registry.example.com/team/churn"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Secrets the CI systems would hold; set while the files are written, they must not be in them.
FAKE_SECRETS = {
    "KUBECONFIG_TEXT": "apiVersion: v1 # fake-kubeconfig-5d1f",
    "REGISTRY_PASSWORD": "fake-registry-password-77c2",
    "CI_REGISTRY_PASSWORD": "fake-gitlab-registry-password-3a9e",
    "GITHUB_TOKEN": "ghp_fakeToken0123456789",
    "MLOPS_NB_SECRET_API_TOKEN": "fake-api-token-9b41",
}

# Hard-to-quote values, in a notebook whose path has spaces.
TRICKY_PARAMETERS = """label: str = "x"  # free text
layers: list[int] = [1]
options: dict = {}
flag: bool = False
limit: int | None = 3
api_token: str = ""  # a secret: from MLOPS_NB_SECRET_API_TOKEN
"""
LABEL = 'it\'s "quoted" $HOME $(HOME) `id` 100% {{ x }} ${{ z }} back\\slash\nsecond line'
TRICKY_VALUES = {"label": LABEL, "layers": [64, 32], "options": {"a b": "c'd"}, "flag": True,
                 "limit": None}  # fmt: skip
TRICKY_ARGS = ["-p", "label", LABEL, "-p", "layers", "[64, 32]", "-p", "options", '{"a b": "c\'d"}',
               "-p", "flag", "yes", "-p", "limit", "none", "--experiment", "night run",
               "--smoke-parameter", "layers", "[2]"]  # fmt: skip
TRICKY_NOTEBOOK = "notebooks/My Tricky Notebook.ipynb"


# ---------------------------------------------------------------------- projects and stubs
def _cicd(project: Path, *args: str, env: dict[str, str] | None = None):
    """``mlops-nb cicd ARGS`` in the project folder, with fake secrets in its environment."""
    command = [sys.executable, "-m", "mlops_nb.cli", "cicd", *args]
    environment = subprocess_env(**FAKE_SECRETS, **(env or {}))
    return subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def _written(project: Path, *args: str) -> str:
    result = _cicd(project, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _churn_project(folder: Path) -> Path:
    """The example notebook, and a tests/ folder (the project's own tests run first)."""
    folder.mkdir(parents=True)
    shutil.copy(CHURN, folder / "churn.ipynb")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_project.py").write_text(
        "from pathlib import Path\n\n\ndef test_the_notebook_is_here():\n"
        "    assert Path('churn.ipynb').is_file()\n"
    )
    return folder


def _tricky_project(folder: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(TRICKY_PARAMETERS, metadata={"tags": ["parameters"]})
    notebook.cells = [cell, nbformat.v4.new_code_cell("print(label)")]
    (folder / TRICKY_NOTEBOOK).parent.mkdir(parents=True)
    nbformat.write(notebook, folder / TRICKY_NOTEBOOK)
    return folder


_STUB = """#!{python}
import json, os, sys
call = {{"program": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "cwd": os.getcwd(),
        "env": {{k: os.environ.get(k) for k in ("IMAGE", "MLOPS_NB_LOG",
                                                "MLOPS_NB_SECRET_API_TOKEN")}}}}
if "--password-stdin" in sys.argv:
    call["stdin"] = sys.stdin.read()
if os.environ.get("KUBECONFIG") and os.path.isfile(os.environ["KUBECONFIG"]):
    call["kubeconfig"] = open(os.environ["KUBECONFIG"]).read()
with open(os.environ["STUB_RECORD"], "a") as record:
    record.write(json.dumps(call) + "\\n")
"""


def _stubs(folder: Path, *programs: str) -> Path:
    """A bin folder whose programs record their arguments (and the secrets they were handed)."""
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / "stub"
    stub.write_text(_STUB.format(python=sys.executable))
    stub.chmod(0o755)
    for program in programs:
        (folder / program).symlink_to(stub)
    return folder


def _calls(record: Path, program: str | None = None) -> list[dict]:
    calls = [json.loads(line) for line in record.read_text().splitlines()] if (
        record.exists()) else []  # fmt: skip
    return [c for c in calls if program is None or c["program"] == program]


def _read_back(call: dict, notebook: Path) -> tuple[dict, list[str]]:
    """The typed values a run gets from recorded ``-p`` pairs, and its other words."""
    pairs, rest, argv, i = [], [], call["argv"], 0
    while i < len(argv):
        if argv[i] == "-p":
            pairs.append((argv[i + 1], argv[i + 2]))
            i += 3
        else:
            rest.append(argv[i])
            i += 1
    return resolve(load_parameters(notebook), pairs), rest


def _log(path: Path):
    import mlops_nb

    return mlops_nb.open_log(path, create=False)


# ---------------------------------------------------------------------- GitLab: gitlab-ci-local
def _gitlab_ci_local() -> str:
    """gitlab-ci-local from npm, installed once per version under a lock (parallel test runs
    wait for one install); it needs rsync and git, from Debian."""
    debian_command("rsync", "rsync")
    debian_command("git", "git")
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm is missing: the project needs node/npm (it builds the JupyterLab "
            "extension), and gitlab-ci-local is installed from npm"
        )
    prefix = GITLAB_CI_LOCAL_HOME / GITLAB_CI_LOCAL
    binary = prefix / "node_modules" / ".bin" / "gitlab-ci-local"
    GITLAB_CI_LOCAL_HOME.mkdir(parents=True, exist_ok=True)
    with open(GITLAB_CI_LOCAL_HOME / "install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                       f"gitlab-ci-local@{GITLAB_CI_LOCAL}"]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True, timeout=600)
    return str(binary)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


def _git_repository(folder: Path) -> Path:
    """A repository on main, whose origin (and so CI_DEFAULT_BRANCH) says main is the default."""
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "config", "user.email", "ci@example.com")
    _git(folder, "config", "user.name", "CI")
    _git(folder, "remote", "add", "origin", "https://gitlab.example.com/team/churn.git")
    _git(folder, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "the project")
    return folder


@dataclass
class GitLabCiLocal:
    """One gitlab-ci-local invocation: its report, and the log of each job it ran."""

    returncode: int
    stdout: str
    job_logs: dict[str, str]


@dataclass
class GitLabRun:
    repo: Path
    pipeline: GitLabCiLocal
    strict_gate: GitLabCiLocal
    deploy: GitLabCiLocal
    listed: dict[str, dict[str, str]]  # branch -> job -> when
    record: Path  # what docker and kubectl were asked

    def artifacts(self, job: str) -> Path:
        return self.repo / ".gitlab-ci-local" / "artifacts" / job


def _gitlab_env(stub_bin: Path, record: Path, **extra: str) -> dict[str, str]:
    path = f"{stub_bin}:{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return subprocess_env(PATH=path, STUB_RECORD=str(record), **extra)


def _gitlab_ci(binary: str, repo: Path, env: dict, *args: str) -> GitLabCiLocal:
    """gitlab-ci-local as GitLab runs jobs: each in a fresh copy of the repository's files,
    with only the artifacts of the jobs it needs (not copied back into the repository)."""
    command = [binary, "--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
               "--no-color", *args]  # fmt: skip
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    output = repo / ".gitlab-ci-local" / "output"
    logs = {path.stem: path.read_text() for path in output.glob("*.log")}
    shutil.rmtree(output, ignore_errors=True)  # the next invocation's logs are its own
    return GitLabCiLocal(result.returncode, result.stdout, logs)


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory) -> GitLabRun:
    """The example's pipeline run by gitlab-ci-local: the whole pipeline on main, the gate job
    again with a threshold it cannot meet, then the manual deploy job started by hand."""
    binary = _gitlab_ci_local()
    tmp = tmp_path_factory.mktemp("gitlab")
    repo = _churn_project(tmp / "churn-repo")
    _written(repo, "churn.ipynb", "--target", "gitlab", "--out", ".", *GATES, *TRAIN, *INSTALL)
    _written(repo, "churn.ipynb", "--target", "gitlab", "--out", "strict",
             "--gate", "accuracy >= 0.999", *TRAIN, *INSTALL)  # fmt: skip
    _git_repository(repo)
    record = tmp / "calls.jsonl"
    kubeconfig = tmp / "kubeconfig"  # a File variable: GitLab hands the job its path
    kubeconfig.write_text(FAKE_SECRETS["KUBECONFIG_TEXT"])
    env = _gitlab_env(_stubs(tmp / "stubs", "docker", "kubectl"), record,
                      KUBECONFIG=str(kubeconfig))  # fmt: skip
    listed = {}
    for branch in ("feature", "main"):
        _git(repo, "checkout", "-q", "-B", branch)
        shown = _gitlab_ci(binary, repo, env, "--list-json")
        listed[branch] = {job["name"]: job["when"] for job in json.loads(shown.stdout)}
    pipeline = _gitlab_ci(binary, repo, env)
    strict = _gitlab_ci(binary, repo, env, "--file", "strict/.gitlab-ci.yml", "gate")
    secret = f"CI_REGISTRY_PASSWORD={FAKE_SECRETS['CI_REGISTRY_PASSWORD']}"
    deploy = _gitlab_ci(binary, repo, env, "--variable", secret, "deploy")
    return GitLabRun(repo, pipeline, strict, deploy, listed, record)


def test_every_cli_target_has_a_writer():
    assert set(TARGETS) == set(CICD_TARGETS)


def test_gitlab_pipeline_passes_test_train_gate_register_and_pages(gitlab):
    result = gitlab.pipeline
    assert result.returncode == 0, result.stdout[-3000:] + str(result.job_logs)[-3000:]
    passed = re.findall(r"^ PASS +(\S+)", result.stdout, re.M)
    assert passed == ["test", "train", "gate", "register", "pages"]
    assert "FAIL" not in result.stdout and "deploy" not in passed  # manual: not started

    test_log = gitlab.pipeline.job_logs["test"]
    assert "1 passed" in test_log  # the project's own tests
    assert "pipeline churn.ipynb" in test_log and "stages:" in test_log  # pipeline show
    assert re.search(r"run [0-9a-f]{32} finished", test_log)  # the smoke run
    train_log = gitlab.pipeline.job_logs["train"]
    run_id = re.search(r"run ([0-9a-f]{32}) finished", train_log)[1]
    assert "docs: " in train_log
    assert "gate passed: 2 conditions" in gitlab.pipeline.job_logs["gate"]
    assert "registered churn:1" in gitlab.pipeline.job_logs["register"]

    # the log travelled test -> train -> gate -> register as the .mlops/ artifact
    log = _log(gitlab.artifacts("register") / ".mlops" / "log.duckdb")
    runs = log.runs().set_index("run_id")
    smoke = runs[runs["experiment"] == "churn-smoke"]
    assert len(smoke) == 1 and smoke["params.n_customers"].iloc[0] == 500
    assert log.run(smoke.index[0]).tags["mlops.smoke"] == "true"
    assert runs.loc[run_id, "experiment"] == "churn"
    assert runs.loc[run_id, "params.n_customers"] == 1000
    assert (gitlab.artifacts("register") / ".mlops" / "ci" / "run-id").read_text().strip() == run_id
    version = log.model_version("churn", alias="challenger")
    assert (version["version"], version["run_id"]) == (1, run_id)
    gates = log.gate_results(run_id)
    assert len(gates) == 2 and gates["passed"].all()
    assert log.model_version("churn", alias="champion") is None  # only the deploy moves it

    page = gitlab.artifacts("pages") / "public" / "index.html"
    assert run_id[:8] in page.read_text() and (page.parent / "churn.html").is_file()
    assert (gitlab.artifacts("train") / ".mlops" / "ci" / "churn.ipynb").is_file()
    assert (gitlab.artifacts("train") / ".mlops" / "ci" / "docs" / "churn.html").is_file()


def test_a_raised_gate_threshold_fails_the_gate_job_with_conditions_and_values(gitlab):
    result = gitlab.strict_gate
    assert result.returncode == 1, result.stdout[-2000:]
    assert re.search(r"^ FAIL +gate", result.stdout, re.M)
    gate_log = gitlab.strict_gate.job_logs["gate"]
    assert "gate FAILED: 1 of 1 conditions failed" in gate_log
    assert re.search(r"FAIL  accuracy >= 0\.999  accuracy 0\.\d+, needs >= 0\.999", gate_log)


def test_deploy_is_manual_and_only_on_the_default_branch(gitlab):
    main, feature = gitlab.listed["main"], gitlab.listed["feature"]
    assert main == {
        "test": "on_success",
        "train": "on_success",
        "gate": "on_success",
        "register": "on_success",
        "deploy": "manual",
        "pages": "on_success",
    }
    assert feature["deploy"] == feature["pages"] == "never"
    assert feature["train"] == "on_success"


def test_the_deploy_job_started_by_hand_moves_champion_and_ships_the_files(gitlab):
    result = gitlab.deploy
    assert result.returncode == 0, result.stdout[-3000:] + str(result.job_logs)[-3000:]
    assert "promoted churn:1 to @champion" in gitlab.deploy.job_logs["deploy"]
    out = gitlab.artifacts("deploy")
    assert _log(out / ".mlops" / "log.duckdb").model_version("churn", alias="champion")[
        "version"] == 1  # fmt: skip
    assert (out / "deploy" / "Dockerfile").is_file()
    assert (out / "deploy" / "model" / "manifest.json").is_file()
    docker = [c["argv"] for c in _calls(gitlab.record, "docker")]
    image = docker[1][2]
    assert re.fullmatch(r"[\w.:-]+/team/churn/churn:[0-9a-f]{8}", image), image
    assert docker == [["login", "--username", "", "--password-stdin", image.split("/")[0]],
                      ["build", "-t", image, "deploy"], ["push", image]]  # fmt: skip
    login = _calls(gitlab.record, "docker")[0]
    assert login["stdin"] == FAKE_SECRETS["CI_REGISTRY_PASSWORD"]  # a CI/CD variable
    (kubectl,) = _calls(gitlab.record, "kubectl")
    assert kubectl["argv"] == ["apply", "-f", "deploy/kubernetes/"]
    assert kubectl["kubeconfig"] == FAKE_SECRETS["KUBECONFIG_TEXT"]  # the File variable


def test_gitlab_file_matches_gitlabs_schema(gitlab, tricky):
    files = [gitlab.repo / ".gitlab-ci.yml", gitlab.repo / "strict" / ".gitlab-ci.yml",
             tricky.out["gitlab"] / ".gitlab-ci.yml"]  # fmt: skip
    result = _tool("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    text = files[0].read_text()
    assert "MLOPS_NB_LOG" in text and "as an artifact" in text  # the log's way, in comments
    assert text.splitlines()[0].startswith("# CI/CD for churn.ipynb, written by `mlops-nb cicd`")


# ---------------------------------------------------------------------- GitHub Actions: a driver
@dataclass
class Outcome:
    """What a driver saw of one job or stage."""

    status: str  # success, failure, skipped
    output: list[str] = field(default_factory=list)  # each step's command and output


_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _github_value(expression: str, context: dict):
    """The few expressions the workflow uses: paths, 'text', ==, || and always()."""
    for alternative in expression.split("||"):
        if "==" in alternative:
            left, right = alternative.split("==")
            value = _github_term(left, context) == _github_term(right, context)
        else:
            value = _github_term(alternative, context)
        if value:
            return value
    return value


def _github_term(text: str, context: dict):
    text = text.strip()
    if text == "always()":
        return True
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    value = context
    for part in text.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return value


def _github_expand(text: str, context: dict) -> str:
    return _EXPRESSION.sub(lambda m: str(_github_value(m[1], context)), text)


def run_github_workflow(
    path: Path, workspace: Path, env: dict, context: dict, only: tuple[str, ...] = ()
) -> dict[str, Outcome]:
    """Each job (in ``needs`` order, ``if:`` evaluated) as a runner would: its ``run:`` steps
    in bash -eo pipefail with the workflow's, job's and step's env. The workspace is shared,
    so uploading and downloading artifacts is checking the uploaded paths exist."""
    workflow = yaml.safe_load(path.read_text())
    jobs = workflow["jobs"]
    order: list[str] = []
    while len(order) < len(jobs):
        for name, job in jobs.items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if name not in order and all(n in order for n in needs):
                order.append(name)
    outcomes: dict[str, Outcome] = {}
    workflow_env = {k: _github_expand(str(v), context) for k, v in workflow["env"].items()}
    for name in [n for n in order if not only or n in only]:
        job = jobs[name]
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        runs = all(outcomes.get(n, Outcome("success")).status == "success" for n in needs)
        if not runs or ("if" in job and not _github_value(job["if"], context)):
            outcomes[name] = Outcome("skipped")
            continue
        job_env = {k: _github_expand(str(v), context) for k, v in job.get("env", {}).items()}
        outcome = outcomes[name] = Outcome("success")
        for step in job["steps"]:
            if outcome.status == "failure" and step.get("if") != "always()":
                continue
            if "uses" in step:
                _github_action(step, workspace, outcome)
                continue
            step_env = {k: _github_expand(str(v), context) for k, v in step.get("env", {}).items()}
            script = _github_expand(step["run"], context)
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=workspace,
                env={**env, **workflow_env, **job_env, **step_env}, capture_output=True,
                text=True, timeout=300,
            )  # fmt: skip
            outcome.output.append(f"$ {script}\n{result.stdout}{result.stderr}")
            if result.returncode != 0:
                outcome.status = "failure"
    return outcomes


def _github_action(step: dict, workspace: Path, outcome: Outcome) -> None:
    action = step["uses"].split("@")[0]
    given = step.get("with", {})
    if action == "actions/upload-artifact":  # a missing path only warns, as on GitHub
        missing = [p for p in given["path"].split() if not (workspace / p).exists()]
        if missing:
            outcome.output.append(f"warning: {given['name']}: no files at {missing}")
    elif action == "actions/upload-pages-artifact":
        assert (workspace / given["path"] / "index.html").is_file(), "no index.html to publish"
    else:  # the workspace is the checkout, this Python has mlops-nb, artifacts are all here
        assert action in ("actions/checkout", "actions/setup-python",
                          "actions/download-artifact", "actions/deploy-pages"), action  # fmt: skip
    outcome.output.append(f"uses {action}")


def _github_context(tmp: Path, branch: str = "main") -> dict:
    return {
        "github": {"ref_name": branch, "sha": COMMIT,
                   "event": {"repository": {"default_branch": "main"}}},
        "vars": {"IMAGE_REPOSITORY": IMAGE},
        "secrets": {"KUBECONFIG": FAKE_SECRETS["KUBECONFIG_TEXT"], "REGISTRY_USER": "robot",
                    "REGISTRY_PASSWORD": FAKE_SECRETS["REGISTRY_PASSWORD"],
                    "MLOPS_NB_SECRET_API_TOKEN": FAKE_SECRETS["MLOPS_NB_SECRET_API_TOKEN"]},
        "runner": {"temp": str(tmp)},
    }  # fmt: skip


@dataclass
class Driven:
    """A project whose CI file was run by a driver, and what its stubs recorded."""

    project: Path
    file: Path
    outcomes: dict[str, Outcome]
    record: Path


@pytest.fixture(scope="module")
def github(tmp_path_factory) -> Driven:
    tmp = tmp_path_factory.mktemp("github")
    project = _churn_project(tmp / "project")
    _written(project, "churn.ipynb", "--target", "github", "--out", ".", *GATES, *TRAIN, *INSTALL)
    record = tmp / "calls.jsonl"
    stub_bin = _stubs(tmp / "stubs", "docker", "kubectl")
    env = subprocess_env(PATH=f"{stub_bin}:{BIN}:/usr/bin:/bin", STUB_RECORD=str(record))
    workflow = project / ".github" / "workflows" / "churn-cicd.yml"
    outcomes = run_github_workflow(workflow, project, env, _github_context(tmp))
    return Driven(project, workflow, outcomes, record)


def test_github_workflow_matches_the_workflow_schema(github, tricky):
    files = [github.file, tricky.out["github"] / ".github/workflows/my-tricky-notebook-cicd.yml"]
    result = _tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(github.file.read_text())
    jobs = workflow["jobs"]
    assert list(jobs) == ["test", "train", "gate", "register", "deploy", "docs"]
    on_default = "github.ref_name == github.event.repository.default_branch"
    assert jobs["deploy"]["if"] == jobs["docs"]["if"] == on_default
    assert jobs["deploy"]["environment"] == "production"  # required reviewers: the approval
    downloads = [
        s["with"]["name"] for s in jobs["gate"]["steps"] if "download" in s.get("uses", "")
    ]
    assert downloads == ["mlops-train"]


def test_github_jobs_run_in_order_and_pass(github):
    statuses = {name: outcome.status for name, outcome in github.outcomes.items()}
    failed = {n: o.output[-1][-2000:] for n, o in github.outcomes.items() if o.status != "success"}
    assert statuses == dict.fromkeys(["test", "train", "gate", "register", "deploy", "docs"],
                                     "success"), failed  # fmt: skip
    _check_release(github.project, github.record, image=f"{IMAGE}:{COMMIT}", user="robot",
                   password=FAKE_SECRETS["REGISTRY_PASSWORD"])  # fmt: skip
    assert any("1 passed" in output for output in github.outcomes["test"].output)
    warned = [line for o in github.outcomes.values() for line in o.output if "warning:" in line]
    assert not warned  # every job uploaded what it names
    assert (github.project / "public" / "index.html").is_file()


def test_github_deploy_and_docs_are_skipped_off_the_default_branch(github, tmp_path):
    # the real jobs on a branch, short of running them: the deploy job's if: is what decides
    workflow = yaml.safe_load(github.file.read_text())
    context = _github_context(tmp_path, branch="feature")
    assert not _github_value(workflow["jobs"]["deploy"]["if"], context)
    assert not _github_value(workflow["jobs"]["docs"]["if"], context)
    assert _github_value(workflow["jobs"]["deploy"]["if"], _github_context(tmp_path))


def _check_release(project: Path, record: Path, *, image: str, user: str, password: str):
    """What every target's pipeline must have done, read from its log and the stubs."""
    log = _log(project / ".mlops" / "log.duckdb")
    run_id = (project / ".mlops" / "ci" / "run-id").read_text().strip()
    runs = log.runs().set_index("run_id")
    assert runs.loc[run_id, "experiment"] == "churn"
    assert list(runs[runs["experiment"] == "churn-smoke"]["params.n_customers"]) == [500]
    assert log.model_version("churn", alias="challenger")["run_id"] == run_id
    assert log.model_version("churn", alias="champion")["run_id"] == run_id
    assert log.gate_results(run_id)["passed"].all()
    docker = _calls(record, "docker")
    assert [c["argv"] for c in docker] == [
        ["login", "--username", user, "--password-stdin", image.split("/")[0]],
        ["build", "-t", image, "deploy"], ["push", image]]  # fmt: skip
    assert docker[0]["stdin"] == password
    (kubectl,) = _calls(record, "kubectl")
    assert kubectl["argv"] == ["apply", "-f", "deploy/kubernetes/"]
    assert kubectl["kubeconfig"].strip() == FAKE_SECRETS["KUBECONFIG_TEXT"]
    assert (project / "deploy" / "kubernetes").is_dir()


# ---------------------------------------------------------------------- Jenkins: groovy + driver
# The Jenkinsfile evaluated as Groovy, with the declarative directives recording what they say:
# stages in order, their conditions, approvals, environment (GStrings evaluated against the
# agent's environment, credentials() kept by id) and steps.
_JENKINS_DSL = r"""
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class Recorder {
    Map env
    List stageList = []
    Map pipelineEnv = [:]
    List postSteps = []
    Map current = null
    List target = null

    def pipeline(Closure body) { read(body, this) }
    def agent(Object kind) {}
    def getAny() { 'any' }
    def options(Closure body) { read(body, this) }
    def disableConcurrentBuilds() {}
    def stages(Closure body) { read(body, this) }
    def stage(String name, Closure body) {
        current = [name: name, when: [:], input: null, environment: [:], steps: []]
        stageList << current
        target = current.steps
        read(body, this)
        current = null
    }
    def when(Closure body) { read(body, this) }
    def branch(String name) { current.when.branch = name }
    def beforeInput(boolean value) { current.when.beforeInput = value }
    def input(Closure body) {
        def fields = new Fields()
        read(body, fields)
        current.input = fields.values
    }
    def environment(Closure body) {
        def assignments = new Assignments(this)
        read(body, assignments)
        (current == null ? pipelineEnv : current.environment).putAll(assignments.@values)
    }
    def credentials(String id) { [credentials: id] }
    def steps(Closure body) { read(body, this) }
    def sh(String script) { target << [sh: script] }
    def publishHTML(Map args) { target << [publishHTML: args.target] }
    def archiveArtifacts(Map args) { target << [archiveArtifacts: args] }
    def post(Closure body) { target = postSteps; read(body, this) }
    def always(Closure body) { read(body, this) }

    static void read(Closure body, Object delegate) {
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.delegate = delegate
        body.call()
    }
}

class Fields {
    Map values = [:]
    def methodMissing(String name, args) { values[name] = args[0] }
}

class Assignments {
    Recorder recorder
    Map values = [:]
    Assignments(Recorder recorder) { this.recorder = recorder }
    void setProperty(String name, Object value) {
        this.@values[name] = value instanceof GString ? value.toString() : value
    }
    Object getProperty(String name) {
        name == 'env' ? this.@recorder.env : this.@recorder.env[name]
    }
    def methodMissing(String name, args) { this.@recorder.invokeMethod(name, args) }
}

def text = new File(args[0]).text
def recorder = new Recorder(env: new JsonSlurper().parseText(new File(args[1]).text))
def binding = new Binding()
binding.setVariable('pipeline', { Closure body -> recorder.pipeline(body) })
new GroovyShell(binding).evaluate(text)
println JsonOutput.toJson([environment: recorder.pipelineEnv, stages: recorder.stageList,
                           post: recorder.postSteps])
"""


def _jenkins_pipeline(jenkinsfile: Path, agent_env: dict, tmp: Path) -> dict:
    """The Jenkinsfile as Groovy reads it (a syntax error fails here), directive by directive."""
    (tmp / "dsl.groovy").write_text(_JENKINS_DSL)
    (tmp / "env.json").write_text(json.dumps(agent_env))
    env = {**os.environ, **({"JAVA_HOME": str(JAVA_HOME)} if JAVA_HOME.is_dir() else {})}
    groovy = debian_command("groovy", "groovy")
    command = [groovy, str(tmp / "dsl.groovy"), str(jenkinsfile), str(tmp / "env.json")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _bind(environment: dict, credentials: dict, tmp: Path) -> dict[str, str]:
    """Environment values, with credentials('id') bound as Jenkins binds each kind."""
    bound = {}
    for name, value in environment.items():
        if not isinstance(value, dict):
            bound[name] = str(value)
            continue
        kind, *secret = credentials[value["credentials"]]
        if kind == "file":
            path = tmp / f"secret-{value['credentials']}"
            path.write_text(secret[0])
            bound[name] = str(path)
        elif kind == "user":
            bound |= {name: ":".join(secret), f"{name}_USR": secret[0], f"{name}_PSW": secret[1]}
        else:
            bound[name] = secret[0]
    return bound


def run_jenkinsfile(
    jenkinsfile: Path, workspace: Path, env: dict, tmp: Path, branch: str = "main",
    only: tuple[str, ...] = (),
) -> tuple[dict, dict[str, Outcome]]:  # fmt: skip
    """Each stage in order, as an agent would (when branch, one workspace): its ``sh`` steps
    with ``sh -xe`` and the pipeline's and stage's environment. An approval is given."""
    agent_env = {**env, "WORKSPACE": str(workspace), "BRANCH_NAME": branch,
                 "GIT_COMMIT": COMMIT, "IMAGE_REPOSITORY": IMAGE}  # fmt: skip
    described = _jenkins_pipeline(jenkinsfile, agent_env, tmp)
    credentials = {
        "kubeconfig": ("file", FAKE_SECRETS["KUBECONFIG_TEXT"]),
        "registry": ("user", "robot", FAKE_SECRETS["REGISTRY_PASSWORD"]),
        "mlops-nb-secret-api-token": ("text", FAKE_SECRETS["MLOPS_NB_SECRET_API_TOKEN"]),
    }
    base = {**agent_env, **_bind(described["environment"], credentials, tmp)}
    outcomes: dict[str, Outcome] = {}
    for stage in described["stages"]:
        name = stage["name"]
        wanted = stage["when"].get("branch")
        if (only and name not in only) or (wanted is not None and wanted != branch):
            outcomes[name] = Outcome("skipped")
            continue
        if any(o.status == "failure" for o in outcomes.values()):
            outcomes[name] = Outcome("skipped")
            continue
        stage_env = {**base, **_bind(stage["environment"], credentials, tmp)}
        outcome = outcomes[name] = Outcome("success")
        for step in stage["steps"]:
            if "sh" not in step:
                outcome.output.append(json.dumps(step))
                continue
            result = subprocess.run(
                ["sh", "-xe", "-c", step["sh"]], cwd=workspace, env=stage_env,
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            outcome.output.append(f"$ {step['sh']}\n{result.stdout}{result.stderr}")
            if result.returncode != 0:
                outcome.status = "failure"
                break
    return described, outcomes


@pytest.fixture(scope="module")
def jenkins(tmp_path_factory) -> tuple[Driven, dict]:
    tmp = tmp_path_factory.mktemp("jenkins")
    project = _churn_project(tmp / "project")
    _written(project, "churn.ipynb", "--target", "jenkins", "--out", ".", *GATES, *TRAIN, *INSTALL)
    record = tmp / "calls.jsonl"
    stub_bin = _stubs(tmp / "stubs", "docker", "kubectl")
    env = subprocess_env(PATH=f"{stub_bin}:{BIN}:/usr/bin:/bin", STUB_RECORD=str(record))
    described, outcomes = run_jenkinsfile(project / "Jenkinsfile", project, env, tmp)
    return Driven(project, project / "Jenkinsfile", outcomes, record), described


def test_jenkinsfile_stages_run_in_order_and_pass(jenkins):
    driven, described = jenkins
    statuses = {name: outcome.status for name, outcome in driven.outcomes.items()}
    failed = {n: o.output[-1][-2000:] for n, o in driven.outcomes.items() if o.status != "success"}
    assert statuses == dict.fromkeys(
        ["Install", "Test", "Train", "Gate", "Register", "Docs", "Deploy"], "success"
    ), failed
    _check_release(driven.project, driven.record, image=f"{IMAGE}:{COMMIT}", user="robot",
                   password=FAKE_SECRETS["REGISTRY_PASSWORD"])  # fmt: skip
    stages = {stage["name"]: stage for stage in described["stages"]}
    deploy = stages["Deploy"]
    assert deploy["when"] == {"branch": "main", "beforeInput": True}  # not asked on branches
    assert deploy["input"] == {"message": "Deploy churn@challenger?", "ok": "Deploy"}
    assert deploy["environment"]["KUBECONFIG"] == {"credentials": "kubeconfig"}
    assert deploy["environment"]["IMAGE"] == f"{IMAGE}:{COMMIT}"
    html = {"reportDir": "public", "reportFiles": "index.html", "reportName": "churn documentation",
            "keepAll": True, "alwaysLinkToLastBuild": True, "allowMissing": False}  # fmt: skip
    assert {"publishHTML": html} in stages["Docs"]["steps"]
    assert described["post"] == [{"archiveArtifacts": {"artifacts": ".mlops/**",
                                                       "allowEmptyArchive": True}}]  # fmt: skip
    assert described["environment"]["MLOPS_NB_LOG"] == ".mlops/log.duckdb"


def test_a_broken_jenkinsfile_does_not_parse(jenkins, tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(jenkins[0].file.read_text().replace("    stages {\n", "    stages \n", 1))
    with pytest.raises(AssertionError, match="unexpected token|expecting"):
        _jenkins_pipeline(broken, {}, tmp_path)


# ---------------------------------------------------------------------- quoting, every target
@dataclass
class Tricky:
    project: Path
    out: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module")
def tricky(tmp_path_factory) -> Tricky:
    """Hard-to-quote values (quotes, $, backticks, backslashes, a line break), a notebook path
    with spaces, a secret parameter, the default install (pip) and an image of our own."""
    tricky = Tricky(_tricky_project(tmp_path_factory.mktemp("tricky") / "project"))
    for target in TARGETS:
        tricky.out[target] = tricky.project / "ci" / target
        _written(tricky.project, TRICKY_NOTEBOOK, "--target", target, "--out",
                 str(tricky.out[target]), *TRICKY_ARGS, "--gate", "f1 >= champion * 1.02",
                 "--deploy", "docker", "--image", IMAGE)  # fmt: skip
    return tricky


def _tricky_runs(calls: list[dict], project: Path) -> None:
    """The smoke and the train run got every value exactly as checked."""
    runs = [call for call in calls if call["program"] == "mlops-nb" and call["argv"][0] == "run"]
    smoke, train = runs
    values, words = _read_back(train, project / TRICKY_NOTEBOOK)
    assert values == TRICKY_VALUES
    assert words[:2] == ["run", TRICKY_NOTEBOOK] and "--experiment" in words
    assert words[words.index("--experiment") + 1] == "night run"
    values, words = _read_back(smoke, project / TRICKY_NOTEBOOK)
    assert values == {**TRICKY_VALUES, "layers": [2]} and "--smoke" in words
    assert train["env"]["MLOPS_NB_LOG"] == ".mlops/log.duckdb"  # the file's default
    secret = FAKE_SECRETS["MLOPS_NB_SECRET_API_TOKEN"]  # handed over by name, never written
    assert (
        train["env"]["MLOPS_NB_SECRET_API_TOKEN"]
        == smoke["env"]["MLOPS_NB_SECRET_API_TOKEN"]
        == secret
    )
    installs = [call["argv"] for call in calls if call["program"] == "pip"]
    assert installs and all(argv == ["install", "mlops-nb==0.1.0"] for argv in installs)


def test_hard_values_survive_gitlab_quoting(tricky, tmp_path):
    binary = _gitlab_ci_local()
    repo = tmp_path / "repo"
    shutil.copytree(tricky.project, repo, ignore=shutil.ignore_patterns("ci"))
    shutil.copy(tricky.out["gitlab"] / ".gitlab-ci.yml", repo / ".gitlab-ci.yml")
    _git_repository(repo)
    record = tmp_path / "calls.jsonl"
    secret = {"MLOPS_NB_SECRET_API_TOKEN": FAKE_SECRETS["MLOPS_NB_SECRET_API_TOKEN"]}
    env = _gitlab_env(_stubs(tmp_path / "stubs", "mlops-nb", "pip"), record, **secret)
    result = _gitlab_ci(binary, repo, env, "test", "train")
    assert result.returncode == 0, result.stdout[-3000:] + str(result.job_logs)[-3000:]
    _tricky_runs(_calls(record), repo)


def test_hard_values_survive_github_quoting(tricky, tmp_path):
    record = tmp_path / "calls.jsonl"
    stub_bin = _stubs(tmp_path / "stubs", "mlops-nb", "pip")
    env = {"PATH": f"{stub_bin}:/usr/bin:/bin", "STUB_RECORD": str(record)}
    workflow = tricky.out["github"] / ".github/workflows/my-tricky-notebook-cicd.yml"
    outcomes = run_github_workflow(workflow, tricky.project, env, _github_context(tmp_path),
                                   only=("test", "train"))  # fmt: skip
    assert [o.status for o in outcomes.values()] == ["success", "success"], outcomes
    _tricky_runs(_calls(record), tricky.project)
    job = yaml.safe_load(workflow.read_text())["jobs"]["train"]
    assert job["env"] == {"MLOPS_NB_SECRET_API_TOKEN": "${{ secrets.MLOPS_NB_SECRET_API_TOKEN }}"}


def test_hard_values_survive_jenkins_quoting(tricky, tmp_path):
    workspace = tmp_path / "workspace"
    shutil.copytree(tricky.project, workspace, ignore=shutil.ignore_patterns("ci"))
    record = tmp_path / "calls.jsonl"
    # the default install's venv, already made: its bin/ is first on PATH for every step
    _stubs(workspace / ".mlops-venv" / "bin", "mlops-nb", "pip")
    env = {"PATH": "/usr/bin:/bin", "STUB_RECORD": str(record)}
    described, outcomes = run_jenkinsfile(tricky.out["jenkins"] / "Jenkinsfile", workspace, env,
                                          tmp_path, only=("Install", "Test", "Train"))  # fmt: skip
    assert [outcomes[s].status for s in ("Install", "Test", "Train")] == ["success"] * 3, outcomes
    _tricky_runs(_calls(record), workspace)
    assert described["environment"]["PATH"] == f"{workspace}/.mlops-venv/bin:/usr/bin:/bin"
    stages = {stage["name"]: stage for stage in described["stages"]}
    assert stages["Train"]["environment"] == {
        "MLOPS_NB_SECRET_API_TOKEN": {"credentials": "mlops-nb-secret-api-token"}
    }


# ---------------------------------------------------------------------- secrets and refusals
def test_generated_files_hold_no_secret(gitlab, github, jenkins, tricky):
    files = [gitlab.repo / ".gitlab-ci.yml", github.file, jenkins[0].file]
    files += [path for path in tricky.project.joinpath("ci").rglob("*") if path.is_file()]
    for path in files:
        text = path.read_text()
        leaked = [name for name, value in FAKE_SECRETS.items() if value in text]
        assert not leaked, f"{path.name} holds {leaked}"
    gitlab_text = (tricky.out["gitlab"] / ".gitlab-ci.yml").read_text()
    assert "#   MLOPS_NB_SECRET_API_TOKEN: a secret parameter of the notebook" in gitlab_text
    assert "#   REGISTRY_USER, REGISTRY_PASSWORD: the registry of " + IMAGE in gitlab_text
    assert "KUBECONFIG" not in gitlab_text  # --deploy docker: no cluster
    churn_gitlab = (gitlab.repo / ".gitlab-ci.yml").read_text()
    assert "#   KUBECONFIG (a variable of type File): the cluster" in churn_gitlab
    jenkinsfile = jenkins[0].file.read_text()
    assert "credentials kubeconfig (a secret file)" in jenkinsfile


REFUSALS = {  # write_cicd's keyword arguments for churn.ipynb, and the reason it refuses
    "no gate": ({"gates": []}, "give at least one --gate condition"),
    "bad gate": ({"gates": ["accuracy => 0.8"]}, "--gate: cannot read condition"),
    "gate against another alias": ({"gates": ["f1 >= prod - 0.01"]}, "the baseline is the version"),
    "unknown -p": ({"pairs": [("n_trees", "5")]}, "unknown parameter 'n_trees' (from -p)"),
    "bad smoke value": ({"smoke": [("n_customers", "few")]}, "'few' is not int"),
    "bad --install": ({"install": "pip install\nrm -rf /"}, "--install must be one shell"),
    "bad image": ({"image": "Registry/Churn"}, "bad image repository"),
    "deploy target": ({"deploy": "nomad"}, "unknown deploy target 'nomad'"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_pipeline_writes_nothing(case, tmp_path):
    shutil.copy(CHURN, tmp_path / "churn.ipynb")
    options = {"gates": ["accuracy >= 0.5"], **REFUSALS[case][0]}
    with pytest.raises(MlopsError, match=re.escape(REFUSALS[case][1])):
        write_cicd(tmp_path / "churn.ipynb", "gitlab", out=tmp_path / "ci", project=tmp_path,
                   **options)  # fmt: skip
    assert not (tmp_path / "ci").exists()


def test_refusals_of_the_command_are_one_line(tmp_path):
    _tricky_project(tmp_path)
    shutil.copy(CHURN, tmp_path / "churn.ipynb")
    cases = {
        "a secret value": ([TRICKY_NOTEBOOK, "-p", "api_token", "s3cr3t", "--smoke-parameter",
                            "limit", "1"], "set MLOPS_NB_SECRET_API_TOKEN as a secret CI variable"),
        "no smoke set": ([TRICKY_NOTEBOOK], "declares no smoke parameters for the test stage"),
        "outside": ([str(CHURN)], "is outside"),
    }  # fmt: skip
    for case, (args, reason) in cases.items():
        result = _cicd(tmp_path, *args, "--target", "github", "--out", "ci", "--gate", "f1 >= 0")
        assert result.returncode == 2, case
        assert result.stderr.startswith("mlops-nb cicd: ") and reason in result.stderr, case
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "ci").exists()


# ---------------------------------------------------------------------- smoke parameters
def test_smoke_lines_are_read_as_p_pairs():
    source = ('n: int = 10\nlabel: str = ""\n# mlops: smoke n=5 label=\'two words\'\n'
              "  #mlops:smoke label=x=y\n# mlops: smoker n=1\n")  # fmt: skip
    assert smoke_pairs(source) == [("n", "5"), ("label", "two words"), ("label", "x=y")]
    with pytest.raises(MlopsError, match="'n' is not NAME=VALUE"):
        smoke_pairs("# mlops: smoke n\n")
    with pytest.raises(MlopsError, match="cannot read the smoke line"):
        smoke_pairs("# mlops: smoke n='5\n")
    parameters = load_parameters(CHURN)
    values = resolve(parameters, [("n_estimators", "7")], {"n_customers": 9, "seed": 1},
                     smoke=[("n_customers", "500"), ("n_estimators", "20")])  # fmt: skip
    assert values == {"n_customers": 500, "seed": 1, "n_estimators": 7}  # -p over smoke over -f


def test_a_smoke_run_needs_a_smoke_set(tmp_path):
    _tricky_project(tmp_path)
    command = [sys.executable, "-m", "mlops_nb.cli", "run", TRICKY_NOTEBOOK, "--smoke"]
    result = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "declares no smoke parameters" in result.stderr and not (tmp_path / ".mlops").exists()


def test_default_install_uses_the_projects_own_requirements(tmp_path):
    assert default_install(tmp_path) == "pip install mlops-nb==0.1.0"
    (tmp_path / "tests").mkdir()
    (tmp_path / "pyproject.toml").write_text('dependencies = ["mlops-nb", "pytest"]\n')
    assert default_install(tmp_path) == "pip install ."
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    assert default_install(tmp_path) == "pip install -r requirements.txt mlops-nb==0.1.0 pytest"


def test_cicd_raises_its_own_error_type(tmp_path):
    shutil.copy(CHURN, tmp_path / "churn.ipynb")
    with pytest.raises(CicdError):
        write_cicd(tmp_path / "churn.ipynb", "travis", out=tmp_path / "ci", project=tmp_path)


# ---------------------------------------------------------------------- the tools themselves
def _tool(name: str, *args) -> subprocess.CompletedProcess:
    """A validator installed with the test extra, beside this Python."""
    return subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=120
    )
