# Event Booking Platform — developer entry points.
#   make install   create .venv, install pinned dependencies and the docs assets
#   make run       start the whole platform (every service, relay, sweeper, the gateway);
#                  without RabbitMQ/PostgreSQL: the embedded all-in-one mode (make run-embedded)
#   make lint      ruff (lint + format check) and mypy on contracts/ and kit/
#   make test      the test suite (unit + real RabbitMQ/PostgreSQL); CI runs make lint, then this

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ASSETS := .var/assets
ASYNCAPI_REACT := @asyncapi/react-component@3.1.5
SWAGGER_UI := swagger-ui-dist@5.35.0
ASYNCAPI_PARSER := @asyncapi/parser@3.6.6

.PHONY: install run run-embedded lint format test test-all asyncapi asyncapi-check sdk deploy-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(ASSETS)/.installed:
	mkdir -p $(ASSETS)
	cd $(ASSETS) && npm install --silent --no-save --no-package-lock --no-audit --no-fund \
		$(ASYNCAPI_REACT) $(SWAGGER_UI) $(ASYNCAPI_PARSER)
	touch $@

install: $(VENV)/.installed $(ASSETS)/.installed

run: install
	$(BIN)/python -m deploy.local.run

run-embedded: install
	EMBEDDED=1 $(BIN)/python -m deploy.local.run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install
	$(BIN)/pytest -q -m "not slow"

test-all: install
	$(BIN)/pytest -q

# Fault injection and abuse (issue 9), slow runs included; prints the Jepsen counts of each run.
.PHONY: test-reliability
test-reliability: install
	$(BIN)/pytest -q -s tests/reliability tests/abuse

asyncapi: install
	$(BIN)/python -m tools.asyncapi_docs write

asyncapi-check: install
	$(BIN)/python -m tools.asyncapi_docs check
	node asyncapi/validate.mjs

# The gateway's merged OpenAPI document (built in-process) and a typed Python client made from it
# by openapi-python-client, in .var/sdk (git-ignored); fails on any generator warning.
sdk: install
	$(BIN)/python -m tools.openapi_doc sdk .var/sdk

deploy-check: install
	bash deploy/validate.sh

clean:
	rm -rf $(VENV) .var .pytest_cache
