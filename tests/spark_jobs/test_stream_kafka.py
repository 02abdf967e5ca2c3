"""The stream job on a real Kafka broker: the ``local-kafka`` profile, a KRaft broker started by
scripts/kafka_broker.py on loopback (module fixture; stopped by its PID afterwards, also on failure).

The records are the generator's lines (``generate.publish_kafka``, the same code as ``--target kafka``), plus
records that are not UTF-8 at all; the generator's own labels are the oracle, as in test_stream.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import generate, io
from spark_jobs.stream import build_source, main
from tributary.config import REPO_ROOT, ConfigError, Profile, load_profile
from tests.pipeline_data import load_script
from tests.spark_jobs.ml_support import mlflow_store  # noqa: F401
from tests.spark_jobs.test_stream import REASON_OF_KIND, ids, make_champion, versions
from tests.spark_jobs.test_stream_kill import JARS_DIR, batch_ids, kill_mid_run, tail

kafka_broker = load_script("kafka_broker")

# A stream process's whole run, and a wait for it: hang guards, not performance bounds (on 2 busy cores beside
# the rest of `make test` a micro-batch has taken 2 minutes).
RUN_TIMEOUT_S = 900
NOT_UTF8 = [b'{"transaction_id": "tx_\xff\xfe", "amount": 1}', b"\xc3\x28 not text"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = kafka_broker.start(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture
def kafka_profile(mlflow_store: Profile, broker, monkeypatch: pytest.MonkeyPatch, request) -> Profile:  # noqa: F811
    """``local-kafka`` in this test's TRIBUTARY_HOME (sharing its MLflow store), on a fresh 3-partition topic."""
    topic = "t-" + re.sub(r"[^a-zA-Z0-9]", "-", request.node.name)[:60]
    broker.topic("create", topic, partitions=3)
    monkeypatch.setenv("TRIBUTARY_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("TRIBUTARY_KAFKA_TOPIC", topic)
    return load_profile("local-kafka")


def publish(spark: SparkSession, profile: Profile, batch_id: str, rows: int, day: date, extra: list[bytes] = ()):
    """Publish one generated day (dirty lines included) and ``extra`` raw records; the oracle of what was sent:
    (records sent, valid transaction ids, quarantine reason prefix -> rows, duplicate lines)."""
    batch = generate.generate(generate.GeneratorConfig(rows=rows, start=day, days=1, batch_id=batch_id,
                                                       dirty_fraction=0.1))
    if extra:
        sent = generate.publish_kafka(spark, profile.streaming["kafka"], [*batch.lines, *extra])
    else:  # what a user runs: the generator's CLI with --target kafka (the same lines)
        sent = generate.main(["--profile", profile.name, "--target", "kafka", "--rows", str(rows), "--start",
                              day.isoformat(), "--days", "1", "--batch-id", batch_id, "--dirty-fraction", "0.1"])[
            "published"]
        assert sent == len(batch.lines)
    kinds = Counter(entry.kind for entry in batch.landed)
    reasons = Counter({REASON_OF_KIND[k]: n for k, n in kinds.items() if k in REASON_OF_KIND})
    if extra:
        reasons["invalid_utf8"] = len(extra)
    valid = {json.loads(entry.line)["transaction_id"] for entry in batch.landed if entry.kind == "clean"}
    return sent, valid, reasons, kinds["duplicate"]


def stream_error(capsys) -> str:
    """Run the stream job in-process, expecting it to stop with exit status 1; the error it printed."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["--profile", "local-kafka"])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    print(error)
    return error


def stream_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "spark_jobs.stream", "--profile", "local-kafka", *args]


def stream_env(limit: int) -> dict[str, str]:
    """The environment of a stream job run as its own process: this test's home, broker, topic and batch limit."""
    return {**os.environ, "TRIBUTARY_JARS_DIR": str(JARS_DIR), "TRIBUTARY_KAFKA_MAX_OFFSETS": str(limit)}


def exactly_once(spark: SparkSession, profile: Profile, valid: set[str], quarantined: int) -> None:
    """Every valid record in bronze and stream_predictions once, every rejected one in quarantine once."""
    for name in ("bronze_transactions", "stream_predictions"):
        table = io.read_table(spark, profile.catalog, name)
        assert table.count() == table.select("transaction_id").distinct().count(), f"duplicates in {name}"
        assert ids(spark, profile, name) == valid, f"missing or extra rows in {name}"
    quarantine = topic_quarantine(spark, profile)
    assert quarantine.count() == quarantine.select("quarantine_id").distinct().count() == quarantined


def topic_quarantine(spark: SparkSession, profile: Profile):
    topic = profile.streaming["kafka"]["topic"]
    return io.read_table(spark, profile.catalog, "quarantine_transactions").where(
        F.col("source_file").startswith(f"kafka://{topic}/"))


def test_the_profile_names_the_broker_and_checks_its_settings(monkeypatch: pytest.MonkeyPatch, spark) -> None:
    monkeypatch.setenv("TRIBUTARY_KAFKA_BOOTSTRAP", "10.0.0.7:9094")
    profile = load_profile("local-kafka")
    assert profile.streaming["source"] == "kafka"
    assert profile.streaming["kafka"]["bootstrap_servers"] == "10.0.0.7:9094"
    assert profile.catalog.uri("stream_checkpoint") != load_profile("local").catalog.uri("stream_checkpoint")
    assert profile.streaming["kafka"]["security_protocol"] == "PLAINTEXT"
    monkeypatch.setenv("TRIBUTARY_KAFKA_MAX_OFFSETS", "lots")
    with pytest.raises(ConfigError, match="max_offsets_per_trigger must be a whole number, 1 or more .*; not 'lots'"):
        load_profile("local-kafka")
    monkeypatch.setenv("TRIBUTARY_KAFKA_MAX_OFFSETS", "10")
    monkeypatch.setenv("TRIBUTARY_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.delenv("TRIBUTARY_KAFKA_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="export TRIBUTARY_KAFKA_USERNAME and TRIBUTARY_KAFKA_PASSWORD"):
        build_source(spark, load_profile("local-kafka"))


def test_the_stream_authenticates_with_scram_from_the_environment_and_says_when_it_is_refused(
    kafka_profile: Profile, broker, spark: SparkSession, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The broker's SASL_PLAINTEXT listener, SCRAM-SHA-512 (MSK's mechanism): the generator publishes and the stream
    reads with the credentials from the environment; a wrong password stops the stream with what to check."""
    monkeypatch.setenv("TRIBUTARY_KAFKA_BOOTSTRAP", broker.sasl_bootstrap)
    monkeypatch.setenv("TRIBUTARY_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TRIBUTARY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("TRIBUTARY_KAFKA_USERNAME", kafka_broker.SASL_USER)
    monkeypatch.setenv("TRIBUTARY_KAFKA_PASSWORD", "not-" + kafka_broker.SASL_PASSWORD)
    profile = load_profile("local-kafka")
    make_champion(profile)
    error = stream_error(capsys)
    assert "Kafka refused the stream's credentials" in error
    assert "TRIBUTARY_KAFKA_PASSWORD" in error and "SCRAM-SHA-512" in error

    monkeypatch.setenv("TRIBUTARY_KAFKA_PASSWORD", kafka_broker.SASL_PASSWORD)
    sent, valid, reasons, duplicates = publish(spark, profile, "sasl", rows=40, day=date(2026, 11, 15))
    result = main(["--profile", "local-kafka"])
    assert ids(spark, profile, "stream_predictions") == valid and result["stream_rows"] == len(valid)
    assert len(valid) + result["quarantined"] + result["duplicates"] == sent
    assert result["quarantined"] == sum(reasons.values()) and result["duplicates"] == duplicates


def test_the_stream_reads_a_topic_exactly_once_and_quarantines_what_is_not_text(
    kafka_profile: Profile, spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = kafka_profile
    make_champion(profile)
    sent, valid, reasons, duplicates = publish(spark, profile, "k1", rows=150, day=date(2026, 11, 15), extra=NOT_UTF8)
    limit = 80
    monkeypatch.setenv("TRIBUTARY_KAFKA_MAX_OFFSETS", str(limit))

    result = main(["--profile", "local-kafka"])
    # maxOffsetsPerTrigger from the profile: at most `limit` records per micro-batch (Spark spreads it over the
    # three partitions, so a batch may fall a record or two short).
    assert math.ceil(sent / limit) <= result["batches"] <= math.ceil(sent / limit) + 2, result
    assert ids(spark, profile, "bronze_transactions") == valid
    assert ids(spark, profile, "stream_predictions") == valid and result["stream_rows"] == len(valid)
    predictions = io.read_table(spark, profile.catalog, "stream_predictions")
    assert predictions.where(F.col("model_version") != result["model_version"]).count() == 0
    quarantine = topic_quarantine(spark, profile)
    assert result["quarantined"] == quarantine.count() == sum(reasons.values())
    got = Counter(next(p for p in reasons if r.reason.startswith(p)) for r in quarantine.collect())
    assert got == reasons
    # every record accounted for: ingested + quarantined + duplicates = sent
    assert len(valid) + result["quarantined"] + result["duplicates"] == sent and result["duplicates"] == duplicates
    # the records that are not UTF-8: quarantined with where they are in the topic, as readable text
    topic = profile.streaming["kafka"]["topic"]
    bad = quarantine.where(F.col("reason") == "invalid_utf8").collect()
    assert len(bad) == len(NOT_UTF8)
    assert all(re.fullmatch(rf"kafka://{re.escape(topic)}/[0-2]/\d+", r.source_file) for r in bad)
    assert all("\ufffd" in r.raw_record and r.transaction_id is None for r in bad)

    # Nothing new: no micro-batch, no table changes.
    before = versions(spark, profile)
    again = main(["--profile", "local-kafka"])
    assert again["batches"] == 0 and versions(spark, profile) == before

    # New records, and the whole first day re-sent (an at-least-once producer): only the new ones are scored,
    # the re-sent ones are duplicates, and earlier scores stay as they were.
    old_scores = predictions.select("transaction_id", "fraud_score", "scored_at").collect()
    sent2, valid2, reasons2, _ = publish(spark, profile, "k2", rows=60, day=date(2026, 11, 16))
    resent, _, reasons1, _ = publish(spark, profile, "k1", rows=150, day=date(2026, 11, 15))
    monkeypatch.setenv("TRIBUTARY_KAFKA_MAX_OFFSETS", "5000")
    third = main(["--profile", "local-kafka"])
    assert third["batches"] == 1
    assert ids(spark, profile, "stream_predictions") == ids(spark, profile, "bronze_transactions") == valid | valid2
    now = io.read_table(spark, profile.catalog, "stream_predictions")
    assert now.count() == len(valid | valid2)
    earlier = now.where(F.col("transaction_id").isin(list(valid)))
    assertDataFrameEqual(earlier.select("transaction_id", "fraud_score", "scored_at"), old_scores)
    # The re-sent day's dirty lines are quarantined again, at their new offsets; the counts still reconcile.
    assert third["quarantined"] == sum(reasons2.values()) + sum(reasons1.values())
    assert len(valid2) + third["quarantined"] + third["duplicates"] == sent2 + resent
    assert topic_quarantine(spark, profile).count() == result["quarantined"] + third["quarantined"]


def test_sigkill_mid_batch_then_the_broker_down_for_30s_lose_nothing(
    kafka_profile: Profile, broker, spark: SparkSession, tmp_path: Path
) -> None:
    """Two faults, one after the other, on one checkpoint (one test: each stream process costs a JVM and a model
    load). A stream killed with SIGKILL mid-batch; the restarted one runs as a long-running query while the broker
    stops for 30 s and comes back on its data: the query waits (or stops with an error that says so, and a restart
    resumes). Every record before and after is read exactly once."""
    profile = kafka_profile
    make_champion(profile)
    sent1, valid1, reasons1, _ = publish(spark, profile, "kill", rows=80, day=date(2026, 11, 15))
    limit = 40  # two micro-batches: killed once the first has committed and the second is in flight
    checkpoint = Path(profile.catalog.uri("stream_checkpoint"))
    tables = [Path(profile.catalog.uri(n)) for n in ("bronze_transactions", "stream_predictions")]
    long_running = stream_command("--trigger", "processing_time", "--interval", "2 seconds")
    first_log, log = tmp_path / "first.log", tmp_path / "stream.log"
    with first_log.open("w") as out:
        first = subprocess.Popen(long_running, cwd=REPO_ROOT, env=stream_env(limit), stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            moment = kill_mid_run(first, checkpoint, *tables, first_log, batches=math.ceil(sent1 / limit),
                                  start_timeout=RUN_TIMEOUT_S)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
    committed = batch_ids(checkpoint / "commits")
    print(f"killed at: {moment}; committed batches {sorted(committed)}")
    assert first.returncode == -signal.SIGKILL and committed, (first.returncode, committed)

    stream = subprocess.Popen(long_running, cwd=REPO_ROOT, env=stream_env(limit), stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: settled(checkpoint) and ids(spark, profile, "stream_predictions") == valid1, stream, log,
                 "the records published before the kill")
        exactly_once(spark, profile, valid1, sum(reasons1.values()))  # the kill: no duplicates, no loss
        broker.stop()
        time.sleep(30)
        assert stream.poll() is None or "error" in log.read_text().lower(), tail(log)
        kafka_broker.start(Path(broker.state))  # the same data directory and port
        sent2, valid2, reasons2, _ = publish(spark, profile, "after", rows=60, day=date(2026, 11, 16))
        if stream.poll() is not None:  # it stopped during the outage: say how, then resume from the checkpoint
            print(f"the stream stopped during the outage (rc {stream.returncode}):\n{tail(log, 20)}")
            assert stream.returncode != 0
            resumed = subprocess.run(stream_command(), cwd=REPO_ROOT, env=stream_env(5000), capture_output=True,
                                     text=True, timeout=RUN_TIMEOUT_S)
            assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        else:
            wait_for(lambda: settled(checkpoint) and ids(spark, profile, "stream_predictions") == valid1 | valid2,
                     stream, log, "the records published after the outage")
    finally:
        if stream.poll() is None:
            os.killpg(stream.pid, signal.SIGKILL)
            stream.wait(timeout=60)
    assert batch_ids(checkpoint / "commits") == batch_ids(checkpoint / "offsets")
    exactly_once(spark, profile, valid1 | valid2, sum(reasons1.values()) + sum(reasons2.values()))


def settled(checkpoint: Path) -> bool:
    """Every micro-batch the query planned has committed (its bronze, predictions and quarantine all written)."""
    commits = batch_ids(checkpoint / "commits")
    return bool(commits) and commits == batch_ids(checkpoint / "offsets")


def wait_for(done, stream: subprocess.Popen, log: Path, what: str, timeout: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if stream.poll() is not None:
            pytest.fail(f"the stream exited (rc {stream.returncode}) while waiting for {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"the stream did not write {what} within {timeout:.0f}s:\n{tail(log)}")
        time.sleep(2)


def test_a_topic_recreated_under_the_checkpoint_stops_the_stream_with_what_to_do(
    kafka_profile: Profile, broker, spark: SparkSession, capsys
) -> None:
    profile = kafka_profile
    topic = profile.streaming["kafka"]["topic"]
    make_champion(profile)
    publish(spark, profile, "old", rows=60, day=date(2026, 11, 15))
    assert main(["--profile", "local-kafka"])["batches"] == 1
    broker.topic("delete", topic)
    deadline = time.monotonic() + 60
    while True:  # deletion completes in the background; until then, creating the topic again is refused
        try:
            broker.topic("create", topic, partitions=3)
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    publish(spark, profile, "new", rows=10, day=date(2026, 11, 16))
    before = versions(spark, profile)
    error = stream_error(capsys)
    assert f"the Kafka topic '{topic}' no longer holds the offsets" in error
    assert profile.catalog.uri("stream_checkpoint") in error
    assert versions(spark, profile) == before  # nothing written past the gap
