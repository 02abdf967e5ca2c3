"""Structured Streaming scoring: newly landed transactions -> bronze + quarantine + ``stream_predictions``.

Each micro-batch of landed JSON lines goes through the same validation, quarantine and de-duplication as
``spark_jobs.ingest`` (``validation.validate_lines``, ``bronze.plan_ingest`` and its reconciliation
landed = ingested + quarantined + duplicates). Valid new transactions are MERGEd into ``bronze_transactions`` and
rejected lines into ``quarantine_transactions``; the new transactions are featurised with bronze as history
(``features.features_for_new``) and scored with the MLflow ``@champion``, and the scores MERGEd into
``stream_predictions``. The champion is resolved when the job starts and looked up again before a micro-batch at most
every ``CHAMPION_POLL_S`` (``StreamSink.follow_champion``): a promotion or rollback reaches a running stream at the
next batch boundary; one batch is scored with one version.

Exactly once: the query checkpoints to the ``stream_checkpoint`` dataset and writes through ``foreachBatch``.

- Every write of batch ``N`` is a Delta MERGE on the dataset's key, run with the session confs
  ``spark.databricks.delta.write.txnAppId``/``txnVersion`` = (``txn_app_id``, ``N``). When a crash
  makes Spark replay batch ``N``, each table that already committed it skips the write, and MERGE on the key
  makes any other write a no-op for rows already there.
- The app id comes from the streaming query id, which Spark keeps in the checkpoint: a restart on the same
  checkpoint keeps it, while a fresh checkpoint (even one re-created at the same path) gets a new id, so its
  batch ids 0, 1, ... are not mistaken for the old query's.
- A replayed batch finds its own rows in bronze if it died after writing bronze but before its predictions.
  ``existing_ids`` does not count bronze rows from the batch's own files as duplicates, so they are scored
  on the replay (a landed file belongs to exactly one micro-batch).

Sources are pluggable (``SOURCES``, chosen by the profile's ``streaming.source``): ``files`` reads the
``landing_stream`` folder as text, ``streaming.max_files_per_trigger`` files per micro-batch; ``kafka`` reads a
topic named in the profile's ``streaming.kafka`` (``bootstrap_servers``, ``topic``, optional
``max_offsets_per_trigger``, and ``security_protocol``/``sasl_mechanism`` with the credentials from the environment:
``config.kafka_client_options``) from its earliest offsets, with the pinned spark-sql-kafka jars (the ``local-kafka``
profile; docs/streaming.md). A Kafka record's ``source_file`` is ``kafka://<topic>/<partition>/<offset>``, so a
replayed batch finds its own records as it finds its own files. When the topic no longer holds the offsets the
checkpoint reached (deleted and recreated, or expired), Spark reports data loss and the job stops with what to do
(``query_failure``) rather than skip records. The trigger comes from
``streaming.trigger``: ``available_now`` processes everything landed, in batches, then stops (scheduled runs);
``processing_time`` runs until stopped (long-running clusters).

A ``processing_time`` stream is deployed with the platform, before any model is trained: it waits for the
``@champion`` alias (checking every ``CHAMPION_POLL_S``, riding out a tracking server that stops answering after it
first answered) and for its landing folder, instead of failing into the cluster manager's restarts (spark-operator
backs off linearly, ``onFailureRetryInterval`` x submissions, so a crash-looping stream would later take minutes
to come back from a lost driver). ``available_now`` fails fast.

Run by hand (train and promote a champion first; land files with ``spark_jobs.generate``)::

    uv run python -m spark_jobs.stream --profile local
    uv run python -m spark_jobs.stream --profile local --trigger processing_time --interval "30 seconds"
    spark-submit spark_jobs/stream.py --profile local
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from pyspark.errors import AnalysisException, StreamingQueryException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import io
from spark_jobs.cli import emit_result, fail, job_parser, parse_job_args
from tributary.config import (
    KAFKA_PASSWORD_ENV,
    KAFKA_USERNAME_ENV,
    STREAMING_TRIGGERS,
    ConfigError,
    Profile,
    kafka_client_options,
)
from spark_jobs.session import build_session
from spark_jobs.tracking import TrackingUnavailable
from spark_jobs.transforms.bronze import IngestPlan, outcome_counts, plan_ingest, reconcile
from spark_jobs.transforms.card_features import features_for_new, history_since
from spark_jobs.transforms.schema import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from spark_jobs.transforms.scoring import ChampionModel, NoChampionError, resolve_champion, score_features
from spark_jobs.transforms.validation import conform, validate_lines
from tributary.registry import get_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

JOB = get_job("stream")  # its datasets by role (conf/jobs.yaml)
QUERY_NAME = "tributary_stream_scoring"
DEFAULT_INTERVAL = "1 minute"
# A micro-batch's phases, as StreamSink times them: validation, quarantine and de-duplication up to the outcome counts;
# the MERGE of new rows into bronze; features, scoring and the MERGE into stream_predictions; the quarantine MERGE.
PHASES = ("validate", "bronze", "score", "quarantine")
CHAMPION_POLL_S = 30.0
CHAMPION_CHECK_WAIT_S = 5.0  # a running stream's look at @champion waits this long for the tracking server
TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
QUERY_ID_PROPERTY = "sql.streaming.queryId"  # set by Spark on the thread that runs a micro-batch
KAFKA_KEYS = {"bootstrap_servers", "topic"}  # what the Kafka source needs (conf/profiles/schema.json)


# --- pure transforms ------------------------------------------------------------------------------------------


def kafka_records(records: DataFrame) -> DataFrame:
    """Kafka source rows -> the landed-lines shape: ``value`` (the record as a string) and ``source_file``.

    ``source_file`` is ``kafka://<topic>/<partition>/<offset>``: like a file path, it names where each record
    came from, exactly.
    """
    return records.select(
        F.col("value").cast("string").alias("value"),
        F.concat_ws("/", F.concat(F.lit("kafka://"), F.col("topic")), F.col("partition"), F.col("offset")).alias(
            "source_file"
        ),
    )


def existing_ids(lines: DataFrame, valid: DataFrame, bronze: DataFrame) -> DataFrame:
    """The ``transaction_id``s of ``valid`` (the micro-batch ``lines``' valid rows) that count as already ingested in
    ``bronze``.

    Bronze is filtered by the batch's own ids (broadcast, a hash lookup per bronze row) before anything else, so the
    result holds at most a batch's ids and no step shuffles bronze. Bronze rows that came from the batch's own files
    are left out: a landed file belongs to exactly one micro-batch, so such rows were written by this very batch
    before a crash, and on the replay they must stay new (to be featurised and scored again) rather than count as
    duplicates.
    """
    batch_ids = valid.select("transaction_id").distinct()
    batch_files = lines.select("source_file").distinct()
    return (
        bronze.join(F.broadcast(batch_ids), "transaction_id", "left_semi")
        .join(F.broadcast(batch_files), "source_file", "left_anti")
        .select("transaction_id")
    )


def prepare_batch(lines: DataFrame, bronze: DataFrame, as_of: datetime) -> IngestPlan:
    """Validate, quarantine and de-duplicate landed ``lines`` (``value``, ``source_file``) exactly as ingest
    does (``validation.validate_lines``, then ``bronze.plan_ingest``), against the ``bronze`` ids from
    ``existing_ids``."""
    valid, quarantine = validate_lines(lines, as_of)
    return plan_ingest(valid, quarantine, existing_ids(lines, valid, bronze))


def score_new(new: DataFrame, bronze: DataFrame, champion: ChampionModel, tracking_uri: str) -> DataFrame:
    """Features for ``new`` with ``bronze`` as history (point in time), scored with ``champion``.

    Bronze is read back only to the look-back of the batch's earliest transaction (a literal bound, so Delta skips
    the files of older history by their statistics): a batch's cost follows its own data, not bronze's age."""
    earliest = new.agg(F.min("event_time")).first()[0]
    return score_features(features_for_new(history=history_since(bronze, earliest), new=new), champion, tracking_uri)


def txn_app_id(spark: "SparkSession") -> str:
    """The Delta idempotent-write app id of the micro-batch running on this thread: its streaming query's id, which
    lives in the checkpoint, so a restart on the same checkpoint tags its writes the same way."""
    query_id = spark.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
    if not query_id:
        raise RuntimeError(f"no {QUERY_ID_PROPERTY} on the micro-batch thread; cannot tag idempotent writes")
    return f"tributary-stream-{query_id}"


def wait_for_champion(profile: Profile, poll_s: float = CHAMPION_POLL_S,
                      sleep: Callable[[float], None] = time.sleep) -> ChampionModel:
    """``resolve_champion``, again every ``poll_s`` seconds while there is none (a long-running stream started
    before the first promotion). A tracking server that does not answer the first look fails the stream
    (``TrackingUnavailable``: a wrong URI or a server that is not there is a fix to make, not a wait). Once it has
    answered, a later look it does not answer (the server restarting, or too busy for its health check) is logged and
    retried at the next poll: the wait can last hours, and a crash would put the stream into its cluster manager's
    restart backoff for a blip."""
    answered = False
    while True:
        try:
            return resolve_champion(profile)
        except NoChampionError as exc:
            answered = True
            log.warning("%s; the stream waits for one (checking every %.0fs)", exc, poll_s)
        except TrackingUnavailable as exc:
            if not answered:
                raise
            log.warning("%s; it answered before: the stream keeps waiting (checking every %.0fs)", exc, poll_s)
        sleep(poll_s)


# --- sources --------------------------------------------------------------------------------------------------


def _files_source(spark: "SparkSession", profile: Profile, wait_for_files: bool = False) -> DataFrame:
    landing = JOB.input("landing")
    uri = profile.catalog.uri(landing)
    reader = (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", int(profile.streaming["max_files_per_trigger"]))
        .option("recursiveFileLookup", "true")
    )
    try:
        lines = reader.load(uri)
    except AnalysisException as exc:  # the folder must exist before the query starts
        if "PATH_NOT_FOUND" not in str(exc):
            raise
        if not wait_for_files:
            raise ConfigError(
                f"{landing} folder {uri} does not exist; land files first (python -m spark_jobs.generate)"
            ) from exc
        # A long-running stream started before anything landed (a fresh install) creates its empty folder and
        # waits for files, instead of failing into its cluster manager's restart backoff.
        path = spark._jvm.org.apache.hadoop.fs.Path(uri)
        path.getFileSystem(spark._jsc.hadoopConfiguration()).mkdirs(path)
        log.info("%s folder %s did not exist: created it; waiting for files", landing, uri)
        lines = reader.load(uri)
    return lines.select(F.col("value"), F.col("_metadata.file_path").alias("source_file"))


def _kafka_source(spark: "SparkSession", profile: Profile, wait_for_files: bool = False) -> DataFrame:
    # A topic with no records yet is waited on either way; ``wait_for_files`` only matters to the files source.
    kafka = profile.streaming.get("kafka")
    if not isinstance(kafka, dict) or not KAFKA_KEYS <= set(kafka):
        raise ConfigError(
            f"profile '{profile.name}': streaming.source 'kafka' needs streaming.kafka with keys {sorted(KAFKA_KEYS)}"
        )
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka_client_options(kafka))
        .option("subscribe", kafka["topic"])
        .option("startingOffsets", "earliest")
    )
    if "max_offsets_per_trigger" in kafka:  # a positive integer (checked when the profile loads)
        reader = reader.option("maxOffsetsPerTrigger", int(kafka["max_offsets_per_trigger"]))
    return kafka_records(reader.load())


SOURCES: dict[str, Callable[["SparkSession", Profile, bool], DataFrame]] = {
    "files": _files_source,
    "kafka": _kafka_source,
}


def build_source(spark: "SparkSession", profile: Profile, kind: str | None = None,
                 wait_for_files: bool = False) -> DataFrame:
    """The streaming DataFrame of landed lines (``value``, ``source_file``) from source ``kind``.

    ``kind`` defaults to the profile's ``streaming.source``; see ``SOURCES``. A missing landing folder is a
    ``ConfigError`` (nothing landed: a scheduled ``available_now`` run has nothing to do), unless ``wait_for_files``
    (a long-running ``processing_time`` query), which creates it and waits.
    """
    kind = kind or profile.streaming["source"]
    if kind not in SOURCES:
        raise ConfigError(f"unknown streaming source '{kind}'; known: {sorted(SOURCES)}")
    return SOURCES[kind](spark, profile, wait_for_files)


# --- the foreachBatch sink ------------------------------------------------------------------------------------


@contextmanager
def idempotent_writes(spark: "SparkSession", app_id: str, version: int) -> Iterator[None]:
    """Delta writes inside are tagged (app_id, version); a table that already committed them skips the write."""
    spark.conf.set(TXN_APP_ID_CONF, app_id)
    spark.conf.set(TXN_VERSION_CONF, str(version))
    try:
        yield
    finally:
        spark.conf.unset(TXN_APP_ID_CONF)
        spark.conf.unset(TXN_VERSION_CONF)


@dataclass
class StreamSink:
    """The ``foreachBatch`` function: writes one micro-batch to bronze, quarantine and ``stream_predictions``.

    Keeps counts for this run (a batch replayed after a crash is counted again), and the seconds spent in each phase
    of its batches (``seconds``, ``PHASES``), which each batch's log line shows too. Follows the champion: before a
    micro-batch, at most every ``champion_check_s``, it looks up ``@champion`` again (``follow_champion``), so an ML
    engineer's promotion (or rollback) reaches a long-running stream at the next batch boundary without a restart; a
    whole batch is scored with one version, which its rows carry in ``model_version``.
    """

    profile: Profile
    champion: ChampionModel
    champion_check_s: float = CHAMPION_POLL_S
    clock: Callable[[], float] = time.monotonic
    batches: int = 0
    scored: int = 0
    quarantined: int = 0
    duplicates: int = 0
    versions_used: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    _checked_at: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._checked_at = self.clock()  # ``champion`` was resolved just now

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall seconds to ``phase`` (one of ``PHASES``) in ``seconds``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def follow_champion(self) -> None:
        """Look up ``@champion`` again if ``champion_check_s`` has passed since the last look (the first one is
        the look that gave the sink its ``champion``). A move is logged and taken; a registry that does not answer, or
        a model left with no champion, keeps the current one (logged): scoring goes on with the last known champion."""
        from mlflow.exceptions import MlflowException

        now = self.clock()
        if now - self._checked_at < self.champion_check_s:
            return
        self._checked_at = now
        try:
            current = resolve_champion(self.profile, health_wait_s=CHAMPION_CHECK_WAIT_S)
        except (NoChampionError, TrackingUnavailable, MlflowException) as exc:  # the last: a registry error
            log.warning("%s; the stream keeps scoring with version %s", exc, self.champion.version)
            return
        if current.version != self.champion.version:
            log.warning("@champion of %s moved from version %s to %s: the stream scores with %s from this batch on",
                        current.name, self.champion.version, current.version, current.version)
            self.champion = current

    def __call__(self, lines: DataFrame, batch_id: int) -> None:
        spark = lines.sparkSession  # the query's own session: the txn confs below stay local to it
        app_id = txn_app_id(spark)
        self.follow_champion()
        catalog = self.profile.catalog
        before = dict(self.seconds)
        held = [lines.persist()]
        try:
            with self.timed("validate"):
                bronze = _bronze_snapshot(spark, self.profile)
                plan = prepare_batch(lines, bronze, datetime.now(timezone.utc))
                # Computed once, by the counts below: the MERGEs and the features read them again, several times.
                held += [plan.new.persist(), plan.quarantine.persist()]
                outcomes = outcome_counts(lines, plan, plan.quarantine).collect()
            counts = reconcile({r["outcome"]: r["count"] for r in outcomes})  # as ingest: every line accounted for
            with idempotent_writes(spark, app_id, batch_id):
                if counts["rows_ingested"]:
                    self.write_new(spark, plan.new, bronze)
                    if self.champion.version not in self.versions_used:
                        self.versions_used.append(self.champion.version)
                if counts["rows_quarantined"]:
                    with self.timed("quarantine"):
                        quarantine = conform(plan.quarantine, QUARANTINE_SCHEMA)
                        io.merge_table(spark, quarantine, catalog, JOB.output("quarantine"))
        finally:
            for frame in held:
                frame.unpersist()
        self.batches += 1
        self.scored += counts["rows_ingested"]
        self.quarantined += counts["rows_quarantined"]
        self.duplicates += counts["rows_duplicate"]
        took = ", ".join(f"{phase} {s - before[phase]:.1f}" for phase, s in self.seconds.items() if s > before[phase])
        log.info("stream batch %s (%s): %s; seconds: %s", batch_id, app_id, counts, took)

    def write_new(self, spark: "SparkSession", new: DataFrame, bronze: DataFrame) -> None:
        """The batch's valid new transactions: featurised with ``bronze`` (as it was before this batch) as
        history, scored with the champion, and MERGEd into bronze and ``stream_predictions``."""
        with self.timed("bronze"):
            io.merge_table(spark, new, self.profile.catalog, JOB.output("bronze"))
        with self.timed("score"):  # features and the model run inside the MERGE, which reads ``scores`` once
            scores = score_new(new, bronze, self.champion, self.profile.mlflow["tracking_uri"])
            io.merge_table(spark, scores, self.profile.catalog, JOB.output("scores"))


def _bronze_snapshot(spark: "SparkSession", profile: Profile) -> DataFrame:
    """Bronze pinned at its current version (empty before the first write)."""
    current = io.read_current(spark, profile.catalog, JOB.input("bronze_history"))
    return spark.createDataFrame([], BRONZE_SCHEMA) if current is None else current[0]


def query_failure(error: str, profile: Profile) -> str | None:
    """What to tell the user when the query stopped with ``error``; None for an error with no advice here.

    Kafka refused the credentials (``SaslAuthenticationException``, "Authentication failed"): say which settings to
    check.
    Kafka data loss (Spark's ``KAFKA_DATA_LOSS``, ``failOnDataLoss`` is on): the checkpoint's offsets are ahead of
    what the topic holds, because the topic was deleted and recreated, or records expired before they were read.
    The query stops rather than skip them silently; resuming is a decision for a person.
    """
    kafka = profile.streaming.get("kafka", {})
    refused = [ln.strip() for ln in error.splitlines() if "AuthenticationException" in ln
               or "Authentication failed" in ln]
    if refused:
        first = refused[0]
        return (
            f"Kafka refused the stream's credentials ({first}). Check {KAFKA_USERNAME_ENV} and {KAFKA_PASSWORD_ENV} "
            f"(on Kubernetes, the Secret they come from) and streaming.kafka.sasl_mechanism "
            f"({kafka.get('sasl_mechanism')}) against the user the brokers at {kafka.get('bootstrap_servers')} know"
        )
    if "KAFKA_DATA_LOSS" not in error and "failOnDataLoss" not in error:
        return None
    first = next((ln.strip() for ln in error.splitlines() if "KAFKA_DATA_LOSS" in ln), error.splitlines()[0])
    checkpoint = profile.catalog.uri(JOB.state_dataset("checkpoint"))
    topic = kafka.get("topic", "?")
    return (
        f"the Kafka topic '{topic}' no longer holds the offsets the stream's checkpoint has reached ({first}): it "
        f"was deleted and recreated, or its records expired before the stream read them. Nothing was written for "
        f"the missing records. To read the topic again from its start, move the checkpoint aside "
        f"({checkpoint}) and run the stream again (bronze and stream_predictions keep their rows; MERGE on the "
        f"transaction id skips those already there)"
    )


def start_query(lines: DataFrame, sink: StreamSink, profile: Profile, trigger: str, interval: str) -> "StreamingQuery":
    """Start the checkpointed ``foreachBatch`` query with the given trigger."""
    writer = (
        lines.writeStream.queryName(QUERY_NAME)
        .foreachBatch(sink)
        .option("checkpointLocation", profile.catalog.uri(JOB.state_dataset("checkpoint")))
    )
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=interval)
    return writer.start()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Resolve the champion, run the stream until it stops (``available_now``), emit and return the result."""
    parser = job_parser(__doc__)
    parser.add_argument("--trigger", choices=sorted(STREAMING_TRIGGERS), help="override streaming.trigger")
    parser.add_argument("--interval", default=DEFAULT_INTERVAL, help="micro-batch interval for processing_time")
    args, profile = parse_job_args(parser, argv, JOB)
    trigger = args.trigger or profile.streaming["trigger"]
    long_running = trigger == "processing_time"
    try:
        # before Spark starts: no champion or no Kafka credentials, no query
        if profile.streaming["source"] == "kafka":
            kafka_client_options(profile.streaming["kafka"])
        champion = wait_for_champion(profile) if long_running else resolve_champion(profile)
        spark = build_session(profile, "tributary-stream")
        lines = build_source(spark, profile, wait_for_files=long_running)
    except (NoChampionError, ConfigError, TrackingUnavailable) as exc:
        fail(str(exc), retry=isinstance(exc, TrackingUnavailable))
    sink = StreamSink(profile, champion)
    try:
        start_query(lines, sink, profile, trigger, args.interval).awaitTermination()
    except StreamingQueryException as exc:
        message = query_failure(str(exc), profile)
        if message is None:
            raise
        fail(message)
    result = {
        "profile": profile.name,
        "model_version": sink.champion.version,  # the champion at the end (it may have moved: model_versions)
        "model_versions": sink.versions_used,  # the versions that scored rows in this run, in order
        "batches": sink.batches,
        "scored": sink.scored,
        "quarantined": sink.quarantined,
        "duplicates": sink.duplicates,
        "phase_s": {phase: round(spent, 3) for phase, spent in sink.seconds.items()},  # this run's batches, by phase
        "stream_rows": io.count_rows(spark, profile.catalog, JOB.output("scores")),
    }
    emit_result(JOB.name, result)
    return result


if __name__ == "__main__":
    main()
