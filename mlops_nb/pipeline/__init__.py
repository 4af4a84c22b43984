"""Notebooks as pipelines: papermill runs, typed parameters, sweeps and schedules."""
