"""The house rules of the source tree, checked on the code itself (ast, nothing imported):

- the platform package (tributary/) imports no Spark, PyTorch, Delta, MLflow and no job code, at module level or
  inside a function: the Airflow image has none of them;
- the first-party modules (tributary, spark_jobs) import each other without a cycle;
- no job entrypoint imports another: what two jobs share lives in spark_jobs/transforms/ or the plumbing.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tributary.config import REPO_ROOT
from tributary.registry import load_jobs

PACKAGES = ("tributary", "spark_jobs")
NOT_IN_THE_PLATFORM = {"pyspark", "py4j", "torch", "delta", "mlflow", "spark_jobs"}


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the first-party packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (``from a import b`` counts as a and as a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def first_party_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {dep for dep in imported(path) if dep in known and dep != name} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (each found once, from its first module in DFS order)."""
    found, done, stack = [], set(), []

    def visit(node: str) -> None:
        if node in stack:
            found.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        stack.append(node)
        for dep in sorted(graph[node]):
            visit(dep)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    return found


def test_the_platform_package_imports_no_spark_torch_mlflow_or_job_code():
    offending = {name: sorted(dep for dep in imported(path) if dep.split(".")[0] in NOT_IN_THE_PLATFORM)
                 for name, path in modules().items() if name.split(".")[0] == "tributary"}
    assert {name: deps for name, deps in offending.items() if deps} == {}
    assert len(offending) >= 8  # the package was scanned: config, registry, spark_conf, sparkapp, launcher, ...


def test_the_first_party_modules_have_no_import_cycle():
    graph = first_party_graph()
    assert graph["tributary.launcher"] >= {"tributary.kubernetes", "tributary.config"}  # the graph sees real edges
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_entrypoint_imports_another():
    entrypoints = {job.module for job in load_jobs().values()} | {"spark_jobs.generate", "spark_jobs.summary"}
    graph = first_party_graph()
    assert {name: sorted(graph[name] & entrypoints) for name in entrypoints if graph[name] & entrypoints} == {}
    assert "spark_jobs.transforms.card_features" in graph["spark_jobs.stream"]  # the stream's features: a transform
