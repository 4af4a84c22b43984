"""``mlops-nb cicd``: a CI/CD pipeline that tests, trains, gates, registers, deploys and
documents a notebook on every push, for GitLab CI, GitHub Actions or Jenkins.

Every stage is a list of plain ``mlops-nb`` command lines, built once by ``Release``, so what
CI runs is what anyone can run on a laptop. Each target in ``TARGETS`` (one small writer, as
``schedule.py`` keeps its own) only says how its CI system installs the project, carries the
log from job to job, keeps artifacts, asks for the deploy approval and hands over credentials.
Credentials are never written: the files name the CI variables that hold them.

The jobs find each other's work through files: the train job writes its run id to
``.mlops/ci/run-id`` (``mlops-nb run --run-id-file``), and the log (``.mlops/``) travels as an
artifact, unless ``MLOPS_NB_LOG`` points every job at a shared (team) log. The options,
secrets per CI system and how the tests run each file: docs/cicd.md.
"""

from __future__ import annotations

import argparse
import re
import shlex
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb._version import __version__
from mlops_nb.errors import MlopsError
from mlops_nb.log.values import is_secret_name
from mlops_nb.pipeline.notebook import Pipeline, read_pipeline
from mlops_nb.pipeline.parameters import load_smoke_pairs, load_values_file, resolve
from mlops_nb.pipeline.schedule import (
    DEFAULT_IMAGE,
    _github_literal,
    _groovy,
    _quoted,
    _relative,
    _write_files,
    job_name,
    parameter_pairs,
)
from mlops_nb.pipeline.secrets import secret_variable

STAGES = ("test", "train", "gate", "register", "deploy", "docs")
CI_DIR = ".mlops/ci"  # the run id, output notebooks and docs of the pipeline, kept with the log
RUN_ID_FILE = f"{CI_DIR}/run-id"
DEPLOY_DIR = "deploy"  # where the deploy job writes the image and manifests
DOCS_DIR = "public"  # GitLab Pages publishes this folder; the others upload it
LOCAL_LOG = ".mlops/log.duckdb"  # the log of a pipeline when no team log is configured
DEPLOY_TARGETS = ("kubernetes", "docker", "compose")
VENV = ".mlops-venv"  # Jenkins' default install: one venv in the workspace, kept across builds


class CicdError(MlopsError):
    """A CI/CD pipeline that cannot be written: a bad notebook, value, condition or option."""


class _Shell(str):
    """Text that goes into a command line as it is (already shell syntax), not quoted."""


_RUN_ID = _Shell(f'"$(cat {RUN_ID_FILE})"')


def _line(*words: str) -> str:
    """One shell command line: every word quoted, except those that are shell syntax."""
    return " ".join(word if isinstance(word, _Shell) else shlex.quote(word) for word in words)


