"""The REST API of the server extension, through a real Jupyter server (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest
import tornado.httpclient
from jupyter_server.auth.authorizer import Authorizer

import mlops_nb

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parent.parent
CHURN = REPO / "example_notebooks" / "churn.ipynb"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"mlops_nb": True}}}


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    """A log with four runs: two finished, one failed, one running (with progress tags)."""
    path = tmp_path / "logdir" / "log.duckdb"
    monkeypatch.setenv("MLOPS_NB_LOG", str(path))
    log = mlops_nb.open_log(path)
    ids = {}
    for name, lr, acc, status in (
        ("slow", 0.01, 0.81, "finished"),
        ("fast", 0.3, 0.93, "finished"),
        (HOSTILE, 0.1, 0.5, "failed"),
    ):
        run = log.start_run("churn", name, params={"lr": lr, "model": "rf", "depth": 4})
        for step, value in enumerate((acc - 0.2, acc - 0.1, acc)):
            run.log_metric("acc", value, step=step)
        if name == "fast":
            artifact = tmp_path / "model.txt"
            artifact.write_text("the fitted model")
            ids["artifact"] = run.log_artifact(artifact)
        run.end(status)
        ids[name] = run.run_id
        time.sleep(0.01)
    other = log.start_run("other", "live", params={"lr": 0.2})
    other.set_tags({"mlops.progress": "3/10", "mlops.stage": "train"})
    other.detach()
    ids["live"] = other.run_id
    log.flush()
    return ids


@pytest.fixture
def raw_fetch(http_server_client, jp_http_port, jp_base_url, jp_auth_header):
    """GET a path sent exactly as written (jp_fetch would quote the % of ``..%2F``)."""

    async def fetch(path: str, token: bool = True) -> tornado.httpclient.HTTPResponse:
        url = f"http://localhost:{jp_http_port}{jp_base_url}mlops-nb/api/{path}"
        headers = jp_auth_header if token else {}
        client = tornado.httpclient.AsyncHTTPClient()
        return await client.fetch(url, headers=headers, raise_error=False)

    return fetch


async def get_json(jp_fetch, *parts, **params):
    response = await jp_fetch("mlops-nb", "api", *parts, params=params)
    assert response.code == 200
    return json.loads(response.body)


async def error_of(jp_fetch, *parts, method="GET", body=None, **params):
    """(status, message) of a request the API must refuse."""
    with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
        await jp_fetch("mlops-nb", "api", *parts, method=method, body=body, params=params)
    payload = json.loads(caught.value.response.body)
    assert payload["message"] and "\n" not in payload["message"]
    return caught.value.code, payload["message"]


def tiny_notebook(folder: Path, name: str = "tiny.ipynb") -> str:
    """A notebook with one typed string parameter, quick to run."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            'label: str = "plain"  # any text', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell("print(label)"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / name)
    return name


async def post(jp_fetch, *parts, body) -> tornado.httpclient.HTTPResponse:
    return await jp_fetch("mlops-nb", "api", *parts, method="POST", body=json.dumps(body))


async def ended_processes(jp_fetch, seconds: float = 120) -> list[dict]:
    """GET /pipeline/runs until no listed process is running."""
    deadline = time.monotonic() + seconds
    while True:
        processes = await get_json(jp_fetch, "pipeline", "runs")
        if all(p["state"] != "running" for p in processes) or time.monotonic() > deadline:
            return processes
        await asyncio.sleep(0.5)


async def test_health_says_where_the_log_is(jp_fetch, seeded, tmp_path):
    health = await get_json(jp_fetch, "health")
    log = str(tmp_path / "logdir" / "log.duckdb")
    assert health == {"ok": True, "version": mlops_nb.__version__, "log": log, "log_exists": True}


