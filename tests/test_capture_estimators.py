"""mlops_nb.capture.estimators: scikit-learn models as plain records, and their fit tokens."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import DBSCAN, KMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlops_nb.capture.estimators import (
    describe_estimator,
    fit_token,
    is_estimator,
    is_fitted,
)


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, 120).astype(float),
            "income": rng.normal(50_000, 15_000, 120),
            "city": rng.choice(["Paris", "Lyon", "Nantes"], 120),
        }
    )
    target = (frame["income"] > 50_000).astype(int).to_numpy()
    return frame, target


def preprocessing() -> ColumnTransformer:
    return ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", OneHotEncoder(), ["city"])]
    )


def test_estimators_are_instances_with_get_params_and_fit():
    assert is_estimator(LogisticRegression())
    assert is_estimator(make_pipeline(StandardScaler(), LogisticRegression()))
    assert is_estimator(preprocessing())
    assert not is_estimator(LogisticRegression)  # the class, not a model
    assert not is_estimator(KFold())  # has no fit
    assert not is_estimator(None)
    assert not is_estimator(pd.DataFrame())


def test_is_fitted_follows_scikit_learn_and_never_raises(data):
    frame, target = data
    model = make_pipeline(preprocessing(), LogisticRegression())

    assert not is_fitted(model)
    assert not is_fitted(preprocessing())
    assert not is_fitted("not an estimator")
    assert not is_fitted(LogisticRegression)
    model.fit(frame, target)
    assert is_fitted(model)
    assert is_fitted(model[0])


def test_fit_token_changes_on_refit_and_not_otherwise(data):
    frame, target = data
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    assert fit_token(forest) is None

    forest.fit(frame[["age", "income"]], target)
    token = fit_token(forest)
    forest.predict(frame[["age", "income"]])
    forest.set_params(n_jobs=2)  # a parameter change is not a new fit

    assert token is not None
    assert fit_token(forest) == token
    forest.fit(frame[["age", "income"]], target)
    assert fit_token(forest) != token


def test_fit_token_sees_a_pipeline_refitting_its_steps_in_place(data):
    frame, target = data
    model = Pipeline([("prep", preprocessing()), ("clf", LogisticRegression())])
    model.fit(frame, target)
    token = fit_token(model)

    assert fit_token(model) == token
    model.fit(frame.iloc[:60], target[:60])
    assert fit_token(model) != token


def test_fit_token_of_a_fitted_meta_estimator_changes_on_refit(data):
    frame, target = data
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)
    search.fit(frame[["age", "income"]], target)
    token = fit_token(search)

    search.fit(frame[["age", "income"]], target)
    assert fit_token(search) != token


def test_a_classifier_is_described_with_its_classes_and_public_class_name(data):
    frame, target = data
    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    forest.fit(frame[["age", "income"]], np.where(target == 1, "churn", "stay"))

    described = describe_estimator(forest)

    assert described["class_name"] == "sklearn.ensemble.RandomForestClassifier"
    assert described["kind"] == "classifier"
    assert described["fitted"] is True
    assert described["classes"] == ["churn", "stay"]
    assert described["n_features_in"] == 2
    assert described["feature_names_in"] == ["age", "income"]
    assert described["params"]["n_estimators"] == 5
    assert described["output_features"] is None
    assert described["steps"] is None


def test_integer_classes_are_given_as_strings(data):
    frame, target = data
    model = LogisticRegression().fit(frame[["age", "income"]].to_numpy(), target)

    described = describe_estimator(model)

    assert described["classes"] == ["0", "1"]
    assert described["feature_names_in"] is None  # fitted on an array: no names


def test_kinds_cover_supervised_and_unsupervised_models(data):
    frame, target = data
    numbers = frame[["age", "income"]]

    assert describe_estimator(LinearRegression().fit(numbers, target))["kind"] == "regressor"
    assert describe_estimator(KMeans(n_clusters=3, n_init=1).fit(numbers))["kind"] == "clusterer"
    assert describe_estimator(DBSCAN().fit(numbers))["kind"] == "clusterer"
    assert describe_estimator(PCA(n_components=2).fit(numbers))["kind"] == "transformer"
    assert describe_estimator(make_pipeline(PCA(), KMeans(n_init=1)))["kind"] == "pipeline"


@pytest.mark.parametrize(
    ("make", "columns", "expected"),
    [
        (lambda: OneHotEncoder(), ["city"], ["city_Lyon", "city_Nantes", "city_Paris"]),
        (lambda: PCA(n_components=2), ["age", "income"], ["pca0", "pca1"]),
        (lambda: SelectKBest(k=1), ["age", "income"], ["income"]),
        (lambda: StandardScaler(), ["age", "income"], ["age", "income"]),
        (
            preprocessing,
            ["age", "income", "city"],
            ["num__age", "num__income", "cat__city_Lyon", "cat__city_Nantes", "cat__city_Paris"],
        ),
    ],
)
def test_transformers_give_their_output_feature_names(data, make, columns, expected):
    frame, target = data
    transformer = make().fit(frame[columns], target)

    described = describe_estimator(transformer)

    assert described["kind"] == "transformer"
    assert described["output_features"] == expected


def test_a_pipeline_lists_its_steps_and_a_column_transformer_its_columns(data):
    frame, target = data
    model = Pipeline([("prep", preprocessing()), ("pca", PCA(2)), ("clf", LogisticRegression())])
    model.fit(frame, target)

    described = describe_estimator(model)
    prep = describe_estimator(model.named_steps["prep"])

    assert described["steps"] == [
        ["prep", "sklearn.compose.ColumnTransformer"],
        ["pca", "sklearn.decomposition.PCA"],
        ["clf", "sklearn.linear_model.LogisticRegression"],
    ]
    assert described["classes"] == ["0", "1"]
    assert described["n_features_in"] == 3
    assert prep["steps"][:2] == [
        ["num", "sklearn.preprocessing.StandardScaler", ["age", "income"]],
        ["cat", "sklearn.preprocessing.OneHotEncoder", ["city"]],
    ]
    assert describe_estimator(
        make_pipeline(StandardScaler(), PCA(1)).fit(frame[["age", "income"]])
    )["output_features"] == ["pca0"]


def test_an_unfitted_estimator_is_described_too():
    described = describe_estimator(make_pipeline(preprocessing(), LogisticRegression()))

    assert described["fitted"] is False
    assert described["n_features_in"] is None
    assert described["output_features"] is None
    assert described["classes"] is None
    assert [name for name, _ in described["steps"]] == ["columntransformer", "logisticregression"]


def test_params_are_json_whatever_they_hold():
    odd = Pipeline(
        [
            ("log", FunctionTransformer(np.log1p, kw_args={"dtype": np.float32})),
            ("select", SelectKBest(k="all")),
            ("pca", PCA(n_components=0.9, tol=float("inf"))),
            ("search", GridSearchCV(LogisticRegression(), {"C": np.logspace(-3, 3, 200)})),
        ]
    )

    for model in [*odd.named_steps.values(), odd, LinearRegression(), preprocessing()]:
        json.dumps(describe_estimator(model), allow_nan=False)
    params = describe_estimator(odd.named_steps["search"])["params"]
    assert params["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert params["param_grid"]["C"] == "ndarray(200, float64)"
    assert describe_estimator(odd.named_steps["log"])["params"]["func"] == "log1p"
    assert describe_estimator(odd.named_steps["pca"])["params"]["tol"] == "inf"
    small = KMeans(init=np.arange(6.0).reshape(3, 2), n_clusters=3, n_init=1)
    assert describe_estimator(small)["params"]["init"] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
