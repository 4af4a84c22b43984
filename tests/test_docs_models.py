"""`mlops-nb docs` for models other than a binary classifier called `model`: a regressor and a
multiclass classifier, each a tiny notebook run once through the real pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import run_cli
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import mlops_nb
from mlops_nb.capture.data import change_phrases
from mlops_nb.capture.estimators import recorded_kind
from mlops_nb.docs.build import build_docs

START = "%load_ext mlops_nb\n%mlops track --experiment {name}"

REGRESSION = [
    new_markdown_cell("# Diabetes progression\n\nA ridge regression of disease progression."),
    new_code_cell(START.format(name="diabetes")),
    new_code_cell(
        "%%mlops track ingest\n"
        "from sklearn.datasets import load_diabetes\n\n"
        "raw = load_diabetes(as_frame=True).frame"
    ),
    new_code_cell(
        "%%mlops track features\n"
        "from sklearn.model_selection import train_test_split\n\n"
        'X = raw.drop(columns=["target"])\n'
        'y = raw["target"]\n'
        "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, "
        "random_state=0)"
    ),
    new_code_cell(
        "%%mlops track train\n"
        "from sklearn.linear_model import Ridge\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n\n"
        "reg = make_pipeline(StandardScaler(), Ridge(alpha=1.0))\n"
        "reg.fit(X_train, y_train)\n"
        "scaler = StandardScaler().fit(X_train)  # fitted last, but only a transformer"
    ),
    new_code_cell(
        "%%mlops track evaluate\n"
        "from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score\n\n"
        "import mlops_nb as mn\n\n"
        "pred = reg.predict(X_test)\n"
        'mn.log_metrics({"rmse": mean_squared_error(y_test, pred) ** 0.5,\n'
        '                "mae": mean_absolute_error(y_test, pred), "r2": r2_score(y_test, pred)})'
    ),
    new_code_cell(
        "%%mlops card\ngroups: {column: sex, data: X_test, target: y_test, prediction: pred}"
    ),
]

MULTICLASS = [
    new_markdown_cell("# Iris species\n\nWhich of three species a flower is."),
    new_code_cell(START.format(name="iris")),
    new_code_cell(
        "%%mlops track ingest\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "from sklearn.datasets import load_iris\n\n"
        "iris = load_iris(as_frame=True)\n"
        "raw = iris.data.assign(\n"
        "    species=pd.Categorical.from_codes(iris.target, iris.target_names).astype(str),\n"
        '    garden=np.where(np.arange(len(iris.target)) % 3 == 0, "north", "south"),\n'
        ")"
    ),
    new_code_cell(
        "%%mlops track features\n"
        "from sklearn.model_selection import train_test_split\n\n"
        'X = raw.drop(columns=["species", "garden"])\n'
        'y = raw["species"]\n'
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=0.3, random_state=0, stratify=y\n"
        ")\n"
        'test_info = raw.loc[X_test.index, ["garden"]]'
    ),
    new_code_cell(
        "%%mlops track train\n"
        "from sklearn.linear_model import LogisticRegression\n\n"
        "clf = LogisticRegression(max_iter=500)\n"
        "clf.fit(X_train, y_train)"
    ),
    new_code_cell(
        "%%mlops track train --name segments\n"
        "from sklearn.cluster import KMeans\n\n"
        "segments = KMeans(n_clusters=3, n_init=3, random_state=0)\n"
        "segments.fit(X_train)  # fitted after the classifier: still not the main model"
    ),
    new_code_cell(
        "%%mlops track evaluate\n"
        "from sklearn.metrics import accuracy_score, f1_score, recall_score\n\n"
        "import mlops_nb as mn\n\n"
        "predicted = clf.predict(X_test)\n"
        "recalls = recall_score(y_test, predicted, average=None, labels=clf.classes_)\n"
        'mn.log_metrics({"accuracy": accuracy_score(y_test, predicted),\n'
        '                "f1_macro": f1_score(y_test, predicted, average="macro"),\n'
        '                **{f"recall_{c}": r for c, r in zip(clf.classes_, recalls)}})'
    ),
    new_code_cell(
        "%%mlops card\n"
        "groups: {column: garden, data: test_info, target: y_test, prediction: predicted}"
    ),
]


def _docs(tmp_path_factory, name: str, cells: list) -> tuple[str, str, Path]:
    """One pipeline run of the notebook with --docs; the Markdown and HTML it produced."""
    work = tmp_path_factory.mktemp(name)
    notebook = work / f"{name}.ipynb"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, notebook)
    result = run_cli("run", notebook, "--docs", work / "docs", cwd=work)
    assert result.returncode == 0, result.stderr
    docs = work / "docs"
    return (docs / f"{name}.md").read_text(), (docs / f"{name}.html").read_text(), notebook


def _redocument(notebook: Path, card: str | None, out: Path) -> str:
    """The Markdown docs of the notebook's run again, with another card cell (or none)."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if not c.source.startswith("%%mlops card")]
    if card:
        nb.cells.append(new_code_cell(f"%%mlops card\n{card}"))
    copy = out / notebook.name
    out.mkdir()
    nbformat.write(nb, copy)
    log = notebook.parent / ".mlops" / "log.duckdb"
    result = run_cli("docs", copy, "--out", out, "--format", "md", "--log", log)
    assert result.returncode == 0, result.stderr
    return (out / f"{notebook.stem}.md").read_text()


