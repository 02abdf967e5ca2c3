"""The Spark image's own pieces: the GPU discovery script, and the Dockerfile's single sources of truth."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.k8s.conftest import REPO_ROOT

DISCOVERY = REPO_ROOT / "docker" / "spark" / "gpu-discovery.sh"
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def discover(tmp_path: Path, nvidia_smi: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "tr", "sed", "paste", "printf", "cat"):
        target = bin_dir / tool
        if not target.exists():
            target.symlink_to(
                subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip() or f"/bin/{tool}"
            )
    if nvidia_smi is not None:
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\nprintf '{nvidia_smi}'\n")
        fake.chmod(0o755)
    return subprocess.run(
        ["bash", str(DISCOVERY)], capture_output=True, text=True, env={"PATH": str(bin_dir), **env}, timeout=30
    )


def test_discovery_reports_the_gpus_the_container_sees(tmp_path):
    proc = discover(tmp_path, "0\\n1\\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": ["0", "1"]}


def test_discovery_on_a_simulated_gpu_node_reports_a_placeholder(tmp_path):
    proc = discover(tmp_path, None, TRIBUTARY_GPU_SIMULATED="true")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": ["simulated-0"]}


def test_discovery_without_a_gpu_fails_rather_than_running_on_cpu(tmp_path):
    proc = discover(tmp_path, "")
    assert proc.returncode != 0 and "no NVIDIA GPU" in proc.stderr


def test_the_image_takes_jars_from_the_single_pinned_list():
    assert "COPY conf/jars/ conf/jars/" in DOCKERFILE
    assert "RUN scripts/fetch_jars.sh /opt/tributary/jars" in DOCKERFILE  # the script `make jars` runs
    assert "COPY jvm/src/ jvm/src/" in DOCKERFILE  # and the project's own jar (the S3 LogStore)
    # Python deps: each image installs its export of uv.lock, hash-checked, nothing resolved at build time
    for image in ("spark", "airflow"):
        assert f"COPY docker/{image}/requirements.txt /tmp/requirements.txt" in DOCKERFILE
    installs = re.findall(r"--require-hashes --no-deps[\s\\]*-r /tmp/requirements.txt", DOCKERFILE)
    assert len(installs) == 3  # spark, airflow, mlflow
    assert "uv.lock" not in (REPO_ROOT / ".dockerignore").read_text()  # so a lock edit alone rebuilds nothing


@pytest.mark.parametrize(("image", "group"), [("spark", "jobs"), ("airflow", "airflow")])
def test_image_requirements_are_the_current_export_of_the_lock(image, group, tmp_path):
    """docker/<image>/requirements.txt is exactly what `make requirements` exports from uv.lock now."""
    committed = REPO_ROOT / "docker" / image / "requirements.txt"
    fresh = tmp_path / "requirements.txt"
    uv = REPO_ROOT / ".venv-uv" / "bin" / "uv"
    subprocess.run([str(uv), "export", "--quiet", "--frozen", "--no-default-groups", "--group", group,
                    "--no-emit-project", "--output-file", str(fresh)], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    body = [line for line in fresh.read_text().splitlines() if not line.startswith("#")]
    assert [line for line in committed.read_text().splitlines() if not line.startswith("#")] == body, (
        f"{committed.relative_to(REPO_ROOT)} is not the current export of uv.lock's `{group}` group: "
        "run `make requirements` and commit it")
    assert any(line.startswith("pyyaml==") for line in body)  # the project's own dependencies are in it
    torch = any(line.startswith("torch==") for line in body)
    assert torch == (image == "spark")  # no PyTorch in the airflow image


@pytest.mark.parametrize("profile", ["kind", "minikube", "eks", "gke"])
def test_profiles_point_at_the_image_layout(profile):
    from tributary.config import load_profile

    p = load_profile(profile)
    assert p.spark["jars_dir"] == "/opt/tributary/jars" and "/opt/tributary/jars" in DOCKERFILE
    assert p.launcher["gpu"]["discovery_script"] == "/opt/tributary/bin/gpu-discovery.sh"
    assert "docker/spark/gpu-discovery.sh" in DOCKERFILE
    assert p.launcher["application_dir"] == "/opt/tributary/spark_jobs"
    assert "COPY spark_jobs/ /opt/tributary/spark_jobs/" in DOCKERFILE


def test_the_airflow_image_ships_the_platform_package_not_the_jobs():
    airflow = DOCKERFILE.split("AS airflow", 1)[1].split("\nFROM ", 1)[0]
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+) /opt/tributary/", airflow, re.M)
    assert copied == ["conf/", "k8s/templates/", "tributary/", "dags/"]


def test_images_are_pinned_non_root_and_secret_free():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.M))
    for base in re.findall(r"^FROM (\S+)", DOCKERFILE, re.M):
        if base.startswith("${"):  # a build argument: its public default must be pinned
            base = args[base.strip("${}")]
        elif ":" not in base:  # a stage of this Dockerfile
            assert re.search(rf"^FROM \S+ AS {base}$", DOCKERFILE, re.M), base
            continue
        assert re.search(r":[0-9][\w.\-]*$", base), base  # an explicit version tag, never latest
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and all(u.split(":")[0] not in ("0", "root") for u in users)
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignore  # an allow-list: only sources enter the build context
    assert "conf/local.env" in ignore
    assert os.access(DISCOVERY, os.X_OK)


def test_classes_the_kubernetes_profiles_name_are_in_the_pinned_jars(spark):
    """Every JVM class a Kubernetes profile configures, and the executor backend the image's entrypoint starts,
    loads from pyspark's Spark plus the pinned jars (the same list the image copies)."""
    from tributary.config import load_profile

    names = {"org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"}
    for profile in ("kind", "minikube", "eks", "gke"):
        for key, value in load_profile(profile).spark["conf"].items():
            if key.endswith((".impl", ".credentials.provider")):
                names.add(value)
    assert "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem" in names
    jvm = spark.sparkContext._jvm
    for name in sorted(names):
        assert jvm.java.lang.Class.forName(name).getName() == name
