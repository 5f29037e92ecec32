# make run / make test / make bench work on a fresh machine from a fresh clone:
# each installs exactly what uv.lock pins into .venv first (and nothing else).
PYTHON     ?= python3
UV_VERSION := 0.13.9
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed
LATEST     := .venv-latest
# uv uses the machine's Python and never downloads one of its own.
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint typecheck layers unit bench fuzz soak lock test-latest clean system-deps

# Real parts for the tests, from Debian, each installed only when missing: redis-server,
# chromium, node with npm (tether.js's tests and its npm package), and postgresql (the
# PostgreSQL archive's tests; its binaries live in /usr/lib/postgresql/*/bin, off PATH).
SYSTEM_DEPS := redis-server:redis-server chromium:chromium node:nodejs npm:npm
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
		command -v "$${dep%%:*}" >/dev/null || missing="$$missing $${dep#*:}"; \
	done; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# uv itself, pinned, in a venv of its own so that `uv sync` can keep .venv exact.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# Exactly the lock: --frozen refuses to re-resolve, and sync removes anything not in it.
$(STAMP): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(PYTHON)
	touch $(STAMP)

# Demo mode on 127.0.0.1:8765, with a fresh admin token (unless one is set) for the dashboard.
run: $(STAMP)
	@token="$${TETHER_ADMIN_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')}"; \
	echo "tether demo: http://127.0.0.1:8765/   dashboard: http://127.0.0.1:8765/dashboard#token=$$token"; \
	TETHER_DEMO=1 TETHER_ADMIN_TOKEN="$$token" exec $(BIN)/tether serve

test: lint typecheck layers unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) system-deps
	$(BIN)/pytest -W error

bench: $(STAMP)
	$(BIN)/python -m bench

# Hostile input against a real server on loopback: 1 M WebSocket frames and 100 k REST
# requests (FUZZ_FRAMES, FUZZ_REQUESTS, FUZZ_SEED), a well-behaved session throughout.
# Bounded; exits non-zero on a missed target; bench/results/fuzz.json.
fuzz: $(STAMP)
	$(BIN)/python -m bench.fuzz

# Churn at 50 sessions/s for 30 min (SOAK_SECONDS, SOAK_RATE, SOAK_WARMUP): RSS growth,
# leaked fds and tasks, every end accounted for; bench/results/soak.json.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Re-resolve every dependency to the newest releases pyproject.toml allows, into uv.lock.
lock: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

# The whole suite on the newest releases, in a venv of its own, without touching uv.lock:
# drift in the registry shows up here before a `make lock` lets it into main. Not in CI.
test-latest: | $(UV)
	rm -rf $(LATEST)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST)
	$(UV) pip install --quiet --python $(LATEST)/bin/python --upgrade -e . --group dev
	touch $(LATEST)/.installed
	$(MAKE) VENV=$(LATEST) test

clean:
	rm -rf $(VENV) $(LATEST) $(TOOLS) .mypy_cache .pytest_cache .ruff_cache