@dataclass(frozen=True)
class Release:
    """What every target runs, stage by stage: checked values, conditions and commands."""

    notebook: str  # relative to the project root, where CI checks out the repository
    name: str  # the notebook stem as [a-z0-9-]: names files, artifacts and the workflow
    model: str  # the registered model
    pairs: list[tuple[str, str]]  # -p of the train run, read back unchanged by `mlops-nb run`
    smoke_pairs: list[tuple[str, str]]  # -p of the smoke run, over the notebook's smoke set
    experiment: str | None
    gates: list[str]
    model_var: str | None
    install: str  # the shell line that gives a fresh job the project and mlops-nb
    default_install: bool
    has_tests: bool
    deploy: str  # kubernetes, docker or compose
    image: str | None  # the image repository (the commit is its tag); None: the CI's default
    image_install: str  # how the model image installs mlops-nb
    default_branch: str  # Jenkins only: GitLab and GitHub know their default branch
    secrets: list[str]  # MLOPS_NB_SECRET_<NAME> of the notebook's secret parameters

    # ------------------------------------------------------------------ the stages
    def test(self) -> list[str]:
        """The project's tests, a check of the notebook, and a run with small values."""
        lines = ["python -m pytest"] if self.has_tests else []
        lines.append(_line("mlops-nb", "pipeline", "show", self.notebook))
        smoke = ["mlops-nb", "run", self.notebook, "--smoke", *self._options(self.smoke_pairs)]
        lines.append(_line(*smoke, "-o", f"{CI_DIR}/{self.name}-smoke.ipynb"))
        return lines

    def train(self) -> list[str]:
        """The full run, with its documentation and the run id for the next jobs."""
        words = ["mlops-nb", "run", self.notebook, *self._options(self.pairs)]
        words += ["-o", f"{CI_DIR}/{self.name}.ipynb", "--docs", f"{CI_DIR}/docs"]
        return [_line(*words, "--run-id-file", RUN_ID_FILE)]

    def gate(self) -> list[str]:
        """The trained run against the champion; a failure fails the job with its values."""
        return [_line("mlops-nb", "gate", _RUN_ID, *self.gates, "--model", self.model)]

    def register(self) -> list[str]:
        words = ["mlops-nb", "models", "register", self.model, "--run", _RUN_ID]
        words += ["--model", self.model_var] if self.model_var else []
        return [_line(*words, "--alias", "challenger")]

    def deploy_files(self) -> list[str]:
        """Move champion to the challenger (gated again: the champion may have moved since),
        then write the image and manifests of the champion into deploy/."""
        promote = ["mlops-nb", "gate", f"{self.model}@challenger", *self.gates]
        files = ["mlops-nb", "deploy", f"{self.model}@champion", "--target", self.deploy]
        files += ["--out", DEPLOY_DIR, "--image", _Shell('"$IMAGE"')]
        return [
            _line(*promote, "--model", self.model, "--promote", "champion"),
            _line(*files, "--install", self.image_install),
        ]

    def ship(self, user: str, password: str) -> list[str]:
        """Build and push the image named $IMAGE, then apply the manifests; the registry login
        reads the password from the CI variable named ``password``."""
        if self.deploy == "compose":
            return [f"docker compose -f {DEPLOY_DIR}/compose.yaml up -d --build"]
        login = (f'printf %s "${password}" | docker login --username "${user}" '
                 '--password-stdin "${IMAGE%%/*}"')  # fmt: skip
        lines = [login, f'docker build -t "$IMAGE" {DEPLOY_DIR}', 'docker push "$IMAGE"']
        if self.deploy == "kubernetes":
            lines.append(f"kubectl apply -f {DEPLOY_DIR}/kubernetes/")
        return lines

    def docs(self) -> list[str]:
        """The documentation of the trained run, with its gate and registered version."""
        out = ["mlops-nb", "docs", self.notebook, "--run", _RUN_ID, "--out", DOCS_DIR]
        return [_line(*out), f"cp {DOCS_DIR}/{self.page} {DOCS_DIR}/index.html"]

    def _options(self, pairs: list[tuple[str, str]]) -> list[str]:
        words = [word for name, text in pairs for word in ("-p", name, text)]
        return words + (["--experiment", self.experiment] if self.experiment else [])

    @property
    def page(self) -> str:
        return f"{Path(self.notebook).stem}.html"

    # ------------------------------------------------------------------ what the files say
    def header(self, comment: str, paragraphs: list[str], secrets: list[str]) -> str:
        """The comments every file starts with: what runs, where the log lives, how the deploy
        is approved, and the secrets the CI system must hold (by name, never their values)."""
        intro = (
            f"CI/CD for {self.notebook}, written by `mlops-nb cicd`: {', '.join(STAGES)}. "
            "Every step is a plain mlops-nb command: the same lines run on a laptop."
        )
        lines = []
        for paragraph in [intro, *paragraphs]:
            lines += [*textwrap.wrap(paragraph, 92), ""]
        lines.append("Secrets are never written in this file; the CI system holds them:")
        lines += [f"  {secret}" for secret in secrets]
        return "\n".join(f"{comment} {line}".rstrip() for line in lines) + "\n"


def cicd_from_cli(args: argparse.Namespace) -> int:
    """``mlops-nb cicd``: check everything, write the target's file, say how to install it."""
    project = Path.cwd()
    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise CicdError(f"no notebook at {args.notebook}")
    written, install = write_cicd(
        notebook, args.target, out=Path(args.out), project=project,
        pairs=[tuple(p) for p in args.parameter],
        values=load_values_file(args.file) if args.file else None,
        smoke=[tuple(p) for p in args.smoke_parameter], experiment=args.experiment,
        gates=args.gate, model=args.model, model_var=args.model_var, install=args.install,
        deploy=args.deploy, image=args.image, image_install=args.image_install,
        default_branch=args.default_branch,
    )  # fmt: skip
    for path in written:
        print(f"wrote {_relative(path.absolute(), project)}")
    print(f"to install: {install}")
    return 0


