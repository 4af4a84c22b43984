"""The options and exit codes of ``mlops-nb monitor``, apart from the command itself so that
``mlops-nb schedule --monitor`` can check a monitor command when it is scheduled."""

from __future__ import annotations

import argparse

# Exit codes a scheduler can act on (2 is a usage error, as for every mlops-nb command).
EXIT_OK = 0  # nothing drifted, or the retrained model passed its gate and was promoted
EXIT_DRIFT = 3  # the inputs drifted and no retraining was asked for
EXIT_GATE_FAILED = 4  # retrained, but the new version failed its gate: the model stays
EXIT_RETRAIN_FAILED = 5  # the retraining run itself failed

EXIT_CODES_HELP = (
    "exit codes: 0 nothing drifted, or the retrained model passed its gate and was promoted; "
    "3 drift and no --retrain; 4 the retrained model failed its gate (not promoted); "
    "5 the retraining run failed; 2 a usage error"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mlops-nb monitor``."""
    parser.add_argument("ref", metavar="NAME@ALIAS", help="the live model, e.g. churn@champion")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--current", metavar="FILE", help="new data to check (csv or parquet)")
    data.add_argument("--requests", action="store_true",
                      help="check the requests the served model answered")  # fmt: skip
    parser.add_argument("--since", metavar="AGE", help="with --requests: e.g. 1d, 6h (default all)")
    parser.add_argument(
        "--drift-share", type=float, default=0.5, metavar="F",
        help="the inputs drift when at least this share of columns drift (default: 0.5, "
        "Evidently's rule); e.g. 0.2 retrains when 2 of 10 columns drift",
    )  # fmt: skip
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="true labels of --current (one column), for live performance",
    )
    parser.add_argument(
        "--retrain",
        metavar="NOTEBOOK",
        help="on drift, run this notebook, register and gate its model",
    )
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="a parameter of the retraining run (as in mlops-nb run), e.g. -p data_path new.csv",
    )  # fmt: skip
    parser.add_argument("--promote-if", action="append", default=[], metavar="GATE",
                        help='condition the retrained model must meet, e.g. '
                        '"accuracy >= champion - 0.01" (repeatable)')  # fmt: skip
    parser.add_argument("--experiment", "-e", metavar="NAME", help="experiment of the retrain run")
    parser.add_argument("--format", "-f", choices=("text", "json"), default="text")
