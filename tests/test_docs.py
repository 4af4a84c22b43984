"""`mlops-nb docs` on a real run of the example notebook: real values, working images, escaping."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from conftest import REPO, run_cli
from labserver import launch_chromium
from nbformat.v4 import new_code_cell

import mlops_nb as mn

CHURN = REPO / "example_notebooks" / "churn.ipynb"
SECTIONS = ("1. Overview", "2. Parameters", "3. Pipeline", "4. Stages",
            "5. Datasheet for the training data", "6. Model card",
            "7. Reproducibility")  # fmt: skip


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    """One pipeline run of the example notebook, and its docs in both formats."""
    work = tmp_path_factory.mktemp("docs")
    result = run_cli("run", CHURN, "-p", "n_customers", "1500", "-p", "n_estimators", "20",
                     "--docs", work / "published", cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"docs: {work / 'published' / 'churn.html'}" in result.stdout  # run --docs
    docs = run_cli("docs", CHURN, "--out", work / "out", cwd=work)
    assert docs.returncode == 0, docs.stderr
    log = mn.open_log(work / ".mlops" / "log.duckdb")
    record = log.run("latest")
    log.close()
    return work, record, docs.stdout


def _clean_diff(record) -> dict:
    clean = record.datasets[record.datasets["name"] == "clean"].iloc[0]
    return json.loads(clean["diff"])


def test_docs_show_the_real_values_of_the_run(churn_run):
    work, record, printed = churn_run
    html_path, md_path = work / "out" / "churn.html", work / "out" / "churn.md"
    assert printed.split() == [str(html_path), str(md_path)]
    html, md = html_path.read_text(), md_path.read_text()
    duplicates = _clean_diff(record)["duplicates_removed"]
    assert duplicates == 188
    accuracy = f"{record.metrics['accuracy']:.4f}"
    for text in (html, md):
        assert f"{duplicates} duplicate rows dropped" in text
        assert "sklearn.ensemble.RandomForestClassifier" in text
        assert accuracy in text
        assert record.run_id in text
        assert "-p n_customers 1500" in text and "-p n_estimators 20" in text
        for heading in SECTIONS:
            assert heading in text
        for stage in ("ingest", "clean", "explore", "features", "train", "evaluate"):
            assert f" {stage}<" in text or f" {stage}\n" in text
    assert re.search(r"<tr><td>n_estimators</td><td><code>20</code></td></tr>", html)
    assert "| n_estimators | `20` |" in md
    assert "<svg" in html and "```mermaid\nflowchart LR" in md
    assert 'href="#stage-clean"' in html  # the table of contents links the stages


def test_no_broken_image_in_either_format(churn_run):
    work, _, _ = churn_run
    html = (work / "out" / "churn.html").read_text()
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    md = (work / "out" / "churn.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert images and all((work / "out" / image).stat().st_size > 1000 for image in images)


def test_no_card_cell_gives_placeholders_and_a_card_cell_fills_them(churn_run, tmp_path):
    work, record, _ = churn_run
    html = (work / "out" / "churn.html").read_text()
    assert html.count("To be completed by the author") >= 10  # every card and author field
    notebook = nbformat.read(CHURN, as_version=4)
    card = ("%%mlops card\nintended_use: Rank customers for retention calls.\n"
            "caveats_and_recommendations:\n  - Synthetic data only.\n"
            "groups: {column: contract, data: X_test, target: y_test, prediction: predicted}\n"
            )  # fmt: skip
    notebook.cells.append(new_code_cell(card))
    carded = tmp_path / "churn.ipynb"
    nbformat.write(notebook, carded)
    result = run_cli("docs", carded, "--run", record.run_id[:8], "--out", tmp_path / "out",
                     "--format", "html", "--log", work / ".mlops" / "log.duckdb")  # fmt: skip
    assert result.returncode == 0, result.stderr
    filled = (tmp_path / "out" / "churn.html").read_text()
    assert "Rank customers for retention calls." in filled
    assert "<li>Synthetic data only.</li>" in filled
    assert (
        filled.count("To be completed by the author")
        == html.count("To be completed by the author") - 2
    )
    assert "intended_use:" not in filled  # the card cell is not part of any stage's code
    groups = re.findall(r"<tr><td>(month-to-month|one-year|two-year)</td><td>(\d+)</td>", filled)
    assert [g for g, _ in groups] == ["month-to-month", "one-year", "two-year"]
    assert sum(int(n) for _, n in groups) == 375  # the whole test set: 25% of 1,500


def test_user_text_with_html_in_it_is_escaped(churn_run, tmp_path):
    work, record, _ = churn_run
    notebook = nbformat.read(CHURN, as_version=4)
    notebook.cells[0].source = "# Churn <script>alert(1)</script>\n\nPurpose <b>bold</b>."
    notebook.cells.append(new_code_cell("%%mlops card\nfactors: <img src=x onerror=alert(2)>"))
    hostile = tmp_path / "churn.ipynb"
    nbformat.write(notebook, hostile)
    result = run_cli("docs", hostile, "--run", record.run_id, "--out", tmp_path / "out",
                     "--log", work / ".mlops" / "log.duckdb")  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "churn.html").read_text()
    assert "<script>" not in html and "<b>bold</b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = (tmp_path / "out" / "churn.md").read_text()
    assert md.startswith("# Churn &lt;script&gt;alert(1)&lt;/script&gt;")


def test_a_notebook_without_a_finished_run_is_one_line_error(churn_run, tmp_path):
    work, _, _ = churn_run
    other = tmp_path / "other.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), other)
    result = run_cli("docs", other, "--out", tmp_path / "out", "--log",
                     work / ".mlops" / "log.duckdb")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mlops-nb docs: no finished run of other.ipynb in the log: run it with mlops-nb run, "
        "or pass --run"
    ]


def test_the_html_renders_in_a_real_browser_without_errors(churn_run, tmp_path):
    from playwright.sync_api import sync_playwright

    work, record, _ = churn_run
    page_path = work / "out" / "churn.html"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(request.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            shot = tmp_path / "churn-docs.png"
            page.screenshot(path=str(shot), full_page=True)
            images_ok = page.evaluate(
                "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
            )
            headings = page.locator("h2").all_inner_texts()
        finally:
            browser.close()
    assert problems == []
    assert images_ok
    assert [h for h in headings if h[:2] in {f"{n}." for n in range(1, 8)}] == list(SECTIONS)
    assert shot.stat().st_size > 50_000  # a real, full-page picture of the document


def test_sweep_docs_rank_children_chart_each_parameter_and_show_schedule_and_reruns(tmp_path):
    sweep = run_cli("sweep", CHURN, "-p", "n_estimators", "10,30", "-p", "n_customers", "1500",
                    "--metric", "roc_auc", "--workers", "2", cwd=tmp_path)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    rerun = run_cli("run", CHURN, "-p", "n_estimators", "30", "-p", "n_customers", "1500",
                    cwd=tmp_path)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    scheduled = run_cli("schedule", CHURN, "--cron", "0 3 * * *", "--target", "cron",
                        "--out", tmp_path / "deploy", cwd=tmp_path)  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    sweep_run = log.runs(where="tags['mlops.kind'] = 'sweep'")
    children = log.runs(where=f"parent_run_id = '{sweep_run['run_id'][0]}'",
                        order_by="metrics.roc_auc DESC")  # fmt: skip
    log.close()
    docs = run_cli("docs", CHURN, "--run", sweep_run["run_id"][0], "--out", tmp_path / "site",
                   cwd=tmp_path)  # fmt: skip
    assert docs.returncode == 0, docs.stderr
    markdown = (tmp_path / "site" / "churn.md").read_text()
    html = (tmp_path / "site" / "churn.html").read_text()
    ranked = [line for line in markdown.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert [line.split("|")[2].strip(" `") for line in ranked] == [
        run_id[:8] for run_id in children["run_id"]
    ]
    best = children["run_id"][0]
    assert f"The sections above describe its best run, `{best}`" in markdown
    assert (tmp_path / "site" / "churn_files" / "sweep-n_estimators.svg").is_file()
    assert "roc_auc by n_estimators" in html and "8. Sweep" in html
    assert "Runs <code>0 3 * * *</code> on cron; next runs:" in html
    assert children["params.n_estimators"][0] == 30  # seeded: 30 trees beat 10 here
    assert "reproduced every metric" in markdown  # the re-run had the best child's parameters
