# A pseudo-distributed Hadoop YARN on loopback (issue 10): a ResourceManager and a NodeManager from conf/yarn/pom.xml's
# jars, with Spark's external shuffle service as the NodeManager's spark_shuffle aux service (jvm/yarn-shuffle), all
# cached in ~/.cache/tributary/yarn; started and stopped by PID (scripts/yarn_cluster.py). Docs: docs/yarn.md.

YARN_STATE ?= $(CURDIR)/var/yarn
YARN_PY := $(RUN) python scripts/yarn_cluster.py

.PHONY: yarn-jars yarn-up yarn-down yarn-run

# tests/test_pipeline_e2e.py starts its own YARN from these jars; `make test` fetches and builds them first.
TEST_PREREQS += yarn-jars

yarn-jars: setup ## fetch the YARN daemons' jars and build the spark_shuffle aux service into the user cache
	@$(YARN_PY) fetch

yarn-up: yarn-jars ## start a ResourceManager and a NodeManager on loopback (state in var/yarn)
	@$(YARN_PY) start --state $(YARN_STATE)

yarn-down: ## stop YARN (by the PIDs under var/yarn)
	@$(YARN_PY) stop --state $(YARN_STATE)

yarn-run: setup ## make run's pipeline and stream on the running YARN (TRIBUTARY_PROFILE=yarn; `make yarn-up` first)
	$(YARN_PY) run --state $(YARN_STATE) --rows $(ROWS)