@pytest.fixture(scope="module")
def regression_docs(tmp_path_factory):
    return _docs(tmp_path_factory, "diabetes", REGRESSION)


@pytest.fixture(scope="module")
def multiclass_docs(tmp_path_factory):
    return _docs(tmp_path_factory, "iris", MULTICLASS)


def _model_card(text: str) -> str:
    return text[text.index("6. Model card") : text.index("7. Reproducibility")]


def test_a_regressor_gets_a_regression_card(regression_docs, tmp_path):
    md, html, notebook = regression_docs
    card = _model_card(md)
    assert "| task | regression |" in card
    assert "<tr><th>task</th><td>regression</td></tr>" in html
    assert "| variable | `reg` |" in card  # found from the train stage, not a name
    assert "| class | sklearn.pipeline.Pipeline |" in card
    for metric in ("rmse", "mae", "r2"):
        assert re.search(rf"\| {metric} \| -?\d+\.\d{{4}} \|", card)
    # the target's distribution and the residuals, no class balance or positive rate
    assert "Distribution:" in md and "Class balance" not in md
    assert re.search(r"\| mean \| 15\d\.\d{4} \|", md)  # diabetes progression averages ~152
    assert "Residuals (`y_test` − `pred`):" in card
    assert re.search(r"\| rows \| 111 \|", card)  # a quarter of 442 rows
    mae = re.search(r"\| mae \| (\d+\.\d{4}) \|", card).group(1)
    assert f"| mean absolute | {mae} |" in card  # the residuals agree with the logged metric
    assert "positive rate" not in md.lower() and "positive rate" not in html.lower()
    assert "| sex | count | mean absolute error | root mean squared error | mean error |" in card
    groups = re.findall(r"^\| -?0\.0\d+ \| (\d+) \| \d+\.\d{4} \|", card, re.MULTILINE)
    assert len(groups) == 2 and sum(map(int, groups)) == 111
    # without a card, the prediction and the target are found from what the cells read
    plain = _model_card(_redocument(notebook, None, tmp_path / "plain"))
    assert "Residuals (`y_test` − `pred`):" in plain and f"| mean absolute | {mae} |" in plain


def test_a_multiclass_classifier_gets_every_class(multiclass_docs):
    md, html, _ = multiclass_docs
    card = _model_card(md)
    assert "| task | multiclass classification (3 classes) |" in card
    assert "multiclass classification (3 classes)" in html
    assert "| variable | `clf` |" in card  # not the KMeans fitted after it
    assert "| classes | setosa, versicolor, virginica |" in card
    assert "`segments` (KMeans)" in card
    balance = re.findall(r"^\| species = (\w+) \| (\d+\.\d)% \((\d+)\) \|", md, re.MULTILINE)
    assert [c for c, _, _ in balance] == ["setosa", "versicolor", "virginica"]
    assert sum(int(n) for _, _, n in balance) == 105  # the training rows: 70% of 150
    for metric in ("accuracy", "f1_macro", "recall_setosa", "recall_versicolor"):
        assert re.search(rf"\| {metric} \| \d(\.\d{{4}})? \|", card)
    assert "| garden | count | accuracy |\n" in card
    assert "positive rate" not in md.lower() and "positive rate" not in html.lower()
    groups = re.findall(r"^\| (north|south) \| (\d+) \|", card, re.MULTILINE)
    assert [g for g, _ in groups] == ["north", "south"]
    assert sum(int(n) for _, n in groups) == 45