async def test_no_log_yet_gives_empty_lists(jp_fetch, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_NB_LOG", str(tmp_path / "none" / "log.duckdb"))
    assert (await get_json(jp_fetch, "health"))["log_exists"] is False
    assert await get_json(jp_fetch, "experiments") == []
    assert (await get_json(jp_fetch, "runs"))["runs"] == []
    assert await get_json(jp_fetch, "progress") == []


async def test_experiments_have_run_counts(jp_fetch, seeded):
    experiments = await get_json(jp_fetch, "experiments")
    assert {e["experiment"]: e["runs"] for e in experiments} == {"churn": 3, "other": 1}


async def test_runs_are_paged_and_sorted(jp_fetch, seeded):
    first = await get_json(jp_fetch, "runs", experiment="churn", sort="params.lr", order="asc",
                           page="1", page_size="2")  # fmt: skip
    assert (first["total"], first["page"], first["page_size"]) == (3, 1, 2)
    assert [r["name"] for r in first["runs"]] == ["slow", HOSTILE]
    assert first["runs"][0]["params"] == {"lr": 0.01, "model": "rf", "depth": 4}
    assert first["runs"][0]["metrics"]["acc"] == pytest.approx(0.81)
    second = await get_json(jp_fetch, "runs", experiment="churn", sort="params.lr", order="asc",
                            page="2", page_size="2")  # fmt: skip
    assert [r["name"] for r in second["runs"]] == ["fast"]
    by_acc = await get_json(jp_fetch, "runs", sort="metrics.acc", order="desc")
    assert [r["name"] for r in by_acc["runs"]] == ["fast", "slow", HOSTILE, "live"]


async def test_structured_filters_combine_with_and(jp_fetch, seeded):
    conditions = [{"field": "params.lr", "op": "<", "value": 0.2},
                  {"field": "metrics.acc", "op": ">=", "value": 0.6}]  # fmt: skip
    found = await get_json(jp_fetch, "runs", filter=json.dumps(conditions))
    assert [r["name"] for r in found["runs"]] == ["slow"]
    failed = await get_json(
        jp_fetch, "runs", filter=json.dumps([{"field": "status", "op": "=", "value": "failed"}])
    )
    assert [r["name"] for r in failed["runs"]] == [HOSTILE]
    assert [r["name"] for r in (await get_json(jp_fetch, "runs", status="failed"))["runs"]] == [
        HOSTILE
    ]
    quoted = [{"field": "name", "op": "contains", "value": "x' OR 1=1 --"}]
    assert (await get_json(jp_fetch, "runs", filter=json.dumps(quoted)))["total"] == 0
    onerror = [{"field": "name", "op": "contains", "value": "ONERROR"}]
    assert (await get_json(jp_fetch, "runs", filter=json.dumps(onerror)))["total"] == 1


async def test_running_runs_show_their_progress(jp_fetch, seeded):
    live = await get_json(jp_fetch, "runs", stage="train")
    assert [(r["name"], r["progress"], r["stage"]) for r in live["runs"]] == [
        ("live", "3/10", "train")
    ]
    progress = await get_json(jp_fetch, "progress")
    assert [(p["run_id"], p["progress"], p["stage"]) for p in progress] == [
        (seeded["live"], "3/10", "train")
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter": json.dumps([{"field": "params.lr", "op": "LIKE", "value": 1}])}, "op"),
        ({"filter": json.dumps([{"field": "secret; DROP", "op": "=", "value": 1}])}, "field"),
        ({"filter": json.dumps([{"field": "params.x y", "op": "=", "value": 1}])}, "name"),
        ({"filter": json.dumps([{"field": "params.nope", "op": "=", "value": 1}])}, "nope"),
        ({"filter": json.dumps([{"field": "params.lr", "op": "=", "value": [1]}])}, "value"),
        ({"filter": "status = 'failed'"}, "JSON"),
        ({"sort": "random()"}, "field"),
        ({"order": "sideways"}, "asc"),
        ({"page": "abc"}, "integer"),
        ({"page_size": "501"}, "500"),
    ],
)
async def test_bad_run_queries_are_400_with_a_message(jp_fetch, seeded, params, expected):
    code, message = await error_of(jp_fetch, "runs", **params)
    assert code == 400
    assert expected in message


async def test_one_run_has_everything_recorded(jp_fetch, seeded):
    run = await get_json(jp_fetch, "runs", seeded["fast"][:10])
    assert run["info"]["run_id"] == seeded["fast"]
    assert run["params"] == {"depth": 4, "lr": 0.3, "model": "rf"}
    assert run["metrics"]["acc"] == pytest.approx(0.93)
    assert [p["step"] for p in run["metric_history"]["acc"]] == [0, 1, 2]
    assert [a["sha256"] for a in run["artifacts"]] == [seeded["artifact"]]
    assert run["artifacts"][0]["url"] == f"artifacts/{seeded['fast']}/{seeded['artifact']}"
    for key in ("cells", "datasets", "lineage", "models", "notes", "environment"):
        assert run[key] == []
    hostile = await get_json(jp_fetch, "runs", seeded[HOSTILE])
    assert hostile["info"]["name"] == HOSTILE


async def test_unknown_run_is_404(jp_fetch, seeded):
    assert (await error_of(jp_fetch, "runs", "0123abcd"))[0] == 404


async def test_compare_flags_params_that_differ(jp_fetch, seeded):
    ids = [seeded["slow"], seeded["fast"]]
    compared = await get_json(jp_fetch, "compare", ids=",".join(ids))
    params = {p["name"]: p for p in compared["params"]}
    assert params["lr"]["values"] == {ids[0]: 0.01, ids[1]: 0.3}
    assert params["lr"]["differs"] is True
    assert params["model"]["differs"] is False
    assert compared["metrics"]["acc"][ids[1]] == pytest.approx(0.93)
    assert len(compared["metric_history"]["acc"][ids[0]]) == 3
    assert (await error_of(jp_fetch, "compare", ids=f"{ids[0]},nothere"))[0] == 404
    assert (await error_of(jp_fetch, "compare", ids="a'b"))[0] == 400


async def test_artifact_download_and_traversal_refused(jp_fetch, raw_fetch, seeded):
    fast, sha = seeded["fast"], seeded["artifact"]
    response = await jp_fetch("mlops-nb", "api", "artifacts", fast, sha)
    assert response.body == b"the fitted model"
    assert "model.txt" in response.headers["Content-Disposition"]
    for bad in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "abc"):
        response = await raw_fetch(f"artifacts/{fast}/{bad}")
        assert response.code == 400
        assert json.loads(response.body)["message"]
    assert (await error_of(jp_fetch, "artifacts", seeded["slow"], sha))[0] == 404
    assert (await error_of(jp_fetch, "artifacts", fast, "0" * 64))[0] == 404


async def test_docs_files_refuse_paths_outside_the_docs_folder(raw_fetch, seeded, tmp_path):
    (tmp_path / "logdir" / "secret.txt").write_text("no")
    for bad in ("..%2Fsecret.txt", "%2Fetc%2Fpasswd", "abc%2F..%2F..%2Fsecret.txt",
                "..%2F..%2Fetc%2Fpasswd"):  # fmt: skip
        response = await raw_fetch(f"docs-files/{bad}")
        assert response.code == 400, bad
        assert json.loads(response.body)["message"]
    assert (await raw_fetch("docs-files/nothing.html")).code == 404


