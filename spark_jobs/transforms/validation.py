"""Validation and de-duplication of landed JSON lines: the pure transforms shared by ingest and the stream job.

``validate_lines`` splits raw lines (columns ``value``, ``source_file``) into typed bronze rows and quarantine rows;
``deduplicate`` keeps one row per ``transaction_id``. Both are Spark expressions only (``from_json`` with an
all-string schema, ``try_cast``), no Python UDFs, so they run the same in a batch job and inside ``foreachBatch``::

    from spark_jobs.transforms.validation import validate_lines, deduplicate
    valid, quarantine = validate_lines(lines, as_of=datetime.now(timezone.utc))
    unique, duplicates = deduplicate(valid)

A record gets the first reason that applies, in this order:

1. ``invalid_utf8``: bytes that are not valid UTF-8 (a Kafka record is bytes; so is a file line). Its
   ``raw_record`` keeps the line with each invalid sequence replaced by U+FFFD, so the quarantine table stays
   readable text; ``source_file`` says where the original bytes are (``kafka://<topic>/<partition>/<offset>``);
2. ``malformed_json``: not a JSON object (broken JSON, an array, a scalar, an empty or blank line);
3. ``missing_field:<name>``: a required field is absent, null or blank (first in ``RAW_FIELDS`` order);
4. ``invalid_type:<name>``: a value that does not parse as the field's type, or lies outside its domain
   (non-finite numbers, lat outside [-90, 90], lon outside [-180, 180], channel not pos|online|atm,
   is_fraud not 0/1, event_time without a time of day). Numbers sent as numeric strings (``"12.5"``) are
   accepted; an ``event_time`` with a zone offset is converted to UTC, one without is taken as UTC;
5. ``negative_amount``: ``amount < 0``;
6. ``future_timestamp``: ``event_time > as_of``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType, TimestampType

from spark_jobs.transforms.schema import (
    BRONZE_SCHEMA,
    CHANNELS,
    QUARANTINE_SCHEMA,
    RAW_FIELDS,
    RAW_STRING_SCHEMA,
    RAW_TYPES,
    REASON_FUTURE_TIMESTAMP,
    REASON_INVALID_TYPE,
    REASON_INVALID_UTF8,
    REASON_MALFORMED_JSON,
    REASON_MISSING_FIELD,
    REASON_NEGATIVE_AMOUNT,
)

_CORRUPT = "_corrupt_record"
_PARSE_SCHEMA = StructType([*RAW_STRING_SCHEMA.fields, StructField(_CORRUPT, StringType(), True)])
_PARSE_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
# Extra domain checks on top of "parses as the type"; each returns True when the typed value is acceptable.
_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0)}
# An ISO-8601 date *and* time (a bare date is rejected); the zone, when given, is honoured by the cast.
_TIMESTAMP_SHAPE = r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _raw(name: str) -> Column:
    return F.col(f"_r.{name}")


def _typed(name: str) -> Column:
    """The field's value cast to its bronze type; null when it does not parse."""
    dtype = RAW_TYPES[name]
    return _raw(name) if isinstance(dtype, StringType) else _raw(name).try_cast(dtype)


def _acceptable(name: str, typed: Column) -> Column:
    """True when a present field's typed value is valid for the field (type and domain)."""
    dtype = RAW_TYPES[name]
    ok = typed.isNotNull()
    if isinstance(dtype, DoubleType):
        ok = ok & ~F.isnan(typed) & (F.abs(typed) != F.lit(float("inf")))
        if name in _RANGES:
            low, high = _RANGES[name]
            ok = ok & typed.between(low, high)
    elif isinstance(dtype, IntegerType) and name == "is_fraud":
        ok = ok & typed.isin(0, 1)
    elif isinstance(dtype, TimestampType):
        ok = ok & _raw(name).rlike(_TIMESTAMP_SHAPE)
    elif name == "channel":
        ok = ok & typed.isin(*CHANNELS)
    elif not isinstance(dtype, StringType):
        raise TypeError(f"no validation rule for {name}: {dtype}")
    return F.coalesce(ok, F.lit(False))


def _first(conditions: list[tuple[Column, str]]) -> Column:
    """The label of the first condition that holds (null when none does)."""
    return F.coalesce(*[F.when(cond, F.lit(label)) for cond, label in conditions])


