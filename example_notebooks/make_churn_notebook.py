"""Build example_notebooks/churn.ipynb, the customer churn example, from the cells below.

The notebook is generated rather than edited by hand so that it stays reproducible and
diffable: every cell has a fixed id, the file carries no outputs, and running this script
twice writes the same bytes.

    python example_notebooks/make_churn_notebook.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).with_name("churn.ipynb")


def markdown(cell_id: str, text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"), id=cell_id)


def code(cell_id: str, text: str, *, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"), id=cell_id)
    if tags:
        cell.metadata["tags"] = tags
    return cell


# fmt: off
CELLS = [
    markdown("title", """
# Customer churn model

This notebook trains a model that predicts which customers of a subscription business are
about to cancel (churn), so that they can be contacted before they leave. It builds a
synthetic customer table, cleans it, explores it, turns it into features, trains a random
forest next to a simple baseline and a customer segmentation, and evaluates the model.
Every stage is recorded by `mlops_nb` in the experiment log, together with the data it
read and wrote, the fitted models and the final metrics.
"""),
    code("setup", """
%load_ext mlops_nb
%mlops track --experiment churn
"""),
    code("parameters", """
n_customers: int = 10000  # rows in the synthetic customer table
test_size: float = 0.25  # share of customers held out for evaluation
n_estimators: int = 200  # trees in the random forest
max_depth: int = 8  # depth limit of each tree
n_components: int = 10  # PCA components kept from the scaled features
seed: int = 42  # random seed for data generation and models
data_path: str = ""  # a CSV export of customers to use instead of the synthetic table
""", tags=["parameters"]),
    markdown("ingest-md", """
## Ingest: the raw customer table

We generate the customer table instead of downloading it, so the notebook runs anywhere
and always produces the same data for the same `seed`. It is deliberately messy, like a
real export: ages are stored as text with some missing, total charges are text with some
blanks, signup dates are strings, a few monthly charges are missing, and 188 rows were
exported twice. Whether a customer churned depends on their contract, tenure, support
calls and monthly charges, partly in non-linear ways (the first months are the riskiest,
and fiber customers who keep calling support often leave), so there is a real pattern
for a model to learn. Given `data_path`, the notebook reads a CSV export with the same
columns instead (this is how `mlops-nb monitor --retrain` feeds it new customers).
"""),
    code("ingest", """
%%mlops track ingest
import numpy as np
import pandas as pd

rng = np.random.default_rng(seed)
n_duplicates = 188  # rows the export wrote twice


def make_customers(n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    \"\"\"A synthetic customer table with the flaws of a real export.\"\"\"
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=n_rows,
                          p=[0.55, 0.25, 0.20])
    internet = rng.choice(["dsl", "fiber", "none"], size=n_rows, p=[0.40, 0.45, 0.15])
    payment = rng.choice(["electronic-check", "mailed-check", "bank-transfer", "credit-card"],
                         size=n_rows, p=[0.35, 0.20, 0.225, 0.225])
    region = rng.choice(["north", "south", "east", "west", "central"], size=n_rows)
    tenure = rng.integers(0, 73, size=n_rows)
    base_charge = np.select([internet == "fiber", internet == "dsl"], [85.0, 55.0], 22.0)
    monthly = np.round(base_charge + rng.normal(0, 12, size=n_rows), 2).clip(15, None)
    total = np.round(tenure * monthly * rng.normal(1.0, 0.03, size=n_rows), 2)
    month_to_month = contract == "month-to-month"
    support_calls = rng.poisson(1.0 + 1.0 * month_to_month)
    age = rng.integers(18, 81, size=n_rows)
    signup = np.datetime64("2025-01-01") - (
        np.round(tenure * 30.44).astype(int) + rng.integers(0, 28, size=n_rows)
    ).astype("timedelta64[D]")

    # churn risk: new customers, month-to-month contracts, fiber customers who keep
    # calling support, and high bills
    logit = (
        -2.4
        + 1.8 * month_to_month
        - 1.0 * (contract == "two-year")
        - 0.02 * tenure
        + 2.0 * (tenure < 6)
        + 1.8 * (internet == "fiber") * (support_calls >= 3)
        + 0.2 * support_calls
        + 0.03 * np.clip(monthly - 70, 0, None)
        + rng.normal(0, 0.3, size=n_rows)
    )
    churned = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)

    # the flaws of the export: text columns, missing values and blanks
    age_text = pd.Series(age.astype(str), dtype=object)
    age_text[rng.random(n_rows) < 0.03] = None
    monthly[rng.random(n_rows) < 0.02] = np.nan
    total_text = pd.Series([f"{value:.2f}" for value in total], dtype=object)
    total_text[rng.random(n_rows) < 0.015] = ""

    return pd.DataFrame({
        "customer_id": [f"C{number:06d}" for number in range(1, n_rows + 1)],
        "age": age_text,
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total_text,
        "contract": contract,
        "payment_method": payment,
        "internet_service": internet,
        "support_calls": support_calls,
        "signup_date": signup.astype(str),
        "region": region,
        "churned": churned,
    })


