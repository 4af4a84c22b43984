"""The Jupyter server extension: a REST API over the experiment log for the JupyterLab sidebar.

Routes live under ``<base_url>/mlops-nb/api/``; see ``openapi.yaml`` beside this file. Every
handler is authorized against the resource ``mlops-nb`` (``AUTH_RESOURCE``): reads need
``read``, writing docs and schedule files ``write``, starting a pipeline run ``execute``.
Settings (``c.MlopsNbExtension.max_pipeline_runs = 4`` in ``jupyter_server_config.py``) are
read from the server's configuration.

Imports of jupyter_server and tornado happen when the extension loads, so the pipeline child
(``mlops_nb.server.child``) does not pay for them.
"""

from __future__ import annotations

import threading
from typing import Any

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

AUTH_RESOURCE = "mlops-nb"


class MlopsNbExtension(LoggingConfigurable):
    """Settings of the server extension."""

    max_pipeline_runs = Int(
        2, config=True, help="How many pipeline runs the server runs at once; more get 429."
    )
    keep_finished_seconds = Float(
        600.0, config=True, help="How long an ended pipeline process stays listed (seconds)."
    )
    keep_finished_count = Int(
        20, config=True, help="How many ended pipeline processes stay listed at most."
    )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mlops_nb.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers; everything they need is kept in the tornado settings."""
    from jupyter_server.utils import url_path_join

    from mlops_nb.server.handlers import ROUTES, warm_team_log
    from mlops_nb.server.processes import ProcessRegistry

    settings = MlopsNbExtension(parent=server_app)
    web_app = server_app.web_app
    base_url = web_app.settings["base_url"]
    registry = ProcessRegistry(
        max_running=settings.max_pipeline_runs,
        keep_seconds=settings.keep_finished_seconds,
        keep_finished=settings.keep_finished_count,
    )
    registry.start_reaping()
    web_app.settings["mlops_nb_processes"] = registry
    web_app.settings["mlops_nb_root_dir"] = str(server_app.root_dir)
    handlers = [
        (url_path_join(base_url, "mlops-nb", "api", pattern), handler)
        for pattern, handler in ROUTES
    ]
    web_app.add_handlers(".*$", handlers)
    threading.Thread(
        target=warm_team_log, args=(str(server_app.root_dir),), name="mlops-nb-warm", daemon=True
    ).start()
    server_app.log.info(
        "mlops_nb: REST API at %s (at most %d pipeline runs at once)",
        url_path_join(base_url, "mlops-nb", "api"), settings.max_pipeline_runs,
    )  # fmt: skip
