# Two set-up commands for users: `make demo` and `make test`. Both create everything they need
# (.venv with the Python packages, node_modules with the pinned Anvil and solc) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test protos-check lint typecheck unit bench fuzz mutate clean setup

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing the gateway with its test extras"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo ">> installing pinned npm packages (anvil, solc)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Two chains, two gateway processes, messages both ways; DEMO_ARGS passes options, e.g.
# make demo DEMO_ARGS="--messages 50 --keep-running" (gateway demo --help lists them).
DEMO_ARGS ?=
demo: setup
	@$(BIN)/gateway demo $(DEMO_ARGS)

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PY_STAMP)
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest

# The committed gRPC code must be what protos/interop/v1/*.proto generate (names every drifted file).
protos-check: $(PY_STAMP)
	$(BIN)/python -m protos.generate --check

# pytest exits 5 when it collected no test; make treats any non-zero exit as failure.
test: protos-check lint typecheck unit

bench: setup
	$(BIN)/python -m bench.verifier
	@echo
	$(BIN)/python -m bench.devnode
	@echo
	$(BIN)/python -m bench.adversarial
	@echo
	$(BIN)/python -m bench.adapters
	@echo
	$(BIN)/python -m bench.relay
	@echo
	$(BIN)/python -m bench.audit
	@echo
	$(BIN)/python -m bench.failover

# Not part of `make test`: bounded runs of the fuzzer and of mutation testing over verifier/.
FUZZ_SECONDS ?= 120
fuzz: setup
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[fuzz]'
	$(BIN)/python -m tests.fuzz.verify_bytes --seconds $(FUZZ_SECONDS)

mutate: setup
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[mutate]'
	$(BIN)/python -m bench.mutate

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
