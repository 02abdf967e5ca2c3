"""``tributary``: the platform's command line (the console script ``make setup`` installs into .venv/bin).

    tributary run [--rows 20000]          land data, run fraud_pipeline and fraud_stream through Airflow (make run)
    tributary up [--db postgres]          Airflow and MLflow UIs, a Spark cluster, on this machine (make up)
    tributary status                      the latest DAG runs, @champion and @challenger, table versions, the stream
    tributary promote [--version N]       gate @challenger by the policy, or move @champion to version N by hand
    tributary rollback                    move @champion back to the version it replaced
    tributary render --profile kind       the SparkApplications and Helm values of a Kubernetes profile
    tributary lineage TRANSACTION_ID      a prediction's lineage: model version, training run, Delta versions, file

Each command runs the same code as its make target or script (scripts/run_local.py, scripts/up.py,
``spark_jobs.promote``, scripts/render_k8s.py) in a child process; this module adds the progress display, the
tables, and one way of failing: a wrong flag or a setting that cannot work exits 2 with what to fix, a step that
fails exits with its own code and the end of its output. Nothing here imports Spark, PyTorch or MLflow: what needs
them (``spark_jobs.status``, ``spark_jobs.promote``, ``spark_jobs.lineage_walk``) runs in the child.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tributary.config import REPO_ROOT, ConfigError, Profile, load_profile

app = typer.Typer(name="tributary", no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  help="Tributary: card-fraud pipelines on Spark, Delta, Airflow and MLflow. Start with "
                       "**tributary run**; every command takes --help.")
out = Console()
err = Console(stderr=True)

DAGS = ("fraud_pipeline", "fraud_stream")
TAIL_LINES = 40  # of a failed step's output, shown with the path of its whole log
STEP_HEADER = "==> "  # scripts/run_local.py's step() starts each step's output with it,
STEP_COMMAND = "    $ "  # then echoes the step's command line
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")  # airflow dags test, as each task starts
RESULT = "TRIBUTARY_RESULT "  # spark_jobs.cli.emit_result: every job's last line

ProfileOption = Annotated[Optional[str], typer.Option(
    "--profile", "-p", help="profile under conf/profiles [default: $TRIBUTARY_PROFILE or local]", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON on stdout instead of tables")]
AirflowHomeOption = Annotated[Optional[Path], typer.Option(
    help="Airflow's home (its SQLite metadata DB) [default: $TRIBUTARY_HOME/var/airflow]", show_default=False)]
SummaryOption = Annotated[Optional[Path], typer.Option(
    help="the run summary [default: $TRIBUTARY_HOME/var/run-summary.json]", show_default=False)]


def home() -> Path:
    """The state directory: $TRIBUTARY_HOME, else this checkout (where make run keeps var/)."""
    return Path(os.environ.get("TRIBUTARY_HOME") or REPO_ROOT)


def profile_or_exit(name: str | None) -> Profile:
    """The loaded profile; a bad name or setting is a usage error (exit 2) that says what to choose."""
    try:
        return load_profile(name)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--profile'") from None


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False)
    raise typer.Exit(code)


# ---- progress of a long child process ------------------------------------------------------------------------


def parse_result(line: str) -> dict[str, Any] | None:
    """The document of a ``TRIBUTARY_RESULT`` line, also inside a line of Airflow's task log (which carries the
    logger's fields after the JSON); None for any other line."""
    if RESULT not in line:
        return None
    try:
        result, _ = json.JSONDecoder().raw_decode(line.split(RESULT, 1)[1])
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


