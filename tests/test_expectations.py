"""Data checks: expectations inferred from recorded data, kept as an editable YAML file, and
checked in a tracked cell (a real IPython shell), in a pipeline run (`mlops-nb run`), from the
command line (`mlops-nb validate`) and by a served model (`mlops-nb serve`); and the summary of
a cell that joins recorded frames."""

from __future__ import annotations

import json
import textwrap
import time

import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from IPython.core.error import UsageError
from nbformat.v4 import new_code_cell, new_notebook

import mlops_nb as mn
from mlops_nb.capture import data as capture_data
from mlops_nb.capture import joins
from mlops_nb.capture.expectations import (
    Expectations,
    ExpectationsError,
    ExpectationsFailed,
    check_frame,
    expectations_from_stats,
    infer_expectations,
    looks_like_key,
    read_file,
    write_file,
)
from mlops_nb.capture.track_line import parse_track_line
from mlops_nb.errors import TrackLineError
from mlops_nb.validate_command import (
    checks_summary,
    describe_expectations,
    expectations_summary,
    joins_summary,
)


def customers(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(1, n + 1),
        "age": rng.integers(18, 80, n).astype(float),
        "tenure": rng.integers(0, 72, n),
        "contract": pd.Categorical(rng.choice(["monthly", "yearly"], n)),
        "region": rng.choice(["north", "south", "east"], n),
        "email": [f"user{i}@example.com" for i in range(n)],
        "comment": [f"note number {i}" for i in range(n)],
        "signed_up": pd.date_range("2024-01-01", periods=n, freq="D"),
    })  # fmt: skip


def failure(report, column: str, check: str):
    found = [r for r in report.failures if (r.column, r.check) == (column, check)]
    assert found, f"no failure {column} {check} in {[(r.column, r.check) for r in report.failures]}"
    return found[0]


# ---------------------------------------------------------------------- inference
def test_inference_finds_dtypes_nulls_ranges_categories_low_cardinality_text_and_keys():
    frame = customers()
    frame.loc[3, "age"] = np.nan
    expected = infer_expectations(frame, dataset="run1:raw@v1")
    columns = expected.columns
    assert (columns["age"].dtype, columns["age"].nullable) == ("float64", True)
    assert (columns["age"].min, columns["age"].max) == (frame["age"].min(), frame["age"].max())
    assert (columns["tenure"].min, columns["tenure"].max) == (
        int(frame["tenure"].min()), int(frame["tenure"].max()))  # fmt: skip
    assert isinstance(columns["tenure"].min, int) and not columns["tenure"].nullable
    assert columns["contract"].allowed == ["monthly", "yearly"]  # a pandas category
    assert columns["region"].allowed == ["east", "north", "south"]  # low-cardinality text
    assert columns["comment"].allowed is None and columns["email"].allowed is None  # free text
    assert columns["customer_id"].unique and not columns["tenure"].unique
    assert columns["signed_up"].min == "2024-01-01T00:00:00"
    assert expected.n_rows == 200 and expected.dataset == "run1:raw@v1"
    # text with many values, but few relative to the rows (at most 5%): a closed set too
    many = pd.DataFrame({"city": [f"city{i % 40}" for i in range(1000)]})
    assert len(infer_expectations(many).columns["city"].allowed) == 40
    # personal-data columns keep no value: no range, no allowed values; uniqueness stays
    private = infer_expectations(frame, private=["region", "customer_id", "email"])
    assert private.columns["region"].allowed is None and private.columns["region"].personal
    assert private.columns["customer_id"].min is None and private.columns["customer_id"].unique
    assert "north" not in private.to_yaml() and "user1@" not in private.to_yaml()
    for name in ("id", "customer_id", "order-key", "customerId", "CustomerID", "uuid"):
        assert looks_like_key(name), name
    for name in ("paid", "valid", "idle", "keyboard", "age"):
        assert not looks_like_key(name), name


