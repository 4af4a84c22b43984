"""Drift: the same columns and scores as Evidently's defaults, from raw data and from the
profile the log keeps; overrides, PSI, private columns, the HTML report, the command line,
and the ``drift`` view."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, subprocess_env

import mlops_nb
from mlops_nb.errors import MlopsError
from mlops_nb.monitor.drift import DriftError, drift
from mlops_nb.monitor.drift_command import drift_from_log
from mlops_nb.monitor.profile import profile_frame

# Evidently 0.7 on pandas 3 warns about its own use of inplace=...; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

HOSTILE = "<script>alert('x')</script>&\"col\""
WORDS = ["price", "delivery", "refund", "broken", "great", "slow", "support", "order", "late",
         "quality", "cheap", "return", "package", "fast", "helpful", "damaged"]  # fmt: skip
OTHER_WORDS = ["invoice", "tariff", "warranty", "firmware", "battery", "screen", "update",
               "charger", "signal", "login"]  # fmt: skip


def mixed_frames(n_reference: int, n_current: int, seed: int = 0, text: bool = True):
    """Reference and current frames with every column kind; income, age, region, active,
    rating_f and comment are shifted in the current frame."""
    rng = np.random.default_rng(seed)

    def frame(n: int, shifted: bool) -> pd.DataFrame:
        s = 1 if shifted else 0
        columns = {
            "income": rng.lognormal(10 + 0.4 * s, 0.5, n),
            "age": rng.normal(40 + 6 * s, 12, n),
            "score": rng.uniform(0, 1, n),
            "tenure": rng.integers(0, 120, n),  # int, many values: numerical
            "visits": rng.poisson(4, n).astype("float64"),  # float, a handful of values
            "rating_f": rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.1, 0.2, 0.3, 0.4] if s
                                   else [0.25, 0.25, 0.25, 0.25]),  # numerical, 4 values
            "flag_f": rng.choice([0.0, 1.0], n),  # numerical, 2 values
            "children": rng.integers(0, 4, n),  # int, few values: categorical
            "region": rng.choice(["north", "south", "east", "west"], n,
                                 p=[0.45, 0.25, 0.15, 0.15] if s else [0.25] * 4),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
            "active": rng.random(n) < (0.45 if s else 0.7),
            HOSTILE: rng.normal(0, 1, n),
        }  # fmt: skip
        if text:
            vocabulary = WORDS + (OTHER_WORDS if s else [])
            columns["comment"] = [" ".join(rng.choice(vocabulary, 6)) + f" {i}" for i in range(n)]
        return pd.DataFrame(columns)

    return frame(n_reference, False), frame(n_current, True)


# ---------------------------------------------------------------------- Evidently
_EVIDENTLY_METHODS = {
    "K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi", "Kullback-Leibler divergence": "kl_div",
    "Percentile text content drift": "perc_text_content_drift",
    "Absolute text content drift": "abs_text_content_drift",
}  # fmt: skip


def evidently_drift(reference, current, per_column_method=None) -> tuple[dict, int]:
    """Evidently's DataDriftPreset: {column: (method, score)} and its drifted-column count."""
    import pandas.core.dtypes.common as common

    if not hasattr(common, "infer_dtype_from_object"):
        # removed in pandas 3; only Evidently's legacy data-integrity tests import it (the
        # drift code never calls it), and the import fails without it
        common.infer_dtype_from_object = lambda dtype: dtype
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    result = Report([DataDriftPreset(per_column_method=per_column_method)]).run(
        reference_data=Dataset.from_pandas(reference, data_definition=DataDefinition()),
        current_data=Dataset.from_pandas(current, data_definition=DataDefinition()),
    )
    scores, count = {}, None
    for metric in result.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method = _EVIDENTLY_METHODS.get(config["method"], config["method"])
            scores[config["column"]] = (method, float(metric["value"]))
        elif config["type"].endswith("DriftedColumnsCount"):
            count = int(metric["value"]["count"])
    return scores, count


