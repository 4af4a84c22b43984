"""Acceptance gates: the condition language, MLflow's MetricThreshold semantics, `mlops-nb gate`
against a real log with registered versions, `%mlops gate` in a kernel and in a pipeline run."""

from __future__ import annotations

import json
import textwrap

import nbformat
import pandas as pd
import pytest
from conftest import run_cli
from nbformat.v4 import new_code_cell, new_notebook
from sklearn.linear_model import LogisticRegression

import mlops_nb as mn
from mlops_nb.registry.gates import (
    GateError,
    GateFailed,
    MetricThreshold,
    check,
    from_thresholds,
    greater_is_better,
    parse_condition,
    parse_conditions,
    split_conditions,
)
from mlops_nb.registry.register import register_pipeline

CHAMPION = {"accuracy": 0.80, "roc_auc": 0.85, "log_loss": 0.40}


def _results(texts, candidate, baseline=CHAMPION, **kwargs):
    results = check(parse_conditions(texts, **kwargs), candidate, baseline, "run c", "champion")
    return {r.condition: r for r in results}


# ---------------------------------------------------------------------- the language
def test_conditions_parse_thresholds_and_absolute_and_relative_changes():
    parsed = {
        text: (c.metric, c.op, c.kind, round(c.amount, 6))
        for text in ["accuracy >= 0.8", "roc_auc >= champion - 0.01", "log_loss <= champion",
                     "f1 >= champion * 1.02", "f1 > baseline + 2%", "latency_ms <= champion * 1.1",
                     "val/loss < 1e-3"]
        for c in [parse_condition(text)]
    }  # fmt: skip
    assert parsed == {
        "accuracy >= 0.8": ("accuracy", ">=", "threshold", 0.8),
        "roc_auc >= champion - 0.01": ("roc_auc", ">=", "absolute", -0.01),
        "log_loss <= champion": ("log_loss", "<=", "absolute", 0.0),
        "f1 >= champion * 1.02": ("f1", ">=", "relative", 0.02),
        "f1 > baseline + 2%": ("f1", ">", "relative", 0.02),
        "latency_ms <= champion * 1.1": ("latency_ms", "<=", "relative", 0.1),
        "val/loss < 1e-3": ("val/loss", "<", "threshold", 0.001),
    }
    # unquoted words on a command line split where the next condition starts
    words = ["acc", ">=", "0.8", "roc_auc >= champion", "-", "0.01", "f1>=0.5"]
    assert split_conditions(words) == ["acc >= 0.8", "roc_auc >= champion - 0.01", "f1>=0.5"]
    assert parse_condition("auc >= staging - 0.01", baseline="staging").kind == "absolute"


def test_bad_conditions_are_all_named_in_one_message():
    with pytest.raises(GateError) as error:
        parse_conditions(["acc => 0.8", "auc >= staging", "log_loss >= champion", "f1 >= 0.5"])
    message = str(error.value)
    assert "cannot read condition 'acc => 0.8'" in message
    assert "compares with 'staging', but the baseline is the version at 'champion'" in message
    assert "log_loss is lower-is-better, so compare it with <=" in message
    assert "--greater-is-better log_loss" in message
    assert "\n" not in message


def test_greater_is_better_is_inferred_from_the_name_and_overridable():
    lower = ["log_loss", "val_loss", "rmse", "mae", "mape", "fit_time", "latency_p99", "error_rate",
             "duration_s", "logloss", "demographic_parity_difference",
             "equalized_odds_difference_gender"]  # fmt: skip
    greater = ["accuracy", "roc_auc", "f1_macro", "precision", "r2", "neg_log_loss", "test_acc",
               "demographic_parity_ratio"]  # fmt: skip
    assert [greater_is_better(m) for m in lower] == [False] * len(lower)
    assert [greater_is_better(m) for m in greater] == [True] * len(greater)
    assert greater_is_better("n_trees") is None  # unknown: the operator decides
    assert parse_condition("n_trees <= champion").op == "<="
    assert greater_is_better("log_loss", {"log_loss": True}) is True
    flipped = parse_condition("log_loss >= champion", directions={"log_loss": True})
    assert flipped.greater and flipped.kind == "absolute"