def write_cicd(
    notebook: Path,
    target_name: str,
    *,
    out: Path,
    project: Path,
    pairs: list[tuple[str, str]] | None = None,
    values: Mapping[str, Any] | None = None,
    smoke: list[tuple[str, str]] | None = None,
    experiment: str | None = None,
    gates: list[str] | None = None,
    model: str | None = None,
    model_var: str | None = None,
    install: str | None = None,
    deploy: str = "kubernetes",
    image: str | None = None,
    image_install: str | None = None,
    default_branch: str = "main",
) -> tuple[list[Path], str]:
    """Check the notebook, values, conditions and options, then write the target's file.

    Returns the files written and the one step that installs them. Nothing is written unless
    everything checks out.
    """
    target = TARGETS.get(target_name)
    if target is None:
        raise CicdError(f"unknown target {target_name!r}; known: {', '.join(TARGETS)}")
    _check_options(deploy, install, image_install, image)
    relative, pipeline, train_pairs, smoke_pairs = _checked_runs(
        notebook, project, pairs or [], values, smoke or []
    )
    release = Release(
        notebook=relative,
        name=job_name(notebook),
        model=model or experiment or pipeline.experiment or Path(notebook).stem,
        pairs=train_pairs,
        smoke_pairs=smoke_pairs,
        experiment=experiment,
        gates=_checked_gates(gates or []),
        model_var=model_var,
        install=install or default_install(project),
        default_install=install is None,
        has_tests=(project / "tests").is_dir(),
        deploy=deploy,
        image=image,
        image_install=image_install or f"pip install mlops-nb=={__version__}",
        default_branch=default_branch,
        secrets=[secret_variable(p.name) for p in pipeline.parameters if is_secret_name(p.name)],
    )
    out = out if out.is_absolute() else project / out
    written = _write_files(out, target.write(release))
    return written, target.install.format(out=_relative(out, project), name=release.name)


def _check_options(
    deploy: str, install: str | None, image_install: str | None, image: str | None
) -> None:
    if deploy not in DEPLOY_TARGETS:
        raise CicdError(f"unknown deploy target {deploy!r}; known: {', '.join(DEPLOY_TARGETS)}")
    for option, command in (("--install", install), ("--image-install", image_install)):
        if command is not None and (not command.strip() or "\n" in command):
            raise CicdError(f"{option} must be one shell command line, e.g. 'pip install .'")
    if image is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*", image):
        raise CicdError(f"bad image repository {image!r}: e.g. registry.example.com/team/churn")


def _checked_runs(
    notebook: Path,
    project: Path,
    pairs: list[tuple[str, str]],
    values: Mapping[str, Any] | None,
    smoke: list[tuple[str, str]],
) -> tuple[str, Pipeline, list[tuple[str, str]], list[tuple[str, str]]]:
    """The notebook as the repository names it, and the -p pairs of the train and smoke runs,
    checked as ``mlops-nb run`` will check them."""
    relative = _relative(notebook.absolute(), project.absolute())
    if Path(relative).is_absolute():
        raise CicdError(
            f"{notebook} is outside {project}: run mlops-nb cicd from the repository root, "
            "where CI checks out the notebook"
        )
    try:
        pipeline = read_pipeline(notebook)
    except (OSError, ValueError) as error:
        raise CicdError(f"cannot read {notebook}: {error}") from None
    declared_smoke = load_smoke_pairs(notebook)
    train_values = resolve(pipeline.parameters, pairs, values)
    smoke_values = resolve(pipeline.parameters, smoke)  # the declared set is --smoke's own
    resolve(pipeline.parameters, smoke=declared_smoke)  # a bad smoke line fails here, not in CI
    if not declared_smoke and not smoke:
        raise CicdError(
            f"{relative} declares no smoke parameters for the test stage: add a line such as "
            "'# mlops: smoke n_rows=500' to its parameters cell, or give --smoke-parameter "
            "NAME VALUE"
        )
    for name in [*train_values, *smoke_values]:
        if is_secret_name(name):
            raise CicdError(
                f"parameter {name!r} looks secret and would be written in clear into the CI "
                f"file: leave it out and set {secret_variable(name)} as a secret CI variable"
            )
    train_pairs = parameter_pairs(pipeline.parameters, train_values)
    # the train run's values, except those the smoke run sets itself
    smoke_names = {name for name, _ in declared_smoke} | set(smoke_values)
    smoke_pairs = [(name, text) for name, text in train_pairs if name not in smoke_names]
    smoke_pairs += parameter_pairs(pipeline.parameters, smoke_values)
    return relative, pipeline, train_pairs, smoke_pairs


