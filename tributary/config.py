"""Profiles: the one switch that selects where Tributary runs.

A profile is a YAML file under ``conf/profiles/<name>.yaml``. Most are small overlays: ``extends: <parent>`` names the
file they are laid over (``_base.yaml`` for all, ``_kubernetes.yaml`` for the Kubernetes profiles; a file whose name
starts with ``_`` is a layer, not a profile). Mappings merge key by key, anything else (a value, a list) replaces
the parent's. The merged, environment-expanded profile is validated against one closed JSON Schema,
``conf/profiles/schema.json`` (typed and described): a missing, unknown or ill-typed key anywhere fails at load with
its path and the fix, so no setting is silently ignored. The profile is chosen once: ``--profile`` on a job's command
line, else ``TRIBUTARY_PROFILE``, else ``local``.

Values may reference the environment as ``${VAR}`` or ``${VAR:-default}`` (defaults may nest). ``TRIBUTARY_HOME``
defaults to the repository root. A reference to an unset variable without a default fails fast and names it.

Usage::

    from tributary.config import load_profile
    profile = load_profile("standalone")
    profile.spark_master, profile.catalog.uri("bronze_transactions")
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import yaml

if TYPE_CHECKING:
    import jsonschema

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = Path(os.environ.get("TRIBUTARY_CONF_DIR", REPO_ROOT / "conf"))
PROFILE_ENV = "TRIBUTARY_PROFILE"
DEFAULT_PROFILE = "local"

PROFILES_DIR = "profiles"
SCHEMA_FILE = "schema.json"  # under conf/profiles
EXTENDS = "extends"
LAYER_PREFIX = "_"  # conf/profiles/_*.yaml: layers other profiles extend, not profiles of their own
STREAMING_TRIGGERS = ("available_now", "processing_time")
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


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` laid over ``base``: mappings merge key by key; anything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def _read_layers(name: str, profiles_dir: Path, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The profile file ``name`` merged over the files it extends, root first."""
    path = profiles_dir / f"{name}.yaml"
    if name in chain:
        raise ConfigError(f"{path}: '{EXTENDS}' loops: {' -> '.join((*chain, name))}")
    if not path.is_file():
        raise ConfigError(f"{profiles_dir / (chain[-1] + '.yaml')}: {EXTENDS}: '{name}' is not a file under "
                          f"{profiles_dir}; extend one of {available_layers(profiles_dir.parent)}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: not a YAML mapping")
    parent = raw.pop(EXTENDS, None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: {EXTENDS} names one file of {profiles_dir}, without .yaml; not {parent!r}")
    return _merge(_read_layers(parent, profiles_dir, (*chain, name)), raw)


def _where(error: "jsonschema.ValidationError") -> str:
    return ".".join(str(part) for part in error.absolute_path) or "the profile"


def _folded(key: str) -> str:
    """A key as a typo is likely to differ from it: maxFilesPerTrigger ~ max_files_per_trigger."""
    return key.lower().replace("_", "").replace("-", "")


def _description(root: Mapping[str, Any], path: list[str]) -> str:
    """The schema's description of the key at ``path`` (following ``properties`` and local ``$ref``s); "" if none."""
    node: Mapping[str, Any] = root
    for part in path:
        while "$ref" in node and "properties" not in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = node.get("properties", {}).get(part, {})
    if "description" not in node and "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node.get("description", "")


def _problem(error: "jsonschema.ValidationError", root: Mapping[str, Any]) -> str:
    """One schema error as its path, what is wrong and the fix."""
    where, schema = _where(error), error.schema
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        by_fold = {_folded(key): key for key in allowed}
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(_folded(key), list(by_fold), n=1, cutoff=0.75)
            hints.append(f"'{key}'" + (f" (did you mean '{by_fold[close[0]]}'?)" if close else ""))
        return (f"{where}: unknown key {', '.join(hints)}; remove it or use one of {allowed}"
                if allowed else f"{where}: unknown key {', '.join(hints)}; it takes no keys")
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        described = (schema.get("properties", {}).get(missing, {}).get("description")
                     or _description(root, [*map(str, error.absolute_path), missing]))
        return f"{where}: '{missing}' is missing; add it" + (f" ({described})" if described else "")
    if error.validator == "minLength" and error.instance == "":
        return (f"{where} is empty: set it in the profile or the environment variable it names (on Kubernetes, the "
                "chart's values that fill tributary-env; docs/streaming.md for streaming.kafka)")
    if error.validator == "enum":
        return f"{where} must be one of {list(error.validator_value)}, not {error.instance!r}"
    described = schema.get("description", "")
    if error.validator in ("anyOf", "pattern") and described:  # the $defs that describe a format
        return f"{where} must be {described[0].lower()}{described[1:].rstrip('.')}; not {error.instance!r}"
    return f"{where}: {error.message}" + (f" ({described})" if described else "")


def _schema_problems(profile: Mapping[str, Any], conf_dir: Path) -> list[str]:
    """Every way ``profile`` breaks ``conf/profiles/schema.json``, one line each, in path order."""
    import jsonschema

    schema = json.loads((conf_dir / PROFILES_DIR / SCHEMA_FILE).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(profile), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    return list(dict.fromkeys(_problem(e, schema) for e in errors))


def _allocation_problems(profile: Mapping[str, Any]) -> list[str]:
    """Dynamic allocation's bounds in order (Spark's own rule); on Kubernetes also min >= 1, because
    SparkKubernetesOperator tests min and max for truth and drops the block when either is 0."""
    dyn = profile["resources"]["dynamic_allocation"]
    if not dyn["enabled"]:
        return []
    low, initial, high = (int(dyn[k]) for k in ("min_executors", "initial_executors", "max_executors"))
    floor = 1 if profile["launcher"]["kind"] == "spark_kubernetes" else 0
    if floor <= low <= initial <= high and high >= 1:
        return []
    on = " on Kubernetes" if floor else ""
    return [f"resources.dynamic_allocation needs {floor} <= min_executors <= initial_executors <= max_executors{on} "
            f"(and max_executors >= 1); has {low}, {initial}, {high}"]


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
    scope: str | None = None  # "job 'features'": this catalog holds only the datasets that job declares

    def __getitem__(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            if self.scope:
                raise ConfigError(f"{self.scope} touches dataset '{name}', which it does not declare in "
                                  f"conf/jobs.yaml (it declares {sorted(self.datasets)}); declare it under the "
                                  "job's inputs, outputs or state") from None
            raise ConfigError(f"unknown dataset '{name}'; known: {sorted(self.datasets)}") from None

    def uri(self, name: str) -> str:
        return self[name].uri

    def only(self, names: Iterable[str], scope: str) -> Catalog:
        """This catalog holding only ``names``: what one job may read or write (each must be a known dataset)."""
        return Catalog({name: self[name] for name in sorted(set(names))}, scope=scope)


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
    """Names of every profile under ``conf/profiles`` (not the ``_`` layers)."""
    return sorted(p.stem for p in (conf_dir / PROFILES_DIR).glob("*.yaml") if not p.stem.startswith(LAYER_PREFIX))


def available_layers(conf_dir: Path = CONF_DIR) -> list[str]:
    """Names of every file a profile may extend: the layers and the profiles."""
    return sorted(p.stem for p in (conf_dir / PROFILES_DIR).glob("*.yaml"))


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
    path = conf_dir / PROFILES_DIR / f"{name}.yaml"
    if name.startswith(LAYER_PREFIX) or not path.is_file():
        raise ConfigError(
            f"unknown profile '{name}' (from --profile or {PROFILE_ENV}); choose one of {available_profiles(conf_dir)}"
        )
    raw = _read_layers(name, path.parent)
    if raw.get("name") != name:
        raise ConfigError(f"{path}: name '{raw.get('name')}' must equal the file name '{name}'")
    expanded = _expand_tree(raw, env, path.name)
    problems = _schema_problems(expanded, conf_dir) or _allocation_problems(expanded)
    if problems:  # checked with the environment's values (the Kubernetes profiles take some from tributary-env)
        raise ConfigError(f"{path} (with the files it extends; conf/profiles/{SCHEMA_FILE}): "
                          + "; ".join(problems))
    return Profile(name=name, raw=expanded, catalog=_load_catalog(expanded["storage"], conf_dir))
