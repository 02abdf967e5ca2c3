"""Tests for spark_jobs.stream: sources, batch preparation, idempotent writes, and the job end to end.

The end-to-end tests run ``stream.main`` in-process on the shared session over files landed with the
generator's functions, scored by a small model registered with ``ml_support.register_model`` and promoted with
``promote --version``. The generator's own labels for each line (clean or which dirty kind) are the oracle.
Helpers here are also used by ``test_stream_kill.py`` and ``test_stream_kafka.py`` (imported as a module, so its
tests are not collected twice).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import generate, io
from spark_jobs.transforms.schema import BRONZE_SCHEMA
from spark_jobs.transforms.validation import validate_lines
from tributary.config import ConfigError, Profile
from spark_jobs.stream import (
    PHASES,
    SOURCES,
    StreamSink,
    build_source,
    existing_ids,
    idempotent_writes,
    kafka_records,
    main,
    prepare_batch,
    txn_app_id,
    wait_for_champion,
)
from tests.spark_jobs.ml_support import closed_port_url, mlflow_store, register_model  # noqa: F401

AS_OF = datetime(2026, 11, 20, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 10, 12, 0, 0, tzinfo=timezone.utc)


def line(tid: str, offset_s: int = 0, card: str = "c1", amount: float = 10.0, **overrides) -> str:
    """One landed JSON line (the raw contract), with field overrides; ``None`` drops a field."""
    record = {
        "transaction_id": tid,
        "card_id": card,
        "merchant_id": "m1",
        "merchant_category": "grocery",
        "amount": amount,
        "currency": "EUR",
        "event_time": (T0 + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "country": "DE",
        "lat": 52.5,
        "lon": 13.4,
        "channel": "pos",
        "is_fraud": 0,
    }
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def bronze_row(tid: str, source_file: str, offset_s: int = 0, card: str = "c1") -> tuple:
    """A typed bronze row (BRONZE_SCHEMA order)."""
    return (
        tid, card, "m1", "grocery", 10.0, "EUR", T0 + timedelta(seconds=offset_s), "DE", 52.5, 13.4, "pos", 0,
        source_file, AS_OF,
    )  # fmt: skip


def lines_df(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(rows, "value string, source_file string")


def ids_df(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(rows, "transaction_id string, source_file string")


# --- sources --------------------------------------------------------------------------------------------------


def test_kafka_records_maps_value_and_offset_to_source_file(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        [(bytearray(b'{"a": 1}'), "txns", 0, 41), (bytearray(b"not json"), "txns", 3, 7)],
        "value binary, topic string, partition int, offset long",
    )
    expected = lines_df(spark, [('{"a": 1}', "kafka://txns/0/41"), ("not json", "kafka://txns/3/7")])
    assertDataFrameEqual(kafka_records(records), expected)


def test_build_source_rejects_unknown_kind(local_profile: Profile, spark: SparkSession) -> None:
    with pytest.raises(ConfigError, match="unknown streaming source 'pigeon'.*files"):
        build_source(spark, local_profile, "pigeon")
    assert set(SOURCES) == {"files", "kafka"}


def test_files_source_needs_the_landing_folder(local_profile: Profile, spark: SparkSession) -> None:
    with pytest.raises(ConfigError, match="landing_stream folder .* does not exist"):
        build_source(spark, local_profile, "files")


def test_a_long_running_files_source_creates_the_missing_folder_and_waits(
        local_profile: Profile, spark: SparkSession, tmp_path) -> None:
    folder = tmp_path / "var" / "landing" / "stream"
    assert not folder.exists()
    lines = build_source(spark, local_profile, "files", wait_for_files=True)
    assert folder.is_dir() and lines.isStreaming and lines.columns == ["value", "source_file"]


def test_files_source_reads_lines_with_their_file(local_profile: Profile, spark: SparkSession, tmp_path) -> None:
    landing = local_profile.catalog.uri("landing_stream")
    (tmp_path / "var" / "landing" / "stream" / "day=1").mkdir(parents=True)
    (tmp_path / "var" / "landing" / "stream" / "day=1" / "a.jsonl").write_text("l1\nl2\n")
    lines = build_source(spark, local_profile)  # kind from the profile: files
    assert lines.isStreaming and lines.columns == ["value", "source_file"]
    query = lines.writeStream.format("memory").queryName("stream_source_probe").trigger(availableNow=True).start()
    try:
        query.awaitTermination(120)
        got = spark.table("stream_source_probe")
        source = f"file:{landing}/day=1/a.jsonl"
        assertDataFrameEqual(got, lines_df(spark, [("l1", source), ("l2", source)]))
    finally:
        query.stop()


def test_kafka_source_needs_its_settings(local_profile: Profile, spark: SparkSession) -> None:
    with pytest.raises(ConfigError, match="streaming.kafka with keys"):
        build_source(spark, local_profile, "kafka")


def test_kafka_source_is_a_stream_of_lines(local_profile: Profile, spark: SparkSession) -> None:
    raw = dict(local_profile.raw)
    raw["streaming"] = {**raw["streaming"], "source": "kafka", "kafka": {"bootstrap_servers": "k:9092", "topic": "t"}}
    kafka_profile = dataclasses.replace(local_profile, raw=raw)
    lines = build_source(spark, kafka_profile)  # defines the stream; no broker is contacted until it starts
    assert lines.isStreaming and lines.columns == ["value", "source_file"]


# --- batch preparation ----------------------------------------------------------------------------------------


def test_existing_ids_are_the_batch_ids_in_bronze_leaving_out_its_own_files(spark: SparkSession) -> None:
    lines = lines_df(spark, [(line("replayed"), "f2"), (line("known"), "f2"), (line("other"), "f3")])
    bronze = spark.createDataFrame(
        [bronze_row("replayed", "f2"), bronze_row("known", "f1"), bronze_row("not-in-batch", "f1")], BRONZE_SCHEMA
    )
    valid, _ = validate_lines(lines, AS_OF)
    assertDataFrameEqual(
        existing_ids(lines, valid, bronze), spark.createDataFrame([("known",)], "transaction_id string")
    )


def test_prepare_batch_validates_dedups_and_quarantines_like_ingest(spark: SparkSession) -> None:
    lines = lines_df(
        spark,
        [
            (line("t1"), "f2"),
            (line("t1"), "f3"),  # duplicate inside the batch: f2's copy wins
            (line("t2", offset_s=5), "f2"),
            (line("old"), "f2"),  # already in bronze from another file: a duplicate
            (line("replayed"), "f3"),  # in bronze from this batch's own file (a crash mid-batch): still new
            ("{not json", "f2"),
            (line("t3", amount=-1.0), "f3"),
            (line("t4", card=None), "f3"),
        ],
    )
    bronze = spark.createDataFrame([bronze_row("old", "f1"), bronze_row("replayed", "f3")], BRONZE_SCHEMA)
    plan = prepare_batch(lines, bronze, AS_OF)
    assertDataFrameEqual(
        plan.new.select("transaction_id", "source_file"),
        ids_df(spark, [("t1", "f2"), ("t2", "f2"), ("replayed", "f3")]),
    )
    assert plan.new.schema.fieldNames() == BRONZE_SCHEMA.fieldNames()
    assertDataFrameEqual(
        plan.quarantine.select("reason", "transaction_id"),
        spark.createDataFrame(
            [("malformed_json", None), ("negative_amount", "t3"), ("missing_field:card_id", "t4")],
            "reason string, transaction_id string",
        ),
    )
    assertDataFrameEqual(
        plan.duplicates.select("transaction_id", "source_file"), ids_df(spark, [("t1", "f3"), ("old", "f2")])
    )


# --- idempotent writes ----------------------------------------------------------------------------------------


def test_txn_app_id_is_kept_by_the_checkpoint_and_new_for_a_new_one(spark: SparkSession, tmp_path: Path) -> None:
    """What makes a replayed batch a no-op: a restart on the same checkpoint tags its writes with the same app id,
    and a new checkpoint with another one (its batch ids start at 0 again)."""
    source = tmp_path / "in"
    source.mkdir()
    seen: list[str] = []

    def run(checkpoint: str, text: str) -> None:
        (source / f"{text}.txt").write_text(text + "\n")
        query = (spark.readStream.text(str(source)).writeStream
                 .foreachBatch(lambda df, _: seen.append(txn_app_id(df.sparkSession)))
                 .option("checkpointLocation", str(tmp_path / checkpoint)).trigger(availableNow=True).start())
        query.awaitTermination(120)
        assert query.exception() is None

    run("one", "a")
    run("one", "b")  # a restart of the same query
    run("two", "c")  # a new query over the same source
    assert len(seen) == 3 and seen[0] == seen[1] != seen[2], seen
    assert all(s.startswith("tributary-stream-") for s in seen), seen
    with pytest.raises(RuntimeError, match="sql.streaming.queryId"):
        txn_app_id(spark)  # outside a micro-batch there is no query to tag writes with


def test_idempotent_writes_skip_a_replayed_batch(local_profile: Profile, spark: SparkSession) -> None:
    catalog = local_profile.catalog
    first = spark.createDataFrame([bronze_row("a", "f1")], BRONZE_SCHEMA)
    replay = spark.createDataFrame([bronze_row("a", "f1"), bronze_row("b", "f1")], BRONZE_SCHEMA)
    with idempotent_writes(spark, "app-1", 0):
        io.merge_table(spark, first, catalog, "bronze_transactions")
    version = io.table_version(spark, catalog, "bronze_transactions")
    with idempotent_writes(spark, "app-1", 0):  # the same batch again: Delta skips the whole write
        io.merge_table(spark, replay, catalog, "bronze_transactions")
    assert io.table_version(spark, catalog, "bronze_transactions") == version
    assert spark.conf.get("spark.databricks.delta.write.txnAppId", None) is None  # confs do not leak
    with idempotent_writes(spark, "app-2", 0):  # a fresh checkpoint's batch 0 is written
        io.merge_table(spark, replay, catalog, "bronze_transactions")
    ids = [r.transaction_id for r in io.read_table(spark, catalog, "bronze_transactions").collect()]
    assert sorted(ids) == ["a", "b"]


# --- end to end: helpers shared with test_stream_kill.py ------------------------------------------------------

REASON_OF_KIND = {  # the generator's dirty kinds -> the quarantine reason (prefix) validation must give
    "malformed_json": "malformed_json",
    "invalid_type": "invalid_type:",
    "missing_field": "missing_field:",
    "negative_amount": "negative_amount",
    "future_timestamp": "future_timestamp",
}


@dataclasses.dataclass(frozen=True)
class Landed:
    """What the generator landed, known independently of the job: the oracle for the end-to-end checks."""

    valid_ids: set[str]
    quarantined: int
    reasons: Counter  # reason prefix -> expected rows
    files: list[str]


def land(profile: Profile, batch_id: str, rows: int, files: int, start: date = date(2026, 11, 15)) -> Landed:
    """Generate one day of transactions (dirty lines included) and land them as ``files`` stream files."""
    config = generate.GeneratorConfig(rows=rows, start=start, days=1, batch_id=batch_id, dirty_fraction=0.1)
    batch = generate.generate(config)
    directory, prefix = generate.landing_location(profile.catalog.uri("landing_stream"), "landing_stream", batch_id)
    paths = generate.write_jsonl(directory, generate.split_files(batch.lines, files, prefix))
    kinds = Counter(entry.kind for entry in batch.landed)
    reasons = Counter({REASON_OF_KIND[k]: n for k, n in kinds.items() if k in REASON_OF_KIND})
    valid = {json.loads(entry.line)["transaction_id"] for entry in batch.landed if entry.kind == "clean"}
    assert sum(reasons.values()) > 0, "the test data should hold lines to quarantine"
    return Landed(valid_ids=valid, quarantined=sum(reasons.values()), reasons=reasons, files=paths)


def make_champion(profile: Profile) -> int:
    """Train a small model (``ml_support.register_model``, no Spark) and promote it to ``@champion`` with the
    promote job's manual mode; returns its version."""
    from spark_jobs import promote

    version = register_model(profile)["version"]
    promote.main(["--profile", profile.name, "--version", str(version)])
    return version


