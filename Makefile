# Two commands a new user needs: `make run` and `make test`. Both bootstrap .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench lint lock clean

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
	$(BIN)/hadolint Dockerfile

# requirements.lock: the runtime dependencies (pyproject's, no dev extras), pinned with their
# hashes, which the container installs with --require-hashes. Run after changing a dependency;
# `make lock LOCK_ARGS=--upgrade` takes the newest versions. It resolves against the package
# index alone (PIP_CONFIG_FILE=/dev/null: no machine-wide find-links or extra index), for the
# Python that runs it: keep it the Dockerfile's (tests/deploy/test_lock.py checks both).
LOCK_ARGS ?=
lock: $(STAMP)
	env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= CUSTOM_COMPILE_COMMAND="make lock" \
	  $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	  --no-emit-find-links --output-file requirements.lock $(LOCK_ARGS) pyproject.toml
	{ echo "# Written by 'make lock' from requirements.lock: the same pins without hashes, then this project,"; \
	  echo "# for platforms that install requirements.txt (Heroku's Python buildpack). The container uses the lock."; \
	  sed -e '/--hash=/d' -e 's/ \\$$//' requirements.lock; echo "."; } > requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache
