"""The ``tributary`` console script (tributary/cli.py), run as a user runs it: the script ``make setup`` installed
into the environment's bin/, in a child process. What needs a finished pipeline run (``run`` itself, ``status``,
``promote``, ``rollback``) is tested in tests/test_pipeline_e2e.py, on the end-to-end run; ``render`` in
tests/k8s/test_cli_render.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tributary import cli
from tributary.config import REPO_ROOT

TRIBUTARY = Path(sys.executable).parent / "tributary"
COMMANDS = ("run", "up", "status", "promote", "rollback", "render", "lineage")


def tributary(*args: str, home: Path | None = None, jars: bool = False, timeout: float = 120
              ) -> subprocess.CompletedProcess:
    """The command in a bare environment: ``home`` as TRIBUTARY_HOME (else this checkout), the pinned jars when
    ``jars`` (else the profile's own place for them, under the home)."""
    env = {"PATH": f"{TRIBUTARY.parent}:/usr/bin:/bin", "COLUMNS": "200", "TERM": "dumb"}
    if home:
        env["TRIBUTARY_HOME"] = str(home)
    if jars:
        env["TRIBUTARY_JARS_DIR"] = os.environ["TRIBUTARY_JARS_DIR"]
    return subprocess.run([str(TRIBUTARY), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO_ROOT)


def test_the_console_script_is_installed_and_its_help_lists_every_command():
    done = tributary("--help")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2]
    assert [c for c in listed if c in COMMANDS] == list(COMMANDS), done.stdout
    for command in COMMANDS:
        helped = tributary(command, "--help")
        assert helped.returncode == 0 and f"Usage: tributary {command}" in helped.stdout, helped.stdout


def test_no_command_shows_the_help_instead_of_doing_something():
    done = tributary()
    assert done.returncode == 2 and "Usage: tributary" in done.stdout + done.stderr


@pytest.mark.parametrize("args, says", [
    (["run", "--rowz", "5"], "No such option: --rowz"),
    (["run", "--rows", "100"], "Invalid value for '--rows'"),
    (["status", "--profile", "nosuch"], "unknown profile 'nosuch'"),
    (["promote", "--version", "0"], "Invalid value for '--version'"),
    (["up", "--db", "oracle"], "Invalid value for '--db'"),
    (["render"], "Missing option '--profile'"),
    (["render", "--profile", "local"], "invalid choice: 'local'"),
    (["lineage"], "Missing argument 'TRANSACTION_ID'"),
    (["lineage", "--profile", "kind", "tx_1"], "profile kind writes no OpenLineage events to a file on this machine"),
])
def test_a_wrong_flag_or_setting_exits_2_and_says_what_to_fix(args, says):
    done = tributary(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in " ".join((done.stdout + done.stderr).split()), done.stderr


def test_status_on_a_home_where_nothing_ran_says_so_and_starts_nothing(tmp_path):
    done = tributary("status", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["profile"] == "local" and found["last_run"] is None
    assert found["tables"] and not any(t["exists"] for t in found["tables"].values())
    assert found["stream"] == {"stream_checkpoint": {"exists": False}}
    assert "nothing has run through Airflow" in found["runs"]["error"]
    assert "nothing has been trained" in found["model"]["error"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # reading created no store, DB or folder
    shown = tributary("status", home=tmp_path)
    assert shown.returncode == 0 and "start with tributary run" in shown.stdout, shown.stdout


def test_a_run_without_the_jars_fails_before_it_starts_and_says_how_to_get_them(tmp_path):
    done = tributary("run", home=tmp_path)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"Delta jars not found in {tmp_path}/var/jars" in said, said
    assert "run `make jars` or set TRIBUTARY_JARS_DIR" in said and not (tmp_path / "var").exists()


def test_a_run_that_fails_exits_non_zero_with_the_end_of_its_output_and_where_the_rest_is(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # Airflow's home cannot be made here, so the run stops before its first step
    done = tributary("run", "--rows", "3000", "--airflow-home", str(blocker / "airflow"), "--summary",
                     str(tmp_path / "run-summary.json"), home=tmp_path, jars=True)
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split())
    assert "NotADirectoryError" in said and "the run stopped before its first step" in said, said
    assert f"its whole output: {tmp_path / 'run.log'}" in said
    assert "NotADirectoryError" in (tmp_path / "run.log").read_text()


def test_progress_follows_run_locals_steps_and_the_rows_each_job_reports(tmp_path):
    # A child that runs two steps through scripts/run_local.py's own step(), each printing a job's result line
    # through spark_jobs.cli.emit_result, and one Airflow task start line as `airflow dags test` logs it.
    job = ("from spark_jobs.cli import emit_result; print('[DAG TEST] starting task_id=ingest map_index=-1'); "
           "emit_result('ingest', {'rows_ingested': 2950, 'rows_quarantined': 50, 'batch_id': 'b'})")
    steps = ("import sys; sys.path.insert(0, 'scripts'); import run_local; env = None; "
             f"run_local.step('land a batch', [sys.executable, '-c', {job!r}], env); "
             "run_local.step('summarise', [sys.executable, '-c', 'print(1)'], env)")
    log = tmp_path / "run.log"
    code, tracker, tail = cli.follow([sys.executable, "-c", steps], log)
    assert code == 0, tail
    assert tracker.steps == ["land a batch", "summarise"] and tracker.tasks == ["ingest"]
    assert log.read_text().splitlines()[-1] == tail[-1] and "(0s)" in tail[-1]
    lines = log.read_text().splitlines()
    tracker = cli.StepTracker()
    for line in lines[:lines.index("==> summarise")]:  # the first step: its task and the rows its job reported
        tracker.feed(line)
    assert tracker.describe() == "land a batch · task ingest · rows_ingested 2,950 · rows_quarantined 50"