async def test_requests_without_a_token_are_refused(
    jp_fetch, raw_fetch, jp_http_port, jp_base_url, seeded
):
    await get_json(jp_fetch, "health")  # the server is up and answers with the token
    for path in ("health", "runs", f"runs/{seeded['fast']}", "progress"):
        assert (await raw_fetch(path, token=False)).code == 403
        assert (await raw_fetch(path, token=True)).code == 200
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"http://localhost:{jp_http_port}{jp_base_url}mlops-nb/api/pipeline/runs",
        method="POST", body="{}", raise_error=False,
    )  # fmt: skip
    assert response.code == 403


async def test_pipeline_parameters_are_the_notebooks_typed_parameters(jp_fetch, jp_root_dir):
    shutil.copy(CHURN, jp_root_dir / "churn.ipynb")
    parameters = await get_json(jp_fetch, "pipeline", "parameters", notebook="churn.ipynb")
    by_name = {p["name"]: p for p in parameters}
    assert by_name["n_customers"]["type"] == "int"
    assert by_name["n_customers"]["default"] == 10000
    assert by_name["n_estimators"]["help"] == "trees in the random forest"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"notebook": "../outside.ipynb"}, "'..'"),
        ({"notebook": "/etc/passwd"}, "relative"),
        ({"notebook": "missing.ipynb"}, "no notebook"),
        ({"notebook": "churn.ipynb", "parameters": {"n_customers": "many"}}, "n_customers"),
        ({"notebook": "churn.ipynb", "parameters": {"nope": 1}}, "unknown parameter"),
        ({"notebook": "churn.ipynb", "parameters": [1]}, "JSON object"),
    ],
)
async def test_bad_pipeline_requests_are_400(jp_fetch, jp_root_dir, seeded, body, expected):
    shutil.copy(CHURN, jp_root_dir / "churn.ipynb")
    code, message = await error_of(
        jp_fetch, "pipeline", "runs", method="POST", body=json.dumps(body)
    )
    assert code == 400
    assert expected in message


async def test_bad_json_body_is_400(jp_fetch, seeded):
    code, message = await error_of(jp_fetch, "docs", method="POST", body="{not json")
    assert (code, "not JSON" in message) == (400, True)


async def test_a_pipeline_run_started_from_the_api_finishes_and_gets_docs(
    jp_fetch, jp_root_dir, seeded, tmp_path
):
    shutil.copy(CHURN, jp_root_dir / "churn.ipynb")
    body = {"notebook": "churn.ipynb", "experiment": "from-api",
            "parameters": {"n_customers": 1500, "n_estimators": 20}}  # fmt: skip
    response = await jp_fetch(
        "mlops-nb", "api", "pipeline", "runs", method="POST", body=json.dumps(body)
    )
    assert response.code == 202
    started = json.loads(response.body)
    assert started["started"] is True and started["pid"] > 0

    deadline = time.monotonic() + 90
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = (await get_json(jp_fetch, "runs", experiment="from-api"))["runs"]
        if runs and runs[0]["status"] != "running":
            break
        await asyncio.sleep(1)
    assert [r["status"] for r in runs] == ["finished"]
    assert runs[0]["params"]["n_customers"] == 1500
    assert runs[0]["params"]["n_estimators"] == 20
    run_id = runs[0]["run_id"]

    response = await jp_fetch(
        "mlops-nb", "api", "docs", method="POST",
        body=json.dumps({"notebook": "churn.ipynb", "run_id": run_id}),
    )  # fmt: skip
    url = json.loads(response.body)["url"]
    assert url == f"docs-files/{run_id[:8]}/churn.html"
    page = await jp_fetch("mlops-nb", "api", *url.split("/"))
    assert page.code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert run_id in page.body.decode()
    detail = await get_json(jp_fetch, "runs", run_id)
    assert detail["docs"] == url
    assert detail["cells"] and {c["status"] for c in detail["cells"]} == {"ok"}
    assert {"train", "evaluate"} <= {c["stage"] for c in detail["cells"]}
    assert "python" in {row["kind"] for row in detail["environment"]}
    assert detail["notebook"] == "churn.ipynb"
    nodes = {node["key"]: node for node in detail["graph"]["nodes"]}
    assert nodes["s:ingest"]["layer"] == 0 and nodes["s:ingest"]["kind"] == "stage"
    assert any(node["kind"] == "dataset" for node in nodes.values())
    for start, end in detail["graph"]["edges"]:  # every edge points forward
        assert nodes[start]["layer"] < nodes[end]["layer"]
    processes = await ended_processes(jp_fetch)
    assert [
        (p["pid"], p["notebook"], p["state"], p["returncode"], p["error"]) for p in processes
    ] == [(started["pid"], "churn.ipynb", "finished", 0, None)]
    assert await get_json(jp_fetch, "pipeline", "runs") == processes  # reading forgets nothing

    response = await jp_fetch(
        "mlops-nb", "api", "docs", method="POST", body=json.dumps({"notebook": "churn.ipynb"})
    )
    assert json.loads(response.body)["url"] == url  # without run_id: the latest finished run


