"""The JupyterLab panel and runs tabs in a real `jupyter lab`, driven through Debian's Chromium.

One server for the module, on a log seeded with 10,000 runs, three small demo runs and a
small sweep. The left panel is the navigator; runs tables, run details and comparisons open
in the main area. Pages are 1400x900, the window the issue was seen in. Screenshots go to
``test-artifacts/`` (or ``$MLOPS_NB_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from labserver import (
    HOSTILE,
    launch_chromium,
    open_runs,
    open_sidebar,
    running_lab,
    runs_area,
    seed_bulk_runs,
    seed_demo_runs,
)
from nbformat.v4 import new_code_cell, new_notebook

import mlops_nb

CHURN = REPO / "example_notebooks" / "churn.ipynb"
ARTIFACTS = Path(os.environ.get("MLOPS_NB_TEST_ARTIFACTS", REPO / "test-artifacts"))
BULK = 10_000
PANEL = "#mlops-nb-sidebar"
ALL = runs_area("")
BULK_TAB = runs_area("bulk")
DEMO = runs_area("demo")
SWEEP = runs_area("sweep")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("sidebar")
    root = base / "root"
    root.mkdir()
    shutil.copy(CHURN, root / "churn.ipynb")
    notebook = new_notebook(cells=[new_code_cell("x = 1"),
                                   new_code_cell("%%mlops track clean\ny = x + 1")])  # fmt: skip
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, root / "stages.ipynb")
    log = root / ".mlops" / "log.duckdb"
    seed_bulk_runs(log, BULK)
    ids = seed_demo_runs(log, base)
    seed_sweep(log)
    seed_models(log, ids)
    seed_monitoring(log)
    seed_governance(log, ids["tuned"])
    with running_lab(root, log) as server:
        yield server, ids, log


def seed_sweep(log_path: Path) -> None:
    """A sweep as `mlops-nb sweep --metric f1` leaves it: children, and a parent with best_f1."""
    log = mlops_nb.open_log(log_path)
    parent = log.start_run("sweep", "sweep-parent", params={"sweep.size": 3})
    for i in range(3):
        with log.start_run(experiment="sweep", name=f"sweep-{i}") as run:
            run.log_params({"depth": 2 + i})
            run.log_metrics({"accuracy": 0.7 + i / 100, "f1": 0.6 + i / 50})
    parent.log_metric("best_f1", 0.64)
    parent.end()
    log.flush()
    log.close()


def seed_models(log_path: Path, ids: dict[str, str]) -> None:
    """churn:1 from the demo run "baseline" (champion), churn:2 from "tuned" (challenger,
    verified): a tiny LogisticRegression each."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.registry.register import register_pipeline

    numbers = pd.DataFrame({"tenure": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0]})
    model = LogisticRegression().fit(numbers, [1, 1, 1, 0, 0, 0])
    log = mlops_nb.open_log(log_path)
    register_pipeline(log, "churn", model, training_frame=numbers, run_id=ids["baseline"],
                      alias="champion")  # fmt: skip
    verified = {"verified": True, "rows": 6, "input": "X_test", "predictions": "predicted"}
    register_pipeline(log, "churn", model, training_frame=numbers, run_id=ids["tuned"],
                      alias="challenger", verification=verified)  # fmt: skip
    log.flush()
    log.close()


DRIFT_REASON = f"retrained because 2 of 3 columns drifted: monthly_charges, {HOSTILE}"


def seed_monitoring(log_path: Path) -> None:
    """What `mlops-nb monitor churn@champion` records: a drift check of v1 (two of three
    columns drifted, one of them named like markup), live accuracy, and the retrain step."""
    log = mlops_nb.open_log(log_path)
    now = time.time()
    common = {"check_id": "c1", "model_name": "churn", "model_version": 1,
              "reference": "churn@champion (v1)", "current": "new.csv", "n_reference": 6,
              "n_current": 40, "exact": True, "created_at": now - 120}  # fmt: skip
    for column, score, drifted in (("tenure", 0.2, False), ("monthly_charges", 0.004, True),
                                   (HOSTILE, 0.01, True)):  # fmt: skip
        log.record("drift", {**common, "target": "inputs", "column_name": column,
                             "column_type": "numerical", "method": "ks", "score": score,
                             "threshold": 0.05, "drifted": drifted})  # fmt: skip
    log.record("drift", {**common, "target": "dataset", "column_name": "*",
                         "method": "share_of_drifted_columns", "score": 2 / 3,
                         "threshold": 0.5, "drifted": True})  # fmt: skip
    log.record("performance", {
        "check_id": "p1", "model_name": "churn", "model_version": 1, "kind": "realized",
        "metric": "accuracy", "value": 0.78, "baseline": 0.85, "window_start": now - 3600,
        "window_end": now - 120, "n_rows": 40, "created_at": now - 100,
    })  # fmt: skip
    events = (("drift", "drift", "2 of 3 columns drifted", now - 90),
              ("retrain", "finished", DRIFT_REASON, now - 60))  # fmt: skip
    for step, outcome, reason, when in events:
        log.record("monitor_events", {
            "event_id": step, "model_name": "churn", "alias": "champion", "step": step,
            "outcome": outcome, "reason": reason, "from_version": 1, "created_at": when,
        })  # fmt: skip
    log.flush()
    log.close()