def _checked_gates(gates: list[str]) -> list[str]:
    """The conditions as ``mlops-nb gate`` reads them, refused now rather than in CI."""
    from mlops_nb.registry.gates import GateError, parse_conditions

    if not gates:
        raise CicdError('give at least one --gate condition, e.g. "accuracy >= champion - 0.01"')
    try:
        return [condition.text for condition in parse_conditions(gates, "champion")]
    except GateError as error:
        raise CicdError(f"--gate: {error}") from None


def default_install(project: Path) -> str:
    """pip with the project's own requirements (requirements.txt, else its pyproject), plus
    mlops-nb and pytest when the project does not name them itself."""
    words = ["pip", "install"]
    declared = ""
    for file, argument in (("requirements.txt", ["-r", "requirements.txt"]),
                           ("pyproject.toml", ["."])):  # fmt: skip
        if (project / file).is_file():
            words += argument
            declared = (project / file).read_text(errors="replace")
            break
    if not re.search(r"mlops[-_]nb", declared, re.IGNORECASE):
        words.append(f"mlops-nb=={__version__}")
    if (project / "tests").is_dir() and "pytest" not in declared:
        words.append("pytest")
    return shlex.join(words)


# ---------------------------------------------------------------------- the targets
@dataclass(frozen=True)
class Target:
    write: Callable[[Release], dict[str, str]]  # file path under --out -> text
    install: str  # one line for the user; {out} and {name} are filled in


TARGETS: dict[str, Target] = {}


def register(
    name: str, install: str
) -> Callable[[Callable[[Release], dict[str, str]]], Callable[[Release], dict[str, str]]]:
    """Add a target; the built-in ones below register themselves the same way."""

    def add(write: Callable[[Release], dict[str, str]]) -> Callable[[Release], dict[str, str]]:
        TARGETS[name] = Target(write, install)
        return write

    return add


def _log_note(job: str, how: str, team: str) -> str:
    return (
        f"The log: every {job} starts on a fresh checkout, so the experiment log (.mlops/) "
        f"travels from {job} to {job} as an artifact ({how}). To record CI runs in the team "
        "log, where every member's sidebar shows them and the gate meets the real champion, "
        f"{team}. Without it each pipeline starts from an empty log: the first gate has no "
        'champion, and its conditions against the champion pass ("first model").'
    )


def _yaml_list(lines: list[str], indent: int) -> str:
    return "".join(f"{' ' * indent}- {_quoted(line)}\n" for line in lines)


