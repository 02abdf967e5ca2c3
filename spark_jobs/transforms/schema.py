"""The shapes of Tributary's transaction data: the landed raw record, bronze, quarantine and the ingest audit.

One landed record is one JSON object on one line (the generator writes them; see ``spark_jobs/generate.py``)::

    {"transaction_id": "tx_3f9c...", "card_id": "card_0a1b...", "merchant_id": "m_77...",
     "merchant_category": "grocery", "amount": 42.17, "currency": "EUR",
     "event_time": "2026-11-01T12:34:56Z", "country": "DE", "lat": 52.52, "lon": 13.405,
     "channel": "pos", "is_fraud": 0}

Every raw field is required. ``validation.validate_lines`` turns lines into ``BRONZE_SCHEMA`` rows or
``QUARANTINE_SCHEMA`` rows with one of the ``REASON_*`` reasons.
"""

from __future__ import annotations

import re

from pyspark.sql.types import (
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# The landed record's fields, in their canonical order, and the Spark type each has once validated.
RAW_TYPES: dict[str, DataType] = {
    "transaction_id": StringType(),
    "card_id": StringType(),
    "merchant_id": StringType(),
    "merchant_category": StringType(),
    "amount": DoubleType(),
    "currency": StringType(),
    "event_time": TimestampType(),
    "country": StringType(),
    "lat": DoubleType(),
    "lon": DoubleType(),
    "channel": StringType(),
    "is_fraud": IntegerType(),
}
RAW_FIELDS: list[str] = list(RAW_TYPES)
# A landing batch is one folder (``landing_batch/<batch id>/``): the generator writes only these, ingest reads only
# these.
BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

CHANNELS: tuple[str, ...] = ("pos", "online", "atm")

# The typed raw record.
RAW_SCHEMA = StructType([StructField(name, dtype, True) for name, dtype in RAW_TYPES.items()])

# How validation first reads a line: every field as a string, so a wrong type is seen, not silently nulled.
RAW_STRING_SCHEMA = StructType([StructField(name, StringType(), True) for name in RAW_FIELDS])

# Bronze: the typed raw fields plus lineage. Validation guarantees the raw fields are non-null.
BRONZE_SCHEMA = StructType(
    [
        *RAW_SCHEMA.fields,
        StructField("source_file", StringType(), True),
        StructField("ingested_at", TimestampType(), True),
    ]
)

# Quarantine: the untouched line, why it was rejected and where it came from. ``quarantine_id`` is the MERGE
# key (catalog.yaml): sha2 of source file, line and its occurrence number, so a re-run inserts nothing.
# Validation guarantees quarantine_id and reason are non-null (columns stay nullable, like bronze's).
QUARANTINE_SCHEMA = StructType(
    [
        StructField("quarantine_id", StringType(), True),
        StructField("raw_record", StringType(), True),
        StructField("reason", StringType(), True),
        StructField("source_file", StringType(), True),
        StructField("transaction_id", StringType(), True),
        StructField("quarantined_at", TimestampType(), True),
    ]
)

# Quarantine reasons, checked in this order; a record gets the first that applies.
REASON_INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8 text (a Kafka record's value, a binary file)
REASON_MALFORMED_JSON = "malformed_json"
REASON_MISSING_FIELD = "missing_field"  # written as "missing_field:<name>"
REASON_INVALID_TYPE = "invalid_type"  # written as "invalid_type:<name>"
REASON_NEGATIVE_AMOUNT = "negative_amount"
REASON_FUTURE_TIMESTAMP = "future_timestamp"
REASON_ORDER: tuple[str, ...] = (
    REASON_INVALID_UTF8,
    REASON_MALFORMED_JSON,
    REASON_MISSING_FIELD,
    REASON_INVALID_TYPE,
    REASON_NEGATIVE_AMOUNT,
    REASON_FUTURE_TIMESTAMP,
)

# One row per ingest run (dataset ``ingest_audit``, appended): the reconciliation
# rows_landed = rows_ingested + rows_quarantined + rows_duplicate.
INGEST_AUDIT_SCHEMA = StructType(
    [
        StructField("run_at", TimestampType(), False),
        StructField("batch_id", StringType(), True),
        StructField("as_of", TimestampType(), False),
        StructField("rows_landed", LongType(), False),
        StructField("rows_ingested", LongType(), False),
        StructField("rows_quarantined", LongType(), False),
        StructField("rows_quarantined_new", LongType(), False),
        StructField("rows_duplicate", LongType(), False),
        StructField("bronze_version", LongType(), True),
        StructField("quarantine_version", LongType(), True),
        StructField("quarantine_reasons", MapType(StringType(), LongType()), True),
    ]
)
