"""Every .tf parses, and every module has the standard shape, typed and described variables,
pinned providers, one naming convention and an up-to-date README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.terraform import tfdocs
from tests.terraform.hcl import ALL_MODULES, CHART, ENVS, MODULES, REPO_ROOT, TF_ROOT, load_module, parse_file, tf_files

REQUIRED_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
BOUNDED_RANGE = re.compile(r"^>=\s*\d+(\.\d+)*\s*,\s*<\s*\d+(\.\d+)*$")


def test_terraform_tree_has_the_expected_modules() -> None:
    found = {str(p.parent.relative_to(TF_ROOT)) for p in tf_files()}
    assert found == set(ALL_MODULES), f"unexpected Terraform directories: {sorted(found)}"


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(TF_ROOT)))
def test_every_tf_file_parses_with_python_hcl2(path: Path) -> None:
    doc = parse_file(path)
    assert doc, f"{path} parsed to nothing"


def test_hcl2_rejects_broken_hcl(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tf"
    bad.write_text('resource "aws_s3_bucket" "x" {\n  bucket = "unterminated\n')
    with pytest.raises(Exception):
        parse_file(bad)


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_module_has_standard_files(rel: str) -> None:
    missing = [f for f in REQUIRED_FILES if not (TF_ROOT / rel / f).is_file()]
    assert not missing, f"terraform/{rel} lacks {missing}"


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_every_variable_is_typed_and_described(rel: str) -> None:
    mod = load_module(rel)
    assert mod.variables, f"terraform/{rel} declares no variables"
    for name, var in mod.variables.items():
        assert SNAKE.match(name), f"{rel}: variable {name} is not snake_case"
        assert str(var.get("type", "")).strip(), f"{rel}: variable {name} has no type"
        assert len(str(var.get("description", "")).strip()) >= 15, f"{rel}: variable {name} has no real description"


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_every_output_is_described(rel: str) -> None:
    mod = load_module(rel)
    assert mod.outputs, f"terraform/{rel} declares no outputs"
    for name, out in mod.outputs.items():
        assert len(str(out.get("description", "")).strip()) >= 10, f"{rel}: output {name} has no description"


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_variables_only_live_in_variables_tf_and_outputs_in_outputs_tf(rel: str) -> None:
    for path in sorted((TF_ROOT / rel).glob("*.tf")):
        doc = parse_file(path)
        if path.name != "variables.tf":
            assert not doc.get("variable"), f"{path} declares variables outside variables.tf"
        if path.name != "outputs.tf":
            assert not doc.get("output"), f"{path} declares outputs outside outputs.tf"


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_terraform_addresses_are_snake_case(rel: str) -> None:
    mod = load_module(rel)
    names = [n for _, n in mod.resources] + [n for _, n in mod.data] + list(mod.modules) + list(mod.locals)
    bad = [n for n in names if not SNAKE.match(n)]
    assert not bad, f"{rel}: addresses not in snake_case: {bad}"


# The attribute that names a cloud object, where it is not `name`.
NAME_ATTR = {"aws_s3_bucket": "bucket", "aws_db_instance": "identifier", "google_service_account": "account_id"}
# Names that live inside a cluster or a database instance, not in the cloud account.
CLUSTER_SCOPED = {
    ("google_container_node_pool", "this"),  # node pool names are per cluster, like EKS node group keys
    ("helm_release", "cluster_autoscaler"),
    ("helm_release", "nvidia_device_plugin"),
    ("google_sql_database", "this"),
    ("google_sql_user", "this"),
}


def _is_prefixed(value: str, locals_: dict) -> bool:
    if value.startswith("${var.name_prefix}-"):
        return True
    m = re.match(r"^\$\{local\.(\w+)\}", value)
    return bool(m) and str(locals_.get(m.group(1), "")).startswith("${var.name_prefix}-")


@pytest.mark.parametrize("rel", MODULES)
def test_cloud_resource_names_use_the_name_prefix(rel: str) -> None:
    """Every cloud object is called `<name_prefix>-<component>`; cluster-scoped names are listed exceptions."""
    mod = load_module(rel)
    checked = 0
    for (rtype, rname), body in mod.resources.items():
        attr = NAME_ATTR.get(rtype, "name")
        if attr not in body or (rtype, rname) in CLUSTER_SCOPED:
            continue
        value = str(body[attr])
        checked += 1
        if rtype == "aws_kms_alias":
            assert value.startswith("alias/${var.name_prefix}-"), f"{rel}: {rtype}.{rname} = {value!r}"
        elif value == "${each.value}":
            assert body.get("for_each") == "${local.buckets}", f"{rel}: {rtype}.{rname} is named by an unknown map"
            assert all(_is_prefixed(str(v), mod.locals) for v in mod.locals["buckets"].values())
        else:
            assert _is_prefixed(value, mod.locals), f"{rel}: {rtype}.{rname}.{attr} = {value!r} lacks <name_prefix>-"
    assert checked >= 8, f"{rel}: the naming test looked at too few resources ({checked})"


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_required_version_and_providers_are_declared(rel: str) -> None:
    mod = load_module(rel)
    assert mod.terraform and mod.terraform[0].get("required_version"), f"{rel}: no required_version"
    providers = mod.required_providers()
    assert providers, f"{rel}: no required_providers"
    for name, spec in providers.items():
        assert spec.get("source", "").startswith("hashicorp/"), f"{rel}: provider {name} has no source"
        version = spec.get("version", "")
        if rel in ENVS:
            assert EXACT_VERSION.match(version), f"{rel}: provider {name} is not pinned exactly ({version!r})"
        else:
            assert BOUNDED_RANGE.match(version), f"{rel}: provider {name} needs a '>= x, < y' range ({version!r})"


@pytest.mark.parametrize("rel,backend", [("envs/eks", "s3"), ("envs/gke", "gcs")])
def test_root_backend_is_partial_so_it_is_configurable(rel: str, backend: str) -> None:
    (block,) = load_module(rel).terraform
    (backends,) = block["backend"]
    assert backends == {backend: {}}, f"{rel}: backend must be an empty {backend} block, configured by -backend-config"
    assert (TF_ROOT / rel / "backend.hcl.example").is_file()


@pytest.mark.parametrize("rel", (*MODULES, CHART))
def test_child_modules_configure_no_providers_and_no_backend(rel: str) -> None:
    mod = load_module(rel)
    assert not mod.providers, f"{rel}: provider blocks belong in the root modules"
    assert "backend" not in mod.terraform[0], f"{rel}: backends belong in the root modules"


def test_community_modules_are_pinned_to_a_commit() -> None:
    for rel in ALL_MODULES:
        for name, call in load_module(rel).modules.items():
            source = call["source"]
            if source.startswith(("./", "../")):
                continue
            assert re.search(r"\?ref=[0-9a-f]{40}$", source), f"{rel}: module {name} is not pinned to a commit: {source}"


@pytest.mark.parametrize("rel", ALL_MODULES)
def test_readme_tables_match_the_code(rel: str) -> None:
    current, fresh = tfdocs.updated_readme(rel)
    assert current == fresh, f"terraform/{rel}/README.md is stale: run `uv run python -m tests.terraform.tfdocs`"
    for name in load_module(rel).variables:
        assert f"`{name}`" in current


def test_docs_exist_and_cover_deploy_and_teardown() -> None:
    overview = (TF_ROOT / "README.md").read_text(encoding="utf-8")
    for topic in ("cluster-autoscaler", "Karpenter", "RDS", "Cloud SQL", "install_chart", "cloud.buckets.lake"):
        assert topic in overview, f"terraform/README.md does not mention {topic}"
    guide = (REPO_ROOT / "docs" / "deploy-eks-gke.md").read_text(encoding="utf-8")
    for command in (
        "terraform init -backend-config=backend.hcl",
        "terraform apply",
        "aws eks update-kubeconfig",
        "gcloud container clusters get-credentials",
        "kubectl get pods -n tributary",
        "kubectl get pods -n tributary-jobs",
        "port-forward",
        "fraud_pipeline",
        "force_destroy",
        "terraform destroy",
    ):
        assert command in guide, f"docs/deploy-eks-gke.md lacks `{command}`"
