"""The local cluster itself (k8s/cluster/cluster.py): Kubernetes 1.35 from the Go module, three nodes shaped like
k8s/kind-cluster.yaml, cluster DNS, and a host that `down` leaves as it found it."""

from __future__ import annotations

import json

from tests.cluster.live import Live, cluster_py

POOLS = {"tributary-control-plane": "system", "tributary-worker": "spark-cpu", "tributary-worker2": "gpu"}


def test_three_ready_nodes_one_per_pool_at_the_pinned_version(cluster: Live):
    nodes = {n["metadata"]["name"]: n for n in cluster.get("nodes")["items"]}
    assert {name: n["metadata"]["labels"]["tributary.dev/pool"] for name, n in nodes.items()} == POOLS
    for node in nodes.values():
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.4"
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"] == "v1.35.4"


def test_the_gpu_node_is_tainted_and_advertises_a_gpu(cluster: Live):
    gpu = cluster.get("node", "tributary-worker2")
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in gpu["spec"]["taints"]
    assert gpu["status"]["capacity"]["nvidia.com/gpu"] == "1"
    for other in ("tributary-control-plane", "tributary-worker"):
        node = cluster.get("node", other)
        assert not node["spec"].get("taints") and "nvidia.com/gpu" not in node["status"]["capacity"]


def test_coredns_serves_the_cluster_domain(cluster: Live):
    dns = cluster.get("service", "kube-dns", "-n", "kube-system")
    assert dns["spec"]["clusterIP"] == "10.202.0.10"
    cfg = cluster_py.load_config()
    # The `kubernetes` Service, answered by CoreDNS through kube-proxy's Service rules, as a pod would ask.
    assert cluster_py.dns_answer(cfg, "kubernetes.default.svc.cluster.local") == "10.202.0.1"
    assert cluster_py.dns_answer(cfg, "kube-dns.kube-system.svc.cluster.local") == "10.202.0.10"


def test_only_images_a_tag_replaced_are_pruned():
    spark = "docker.io/tributary/spark"
    listing = [
        (f"{spark}:0.1.0", "sha256:new"), (f"{spark}@sha256:new", "sha256:new"), ("sha256:id-new", "sha256:new"),
        (f"{spark}@sha256:old", "sha256:old"), ("sha256:id-old", "sha256:old"),
        ("localhost:5001/tributary-local/pause:3.10", "sha256:p"), ("localhost:5001/tributary-local/pause@sha256:p", "sha256:p"),
        ("registry.example/untagged@sha256:u", "sha256:u"), ("sha256:id-u", "sha256:u"),
    ]
    assert cluster_py.replaced_refs(listing) == [f"{spark}@sha256:old", "sha256:id-old"]
    assert cluster_py.repository("localhost:5001/tributary-local/pause:3.10") == "localhost:5001/tributary-local/pause"
    assert cluster_py.repository("busybox") == "busybox"


def test_a_rebuilt_tag_drops_every_reference_to_the_old_image_before_the_pull():
    spark, pg = "docker.io/tributary/spark", "localhost:5001/tributary-local/postgresql"
    listing = [
        (f"{spark}:0.1.0", "sha256:old"), (f"{spark}@sha256:old", "sha256:old"), ("sha256:id-old", "sha256:old"),
        (f"{spark}@sha256:older", "sha256:older"),  # replaced earlier: prune_replaced's, not this one's
        (f"{pg}:15", "sha256:pg"), (f"{pg}@sha256:pg", "sha256:pg"),
    ]
    current = {f"{spark}:0.1.0": "sha256:new", f"{pg}:15": "sha256:pg"}
    assert cluster_py.outdated_refs(listing, current) == [f"{spark}:0.1.0", f"{spark}@sha256:old", "sha256:id-old"]
    assert cluster_py.outdated_refs(listing, {f"{spark}:0.1.0": "sha256:old"}) == []  # unchanged: nothing goes
    assert cluster_py.outdated_refs([], current) == []  # a node that never held it


def test_nodes_list_docker_hub_names_with_their_registry_and_layers_chain_by_oci_rules():
    assert cluster_py.containerd_ref("tributary/spark:0.1.0") == "docker.io/tributary/spark:0.1.0"
    assert cluster_py.containerd_ref("busybox:1") == "docker.io/library/busybox:1"
    assert cluster_py.containerd_ref("localhost:5001/tributary-local/pause:3.10") == "localhost:5001/tributary-local/pause:3.10"
    assert cluster_py.containerd_ref("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"
    a, b, c = (f"sha256:{ch * 64}" for ch in "abc")
    chains = cluster_py.chain_ids([a, b, c])
    assert chains[0] == a and len(set(chains)) == 3 and chains[:2] == cluster_py.chain_ids([a, b])
    assert cluster_py.unpack_estimate([(chains[0], 10), (chains[1], 20), (chains[2], 30)], {chains[0]}, 2.5) == 125


def test_up_refuses_without_the_free_disk_the_nodes_need():
    """The kubelets never evict for disk (the host's disk is shared, as kind's nodes share it): `up` checks it first."""
    from dataclasses import replace

    cfg = cluster_py.load_config()
    assert cluster_py.disk_problems(replace(cfg, storage={**cfg.storage, "min_free_disk_gib": 0})) == []
    problems = cluster_py.disk_problems(replace(cfg, storage={**cfg.storage, "min_free_disk_gib": 10**9}))
    assert problems and all("storage.min_free_disk_gib" in p and "GiB free" in p for p in problems)
