# guard — make targets. `make test` works on a fresh machine: it creates .venv, installs
# everything the tests need (pip packages, redis-server via apt-get when missing) and runs
# lint, types and the whole suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: all setup tools system-deps test lint typecheck pytest run bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (apt-get)"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# scripts/tools.sh installs extra binaries the tests use (e.g. promtool into .tools/bin)
tools: $(STAMP)
	@if [ -x scripts/tools.sh ]; then scripts/tools.sh; fi

setup: $(STAMP) system-deps tools

lint: setup
	$(BIN)/ruff check guard tests bench deploy/demo examples
	$(BIN)/ruff format --check guard tests bench deploy/demo examples

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

test: lint typecheck pytest

run: setup
	$(BIN)/guard serve --bind 127.0.0.1:8000

bench: setup
	$(BIN)/python bench/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
