"""The model registry: versions of fitted inference pipelines, aliases, gates, loading.

Everything is recorded in the experiment log (``log/`` does the SQL); this package assembles,
verifies, saves and loads the models themselves.
"""
