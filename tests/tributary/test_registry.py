"""Declared IO is the real IO: each job names its datasets by role from conf/jobs.yaml and runs on a catalog that
holds only those, so the lineage Airflow shows (inlets, outlets) cannot drift from what the job touches."""

from __future__ import annotations

import ast
from dataclasses import replace

import pytest

from tributary.config import REPO_ROOT, ConfigError, load_profile
from tributary.registry import ROLE_KINDS, get_job, load_jobs

ROLE_METHODS = {"input": "inputs", "output": "outputs", "state_dataset": "state"}


def _first_party_sources(job) -> list[ast.Module]:
    """The job's entrypoint and the spark_jobs library modules it imports (another job's entrypoint is that job's
    business, not this one's)."""
    entrypoints = {j.module for j in load_jobs().values()}
    tree = ast.parse(job.application.read_text())
    libraries = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "spark_jobs":
            libraries |= {f"spark_jobs.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spark_jobs."):
            libraries.add(node.module)
    files = [REPO_ROOT.joinpath(*m.split(".")).with_suffix(".py") for m in sorted(libraries - entrypoints)]
    return [tree, *(ast.parse(f.read_text()) for f in files if f.is_file())]


def _roles_asked(trees: list[ast.Module]) -> dict[str, set[str]]:
    """kind -> the roles the code asks for: ``<job>.input("bronze")`` and the like, with a literal role."""
    asked: dict[str, set[str]] = {kind: set() for kind in ROLE_KINDS}
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ROLE_METHODS and node.args and isinstance(node.args[0], ast.Constant)):
                asked[ROLE_METHODS[node.func.attr]].add(node.args[0].value)
    return asked


@pytest.mark.parametrize("name", sorted(load_jobs()))
def test_each_job_asks_for_exactly_its_declared_roles_and_names_no_dataset(name):
    job = get_job(name)
    trees = _first_party_sources(job)
    datasets = set(load_profile("local").catalog.datasets)
    literals = {node.value for tree in trees for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and node.value in datasets}
    assert literals == set(), f"{name} names datasets literally; ask conf/jobs.yaml by role instead"
    declared = {kind: set(getattr(job, kind)) for kind in ROLE_KINDS}
    assert _roles_asked(trees) == declared
    registered = {node.args[0].value for tree in trees for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_job"}
    assert registered == {name}  # its own entry, not another job's
    parsed = [node for node in ast.walk(trees[0])
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "parse_job_args"]
    assert parsed and all(len(node.args) == 3 for node in parsed)  # it runs on its scoped catalog


def test_a_job_touching_a_dataset_it_did_not_declare_fails_naming_it():
    profile = get_job("features").scoped(load_profile("local"))
    assert profile.catalog.uri("features_card").endswith("/silver/card_features")
    with pytest.raises(ConfigError, match=r"job 'features' touches dataset 'predictions', which it does not declare "
                                          r"in conf/jobs.yaml \(it declares \['bronze_transactions', 'features_card'\]\)"):
        profile.catalog.uri("predictions")
    assert load_profile("local").catalog.uri("predictions")  # the unscoped profile still has every dataset
    with pytest.raises(ConfigError, match=r"job 'score' has no outputs role 'predictions' .* \{'scores': 'predictions'\}"):
        get_job("score").output("predictions")
    undeclared = replace(get_job("stream"), state={})
    with pytest.raises(ConfigError, match="touches dataset 'stream_checkpoint'"):
        undeclared.scoped(load_profile("local")).catalog.uri("stream_checkpoint")


def test_lineage_is_the_declared_inputs_and_outputs():
    jobs = load_jobs()
    assert dict(jobs["score"].inputs) == {"features": "features_card", "streamed": "stream_predictions"}
    assert set(jobs["stream"].inputs.values()) == {"landing_stream", "bronze_transactions"}
    assert "stream_checkpoint" not in {*jobs["stream"].inputs.values(), *jobs["stream"].outputs.values()}
    assert jobs["stream"].datasets >= {"stream_checkpoint", "bronze_transactions"}


def test_a_role_list_instead_of_a_mapping_fails_at_load(tmp_path):
    conf = REPO_ROOT / "conf"
    (tmp_path / "workloads.yaml").write_text((conf / "workloads.yaml").read_text())
    jobs = (conf / "jobs.yaml").read_text().replace("inputs: {bronze: bronze_transactions}",
                                                    "inputs: [bronze_transactions]")
    (tmp_path / "jobs.yaml").write_text(jobs)
    with pytest.raises(ConfigError, match=r"job 'features' inputs maps a role to a dataset name"):
        load_jobs(tmp_path)
