"""Profiles: one switch, one base with small overlays, one closed schema, fail-fast errors that say what to fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tributary.config import (
    CONF_DIR,
    ConfigError,
    available_layers,
    available_profiles,
    kafka_client_options,
    load_profile,
    resolve_profile_name,
)
from tributary.spark_conf import DELTA_CONF, spark_conf

ENV = {"TRIBUTARY_HOME": "/srv/trib", "TRIBUTARY_JARS_DIR": str(Path(__file__).parents[2] / "var" / "jars")}
KAFKA = {"bootstrap_servers": "b:9092", "topic": "t"}


def test_profiles_present():
    assert {"local", "standalone", "yarn"} <= set(available_profiles())


SCHEMA = json.loads((CONF_DIR / "profiles" / "schema.json").read_text())


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_loads_whole_from_its_overlays(name):
    profile = load_profile(name, env=ENV)
    assert profile.name == name
    assert set(profile.raw) == set(SCHEMA["required"]) == set(SCHEMA["properties"])
    assert set(profile.catalog.datasets) == set(load_profile("local", env=ENV).catalog.datasets)


def test_layers_are_not_profiles():
    assert {"_base", "_kubernetes", "_cloud"} <= set(available_layers())
    assert not [name for name in available_profiles() if name.startswith("_")]
    with pytest.raises(ConfigError, match=r"unknown profile '_base'"):
        load_profile("_base", env=ENV)


def test_overlays_merge_mappings_and_replace_values_and_lists():
    base, kind, minikube = (load_profile(n, env=ENV).raw for n in ("local", "kind", "minikube"))
    # kind and minikube are the same cluster shape: only the name and the description differ
    assert {k: v for k, v in kind.items() if k not in ("name", "description")} == {
        k: v for k, v in minikube.items() if k not in ("name", "description")}
    # a mapping merges key by key: _base's Spark properties stay beside each profile's own
    for raw in (base, kind):
        assert raw["spark"]["conf"]["spark.sql.session.timeZone"] == "UTC"
    assert kind["spark"]["conf"]["spark.sql.shuffle.partitions"] == "8"
    # a list replaces: gke tolerates both GPU taints; the node selector it did not restate stays _kubernetes'
    gke_gpu = load_profile("gke", env=ENV).launcher["node_pools"]["gpu"]
    assert gke_gpu == {"node_selector": {"tributary.dev/pool": "gpu"},
                       "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    assert load_profile("eks", env=ENV).launcher["node_pools"]["gpu"]["tolerations"][0]["operator"] == "Equal"


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
    """A conf dir with the real profiles, their layers and schema, and ``x.yaml`` holding ``body``."""
    shutil.copytree(CONF_DIR / "profiles", tmp_path / "profiles")
    (tmp_path / "catalog.yaml").write_text((CONF_DIR / "catalog.yaml").read_text())
    (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump(body))
    return tmp_path


def _local() -> dict:
    """local.yaml merged over its layers, as one flat profile (what a profile without ``extends`` holds)."""
    return json.loads(json.dumps(load_profile("local", env=ENV).raw)) | {"name": "x"}


@pytest.mark.parametrize(
    ("overlay", "error"),
    [  # the typos the issue found loading silently, each now an error with its path and the fix
        ({"resources": {"executor_instances": 2}},
         r"resources: unknown key 'executor_instances'; remove it or use one of \['driver_memory', "),
        ({"resources": {"gpu": {"amout": 1}}}, r"resources.gpu: unknown key 'amout' \(did you mean 'amount'\?\)"),
        ({"streaming": {"maxFilesPerTrigger": 5}},
         r"streaming: unknown key 'maxFilesPerTrigger' \(did you mean 'max_files_per_trigger'\?\)"),
        ({"resources": {"driver_memory": 2}},
         r"resources.driver_memory: 2 is not of type 'string' \(A JVM memory size: digits and a unit"),
        ({"resources": {"driver_memory": "2gb"}}, r"resources.driver_memory must be a JVM memory size: digits and a "
                                                  r"unit, e.g. 512m, 4g; not '2gb'"),
        ({"resources": {"dynamic_allocation": {"enabled": "yes"}}},
         r"resources.dynamic_allocation.enabled: 'yes' is not of type 'boolean' \(spark.dynamicAllocation.enabled.\)"),
        ({"spark": {"conf": {"spark.sql.shuffle.partitions": 8}}},
         r"spark.conf.spark.sql.shuffle.partitions: 8 is not of type 'string'"),
        ({"spark": {"conf": {"sql.shuffle.partitions": "8"}}}, r"spark.conf: 'sql.shuffle.partitions' does not match"),
        ({"launcher": {"spark_conn_id": None}}, r"launcher.spark_conn_id: None is not of type 'string'"),
        ({"launcher": {"namespace": "jobs"}}, r"launcher: unknown key 'namespace'; remove it or use one of \['kind', "
                                               r"'spark_conn_id'\]"),
        ({"streaming": {"trigger": "sometimes"}},
         r"streaming.trigger must be one of \['available_now', 'processing_time'\], not 'sometimes'"),
        ({"resources": {"dynamic_allocation": {"enabled": True, "min_executors": 3, "initial_executors": 1,
                                               "max_executors": 2}}},
         r"resources.dynamic_allocation needs 0 <= min_executors <= initial_executors <= max_executors"),
    ],
)
def test_a_typo_anywhere_fails_at_load_with_its_path_and_the_fix(tmp_path, overlay, error):
    conf = _write_profile(tmp_path, {"extends": "local", "name": "x", **overlay})
    with pytest.raises(ConfigError, match=error) as exc:
        load_profile("x", env=ENV, conf_dir=conf)
    assert "x.yaml (with the files it extends; conf/profiles/schema.json)" in str(exc.value)


def test_the_launcher_takes_exactly_its_kinds_options_and_kubernetes_needs_min_executors(tmp_path):
    conf = _write_profile(tmp_path, {"extends": "kind", "name": "x", "launcher": {"ttl_secs": 5}})
    (conf / "profiles" / "kind.yaml").write_text(
        (CONF_DIR / "profiles" / "kind.yaml").read_text().replace("  ttl_seconds:", "  ttl_secs:"))
    with pytest.raises(ConfigError, match=r"launcher: unknown key 'ttl_secs' \(did you mean 'ttl_seconds'\?\).*; "
                                          r"launcher: 'ttl_seconds' is missing; add it \(How long finished "
                                          r"applications stay"):
        load_profile("x", env=ENV, conf_dir=conf)
    zero = _write_profile(tmp_path / "zero", {"extends": "eks", "name": "x",
                                              "resources": {"dynamic_allocation": {"min_executors": 0}}})
    with pytest.raises(ConfigError, match=r"needs 1 <= min_executors <= .* on Kubernetes .*has 0, 2, 20"):
        load_profile("x", env=ENV, conf_dir=zero)
    gpu = _write_profile(tmp_path / "gpu", {"extends": "eks", "name": "x", "launcher": {"gpu": {"resource": "gpu"}}})
    with pytest.raises(ConfigError, match=r"launcher.gpu.resource must be vendor/name, e.g. nvidia.com/gpu; not 'gpu'"):
        load_profile("x", env=ENV, conf_dir=gpu)


def test_extends_names_a_file_and_does_not_loop(tmp_path):
    conf = _write_profile(tmp_path, {"extends": "locale", "name": "x"})
    with pytest.raises(ConfigError, match=r"extends: 'locale' is not a file under .*; extend one of \['_base', "):
        load_profile("x", env=ENV, conf_dir=conf)
    (conf / "profiles" / "y.yaml").write_text("extends: x\nname: y\n")
    (conf / "profiles" / "x.yaml").write_text("extends: y\nname: x\n")
    with pytest.raises(ConfigError, match=r"'extends' loops: x -> y -> x"):
        load_profile("x", env=ENV, conf_dir=conf)


def test_missing_and_unknown_keys_fail(tmp_path):
    raw = _local()
    del raw["mlflow"]
    raw["typo_key"] = 1
    conf = _write_profile(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"the profile: unknown key 'typo_key'; remove it or use one of \[.*\]; "
                                          r"the profile: 'mlflow' is missing; add it \(The MLflow tracking server "
                                          r"and registry.\)"):
        load_profile("x", env=ENV, conf_dir=conf)


def test_unset_variable_without_default_names_it(tmp_path):
    raw = _local()
    raw["mlflow"]["tracking_uri"] = "${MLFLOW_URL_FOR_TEST}"
    conf = _write_profile(tmp_path, raw)
    with pytest.raises(ConfigError, match="MLFLOW_URL_FOR_TEST is not set"):
        load_profile("x", env=ENV, conf_dir=conf)


def test_bad_launcher_kind(tmp_path):
    raw = _local()
    raw["launcher"]["kind"] = "ssh"
    with pytest.raises(ConfigError, match=r"launcher.kind must be one of \['spark_submit', 'spark_kubernetes'\], "
                                          r"not 'ssh'"):
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


@pytest.mark.parametrize("name,keys", [
    ("yarn", ("spark.driver.extraJavaOptions", "spark.yarn.am.extraJavaOptions", "spark.executor.extraJavaOptions")),
    ("kind", ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")),
    ("local", ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")),
])
def test_a_value_that_expands_to_nothing_is_not_set(name, keys):
    """TRIBUTARY_SPARK_JAVA_OPTIONS unset: no JVM options at all (spark-defaults.conf's apply); set: on each JVM."""
    unset = spark_conf(load_profile(name, env=ENV), check_jars=False)
    assert not [key for key in unset if key.endswith("JavaOptions")], unset
    options = "-XX:TieredStopAtLevel=1 -Xss4m"
    conf = spark_conf(load_profile(name, env={**ENV, "TRIBUTARY_SPARK_JAVA_OPTIONS": options}), check_jars=False)
    assert {key: value for key, value in conf.items() if key.endswith("JavaOptions")} == dict.fromkeys(keys, options)


def test_missing_jars_fail_fast_with_the_fix(tmp_path):
    env = {**ENV, "TRIBUTARY_JARS_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="run `make jars`"):
        spark_conf(load_profile("local", env=env))


@pytest.mark.parametrize(
    ("streaming", "error"),
    [
        ({"source": "rabbitmq"}, r"streaming.source must be one of \['files', 'kafka'\], not 'rabbitmq'"),
        ({"source": "kafka"}, r"streaming: 'kafka' is missing; add it \(The Kafka topic the stream reads"),
        ({"source": "kafka", "kafka": {"topic": "t"}}, r"streaming.kafka: 'bootstrap_servers' is missing; add it"),
        ({"kafka": {**KAFKA, "max_offset_per_trigger": 5}},
         r"streaming.kafka: unknown key 'max_offset_per_trigger' \(did you mean 'max_offsets_per_trigger'\?\)"),
        ({"kafka": {**KAFKA, "max_offsets_per_trigger": "lots"}},
         r"streaming.kafka.max_offsets_per_trigger must be a whole number, 1 or more .*; not 'lots'"),
        ({"kafka": {**KAFKA, "security_protocol": "TLS"}},
         r"security_protocol must be one of \['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'\], not 'TLS'"),
        ({"kafka": {**KAFKA, "security_protocol": "SASL_SSL"}},
         r"streaming.kafka: 'sasl_mechanism' is missing; add it \(Kafka's sasl.mechanism"),
        ({"kafka": {**KAFKA, "security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM"}}, r"not 'AWS_MSK_IAM'"),
        ({"source": "kafka", "kafka": {**KAFKA, "bootstrap_servers": ""}},
         r"streaming.kafka.bootstrap_servers is empty: set it in the profile or the environment variable it names"),
        ({"source": "${TRIBUTARY_STREAM_SOURCE:-kafka}", "kafka": {**KAFKA, "topic": "${NO_SUCH_TOPIC:-}"}},
         r"streaming.kafka.topic is empty"),
    ],
)
def test_the_stream_source_and_its_settings_are_checked_when_the_profile_loads(tmp_path, streaming, error):
    raw = _local()
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
    with pytest.raises(ConfigError, match="max_offsets_per_trigger must be a whole number, 1 or more .*; not '0'"):
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


def test_the_schema_gives_every_workload_class_its_pool_priority_class_and_static_executors():
    """conf/workloads.yaml names launcher keys (a pool, a priority class, a static-executor count for the classes
    without dynamic allocation) that every Kubernetes profile must then have: the schema requires exactly those."""
    from tributary.registry import load_workloads

    kubernetes = SCHEMA["$defs"]["spark_kubernetes"]["properties"]
    workloads = load_workloads().values()
    assert {w.executor_pool for w in workloads} | {"driver"} == set(kubernetes["node_pools"]["required"])
    assert {w.priority_class for w in workloads} == set(kubernetes["priority_classes"]["required"])
    assert {w.name for w in workloads if not w.dynamic_allocation} == set(kubernetes["static_executors"]["required"])