def test_inference_from_the_recorded_stats_when_the_frame_is_gone():
    frame = customers()
    record = capture_data.snapshot(frame).to_record(private=["email"])
    expected = expectations_from_stats(record["schema"], record["stats"], record["n_rows"])
    columns = expected.columns
    assert (columns["age"].min, columns["age"].max) == (frame["age"].min(), frame["age"].max())
    assert columns["region"].allowed == ["east", "north", "south"]
    assert columns["contract"].allowed == ["monthly", "yearly"]
    assert columns["email"].personal and columns["email"].allowed is None  # kept counts only
    assert not columns["age"].nullable and columns["signed_up"].max == "2024-07-18T00:00:00"
    # the same data passes; a value outside the recorded range fails
    assert check_frame(frame, expected).passed
    frame.loc[0, "tenure"] = 500
    assert failure(check_frame(frame, expected), "tenure", "max").example_rows == [0]


# ---------------------------------------------------------------------- the YAML file
def test_yaml_round_trip_then_a_tightened_range_fails(tmp_path):
    frame = customers()
    path = write_file(infer_expectations(frame), tmp_path / "expectations.yaml")
    assert read_file(path).to_dict() == infer_expectations(frame).to_dict()
    assert check_frame(frame, read_file(path)).passed
    text = path.read_text()
    assert text.startswith("# Expectations for mlops-nb data checks")
    high = infer_expectations(frame).columns["age"].max
    path.write_text(text.replace(f"max: {high}", "max: 60.0", 1))
    edited = read_file(path)
    assert edited.source == "file" and edited.columns["age"].max == 60.0
    report = check_frame(frame, edited, target="customers")
    assert [(r.column, r.check) for r in report.failures] == [("age", "max")]
    over = np.flatnonzero(frame["age"].to_numpy() > 60)
    assert failure(report, "age", "max").n_failing == len(over)
    assert failure(report, "age", "max").example_rows == over[:5].tolist()


def test_a_mistake_in_the_file_is_one_line_naming_the_column(tmp_path):
    path = tmp_path / "bad.yaml"
    for body, message in [
        ("columns:\n  age:\n    maximum: 3\n", "column 'age': unknown key 'maximum'"),
        ("columns:\n  code:\n    pattern: '[a-'\n", "column 'code': pattern '[a-' is not a regex"),
        ("columns:\n  age:\n    dtype: float64\n    min: old\n", "min 'old' is not a number"),
        ("columns: [1, 2\n", "is not valid YAML"),
        ("columns: 3\n", "expected a mapping with 'columns:'"),
    ]:
        path.write_text(body)
        with pytest.raises(ExpectationsError, match=message.replace("[", r"\[")) as caught:
            read_file(path)
        assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------- checking
def test_every_failure_is_reported_with_its_count_row_numbers_and_examples():
    expected = infer_expectations(customers())
    expected.columns["comment"].pattern = r"note number \d+"
    new = customers().head(50).astype({"tenure": object})
    new.loc[[5, 7, 9], "age"] = [120.0, -3.0, 150.0]
    new.loc[[2, 4], "region"] = ["west", "west"]
    new.loc[11, "customer_id"] = 1
    new.loc[[12, 13], "contract"] = np.nan
    new.loc[1, "tenure"] = "unknown"
    new.loc[20, "comment"] = "free text"
    new.loc[21, "signed_up"] = pd.Timestamp("2031-01-01")
    new = new.drop(columns=["email"])
    report = check_frame(new, expected, target="new.csv", expectation="raw@v1")
    assert not report.passed
    found = {(r.column, r.check): (r.n_failing, r.example_rows, r.example_values)
             for r in report.failures}  # fmt: skip
    assert found == {
        ("customer_id", "unique"): (1, [11], [1]),
        ("age", "min"): (1, [7], [-3.0]),
        ("age", "max"): (2, [5, 9], [120.0, 150.0]),
        ("tenure", "dtype"): (1, [1], ["unknown"]),
        ("contract", "nullable"): (2, [12, 13], [None]),
        ("region", "allowed"): (2, [2, 4], ["west"]),
        ("email", "present"): (50, [], []),
        ("comment", "pattern"): (1, [20], ["free text"]),
        ("signed_up", "max"): (1, [21], ["2031-01-01T00:00:00"]),
    }
    text = report.to_text()
    assert text.splitlines()[0] == (
        f"data check FAILED: 9 of {len(report.results)} checks failed on 50 rows of new.csv "
        "against raw@v1"
    )
    high = expected.columns["age"].max
    assert f"  age · max (<= {high:g}): 2 of 50 rows, e.g. rows 5, 9: 120, 150" in text
    assert "  email · present (column present): missing" in text
    assert json.loads(report.to_json())["n_failed"] == 9
    with pytest.raises(ExpectationsFailed, match="age max \\(2 rows\\); tenure dtype"):
        raise ExpectationsFailed(report)
    # text that reads as the expected kind passes (a CSV's strings, a float column of integers)
    as_text = customers().astype({"tenure": float, "age": str, "signed_up": str})
    assert check_frame(as_text, expected).passed
    # strict: columns the expectations do not list fail
    expected.strict = True
    extra = customers().assign(score=1.0)
    assert [(r.column, r.check) for r in check_frame(extra, expected).failures] == [
        ("score", "unexpected")]  # fmt: skip


