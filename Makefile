# Tributary. `make run` sets everything up and runs the pipeline; `make test` runs every test.
# Every install step lives here or in scripts/; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export TRIBUTARY_HOME := $(CURDIR)
export TRIBUTARY_PROFILE ?= local
export AIRFLOW_HOME := $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/var/airflow/airflow.db
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export PYTHONUNBUFFERED := 1
export SPARK_CONF_DIR := $(CURDIR)/conf/spark
# Byte-compiled torch/mlflow are reused across the many Python processes Spark and Airflow start.
unexport PYTHONDONTWRITEBYTECODE

UV := $(CURDIR)/.venv-uv/bin/uv
RUN := $(UV) run --frozen
STAMP := var/.stamps
ROWS ?= 20000
SCALE_ROWS ?= 1000000

# Component makefiles (terraform, k8s) add targets and append their tool installs to TEST_PREREQS; what only the
# background half of `make test` needs (the images) to TEST_BACKGROUND_PREREQS, which that half builds itself.
TEST_PREREQS :=
TEST_BACKGROUND_PREREQS :=
-include make/*.mk

.PHONY: help setup jars run up down test bench scale clean airflow-db requirements
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV): scripts/bootstrap.sh
	@scripts/bootstrap.sh

$(STAMP)/venv: uv.lock pyproject.toml | $(UV)
	@mkdir -p $(STAMP)
	$(UV) sync --frozen
	@touch $@

jars: ## fetch the pinned JVM jars (conf/jars/pom.xml) into var/jars
	@scripts/fetch_jars.sh var/jars

setup: $(UV) $(STAMP)/venv jars ## install Python deps (uv.lock) and jars; idempotent

# Each image installs its part of uv.lock from this export (Dockerfile), so a lock change rebuilds only the images
# whose packages it changed; tests/k8s/test_image.py fails while an export is stale.
IMAGE_GROUPS := spark:jobs airflow:airflow
requirements: | $(UV) ## after `uv lock`: each image's group of uv.lock to docker/<image>/requirements.txt
	@for pair in $(IMAGE_GROUPS); do \
		$(UV) export --quiet --frozen --no-default-groups --group $${pair#*:} --no-emit-project \
			--output-file docker/$${pair%%:*}/requirements.txt >/dev/null || exit 1; done

airflow-db: setup ## create/upgrade the local Airflow metadata DB (SQLite)
	@mkdir -p $(AIRFLOW_HOME)
	@$(RUN) airflow db migrate >/dev/null

run: setup airflow-db ## set up, land data, run fraud_pipeline via Airflow, stream a 2nd batch, print the summary
	$(RUN) python scripts/run_local.py --rows $(ROWS)

DB ?= postgres
UP_PREREQS := $(if $(filter sqlite,$(DB)),airflow-db,postgres-bin) metrics-tools
up: setup $(UP_PREREQS) ## Airflow + MLflow on PostgreSQL, a Spark cluster (DB=sqlite: UIs on make run's state)
	$(RUN) python scripts/up.py --db $(DB) --rows $(ROWS) $(UP_ARGS)

down: ## stop what an interrupted `make up` left running (by the PIDs it recorded under var/)
	$(RUN) python scripts/up.py --down

test: setup $(TEST_PREREQS) ## run every test (tests/cluster, then the Kafka tests, beside the rest; see scripts/test.sh)
	@TEST_BACKGROUND_PREREQS="$(strip $(TEST_BACKGROUND_PREREQS))" scripts/test.sh $(PYTEST_ARGS)

bench: setup ## run the benchmarks (benchmarks/README.md) into benchmarks/results; QUICK=1 for CI-sized data
	$(RUN) python -m benchmarks.run $(if $(QUICK),--quick --out var/bench)

scale: setup ## make run at SCALE_ROWS (1,000,000): wall time, peak memory, largest shuffle -> benchmarks/results/scale
	$(RUN) python -m benchmarks.scale --rows $(SCALE_ROWS)

clean: ## remove local state (data, Airflow and MLflow stores); keeps environments and jars
	rm -rf var/lake var/landing var/checkpoints var/mlflow var/airflow var/run-summary.json

