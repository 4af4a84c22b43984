"""The JupyterLab sidebar in a real `jupyter lab`, driven through Debian's Chromium.

One server for the module, on a log seeded with 10,000 runs plus three small demo runs.
Screenshots go to ``test-artifacts/`` (or ``$MLOPS_NB_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from labserver import (
    HOSTILE,
    launch_chromium,
    open_sidebar,
    running_lab,
    seed_bulk_runs,
    seed_demo_runs,
)
from nbformat.v4 import new_code_cell, new_notebook

import mlops_nb

CHURN = REPO / "example_notebooks" / "churn.ipynb"
ARTIFACTS = Path(os.environ.get("MLOPS_NB_TEST_ARTIFACTS", REPO / "test-artifacts"))
BULK = 10_000
PANEL = "#mlops-nb-sidebar"


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
    with running_lab(root, log) as server:
        yield server, ids, log


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
    context = browser.new_context(viewport={"width": 1500, "height": 950})
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


def widen_sidebar(page, pixels: int = 330) -> None:
    """Drag the left area's splitter so wide tables fit (users do the same)."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 1 + pixels, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()


def open_churn_with_sidebar(page, server) -> None:
    """The example notebook open in JupyterLab (the forms' default notebook), and the panel."""
    page.goto(server.page_url("lab/tree/churn.ipynb"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    open_sidebar(page)


def count_text(page) -> str:
    return page.inner_text(f"{PANEL} .mlops-count")


def wait_count(page, text: str) -> float:
    """Milliseconds until the pager reads ``text``."""
    started = time.perf_counter()
    page.wait_for_function(
        "t => document.querySelector('#mlops-nb-sidebar .mlops-count')?.textContent === t",
        arg=text, timeout=30_000,
    )  # fmt: skip
    return (time.perf_counter() - started) * 1000


def choose_experiment(page, experiment: str, count: str) -> float:
    started = time.perf_counter()
    page.select_option(f"{PANEL} .mlops-experiment", experiment)
    wait_count(page, count)
    return (time.perf_counter() - started) * 1000


def test_the_first_page_of_10000_runs_comes_at_once(page, lab):
    server, _, _ = lab
    page.goto(server.page_url())
    opened = open_sidebar(page)
    at_start = float(page.get_attribute(PANEL, "data-first-page-ms"))
    total = BULK + 3
    assert count_text(page) == f"1–50 of {total:,}"
    assert page.locator(f"{PANEL} .mlops-runs-table tbody tr").count() == 50
    experiment = choose_experiment(page, "bulk", f"1–50 of {BULK:,}")
    started = time.perf_counter()
    page.click(f"{PANEL} .mlops-next")
    wait_count(page, f"51–100 of {BULK:,}")
    next_page = (time.perf_counter() - started) * 1000
    widen_sidebar(page)
    shoot(page, "runs")
    print(f"\nsidebar with {total:,} runs: first page drawn {at_start:.0f} ms after the panel "
          f"started; tab click to rows {opened:.0f} ms; experiment switch {experiment:.0f} ms; "
          f"next page {next_page:.0f} ms")  # fmt: skip


def test_sort_filter_and_pick_columns(page, lab):
    server, _, log_path = lab
    page.goto(server.page_url())
    open_sidebar(page)
    choose_experiment(page, "bulk", f"1–50 of {BULK:,}")
    box = page.locator(f"{PANEL} .mlops-filter")
    box.fill("metrics.accuracy>=0.99 params.depth=9 trial-0")
    box.press("Enter")
    log = mlops_nb.open_log(log_path)
    where = "metrics.accuracy >= 0.99 AND params.depth = 9 AND name LIKE '%trial-0%'"
    expected = log.count_runs(experiment="bulk", where=where)
    assert 0 < expected < 50
    wait_count(page, f"1–{expected} of {expected}")

    page.click(f"{PANEL} th[data-field='metrics.accuracy']")  # newest first → accuracy, desc
    page.wait_for_selector(f"{PANEL} th.mlops-sorted[data-field='metrics.accuracy']")
    best = log.runs(experiment="bulk", where=where, order_by="metrics.accuracy DESC", limit=1)
    first_row = page.locator(f"{PANEL} .mlops-runs-table tbody tr").first
    assert first_row.get_attribute("data-run-id") == best["run_id"].iloc[0]

    page.click(f"{PANEL} .mlops-columns summary")
    page.check(f"{PANEL} .mlops-columns input[value='params.seed']")
    page.wait_for_selector(f"{PANEL} th[data-field='params.seed']")
    seeds = page.locator(f"{PANEL} .mlops-runs-table tbody tr td:last-child").all_inner_texts()
    assert len(seeds) == expected

    box = page.locator(f"{PANEL} .mlops-filter")
    box.fill("params.lr<")
    box.press("Enter")
    assert "no value" in page.inner_text(f"{PANEL} .mlops-filter-error")
    log.close()


def test_run_detail_shows_params_charts_and_artifact_downloads(page, lab):
    server, ids, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    choose_experiment(page, "demo", "1–3 of 3")
    page.click(f"{PANEL} tr[data-run-id='{ids['tuned']}'] td.mlops-name")
    page.wait_for_selector(f"{PANEL} .mlops-detail")
    assert page.inner_text(f"{PANEL} .mlops-run-title") == "tuned"
    params = page.locator(f"{PANEL} .mlops-params tr").all_inner_texts()
    assert [p.split("\t") for p in params] == [["depth", "4"], ["lr", "0.3"], ["model", "rf"]]
    charts = page.locator(f"{PANEL} .mlops-detail .mlops-chart")
    assert charts.count() == 2  # acc and loss, 4 steps each
    assert page.locator(f"{PANEL} .mlops-chart >> nth=0").locator("circle").count() == 4
    link = page.locator(f"{PANEL} a.mlops-artifact")
    assert link.inner_text() == "model-card.txt"
    download = page.request.get(link.evaluate("a => a.href"))
    assert download.status == 200 and download.text() == "the tuned model"
    widen_sidebar(page)
    shoot(page, "detail")


def test_a_hostile_run_name_is_shown_as_text(page, lab):
    server, ids, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    choose_experiment(page, "demo", "1–3 of 3")
    row = page.locator(f"{PANEL} tr[data-run-id='{ids[HOSTILE]}']")
    assert row.locator("td.mlops-name").inner_text() == HOSTILE
    row.locator("td.mlops-name").click()
    page.wait_for_selector(f"{PANEL} .mlops-detail")
    assert page.inner_text(f"{PANEL} .mlops-run-title") == HOSTILE
    assert page.locator(f"{PANEL} img").count() == 0  # the page fixture fails on any alert


def test_compare_two_runs_highlights_differences_and_overlays_metrics(page, lab):
    server, ids, _ = lab
    page.goto(server.page_url())
    open_sidebar(page)
    choose_experiment(page, "demo", "1–3 of 3")
    assert page.is_disabled(f"{PANEL} .mlops-compare")
    for name in ("baseline", "tuned"):
        page.check(f"{PANEL} tr[data-run-id='{ids[name]}'] .mlops-select")
    assert page.inner_text(f"{PANEL} .mlops-compare") == "Compare (2)"
    page.click(f"{PANEL} .mlops-compare")
    page.wait_for_selector(f"{PANEL} .mlops-compare-view")
    rows = page.locator(f"{PANEL} .mlops-compare-params tbody tr")
    differing = {rows.nth(i).locator("th").inner_text(): rows.nth(i).get_attribute("class")
                 for i in range(rows.count())}  # fmt: skip
    assert differing == {"depth": "", "lr": "mlops-differs", "model": ""}
    best = page.locator(f"{PANEL} .mlops-compare-metrics td.mlops-best").all_inner_texts()
    assert best == ["0.93", "0.07"]  # the higher accuracy, the lower loss
    overlay = page.locator(f"{PANEL} .mlops-compare-view .mlops-figure").first
    assert overlay.locator("path").count() == 2
    assert overlay.locator(".mlops-legend span").all_inner_texts() == ["baseline", "tuned"]
    widen_sidebar(page)
    shoot(page, "compare")


def test_run_pipeline_form_starts_a_run_that_finishes_with_docs(page, lab):
    server, _, log_path = lab
    open_churn_with_sidebar(page, server)
    widen_sidebar(page)
    page.click(f"{PANEL} .mlops-nav-pipeline")
    page.wait_for_selector(f"{PANEL} #mlops-param-n_customers")
    assert page.input_value(f"{PANEL} .mlops-notebook") == "churn.ipynb"
    assert page.input_value(f"{PANEL} #mlops-param-n_customers") == "10000"
    page.fill(f"{PANEL} #mlops-param-n_customers", "3000")
    page.fill(f"{PANEL} #mlops-param-n_estimators", "20")
    page.fill(f"{PANEL} .mlops-experiment-name", "from-sidebar")
    page.click(f"{PANEL} .mlops-run-pipeline")
    page.wait_for_selector(f"{PANEL}[data-view='runs'] .mlops-runs-table")
    log = mlops_nb.open_log(log_path)
    known = set(log.runs()["run_id"])
    log.close()

    seen_progress = False
    deadline = time.monotonic() + 180
    status = ""
    while time.monotonic() < deadline:
        first = page.locator(f"{PANEL} .mlops-runs-table tbody tr").first
        if first.get_attribute("data-run-id") in known:  # the new run is not in the log yet
            time.sleep(0.25)
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

    log = mlops_nb.open_log(log_path)
    run = log.runs(experiment="from-sidebar").iloc[0]
    assert (run["params.n_customers"], run["params.n_estimators"]) == (3000, 20)
    log.close()
    page.locator(f"{PANEL} .mlops-runs-table tbody tr").first.locator("td.mlops-name").click()
    page.wait_for_selector(f"{PANEL} .mlops-detail[data-run-id='{run['run_id']}']")
    assert page.locator(f"{PANEL} .mlops-timeline rect").count() >= 6
    stages = page.locator(f"{PANEL} .mlops-node-stage text").all_text_contents()
    assert stages[:2] == ["ingest", "clean"] and "train" in stages
    assert page.locator(f"{PANEL} .mlops-node-dataset").count() >= 2
    page.click(f"{PANEL} .mlops-generate-docs")
    link = page.wait_for_selector(f"{PANEL} .mlops-docs-message a", timeout=60_000)
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
