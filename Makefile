# Two commands a new user needs: `make run` and `make test`. Both bootstrap .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast test-latest bench lint lock check-platforms clean

# The venv holds exactly the versions requirements-dev.lock pins (the runtime ones are
# requirements.lock's, which the container ships), checked against their hashes; then this
# project itself, editable, with nothing resolved at install time.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock requirements-clients.lock
	@echo "make: installing the locked versions into $(VENV) (the first time takes a minute or two)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	@$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-clients.lock
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .  # quiet: setuptools warns of every editable install
	@touch $(STAMP)
	@echo "make: $(VENV) is ready"

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

# The whole suite, two pytest workers per core (each with its own redis-server): much of a
# test's time is spent waiting for the real processes it started, and another test's CPU fills
# that wait. PYTEST_WORKERS=0 runs it in this process.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(2 * len(os.sched_getaffinity(0)))')
test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The unit layer: no real Redis, no process of ours (see the markers in pyproject.toml).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m unit -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.console  # console pages and /cc.xml at 1k and 100k stored events
	$(BIN)/python -m bench.clicks  # Slack Approve click -> CircleCI approve call, 5 runs of 10 clicks

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy service workers config && $(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

# Two locks, both pinned with hashes by pip-compile: requirements.lock holds the runtime
# dependencies (pyproject's, no extras), which the container installs with --require-hashes;
# requirements-dev.lock holds those same pins (it is compiled with requirements.lock as a
# constraint) plus the dev and embedded extras, which `make` installs. Run after changing a
# dependency; `make lock LOCK_ARGS=--upgrade` takes the newest versions the ranges admit (run
# `make test-latest` first). It resolves against the package index alone (PIP_CONFIG_FILE=/dev/null:
# no machine-wide find-links or extra index), for the Python that runs it: keep it the
# Dockerfile's (tests/deploy/test_lock.py checks all of this).
LOCK_ARGS ?=
PIP_COMPILE := env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= CUSTOM_COMPILE_COMMAND="make lock" \
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock: $(STAMP)
	$(PIP_COMPILE) $(LOCK_ARGS) --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) $(LOCK_ARGS) --extra dev --extra embedded --constraint requirements.lock \
	  --output-file requirements-dev.lock pyproject.toml
	{ echo "# Written by 'make lock' from requirements.lock: the same pins without hashes, then this project,"; \
	  echo "# for platforms that install requirements.txt (Heroku's Python buildpack). The container uses the lock."; \
	  sed -e '/--hash=/d' -e 's/ \\$$//' requirements.lock; echo "."; } > requirements.txt
	$(MAKE) --no-print-directory check-platforms

# The runtime lock must install from wheels (or pure Python) on every platform the container is
# built for: linux/amd64 and linux/arm64 (Apple Silicon, Graviton). pip downloads, for each of them,
# exactly the pinned files, checked against the lock's hashes, and refuses any sdist.
PLATFORMS := x86_64 aarch64
check-platforms: $(STAMP)
	@for arch in $(PLATFORMS); do 	  dir=$$(mktemp -d) && 	  env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(BIN)/python -m pip download --quiet --no-deps \
	    --only-binary=:all: --require-hashes --python-version 3.11 --implementation cp --abi cp311 \
	    --platform manylinux2014_$$arch --platform manylinux_2_28_$$arch -r requirements.lock -d $$dir \
	  && echo "make: requirements.lock installs on linux/$$arch from $$(ls $$dir | wc -l) wheels" \
	  && rm -rf $$dir || { rm -rf $$dir; echo "make: requirements.lock does not install on linux/$$arch from wheels: see above"; exit 1; }; \
	done

# The suite against the newest releases pyproject's ranges admit, in a venv of its own, so that
# a release that breaks us is found here before `make lock LOCK_ARGS=--upgrade` ships it.
LATEST := .venv-latest
test-latest:
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	@echo "make: installing the newest versions pyproject.toml admits into $(LATEST)"
	@$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	@PYTHONWARNINGS=ignore $(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev,embedded]'
	@$(LATEST)/bin/python -m pip list --format=freeze | grep -i -E '^(starlette|uvicorn|redis|rq|httpx|structlog)=='
	$(LATEST)/bin/mypy service workers config
	$(LATEST)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache
