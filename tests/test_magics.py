"""The %mlops magics driven through a real IPython InteractiveShell, on a real log file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

from IPython.core.error import UsageError

import mlops_nb as mn


def run(ip, code: str, **kwargs):
    """Run a cell as the frontend would; dedent so tests can indent their cells."""
    return ip.run_cell(textwrap.dedent(code).strip("\n"), store_history=True, **kwargs)


def magic_error(ip, code: str) -> str:
    result = run(ip, code)
    assert isinstance(result.error_in_exec or result.error_before_exec, UsageError), result
    return str(result.error_in_exec or result.error_before_exec)


def recorded(ip):
    tracker = ip._mlops_tracker
    tracker.log.flush()
    return tracker.log, tracker.run.run_id


def test_track_starts_a_run_with_its_environment(shell, capsys):
    run(shell, "%mlops track --experiment churn")
    assert "recording into run" in capsys.readouterr().out
    run(shell, "%%mlops track ingest\nimport pandas as pd\nframe = pd.DataFrame({'a': [1, 2]})")
    log, run_id = recorded(shell)
    info = log.run(run_id).info
    assert info["experiment"] == "churn" and info["status"] == "running"
    environment = log.sql(f"SELECT kind, name, version FROM environment WHERE run_id = '{run_id}'")
    versions = dict(zip(environment["name"], environment["version"], strict=False))
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    import pandas

    assert versions["pandas"] == pandas.__version__
    run(shell, "%mlops status")
    assert "cells recorded: 1" in capsys.readouterr().out
    run(shell, "%mlops stop")
    assert log.run(run_id).info["status"] == "finished"


def test_a_tracked_cell_runs_exactly_as_if_the_magic_were_not_there(shell):
    run(shell, "%mlops track")
    result = run(shell, "%%mlops track clean --name tidy\nx = 41\nx + 1")
    assert result.success and result.result == 42
    assert shell.user_ns["x"] == 41 and shell.user_ns["_"] == 42
    log, run_id = recorded(shell)
    cells = log.run(run_id).cells
    assert cells["stage"].tolist() == ["clean"] and cells["name"].tolist() == ["tidy"]
    assert cells["source"].tolist() == ["x = 41\nx + 1"]
    assert json.loads(cells["writes"][0]) == ["x"] and cells["status"][0] == "ok"


def test_name_may_come_before_the_stage_on_the_track_line(shell):
    run(shell, "%mlops track")
    assert run(shell, "%%mlops track --name tidy clean\na = 1").success
    assert run(shell, "%%mlops track train --name=fit\nb = 2").success
    log, run_id = recorded(shell)
    cells = log.run(run_id).cells
    assert list(zip(cells["stage"], cells["name"], strict=True)) == [
        ("clean", "tidy"), ("train", "fit"),
    ]  # fmt: skip


def test_an_error_in_a_tracked_cell_reaches_the_user_unchanged_and_is_recorded(shell):
    run(shell, "%mlops track")
    result = run(shell, "%%mlops track features\nvalue = 1\nraise ValueError('bad column: age')")
    assert isinstance(result.error_in_exec, ValueError)
    assert str(result.error_in_exec) == "bad column: age"
    assert shell.user_ns["value"] == 1
    log, run_id = recorded(shell)
    cell = log.run(run_id).cells.iloc[0]
    assert (cell["status"], cell["error_type"]) == ("error", "ValueError")
    assert cell["error_message"] == "bad column: age"


def test_usage_errors_are_one_line_and_the_cell_body_does_not_run(shell):
    run(shell, "%mlops track")
    assert "needs a stage" in magic_error(shell, "%%mlops track\nnever = 1")
    assert "unknown option --bogus" in magic_error(shell, "%%mlops track clean --bogus\nnever = 1")
    assert "never" not in shell.user_ns
    assert "invalid choice" in magic_error(shell, "%mlops frobnicate")
    assert "unrecognized arguments" in magic_error(shell, "%mlops track --bogus")
    assert "expected NAME=EXPR" in magic_error(shell, "%mlops log 3")


def test_card_cell_is_checked_yaml(shell, capsys):
    assert run(shell, "%%mlops card\nintended_use: churn outreach\nowner: data team").success
    assert "model card: 2 fields (intended_use, owner)" in capsys.readouterr().out
    assert "not valid YAML" in magic_error(shell, "%%mlops card\nowner: [unclosed")


def test_help_is_printed_not_raised(shell, capsys):
    assert run(shell, "%mlops --help").success
    assert "track" in capsys.readouterr().out
    assert run(shell, "%mlops track --help").success
    assert "--experiment" in capsys.readouterr().out


INGEST = """
%%mlops track ingest
import numpy as np
import pandas as pd
rng = np.random.default_rng(0)
raw = pd.DataFrame({"id": np.arange(50), "age": rng.integers(18, 80, 50).astype(float),
                    "plan": rng.choice(["a", "b"], 50)})
