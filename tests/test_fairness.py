"""Fairness per group of a sensitive column: the numbers are fairlearn's, recorded in the log
and the run's metrics from a real IPython shell (``%%mlops track evaluate --sensitive``), and
checked by a gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from IPython.core.error import UsageError
from sklearn.metrics import accuracy_score
from test_magics import recorded, run

import mlops_nb as mn
from mlops_nb.capture.fairness import FairnessError, fairness, fairness_card, run_metrics
from mlops_nb.registry.explain import model_card_data
from mlops_nb.registry.gates import GateFailed

METRICS = {"accuracy": accuracy_score, "selection_rate": selection_rate,
           "tpr": true_positive_rate, "fpr": false_positive_rate, "count": count}  # fmt: skip


def biased(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, predictions that favour some groups, and four groups of unequal size."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    truth = rng.integers(0, 2, n)
    favour = np.select([groups == "north", groups == "south"], [0.3, -0.2], 0.0)
    predicted = (rng.random(n) < np.clip(0.3 + 0.4 * truth + favour, 0, 1)).astype(int)
    return truth, predicted, groups


def fairlearn_frame(truth, predicted, groups) -> MetricFrame:
    return MetricFrame(metrics=METRICS, y_true=truth, y_pred=predicted,
                       sensitive_features=groups)  # fmt: skip


# ---------------------------------------------------------------------- the numbers
def test_binary_numbers_per_group_and_summary_equal_fairlearns():
    truth, predicted, groups = biased(500)
    report = fairness(truth, predicted, pd.Series(groups, name="region"))
    expected = fairlearn_frame(truth, predicted, groups)
    assert report.sensitive == "region" and report.positive == 1
    assert list(report.by_group.index) == ["east", "north", "south", "west"]
    pd.testing.assert_frame_equal(report.by_group, expected.by_group.astype(float),
                                  check_names=False)  # fmt: skip
    assert report.overall == pytest.approx(expected.overall.to_dict())
    assert report.summary == pytest.approx({
        "demographic_parity_difference": demographic_parity_difference(
            truth, predicted, sensitive_features=groups),
        "demographic_parity_ratio": demographic_parity_ratio(
            truth, predicted, sensitive_features=groups),
        "equalized_odds_difference": equalized_odds_difference(
            truth, predicted, sensitive_features=groups),
    })  # fmt: skip
    assert report.summary["demographic_parity_ratio"] < 0.8  # the north is favoured


def test_text_labels_take_the_classifiers_second_class_as_positive():
    truth, predicted, groups = biased(300, seed=1)
    words = np.array(["stayed", "churned"])
    report = fairness(words[truth], words[predicted], groups, classes=["churned", "stayed"])
    assert report.positive == "stayed"
    expected = fairlearn_frame((truth == 0).astype(int), (predicted == 0).astype(int), groups)
    assert report.by_group["selection_rate"].tolist() == pytest.approx(
        expected.by_group["selection_rate"].tolist())  # fmt: skip
    given = fairness(words[truth], words[predicted], groups, pos_label="churned")
    assert given.summary["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(truth, predicted, sensitive_features=groups))  # fmt: skip


def test_multiclass_takes_each_class_against_the_rest_and_reports_the_worst():
    rng = np.random.default_rng(2)
    groups = rng.choice(["a", "b", "c"], 600)
    truth = rng.integers(0, 3, 600)
    predicted = np.where(rng.random(600) < 0.6, truth, rng.integers(0, 3, 600))
    predicted[(groups == "a") & (rng.random(600) < 0.3)] = 2
    report = fairness(truth, predicted, groups)
    assert report.positive is None and report.classes == [0, 1, 2]
    differences, ratios, odds = [], [], []
    for c in (0, 1, 2):
        one = (truth == c).astype(int), (predicted == c).astype(int)
        expected = fairlearn_frame(*one, groups)
        for metric in ("selection_rate", "tpr", "fpr"):
            assert report.by_group[f"{metric}[{c}]"].tolist() == pytest.approx(
                expected.by_group[metric].tolist())  # fmt: skip
        differences.append(demographic_parity_difference(*one, sensitive_features=groups))
        ratios.append(demographic_parity_ratio(*one, sensitive_features=groups))
        odds.append(equalized_odds_difference(*one, sensitive_features=groups))
    accuracy = MetricFrame(metrics=accuracy_score, y_true=truth, y_pred=predicted,
                           sensitive_features=groups)  # fmt: skip
    assert report.by_group["accuracy"].tolist() == pytest.approx(accuracy.by_group.tolist())
    assert report.summary == pytest.approx({"demographic_parity_difference": max(differences),
                                            "demographic_parity_ratio": min(ratios),
                                            "equalized_odds_difference": max(odds)})  # fmt: skip


def test_edge_groups_match_fairlearn_no_positives_no_negatives_numeric_groups():
    truth = np.array([0, 0, 0, 1, 1, 0, 1, 1, 0, 1])
    predicted = np.array([0, 1, 0, 1, 0, 0, 1, 1, 1, 1])
    groups = np.array([10, 10, 10, 2, 2, 7, 7, 7, 7, 2])  # 10: no positives; 2: no negatives
    report = fairness(truth, predicted, groups)
    expected = fairlearn_frame(truth, predicted, groups)
    assert list(report.by_group.index) == ["2", "7", "10"]  # sorted as numbers, as fairlearn
    ours, theirs = report.by_group, expected.by_group.astype(float)
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), theirs.reset_index(drop=True))
    assert report.summary["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(truth, predicted, sensitive_features=groups))  # fmt: skip
    nobody = fairness(truth, np.zeros(10, dtype=int), groups)
    assert np.isnan(nobody.summary["demographic_parity_ratio"])
    assert np.isnan(demographic_parity_ratio(truth, np.zeros(10, int), sensitive_features=groups))
    assert nobody.rows()[-2]["value"] is None  # NaN is recorded as NULL


def test_missing_sensitive_values_are_a_group_and_bad_input_is_one_line():
    truth, predicted, groups = biased(200, seed=3)
    holes = pd.Series(groups, dtype=object)
    holes[:15] = None
    report = fairness(truth, predicted, holes, name="region")
    assert report.by_group.loc["(missing)", "count"] == 15
    with pytest.raises(FairnessError, match="differ in length"):
        fairness(truth, predicted[:-1], groups)
    with pytest.raises(FairnessError, match="pos_label is for two classes"):
        fairness([0, 1, 2], [0, 1, 2], ["a", "b", "a"], pos_label=1)


def test_several_sensitive_columns_gate_on_the_worst_and_keep_each_ones_numbers():
    truth, predicted, groups = biased(400, seed=6)
    ages = np.random.default_rng(7).choice(["young", "old"], 400)
    reports = [fairness(truth, predicted, groups, name="region"),
               fairness(truth, predicted, ages, name="age band")]  # fmt: skip
    metrics = run_metrics(reports)
    ratios = [r.summary["demographic_parity_ratio"] for r in reports]
    assert metrics["demographic_parity_ratio"] == min(ratios)
    assert metrics["demographic_parity_ratio_region"] == ratios[0]
    assert metrics["demographic_parity_ratio_age_band"] == ratios[1]
    differences = [r.summary["equalized_odds_difference"] for r in reports]
    assert metrics["equalized_odds_difference"] == max(differences)


# ---------------------------------------------------------------------- recorded from a notebook
FEATURES = """
%%mlops track features
import numpy as np, pandas as pd
from sklearn.model_selection import train_test_split
rng = np.random.default_rng(0)
n = 800
X = pd.DataFrame({"income": rng.normal(50, 10, n),
                  "region": rng.choice(["north", "south", "east"], n)})
