# guard — make targets. `make test` works on a fresh machine: it creates .venv, installs
# everything the tests need (pip packages, redis-server via apt-get when missing) and runs
# lint, types and the whole suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: all setup tools system-deps test lint typecheck pytest node-build node-test run bench bench-quick clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip uninstall -q -y guard 2>/dev/null || true  # the distribution's old name
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (apt-get)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  echo "installing chromium + chromium-driver (apt-get; the console test drives them)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# scripts/tools.sh installs extra binaries the tests use (e.g. promtool into .tools/bin)
tools: $(STAMP)
	@if [ -x scripts/tools.sh ]; then scripts/tools.sh; fi

setup: $(STAMP) system-deps tools

lint: setup
	$(BIN)/ruff check guard tests bench scripts deploy/demo examples
	$(BIN)/ruff format --check guard tests bench scripts deploy/demo examples

typecheck: setup
	$(BIN)/mypy

# the bench tests drive the Node peers: the Node SDK build and bench/node_modules come first
pytest: setup node-build bench/node_modules/.package-lock.json
	$(BIN)/pytest

# The Node SDK (clients/node): npm ci from its lockfile (again only when the lockfile changes),
# build (tsc strict, Lua copied from guard/lua) and its node --test suite, which starts its own
# redis-server and uses .venv for the Python side of the cross-runtime tests.
NODE_DIR := clients/node
$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	@command -v node >/dev/null 2>&1 || { echo "node (>= 18) and npm are needed for the Node SDK tests"; exit 1; }
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error

node-build: $(NODE_DIR)/node_modules/.package-lock.json
	cd $(NODE_DIR) && node scripts/build.mjs

node-test: setup node-build
	cd $(NODE_DIR) && node --test --test-concurrency=1 test/*.test.mjs

test: lint typecheck pytest node-test

run: setup
	$(BIN)/guard serve --bind 127.0.0.1:8000

# bench: guard beside its peers on a private redis-server; writes docs/benchmarks.md and
# docs/img/*.png (~15 minutes on 2 cores; bench-quick: a few minutes)
bench/node_modules/.package-lock.json: bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund --loglevel=error

bench: setup bench/node_modules/.package-lock.json node-build
	$(BIN)/python bench/run_all.py

bench-quick: setup bench/node_modules/.package-lock.json node-build
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