raw.loc[[3, 7, 9], "age"] = np.nan
raw = pd.concat([raw, raw.iloc[[1, 2, 4, 5]]], ignore_index=True)
"""


def test_data_changes_become_versions_with_diffs_lineage_and_a_summary(shell, capsys):
    run(shell, "%mlops track --experiment data")
    run(shell, INGEST)
    run(
        shell,
        """
        %%mlops track clean
        clean = raw.drop_duplicates().reset_index(drop=True)
        clean["age"] = clean["age"].fillna(clean["age"].median())
    """,
    )
    output = capsys.readouterr().out
    assert "4 duplicate rows dropped" in output and "3 nulls filled in age" in output
    log, run_id = recorded(shell)
    record = log.run(run_id)
    datasets = record.datasets.set_index("name")
    assert datasets.loc["raw", "n_rows"] == 54 and datasets.loc["clean", "n_rows"] == 50
    change = json.loads(datasets.loc["clean", "diff"])
    assert change["duplicates_removed"] == 4 and change["nulls_filled"] == {"age": 3}
    lineage = record.lineage
    assert lineage[lineage.cell_seq == 1][["dataset_id", "direction"]].values.tolist() == [
        [f"{run_id[:8]}:raw@v1", "out"]
    ]
    clean_edges = lineage[lineage.cell_seq == 2].sort_values("direction")
    assert clean_edges[["dataset_id", "direction"]].values.tolist() == [
        [f"{run_id[:8]}:raw@v1", "in"],
        [f"{run_id[:8]}:clean@v1", "out"],
    ]


def test_an_in_place_change_is_a_new_version_of_the_same_variable(shell):
    run(shell, "%mlops track")
    run(shell, INGEST)
    run(shell, "%%mlops track clean\nraw['age'] = raw['age'].fillna(-1)")
    log, run_id = recorded(shell)
    datasets = log.run(run_id).datasets
    raw_versions = datasets[datasets.name == "raw"].sort_values("version")
    assert raw_versions["version"].tolist() == [1, 2]
    assert raw_versions["n_rows"].tolist() == [54, 54]
    assert json.loads(raw_versions["diff"].iloc[1])["nulls_filled"] == {"age": 3}


def test_fitted_estimators_are_recorded_and_the_train_stage_stores_them(shell):
    run(shell, "%mlops track")
    run(shell, INGEST)
    run(
        shell,
        """
        %%mlops track features
        X = raw[["id", "age"]].fillna(0)
        y = (raw["plan"] == "a").astype(int)
    """,
    )
    run(
        shell,
        """
        %%mlops track train
        from sklearn.linear_model import LogisticRegression
        from sklearn.cluster import KMeans
        model = LogisticRegression(C=0.5, max_iter=500).fit(X, y)
        groups = KMeans(n_clusters=2, n_init=3, random_state=0).fit(X)
    """,
    )
    log, run_id = recorded(shell)
    models = log.run(run_id).models.set_index("name")
    assert models.loc["model", "class_name"] == "sklearn.linear_model.LogisticRegression"
    assert json.loads(models.loc["model", "params"])["C"] == 0.5
    assert models.loc["model", "n_features_in"] == 2
    assert json.loads(models.loc["model", "feature_names"]) == ["id", "age"]
    assert models.loc["model", "fit_dataset_id"] == f"{run_id[:8]}:X@v1"
    assert models.loc["groups", "class_name"] == "sklearn.cluster.KMeans"
    artifacts = log.run(run_id).artifacts
    stored = artifacts[artifacts.kind == "model"].set_index("sha256")
    sha = models.loc["model", "artifact_sha256"]
    import skops.io

    path = log.artifacts_dir / stored.loc[sha, "stored_path"]
    loaded = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    assert (
        loaded.predict(shell.user_ns["X"]).tolist()
        == shell.user_ns["model"].predict(shell.user_ns["X"]).tolist()
    )


def test_a_cell_tag_marks_a_stage_like_the_magic(shell, tmp_path, monkeypatch):
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"id": "c-load", "cell_type": "code", "source": "loaded = 1",
         "metadata": {"tags": ["mlops:ingest"]}},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))  # fmt: skip
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    run(shell, "%mlops track")
    run(shell, "loaded = 1", cell_id="c-load")  # tags found in the saved notebook
    run(shell, "sent = 2", cell_meta={"tags": ["mlops:evaluate"]})  # tags sent by the frontend
    run(shell, "ignored = 3")  # neither: not recorded
    log, run_id = recorded(shell)
    cells = log.run(run_id).cells
    assert cells["stage"].tolist() == ["ingest", "evaluate"]
    assert log.run(run_id).info["notebook_path"] == str(notebook)


def test_record_all_records_unmarked_cells_too(shell):
    run(shell, "%mlops track --all")
    run(shell, "a = 1")
    run(shell, "%%mlops track train\nb = a + 1")
    run(shell, "c = b + 1")  # unmarked: belongs to the stage before it
    log, run_id = recorded(shell)
    stages = log.run(run_id).cells["stage"].tolist()
    assert [s if isinstance(s, str) else None for s in stages] == [None, "train", "train"]


def test_stale_inputs_and_out_of_order_runs_are_noted_and_warned_once(shell, tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    notebook = tmp_path / "flow.ipynb"

    def save(first_source: str) -> None:
        cells = [
            {"id": "one", "cell_type": "code", "metadata": {}, "source": first_source},
            {"id": "two", "cell_type": "code", "metadata": {}, "source": "y = x * 2"},
        ]
        notebook.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                        "nbformat_minor": 5}))  # fmt: skip
        os.utime(notebook, (0, os.stat(notebook).st_mtime + 1))

    save("x = 1")
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    run(shell, "%mlops track --all")
    run(shell, "x = 1", cell_id="one")
    save("x = 100")  # the user edits cell one (and saves) without running it
    run(shell, "y = x * 2", cell_id="two")
    run(shell, "x = 1", cell_id="one")  # back up the notebook: out of order
    err = capsys.readouterr().err
    assert err.count("not reproducible as recorded") == 2  # once per kind, not per cell
    log, run_id = recorded(shell)
    notes = log.sql(f"SELECT cell_seq, kind FROM notes WHERE run_id = '{run_id}' ORDER BY 1")
    assert notes.values.tolist() == [[2, "stale-input"], [3, "out-of-order"]]


def test_an_unwritable_log_never_breaks_the_cell(shell, tmp_path, capsys):
    log_dir = tmp_path / "blocked"
    log_dir.mkdir()
    (log_dir / "log.duckdb.journal").write_text("a file where a folder must be")
    run(shell, f"%mlops track --log {log_dir / 'log.duckdb'}")
    result = run(shell, "%%mlops track clean\nz = 5\nz * 2")
    assert result.success and result.result == 10
    err = capsys.readouterr().err
    assert err.count("mlops:") == 1 and "not recording" in err


def test_a_locked_log_does_not_hold_up_a_cell(shell, tmp_path):
    run(shell, "%mlops track")
    lock = tmp_path / ".mlops" / "log.duckdb.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(20)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run(shell, "%%mlops track clean\nw = 3\nw")
        assert result.success and result.result == 3
        assert holder.poll() is None  # the lock was still held while the cell ran and returned
    finally:
        holder.kill()
        holder.wait()
    log, run_id = recorded(shell)
    assert log.run(run_id).cells["stage"].tolist() == ["clean"]


def test_log_and_sql_magics(shell, capsys):
    run(shell, "%mlops track")
    run(shell, "score = 0.875")
    run(shell, "%mlops log acc=score label='best'")
    run(shell, "%mlops log --param lr=0.1")
    assert "acc=0.875 (metric)" in capsys.readouterr().out
    run(shell, "mn_result = __import__('mlops_nb').log_metric('f1', 0.5)")
    log, run_id = recorded(shell)
    record = log.run(run_id)
    assert record.metrics == {"acc": 0.875, "f1": 0.5}
    assert record.params == {"label": "best", "lr": 0.1}
    result = run(shell, "counted = %mlops sql SELECT count(*) AS n FROM runs")
    assert result.success and shell.user_ns["counted"]["n"][0] == 1
    result = run(shell, "%%mlops sql\nSELECT key FROM metrics ORDER BY key")
    assert result.result["key"].tolist() == ["acc", "f1"]
    assert "SQL error" in magic_error(shell, "%mlops sql SELECT nope")
    assert "read-only" in magic_error(shell, "%mlops sql DELETE FROM store.runs")


def test_runs_view_compares_runs_and_shows_user_strings_as_text(shell, tmp_path):
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    for name, lr, acc in [("<img src=x onerror=alert(1)>", 0.1, 0.8), ("plain", 0.2, 0.9)]:
        with log.start_run(name=name, params={"lr": lr, "seed": 1}) as r:
            r.log_metric("acc", acc - 0.1)
            r.log_metric("acc", acc)
    from mlops_nb.notebook.widgets import RunsView

    view = RunsView(log)
    assert "plain" in repr(view) and "<img src=x onerror=alert(1)>" in repr(view)
    view.widget()
    assert "&lt;img src=x onerror=alert(1)&gt;" in view.table.value
    assert "<img" not in view.table.value
    view.where.value = "params.lr > 0.15"
    assert [label for label, _ in view.choice.options][0].startswith("plain")
    view.where.value = "params.nope > 1"
    assert "unknown param" in view.message.value
    view.where.value = ""
    view.choice.value = tuple(run_id for _, run_id in view.choice.options)
    view.compare()
    html = view.comparison.value
    assert "params (1 differ)" in html and "metrics (1 differ)" in html
    assert "<svg" in html and "acc by step" in html
    assert "&lt;img" in html and "<img" not in html


def test_docs_magic_documents_the_current_run(shell, tmp_path, monkeypatch, capsys):
    notebook = tmp_path / "study.ipynb"
    code = "%%mlops track ingest\nimport pandas as pd\nprices = pd.DataFrame({'p': [1, 2]})"
    notebook.write_text(json.dumps({"cells": [
        {"id": "t", "cell_type": "markdown", "metadata": {}, "source": "# Price study\\nWhy."},
        {"id": "a", "cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": code},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))  # fmt: skip
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    run(shell, "%mlops track --experiment prices")
    run(shell, code, cell_id="a")
    assert run(shell, f"%mlops docs --out {tmp_path / 'docs'}").success
    assert f"wrote {tmp_path / 'docs' / 'study.html'}" in capsys.readouterr().out
    html = (tmp_path / "docs" / "study.html").read_text()
    assert "Price study" in html and "prices" in html
    assert (tmp_path / "docs" / "study.md").is_file()


def test_a_failing_tracked_cell_shows_the_users_own_lines_in_its_traceback(shell, capsys):
    run(shell, "%mlops track")
    capsys.readouterr()
    result = run(shell, "%%mlops track evaluate\nratio = 1\n1/0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    shown = capsys.readouterr()
    printed = re.sub(r"\x1b\[[0-9;]*m", "", shown.out + shown.err)  # without colours
    assert "ZeroDivisionError" in printed
    assert "__import__" not in printed and "mlops_nb" not in printed
    assert re.search(r"----> 3\s+1\s*/\s*0", printed), printed  # the failing line, its number
    assert result.error_in_exec.__traceback__.tb_next.tb_lineno == 3


def test_interactive_runs_are_named_after_their_notebook(shell, tmp_path):
    shell.user_ns["__session__"] = str(tmp_path / "tryout.ipynb")  # as JupyterLab's kernel sets
    names = []
    for line in ("%mlops track --experiment tryout", "%mlops track", "%mlops track --name mine"):
        run(shell, line)
        log, run_id = recorded(shell)
        names.append(log.run(run_id).info["name"])
        run(shell, "%mlops stop")
    assert names == ["tryout", "tryout #2", "mine"]


ISSUE_FRAME = """
%%mlops track ingest
import numpy as np
import pandas as pd
rng = np.random.default_rng(11)
b = pd.Series(rng.choice(["p", "q", "r"], 1000), dtype=object)
null_rows = rng.choice(1000, 350, replace=False)
b[null_rows] = None
df = pd.DataFrame({"a": rng.normal(size=1000), "b": b,
                   "email": [f"u{i}@example.org" for i in range(1000)]})