y = ((X["income"] + np.where(X["region"] == "north", 12, 0) + rng.normal(0, 4, n)) > 55)
y = y.astype(int)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
"""
TRAIN = """
%%mlops track train
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
model = Pipeline([
    ("prepare", ColumnTransformer([("region", OneHotEncoder(), ["region"])],
                                  remainder="passthrough")),
    ("classify", LogisticRegression(max_iter=1000)),
]).fit(X_train, y_train)
baseline = LogisticRegression().fit(X_train[["income"]], y_train)
"""


def test_track_evaluate_sensitive_records_fairlearns_numbers_as_rows_and_run_metrics(shell):
    run(shell, "%mlops track --experiment fair")
    for cell in (FEATURES, TRAIN):
        assert run(shell, cell).success
    evaluate = """
    %%mlops track evaluate --sensitive region
    predicted = model.predict(X_test)
    churn_probability = model.predict_proba(X_test)[:, 1]
    baseline_predicted = baseline.predict(X_test[["income"]])
    """
    assert run(shell, evaluate).success
    log, run_id = recorded(shell)
    ns = shell.user_ns
    groups = ns["X_test"]["region"].to_numpy()
    expected = fairlearn_frame(ns["y_test"].to_numpy(), ns["predicted"], groups)
    rows = log.fairness(run_id=run_id)
    assert set(rows["sensitive"]) == {"region"} and set(rows["model_name"]) == {"model"}
    assert set(rows["cell_seq"]) == {3}
    per_group = rows[rows["group"] != "*"].pivot(index="group", columns="metric", values="value")
    for metric in METRICS:
        assert per_group[metric].tolist() == pytest.approx(expected.by_group[metric].tolist())
    summary = dict(zip(rows[rows["group"] == "*"]["metric"], rows[rows["group"] == "*"]["value"],
                       strict=True))  # fmt: skip
    ratio = demographic_parity_ratio(ns["y_test"], ns["predicted"], sensitive_features=groups)
    assert summary["demographic_parity_ratio"] == pytest.approx(ratio)
    assert summary["accuracy"] == pytest.approx(expected.overall["accuracy"])
    metrics = log.run(run_id).metrics
    assert metrics["demographic_parity_ratio"] == pytest.approx(ratio)
    assert metrics["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(
        ns["y_test"], ns["predicted"], sensitive_features=groups))  # fmt: skip
    shown = _summary(shell)
    assert "demographic_parity_ratio=" in shown and "equalized_odds_difference=" in shown
    assert "baseline_predicted could be meant too" in shown  # the baseline's, not measured
    card = fairness_card(rows)
    assert card[0]["sensitive"] == "region" and len(card[0]["groups"]) == 3
    assert card[0]["summary"]["demographic_parity_ratio"] == pytest.approx(ratio)
    assert run(shell, "%mlops register fair --model model").success
    log.flush()
    shown = model_card_data(log, log.model_version("fair", 1))
    assert shown["fairness"][0]["summary"]["demographic_parity_ratio"] == pytest.approx(ratio)
    assert {r["feature"] for r in shown["importance"]["rows"]} == {"income", "region"}
    assert shown["importance"]["svg"].startswith("<svg")


def test_a_sensitive_column_of_personal_data_is_grouped_by_keyed_hashes(shell):
    run(shell, "%mlops track --experiment private")
    for cell in (FEATURES, TRAIN):
        assert run(shell, cell).success
    evaluate = """
    %%mlops track evaluate --sensitive email
    predicted = model.predict(X_test)
    email = [f"{r}@example.com" for r in X_test["region"]]
    """
    assert run(shell, evaluate).success
    log, run_id = recorded(shell)
    groups = set(log.fairness(run_id=run_id)["group"]) - {"*"}
    assert len(groups) == 3 and all(g.startswith("h:") for g in groups), groups
    assert "email holds personal data" in _summary(shell)


def test_a_gate_on_demographic_parity_ratio_fails_and_passes(shell):
    run(shell, "%mlops track --experiment gated")
    for cell in (FEATURES, TRAIN, "%%mlops track evaluate --sensitive region\n"
                 "predicted = model.predict(X_test)"):  # fmt: skip
        assert run(shell, cell).success
    failed = run(shell, '%mlops gate "demographic_parity_ratio >= 0.8"')
    assert isinstance(failed.error_in_exec, GateFailed)
    assert "demographic_parity_ratio" in str(failed.error_in_exec)
    assert run(shell, '%mlops gate "demographic_parity_ratio >= 0.05"').success
    log, run_id = recorded(shell)
    gates = log.gate_results(run_id)
    assert gates["passed"].tolist() == [False, True]


def test_overrides_a_series_of_groups_and_what_cannot_be_found_is_a_note(shell):
    run(shell, "%mlops track --experiment overrides")
    setup = """
    %%mlops track features
    import numpy as np, pandas as pd
    rng = np.random.default_rng(4)
    truth = pd.Series(rng.integers(0, 2, 300))
    guess = pd.Series(np.where(rng.random(300) < 0.8, truth, 1 - truth))
    band = pd.Series(rng.choice(["young", "old"], 300), name="band")
    """
    assert run(shell, setup).success
    line = "%%mlops track evaluate --sensitive band --labels truth --predictions guess\nok = 1"
    assert run(shell, line).success
    log, run_id = recorded(shell)
    ns = shell.user_ns
    rows = log.fairness(run_id=run_id)
    star = rows[rows["group"] == "*"].set_index("metric")["value"]
    assert star["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(
        ns["truth"], ns["guess"], sensitive_features=ns["band"]))  # fmt: skip
    assert run(shell, "%%mlops track evaluate --sensitive nowhere --labels truth "
               "--predictions guess\nalso = 2").success  # fmt: skip
    note = shell._mlops_tracker.last_outcome.notes
    assert note and "fairness not measured" in note[0] and "'nowhere'" in note[0]
    log, _ = recorded(shell)
    kinds = log.sql(f"SELECT kind, message FROM notes WHERE run_id = '{run_id}'")
    assert "fairness" in set(kinds["kind"])
    result = run(shell, "%%mlops track evaluate --labels truth\nnever = 3")
    error = result.error_in_exec or result.error_before_exec
    assert isinstance(error, UsageError) and "never" not in ns
    assert "go with --sensitive" in str(error)


def test_mn_fairness_returns_a_report_and_records_it_into_the_active_run(log_path):
    truth, predicted, groups = biased(400, seed=5)
    log = mn.open_log(log_path)
    with log.start_run(experiment="script") as active:
        report = mn.fairness(truth, predicted, pd.Series(groups, name="region"), record=True)
    assert "demographic parity difference" in repr(report)
    assert "<table" in report._repr_html_() and "region" in report._repr_html_()
    log.flush()
    metrics = log.run(active.run_id).metrics
    assert metrics["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(truth, predicted, sensitive_features=groups))  # fmt: skip
    rows = log.sql(f"SELECT * FROM fairness WHERE run_id = '{active.run_id}'")
    assert len(rows) == 4 * 5 + 5 + 3  # 4 groups x 5 metrics, overall 5, summary 3


def _summary(ip) -> str:
    from mlops_nb.notebook.display import CellSummary

    return repr(CellSummary(ip._mlops_tracker.last_outcome))