@register(
    "gitlab",
    "commit {out}/.gitlab-ci.yml at the repository root; set the CI/CD variables named in its "
    "comments (Settings > CI/CD > Variables) and protect the production environment",
)
def _gitlab(release: Release) -> dict[str, str]:
    """Six jobs in six stages; ``needs`` carries the .mlops/ artifact from job to job."""
    log_note = _log_note(
        "job", "each job keeps .mlops/, and `needs:` brings it to the next",
        "set MLOPS_NB_LOG as a CI/CD variable (Settings > CI/CD > Variables; it wins over the "
        "value in this file)",
    )  # fmt: skip
    own_registry = release.image is None
    registry = (["CI_REGISTRY_USER, CI_REGISTRY_PASSWORD: GitLab's own, for its registry"]
                if own_registry else
                ["REGISTRY_USER, REGISTRY_PASSWORD: the registry of " + release.image])  # fmt: skip
    secrets = _deploy_secrets(release, "KUBECONFIG (a variable of type File)", registry)
    secrets += [f"{v}: a secret parameter of the notebook" for v in release.secrets]
    approval = (
        "The deploy job runs on the default branch only, when someone starts it (a manual job; "
        "protect the `production` environment to require approvals). Its image needs docker "
        "and kubectl, or run it on a shell runner that has them. Docs go to GitLab Pages."
    )
    repository = release.image or f"$CI_REGISTRY_IMAGE/{release.name}"
    variables = {"IMAGE": f"{repository}:$CI_COMMIT_SHORT_SHA"}
    if own_registry:
        variables |= {"REGISTRY_USER": "$CI_REGISTRY_USER",
                      "REGISTRY_PASSWORD": "$CI_REGISTRY_PASSWORD"}  # fmt: skip
    deploy_variables = "".join(f"    {k}: {_quoted(v)}\n" for k, v in variables.items())
    default_branch = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"

    def job(name: str, stage: str, needs: str | None, lines: list[str], more: str = "") -> str:
        after = f"  needs: [{needs}]\n" if needs else ""
        return f"{name}:\n  stage: {stage}\n{after}{more}  script:\n{_yaml_list(lines, 4)}"

    deploy = job(
        "deploy", "deploy", "register", release.deploy_files() + release.ship("REGISTRY_USER",
        "REGISTRY_PASSWORD"),
        f"  rules:\n    - if: {default_branch}\n      when: manual\n"
        "  environment:\n    name: production\n  resource_group: production\n"
        f"  variables:\n{deploy_variables}",
    ) + _gitlab_artifacts([".mlops/", f"{DEPLOY_DIR}/"])  # fmt: skip
    pages = job("pages", "docs", "register", release.docs(),
                f"  rules:\n    - if: {default_branch}\n")  # fmt: skip
    ci = f"""{release.header("#", [log_note, approval], secrets)}
stages: [{", ".join(STAGES)}]

variables:
  MLOPS_NB_LOG: {LOCAL_LOG}

default:
  image: {DEFAULT_IMAGE}
  before_script:
{_yaml_list([release.install], 4)}{_gitlab_artifacts([".mlops/"], indent=2)}
{job("test", "test", None, release.test())}
{job("train", "train", "test", release.train())}
{job("gate", "gate", "train", release.gate())}
{job("register", "register", "gate", release.register())}
{deploy}
{pages}  artifacts:
    paths:
      - {DOCS_DIR}
"""
    return {".gitlab-ci.yml": ci}


def _gitlab_artifacts(paths: list[str], indent: int = 2) -> str:
    pad = " " * indent
    listed = "".join(f"{pad}    - {path}\n" for path in paths)
    return (
        f"{pad}artifacts:\n{pad}  when: always\n{pad}  expire_in: 30 days\n{pad}  paths:\n{listed}"
    )


def _deploy_secrets(release: Release, kubeconfig: str, registry: list[str]) -> list[str]:
    """The credentials the deploy job needs, by name (compose needs none: it runs here)."""
    if release.deploy == "compose":
        return ["none for the deploy job: docker compose runs on the runner's own Docker"]
    cluster = [f"{kubeconfig}: the cluster the deploy job applies to"]
    return (cluster if release.deploy == "kubernetes" else []) + registry


@register(
    "github",
    "commit {out}/.github/workflows/{name}-cicd.yml as .github/workflows/{name}-cicd.yml; "
    "add the secrets and variables named in its comments, and required reviewers to the "
    "production environment",
)
def _github(release: Release) -> dict[str, str]:
    """One job per stage, chained by ``needs``; each uploads .mlops/ and the next downloads it."""
    log_note = _log_note(
        "job", "uploaded by each job, downloaded by the next",
        "set the repository variable MLOPS_NB_LOG (Settings > Secrets and variables > Actions "
        "> Variables)",
    )  # fmt: skip
    image = (["IMAGE_REPOSITORY (a variable): where the model image is pushed"]
             if release.image is None else [])  # fmt: skip
    registry = ["REGISTRY_USER, REGISTRY_PASSWORD: the registry's login", *image]
    secrets = _deploy_secrets(release, "KUBECONFIG (the file's text)", registry)
    secrets += [f"{v}: a secret parameter of the notebook" for v in release.secrets]
    approval = (
        "The deploy and docs jobs run on the default branch only. The deploy waits for an "
        "approval: give the `production` environment required reviewers (Settings > "
        "Environments). Docs are published with GitHub Pages (source: GitHub Actions)."
    )
    secret_env = {v: f"${{{{ secrets.{v} }}}}" for v in release.secrets}
    repository = release.image or "${{ vars.IMAGE_REPOSITORY }}"
    deploy_env = {"IMAGE": f"{repository}:${{{{ github.sha }}}}",
                  "REGISTRY_USER": "${{ secrets.REGISTRY_USER }}",
                  "REGISTRY_PASSWORD": "${{ secrets.REGISTRY_PASSWORD }}"}  # fmt: skip
    on_default = "github.ref_name == github.event.repository.default_branch"
    jobs = [
        _github_job(release, "test", None, release.test(), env=secret_env),
        _github_job(release, "train", "test", release.train(), env=secret_env),
        _github_job(release, "gate", "train", release.gate()),
        _github_job(release, "register", "gate", release.register()),
        _github_job(
            release, "deploy", "register",
            release.deploy_files() + release.ship("REGISTRY_USER", "REGISTRY_PASSWORD"),
            env=deploy_env, paths=[".mlops/", f"{DEPLOY_DIR}/"],
            more=f"    if: {on_default}\n    environment: production\n"
            "    concurrency:\n      group: production\n      cancel-in-progress: false\n",
        ),
        _github_job(
            release, "docs", "register", release.docs(), pages=True,
            more=f"    if: {on_default}\n    permissions:\n      contents: read\n"
            "      pages: write\n      id-token: write\n    environment:\n"
            "      name: github-pages\n      url: ${{ steps.pages.outputs.page_url }}\n",
        ),
    ]  # fmt: skip
    workflow = f"""{release.header("#", [log_note, approval], secrets)}
name: {_quoted(f"{release.name} CI/CD (mlops-nb)")}
on: [push, workflow_dispatch]
permissions:
  contents: read
env:
  MLOPS_NB_LOG: ${{{{ vars.MLOPS_NB_LOG || '{LOCAL_LOG}' }}}}
jobs:
{"".join(jobs)}"""
    return {f".github/workflows/{release.name}-cicd.yml": workflow}


