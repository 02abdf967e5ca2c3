"""Tests for spark_jobs.features: window math, point-in-time correctness, defaults, streaming parity, entrypoint."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import io
from spark_jobs.transforms.card_features import (
    DAY_SECONDS,
    FEATURE_COLUMNS,
    KEY_COLUMNS,
    LOOKBACK_SECONDS,
    compute_card_features,
    features_for_interval,
    features_for_new,
)
from spark_jobs.features import main
from spark_jobs.interval import Interval
from spark_jobs.transforms.schema import BRONZE_SCHEMA

T0 = datetime(2026, 11, 10, 12, 0, 0, tzinfo=timezone.utc)
KM_PER_DEGREE = 6371.0 * math.pi / 180  # one degree of longitude on the equator


def txn(
    tid: str,
    offset_s: int,
    amount: float = 10.0,
    card: str = "c1",
    category: str = "grocery",
    country: str = "US",
    lat: float = 0.0,
    lon: float = 0.0,
    channel: str = "pos",
    is_fraud: int = 0,
) -> tuple:
    """One ``BRONZE_SCHEMA`` row ``offset_s`` seconds after T0."""
    return (
        tid, card, f"m-{category}", category, float(amount), "USD", T0 + timedelta(seconds=offset_s),
        country, float(lat), float(lon), channel, is_fraud, "file:///landing/x.jsonl", T0,
    )  # fmt: skip


def bronze(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, BRONZE_SCHEMA)


def features_of(spark: SparkSession, rows: list[tuple]) -> dict[str, dict]:
    """Computed features keyed by transaction id."""
    return {r["transaction_id"]: r.asDict() for r in compute_card_features(bronze(spark, rows)).collect()}


def pick(df: DataFrame, columns: list[str]) -> DataFrame:
    return df.select("transaction_id", *columns)


def test_window_counts_and_sums_at_boundaries(spark):
    # Amounts are powers of two, so each sum names exactly which rows fell inside the window.
    rows = [
        txn("old7d", -7 * DAY_SECONDS - 1, 1),  # outside 7d, inside the 30d lookback
        txn("edge7d", -7 * DAY_SECONDS, 2),  # exactly 7d earlier: included
        txn("in7d", -DAY_SECONDS - 1, 4),  # in 7d, not 24h
        txn("edge24h", -DAY_SECONDS, 8),  # exactly 24h earlier: included
        txn("in24h", -3601, 16),  # in 24h, not 1h
        txn("edge1h", -3600, 32),  # exactly 1h earlier: included
        txn("prev1s", -1, 64),
        txn("target", 0, 128),
    ]
    cols = [f"{kind}_{w}" for kind in ("txn_count", "amount_sum") for w in ("1h", "24h", "7d")]
    got = pick(compute_card_features(bronze(spark, rows)), cols + ["card_prior_txn_count"])
    expected = spark.createDataFrame(
        [
            ("target", 2.0, 4.0, 6.0, 96.0, 120.0, 126.0, 7.0),
            # From prev1s every window edge moves 1 s earlier: in24h, in7d and old7d sit exactly on them.
            ("prev1s", 2.0, 4.0, 6.0, 48.0, 60.0, 63.0, 6.0),
            ("old7d", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        ],
        ["transaction_id", *cols, "card_prior_txn_count"],
    )
    assertDataFrameEqual(got.where(F.col("transaction_id").isin("target", "prev1s", "old7d")), expected)


def test_later_and_same_second_transactions_do_not_leak(spark):
    base = [
        txn("a", -7200, 10, country="US", lat=0, lon=0),
        txn("b", -60, 20, category="travel", country="US", lat=0, lon=0.5),
        txn("c", 0, 30, country="US", lat=0, lon=1),
    ]
    intruders = [
        txn("c-twin", 0, 5000, category="jewelry", country="RU", lat=55, lon=37),  # same second as c
        txn("later", 10, 9000, category="jewelry", country="RU", lat=55, lon=37),
    ]
    before = compute_card_features(bronze(spark, base))
    after = compute_card_features(bronze(spark, base + intruders))
    assertDataFrameEqual(after.where(F.col("transaction_id").isin("a", "b", "c")), before)

    by_id = {r["transaction_id"]: r.asDict() for r in after.collect()}
    # The twin sees exactly c's history (not c itself), and c does not see the twin.
    history_cols = ["txn_count_1h", "amount_sum_1h", "card_prior_txn_count", "seconds_since_prev_txn"]
    assert [by_id["c-twin"][k] for k in history_cols] == [by_id["c"][k] for k in history_cols] == [1.0, 20.0, 2.0, 60.0]
    # Sanity: a strictly later transaction does see everything before it (the test above can fail).
    assert by_id["later"]["txn_count_1h"] == 3.0
    assert by_id["later"]["amount_sum_1h"] == 20.0 + 30.0 + 5000.0
    assert by_id["later"]["seconds_since_prev_txn"] == 10.0


def test_cards_are_isolated(spark):
    card_b = [txn("b1", -100, 7, card="B", country="FR"), txn("b2", 0, 9, card="B", country="FR", lon=2)]
    card_a = [txn("a1", -50, 1000, card="A", country="DE", lon=50), txn("a2", -1, 2000, card="A", country="DE")]
    alone = compute_card_features(bronze(spark, card_b))
    mixed = compute_card_features(bronze(spark, card_a + card_b))
    assertDataFrameEqual(mixed.where(F.col("card_id") == "B"), alone)
    assert features_of(spark, card_a + card_b)["a1"]["card_prior_txn_count"] == 0.0


def test_first_transaction_gets_documented_defaults(spark):
    rows = [txn("first", 0, 100, channel="online", country="GB", lat=51.5, lon=-0.1, is_fraud=1)]
    defaults = {name: 0.0 for name in FEATURE_COLUMNS}
    defaults.update(
        amount=100.0,
        log_amount=math.log1p(100.0),
        seconds_since_prev_txn=float(LOOKBACK_SECONDS),
        amount_to_prior_mean=1.0,
        hour_of_day=12.0,
        is_online=1.0,
    )
    expected = spark.createDataFrame(
        [("first", "c1", T0.replace(tzinfo=None), 1, *(defaults[c] for c in FEATURE_COLUMNS))],
        compute_card_features(bronze(spark, rows)).schema,
    )
    assertDataFrameEqual(compute_card_features(bronze(spark, rows)), expected)


def test_seconds_since_previous_distance_and_speed(spark):
    rows = [
        txn("ancient", -LOOKBACK_SECONDS - 1, lat=10, lon=10),  # older than the lookback: ignored
        txn("p", 0, lat=0, lon=0),
        txn("q", 3600, lat=0, lon=1),  # one degree east, one hour later
        txn("r", 3660, lat=0, lon=1),  # same place, 60 s later
        # Two transactions in the same second; the previous one for "s" is the larger id, "t2" (at lon 3).
        txn("t1", 7200, lat=0, lon=2),
        txn("t2", 7200, lat=0, lon=3),
        txn("s", 7230, lat=0, lon=3),
    ]
    cols = ["seconds_since_prev_txn", "km_from_prev_txn", "speed_kmh_from_prev_txn"]
    got = pick(compute_card_features(bronze(spark, rows)), cols)
    km = KM_PER_DEGREE
    expected = spark.createDataFrame(
        [
            ("ancient", float(LOOKBACK_SECONDS), 0.0, 0.0),
            ("p", float(LOOKBACK_SECONDS), 0.0, 0.0),  # previous is older than 30 days
            ("q", 3600.0, km, km),
            ("r", 60.0, 0.0, 0.0),
            ("t1", 3540.0, km, km * 3600 / 3540),
            ("t2", 3540.0, 2 * km, 2 * km * 3600 / 3540),
            ("s", 30.0, 0.0, 0.0),
        ],
        ["transaction_id", *cols],
    )
    assertDataFrameEqual(got, expected)


def test_amount_ratio_and_zscore_use_prior_rows_only(spark):
    rows = [txn("x1", 0, 10), txn("x2", 60, 20), txn("x3", 120, 45)]
    rows += [txn("zero1", 0, 0, card="z"), txn("zero2", 1, 5, card="z")]
    got = pick(compute_card_features(bronze(spark, rows)), ["amount_to_prior_mean", "amount_zscore"])
    expected = spark.createDataFrame(
        [
            ("x1", 1.0, 0.0),  # no history
            ("x2", 2.0, 0.0),  # one prior row: mean 10, std 0 -> z defaults to 0
            ("x3", 3.0, 6.0),  # prior 10, 20: mean 15, population std 5
            ("zero1", 1.0, 0.0),
            ("zero2", 1.0, 0.0),  # prior mean 0 -> ratio defaults to 1
        ],
        ["transaction_id", "amount_to_prior_mean", "amount_zscore"],
    )
    assertDataFrameEqual(got, expected)


def test_category_share_and_is_foreign(spark):
    rows = [
        txn("g1", 0, category="grocery", country="US"),
        txn("g2", 10, category="grocery", country="US"),
        txn("t1", 20, category="travel", country="FR"),
        txn("g3", 30, category="grocery", country="FR"),
        # Tie card: prior countries FR and US once each -> usual country is "FR" (alphabetical tie-break).
        txn("k1", 0, card="k", country="US"),
        txn("k2", 10, card="k", country="FR"),
        txn("k3", 20, card="k", country="US"),
    ]
    got = pick(compute_card_features(bronze(spark, rows)), ["merchant_category_prior_share", "is_foreign"])
    expected = spark.createDataFrame(
        [
            ("g1", 0.0, 0.0),
            ("g2", 1.0, 0.0),
            ("t1", 0.0, 1.0),  # new category; FR vs usual US
            ("g3", 2 / 3, 1.0),
            ("k1", 0.0, 0.0),
            ("k2", 1.0, 1.0),
            ("k3", 1.0, 1.0),
        ],
        ["transaction_id", "merchant_category_prior_share", "is_foreign"],
    )
    assertDataFrameEqual(got, expected)


def test_a_history_of_one_amount_has_a_deviation_of_exactly_zero(spark):
    """The deviation comes from running sums of amounts and squares, whose rounding leaves a tiny positive variance for
    some repeated amounts (three 12.34s: about 2e-7): a z-score of 1e8 unless equal histories are caught."""
    day = 86_400
    rows = [txn(f"e{k}", 60 * k, 12.34) for k in range(3)] + [txn("e-next", 180, 50.0)]
    rows += [txn(f"s{k}", 60 * k, 19.99, card="six") for k in range(6)] + [txn("s-next", 360, 30.0, card="six")]
    # an older, different amount outside the 30-day frame does not break the frame's equal history
    rows += [txn("o-old", -31 * day, 5.0, card="old")] + [txn(f"o{k}", 60 * k, 12.34, card="old") for k in range(3)]
    rows += [txn("o-next", 180, 50.0, card="old")]
    # one different amount inside the frame does
    broken = [12.34, 12.34, 13.0, 12.34]
    rows += [txn(f"b{k}", 60 * k, a, card="broken") for k, a in enumerate(broken)]
    rows += [txn("b-next", 240, 50.0, card="broken")]
    got = features_of(spark, rows)
    for tid in ("e-next", "s-next", "o-next"):
        assert got[tid]["amount_zscore"] == 0.0, tid
    assert got["e-next"]["amount_to_prior_mean"] == pytest.approx(50.0 / 12.34, rel=1e-12)
    assert got["o-next"]["card_prior_txn_count"] == 3.0
    mean = sum(broken) / 4
    std = math.sqrt(sum((a - mean) ** 2 for a in broken) / 4)
    assert got["b-next"]["amount_zscore"] == pytest.approx((50.0 - mean) / std, rel=1e-9)
    assert got["b3"]["amount_zscore"] == pytest.approx((12.34 - 37.68 / 3) / math.sqrt(2 * 0.66**2 / 9), rel=1e-9)


def test_the_one_amount_check_counts_changes_inside_the_frame_only_in_second_and_id_order(spark):
    """A row's change is to the card's next row in ``(second, transaction_id)`` order. The previous transaction's own
    change leads out of the frame (here to rows of the current second), so it never breaks an equal frame; two
    amounts in the frame's last second do, whichever of them is the previous transaction."""
    rows = [txn(f"u{k}", 60 * k, 12.34, card="tie") for k in range(3)]
    rows += [txn("u-a", 180, 50.0, card="tie"), txn("u-b", 180, 7.0, card="tie")]  # concurrent, both see u0-u2
    split = [("p0", 0, 12.34), ("p1", 60, 12.34), ("p2-a", 120, 12.34), ("p2-b", 120, 13.0)]
    rows += [txn(tid, offset, amount, card="split") for tid, offset, amount in split]
    rows += [txn("p-next", 180, 50.0, card="split")]
    # the same amounts in the last second, the other one last by id: the previous transaction holds 12.34 this time
    rows += [txn(tid, offset, amount, card="swap") for tid, offset, amount in
             [("q0", 0, 12.34), ("q1", 60, 12.34), ("q2-a", 120, 13.0), ("q2-b", 120, 12.34)]]
    rows += [txn("q-next", 180, 50.0, card="swap")]
    got = features_of(spark, rows)
    for tid in ("u-a", "u-b"):
        assert got[tid]["amount_zscore"] == 0.0, tid
        assert got[tid]["card_prior_txn_count"] == 3.0, tid
    amounts = [12.34, 12.34, 12.34, 13.0]
    mean = sum(amounts) / 4
    std = math.sqrt(sum((a - mean) ** 2 for a in amounts) / 4)
    for tid in ("p-next", "q-next"):
        assert got[tid]["amount_zscore"] == pytest.approx((50.0 - mean) / std, rel=1e-9), tid
    # p2-b and q2-b see only the two 12.34s before their second (concurrent rows never see each other)
    assert got["p2-b"]["amount_zscore"] == got["q2-b"]["amount_zscore"] == 0.0


