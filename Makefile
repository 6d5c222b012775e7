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

.PHONY: help venv tools generate render check doctor status pull up down ps logs reload rotate clean smoke \
	smoke-notify test test-unit test-config test-contract test-live test-multihost test-instrumentation bench \
	bench-instrumentation fullstack fuzz mutate mutate-config mutate-python save load backup restore upgrade agent

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.venv/.installed: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	touch $@

venv: .venv/.installed ## create .venv with the pinned Python packages

# The reference instrumentation has its own environment: the app-side packages
# (FastAPI, Celery, OpenTelemetry, ...) that render.py and the tests of the stack do not need.
instrumentation/.venv/.installed: instrumentation/requirements-test.txt instrumentation/pyproject.toml
	python3 -m venv instrumentation/.venv
	instrumentation/.venv/bin/pip install --quiet --disable-pip-version-check --require-hashes -r instrumentation/requirements-test.txt
	touch $@

tools: venv ## fetch promtool and amtool (the versions CI proves) into .tools/bin (Debian, root)
	scripts/fetch-tools.sh

generate: venv ## rewrite the files made from the bundle's own facts (schema JSON, alert table, stand-ins overlay)
	$(PYTHON) -m bundle.generate

render: generate ## render values.yaml (+ site.yaml, VALUES) into config/ and validate; create .env on first use
	$(PYTHON) render.py $(VALUES_ARGS)

check: venv ## fail if a generated file or config/ is stale, validate it, and name stale running services
	$(PYTHON) -m bundle.generate --check
	$(PYTHON) render.py --check --require-validators $(VALUES_ARGS)
	$(PYTHON) -m bundle.drift status --here --prefix "make check"

status: venv ## name every running service that lacks a change of .env or config/, and why
	$(PYTHON) -m bundle.drift status

doctor: venv ## check this host and engine for the stack: one line per finding, exit 1 on a blocker (DOCTOR_ACCEPT="name" accepts one)
	$(PYTHON) -m bundle.doctor

pull: venv ## pull the missing images of the enabled layers; say per image why one cannot be pulled
	$(PYTHON) -m bundle.images $(VALUES_ARGS) pull

up: venv ## make doctor (its warnings and blockers), render + validate, pull, then start and wait until every service is healthy
	$(PYTHON) -m bundle.doctor --quiet
	$(PYTHON) render.py --require-validators $(VALUES_ARGS)
	scripts/up.sh

save: venv ## every image of the enabled layers into one archive: make save FILE=images.tar
	@[ -n "$(FILE)" ] || { echo "make save FILE=path/of/the/archive.tar" >&2; exit 2; }
	$(PYTHON) -m bundle.images $(VALUES_ARGS) save "$(FILE)"

load: venv ## load the images of an archive made by make save, checked: make load FILE=images.tar
	@[ -n "$(FILE)" ] || { echo "make load FILE=path/of/the/archive.tar" >&2; exit 2; }
	$(PYTHON) -m bundle.images $(VALUES_ARGS) load "$(FILE)"

backup: venv ## every volume of the enabled layers, consistently, into backups/<project>-backup-<time>.tar
	$(PYTHON) -m bundle.backup backup $(if $(DIR),--dir "$(DIR)")

restore: venv ## put a backup back onto the stopped stack: make restore FILE=backups/....tar
	@[ -n "$(FILE)" ] || { echo "make restore FILE=backups/<project>-backup-<time>.tar" >&2; exit 2; }
	$(PYTHON) -m bundle.backup restore "$(FILE)"

upgrade: venv ## pull, back up, recreate what changed, wait for health; roll back if it is not reached
	$(PYTHON) -m bundle.upgrade $(VALUES_ARGS) $(if $(DIR),--backup-dir "$(DIR)")

down: ## stop the stack (volumes, and so all data, are kept)
	$(COMPOSE) down --remove-orphans

ps: ## show the stack's containers and their health
	$(COMPOSE) ps --all

logs: ## follow the logs of every service (make logs S=prometheus for one)
	$(COMPOSE) logs --follow --tail 100 $(S)

reload: venv ## render + validate, then make Prometheus and Alertmanager load it (no restart)
	$(PYTHON) render.py --require-validators $(VALUES_ARGS)
	scripts/reload.sh

# VALUE reaches bundle/rotate.py through the environment, not on its command line.
rotate: export ROTATE_VALUE := $(VALUE)
rotate: venv ## change a secret in .env and in every service using it: make rotate SECRET=name [VALUE=...]
	$(PYTHON) -m bundle.rotate $(VALUES_ARGS) start '$(SECRET)'
	$(PYTHON) render.py --require-validators $(VALUES_ARGS)
	scripts/up.sh
	$(PYTHON) -m bundle.rotate $(VALUES_ARGS) finish '$(SECRET)'