async def test_schedule_writes_files_inside_the_root(jp_fetch, jp_root_dir, seeded):
    shutil.copy(CHURN, jp_root_dir / "churn.ipynb")
    body = {"notebook": "churn.ipynb", "cron": "30 5 * * 1-5", "target": "cron",
            "out": "schedules/cron", "parameters": {"n_estimators": 50}}  # fmt: skip
    response = await jp_fetch("mlops-nb", "api", "schedule", method="POST", body=json.dumps(body))
    answer = json.loads(response.body)
    assert answer["files"] and all(f.startswith("schedules/cron/") for f in answer["files"])
    for name in answer["files"]:
        assert (jp_root_dir / name).is_file()
    assert "n_estimators" in "".join((jp_root_dir / f).read_text() for f in answer["files"])
    assert len(answer["next_runs"]) == 5 and answer["next_runs"][0][:3] in ("Mon", "Tue", "Wed",
                                                                         "Thu", "Fri")  # fmt: skip
    schedules = mlops_nb.open_log().sql("SELECT cron, target FROM schedules")
    assert schedules.to_dict(orient="records") == [{"cron": "30 5 * * 1-5", "target": "cron"}]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cron": "61 * * * *"}, "bad cron expression"),
        ({"target": "cronn"}, "unknown target"),
        ({"out": "../elsewhere"}, "'..'"),
        ({"out": "/tmp/x"}, "relative"),
        ({"out": ""}, "out must be"),
        ({"parameters": {"n_estimators": "lots"}}, "n_estimators"),
    ],
)
async def test_bad_schedule_requests_are_400(jp_fetch, jp_root_dir, seeded, change, expected):
    shutil.copy(CHURN, jp_root_dir / "churn.ipynb")
    body = {"notebook": "churn.ipynb", "cron": "0 6 * * *", "target": "cron", "out": "s"}
    code, message = await error_of(
        jp_fetch, "schedule", method="POST", body=json.dumps({**body, **change})
    )
    assert (code, expected in message) == (400, True), message
    assert not (jp_root_dir / "s").exists()


def test_openapi_documents_every_route():
    import re

    import yaml

    from mlops_nb.server.handlers import ROUTES

    spec = yaml.safe_load((REPO / "mlops_nb" / "server" / "openapi.yaml").read_text())
    documented = {re.sub(r"\{[^}]+\}", "X", path) for path in spec["paths"]}
    routed = {"/" + re.sub(r"\([^)]*\)", "X", pattern) for pattern, _ in ROUTES}
    assert routed == documented


async def test_docs_without_run_id_needs_a_finished_run_of_the_notebook(
    jp_fetch, jp_root_dir, seeded
):
    shutil.copy(CHURN, jp_root_dir / "never-run.ipynb")
    code, message = await error_of(
        jp_fetch, "docs", method="POST", body=json.dumps({"notebook": "never-run.ipynb"})
    )
    assert code == 400
    assert "no finished run of never-run.ipynb" in message


async def test_a_parameter_value_starting_with_a_dash_is_run_and_recorded(
    jp_fetch, jp_root_dir, seeded, tmp_path
):
    notebook = tiny_notebook(jp_root_dir)
    body = {"notebook": notebook, "experiment": "dashes", "parameters": {"label": "--help -p x"}}
    response = await post(jp_fetch, "pipeline", "runs", body=body)
    assert response.code == 202
    pid = json.loads(response.body)["pid"]
    processes = await ended_processes(jp_fetch)
    assert [(p["pid"], p["state"], p["returncode"]) for p in processes] == [(pid, "finished", 0)]
    runs = (await get_json(jp_fetch, "runs", experiment="dashes"))["runs"]
    assert [(r["status"], r["params"]["label"]) for r in runs] == [("finished", "--help -p x")]
    assert processes[0]["log"] == str(tmp_path / "logdir" / "server-runs" / f"{pid}.log")
    assert "finished" in Path(processes[0]["log"]).read_text()


async def test_a_child_that_dies_before_recording_its_run_is_reported(
    jp_fetch, jp_root_dir, tmp_path, monkeypatch
):
    broken = tmp_path / "broken" / "log.duckdb"
    broken.parent.mkdir()
    broken.write_text("not a database")
    monkeypatch.setenv("MLOPS_NB_LOG", str(broken))
    notebook = tiny_notebook(jp_root_dir)
    response = await post(jp_fetch, "pipeline", "runs", body={"notebook": notebook})
    pid = json.loads(response.body)["pid"]
    [process] = await ended_processes(jp_fetch)
    assert (process["pid"], process["state"], process["returncode"]) == (pid, "failed", 2)
    assert process["error"].startswith("mlops-nb run: ")
    assert "is not an mlops_nb log" in process["error"]
    assert (broken.parent / "server-runs" / f"{pid}.log").is_file()
    assert broken.read_text() == "not a database"


