# The commands in the README: `make demo` and `make test` (docs/contributing.md
# lists every target).  They create .venv when it is missing and install what
# they need into it; Debian packages (python3-venv, chromium, nodejs) come from apt,
# announced before, unless NO_APT=1.
# Whatever a run writes (reports, caches, screenshots, tmp dirs) goes under
# $(ARTIFACTS), so `make test` leaves `git status` clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARTIFACTS ?= test-artifacts
PYTEST_ARGS ?=
# NO_APT=1: never run apt-get; a missing Debian package stops make with a message.
NO_APT ?=
# No .pytest_cache or .hypothesis in the tree; tests that write artifacts read $ARTIFACTS.
PYTEST := ARTIFACTS=$(ARTIFACTS) HYPOTHESIS_STORAGE_DIRECTORY=$(ARTIFACTS)/hypothesis \
  $(PY) -m pytest -p no:cacheprovider

.PHONY: demo lint docs test test-fast test-cpython matrix screenshots bench soak chromium node clean

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ -n "$(NO_APT)" ]; then \
	    echo "make: $(PYTHON) -m venv failed and NO_APT is set: install Debian's python3-venv" \
	      "($(strip $(SUDO) apt-get install python3-venv)) and run make again" >&2; exit 1; fi; \
	  echo "make: $(PYTHON) -m venv failed; installing Debian's python3-venv with apt:" \
	    "$(strip $(SUDO) apt-get install -y python3-venv) (NO_APT=1 turns this off)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv && \
	  $(PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip

