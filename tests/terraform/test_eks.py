"""Structural checks of terraform/modules/eks: node groups as the chart expects them, autoscaling
bounds, encrypted private versioned buckets, and IAM scoped to the project's own buckets."""

from __future__ import annotations

import re

import pytest

from tests.terraform.hcl import load_module, statements

POOL = "tributary.dev/pool"
CONTRACT_SERVICE_ACCOUNTS = {
    "spark": ("tributary-jobs", "tributary-spark"),
    "airflow": ("tributary", "tributary-airflow-worker"),
    "mlflow": ("tributary", "tributary-mlflow"),
}
REQUIRED_BUCKETS = {"lake", "checkpoints", "mlflow_artifacts", "spark_events"}


@pytest.fixture(scope="module")
def eks():
    return load_module("modules/eks")


@pytest.fixture(scope="module")
def node_groups(eks):
    groups = eks.modules["eks"]["eks_managed_node_groups"]
    return {name: eks.resolve(body) for name, body in groups.items()}


def test_node_groups_are_system_spark_cpu_spot_and_on_demand_and_gpu(node_groups) -> None:
    assert set(node_groups) == {"system", "spark-cpu-spot", "spark-cpu-on-demand", "gpu"}
    assert node_groups["spark-cpu-spot"]["capacity_type"] == "SPOT"
    assert node_groups["spark-cpu-on-demand"]["capacity_type"] == "ON_DEMAND"
    assert len(node_groups["spark-cpu-spot"]["instance_types"]) >= 2, "spot needs several instance types"


@pytest.mark.parametrize(
    "group,pool", [("system", "system"), ("spark-cpu-spot", "spark-cpu"), ("spark-cpu-on-demand", "spark-cpu"), ("gpu", "gpu")]
)
def test_every_node_group_carries_the_pool_label(node_groups, group: str, pool: str) -> None:
    assert node_groups[group]["labels"][POOL] == pool


def test_gpu_group_is_tainted_and_labelled_as_the_chart_expects(node_groups) -> None:
    gpu = node_groups["gpu"]
    assert gpu["labels"] == {POOL: "gpu", "nvidia.com/gpu.present": "true"}
    taints = list(gpu["taints"].values())
    # EKS spells the Kubernetes effect NoSchedule as NO_SCHEDULE.
    assert taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert gpu["ami_type"] == "AL2023_x86_64_NVIDIA", "the NVIDIA AMI ships the driver"
    assert all(re.match(r"^g(5|6|6e)\.", t) for t in gpu["instance_types"]), gpu["instance_types"]


def test_only_the_gpu_group_is_tainted(node_groups) -> None:
    tainted = {name for name, g in node_groups.items() if g.get("taints")}
    assert tainted == {"gpu"}


@pytest.mark.parametrize("group", ["system", "spark-cpu-spot", "spark-cpu-on-demand", "gpu"])
def test_autoscaling_bounds_are_set_and_consistent(node_groups, group: str) -> None:
    g = node_groups[group]
    lo, hi, want = g["min_size"], g["max_size"], g["desired_size"]
    assert all(isinstance(v, int) for v in (lo, hi, want)), f"{group}: bounds do not resolve to numbers: {g}"
    assert 0 <= lo <= want <= hi and hi >= 1, f"{group}: min={lo} desired={want} max={hi}"


def test_gpu_and_spark_groups_scale_to_zero_but_system_does_not(node_groups) -> None:
    assert node_groups["gpu"]["min_size"] == 0
    assert node_groups["spark-cpu-spot"]["min_size"] == 0
    assert node_groups["system"]["min_size"] >= 1


def test_cluster_autoscaler_scales_from_zero_with_gpu_taint_hint(eks) -> None:
    groups = eks.resolve(eks.locals["scale_from_zero_groups"])
    assert {"gpu", "spark-cpu-spot", "spark-cpu-on-demand"} <= set(groups)
    gpu_taints = groups["gpu"]["taints"]
    assert list(gpu_taints.values()) == ["true:NoSchedule"]
    tag = eks.resource("aws_autoscaling_group_tag", "node_template")
    assert tag["for_each"] == "${local.autoscaler_template_tags}"
    ca = eks.resource("helm_release", "cluster_autoscaler")
    assert ca["chart"] == "cluster-autoscaler" and ca["version"] == "${var.cluster_autoscaler_chart_version}"


