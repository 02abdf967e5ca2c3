"""Offline validation of everything `make render` writes, with the real, pinned tools.

- Built-in objects: strict Kubernetes JSON schemas at the profiles' Kubernetes version (kubernetes-validate).
- SparkApplications: the upstream CRD of the pinned spark-operator Go module, made strict (unknown fields fail);
  their driver and executor pod templates, which the CRD leaves open, as strict PodTemplates.
- The PodMonitor of metrics.podMonitor: the upstream CRD of the pinned prometheus-operator Go module, made strict.
- checkov over the rendered manifests and the Dockerfile; hadolint over the Dockerfile.
- The platform's own pods run as non-root with requests and limits.
- The same for the Kafka variants the defaults do not render: the stream on the in-cluster broker on kind, and on
  MSK on eks (streaming.kafka, kafkaBroker).
Each tool also rejects a deliberately broken input here, so a tool that checks nothing fails the suite.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.k8s.conftest import PROFILES, REPO_ROOT, helm_template, load_docs, render_k8s, run_tool, venv_tool

WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}
UPSTREAM_CHECKOV_CONFIG = REPO_ROOT / "k8s" / "checkov-upstream.yaml"


def strict(schema: Any) -> Any:
    """The CRD schema with ``additionalProperties: false`` wherever it lists properties and allows no others."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def sparkapplication_validator(tools):
    crd = render_k8s.sparkapplication_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def sparkapplications(rendered: Path) -> list[tuple[str, dict[str, Any]]]:
    apps = []
    for profile in PROFILES:
        for path in sorted((rendered / profile / "sparkapplications").glob("*.yaml")):
            apps.append((f"{profile}/{path.stem}", yaml.safe_load(path.read_text())))
    return apps


def errors(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_every_sparkapplication_validates_strictly_against_the_upstream_crd(rendered, sparkapplication_validator):
    apps = sparkapplications(rendered)
    assert len(apps) == len(PROFILES) * 6  # the six DAG tasks per profile (the chart holds none: ADR 0006)
    for where, doc in apps:
        assert errors(sparkapplication_validator, doc) == [], where


def test_the_crd_check_rejects_unknown_and_mistyped_fields(rendered, sparkapplication_validator):
    _, doc = sparkapplications(rendered)[0]
    typo = copy.deepcopy(doc)
    typo["spec"]["executor"]["tolerationz"] = []
    assert any("tolerationz" in e for e in errors(sparkapplication_validator, typo))
    top = copy.deepcopy(doc)
    top["spec"]["dynamicAllocaton"] = {"enabled": True}
    assert any("dynamicAllocaton" in e for e in errors(sparkapplication_validator, top))
    wrong = copy.deepcopy(doc)
    wrong["spec"]["restartPolicy"] = {"type": "Sometimes"}
    assert any("Sometimes" in e for e in errors(sparkapplication_validator, wrong))


@pytest.mark.parametrize("profile", PROFILES)
def test_the_pod_monitors_validate_strictly_and_scrape_every_driver_and_mlflow(staged_chart, rendered, profile):
    assert "PodMonitor" not in (rendered / profile / "chart.yaml").read_text()  # off by default
    proc = helm_template(staged_chart, profile, "--set", "metrics.podMonitor.enabled=true",
                         "--set", "metrics.podMonitor.labels.release=prometheus",
                         "--set", "metrics.prometheusNamespace=monitoring")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodMonitor"}
    assert set(monitors) == {"tributary-spark-drivers", "tributary-mlflow"}
    monitor = monitors["tributary-spark-drivers"]
    crd = render_k8s.podmonitor_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    validator = jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))
    assert errors(validator, monitor) == []
    broken = copy.deepcopy(monitor)
    broken["spec"]["podMetricsEndpoints"][0]["portt"] = "spark-ui"
    assert any("portt" in e for e in errors(validator, broken))
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # It selects every driver the renderer makes (and only drivers), in their namespace, on the port Spark names.
    app_doc = yaml.safe_load(sorted((rendered / profile / "sparkapplications").glob("*.yaml"))[0].read_text())
    driver_labels = {**app_doc["spec"]["driver"]["template"]["metadata"]["labels"], "spark-role": "driver"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= driver_labels.items()
    assert monitor["metadata"]["namespace"] == app_doc["metadata"]["namespace"]
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert {(e["port"], e["path"]) for e in endpoints} == {
        ("spark-ui", app_doc["spec"]["driver"]["template"]["metadata"]["annotations"]["prometheus.io/path"]),
        ("spark-ui", "/metrics/executors/prometheus")}
    # MLflow's: its pods, on the port its container names, with the admin's credentials from the chart's Secret
    # (MLflow's basic-auth guards /metrics too), and its NetworkPolicy admits the Prometheus namespace.
    mlflow = monitors["tributary-mlflow"]
    assert errors(validator, mlflow) == [] and mlflow["metadata"]["labels"]["release"] == "prometheus"
    (server,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "tributary-mlflow"]
    pod = server["spec"]["template"]
    assert mlflow["metadata"]["namespace"] == server["metadata"]["namespace"]
    assert mlflow["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = mlflow["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in pod["spec"]["containers"][0]["ports"]} and endpoint["path"] == \
        "/metrics"
    secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["spec"]["containers"][0]["env"]
              if e["name"].startswith("MLFLOW_AUTH_ADMIN_")}
    assert endpoint["basicAuth"] == {"username": secret["MLFLOW_AUTH_ADMIN_USERNAME"],
                                     "password": secret["MLFLOW_AUTH_ADMIN_PASSWORD"]}
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "tributary-mlflow"]
    admitted = {f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                for f in policy["spec"]["ingress"][0]["from"]}
    assert "monitoring" in admitted and len(admitted) == 3, admitted


