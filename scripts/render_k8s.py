"""Render Tributary's Kubernetes manifests offline: `make render [PROFILE=kind|minikube|eks|gke]`.

For each Kubernetes profile this writes ``build/rendered/<profile>/``:

- ``sparkapplications/<job>.yaml``: every SparkApplication the DAGs would submit, one file per job. They are taken
  from the DAG files themselves (the ``template_spec`` of each task, built by the launcher with the profile), so
  they are exactly what Airflow submits; Airflow templates in names and arguments are left for the operator.
- ``helm template`` of helm/tributary with ``values-<profile>.yaml`` (and, on eks and gke, Terraform's ``cloud``
  values with placeholders, helm/tributary/ci/), split into ``chart.yaml`` (this chart's objects),
  ``<subchart>.yaml`` (each dependency's objects: ``spark-operator.yaml`` is the pinned upstream chart, copied from
  the pinned Go module github.com/kubeflow/spark-operator/v2 into a staged copy of the chart) and ``crds.yaml``.
  Namespaced objects that a chart leaves without ``metadata.namespace`` get the release namespace, as
  ``helm install`` does. A dependency whose chart is not in helm/tributary/charts/ (the Apache Airflow chart,
  which cannot be fetched here) is turned off in the staged copy and listed in ``RENDERED.md``; after
  ``helm dependency build`` it renders too.

It also refreshes ``docs/specs/<profile>/<job>.yaml`` for kind and eks, each job's SparkApplication as committed
documentation (the README's job table links them), from the same rendering (tests/helm fails when one is stale).
The chart holds no SparkApplication: the stream's is the fraud_stream task's (ADR 0006).

Tools come from ``make k8s-tools``: helm in .tools/bin, the spark-operator and prometheus-operator modules recorded
in .tools/<module>.json.

Usage::

    python scripts/render_k8s.py [--profile kind ...] [--out build/rendered] [--no-sync-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

CHART_DIR = REPO_ROOT / "helm" / "tributary"
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
K8S_PROFILES = ("kind", "minikube", "eks", "gke")
DOCUMENTED_PROFILES = ("kind", "eks")  # a local cluster and a cloud one: docs/specs/<profile>/<job>.yaml
SPECS_DIR = REPO_ROOT / "docs" / "specs"
TOOLS = REPO_ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
DEFAULT_OUT = REPO_ROOT / "build" / "rendered"
STAGE_DIR = REPO_ROOT / "build" / "chart"
RELEASE, NAMESPACE = "tributary", "tributary"
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "CustomResourceDefinition",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "PersistentVolume", "StorageClass",
}  # fmt: skip
MISSING_TOOLS = "run `make k8s-tools`"


class ToolMissing(RuntimeError):
    """A pinned tool is not installed; the message says how to install it."""


def versions() -> dict[str, str]:
    """The pins in k8s/versions.env (KEY=VALUE lines)."""
    pins = {}
    for line in (REPO_ROOT / "k8s" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key] = value
    return pins


def kube_version() -> str:
    return versions()["KUBERNETES_VERSION"]


def helm_bin() -> Path:
    """The pinned helm; fails with how to install it."""
    if not HELM.is_file():
        raise ToolMissing(f"helm is not installed in {HELM}; {MISSING_TOOLS}")
    return HELM


def _module_dir(name: str, pin: str, inside: str) -> Path:
    """The directory of a pinned Go module scripts/setup_tools.sh downloaded (recorded in .tools/<name>.json)."""
    want = f"v{versions()[pin]}"
    record_file = TOOLS / f"{name}.json"
    if not record_file.is_file():
        raise ToolMissing(f"the {name} module is not downloaded; {MISSING_TOOLS}")
    record = json.loads(record_file.read_text())
    path = Path(record["Dir"])
    if record.get("Version") != want or not (path / inside).is_dir():
        raise ToolMissing(f"the {name} module {want} is not in the Go module cache; {MISSING_TOOLS}")
    return path


def spark_operator_dir() -> Path:
    """The pinned spark-operator Go module's directory (CRDs and chart)."""
    return _module_dir("spark-operator", "SPARK_OPERATOR_VERSION", "charts")


