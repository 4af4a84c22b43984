"""Serving registered models: ``mlops-nb serve`` (HTTP) and ``mlops-nb predict`` (files).

``protocol`` parses MLflow's scoring protocol and Open Inference v2 into one shape; ``model``
holds the served version (hot reload when its alias moves) and groups requests into batches;
``metrics`` is what ``/metrics`` exposes; ``app`` is the ASGI application uvicorn runs, and
the only module that touches the web server; ``batch`` scores files. Every request is
recorded in the log (``requests``, ``feedback``, the ``predictions`` view).
"""
