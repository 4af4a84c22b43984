"""The model registry on real logs: a pipeline run of the example, a notebook kernel, several
registering processes, and the files themselves (tampered, untrusted, pickled)."""

from __future__ import annotations

import json
import operator
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, subprocess_env

import mlops_nb as mn
from mlops_nb.registry.load import ModelLoadError, load_file, load_model
from mlops_nb.registry.register import register_pipeline

CHURN = REPO / "example_notebooks" / "churn.ipynb"


def cli(*args, log: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "mlops_nb.cli", *map(str, args), "--log", str(log)],
        capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    """One small pipeline run of the example notebook (its values saved as checkpoints)."""
    folder = tmp_path_factory.mktemp("churn")
    log = folder / "log.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "mlops_nb.cli", "run", str(CHURN), "-p", "n_customers", "1500",
         "-p", "n_estimators", "15", "-o", str(folder / "out.ipynb")],
        cwd=folder, capture_output=True, text=True, timeout=600,
        env=subprocess_env(MLOPS_NB_LOG=str(log)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return log, mn.open_log(log, create=False).run("latest").run_id


def test_registering_proposes_the_chain_from_lineage_and_verifies_it(churn_run):
    log_path, run_id = churn_run
    done = cli("models", "register", "churn", "--run", run_id, "--alias", "champion", log=log_path)
    assert done.stdout.startswith("registered churn:1 (preprocess -> model); verified: same ")
    assert "predicted on X_test (375 rows)" in done.stdout
    log = mn.open_log(log_path, create=False)
    record = log.model_version("churn", alias="champion")
    assert (record["version"], record["steps"], record["model_var"]) == (1, ["preprocess"], "model")
    columns = {c["name"]: c for c in record["signature"]["columns"]}
    assert columns["contract"]["categories"] == ["month-to-month", "one-year", "two-year"]
    assert columns["tenure_months"]["kind"] == "integer" and "churned" not in columns
    assert record["outputs"] == {"class_name": "sklearn.ensemble._forest.RandomForestClassifier",
                                 "task": "classification", "classes": [0, 1],
                                 "probabilities": True}  # fmt: skip
    assert set(record["metrics"]) >= {"accuracy", "roc_auc"}
    assert record["packages"]["scikit-learn"] and record["packages"]["python"]
    shown = cli("models", "show", "churn@champion", log=log_path).stdout
    assert "pipeline:         preprocess -> model" in shown
    assert "contract: category (category, not null) in ['month-to-month'" in shown
    loaded = load_model(log, "churn@champion")
    assert [name for name, _ in loaded.pipeline.steps] == ["preprocess", "model"]
    docs = log_path.parent / "docs"
    cli("docs", CHURN, "--run", run_id, "--out", docs, "--format", "md", log=log_path)
    card = next(docs.glob("*.md")).read_text()
    assert "| registered | `churn:1` (aliases: champion)" in card


def test_a_wrong_chain_is_rejected_with_the_first_row_that_differs(churn_run):
    log_path, run_id = churn_run
    wrong_step = cli("models", "register", "bad", "--run", run_id, "--steps", "pca", log=log_path,
                     check=False)  # fmt: skip
    assert wrong_step.returncode == 2
    assert wrong_step.stderr.startswith("mlops-nb models: the pipeline pca -> model fails on ")
    wrong_model = cli("models", "register", "bad", "--run", run_id, "--model", "baseline",
                      "--steps", "preprocess", log=log_path, check=False)  # fmt: skip
    assert wrong_model.returncode == 2
    assert "does not reproduce predicted on X_test (first difference at row" in wrong_model.stderr
    assert len(wrong_model.stderr.strip().splitlines()) == 1
    assert mn.open_log(log_path, create=False).model_version("bad") is None


def test_alias_moves_are_atomic_recorded_and_queryable_by_date(churn_run, tmp_path):
    log = mn.open_log(tmp_path / "log.duckdb")
    pipeline, frame = _tiny_model()
    for _ in range(3):
        register_pipeline(log, "tiny", pipeline, training_frame=frame)
    log.move_alias("tiny", "champion", 1, reason="first")
    time.sleep(0.05)
    between = pd.Timestamp.now(tz="UTC")
    time.sleep(0.05)
    assert log.move_alias("tiny", "champion", 3, reason="better auc") == 1
    history = log.alias_history("tiny", "champion")
    assert history[["from_version", "to_version", "reason"]].astype(object).where(
        history.notna(), None
    ).values.tolist() == [[None, 1, "first"], [1, 3, "better auc"]]
    assert log.alias_at("tiny", "champion", between) == 1
    assert log.alias_at("tiny", "champion", pd.Timestamp.now(tz="UTC")) == 3
    assert log.alias_at("tiny", "champion", "2000-01-01") is None
    at = cli("models", "history", "tiny", "--at", between.isoformat(), "--format", "json",
             log=tmp_path / "log.duckdb")  # fmt: skip
    assert json.loads(at.stdout) == [{"name": "tiny", "alias": "champion", "version": 1}]
    view = log.sql("SELECT version FROM model_aliases WHERE name = 'tiny' AND alias = 'champion'")
    assert view["version"].tolist() == [3]
    with pytest.raises(mn.MlopsError, match="has no version 9"):
        log.move_alias("tiny", "champion", 9)


def test_concurrent_registrations_get_distinct_version_numbers(tmp_path):
    log_path = tmp_path / "log.duckdb"
    mn.open_log(log_path).close()
    script = textwrap.dedent(f"""
        import sys
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        import mlops_nb as mn
        from mlops_nb.registry.register import register_pipeline
        frame = pd.DataFrame({{"x": [0.0, 1.0, 2.0, 3.0]}})
        model = LogisticRegression().fit(frame, [0, 0, 1, 1])
        log = mn.open_log({str(log_path)!r})
        for _ in range(3):
            print(register_pipeline(log, "race", model, training_frame=frame)["version"])
    """)  # fmt: skip
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env()
        )  # fmt: skip
        for _ in range(4)
    ]
    numbers = [int(n) for w in workers for n in w.communicate(timeout=300)[0].split()]
    assert all(w.returncode == 0 for w in workers)
    assert sorted(numbers) == list(range(1, 13))


