"""Validation and de-duplication of landed lines, on hand-made lines: every reason, typed rows, dedupe determinism."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from spark_jobs.transforms.schema import BRONZE_SCHEMA, QUARANTINE_SCHEMA, RAW_FIELDS
from spark_jobs.transforms.validation import deduplicate, validate_lines

AS_OF = datetime(2026, 11, 21, tzinfo=timezone.utc)
GOOD = {
    "transaction_id": "t1",
    "card_id": "c1",
    "merchant_id": "m1",
    "merchant_category": "grocery",
    "amount": 12.5,
    "currency": "EUR",
    "event_time": "2026-11-01T12:34:56Z",
    "country": "DE",
    "lat": 52.52,
    "lon": 13.405,
    "channel": "pos",
    "is_fraud": 0,
}
_DROP = object()


def line(**changes) -> str:
    """GOOD with ``changes`` applied; a value of ``_DROP`` removes the key."""
    record = {k: v for k, v in {**GOOD, **changes}.items() if v is not _DROP}
    return json.dumps(record)


def lines_frame(spark, lines, source_file="file:/landing/part-00000.jsonl"):
    return spark.createDataFrame([(text, source_file) for text in lines], "value string, source_file string")


def reasons_of(spark, cases: dict[str, str]) -> dict[str, str]:
    """Validate each line; map each raw line to its quarantine reason (or 'valid')."""
    valid, quarantine = validate_lines(lines_frame(spark, list(cases)), AS_OF)
    got = {r["raw_record"]: r["reason"] for r in quarantine.collect()}
    got.update({line(transaction_id=r["transaction_id"]): "valid" for r in valid.collect()})
    return got


MALFORMED = [
    '{"transaction_id": "t1", "card_id": "c',  # truncated
    "[" + line() + "]",  # an array of objects
    '"just a string"',
    "42",
    "null",
    "",
    "   ",
    line().replace('"transaction_id"', "transaction_id"),  # unquoted key
    line() + " trailing",
    "not json at all",
]


def test_malformed_lines(spark):
    cases = {raw: "malformed_json" for raw in MALFORMED}
    assert reasons_of(spark, cases) == cases


def test_every_reason_exactly(spark):
    cases = {
        line(amount=_DROP): "missing_field:amount",
        line(card_id=None): "missing_field:card_id",
        line(merchant_id="  "): "missing_field:merchant_id",
        line(transaction_id=None): "missing_field:transaction_id",
        line(is_fraud=_DROP): "missing_field:is_fraud",
        "{}": "missing_field:transaction_id",
        line(transaction_id="t-a", amount="abc"): "invalid_type:amount",
        line(transaction_id="t-b", amount="NaN"): "invalid_type:amount",
        line(transaction_id="t-c").replace('"amount": 12.5', '"amount": 1e400'): "invalid_type:amount",
        line(transaction_id="t-d", event_time="yesterday"): "invalid_type:event_time",
        line(transaction_id="t-e", event_time="2026-11-01"): "invalid_type:event_time",
        line(transaction_id="t-f", lat="north"): "invalid_type:lat",
        line(transaction_id="t-g", lat=95.0): "invalid_type:lat",
        line(transaction_id="t-h", lon=-181): "invalid_type:lon",
        line(transaction_id="t-i", is_fraud="maybe"): "invalid_type:is_fraud",
        line(transaction_id="t-j", is_fraud=2): "invalid_type:is_fraud",
        line(transaction_id="t-k", channel="fax"): "invalid_type:channel",
        line(transaction_id="t-l", amount=-5.25): "negative_amount",
        line(transaction_id="t-m", event_time="2099-01-01T00:00:00Z"): "future_timestamp",
        line(transaction_id="t-n", event_time="2026-11-21T00:00:01Z"): "future_timestamp",
        line(transaction_id="t-o"): "valid",
    }
    assert reasons_of(spark, cases) == cases


def test_first_reason_wins_in_the_documented_order(spark):
    cases = {
        # missing beats invalid; the first missing field in RAW_FIELDS order is named
        line(card_id=_DROP, amount=None, lat="north"): "missing_field:card_id",
        # the first invalid field in RAW_FIELDS order is named; invalid beats negative and future
        line(transaction_id="t-a", lat="north", amount="x", event_time="2099-01-01T00:00:00Z"): "invalid_type:amount",
        line(transaction_id="t-b", amount=-1, lat=100.0): "invalid_type:lat",
        # negative beats future
        line(transaction_id="t-c", amount=-1, event_time="2099-01-01T00:00:00Z"): "negative_amount",
    }
    assert reasons_of(spark, cases) == cases


def test_valid_rows_are_typed_into_the_bronze_schema(spark):
    lines = [
        line(),
        line(transaction_id="t2", amount=7, is_fraud=1, channel="online"),  # an int amount
        line(transaction_id="t3", amount="19.99", event_time="2026-11-01T14:00:00+02:00"),  # string number, offset
        line(transaction_id="t4", amount=0.0, event_time="2026-11-21T00:00:00Z", extra="ignored"),  # at as_of
    ]
    valid, quarantine = validate_lines(lines_frame(spark, lines, "file:/l/a.jsonl"), AS_OF)
    t = lambda text: datetime.fromisoformat(text)  # noqa: E731 (naive UTC, as Spark returns timestamps)
    base = {**GOOD, "event_time": t("2026-11-01T12:34:56"), "source_file": "file:/l/a.jsonl",
            "ingested_at": t("2026-11-21T00:00:00")}
    rows = [
        base,
        {**base, "transaction_id": "t2", "amount": 7.0, "is_fraud": 1, "channel": "online"},
        {**base, "transaction_id": "t3", "amount": 19.99, "event_time": t("2026-11-01T12:00:00")},
        {**base, "transaction_id": "t4", "amount": 0.0, "event_time": t("2026-11-21T00:00:00")},
    ]
    expected = spark.createDataFrame([tuple(r[n] for n in BRONZE_SCHEMA.names) for r in rows], BRONZE_SCHEMA)
    assertSchemaEqual(valid.schema, BRONZE_SCHEMA)
    assertDataFrameEqual(valid, expected)
    assert quarantine.count() == 0


def test_quarantine_rows_carry_line_reason_file_and_id(spark):
    bad = [line(amount="abc"), "{broken", line(transaction_id=None)]
    _, quarantine = validate_lines(lines_frame(spark, bad, "file:/l/b.jsonl"), AS_OF)
    assertSchemaEqual(quarantine.schema, QUARANTINE_SCHEMA)
    stamp = datetime(2026, 11, 21)
    expected = [
        Row(raw_record=bad[0], reason="invalid_type:amount", source_file="file:/l/b.jsonl", transaction_id="t1",
            quarantined_at=stamp),
        Row(raw_record=bad[1], reason="malformed_json", source_file="file:/l/b.jsonl", transaction_id=None,
            quarantined_at=stamp),
        Row(raw_record=bad[2], reason="missing_field:transaction_id", source_file="file:/l/b.jsonl",
            transaction_id=None, quarantined_at=stamp),
    ]
    assertDataFrameEqual(quarantine.drop("quarantine_id"), expected)


def test_quarantine_ids_are_deterministic_and_unique(spark):
    bad = ["{broken", "{broken", line(amount=-1)]  # the same bad line twice in one file
    frame = lines_frame(spark, bad, "file:/l/c.jsonl").unionByName(lines_frame(spark, ["{broken"], "file:/l/d.jsonl"))
    first = sorted(r["quarantine_id"] for r in validate_lines(frame, AS_OF)[1].collect())
    again = sorted(r["quarantine_id"] for r in validate_lines(frame.repartition(3), AS_OF)[1].collect())
    assert first == again
    assert len(set(first)) == 4 and all(len(i) == 64 for i in first)


def test_every_line_lands_in_exactly_one_output(spark):
    lines = [line(transaction_id=f"t{i}") for i in range(5)] + MALFORMED + [line(amount=-1), line(card_id=None)]
    valid, quarantine = validate_lines(lines_frame(spark, lines), AS_OF)
    assert (valid.count(), quarantine.count()) == (5, len(MALFORMED) + 2)


# --- deduplicate ------------------------------------------------------------------------------------------------


def _valid(spark, entries):
    frames = [lines_frame(spark, [text], source) for text, source in entries]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    return validate_lines(frame, AS_OF)[0]


def test_deduplicate_keeps_one_row_per_id_deterministically(spark):
    entries = [
        (line(transaction_id="a"), "file:/l/2.jsonl"),
        (line(transaction_id="a"), "file:/l/1.jsonl"),  # an exact re-send in an earlier file: kept
        (line(transaction_id="a", amount=99.0), "file:/l/3.jsonl"),  # a conflicting re-send: dropped
        (line(transaction_id="b"), "file:/l/1.jsonl"),
        (line(transaction_id="b"), "file:/l/1.jsonl"),  # the same line twice in one file
        (line(transaction_id="c", event_time="2026-11-02T00:00:00Z"), "file:/l/1.jsonl"),
        (line(transaction_id="c", event_time="2026-11-01T00:00:00Z"), "file:/l/1.jsonl"),  # earlier: kept
    ]
    valid = _valid(spark, entries)
    unique, dropped = deduplicate(valid)
    kept = {(r["transaction_id"], r["source_file"], r["amount"], r["event_time"].day) for r in unique.collect()}
    assert kept == {("a", "file:/l/1.jsonl", 12.5, 1), ("b", "file:/l/1.jsonl", 12.5, 1),
                    ("c", "file:/l/1.jsonl", 12.5, 1)}
    assert sorted(r["transaction_id"] for r in dropped.collect()) == ["a", "a", "b", "c"]
    assert unique.columns == dropped.columns == valid.columns

    reversed_unique, reversed_dropped = deduplicate(_valid(spark, entries[::-1]).repartition(4))
    assertDataFrameEqual(reversed_unique, unique)
    assertDataFrameEqual(reversed_dropped, dropped)


def test_deduplicate_leaves_unique_rows_alone(spark):
    valid = _valid(spark, [(line(transaction_id=i), "file:/l/1.jsonl") for i in ("x", "y")])
    unique, dropped = deduplicate(valid)
    assertDataFrameEqual(unique, valid)
    assert dropped.count() == 0
    assert RAW_FIELDS[0] == "transaction_id"


def test_bytes_that_are_not_utf8_are_quarantined_as_such_first(spark, tmp_path):
    """Read as Spark's text source reads a landed file (bytes, unchecked): a line with invalid UTF-8 is quarantined
    as ``invalid_utf8`` before any other reason, its raw record made readable, the valid lines unaffected."""
    landed = tmp_path / "part-00000.jsonl"
    bad_json = line(transaction_id="t9").encode().replace(b'"t9"', b'"t\xff9"')  # valid JSON around a bad byte
    landed.write_bytes(b"\n".join([line().encode(), bad_json, b"\xc3\x28 {broken", b""]))
    lines = spark.read.text(str(landed)).select("value", F.lit("file:/l/u.jsonl").alias("source_file"))
    valid, quarantine = validate_lines(lines, AS_OF)
    assert [r["transaction_id"] for r in valid.collect()] == ["t1"]
    rows = sorted(quarantine.collect(), key=lambda r: r["raw_record"])
    assert [r["reason"] for r in rows] == ["invalid_utf8", "invalid_utf8"]
    assert all("\ufffd" in r["raw_record"] and r["transaction_id"] is None for r in rows)
