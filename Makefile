# make run / make test / make bench work on a fresh machine from a fresh clone:
# each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck layers unit bench clean system-deps

# Real parts for the tests: Debian's redis-server, chromium and node, installed when missing.
system-deps:
	@if ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null \
		|| ! command -v node >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends redis-server chromium nodejs >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Demo mode on 127.0.0.1:8765, with a fresh admin token (unless one is set) for the dashboard.
run: $(STAMP)
	@token="$${TETHER_ADMIN_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')}"; \
	echo "tether demo: http://127.0.0.1:8765/   dashboard: http://127.0.0.1:8765/dashboard#token=$$token"; \
	TETHER_DEMO=1 TETHER_ADMIN_TOKEN="$$token" exec $(BIN)/tether serve

test: lint typecheck layers unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) system-deps
	$(BIN)/pytest -W error

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