def test_cluster_autoscaler_minor_matches_the_pinned_kubernetes_version(eks) -> None:
    k8s = eks.variable_default("kubernetes_version")
    assert re.fullmatch(r"1\.\d+", k8s), k8s
    assert eks.modules["eks"]["kubernetes_version"] == "${var.kubernetes_version}"
    assert eks.variable_default("cluster_autoscaler_image_tag").startswith(f"v{k8s}."), "autoscaler minor must match"


def test_nvidia_device_plugin_is_installed_on_the_gpu_pool(eks) -> None:
    plugin = eks.resource("helm_release", "nvidia_device_plugin")
    assert plugin["chart"] == "nvidia-device-plugin"
    assert plugin["repository"] == "https://nvidia.github.io/k8s-device-plugin"
    values = plugin["values"][0]
    assert '"tributary.dev/pool" = "gpu"' in values and "Exists" in values and "NoSchedule" in values


def test_buckets_cover_the_platform(eks) -> None:
    buckets = eks.locals["buckets"]
    assert REQUIRED_BUCKETS <= set(buckets)
    assert eks.resource("aws_s3_bucket", "this")["for_each"] == "${local.buckets}"


@pytest.mark.parametrize("name", ["this", "access_logs"])
def test_buckets_are_private(eks, name: str) -> None:
    pab = eks.resource("aws_s3_bucket_public_access_block", name)
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert pab[flag] is True, f"{name}: {flag} is not true"
    assert eks.resource("aws_s3_bucket_ownership_controls", name)["rule"][0]["object_ownership"] == "BucketOwnerEnforced"


@pytest.mark.parametrize("name", ["this", "access_logs"])
def test_buckets_are_versioned_and_deny_plain_http(eks, name: str) -> None:
    versioning = eks.resource("aws_s3_bucket_versioning", name)
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    doc_name = "bucket" if name == "this" else name
    deny = [s for s in statements(eks.data[("aws_iam_policy_document", doc_name)]) if s.get("effect") == "Deny"]
    assert any(c["variable"] == "aws:SecureTransport" for s in deny for c in s["condition"])