def ids(spark: SparkSession, profile: Profile, name: str) -> set[str]:
    return {r.transaction_id for r in io.read_table(spark, profile.catalog, name).select("transaction_id").collect()}


def versions(spark: SparkSession, profile: Profile) -> dict[str, int]:
    names = ("bronze_transactions", "quarantine_transactions", "stream_predictions")
    return {name: io.table_version(spark, profile.catalog, name) for name in names}


def streamed_quarantine(spark: SparkSession, profile: Profile) -> DataFrame:
    quarantine = io.read_table(spark, profile.catalog, "quarantine_transactions")
    return quarantine.where(F.col("source_file").contains(profile.catalog.uri("landing_stream")))


# --- end to end -----------------------------------------------------------------------------------------------


def test_stream_without_champion_stops_before_starting(mlflow_store: Profile, capsys) -> None:
    profile = mlflow_store
    land(profile, "nochamp", rows=20, files=1)
    with pytest.raises(SystemExit) as stopped:
        main(["--profile", "local"])
    assert stopped.value.code == 2
    assert "champion" in capsys.readouterr().err
    assert not Path(profile.catalog.uri("stream_checkpoint")).exists(), "the query must not have started"


def test_a_long_running_stream_waits_for_the_first_champion(mlflow_store: Profile, caplog) -> None:
    """Deployed before any model exists, the stream checks the registry every poll until a version is promoted
    (here during the second wait), then scores with it."""
    profile = mlflow_store
    waits: list[float] = []
    promoted: list[int] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            promoted.append(make_champion(profile))

    with caplog.at_level("WARNING", logger="spark_jobs.stream"):
        champion = wait_for_champion(profile, poll_s=7, sleep=sleep)
    assert waits == [7, 7]
    assert champion.version == promoted[0]
    assert caplog.text.count("the stream waits for one (checking every 7s)") == 2


