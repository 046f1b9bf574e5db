# Two commands a new user needs: `make run` and `make test`. Both bootstrap .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make run` is for a laptop: it listens on 127.0.0.1 and, unless you set your own, accepts
# webhooks signed with the development secret below. Production uses the Procfile.
run: export HOST ?= 127.0.0.1
DEV_SECRET := local-development-secret
run: export CIRCLECI_WEBHOOK_SECRETS ?= $(DEV_SECRET)
run: export LOG_FORMAT ?= console
run: $(STAMP)
	@if [ "$$CIRCLECI_WEBHOOK_SECRETS" = "$(DEV_SECRET)" ]; then \
	  echo "make run: webhooks signed with the development secret '$(DEV_SECRET)' are accepted (set CIRCLECI_WEBHOOK_SECRETS to change it)"; \
	else echo "make run: webhooks signed with your CIRCLECI_WEBHOOK_SECRETS are accepted"; fi
	$(BIN)/circleci-events run

# The whole suite, one pytest worker per core (each with its own redis-server): most of its
# time is spent waiting for real processes. PYTEST_WORKERS=0 runs it in this process.
PYTEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The unit layer: no real Redis, no process of ours (see the markers in pyproject.toml).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m unit -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy service workers config && $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