def test_tampered_untrusted_and_pickled_files_are_refused(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    log = mn.open_log(tmp_path / "log.duckdb")
    pipeline, frame = _tiny_model()
    record = register_pipeline(log, "tiny", pipeline, training_frame=frame)
    stored = log.artifacts_dir / record["artifact_sha256"][:2] / record["artifact_sha256"]
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match="does not match its recorded sha256"):
        load_model(log, "tiny:1")
    odd = make_pipeline(FunctionTransformer(operator.neg), pipeline).fit(frame, [0, 0, 1, 1])
    register_pipeline(log, "odd", odd, training_frame=frame)
    with pytest.raises(ModelLoadError, match=r"not trusted: _operator\.neg"):
        load_model(log, "odd")
    assert load_model(log, "odd", trust=["_operator.neg"]).version == 1
    pickled = tmp_path / "model.pkl"
    import hashlib
    import pickle

    pickled.write_bytes(pickle.dumps(pipeline))
    sha = hashlib.sha256(pickled.read_bytes()).hexdigest()
    with pytest.raises(ModelLoadError, match="saved with pickle"):
        load_file(pickled, sha, "pickle")
    with pytest.warns(UserWarning, match="arbitrary code"):
        assert load_file(pickled, sha, "pickle", allow_pickle=True).predict(frame).tolist()


def test_register_from_the_notebook_uses_the_kernels_own_objects(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("%load_ext mlops_nb")
        shell.run_cell(f"%mlops track --experiment reg --log {tmp_path / 'log.duckdb'}")
        cells = [
            "%%mlops track features\nimport numpy as np, pandas as pd\n"
            "from sklearn.preprocessing import StandardScaler\n"
            "rng = np.random.default_rng(0)\n"
            "X = pd.DataFrame({'a': rng.normal(size=200), 'b': rng.normal(size=200)})\n"
            "y = (X['a'] + X['b'] > 0).astype(int)\n"
            "X_train, X_test, y_train = X[:150], X[150:], y[:150]\n"
            "scaler = StandardScaler().set_output(transform='pandas').fit(X_train)\n"
            "X_train_s, X_test_s = scaler.transform(X_train), scaler.transform(X_test)",
            "%%mlops track train\nfrom sklearn.linear_model import LogisticRegression\n"
            "clf = LogisticRegression().fit(X_train_s, y_train)",
            "%%mlops track evaluate\npredicted = clf.predict(X_test_s)",
        ]
        for cell in cells:
            assert shell.run_cell(cell).success
        shell.run_cell("%mlops register scored --model clf --alias champion")
        result = shell.run_cell("import mlops_nb as mn\nrecord = mn.register_model('again', "
                                "model='clf')")  # fmt: skip
        assert result.success, result.error_in_exec
        log = mn.open_log(tmp_path / "log.duckdb", create=False)
        first = log.model_version("scored", alias="champion")
        assert first["steps"] == ["scaler"] and first["verification"]["input"] == "X_test"
        assert shell.user_ns["record"]["verification"]["verified"] is True
        scored = load_model(log, "scored@champion")
        frame = shell.user_ns["X_test"]
        assert (scored.pipeline.predict(frame) == shell.user_ns["predicted"]).all()
    finally:
        shell.run_cell("%mlops stop")
        shell.run_cell("%unload_ext mlops_nb")
        from mlops_nb.log import api as log_api

        log_api._ACTIVE_RUNS.clear()
        InteractiveShell.clear_instance()


def _tiny_model():
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    return LogisticRegression().fit(frame, [0, 0, 1, 1]), frame
