"""Structural checks of terraform/modules/gke: VPC-native private cluster, node pools as the chart
expects them, Workload Identity for the chart's service accounts, private versioned buckets with
bucket-level IAM only, and a private Cloud SQL instance."""

from __future__ import annotations

import re

import pytest

from tests.terraform.hcl import load_module

POOL = "tributary.dev/pool"
CONTRACT_SERVICE_ACCOUNTS = {
    "spark": ("tributary-jobs", "tributary-spark"),
    "airflow": ("tributary", "tributary-airflow-worker"),
    "mlflow": ("tributary", "tributary-mlflow"),
}
REQUIRED_BUCKETS = {"lake", "checkpoints", "mlflow_artifacts", "spark_events"}
OBJECT_ROLES = {"roles/storage.objectUser", "roles/storage.objectViewer", "roles/storage.legacyBucketReader"}


def _roles_in(expr: object) -> list[str]:
    return re.findall(r"roles/[A-Za-z0-9_.]+", str(expr))


@pytest.fixture(scope="module")
def gke():
    return load_module("modules/gke")


@pytest.fixture(scope="module")
def pools(gke):
    return gke.resolve(gke.locals["node_pools"])


@pytest.fixture(scope="module")
def node_pool(gke):
    return gke.resource("google_container_node_pool", "this")