def podmonitor_crd() -> dict[str, Any]:
    """The upstream PodMonitor CRD (monitoring.coreos.com) from the pinned prometheus-operator module."""
    crds = _module_dir("prometheus-operator", "PROMETHEUS_OPERATOR_VERSION", "example/prometheus-operator-crd")
    return yaml.safe_load((crds / "example" / "prometheus-operator-crd" /
                           "monitoring.coreos.com_podmonitors.yaml").read_text())


def sparkapplication_crd() -> dict[str, Any]:
    """The upstream SparkApplication CRD from the pinned module."""
    path = spark_operator_dir() / "charts" / "spark-operator-chart" / "crds"
    return yaml.safe_load((path / "sparkoperator.k8s.io_sparkapplications.yaml").read_text())


def dag_tasks(profile: str) -> dict[str, Any]:
    """task_id -> operator, for every task of every DAG file, built as Airflow builds them on ``profile``."""
    from tributary import launcher

    previous = os.environ.get("TRIBUTARY_PROFILE")
    os.environ["TRIBUTARY_PROFILE"] = profile
    launcher.active_profile.cache_clear()
    try:
        tasks: dict[str, Any] = {}
        for path in DAG_FILES:
            dag = runpy.run_path(str(path), run_name=f"tributary_render_{path.stem}")["dag"]
            for task in dag.tasks:
                if task.task_id in tasks:
                    raise RuntimeError(f"task id {task.task_id} appears in two DAGs; one file per job needs unique ids")
                tasks[task.task_id] = task
        return tasks
    finally:
        if previous is None:
            os.environ.pop("TRIBUTARY_PROFILE", None)
        else:
            os.environ["TRIBUTARY_PROFILE"] = previous
        launcher.active_profile.cache_clear()


def dag_specs(profile: str) -> dict[str, dict[str, Any]]:
    """task_id -> the SparkApplication its operator holds (``template_spec``), for every DAG task on ``profile``."""
    specs = {}
    for task_id, task in dag_tasks(profile).items():
        spec = getattr(task, "template_spec", None)
        if spec is None:
            raise RuntimeError(
                f"task {task_id} is a {type(task).__name__}, not a SparkKubernetesOperator, on {profile}"
            )
        specs[task_id] = spec
    return specs


def documented_spec_path(profile: str, job: str) -> Path:
    """Where the README's job table links ``job``'s SparkApplication on ``profile`` (one of DOCUMENTED_PROFILES)."""
    return SPECS_DIR / profile / f"{job}.yaml"