# ---------------------------------------------------------------------- the semantics
def test_every_failing_condition_is_listed_with_its_values():
    results = _results(
        ["accuracy >= 0.9", "roc_auc >= champion - 0.01", "log_loss <= champion",
         "f1 >= 0.5", "recall >= champion", "accuracy > champion * 1.02"],
        {"accuracy": 0.81, "roc_auc": 0.845, "log_loss": 0.41, "recall": 0.7},
    )  # fmt: skip
    details = {text: (r.passed, r.detail) for text, r in results.items()}
    assert details == {
        "accuracy >= 0.9": (False, "accuracy 0.81, needs >= 0.9"),
        "roc_auc >= champion - 0.01": (True, "roc_auc 0.845 vs champion 0.85: needs >= 0.84"),
        "log_loss <= champion": (False, "log_loss 0.41 vs champion 0.4: needs <= 0.4"),
        "f1 >= 0.5": (False, "f1 not logged by run c"),
        "recall >= champion": (False, "recall 0.7; champion has no recall"),
        "accuracy > champion * 1.02": (
            False, "accuracy 0.81 vs champion 0.8: needs > 0.816 (+2%)"),
    }  # fmt: skip
    failing = results["log_loss <= champion"]
    assert (failing.value, failing.baseline, failing.required) == (0.41, 0.40, 0.40)


def test_lower_is_better_changes_and_relative_changes_on_negative_baselines():
    results = _results(
        ["log_loss <= champion - 0.05", "log_loss <= champion * 0.9",
         "latency_ms <= champion + 10%", "neg_mse >= champion + 10%"],
        {"log_loss": 0.35, "latency_ms": 12.0, "neg_mse": -0.95},
        {"log_loss": 0.40, "latency_ms": 10.0, "neg_mse": -1.0},
    )  # fmt: skip
    assert {t: r.passed for t, r in results.items()} == {
        "log_loss <= champion - 0.05": True,  # 0.35 <= 0.35: equal is enough (rounding aside)
        "log_loss <= champion * 0.9": True,  # needs <= 0.36
        "latency_ms <= champion + 10%": False,  # needs <= 11
        "neg_mse >= champion + 10%": False,  # -1 + 10% of |-1| = -0.9: -0.95 is not enough
    }


def test_a_relative_change_on_a_zero_baseline_follows_mlflow():
    zero = {"errors": 0.0, "gain": 0.0}
    results = _results(
        ["gain >= champion * 1.05", "errors <= champion * 0.9", "errors <= champion * 1.2"],
        {"gain": 1e-3, "errors": 0.0}, zero,
    )  # fmt: skip
    assert results["gain >= champion * 1.05"].passed  # strictly better than 0 is enough
    assert not results["errors <= champion * 0.9"].passed  # an improvement on 0 is impossible
    assert "relative change is undefined" in results["errors <= champion * 0.9"].detail
    assert results["errors <= champion * 1.2"].passed  # a tolerance on 0: no worse than 0


def test_without_a_champion_conditions_against_it_pass_as_the_first_model():
    results = check(
        parse_conditions(["accuracy >= 0.9", "roc_auc >= champion - 0.01", "f1 >= champion"]),
        {"accuracy": 0.95, "roc_auc": 0.7}, None, "run c", "churn@champion",
    )  # fmt: skip
    assert [r.passed for r in results] == [True, True, False]  # f1 missing still fails
    assert (
        results[1].detail == "roc_auc 0.7; no version at churn@champion yet: passes (first model)"
    )


def test_metric_thresholds_become_conditions_with_mlflow_semantics():
    conditions = from_thresholds({
        "roc_auc": MetricThreshold(threshold=0.8, min_absolute_change=0.01),
        "log_loss": MetricThreshold(min_relative_change=0.05),  # lower is better: inferred
        "n_leaves": MetricThreshold(threshold=10, greater_is_better=False),
    })  # fmt: skip
    assert [c.text for c in conditions] == [
        "roc_auc >= 0.8", "roc_auc >= champion + 0.01", "log_loss <= champion - 5%",
        "n_leaves <= 10",
    ]  # fmt: skip
    results = check(conditions, {"roc_auc": 0.855, "log_loss": 0.38, "n_leaves": 12}, CHAMPION)
    assert [r.passed for r in results] == [True, False, True, False]
    with pytest.raises(GateError, match="min_relative_change must be in"):
        from_thresholds({"f1": MetricThreshold(min_relative_change=1.5)})


