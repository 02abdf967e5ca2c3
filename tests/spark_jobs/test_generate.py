"""The data faker: deterministic, realistic, with learnable fraud and every kind of dirty record. No Spark here."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from spark_jobs import generate as gen
from spark_jobs.generate import DIRTY_KINDS, FRAUD_PATTERNS, GeneratorConfig, generate
from spark_jobs.transforms.schema import CHANNELS, RAW_FIELDS

SMALL = GeneratorConfig(rows=3000, seed=11, days=7, dirty_fraction=0.03)


@pytest.fixture(scope="module")
def default_batch() -> gen.Batch:
    return generate()


@pytest.fixture(scope="module")
def small_batch() -> gen.Batch:
    return generate(SMALL)


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _by_card(records):
    cards = defaultdict(list)
    for record in records:
        cards[record["card_id"]].append(record)
    for rows in cards.values():
        rows.sort(key=lambda r: r["event_time"])
    return cards


# --- determinism ------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_lines(small_batch):
    assert generate(SMALL).lines == small_batch.lines


def test_different_seed_or_batch_gives_different_lines(small_batch):
    other_seed = generate(GeneratorConfig(rows=3000, seed=12, days=7, dirty_fraction=0.03))
    other_batch = generate(GeneratorConfig(rows=3000, seed=11, days=7, dirty_fraction=0.03, batch_id="b2"))
    assert other_seed.lines != small_batch.lines
    assert other_batch.lines != small_batch.lines
    # the world (cards) depends on the seed only, so a new batch continues the same cards' histories
    assert {r["card_id"] for r in other_batch.records} & {r["card_id"] for r in small_batch.records}
    assert not {r["transaction_id"] for r in other_batch.records} & {r["transaction_id"] for r in small_batch.records}


def test_main_writes_identical_files_byte_for_byte(tributary_home: Path):
    args = ["--profile", "local", "--rows", "500", "--seed", "3", "--batch-id", "b1", "--files", "2"]
    first = gen.main(args)
    contents = [Path(p).read_bytes() for p in first["files"]]
    second = gen.main(args)
    assert second["files"] == first["files"]
    assert [Path(p).read_bytes() for p in second["files"]] == contents
    assert b"".join(contents) == "".join(line + "\n" for line in generate(
        GeneratorConfig(rows=500, seed=3, batch_id="b1")).lines).encode()


# --- shape and defaults -----------------------------------------------------------------------------------------


def test_default_size_and_every_dirty_kind_and_fraud_pattern(default_batch):
    counts = default_batch.counts()
    assert counts["rows"] == 20000 == len(default_batch.lines)
    assert len({r["card_id"] for r in default_batch.records}) <= 400
    assert len({r["card_id"] for r in default_batch.records}) > 300
    assert all(counts["dirty"][kind] > 0 for kind in DIRTY_KINDS), counts["dirty"]
    assert sum(counts["dirty"].values()) == round(20000 * gen.DEFAULT_DIRTY_FRACTION)
    assert all(counts["fraud_patterns"][p] > 0 for p in FRAUD_PATTERNS), counts["fraud_patterns"]
    assert 0.01 <= counts["fraud_rate"] <= 0.03


def test_clean_records_are_complete_typed_and_in_the_window(small_batch):
    begin, end = SMALL.window
    ids = [r["transaction_id"] for r in small_batch.records]
    assert len(ids) == len(set(ids)) == small_batch.counts()["rows_clean"]
    for record in small_batch.records:
        assert list(record) == RAW_FIELDS
        assert isinstance(record["amount"], float) and record["amount"] > 0
        assert begin <= _ts(record["event_time"]) < end + timedelta(hours=6)
        assert -90 <= record["lat"] <= 90 and -180 <= record["lon"] <= 180
        assert record["channel"] in CHANNELS and record["is_fraud"] in (0, 1)
        assert len(record["country"]) == 2 and len(record["currency"]) == 3
    clean_lines = [e.line for e in small_batch.landed if e.kind == "clean"]
    assert [json.loads(line) for line in clean_lines] == list(small_batch.records)


def test_amounts_depend_on_category(default_batch):
    legit = [r for r in default_batch.records if not r["is_fraud"]]
    median = {}
    for category in ("digital_goods", "grocery", "electronics", "travel"):
        amounts = sorted(r["amount"] for r in legit if r["merchant_category"] == category)
        median[category] = amounts[len(amounts) // 2]
    assert median["digital_goods"] < median["grocery"] < median["electronics"] < median["travel"]


# --- dirty records ----------------------------------------------------------------------------------------------


def _lines_of(batch, kind):
    return [e.line for e in batch.landed if e.kind == kind]


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_dirty_records_are_dirty_in_their_own_way(small_batch):
    end = SMALL.window[1]
    assert all(not _is_object(line) for line in _lines_of(small_batch, "malformed_json"))
    for line in _lines_of(small_batch, "missing_field"):
        record = json.loads(line)
        assert any(record.get(name) is None for name in RAW_FIELDS)
    for line in _lines_of(small_batch, "invalid_type"):
        record = json.loads(line)
        assert any(isinstance(record[n], str) for n in ("amount", "lat", "is_fraud")) or not record[
            "event_time"][:4].isdigit()
    assert all(json.loads(line)["amount"] < 0 for line in _lines_of(small_batch, "negative_amount"))
    assert all(_ts(json.loads(line)["event_time"]) > end + timedelta(days=3650)
               for line in _lines_of(small_batch, "future_timestamp"))


def test_duplicates_are_exact_resends_of_earlier_lines(small_batch):
    seen: set[str] = set()
    duplicates = 0
    for entry in small_batch.landed:
        if entry.kind == "duplicate":
            assert entry.line in seen
            duplicates += 1
        seen.add(entry.line)
    assert duplicates == small_batch.counts()["dirty"]["duplicate"] > 0


def test_dirty_counts_split_evenly_and_zero_dirty_means_clean():
    assert gen.dirty_counts(8) == {"malformed_json": 2, "invalid_type": 2, "missing_field": 1, "duplicate": 1,
                                   "negative_amount": 1, "future_timestamp": 1}
    batch = generate(GeneratorConfig(rows=200, seed=1, dirty_fraction=0.0))
    assert {e.kind for e in batch.landed} == {"clean"}


# --- fraud patterns a model can learn ---------------------------------------------------------------------------


def test_card_testing_is_a_burst_of_small_online_payments(default_batch):
    testing = [r for p, r in _clean_with_pattern(default_batch) if p == "card_testing"]
    assert all(r["channel"] == "online" and r["is_fraud"] == 1 for r in testing)
    bursts = []
    for rows in _by_card([r for r in testing if r["merchant_category"] == "digital_goods"]).values():
        for row in rows:  # a new burst starts after half an hour of quiet
            if bursts and bursts[-1][-1]["card_id"] == row["card_id"] and _ts(row["event_time"]) - _ts(
                    bursts[-1][-1]["event_time"]) < timedelta(minutes=30):
                bursts[-1].append(row)
            else:
                bursts.append([row])
    assert len(bursts) >= 3
    for burst in bursts:
        assert len(burst) >= 6
        assert all(r["amount"] <= 5.0 for r in burst)
        assert _ts(burst[-1]["event_time"]) - _ts(burst[0]["event_time"]) <= timedelta(minutes=16)


def test_account_takeover_is_large_far_and_at_night(default_batch):
    legit = [r for r in default_batch.records if not r["is_fraud"]]
    typical = sorted(r["amount"] for r in legit)[len(legit) // 2]
    takeover = [r for p, r in _clean_with_pattern(default_batch) if p == "account_takeover"]
    assert {r["merchant_category"] for r in takeover} <= {"electronics", "jewelry", "travel"}
    amounts = sorted(r["amount"] for r in takeover)
    assert amounts[len(amounts) // 2] > 10 * typical
    cards = {c.card_id: c for c in gen.build_world(gen.DEFAULT_SEED, GeneratorConfig().n_cards).cards}
    far = [gen._distance_km(cards[r["card_id"]].lat, cards[r["card_id"]].lon, r["lat"], r["lon"]) > 200
           for r in takeover]
    assert sum(far) / len(far) > 0.9
    local_hours = [(_ts(r["event_time"]).hour + cards[r["card_id"]].city.utc_offset) % 24 for r in takeover]
    assert sum(h <= 8 for h in local_hours) / len(local_hours) > 0.8


def test_impossible_travel_follows_a_home_purchase_within_hours(default_batch):
    pattern_of = {r["transaction_id"]: p for p, r in _clean_with_pattern(default_batch)}
    cards = _by_card(default_batch.records)
    checked = 0
    for card_rows in cards.values():
        for before, after in zip(card_rows, card_rows[1:]):
            if pattern_of[after["transaction_id"]] == "impossible_travel" and not before["is_fraud"]:
                hours = (_ts(after["event_time"]) - _ts(before["event_time"])).total_seconds() / 3600
                km = gen._distance_km(before["lat"], before["lon"], after["lat"], after["lon"])
                assert km / max(hours, 1 / 60) > 1000  # faster than an airliner
                checked += 1
    assert checked >= 5


def _clean_with_pattern(batch):
    records = iter(batch.records)
    return [(e.pattern, next(records)) for e in batch.landed if e.kind == "clean"]


# --- landing ----------------------------------------------------------------------------------------------------


def test_split_files_keeps_order_and_every_line():
    parts = gen.split_files([str(i) for i in range(10)], 3, prefix="s-")
    assert list(parts) == ["s-part-00000.jsonl", "s-part-00001.jsonl", "s-part-00002.jsonl"]
    assert [len(p) for p in parts.values()] == [4, 3, 3]
    assert sum(parts.values(), []) == [str(i) for i in range(10)]
    with pytest.raises(ValueError):
        gen.split_files(["x"], 0)


def test_main_lands_batches_in_subfolders_and_stream_files_flat(tributary_home: Path):
    landing = tributary_home / "var" / "landing"
    result = gen.main(["--rows", "300", "--batch-id", "day1", "--files", "3"])
    assert sorted(p.name for p in (landing / "batch" / "day1").iterdir()) == [
        "part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert sum(len(Path(p).read_text().splitlines()) for p in result["files"]) == 300
    assert result["rows"] == 300 and set(result["dirty"]) == set(DIRTY_KINDS)

    gen.main(["--rows", "300", "--batch-id", "day1", "--files", "1"])  # regenerate: no stale parts left
    assert sorted(p.name for p in (landing / "batch" / "day1").iterdir()) == ["part-00000.jsonl"]

    stream = gen.main(["--rows", "200", "--target", "landing_stream", "--batch-id", "s1", "--files", "2",
                       "--start", "2026-11-15", "--days", "1"])
    assert sorted(p.name for p in (landing / "stream").iterdir()) == ["s1-part-00000.jsonl", "s1-part-00001.jsonl"]
    assert stream["target"] == "landing_stream"


@pytest.mark.parametrize(
    "bad",
    [["--rows", "0"], ["--days", "0"], ["--dirty-fraction", "1.5"], ["--files", "0"], ["--batch-id", "../x"],
     ["--start", "not-a-date"], ["--target", "bronze_transactions"], ["--target", "kafka"]],
)
def test_main_rejects_bad_arguments(tributary_home: Path, bad):
    with pytest.raises(SystemExit) as exc:
        gen.main(bad)
    assert exc.value.code == 2
    assert not (tributary_home / "var" / "landing").exists()


def test_the_kafka_target_needs_a_profile_with_a_topic(tributary_home: Path, capsys):
    with pytest.raises(SystemExit):
        gen.main(["--profile", "local", "--target", "kafka"])
    assert "profile 'local' has none: use --profile local-kafka" in capsys.readouterr().err


def test_only_local_landing_uris_are_written():
    assert gen.local_dir("file:///tmp/x") == Path("/tmp/x")
    assert gen.local_dir("/tmp/y") == Path("/tmp/y")
    with pytest.raises(ValueError, match="local file systems only"):
        gen.local_dir("s3a://bucket/landing")


def test_default_start_and_window():
    config = GeneratorConfig()
    assert config.start == date(2026, 11, 1) and config.days == 14 and config.n_cards == 400
    assert config.resolved_batch_id == "2026-11-01-seed42"