def test_the_cards_model_field_wins_and_a_clusterer_has_no_target(multiclass_docs, tmp_path):
    _, _, notebook = multiclass_docs
    md = _redocument(notebook, "model: segments", tmp_path / "segments")
    card = _model_card(md)
    assert "| task | clustering (3 clusters) |" in card
    assert "| variable | `segments` |" in card
    assert "Class balance" not in md and "Target `" not in md


def test_the_kind_of_a_recorded_model_comes_from_its_class():
    steps = [["scale", "sklearn.preprocessing.StandardScaler"], ["svr", "sklearn.svm.SVR"]]
    assert recorded_kind("sklearn.pipeline.Pipeline", {"steps": steps}) == "regressor"
    assert recorded_kind("sklearn.linear_model.LogisticRegression") == "classifier"
    assert recorded_kind("sklearn.cluster.KMeans") == "clusterer"
    assert recorded_kind("sklearn.preprocessing.StandardScaler") == "transformer"
    search = {"estimator": "sklearn.ensemble.RandomForestClassifier"}
    assert recorded_kind("sklearn.model_selection.GridSearchCV", search) == "classifier"
    assert recorded_kind("__main__.HouseRegressor") == "regressor"  # by name: not importable


def test_one_description_of_a_change_for_notebook_and_docs_even_for_old_records():
    change = {  # an old record: no rows_added, no columns_added/dropped, no nulls_introduced
        "rows_before": 10, "rows_after": 7, "duplicates_removed": 2, "rows_removed": 3,
        "nulls_filled": {"age": 4}, "dtype_changes": {"age": ["object", "float64"]},
    }  # fmt: skip
    assert change_phrases(change) == [
        "2 duplicate rows dropped", "1 row removed", "4 nulls filled in age",
        "age: object -> float64",
    ]  # fmt: skip
    assert change_phrases({}) == [] and change_phrases(None) == []
    assert change_phrases({"rows_before": 3, "rows_after": 3, "values_changed": True}) == [
        "rows reordered"
    ]


HOSTILE = "<img src=x onerror=alert(1)>"


def _record_drift_check(log, check_id: str, version: int, when: float, share: float) -> None:
    """A drift check of iris:VERSION as `mlops-nb drift --requests` records it."""
    common = {"check_id": check_id, "model_name": "iris", "model_version": version,
              "reference": f"iris@champion (v{version})", "current": "requests since 1d",
              "n_reference": 105, "n_current": 60, "exact": True, "created_at": when}  # fmt: skip
    columns = (("sepal length (cm)", 0.21, True), ("petal width (cm)", 0.03, False))
    for column, score, drifted in columns:
        log.record("drift", {**common, "target": "inputs", "column_name": column,
                             "column_type": "numerical", "method": "wasserstein",
                             "score": score, "threshold": 0.1, "drifted": drifted})  # fmt: skip
    log.record("drift", {**common, "target": "dataset", "column_name": "*",
                         "method": "share_of_drifted_columns", "score": share,
                         "threshold": 0.5, "drifted": share >= 0.5})  # fmt: skip
    log.record("drift", {**common, "target": "predictions", "column_name": "prediction",
                         "column_type": "categorical", "method": "jensenshannon",
                         "score": 0.02, "threshold": 0.1, "drifted": False})  # fmt: skip


