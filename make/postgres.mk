# A real PostgreSQL server on loopback (issue 10): Debian's postgresql-15, initialised under var/postgres with a user
# and a database each for Airflow and MLflow, started and stopped by PID (scripts/postgres_server.py).
# Docs: docs/postgresql.md.

POSTGRES_STATE ?= $(CURDIR)/var/postgres
POSTGRES_PORT ?= 5432
POSTGRES_PY := $(RUN) python scripts/postgres_server.py

.PHONY: postgres-bin postgres-up postgres-down

# tests/storage/test_postgres_server.py starts its own server from these programs; `make test` installs them first.
TEST_PREREQS += postgres-bin

postgres-bin: setup ## install Debian's PostgreSQL server (postgresql-15) unless one is installed (root)
	@$(POSTGRES_PY) install

postgres-up: postgres-bin ## start PostgreSQL on 127.0.0.1:5432 (POSTGRES_PORT; state in var/postgres) with the airflow and mlflow databases
	@$(POSTGRES_PY) start --state $(POSTGRES_STATE) --port $(POSTGRES_PORT)

postgres-down: ## stop PostgreSQL (its data stays in var/postgres)
	@$(POSTGRES_PY) stop --state $(POSTGRES_STATE)