def test_profile_features_equal_the_bounded_frame_aggregates_they_replace(spark):
    """The prior mean and deviation come from running sums (linear in the rows); on random cards with repeated amounts,
    tied countries, concurrent seconds and rows leaving the 30-day frame they, and the usual country, equal Spark's own
    ``avg``, ``stddev_pop`` and ``mode(country, true)`` over ``rangeBetween(-30 days, -1)``."""
    rng = random.Random(9)
    rows = []
    for k in range(3_000):
        card = f"c{min(rng.randrange(60), rng.randrange(60))}"  # some cards far busier than others
        offset = rng.randrange(45 * 86_400) // rng.choice((1, 600)) * rng.choice((1, 600))  # many shared seconds
        amount = rng.choice((12.34, 12.34, 19.99, 0.1, 250.0, rng.uniform(0, 500)))
        rows.append(txn(f"r{k}", offset, amount, card=card, country=rng.choice(("DE", "FR", "FR", "US"))))
    df = bronze(spark, rows)
    frame = Window.partitionBy("card_id").orderBy(F.unix_seconds("event_time")).rangeBetween(-LOOKBACK_SECONDS, -1)
    mean, std = F.avg("amount").over(frame), F.stddev_pop("amount").over(frame)
    reference = df.select(
        "transaction_id",
        F.when(mean > 0, F.col("amount") / mean).otherwise(1.0).alias("amount_to_prior_mean"),
        F.when(std > 0, (F.col("amount") - mean) / std).otherwise(0.0).alias("amount_zscore"),
        F.coalesce((F.col("country") != F.mode("country", True).over(frame)).cast("double"), F.lit(0.0))
        .alias("is_foreign"),
    )
    got = pick(compute_card_features(df), ["amount_to_prior_mean", "amount_zscore", "is_foreign"])
    assertDataFrameEqual(got, reference, rtol=1e-9, atol=1e-9)
    assert reference.where("is_foreign = 1").count() > 300  # the usual country is not trivially every row's