# The JupyterLab extension's sources: pip install -e rebuilds it (hatch-jupyter-builder,
# jlpm) when they change and installs it into the venv with the server config.
LABEXT_SOURCES := package.json yarn.lock tsconfig.json $(wildcard src/*.ts style/*)

$(VENV)/.demo-installed: $(PY) pyproject.toml $(LABEXT_SOURCES) | node
	$(PY) -m pip install -q -e '.[dask]' jupyterlab
	@touch $@

$(VENV)/.test-installed: $(PY) pyproject.toml $(LABEXT_SOURCES) | node
	$(PY) -m pip install -q -e '.[test,dask]'
	@touch $@ $(VENV)/.demo-installed

# Building the JupyterLab extension needs node (installing the wheel does not).
node:
	@command -v node >/dev/null || { \
	  if [ -n "$(NO_APT)" ]; then \
	    echo "make: node is missing and NO_APT is set: install Debian's nodejs" \
	      "($(strip $(SUDO) apt-get install nodejs)) to build the JupyterLab extension" >&2; exit 1; fi; \
	  echo "make: node is missing; installing Debian's nodejs with apt (to build the JupyterLab" \
	    "extension): $(strip $(SUDO) apt-get install -y nodejs) (NO_APT=1 turns this off)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q nodejs; }

$(VENV)/.docs-installed: $(PY) pyproject.toml $(LABEXT_SOURCES) | node
	$(PY) -m pip install -q -e '.[docs,dask]'
	@touch $@

# Debian's Chromium for the browser tests (never `playwright install`).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ -n "$(NO_APT)" ]; then \
	    echo "make: /usr/bin/chromium is missing and NO_APT is set: install Debian's chromium" \
	      "($(strip $(SUDO) apt-get install chromium)), or run make test-fast, which needs no browser" >&2; \
	    exit 1; fi; \
	  echo "make: /usr/bin/chromium is missing; installing Debian's chromium with apt:" \
	    "$(strip $(SUDO) apt-get install -y chromium) (NO_APT=1 turns this off)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; \
	fi

# JupyterLab on loopback only; as root (containers, CI boxes) it needs --allow-root.
demo: $(VENV)/.demo-installed
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 $(if $(SUDO),,--allow-root) notebooks/quickstart.ipynb

# Lint and import order (ruff), then types (mypy, configured in pyproject.toml).
lint: $(VENV)/.test-installed
	$(PY) -m ruff check --cache-dir $(ARTIFACTS)/ruff-cache nbfrost tests benchmarks noxfile.py
	$(PY) -m mypy --cache-dir $(ARTIFACTS)/mypy-cache
	@[ -d node_modules ] || $(VENV)/bin/jlpm install --immutable
	$(VENV)/bin/jlpm run check

# The documentation site (docs/contributing.md): Sphinx, warnings are errors,
# the notebooks executed; the HTML goes to $(ARTIFACTS)/docs.
docs: $(VENV)/.docs-installed
	$(PY) -m sphinx -W --keep-going -q -b html -d $(ARTIFACTS)/docs-doctrees docs $(ARTIFACTS)/docs

# lint first: any ruff or mypy error fails the run before pytest starts; then
# the docs, so a broken page or a stale docstring fails it too.
test: lint docs chromium
	@mkdir -p $(ARTIFACTS)
	$(PYTEST) -ra --durations=15 --junitxml=$(ARTIFACTS)/junit.xml \
	  --basetemp=$(ARTIFACTS)/tmp $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory matrix

# tests/unit only: no kernel, browser or cluster (about a minute).
test-fast: $(VENV)/.test-installed
	$(PYTEST) -ra tests/unit $(PYTEST_ARGS)

# Refresh the screenshots in docs/: the browser test takes them (under
# $(ARTIFACTS)); this copies them into docs/ on purpose.
# quickstart.png: the quickstart after Run All, a finished and a live dashboard.
screenshots: $(VENV)/.test-installed chromium
	@mkdir -p $(ARTIFACTS)
	$(PYTEST) -ra --basetemp=$(ARTIFACTS)/tmp-screenshots tests/browser/test_browser.py
	cp $(ARTIFACTS)/dashboard.png docs/dashboard.png
	cp $(ARTIFACTS)/dashboard-timeline.png docs/dashboard-timeline.png
	$(PYTEST) -ra --basetemp=$(ARTIFACTS)/tmp-screenshots-panel tests/browser/test_jobs_panel.py -k two_notebooks
	cp $(ARTIFACTS)/jobs-panel.png docs/jobs-panel.png
	$(PYTEST) -ra --basetemp=$(ARTIFACTS)/tmp-screenshots-quickstart tests/browser/test_quickstart_browser.py
	cp $(ARTIFACTS)/quickstart.png docs/quickstart.png

# CPython's own concurrent.futures executor tests against Dispatcher
# (tests/unit/test_executor_cpython*.py).  They need a CPython >= 3.12 that ships
# its test package: pyenv's 3.13.0 on this image, in a venv of its own.
# Without one, this step says so and is skipped.  `make test` does not call
# it: the matrix's unit-3.12 and unit-3.13 sessions run the same files.
CPYTHON313 ?= env PYENV_VERSION=3.13.0 python3
VENV313    ?= .venv313

test-cpython:
	@if $(CPYTHON313) -c 'import sys, test.test_concurrent_futures.executor; sys.exit(sys.version_info < (3, 12))' \
	    >/dev/null 2>&1; then \
	  { [ -x $(VENV313)/bin/python ] || $(CPYTHON313) -m venv $(VENV313); } && \
	  { [ -f $(VENV313)/.installed ] || { $(VENV313)/bin/python -m pip install -q -e . pytest pytest-timeout && \
	      touch $(VENV313)/.installed; }; } && \
	  $(VENV313)/bin/python -m pytest -ra -p no:cacheprovider tests/unit/test_executor_cpython.py \
	    tests/unit/test_executor_cpython_processes.py; \
	else \
	  echo "test-cpython: skipped: no CPython >= 3.12 with its test package ($(CPYTHON313));" \
	    "CPython's executor tests against Dispatcher did not run"; \
	fi

# The version matrix (noxfile.py, with nox and uv): tests/unit on each Python
# nbfrost claims that this machine has (pyenv's 3.10, 3.12, 3.13 here; a
# missing one is said and skipped) and on 3.10 at the declared floors of the
# runtime dependencies, each in a venv of its own cached under $(ARTIFACTS)/nox.
# `make matrix NOX_ARGS="-s unit-3.10"` runs one session.
NOX_ARGS ?=
matrix: $(VENV)/.test-installed
	ARTIFACTS=$(abspath $(ARTIFACTS)) $(VENV)/bin/nox -f noxfile.py $(NOX_ARGS)

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench.py

soak: $(VENV)/.test-installed
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) $(ARTIFACTS) .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info
	rm -rf node_modules lib nbfrost/labextension tsconfig.tsbuildinfo dist
