"""Streaming acceptance test: SIGKILL the stream job mid-run, restart it on the same checkpoint, lose nothing.

The job runs as a separate process (``python -m spark_jobs.stream --profile local``) over several landed files,
one file per micro-batch. The test waits until at least one micro-batch has committed and a later one is in
flight (ideally after it has written bronze but before its predictions: the hardest place to die), kills the
process group (driver and JVM: a lost node), restarts the job to completion, and checks that every valid landed
transaction is in bronze and ``stream_predictions`` exactly once, and every rejected line in quarantine once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from spark_jobs import io
from tributary.config import REPO_ROOT, Profile
from tests.spark_jobs import test_stream as support
from tests.spark_jobs.ml_support import mlflow_store, result_of  # noqa: F401

FILES = 3  # micro-batches (maxFilesPerTrigger is 1 in the local profile)
ROWS = 150
JARS_DIR = REPO_ROOT / "var" / "jars"
START_TIMEOUT_S = 300  # until the first micro-batch commits
RUN_TIMEOUT_S = 420  # the restarted run, to completion


def batch_ids(folder: Path) -> set[int]:
    """Micro-batch ids with a file in a checkpoint sub-folder (``offsets`` or ``commits``)."""
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def _txn_versions(table: Path) -> set[int]:
    """Micro-batch ids (Delta ``txn`` versions) a table has committed, read from its ``_delta_log``."""
    log = table / "_delta_log"
    versions: set[int] = set()
    if not log.is_dir():
        return versions
    for commit in sorted(log.glob("*.json")):
        for entry in commit.read_text().splitlines():
            if '"txn"' in entry:
                versions.add(json.loads(entry)["txn"]["version"])
    return versions


def tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


def kill_mid_run(proc: subprocess.Popen, checkpoint: Path, bronze: Path, predictions: Path, log: Path,
                 batches: int = FILES, start_timeout: float = START_TIMEOUT_S) -> str:
    """Wait for a committed batch and a later one in flight, SIGKILL the process group; return where it died.

    Preferred moment: the in-flight batch has reached bronze but not ``stream_predictions``. If that window is
    missed until only one batch is left, kill as soon as any batch is in flight.
    """
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the stream job exited (rc {proc.returncode}) before it could be killed mid-run; "
                f"raise FILES or ROWS so it needs longer.\n{tail(log)}"
            )
        commits = batch_ids(checkpoint / "commits")
        in_flight = batch_ids(checkpoint / "offsets") - commits
        if commits and in_flight:
            batch = max(in_flight)
            if batch in _txn_versions(bronze) and batch not in _txn_versions(predictions):
                moment = f"batch {batch} written to bronze, not yet to stream_predictions"
                break
            if len(commits) >= batches - 1:
                moment = f"batch {batch} in flight"
                break
        time.sleep(0.05)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"no micro-batch committed within {start_timeout:.0f}s.\n{tail(log)}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return moment


def test_sigkill_mid_run_then_restart_has_no_duplicates_and_no_gaps(
    mlflow_store: Profile, tributary_home: Path, spark: SparkSession, tmp_path: Path
) -> None:
    profile = mlflow_store
    assert profile.streaming["max_files_per_trigger"] == 1, "the test needs one file per micro-batch"
    support.make_champion(profile)
    landed = support.land(profile, batch_id="kill", rows=ROWS, files=FILES)
    checkpoint = Path(profile.catalog.uri("stream_checkpoint"))
    bronze_path = Path(profile.catalog.uri("bronze_transactions"))
    predictions_path = Path(profile.catalog.uri("stream_predictions"))

    command = [sys.executable, "-m", "spark_jobs.stream", "--profile", "local"]
    env = {**os.environ, "TRIBUTARY_HOME": str(tributary_home), "TRIBUTARY_JARS_DIR": str(JARS_DIR)}
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with first_log.open("w") as out:
        first = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            moment = kill_mid_run(first, checkpoint, bronze_path, predictions_path, first_log)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
    committed = batch_ids(checkpoint / "commits")
    print(f"killed the first run at: {moment}; committed batches {sorted(committed)} of {FILES}")
    assert first.returncode == -signal.SIGKILL, f"the first run was not killed (rc {first.returncode})"
    assert 1 <= len(committed) < FILES, f"killed after {sorted(committed)} of {FILES} batches: not mid-run"

    with second_log.open("w") as out:
        try:
            second = subprocess.run(
                command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the restarted stream job did not finish in {RUN_TIMEOUT_S}s.\n{tail(second_log)}")
    assert second.returncode == 0, f"the restarted stream job failed:\n{tail(second_log)}"
    result = result_of(second_log.read_text())
    assert result["batches"] == FILES - len(committed), (moment, result)
    assert batch_ids(checkpoint / "commits") == set(range(FILES))

    predictions = io.read_table(spark, profile.catalog, "stream_predictions")
    assert predictions.count() == predictions.select("transaction_id").distinct().count(), "duplicated scores"
    assert support.ids(spark, profile, "stream_predictions") == landed.valid_ids, f"missing scores ({moment})"
    bronze = io.read_table(spark, profile.catalog, "bronze_transactions")
    assert bronze.count() == bronze.select("transaction_id").distinct().count(), "duplicated bronze rows"
    assert support.ids(spark, profile, "bronze_transactions") == landed.valid_ids, f"missing bronze rows ({moment})"
    quarantine = io.read_table(spark, profile.catalog, "quarantine_transactions")
    assert quarantine.count() == quarantine.select("quarantine_id").distinct().count() == landed.quarantined