def test_time_of_day_and_channel_flags(spark):
    midnight = -12 * 3600  # T0 is 12:00 UTC
    rows = [
        txn("n", midnight + 6 * 3600 - 1, channel="atm"),  # 05:59:59 -> night
        txn("d", midnight + 6 * 3600, channel="online", card="c2"),  # 06:00:00 -> day
        txn("m", midnight, channel="pos", card="c3"),  # 00:00:00 -> night
    ]
    got = pick(compute_card_features(bronze(spark, rows)), ["hour_of_day", "is_night", "is_online", "is_atm"])
    expected = spark.createDataFrame(
        [("n", 5.0, 1.0, 0.0, 1.0), ("d", 6.0, 0.0, 1.0, 0.0), ("m", 0.0, 1.0, 0.0, 0.0)],
        ["transaction_id", "hour_of_day", "is_night", "is_online", "is_atm"],
    )
    assertDataFrameEqual(got, expected)


def test_output_columns_are_keys_then_non_null_doubles(spark):
    rows = [
        txn("a", 0, 0.0),
        txn("b", 0, 3.0),
        txn("c", 5, 3.0, category="travel", country="FR", lat=48.8, lon=2.3),
        txn("d", 0, 1.0, card="other", channel="online"),
    ]
    out = compute_card_features(bronze(spark, rows))
    assert out.columns == KEY_COLUMNS + FEATURE_COLUMNS
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    assert {f.name: f.dataType.simpleString() for f in out.schema if f.name in FEATURE_COLUMNS} == {
        c: "double" for c in FEATURE_COLUMNS
    }
    any_null = F.greatest(*(F.col(c).isNull().cast("int") for c in FEATURE_COLUMNS))
    assert out.where(any_null == 1).count() == 0
    assert out.count() == len(rows)


