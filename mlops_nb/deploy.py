"""``mlops-nb deploy``: the files that serve a registered model from a container.

The model version is exported (``model/``: ``model.skops`` + ``manifest.json``, see
``registry.load.export_model``) next to an image that runs ``mlops-nb serve --model-dir`` on it.
Each target (docker, compose, kubernetes) is one small writer in ``TARGETS``, as in
``pipeline/schedule.py``: it turns a ``Deployment`` into file texts. All of them build the same
image (``_image_files``) and start it with the same command, built once by
``Deployment.command``.

The image pins what the model needs to load and serve (``MODEL_PACKAGES`` and whatever
distributions the skops file names) to the versions its source run recorded, on the recorded
Python. mlops-nb itself is installed from a wheel copied into the build folder (``--wheel``,
or built from this checkout), or by the user's own ``--install`` command. No credentials are
ever written: the registry an image is pushed to and a private package index are the user's,
named only in comments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_nb._version import __version__
from mlops_nb.errors import MlopsError
from mlops_nb.pipeline.schedule import _quoted, _relative, _write_files
from mlops_nb.registry.load import MANIFEST, export_model, file_sha256, parse_ref, resolve

# What every sklearn model served by mlops-nb needs, besides what its skops file names.
MODEL_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops")
USER_ID = 10001  # numeric, so Kubernetes' runAsNonRoot can verify it
IMAGE_MODELS = "/models"  # the exported folder is copied to /models/<name>
IMAGE_DATA = "/data"  # the request log (MLOPS_NB_LOG) lives here, on a volume
DEFAULTS = {"port": 8080, "workers": 1, "replicas": 2, "max_replicas": 5, "cpu_target": 70}


class DeployError(MlopsError):
    """Deploy files that cannot be written: a bad option, no wheel, a package not pinnable."""


@dataclass(frozen=True)
class Deployment:
    """One model version, how its image is built and how it runs: what every target writes."""

    name: str  # the registered model name
    version: int
    alias: str | None  # the alias it was deployed by, if any (for labels and comments)
    sha256: dict[str, str]  # file in model/ -> sha256, checked at build time
    slug: str  # the name as [a-z0-9-]: names the service, Deployment and image
    out: Path
    image: str
    python: str  # the recorded Python version, e.g. 3.11.7
    pins: dict[str, str]  # distribution -> version
    unrecorded: tuple[str, ...]  # pins (or "python") not in the recorded environment
    run_id: str | None
    install: str | None  # the user's command that installs mlops-nb, else the wheel is used
    wheel: str | None  # file name under wheels/ (+ [serve] when it has that extra)
    port: int = DEFAULTS["port"]
    workers: int = DEFAULTS["workers"]
    replicas: int = DEFAULTS["replicas"]
    max_replicas: int = DEFAULTS["max_replicas"]
    cpu_target: int = DEFAULTS["cpu_target"]

    @property
    def model_dir(self) -> str:
        """Where the exported model is inside the image."""
        return f"{IMAGE_MODELS}/{self.slug}"

    @property
    def log(self) -> str:
        return f"{IMAGE_DATA}/log.duckdb"

    def command(self) -> list[str]:
        """What the container runs: ``mlops-nb serve`` on the exported folder, no log needed."""
        return ["mlops-nb", "serve", "--model-dir", self.model_dir, "--host", "0.0.0.0",
                "--port", str(self.port), "--workers", str(self.workers)]  # fmt: skip

    def health_check(self, path: str = "/health") -> list[str]:
        """A probe that needs nothing but Python (slim images have no curl): exit 0 on a 2xx."""
        url = f"http://127.0.0.1:{self.port}{path}"
        code = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=4)"
        return ["python", "-c", code]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}:{self.version}"

    def header(self, comment: str) -> str:
        """The first lines of every generated file: what it serves."""
        via = f" (alias {self.alias})" if self.alias else ""
        return (
            f"{comment} Serves the model {self.name} version {self.version}{via} with mlops-nb.\n"
            f"{comment} Written by `mlops-nb deploy {self.ref}`; no credentials are in this file."
        )

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": self.slug,
            "app.kubernetes.io/version": str(self.version),
            "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/managed-by": "mlops-nb",
            "mlops-nb/model": _label_value(self.name),
            "mlops-nb/model-version": str(self.version),
        }


@dataclass
class WrittenDeployment:
    """What ``write_deployment`` did: the files, and how to build and start them."""

    files: list[Path]
    deployment: Deployment
    start: str
    notes: list[str]


def deploy_from_cli(args: argparse.Namespace) -> int:
    """``mlops-nb deploy``: export the model, write the target's files, say how to start it."""
    import mlops_nb

    log = mlops_nb.open_log(getattr(args, "log", None), create=False)
    try:
        written = write_deployment(
            log, args.ref, args.target, out=Path(args.out), image=args.image, port=args.port,
            workers=args.workers, replicas=args.replicas, max_replicas=args.max_replicas,
            cpu_target=args.cpu_target, install=args.install, wheel=args.wheel,
        )  # fmt: skip
    finally:
        log.close()
    found = written.deployment
    print(f"exported {found.name} version {found.version} to {_shown(written.files[0].parent)}")
    for path in written.files:
        print(f"wrote {_shown(path)}")
    for note in written.notes:
        print(f"note: {note}")
    print(f"to start: {written.start}")
    return 0


