"""helm/tributary installed for real on the local cluster, with values-kind.yaml and the services' images built
here (k8s/cluster/values-images.yaml): every pod Ready, an idempotent upgrade, and least-privilege RBAC."""

from __future__ import annotations

import json

import pytest

from tests.cluster.live import JOBS_NS, RELEASE_NS, Live, cluster_py, run

READY_WITHIN_S = 900  # install.sh runs helm --wait; this bounds the whole install


def pods(live: Live, ns: str) -> list[dict]:
    return live.get("pods", "-n", ns)["items"]


def test_every_platform_pod_is_ready_in_bounded_time(platform: Live):
    assert platform.report["chart_install_to_ready_s"] < READY_WITHIN_S
    def component(pod: dict) -> str:  # ours by component; a subchart's (spark-operator) by its name
        labels = pod["metadata"]["labels"]
        name = labels.get("app.kubernetes.io/name")
        return labels.get("app.kubernetes.io/component", name) if name == "tributary" else name

    running = {component(p): p for p in pods(platform, RELEASE_NS) if p["status"]["phase"] == "Running"}
    assert {"mlflow", "postgresql", "s3store", "spark-operator", "spark-history"} <= set(running), sorted(running)
    for name, pod in running.items():
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", name
        # The History Server runs the Spark image, on the spark-cpu pool whose nodes already hold it.
        pool = "tributary-worker" if name == "spark-history" else "tributary-control-plane"
        assert pod["spec"]["nodeName"] == pool, f"{name} is on {pod['spec']['nodeName']}, not {pool}"
    platform.report["platform_pods"] = {n: p["spec"]["nodeName"] for n, p in running.items()}


def test_each_node_holds_one_image_per_tag_the_registry_serves(platform: Live):
    """images.sh push loaded the nodes like `kind load`: a rebuilt image replaced the node's copy, not joined it."""
    cfg = cluster_py.load_config()
    for node in cfg.nodes:
        listing = cluster_py.node_images(node)
        assert cluster_py.replaced_refs(listing) == [], node.name
        digests: dict[str, set[str]] = {}
        for ref, digest in listing:
            if not ref.startswith("sha256:"):
                digests.setdefault(cluster_py.repository(ref), set()).add(digest)
        assert all(len(d) == 1 for d in digests.values()), (node.name, digests)
        if node.pool in ("spark-cpu", "gpu"):
            served = run([str(cfg.bin("crane", "crane")), "digest", "--insecure", f"{cfg.registry}/tributary/spark:0.1.0"])
            assert digests["docker.io/tributary/spark"] == {served.stdout.strip()}, node.name


def test_a_node_that_holds_an_image_needs_no_disk_to_load_it_again(platform: Live):
    """cluster.py load's disk check counts only the layers a node has not unpacked: the chain IDs it computes from
    the registry's image config are the keys of the snapshots containerd made when it pulled the Spark image."""
    from dataclasses import replace

    cfg = cluster_py.load_config()
    spark_nodes = [n for n in cfg.nodes if n.pool in ("spark-cpu", "gpu")]
    layers = cluster_py.registry_layers(cfg, "tributary/spark:0.1.0")
    assert len(layers) > 3 and sum(size for _, size in layers) > 2**30  # gigabytes of Python, Spark and jars
    for node in spark_nodes:
        held = cluster_py.node_snapshots(node)
        assert {chain for chain, _ in layers} <= held, node.name
        assert cluster_py.unpack_estimate(layers, held, ratio=3) == 0
    assert cluster_py.unpack_estimate(layers, set(), ratio=3) == 3 * sum(size for _, size in layers)
    assert cluster_py.load_disk_problem(cfg, spark_nodes, ["tributary/spark:0.1.0"]) is None
    starved = replace(cfg, storage={**cfg.storage, "min_free_disk_gib": 10**6})
    problem = cluster_py.load_disk_problem(starved, spark_nodes, ["tributary/spark:0.1.0"])
    assert problem and "storage.min_free_disk_gib" in problem and "about 0.0 GiB of new image layers" in problem
    with pytest.raises(cluster_py.ClusterError, match=r"not in the local registry .*images\.sh push"):
        cluster_py.registry_layers(cfg, "tributary/no-such-image:0")


def test_the_chart_created_the_job_namespace_objects(platform: Live):
    assert platform.get("serviceaccount", "tributary-spark", "-n", JOBS_NS)
    assert platform.get("role", "tributary-airflow-worker", "-n", JOBS_NS)
    quota = platform.get("resourcequota", "-n", JOBS_NS)["items"]
    assert quota and quota[0]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    classes = {p["metadata"]["name"] for p in platform.get("priorityclasses")["items"]}
    assert {"tributary-platform", "tributary-streaming", "tributary-batch"} <= classes
    policies = {p["metadata"]["name"] for p in platform.get("networkpolicies", "-n", RELEASE_NS)["items"]}
    assert {"tributary-mlflow", "tributary-s3store", "tributary-postgresql"} <= policies


def test_a_second_upgrade_without_changes_is_a_no_op(platform: Live):
    def workloads() -> dict[str, tuple]:
        out = {}
        for kind in ("deployments", "statefulsets"):
            for item in platform.get(kind, "-n", RELEASE_NS)["items"]:
                out[f"{kind}/{item['metadata']['name']}"] = (item["metadata"]["generation"],)
        for pod in pods(platform, RELEASE_NS):
            if pod["status"]["phase"] == "Running":
                out[f"pod/{pod['metadata']['name']}"] = (pod["metadata"]["uid"],)
        return out

    before = workloads()
    again = platform.install()
    assert again.returncode == 0, again.stderr[-3000:]
    assert workloads() == before  # no rollout, no restarted pod
    history = json.loads(platform.kubectl("get", "secrets", "-n", RELEASE_NS, "-l", "owner=helm,name=tributary",
                                          "-o", "json").stdout)["items"]
    assert len(history) >= 2  # the upgrade was a real helm release revision


def test_the_airflow_worker_may_run_spark_applications_and_nothing_more(platform: Live):
    cfg = platform.airflow_kubeconfig()

    def can(verb: str, resource: str, ns: str = JOBS_NS) -> bool:
        out = platform.kubectl("auth", "can-i", verb, resource, "-n", ns, kubeconfig=cfg, check=False)
        return out.stdout.strip() == "yes"

    for verb in ("create", "get", "watch", "delete"):
        assert can(verb, "sparkapplications.sparkoperator.k8s.io")
    assert can("get", "pods/log") and can("list", "pods")
    assert can("patch", "pods")  # the provider labels a finished driver already_checked
    assert can("get", "configmaps/tributary-env")  # the stream's owner (tributary/streaming_operator.py), no other
    assert not can("get", "configmaps/kube-root-ca.crt") and not can("list", "configmaps")
    for verb, resource in (("create", "pods"), ("get", "secrets"), ("delete", "pods"), ("update", "sparkapplications"),
                           ("create", "sparkapplications.sparkoperator.k8s.io")):
        ns = RELEASE_NS if (verb, resource) == ("create", "sparkapplications.sparkoperator.k8s.io") else JOBS_NS
        assert not can(verb, resource, ns), f"the Airflow worker may {verb} {resource} in {ns}"
