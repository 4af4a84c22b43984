"""mlops_nb.capture.data: snapshots of DataFrames and arrays, and what changed between two."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_nb.capture.data import DataSnapshot, describe_change, diff, is_data, snapshot


def customers(n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """A raw table as a notebook reads it: 12 columns, ages as text, a few missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": pd.Series(rng.integers(18, 90, n).astype(str), dtype=object),
            "income": rng.normal(50_000, 15_000, n).round(2),
            "city": pd.array(rng.choice(["Paris", "Lyon", "Nantes", "Lille"], n), dtype="str"),
            "segment": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
            "visits": pd.array(rng.integers(0, 50, n), dtype="Int64"),
            "churned": rng.random(n) < 0.2,
            "score": rng.random(n),
            "plan": pd.Series(rng.choice(["free", "pro"], n), dtype=object),
            "tenure": rng.integers(0, 120, n),
            "spend": rng.gamma(2.0, 30.0, n),
        }
    )
    frame.loc[[i for i in (5, 17, 42) if i < n], "age"] = None
    return frame


def with_duplicates(frame: pd.DataFrame, n_copies: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    copies = frame.iloc[rng.choice(len(frame) - n_copies, n_copies, replace=False)]
    grown = pd.concat([frame.iloc[: len(frame) - n_copies], copies], ignore_index=True)
    return grown


def snap(value) -> DataSnapshot:
    result = snapshot(value)
    assert result is not None
    return result


# --- fingerprints ------------------------------------------------------------------------


def test_changing_one_value_changes_the_fingerprint_and_nothing_else_does():
    frame = customers()
    same = frame.copy(deep=True)
    edited = frame.copy()
    edited.loc[1234, "income"] += 0.01

    assert snap(frame).fingerprint == snap(same).fingerprint
    assert snap(frame).fingerprint != snap(edited).fingerprint


@pytest.mark.parametrize("column", ["age", "city", "segment", "signup", "visits", "churned"])
def test_changing_one_value_of_any_dtype_changes_the_fingerprint(column):
    frame = customers(200)
    values = frame[column]
    other = next(i for i in range(1, len(frame)) if values.iloc[i] != values.iloc[0])
    edited = frame.copy()
    edited.loc[0, column] = values.iloc[other]

    assert snap(frame).fingerprint != snap(edited).fingerprint


def test_reset_index_keeps_the_fingerprint():
    frame = customers().sample(frac=1.0, random_state=3)
    assert snap(frame).fingerprint == snap(frame.reset_index(drop=True)).fingerprint


def test_reordering_rows_changes_the_fingerprint_and_reads_as_reordered():
    frame = customers(1_000)
    shuffled = frame.sample(frac=1.0, random_state=3)
    before, after = snap(frame), snap(shuffled)

    change = diff(before, after)

    assert before.fingerprint != after.fingerprint
    assert change["rows_added"] == change["rows_removed"] == 0
    assert change["values_changed"] is True
    assert (
        describe_change("df", before, "df", after, change)
        == "df 1,000x12 -> 1,000x12: rows reordered"
    )


def test_a_renamed_column_or_a_new_dtype_changes_the_fingerprint():
    frame = customers(500)
    assert snap(frame).fingerprint != snap(frame.rename(columns={"spend": "spent"})).fingerprint
    assert snap(frame).fingerprint != snap(frame.astype({"tenure": "int32"})).fingerprint


def test_reordered_columns_change_the_fingerprint_but_no_row():
    frame = customers(300)
    before, after = snap(frame), snap(frame[list(frame.columns[::-1])])

    change = diff(before, after)

    assert before.fingerprint != after.fingerprint
    assert (change["rows_added"], change["rows_removed"]) == (0, 0)
    assert describe_change("df", before, "df", after, change).endswith(": columns reordered")


def test_nulls_are_one_value_whatever_their_spelling_and_zero_has_no_sign():
    assert (
        snap(pd.DataFrame({"x": ["a", None]}, dtype=object)).fingerprint
        == snap(pd.DataFrame({"x": ["a", np.nan]}, dtype=object)).fingerprint
    )
    assert snap(pd.Series([0.0, 1.0])).fingerprint == snap(pd.Series([-0.0, 1.0])).fingerprint


def test_an_integer_and_its_text_are_different_values_in_an_object_column():
    numbers = pd.DataFrame({"x": [1, "a"]}, dtype=object)
    texts = pd.DataFrame({"x": ["1", "a"]}, dtype=object)
    assert snap(numbers).fingerprint != snap(texts).fingerprint


# --- the record ----------------------------------------------------------------------------


def test_the_record_holds_shape_schema_and_stats_and_is_json():
    frame = customers()
    record = snap(frame).to_record()

    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert "row_hashes" not in record
    assert (record["kind"], record["n_rows"], record["n_cols"]) == ("pandas", 10_000, 12)
    assert record["schema"]["age"] == "object"
    assert record["schema"]["city"] == "str"
    assert record["schema"]["visits"] == "Int64"
    assert len(record["fingerprint"]) == 64
    assert record["n_duplicate_rows"] == 0

    stats = record["stats"]
    assert stats["age"]["nulls"] == 3
    assert stats["income"]["min"] == pytest.approx(frame["income"].min())
    assert stats["income"]["max"] == pytest.approx(frame["income"].max())
    assert stats["income"]["mean"] == pytest.approx(frame["income"].mean())
    assert stats["income"]["std"] == pytest.approx(frame["income"].std())
    assert stats["tenure"]["min"] == int(frame["tenure"].min())
    assert stats["city"]["distinct"] == 4
    assert stats["city"]["top"] == frame["city"].value_counts().index[0]
    assert stats["segment"] == {
        "nulls": 0,
        "distinct": 3,
        "top": str(frame["segment"].value_counts().index[0]),
        "counts": {str(k): int(n) for k, n in frame["segment"].value_counts().items()},
    }
    assert stats["churned"]["top"] == "False"
    assert stats["signup"]["min"] == str(frame["signup"].min())
    assert stats["visits"]["nulls"] == 0


def test_awkward_columns_are_described_not_refused():
    columns = pd.MultiIndex.from_tuples([("a", "x"), ("a", "y"), ("b", ""), ("b", "")])
    frame = pd.DataFrame(
        [
            [[1, 2], {"k": 1}, pd.NA, pd.Timestamp("2024-01-01", tz="Europe/Paris")],
            [[1, 2], {"k": 2}, True, pd.NaT],
            [None, "text", False, pd.Timestamp("2024-06-01", tz="Europe/Paris")],
        ],
        columns=columns,
    ).astype({("b", ""): "object"})
    frame.isetitem(2, pd.array([pd.NA, True, False], dtype="boolean"))
    edited = frame.copy()
    edited.iat[1, 0] = [1, 3]

    record = snap(frame).to_record()

    assert list(record["schema"]) == ["a.x", "a.y", "b", "b.1"]
    assert record["schema"]["b"] == "boolean"
    assert record["stats"]["a.x"] == {"nulls": 1, "distinct": 1, "top": "[1, 2]"}  # no counts
    assert record["stats"]["b"]["nulls"] == 1
    assert record["stats"]["b.1"]["nulls"] == 1
    json.dumps(record, allow_nan=False)
    assert snap(edited).fingerprint != snap(frame).fingerprint


def test_infinities_are_kept_as_text_so_that_the_record_stays_json():
    result = snap(pd.DataFrame({"x": [1.0, np.inf, -np.inf, np.nan]}))

    assert result.stats["x"] == {"nulls": 1, "min": "-inf", "max": "inf", "mean": None, "std": None}
    json.dumps(result.to_record(), allow_nan=False)


def test_empty_frames_have_a_snapshot():
    no_rows = snap(customers(10).iloc[:0])
    no_columns = snap(pd.DataFrame(index=range(3)))

    assert (no_rows.n_rows, no_rows.n_cols, no_rows.n_duplicate_rows) == (0, 12, 0)
    assert no_rows.stats["income"]["mean"] is None
    assert (no_columns.n_rows, no_columns.n_cols) == (3, 0)
    assert diff(no_rows, snap(customers(10)))["rows_added"] == 10


def test_a_series_is_one_column_named_after_it():
    ages = snap(pd.Series([31, 45, 45], name="age"))

    assert (ages.kind, ages.n_rows, ages.n_cols) == ("pandas-series", 3, 1)
    assert ages.schema == {"age": "int64"}
    assert ages.n_duplicate_rows == 1
    assert snap(pd.Series([1.5])).schema == {"0": "float64"}


def test_is_data_says_which_values_are_datasets():
    assert is_data(customers(5))
    assert is_data(pd.Series([1]))
    assert is_data(np.zeros(3))
    assert not is_data(np.float64(3.0))
    assert not is_data(np.array(3.0))
    assert not is_data([1, 2, 3])
    assert not is_data({"a": [1]})
    assert snapshot("not data") is None


# --- diffs ---------------------------------------------------------------------------------


def test_dropping_188_duplicate_rows_counts_them_as_duplicates():
    raw = with_duplicates(customers(), 188)
    clean = raw.drop_duplicates()
    before, after = snap(raw), snap(clean)

    change = diff(before, after)

    assert before.n_duplicate_rows == 188
    assert after.n_duplicate_rows == 0
    assert change["rows_removed"] == 188
    assert change["duplicates_removed"] == 188
    assert change["rows_added"] == 0
    assert describe_change("raw", before, "clean", after, change) == (
        "raw 10,000x12 -> clean 9,812x12: 188 duplicate rows dropped"
    )


def test_a_cleaning_cell_is_summed_up_in_one_line():
    raw = with_duplicates(customers(), 188)
    clean = raw.drop_duplicates().copy()
    clean["age"] = pd.to_numeric(clean["age"]).fillna(40.0)

    before, after = snap(raw), snap(clean)
    change = diff(before, after)

    assert change["nulls_filled"] == {"age": 3}
    assert change["dtype_changes"] == {"age": ["object", "float64"]}
    assert (change["rows_removed"], change["duplicates_removed"]) == (188, 188)
    assert describe_change("raw", before, "clean", after, None) == (
        "raw 10,000x12 -> clean 9,812x12: 188 duplicate rows dropped, "
        "3 nulls filled in age, age: object -> float64"
    )


def test_fillna_on_one_column_reports_the_nulls_filled_and_the_rows_it_edited():
    frame = customers(1_000)
    frame.loc[[1, 2, 3], "score"] = np.nan
    filled = frame.fillna({"score": 0.0})

    change = diff(snap(frame), snap(filled))

    assert change["nulls_filled"] == {"score": 3}
    assert change["nulls_introduced"] == {}
    assert (change["rows_removed"], change["rows_added"], change["duplicates_removed"]) == (3, 3, 0)
    assert change["values_changed"] is True
    assert "3 rows changed, 3 nulls filled in score" in describe_change(
        "df", snap(frame), "df", snap(filled), change
    )


def test_astype_reports_the_dtype_change_and_keeps_every_row():
    frame = customers(1_000)
    change = diff(snap(frame), snap(frame.astype({"tenure": "float64", "plan": "category"})))

    assert change["dtype_changes"] == {
        "tenure": ["int64", "float64"],
        "plan": ["object", "category"],
    }
    assert (change["rows_added"], change["rows_removed"]) == (0, 0)


def test_added_and_dropped_columns_are_listed_and_rows_matched_on_the_others():
    frame = customers(1_000)
    features = frame.drop(columns=["plan", "signup"]).assign(ratio=frame["spend"] / 2)

    change = diff(snap(frame), snap(features))

    assert change["columns_added"] == ["ratio"]
    assert change["columns_dropped"] == ["signup", "plan"]
    assert (change["rows_added"], change["rows_removed"]) == (0, 0)
    assert change["values_changed"] is False
    assert describe_change("raw", snap(frame), "features", snap(features), change) == (
        "raw 1,000x12 -> features 1,000x11: 1 column added (ratio), "
        "2 columns dropped (signup, plan)"
    )


def test_filtered_and_appended_rows_are_counted_by_content():
    frame = customers(1_000)
    adults = frame[frame["tenure"] >= 12]
    more = pd.concat([frame, customers(25, seed=9)], ignore_index=True)

    removed = diff(snap(frame), snap(adults))
    added = diff(snap(frame), snap(more))

    assert removed["rows_removed"] == int((frame["tenure"] < 12).sum())
    assert removed["duplicates_removed"] == 0
    assert added["rows_added"] == 25
    assert added["rows_removed"] == 0
    # the new rows' 2 null ages were not "introduced": no cell that was set became null
    assert added["nulls_introduced"] == {}
    assert describe_change("df", snap(frame), "df", snap(more), added) == (
        "df 1,000x12 -> 1,025x12: 25 rows added"
    )


def test_duplicates_are_whole_rows_even_when_a_column_is_dropped_too():
    # rows 0 and 1 are copies; row 2 matches them only once "note" is gone
    frame = pd.DataFrame({"k": [1, 1, 1, 2], "note": ["a", "a", "b", "c"]})
    after = frame.drop_duplicates().drop(columns=["note"])

    change = diff(snap(frame), snap(after))

    assert change["columns_dropped"] == ["note"]
    assert (change["rows_removed"], change["duplicates_removed"]) == (1, 1)


def test_an_unchanged_frame_has_an_empty_diff():
    frame = customers(500)
    change = diff(snap(frame), snap(frame.copy()))

    assert change == {
        "rows_before": 500,
        "rows_after": 500,
        "rows_added": 0,
        "rows_removed": 0,
        "duplicates_removed": 0,
        "columns_added": [],
        "columns_dropped": [],
        "dtype_changes": {},
        "nulls_filled": {},
        "nulls_introduced": {},
        "values_changed": False,
    }
    assert json.dumps(change)
    assert (
        describe_change("df", snap(frame), "df", snap(frame), None)
        == "df 500x12 -> 500x12: no change"
    )


def test_a_new_frame_is_described_by_its_shape():
    assert describe_change("", None, "features", snap(customers(9_812)), None) == (
        "features 9,812x12 (new)"
    )


def test_nulls_introduced_by_a_merge_are_reported():
    frame = customers(100)
    extra = pd.DataFrame({"id": range(0, 100, 2), "region": "north"})
    merged = frame.merge(extra, on="id", how="left")

    change = diff(snap(frame), snap(merged))

    assert change["columns_added"] == ["region"]
    assert change["nulls_introduced"] == {}  # a new column has no "before" to compare with
    assert (change["rows_added"], change["rows_removed"]) == (0, 0)

    blanked = merged.assign(region=merged["region"].where(merged["id"] > 10))
    assert diff(snap(merged), snap(blanked))["nulls_introduced"] == {"region": 6}


def test_a_frame_edited_in_place_after_its_snapshot_is_not_trusted():
    frame = customers(1_000)
    before = snap(frame)
    frame.loc[0, "income"] = -1.0  # both the subtracted column and a key column change
    frame.loc[0:9, "tenure"] = -1
    after = snap(frame.drop(columns=["income"]))

    change = diff(before, after)

    # rows cannot be matched any more: the counts fall back to net changes, not to nonsense
    assert (change["rows_added"], change["rows_removed"]) == (0, 0)
    assert change["columns_dropped"] == ["income"]


def test_an_edit_in_place_to_another_column_does_not_spoil_the_diff():
    frame = with_duplicates(customers(1_000), 10)
    before = snap(frame)
    frame.loc[0, "tenure"] = -5  # edited after the snapshot, but not re-read by the diff
    after = snap(frame.iloc[:-10].drop(columns=["plan"]))

    change = diff(before, after)

    assert (change["rows_removed"], change["duplicates_removed"]) == (11, 10)
    assert change["rows_added"] == 1  # row 0, as edited


def test_diff_is_exact_on_a_large_frame():
    rng = np.random.default_rng(5)
    n = 300_000
    frame = pd.DataFrame(
        {
            "a": pd.array(rng.choice([f"w{i}" for i in range(500)], n), dtype="str"),
            "b": pd.array(rng.choice([f"v{i}" for i in range(50)], n), dtype="str"),
            "x": rng.integers(0, 100, n),
        }
    )
    before, after = snap(frame), snap(frame.drop_duplicates())

    change = diff(before, after)

    expected = int(frame.duplicated().sum())
    assert before.n_duplicate_rows == expected
    assert (change["rows_removed"], change["duplicates_removed"]) == (expected, expected)


def issue_frame() -> pd.DataFrame:
    """Issue 11's frame: 1,020 rows, 1,000 distinct (350 with a null b) and 20 copies, 6 of
    them of rows whose b is null: 356 nulls in b, 6 of which leave with the copies."""
    rng = np.random.default_rng(11)
    n = 1_000
    b = pd.Series(rng.choice(["p", "q", "r"], n), dtype=object)
    null_rows = rng.choice(n, 350, replace=False)
    b[null_rows] = None
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "b": b, "email": [f"u{i}@example.org" for i in range(n)]}
    )
    set_rows = np.setdiff1d(np.arange(n), null_rows)
    copies = np.concatenate([null_rows[:6], rng.choice(set_rows, 14, replace=False)])
    return pd.concat([frame, frame.iloc[copies]], ignore_index=True)


