# The README's commands: `python run_live_monitor.py` runs the monitor, `make test` runs
# every test. Targets install what they need into the current Python environment.
PYTHON ?= python3
NPM ?= npm
CHROMIUM ?= /usr/bin/chromium

.PHONY: help install assets system-packages bench-packages bench-test bench test test-python test-frontend lint run screenshots clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: ## Install the pinned Python packages (runtime and test)
	$(PYTHON) -m pip install -q -r requirements-dev.txt

assets: ## Build the browser logger and copy Chart.js (npm ci + build)
	$(NPM) ci --no-audit --no-fund
	$(NPM) run build

# Debian packages a target needs: "program-or-path:package" pairs; installed with apt-get when
# running as root, else the one line to run.
define need-debian
	@missing=""; for pair in $(1); do what=$${pair%%:*}; package=$${pair#*:}; \
	  { test -x "$$what" || command -v "$$what" >/dev/null; } || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "Missing:$$missing (sudo apt-get install -y$$missing)" >&2; exit 1; fi; fi
endef

system-packages: ## Make sure Debian's Chromium, redis-server and prometheus (promtool too) are there for the tests
	$(call need-debian,$(CHROMIUM):chromium redis-server:redis-server promtool:prometheus)

bench-packages: system-packages ## The same, and wrk (the benchmark's load generator)
	$(call need-debian,wrk:wrk)

lint: ## ruff (lint and format), mypy, the layers (import-linter, and the root's rules), tsc --noEmit (strict)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy .
	$(PYTHON) -c "import sys, importlinter.cli as c; sys.exit(c.lint_imports())"
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_layout.py tests/test_tools_vocabulary.py
	$(NPM) run typecheck

test-python: ## The Python test suite
	$(PYTHON) -m pytest -q

test-frontend: assets ## The TypeScript tests (node's test runner), on the assets just built
	$(NPM) run test:only

test: install assets system-packages lint test-frontend test-python ## Everything CI runs

run: ## Run the monitor (same as python run_live_monitor.py)
	$(PYTHON) run_live_monitor.py

bench-test: install assets bench-packages ## The benchmark's own tests (its helpers, wrk's counting, the chart)
	$(PYTHON) -m pytest -q -p no:cacheprovider benchmarks

bench: bench-test ## Benchmark the monitor side by side with the alternatives (writes benchmarks/RESULTS.md)
	$(PYTHON) benchmarks/run.py

screenshots: install assets system-packages ## Render the README's screenshots (docs/images/) from sample data in Chromium
	CHROMIUM=$(CHROMIUM) $(PYTHON) scripts/screenshots.py

clean: ## Remove build output
	rm -rf node_modules static/live-monitor.js static/live-monitor.js.map static/live-monitor.mjs static/live-monitor.mjs.map static/vendor test-artifacts build dist *.egg-info