def assert_same_as_evidently(ours, theirs: dict, count: int) -> None:
    results = ours.results.set_index("column")
    assert set(results.index) == set(theirs)
    for column, (method, score) in theirs.items():
        assert results.loc[column, "method"] == method, column
        assert results.loc[column, "score"] == pytest.approx(score, abs=1e-6), column
        assert results.loc[column, "exact"], column
    assert len(ours.drifted_columns) == count


def test_small_reference_same_tests_scores_and_drifted_columns_as_evidently():
    reference, current = mixed_frames(600, 500)
    ours = drift(reference, current)
    theirs, count = evidently_drift(reference, current)
    assert_same_as_evidently(ours, theirs, count)
    methods = dict(zip(ours.results["column"], ours.results["method"], strict=True))
    assert methods["age"] == "ks" and methods["rating_f"] == "chisquare"
    assert methods["flag_f"] == "z" and methods["region"] == "chisquare"
    assert methods["comment"] == "perc_text_content_drift"
    assert {"income", "age", "region", "active", "rating_f", "comment"} <= set(ours.drifted_columns)
    assert not {"score", "plan", "children", HOSTILE} & set(ours.drifted_columns)


def test_large_reference_same_tests_scores_and_drifted_columns_as_evidently():
    reference, current = mixed_frames(3000, 2000, seed=1)
    ours = drift(reference, current)
    theirs, count = evidently_drift(reference, current)
    assert_same_as_evidently(ours, theirs, count)
    methods = dict(zip(ours.results["column"], ours.results["method"], strict=True))
    assert methods["age"] == "wasserstein" and methods["visits"] == "wasserstein"
    assert methods["rating_f"] == "jensenshannon" and methods["region"] == "jensenshannon"
    assert methods["comment"] == "abs_text_content_drift"
    assert {"income", "age", "region", "active", "rating_f"} <= set(ours.drifted_columns)


def test_psi_kl_and_binned_jensen_shannon_match_evidently_on_request():
    reference, current = mixed_frames(3000, 2000, seed=2, text=False)
    chosen = {"income": "psi", "age": "kl_div", "score": "jensenshannon", "tenure": "psi",
              "region": "psi", "visits": "kl_div", "plan": "psi",
              "rating_f": "psi"}  # fmt: skip
    ours = drift(reference, current, columns=list(chosen), methods=chosen)
    theirs, _ = evidently_drift(reference, current, per_column_method=chosen)
    for column, method in chosen.items():
        row = ours.results.set_index("column").loc[column]
        assert row["method"] == method
        assert row["score"] == pytest.approx(theirs[column][1], abs=1e-6), column
    assert ours.results.set_index("column").loc["income", "drifted"]  # PSI >= 0.1


# ---------------------------------------------------------------------- from a profile
def test_a_small_reference_profile_gives_exactly_the_raw_results():
    reference, current = mixed_frames(800, 600, seed=3)
    profile = json.loads(json.dumps(profile_frame(reference)))  # as stored in the log
    from_raw, from_profile = drift(reference, current), drift(profile, current)
    pd.testing.assert_frame_equal(from_raw.results, from_profile.results)
    assert from_profile.results["exact"].all()


def test_a_large_reference_profile_flags_the_same_columns_with_a_small_error():
    reference, current = mixed_frames(20_000, 5000, seed=4, text=False)
    profile = json.loads(json.dumps(profile_frame(reference)))
    assert "values" not in profile["columns"]["age"]
    for methods in (None, {"*": "psi"}, {"*": "jensenshannon"}):
        from_raw = drift(reference, current, methods=methods)
        from_profile = drift(profile, current, methods=methods)
        assert from_profile.drifted_columns == from_raw.drifted_columns
        error = (from_raw.results["score"] - from_profile.results["score"]).abs()
        assert error.max() < 2e-3, (methods, error.max())
        exact = from_profile.results.set_index("column")["exact"]
        assert exact["region"] and exact["children"] and exact["visits"]  # counts kept
        assert not exact["age"] and not exact["income"]  # read from the knots


