"""Explanations of a registered model, on a model whose ``signal`` column decides everything and
whose ``noise`` and ``color`` columns are pure noise: permutation importance per raw column
recorded at registration (from a notebook run's saved values), ``mlops-nb models explain``,
and a real ``mlops-nb serve`` answering ``POST /explain``."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import run_cli
from IPython.core.interactiveshell import InteractiveShell
from test_serve import Server

import mlops_nb as mn
from mlops_nb.charts import importance_chart
from mlops_nb.log import api as log_api
from mlops_nb.registry.explain import Explainer, explainer_for, importance_card
from mlops_nb.registry.load import load_model
from mlops_nb.registry.register import register_pipeline

CELLS = [
    """
    %%mlops track features
    import numpy as np, pandas as pd
    from sklearn.model_selection import train_test_split
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"signal": rng.normal(0, 1, n), "noise": rng.normal(0, 1, n),
                      "color": rng.choice(["red", "green", "blue"], n)})
    y = (X["signal"] > 0).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)
    """,
    """
    %%mlops track train
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    model = Pipeline([
        ("prepare", ColumnTransformer([("color", OneHotEncoder(), ["color"]),
                                       ("numbers", StandardScaler(), ["signal", "noise"])])),
        ("classify", LogisticRegression(C=10.0)),
    ]).fit(X_train, y_train)
    """,
    """
    %%mlops track evaluate
    predicted = model.predict(X_test)
    """,
]


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A notebook run whose values are saved as a pipeline run saves them (checkpoints), and
    its model registered from the command line as ``signal@champion``."""
    folder = tmp_path_factory.mktemp("explain")
    log_path = folder / ".mlops" / "log.duckdb"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("%load_ext mlops_nb")
        shell.run_cell(f"%mlops track --experiment signal --log {log_path}")
        shell._mlops_tracker.checkpointing = True  # as in a kernel started by mlops-nb run
        for cell in CELLS:
            result = shell.run_cell(textwrap.dedent(cell).strip())
            assert result.success, result.error_in_exec
        run_id = shell._mlops_tracker.run.run_id
        X_test = shell.user_ns["X_test"]
        shell.run_cell("%mlops stop")
    finally:
        shell.run_cell("%unload_ext mlops_nb")
        log_api._ACTIVE_RUNS.clear()
        InteractiveShell.clear_instance()
    done = run_cli("--log", log_path, "models", "register", "signal", "--run", run_id,
                   "--alias", "champion")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {"path": log_path, "log": mn.open_log(log_path, create=False), "run_id": run_id,
            "X_test": X_test}  # fmt: skip


# ---------------------------------------------------------------------- permutation importance
def test_registration_measures_the_importance_of_each_raw_input_column(registered):
    table = registered["log"].importances("signal", 1)
    assert table["feature"].tolist()[0] == "signal"
    assert set(table["feature"]) == {"signal", "noise", "color"}  # raw columns, not one-hot
    found = table.set_index("feature")
    assert found.loc["signal", "importance_mean"] > 0.3
    assert abs(found.loc["noise", "importance_mean"]) < 0.03
    assert abs(found.loc["color", "importance_mean"]) < 0.03
    assert found.loc["signal", "importance_std"] > 0  # the spread over the repeats
    assert set(table["metric"]) == {"accuracy"} and set(table["n_repeats"]) == {5}
    assert set(table["n_rows"]) == {len(registered["X_test"])}


def test_models_explain_prints_them_and_measures_again_from_the_runs_saved_values(registered):
    path = registered["path"]
    text = run_cli("--log", path, "models", "explain", "signal@champion")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "signal:1 permutation importance (drop of accuracy" in lines[0]
    assert lines[1].split()[0] == "signal" and "±" in lines[1]
    before = registered["log"].importances("signal", 1)
    again = run_cli("--log", path, "models", "explain", "signal:1", "--recompute", "-f", "json")
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert (answer["name"], answer["version"]) == ("signal", 1)
    assert [row["feature"] for row in answer["importances"]][0] == "signal"
    after = registered["log"].importances("signal", 1)
    assert after["created_at"].iloc[0] > before["created_at"].iloc[0]  # recorded anew
    assert after["importance_mean"].tolist() == pytest.approx(before["importance_mean"].tolist())