def sync(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` when it differs (a committed copy of rendered output)."""
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"render: refreshed {path.relative_to(REPO_ROOT)}")


def stage_chart(stage_root: Path = STAGE_DIR) -> tuple[Path, list[str]]:
    """Copy helm/tributary with the spark-operator chart from the Go module; drop dependencies not available.

    Returns the staged chart and the names of the dependencies turned off.
    """
    staged = stage_root / "tributary"
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(CHART_DIR, staged)
    charts = staged / "charts"
    charts.mkdir(exist_ok=True)
    operator_chart = charts / "spark-operator"
    if not any(charts.glob("spark-operator-*.tgz")):
        shutil.copytree(spark_operator_dir() / "charts" / "spark-operator-chart", operator_chart)
        for path in operator_chart.rglob("*"):  # the module cache is read-only; the staged copy must not be
            path.chmod(path.stat().st_mode | 0o200)
    chart_yaml = staged / "Chart.yaml"
    chart = yaml.safe_load(chart_yaml.read_text())
    kept, dropped = [], []
    for dep in chart.get("dependencies", []):
        available = (charts / dep["name"]).is_dir() or any(charts.glob(f"{dep['name']}-{dep['version']}.tgz"))
        (kept if available else dropped).append(dep)
    chart["dependencies"] = kept
    chart_yaml.write_text(yaml.safe_dump(chart, sort_keys=False))
    return staged, [d["name"] for d in dropped]


def helm_args(profile: str, dropped: Iterable[str]) -> list[str]:
    """Values and settings every helm invocation for ``profile`` uses."""
    args = ["-f", str(CHART_DIR / f"values-{profile}.yaml"), "--kube-version", kube_version()]
    cloud = CHART_DIR / "ci" / f"{profile}-terraform-values.yaml"
    if cloud.is_file():  # eks, gke: what Terraform appends (placeholders), as a real install gets it
        args += ["-f", str(cloud)]
    for name in dropped:
        args += ["--set", f"{name}.enabled=false"]
    return args


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm_bin()), *args], capture_output=True, text=True, check=check)


def helm_template(staged: Path, profile: str, dropped: Iterable[str], extra: Iterable[str] = ()) -> str:
    """``helm template`` of the staged chart for ``profile`` (CRDs included)."""
    proc = helm(
        "template", RELEASE, str(staged), "--namespace", NAMESPACE, "--include-crds",
        *helm_args(profile, dropped), *extra, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed for {profile}:\n{proc.stderr}")
    return proc.stdout


def split_manifests(text: str) -> dict[str, list[dict[str, Any]]]:
    """Group ``helm template`` output: ``crds``, one group per subchart (by ``helm.sh/chart``), ``chart`` for ours."""
    groups: dict[str, list[dict[str, Any]]] = {"chart": [], "crds": []}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc.setdefault("metadata", {})
        if doc["kind"] not in CLUSTER_SCOPED and not meta.get("namespace"):
            meta["namespace"] = NAMESPACE  # what `helm install --namespace tributary` does
        chart = (meta.get("labels") or {}).get("helm.sh/chart", "")
        subchart = chart.rsplit("-", 1)[0] if chart and not chart.startswith("tributary-") else ""
        group = "crds" if doc["kind"] == "CustomResourceDefinition" else subchart or "chart"
        groups.setdefault(group, []).append(doc)
    return groups


def render_profile(profile: str, out: Path, sync_docs: bool = True) -> Path:
    """Write build/rendered/<profile>/ (see the module docstring); returns that directory."""
    from tributary.sparkapp import dump

    target = out / profile
    if target.exists():
        shutil.rmtree(target)
    apps = target / "sparkapplications"
    apps.mkdir(parents=True)
    specs = dag_specs(profile)
    for task_id, spec in sorted(specs.items()):
        (apps / f"{task_id}.yaml").write_text(dump(spec))
    if sync_docs and profile in DOCUMENTED_PROFILES:
        for task_id, spec in sorted(specs.items()):
            sync(documented_spec_path(profile, task_id), dump(spec))
    staged, dropped = stage_chart()
    for name, docs in split_manifests(helm_template(staged, profile, dropped)).items():
        (target / f"{name}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False, width=1000))
    notes = [
        f"# Rendered for profile `{profile}` (Kubernetes {kube_version()})",
        "",
        "- `sparkapplications/`: the SparkApplication of every DAG task, as the launcher builds it.",
        "- `crds.yaml`: the CustomResourceDefinitions the charts install first (spark-operator's).",
        "- `spark-operator.yaml`: the pinned upstream spark-operator chart rendered with our values.",
        f"- `chart.yaml`: this chart's objects, `helm template` of helm/tributary with values-{profile}.yaml"
        + (" and Terraform's `cloud` values (placeholders, helm/tributary/ci/)" if profile in ("eks", "gke") else "")
        + ".",
    ]
    if dropped:
        off = ", ".join(dropped)
        notes.append(f"- Turned off (chart not in helm/tributary/charts; `helm dependency build` fetches it): {off}")
    (target / "RENDERED.md").write_text("\n".join(notes) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="append", choices=K8S_PROFILES, help="profile (repeatable; default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: build/rendered)")
    parser.add_argument("--no-sync-docs", action="store_true", help="do not refresh docs/specs")
    args = parser.parse_args(argv)
    try:
        for profile in args.profile or K8S_PROFILES:
            target = render_profile(profile, args.out, sync_docs=not args.no_sync_docs)
            count = len(list((target / "sparkapplications").glob("*.yaml")))
            print(
                f"render: {target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target} "
                f"({count} SparkApplications, chart manifests)"
            )
    except ToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
