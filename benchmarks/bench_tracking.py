"""What tracking a notebook cell costs, and how that compares with MLflow's sklearn autolog.

    python benchmarks/bench_tracking.py            # MLflow part needs the `bench` extra
    python benchmarks/bench_tracking.py --no-mlflow

1. A trivial cell (``x = 1``), run through a real IPython shell with and without
   ``%%mlops track``: the median time added (target: at most 5 ms).
2. The same ``RandomForestClassifier`` fit on a 20,000 x 20 frame: plain, inside a tracked
   ``train`` cell (which records the data, the fitted model, and stores it as a skops file),
   and under ``mlflow.sklearn.autolog()`` (which logs params, training metrics and the model).
   Prints each tool's added time and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FIT_CELL = "model = RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1).fit(X, y)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--repeats", type=int, default=200, help="trivial cells per variant")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-tracking-"))
    os.chdir(folder)
    shell = _shell()
    trivial_plain = _median_cell_time(shell, "x = 1", args.repeats)
    trivial_tracked = _median_cell_time(shell, "%%mlops track t\nx = 1", args.repeats)
    added = (trivial_tracked - trivial_plain) * 1000
    verdict = "PASS" if added <= 5 else "FAIL"
    print(f"trivial cell: {trivial_plain * 1000:.2f} ms plain, {trivial_tracked * 1000:.2f} ms "
          f"tracked -> {added:.2f} ms added  {verdict} (<= 5 ms)")  # fmt: skip

    shell.run_cell(
        "import numpy as np, pandas as pd\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "rng = np.random.default_rng(0)\n"
        "X = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=[f'f{i}' for i in range(20)])\n"
        "y = (X['f0'] + X['f1'] * X['f2'] > 0).astype(int)\n"
    )
    fit_plain = _median_cell_time(shell, FIT_CELL, 5)
    fit_tracked = _median_cell_time(shell, "%%mlops track train\n" + FIT_CELL, 5)
    ours = fit_tracked - fit_plain
    print(
        f"RandomForest fit: {fit_plain:.3f} s plain; tracked train cell adds {ours * 1000:.0f} ms"
    )
    if args.no_mlflow:
        return 0 if added <= 5 else 1
    theirs = _mlflow_autolog_overhead(shell, fit_plain)
    print(
        f"mlflow.sklearn.autolog() adds {theirs * 1000:.0f} ms to the same fit; "
        f"mlops_nb's overhead is {theirs / max(ours, 1e-6):.1f}x smaller"
    )
    return 0 if added <= 5 else 1


def _shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext mlops_nb")
    shell.run_cell("%mlops track --experiment bench")
    shell.run_cell("%config MlopsMagics.summary = False")
    return shell


def _median_cell_time(shell, code: str, repeats: int) -> float:
    shell.run_cell(code)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = shell.run_cell(code)
        times.append(time.perf_counter() - started)
        if not result.success:
            raise SystemExit(f"benchmark cell failed: {result.error_in_exec}")
    return statistics.median(times)


def _mlflow_autolog_overhead(shell, fit_plain: float) -> float:
    try:
        import mlflow
    except ImportError:
        sys.exit("MLflow is not installed: pip install -e '.[bench]' (or use --no-mlflow)")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    mlflow.sklearn.autolog(log_models=True, silent=True)
    shell.run_cell("%mlops stop")
    fit_autolog = _median_cell_time(shell, FIT_CELL, 5)
    mlflow.sklearn.autolog(disable=True)
    return fit_autolog - fit_plain


if __name__ == "__main__":
    sys.exit(main())