def test_no_example_values_for_personal_data_columns():
    expected = infer_expectations(customers())
    expected.columns["email"].pattern = r"[^@]+@[^@]+"
    new = customers().head(20)
    new.loc[[3, 4], "email"] = ["alice-at-example.com", None]
    new.loc[5, "region"] = "west"
    report = check_frame(new, expected, private=["email", "region"])
    assert failure(report, "email", "pattern").example_values is None
    assert failure(report, "email", "pattern").example_rows == [3]
    assert failure(report, "region", "allowed").example_values is None
    rows = report.records("c1", None, None, time.time())
    assert all(row["example_values"] is None for row in rows if row["column_name"] == "email")
    assert "alice" not in report.to_text() + report.to_json() + report._repr_html_()
    assert "(values not shown: personal data)" in report.to_text()
    # a column the expectations mark personal is hidden without being told
    expected.columns["email"].personal = True
    assert failure(check_frame(new, expected), "email", "pattern").example_values is None


def test_the_track_line_takes_expect_and_warn_only():
    assert parse_track_line("ingest --expect a1b2:raw --warn-only") == (
        "ingest", {"expect": "a1b2:raw", "warn_only": "true"})  # fmt: skip
    assert parse_track_line("clean --expect=checks.yaml")[1] == {"expect": "checks.yaml"}
    with pytest.raises(TrackLineError, match="--warn-only goes with --expect"):
        parse_track_line("clean --warn-only")
    with pytest.raises(TrackLineError, match="--expect needs a value"):
        parse_track_line("clean --expect")


# ---------------------------------------------------------------------- in a notebook
def run(ip, code: str):
    return ip.run_cell(textwrap.dedent(code).strip("\n"), store_history=True)


