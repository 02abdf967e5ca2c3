"""`helm uninstall` leaves nothing of the chart behind in the job namespace (runs last in tests/cluster), the stream
included: the fraud_stream task created it as a dependent of the chart's ConfigMap tributary-env (ADR 0006), so
deleting the release deletes it, by Kubernetes' garbage collection."""

from __future__ import annotations

import time

from tributary.config import REPO_ROOT
from tests.cluster.live import JOBS_NS, RELEASE_NS, Live, run

HELM = REPO_ROOT / ".tools" / "bin" / "helm"
KINDS = ("pods,services,configmaps,serviceaccounts,roles,rolebindings,resourcequotas,limitranges,networkpolicies,"
         "sparkapplications")
# What every namespace carries, not the chart's.
NAMESPACE_OWN = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}


def test_helm_uninstall_leaves_nothing_in_the_job_namespace(platform: Live):
    # The batch applications the tests submitted (not the chart's) go as their timeToLiveSeconds would take them.
    platform.kubectl("delete", "sparkapplications", "-n", JOBS_NS, "-l", "tributary.dev/workload!=streaming",
                     "--wait=true", timeout=300)
    stream = platform.get("sparkapplication", "tributary-stream", "-n", JOBS_NS)  # still running (test_4)
    assert [(o["kind"], o["name"]) for o in stream["metadata"]["ownerReferences"]] == [("ConfigMap", "tributary-env")]
    out = run([str(HELM), "uninstall", "tributary", "-n", RELEASE_NS, "--wait", "--timeout", "10m"], timeout=900)
    assert out.returncode == 0, out.stderr
    # Deletion is asynchronous (pods terminate within their grace period, owned objects go by garbage collection):
    # everything must be gone within a bounded time.
    t0, left = time.monotonic(), ["?"]
    while left and time.monotonic() - t0 < 300:
        items = platform.get(KINDS, "-n", JOBS_NS)["items"]
        left = [f"{JOBS_NS}: {i['kind']}/{i['metadata']['name']}" for i in items
                if (i["kind"], i["metadata"]["name"]) not in NAMESPACE_OWN]
        left += [f"{RELEASE_NS}: Pod/{i['metadata']['name']}" for i in
                 platform.get("pods", "-n", RELEASE_NS, "-l", "app.kubernetes.io/instance=tributary")["items"]]
        time.sleep(0 if not left else 3)
    platform.report["uninstall_to_empty_s"] = round(time.monotonic() - t0, 1)
    assert not left, f"left behind: {left}"
