"""``mlops-nb deploy``: every file is read by the tool that will read it, and the image's start
command, run here as a real process (no image can be built: no base image can be pulled),
serves the exported model.

The model's run records Python 3.11.9, scipy 1.17.0 and no skops on purpose: the image must
follow the record (base image, pins), not this machine, and fall back to this machine's
version, saying so, only for what was not recorded.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import stop_process, subprocess_env
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

from mlops_nb.cli import DEPLOY_TARGETS
from mlops_nb.deploy import TARGETS, DeployError, write_deployment
from mlops_nb.registry.load import file_sha256

BIN = Path(sys.executable).parent
RECORDED = {
    "python": "3.11.9",
    "scikit-learn": metadata.version("scikit-learn"),
    "numpy": metadata.version("numpy"),
    "scipy": "1.17.0",
    "pandas": metadata.version("pandas"),
}
WHEEL = "mlops_nb-0.1.0-py3-none-any.whl"
PIPES = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


class Deployed:
    """A project with a registered model and, per target, the folder deploy wrote."""

    def __init__(self, project: Path, pipeline, frame: pd.DataFrame, sha256: str):
        self.project, self.pipeline, self.frame, self.sha256 = project, pipeline, frame, sha256
        self.out: dict[str, Path] = {}
        self.stdout: dict[str, str] = {}


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlops_nb.cli", *args], cwd=cwd,
                            env=subprocess_env(), **PIPES)  # fmt: skip


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Deployed:
    """A fitted pipeline registered as churn@champion, deployed to every target at once."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mlops_nb
    from mlops_nb.registry.register import register_pipeline

    project = tmp_path_factory.mktemp("project")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"tenure": rng.uniform(0, 60, 80), "charges": rng.uniform(10, 120, 80)})
    labels = (frame["tenure"] < 20).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)
    log = mlops_nb.open_log(project / ".mlops" / "log.duckdb")
    with log.start_run(experiment="churn") as run:
        for name, version in RECORDED.items():
            kind = "python" if name == "python" else "package"
            row = {"run_id": run.run_id, "kind": kind, "name": name, "version": version,
                   "created_at": time.time()}  # fmt: skip
            run.log_record("environment", row)
    record = register_pipeline(log, "churn", pipeline, training_frame=frame, run_id=run.run_id,
                               alias="champion")  # fmt: skip
    log.close()
    deployed = Deployed(project, pipeline, frame, record["artifact_sha256"])
    with zipfile.ZipFile(project / WHEEL, "w") as wheel:  # a stand-in: deploy only copies it
        metadata_text = "Name: mlops-nb\nVersion: 0.1.0\nProvides-Extra: serve\n"
        wheel.writestr("mlops_nb-0.1.0.dist-info/METADATA", metadata_text)
    install = ["--install", "pip install mlops-nb==0.1.0"]
    jobs = {
        "docker": ["--wheel", WHEEL, "--workers", "2"],
        "compose": install,
        "kubernetes": [*install, "--image", "reg.example/ml/churn:1", "--replicas", "3",
                       "--max-replicas", "6", "--cpu-target", "60", "--port", "9000"],
    }  # fmt: skip
    started = {}
    for target, args in jobs.items():
        deployed.out[target] = project / "deploy" / target
        out = ["--out", str(deployed.out[target])]
        started[target] = _cli(["deploy", "churn@champion", "--target", target, *out, *args],
                               project)  # fmt: skip
    for target, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"{target}: {stderr}"
        deployed.stdout[target] = stdout
    return deployed


def _dockerfile(out: Path) -> DockerfileParser:
    return DockerfileParser(path=str(out / "Dockerfile"))


def _instructions(parsed: DockerfileParser, kind: str) -> list[str]:
    return [i["value"] for i in parsed.structure if i["instruction"] == kind]


# ---------------------------------------------------------------------- the files
def test_every_cli_target_has_a_writer():
    assert set(TARGETS) == set(DEPLOY_TARGETS)


def test_the_command_exports_the_model_and_says_how_to_start_it(deployed):
    lines = deployed.stdout["docker"].splitlines()
    assert lines[0] == "exported churn version 1 to deploy/docker/model"
    assert {"wrote deploy/docker/Dockerfile", "wrote deploy/docker/requirements.txt"} <= set(lines)
    assert "note: not in the recorded environment of the model's run, pinned to this machine's " \
           "versions: skops" in lines  # fmt: skip
    assert lines[-1] == "to start: docker build -t mlops-nb-churn:1 deploy/docker && " \
                        "docker run -p 8080:8080 mlops-nb-churn:1"  # fmt: skip
    assert "kubectl apply -f deploy/kubernetes/kubernetes/" in deployed.stdout["kubernetes"]
    model = deployed.out["docker"] / "model"
    manifest = json.loads((model / "manifest.json").read_text())
    assert (manifest["name"], manifest["version"], manifest["file"]) == ("churn", 1, "model.skops")
    assert manifest["sha256"] == file_sha256(model / "model.skops") == deployed.sha256


