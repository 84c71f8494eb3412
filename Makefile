# tradewatch: make run | make test | make bench | make lint
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint deps sysdeps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP)

# Debian packages the test suite needs (a real PostgreSQL, Prometheus, Alertmanager).
# Installed only when missing and only when we are root; otherwise we say what is missing.
sysdeps:
	@bash scripts/sysdeps.sh

run: deps
	SIM_SPEED=$${SIM_SPEED:-60} $(BIN)/python -m bot run

test: deps sysdeps
	$(BIN)/python -m pytest -q

bench: deps sysdeps
	$(BIN)/python -m bench

lint: deps
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache
