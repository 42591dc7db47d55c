# Tessera: the two commands a new user needs are `make demo` and `make test`.
# Everything else is set up by them on a fresh machine (Python 3.11+ and make are the only prerequisites).

SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
# Machines may set PYTHONDONTWRITEBYTECODE; without compiled bytecode imports are twice as slow.
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy

DEMO_ARGS ?=
SEED ?= 42
CUSTOMERS ?= 3000
DAYS ?= 90
PORT ?= 8700
DAGSTER_PORT ?= 3000
# pytest workers: one per core (conftest keeps each module, and the modules sharing a world, on one)
TEST_WORKERS ?= auto

.PHONY: help setup browser demo test lint format dev sandbox docs bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.venv/.tessera-synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

dbt_project/target/manifest.json: .venv/.tessera-synced $(shell find dbt_project/models dbt_project/macros dbt_project/seeds -type f 2>/dev/null) dbt_project/dbt_project.yml
	cd dbt_project && ../.venv/bin/dbt parse --quiet --profiles-dir .

setup: .venv/.tessera-synced dbt_project/target/manifest.json  ## install the locked environment and build the dbt manifest

# The browser test drives the OS's Chromium (Playwright's own browser download is not used).
# Installed from Debian's packages when missing and possible; otherwise the test fails and says how.
browser:  ## install Chromium from the OS packages for the Dagster UI test (needs root and apt-get)
	@if [ -n "$$TESSERA_BROWSER" ] || [ -x /usr/bin/chromium ]; then \
	  :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Chromium from the OS packages for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else \
	  echo "No /usr/bin/chromium and no way to install it here (needs root and apt-get): the browser test will fail." \
	    "Install the chromium package, or set TESSERA_BROWSER to a Chromium binary." >&2; \
	fi

demo: setup  ## generate a sandbox shop, serve it, and run the whole pipeline (SEED=, CUSTOMERS=, DAYS=)
	.venv/bin/python -m orchestration.demo --seed $(SEED) --customers $(CUSTOMERS) --days $(DAYS) --port $(PORT) $(DEMO_ARGS)

test: setup browser  ## lint, then run the whole test suite
	.venv/bin/ruff check .
	cd dbt_project && ../.venv/bin/sqlfluff lint models
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: setup  ## ruff and sqlfluff
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	cd dbt_project && ../.venv/bin/sqlfluff lint models

format: setup  ## apply ruff's formatting and fixes
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

sandbox: setup  ## serve the demo's sandbox world on PORT (generate it first with `make demo`)
	.venv/bin/python -m sandbox serve --world data/sandbox --port $(PORT)

dev: setup  ## the Dagster UI and daemon on http://127.0.0.1:DAGSTER_PORT (default 3000), against a running `make sandbox`
	mkdir -p data/dagster_home && cp orchestration/dagster.yaml data/dagster_home/dagster.yaml
	eval "$$(.venv/bin/python -m sandbox env --world data/sandbox --url http://127.0.0.1:$(PORT))" && \
	  DAGSTER_HOME=$(CURDIR)/data/dagster_home TESSERA_DATA_DIR=$(CURDIR)/data \
	  exec .venv/bin/dagster dev -w workspace.yaml -p $(DAGSTER_PORT)

DOCS_PORT ?= 8080
docs: setup  ## generate the dbt docs from the warehouse and serve them on DOCS_PORT (default 8080)
	cd dbt_project && TESSERA_WAREHOUSE=$(CURDIR)/data/warehouse.duckdb ../.venv/bin/dbt docs generate --profiles-dir .
	cd dbt_project && ../.venv/bin/dbt docs serve --profiles-dir . --port $(DOCS_PORT) --no-browser

bench: setup  ## run the benchmarks in benchmarks/ and print their reports
	.venv/bin/python -m benchmarks

clean:  ## remove everything a run made (data/, dbt target)
	rm -rf data dbt_project/target dbt_project/logs