@pytest.mark.parametrize(
    ("parts", "params", "body", "expected"),
    [
        (("runs",), {"page": "99999999999999999999999"}, None, (400, "page must be from 1")),
        (("runs",), {"page_size": "0"}, None, (400, "page_size must be from 1")),
        (("runs",), {"filter": '[{"field": 5, "op": "=", "value": 1}]'}, None, (400, "field")),
        (
            ("runs",),
            {"filter": '[{"field": "params.lr", "op": "<", "value": "abc"}]'},
            None,
            (400, "abc"),
        ),
        (
            ("runs",),
            {"filter": '[{"field": "start_time", "op": "<", "value": "soon"}]'},
            None,
            (400, "soon"),
        ),
        (("runs",), {"filter": "[[]]"}, None, (400, "filter")),
        (("docs",), {}, {"notebook": ["churn.ipynb"]}, (400, "notebook")),
        (("docs",), {}, {"notebook": "churn.ipynb", "run_id": {"a": 1}}, (400, "run id")),
        (("pipeline", "runs"), {}, {"notebook": 7}, (400, "notebook")),
        (("pipeline", "runs"), {}, {"notebook": "a\x00b.ipynb"}, (400, "notebook")),
        (("pipeline", "runs"), {}, {"notebook": "n" * 5000 + ".ipynb"}, (400, "notebook")),
        (("pipeline", "runs"), {}, {"notebook": "not-json.ipynb"}, (400, "not-json.ipynb")),
        (("pipeline", "runs"), {}, {"notebook": "no-cells.ipynb"}, (400, "no-cells.ipynb")),
        (("pipeline", "parameters"), {"notebook": "not-json.ipynb"}, None, (400, "not-json")),
        (
            ("pipeline", "runs"),
            {},
            {"notebook": "churn.ipynb", "experiment": ["x"]},
            (400, "experiment"),
        ),
        (
            ("pipeline", "runs"),
            {},
            {"notebook": "churn.ipynb", "parameters": {"seed": [1, 2]}},
            (400, "seed"),
        ),
        (
            ("pipeline", "runs"),
            {},
            {"notebook": "churn.ipynb", "parameters": {"seed": 1.5}},
            (400, "seed"),
        ),
        (
            ("schedule",),
            {},
            {"notebook": "churn.ipynb", "cron": ["0"], "target": "cron", "out": "s"},
            (400, "cron"),
        ),
        (
            ("schedule",),
            {},
            {
                "notebook": "churn.ipynb",
                "cron": "0 6 * * *",
                "target": "cron",
                "out": "s",
                "parameters": "seed=1",
            },
            (400, "parameters"),
        ),
    ],
)
async def test_malformed_requests_are_4xx_with_one_line(
    jp_fetch, jp_root_dir, seeded, parts, params, body, expected
):
    shutil.copy(CHURN, jp_root_dir / "churn.ipynb")
    (jp_root_dir / "not-json.ipynb").write_text("{not json")
    (jp_root_dir / "no-cells.ipynb").write_text('{"cells": 5}')
    method = "GET" if body is None else "POST"
    code, message = await error_of(
        jp_fetch, *parts, method=method, body=None if body is None else json.dumps(body), **params
    )
    assert (code, expected[1] in message) == (expected[0], True), message
    assert await get_json(jp_fetch, "pipeline", "runs") == []  # nothing was started


async def test_an_unknown_experiment_is_an_empty_page_not_an_error(jp_fetch, seeded):
    # a pipeline run started with a new experiment is polled for before its first run exists
    page = await get_json(jp_fetch, "runs", experiment="not-yet")
    assert (page["total"], page["runs"]) == (0, [])


async def test_an_unexpected_error_is_a_500_with_one_json_line(jp_fetch, seeded, monkeypatch):
    from mlops_nb.server import handlers

    def broken(path):
        raise RuntimeError("the disk caught fire\nand more lines")

    monkeypatch.setattr(handlers, "read_experiments", broken)
    code, message = await error_of(jp_fetch, "experiments")
    assert code == 500
    assert "RuntimeError: the disk caught fire" in message and "Traceback" not in message


