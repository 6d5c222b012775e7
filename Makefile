# Observability bundle: `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON := .venv/bin/python
# Your own settings (see site.example.yaml) go over values.yaml when site.yaml exists;
# extra values files go over both, later ones win: make up VALUES="tests/values/x.yaml"
# Use the same VALUES for render, check, up, reload and test.
SITE := $(wildcard site.yaml)
VALUES ?=
VALUES_ARGS := $(foreach f,$(SITE) $(VALUES),--values $(f))
export BUNDLE_VALUES := $(SITE) $(VALUES)
COMPOSE := scripts/compose.sh

.PHONY: help venv tools generate render check up down ps logs reload clean test test-unit test-config test-contract \
	test-live test-multihost test-instrumentation bench bench-instrumentation fullstack fuzz mutate agent

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.venv/.installed: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: .venv/.installed ## create .venv with the pinned Python packages

# The reference instrumentation has its own environment: the app-side packages
# (FastAPI, Celery, OpenTelemetry, ...) that render.py and the tests of the stack do not need.
instrumentation/.venv/.installed: instrumentation/requirements-test.txt instrumentation/pyproject.toml
	python3 -m venv instrumentation/.venv
	instrumentation/.venv/bin/pip install --quiet --disable-pip-version-check -r instrumentation/requirements-test.txt
	touch $@

tools: venv ## fetch promtool and amtool (the versions CI proves) into .tools/bin (Debian, root)
	scripts/fetch-tools.sh

generate: venv ## rewrite the files made from the bundle's own facts (schema JSON, alert table, stand-ins overlay)
	$(PYTHON) -m bundle.generate

render: generate ## render values.yaml (+ site.yaml, VALUES) into config/ and validate; create .env on first use
	$(PYTHON) render.py $(VALUES_ARGS)

check: venv ## fail if a generated file or config/ is stale, then validate it with promtool and amtool
	$(PYTHON) -m bundle.generate --check
	$(PYTHON) render.py --check --require-validators $(VALUES_ARGS)

up: venv ## render + validate, then start the stack and wait until every service is healthy
	$(PYTHON) render.py --require-validators $(VALUES_ARGS)
	scripts/up.sh

down: ## stop the stack (volumes, and so all data, are kept)
	$(COMPOSE) down --remove-orphans

ps: ## show the stack's containers and their health
	$(COMPOSE) ps --all

logs: ## follow the logs of every service (make logs S=prometheus for one)
	$(COMPOSE) logs --follow --tail 100 $(S)

reload: venv ## render + validate, then make Prometheus and Alertmanager load it (no restart)
	$(PYTHON) render.py --require-validators $(VALUES_ARGS)
	scripts/reload.sh

agent: venv ## write the agent bundle of a remote host of values `hosts` to private/agents/ (make agent HOST=web-1)
	@[ -n "$(HOST)" ] || { echo "make agent: say which host, e.g. make agent HOST=web-1" >&2; exit 2; }
	$(PYTHON) -m bundle.agent $(VALUES_ARGS) $(HOST)

clean: ## stop the stack and DELETE its volumes (all stored metrics, logs, traces)
	$(COMPOSE) down --remove-orphans --volumes

test-unit: venv ## render unit tests (no external tools)
	$(PYTHON) -m pytest -m unit

test-config: venv ## the real validators on the rendered config (needs make tools or Docker)
	$(PYTHON) -m pytest -m config

test-contract: venv ## the defaults users rely on (tests/contract/guide.py) on the config values.yaml renders
	$(PYTHON) -m pytest -m contract

test-live: venv ## smoke tests against the running stack (after make up)
	$(PYTHON) -m pytest -m live

test-multihost: venv ## the multi-host tests (after make up and tests/multihost/scenario.py up, same VALUES)
	$(PYTHON) -m pytest -m multihost tests/multihost

test-instrumentation: instrumentation/.venv/.installed ## the reference instrumentation: unit + integration tests
	cd instrumentation && .venv/bin/python -m pytest

fuzz: venv ## the property-based test of render.py with many random examples (FUZZ_EXAMPLES=2000)
	HYPOTHESIS_PROFILE=fuzz $(PYTHON) -m pytest -m config tests/config/test_property.py --hypothesis-show-statistics

test: venv test-instrumentation ## every test: instrumentation, unit, config, and live against the running stack
	$(PYTHON) -m pytest

fullstack: venv ## on a Docker host that can pull images: every layer + the demo platform, then every test
	$(PYTHON) render.py --require-validators --values tests/values/live.yaml
	tests/platform/env.sh
	PLATFORM_BASE=debian:forky tests/platform/build.sh
	$(MAKE) up VALUES=tests/values/live.yaml
	tests/platform/up.sh
	FULLSTACK=1 LIVE_REQUIRE_PLATFORM=1 $(MAKE) test VALUES=tests/values/live.yaml

bench-instrumentation: instrumentation/.venv/.installed ## per-request overhead: this package, prometheus-fastapi-instrumentator, starlette-exporter
	cd instrumentation && .venv/bin/python bench.py

bench: venv bench-instrumentation ## print speed and memory figures (render, check, stack start, alert latency)
	$(PYTHON) -m tests.bench

mutate: venv ## apply tests/mutations.yaml one by one, run the fast tests, print the survivors (not in CI)
	$(PYTHON) tests/mutate.py $(MUTANTS)
