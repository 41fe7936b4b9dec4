# Marketing and analytics middle office: every set-up step lives here.
# `make demo` runs the main job end to end; `make test` runs every test.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON_BOOT ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PY := $(VENV)/bin/python
MO := $(VENV)/bin/mo
export MO_HOME ?= $(CURDIR)/.mo
export JAVA_TOOL_OPTIONS ?= -Duser.timezone=UTC
# A fixed key for the demo world only; production reads MO_PII_KEY from its secret store.
DEMO_PII_KEY := demo-only-key-not-for-production
CUSTOMERS ?= 100000
SEED ?= 42
DAYS ?= 1
AIRFLOW_PORT ?= 8080
export SERVING_PORT ?= 8000
# The serving venv imports the platform's package (mo) from the repository, as its tests do.
SERVING_RUN := cd serving && PYTHONPATH=$(CURDIR):$(CURDIR)/serving MO_PII_KEY=$${MO_PII_KEY:-$(DEMO_PII_KEY)} .venv/bin/python

.PHONY: help env serving-env dashboards-env dashboards dashboards-stop dashboards-lock bench-env-feast compose-cli jars browser demo serve serve-stop airflow test test-unit lint bench broker-start broker-stop clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==0.13.9

$(VENV)/.synced: requirements/platform.lock pyproject.toml | $(UV)
	test -d $(VENV) || $(UV) venv -q -p 3.11 $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync -q requirements/platform.lock
	VIRTUAL_ENV=$(VENV) $(UV) pip install -q --no-deps -e .
	touch $@

SERVING_VENV := serving/.venv

$(SERVING_VENV)/.synced: serving/requirements-dev.lock | $(UV)
	test -d $(SERVING_VENV) || $(UV) venv -q -p 3.11 $(SERVING_VENV)
	VIRTUAL_ENV=$(SERVING_VENV) $(UV) pip sync -q serving/requirements-dev.lock
	touch $@

env: $(VENV)/.synced jars ## Create the platform environment from the lock file and install the JDBC jars

serving-env: $(SERVING_VENV)/.synced ## Create the serving (FastAPI) environment from its lock file

DASHBOARDS_VENV := dashboards/.venv
DASHBOARDS_PORT ?= 8088

# Superset needs SQLAlchemy < 2, so it has its own environment (dashboards/requirements.in, locked).
$(DASHBOARDS_VENV)/.synced: dashboards/requirements.lock | $(UV)
	test -d $(DASHBOARDS_VENV) || $(UV) venv -q -p 3.11 $(DASHBOARDS_VENV)
	VIRTUAL_ENV=$(DASHBOARDS_VENV) $(UV) pip sync -q dashboards/requirements.lock
	touch $@

dashboards-env: $(DASHBOARDS_VENV)/.synced ## Create Superset's environment from its lock file

dashboards-lock: | $(UV) ## Re-resolve Superset's lock file after changing dashboards/requirements.in
	$(UV) pip compile -q dashboards/requirements.in -o dashboards/requirements.lock --python 3.11 --generate-hashes

dashboards: env dashboards-env ## Superset on http://127.0.0.1:8088 (DASHBOARDS_PORT) in the background: publishes the analytics marts, migrates its metadata DB, creates the admin (SUPERSET_ADMIN_PASSWORD; in development a random one in MO_HOME/superset-demo-credentials.json), imports dashboards/bundles; starts SQL Lab's lake endpoint (a Spark Thrift server, about 1 GB) when a lake exists, LAKE_SQL=0 skips it
	MO_PII_KEY=$${MO_PII_KEY:-$(DEMO_PII_KEY)} $(MO) dashboards up --port $(DASHBOARDS_PORT) $(if $(DASHBOARDS_USERS),--users-file $(DASHBOARDS_USERS)) $(if $(filter 0,$(LAKE_SQL)),--no-lake-sql)

dashboards-stop: ## Stop the Superset (and the lake SQL endpoint) `make dashboards` left running
	@$(MO) dashboards down

FEAST_VENV := bench/feast/.venv

# Bench only (the profile read bench's Feast feature server); `make test` never builds it.
$(FEAST_VENV)/.synced: bench/feast/requirements.lock | $(UV)
	test -d $(FEAST_VENV) || $(UV) venv -q -p 3.11 $(FEAST_VENV)
	VIRTUAL_ENV=$(FEAST_VENV) $(UV) pip sync -q bench/feast/requirements.lock
	touch $@

bench-env-feast: $(FEAST_VENV)/.synced ## Feast's feature server and the wrk load generator, for `make bench` only
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

compose-cli: | $(UV) ## Install the Docker Compose CLI (parses docker-compose.yml in tests; no engine needed)
	bash docker/install-compose-cli.sh

