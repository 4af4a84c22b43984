"""The Jupyter server extension: a REST API over the experiment log for the JupyterLab sidebar.

Routes live under ``<base_url>/mlops-nb/api/``; see ``openapi.yaml`` beside this file.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from mlops_nb.server.handlers import ROUTES, ProcessRegistry


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mlops_nb.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers; everything they need is kept in the tornado settings."""
    web_app = server_app.web_app
    base_url = web_app.settings["base_url"]
    registry = ProcessRegistry()
    registry.start_reaping()
    web_app.settings["mlops_nb_processes"] = registry
    web_app.settings["mlops_nb_root_dir"] = str(server_app.root_dir)
    handlers = [
        (url_path_join(base_url, "mlops-nb", "api", pattern), handler)
        for pattern, handler in ROUTES
    ]
    web_app.add_handlers(".*$", handlers)
    server_app.log.info("mlops_nb: REST API at %s", url_path_join(base_url, "mlops-nb", "api"))
