# Two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: install neural scale home demo test ui validate bench clean

# torch for the neural backends' tests: this pin is the CPU build on the CI machines' disk;
# on a GPU machine `make test TORCH=torch==<the CUDA build you use>` (or install torch first).
TORCH  ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The neural backends' libraries: only the tests (and the GPU backends) need them, never `make demo`.
$(VENV)/.neural: $(VENV)/.installed
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[test,neural]'
	touch $@

# The scale-out libraries (Celery run launcher, Postgres storage, Redis client, kubernetes models
# for the deploy/ checks): the tests of deploy/ and the multi-machine test need them, never `make demo`.
$(VENV)/.scale: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,scale]'
	touch $@

install: $(VENV)/.installed
neural: $(VENV)/.neural
scale: $(VENV)/.scale

home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install home  ## run the whole pipeline on the sample products (local store, CPU backends)
	$(PY) -m adgen_dagster.demo

test: neural scale  ## the whole test suite (installs torch, transformers, diffusers and the scale-out libraries)
	$(PY) -m pytest -q -n 2

ui: install home  ## the Dagster UI (`dg dev`) on http://127.0.0.1:3000 (same instance as `make demo`); Ctrl-C or SIGTERM stops it
	$(PY) -m adgen_dagster.ui --host $(UI_HOST) --port $(UI_PORT)

validate: install
	$(VENV)/bin/dagster definitions validate

bench: install
	$(PY) bench/pipeline_cpu.py

clean:
	rm -rf .adgen .dagster_home
