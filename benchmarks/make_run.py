"""P4: ``make run``'s wall time and each stage's share at 20k / 200k / 1M rows, and Airflow's overhead.

Each repeat runs what ``make run ROWS=N`` runs after setup (``scripts/run_local.py``: land a batch, fraud_pipeline
through ``airflow dags test``, land the stream's batch, fraud_stream, the summary) in a fresh state directory
(``TRIBUTARY_HOME``; its Airflow metadata DB migrated beforehand, untimed, as ``make run``'s setup does). Its
summary's ``steps_s`` gives each step's share; Airflow's metadata DB gives each fraud_pipeline task's duration.

Baseline, in the same run on the same data: the same five jobs (ingest, features, train, promote, score) started
one after another with ``spark-submit``, with the command line the launcher gives Airflow's SparkSubmitOperator (the
profile's master, deploy mode and ``spark_conf``, the DAG's arguments and param defaults), in another fresh state
directory after the same landing. fraud_pipeline's step over the sum of those jobs is Airflow's overhead: parsing,
scheduling, task processes and log streaming around the same spark-submits.

Sizes: 20,000 (``make run``'s default), 200,000 and 1,000,000 rows, 3 repeats each; ``--quick``: 3,000 rows, once
(``make bench QUICK=1``; a make run costs minutes, so it is not repeated, and CI's smoke test leaves it out).

Run alone: ``uv run python -m benchmarks.run --only P4_make_run``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.harness import REPEATS, REPO_ROOT, Goal, Result, Stats
from tributary.local_env import task_seconds

NAME = "P4_make_run"
TITLE = "make run wall time, stage shares, and Airflow's overhead over spark-submit"
SIZES = (20_000, 200_000, 1_000_000)
QUICK_SIZES = (3_000,)  # fewer rows leave training a validation split of one class
JOBS = ("ingest", "features", "train", "promote", "score")
PROFILE = "local"


def importable(folder: str) -> None:
    """This checkout's ``folder`` (scripts/) on the import path, as ``make run`` has it."""
    if str(REPO_ROOT / folder) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / folder))


def home_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``home`` as the state directory (its event logs and lineage in its own var/,
    as ``make run`` has them, even where this environment points them elsewhere) and this checkout's jars,
    ``extra`` last."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRIBUTARY_SPARK_EVENTS", "TRIBUTARY_LINEAGE")}
    env.update(extra or {})
    env["TRIBUTARY_HOME"] = str(home)
    env["TRIBUTARY_PROFILE"] = PROFILE
    env.setdefault("TRIBUTARY_JARS_DIR", str(REPO_ROOT / "var" / "jars"))
    return env


def fresh_home(work: Path, name: str) -> Path:
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


def airflow_env_for(home: Path) -> dict[str, str]:
    """What ``scripts/run_local.py`` gives Airflow and its spark-submits, for state directory ``home``."""
    from tributary.config import load_profile
    from tributary.local_env import airflow_env

    return airflow_env(load_profile(PROFILE), home / "airflow", base=home_env(home))


def migrate(home: Path) -> None:
    """``make run``'s setup step for this home (``make airflow-db``), untimed."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_env_for(home), cwd=REPO_ROOT,
                   check=True, capture_output=True)


def orchestrated(rows: int, home: Path, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """``make run`` after setup: its wall seconds, each step's, each fraud_pipeline task's (``extra_env``: more
    environment for the run, S1's SPARK_CONF_DIR)."""
    migrate(home)
    summary = home / "run-summary.json"
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "scripts/run_local.py", "--rows", str(rows), "--profile", PROFILE,
                           "--airflow-home", str(home / "airflow"), "--summary", str(summary)],
                          env=home_env(home, extra_env), cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"make run ({rows} rows) failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    result = json.loads(summary.read_text())
    return {"wall_s": wall, "steps_s": result["steps_s"], "tasks_s": task_seconds(home / "airflow" / "airflow.db"),
            "predictions_rows": result["predictions_rows"]}


