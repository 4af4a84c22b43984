"""The demo job for now: train a few classifiers and record each as a run in the log.

Run by `make demo` in a scratch folder, so the log lands in ./.mlops/log.duckdb there.
The annotated notebook pipeline replaces this once `mlops-nb run` exists.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlops_nb as mn

CANDIDATES = [
    ("logistic", {"C": 0.1}),
    ("logistic", {"C": 1.0}),
    ("logistic", {"C": 10.0}),
    ("forest", {"n_estimators": 50, "max_depth": 3}),
    ("forest", {"n_estimators": 200, "max_depth": None}),
]


def build(model: str, params: dict):
    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, **params))
    return RandomForestClassifier(random_state=0, **params)


def main() -> None:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.25, random_state=0, stratify=target
    )
    log = mn.open_log()
    print(f"recording into {log.path}")
    for model, params in CANDIDATES:
        with log.start_run(experiment="breast-cancer", name=model,
                           params={"model": model, **params}) as run:  # fmt: skip
            estimator = build(model, params).fit(x_train, y_train)
            predicted = estimator.predict(x_test)
            scores = estimator.predict_proba(x_test)[:, 1]
            run.log_metrics({
                "accuracy": accuracy_score(y_test, predicted),
                "f1": f1_score(y_test, predicted),
                "roc_auc": roc_auc_score(y_test, scores),
            })  # fmt: skip
            with tempfile.TemporaryDirectory() as folder:
                report = Path(folder) / "test_predictions.json"
                report.write_text(json.dumps({"predicted": predicted.tolist()}))
                run.log_artifact(report)
            print(f"  {model:9} {params}  accuracy={accuracy_score(y_test, predicted):.3f}")
    log.close()


if __name__ == "__main__":
    main()