def test_nulls_filled_are_cells_filled_not_nulls_that_left_with_dropped_rows():
    df = issue_frame()
    before = snap(df)
    assert before.stats["b"]["nulls"] == 356
    df.drop_duplicates(inplace=True)  # in place: the diff must not re-read the old frame
    df["b"] = df["b"].fillna("x")
    after = snap(df)

    change = diff(before, after)

    assert change["nulls_filled"] == {"b": 350}
    assert change["nulls_introduced"] == {}
    assert (change["duplicates_removed"], change["rows_changed"]) == (20, 350)
    assert "nulls_net" not in change
    assert describe_change("df", before, "df", after, change) == (
        "df 1,020x3 -> 1,000x3: 20 duplicate rows dropped, 350 rows changed, 350 nulls filled in b"
    )


def test_nulls_filled_are_exact_when_rows_lose_their_labels_too():
    raw = issue_frame()
    clean = raw.drop_duplicates().reset_index(drop=True)
    clean["b"] = clean["b"].fillna("x")
    blanked = clean.assign(b=clean["b"].where(clean["a"] < 1.0)).sample(frac=1, random_state=0)

    change = diff(snap(raw), snap(clean))
    blanking = diff(snap(clean), snap(blanked.reset_index(drop=True)))

    assert change["nulls_filled"] == {"b": 350}
    assert change["duplicates_removed"] == 20
    assert blanking["nulls_introduced"] == {"b": int((clean["a"] >= 1.0).sum())}
    assert blanking["nulls_filled"] == {}