def load_dag():
    """fraud_pipeline, from its DAG file (on the profile ``TRIBUTARY_PROFILE`` names)."""
    spec = importlib.util.spec_from_file_location("bench_fraud_pipeline", REPO_ROOT / "dags" / "fraud_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def dag_defaults() -> dict[str, Any]:
    """fraud_pipeline's param defaults, from the DAG file itself."""
    return {name: param.value for name, param in load_dag().params.items()}


def make_run_params() -> dict[str, Any]:
    """The params ``make run``'s fraud_pipeline run has: the defaults, overridden by its conf."""
    importable("scripts")
    from run_local import PIPELINE_CONF

    return {**dag_defaults(), **PIPELINE_CONF}


def job_args(batch_id: str, as_of: str, params: dict[str, Any]) -> dict[str, list[str]]:
    """The arguments fraud_pipeline's tasks render (dags/fraud_pipeline.py) for ``make run``'s conf: its sample's
    days as the interval (the ``start``/``end`` params; a full refresh has none), and training's window of
    ``train_days`` before the end."""
    if params["full_refresh"]:
        start = end = days = ""
    elif params["start"] and params["end"]:
        start, end, days = params["start"], params["end"], params["train_days"] or ""
    else:
        raise ValueError("the baseline replays make run's conf: params need start and end, or full_refresh")
    interval = [f"--start={start}", f"--end={end}"]
    return {"ingest": [f"--batch-id={batch_id}", f"--as-of={as_of}"], "features": interval,
            "train": [f"--epochs={params['epochs']}", f"--seed={params['seed']}", f"--window-end={end}",
                      f"--window-days={days}"],
            "promote": [f"--version={params['promote_version'] or ''}"], "score": interval}


def submit_command(job_name: str, args: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The spark-submit line the launcher's SparkSubmitOperator runs for ``job_name`` on the local profile, its
    paths (event logs, lineage) resolved in ``env`` (default: this process's), as the task's would be in its own."""
    from tributary.config import load_profile
    from tributary.registry import get_job
    from tributary.spark_conf import spark_conf

    profile = load_profile(PROFILE, env)
    conf = [item for key, value in spark_conf(profile, check_jars=False).items()
            for item in ("--conf", f"{key}={value}")]
    return ["spark-submit", "--master", profile.spark_master, *conf, "--name", f"tributary-{job_name}",
            "--deploy-mode", profile.spark["deploy_mode"], str(get_job(job_name).application),
            "--profile", profile.name, *args]


def direct(rows: int, home: Path, params: dict[str, Any]) -> dict[str, float]:
    """The baseline: land the same batch, then each job by spark-submit; each job's wall seconds."""
    importable("scripts")
    from run_local import BATCH_ID

    env = airflow_env_for(home)
    subprocess.run([sys.executable, "-m", "spark_jobs.generate", "--profile", PROFILE, "--batch-id", BATCH_ID,
                    "--rows", str(rows), "--seed", "42"], env=env, cwd=REPO_ROOT, check=True, capture_output=True)
    as_of = datetime.now(timezone.utc).isoformat(timespec="seconds")
    seconds = {}
    for job_name, args in job_args(BATCH_ID, as_of, params).items():
        t0 = time.perf_counter()
        done = subprocess.run(submit_command(job_name, args, env), env=env, cwd=REPO_ROOT, capture_output=True,
                              text=True)
        seconds[job_name] = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(f"spark-submit {job_name} ({rows} rows) failed: {done.stderr[-3000:]}")
    return seconds


def label(rows: int) -> str:
    return f"{rows // 1000}k" if rows % 1000 == 0 and rows < 1_000_000 else f"{rows / 1e6:g}M"


def run(quick: bool, work: Path) -> Result:
    sizes, repeats = (QUICK_SIZES, 1) if quick else (SIZES, REPEATS)
    params = make_run_params()
    figures: dict[str, Stats] = {}
    data: dict[str, Any] = {"sizes": list(sizes), "repeats": repeats, "profile": PROFILE, "params": params,
                            "steps_s": {}, "tasks_s": {}, "direct_jobs_s": {}, "predictions_rows": {}}
    for rows in sizes:
        runs: list[dict[str, Any]] = []
        baselines: list[dict[str, float]] = []
        for i in range(repeats):  # alternated, so a slow minute on the shared host hits both sides alike
            runs.append(orchestrated(rows, fresh_home(work, f"{rows}-airflow-{i}")))
            baselines.append(direct(rows, fresh_home(work, f"{rows}-direct-{i}"), params))
        k = label(rows)
        figures[f"make run, {k} rows"] = Stats("s", [r["wall_s"] for r in runs])
        figures[f"fraud_pipeline through Airflow, {k}"] = Stats("s", [r["steps_s"]["fraud_pipeline"] for r in runs])
        figures[f"its 5 jobs by spark-submit, {k}"] = Stats("s", [sum(b.values()) for b in baselines])
        data["steps_s"][k] = {step: Stats("s", [r["steps_s"][step] for r in runs]).median
                              for step in runs[0]["steps_s"]}
        data["tasks_s"][k] = {t: Stats("s", [r["tasks_s"][t] for r in runs]).median for t in runs[0]["tasks_s"]}
        data["direct_jobs_s"][k] = {j: Stats("s", [b[j] for b in baselines]).median for j in JOBS}
        data["predictions_rows"][k] = runs[0]["predictions_rows"]
    first = label(sizes[0])
    goals = [
        Goal(f"make run at {first} rows, after setup (s)", f"make run, {first} rows", "", 180.0,
             higher_is_better=False),
        Goal(f"Airflow's overhead: fraud_pipeline / its jobs by spark-submit, {first}",
             f"fraud_pipeline through Airflow, {first}", f"its 5 jobs by spark-submit, {first}", 1.15,
             higher_is_better=False),
    ]
    for rows in sizes[1:]:
        k = label(rows)
        goals.append(Goal(f"make run: {k} / {first} rows ({rows // sizes[0]}x the data)", f"make run, {k} rows",
                          f"make run, {first} rows", None, higher_is_better=False))
        goals.append(Goal(f"Airflow's overhead at {k}", f"fraud_pipeline through Airflow, {k}",
                          f"its 5 jobs by spark-submit, {k}", 1.15, higher_is_better=False))
    shares = {k: {step: round(s / sum(steps.values()), 3) for step, s in steps.items()}
              for k, steps in data["steps_s"].items()}
    data["step_shares"] = shares
    notes = [f"{k}: " + ", ".join(f"{step} {share:.0%}" for step, share in s.items()) for k, s in shares.items()]
    series = {name: [figures[f"{name}, {label(r)}" + (" rows" if name == "make run" else "")].median for r in sizes]
              for name in ("make run", "fraud_pipeline through Airflow", "its 5 jobs by spark-submit")}
    plot = {"kind": "line", "x": list(sizes), "series": series, "xlabel": "transactions landed",
            "ylabel": "wall seconds (median)", "xscale": "log", "yscale": "log"}
    return Result(NAME, TITLE, quick, data, figures, goals, notes, plot)
