"""The root modules envs/eks and envs/gke and the chart module they share (modules/chart): the Tributary chart
installed with helm_release behind `install_chart`, the `cloud.*` values contract, and the outputs an operator
needs."""

from __future__ import annotations

import json

import pytest

from tests.terraform.hcl import CHART, ENVS, TF_ROOT, load_module, optional_defaults, unwrap

CLOUD_BUCKET_KEYS = {"lake", "checkpoints", "mlflowArtifacts", "sparkEvents", "airflowLogs"}
CLOUD_SA_KEYS = {"spark", "airflowWorker", "mlflow"}
CLOUD_DB_KEYS = {"host", "port", "airflowDatabase", "mlflowDatabase", "existingSecret", "sslMode", "createDatabases"}
REQUIRED_OUTPUTS = {"cluster_name", "kubeconfig_command", "bucket_names", "airflow", "mlflow"}


def _provider(rel: str) -> str:
    return rel.split("/")[1]


@pytest.mark.parametrize("rel", ENVS)
def test_chart_module_is_guarded_by_install_chart_and_follows_the_platform(rel: str) -> None:
    env = load_module(rel)
    install = env.variables["install_chart"]
    assert install["type"] == "bool" and install["default"] is True
    call = env.modules["chart"]
    assert call["source"] == "../../modules/chart"
    assert call["count"] == "${var.install_chart ? 1 : 0}"
    assert call["profile"] == _provider(rel)
    assert call["platform"] == "${module.platform}"
    # Ordered after the whole platform module (node groups too), so destroyed before it.
    assert "${module.platform}" in call["depends_on"]
    assert call["namespace"] == "${local.platform_namespace}" and env.locals["platform_namespace"] == "tributary"
    assert call["mlflow_auth_secret"] == "${local.mlflow_auth_secret}"
    assert env.locals["mlflow_auth_secret"] == "tributary-mlflow-auth"
    # The chart's resources live in the module only: one copy for both clouds.
    assert not env.resources_of("helm_release") and not env.resources_of("kubernetes_secret_v1")


@pytest.mark.parametrize("rel", ENVS)
def test_the_platform_module_outputs_what_the_chart_module_takes(rel: str) -> None:
    wanted = set(optional_defaults(unwrap(load_module(CHART).variables["platform"]["type"])))
    assert wanted and wanted <= set(load_module(f"modules/{_provider(rel)}").outputs), sorted(wanted)


def test_chart_path_and_values_file_point_at_helm_tributary() -> None:
    chart = load_module(CHART)
    release = chart.resource("helm_release", "tributary")
    assert release["chart"] == "${local.chart_path}"
    assert chart.locals["chart_path"] == "${path.module}/../../../helm/tributary"
    # path.module is terraform/modules/chart, so that is <repo>/helm/tributary.
    assert (TF_ROOT / CHART / "../../../helm/tributary").resolve() == TF_ROOT.parent / "helm" / "tributary"
    assert chart.locals["chart_values_file"] == "${local.chart_path}/values-${var.profile}.yaml"
    for rel in ENVS:
        assert (TF_ROOT.parent / "helm" / "tributary" / f"values-{_provider(rel)}.yaml").is_file()
    assert any("file(local.chart_values_file)" in v for v in release["values"])
    assert any("yamlencode(local.chart_cloud_values)" in v for v in release["values"])
    (pre,) = release["lifecycle"][0]["precondition"]
    assert "fileexists" in pre["condition"] and "install_chart" in pre["error_message"]


def test_chart_release_waits_for_its_secrets() -> None:
    release = load_module(CHART).resource("helm_release", "tributary")
    assert {"${kubernetes_secret_v1.database}", "${kubernetes_secret_v1.mlflow_auth}"} <= set(release["depends_on"])
    assert release["wait"] is True and release["dependency_update"] is False


def test_cloud_values_contract() -> None:
    cloud = load_module(CHART).locals["chart_cloud_values"]["cloud"]
    # The platform is the values file's `profile` (values-<profile>.yaml), not stored again under cloud.
    assert set(cloud) == {"buckets", "serviceAccountAnnotations", "database"}, sorted(cloud)
    assert set(cloud["buckets"]) == CLOUD_BUCKET_KEYS
    assert set(cloud["serviceAccountAnnotations"]) == CLOUD_SA_KEYS
    assert set(cloud["database"]) == CLOUD_DB_KEYS
    assert cloud["database"]["existingSecret"] == "${local.database_secret}"


