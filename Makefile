# Two commands matter: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv and install what they need on a machine with only python3, node/npm, apt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-output

.PHONY: demo test bench lint clean

# The install also builds the JupyterLab extension in labextension/ (jlpm + `jupyter builder`,
# run by the hatch build hook); removing the old build makes a changed frontend rebuild.
$(STAMP): pyproject.toml labextension/package.json labextension/yarn.lock \
		$(wildcard labextension/src/*.ts labextension/style/*)
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv \
		&& $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	rm -rf mlops_nb/labextension
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb run ../example_notebooks/churn.ipynb \
		-o churn-output.ipynb --docs docs
	cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb pipeline show ../example_notebooks/churn.ipynb
	cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb runs
	cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb show latest
	cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb models register churn --alias champion
	cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb models list
	@echo "Executed notebook: $(DEMO_DIR)/churn-output.ipynb; log: $(DEMO_DIR)/.mlops/log.duckdb"
	@echo "Documentation: $(DEMO_DIR)/docs/churn.html (and churn.md)"
	@echo "Serve the registered model: cd $(DEMO_DIR) && ../$(VENV)/bin/mlops-nb serve churn@champion"

test: $(STAMP)
	$(PY) -m ruff check mlops_nb tests benchmarks example_notebooks
	$(PY) -m ruff format --check mlops_nb tests benchmarks example_notebooks
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench,dask]'
	$(PY) benchmarks/bench_log.py
	$(PY) benchmarks/bench_capture.py
	$(PY) benchmarks/bench_tracking.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_sidebar.py
	PATH=$(VENV)/bin:$$PATH $(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_drift.py
	PATH=$(VENV)/bin:$$PATH $(PY) benchmarks/bench_exporter.py

lint: $(STAMP)
	$(PY) -m ruff check mlops_nb tests benchmarks example_notebooks
	$(PY) -m ruff format --check mlops_nb tests benchmarks example_notebooks

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache test-artifacts mlops_nb/labextension \
		labextension/lib labextension/node_modules labextension/tsconfig.tsbuildinfo