agent: venv ## write the agent bundle of a remote host of values `hosts` to private/agents/ (make agent HOST=web-1)
	@[ -n "$(HOST)" ] || { echo "make agent: say which host, e.g. make agent HOST=web-1" >&2; exit 2; }
	$(PYTHON) -m bundle.agent $(VALUES_ARGS) $(HOST)

clean: ## stop the stack and DELETE its volumes (all stored metrics, logs, traces)
	$(COMPOSE) down --remove-orphans --volumes

# Point these at production: read-only (smoke-notify sends one alert to a test receiver).
smoke: venv ## check a running stack, read-only, < 60 s; remote with SMOKE_*_URL; SMOKE_ARGS="--junit F --json"
	@$(PYTHON) -m bundle.smoke $(VALUES_ARGS) $(SMOKE_ARGS)

smoke-notify: venv ## one test alert to smoke.notify_receiver only: wait until delivered, then resolve it
	@$(PYTHON) -m bundle.smoke.notify $(VALUES_ARGS) $(SMOKE_ARGS)

test-unit: venv ## render unit tests (no external tools)
	$(PYTHON) -m pytest -m unit

test-config: venv ## the real validators on the rendered config (needs make tools or Docker)
	$(PYTHON) -m pytest -m config

test-contract: venv ## the defaults users rely on (tests/contract/guide.py) on the config values.yaml renders
	$(PYTHON) -m pytest -m contract

test-live: venv ## tests of the bundle against a test stack (restarts, reloads, faults: never production)
	$(PYTHON) -m pytest -m live

test-multihost: venv ## the multi-host tests (after make up and tests/multihost/scenario.py up, same VALUES)
	$(PYTHON) -m pytest -m multihost tests/multihost

test-instrumentation: instrumentation/.venv/.installed ## the reference instrumentation: unit + integration tests
	cd instrumentation && .venv/bin/python -m pytest

fuzz: venv ## the property-based test of render.py with many random examples (FUZZ_EXAMPLES=2000)
	HYPOTHESIS_PROFILE=fuzz $(PYTHON) -m pytest -m config tests/config/test_property.py --hypothesis-show-statistics

test: venv test-instrumentation ## every test: instrumentation, unit, config, and live (only against a test stack)
	$(PYTHON) -m pytest

fullstack: venv ## on a Docker host that can pull images: every layer + the demo platform, then every test
	$(PYTHON) render.py --require-validators --values tests/values/live.yaml
	tests/platform/env.sh
	PLATFORM_BASE=debian:forky tests/platform/build.sh
	scripts/clean-slate.sh
	tests/platform/up.sh
	$(MAKE) up VALUES=tests/values/live.yaml
	tests/platform/up.sh
	FULLSTACK=1 LIVE_REQUIRE_PLATFORM=1 $(MAKE) test VALUES=tests/values/live.yaml

bench-instrumentation: instrumentation/.venv/.installed ## per-request overhead: this package, prometheus-fastapi-instrumentator, starlette-exporter
	cd instrumentation && .venv/bin/python bench.py

bench: venv bench-instrumentation ## print speed and memory figures (render, check, stack start, alert latency)
	$(PYTHON) -m tests.bench

# mutmut on top of the instrumentation's test packages (make mutate-python).
instrumentation/.venv/.mutate-installed: instrumentation/.venv/.installed instrumentation/requirements-mutate.txt
	instrumentation/.venv/bin/pip install --quiet --disable-pip-version-check --require-hashes -r instrumentation/requirements-mutate.txt
	touch $@

mutate: mutate-config mutate-python ## both halves below, each printing its survivors and score (not in CI)

mutate-config: venv ## apply tests/mutations.yaml one by one, run the fast tests, print the survivors (MUTANTS="id ...")
	$(PYTHON) tests/mutate.py $(MUTANTS)

# One mutant at a time: with two, mutmut 3.8.1 reported as survivors here mutants that the
# same tests kill when they run alone (checked with `mutmut run NAME`).
mutate-python: venv instrumentation/.venv/.mutate-installed ## mutmut on the instrumentation's metric modules (pyproject.toml [tool.mutmut]); prints survivors and score
	cd instrumentation && .venv/bin/mutmut run --max-children 1 && .venv/bin/mutmut export-cicd-stats
	$(PYTHON) tests/mutmut_report.py
