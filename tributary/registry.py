"""The job registry (``conf/jobs.yaml``): which jobs exist, their entrypoint module, workload class and datasets;
and the workload classes themselves (``conf/workloads.yaml``): what each decides for a job's Spark application.

Read by the launcher (Airflow side) and by the Kubernetes renderer; jobs themselves do not need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from tributary.config import CONF_DIR, REPO_ROOT, ConfigError

RESTART_POLICIES = {"Never", "Always"}


@dataclass(frozen=True)
class Workload:
    """A workload class: its executors' pool and allocation, GPUs, restart policy, priority class, and whether it
    is the one long-running application (``conf/workloads.yaml`` describes each key)."""

    name: str
    executor_pool: str
    dynamic_allocation: bool
    gpu: bool
    restart_policy: str
    priority_class: str
    long_running: bool


WORKLOAD_KEYS = {f for f in Workload.__dataclass_fields__ if f != "name"}


@dataclass(frozen=True)
class Job:
    """One registered Spark job."""

    name: str
    module: str
    workload_class: Workload
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str

    @property
    def workload(self) -> str:
        """The workload class's name (``cpu``, ``gpu``, ``streaming``): the label, the static_executors key."""
        return self.workload_class.name

    @property
    def application(self) -> Path:
        """The entrypoint file spark-submit runs in this checkout (``spark_jobs/<job>.py``); a SparkApplication
        names it under the image's ``launcher.application_dir`` instead."""
        return REPO_ROOT.joinpath(*self.module.split(".")).with_suffix(".py")


def load_workloads(conf_dir: Path = CONF_DIR) -> dict[str, Workload]:
    """Every workload class in ``conf/workloads.yaml``, each with exactly its keys, typed."""
    raw = yaml.safe_load((conf_dir / "workloads.yaml").read_text())["workloads"]
    workloads = {}
    for name, spec in raw.items():
        where = f"workloads.yaml: workload '{name}'"
        if set(spec) != WORKLOAD_KEYS:
            missing, unknown = sorted(WORKLOAD_KEYS - set(spec)), sorted(set(spec) - WORKLOAD_KEYS)
            raise ConfigError(f"{where} needs exactly {sorted(WORKLOAD_KEYS)}; missing {missing}, unknown {unknown}")
        flags = ("dynamic_allocation", "gpu", "long_running")
        if any(not isinstance(spec[k], bool) for k in flags):
            raise ConfigError(f"{where}: {', '.join(flags)} are true or false")
        if spec["restart_policy"] not in RESTART_POLICIES:
            raise ConfigError(f"{where}: restart_policy must be one of {sorted(RESTART_POLICIES)}")
        workloads[name] = Workload(name=name, **spec)
    return workloads


def load_jobs(conf_dir: Path = CONF_DIR) -> dict[str, Job]:
    """Every job in ``conf/jobs.yaml``, validated, each with its workload class."""
    workloads = load_workloads(conf_dir)
    raw = yaml.safe_load((conf_dir / "jobs.yaml").read_text())["jobs"]
    jobs = {}
    for name, spec in raw.items():
        if spec["workload"] not in workloads:
            raise ConfigError(
                f"jobs.yaml: job '{name}' workload must be one of {sorted(workloads)} (conf/workloads.yaml)"
            )
        jobs[name] = Job(
            name=name,
            module=spec["module"],
            inputs=tuple(spec["inputs"]),
            outputs=tuple(spec["outputs"]),
            description=spec["description"],
            workload_class=workloads[spec["workload"]],
        )
    return jobs


def get_job(name: str, conf_dir: Path = CONF_DIR) -> Job:
    """One job by name; an unknown name lists the known ones."""
    jobs = load_jobs(conf_dir)
    if name not in jobs:
        raise ConfigError(f"unknown job '{name}'; known jobs: {sorted(jobs)}")
    return jobs[name]