def test_cluster_is_vpc_native_private_and_uses_workload_identity(gke) -> None:
    cluster = gke.resource("google_container_cluster", "this")
    assert cluster["networking_mode"] == "VPC_NATIVE"
    policy = cluster["ip_allocation_policy"][0]
    assert policy["cluster_secondary_range_name"] and policy["services_secondary_range_name"]
    assert cluster["workload_identity_config"][0]["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert cluster["private_cluster_config"][0]["enable_private_nodes"] is True
    assert cluster["remove_default_node_pool"] is True
    assert cluster["deletion_protection"] == "${var.deletion_protection}"
    assert cluster["min_master_version"] == "${var.kubernetes_version}"
    assert cluster["resource_labels"] == "${local.labels}"
    assert 'project = "tributary"' in gke.locals["labels"]


def test_node_pools_are_system_spark_cpu_and_gpu(pools, node_pool) -> None:
    assert set(pools) == {"system", "spark-cpu-spot", "spark-cpu-on-demand", "gpu"}
    assert node_pool["for_each"] == "${local.node_pools}"
    assert node_pool["node_config"][0]["labels"] == "${local.node_pool_labels[each.key]}"
    assert pools["spark-cpu-spot"]["spot"] is True
    assert pools["spark-cpu-on-demand"]["spot"] is False
    assert node_pool["node_config"][0]["spot"] == "${each.value.spot}"


@pytest.mark.parametrize(
    "pool,value", [("system", "system"), ("spark-cpu-spot", "spark-cpu"), ("spark-cpu-on-demand", "spark-cpu"), ("gpu", "gpu")]
)
def test_every_pool_carries_the_pool_label(gke, pool: str, value: str) -> None:
    assert gke.resolve(gke.locals["node_pool_labels"])[pool][POOL] == value


def test_gpu_pool_has_accelerator_driver_taint_and_labels(gke, pools, node_pool) -> None:
    gpu = pools["gpu"]
    assert gke.resolve(gke.locals["node_pool_labels"])["gpu"] == {POOL: "gpu", "nvidia.com/gpu.present": "true"}
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    (acc,) = gpu["accelerators"]
    assert acc["type"].startswith("nvidia-") and acc["count"] >= 1
    assert acc["gpu_driver_version"] in ("DEFAULT", "LATEST"), "GKE must install the driver"
    dynamics = {k: v for d in node_pool["node_config"][0]["dynamic"] for k, v in d.items()}
    assert dynamics["taint"]["for_each"] == "${each.value.taints}"
    accel = dynamics["guest_accelerator"]
    assert accel["for_each"] == "${each.value.accelerators}"
    driver = accel["content"][0]["gpu_driver_installation_config"][0]
    assert driver["gpu_driver_version"] == "${guest_accelerator.value.gpu_driver_version}"


def test_only_the_gpu_pool_is_tainted_or_has_accelerators(pools) -> None:
    assert {n for n, p in pools.items() if p["taints"]} == {"gpu"}
    assert {n for n, p in pools.items() if p["accelerators"]} == {"gpu"}


@pytest.mark.parametrize("pool", ["system", "spark-cpu-spot", "spark-cpu-on-demand", "gpu"])
def test_autoscaling_bounds_are_set_and_consistent(pools, node_pool, pool: str) -> None:
    p = pools[pool]
    lo, hi = p["min_node_count"], p["max_node_count"]
    assert isinstance(lo, int) and isinstance(hi, int), f"{pool}: bounds do not resolve: {p}"
    assert 0 <= lo <= hi and hi >= 1
    auto = node_pool["autoscaling"][0]
    assert auto["total_min_node_count"] == "${each.value.min_node_count}"
    assert auto["total_max_node_count"] == "${each.value.max_node_count}"


def test_gpu_and_spark_pools_scale_to_zero_but_system_does_not(pools) -> None:
    assert pools["gpu"]["min_node_count"] == 0
    assert pools["spark-cpu-spot"]["min_node_count"] == 0
    assert pools["system"]["min_node_count"] >= 1


def test_nodes_use_gke_metadata_server_and_a_dedicated_service_account(gke, node_pool) -> None:
    cfg = node_pool["node_config"][0]
    assert cfg["workload_metadata_config"][0]["mode"] == "GKE_METADATA"
    assert cfg["service_account"] == "${google_service_account.nodes.email}"
    roles = set(_roles_in(gke.resource("google_project_iam_member", "nodes")["for_each"]))
    assert roles and roles <= {"roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader"}, roles


def test_buckets_are_private_uniform_versioned(gke) -> None:
    assert REQUIRED_BUCKETS <= set(gke.locals["buckets"])
    for name in ("this", "access_logs"):
        bucket = gke.resource("google_storage_bucket", name)
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["versioning"][0]["enabled"] is True, name
        assert bucket["force_destroy"] == "${var.force_destroy}", name
    assert gke.variable_default("force_destroy") is False


def test_buckets_take_the_customer_key_when_given(gke) -> None:
    # GCS always encrypts at rest; a CMEK replaces Google's key when kms_key_name is set.
    (dyn,) = gke.resource("google_storage_bucket", "this")["dynamic"]
    assert dyn["encryption"]["for_each"] == "${var.kms_key_name == null ? [] : [var.kms_key_name]}"
    assert dyn["encryption"]["content"][0]["default_kms_key_name"] == "${encryption.value}"


def test_workload_identity_binds_exactly_the_chart_service_accounts(gke) -> None:
    workloads = gke.resolve(gke.locals["workloads"])
    assert {k: (w["namespace"], w["service_account"]) for k, w in workloads.items()} == CONTRACT_SERVICE_ACCOUNTS
    binding = gke.resource("google_service_account_iam_member", "workload_identity")
    assert binding["role"] == "roles/iam.workloadIdentityUser"
    assert binding["member"] == (
        "serviceAccount:${var.project_id}.svc.id.goog[${each.value.namespace}/${each.value.service_account}]"
    )


def test_bucket_iam_is_object_level_on_own_buckets_only(gke) -> None:
    roles = gke.resolve(gke.locals["bucket_roles"])
    assert set(roles["read_write"]) | set(roles["read_only"]) <= OBJECT_ROLES
    workloads = gke.resolve(gke.locals["workloads"])
    for name, w in workloads.items():
        assert set(w["read_write"]) | set(w["read_only"]) <= set(gke.locals["buckets"]), name
    assert workloads["mlflow"]["read_write"] == ["mlflow_artifacts"]
    assert "lake" not in workloads["airflow"]["read_write"]
    binding = gke.resource("google_storage_bucket_iam_member", "workload")
    assert binding["bucket"] == "${google_storage_bucket.this[each.value.bucket].name}"


def test_no_primitive_or_admin_roles_anywhere(gke) -> None:
    checked = list(gke.resolve(gke.locals["bucket_roles"]).values())
    checked = [r for roles in checked for r in roles]
    for (rtype, name), body in gke.resources.items():
        if not rtype.endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            continue
        roles = _roles_in(body.get("for_each") if rtype == "google_project_iam_member" else body.get("role"))
        checked += roles
        for role in roles:
            assert role not in ("roles/owner", "roles/editor"), f"{rtype}.{name}: {role}"
            assert not role.endswith(("admin", "Admin")), f"{rtype}.{name}: {role}"
    for role in checked:
        assert role not in ("roles/owner", "roles/editor") and not role.endswith(("admin", "Admin")), role
    assert len(checked) >= 6, checked
    assert not gke.resources_of("google_project_iam_binding") and not gke.resources_of("google_project_iam_policy")


def test_metadata_database_is_private_tls_only_and_protected(gke) -> None:
    db = gke.resource("google_sql_database_instance", "this")
    ip = db["settings"][0]["ip_configuration"][0]
    assert ip["ipv4_enabled"] is False, "no public IP"
    assert ip["ssl_mode"] == "ENCRYPTED_ONLY"
    assert db["deletion_protection"] == "${var.deletion_protection}"
    assert db["settings"][0]["backup_configuration"][0]["point_in_time_recovery_enabled"] is True
    assert set(gke.locals["database_names"].values()) == {"airflow", "mlflow"}