jars: ## Install the JDBC drivers Spark reads sources with (Debian packages)
	@if [ ! -f /usr/share/java/mariadb-java-client.jar ] || [ ! -f /usr/share/java/postgresql.jar ] || [ ! -f /usr/share/java/sqlite-jdbc.jar ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-java libpostgresql-jdbc-java libxerial-sqlite-jdbc-java >/dev/null; \
	fi
	@command -v java >/dev/null || { echo "error: Java 17 is required for Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }

browser: ## Install the Chromium the browser tests drive (Debian packages; Playwright never downloads one)
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

lock: | $(UV) ## Re-resolve the pinned lock file after changing pyproject.toml
	$(UV) pip compile -q pyproject.toml --extra dev -o requirements/platform.lock --python 3.11 --generate-hashes

demo: env serving-env dashboards-env ## Generate a demo world, run the source_sync, events_ingest and build_profiles DAGs, print a summary, start the serving API in the background and call it, run a campaign, then publish the analytics marts and start Superset (DASHBOARDS_PORT) as make dashboards does (tool logs: MO_HOME/logs)
	MO_PII_KEY=$${MO_PII_KEY:-$(DEMO_PII_KEY)} $(PY) -m mo.demo --customers $(CUSTOMERS) --seed $(SEED) --days $(DAYS) --api-port $(SERVING_PORT) --dashboards-port $(DASHBOARDS_PORT)

serve: env serving-env ## The serving API on http://127.0.0.1:8000 (SERVING_PORT; docs at /docs) over the stores under MO_HOME, with the provider sandbox, a campaign dispatcher and a channel worker beside it (logs: MO_HOME/logs), until Ctrl-C or make serve-stop; in development it creates demo accounts (credentials: MO_HOME/serving-demo-credentials.json)
	@$(SERVING_RUN) -m app.cli migrate
	@if [ "$${SERVING_ENVIRONMENT:-development}" = development ]; then $(SERVING_RUN) -m app.cli bootstrap-demo; fi
	@echo "serving API: http://127.0.0.1:$(SERVING_PORT)  interactive docs: http://127.0.0.1:$(SERVING_PORT)/docs  (Ctrl-C stops it, the sandbox and the workers)"
	@MO_PII_KEY=$${MO_PII_KEY:-$(DEMO_PII_KEY)} MO=$(CURDIR)/$(MO) SERVING_PYTHON=$(CURDIR)/$(SERVING_VENV)/bin/python bash serving/serve-dev.sh

serve-stop: env ## Stop what make serve runs (API, sandbox, dispatcher, channel worker), and the API, sandbox and Superset make demo left running
	@servefile=$(MO_HOME)/serving/serve.pid; servepid=$$(cat $$servefile 2>/dev/null); \
	if [ -n "$$servepid" ] && kill $$servepid 2>/dev/null; then \
	  for _ in $$(seq 120); do [ -f $$servefile ] && kill -0 $$servepid 2>/dev/null || break; sleep 0.5; done; \
	  echo "make serve stopped"; \
	fi; rm -f $$servefile; \
	pidfile=$(MO_HOME)/serving/api.pid; \
	if [ -f $$pidfile ] && kill $$(cat $$pidfile) 2>/dev/null; then rm -f $$pidfile; echo "serving API stopped"; \
	else rm -f $$pidfile; echo "no serving API started by make demo is running"; fi; \
	$(MO) channels sandbox stop; \
	$(MO) dashboards down

airflow: env ## Airflow UI, scheduler and workers with the project's DAGs on http://127.0.0.1:8080 until Ctrl-C (login MO_AIRFLOW_USER / MO_AIRFLOW_PASSWORD)
	MO_PII_KEY=$${MO_PII_KEY:-$(DEMO_PII_KEY)} $(MO) airflow --port $(AIRFLOW_PORT)

test: env serving-env dashboards-env compose-cli browser ## Run all tests (serving, then platform: unit, integration against the machine's services, DAG runs, the Airflow UI in Chromium)
	@# Serving first so the platform run's summary is the closing line; the exit code covers both.
	cd serving && .venv/bin/python -m pytest -p no:cacheprovider -q; serving=$$?; cd ..; \
	MO_PII_KEY=test-key $(PY) -m pytest -p no:cacheprovider --durations=25; platform=$$?; \
	test $$serving -eq 0 -a $$platform -eq 0

test-unit: env ## Run the fast unit tests only
	MO_PII_KEY=test-key $(PY) -m pytest -p no:cacheprovider tests/unit

lint: env ## ruff and mypy
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

bench: env serving-env bench-env-feast ## Benchmarks; figures go to docs/benchmarks.md
	MO_PII_KEY=bench-key $(PY) -m bench.run

broker-start: env ## Start the embedded Kafka-protocol broker
	$(MO) broker start

broker-stop: env ## Stop the embedded broker
	$(MO) broker stop

clean: ## Remove the local state (.mo) but keep the environments
	rm -rf $(MO_HOME)

# The dashboards bench (bench/bench_dashboards.py) drives Superset in the machine's Chromium.
bench: dashboards-env browser