def _kubernetes_validate(paths: list[Path]) -> tuple[int, str]:
    tool = venv_tool("kubernetes-validate")
    version = render_k8s.kube_version()
    proc = run_tool([str(tool), "--kubernetes-version", version, "--strict", *map(str, paths)])
    return proc.returncode, proc.stdout + proc.stderr


KAFKA_VARIANTS = {
    "kind": ["--set", "streaming.kafka.enabled=true", "--set", "kafkaBroker.enabled=true"],
    "eks": ["--set", "streaming.kafka.enabled=true", "--set-string",
            r"streaming.kafka.bootstrapServers=b-1.msk.example:9096\,b-2.msk.example:9096"],
}


@pytest.fixture(scope="module")
def kafka_rendered(staged_chart, tmp_path_factory) -> dict[str, Path]:
    """The chart with the stream on Kafka: kind on the in-cluster broker, eks on MSK (chart.yaml per variant)."""
    out = {}
    for profile, extra in KAFKA_VARIANTS.items():
        proc = helm_template(staged_chart, profile, *extra)
        assert proc.returncode == 0, proc.stderr
        out[profile] = tmp_path_factory.mktemp(f"kafka-{profile}") / "chart.yaml"  # ours, as `make render` splits it
        out[profile].write_text(yaml.safe_dump_all(render_k8s.split_manifests(proc.stdout)["chart"]))
    return out


def test_the_kafka_values_reach_the_stream_and_the_broker(kafka_rendered):
    docs = load_docs(kafka_rendered["kind"])
    env = {d["metadata"]["namespace"]: d["data"] for d in docs
           if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tributary-env"}  # fmt: skip
    assert set(env) == {"tributary", "tributary-jobs"}
    assert env["tributary-jobs"]["TRIBUTARY_STREAM_SOURCE"] == "kafka"
    assert env["tributary-jobs"]["TRIBUTARY_KAFKA_BOOTSTRAP"] == "tributary-kafka.tributary.svc:9092"
    assert "TRIBUTARY_KAFKA_SECURITY_PROTOCOL" not in env["tributary-jobs"]  # the profile's PLAINTEXT
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("StatefulSet", "tributary-kafka"), ("Service", "tributary-kafka"),
            ("NetworkPolicy", "tributary-kafka")} <= kinds  # fmt: skip
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tributary-kafka"]
    assert "advertised.listeners=PLAINTEXT://tributary-kafka.tributary.svc:9092" in config["data"]["server.properties"]
    assert "--topic \"tributary-transactions\"" in config["data"]["start.sh"]
    # The broker's image is the version scripts/kafka_broker.py runs (conf/kafka/pom.xml).
    (broker,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "tributary-kafka"]
    pom = (REPO_ROOT / "conf" / "kafka" / "pom.xml").read_text()
    version = pom.split("<kafka.version>")[1].split("<")[0]
    assert broker["spec"]["template"]["spec"]["containers"][0]["image"] == f"apache/kafka:{version}"
    eks = {d["metadata"]["namespace"]: d["data"] for d in load_docs(kafka_rendered["eks"])
           if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tributary-env"}  # fmt: skip
    assert eks["tributary-jobs"]["TRIBUTARY_KAFKA_BOOTSTRAP"] == "b-1.msk.example:9096,b-2.msk.example:9096"
    assert not [d for d in load_docs(kafka_rendered["eks"]) if "kafka" in d["metadata"]["name"]]  # MSK: no broker


def test_built_in_objects_validate_against_strict_kubernetes_schemas(rendered, kafka_rendered):
    paths = [rendered / p / f for p in PROFILES for f in ("chart.yaml", "crds.yaml", "spark-operator.yaml")]
    paths += list(kafka_rendered.values())
    code, output = _kubernetes_validate(paths)
    unvalidated = [line for line in output.splitlines() if "Couldn't find schema" in line]
    assert code == 0, output
    # Every object has a built-in schema: the chart holds no SparkApplication (ADR 0006; those are checked above).
    assert unvalidated == [], unvalidated
    assert "ERROR" not in output and "INVALID" not in output.upper().replace("INVALIDATING", ""), output


def test_pod_templates_of_every_sparkapplication_are_strict_pod_templates(rendered, tmp_path):
    docs = []
    for where, app in sparkapplications(rendered):
        for role in ("driver", "executor"):
            name = f"{where}-{role}".replace("/", "-").replace(":", "-").lower()
            docs.append({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name},
                         "template": app["spec"][role]["template"]})  # fmt: skip
    path = tmp_path / "pod-templates.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    code, output = _kubernetes_validate([path])
    assert code == 0 and "Couldn't find schema" not in output, output