def write_deployment(
    log: Any,
    ref: str,
    target_name: str,
    *,
    out: Path,
    image: str | None = None,
    install: str | None = None,
    wheel: str | os.PathLike[str] | None = None,
    **numbers: int,
) -> WrittenDeployment:
    """Check the options, export the model into ``out/model`` and write the target's files.

    ``numbers`` are ``port``, ``workers``, ``replicas``, ``max_replicas``, ``cpu_target``
    (``DEFAULTS`` for those not given). Nothing is written unless every option checks out.
    """
    target = TARGETS.get(target_name)
    if target is None:
        raise DeployError(f"unknown target {target_name!r}; known: {', '.join(TARGETS)}")
    settings = _check_numbers({k: v for k, v in numbers.items() if v is not None})
    if install is not None and wheel is not None:
        raise DeployError("give either --install or --wheel: both say how mlops-nb is installed")
    if install is not None and (not install.strip() or "\n" in install):
        raise DeployError("--install must be one shell command line, e.g. 'pip install mlops-nb'")
    if image is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", image):
        raise DeployError(f"bad image name {image!r}: e.g. registry.example.com/team/churn:3")
    parsed = parse_ref(ref)
    record = resolve(log, parsed)
    version = int(record["version"])
    slug = _slug(record["name"])
    sha = record.get("artifact_sha256")
    stored = log.artifact_file(f"{sha[:2]}/{sha}") if isinstance(sha, str) else Path("-")
    pins, python, unrecorded = pins_for(record.get("packages") or {}, stored)
    given = _checked_wheel(wheel)
    out = out.absolute()

    wheel_name = _put_wheel(given, out / "wheels") if install is None else None
    model = out / "model"
    export_model(log, f"{record['name']}:{version}", model)  # that version, even if the alias moves
    manifest = json.loads((model / MANIFEST).read_text())
    deployment = Deployment(
        name=record["name"], version=version, alias=parsed.alias,
        sha256={manifest["file"]: manifest["sha256"], MANIFEST: file_sha256(model / MANIFEST)},
        slug=slug, out=out, image=image or f"mlops-nb-{slug}:{version}", python=python,
        pins=pins, unrecorded=unrecorded, run_id=record.get("run_id"), install=install,
        wheel=wheel_name, **settings,
    )  # fmt: skip
    files = _write_files(out, target.write(deployment))
    notes = []
    if unrecorded:
        notes.append(
            f"not in the recorded environment of the model's run, pinned to this machine's "
            f"versions: {', '.join(unrecorded)}"
        )
    if target_name == "kubernetes" and image is None:
        notes.append(
            "push the image to a registry your cluster pulls from and pass it with --image "
            "(the manifest names the local image " + deployment.image + ")"
        )
    start = target.start.format(out=_shown(out), image=deployment.image, port=deployment.port)
    return WrittenDeployment([model / manifest["file"], model / MANIFEST, *files], deployment,
                             start, notes)  # fmt: skip


