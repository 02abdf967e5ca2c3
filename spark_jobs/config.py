"""Profiles: the one switch that selects where Tributary runs.

A profile is a YAML file under ``conf/profiles/<name>.yaml``. Every profile defines the same keys (see
``PROFILE_KEYS``); a missing or unknown key is an error, so no setting is silently ignored. The profile is chosen
once: ``--profile`` on a job's command line, else ``TRIBUTARY_PROFILE``, else ``local``.

Values may reference the environment as ``${VAR}`` or ``${VAR:-default}`` (defaults may nest). ``TRIBUTARY_HOME``
defaults to the repository root. A reference to an unset variable without a default fails fast and names it.

Usage::

    from spark_jobs.config import load_profile
    profile = load_profile("standalone")
    profile.spark_master, profile.catalog.uri("bronze_transactions")
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = Path(os.environ.get("TRIBUTARY_CONF_DIR", REPO_ROOT / "conf"))
PROFILE_ENV = "TRIBUTARY_PROFILE"
DEFAULT_PROFILE = "local"

# The contract every profile fulfils: top-level key -> required sub-keys.
PROFILE_KEYS: dict[str, set[str]] = {
    "name": set(),
    "description": set(),
    "spark": {"master", "deploy_mode", "jars_dir", "conf"},
    "storage": {"lake", "landing", "checkpoints"},
    "mlflow": {"tracking_uri", "artifact_root", "experiment", "model_name"},
    "resources": {
        "driver_memory",
        "executor_memory",
        "executor_cores",
        "dynamic_allocation",
        "gpu",
    },
    "launcher": {"kind"},
    "streaming": {"source", "trigger", "max_files_per_trigger"},
}
DYNAMIC_ALLOCATION_KEYS = {"enabled", "min_executors", "max_executors", "initial_executors"}
# launcher.kind -> exactly the options that kind reads (dags/tributary/launcher.py and, for spark_kubernetes,
# dags/tributary/sparkapp.py), so a misspelt or unused option is an error rather than silently ignored.
LAUNCHER_OPTIONS: dict[str, set[str]] = {
    "spark_submit": {"spark_conn_id"},
    "spark_kubernetes": {
        "kubernetes_conn_id",
        "namespace",
        "service_account",
        "image",
        "image_pull_policy",
        "spark_version",
        "application_dir",
        "env_config_map",
        "secret_env",
        "ttl_seconds",
        "startup_timeout_seconds",
        "priority_classes",
        "node_pools",
        "gpu",
        "static_executors",
        "cpu_requests",
        "streaming_app",
    },
}
LAUNCHER_KINDS = set(LAUNCHER_OPTIONS)
STREAMING_TRIGGERS = {"available_now", "processing_time"}
# streaming.source -> the keys its section streaming.<source> needs (files: none; spark_jobs/stream.py SOURCES).
STREAMING_SOURCES: dict[str, set[str]] = {"files": set(), "kafka": {"bootstrap_servers", "topic"}}
# streaming.kafka: how the client authenticates (Kafka's security.protocol and sasl.mechanism). The credentials of a
# SASL protocol are never in a profile: they come from the environment (on Kubernetes, from a Secret).
KAFKA_OPTIONAL_KEYS = {"max_offsets_per_trigger", "security_protocol", "sasl_mechanism", "ssl_truststore"}
KAFKA_SECURITY_PROTOCOLS = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
KAFKA_SASL_LOGIN_MODULES = {  # mechanism -> the JAAS login module of kafka-clients that speaks it
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
KAFKA_USERNAME_ENV = "TRIBUTARY_KAFKA_USERNAME"
KAFKA_PASSWORD_ENV = "TRIBUTARY_KAFKA_PASSWORD"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^{}]|\{[^{}]*\})*))?\}")


class ConfigError(ValueError):
    """A profile or catalog is missing, malformed, or references an unset variable."""


def _expand(value: str, env: Mapping[str, str], where: str) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in ``value``; defaults may themselves hold references."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return _expand(default, env, where)
        raise ConfigError(f"{where}: environment variable {name} is not set and has no default; export {name}")

    previous = None
    while previous != value:  # nested defaults such as ${A:-${B}/x}
        previous, value = value, _VAR.sub(repl, value)
    return value


def _expand_tree(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return _expand(node, env, where)
    if isinstance(node, dict):
        return {k: _expand_tree(v, env, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_tree(v, env, where) for v in node]
    return node


def _validate(raw: dict[str, Any], path: Path) -> None:
    missing = set(PROFILE_KEYS) - set(raw)
    unknown = set(raw) - set(PROFILE_KEYS)
    if missing or unknown:
        raise ConfigError(
            f"{path}: every profile defines exactly {sorted(PROFILE_KEYS)}; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    for key, required in PROFILE_KEYS.items():
        if not required:
            continue
        section = raw[key]
        if not isinstance(section, dict) or not required <= set(section):
            have = sorted(section) if isinstance(section, dict) else section
            raise ConfigError(f"{path}: '{key}' needs keys {sorted(required)}, has {have}")
    dyn = raw["resources"]["dynamic_allocation"]
    if set(dyn) != DYNAMIC_ALLOCATION_KEYS:
        raise ConfigError(f"{path}: resources.dynamic_allocation needs exactly {sorted(DYNAMIC_ALLOCATION_KEYS)}")
    kind = raw["launcher"]["kind"]
    if kind not in LAUNCHER_KINDS:
        raise ConfigError(f"{path}: launcher.kind must be one of {sorted(LAUNCHER_KINDS)}")
    options, wanted = set(raw["launcher"]) - {"kind"}, LAUNCHER_OPTIONS[kind]
    if options != wanted:
        raise ConfigError(
            f"{path}: launcher.kind '{kind}' takes exactly the options {sorted(wanted)}; "
            f"missing {sorted(wanted - options)}, unknown {sorted(options - wanted)}"
        )
    if raw["streaming"]["trigger"] not in STREAMING_TRIGGERS:
        raise ConfigError(f"{path}: streaming.trigger must be one of {sorted(STREAMING_TRIGGERS)}")
    if path.stem != raw["name"]:
        raise ConfigError(f"{path}: name '{raw['name']}' must equal the file name '{path.stem}'")


def _check_streaming(streaming: Mapping[str, Any], path: Path) -> None:
    """``streaming.source`` and its section, with the environment's values (the Kubernetes profiles take the source
    and the Kafka settings from tributary-env, which the chart's streaming.kafka values fill)."""
    source = streaming["source"]
    if source not in STREAMING_SOURCES:
        raise ConfigError(f"{path}: streaming.source must be one of {sorted(STREAMING_SOURCES)}, not {source!r}")
    needed, section = STREAMING_SOURCES[source], streaming.get(source)
    if needed and not (isinstance(section, dict) and needed <= set(section)):
        have = sorted(section) if isinstance(section, dict) else section
        raise ConfigError(f"{path}: streaming.source '{source}' needs streaming.{source} with keys {sorted(needed)}, "
                          f"has {have}")
    empty = sorted(key for key in needed if not str(section[key]).strip())
    if empty:
        raise ConfigError(f"{path}: streaming.source is '{source}' but streaming.{source}.{', '.join(empty)} is "
                          "empty: set it in the profile or the environment variable it names (on Kubernetes, the "
                          f"chart's streaming.{source} values; docs/streaming.md)")
    if isinstance(streaming.get("kafka"), dict):
        _check_kafka(streaming["kafka"], f"{path}: streaming.kafka")