# a real export (e.g. new customers to retrain on) when given, else the synthetic table
customers = pd.read_csv(data_path) if data_path else make_customers(n_customers, rng)
# the export wrote some rows twice: distinct source rows, copied once each
copied = rng.choice(len(customers), size=min(n_duplicates, len(customers)), replace=False)
raw = pd.concat([customers, customers.iloc[copied]], ignore_index=True)
raw.head()
"""),
    markdown("clean-md", """
## Clean: one row per customer, the right types, no gaps

We drop the rows that were exported twice, then give every column its proper type:
age and total charges become numbers (a blank total becomes missing), the signup date
becomes a date and the text categories become categorical columns. Missing ages and
monthly charges are filled with the median, and a missing total is estimated as tenure
times the monthly charge. The raw table is left untouched; all changes go into `clean`.
"""),
    code("clean", """
%%mlops track clean
clean = raw.drop_duplicates().reset_index(drop=True)

clean["age"] = pd.to_numeric(clean["age"], errors="coerce").astype(float)
clean["total_charges"] = pd.to_numeric(clean["total_charges"], errors="coerce")
clean["signup_date"] = pd.to_datetime(clean["signup_date"])
categorical = ["contract", "payment_method", "internet_service", "region"]
clean = clean.astype({column: "category" for column in categorical})

clean["age"] = clean["age"].fillna(clean["age"].median())
clean["monthly_charges"] = clean["monthly_charges"].fillna(clean["monthly_charges"].median())
clean["total_charges"] = clean["total_charges"].fillna(
    clean["tenure_months"] * clean["monthly_charges"]
)
clean.shape
"""),
    markdown("explore-md", """
## Explore: who churns?

Two quick views of the cleaned data. The bar chart shows the share of customers who
churned for each contract type: customers without a long contract leave far more often.
The histogram shows how long customers have stayed; churn is concentrated among the
newer ones.
"""),
    code("explore", """
%%mlops track explore
import matplotlib.pyplot as plt

churn_by_contract = clean.groupby("contract", observed=True)["churned"].mean()

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
churn_by_contract.plot.bar(ax=left, color="tab:red", rot=0)
left.set_title("Churn rate by contract type")
left.set_xlabel("contract")
left.set_ylabel("share of customers who churned")
right.hist(clean["tenure_months"], bins=24, color="tab:blue")
right.set_title("Tenure")
right.set_xlabel("months as a customer")
right.set_ylabel("customers")
fig.tight_layout()
plt.show()
"""),
    markdown("features-md", """
## Features: from table to model inputs

We turn the signup date into a signup year, set aside the customer id (an identifier,
not a signal) and the target, and hold out a share of customers (`test_size`) for the
final evaluation, keeping the churn rate equal in both parts. The preprocessing learns
only from the training customers: categories are one-hot encoded and numbers are
standardised. A PCA then compresses the standardised features into `n_components`
components, used below to segment customers.
"""),
    code("features", """
%%mlops track features
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler

data = clean.assign(signup_year=clean["signup_date"].dt.year)
X = data.drop(columns=["customer_id", "signup_date", "churned"])
y = data["churned"]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=test_size, random_state=seed, stratify=y
)

