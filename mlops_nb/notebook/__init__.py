"""The notebook side: magics, tracking, summaries, widgets (only this part imports IPython)."""

from __future__ import annotations

from typing import Any

from mlops_nb.notebook.magics import MlopsMagics, strip_track_magic
from mlops_nb.notebook.tracker import Tracker


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext mlops_nb``: register the magics, the input transformer and the cell hooks."""
    if getattr(shell, "_mlops_tracker", None) is not None:
        return
    tracker = Tracker(shell)
    shell._mlops_tracker = tracker
    shell.register_magics(MlopsMagics(shell, tracker))
    shell.input_transformers_cleanup.append(tracker.cache_transform)  # sees %%mlops first
    shell.input_transformers_cleanup.append(strip_track_magic)
    shell.events.register("pre_run_cell", tracker.pre_run_cell)
    shell.events.register("post_run_cell", tracker.post_run_cell)


def unload_ipython_extension(shell: Any) -> None:
    tracker = getattr(shell, "_mlops_tracker", None)
    if tracker is None:
        return
    shell.events.unregister("pre_run_cell", tracker.pre_run_cell)
    shell.events.unregister("post_run_cell", tracker.post_run_cell)
    for transformer in (tracker.cache_transform, strip_track_magic):
        if transformer in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.remove(transformer)
    shell._mlops_tracker = None


def tracker_of(shell: Any) -> Tracker | None:
    return getattr(shell, "_mlops_tracker", None)
