"""The job registry (``conf/jobs.yaml``): which jobs exist, their entrypoint module, workload class and datasets.

Read by the launcher (Airflow side) and by the Kubernetes renderer; jobs themselves do not need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from spark_jobs.config import CONF_DIR, ConfigError

WORKLOADS = {"cpu", "gpu", "streaming"}
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Job:
    """One registered Spark job."""

    name: str
    module: str
    workload: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str

    @property
    def application(self) -> Path:
        """The entrypoint file spark-submit runs (``spark_jobs/<job>.py``)."""
        return PACKAGE_DIR / f"{self.module.rsplit('.', 1)[-1]}.py"


def load_jobs(conf_dir: Path = CONF_DIR) -> dict[str, Job]:
    """Every job in ``conf/jobs.yaml``, validated."""
    raw = yaml.safe_load((conf_dir / "jobs.yaml").read_text())["jobs"]
    jobs = {}
    for name, spec in raw.items():
        if spec["workload"] not in WORKLOADS:
            raise ConfigError(f"jobs.yaml: job '{name}' workload must be one of {sorted(WORKLOADS)}")
        jobs[name] = Job(
            name=name,
            module=spec["module"],
            workload=spec["workload"],
            inputs=tuple(spec["inputs"]),
            outputs=tuple(spec["outputs"]),
            description=spec["description"],
        )
    return jobs


def get_job(name: str, conf_dir: Path = CONF_DIR) -> Job:
    """One job by name; an unknown name lists the known ones."""
    jobs = load_jobs(conf_dir)
    if name not in jobs:
        raise ConfigError(f"unknown job '{name}'; known jobs: {sorted(jobs)}")
    return jobs[name]
