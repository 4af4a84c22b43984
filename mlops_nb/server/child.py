"""One pipeline run started by the server: ``python -m mlops_nb.server.child < request.json``.

The request (see ``processes.RunRequest``) arrives as JSON on stdin with the parameter values
already typed and checked, and goes straight to ``runner.run_notebook``: nothing is re-parsed
from command-line words. Exit codes: 0 finished, 1 the run failed (it is recorded), 2 the run
could not start (an ``MlopsError``; nothing recorded). The last line written to stderr says why;
the server shows it. This module imports nothing from jupyter_server or tornado.
"""

from __future__ import annotations

import json
import sys

from mlops_nb.errors import MlopsError


def main() -> int:
    request = json.load(sys.stdin)
    from mlops_nb.pipeline.runner import run_notebook

    try:
        result = run_notebook(
            request["notebook"], request["values"], experiment=request.get("experiment"),
            log_path=request["log_path"], progress=False,
        )  # fmt: skip
    except MlopsError as error:
        print(f"mlops-nb run: {error}", file=sys.stderr)
        return 2
    if result.status != "finished":
        print(f"run {result.run_id} failed: {result.error}", file=sys.stderr)
        return 1
    print(f"run {result.run_id} finished in {result.seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
