# CSO Dashboard developer commands (GNU make). `make help` lists them.
#
# With no DATABASE_URL / REDIS_URL in the environment everything runs on the embedded
# default (SQLite, tasks in process). Export them to use Postgres, Redis and real workers.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
# Written after a successful install; older than a requirements file means "install again".
INSTALL_STAMP := $(VENV)/.installed-requirements
MANAGE := DEBUG=$${DEBUG:-1} $(VENV_PYTHON) manage.py
HOST_PORT ?= 127.0.0.1:8000
PYTEST_ARGS ?=

.PHONY: help install run test lint typecheck format migrate seed worker beat clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(VENV_PYTHON):
	@test -n "$(PYTHON)" || { echo "Python 3.11 not found (looked for python3.11, python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALL_STAMP): requirements.txt requirements-dev.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(INSTALL_STAMP) ## create .venv and install requirements-dev.txt (only when changed)

run: install ## migrate, seed the demo on first run, serve http://127.0.0.1:8000
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo --if-empty
	$(MANAGE) runserver $(HOST_PORT)

test: install ## run the test suite (extra pytest options: PYTEST_ARGS="-k quota -x")
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy with django-stubs on services, selectors and calc modules
	DEBUG=1 $(VENV)/bin/mypy

format: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: install ## apply database migrations
	$(MANAGE) migrate --noinput

seed: install ## load the demo data set if the database is empty (prints the logins)
	$(MANAGE) seed_demo --if-empty

worker: install ## run a Celery worker (needs REDIS_URL; without it tasks run in process)
	DEBUG=$${DEBUG:-1} $(VENV)/bin/celery -A cso_dashboard worker --loglevel=INFO

beat: install ## run the Celery beat scheduler (needs REDIS_URL)
	DEBUG=$${DEBUG:-1} $(VENV)/bin/celery -A cso_dashboard beat --loglevel=INFO \
		--schedule $(VENV)/celerybeat-schedule

clean: ## remove .venv, caches, collected static files and test output (keeps db.sqlite3)
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles test-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