def _check_kafka(kafka: Mapping[str, Any], where: str) -> None:
    """``streaming.kafka``'s keys, and a security protocol and SASL mechanism that kafka-clients knows."""
    unknown = set(kafka) - STREAMING_SOURCES["kafka"] - KAFKA_OPTIONAL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: "
                          f"{sorted(STREAMING_SOURCES['kafka'] | KAFKA_OPTIONAL_KEYS)}")
    limit = str(kafka.get("max_offsets_per_trigger", "1"))
    if not limit.isdigit() or int(limit) < 1:
        raise ConfigError(f"{where}.max_offsets_per_trigger must be a positive integer, not {limit!r}")
    protocol = kafka.get("security_protocol", "PLAINTEXT")
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise ConfigError(f"{where}.security_protocol must be one of {sorted(KAFKA_SECURITY_PROTOCOLS)}, "
                          f"not {protocol!r}")
    if protocol.startswith("SASL_") and kafka.get("sasl_mechanism") not in KAFKA_SASL_LOGIN_MODULES:
        raise ConfigError(f"{where}.sasl_mechanism must be one of {sorted(KAFKA_SASL_LOGIN_MODULES)} with "
                          f"security_protocol {protocol}, not {kafka.get('sasl_mechanism')!r}")


def kafka_client_options(kafka: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``kafka.*`` options of Spark's Kafka source and sink for the profile's ``streaming.kafka``: the bootstrap
    servers, and the security protocol with, for SASL, a JAAS config built from the username and password in
    ``TRIBUTARY_KAFKA_USERNAME`` / ``TRIBUTARY_KAFKA_PASSWORD``, in this process only (no profile or file holds
    them). ``ssl_truststore`` is a PEM file of CA certificates (a mounted Secret); without it the JVM's
    default trust store is used, which trusts the public CAs that MSK's and Google's Managed Kafka's brokers use."""
    env = os.environ if env is None else env
    options = {"kafka.bootstrap.servers": str(kafka["bootstrap_servers"])}
    protocol = str(kafka.get("security_protocol", "PLAINTEXT"))
    options["kafka.security.protocol"] = protocol
    if protocol.startswith("SASL_"):
        missing = [n for n in (KAFKA_USERNAME_ENV, KAFKA_PASSWORD_ENV) if not env.get(n)]
        if missing:
            raise ConfigError(f"streaming.kafka.security_protocol is {protocol}: export {' and '.join(missing)} "
                              "(on Kubernetes, from a Secret; docs/streaming.md)")
        mechanism = str(kafka["sasl_mechanism"])

        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        options["kafka.sasl.mechanism"] = mechanism
        options["kafka.sasl.jaas.config"] = (f"{KAFKA_SASL_LOGIN_MODULES[mechanism]} required "
                                             f"username={quoted(env[KAFKA_USERNAME_ENV])} "
                                             f"password={quoted(env[KAFKA_PASSWORD_ENV])};")
    if protocol.endswith("SSL") and kafka.get("ssl_truststore"):
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(kafka["ssl_truststore"])
    return options


@dataclass(frozen=True)
class Dataset:
    """A resolved logical dataset: where it lives and how it is stored."""

    name: str
    uri: str
    format: str
    key: str | None = None


@dataclass(frozen=True)
class Catalog:
    """Logical dataset names mapped to URIs and formats for one profile."""

    datasets: Mapping[str, Dataset]

    def __getitem__(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise ConfigError(f"unknown dataset '{name}'; known: {sorted(self.datasets)}") from None

    def uri(self, name: str) -> str:
        return self[name].uri


@dataclass(frozen=True)
class Profile:
    """A loaded, validated, environment-expanded profile."""

    name: str
    raw: Mapping[str, Any]
    catalog: Catalog

    @property
    def spark_master(self) -> str:
        return self.raw["spark"]["master"]

    @property
    def spark(self) -> Mapping[str, Any]:
        return self.raw["spark"]

    @property
    def mlflow(self) -> Mapping[str, Any]:
        return self.raw["mlflow"]

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.raw["resources"]

    @property
    def launcher(self) -> Mapping[str, Any]:
        return self.raw["launcher"]

    @property
    def streaming(self) -> Mapping[str, Any]:
        return self.raw["streaming"]


def available_profiles(conf_dir: Path = CONF_DIR) -> list[str]:
    """Names of every profile file under ``conf/profiles``."""
    return sorted(p.stem for p in (conf_dir / "profiles").glob("*.yaml"))


def resolve_profile_name(cli_value: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The one switch: ``--profile`` wins, then ``TRIBUTARY_PROFILE``, then ``local``."""
    env = os.environ if env is None else env
    return cli_value or env.get(PROFILE_ENV) or DEFAULT_PROFILE


def _load_catalog(storage: Mapping[str, str], conf_dir: Path) -> Catalog:
    raw = yaml.safe_load((conf_dir / "catalog.yaml").read_text())["datasets"]
    datasets = {}
    for name, spec in raw.items():
        root = spec["root"]
        if root not in storage:
            raise ConfigError(f"catalog.yaml: dataset '{name}' has root '{root}', not one of {sorted(storage)}")
        uri = f"{storage[root].rstrip('/')}/{spec['path']}"
        datasets[name] = Dataset(name=name, uri=uri, format=spec["format"], key=spec.get("key"))
    return Catalog(datasets=datasets)


def load_profile(
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    conf_dir: Path = CONF_DIR,
) -> Profile:
    """Load, validate and expand a profile; ``name=None`` applies the one switch."""
    env = dict(os.environ if env is None else env)
    env.setdefault("TRIBUTARY_HOME", str(REPO_ROOT))
    name = resolve_profile_name(name, env)
    path = conf_dir / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown profile '{name}' (from --profile or {PROFILE_ENV}); choose one of {available_profiles(conf_dir)}"
        )
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: not a YAML mapping")
    _validate(raw, path)
    expanded = _expand_tree(raw, env, path.name)
    _check_streaming(expanded["streaming"], path)  # with the environment's values
    return Profile(name=name, raw=expanded, catalog=_load_catalog(expanded["storage"], conf_dir))
