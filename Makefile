# Two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install home demo test ui validate bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install home  ## run the whole pipeline on the sample products (local store, CPU backends)
	$(PY) -m adgen_dagster.demo

test: install  ## the whole test suite
	$(PY) -m pytest -q -n 2

ui: install home  ## the Dagster UI on http://127.0.0.1:3000 (same instance as `make demo`)
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

validate: install
	$(VENV)/bin/dagster definitions validate

bench: install
	$(PY) bench/pipeline_cpu.py

clean:
	rm -rf .adgen .dagster_home