def _reason(as_of: datetime) -> Column:
    """The quarantine reason of the parsed line in ``_r`` (null when the record is valid)."""
    text = F.trim(F.col("value"))
    malformed = ~F.coalesce(
        text.startswith("{") & text.endswith("}") & F.col("_r").isNotNull() & _raw(_CORRUPT).isNull(),
        F.lit(False),
    )
    missing = [(_raw(n).isNull() | (F.trim(_raw(n)) == ""), f"{REASON_MISSING_FIELD}:{n}") for n in RAW_FIELDS]
    invalid = [(~_acceptable(n, _typed(n)), f"{REASON_INVALID_TYPE}:{n}") for n in RAW_FIELDS]
    return _first(
        [
            (~F.is_valid_utf8("value"), REASON_INVALID_UTF8),
            (malformed, REASON_MALFORMED_JSON),
            *missing,
            *invalid,
            (_typed("amount") < 0, REASON_NEGATIVE_AMOUNT),
            (_typed("event_time") > F.lit(utc(as_of)), REASON_FUTURE_TIMESTAMP),
        ]
    )


def validate_lines(lines: DataFrame, as_of: datetime) -> tuple[DataFrame, DataFrame]:
    """Split landed lines into valid bronze rows and quarantine rows.

    ``lines`` has ``value`` (one raw line) and ``source_file``. ``as_of`` is the run's clock: rows whose
    ``event_time`` is later are ``future_timestamp``, and it stamps ``ingested_at`` / ``quarantined_at``.
    Every input line lands in exactly one of the two outputs.

    Returns ``(valid, quarantine)``: ``valid`` in ``BRONZE_SCHEMA`` column order and types, ``quarantine`` in
    ``QUARANTINE_SCHEMA`` order with a deterministic ``quarantine_id`` (sha2 of source file, line and the
    line's occurrence number within its file), so re-validating the same files yields the same ids.
    """
    stamp = F.lit(utc(as_of)).cast("timestamp")
    checked = lines.select(
        "value",
        "source_file",
        F.from_json("value", _PARSE_SCHEMA, _PARSE_OPTIONS).alias("_r"),
    ).withColumn("_reason", _reason(as_of))

    valid = checked.where(F.col("_reason").isNull()).select(
        *[_typed(n).cast(RAW_TYPES[n]).alias(n) for n in RAW_FIELDS],
        F.col("source_file").cast("string"),
        stamp.alias("ingested_at"),
    )

    occurrence = F.row_number().over(Window.partitionBy("source_file", "value").orderBy("value"))
    quarantine = (
        checked.where(F.col("_reason").isNotNull())
        .withColumn("_n", occurrence)
        .select(
            F.sha2(
                F.concat_ws("\u001f", F.coalesce("source_file", F.lit("")), "value", F.col("_n").cast("string")),
                256,
            ).alias("quarantine_id"),
            F.make_valid_utf8("value").alias("raw_record"),
            F.col("_reason").alias("reason"),
            F.col("source_file").cast("string"),
            F.when(~F.col("_reason").isin(REASON_INVALID_UTF8, REASON_MALFORMED_JSON), _raw("transaction_id")).alias(
                "transaction_id"
            ),
            stamp.alias("quarantined_at"),
        )
    )
    return conform(valid, BRONZE_SCHEMA), conform(quarantine, QUARANTINE_SCHEMA)


def deduplicate(valid: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Keep one row per ``transaction_id``; return ``(unique, dropped_duplicates)``.

    The kept row is the first by ``source_file`` then ``event_time`` then the remaining fields, so the choice
    does not depend on partitioning or arrival order. Both outputs keep ``valid``'s columns.
    """
    first = ["source_file", "event_time"]
    rest = [c for c in valid.columns if c not in first and c != "transaction_id"]
    order = [F.col(c).asc_nulls_last() for c in first + rest]
    ranked = valid.withColumn("_rank", F.row_number().over(Window.partitionBy("transaction_id").orderBy(*order)))
    unique = ranked.where(F.col("_rank") == 1).drop("_rank")
    dropped = ranked.where(F.col("_rank") > 1).drop("_rank")
    return unique, dropped


def conform(df: DataFrame, schema: StructType = BRONZE_SCHEMA) -> DataFrame:
    """Select and cast ``df``'s columns to ``schema``'s names, order and types (e.g. before a Delta write)."""
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])

