"""Profiles: one switch, the same keys everywhere, fail-fast errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spark_jobs.config import (
    CONF_DIR,
    PROFILE_KEYS,
    ConfigError,
    available_profiles,
    kafka_client_options,
    load_profile,
    resolve_profile_name,
)
from spark_jobs.session import DELTA_CONF, spark_conf

ENV = {"TRIBUTARY_HOME": "/srv/trib", "TRIBUTARY_JARS_DIR": str(Path(__file__).parents[1] / "var" / "jars")}
KAFKA = {"bootstrap_servers": "b:9092", "topic": "t"}


def test_profiles_present():
    assert {"local", "standalone", "yarn"} <= set(available_profiles())


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_defines_the_same_keys(name):
    raw = yaml.safe_load((CONF_DIR / "profiles" / f"{name}.yaml").read_text())
    assert set(raw) == set(PROFILE_KEYS)
    for key, sub in PROFILE_KEYS.items():
        if sub:
            assert sub <= set(raw[key]), (name, key)
    profile = load_profile(name, env=ENV)
    assert profile.name == name
    assert set(profile.catalog.datasets) == set(load_profile("local", env=ENV).catalog.datasets)


def test_one_switch_precedence():
    assert resolve_profile_name("yarn", {"TRIBUTARY_PROFILE": "standalone"}) == "yarn"
    assert resolve_profile_name(None, {"TRIBUTARY_PROFILE": "standalone"}) == "standalone"
    assert resolve_profile_name(None, {}) == "local"


def test_catalog_resolves_under_storage_roots():
    p = load_profile("local", env=ENV)
    assert p.catalog.uri("bronze_transactions") == "/srv/trib/var/lake/bronze/transactions"
    assert p.catalog["bronze_transactions"].format == "delta"
    assert p.catalog["bronze_transactions"].key == "transaction_id"
    assert p.catalog.uri("landing_stream") == "/srv/trib/var/landing/stream"
    assert p.mlflow["tracking_uri"] == "sqlite:////srv/trib/var/mlflow/mlflow.db"


def test_env_defaults_and_overrides():
    assert load_profile("standalone", env=ENV).spark_master == "spark://127.0.0.1:7077"
    env = {**ENV, "SPARK_MASTER_URL": "spark://10.0.0.5:7077"}
    assert load_profile("standalone", env=env).spark_master == "spark://10.0.0.5:7077"


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown profile 'prod'.*local"):
        load_profile("prod", env=ENV)


def test_unknown_dataset_is_an_error():
    with pytest.raises(ConfigError, match="unknown dataset 'bronze'"):
        load_profile("local", env=ENV).catalog.uri("bronze")


def _write_profile(tmp_path: Path, body: dict) -> Path:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "catalog.yaml").write_text((CONF_DIR / "catalog.yaml").read_text())
    (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump(body))
    return tmp_path


def test_missing_and_unknown_keys_fail(tmp_path):
    raw = yaml.safe_load((CONF_DIR / "profiles" / "local.yaml").read_text())
    raw["name"] = "x"
    del raw["mlflow"]
    raw["typo_key"] = 1
    conf = _write_profile(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"missing \['mlflow'\], unknown \['typo_key'\]"):
        load_profile("x", env=ENV, conf_dir=conf)


def test_unset_variable_without_default_names_it(tmp_path):
    raw = yaml.safe_load((CONF_DIR / "profiles" / "local.yaml").read_text())
    raw["name"] = "x"
    raw["mlflow"]["tracking_uri"] = "${MLFLOW_URL_FOR_TEST}"
    conf = _write_profile(tmp_path, raw)
    with pytest.raises(ConfigError, match="MLFLOW_URL_FOR_TEST is not set"):
        load_profile("x", env=ENV, conf_dir=conf)


def test_bad_launcher_kind(tmp_path):
    raw = yaml.safe_load((CONF_DIR / "profiles" / "local.yaml").read_text())
    raw["name"] = "x"
    raw["launcher"]["kind"] = "ssh"
    with pytest.raises(ConfigError, match="launcher.kind must be one of"):
        load_profile("x", env=ENV, conf_dir=_write_profile(tmp_path, raw))


def test_spark_conf_carries_delta_jars_and_dynamic_allocation():
    conf = spark_conf(load_profile("standalone", env=ENV))
    for key, value in DELTA_CONF.items():
        assert conf[key] == value
    assert conf["spark.executor.extraClassPath"].endswith("/var/jars/*")
    assert conf["spark.dynamicAllocation.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert conf["spark.executor.cores"] == "1"
    yarn = spark_conf(load_profile("yarn", env=ENV), check_jars=False)
    assert yarn["spark.shuffle.service.enabled"] == "true"
    assert yarn["spark.dynamicAllocation.enabled"] == "true"
    assert "spark.dynamicAllocation.enabled" not in spark_conf(load_profile("local", env=ENV))


def test_missing_jars_fail_fast_with_the_fix(tmp_path):
    env = {**ENV, "TRIBUTARY_JARS_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="run `make jars`"):
        spark_conf(load_profile("local", env=env))


@pytest.mark.parametrize(
    ("streaming", "error"),
    [
        ({"source": "rabbitmq"}, r"streaming.source must be one of \['files', 'kafka'\]"),
        ({"source": "kafka"}, r"streaming.source 'kafka' needs streaming.kafka with keys \['bootstrap_servers', "
                              r"'topic'\], has None"),
        ({"source": "kafka", "kafka": {"topic": "t"}}, r"needs streaming.kafka with keys .*, has \['topic'\]"),
        ({"kafka": {**KAFKA, "max_offset_per_trigger": 5}},
         r"streaming.kafka: unknown keys \['max_offset_per_trigger'\]"),
        ({"kafka": {**KAFKA, "max_offsets_per_trigger": "lots"}},
         r"streaming.kafka.max_offsets_per_trigger must be a positive integer, not 'lots'"),
        ({"kafka": {**KAFKA, "security_protocol": "TLS"}},
         r"security_protocol must be one of \['PLAINTEXT', 'SASL_PLAINTEXT'"),
        ({"kafka": {**KAFKA, "security_protocol": "SASL_SSL"}},
         r"sasl_mechanism must be one of \['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'\] with security_protocol "
         r"SASL_SSL, not None"),
        ({"kafka": {**KAFKA, "security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM"}}, r"not 'AWS_MSK_IAM'"),
        ({"source": "kafka", "kafka": {**KAFKA, "bootstrap_servers": ""}},
         r"streaming.source is 'kafka' but streaming.kafka.bootstrap_servers is empty: set it in the profile or "),
        ({"source": "${TRIBUTARY_STREAM_SOURCE:-kafka}", "kafka": {**KAFKA, "topic": "${NO_SUCH_TOPIC:-}"}},
         r"streaming.kafka.topic is empty"),
    ],
)
def test_the_stream_source_and_its_settings_are_checked_when_the_profile_loads(tmp_path, streaming, error):
    raw = yaml.safe_load((CONF_DIR / "profiles" / "local.yaml").read_text())
    raw["name"] = "x"
    raw["streaming"] = {**raw["streaming"], **streaming}
    with pytest.raises(ConfigError, match=error):
        load_profile("x", env=ENV, conf_dir=_write_profile(tmp_path, raw))


KUBERNETES_KAFKA = {  # profile -> (security protocol, SASL mechanism) its Kafka service takes by default
    "eks": ("SASL_SSL", "SCRAM-SHA-512"),  # MSK: SASL/SCRAM on port 9096
    "gke": ("SASL_SSL", "PLAIN"),  # Managed Service for Apache Kafka: SASL/PLAIN with a service account key
    "kind": ("PLAINTEXT", "SCRAM-SHA-512"),  # the chart's in-cluster broker (kafkaBroker)
    "minikube": ("PLAINTEXT", "SCRAM-SHA-512"),
}


@pytest.mark.parametrize("name", sorted(KUBERNETES_KAFKA))
def test_kubernetes_profiles_switch_the_stream_to_kafka_from_the_environment(name):
    """tributary-env (the chart's streaming.kafka values) switches the stream's source; files stay the default."""
    assert load_profile(name, env=ENV).streaming["source"] == "files"
    with pytest.raises(ConfigError, match="streaming.kafka.bootstrap_servers is empty"):
        load_profile(name, env={**ENV, "TRIBUTARY_STREAM_SOURCE": "kafka"})
    env = {**ENV, "TRIBUTARY_STREAM_SOURCE": "kafka", "TRIBUTARY_KAFKA_BOOTSTRAP": "b-1.example:9096"}
    kafka = load_profile(name, env=env).streaming["kafka"]
    assert (kafka["security_protocol"], kafka["sasl_mechanism"]) == KUBERNETES_KAFKA[name]
    assert kafka["bootstrap_servers"] == "b-1.example:9096" and kafka["topic"] == "tributary-transactions"
    env["TRIBUTARY_KAFKA_MAX_OFFSETS"] = "0"
    with pytest.raises(ConfigError, match="max_offsets_per_trigger must be a positive integer, not '0'"):
        load_profile(name, env=env)


def test_kafka_client_options_authenticate_from_the_environment_only():
    assert kafka_client_options(KAFKA, env={}) == {"kafka.bootstrap.servers": "b:9092",
                                                   "kafka.security.protocol": "PLAINTEXT"}
    sasl = {**KAFKA, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "ssl_truststore": "/ca.pem"}
    with pytest.raises(ConfigError, match="SASL_SSL: export TRIBUTARY_KAFKA_USERNAME and TRIBUTARY_KAFKA_PASSWORD"):
        kafka_client_options(sasl, env={"TRIBUTARY_KAFKA_USERNAME": ""})
    options = kafka_client_options(sasl, env={"TRIBUTARY_KAFKA_USERNAME": "svc", "TRIBUTARY_KAFKA_PASSWORD": 'p"w\\x'})
    assert options == {
        "kafka.bootstrap.servers": "b:9092",
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        # quotes and backslashes escaped as JAAS reads them
        "kafka.sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" '
                                  'password="p\\"w\\\\x";',
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": "/ca.pem",
    }
    plain = kafka_client_options({**sasl, "sasl_mechanism": "PLAIN"}, env={"TRIBUTARY_KAFKA_USERNAME": "u",
                                                                           "TRIBUTARY_KAFKA_PASSWORD": "p"})
    assert plain["kafka.sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule ")