def test_null_counts_that_cannot_be_paired_are_worded_as_net_changes():
    df = issue_frame()
    before = snap(df)
    # sorted in place, labels reset: no label says which row is which, and the old frame's
    # cells are gone, so only the null counts can be compared
    df.sort_values("a", inplace=True, ignore_index=True)
    df.drop_duplicates(inplace=True, ignore_index=True)
    df["b"] = df["b"].fillna("x")
    after = snap(df)

    change = diff(before, after)

    assert change["nulls_filled"] == {"b": 356} and change["nulls_net"] is True
    assert describe_change("df", before, "df", after, change).endswith(
        "20 duplicate rows dropped, 350 rows changed, 356 fewer nulls in b"
    )


def test_a_new_value_computed_from_a_frame_reads_as_new_from_it():
    df = issue_frame().drop_duplicates()
    y = (df["a"] > 0).astype(int)

    assert describe_change("df", None, "y", snap(y), None) == "y 1,000x1 (new, from df)"
    assert describe_change("y", None, "y", snap(y), None) == "y 1,000x1 (new)"


# --- numpy ---------------------------------------------------------------------------------


def test_a_2d_array_is_described_column_by_column():
    array = np.arange(12, dtype=np.float64).reshape(4, 3)
    array[3] = array[0]
    result = snap(array)

    assert (result.kind, result.n_rows, result.n_cols) == ("numpy", 4, 3)
    assert result.schema == {"dtype": "float64", "shape": "4x3"}
    assert result.n_duplicate_rows == 1
    assert result.stats["1"] == {
        "nulls": 0,
        "min": 1.0,
        "max": 7.0,
        "mean": 3.25,
        "std": pytest.approx(np.std([1.0, 4.0, 7.0, 1.0], ddof=1)),
    }
    edited = array.copy()
    edited[2, 2] = 0.5
    assert snap(edited).fingerprint != result.fingerprint
    assert snap(array.copy()).fingerprint == result.fingerprint