def _github_job(
    release: Release,
    name: str,
    needs: str | None,
    lines: list[str],
    *,
    env: Mapping[str, str] | None = None,
    paths: list[str] | None = None,
    more: str = "",
    pages: bool = False,
) -> str:
    """checkout, Python, install, the previous job's .mlops/, the commands, then the uploads."""
    steps = [
        "      - uses: actions/checkout@v4\n",
        '      - uses: actions/setup-python@v5\n        with:\n          python-version: "3.11"\n',
        f"      - name: Install\n        run: {_quoted(release.install)}\n",
    ]
    if needs:
        steps.append(f"      - uses: actions/download-artifact@v4\n        with:\n"
                     f"          name: mlops-{needs}\n          path: .mlops/\n")  # fmt: skip
    for line in lines:
        step_env = ""
        if line.startswith("kubectl "):  # the secret is the file's text: kubectl wants a file
            step_env = ("        env:\n          KUBECONFIG_TEXT: ${{ secrets.KUBECONFIG }}\n"
                        "          KUBECONFIG: ${{ runner.temp }}/kubeconfig\n")  # fmt: skip
            line = f'printf \'%s\\n\' "$KUBECONFIG_TEXT" > "$KUBECONFIG"\n{line}'
        title = _quoted(line.splitlines()[-1][:60])
        steps.append(f"      - name: {title}\n{step_env}        run: "
                     f"{_quoted(_github_literal(line))}\n")  # fmt: skip
    if pages:
        steps.append(f"      - uses: actions/upload-pages-artifact@v3\n        with:\n"
                     f"          path: {DOCS_DIR}/\n"
                     "      - id: pages\n        uses: actions/deploy-pages@v4\n")  # fmt: skip
    else:
        listed = "".join(f"            {path}\n" for path in paths or [".mlops/"])
        steps.append(
            "      - uses: actions/upload-artifact@v4\n        if: always()\n        with:\n"
            f"          name: mlops-{name}\n          include-hidden-files: true\n"
            f"          path: |\n{listed}"
        )
    env_text = "".join(f"      {k}: {_quoted(v)}\n" for k, v in (env or {}).items())
    return (
        f"  {name}:\n" + (f"    needs: {needs}\n" if needs else "") + more
        + "    runs-on: ubuntu-latest\n" + (f"    env:\n{env_text}" if env_text else "")
        + "    steps:\n" + "".join(steps)
    )  # fmt: skip


