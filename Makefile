# tradewatch: make run | make test | make bench | make chaos | make lint | make stack | make stack-down
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench chaos lint deps sysdeps clean

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
	SIM_SPEED=$${SIM_SPEED:-60} SIM_START=$${SIM_START-now} TRADEWATCH_OWN_TERMINAL=1 $(BIN)/python -m bot run

# The real Loki (not on PyPI or in Debian) comes from scripts/find-loki.sh: a dependency of the
# tests like PostgreSQL, so without one make test stops here with one line, never skips its tests.
test: deps sysdeps
	@loki="$$(bash scripts/find-loki.sh)"; \
	if [ -z "$$loki" ]; then echo "make test needs a Grafana Loki 3.7.4 binary: set LOKI_BIN=/path/to/loki, put loki on PATH, or keep the workspace's shared/bin/unpack-loki beside the checkout" >&2; exit 2; fi; \
	LOKI_BIN="$$loki" $(BIN)/python -m pytest -q

bench: deps sysdeps
	$(BIN)/python -m bench

# The long chaos run alone (also part of `make bench`): bridge killed 20 times, Postgres restarted 5 times.
chaos: deps sysdeps
	$(BIN)/python -m bench chaos

lint: deps
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache

# The monitoring stack without Docker (Postgres, Prometheus, Alertmanager, sim bridge, bot, exporter
# on loopback; state, logs and pid files under .stack/). `make stack-down` stops exactly that.
.PHONY: stack stack-down
stack: deps sysdeps
	$(BIN)/python -m stack up

stack-down:
	$(BIN)/python -m stack down