async def test_a_cookie_session_post_without_the_xsrf_token_is_refused(
    jp_fetch, jp_http_port, jp_base_url, jp_auth_header, jp_root_dir, seeded
):
    client = tornado.httpclient.AsyncHTTPClient()
    api = f"http://localhost:{jp_http_port}{jp_base_url}mlops-nb/api/"
    login = await client.fetch(api + "health", headers=jp_auth_header)
    cookies = [c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie")]
    session = "; ".join(c for c in cookies if not c.startswith("_xsrf="))
    assert session  # the token login set the login cookie

    assert (await client.fetch(api + "health", headers={"Cookie": session})).code == 200
    refused = await client.fetch(
        api + "pipeline/runs", method="POST", body=json.dumps({"notebook": "x.ipynb"}),
        headers={"Cookie": session}, raise_error=False,
    )  # fmt: skip
    assert refused.code == 403
    assert "_xsrf" in json.loads(refused.body)["message"]
    xsrf = "ab" * 16
    allowed = await client.fetch(
        api + "pipeline/runs", method="POST", body=json.dumps({"notebook": "x.ipynb"}),
        headers={"Cookie": f"{session}; _xsrf={xsrf}", "X-XSRFToken": xsrf}, raise_error=False,
    )  # fmt: skip
    assert allowed.code == 400  # past the xsrf check: the notebook does not exist
    assert await get_json(jp_fetch, "pipeline", "runs") == []


class DenyExecute(Authorizer):
    """Lets everyone read and write, but not run code, through the mlops-nb resource."""

    def is_authorized(self, handler, user, action, resource):
        return not (resource == "mlops-nb" and action == "execute")


class TestAnAuthorizerThatDeniesExecute:
    @pytest.fixture
    def jp_server_config(self):
        return {"ServerApp": {"jpserver_extensions": {"mlops_nb": True},
                              "authorizer_class": DenyExecute}}  # fmt: skip

    async def test_starting_a_pipeline_is_403_while_reads_work(self, jp_fetch, jp_root_dir, seeded):
        notebook = tiny_notebook(jp_root_dir)
        code, message = await error_of(
            jp_fetch, "pipeline", "runs", method="POST", body=json.dumps({"notebook": notebook})
        )
        assert (code, "execute" in message) == (403, True), message
        assert await get_json(jp_fetch, "pipeline", "runs") == []
        assert (await get_json(jp_fetch, "runs"))["total"] == 4
        parameters = await get_json(jp_fetch, "pipeline", "parameters", notebook=notebook)
        assert [p["name"] for p in parameters] == ["label"]


class TestAtMostOnePipelineRunAtOnce:
    @pytest.fixture
    def jp_server_config(self):
        return {"ServerApp": {"jpserver_extensions": {"mlops_nb": True}},
                "MlopsNbExtension": {"max_pipeline_runs": 1}}  # fmt: skip

    async def test_a_run_beyond_the_limit_is_429_until_one_ends(
        self, jp_fetch, jp_root_dir, seeded
    ):
        body = {"notebook": tiny_notebook(jp_root_dir), "experiment": "limited"}
        assert (await post(jp_fetch, "pipeline", "runs", body=body)).code == 202
        code, message = await error_of(
            jp_fetch, "pipeline", "runs", method="POST", body=json.dumps(body)
        )
        assert (code, "max_pipeline_runs" in message) == (429, True), message
        assert len(await ended_processes(jp_fetch)) == 1
        assert (await post(jp_fetch, "pipeline", "runs", body=body)).code == 202
        assert [p["state"] for p in await ended_processes(jp_fetch)] == ["finished", "finished"]
        runs = (await get_json(jp_fetch, "runs", experiment="limited"))["runs"]
        assert [r["status"] for r in runs] == ["finished", "finished"]


# ---------------------------------------------------------------------- the model registry
def tiny_classifier():
    """A LogisticRegression fitted on six rows, and its training frame."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"tenure": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0],
                          "calls": [5, 4, 6, 0, 1, 0]})  # fmt: skip
    return LogisticRegression().fit(frame, [1, 1, 1, 0, 0, 0]), frame


@pytest.fixture
def registered(seeded, tmp_path):
    """churn:1 from the run "slow" and churn:2 from "fast" (champion), plus other:1."""
    from mlops_nb.registry.register import register_pipeline

    log = mlops_nb.open_log(tmp_path / "logdir" / "log.duckdb")
    model, frame = tiny_classifier()
    register_pipeline(log, "churn", model, training_frame=frame, run_id=seeded["slow"])
    verified = {"verified": True, "rows": 6, "input": "X", "predictions": "p"}
    register_pipeline(log, "churn", model, training_frame=frame, run_id=seeded["fast"],
                      alias="champion", verification=verified)  # fmt: skip
    register_pipeline(log, "other", model, training_frame=frame)
    log.flush()
    return log


async def test_models_lists_each_name_with_its_versions_and_aliases(jp_fetch, registered):
    models = await get_json(jp_fetch, "models")
    assert [(m["name"], m["versions"], m["latest_version"], m["aliases"]) for m in models] == [
        ("churn", 2, 2, {"champion": 2}),
        ("other", 1, 1, {}),
    ]
    assert all(m["created_at"] and m["last_registered_at"] for m in models)


async def test_a_model_shows_its_versions_newest_first_and_alias_history(
    jp_fetch, registered, seeded
):
    model = await get_json(jp_fetch, "models", "churn")
    assert model["aliases"] == {"champion": 2}
    newest, oldest = model["versions"]
    assert (newest["version"], newest["aliases"], newest["run_id"]) == (2, ["champion"],
                                                                       seeded["fast"])  # fmt: skip
    assert (oldest["version"], oldest["aliases"], oldest["run_id"]) == (1, [], seeded["slow"])
    assert newest["experiment"] == "churn"
    assert newest["metrics"] == {"acc": pytest.approx(0.93)}
    assert (newest["verified"], oldest["verified"]) == (True, False)
    assert newest["signature"] == {"n_columns": 2, "columns": [
        {"name": "tenure", "kind": "number"}, {"name": "calls", "kind": "integer"}]}  # fmt: skip
    assert newest["outputs"]["classes"] == [0, 1]
    [move] = model["alias_history"]
    moved = (move["alias"], move["from_version"], move["to_version"], move["reason"])
    assert moved == ("champion", None, 2, "registered")


async def test_moving_an_alias_records_who_and_why(jp_fetch, registered):
    body = {"alias": "champion", "version": 1, "reason": "v2 overfits"}
    answer = json.loads((await post(jp_fetch, "models", "churn", "aliases", body=body)).body)
    assert answer == {"name": "churn", "alias": "champion", "version": 1, "previous": 2}
    assert registered.model_version("churn", alias="champion")["version"] == 1
    model = await get_json(jp_fetch, "models", "churn")
    assert model["aliases"] == {"champion": 1}
    assert [(v["version"], v["aliases"]) for v in model["versions"]] == [(2, []), (1, ["champion"])]
    latest = model["alias_history"][0]  # newest first
    assert (latest["from_version"], latest["to_version"], latest["reason"]) == (2, 1, "v2 overfits")
    assert latest["user"]
    new = {"alias": "challenger", "version": 2}  # a new alias, no reason
    answer = json.loads((await post(jp_fetch, "models", "churn", "aliases", body=new)).body)
    assert answer["previous"] is None
    assert (await get_json(jp_fetch, "models"))[0]["aliases"] == {"challenger": 2, "champion": 1}


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("churn", {"alias": "champion", "version": 9}, (400, "no version 9")),
        ("churn", {"alias": "champion", "version": 2}, (400, "already points at version 2")),
        ("churn", {"alias": "bad alias!", "version": 1}, (400, "bad alias")),
        ("churn", {"alias": "champion", "version": "1"}, (400, "version must be")),
        ("churn", {"alias": "champion", "version": True}, (400, "version must be")),
        ("churn", {"version": 1}, (400, "bad alias")),
        ("churn", {"alias": "champion", "version": 1, "reason": "a\nb"}, (400, "one line")),
        ("nope", {"alias": "champion", "version": 1}, (404, "no registered model 'nope'")),
        ("bad%20name", {"alias": "champion", "version": 1}, (400, "bad model name")),
    ],
)
async def test_bad_alias_moves_are_refused_with_one_line(
    jp_fetch, registered, name, body, expected
):
    code, message = await error_of(
        jp_fetch, "models", name, "aliases", method="POST", body=json.dumps(body)
    )
    assert (code, expected[1] in message) == (expected[0], True), message
    assert registered.model_version("churn", alias="champion")["version"] == 2
    assert len(registered.alias_history("churn")) == 1


async def test_unknown_model_is_404_and_no_log_lists_no_models(jp_fetch, registered, tmp_path,
                                                               monkeypatch):  # fmt: skip
    code, message = await error_of(jp_fetch, "models", "nope")
    assert (code, "no registered model 'nope'" in message) == (404, True), message
    monkeypatch.setenv("MLOPS_NB_LOG", str(tmp_path / "none" / "log.duckdb"))
    assert await get_json(jp_fetch, "models") == []
    assert (await error_of(jp_fetch, "models", "churn"))[0] == 404


# ---------------------------------------------------------------------- monitoring of a model
def record_drift_check(
    log,
    check_id: str,
    when: float,
    columns: dict[str, tuple[float, bool]],
    share: float,
    predictions: tuple[float, bool] | None = None,
) -> None:
    """A check as ``mlops-nb drift`` records it: a row per column, the dataset row, and the
    prediction drift row (same check id)."""
    common = {"check_id": check_id, "model_name": "churn", "model_version": 2,
              "reference": "churn@champion (v2)", "current": "requests since 2026-12-04 10:00",
              "n_reference": 500, "n_current": 120, "exact": True, "created_at": when}  # fmt: skip
    for column, (score, drifted) in columns.items():
        log.record("drift", {**common, "target": "inputs", "column_name": column,
                             "column_type": "numerical", "method": "wasserstein", "score": score,
                             "threshold": 0.1, "drifted": drifted})  # fmt: skip
    log.record("drift", {**common, "target": "dataset", "column_name": "*",
                         "method": "share_of_drifted_columns", "score": share, "threshold": 0.5,
                         "drifted": share >= 0.5})  # fmt: skip
    if predictions is not None:
        log.record("drift", {**common, "target": "predictions", "column_name": "prediction",
                             "column_type": "categorical", "method": "jensenshannon",
                             "score": predictions[0], "threshold": 0.1,
                             "drifted": predictions[1]})  # fmt: skip


def record_monitor_event(log, step: str, outcome: str, reason: str, when: float, **fields):
    log.record("monitor_events", {
        "event_id": f"{step}{when}", "model_name": "churn", "alias": "champion", "step": step,
        "outcome": outcome, "reason": reason, "run_id": fields.get("run_id"),
        "check_id": fields.get("check_id"), "from_version": fields.get("from_version"),
        "to_version": fields.get("to_version"), "detail": "{}", "created_at": when,
    })  # fmt: skip


async def test_a_model_shows_its_latest_drift_check_performance_and_monitor_events(
    jp_fetch, registered
):
    now = time.time()
    record_drift_check(registered, "old", now - 7200, {"tenure": (0.01, False)}, 0.0)
    record_drift_check(registered, "new", now - 60,
                       {"tenure": (0.42, True), "calls": (0.03, False), HOSTILE: (0.2, True)},
                       share=2 / 3, predictions=(0.15, True))  # fmt: skip
    for end, accuracy in ((now - 3600, 0.9), (now - 60, 0.71)):
        registered.record("performance", {
            "check_id": f"p{end}", "model_name": "churn", "model_version": 2, "kind": "realized",
            "metric": "accuracy", "value": accuracy, "baseline": 0.93, "window_start": end - 3600,
            "window_end": end, "n_rows": 40, "created_at": end,
        })  # fmt: skip
    registered.record("performance", {
        "check_id": "e", "model_name": "churn", "model_version": 2, "kind": "estimated",
        "metric": "roc_auc", "value": 0.8, "baseline": 0.95, "window_start": now - 3600,
        "window_end": now, "n_rows": 120, "created_at": now,
    })  # fmt: skip
    reason = f"retrained because 2 of 3 columns drifted: tenure, {HOSTILE}"
    record_monitor_event(registered, "drift", "drift", "2 of 3 columns drifted", now - 50,
                         check_id="new", from_version=2)  # fmt: skip
    record_monitor_event(registered, "retrain", "finished", reason, now - 40, run_id="r1",
                         from_version=2)  # fmt: skip
    registered.flush()

    monitoring = (await get_json(jp_fetch, "models", "churn"))["monitoring"]
    drift = monitoring["drift"]
    assert (drift["check_id"], drift["model_version"], drift["dataset_drift"]) == ("new", 2, True)
    assert drift["share"] == pytest.approx(2 / 3) and drift["drift_share"] == 0.5
    assert drift["summary"] == f"2 of 3 columns drifted: tenure, {HOSTILE}"
    assert drift["reference"] == "churn@champion (v2)"
    assert drift["current"] == "requests since 2026-12-04 10:00"
    assert drift["when"] and (drift["n_reference"], drift["n_current"]) == (500, 120)
    assert [(c["column"], c["method"], c["score"], c["threshold"], c["drifted"])
            for c in drift["columns"]] == [("tenure", "wasserstein", 0.42, 0.1, True),
                                           ("calls", "wasserstein", 0.03, 0.1, False),
                                           (HOSTILE, "wasserstein", 0.2, 0.1, True)]  # fmt: skip
    [prediction] = drift["predictions"]
    assert (prediction["column"], prediction["method"], prediction["drifted"]) == (
        "prediction", "jensenshannon", True)  # fmt: skip
    assert [(p["kind"], p["metric"], p["value"], p["baseline"], p["model_version"], p["n_rows"])
            for p in monitoring["performance"]] == [
        ("realized", "accuracy", 0.71, 0.93, 2, 40),  # the newest window, not the older 0.9
        ("estimated", "roc_auc", 0.8, 0.95, 2, 120),
    ]  # fmt: skip
    assert all(p["window_start"] < p["window_end"] for p in monitoring["performance"])
    assert [(e["step"], e["outcome"], e["reason"], e["from_version"], e["run_id"])
            for e in monitoring["events"]] == [
        ("retrain", "finished", reason, 2, "r1"),  # newest first
        ("drift", "drift", "2 of 3 columns drifted", 2, None),
    ]  # fmt: skip
    other = (await get_json(jp_fetch, "models", "other"))["monitoring"]
    assert other == {"drift": None, "performance": [], "events": []}


# ---------------------------------------------------------------------- governance
def record_governance(log, run_id: str):
    """What a tracked run records about its data and fairness, made by the real functions: a
    data check with two failures (one on a personal-data column), the personal-data scan of
    the frame, and fairness by region. Returns the fairness report."""
    import pandas as pd

    from mlops_nb.capture.expectations import check_frame, infer_expectations
    from mlops_nb.capture.fairness import fairness
    from mlops_nb.capture.pii import scan_frame
    from mlops_nb.validate_command import record_report

    frame = pd.DataFrame({"email": [f"person{i}@planted.example" for i in range(8)],
                          "age": [20, 30, 40, 50, 60, 70, 80, 130],
                          "region": ["north", "south", "north", HOSTILE] * 2})  # fmt: skip
    spec = infer_expectations(frame.head(6), private={"email"})
    spec.columns["age"].max = 65
    spec.columns["email"].pattern = r"^nobody@"
    report = check_frame(frame, spec, private={"email"}, target=f"{run_id[:8]}:customers@v1",
                         expectation="customers.yaml")  # fmt: skip
    record_report(log, report, run_id=run_id, cell_seq=2)
    for finding in scan_frame(frame):
        log.record("pii_findings", finding.to_row(
            dataset_id=f"{run_id[:8]}:customers@v1", run_id=run_id, cell_seq=1,
            dataset_name="customers", created_at=time.time()))  # fmt: skip
    fair = fairness([1, 0, 1, 0, 1, 0, 1, 0], [1, 0, 0, 0, 1, 1, 1, 0], frame["region"])
    measured_at = time.time()  # one evaluation: its rows share the time
    for row in fair.rows():
        log.record("fairness", {"run_id": run_id, "cell_seq": 3, "model_name": "model",
                                "model_version": None, **row,
                                "created_at": measured_at})  # fmt: skip
    log.flush()
    return fair


async def test_a_run_and_a_model_carry_their_governance(jp_fetch, registered, seeded):
    from mlops_nb.registry.explain import permutation_importances, record_importances

    fair = record_governance(registered, seeded["fast"])
    model, frame = tiny_classifier()
    measured = permutation_importances(model, frame, [1, 1, 1, 0, 0, 0], {"task": "classification"})
    record_importances(registered, "churn", 2, measured)
    registered.flush()

    response = await jp_fetch("mlops-nb", "api", "runs", seeded["fast"])
    assert b"planted.example" not in response.body  # no value of the email column
    governance = json.loads(response.body)["governance"]
    [check] = governance["checks"]
    assert (check["passed"], check["n_failed"], check["n_rows"]) == (False, 2, 8)
    assert check["expectation"] == "customers.yaml" and check["cell_seq"] == 2
    failures = {f["column"]: f for f in check["failures"]}
    assert (failures["age"]["check"], failures["age"]["n_failing"]) == ("max", 3)
    assert failures["age"]["example_rows"] == [5, 6, 7]
    assert failures["age"]["example_values"] == [70, 80, 130]
    assert failures["email"]["check"] == "pattern" and failures["email"]["n_failing"] == 8
    assert failures["email"]["example_values"] is None  # personal data: never sent
    [email] = governance["personal_data"]
    found = [email[k] for k in ("dataset", "column", "kind", "status")]
    assert found == ["customers@v1", "email", "email", "flagged"]
    [region] = governance["fairness"]
    assert region["sensitive"] == "region" and region["n_rows"] == 8
    assert region["summary"] == pytest.approx(fair.summary)
    assert [g["group"] for g in region["groups"]] == [HOSTILE, "north", "south"]  # sorted
    north = fair.by_group.loc["north"]
    assert region["groups"][1]["selection_rate"] == pytest.approx(north["selection_rate"])
    nothing = (await get_json(jp_fetch, "runs", seeded["slow"]))["governance"]
    assert nothing == {"checks": [], "personal_data": [], "fairness": []}

    newest, oldest = (await get_json(jp_fetch, "models", "churn"))["versions"]
    importance = newest["explanations"]["importance"]
    assert [r["feature"] for r in importance["rows"]] == measured["feature"].tolist()
    assert importance["rows"][0]["importance"] == pytest.approx(
        measured["importance_mean"].iloc[0])  # fmt: skip
    assert (importance["metric"], importance["n_rows"], importance["n_repeats"]) == (
        "accuracy", 6, 5)  # fmt: skip
    assert "svg" not in importance  # numbers only: the tab draws the chart
    assert newest["explanations"]["fairness"] == [region]  # from its source run
    assert oldest["explanations"]["importance"]["rows"] == []
    assert oldest["explanations"]["fairness"] == []