def test_expect_in_a_cell_checks_what_it_wrote_records_every_check_and_fails_the_cell(
    shell, capsys
):
    run(shell, "%mlops track --experiment checks")
    run(
        shell,
        """
        %%mlops track ingest
        import numpy as np, pandas as pd
        raw = pd.DataFrame({"customer_id": range(1, 101), "age": np.arange(100) % 60 + 18.0,
                            "region": ["north", "south", "east", "west"] * 25,
                            "email": [f"user{i}@example.com" for i in range(100)]})
    """,
    )
    tracker = shell._mlops_tracker
    run_id, log = tracker.run.run_id, tracker.log
    capsys.readouterr()
    failed = run(
        shell,
        f"""
        %%mlops track clean --expect {run_id[:8]}:raw
        clean = raw.copy()
        clean.loc[[3, 8], "age"] = [200.0, 300.0]
        clean.loc[4, "region"] = "mars"
        clean.loc[5, "email"] = None
    """,
    )
    assert isinstance(failed.error_in_exec, ExpectationsFailed)
    assert str(failed.error_in_exec) == (
        f"data check failed on {run_id[:8]}:clean@v1 against {run_id[:8]}:raw@v1: 3 of 14 "
        "checks: age max (2 rows); region allowed (1 row); email nullable (1 row)"
    )
    shown = capsys.readouterr().out
    assert "age · max (<= 77): 2 of 100 rows, e.g. rows 3, 8: 200, 300" in shown
    assert "region · allowed (one of 'east', 'north', 'south', 'west'): 1 of 100 rows" in shown
    assert "email · nullable (no nulls): 1 of 100 rows, e.g. row 5 (values not shown" in shown
    assert shell.user_ns["clean"].loc[3, "age"] == 200.0  # the cell ran; its check failed

    warned = run(
        shell,
        f"""
        %%mlops track clean --expect {run_id[:8]}:raw --warn-only
        clean2 = raw.assign(age=raw["age"] + 50)
    """,
    )
    assert warned.success
    assert "data check FAILED (warn only): 1 of 14 checks" in capsys.readouterr().out
    over = int((shell.user_ns["raw"]["age"] + 50 > 77).sum())
    assert run(shell, f"%%mlops track clean --expect {run_id[:8]}:raw\nclean3 = raw.copy()").success

    log.flush()
    cells = log.run(run_id).cells
    assert cells["status"].tolist() == ["ok", "error", "ok", "ok"]
    assert cells["error_type"][1] == "ExpectationsFailed"
    stored = log.expectations(dataset_id=f"{run_id[:8]}:raw@v1")
    assert stored["source"].tolist() == ["inferred"]  # inferred once, from the live frame
    spec = json.loads(stored["spec"][0])
    assert spec["columns"]["email"] == {"dtype": "str", "nullable": False, "personal": True}
    assert spec["columns"]["customer_id"]["unique"]  # exact: the stats cannot tell it
    rows = log.check_results(run_id=run_id)
    assert rows["check_id"].nunique() == 3 and set(rows["cell_seq"]) == {2, 3, 4}
    failed_rows = rows[~rows["passed"]]
    assert failed_rows[["cell_seq", "column", "check", "n_failing"]].values.tolist() == [
        [2, "age", "max", 2], [2, "region", "allowed", 1], [2, "email", "nullable", 1],
        [3, "age", "max", over],
    ]  # fmt: skip
    email = failed_rows[failed_rows["column"] == "email"].iloc[0]
    assert email["example_rows"] == "[5]" and pd.isna(email["example_values"])

    summary = checks_summary(log, run_id)
    assert [(s["cell_seq"], s["passed"], s["n_failed"]) for s in summary] == [
        (2, False, 3), (3, False, 1), (4, True, 0)]  # fmt: skip
    assert summary[0]["failures"][0] == {
        "column": "age", "check": "max", "n_failing": 2, "n_rows": 100,
        "example_rows": [3, 8], "example_values": [200.0, 300.0],
    }  # fmt: skip
    assert summary[0]["failures"][2]["example_values"] is None
    [kept] = expectations_summary(log, run_id)  # for the datasheet
    assert (kept["dataset_id"], kept["source"]) == (f"{run_id[:8]}:raw@v1", "inferred")
    by_column = {row["column"]: row for row in kept["columns"]}
    assert by_column["region"]["allowed"] == ["east", "north", "south", "west"]
    assert by_column["email"]["personal"] and by_column["email"]["allowed"] is None


def test_expect_a_yaml_file_and_the_mistakes_a_cell_can_make(shell, tmp_path, capsys):
    frame = pd.DataFrame({"id": [1, 2, 3], "score": [0.1, 0.5, 0.9]})
    expected = infer_expectations(frame)
    expected.columns["score"].max = 0.6
    write_file(expected, tmp_path / "scores.yaml")
    run(shell, "%mlops track")
    failed = run(
        shell,
        f"""
        %%mlops track ingest --expect {tmp_path / "scores.yaml"}
        import pandas as pd
        scores = pd.DataFrame({{"id": [1, 2, 2], "score": [0.1, 0.5, 0.9]}})
    """,
    )
    assert isinstance(failed.error_in_exec, ExpectationsFailed)
    assert "id unique (1 row); score max (1 row)" in str(failed.error_in_exec)
    missing = run(shell, "%%mlops track ingest --expect nowhere.yaml\nother = scores.copy()")
    assert "cannot read 'nowhere.yaml'" in str(missing.error_in_exec)
    with pytest.raises(UsageError, match="--warn-only goes with --expect"):
        run(shell, "%%mlops track ingest --warn-only\nx = 1").raise_error()
    log = shell._mlops_tracker.log
    log.flush()
    stored = log.expectations(run_id=shell._mlops_tracker.run.run_id)
    assert stored["source"].tolist() == ["file"]  # what the new data was checked against
    assert json.loads(stored["spec"][0])["columns"]["score"]["max"] == 0.6