def test_the_dockerfile_has_the_recorded_python_a_non_root_user_a_healthcheck_and_the_cmd(
    deployed,
):
    out = deployed.out["docker"]
    parsed = _dockerfile(out)
    assert parsed.baseimage == "python:3.11.9-slim"  # the recorded Python, not this one
    (user,) = _instructions(parsed, "USER")
    assert user.split(":")[0] not in ("0", "root") and user == "10001:10001"
    (health,) = _instructions(parsed, "HEALTHCHECK")
    assert "--interval=" in health and "127.0.0.1:8080/health" in health
    assert _instructions(parsed, "EXPOSE") == ["8080"]
    command = ["mlops-nb", "serve", "--model-dir", "/models/churn", "--host", "0.0.0.0",
               "--port", "8080", "--workers", "2"]  # fmt: skip
    assert json.loads(parsed.cmd) == command
    assert "model/ /models/churn/" in _instructions(parsed, "COPY")
    assert parsed.envs["MLOPS_NB_LOG"] == "/data/log.duckdb"
    # mlops-nb from the wheel copied into the build folder, in one resolve with the pins
    assert (out / "wheels" / WHEEL).read_bytes() == (deployed.project / WHEEL).read_bytes()
    assert "wheels/ /app/wheels/" in _instructions(parsed, "COPY")
    install = next(run for run in _instructions(parsed, "RUN") if "requirements.txt" in run)
    assert f"pip install -r /app/requirements.txt '/app/wheels/{WHEEL}[serve]'" in install
    assert (out / ".dockerignore").read_text().split("\n")[1:5] == [
        "*", "!requirements.txt", "!model/", "!wheels/"]  # fmt: skip
    # --install: the given command, after the pins, which it may not move
    other = _instructions(_dockerfile(deployed.out["compose"]), "RUN")
    assert any("PIP_CONSTRAINT=/app/requirements.txt" in run and "pip install mlops-nb==0.1.0"
               in run for run in other)  # fmt: skip
    assert not (deployed.out["compose"] / "wheels").exists()


def test_the_pinned_versions_are_the_recorded_ones(deployed):
    text = (deployed.out["docker"] / "requirements.txt").read_text()
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line.split(" #")[0])
            (specifier,) = requirement.specifier
            assert specifier.operator == "=="
            pins[requirement.name] = specifier.version
    assert set(pins) == {"scikit-learn", "numpy", "scipy", "pandas", "skops"}
    assert {name: pins[name] for name in RECORDED if name != "python"} == {
        name: version for name, version in RECORDED.items() if name != "python"}  # fmt: skip
    assert pins["skops"] == metadata.version("skops")  # not recorded: this machine's, and said
    assert re.search(r"^skops==\S+  # not recorded by the run", text, re.MULTILINE)
    assert "run " in text and "(Python 3.11.9)" in text


def _sha256_step(out: Path, model: Path) -> subprocess.CompletedProcess:
    """The Dockerfile's build-time check, run by sh with the image's folder mapped to ``model``."""
    (step,) = [r for r in _instructions(_dockerfile(out), "RUN") if "sha256sum -c" in r]
    command = step.replace("/models/churn", str(model))
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)


def test_the_build_checks_the_sha256_of_the_model_files(deployed, tmp_path):
    out = deployed.out["docker"]
    checked = _sha256_step(out, out / "model")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == ["model.skops: OK", "manifest.json: OK"]
    tampered = shutil.copytree(out / "model", tmp_path / "model")
    with open(tampered / "model.skops", "ab") as handle:
        handle.write(b"\0")
    refused = _sha256_step(out, tampered)
    assert refused.returncode != 0 and "model.skops: FAILED" in refused.stdout


def _tool(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_kubernetes_manifests_validate_and_a_broken_one_does_not(deployed, tmp_path):
    folder = deployed.out["kubernetes"] / "kubernetes"
    files = [folder / "deployment.yaml", folder / "service.yaml", folder / "hpa.yaml"]
    broken = tmp_path / "hpa.yaml"
    broken.write_text(files[2].read_text().replace("Utilization: 60", "Utilization: high"))
    ok = _tool("kubernetes-validate", "--strict", *files)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = _tool("kubernetes-validate", "--strict", broken)
    assert refused.returncode == 1 and "averageUtilization" in refused.stdout + refused.stderr

    deployment, service, hpa = (yaml.safe_load(f.read_text()) for f in files)
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert labels["mlops-nb/model"] == "churn" and labels["mlops-nb/model-version"] == "1"
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9000",
        "prometheus.io/path": "/metrics", "mlops-nb/model-sha256": deployed.sha256}  # fmt: skip
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the image's USER
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "reg.example/ml/churn:1"
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector and selector.items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert json.loads(_dockerfile(deployed.out["kubernetes"]).cmd)[7] == "9000"


