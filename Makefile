# Developer commands for pivotwatch. `make` alone lists them.
#
# Variables:
#   PYTHON       interpreter that creates .venv (default python3; must be 3.11 or later)
#   PYTEST_ARGS  extra pytest arguments for test and test-unit, e.g. PYTEST_ARGS="-x -k graph"

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= python3
PYTEST_ARGS ?=
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.install-stamp

.PHONY: help install demo test test-unit lint typecheck bench

help: ## List the targets
	@echo "Targets:"
	awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

install: $(INSTALL_STAMP) ## Create .venv and install pivotwatch with its dev tools (skipped when up to date)

# The stamp is newer than pyproject.toml only after an install from it succeeded.
$(INSTALL_STAMP): pyproject.toml
	@if [[ ! -x $(VENV_PYTHON) ]]; then
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
			|| { echo "error: $(PYTHON) is $$($(PYTHON) --version 2>&1); pivotwatch needs Python 3.11 or later (set PYTHON=...)" >&2; exit 1; }
		echo "creating $(VENV) with $$($(PYTHON) --version)"
		$(PYTHON) -m venv $(VENV)
	fi
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip
	$(VENV_PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

demo: install ## Run the demo against an embedded broker
	$(VENV)/bin/pivotwatch demo

# test: Apache Kafka and the Pub/Sub server run only for the length of the pytest run.
# The Pub/Sub server is optional: when it cannot be built or started, PUBSUB_EMULATOR_HOST
# stays unset and the tests that need it skip.
test: install ## Run all tests against Apache Kafka (scripts/kafka) and the Pub/Sub server
	@free_port() { $(VENV_PYTHON) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
	export KAFKA_PORT="$$(free_port)" KAFKA_CONTROLLER_PORT="$$(free_port)" KAFKA_PYTHON=$(VENV_PYTHON)
	pstest_port="$$(free_port)"
	pstest_started=no
	stop_services() {
		scripts/kafka/stop.sh || true
		if [[ $$pstest_started == yes ]]; then scripts/pstest/stop.sh "$$pstest_port" || true; fi
	}
	trap stop_services EXIT
	trap 'exit 130' INT TERM

	echo "starting Apache Kafka on 127.0.0.1:$$KAFKA_PORT"
	scripts/kafka/start.sh >/dev/null
	echo "starting the Pub/Sub server on 127.0.0.1:$$pstest_port"
	if scripts/pstest/start.sh "$$pstest_port" >/dev/null; then
		pstest_started=yes
		export PUBSUB_EMULATOR_HOST="127.0.0.1:$$pstest_port"
	else
		echo "warning: the Pub/Sub server failed to start (see above); tests that need PUBSUB_EMULATOR_HOST will skip" >&2
		unset PUBSUB_EMULATOR_HOST
	fi

	status=0
	PIVOTWATCH_TEST_BOOTSTRAP="127.0.0.1:$$KAFKA_PORT" $(VENV_PYTHON) -m pytest $(PYTEST_ARGS) || status=$$?
	exit $$status

test-unit: install ## Run the tests that need no broker
	$(VENV_PYTHON) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: install ## Check style with ruff (lint and format)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## Type-check the package with mypy (strict)
	$(VENV)/bin/mypy

# bench: Apache Kafka runs for the length of the benchmarks when Java and Maven are
# installed; otherwise bench_pipeline.py starts the embedded broker itself.
bench: install ## Run every benchmarks/bench_*.py (on Apache Kafka when java and mvn exist)
	@shopt -s nullglob
	scripts=(benchmarks/bench_*.py)
	if (( $${#scripts[@]} == 0 )); then
		echo "no benchmarks/bench_*.py found: nothing to run"
		exit 0
	fi
	if command -v java >/dev/null && command -v mvn >/dev/null; then
		free_port() { $(VENV_PYTHON) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
		export KAFKA_PORT="$$(free_port)" KAFKA_CONTROLLER_PORT="$$(free_port)" KAFKA_PYTHON=$(VENV_PYTHON)
		trap 'scripts/kafka/stop.sh || true' EXIT
		trap 'exit 130' INT TERM
		echo "starting Apache Kafka on 127.0.0.1:$$KAFKA_PORT"
		scripts/kafka/start.sh >/dev/null
		export PIVOTWATCH_BENCH_BOOTSTRAP="127.0.0.1:$$KAFKA_PORT"
	else
		echo "java or mvn not found: the pipeline benchmark uses the embedded broker"
	fi
	for script in "$${scripts[@]}"; do
		echo "== $$script"
		$(VENV_PYTHON) "$$script"
	done