def test_platform_buckets_are_encrypted_with_the_customer_key(eks) -> None:
    sse = eks.resource("aws_s3_bucket_server_side_encryption_configuration", "this")
    rule = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert rule["sse_algorithm"] == "aws:kms" and rule["kms_master_key_id"] == "${aws_kms_key.this.arn}"
    assert eks.resource("aws_kms_key", "this")["enable_key_rotation"] is True
    # S3 server access logs can only land in an SSE-S3 bucket.
    logs = eks.resource("aws_s3_bucket_server_side_encryption_configuration", "access_logs")
    assert logs["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "AES256"


def test_workload_roles_match_the_chart_service_accounts(eks) -> None:
    workloads = eks.resolve(eks.locals["workloads"])
    assert {k: (w["namespace"], w["service_account"]) for k, w in workloads.items()} == CONTRACT_SERVICE_ACCOUNTS
    for name, w in workloads.items():
        assert set(w["read_write"]) | set(w["read_only"]) <= set(eks.locals["buckets"]), name
        assert w["read_write"], f"{name} writes nowhere"
    trust = statements(eks.data[("aws_iam_policy_document", "workload_trust")])
    (stmt,) = trust
    assert stmt["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    conditions = {c["variable"]: c["values"] for c in stmt["condition"]}
    assert conditions["${local.oidc_issuer}:sub"] == [
        "system:serviceaccount:${each.value.namespace}:${each.value.service_account}"
    ]
    assert conditions["${local.oidc_issuer}:aud"] == ["sts.amazonaws.com"]


def test_each_workload_only_reaches_its_own_buckets(eks) -> None:
    workloads = eks.resolve(eks.locals["workloads"])
    assert workloads["mlflow"]["read_write"] == ["mlflow_artifacts"]
    assert "mlflow_artifacts" not in workloads["spark"]["read_write"] + workloads["spark"]["read_only"]
    assert "lake" not in workloads["airflow"]["read_write"], "Airflow only reads the lake"
    for stmt in statements(eks.data[("aws_iam_policy_document", "workload")]):
        for resource in stmt["resources"] if isinstance(stmt["resources"], list) else [stmt["resources"]]:
            resource = str(resource)
            assert "*" not in resource.replace("/*", ""), f"wildcard resource {resource}"
            assert "aws_s3_bucket.this[b].arn" in resource or resource == "${aws_kms_key.this.arn}", resource


def _allow_statements(eks):
    for (dtype, name), doc in eks.data.items():
        if dtype != "aws_iam_policy_document" or name == "kms":
            continue
        for stmt in statements(doc):
            if stmt.get("effect", "Allow") == "Allow":
                yield name, stmt


def test_no_iam_policy_grants_wildcard_actions(eks) -> None:
    found = 0
    for name, stmt in _allow_statements(eks):
        for action in stmt.get("actions", []):
            found += 1
            assert action != "*" and not action.endswith(":*"), f"{name}: wildcard action {action}"
            assert not re.search(r"iam:|PassRole|CreateRole|Put.*Policy", action), f"{name}: IAM admin action {action}"
    assert found >= 10


def test_wildcard_resources_only_for_describe_calls(eks) -> None:
    for name, stmt in _allow_statements(eks):
        resources = stmt.get("resources", [])
        if isinstance(resources, list) and "*" in resources:
            bad = [a for a in stmt["actions"] if not re.match(r"^[a-z0-9]+:(Describe|Get|List)", a)]
            assert not bad, f"{name}: {bad} granted on every resource"


def test_cluster_autoscaler_only_resizes_this_clusters_groups(eks) -> None:
    scale = [
        s for s in statements(eks.data[("aws_iam_policy_document", "cluster_autoscaler")])
        if "autoscaling:SetDesiredCapacity" in s["actions"]
    ]
    (stmt,) = scale
    assert stmt["condition"][0]["variable"] == "aws:ResourceTag/k8s.io/cluster-autoscaler/${local.cluster_name}"
    assert stmt["condition"][0]["values"] == ["owned"]


def test_no_aws_managed_admin_policies_are_attached(eks) -> None:
    for name, att in eks.resources_of("aws_iam_role_policy_attachment").items():
        arn = att["policy_arn"]
        assert "AdministratorAccess" not in arn and "FullAccess" not in arn, f"{name}: {arn}"


def test_metadata_database_is_private_encrypted_and_protected(eks) -> None:
    db = eks.resource("aws_db_instance", "this")
    assert db["engine"] == "postgres"
    assert db["storage_encrypted"] is True and db["kms_key_id"] == "${aws_kms_key.this.arn}"
    assert db["publicly_accessible"] is False
    assert db["deletion_protection"] == "${var.deletion_protection}"
    assert eks.variable_default("deletion_protection") is True
    params = {p["name"]: p["value"] for p in eks.resource("aws_db_parameter_group", "this")["parameter"]}
    assert params["rds.force_ssl"] == "1"


def test_buckets_survive_destroy_unless_asked(eks) -> None:
    assert eks.resource("aws_s3_bucket", "this")["force_destroy"] == "${var.force_destroy}"
    assert eks.variable_default("force_destroy") is False


def test_cluster_api_is_not_open_to_the_internet_by_default(eks) -> None:
    call = eks.modules["eks"]
    assert call["endpoint_public_access_cidrs"] == "${var.cluster_endpoint_public_access_cidrs}"
    assert eks.variable_default("cluster_endpoint_public_access_cidrs") == []
    assert call["encryption_config"] == {"resources": ["secrets"]}
