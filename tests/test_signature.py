"""The signature check of request columns: the fast path for well-typed values must give
exactly what the general rules give, and every refusal must name the same column and value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_nb.registry.signature import SignatureError, signature_from_frame


@pytest.fixture(scope="module")
def signature():
    training = pd.DataFrame({
        "age": [31.0, 45.5, 52.0, 23.0],
        "tenure": np.array([1, 12, 30, 4], dtype=np.int64),
        "plan": ["basic", "pro", "basic", "team"],
        "region": pd.Categorical(["north", "south", "north", "east"]),
        "active": [True, False, True, True],
        "note": [f"free text {i}" for i in range(4)],
    })  # fmt: skip
    signature = signature_from_frame(training)
    signature.columns[-1].categories = None  # free text: any string
    signature.columns[0].nullable = False
    return signature


def _request(**changes):
    columns = {
        "age": [40.0, 38, 61.5], "tenure": [3, 7, 11], "plan": ["pro", "basic", "pro"],
        "region": ["east", "north", "south"], "active": [False, True, True],
        "note": ["a", "b", "c"], "extra": [1, 2, 3],
    }  # fmt: skip
    columns.update(changes)
    return columns


def test_well_typed_columns_give_what_the_general_rules_give(signature):
    columns = _request()
    fast = signature.check_columns(columns)
    general = signature.check(pd.DataFrame(columns))
    pd.testing.assert_frame_equal(fast, general)
    assert list(fast.columns) == signature.names  # extra column dropped, training order
    assert str(fast["tenure"].dtype) == "int64" and str(fast["age"].dtype) == "float64"
    assert isinstance(fast["region"].dtype, pd.CategoricalDtype)
    assert fast["plan"].dtype == object  # text reaches the model as Python strings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"age": [40.0, None, 61.5]}, "column 'age': null in row 1"),
        ({"age": [40.0, float("nan"), 61.5]}, "column 'age': null in row 1"),
        ({"age": [40.0, "old", 61.5]}, "column 'age': 'old' is not a number"),
        ({"age": [40.0, True, 61.5]}, "column 'age': True is not a number"),
        ({"tenure": [3, 7.5, 11]}, "column 'tenure': 7.5 is not an integer"),
        ({"plan": ["pro", "gold", "pro"]}, "column 'plan': unseen category 'gold'"),
        ({"region": ["east", "west", "south"]}, "column 'region': unseen category 'west'"),
        ({"active": [False, 1, True]}, "column 'active': 1 is not a boolean"),
        ({"note": ["a", 5, "c"]}, "column 'note': 5 is not text"),
    ],
)
def test_refusals_name_the_column_and_value(signature, changes, message):
    with pytest.raises(SignatureError) as fast:
        signature.check_columns(_request(**changes))
    with pytest.raises(SignatureError) as general:
        signature.check(pd.DataFrame(_request(**changes)))
    assert message in str(fast.value)
    assert str(fast.value) == str(general.value)


def test_a_missing_column_is_named(signature):
    columns = _request()
    del columns["plan"], columns["active"]
    with pytest.raises(SignatureError, match="missing columns: plan, active"):
        signature.check_columns(columns)


def test_integral_floats_and_huge_integers_follow_the_general_rules(signature):
    fast = signature.check_columns(_request(tenure=[3.0, 7.0, 11.0]))
    assert fast["tenure"].tolist() == [3, 7, 11] and str(fast["tenure"].dtype) == "int64"
    huge = 2**70  # wider than int64: refused, never wrapped around
    for check in (signature.check_columns, lambda c: signature.check(pd.DataFrame(c))):
        with pytest.raises(SignatureError, match=f"'tenure': {huge} is out of range for int64"):
            check(_request(tenure=[3, huge, 11]))
