"""Governance in the generated docs: one real ``mlops-nb run`` of a notebook with an email
column, a failing ``--expect`` check (``--warn-only``), a join, a ``--sensitive`` evaluation
and a registered model; the datasheet shows the checks, the personal data found and where it
is kept, the model card the fairness table, the importance chart and the inputs expected, and
no planted email is anywhere in the documents."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from nbformat.v4 import new_code_cell, new_notebook

import mlops_nb as mn
from mlops_nb.capture.expectations import infer_expectations, write_file
from mlops_nb.docs.build import format_number

HOSTILE = "<img src=x onerror=alert(1)>"  # a region named like markup: shown as text
AGE_LIMIT = 75
UPPER = (5, 17, 40)  # rows whose email breaks the expectations' pattern
CELLS = [
    "%%mlops track ingest\nimport pandas as pd\n"
    "customers = pd.read_csv('customers.csv')\nplans = pd.read_csv('plans.csv')",
    "%%mlops track clean --expect customers.yaml --warn-only\n"
    "clean = customers.merge(plans, on='customer_id', how='left')",
    "%%mlops track features\nfrom sklearn.model_selection import train_test_split\n"
    "X = clean[['age', 'income', 'region']]\ny = clean['churned']\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)",
    "%%mlops track train\nfrom sklearn.compose import ColumnTransformer\n"
    "from sklearn.linear_model import LogisticRegression\nfrom sklearn.pipeline import Pipeline\n"
    "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
    "model = Pipeline([\n"
    "    ('prepare', ColumnTransformer([('region', OneHotEncoder(), ['region']),\n"
    "                                   ('numbers', StandardScaler(), ['age', 'income'])])),\n"
    "    ('classify', LogisticRegression()),\n"
    "]).fit(X_train, y_train)",
    "%%mlops track evaluate --sensitive region\nimport mlops_nb as mn\n"
    "from sklearn.metrics import accuracy_score\npredicted = model.predict(X_test)\n"
    "mn.log_metric('accuracy', accuracy_score(y_test, predicted))",
]


def customers(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    region = rng.choice(["north", "south", HOSTILE], n)
    age = rng.integers(18, 86, n)
    emails = [f"client{i}.planted@mailbox-planted.org" for i in range(n)]
    for i in UPPER:
        emails[i] = f"Upper{i}.Planted@mailbox-planted.org"
    churn = 0.1 + 0.6 * (region == "south") + 0.25 * (age > 60)
    return pd.DataFrame({
        "customer_id": np.arange(1, n + 1), "email": emails, "region": region, "age": age,
        "income": rng.normal(40_000, 12_000, n).round(0),
        "churned": (rng.random(n) < churn).astype(int),
    })  # fmt: skip


@pytest.fixture(scope="module")
def documented(tmp_path_factory):
    """The run, its registered model (churn:1), and its docs in both formats."""
    work = tmp_path_factory.mktemp("governance")
    frame = customers()
    frame.to_csv(work / "customers.csv", index=False)
    plans = pd.DataFrame({"customer_id": np.arange(1, 241, 2), "plan": ["basic", "plus"] * 60})
    plans.to_csv(work / "plans.csv", index=False)
    spec = infer_expectations(frame.assign(age=frame["age"].clip(upper=AGE_LIMIT)),
                              private={"email"})  # fmt: skip
    spec.columns["email"].pattern = r"^[a-z0-9.]+@mailbox-planted\.org$"
    write_file(spec, work / "customers.yaml")
    nb = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, work / "customers.ipynb")
    ran = run_cli("run", "customers.ipynb", cwd=work)
    assert ran.returncode == 0, ran.stderr
    registered = run_cli("models", "register", "churn", "--alias", "champion", cwd=work)
    assert registered.returncode == 0, registered.stderr
    docs = run_cli("docs", "customers.ipynb", "--out", work / "docs", cwd=work)
    assert docs.returncode == 0, docs.stderr
    log = mn.open_log(work / ".mlops" / "log.duckdb", create=False)
    record = log.run("latest")
    out = work / "docs"
    yield {"work": work, "frame": frame, "log": log, "record": record, "out": out,
           "md": (out / "customers.md").read_text(),
           "html": (out / "customers.html").read_text()}  # fmt: skip
    log.close()


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_the_datasheet_lists_every_failed_check_without_personal_values(documented):
    frame, md, html = documented["frame"], documented["md"], documented["html"]
    run = documented["record"].run_id
    checks = _between(md, "### Data checks", "### Personal data")
    old = frame.index[frame["age"] > AGE_LIMIT]
    ages = ", ".join(str(a) for a in frame.loc[old, "age"].drop_duplicates()[:5])  # distinct
    assert f"**Failed:** `{run[:8]}:clean@v1` (clean) against customers.yaml: " in checks
    assert f"| age | max | {len(old)} of 240 | {', '.join(map(str, old[:5]))}, … | {ages} |" \
        in checks  # fmt: skip
    assert "| email | pattern | 3 of 240 | 5, 17, 40 | personal data: not shown |" in checks
    assert ("<tr><td>email</td><td>pattern</td><td>3 of 240</td><td>5, 17, 40</td>"
            '<td class="muted">personal data: not shown</td></tr>') in html  # fmt: skip
    # what it was checked against, and what the cell's join did
    assert f"| age | int64 | none | 18 to {AGE_LIMIT} |" in checks
    assert re.search(r"\| email \| str \| none \|  \|  \| `\^\[a-z0-9\.\]\+@[^`]+` \|  \| yes \|",
                     checks)  # fmt: skip
    assert "join customers + plans on customer_id -&gt; clean 240 rows" in checks
    assert "customers: 120 of 240 rows matched (120 unmatched)" in checks


def test_the_datasheet_says_which_columns_hold_personal_data_and_where_they_are_kept(
    documented,
):
    md, html, work = documented["md"], documented["html"], documented["work"]
    personal = _between(md, "### Personal data", "### Uses")
    for dataset in ("customers@v1", "clean@v1"):
        assert f"| `{dataset}` | email | email | pattern | 100% | flagged |" in personal
    assert re.search(r"\| `customers` \| ingest \| customers@v1 \| email \| "
                     r"encrypted \(AES-256-GCM\) \| [\d.]+ kB \|", personal)  # fmt: skip
    assert "NOT encrypted" not in personal and "`features`" not in personal
    key = work / ".mlops" / "mlops-nb.key"
    assert f"Key for encryption and keyed hashes: the file {key} (mode 0600)." in personal
    assert "Retention policy: none: everything is kept until mlops-nb purge removes it" in md
    assert f"the file {key} (mode 0600)" in html


def test_the_model_card_shows_fairness_summary_then_groups(documented):
    md, html, record = documented["md"], documented["html"], documented["record"]
    log = documented["log"]
    card = _between(md, "### Quantitative analyses", "### Ethical considerations")
    summary = [format_number(record.metrics[m]) for m in ("demographic_parity_difference",
               "demographic_parity_ratio", "equalized_odds_difference")]  # fmt: skip
    assert "**Fairness by `region`** (96 evaluation rows)" in card
    assert ("| demographic parity difference | demographic parity ratio | equalized odds "
            f"difference |\n|---|---|---|\n| {' | '.join(summary)} |") in card  # fmt: skip
    assert ("| region | accuracy | selection rate | true positive rate | false positive rate "
            "| rows |") in card  # fmt: skip
    rows = log.fairness(run_id=record.run_id)
    north = rows[(rows["group"] == "north")].set_index("metric")["value"]
    assert (f"| north | {format_number(north['accuracy'])} | "
            f"{format_number(north['selection_rate'])} |") in card  # fmt: skip
    assert "| &lt;img src=x onerror=alert(1)&gt; |" in card and "| *overall* |" in card
    assert summary[1] in _between(html, '<table class="fairness-summary">', "</table>")
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in html and HOSTILE not in html


def test_the_model_card_has_the_importance_chart_and_the_inputs_expected(documented):
    md, html, out, log = documented["md"], documented["html"], documented["out"], documented["log"]
    measured = log.importances("churn", 1)
    features = measured["feature"].tolist()
    assert sorted(features) == ["age", "income", "region"]
    figure = _between(html, '<figure class="importance">', "</figure>")
    svg = ET.fromstring(figure[figure.index("<svg") :])
    assert "Permutation importance (drop of accuracy)" in ET.tostring(svg, encoding="unicode")
    assert len(svg.findall("{http://www.w3.org/2000/svg}rect")) == 3
    explanations = _between(md, "### Explanations", "### Inputs the model expects")
    assert "![Permutation importance of churn:1](customers_files/importance-churn-v1.svg)" \
        in explanations  # fmt: skip
    assert ET.parse(out / "customers_files" / "importance-churn-v1.svg").getroot().tag.endswith(
        "svg")  # fmt: skip
    top = measured.iloc[0]
    assert (f"| {top['feature']} | {format_number(top['importance_mean'])} | "
            f"{format_number(top['importance_std'])} |") in explanations  # fmt: skip
    assert "`POST /explain`" in explanations and "<code>POST /explain</code>" in html
    inputs = _between(md, "### Inputs the model expects", "### Monitoring")
    assert "`mlops-nb validate --against churn:1 FILE`" in inputs
    assert re.search(r"\| age \| int64 \| none \| 18 to \d+ \|", inputs)
    assert '| region | str | none |  | "&lt;img src=x onerror=alert(1)&gt;", "north", "south" |' \
        in inputs  # fmt: skip


def test_no_planted_email_nor_the_key_is_anywhere_in_the_docs(documented):
    emails = documented["frame"]["email"].tolist()
    key = (documented["work"] / ".mlops" / "mlops-nb.key").read_text().strip().encode()
    written = [p for p in Path(documented["out"]).rglob("*") if p.is_file()]
    assert len(written) == 3  # html, md, the importance chart
    for path in written:
        data = path.read_bytes()
        assert b".planted@" not in data.lower(), path
        assert not [e for e in emails if e.encode() in data], path
        assert key not in data, path
