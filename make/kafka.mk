# A real Apache Kafka broker on loopback (issue 10): KRaft, one node, from conf/kafka/pom.xml's jars (Maven Central,
# cached in ~/.cache/tributary/kafka by the POM's hash). The local-kafka profile streams from its topic.
# Docs: docs/streaming.md ("Kafka").

KAFKA_STATE ?= $(CURDIR)/var/kafka
KAFKA_PORT ?= 9092
KAFKA_TOPIC ?= tributary-transactions
KAFKA_PY := $(RUN) python scripts/kafka_broker.py

.PHONY: kafka-jars kafka-up kafka-down stream-kafka

# tests/spark_jobs/test_stream_kafka.py starts its own broker from these jars; `make test` fetches them first.
TEST_PREREQS += kafka-jars

kafka-jars: setup ## fetch the Kafka broker's jars (conf/kafka/pom.xml) into the user cache
	@$(KAFKA_PY) fetch

kafka-up: kafka-jars ## start a Kafka broker on 127.0.0.1:9092 (KAFKA_PORT; state in var/kafka) with the local-kafka topic
	@$(KAFKA_PY) start --state $(KAFKA_STATE) --port $(KAFKA_PORT) --topic $(KAFKA_TOPIC) --partitions 3

kafka-down: ## stop the Kafka broker (its data stays in var/kafka)
	@$(KAFKA_PY) stop --state $(KAFKA_STATE)

stream-kafka: kafka-up ## publish a generated day to the topic and run fraud_stream's job on it (local-kafka profile)
	TRIBUTARY_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) TRIBUTARY_KAFKA_TOPIC=$(KAFKA_TOPIC) \
		$(RUN) python -m spark_jobs.generate --profile local-kafka --target kafka --rows 2000 --start 2026-11-15 \
		--days 1 --batch-id kafka-0001
	TRIBUTARY_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) TRIBUTARY_KAFKA_TOPIC=$(KAFKA_TOPIC) \
		$(RUN) python -m spark_jobs.stream --profile local-kafka