categorical_columns = ["contract", "payment_method", "internet_service", "region"]
numeric_columns = [column for column in X.columns if column not in categorical_columns]
preprocess = ColumnTransformer([
    ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
     categorical_columns),
    ("numbers", StandardScaler(), numeric_columns),
]).set_output(transform="pandas")
preprocess.fit(X_train)
X_train_features = preprocess.transform(X_train)
X_test_features = preprocess.transform(X_test)

pca = PCA(n_components=n_components, random_state=seed).set_output(transform="pandas")
X_train_pca = pca.fit_transform(X_train_features)
X_test_pca = pca.transform(X_test_features)
X_train_features.shape, X_train_pca.shape
"""),
    markdown("train-md", """
## Train: the churn model and a baseline

The churn model is a random forest (`n_estimators` trees, each at most `max_depth`
deep) trained on the full feature set; trees can pick up thresholds and interactions,
such as "new customer" or "fiber customer with many support calls". Next to it we train
a plain logistic regression as a baseline: if the forest cannot beat it, its extra
complexity is not worth it.
"""),
    code("train", """
%%mlops track train
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

model = RandomForestClassifier(
    n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1
)
model.fit(X_train_features, y_train)

baseline = LogisticRegression(max_iter=1000)
baseline.fit(X_train_features, y_train)
"""),
    markdown("segments-md", """
## Segments: groups of similar customers

Separately from churn prediction, we group the training customers into four segments
with k-means on the PCA components. The segments need no target; they describe which
kinds of customers the business has, for example to tailor retention offers.
"""),
    code("segments", """
%%mlops track train --name segments
from sklearn.cluster import KMeans

segments = KMeans(n_clusters=4, random_state=seed, n_init=10)
segments.fit(X_train_pca)
pd.Series(segments.labels_).value_counts().sort_index()
"""),
    markdown("evaluate-md", """
## Evaluate: how well does the model find churners?

We score the random forest on the held-out customers it has never seen. Accuracy is the
share of customers classified correctly, F1 balances finding churners against false
alarms, and ROC AUC measures how well the predicted churn probability ranks churners
above loyal customers (0.5 is chance, 1.0 is perfect). The baseline's accuracy is logged
next to them, and all four numbers go into the experiment log.
"""),
    code("evaluate", """
%%mlops track evaluate
from sklearn.metrics import accuracy_score, classification_report, f1_score, roc_auc_score

import mlops_nb as mn

predicted = model.predict(X_test_features)
churn_probability = model.predict_proba(X_test_features)[:, 1]
metrics = {
    "accuracy": accuracy_score(y_test, predicted),
    "f1": f1_score(y_test, predicted),
    "roc_auc": roc_auc_score(y_test, churn_probability),
    "baseline_accuracy": accuracy_score(y_test, baseline.predict(X_test_features)),
}
mn.log_metrics(metrics)

majority_share = max(y_test.mean(), 1 - y_test.mean())
print(f"share of the majority class: {majority_share:.3f}")
for name, value in metrics.items():
    print(f"{name:>17}: {value:.3f}")
print()
print(classification_report(y_test, predicted, target_names=["stayed", "churned"], digits=3))
"""),
    markdown("closing", """
## Reading the results

Compare the model's accuracy with the share of the majority class printed above: always
predicting "stayed" already scores that much, so only accuracy above it shows that the
model learned something. F1 and the churned row of the classification report say how
many churners are found (recall) and how many flagged customers really churn
(precision); ROC AUC says how useful the churn probability is for ranking customers to
contact. If the random forest does not beat `baseline_accuracy`, prefer the simpler
model. Every run of this notebook, with its parameters, data snapshots, models and
metrics, is in the `churn` experiment of the log, so runs with other parameters can be
compared side by side.
"""),
]
# fmt: on


def build() -> nbformat.NotebookNode:
    notebook = new_notebook(
        cells=CELLS,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    return notebook


def main() -> None:
    notebook = build()
    nbformat.validate(notebook)
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK} ({len(notebook.cells)} cells)")


if __name__ == "__main__":
    main()
