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

# The real Loki comes from scripts/find-loki.sh; once one is found, its tests are required (fail, never skip).
test: deps sysdeps
	@loki="$$(bash scripts/find-loki.sh)"; \
	if [ -n "$$loki" ]; then export LOKI_BIN="$$loki" TRADEWATCH_REQUIRE_LOKI=1; \
	else echo "no Loki binary found (LOKI_BIN, shared/bin/unpack-loki, PATH): the Loki tests will say so" >&2; fi; \
	$(BIN)/python -m pytest -q

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