def test_the_model_card_says_what_monitors_the_registered_versions(multiclass_docs, tmp_path):
    import time

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.registry.register import register_pipeline

    _, _, notebook = multiclass_docs
    log_path = notebook.parent / ".mlops" / "log.duckdb"

    def card(name: str) -> tuple[str, str]:
        out = tmp_path / name
        build_docs(notebook, out, formats=("md", "html"), log_path=log_path)
        return _model_card((out / "iris.md").read_text()), (out / "iris.html").read_text()

    assert "### Monitoring\n\nNot monitored yet: no version of a model from this run is " \
           "registered." in card("unregistered")[0]  # fmt: skip
    log = mlops_nb.open_log(log_path, create=False)
    run_id = log.latest_run_of(notebook)
    frame = load_iris(as_frame=True).data
    model = LogisticRegression(max_iter=500).fit(frame, load_iris().target)
    register_pipeline(log, "iris", model, training_frame=frame, run_id=run_id, alias="champion")
    log.flush()
    assert "`iris:1`: not monitored yet (no drift check" in card("quiet")[0]

    now = time.time()
    _record_drift_check(log, "older", 1, now - 7200, 0.0)
    _record_drift_check(log, "newest", 1, now - 600, 0.5)
    for kind, metric, value, end in (("realized", "accuracy", 0.9, now - 7200),
                                     ("realized", "accuracy", 0.8, now - 600),
                                     ("estimated", "accuracy", 0.85, now)):  # fmt: skip
        log.record("performance", {
            "check_id": f"{kind}{end}", "model_name": "iris", "model_version": 1, "kind": kind,
            "metric": metric, "value": value, "baseline": 0.95, "window_start": end - 3600,
            "window_end": end, "n_rows": 60, "created_at": end,
        })  # fmt: skip
    reason = f"retrained because 1 of 2 columns drifted: sepal length (cm) {HOSTILE}"
    events = (
        ("drift", "drift", "1 of 2 columns drifted: sepal length (cm)", 1, None, now - 500),
        ("retrain", "finished", reason, 1, None, now - 400),
        ("register", "registered", "v2 registered as challenger", None, 2, now - 300),
        ("promote", "promoted", "@champion moved from v1 to v2", 1, 2, now - 200),
    )
    for step, outcome, why, before, after, when in events:
        log.record("monitor_events", {
            "event_id": step, "model_name": "iris", "alias": "champion", "step": step,
            "outcome": outcome, "reason": why, "run_id": "another-run", "from_version": before,
            "to_version": after, "created_at": when,
        })  # fmt: skip
    log.flush()

    md, html = card("monitored")
    monitoring = md[md.index("### Monitoring") :]
    assert "**Drift of `iris:1`**" in monitoring and monitoring.count("**Drift of") == 1
    assert "1 of 2 columns drifted: sepal length (cm) (share 0.50; dataset drift at 0.5)" in md
    assert "Reference iris@champion (v1); current requests since 1d." in monitoring
    assert "| sepal length (cm) | wasserstein | 0.2100 | 0.1000 | **drifted** |" in monitoring
    assert "| petal width (cm) | wasserstein | 0.0300 | 0.1000 | – |" in monitoring
    assert "| *predictions* (prediction) | jensenshannon | 0.0200 | 0.1000 | – |" in monitoring
    performance = re.findall(r"^\| `iris:1` \| accuracy \| (\w+) \| ([\d.]+) \| ([\d.]+) \| "
                             r"([+-][\d.]+) \|", monitoring, re.MULTILINE)  # fmt: skip
    assert performance == [("live", "0.8000", "0.9500", "-0.1500"),  # the newest window only
                           ("estimated", "0.8500", "0.9500", "-0.1000")]  # fmt: skip
    steps = re.findall(r"^- \S+ \S+ UTC \*\*(\w+): ", monitoring, re.MULTILINE)
    assert steps == ["promote", "retrain", "drift"]  # newest first; v2's registration is not v1's
    assert f"**retrain: finished** (v1) — {reason.replace('<', '&lt;').replace('>', '&gt;')}" in md
    assert "**promote: promoted** (v1 → v2) — @champion moved from v1 to v2" in monitoring
    assert '<tr class="drifted"><td>sepal length (cm)</td><td>wasserstein</td>' in html
    assert "retrained because 1 of 2 columns drifted: sepal length (cm) &lt;img src=x" in html
    assert HOSTILE not in html