def test_a_waiting_stream_rides_out_a_tracking_server_that_stops_answering(mlflow_store: Profile, caplog,
                                                                           monkeypatch) -> None:
    """The registry answered (no champion yet), then its server stops answering for one look (here: the profile's
    tracking URI points at a port nothing listens on, as a restarting server's Service would refuse): the stream logs
    it and keeps waiting; the server back, the champion promoted, it scores with it."""
    from spark_jobs import tracking

    monkeypatch.setattr(tracking, "HEALTH_WAIT_S", 1.0)
    profile = mlflow_store
    store_uri = profile.mlflow["tracking_uri"]
    waits: list[float] = []
    promoted: list[int] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # the server goes away
            profile.raw["mlflow"]["tracking_uri"] = closed_port_url()
        else:  # it is back, and a version is promoted
            profile.raw["mlflow"]["tracking_uri"] = store_uri
            promoted.append(make_champion(profile))

    with caplog.at_level("WARNING", logger="spark_jobs.stream"):
        champion = wait_for_champion(profile, poll_s=7, sleep=sleep)
    assert waits == [7, 7]
    assert champion.version == promoted[0]
    assert caplog.text.count("the stream waits for one") == 1
    assert caplog.text.count("did not answer") == 1 and "the stream keeps waiting (checking every 7s)" in caplog.text


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_running_stream_follows_the_champion_at_most_every_check_interval(mlflow_store: Profile, caplog) -> None:
    """``follow_champion`` before each micro-batch: no look within ``champion_check_s`` (a promotion waits for it),
    then the moved alias is taken; a registry that stops answering, or a rollback that leaves no champion, keeps the
    current one."""
    from mlflow import MlflowClient

    from spark_jobs.transforms.scoring import resolve_champion

    profile = mlflow_store
    first = make_champion(profile)
    clock = FakeClock()
    sink = StreamSink(profile, resolve_champion(profile), champion_check_s=30, clock=clock)
    second = make_champion(profile)
    clock.now += 29
    sink.follow_champion()
    assert sink.champion.version == first  # within the interval: no look
    clock.now += 1
    with caplog.at_level("WARNING", logger="spark_jobs.stream"):
        sink.follow_champion()
    assert sink.champion.version == second
    assert f"moved from version {first} to {second}" in caplog.text

    store_uri = profile.mlflow["tracking_uri"]
    profile.raw["mlflow"]["tracking_uri"] = closed_port_url()  # the server goes away (the look waits its 5 s)
    clock.now += 30
    caplog.clear()
    with caplog.at_level("WARNING", logger="spark_jobs.stream"):
        sink.follow_champion()
    assert sink.champion.version == second
    assert "did not answer" in caplog.text and f"keeps scoring with version {second}" in caplog.text

    profile.raw["mlflow"]["tracking_uri"] = store_uri
    MlflowClient(store_uri).delete_registered_model_alias(profile.mlflow["model_name"], "champion")
    clock.now += 30
    caplog.clear()
    with caplog.at_level("WARNING", logger="spark_jobs.stream"):
        sink.follow_champion()
    assert sink.champion.version == second and "has no @champion alias" in caplog.text