def test_features_for_new_equals_batch_for_new_rows(spark):
    history = [
        txn("h-ancient", -LOOKBACK_SECONDS - 500, 999, lon=40),  # pruned, and outside every window anyway
        txn("h1", -5000, 10, lon=0),
        txn("h2", -100, 20, category="travel", country="FR", lon=1),
        txn("h3", 0, 30, lon=2),  # shares its second with new n1
        txn("o1", -10, 50, card="other"),  # a card with no new rows
        txn("dup", 5, 1, lon=9),  # the same id arrives again in `new`
    ]
    new = [
        txn("n1", 0, 300, category="jewelry", country="RU", lon=3),
        txn("dup", 5, 1, lon=9),
        txn("n2", 20, 40, lon=4),
        txn("n3", 30, 5, card="fresh"),  # a card never seen before
    ]
    got = features_for_new(bronze(spark, history), bronze(spark, new))
    everything = bronze(spark, history).where(F.col("transaction_id") != "dup").unionByName(bronze(spark, new))
    batch = compute_card_features(everything).where(F.col("transaction_id").isin("n1", "dup", "n2", "n3"))
    assertDataFrameEqual(got, batch)
    # Not just "features of new alone": n2 sees h2, h3, n1 and dup in 1h (h1 is 5020 s earlier), plus h1 in 30d.
    n2 = got.where("transaction_id = 'n2'").first()
    assert (n2["txn_count_1h"], n2["card_prior_txn_count"]) == (4.0, 5.0)


