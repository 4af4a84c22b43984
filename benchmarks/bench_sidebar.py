"""How fast the JupyterLab sidebar shows a log with many runs (target: first page under 1 s).

    python benchmarks/bench_sidebar.py [--runs 10000] [--loads 5]

Seeds a log with N runs (5 params and 5 metrics each), starts a real ``jupyter lab`` on
loopback and opens it in Debian's Chromium ``--loads`` times. For each page load it measures:
the runs tab's own time from its creation to its first page of runs on screen; the time from
a click on the MLOps tab, then on "All experiments", to rows in the main-area runs tab;
opening another experiment's tab from the panel; and turning to the next page. Prints the
medians and checks the first page against 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from labserver import (  # noqa: E402
    launch_chromium,
    open_runs,
    open_sidebar,
    running_lab,
    runs_area,
    seed_bulk_runs,
)

PANEL = "#mlops-nb-sidebar"
TARGET_MS = 1000.0


def _wait_count(page, area: str, text: str) -> float:
    """Milliseconds until the pager of the runs tab ``area`` reads ``text``."""
    started = time.perf_counter()
    page.wait_for_function(
        "([area, t]) => document.querySelector(area + ' .mlops-count')?.textContent === t",
        arg=[area, text],
        timeout=30_000,
    )
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-sidebar-"))
    root = folder / "root"
    root.mkdir()
    log = root / ".mlops" / "log.duckdb"
    started = time.perf_counter()
    seed_bulk_runs(log, args.runs)
    print(f"seeded {args.runs:,} runs in {time.perf_counter() - started:.1f} s")
    samples: dict[str, list[float]] = {"start": [], "click": [], "switch": [], "next": []}
    with running_lab(root, log) as lab, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for load in range(args.loads):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(lab.page_url(f"lab/workspaces/bench-{load}"))  # no tabs restored
            clicked = open_sidebar(page)
            samples["click"].append(clicked + open_runs(page))  # All experiments
            samples["start"].append(float(page.get_attribute(runs_area(), "data-first-page-ms")))
            bulk = runs_area("bulk")
            started = time.perf_counter()
            page.click(f"{PANEL} .mlops-open-experiment[data-experiment='bulk']")
            _wait_count(page, bulk, f"1–50 of {args.runs:,}")
            samples["switch"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            page.click(f"{bulk} .mlops-next")
            _wait_count(page, bulk, f"51–100 of {args.runs:,}")
            samples["next"].append((time.perf_counter() - started) * 1000)
            page.close()
        browser.close()

    labels = {
        "start": "runs tab made → first page of runs drawn",
        "click": "click MLOps tab, then All experiments → rows",
        "switch": "click an experiment → first page in its tab",
        "next": "next page",
    }
    print(f"\n{args.runs:,} runs, {args.loads} page loads, medians (ms):")
    verdict = 0
    for key, label in labels.items():
        median = statistics.median(samples[key])
        check = ""
        if key == "start":
            ok = median < TARGET_MS
            check = f"  {'PASS' if ok else 'FAIL'} (< {TARGET_MS:.0f} ms)"
            verdict |= 0 if ok else 1
        print(f"  {label:<52} {median:8.0f}{check}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