def test_models_explain_says_in_one_line_why_nothing_can_be_measured(tmp_path):
    log = mn.open_log(tmp_path / "log.duckdb")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    from sklearn.linear_model import LogisticRegression

    register_pipeline(log, "bare", LogisticRegression().fit(frame, [0, 0, 1, 1]),
                      training_frame=frame)  # fmt: skip
    log.flush()
    done = run_cli("--log", tmp_path / "log.duckdb", "models", "explain", "bare:1")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no source run" in done.stderr


def test_the_importance_chart_has_a_bar_and_a_whisker_per_feature(registered):
    card = importance_card(registered["log"].importances("signal", 1))
    assert [row["feature"] for row in card["rows"]][0] == "signal"
    assert card["metric"] == "accuracy" and card["n_repeats"] == 5
    svg = ET.fromstring(card["svg"])
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert len(svg.findall("svg:rect", ns)) == 3
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert titles[0].startswith("signal: ")
    negative = ET.fromstring(importance_chart([("a", 0.2, 0.05), ("b", -0.01, 0.0)], "t"))
    assert len(negative.findall("svg:rect", ns)) == 2
    assert "nothing measured" in importance_chart([], "empty")


# ---------------------------------------------------------------------- one request
def test_contributions_add_up_and_a_row_gets_the_same_answer_wherever_it_is(registered):
    log = registered["log"]
    explainer = explainer_for(log, load_model(log, "signal@champion"))
    rows = registered["X_test"].iloc[:3]
    together = explainer.explain(rows)
    alone = explainer.explain(rows.iloc[[2]])
    assert together[2]["contributions"] == pytest.approx(alone[0]["contributions"])
    for answer in together:
        total = sum(answer["contributions"].values())
        assert total == pytest.approx(answer["value"] - answer["base"])
        assert answer["fixed"] == []
    no_profile = Explainer.from_profile(explainer.pipeline, explainer.signature,
                                        explainer.outputs, None)  # fmt: skip
    assert no_profile.pools["signal"] is None and no_profile.pools["color"] is not None


def test_served_explain_singles_out_the_decisive_column_and_leaves_predictions_alone(registered):
    server = Server(registered["path"], "signal@champion")
    try:
        test = registered["X_test"]
        rows = test[test["signal"].abs() > 0.3].iloc[:5]  # away from the decision boundary
        body = {"dataframe_split": {"columns": list(rows.columns),
                                    "data": rows.astype(object).values.tolist()}}  # fmt: skip
        explained = server.post("/explain", json=body)
        assert explained.status_code == 200, explained.text
        answer = explained.json()
        assert answer["model_version"] == 1 and "Shapley" in answer["method"]
        predicted = server.post("/invocations", json=body).json()["predictions"]
        for row, prediction in zip(answer["explanations"], predicted, strict=True):
            assert row["prediction"] == prediction
            size = {k: abs(v) for k, v in row["contributions"].items()}
            assert max(size, key=size.get) == "signal"
            assert size["signal"] > 5 * max(size["noise"], size["color"])
            assert sum(row["contributions"].values()) == pytest.approx(row["value"] - row["base"])
        bad = dict(body, dataframe_split={"columns": ["signal"], "data": [[0.5]]})
        refused = server.post("/explain", json=bad)
        assert refused.status_code == 400 and "missing column" in refused.json()["message"]
        many = {"dataframe_split": {"columns": list(rows.columns),
                                    "data": [body["dataframe_split"]["data"][0]] * 21}}  # fmt: skip
        assert server.post("/explain", json=many).status_code == 400
        assert httpx.get(server.url + "/explain", timeout=10).status_code == 405
        workers = psutil.Process(server.proc.pid).children(recursive=True)
        assert workers  # the explaining process
    finally:
        server.stop()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"explaining processes left behind: {alive}"
    log = mn.open_log(registered["path"], create=False)
    counted = log.sql("SELECT count(*) AS n FROM requests")["n"].iloc[0]
    assert counted == 1  # the /invocations call; explanations are not requests
    assert np.isfinite(answer["explanations"][0]["base"])