def test_main_writes_features_card_idempotently(spark, local_profile, capsys):
    catalog = local_profile.catalog
    rows = [txn("e1", 0, 10), txn("e2", 60, 30, lon=1), txn("e3", 0, 5, card="c2", channel="online")]
    io.overwrite_table(bronze(spark, rows), catalog, "bronze_transactions")

    first = main(["--profile", "local"])
    assert first["feature_rows"] == 3
    assert (first["bronze_version"], first["features_version"]) == (0, 0)
    assert "TRIBUTARY_RESULT" in capsys.readouterr().out
    written = io.read_table(spark, catalog, "features_card")
    assertDataFrameEqual(written, compute_card_features(io.read_table(spark, catalog, "bronze_transactions")))
    assert written.where("transaction_id = 'e2'").first()["km_from_prev_txn"] == pytest.approx(KM_PER_DEGREE)

    second = main(["--profile", "local"])  # full recompute: same rows, new table version
    assert (second["feature_rows"], second["features_version"]) == (3, 1)
    assertDataFrameEqual(io.read_table(spark, catalog, "features_card"), written.collect())


DAY = timedelta(days=1)
DAY_1 = datetime(2026, 11, 10, tzinfo=timezone.utc)  # T0's day
INTERVALS = [Interval(DAY_1 + k * DAY, DAY_1 + (k + 1) * DAY) for k in range(3)]


