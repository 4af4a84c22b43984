"""The example notebook, executed headlessly in a real kernel, records the whole chain."""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

import mlops_nb as mn

NOTEBOOK = Path(__file__).resolve().parent.parent / "example_notebooks" / "churn.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run churn.ipynb once through papermill; every test below reads what it recorded."""
    folder = tmp_path_factory.mktemp("churn")
    log_path = folder / ".mlops" / "log.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_NB_LOG", str(log_path))
        papermill.execute_notebook(
            str(NOTEBOOK), str(folder / "out.ipynb"), cwd=str(folder), progress_bar=False,
            kernel_name="python3",
        )  # fmt: skip
    log = mn.open_log(log_path)
    run_id = log.runs(experiment="churn")["run_id"][0]
    return log, log.run(run_id), folder / "out.ipynb"


def test_every_stage_is_recorded_in_order(executed):
    _, record, _ = executed
    cells = record.cells
    assert cells["stage"].tolist() == [
        "ingest", "clean", "explore", "features", "train", "train", "evaluate",
    ]  # fmt: skip
    assert cells["name"].tolist()[5] == "segments"
    assert set(cells["status"]) == {"ok"}
    assert record.info["source"] == "interactive"  # a kernel; `mlops-nb run` will say papermill


def test_cleaning_is_recorded_with_the_exact_duplicates_and_fills(executed):
    _, record, _ = executed
    datasets = record.datasets.set_index("name")
    assert datasets.loc["raw", "n_rows"] == 10_188
    assert datasets.loc["clean", "n_rows"] == 10_000
    change = json.loads(datasets.loc["clean", "diff"])
    assert change["duplicates_removed"] == 188
    assert change["rows_before"] - change["rows_after"] == 188
    assert change["nulls_filled"]["age"] > 0
    assert change["dtype_changes"]["age"][1] == "float64"


def test_lineage_links_ingest_to_clean_to_features(executed):
    _, record, _ = executed
    lineage = record.lineage.merge(record.datasets[["dataset_id", "name"]], on="dataset_id")
    by_cell = {seq: group for seq, group in lineage.groupby("cell_seq")}
    assert set(by_cell[1][by_cell[1].direction == "out"]["name"]) >= {"raw"}
    assert set(by_cell[2][by_cell[2].direction == "in"]["name"]) == {"raw"}
    assert set(by_cell[2][by_cell[2].direction == "out"]["name"]) == {"clean"}
    features_in = set(by_cell[4][by_cell[4].direction == "in"]["name"])
    features_out = set(by_cell[4][by_cell[4].direction == "out"]["name"])
    assert "clean" in features_in
    assert {"X_train", "X_test", "X_train_features", "X_train_pca"} <= features_out


def test_fitted_estimators_and_metrics(executed):
    log, record, _ = executed
    models = record.models.set_index("name")
    assert models.loc["model", "class_name"] == "sklearn.ensemble.RandomForestClassifier"
    params = json.loads(models.loc["model", "params"])
    assert params["n_estimators"] == 200 and params["max_depth"] == 8
    assert models.loc["model", "fit_dataset_id"].endswith(":X_train_features@v1")
    assert models.loc["baseline", "class_name"] == "sklearn.linear_model.LogisticRegression"
    assert models.loc["segments", "class_name"] == "sklearn.cluster.KMeans"
    assert models.loc["preprocess", "class_name"] == "sklearn.compose.ColumnTransformer"
    assert len(json.loads(models.loc["pca", "output_features"])) == 10
    stored = record.artifacts[record.artifacts.kind == "model"]
    assert len(stored) == 3  # the train stage's three models, as skops files
    assert 0.75 < record.metrics["accuracy"] <= 1
    assert set(record.metrics) == {"accuracy", "f1", "roc_auc", "baseline_accuracy"}


def test_the_output_notebook_shows_a_summary_after_each_tracked_cell(executed):
    _, _, output = executed
    notebook = json.loads(output.read_text())
    summaries = [
        output_item["data"]["text/plain"]
        for cell in notebook["cells"] if cell["cell_type"] == "code"
        for output_item in cell.get("outputs", [])
        if "text/plain" in output_item.get("data", {})
        and "".join(output_item["data"]["text/plain"]).startswith("[mlops]")
    ]  # fmt: skip
    text = ["".join(s) for s in summaries]
    assert len(text) == 7
    assert "188 duplicate rows dropped" in text[1]
