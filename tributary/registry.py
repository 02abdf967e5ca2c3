"""The job registry (``conf/jobs.yaml``): which jobs exist, their entrypoint module, workload class and datasets
by role; and the workload classes themselves (``conf/workloads.yaml``): what each decides for a job's Spark
application.

The launcher reads it for the Airflow Assets (a job's inputs and outputs) and the renderer for the workload class.
The jobs read it too, as Kedro's nodes read their catalog: an entrypoint names its datasets by role
(``JOB.input("bronze")``), never by literal name, and runs on a catalog that holds only what it declares
(``Job.scoped``), so the declared lineage is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import yaml

from tributary.config import CONF_DIR, REPO_ROOT, ConfigError, Profile

RESTART_POLICIES = {"Never", "Always"}
# A job's exit status when a retry would fail the same way: its arguments or its input are wrong (a batch that never
# landed, a missing table, counts that do not reconcile), not the world around it (MLflow down, a lost executor).
# argparse's usage errors exit with it too. On the spark-submit profiles the task fails at once instead of retrying
# (tributary.launcher); everything else exits 1 and is retried.
NO_RETRY_EXIT = 2
ROLE_KINDS = ("inputs", "outputs", "state")


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
    inputs: Mapping[str, str]  # role -> dataset: what it reads (lineage)
    outputs: Mapping[str, str]  # role -> dataset: what it writes (lineage)
    state: Mapping[str, str]  # role -> dataset: its own state (the stream's checkpoint), not lineage
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


    def input(self, role: str) -> str:
        """The dataset this job reads as ``role``."""
        return self._dataset("inputs", role)

    def output(self, role: str) -> str:
        """The dataset this job writes as ``role``."""
        return self._dataset("outputs", role)

    def state_dataset(self, role: str) -> str:
        """The dataset holding this job's own state ``role`` (a checkpoint)."""
        return self._dataset("state", role)

    def _dataset(self, kind: str, role: str) -> str:
        roles = getattr(self, kind)
        if role not in roles:
            raise ConfigError(f"job '{self.name}' has no {kind} role '{role}' in conf/jobs.yaml; its {kind}: "
                              f"{dict(roles)}")
        return roles[role]

    @property
    def datasets(self) -> set[str]:
        """Every dataset this job may touch: its inputs, outputs and state."""
        return {*self.inputs.values(), *self.outputs.values(), *self.state.values()}

    def scoped(self, profile: Profile) -> Profile:
        """``profile`` with a catalog holding only this job's datasets: touching another fails, naming it."""
        return replace(profile, catalog=profile.catalog.only(self.datasets, scope=f"job '{self.name}'"))


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
        roles = {kind: spec.get(kind) or {} for kind in ROLE_KINDS}
        for kind, named in roles.items():
            if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
                raise ConfigError(f"jobs.yaml: job '{name}' {kind} maps a role to a dataset name "
                                  f"({{role: dataset}}); got {named!r}")
        jobs[name] = Job(
            name=name,
            module=spec["module"],
            description=spec["description"],
            workload_class=workloads[spec["workload"]],
            **roles,
        )
    return jobs


def get_job(name: str, conf_dir: Path = CONF_DIR) -> Job:
    """One job by name; an unknown name lists the known ones."""
    jobs = load_jobs(conf_dir)
    if name not in jobs:
        raise ConfigError(f"unknown job '{name}'; known jobs: {sorted(jobs)}")
    return jobs[name]