set_rows = np.setdiff1d(np.arange(1000), null_rows)
copies = np.concatenate([null_rows[:6], rng.choice(set_rows, 14, replace=False)])
df = pd.concat([df, df.iloc[copies]], ignore_index=True)
"""


def test_the_summary_counts_the_nulls_a_cell_filled_not_those_dropped_rows_took(shell, capsys):
    # issue 11: 356 nulls in b, 6 of them in the 20 copies that drop_duplicates removes
    run(shell, "%mlops track --experiment data")
    run(shell, ISSUE_FRAME)
    capsys.readouterr()
    run(
        shell,
        "%%mlops track clean\ndf.drop_duplicates(inplace=True); df['b'] = df['b'].fillna('x')",
    )
    output = capsys.readouterr().out
    assert (
        "df 1,020x3 -> 1,000x3: 20 duplicate rows dropped, 350 rows changed, "
        "350 nulls filled in b" in output
    )
    log, run_id = recorded(shell)
    versions = log.run(run_id).datasets.sort_values("version")
    change = json.loads(versions[versions.name == "df"]["diff"].iloc[-1])
    assert change["nulls_filled"] == {"b": 350} and change["duplicates_removed"] == 20


def test_a_new_variable_computed_from_a_frame_is_new_not_a_change_of_it(shell, capsys):
    run(shell, "%mlops track --experiment data")
    run(shell, ISSUE_FRAME + "df = df.drop_duplicates()")
    capsys.readouterr()
    run(shell, "%%mlops track features\ny = (df['a'] > 0).astype(int)")
    output = capsys.readouterr().out
    assert "y 1,000x1 (new, from df)" in output
    assert "columns dropped" not in output and "->" not in output
    log, run_id = recorded(shell)
    record = log.run(run_id)
    edges = record.lineage[record.lineage.cell_seq == 2].sort_values("direction")
    assert edges[["dataset_id", "direction"]].values.tolist() == [
        [f"{run_id[:8]}:df@v1", "in"],
        [f"{run_id[:8]}:y@v1", "out"],
    ]
    y_diff = record.datasets.set_index("name").loc["y", "diff"]
    assert y_diff is None or y_diff != y_diff or json.loads(y_diff) in (None, {})


def test_drift_magic_compares_two_frames_and_a_file_and_records_only_with_the_log(shell, tmp_path):
    run(
        shell,
        """
        import numpy as np, pandas as pd
        rng = np.random.default_rng(0)
        old = pd.DataFrame({"x": rng.normal(0, 1, 3000), "kind": rng.choice(["a", "b"], 3000)})
        new = old.assign(x=old["x"] + 2.0)
    """,
    )
    result = run(shell, "%mlops drift old new")
    assert result.success, result.error_in_exec
    report = result.result
    assert report.drifted_columns == ["x"] and "<svg" in report._repr_html_()
    assert report.check_id is None  # two frames: nothing is recorded
    shell.user_ns["old"].to_csv(tmp_path / "old.csv", index=False)
    run(shell, f"%mlops track --log {tmp_path / 'log.duckdb'}")
    same = run(shell, f"%mlops drift {tmp_path / 'old.csv'} old --record").result
    assert same.drifted_columns == [] and same.check_id is not None
    log, _ = recorded(shell)
    assert set(log.drift_results(check_id=same.check_id)["column"]) == {"x", "kind", "*"}
    assert "give CURRENT" in magic_error(shell, "%mlops drift old")