def test_arrays_of_other_shapes_and_dtypes():
    images = np.random.default_rng(0).integers(0, 255, (10, 8, 8), dtype=np.uint8)
    labels = np.array(["cat", "dog", None, "cat"], dtype=object)
    records = np.array([(1, 2.0), (1, 2.0)], dtype=[("n", "i4"), ("x", "f8")])

    assert snap(images).stats["values"]["max"] <= 254
    assert snap(images).n_cols == 64
    assert snap(labels).stats["0"] == {
        "nulls": 1, "distinct": 2, "top": "cat", "counts": {"cat": 2, "dog": 1}
    }  # fmt: skip
    assert snap(records).schema == {"dtype": str(records.dtype), "shape": "2"}
    assert snap(records).n_duplicate_rows == 1


def test_a_numpy_diff_counts_rows_and_the_dtype():
    array = np.arange(20).reshape(10, 2)
    change = diff(snap(array), snap(array[:7].astype(np.float32)))

    assert change["dtype_changes"] == {"dtype": ["int64", "float32"]}
    assert (change["rows_before"], change["rows_after"], change["rows_removed"]) == (10, 7, 3)

    same_dtype = diff(snap(array), snap(np.concatenate([array[:7], array[:1]])))
    assert (same_dtype["rows_removed"], same_dtype["rows_added"]) == (3, 1)