@dataclass
class StepTracker:
    """Reads a run's output line by line and keeps what the progress line shows: the step, the Airflow task, and
    the rows the last job reported (the ``*rows*`` figures of its ``TRIBUTARY_RESULT``)."""

    step: str | None = None
    task: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    def feed(self, line: str) -> bool:
        """Take one line; True when it starts a new step."""
        if line.startswith(STEP_HEADER):
            self.step, self.task, self.rows = line[len(STEP_HEADER):].strip(), None, {}
            self.steps.append(self.step)
            return True
        if line.startswith(STEP_COMMAND):
            return False
        if started := TASK_START.search(line):
            self.task, self.rows = started.group(1), {}
            self.tasks.append(self.task)
        elif (result := parse_result(line)) is not None:
            self.rows = {k: v for k, v in result.items() if "rows" in k and isinstance(v, int)}
        return False

    def describe(self) -> str:
        parts = [self.step or "starting"]
        if self.task:
            parts.append(f"task {self.task}")
        parts += [f"{k} {v:,}" for k, v in list(self.rows.items())[:3]]
        return " · ".join(parts)


def follow(cmd: list[str], log: Path, env: dict[str, str] | None = None, verbose: bool = False,
           console: Console = err) -> tuple[int, StepTracker, list[str]]:
    """Run ``cmd``, its output into ``log`` (and the terminal when ``verbose``), a progress line per step with its
    elapsed time; (exit code, what was tracked, the output's last lines)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tracker, tail = StepTracker(), deque(maxlen=TAIL_LINES)
    columns = (SpinnerColumn(finished_text="[green]✓[/green]"), TextColumn("{task.description}"),
               TimeElapsedColumn())
    with log.open("w") as sink, Progress(*columns, console=console, disable=verbose) as progress:
        unbuffered = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}  # lines as they come
        child = subprocess.Popen(cmd, cwd=REPO_ROOT, env=unbuffered, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1)
        current: TaskID | None = None
        for line in child.stdout:
            sink.write(line)
            tail.append(line.rstrip("\n"))
            if verbose:
                console.out(line.rstrip("\n"), highlight=False)
            if tracker.feed(line):
                if current is not None:
                    progress.update(current, total=1, completed=1)
                current = progress.add_task(tracker.describe(), total=None)
            elif current is not None:
                progress.update(current, description=tracker.describe())
        code = child.wait()
        if current is not None and code == 0:
            progress.update(current, total=1, completed=1)
    return code, tracker, list(tail)


def child_or_exit(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    """Run a short child to its end; on failure print its error output and exit with its code."""
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode:
        err.out((done.stderr or done.stdout).rstrip()[-4000:], highlight=False)
        fail(f"{what} failed (exit {done.returncode})", done.returncode)
    return done


def job_result(stdout: str) -> dict[str, Any]:
    """The ``TRIBUTARY_RESULT`` document a job printed last ({} if none)."""
    found = [result for line in stdout.splitlines() if (result := parse_result(line)) is not None]
    return found[-1] if found else {}


# ---- commands --------------------------------------------------------------------------------------------------


@app.command()
def run(rows: Annotated[int, typer.Option(min=3000, help="transactions in the first batch (fewer leave training "
                                                         "a validation split of one class)")] = 20000,
        profile: ProfileOption = None,
        airflow_home: AirflowHomeOption = None,
        summary: SummaryOption = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show every step's output, not progress")]
        = False,
        as_json: JsonOption = False) -> None:
    """Run the whole pipeline through Airflow on this machine, as make run does.

    Lands a batch, runs **fraud_pipeline** (ingest, features, train, promote, score), lands a second batch and
    streams it with **fraud_stream**, then prints the summary and writes run-report.html beside it; on the local
    profile by default. The progress line shows the step, the Airflow task and the rows the last job reported; the
    whole output goes to run.log beside the summary."""
    chosen = profile_or_exit(profile)
    if chosen.launcher["kind"] == "spark_submit":  # each task would fail on it after its retries: say it now
        from tributary.spark_conf import jar_classpath

        try:
            jar_classpath(chosen)
        except ConfigError as exc:
            fail(str(exc), 2)
    summary = summary or home() / "var" / "run-summary.json"
    airflow_home = airflow_home or home() / "var" / "airflow"
    log = summary.with_name("run.log")
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "run_local.py"), "--rows", str(rows), "--profile",
           chosen.name, "--airflow-home", str(airflow_home), "--summary", str(summary)]
    started = time.monotonic()
    code, tracker, tail = follow(cmd, log, verbose=verbose)
    if code:
        if not verbose:
            err.out("\n".join(tail), highlight=False)
        where = f"in step '{tracker.step}'" if tracker.step else "before its first step"
        fail(f"the run stopped {where} (exit {code}); its whole output: {log}", code)
    document = json.loads(summary.read_text())
    if as_json:
        out.out(json.dumps(document, default=str), highlight=False)
        return
    table = Table(title=f"Tributary run on '{chosen.name}' ({time.monotonic() - started:.0f} s)", show_header=False)
    for key in ("rows_landed", "rows_ingested", "rows_quarantined", "rows_duplicate", "reconciled", "bronze_rows",
                "feature_rows", "predictions_rows", "stream_rows", "model_name", "champion_version"):
        value = document.get(key)
        table.add_row(key, f"{value:,}" if type(value) is int else str(value))  # not a bool (an int too)
    for name, value in sorted(document.get("metrics", {}).items()):
        table.add_row(name, f"{value:.4f}")
    out.print(table)
    out.print(f"summary: {summary}\nreport:  {summary.with_name('run-report.html')}\nlog:     {log}")


class Database(str, Enum):
    postgres = "postgres"
    sqlite = "sqlite"


@app.command()
def up(db: Annotated[Database, typer.Option(help="the metadata DB: postgres (its own server, fresh data) or sqlite "
                                                  "(the UIs on make run's state)")] = Database.postgres,
       rows: Annotated[int, typer.Option(min=3000, help="transactions in the sample batch (postgres)")] = 20000,
       check: Annotated[bool, typer.Option("--check", help="exit once the UIs answer")] = False) -> None:
    """Start the Airflow and MLflow UIs and a Spark cluster on this machine, as make up does.

    Airflow's UI on :8080, MLflow's on :5000, the Spark History Server on :18080 and Prometheus metrics on :9102,
    with make up's prerequisites (the PostgreSQL binaries, the Airflow DB, statsd_exporter); it prints the login and
    stays up until Ctrl-C, which stops everything it started."""
    cmd = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "up", f"DB={db.value}", f"ROWS={rows}"]
    if check:
        cmd.append("UP_ARGS=--check")
    try:
        code = subprocess.run(cmd).returncode
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


def _json_list(stdout: str) -> list[dict[str, Any]]:
    """The JSON list an Airflow CLI command printed with ``-o json``, past any log lines before it ([] for none)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("["):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    return []


