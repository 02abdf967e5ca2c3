"""Shared fixtures of the Kubernetes packaging tests: the pinned tools and one offline render per profile.

The tools come from `make k8s-tools` (scripts/setup_tools.sh): helm and the spark-operator Go module under .tools/,
kubernetes-validate, hadolint and checkov in .venv-tools. A missing tool fails the test with the command that
installs it; nothing here skips.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tributary.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import render_k8s  # noqa: E402

PROFILES = render_k8s.K8S_PROFILES
VENV_TOOLS = REPO_ROOT / ".venv-tools" / "bin"
INSTALL = "run `make k8s-tools`"


def require_tool(path: Path) -> Path:
    """An installed pinned tool, or a failure that says how to install it."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: {INSTALL}")
    return path


def venv_tool(name: str) -> Path:
    return require_tool(VENV_TOOLS / name)


def run_tool(args: list[str], timeout: int = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="session")
def tools() -> None:
    """Every pinned tool is installed (fails with how to install them otherwise)."""
    require_tool(render_k8s.HELM)
    try:
        render_k8s.spark_operator_dir()
    except render_k8s.ToolMissing as exc:
        pytest.fail(str(exc))
    for name in ("kubernetes-validate", "hadolint", "checkov"):
        venv_tool(name)


# Rendered once per test process and shared by tests/k8s and tests/helm (whose conftest imports these fixtures).
_WORK = Path(tempfile.mkdtemp(prefix="tributary-k8s-tests-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)


@lru_cache(maxsize=None)
def _render_all() -> Path:
    out = _WORK / "rendered"
    for profile in PROFILES:
        render_k8s.render_profile(profile, out, sync_docs=False)
    return out


@lru_cache(maxsize=None)
def _stage() -> tuple[Path, tuple[str, ...]]:
    chart, dropped = render_k8s.stage_chart(_WORK / "chart")
    return chart, tuple(dropped)


@pytest.fixture(scope="session")
def rendered(tools) -> Path:
    """`make render` for every Kubernetes profile, into a temporary build/rendered (the chart's files untouched)."""
    return _render_all()


@pytest.fixture(scope="session")
def staged_chart(tools) -> tuple[Path, tuple[str, ...]]:
    """helm/tributary staged with its available dependencies (what `helm lint` and `helm template` get)."""
    return _stage()


def helm_template(staged: tuple[Path, tuple[str, ...]], profile: str, *extra: str) -> subprocess.CompletedProcess[str]:
    chart, dropped = staged
    args = ["template", "tributary", str(chart), "--namespace", "tributary", *render_k8s.helm_args(profile, dropped)]
    return run_tool([str(render_k8s.HELM), *args, *extra])
