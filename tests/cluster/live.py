"""The live-cluster tests' view of the platform: scripts/cluster_platform.py (what `make cluster-run` uses too),
plus what the tests learnt about it (``report``) and the host's peak memory."""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tributary.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from cluster_platform import (  # noqa: E402,F401  (re-exported for the tests)
    AIRFLOW_SA, BIN, JOBS_NS, KUBECONFIG, RELEASE_NS, RENDERED, STATE, TERMINAL, Platform, cluster_py, rendered, run,
)

REPORT = REPO_ROOT / "var" / "cluster-test-report.json"


@dataclass
class Live(Platform):
    """The running cluster, and what the tests learnt about it (``report``)."""

    report: dict[str, Any] = field(default_factory=dict)
    peak_memory_mib: int = 0

    def sample_memory(self) -> int:
        """Host memory in use now (MiB); the maximum seen is the run's peak."""
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        used = (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) // 1024
        self.peak_memory_mib = max(self.peak_memory_mib, used)
        return used

    def on_poll(self) -> None:
        self.sample_memory()


def driver_api(ip: str, path: str, timeout: float = 5) -> Any:
    """GET ``/api/v1<path>`` of a running Spark driver's UI (its pod IP, port 4040; the host routes to pod IPs)."""
    with urllib.request.urlopen(f"http://{ip}:4040/api/v1{path}", timeout=timeout) as reply:
        return json.loads(reply.read().decode())