def test_kubernetes_validate_rejects_an_unknown_field(rendered, tmp_path):
    deployment = next(d for d in load_docs(rendered / "kind" / "chart.yaml")
                      if d["kind"] == "Deployment" and d["metadata"]["name"] == "tributary-mlflow")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    code, output = _kubernetes_validate([path])
    assert code != 0 and "imagePullPolcy" in output, output


def _workload_pods(rendered: Path, profile: str) -> list[tuple[str, dict[str, Any]]]:
    pods = []
    for name in ("chart.yaml", "spark-operator.yaml"):
        for doc in load_docs(rendered / profile / name):
            if doc["kind"] in WORKLOADS:
                pods.append((f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    return pods


@pytest.mark.parametrize("profile", PROFILES)
def test_platform_pods_run_as_non_root_with_requests_and_limits(rendered, profile):
    pods = _workload_pods(rendered, profile)
    assert pods
    for where, pod in pods:
        for container in pod.get("initContainers", []) + pod["containers"]:
            non_root = (container.get("securityContext") or {}).get("runAsNonRoot")
            if non_root is None:
                non_root = (pod.get("securityContext") or {}).get("runAsNonRoot")
            assert non_root is True, (where, container["name"])
            assert (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is False, where
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind) or {}), (where, container["name"], kind)


def _checkov(args: list[str]) -> dict[str, Any]:
    proc = run_tool([str(venv_tool("checkov")), "--skip-download", "--output", "json", *args], timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    return {r["check_type"]: r for r in reports if isinstance(r, dict) and "check_type" in r}


def _failed(reports: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports.values()
        for c in r["results"]["failed_checks"]
    ]


def test_checkov_finds_no_failed_checks_in_our_manifests_and_the_dockerfile(rendered, kafka_rendered):
    files = [rendered / p / f for p in PROFILES for f in ("chart.yaml", "crds.yaml")] + list(kafka_rendered.values())
    args = ["--framework", "kubernetes", "dockerfile", "--file", str(REPO_ROOT / "Dockerfile")]
    for path in files:
        args += ["--file", str(path)]
    reports = _checkov(args)
    assert set(reports) == {"kubernetes", "dockerfile"}
    assert _failed(reports) == []
    assert reports["kubernetes"]["summary"]["passed"] > 100
    skipped = reports["kubernetes"]["results"]["skipped_checks"]
    assert skipped
    assert {c["check_id"] for c in skipped} <= {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35"} | {"CKV_K8S_40"}  # justified in
    # _helpers.tpl; CKV_K8S_40 (uid >= 10000) on the History Server only, which runs the Spark image as uid 185
    assert {c["resource"] for c in skipped if c["check_id"] == "CKV_K8S_40"} <= {"Deployment.tributary.tributary-spark-history"}
    assert all(c["check_result"].get("suppress_comment") for c in skipped)


def test_checkov_on_the_upstream_spark_operator_chart_skips_only_what_is_justified(rendered, tmp_path):
    args = ["--framework", "kubernetes", "--config-file", str(UPSTREAM_CHECKOV_CONFIG)]
    for profile in PROFILES:
        # The upstream objects as installed: with our NetworkPolicies, which select the controller's pods.
        policies = [d for d in load_docs(rendered / profile / "chart.yaml") if d["kind"] == "NetworkPolicy"]
        path = tmp_path / f"{profile}-spark-operator.yaml"
        path.write_text(yaml.safe_dump_all(load_docs(rendered / profile / "spark-operator.yaml") + policies))
        args += ["--file", str(path)]
    reports = _checkov(args)
    assert _failed(reports) == []
    assert reports["kubernetes"]["summary"]["passed"] > 50


def test_checkov_catches_a_privileged_container(rendered, tmp_path):
    deployment = next(d for d in load_docs(rendered / "kind" / "chart.yaml")
                      if d["kind"] == "Deployment" and d["metadata"]["name"] == "tributary-mlflow")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    failed = _failed(_checkov(["--framework", "kubernetes", "--file", str(path)]))
    assert any(f.startswith("CKV_K8S_16 ") for f in failed), failed


def test_hadolint_passes_the_dockerfile_and_catches_an_unpinned_install(tmp_path):
    hadolint = venv_tool("hadolint")
    ok = run_tool([str(hadolint), str(REPO_ROOT / "Dockerfile")])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.14-slim-bookworm\nRUN apt-get update && apt-get install -y curl\n")
    proc = run_tool([str(hadolint), str(bad)])
    assert proc.returncode != 0 and "DL3008" in proc.stdout, proc.stdout
