# Metrics on this machine (issue 12): `make up` bridges Airflow's StatsD metrics to Prometheus with statsd_exporter,
# built from its Go module at a pinned version (scripts/setup_tools.sh) into .tools/bin; conf/metrics/ maps them.

.PHONY: metrics-tools

metrics-tools: ## build Prometheus's statsd_exporter (pinned, into .tools/bin) for make up's Airflow metrics
	@scripts/setup_tools.sh statsd-exporter

TEST_PREREQS += metrics-tools