def test_a_profile_keeps_no_values_of_private_columns():
    reference, current = mixed_frames(300, 300, seed=5, text=False)
    reference["email"] = [f"person{i % 40}@example.com" for i in range(len(reference))]
    current["email"] = [f"person{i % 60}@example.com" for i in range(len(current))]
    for rows in (300, 20):  # an exact sample, and a summary
        profile = profile_frame(reference, private=["email", "income"], sample_limit=rows)
        stored = json.dumps(profile)
        assert "@example.com" not in stored
        assert set(profile["columns"]["income"]) <= {"type", "dtype", "private", "n", "n_unique"}
        report = drift(json.loads(stored), current)
        assert "income" in report.skipped and "income" not in set(report.results["column"])
        email = report.results.set_index("column").loc["email"]
        raw = drift(reference, current).results.set_index("column").loc["email"]
        assert email["exact"] and email["score"] == pytest.approx(raw["score"], abs=1e-12)
        assert "@example.com" not in report.to_html()  # hashed labels in the chart too


# ---------------------------------------------------------------------- options
def test_methods_and_thresholds_can_be_set_per_column():
    reference, current = mixed_frames(600, 500, seed=6, text=False)
    report = drift(
        reference, current,
        methods={"age": "psi", "region": "jensenshannon"},
        thresholds={"income": 1e-300, "age": 100.0},
    )  # fmt: skip
    rows = report.results.set_index("column")
    assert rows.loc["age", "method"] == "psi" and rows.loc["age", "threshold"] == 100.0
    assert not rows.loc["age", "drifted"]
    assert rows.loc["income", "method"] == "ks" and not rows.loc["income", "drifted"]
    assert rows.loc["region", "method"] == "jensenshannon"
    everything = drift(reference, current, methods={"*": "psi"})
    assert set(everything.results["method"]) == {"psi"}
    with pytest.raises(DriftError, match="unknown drift method"):
        drift(reference, current, methods={"age": "t-test"})
    with pytest.raises(DriftError, match="does not apply"):
        drift(reference, current, methods={"region": "ks"})
    with pytest.raises(DriftError, match="no column"):
        drift(reference, current, thresholds={"nope": 0.1})


def test_dataset_drift_follows_the_share_of_drifted_columns():
    reference, current = mixed_frames(600, 500, seed=7, text=False)
    report = drift(reference, current)
    share = len(report.drifted_columns) / len(report.results)
    assert report.share == pytest.approx(share)
    assert drift(reference, current, drift_share=share).dataset_drift
    assert not drift(reference, current, drift_share=share + 0.01).dataset_drift
    assert report.summary().startswith(f"{len(report.drifted_columns)} of {len(report.results)}")
    same = drift(reference, reference.sample(frac=1.0, random_state=0))
    assert not same.drifted_columns and not same.dataset_drift


# ---------------------------------------------------------------------- the report
def test_html_report_has_one_chart_per_column_and_escapes_names():
    reference, current = mixed_frames(600, 500, seed=8)
    page = drift(reference, current).to_html()
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 13
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    assert HOSTILE not in page and "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;col&quot;" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    assert "dataset drift" in page


def test_records_have_a_row_per_column_and_a_dataset_row():
    reference, current = mixed_frames(600, 500, seed=9, text=False)
    report = drift(reference, current)
    rows = report.records("c1", "churn", 3, "train", "today")
    assert len(rows) == len(report.results) + 1
    dataset = rows[-1]
    assert dataset["target"] == "dataset" and dataset["column_name"] == "*"
    assert dataset["method"] == "share_of_drifted_columns"
    assert dataset["score"] == report.share and dataset["threshold"] == 0.5
    json.dumps(rows)
    assert json.loads(report.to_json())["drifted_columns"] == report.drifted_columns


