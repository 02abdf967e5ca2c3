"""helm/tributary as a contract: schema, values, docs, lint, what renders and what must not, and failures.

Runs the pinned helm (`make k8s-tools`) on the chart staged with its available dependencies, exactly as
`make render` does (scripts/render_k8s.py).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.k8s.conftest import PROFILES, REPO_ROOT, helm_template, load_docs, render_k8s, run_tool
from tests.terraform.hcl import load_module

CHART = REPO_ROOT / "helm" / "tributary"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
PASSTHROUGH = {"airflow", "spark-operator", "global"}

import helm_docs  # noqa: E402  (scripts/ is on sys.path through tests.k8s.conftest)


def _walk(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{key}" if path else key)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _values(profile: str) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in (CHART / f"values-{profile}.yaml", CHART / "ci" / f"{profile}-terraform-values.yaml"):
        if path.is_file():
            values = _deep_merge(values, yaml.safe_load(path.read_text()))
    return values


def test_schema_types_describes_and_closes_every_key():
    for path, node in _walk(SCHEMA):
        assert node.get("type") and node.get("description"), path or "<root>"
        if node["type"] == "object" and path.split(".")[0] not in PASSTHROUGH and "properties" in node:
            assert node.get("additionalProperties") is False, path


@pytest.mark.parametrize("profile", PROFILES)
def test_values_files_validate_against_the_schema(profile):
    jsonschema.validate(_values(profile), SCHEMA)


def test_every_values_key_is_in_the_schema_and_documented_identically():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema_keys = {p for p, _ in _walk(SCHEMA) if p} - {"global"}

    def keys(node: Any, prefix: str = ""):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            if isinstance(value, dict) and path not in PASSTHROUGH and not path.endswith(("systemNodeSelector", ".nodeSelector", ".labels")) \
                    and not path.startswith("cloud.serviceAccountAnnotations."):  # fmt: skip
                yield from keys(value, path)

    value_keys = set(keys(values)) | {"airflow.enabled", "spark-operator.enabled"}
    assert value_keys == schema_keys
    comments = helm_docs.value_comments()
    for path, text in comments.items():
        assert helm_docs.schema_node(SCHEMA, path)["description"] == text, path
    leaves = {p for p, n in _walk(SCHEMA) if p and n["type"] != "object"}
    assert leaves <= set(comments), sorted(leaves - set(comments))  # every value carries its `# --` comment


def test_bad_values_are_rejected_by_the_schema():
    with pytest.raises(jsonschema.ValidationError, match="s3Store"):
        jsonschema.validate(_deep_merge(_values("kind"), {"s3Store": {"enabld": True}}), SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="minio"):  # the removed MinIO keeps only `enabled`
        jsonschema.validate(_deep_merge(_values("kind"), {"minio": {"image": "minio/minio:latest"}}), SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="'aks' is not one of"):
        jsonschema.validate(_deep_merge(_values("kind"), {"profile": "aks"}), SCHEMA)


def test_readme_values_table_is_generated_and_current():
    assert helm_docs.main(["--check"]) == 0, "helm/tributary/README.md is stale; run `make helm-docs`"


def _cloud_keys(node: Any, prefix: str = "") -> set[str]:
    out = set()
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if isinstance(value, dict):
            out |= _cloud_keys(value, path)
    return out


@pytest.mark.parametrize("env", ["eks", "gke"])
def test_the_schema_accepts_exactly_the_values_terraform_passes(env):
    # Both roots pass what their shared modules/chart builds; each root's values file names the platform.
    assert load_module(f"envs/{env}").modules["chart"]["profile"] == env
    passed = load_module("modules/chart").locals["chart_cloud_values"]
    sample = yaml.safe_load((CHART / "ci" / f"{env}-terraform-values.yaml").read_text())
    # Annotation maps come from module outputs: their keys are data, not schema.
    ignore = {k for k in _cloud_keys(sample) if k.count(".") > 2 and ".serviceAccountAnnotations." in k}
    assert _cloud_keys(sample) - ignore == _cloud_keys(passed)
    cloud_schema = {k for k, _ in _walk(SCHEMA) if k.startswith("cloud")}
    assert _cloud_keys(passed) <= cloud_schema
    jsonschema.validate(_values(env), SCHEMA)


def test_chart_dependencies_are_pinned_to_k8s_versions():
    pins = render_k8s.versions()
    deps = {d["name"]: d for d in yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]}
    assert deps["spark-operator"]["version"] == pins["SPARK_OPERATOR_VERSION"]
    assert deps["airflow"]["version"] == pins["AIRFLOW_CHART_VERSION"]
    assert {d["condition"] for d in deps.values()} == {"airflow.enabled", "spark-operator.enabled"}


@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_passes(staged_chart, profile):
    chart, dropped = staged_chart
    proc = run_tool([str(render_k8s.HELM), "lint", str(chart), "--strict", "--namespace", "tributary",
                     *render_k8s.helm_args(profile, dropped)])  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _kinds(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    return out


@pytest.mark.parametrize("profile", PROFILES)
def test_the_platform_renders(rendered, profile):
    ours = _kinds(load_docs(rendered / profile / "chart.yaml"))
    assert ours["Namespace"] == {"tributary-jobs"}
    assert ours["ServiceAccount"] == {"tributary-spark", "tributary-airflow-worker", "tributary-mlflow"}
    assert ours["PriorityClass"] == {"tributary-platform", "tributary-streaming", "tributary-batch"}
    assert ours["ResourceQuota"] == ours["LimitRange"] == {"tributary-jobs"}
    assert "SparkApplication" not in ours  # the stream is the fraud_stream task's (ADR 0006), not the chart's
    assert "tributary-mlflow" in ours["Deployment"] and "tributary-mlflow" in ours["Service"]
    local = profile in ("kind", "minikube")
    assert ("tributary-s3" in ours.get("StatefulSet", set())) is local  # the S3 store only on local clusters
    assert ("tributary-postgresql" in ours.get("StatefulSet", set())) is local
    assert ("tributary-create-databases" in ours.get("Job", set())) is not local  # RDS / Cloud SQL only
    crds = _kinds(load_docs(rendered / profile / "crds.yaml"))["CustomResourceDefinition"]
    assert "sparkapplications.sparkoperator.k8s.io" in crds


@pytest.mark.parametrize("profile", PROFILES)
def test_the_upstream_spark_operator_chart_renders_with_our_values(rendered, profile):
    docs = load_docs(rendered / profile / "spark-operator.yaml")
    kinds = _kinds(docs)
    (controller,) = [d for d in docs if d["kind"] == "Deployment"]
    args = " ".join(controller["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--namespaces=tributary-jobs" in args
    assert controller["spec"]["template"]["spec"]["nodeSelector"] == {"tributary.dev/pool": "system"}
    assert "MutatingWebhookConfiguration" not in kinds  # webhook off: pod templates carry everything
    assert all(d["metadata"]["labels"]["helm.sh/chart"] == "spark-operator-2.5.2" for d in docs)


@pytest.mark.parametrize("profile", render_k8s.DOCUMENTED_PROFILES)
def test_the_documented_specs_are_the_rendered_ones_and_the_readme_links_each(rendered, profile):
    rendered_apps = sorted((rendered / profile / "sparkapplications").glob("*.yaml"))
    assert len(rendered_apps) == 6
    readme = (REPO_ROOT / "README.md").read_text()
    for app in rendered_apps:
        documented = render_k8s.documented_spec_path(profile, app.stem)
        assert documented.read_text() == app.read_text(), f"stale {documented}; run `make render`"
        assert f"](docs/specs/{profile}/{app.stem}.yaml)" in readme, f"README's job table lacks {documented}"
    assert sorted(p.name for p in (render_k8s.SPECS_DIR / profile).iterdir()) == [p.name for p in rendered_apps]


def test_cloud_values_reach_service_accounts_env_and_mlflow(rendered):
    docs = load_docs(rendered / "eks" / "chart.yaml")
    sas = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert sas["tributary-spark"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("-spark")
    env = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tributary-env"]
    assert {d["metadata"]["namespace"] for d in env} == {"tributary", "tributary-jobs"}
    assert env[0]["data"]["TRIBUTARY_LAKE_BUCKET"] == "example-tributary-lake"
    assert env[0]["data"]["TRIBUTARY_PROFILE"] == "eks"
    (mlflow,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "tributary-mlflow"]
    container_env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert container_env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://example-tributary-mlflow-artifacts/artifacts"
    assert container_env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "tributary-db"
    assert "value" not in container_env["MLFLOW_AUTH_ADMIN_PASSWORD"]  # from a Secret, never a literal
    gke = load_docs(rendered / "gke" / "chart.yaml")
    (gke_mlflow,) = [d for d in gke if d["kind"] == "Deployment" and d["metadata"]["name"] == "tributary-mlflow"]
    gke_env = {e["name"]: e for e in gke_mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert gke_env["MLFLOW_ARTIFACTS_DESTINATION"]["value"].startswith("gs://")


def test_nothing_in_the_chart_holds_a_secret(rendered):
    for profile in PROFILES:
        docs = load_docs(rendered / profile / "chart.yaml")
        assert not [d for d in docs if d["kind"] == "Secret"], profile


def test_the_grafana_dashboard_ships_verbatim_for_the_sidecar_when_asked(staged_chart, rendered):
    for profile in PROFILES:  # off by default
        assert "tributary-grafana-dashboard" not in (rendered / profile / "chart.yaml").read_text(), profile
    proc = helm_template(staged_chart, "eks", "--set", "metrics.grafanaDashboard.enabled=true",
                         "--set", "metrics.grafanaDashboard.labels.team=data")
    assert proc.returncode == 0, proc.stderr
    (config_map,) = [d for d in yaml.safe_load_all(proc.stdout)
                     if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tributary-grafana-dashboard"]
    assert config_map["metadata"]["namespace"] == "tributary"
    assert {"grafana_dashboard": "1", "team": "data"}.items() <= config_map["metadata"]["labels"].items()
    shipped = json.loads(config_map["data"]["tributary-pipeline.json"])
    assert shipped == json.loads((REPO_ROOT / "helm/tributary/dashboards/tributary-pipeline.json").read_text())


def test_the_airflow_charts_statsd_exporter_maps_as_make_up_does():
    """The Apache Airflow chart (it cannot be fetched here, so it is not rendered) gets `make up`'s StatsD mapping
    and [metrics] settings, which tests/services checks live: its ConfigMap writes statsd.overrideMappings as the
    exporter's `mappings`, which must be the whole of conf/metrics/statsd-mapping.yaml, and Airflow's config the
    settings scripts/up.py gives Airflow, but where to send them (the chart points them at its own exporter)."""
    from tests.pipeline_data import load_script

    airflow = yaml.safe_load((CHART / "values.yaml").read_text())["airflow"]
    mapping = yaml.safe_load((REPO_ROOT / "conf" / "metrics" / "statsd-mapping.yaml").read_text())
    assert set(mapping) == {"mappings"} and mapping["mappings"]  # nothing the chart's ConfigMap would drop
    assert airflow["statsd"]["enabled"] is True and airflow["statsd"]["overrideMappings"] == mapping["mappings"]
    up = load_script("up")
    wanted = {key.removeprefix("AIRFLOW__METRICS__").lower(): value for key, value in up.statsd_env(up.Ports()).items()
              if key.removeprefix("AIRFLOW__METRICS__") not in {"STATSD_ON", "STATSD_HOST", "STATSD_PORT"}}
    assert airflow["config"]["metrics"] == wanted and wanted["statsd_influxdb_enabled"] == "True"


def test_what_must_not_render(staged_chart):
    proc = helm_template(staged_chart, "kind", "--set", "jobQuota.enabled=false")
    assert proc.returncode == 0, proc.stderr
    assert "ResourceQuota" not in _kinds([d for d in yaml.safe_load_all(proc.stdout) if d])
    proc = helm_template(staged_chart, "kind", "--set", "priorityClasses.create=false")
    assert "PriorityClass" not in _kinds([d for d in yaml.safe_load_all(proc.stdout) if d])
    assert "priorityClassName: tributary-platform" in proc.stdout  # provided by an administrator then


@pytest.mark.parametrize(
    ("profile", "extra", "message"),
    [
        ("eks", ["--set", "s3Store.enabled=true"], "s3Store.enabled is for kind and minikube"),
        ("eks", ["--set", "historyServer.enabled=true"], 'historyServer.enabled is for kind and minikube: profile "eks"'),
        ("kind", ["--set", "minio.enabled=true"], "minio was removed: MinIO's community images are gone"),
        ("kind", ["--set", "cloud.database.host=db.example"], "postgresql.enabled deploys an in-cluster database"),
        ("kind", ["--set", "postgresql.enabled=false"], "need PostgreSQL"),
        (
            "kind",
            ["--set", "s3Store.enabled=false", "--set", "objectStore.endpoint="],
            "keeps its lake in the chart's S3 store",
        ),
        ("kind", ["--set", "priorityClasses.batch=999999"], "ordered platform > streaming > batch"),
        ("kind", ["--namespace", "default"], 'install into namespace "tributary"'),
        ("eks", ["--set", "streaming.kafka.enabled=true"], "kafka.enabled needs streaming.kafka.bootstrapServers"),
        ("eks", ["--set", "kafkaBroker.enabled=true"], 'kafkaBroker.enabled is for kind and minikube: on profile "eks'),
        # The chart no longer runs the stream (ADR 0006): an old values file that switches it names the key.
        ("kind", ["--set", "streaming.enabled=false"], "'enabled' not allowed"),
    ],
)
def test_invalid_combinations_fail_with_a_clear_message(staged_chart, profile, extra, message):
    proc = helm_template(staged_chart, profile, *extra)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_the_schema_is_enforced_by_helm(staged_chart):
    proc = helm_template(staged_chart, "kind", "--set", "mlflow.replicaz=2")
    assert proc.returncode != 0 and "replicaz" in proc.stderr, proc.stderr