def seed_governance(log_path: Path, run_id: str) -> None:
    """What the demo run "tuned" recorded about its data, by the real functions: a failed data
    check (one failure on a personal-data column), the personal-data scan of the frame,
    fairness by region; and the permutation importance of churn:2, registered from it."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.capture.expectations import check_frame, infer_expectations
    from mlops_nb.capture.fairness import fairness
    from mlops_nb.capture.pii import scan_frame
    from mlops_nb.registry.explain import permutation_importances, record_importances
    from mlops_nb.validate_command import record_report

    log = mlops_nb.open_log(log_path)
    frame = pd.DataFrame({"email": [f"person{i}@planted.example" for i in range(8)],
                          "age": [20, 30, 40, 50, 60, 70, 80, 130],
                          "region": ["north", "south", "north", HOSTILE] * 2})  # fmt: skip
    spec = infer_expectations(frame.head(6), private={"email"})
    spec.columns["age"].max = 65
    spec.columns["email"].pattern = r"^nobody@"
    report = check_frame(frame, spec, private={"email"}, target=f"{run_id[:8]}:customers@v1",
                         expectation="customers.yaml")  # fmt: skip
    record_report(log, report, run_id=run_id, cell_seq=2)
    for finding in scan_frame(frame):
        log.record("pii_findings", finding.to_row(
            dataset_id=f"{run_id[:8]}:customers@v1", run_id=run_id, cell_seq=1,
            dataset_name="customers", created_at=time.time()))  # fmt: skip
    measured_at = time.time()
    for row in fairness([1, 0, 1, 0, 1, 0, 1, 0], [1, 0, 0, 0, 1, 1, 1, 0],
                        frame["region"]).rows():  # fmt: skip
        log.record("fairness", {"run_id": run_id, "cell_seq": 3, "model_name": None,
                                "model_version": None, **row,
                                "created_at": measured_at})  # fmt: skip
    inputs = pd.DataFrame({"tenure": [1.0, 2, 3, 10, 11, 12, 4, 9] * 3,
                           "monthly_charges": [70.0, 20, 65, 30, 25, 80, 75, 22] * 3,
                           HOSTILE: [0.0, 1, 0, 1, 1, 0, 1, 0] * 3})  # fmt: skip
    labels = [1, 1, 1, 0, 0, 0, 1, 0] * 3
    model = LogisticRegression().fit(inputs, labels)
    record_importances(log, "churn", 2, permutation_importances(
        model, inputs, labels, {"task": "classification"}))  # fmt: skip
    log.flush()
    log.close()


@pytest.fixture
def browser():
    """Per test: playwright's loop must be gone before pytest-jupyter closes the test's loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab):
    """A fresh page; script errors and dialogs (an alert would mean injected markup) fail it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                      dialog.dismiss()))  # fmt: skip
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and "mlops" in m.text.lower() else None)  # fmt: skip
    yield page
    context.close()
    assert problems == []


def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"sidebar-{name}.png"
    page.screenshot(path=str(path))
    return path


def open_churn_with_sidebar(page, server) -> None:
    """The example notebook open in JupyterLab (the forms' default notebook), and the panel."""
    page.goto(server.page_url("lab/tree/churn.ipynb"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    open_sidebar(page)


def count_text(page, area: str) -> str:
    return page.inner_text(f"{area} .mlops-count")


def wait_count(page, area: str, text: str) -> float:
    """Milliseconds until the pager of the runs tab ``area`` reads ``text``."""
    started = time.perf_counter()
    page.wait_for_function(
        "([area, t]) => document.querySelector(area + ' .mlops-count')?.textContent === t",
        arg=[area, text], timeout=30_000,
    )  # fmt: skip
    return (time.perf_counter() - started) * 1000


def open_experiment(page, experiment: str, count: str) -> float:
    """Click an experiment in the panel; milliseconds until its runs tab's pager reads ``count``."""
    started = time.perf_counter()
    page.click(f"{PANEL} .mlops-open-experiment[data-experiment='{experiment}']")
    wait_count(page, runs_area(experiment), count)
    return (time.perf_counter() - started) * 1000


def current_tab_label(page) -> str:
    return page.inner_text("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")


# Measures the runs table as drawn: a word whose characters lie on two lines wraps
# mid-word; a cell whose text takes more than one line wraps; an element whose content is
# cut off must say all of it in a tooltip; the primary metric's header and the values of
# the rows in view must lie inside both the main area and the table's scrolled view.
LAYOUT = """area => {
  const root = document.querySelector(area);
  const table = root.querySelector('.mlops-runs-table');
  const wrap = root.querySelector('.mlops-table-wrap').getBoundingClientRect();
  const main = document.querySelector('#jp-main-dock-panel').getBoundingClientRect();
  const view = {left: Math.max(main.left, wrap.left), right: Math.min(main.right, wrap.right,
                innerWidth), top: Math.max(main.top, wrap.top),
                bottom: Math.min(main.bottom, wrap.bottom, innerHeight)};
  const inside = r => r.width > 0 && r.left >= view.left - 0.5 && r.right <= view.right + 0.5
                      && r.top >= view.top - 0.5 && r.bottom <= view.bottom + 0.5;
  const midWord = [], multiLine = [], cutSilently = [];
  for (const cell of table.querySelectorAll('th, td')) {
    const lines = new Set();
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const word of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                                      .map(r => Math.round(r.top)));
        if (tops.size > 1) midWord.push(word[0]);
        tops.forEach(top => lines.add(top));
      }
    }
    if (lines.size > 1) multiLine.push(cell.textContent);
    for (const el of [cell, ...cell.querySelectorAll('*')]) {
      if (el.scrollWidth > el.clientWidth + 1) {
        const holder = el.closest('[title]');
        const text = el.textContent.trim();
        if (!holder || !holder.title.includes(text)) cutSilently.push(text);
      }
    }
  }
  const th = table.querySelector('thead th.mlops-primary');
  const column = [...th.parentElement.children].indexOf(th);
  const rows = [...table.tBodies[0].rows]
    .filter(r => r.getBoundingClientRect().bottom <= view.bottom);
  return {
    midWord, multiLine, cutSilently,
    primary: th.dataset.field,
    headerVisible: inside(th.getBoundingClientRect()),
    values: rows.map(r => ({text: r.cells[column].textContent,
                            visible: inside(r.cells[column].getBoundingClientRect()),
                            cut: r.cells[column].scrollWidth > r.cells[column].clientWidth})),
    started: [...table.querySelectorAll('td.mlops-time')].map(c => c.textContent),
    headers: [...th.parentElement.children].map(c => c.dataset.field || ''),
    leftPanelTables: document.querySelectorAll('#mlops-nb-sidebar table').length,
  };
}"""


def check_layout(page, area: str, primary: str) -> dict:
    """The LAYOUT measures of a runs tab, asserted: nothing wraps or is cut silently, and
    the primary metric (first of the metric columns) is in view with its values."""
    found = page.evaluate(LAYOUT, area)
    assert found["leftPanelTables"] == 0  # the table lives in the main area now
    assert found["midWord"] == [] and found["multiLine"] == []
    assert found["cutSilently"] == []
    assert found["primary"] == primary
    metrics = [field for field in found["headers"] if field.startswith("metrics.")]
    assert metrics[0] == primary
    assert found["headerVisible"]
    assert len(found["values"]) >= 10
    assert all(v["visible"] and not v["cut"] for v in found["values"])
    assert sum(1 for v in found["values"] if v["text"]) >= 10
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", t) for t in found["started"])
    return found


def test_the_first_page_of_10000_runs_comes_at_once(page, lab):
    server, _, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    opened = open_runs(page)  # "All experiments"
    at_start = float(page.get_attribute(ALL, "data-first-page-ms"))
    total = BULK + 3 + 4
    assert current_tab_label(page) == "MLOps runs · all"
    assert count_text(page, ALL) == f"1–50 of {total:,}"
    assert page.locator(f"{ALL} .mlops-runs-table tbody tr").count() == 50
    experiment = open_experiment(page, "bulk", f"1–50 of {BULK:,}")
    assert current_tab_label(page) == "MLOps runs · bulk"
    started = time.perf_counter()
    page.click(f"{BULK_TAB} .mlops-next")
    wait_count(page, BULK_TAB, f"51–100 of {BULK:,}")
    next_page = (time.perf_counter() - started) * 1000
    shoot(page, "runs")
    print(f"\nrunsTab with {total:,} runs: first page drawn {at_start:.0f} ms after the tab "
          f"was made; click to rows {opened:.0f} ms; another experiment's tab {experiment:.0f} "
          f"ms; next page {next_page:.0f} ms")  # fmt: skip


def test_runs_open_in_the_main_area_readable_at_1400x900(page, lab):
    """The issue's window: no word cut in two, full start times, the primary metric in view."""
    server, _, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    items = page.locator(f"{PANEL} .mlops-open-experiment").all_inner_texts()
    assert items[0].startswith("All experiments") and f"{BULK + 7:,} runs" in items[0]
    assert any(i.startswith("demo") and "3 runs · last 2" in i for i in items)

    open_runs(page)
    page.wait_for_selector(f"{PANEL} .mlops-open-experiment.mlops-current[data-experiment='']")
    # All experiments: 3 demo runs, 4 sweep runs and 43 of bulk on the first page; bulk has
    # the most runs there, and accuracy is its first metric logged by every run.
    shoot(page, "runs-main-area")
    found = check_layout(page, ALL, "metrics.accuracy")
    assert {"metrics.acc", "metrics.f1", "metrics.loss"} <= set(found["headers"])

    open_runs(page, "demo")
    found = page.evaluate(LAYOUT, DEMO)
    assert found["primary"] == "metrics.acc" and found["headerVisible"]
    assert found["midWord"] == found["multiLine"] == found["cutSilently"] == []
    assert [v["text"] for v in found["values"]] == ["0.5", "0.93", "0.81"]  # newest first
    assert all(v["visible"] for v in found["values"])

    open_runs(page, "sweep")  # the sweep ranked by f1: its parent logged best_f1
    found = page.evaluate(LAYOUT, SWEEP)
    assert found["primary"] == "metrics.f1" and found["headerVisible"]
    metrics = [f for f in found["headers"] if f.startswith("metrics.")]
    assert metrics == ["metrics.f1", "metrics.accuracy"]  # best_f1 is the sweep's summary


def test_sort_filter_and_pick_columns(page, lab):
    server, _, log_path = lab
    page.goto(server.page_url())
    open_sidebar(page)
    open_experiment(page, "bulk", f"1–50 of {BULK:,}")
    box = page.locator(f"{BULK_TAB} .mlops-filter")
    box.fill("metrics.accuracy>=0.99 params.depth=9 trial-0")
    box.press("Enter")
    log = mlops_nb.open_log(log_path)
    where = "metrics.accuracy >= 0.99 AND params.depth = 9 AND name LIKE '%trial-0%'"
    expected = log.count_runs(experiment="bulk", where=where)
    assert 0 < expected < 50
    wait_count(page, BULK_TAB, f"1–{expected} of {expected}")

    page.click(f"{BULK_TAB} th[data-field='metrics.accuracy']")  # newest first → accuracy, desc
    page.wait_for_selector(f"{BULK_TAB} th.mlops-sorted[data-field='metrics.accuracy']")
    best = log.runs(experiment="bulk", where=where, order_by="metrics.accuracy DESC", limit=1)
    first_row = page.locator(f"{BULK_TAB} .mlops-runs-table tbody tr").first
    assert first_row.get_attribute("data-run-id") == best["run_id"].iloc[0]

    assert page.locator(f"{BULK_TAB} th[data-field='params.model']").count() == 0  # all "rf"
    page.click(f"{BULK_TAB} .mlops-columns summary")
    page.check(f"{BULK_TAB} .mlops-columns input[value='params.model']")
    page.wait_for_selector(f"{BULK_TAB} th[data-field='params.model']")
    models = page.locator(f"{BULK_TAB} .mlops-runs-table tbody tr td:last-child").all_inner_texts()
    assert models == ["rf"] * expected  # a column added goes last

    box = page.locator(f"{BULK_TAB} .mlops-filter")
    box.fill("params.lr<")
    box.press("Enter")
    assert "no value" in page.inner_text(f"{BULK_TAB} .mlops-filter-error")
    log.close()


def test_run_detail_shows_params_charts_and_artifact_downloads(page, lab):
    server, ids, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    open_experiment(page, "demo", "1–3 of 3")
    page.click(f"{DEMO} tr[data-run-id='{ids['tuned']}'] td.mlops-name")
    page.wait_for_selector(f"{DEMO} .mlops-detail")
    assert current_tab_label(page) == "MLOps runs · demo"  # the detail opens in the same tab
    assert page.inner_text(f"{DEMO} .mlops-run-title") == "tuned"
    params = page.locator(f"{DEMO} .mlops-params tr").all_inner_texts()
    assert [p.split("\t") for p in params] == [["depth", "4"], ["lr", "0.3"], ["model", "rf"]]
    charts = page.locator(f"{DEMO} .mlops-detail .mlops-chart")
    assert charts.count() == 2  # acc and loss, 4 steps each
    assert page.locator(f"{DEMO} .mlops-chart >> nth=0").locator("circle").count() == 4
    link = page.locator(f"{DEMO} a.mlops-artifact")
    assert link.inner_text() == "model-card.txt"
    download = page.request.get(link.evaluate("a => a.href"))
    assert download.status == 200 and download.text() == "the tuned model"
    shoot(page, "detail")
    page.click(f"{DEMO} .mlops-back")
    page.wait_for_selector(f"{DEMO}[data-view='runs'] .mlops-runs-table")

    page.keyboard.press("Control+Shift+c")  # the palette's command opens a run by id prefix
    page.fill(".lm-CommandPalette-input", "Open MLOps Run")
    page.keyboard.press("Enter")
    page.fill(".jp-Dialog input", ids["baseline"][:8])
    page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(f"{ALL} .mlops-detail[data-run-id='{ids['baseline']}']")
    assert current_tab_label(page) == "MLOps runs · all"


def test_a_hostile_run_name_is_shown_as_text(page, lab):
    server, ids, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    open_experiment(page, "demo", "1–3 of 3")
    row = page.locator(f"{DEMO} tr[data-run-id='{ids[HOSTILE]}']")
    assert row.locator("td.mlops-name").inner_text() == HOSTILE
    row.locator("td.mlops-name").click()
    page.wait_for_selector(f"{DEMO} .mlops-detail")
    assert page.inner_text(f"{DEMO} .mlops-run-title") == HOSTILE
    assert page.locator(".mlops-runs-area img, #mlops-nb-sidebar img").count() == 0


def test_compare_two_runs_highlights_differences_and_overlays_metrics(page, lab):
    server, ids, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    open_experiment(page, "demo", "1–3 of 3")
    assert page.is_disabled(f"{DEMO} .mlops-compare")
    for name in ("baseline", "tuned"):
        page.check(f"{DEMO} tr[data-run-id='{ids[name]}'] .mlops-select")
    assert page.inner_text(f"{DEMO} .mlops-compare") == "Compare (2)"
    page.click(f"{DEMO} .mlops-compare")
    page.wait_for_selector(f"{DEMO} .mlops-compare-view")
    rows = page.locator(f"{DEMO} .mlops-compare-params tbody tr")
    differing = {rows.nth(i).locator("th").inner_text(): rows.nth(i).get_attribute("class")
                 for i in range(rows.count())}  # fmt: skip
    assert differing == {"depth": "", "lr": "mlops-differs", "model": ""}
    best = page.locator(f"{DEMO} .mlops-compare-metrics td.mlops-best").all_inner_texts()
    assert best == ["0.93", "0.07"]  # the higher accuracy, the lower loss
    overlay = page.locator(f"{DEMO} .mlops-compare-view .mlops-figure").first
    assert overlay.locator("path").count() == 2
    assert overlay.locator(".mlops-legend span").all_inner_texts() == ["baseline", "tuned"]
    shoot(page, "compare")


def test_run_pipeline_form_starts_a_run_that_finishes_with_docs(page, lab):
    server, _, log_path = lab
    open_churn_with_sidebar(page, server)
    page.click(f"{PANEL} .mlops-nav-pipeline")
    page.wait_for_selector(f"{PANEL} #mlops-param-n_customers")
    assert page.input_value(f"{PANEL} .mlops-notebook") == "churn.ipynb"
    assert page.input_value(f"{PANEL} #mlops-param-n_customers") == "10000"
    page.fill(f"{PANEL} #mlops-param-n_customers", "3000")
    page.fill(f"{PANEL} #mlops-param-n_estimators", "20")
    page.fill(f"{PANEL} .mlops-experiment-name", "from-sidebar")
    log = mlops_nb.open_log(log_path)
    known = set(log.runs()["run_id"])
    log.close()
    page.click(f"{PANEL} .mlops-run-pipeline")
    area = runs_area("from-sidebar")  # the experiment's tab opens, and fills as the run goes
    page.wait_for_selector(f"{area}[data-view='runs']")
    assert current_tab_label(page) == "MLOps runs · from-sidebar"

    seen_progress = seen_in_panel = False
    deadline = time.monotonic() + 180
    status = ""
    while time.monotonic() < deadline:
        seen_in_panel = (
            seen_in_panel or page.locator(f"{PANEL} .mlops-running-run progress").count() > 0
        )
        first = page.locator(f"{area} .mlops-runs-table tbody tr").first
        if not first.count() or first.get_attribute("data-run-id") in known:
            time.sleep(0.25)  # the new run is not in the log yet
            continue
        status = first.get_attribute("class") or ""
        if "mlops-status-running" in status and first.locator("progress").count():
            if not seen_progress:
                shoot(page, "progress")
            seen_progress = True
        if "mlops-status-finished" in status or "mlops-status-failed" in status:
            break
        time.sleep(0.25)
    assert "mlops-status-finished" in status
    assert seen_progress  # the table refreshed itself while the run was going
    assert seen_in_panel  # and the panel listed it under "Running now"
    # picked when the run was still without metrics, the columns now show its metrics
    page.wait_for_selector(f"{area} th.mlops-primary[data-field='metrics.accuracy']")

    log = mlops_nb.open_log(log_path)
    run = log.runs(experiment="from-sidebar").iloc[0]
    assert (run["params.n_customers"], run["params.n_estimators"]) == (3000, 20)
    log.close()
    page.locator(f"{area} .mlops-runs-table tbody tr").first.locator("td.mlops-name").click()
    page.wait_for_selector(f"{area} .mlops-detail[data-run-id='{run['run_id']}']")
    assert page.locator(f"{area} .mlops-timeline rect").count() >= 6
    stages = page.locator(f"{area} .mlops-node-stage text").all_text_contents()
    assert stages[:2] == ["ingest", "clean"] and "train" in stages
    assert page.locator(f"{area} .mlops-node-dataset").count() >= 2
    page.click(f"{area} .mlops-generate-docs")
    message = f"{area} .mlops-docs-message"
    page.wait_for_selector(f"{message} a, {message}.mlops-error", timeout=120_000)
    assert page.locator(f"{message}.mlops-error").count() == 0, page.inner_text(message)
    link = page.locator(f"{message} a")
    docs = page.request.get(link.evaluate("a => a.href"))
    assert docs.status == 200 and run["run_id"] in docs.text()
    shoot(page, "pipeline-run")


def test_schedule_form_writes_the_files_and_lists_the_next_runs(page, lab):
    server, _, log_path = lab
    open_churn_with_sidebar(page, server)
    page.click(f"{PANEL} .mlops-nav-schedule")
    page.wait_for_selector(f"{PANEL} #mlops-param-seed")
    page.fill(f"{PANEL} .mlops-cron", "15 4 * * 1")
    page.select_option(f"{PANEL} .mlops-target", "systemd")
    page.fill(f"{PANEL} #mlops-param-seed", "7")
    page.click(f"{PANEL} .mlops-write-schedule")
    page.wait_for_selector(f"{PANEL} .mlops-form-message ul")
    files = page.locator(f"{PANEL} .mlops-form-message ul >> nth=0").locator("li")
    written = files.all_inner_texts()
    assert written and all(name.startswith("schedules/systemd/") for name in written)
    assert "seed 7" in "".join((server.root / name).read_text() for name in written)
    upcoming = page.locator(f"{PANEL} .mlops-form-message ul >> nth=1").locator("li")
    assert upcoming.count() == 5 and upcoming.first.inner_text().startswith("Mon ")
    log = mlops_nb.open_log(log_path)
    assert log.sql("SELECT cron, target FROM schedules").values.tolist() == [["15 4 * * 1",
                                                                            "systemd"]]  # fmt: skip
    log.close()
    page.fill(f"{PANEL} .mlops-cron", "15 25 * * *")
    page.click(f"{PANEL} .mlops-write-schedule")
    page.wait_for_selector(f"{PANEL} .mlops-form-message.mlops-error")
    assert "bad cron expression" in page.inner_text(f"{PANEL} .mlops-form-message")


def test_mark_a_cell_with_a_stage_from_the_context_menu(page, lab):
    server, _, _ = lab
    page.goto(server.page_url("lab/tree/stages.ipynb"))
    notebook = page.locator(".jp-NotebookPanel:visible")  # earlier tests' tabs are restored too
    cells = notebook.locator(".jp-Notebook .jp-Cell")
    notebook.locator(".mlops-stage-badge[data-stage='clean']").wait_for(timeout=60_000)
    assert cells.nth(1).locator(".mlops-stage-badge").inner_text() == "clean"
    assert cells.nth(0).locator(".mlops-stage-badge").count() == 0
    cells.nth(0).locator(".jp-InputPrompt").click()
    cells.nth(0).locator(".jp-InputPrompt").click(button="right")
    page.click(".lm-Menu-itemLabel:text-is('MLOps Stage')")
    page.click(".mlops-stage-menu .lm-Menu-itemLabel:text-is('train')")
    notebook.locator(".mlops-stage-badge[data-stage='train']").wait_for()
    shoot(page, "stage-badges")
    page.keyboard.press("Control+s")
    saved = server.root / "stages.ipynb"
    deadline = time.monotonic() + 20
    tags = None
    while time.monotonic() < deadline:
        tags = json.loads(saved.read_text())["cells"][0]["metadata"].get("tags")
        if tags:
            break
        time.sleep(0.2)
    assert tags == ["mlops:train"]


def test_models_list_versions_and_move_an_alias_after_a_confirmation(page, lab):
    server, ids, log_path = lab
    page.goto(server.page_url())
    open_sidebar(page)
    item = page.locator(f"{PANEL} .mlops-open-model[data-model='churn']")
    item.wait_for()
    assert item.locator(".mlops-experiment-name").inner_text() == (
        "churn · challenger → v2, champion → v1"
    )
    assert "2 versions · latest v2" in item.inner_text()
    item.click()
    area = ".mlops-model-area[data-model='churn']"
    page.wait_for_selector(f"{area} .mlops-versions-table")
    assert current_tab_label(page) == "MLOps model · churn"
    rows = page.locator(f"{area} tr.mlops-version")
    assert [rows.nth(i).get_attribute("data-version") for i in range(2)] == ["2", "1"]
    badges = [rows.nth(i).locator(".mlops-alias-badge").all_inner_texts() for i in range(2)]
    assert badges == [["challenger"], ["champion"]]
    runs = page.locator(f"{area} .mlops-source-run").all_inner_texts()
    assert runs == [ids["tuned"][:8], ids["baseline"][:8]]
    assert page.locator(f"{area} th[data-metric]").all_inner_texts() == ["acc", "loss"]
    assert rows.nth(0).locator("td.mlops-number").first.inner_text() == "0.93"
    assert page.locator(f"{area} td.mlops-verified").all_inner_texts() == ["✓", "–"]
    history = page.locator(f"{area} .mlops-alias-history tbody tr")
    assert history.count() == 2

    rows.nth(0).locator(".mlops-move-alias").click()  # move champion to version 2
    page.wait_for_selector(".jp-Dialog .mlops-alias-name")
    assert page.input_value(".jp-Dialog .mlops-alias-name") == "champion"
    page.fill(".jp-Dialog .mlops-alias-reason", "tuned beats baseline on acc")
    shoot(page, "move-alias")
    page.click(".jp-Dialog .jp-mod-accept")
    confirm = page.locator(".jp-Dialog .mlops-move-alias-confirm")
    confirm.wait_for()
    assert confirm.locator("p").first.inner_text() == "Point churn@champion at version 2 (now 1)?"
    page.click(".jp-Dialog:has(.mlops-move-alias-confirm) .jp-mod-accept")
    page.wait_for_selector(f"{area} tr.mlops-version[data-version='2'] "
                           ".mlops-alias-badge[data-alias='champion']")  # fmt: skip
    assert page.locator(".jp-Dialog").count() == 0
    log = mlops_nb.open_log(log_path)
    assert log.model_version("churn", alias="champion")["version"] == 2
    moves = log.alias_history("churn", "champion")
    assert moves[["from_version", "to_version", "reason"]].values.tolist()[-1] == [
        1, 2, "tuned beats baseline on acc"]  # fmt: skip
    log.close()
    newest = history.first.locator("td").all_inner_texts()
    assert newest[1:3] == ["champion", "v1 → v2"] and newest[4] == "tuned beats baseline on acc"
    page.wait_for_function(  # the panel follows: both aliases on version 2 now
        "s => document.querySelector(s)?.textContent.includes('champion → v2')",
        arg=f"{PANEL} .mlops-open-model[data-model='churn']",
    )  # fmt: skip
    shoot(page, "models")

    page.click(f"{area} .mlops-source-run >> nth=0")  # the source run opens in its experiment
    page.wait_for_selector(f"{DEMO} .mlops-detail[data-run-id='{ids['tuned']}']")
    assert current_tab_label(page) == "MLOps runs · demo"


def test_the_panel_says_so_when_the_server_extension_is_missing(browser, lab, tmp_path):
    server, _, log_path = lab
    root = tmp_path / "root"
    root.mkdir()
    off = ("--ServerApp.jpserver_extensions=mlops_nb=False",)
    with running_lab(root, log_path, extra_args=off) as bare:
        page = browser.new_page()
        try:
            page.goto(bare.page_url())
            page.wait_for_selector('.jp-SideBar [data-id="mlops-nb-sidebar"]', timeout=60_000)
            page.click('.jp-SideBar [data-id="mlops-nb-sidebar"]')
            page.wait_for_selector(f"{PANEL} .mlops-status.mlops-error")
            message = page.inner_text(f"{PANEL} .mlops-status")
            assert "does not answer (HTTP 404)" in message
            assert page.is_visible(f"{PANEL} .mlops-retry")
        finally:
            page.close()


def test_a_models_monitoring_shows_the_drifted_columns_and_why_it_was_retrained(page, lab):
    server, _, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    page.locator(f"{PANEL} .mlops-open-model[data-model='churn']").click()
    area = ".mlops-model-area[data-model='churn'] .mlops-monitoring"
    page.wait_for_selector(f"{area} .mlops-drift-columns")
    summary = page.inner_text(f"{area} .mlops-drift-summary")
    assert summary == (f"dataset drift 2 of 3 columns drifted: monthly_charges, {HOSTILE} "
                       "(share 0.67, drift at 0.5)")  # fmt: skip
    rows = page.locator(f"{area} .mlops-drift-columns tbody tr")
    assert [r.split("\t") for r in rows.all_inner_texts()] == [
        ["tenure", "numerical", "ks", "0.2", "0.05", "–"],
        ["monthly_charges", "numerical", "ks", "0.004", "0.05", "drifted"],
        [HOSTILE, "numerical", "ks", "0.01", "0.05", "drifted"],
    ]
    marked = page.locator(f"{area} .mlops-drift-columns tr.mlops-drifted td.mlops-drift-column")
    assert marked.all_inner_texts() == ["monthly_charges", HOSTILE]
    accuracy = page.locator(f"{area} .mlops-performance-table tr[data-metric='accuracy'] td")
    assert accuracy.all_inner_texts()[:5] == ["accuracy", "live", "0.78", "0.85", "−0.07"]
    events = page.locator(f"{area} .mlops-monitor-event")
    assert events.first.locator(".mlops-event-step").inner_text() == "retrain: finished"
    assert events.first.inner_text().endswith(f"retrain: finished (v1) — {DRIFT_REASON}")
    assert events.nth(1).get_attribute("data-step") == "drift"  # newest first
    page.locator(f"{area} .mlops-monitor-events").scroll_into_view_if_needed()
    shoot(page, "model-monitoring")


def test_a_runs_governance_and_a_models_importance_chart(page, lab):
    server, ids, log_path = lab
    page.goto(server.page_url())
    open_sidebar(page)
    open_experiment(page, "demo", "1–3 of 3")
    page.click(f"{DEMO} tr[data-run-id='{ids['tuned']}'] td.mlops-name")
    part = f"{DEMO} .mlops-detail .mlops-governance"
    page.wait_for_selector(f"{part} .mlops-check-failures")
    summary = page.inner_text(f"{part} .mlops-check-summary")
    assert re.fullmatch(rf"failed {ids['tuned'][:8]}:customers@v1 against customers.yaml: "
                        r"2 of \d+ checks failed on 8 rows", summary), summary  # fmt: skip
    failures = page.locator(f"{part} .mlops-check-failures tbody tr").all_inner_texts()
    assert [row.split("\t") for row in failures] == [
        ["email", "pattern", "8 of 8", "0, 1, 2, 3, 4, …", "personal data: not shown"],
        ["age", "max", "3 of 8", "5, 6, 7", "70, 80, 130"],
    ]
    found = page.locator(f"{part} .mlops-pii tbody tr")
    assert [found.first.get_attribute(a) for a in ("data-column", "data-status")] == [
        "email", "flagged"]  # fmt: skip
    fair = f"{part} .mlops-fairness[data-sensitive='region']"
    groups = page.locator(f"{fair} .mlops-fairness-groups tbody tr td:first-child")
    assert groups.all_inner_texts() == [HOSTILE, "north", "south", "overall"]
    log = mlops_nb.open_log(log_path)
    ratio = log.fairness(run_id=ids["tuned"]).set_index("metric")["value"]
    log.close()
    shown = page.inner_text(f"{fair} td[data-metric='demographic_parity_ratio']")
    assert float(shown) == pytest.approx(ratio["demographic_parity_ratio"], abs=1e-3)
    assert "planted.example" not in page.content()  # no value of the email column
    page.locator(f"{part} .mlops-fairness").scroll_into_view_if_needed()
    shoot(page, "run-governance")

    page.click(f"{PANEL} .mlops-open-model[data-model='churn']")
    area = ".mlops-model-area[data-model='churn'] .mlops-explanations"
    page.wait_for_selector(f"{area} .mlops-explain-version")
    page.select_option(f"{area} .mlops-explain-version", "2")
    page.wait_for_selector(f"{area} [data-version='2'] .mlops-importance-chart")
    log = mlops_nb.open_log(log_path)
    measured = log.importances("churn", 2)["feature"].tolist()
    log.close()
    bars = page.locator(f"{area} .mlops-importance-bar")
    assert [bars.nth(i).get_attribute("data-feature") for i in range(bars.count())] == measured
    assert HOSTILE in measured and page.locator(".mlops-model-area img").count() == 0
    assert page.locator(f"{area} .mlops-fairness[data-sensitive='region']").count() == 1
    page.locator(f"{area} .mlops-importance-chart").scroll_into_view_if_needed()
    shoot(page, "model-explanations")
    page.select_option(f"{area} .mlops-explain-version", "1")  # nothing measured for v1
    page.wait_for_selector(f"{area} [data-version='1'] .mlops-no-importance")