def _check_numbers(given: Mapping[str, int]) -> dict[str, int]:
    settings = {**DEFAULTS, **given}
    limits = {"port": (1, 65535), "workers": (1, 512), "replicas": (1, 1000),
              "max_replicas": (1, 1000), "cpu_target": (1, 100)}  # fmt: skip
    for key, (low, high) in limits.items():
        if not low <= settings[key] <= high:
            option = "--" + key.replace("_", "-")
            raise DeployError(f"{option} {settings[key]} is out of range ({low}..{high})")
    if settings["max_replicas"] < settings["replicas"]:
        raise DeployError(
            f"--max-replicas {settings['max_replicas']} is below --replicas "
            f"{settings['replicas']}: the autoscaler would have no room"
        )
    return settings


# ---------------------------------------------------------------------- pinned packages
def pins_for(
    recorded: Mapping[str, str], model_file: Path
) -> tuple[dict[str, str], str, tuple[str, ...]]:
    """``(pins, python version, names not recorded)`` for the image of one model.

    The pins cover ``MODEL_PACKAGES`` and the distributions of every module the skops file
    names (a LightGBM model needs lightgbm); each at the version the model's run recorded, or
    this machine's when the run did not record it (those are returned as ``unrecorded``).
    """
    by_key = {_normalized(name): str(version) for name, version in recorded.items()}
    needed = {_normalized(name): name for name in MODEL_PACKAGES}
    for distribution in _distributions_of(model_file):
        needed.setdefault(_normalized(distribution), distribution)
    needed.pop("mlops-nb", None)  # installed on its own, from the wheel or --install
    pins, unrecorded = {}, []
    for key, name in sorted(needed.items()):
        if key in by_key:
            pins[name] = by_key[key]
            continue
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise DeployError(
                f"the model needs {name}, which its run did not record and is not installed "
                "here: its version cannot be pinned"
            ) from None
        unrecorded.append(name)
    python = by_key.get("python")
    if python is None:
        python = platform.python_version()
        unrecorded.append("python")
    return pins, python, tuple(unrecorded)


def _distributions_of(model_file: Path) -> set[str]:
    """Distributions providing the modules a skops file's objects come from."""
    try:
        with zipfile.ZipFile(model_file) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return set()  # not a skops file (pickle): only MODEL_PACKAGES
    modules: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module = node.get("__module__")
            if isinstance(module, str):
                modules.add(module.split(".", 1)[0])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    owners = metadata.packages_distributions()
    return {dist for module in modules for dist in owners.get(module, [])}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


# ---------------------------------------------------------------------- mlops-nb in the image
def _checked_wheel(wheel: str | os.PathLike[str] | None) -> Path | None:
    """The file given with --wheel, checked; None means: build one from this checkout."""
    if wheel is None:
        return None
    path = Path(wheel)
    if not path.is_file() or not re.fullmatch(r"mlops_nb-[^-]+-.+\.whl", path.name):
        raise DeployError(f"--wheel {wheel}: not a mlops-nb wheel file (mlops_nb-*.whl)")
    return path


def _put_wheel(given: Path | None, wheels: Path) -> str:
    """Copy the given wheel, or one built now from this checkout, into ``wheels/``; the
    name the Dockerfile installs, with ``[serve]`` when the wheel has that extra."""
    with tempfile.TemporaryDirectory(prefix="mlops-nb-wheel-") as built:
        source = given or _build_wheel(Path(built))
        wheels.mkdir(parents=True, exist_ok=True)
        for old in wheels.glob("mlops_nb-*.whl"):
            old.unlink()
        shutil.copyfile(source, wheels / source.name)
    return source.name + ("[serve]" if "serve" in _extras(wheels / source.name) else "")