def three_days() -> list[tuple]:
    """Three cards over three UTC days from DAY_1, with rows just either side of midnight and history before them:
    one row 20 days back (inside every day's 30-day look-back) and one 40 days back (outside it)."""
    rows = [txn("old-20d", -20 * DAY_SECONDS, 80, country="FR"), txn("old-40d", -40 * DAY_SECONDS, 500, lon=50)]
    for c, card in enumerate(("c1", "c2", "c3")):
        for k in range(12):  # every 5 h from T0 (midday of day 1) to the end of day 3
            rows.append(txn(f"{card}-{k:02d}", k * 5 * 3600 + c * 1800, amount=5 + 7 * k + c, card=card,
                            category=("grocery", "travel", "fuel")[(k + c) % 3], country="FR" if k % 5 == 4 else "US",
                            lon=k * 0.5, channel=("pos", "online", "atm")[k % 3], is_fraud=int(k == 7)))
    midnight = int((DAY_1 + DAY - T0).total_seconds())
    rows += [txn("edge-before", midnight - 1, 42), txn("edge-at", midnight, 43)]  # day 1's last second, day 2's first
    return rows


def _before(rows: list[tuple], end: datetime) -> list[tuple]:
    return [row for row in rows if row[6] < end]


def test_an_intervals_features_equal_the_full_computation_on_its_rows(spark):
    everything = bronze(spark, three_days())
    full = compute_card_features(everything)
    for interval in INTERVALS:
        got = features_for_interval(everything, interval)
        assert got.count() > 0
        assertDataFrameEqual(got, interval.select(full))
    # the look-back matters: day 2's first c1 row sees the row 20 days back (the 40-day one is outside every window)
    first_c1 = features_for_interval(everything, INTERVALS[1]).where("card_id = 'c1'").orderBy("event_time").first()
    assert first_c1["card_prior_txn_count"] == full.where(f"transaction_id = '{first_c1['transaction_id']}'").first()[
        "card_prior_txn_count"] >= 4


def test_a_backfill_of_daily_intervals_builds_the_same_table_as_one_full_run(spark, local_profile):
    """Bronze grows a day at a time and each day's run featurises its interval: the first builds the table (there is
    none yet), the next two MERGE their slice. The result is the full run's table; re-running a day changes
    nothing."""
    catalog, rows = local_profile.catalog, three_days()
    results = []
    for interval in INTERVALS:
        io.overwrite_table(bronze(spark, _before(rows, interval.end)), catalog, "bronze_transactions")
        results.append(main(["--profile", "local", f"--start={interval.start.isoformat()}",
                             f"--end={interval.end.isoformat()}"]))
    assert [r["mode"] for r in results] == ["full", "interval", "interval"]
    day_rows = [Interval(i.start, i.end).select(bronze(spark, rows)).count() for i in INTERVALS]
    assert [r["rows_written"] for r in results[1:]] == day_rows[1:]
    assert results[-1]["feature_rows"] == len(rows)
    full = compute_card_features(io.read_table(spark, catalog, "bronze_transactions"))
    assertDataFrameEqual(io.read_table(spark, catalog, "features_card"), full)

    again = main(["--profile", "local", f"--start={INTERVALS[1].start.isoformat()}",
                  f"--end={INTERVALS[1].end.isoformat()}"])
    assert (again["mode"], again["rows_written"], again["feature_rows"]) == ("interval", day_rows[1], len(rows))
    assertDataFrameEqual(io.read_table(spark, catalog, "features_card"), full)
    whole = main(["--profile", "local", "--start=", "--end="])  # what a full refresh renders
    assert (whole["mode"], whole["rows_written"], whole["interval"]) == ("full", len(rows), {"start": None, "end": None})
    assertDataFrameEqual(io.read_table(spark, catalog, "features_card"), full)


def test_main_without_bronze_fails_with_a_hint(spark, local_profile, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--profile", "local"])
    assert exc.value.code == 2
    assert "run spark_jobs.ingest first" in capsys.readouterr().err