def test_compose_file_matches_the_compose_spec(deployed):
    out = deployed.out["compose"]
    result = _tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec",
                   out / "compose.yaml")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    service = compose["services"]["churn"]
    assert (out / service["build"]["context"] / "Dockerfile").is_file()
    assert service["ports"] == ["8080:8080"] and service["restart"] == "unless-stopped"
    assert service["environment"] == {"MLOPS_NB_LOG": "/data/log.duckdb"}
    assert service["volumes"] == ["churn-requests:/data"] and "churn-requests" in compose["volumes"]
    health = _instructions(_dockerfile(out), "HEALTHCHECK")[0]
    assert service["healthcheck"]["test"] == ["CMD", *json.loads(health.split(" CMD ", 1)[1])]


def test_a_refused_deploy_is_one_line_and_writes_nothing(deployed):
    args = ["deploy", "churn@staging", "--target", "docker", "--out", "refused"]
    result = _cli(args, deployed.project)
    _, stderr = result.communicate(timeout=120)
    assert result.returncode == 2
    assert stderr == "mlops-nb deploy: model 'churn' has no alias 'staging': see mlops-nb " \
                     "models list\n"  # fmt: skip
    assert not (deployed.project / "refused").exists()


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"replicas": 4, "max_replicas": 2}, "--max-replicas 2 is below --replicas 4"),
     ({"port": 70000}, "--port 70000 is out of range (1..65535)"),
     ({"wheel": "x.whl"}, "--wheel x.whl: not a mlops-nb wheel file"),
     ({"install": "pip install a\npip install b"}, "--install must be one shell command line"),
     ({"image": "my image"}, "bad image name 'my image'")],
)  # fmt: skip
def test_bad_options_are_refused_before_anything_is_written(deployed, options, reason):
    import mlops_nb

    log = mlops_nb.open_log(deployed.project / ".mlops" / "log.duckdb", create=False)
    out = deployed.project / "refused-options"
    with pytest.raises(DeployError, match=re.escape(reason)):
        write_deployment(log, "churn@champion", "kubernetes", out=out, **options)
    log.close()
    assert not out.exists()


# ---------------------------------------------------------------------- the start command
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_command(out: Path, model: Path, data: Path, port: int) -> tuple[list[str], dict]:
    """The image's CMD and ENV with its folders mapped here, on a loopback port."""
    parsed = _dockerfile(out)
    copies = {}
    for copy in _instructions(parsed, "COPY"):
        source, target = copy.split()
        copies[target.rstrip("/")] = source.rstrip("/")
    words = json.loads(parsed.cmd)
    words[0] = str(BIN / words[0])
    at = words.index("--model-dir") + 1
    assert copies[words[at]] == "model"  # the exported folder, the only one the command names
    words[at] = str(model)
    words[words.index("--host") + 1] = "127.0.0.1"
    words[words.index("--port") + 1] = str(port)
    log = parsed.envs["MLOPS_NB_LOG"].replace("/data", str(data))
    return words, subprocess_env(MLOPS_NB_LOG=log)


def _get(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_image_start_command_serves_the_exported_model(deployed, tmp_path):
    out = deployed.out["docker"]
    port = _free_port()
    command, env = _start_command(out, out / "model", tmp_path / "data", port)
    (tmp_path / "data").mkdir()
    server = subprocess.Popen(command, env=env, cwd=tmp_path, **PIPES)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if _get(f"{base}/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /ping in 90 s"
            time.sleep(0.3)
        rows = deployed.frame.head(5)
        body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
        status, answer = _get(f"{base}/invocations", body)
        assert status == 200, answer
        assert json.loads(answer)["predictions"] == deployed.pipeline.predict(rows).tolist()
        # the image's HEALTHCHECK, run as Docker would, against this port
        health = json.loads(_instructions(_dockerfile(out), "HEALTHCHECK")[0].split(" CMD ", 1)[1])
        health[0] = sys.executable
        health[-1] = health[-1].replace(":8080/", f":{port}/")
        assert subprocess.run(health, timeout=30).returncode == 0
    finally:
        stop_process(server, timeout=30)


def test_a_tampered_model_file_stops_the_start_command_with_one_line(deployed, tmp_path):
    out = deployed.out["docker"]
    tampered = shutil.copytree(out / "model", tmp_path / "model")
    content = bytearray((tampered / "model.skops").read_bytes())
    content[len(content) // 2] ^= 0xFF
    (tampered / "model.skops").write_bytes(bytes(content))
    command, env = _start_command(out, tampered, tmp_path, _free_port())
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "sha256" in result.stderr, result.stderr
