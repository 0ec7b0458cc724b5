# govshare — the two commands a newcomer needs:  make demo   and   make test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: setup browser engines test test-fast check compile check-artifacts demo bench clean

# venv + pip + npm ci; re-run only when the dependency manifests change.
setup: $(VENV)/.installed node_modules/.installed browser engines

# Real engines for the tests: the pinned Kubo and geth built into .tools/bin with
# Go (once; skipped when they already report the pinned versions), and Debian's
# PostgreSQL server when root. What cannot be had is said, and its tests skip.
engines:
	@scripts/provision_engines.sh

# The browser tests drive Debian's chromium through Playwright (which cannot
# download a browser here). Installed when missing, as root with apt; elsewhere
# those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "chromium could not be installed: the browser tests will skip."; \
	else echo "chromium is not installed (needs root and apt): the browser tests will skip."; fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Recompile the Solidity sources into contracts/build (commit the result).
compile: setup
	$(PY) scripts/compile_contracts.py

# Fails when the sources no longer compile to the committed artifacts.
check-artifacts: setup
	$(PY) scripts/compile_contracts.py --check

# The whole suite on every core (pytest-xdist; each worker starts its own
# servers on free ports): about 14 minutes on 2 cores.
test: setup check-artifacts
	$(PY) -m pytest -q -p no:cacheprovider -n auto

# The fast lane: no broker, CLI or engine processes (tests/conftest.py says what
# counts as integration), the contracts on one anvil per worker: under 2 minutes.
test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -n auto -m "not integration and not slow"

# Slither runs offline on the solcjs compile; it fails on a finding that
# contracts/slither-baseline.txt does not list with its reason.
check: setup
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/ruff check src tests scripts
	$(BIN)/mypy
	$(PY) scripts/slither_check.py

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) scripts/bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .tools .pytest_cache .mypy_cache .ruff_cache