# ---------------------------------------------------------------------- mlops-nb gate
@pytest.fixture
def registry(log_path):
    """A log with model `churn`: v1 (champion) from run `old`; runs `new` and `other`."""
    log = mn.open_log(log_path)
    frame = pd.DataFrame({"a": [0.0, 1, 2, 3, 4, 5, 6, 7], "b": [1.0, 0, 1, 0, 1, 0, 1, 0]})
    model = LogisticRegression().fit(frame, [0, 0, 0, 0, 1, 1, 1, 1])
    runs = {}
    for label, metrics in [("old", CHAMPION),
                           ("new", {"accuracy": 0.83, "roc_auc": 0.845, "log_loss": 0.41}),
                           ("other", {"accuracy": 0.9})]:  # fmt: skip
        with log.start_run(experiment="churn") as run:
            run.log_metrics(metrics)
        runs[label] = run.run_id
    register_pipeline(log, "churn", model, training_frame=frame, run_id=runs["old"],
                      alias="champion")  # fmt: skip
    log.flush()
    return log, runs, model, frame


def test_cli_gate_exit_codes_failures_listed_and_rows_recorded(registry):
    log, runs, _, _ = registry
    new = runs["new"]
    passed = run_cli("gate", new, "accuracy >= 0.8", "roc_auc >= champion - 0.01")
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines()[0] == (
        f"gate passed: 2 conditions · run {new[:8]} against churn@champion (v1)"
    )
    conditions = ["accuracy >= 0.9", "log_loss <= champion", "roc_auc >= champion", "f1 >= 0.5",
                  "accuracy >= 0.8"]  # fmt: skip
    failed = run_cli("gate", new, *conditions)
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == [
        f"gate FAILED: 4 of 5 conditions failed · run {new[:8]} against churn@champion (v1)",
        "  FAIL  accuracy >= 0.9       accuracy 0.83, needs >= 0.9",
        "  FAIL  log_loss <= champion  log_loss 0.41 vs champion (v1) 0.4: needs <= 0.4",
        "  FAIL  roc_auc >= champion   roc_auc 0.845 vs champion (v1) 0.85: needs >= 0.85",
        f"  FAIL  f1 >= 0.5             f1 not logged by run {new[:8]}",
        "  PASS  accuracy >= 0.8       accuracy 0.83, needs >= 0.8",
    ]
    warned = run_cli("gate", new, *conditions, "--warn-only")
    assert warned.returncode == 0 and "gate FAILED: 4 of 5 conditions failed (warn only)" in (
        warned.stdout
    )
    version = run_cli("gate", "churn:1", "accuracy >= 0.8", "--format", "json")
    assert version.returncode == 0, version.stderr
    payload = json.loads(version.stdout)
    assert payload["passed"] and payload["candidate"] == "churn:1"
    assert payload["model_version"] == 1 and payload["baseline_version"] == 1
    bad = run_cli("gate", new, "accuracy => 0.8")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "cannot read condition 'accuracy => 0.8'" in bad.stderr

    rows = log.gate_results(new)
    assert len(rows) == 2 + 5 + 5 and rows["gate_id"].nunique() == 3
    row = rows[rows["condition"] == "log_loss <= champion"].iloc[0]
    assert (row["value"], row["baseline"], row["passed"]) == (0.41, 0.40, False)
    assert (row["baseline_ref"], row["baseline_version"], row["model_name"]) == (
        "churn@champion",
        1,
        "churn",
    )
    assert "needs <= 0.4" in row["detail"]


def test_cli_promote_moves_the_alias_and_the_history_says_why(registry):
    log, runs, model, frame = registry
    register_pipeline(log, "churn", model, training_frame=frame, run_id=runs["new"])  # v2
    log.flush()
    refused = run_cli("gate", runs["new"], "roc_auc >= champion", "--promote", "champion")
    assert refused.returncode == 1 and "not promoted to @champion" in refused.stdout
    assert log.model_version("churn", alias="champion")["version"] == 1

    promoted = run_cli("gate", runs["new"], "roc_auc >= champion - 0.01", "accuracy >= 0.8",
                       "--promote", "champion")  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr
    assert "promoted churn:2 to @champion" in promoted.stdout
    assert log.model_version("churn", alias="champion")["version"] == 2
    last = log.alias_history("churn", "champion").iloc[-1]
    assert (last["from_version"], last["to_version"]) == (1, 2)
    assert last["reason"] == "gate passed: roc_auc >= champion - 0.01; accuracy >= 0.8"

    unregistered = run_cli("gate", runs["other"], "accuracy >= 0.8", "--promote", "champion")
    assert unregistered.returncode == 2
    assert unregistered.stderr.strip() == (
        f"mlops-nb gate: cannot promote: run {runs['other'][:8]} has no registered version of "
        "model 'churn'; register it first (mn.register_model or %mlops register)"
    )
    assert log.gate_results(runs["other"]).empty  # refused before anything was recorded