@register(
    "jenkins",
    "commit {out}/Jenkinsfile at the repository root, create a Multibranch Pipeline from it "
    "and add the credentials named in its comments",
)
def _jenkins(release: Release) -> dict[str, str]:
    """Declarative stages in one workspace: the log stays there from stage to stage."""
    log_note = (
        "The log: the stages share one workspace, so the experiment log (.mlops/) goes from "
        "stage to stage as it is (and is archived after every build); it stays in the "
        "workspace for the next build on the same agent. To record CI runs in the team log, "
        "where every member's sidebar shows them and the gate meets the real champion, set "
        "MLOPS_NB_LOG in the agent's or the folder's environment."
    )
    registry = [
        f"registry (username and password): the registry of {release.image or '$IMAGE_REPOSITORY'}"
    ]
    if release.image is None:
        registry.append("IMAGE_REPOSITORY (an environment variable): where the image is pushed")
    secrets = _deploy_secrets(release, "kubeconfig (a secret file)", registry)
    secrets = [f"credentials {s}" if not s.startswith("IMAGE") else s for s in secrets]
    secrets += [f"credentials {_credential_id(v)} (secret text): {v}" for v in release.secrets]
    approval = (
        f"Docs and deploy run on the {release.default_branch} branch only (a Multibranch "
        "Pipeline sets BRANCH_NAME). The deploy waits for someone to approve it; docs come "
        "first, so the wait holds nothing else back. The docs need the HTML Publisher plugin."
    )
    environment = [f"MLOPS_NB_LOG = \"${{env.MLOPS_NB_LOG ?: '{LOCAL_LOG}'}}\""]
    install = [release.install]
    if release.default_install:  # a venv of its own, first on PATH for every step
        environment.append(f'PATH = "${{env.WORKSPACE}}/{VENV}/bin:${{env.PATH}}"')
        install = [f"test -d {VENV} || python3 -m venv {VENV}", release.install]
    secret_env = [f"{v} = credentials('{_credential_id(v)}')" for v in release.secrets]
    repository = release.image or "${env.IMAGE_REPOSITORY}"
    deploy_env = [f'IMAGE = "{repository}:${{env.GIT_COMMIT}}"']
    if release.deploy == "kubernetes":
        deploy_env.append("KUBECONFIG = credentials('kubeconfig')")
    if release.deploy != "compose":
        deploy_env.append("REGISTRY = credentials('registry')")  # REGISTRY_USR, REGISTRY_PSW
    on_default = f"            when {{\n                branch {_groovy(release.default_branch)}\n"
    html = (f"publishHTML(target: [reportDir: '{DOCS_DIR}', reportFiles: 'index.html', "
            f"reportName: {_groovy(release.name + ' documentation')}, keepAll: true, "
            "alwaysLinkToLastBuild: true, allowMissing: false])")  # fmt: skip
    stages = [
        _jenkins_stage("Install", install),
        _jenkins_stage("Test", release.test(), environment=secret_env),
        _jenkins_stage("Train", release.train(), environment=secret_env),
        _jenkins_stage("Gate", release.gate()),
        _jenkins_stage("Register", release.register()),
        _jenkins_stage("Docs", release.docs(), extra_steps=[html],
                       before=on_default + "            }\n"),
        _jenkins_stage(
            "Deploy", release.deploy_files() + release.ship("REGISTRY_USR", "REGISTRY_PSW"),
            environment=deploy_env,
            before=on_default + "                beforeInput true\n            }\n"
            "            input {\n"
            f"                message {_groovy(f'Deploy {release.model}@challenger?')}\n"
            "                ok 'Deploy'\n            }\n",
        ),
    ]  # fmt: skip
    jenkinsfile = f"""{release.header("//", [log_note, approval], secrets)}
pipeline {{
    agent any
    options {{ disableConcurrentBuilds() }}
    environment {{
{"".join(f"        {line}{chr(10)}" for line in environment)}    }}
    stages {{
{"".join(stages)}    }}
    post {{
        always {{
            archiveArtifacts artifacts: '.mlops/**', allowEmptyArchive: true
        }}
    }}
}}
"""
    return {"Jenkinsfile": jenkinsfile}


def _jenkins_stage(
    name: str,
    lines: list[str],
    *,
    environment: list[str] | None = None,
    extra_steps: list[str] | None = None,
    before: str = "",
) -> str:
    pad = " " * 16
    env = ""
    if environment:
        env = "            environment {\n" + "".join(f"{pad}{e}\n" for e in environment)
        env += "            }\n"
    steps = [f"sh {_groovy(line)}" for line in lines] + (extra_steps or [])
    return (
        f"        stage({_groovy(name)}) {{\n{before}{env}            steps {{\n"
        + "".join(f"{pad}{step}\n" for step in steps)
        + "            }\n        }\n"
    )


def _credential_id(variable: str) -> str:
    return variable.lower().replace("_", "-")