def _airflow_runs(profile: Profile, airflow_home: Path) -> dict[str, Any]:
    """The newest runs of each DAG from Airflow's metadata DB (its own CLI), or why there are none."""
    from tributary.local_env import airflow_env

    if not (airflow_home / "airflow.db").exists():
        return {"error": f"no Airflow metadata DB under {airflow_home}: nothing has run through Airflow here"}
    env = airflow_env(profile, airflow_home)
    children = {dag: subprocess.Popen([sys.executable, "-m", "airflow", "dags", "list-runs", dag, "-o", "json"],
                                      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for dag in DAGS}
    runs: dict[str, Any] = {}
    for dag, child in children.items():
        stdout, stderr = child.communicate()
        if child.returncode:
            runs[dag] = {"error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {child.returncode}"}
            continue
        listed = _json_list(stdout)
        listed.sort(key=lambda r: r.get("start_date") or r.get("run_after") or "", reverse=True)
        runs[dag] = [{k: r.get(k) for k in ("run_id", "state", "start_date", "end_date")} for r in listed[:3]]
    return runs


@app.command()
def status(profile: ProfileOption = None,
           airflow_home: AirflowHomeOption = None,
           summary: SummaryOption = None,
           as_json: JsonOption = False) -> None:
    """Show the latest DAG runs, the champion and challenger, table versions and the stream's last batch.

    Also the last run's counts and whether they reconcile. Reads Airflow's metadata DB, MLflow's registry, the
    Delta logs and the stream checkpoint; starts no Spark."""
    chosen = profile_or_exit(profile)
    summary = summary or home() / "var" / "run-summary.json"
    lake = subprocess.Popen([sys.executable, "-m", "spark_jobs.status", "--profile", chosen.name], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = _airflow_runs(chosen, airflow_home or home() / "var" / "airflow")
    stdout, stderr = lake.communicate()
    if lake.returncode:
        err.out(stderr.rstrip()[-4000:], highlight=False)
        fail(f"reading the lake and the registry failed (exit {lake.returncode})", lake.returncode)
    found = {**json.loads(stdout.strip().splitlines()[-1]), "runs": runs,
             "last_run": json.loads(summary.read_text()) if summary.exists() else None}
    if as_json:
        out.out(json.dumps(found, default=str), highlight=False)
        return
    print_status(found)


def _when(stamp: str | None) -> str:
    """An ISO timestamp to the second, as a table shows it (UTC)."""
    return stamp[:19].replace("T", " ") if stamp else ""


def print_status(found: dict[str, Any]) -> None:
    runs = Table(title="DAG runs (newest first; times in UTC)")
    for column in ("DAG", "run", "state", "started", "ended"):
        runs.add_column(column)
    listings = {"-": found["runs"]} if "error" in found["runs"] else found["runs"]
    for dag, listed in listings.items():
        if isinstance(listed, dict):
            runs.add_row(dag, listed["error"], "", "", "")
            continue
        for run_ in listed or [{}]:
            state = run_.get("state") or "never run"
            colour = {"success": "green", "failed": "red"}.get(state, "yellow")
            runs.add_row(dag, run_.get("run_id") or "", f"[{colour}]{state}[/{colour}]",
                         _when(run_.get("start_date")), _when(run_.get("end_date")))
    out.print(runs)

    model = found["model"]
    models = Table(title=f"Model {model['name']} ({model['tracking_uri']})")
    for column in ("alias", "version", "run", "pr_auc", "decision"):
        models.add_column(column)
    if "error" in model:
        models.add_row("-", model["error"], "", "", "")
    for alias in ("champion", "challenger"):
        held = model.get(alias)
        if held:
            pr_auc = held["metrics"].get("pr_auc")
            models.add_row(f"@{alias}", str(held["version"]), held["run_id"] or "",
                           "" if pr_auc is None else f"{pr_auc:.4f}", held["promotion"].get("decision", ""))
        elif "error" not in model:
            models.add_row(f"@{alias}", "none", "", "", "")
    out.print(models)

    tables = Table(title=f"Delta tables ({found['profile']})")
    for column in ("table", "version", "last operation", "committed"):
        tables.add_column(column)
    for name, table in found["tables"].items():
        if table["exists"]:
            tables.add_row(name, str(table["version"]), table["operation"] or "", _when(table["committed_at"]))
        else:
            tables.add_row(name, "not created", "", "")
    for name, stream in found["stream"].items():
        last = stream.get("last_batch")
        tables.add_row(f"{name} (stream)", "no checkpoint" if not stream["exists"] else
                       f"batch {last}" if last is not None else "no batch yet", "", _when(stream.get("committed_at")))
    out.print(tables)

    last = found["last_run"]
    if last:
        out.print(f"Last run: {last['rows_landed']:,} landed = {last['rows_ingested']:,} ingested + "
                  f"{last['rows_quarantined']:,} quarantined + {last['rows_duplicate']:,} duplicate "
                  f"({'reconciled' if last.get('reconciled') else '[red]NOT reconciled[/red]'}), "
                  f"{last.get('duration_s')} s")
    if not any(t["exists"] for t in found["tables"].values()):
        out.print("Nothing has run on this profile yet: start with [bold]tributary run[/bold].")


def _promote(args: list[str], profile: str | None, what: str) -> dict[str, Any]:
    chosen = profile_or_exit(profile)
    done = child_or_exit([sys.executable, "-m", "spark_jobs.promote", "--profile", chosen.name, *args], what)
    return job_result(done.stdout)


def _print_decision(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.out(json.dumps(result, default=str), highlight=False)
        return
    out.print(f"{result.get('decision', '?')}: {result.get('reason', '')}"
              + (f" (@champion is version {result['champion_version']})" if result.get("champion_version") else ""))


@app.command()
def promote(version: Annotated[Optional[int], typer.Option(
                "--version", min=1, help="move @champion to this version by hand (reason 'manual'); without it, "
                                         "gate @challenger against @champion by mlflow/promotion-policy.yaml",
                show_default=False)] = None,
            profile: ProfileOption = None, as_json: JsonOption = False) -> None:
    """Move @champion to a model version: by hand (--version) or through the promotion gate.

    The gate re-evaluates @challenger and @champion on the same holdout (with Spark) and applies
    mlflow/promotion-policy.yaml. Batch and stream scoring load @champion, so they follow it."""
    args = ["--version", str(version)] if version is not None else []
    _print_decision(_promote(args, profile, "promotion"), as_json)


@app.command()
def rollback(profile: ProfileOption = None, as_json: JsonOption = False) -> None:
    """Move @champion back to the version it replaced.

    The replaced version is recorded on the current champion when it was promoted."""
    _print_decision(_promote(["--rollback"], profile, "rollback"), as_json)


@app.command()
def render(profile: Annotated[list[str], typer.Option(
               "--profile", "-p", help="a Kubernetes profile: kind, minikube, eks or gke (repeatable)")],
           out_dir: Annotated[Path, typer.Option("--out", help="where the manifests go")] = REPO_ROOT / "build"
           / "rendered") -> None:
    """Render a Kubernetes profile's SparkApplications and Helm values, validated.

    Each job's SparkApplication and the chart's values, checked against the Kubernetes and spark-operator schemas
    (scripts/render_k8s.py; docs/specs is left as it is)."""
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "render_k8s.py"), "--out", str(out_dir), "--no-sync-docs"]
    for name in profile:
        cmd += ["--profile", name]
    done = subprocess.run(cmd, cwd=REPO_ROOT)
    raise typer.Exit(done.returncode)


@app.command()
def lineage(transaction_id: Annotated[str, typer.Argument(metavar="TRANSACTION_ID",
                                                          help="a scored transaction's transaction_id")],
            profile: ProfileOption = None, as_json: JsonOption = False) -> None:
    """Walk a prediction's lineage back to the file its transaction landed in.

    From the prediction to its model version, that version's training run in MLflow, the feature table version it
    trained on, the bronze version behind those features and the landed file, each hop read from its own store and
    from the OpenLineage events of the run (var/lineage; docs/lineage.md)."""
    chosen = profile_or_exit(profile)
    done = child_or_exit([sys.executable, "-m", "spark_jobs.lineage_walk", "--profile", chosen.name,
                          "--transaction-id", transaction_id], "the lineage walk")
    hops = json.loads(done.stdout.strip().splitlines()[-1])
    if as_json:
        out.out(json.dumps(hops), highlight=False)
        return
    table = Table("hop", "found", "OpenLineage run", title=f"Lineage of transaction {transaction_id}")
    for hop in hops:
        value = hop["value"]
        shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        table.add_row(hop["what"].replace("_", " "), shown, hop["run_id"] or "")
    out.print(table)


def main(argv: list[str] | None = None) -> Any:
    """The console script (``tributary``); ``argv`` for a caller in this process."""
    return app(args=argv, prog_name="tributary")


if __name__ == "__main__":
    main()