def test_a_join_of_two_recorded_frames_is_summarised_in_the_cell_and_the_log(shell, capsys):
    run(shell, "%mlops track")
    run(
        shell,
        """
        %%mlops track ingest
        import pandas as pd
        customers = pd.DataFrame({"customer_id": [1, 2, 3, 4, None], "zip": [10, 20, 30, 40, 50],
                                  "name": ["a", "b", "c", "d", "e"]})
        orders = pd.DataFrame({"customer_id": [1, 1, 2, 9, None], "amount": [5.0, 6, 7, 8, 9],
                               "zip": ["10", "10", "20", "90", "00"]})
    """,
    )
    capsys.readouterr()
    run(
        shell,
        """
        %%mlops track features
        joined = customers.merge(orders, on="customer_id", how="left")
    """,
    )
    expected = (
        "join customers + orders on customer_id -> joined 6 rows: customers: 3 of 5 rows "
        "matched (2 unmatched); orders: 4 of 5 rows matched (1 unmatched); duplicated keys: 1 "
        "in orders; null keys: 1 in customers, 1 in orders; dtypes differ: zip (int64 in "
        "customers, str in orders)"
    )
    assert f"[mlops] note: {expected}" in capsys.readouterr().out
    run(shell, "%%mlops track features\nboth = pd.concat([customers, customers.head(2)])")
    log = shell._mlops_tracker.log
    log.flush()
    # one recorded source (with itself): nothing was combined
    assert joins_summary(log, shell._mlops_tracker.run.run_id) == [
        {"cell_seq": 2, "summary": expected}]  # fmt: skip


def test_joins_concatenations_and_the_size_limit(monkeypatch):
    a = pd.DataFrame({"k": [1, 2, 3], "x": [1, 2, 3]})
    b = pd.DataFrame({"k": [2, 3, 4], "y": ["p", "q", "r"]})
    c = pd.DataFrame({"k": [1.0, 2.0], "x": [9, 9]})
    [join] = joins.describe_combination({"a": a, "b": b}, "ab", a.merge(b, on="k"))
    assert (join.kind, join.keys, join.matched, join.result_rows) == (
        "join", ["k"], {"a": 2, "b": 2}, 2)  # fmt: skip
    [concat] = joins.describe_combination({"a": a, "c": c}, "ac", pd.concat([a, c]))
    assert concat.kind == "concat" and concat.dtype_conflicts == {
        "k": {"a": "int64", "c": "float64"}}  # fmt: skip
    assert concat.phrase() == "concat a + c -> ac 5 rows (3 + 2): dtypes differ: k (int64 in a, "\
        "float64 in c)"  # fmt: skip
    # a frame derived from one source is no combination; nor a filter using another's values
    assert joins.describe_combination({"a": a, "b": b}, "f", a[a["k"].isin(b["k"])]) == []
    monkeypatch.setattr(joins, "MAX_ROWS", 2)
    [big] = joins.describe_combination({"a": a, "b": b}, "ab", a.merge(b, on="k"))
    assert big.phrase() == "join a + b on k -> ab 2 rows: not counted: more than 2 rows on a side"


# ---------------------------------------------------------------------- in a pipeline run
def _notebook(path, cells):
    nb = new_notebook(cells=[new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))
    return path