def test_cloud_values_keys_are_documented() -> None:
    readme = (TF_ROOT / "README.md").read_text(encoding="utf-8")
    cloud = load_module(CHART).locals["chart_cloud_values"]["cloud"]
    for key, value in cloud.items():
        if isinstance(value, dict):
            for sub in value:
                assert f"cloud.{key}.{sub}" in readme, f"terraform/README.md does not document cloud.{key}.{sub}"
        else:
            assert f"cloud.{key}" in readme, f"terraform/README.md does not document cloud.{key}"


def test_database_secret_and_mlflow_auth_follow_the_contract() -> None:
    chart = load_module(CHART)
    assert chart.locals["database_secret"] == "tributary-db"
    assert chart.variables["namespace"]["default"] == "tributary"
    assert chart.variables["mlflow_auth_secret"]["default"] == "tributary-mlflow-auth"
    mlflow_auth = chart.resource("kubernetes_secret_v1", "mlflow_auth")
    assert set(mlflow_auth["data"]) == {"username", "password", "flask-secret-key"}
    secret = chart.resource("kubernetes_secret_v1", "database")
    # `connection` is what the Airflow chart's data.metadataSecretName must hold.
    assert set(secret["data"]) == {"username", "password", "connection", "mlflow-connection"}
    assert all("sslmode=require" in secret["data"][k] for k in ("connection", "mlflow-connection"))


@pytest.mark.parametrize("rel", ENVS)
def test_outputs_tell_how_to_reach_the_platform(rel: str) -> None:
    env = load_module(rel)
    assert REQUIRED_OUTPUTS <= set(env.outputs)
    for ui in ("airflow", "mlflow"):
        value = env.outputs[ui]["value"]
        assert "port-forward" in value["port_forward"] and value["url"].startswith("http://localhost:")


@pytest.mark.parametrize("rel", ENVS)
def test_kubernetes_providers_target_the_new_cluster(rel: str) -> None:
    env = load_module(rel)
    k8s = env.providers["kubernetes"]
    assert k8s["host"] == "${module.platform.cluster_endpoint}"
    helm = env.providers["helm"]["kubernetes"]
    assert helm["host"] == "${module.platform.cluster_endpoint}"


def test_eks_admin_cidrs_have_no_default() -> None:
    """Whoever deploys states where the API may be reached from; nothing defaults to the internet."""
    assert "default" not in load_module("envs/eks").variables["admin_cidrs"]
    assert "default" not in load_module("envs/gke").variables["master_authorized_cidrs"]


def _sample(value, key: str, annotation_key: str):
    """A concrete instance of the `cloud` document: literals as written, expressions as typed placeholders."""
    if isinstance(value, dict):
        return {k: _sample(v, k, annotation_key) for k, v in value.items()}
    if not (isinstance(value, str) and value.startswith("${")):
        return value
    if key == "port":
        return 5432
    if key == "createDatabases":
        return True
    if "service_account_annotations" in value:
        return {annotation_key: "placeholder"}
    return "placeholder"


@pytest.mark.parametrize("rel", ENVS)
def test_cloud_values_satisfy_the_chart_schema(rel: str) -> None:
    """The chart's values.schema.json (additionalProperties: false) accepts what Terraform passes."""
    import jsonschema

    schema_path = TF_ROOT.parent / "helm" / "tributary" / "values.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    module = load_module(f"modules/{_provider(rel)}")
    annotation = {"eks": "eks.amazonaws.com/role-arn", "gke": "iam.gke.io/gcp-service-account"}[_provider(rel)]
    assert annotation in module.outputs["service_account_annotations"]["value"]
    document = _sample(load_module(CHART).locals["chart_cloud_values"], "", annotation)
    validator = jsonschema.validators.validator_for(schema)(schema["properties"]["cloud"])
    errors = sorted(validator.iter_errors(document["cloud"]), key=str)
    assert not errors, "chart schema rejects the cloud values:\n" + "\n".join(e.message for e in errors)
    # The schema is strict, so a key the chart does not know would have been caught.
    assert list(validator.iter_errors({**document["cloud"], "bucketz": {}})), "chart schema accepts unknown keys"