def test_a_tracking_server_that_never_answered_fails_the_wait(mlflow_store: Profile, monkeypatch) -> None:
    """A wrong tracking URI is a fix to make, not a wait: the first look fails with the server's error."""
    from spark_jobs import tracking

    monkeypatch.setattr(tracking, "HEALTH_WAIT_S", 1.0)
    url = closed_port_url()
    profile = mlflow_store
    profile.raw["mlflow"]["tracking_uri"] = url
    waits: list[float] = []
    with pytest.raises(tracking.TrackingUnavailable, match=f"the MLflow tracking server at {url} did not answer"):
        wait_for_champion(profile, poll_s=7, sleep=waits.append)
    assert waits == []


def test_stream_scores_every_landed_transaction_exactly_once(mlflow_store: Profile, spark: SparkSession) -> None:
    profile = mlflow_store
    make_champion(profile)
    first = land(profile, "s1", rows=150, files=2)

    result = main(["--profile", "local"])
    assert result["batches"] == 2  # max_files_per_trigger: 1
    predictions = io.read_table(spark, profile.catalog, "stream_predictions")
    assert ids(spark, profile, "stream_predictions") == first.valid_ids
    assert predictions.count() == len(first.valid_ids) == result["stream_rows"]
    assert predictions.where(~F.col("fraud_score").between(0.0, 1.0)).count() == 0
    assert {r.model_version for r in predictions.select("model_version").distinct().collect()} == {
        result["model_version"]
    }
    assert ids(spark, profile, "bronze_transactions") == first.valid_ids
    quarantine = streamed_quarantine(spark, profile)
    assert result["quarantined"] == quarantine.count() == first.quarantined
    got_reasons = Counter(
        next(prefix for prefix in first.reasons if r.reason.startswith(prefix)) for r in quarantine.collect()
    )
    assert got_reasons == first.reasons
    assert set(result["phase_s"]) == set(PHASES) and all(s > 0 for s in result["phase_s"].values())  # each ran
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()  # the sink unpersisted what it cached

    # Nothing new landed: no micro-batch, no table changes.
    before = versions(spark, profile)
    again = main(["--profile", "local"])
    assert again["batches"] == 0 and again["stream_rows"] == result["stream_rows"]
    assert again["phase_s"] == dict.fromkeys(PHASES, 0.0)
    assert versions(spark, profile) == before

    # New files: only they are scored; earlier scores stay as they were.
    old_scores = predictions.select("transaction_id", "fraud_score", "scored_at").collect()
    second = land(profile, "s2", rows=40, files=1, start=date(2026, 11, 16))
    third = main(["--profile", "local"])
    assert third["batches"] == 1 and third["quarantined"] == second.quarantined
    assert ids(spark, profile, "stream_predictions") == first.valid_ids | second.valid_ids
    now = io.read_table(spark, profile.catalog, "stream_predictions")
    assert now.count() == len(first.valid_ids | second.valid_ids)
    earlier = now.where(F.col("transaction_id").isin(list(first.valid_ids)))
    assertDataFrameEqual(earlier.select("transaction_id", "fraud_score", "scored_at"), old_scores)

    # P3 (benchmarks/streaming.py) reads from the checkpoint which micro-batch read each file, and when it committed.
    from benchmarks.streaming import batch_of_files

    checkpoint = Path(profile.catalog.uri("stream_checkpoint"))
    read_by = batch_of_files(checkpoint)
    assert set(read_by) == {str(Path(f)) for f in first.files + second.files}
    assert sorted(read_by[str(Path(f))] for f in first.files) == [0, 1] and read_by[str(Path(second.files[0]))] == 2
    assert all((checkpoint / "commits" / str(b)).is_file() for b in read_by.values())

    # A fresh checkpoint at the same path (old files archived away) starts again at batch 0. Its writes must not be
    # mistaken for the old query's batch 0, which the tables already committed (the app id follows the query id).
    shutil.rmtree(profile.catalog.uri("stream_checkpoint"))
    for path in first.files + second.files:
        Path(path).unlink()
    fourth = land(profile, "s3", rows=30, files=1, start=date(2026, 11, 17))
    fresh = main(["--profile", "local"])
    assert fresh["batches"] == 1 and fresh["scored"] == len(fourth.valid_ids) > 0
    assert ids(spark, profile, "stream_predictions") == first.valid_ids | second.valid_ids | fourth.valid_ids
