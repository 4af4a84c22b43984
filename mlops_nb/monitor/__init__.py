"""Watching live models: drift, live and estimated performance, Prometheus, retraining.

Reads what serving recorded (requests, feedback) and what registration kept of the training
data (profiles), writes results to the log's ``drift``, ``performance`` and
``monitor_events`` tables. See ARCHITECTURE.md for how the parts fit.
"""