def _build_wheel(folder: Path) -> Path:
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not (pyproject.is_file() and 'name = "mlops-nb"' in pyproject.read_text()):
        raise DeployError(
            f"mlops-nb {__version__} is not installed from a checkout, so no wheel can be "
            f"built: pass --wheel FILE, or --install 'pip install mlops-nb=={__version__}'"
        )
    print(f"building the mlops-nb wheel from {root} (about 30 s)", flush=True)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(folder), str(root)],
        capture_output=True, text=True, env={**os.environ, "PATH": path},
    )  # fmt: skip
    found = sorted(folder.glob("mlops_nb-*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise DeployError(
            f"building the mlops-nb wheel from {root} failed ({last}); it needs hatchling, "
            "hatch-jupyter-builder, jupyter-builder and node: pass --wheel FILE or --install"
        )
    return found[-1]


def _extras(wheel: Path) -> set[str]:
    """The extras a wheel declares (``Provides-Extra`` in its METADATA)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode("utf-8", "replace")
    except (OSError, StopIteration, zipfile.BadZipFile):
        return set()
    return set(re.findall(r"^Provides-Extra: *(\S+)", text, re.MULTILINE))


# ---------------------------------------------------------------------- the targets
Writer = Callable[[Deployment], dict[str, str]]  # file path under --out -> text


@dataclass(frozen=True)
class Target:
    """One way to run the image: the files to write and the line that starts them."""

    write: Writer
    start: str  # one line for the user; {out}, {image} and {port} are filled in


TARGETS: dict[str, Target] = {}


def register(name: str, start: str) -> Callable[[Writer], Writer]:
    """Add a target; the built-in ones below register themselves the same way."""

    def add(write: Writer) -> Writer:
        TARGETS[name] = Target(write, start)
        return write

    return add


def _image_files(found: Deployment) -> dict[str, str]:
    """The image every target runs: Dockerfile, its .dockerignore and the pinned packages."""
    checks = "".join(f"{sha}  {file}\\n" for file, sha in found.sha256.items())
    if found.install is None:
        source = "the wheel in wheels/, written by `mlops-nb deploy`"
        copy_wheel = "COPY wheels/ /app/wheels/\n"
        install = f"pip install -r /app/requirements.txt '/app/wheels/{found.wheel}'"
    else:
        source = "the command given with --install"
        copy_wheel = ""
        # the pins stay: a later pip install may not move them
        install = (
            "pip install -r /app/requirements.txt \\\n"
            "    && export PIP_CONSTRAINT=/app/requirements.txt \\\n"
            f"    && {found.install}"
        )
    health = json.dumps(found.health_check(), ensure_ascii=False)
    dockerfile = f"""{found.header("#")}
# Build it from this folder:  docker build -t {found.image} {_shown(found.out)}
# The base image, the packages and mlops-nb ({source}) come from the
# registries you configure. For a private package index, give its credentials as a build secret
# (docker build --secret id=pip,src=$HOME/.config/pip/pip.conf and a RUN --mount=type=secret),
# never as ARG or ENV; to push the image, `docker login` to your own registry first.
FROM python:{found.python}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --uid {USER_ID} --user-group --create-home --home-dir /home/mlops mlops \\
    && mkdir -p {IMAGE_DATA} && chown {USER_ID}:{USER_ID} {IMAGE_DATA}
WORKDIR /app
COPY requirements.txt /app/requirements.txt
{copy_wheel}RUN {install} \\
    && mlops-nb serve --help >/dev/null
COPY model/ {found.model_dir}/
# The files must be the ones exported; the server checks the model's sha256 again at start.
RUN cd {found.model_dir} && printf '{checks}' | sha256sum -c -
USER {USER_ID}:{USER_ID}
ENV MLOPS_NB_LOG={found.log}
EXPOSE {found.port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD {health}
CMD {json.dumps(found.command(), ensure_ascii=False)}
"""
    ignore = "# Only what the Dockerfile copies.\n*\n!requirements.txt\n!model/\n!wheels/\n"
    source_note = (
        f"the source run {found.run_id[:8]} recorded" if found.run_id else "this machine has"
    )
    lines = [
        f"{found.header('#')}",
        "# The packages the model needs to load and serve, at the versions",
        f"# {source_note} (Python {found.python}); the Dockerfile installs them first.",
    ]
    for name, version in found.pins.items():
        note = "  # not recorded by the run: this machine's" if name in found.unrecorded else ""
        lines.append(f"{name}=={version}{note}")
    return {
        "Dockerfile": dockerfile,
        ".dockerignore": ignore,
        "requirements.txt": "\n".join(lines) + "\n",
    }


@register("docker", "docker build -t {image} {out} && docker run -p {port}:{port} {image}")
def _docker(found: Deployment) -> dict[str, str]:
    """The image alone."""
    return _image_files(found)


@register("compose", "docker compose -f {out}/compose.yaml up -d --build")
def _compose(found: Deployment) -> dict[str, str]:
    """The image as a service: port, health check, restart policy, a volume for the log."""
    health = json.dumps(["CMD", *found.health_check()], ensure_ascii=False)
    compose = f"""{found.header("#")}
# Requests and answers are recorded in the log on the volume {found.slug}-requests
# (MLOPS_NB_LOG). Start it with: docker compose -f compose.yaml up -d --build
services:
  {found.slug}:
    build:
      context: .
    image: {_quoted(found.image)}
    ports:
      - {_quoted(f"{found.port}:{found.port}")}
    environment:
      MLOPS_NB_LOG: {_quoted(found.log)}
    volumes:
      - {_quoted(f"{found.slug}-requests:{IMAGE_DATA}")}
    restart: unless-stopped
    healthcheck:
      test: {health}
      interval: 30s
      timeout: 5s
      retries: 3
      start_period: 30s
volumes:
  {found.slug}-requests: {{}}
"""
    return {**_image_files(found), "compose.yaml": compose}


@register(
    "kubernetes",
    "docker build -t {image} {out} && docker push {image} && kubectl apply -f {out}/kubernetes/",
)
def _kubernetes(found: Deployment) -> dict[str, str]:
    """A Deployment (probes, resources, non-root, Prometheus annotations), Service and HPA."""
    labels = _yaml_map(found.labels, 4)
    pod_labels = _yaml_map(found.labels, 8)
    selector = _yaml_map({"app.kubernetes.io/name": found.slug}, 6)
    cpu_limit = str(found.workers)
    header = found.header("#")
    deployment = f"""{header}
# The image is built from ../Dockerfile and pushed to a registry your cluster can pull from;
# if that registry is private, create an image pull secret yourself (kubectl create secret
# docker-registry ...) and add it as imagePullSecrets: this file holds no credentials.
# Requests are recorded in the log at {found.log}, on an emptyDir volume (one per pod):
# mount a PersistentVolumeClaim there to keep them.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {found.slug}
  labels:
{labels}
spec:
  replicas: {found.replicas}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
{selector}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
{pod_labels}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {_quoted(str(found.port))}
        prometheus.io/path: /metrics
        mlops-nb/model-sha256: {_quoted(found.sha256.get("model.skops", ""))}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: {USER_ID}
        runAsGroup: {USER_ID}
        fsGroup: {USER_ID}
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: server
          image: {_quoted(found.image)}
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: {found.port}
          env:
            - name: MLOPS_NB_LOG
              value: {_quoted(found.log)}
          startupProbe:
            httpGet:
              path: /ping
              port: http
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /ping
              port: http
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          resources:
            requests:
              cpu: 500m
              memory: 512Mi
            limits:
              cpu: {_quoted(cpu_limit)}
              memory: 2Gi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: requests
              mountPath: {IMAGE_DATA}
            - name: tmp
              mountPath: /tmp
            - name: home
              mountPath: /home/mlops
      volumes:
        - name: requests
          emptyDir: {{}}
        - name: tmp
          emptyDir: {{}}
        - name: home
          emptyDir: {{}}
"""
    service = f"""{header}
apiVersion: v1
kind: Service
metadata:
  name: {found.slug}
  labels:
{labels}
spec:
  type: ClusterIP
  selector:
{selector}
  ports:
    - name: http
      port: 80
      targetPort: http
"""
    autoscaler = f"""{header}
# {found.replicas} to {found.max_replicas} pods by CPU use (the cluster needs a metrics server).
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {found.slug}
  labels:
{labels}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {found.slug}
  minReplicas: {found.replicas}
  maxReplicas: {found.max_replicas}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {found.cpu_target}
"""
    return {
        **_image_files(found),
        "kubernetes/deployment.yaml": deployment,
        "kubernetes/service.yaml": service,
        "kubernetes/hpa.yaml": autoscaler,
    }


# ---------------------------------------------------------------------- small helpers
def _yaml_map(values: Mapping[str, str], indent: int) -> str:
    return "\n".join(f"{' ' * indent}{key}: {_quoted(value)}" for key, value in values.items())


def _slug(name: str) -> str:
    """A model name as a Kubernetes (DNS-1123) and image name: ``[a-z0-9-]``, at most 40."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40].rstrip("-") or "model"


def _label_value(text: str) -> str:
    """A Kubernetes label value: alphanumerics at both ends, ``-_.`` inside, at most 63."""
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text[:63])


def _shown(path: Path) -> str:
    return _relative(path, Path.cwd())