def test_a_failed_check_fails_the_pipeline_run_and_warn_only_does_not(tmp_path):
    write_file(infer_expectations(customers()), tmp_path / "customers.yaml")
    bad = customers().head(30)
    bad.loc[[2, 6], "age"] = [130.0, 140.0]
    bad.to_csv(tmp_path / "customers.csv", index=False)
    read = "import pandas as pd\nraw = pd.read_csv('customers.csv', parse_dates=['signed_up'])"
    strict = _notebook(
        tmp_path / "strict.ipynb",
        [f"%%mlops track ingest --expect customers.yaml\n{read}", "after_the_check = True"],
    )
    failed = run_cli("run", strict, "-o", tmp_path / "out.ipynb", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    record = log.run("latest")
    assert record.info["status"] == "failed"
    assert "ExpectationsFailed: data check failed on" in record.info["error"]
    assert "against customers.yaml: 1 of" in record.info["error"]
    assert "age max (2 rows)" in record.info["error"]
    assert len(record.cells) == 1 and record.cells["status"][0] == "error"
    rows = log.check_results(run_id=record.run_id)
    assert rows.loc[~rows["passed"], ["column", "check", "n_failing"]].values.tolist() == [
        ["age", "max", 2]]  # fmt: skip

    lenient = _notebook(tmp_path / "lenient.ipynb", [
        f"%%mlops track ingest --expect customers.yaml --warn-only\n{read}",
        "after_the_check = True"])  # fmt: skip
    warned = run_cli("run", lenient, "-o", tmp_path / "out2.ipynb", cwd=tmp_path)
    assert warned.returncode == 0, warned.stderr
    record = log.run("latest")
    assert record.info["status"] == "finished" and len(record.cells) == 2
    assert log.check_results(run_id=record.run_id)["passed"].tolist().count(False) == 1
    shown = nbformat.read(str(tmp_path / "out2.ipynb"), as_version=4).cells[0].outputs
    assert any("data check FAILED (warn only)" in json.dumps(output) for output in shown)
    # the run saved what the cell wrote: expectations inferred from that value are exact (the
    # recorded stats could not tell that an integer column is a key)
    inferred = run_cli("validate", "--infer", f"{record.run_id[:8]}:raw", cwd=tmp_path)
    assert inferred.returncode == 0, inferred.stderr
    spec = Expectations.from_yaml(inferred.stdout).columns
    assert spec["customer_id"].unique and spec["age"].max == 140.0
    stored = log.expectations(dataset_id=f"{record.run_id[:8]}:raw@v1")
    assert sorted(stored["source"]) == ["file", "inferred"]  # checked against; inferred from


# ---------------------------------------------------------------------- mlops-nb validate
def test_cli_infers_checks_files_and_exits_1_on_failure_2_on_a_mistake(shell, tmp_path):
    run(shell, "%mlops track")
    shell.user_ns["frame"] = customers()
    run(shell, "%%mlops track ingest\nraw = frame.copy()")
    tracker = shell._mlops_tracker
    run_id, log = tracker.run.run_id[:8], tracker.log
    log.record("pii_findings", {
        "dataset_id": f"{run_id}:raw@v1", "run_id": tracker.run.run_id, "cell_seq": 1,
        "dataset_name": "raw", "column_name": "region", "kind": "name", "method": "declared",
        "share": None, "n_sampled": 0, "status": "declared", "created_at": time.time(),
    })  # fmt: skip
    log.flush()

    inferred = run_cli("validate", "--infer", f"{run_id}:raw", "-o", "raw.yaml", cwd=tmp_path)
    assert inferred.returncode == 0, inferred.stderr
    assert f"wrote the expectations of {run_id}:raw@v1 (8 columns) to raw.yaml" in inferred.stdout
    from_file = read_file(tmp_path / "raw.yaml")  # from the recorded stats: no frame at hand
    assert from_file.columns["region"].personal and from_file.columns["region"].allowed is None
    assert "north" not in (tmp_path / "raw.yaml").read_text()
    customers().head(50).to_csv(tmp_path / "good.csv", index=False)
    bad = customers().head(50)
    bad.loc[[1, 2], "tenure"] = [-5, 99]
    bad.loc[3, "region"] = None  # a personal column: its failures show no value
    bad.to_csv(tmp_path / "bad.csv", index=False)

    passed = run_cli("validate", "--against", "raw.yaml", "good.csv", cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("data check passed: ")
    failed = run_cli("validate", "--against", f"{run_id}:raw", "bad.csv", "--format", "json",
                     cwd=tmp_path)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    assert {(f["column"], f["check"], f["n_failing"]) for f in report["failures"]} == {
        ("tenure", "min", 1), ("tenure", "max", 1), ("region", "nullable", 1)}  # fmt: skip
    region = [f for f in report["failures"] if f["column"] == "region"][0]
    assert region["example_rows"] == [3] and region["example_values"] is None
    rows = log.check_results(check_id=report["check_id"])
    assert len(rows) == report["n_checks"] and rows["target"][0] == "bad.csv"
    region_rows = rows[rows["column"] == "region"]
    assert len(region_rows) == 2 and region_rows["example_values"].isna().all()
    text = run_cli("validate", "--against", "raw.yaml", "bad.csv", "--no-record", cwd=tmp_path)
    low = int(customers()["tenure"].min())
    assert text.returncode == 1 and f"tenure · min (>= {low}): 1 of 50 rows, e.g. row 1: -5" in (
        text.stdout)  # fmt: skip

    for args, message in [
        (["--against", "raw.yaml"], "give the data to check"),
        (["--against", f"{run_id}:nothing", "good.csv"], f"run {run_id} recorded no dataset"),
        (["--against", "missing.yaml", "good.csv"], "cannot read 'missing.yaml'"),
        (["--infer", f"{run_id}:raw", "good.csv"], "--infer takes no data file"),
        (["--against", "churn@champion", "good.csv"], "model 'churn' has no alias"),
    ]:
        result = run_cli("validate", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------- the served model
def test_the_served_model_answers_inputs_outside_the_training_data_and_records_them(tmp_path):
    from test_serve import Server, churn_frame, churn_pipeline, rows_of, until

    from mlops_nb.registry.register import register_pipeline

    log_path = tmp_path / ".mlops" / "log.duckdb"
    frame, target = churn_frame(300)
    log = mn.open_log(log_path)
    register_pipeline(log, "churn", churn_pipeline(frame, target, trees=3), training_frame=frame,
                      alias="champion")  # fmt: skip
    spec = log.model_version("churn", alias="champion")["signature"]["expectations"]
    assert spec["columns"]["age"]["max"] == frame["age"].max()
    card = {row["column"]: row for row in describe_expectations(spec)}  # for the model card
    assert card["region"]["allowed"] == ["east", "north", "south"] and card["age"]["min"] == 18
    log.close()

    server = Server(log_path, "churn@champion")
    try:
        inside = frame.head(2)
        outside = frame.head(3).assign(age=[200.0, 30.0, -1.0], tenure_months=[5, 500, 6])
        body = {"dataframe_split": {"columns": list(frame.columns), "data": rows_of(outside)}}
        answered = server.post("/invocations", json=body)
        assert answered.status_code == 200 and len(answered.json()["predictions"]) == 3
        fine = server.post("/invocations", json={"dataframe_split": {
            "columns": list(frame.columns), "data": rows_of(inside)}})  # fmt: skip
        assert fine.status_code == 200
        unseen = rows_of(inside.astype({"region": object}).assign(region="mars"))
        refused = server.post("/invocations", json={"dataframe_split": {
            "columns": list(frame.columns), "data": unseen}})  # fmt: skip
        assert refused.status_code == 400 and "unseen category 'mars'" in refused.text
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        for column, check in (("age", "max"), ("age", "min"), ("tenure_months", "max")):
            series = f'{{check="{check}",column="{column}",model="churn"}}'
            assert f"mlops_nb_input_check_failures_total{series} 1.0" in metrics  # fmt: skip
        request_id = answered.headers["x-request-id"]
        reader = mn.open_log(log_path)

        def recorded():
            found = reader.sql("SELECT * FROM requests")
            found = found[found["request_id"] == request_id]
            return next(found.itertuples(), None)

        row = until(recorded, "the recorded request")
        assert row.status == 200
        assert row.error == ("warning: outside the training data: age min (1 row), "
                             "age max (1 row), tenure_months max (1 row)")  # fmt: skip
        clean = reader.sql("SELECT error FROM requests WHERE status = 200 AND n_rows = 2")
        assert clean["error"].isna().all()
    finally:
        server.stop()
    customers_file = tmp_path / "new.csv"
    outside.to_csv(customers_file, index=False)
    checked = run_cli("--log", str(log_path), "validate", "--against", "churn@champion",
                      str(customers_file), cwd=tmp_path)  # fmt: skip
    assert checked.returncode == 1 and "against churn:1 training data" in checked.stdout