# --- polars ----------------------------------------------------------------------------------


def test_polars_frames_are_snapshotted_and_diffed():
    import polars as pl  # installed by the test extra

    frame = pl.DataFrame(
        {
            "id": [1, 2, 2, 3, None],
            "name": ["a", "b", "b", None, "e"],
            "when": pl.Series([1, 2, 2, 3, 4]).cast(pl.Datetime("us")),
            "tags": [["x"], ["y"], ["y"], [], None],
            "level": pl.Series(["lo", "hi", "hi", "lo", "lo"], dtype=pl.Categorical),
            "at": pl.Series([1, 2, 2, 3, 4]).cast(pl.Datetime("us", time_zone="Europe/Paris")),
        }
    )
    before = snap(frame)
    after = snap(frame.unique(maintain_order=True).with_columns(pl.col("id").fill_null(0)))

    assert is_data(frame)
    assert before.kind == "polars"
    assert before.schema["id"] == "Int64"
    assert before.schema["name"] == "String"
    assert before.n_duplicate_rows == 1
    assert before.stats["name"] == {
        "nulls": 1, "distinct": 3, "top": "b", "counts": {"a": 1, "b": 2, "e": 1}
    }  # fmt: skip
    assert before.stats["id"]["max"] == 3
    assert before.stats["at"]["max"] == "1970-01-01 01:00:00.000004+01:00"
    json.dumps(before.to_record(), allow_nan=False)

    change = diff(before, after)
    assert (change["rows_removed"], change["duplicates_removed"]) == (2, 1)
    assert change["rows_added"] == 1  # the row whose null id became 0
    assert change["nulls_filled"] == {"id": 1}

    edited = frame.with_columns(
        pl.when(pl.col("name") == "e").then(pl.lit("f")).otherwise(pl.col("name")).alias("name")
    )
    assert snap(edited).fingerprint != before.fingerprint