# ---------------------------------------------------------------------- the log, the CLI
def _register(log, frame: pd.DataFrame) -> None:
    """churn:1 at champion, with the inputs profile registration keeps and an evaluation
    profile holding the model's outputs on its evaluation data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops_nb.registry.register import register_pipeline

    features = frame[["income", "age", "score"]]
    labels = (frame["age"] > 40).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    register_pipeline(log, "churn", model, training_frame=features, alias="champion")
    log.record("profiles", {
        "profile_id": "eval-1", "model_name": "churn", "model_version": 1, "kind": "evaluation",
        "n_rows": len(frame), "created_at": time.time(),
        "profile": {"predictions": model.predict(features).tolist()},
    })  # fmt: skip
    log.flush()
    return model


def _serve_requests(log, model, frame: pd.DataFrame, rows_per_request: int = 50) -> None:
    features = frame[["income", "age", "score"]]
    for start in range(0, len(features), rows_per_request):
        chunk = features.iloc[start : start + rows_per_request]
        log.record("requests", {
            "request_id": f"r{start}", "model_name": "churn", "model_version": 1,
            "protocol": "mlflow", "status": 200, "n_rows": len(chunk), "latency_ms": 1.0,
            "inputs": json.dumps({"columns": list(chunk.columns),
                                  "data": chunk.to_numpy().tolist()}),
            "outputs": json.dumps(model.predict(chunk).tolist()),
            "created_at": time.time(),
        })  # fmt: skip
    log.flush()


def test_cli_with_files_exit_codes_and_json(tmp_path):
    reference, current = mixed_frames(600, 500, seed=10, text=False)
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_parquet(tmp_path / "cur.parquet")
    reference.iloc[:300].to_parquet(tmp_path / "same.parquet")

    drifted = run_cli("drift", "--reference", "ref.csv", "--current", "cur.parquet")
    assert drifted.returncode == 1, drifted.stderr
    assert "columns drifted: income, age" in drifted.stdout
    calm = run_cli("drift", "-r", "ref.csv", "-c", "same.parquet", "--format", "json")
    assert calm.returncode == 0, calm.stderr
    assert json.loads(calm.stdout)["dataset_drift"] is False
    assert not (tmp_path / ".mlops").exists()  # two files: nothing recorded, no log made

    html = run_cli("drift", "-r", "ref.csv", "-c", "cur.parquet", "-f", "html", "-o", "r.html",
                   "--method", "age=psi", "--threshold", "income=0.9")  # fmt: skip
    assert html.returncode in (0, 1), html.stderr
    assert (tmp_path / "r.html").read_text().count("<svg") == 12
    bad = run_cli("drift", "-r", "ref.csv", "-c", "cur.parquet", "--method", "age=nope")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    help_text = run_cli("drift", "--help").stdout
    assert "1 dataset drift" in help_text


def test_cli_requests_of_a_served_model_land_in_the_drift_view(tmp_path, log_path):
    log = mlops_nb.open_log(log_path)
    training, shifted = mixed_frames(400, 300, seed=11, text=False)
    model = _register(log, training)
    _serve_requests(log, model, shifted)
    log.close()

    result = run_cli("drift", "--log", log_path, "--reference", "churn@champion",
                     "--requests", "churn@champion", "--since", "1d",
                     env=subprocess_env())  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "2 of 3 columns drifted: income, age" in result.stdout
    assert "predictions drifted" in result.stdout

    log = mlops_nb.open_log(log_path)
    rows = log.sql('SELECT * FROM drift ORDER BY target, "column"')
    assert set(rows["target"]) == {"inputs", "dataset", "predictions"}
    inputs = rows[rows["target"] == "inputs"].set_index("column")
    assert inputs.loc["age", "drifted"] and not inputs.loc["score", "drifted"]
    assert set(inputs["method"]) == {"ks"} and inputs["exact"].all()  # 400 rows: exact sample
    assert (inputs["model_name"] == "churn").all() and (inputs["model_version"] == 1).all()
    dataset = rows[rows["target"] == "dataset"].iloc[0]
    assert dataset["column"] == "*" and dataset["score"] == pytest.approx(2 / 3)
    assert rows[rows["target"] == "predictions"].iloc[0]["column"] == "prediction"

    none = run_cli("drift", "--log", log_path, "-r", "churn@champion", "--requests",
                   "churn@champion", "--since", "2099-01-01")  # fmt: skip
    assert none.returncode == 2 and "no answered requests" in none.stderr


def test_drift_from_log_with_a_dataframe_records_one_check(log_path):
    log = mlops_nb.open_log(log_path)
    training, shifted = mixed_frames(400, 300, seed=12, text=False)
    _register(log, training)
    report = drift_from_log(log, "churn:1", current=shifted[["income", "age", "score"]])
    assert report.check_id and report.reference_label == "churn:1 training data"
    found = log.drift_results(model_name="churn", check_id=report.check_id)
    assert len(found) == 4 and set(found["target"]) == {"inputs", "dataset"}
    quiet = drift_from_log(log, "churn:1", current=training, record=False)
    assert quiet.check_id is None
    with pytest.raises(MlopsError, match="no alias"):
        drift_from_log(log, "other@champion", current=training)


def test_a_run_dataset_reference_uses_its_profile_else_its_saved_value(log_path):
    from mlops_nb.capture.checkpoint import save_value

    log = mlops_nb.open_log(log_path)
    training, shifted = mixed_frames(400, 300, seed=13, text=False)
    training = training[["income", "age", "region"]]
    with log.start_run(experiment="churn") as run:
        run.log_record("datasets", {
            "dataset_id": "ds-train-2", "run_id": run.run_id, "cell_seq": 1, "name": "train",
            "version": 2, "kind": "pandas", "n_rows": len(training), "created_at": time.time(),
        })  # fmt: skip
        folder = log.artifacts_dir / "checkpoints" / run.run_id / "1"
        fmt, path = save_value(training, folder, "features")
        run.log_record("checkpoints", {
            "run_id": run.run_id, "cell_seq": 1, "stage": "features", "name": "features",
            "format": fmt, "path": str(path.relative_to(log.artifacts_dir)),
            "size": path.stat().st_size, "created_at": time.time(),
        })  # fmt: skip
    log.record("profiles", {
        "profile_id": "p-train-2", "dataset_id": "ds-train-2", "run_id": run.run_id,
        "name": "train", "kind": "inputs", "n_rows": 400, "created_at": time.time(),
        "profile": profile_frame(training.iloc[:200]),
    })  # fmt: skip
    log.flush()
    current = shifted[["income", "age", "region"]]
    from_profile = drift_from_log(log, f"{run.run_id[:8]}:train", current=current)
    assert from_profile.n_reference == 200  # the stored profile, not the saved value
    from_value = drift_from_log(log, f"{run.run_id}:features", current=current)
    assert from_value.n_reference == 400 and from_value.check_id
    pd.testing.assert_frame_equal(from_value.results, drift(training, current).results)
    with pytest.raises(MlopsError, match="no profile and no saved value"):
        drift_from_log(log, f"{run.run_id}:nothing", current=current)


def test_unsigned_nullable_and_missing_columns():
    reference = pd.DataFrame({
        "small": pd.array(np.arange(600) % 4, dtype="UInt8"),
        "count": pd.array(np.arange(600) % 50, dtype="Int64"),
        "ok": pd.array([True, False, None] * 200, dtype="boolean"),
        "empty": [np.nan] * 600,
        "only_here": 1.0,
    })  # fmt: skip
    current = reference.drop(columns="only_here").iloc[::-1].reset_index(drop=True)
    report = drift(reference, current)
    types = dict(zip(report.results["column"], report.results["column_type"], strict=True))
    assert types == {"small": "categorical", "count": "numerical", "ok": "categorical"}
    assert not report.drifted_columns
    assert set(report.skipped) == {"empty", "only_here"}
