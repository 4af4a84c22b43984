"""A sweep of 8 runs of the example notebook: sequential (1 worker) against 2 workers.

    python benchmarks/bench_sweep.py [--engine local|dask]

Prints both wall times and the speedup (2 cores here: at most 2x, less the kernels' start).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops_nb.pipeline.sweep import choose, run_sweep  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "example_notebooks" / "churn.ipynb"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("local", "dask"), default="local")
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="mlops-nb-bench-sweep-"))
    grid = {"n_estimators": [50, 100, 150, 200], "max_depth": [4, 8]}
    combinations = choose(grid, None, 0)
    times = {}
    for workers in (1, 2):
        summary = run_sweep(str(NOTEBOOK), {"n_customers": 5000}, combinations,
                            engine=args.engine, workers=workers, metric="roc_auc",
                            progress=False)  # fmt: skip
        if summary["failed"]:
            print(summary["table"])
            return 1
        times[workers] = summary["seconds"]
        print(f"{len(combinations)} runs, {workers} worker(s), {args.engine}: "
              f"{summary['seconds']:.1f} s")  # fmt: skip
    print(f"speedup with 2 workers: {times[1] / times[2]:.2f}x")
    print(summary["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