# ---------------------------------------------------------------------- %mlops gate
def test_magic_gate_shows_the_result_and_a_failure_fails_the_cell(shell, capsys):
    def run(code: str):
        return shell.run_cell(textwrap.dedent(code).strip("\n"))

    run("%mlops track --experiment churn")
    run("import mlops_nb as mn\nmn.log_metrics({'accuracy': 0.95, 'roc_auc': 0.9})")
    passed = run('%mlops gate "accuracy >= 0.9" "roc_auc >= champion - 0.01"')
    assert passed.success
    out = capsys.readouterr().out
    assert "gate passed: 2 conditions" in out and "passes (first model)" in out
    failed = run("%mlops gate accuracy >= 0.99 roc_auc >= 0.95")
    assert isinstance(failed.error_in_exec, GateFailed)
    assert str(failed.error_in_exec) == (
        "gate failed, 2 of 2 conditions: accuracy >= 0.99 (accuracy 0.95, needs >= 0.99); "
        "roc_auc >= 0.95 (roc_auc 0.9, needs >= 0.95)"
    )
    assert run('%mlops gate "accuracy >= 0.99" --warn-only').success
    log = shell._mlops_tracker.log
    log.flush()
    rows = log.gate_results(shell._mlops_tracker.run.run_id)
    assert rows["passed"].tolist() == [True, True, False, False, False]


def test_a_failed_gate_fails_the_pipeline_run_and_warn_only_does_not(registry, tmp_path):
    log, _, _, _ = registry
    notebook = tmp_path / "gated.ipynb"
    parameters = new_code_cell("warn: bool = False")
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        parameters,
        new_code_cell(
            "%%mlops track evaluate\nimport mlops_nb as mn\n"
            "mn.log_metrics({'accuracy': 0.7, 'roc_auc': 0.8})\n"
            "flag = '--warn-only' if warn else ''\n"
            '%mlops gate "accuracy >= 0.9" "roc_auc >= champion - 0.01" --model churn $flag'
        ),
        new_code_cell("after_the_gate = True"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(notebook))

    failed = run_cli("run", notebook, "-o", tmp_path / "out.ipynb", cwd=tmp_path)
    assert failed.returncode == 1
    record = log.run("latest")
    assert record.info["status"] == "failed"
    assert "GateFailed: gate failed, 2 of 2 conditions" in record.info["error"]
    assert "accuracy >= 0.9 (accuracy 0.7, needs >= 0.9)" in record.info["error"]
    assert (
        "roc_auc >= champion - 0.01 (roc_auc 0.8 vs champion (v1) 0.85: needs >= 0.84)"
        in (record.info["error"])
    )

    warned = run_cli("run", notebook, "-p", "warn", "true", "-o", tmp_path / "out2.ipynb",
                     cwd=tmp_path)  # fmt: skip
    assert warned.returncode == 0, warned.stderr
    record = log.run("latest")
    assert record.info["status"] == "finished"
    gates = log.gate_results(record.run_id)
    assert gates["passed"].tolist() == [False, False]

    from mlops_nb.docs.build import build_docs

    html, md = build_docs(notebook, tmp_path / "docs", record.run_id, ["html", "md"], log.path)
    page = html.read_text()
    assert "<h3>Acceptance gates</h3>" in page and "<code>accuracy &gt;= 0.9</code>" in page
    assert "churn@champion (v1)" in page
    text = md.read_text()
    assert "### Acceptance gates" in text
    assert (
        "| roc_auc &gt;= champion - 0.01 | 0.8000 | 0.8500 (churn@champion (v1)) | **failed** |"
        in (text)
    )
