# Every target creates and uses .venv from a clean clone: nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint lint-js docs bench serve clean

setup: $(STAMP)
	@sh scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: setup
	$(BIN)/switchboard demo

lint: setup lint-js
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

# the browser client's JSDoc types, checked by TypeScript (pinned in package.json)
lint-js: node_modules/.package-lock.json
	npx --no-install tsc -p src/switchboard/web

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

# two workers, one test file each: most tests wait on real-time audio, so two halve the wall time
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# the SDK reference, generated from the public modules' docstrings (tests/test_reference_docs.py builds it too)
REFERENCE_MODULES := switchboard switchboard.media switchboard.server switchboard.errors
docs: setup
	$(BIN)/python -m pdoc -o build/reference $(REFERENCE_MODULES)
	@echo "SDK reference: build/reference/index.html"

bench: setup
	$(BIN)/python -m benchmarks

serve: setup
	$(BIN)/switchboard serve

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache src/*.egg-info node_modules
