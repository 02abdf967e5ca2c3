"""Per-card, point-in-time-correct windowed features of bronze transactions (the ``features`` job writes them).

One row per bronze transaction: the keys ``transaction_id, card_id, event_time``, the label ``is_fraud`` and the
model inputs ``FEATURE_COLUMNS`` (all doubles, never null). Only Spark window functions are used (no Python UDFs).

Point-in-time rules (what a feature of transaction T may see):

- Time is ``unix_seconds(event_time)`` (whole UTC seconds; sub-second precision is truncated).
- Only **strictly earlier seconds** of the **same card** contribute: every frame is
  ``rangeBetween(-window, -1)`` on epoch seconds. So transactions of one card in the same second are
  *concurrent*: none of them sees the others (no same-second leak), and they all get the same history.
- Window boundaries are inclusive: the 1h window of T covers ``[t - 3600, t - 1]``, so a transaction exactly
  3600 s earlier counts in the 1h window and one 3601 s earlier does not (24h: 86 400 s, 7d: 604 800 s).
- Card-profile features (prior count, mean, z-score, category share, usual country, previous transaction) look
  back ``LOOKBACK_SECONDS`` (30 days). Nothing older ever matters, which is what lets ``features_for_new`` prune
  its history and still match the batch computation exactly.

Defaults when the card has no prior transaction in the frame (never null):

- ``seconds_since_prev_txn`` = ``LOOKBACK_SECONDS`` (read "at least 30 days"; also when the previous
  transaction is older than the lookback);
- ``km_from_prev_txn`` = ``speed_kmh_from_prev_txn`` = 0; ``amount_to_prior_mean`` = 1 (also when the prior
  mean is 0); ``amount_zscore`` = 0 (also when the prior standard deviation is 0, e.g. one prior row);
  ``merchant_category_prior_share`` = 0 (a new category); ``is_foreign`` = 0; window counts and sums = 0.

Definitions: the "previous transaction" is the latest strictly earlier one (ties in that second: the largest
``transaction_id``); ``is_foreign`` = the country differs from the card's most common country over the lookback
(ties: the alphabetically first country); ``amount_zscore`` uses the population standard deviation of prior
amounts; ``hour_of_day``/``is_night`` are UTC (night = 00:00-05:59); ``speed_kmh_from_prev_txn`` = great-circle
(haversine) km / hours since the previous transaction (at least 1 s apart by construction).

How it is computed: counts and sums over a window are differences of two running totals (everything up to ``t - 1``
less everything up to ``t - window - 1``), and the previous transaction is the running latest one, kept when it lies
within the lookback. Spark adds each row to a running total once, but re-aggregates a bounded frame whole for every
row, which is quadratic in a busy card's month (benchmarks/README.md, P2s). The prior mean and population deviation
come from running sums of amounts and of their squares; the deviation is exactly 0 when the frame holds one amount
only (its rows are the last ones up to the previous transaction, so the run of equal amounts ending there is at least
as long as the frame), where sums of squares would leave rounding. Counts are exact; a sum, mean or deviation equals
the frame's own up to the double rounding of the running totals (about 1e-16 of the card's totals, relatively more for
a deviation small against the mean), and a window sum is exactly 0 over no rows. The usual country stays on the
bounded 30-day frame (Spark's ``mode``).

Incremental runs: with ``--start``/``--end`` (fraud_pipeline passes each run's data interval) the job computes
features only for the bronze rows whose ``event_time`` lies in the interval, reading bronze back no further than
``LOOKBACK_SECONDS`` before the interval's start (the oldest row a feature can see), and MERGEs that slice into
``features_card`` on ``transaction_id``. A slice equals the full computation restricted to it, so re-running an
interval leaves the table as it was, and a backfill of consecutive intervals builds the same table as one full run.
The look-back is 30 days, not the 7 of the longest count window: the card-profile features look back 30 days.
When ``features_card`` does not exist yet, the first run builds it whole, whatever the interval (as dbt's incremental
models do), so a first scheduled run leaves a complete table. Rows that land after their interval has run (late data)
get features when that interval is run again, or on a full refresh.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.interval import Interval

if TYPE_CHECKING:
    from pyspark.sql.window import WindowSpec

HOUR_SECONDS = 3_600
DAY_SECONDS = 86_400
WINDOWS_SECONDS: dict[str, int] = {"1h": HOUR_SECONDS, "24h": DAY_SECONDS, "7d": 7 * DAY_SECONDS}
LOOKBACK_SECONDS = 30 * DAY_SECONDS
EARTH_RADIUS_KM = 6_371.0
NIGHT_HOURS_UTC = range(0, 6)

# Columns compute_card_features reads (extra bronze columns are ignored).
INPUT_COLUMNS: list[str] = [
    "transaction_id",
    "card_id",
    "event_time",
    "amount",
    "merchant_category",
    "country",
    "lat",
    "lon",
    "channel",
    "is_fraud",
]
KEY_COLUMNS: list[str] = ["transaction_id", "card_id", "event_time", "is_fraud"]

FEATURE_COLUMNS: list[str] = [
    "amount",
    "log_amount",
    *(f"txn_count_{w}" for w in WINDOWS_SECONDS),
    *(f"amount_sum_{w}" for w in WINDOWS_SECONDS),
    "seconds_since_prev_txn",
    "card_prior_txn_count",
    "amount_to_prior_mean",
    "amount_zscore",
    "merchant_category_prior_share",
    "km_from_prev_txn",
    "speed_kmh_from_prev_txn",
    "hour_of_day",
    "is_night",
    "is_online",
    "is_atm",
    "is_foreign",
]

_TS = "_ts"  # epoch seconds, internal


def _prior(partition: Sequence[str], seconds: int) -> "WindowSpec":
    """Frame of the same partition's rows in ``[t - seconds, t - 1]`` (strictly earlier seconds only)."""
    return Window.partitionBy(*partition).orderBy(_TS).rangeBetween(-seconds, -1)


def _up_to(partition: Sequence[str], seconds_before: int) -> "WindowSpec":
    """Frame of the same partition's rows at ``t - seconds_before`` or earlier: every earlier row, which Spark
    aggregates as a running total (each row added once), unlike a bounded frame, which it re-aggregates whole for
    every row (a card's 30-day frame holds its whole month: quadratic on a busy card)."""
    return Window.partitionBy(*partition).orderBy(_TS).rangeBetween(Window.unboundedPreceding, -seconds_before)


def _count_in(partition: Sequence[str], seconds: int) -> Column:
    """Rows of the partition in ``[t - seconds, t - 1]``: the running count up to ``t - 1`` less the one up to
    ``t - seconds - 1`` (exact)."""
    one = F.lit(1)
    return F.count(one).over(_up_to(partition, 1)) - F.count(one).over(_up_to(partition, seconds + 1))


def _sum_in(partition: Sequence[str], seconds: int, column: str) -> Column:
    """``column``'s sum over ``[t - seconds, t - 1]`` as a difference of running sums (0 over no rows; otherwise
    equal to the frame's own sum up to double rounding of the running totals)."""
    running = F.sum(column).over(_up_to(partition, 1)) - F.coalesce(
        F.sum(column).over(_up_to(partition, seconds + 1)), F.lit(0.0))
    return F.when(_count_in(partition, seconds) > 0, running).otherwise(F.lit(0.0))


def _with_equal_run(df: DataFrame) -> DataFrame:
    """``df`` with ``_equal_run``: how many of the card's rows, in ``(second, transaction_id)`` order, end at this one
    with its amount unbroken (1 after a different amount). A frame ending at the row holds one amount only when it
    holds no more rows than that run, which keeps a deviation of exactly 0 where sums of squares would leave rounding
    (pandas' rolling variance counts the same run)."""
    order = Window.partitionBy("card_id").orderBy(_TS, "transaction_id")
    df = df.withColumn("_seq", F.row_number().over(order))
    df = df.withColumn("_run_start", F.when(~F.lag("amount").over(order).eqNullSafe(F.col("amount")), F.col("_seq")))
    run_start = F.max("_run_start").over(order.rowsBetween(Window.unboundedPreceding, Window.currentRow))
    return df.withColumn("_equal_run", F.col("_seq") - run_start + 1).drop("_seq", "_run_start")


def haversine_km(lat1: Column, lon1: Column, lat2: Column, lon2: Column) -> Column:
    """Great-circle distance in km between two points given in degrees."""
    dlat = F.radians(lat2 - lat1)
    dlon = F.radians(lon2 - lon1)
    a = F.pow(F.sin(dlat / 2), 2) + F.cos(F.radians(lat1)) * F.cos(F.radians(lat2)) * F.pow(F.sin(dlon / 2), 2)
    return F.lit(2 * EARTH_RADIUS_KM) * F.asin(F.least(F.lit(1.0), F.sqrt(a)))


def compute_card_features(transactions: DataFrame) -> DataFrame:
    """One feature row per transaction, using only strictly earlier transactions of the same card.

    ``transactions`` is bronze-shaped (at least ``INPUT_COLUMNS``; ``event_time`` a timestamp). Returns
    ``KEY_COLUMNS`` + ``FEATURE_COLUMNS``, every feature a non-null double. See the module docstring for the
    window boundaries, tie handling and the defaults used when a card has no history.
    """
    card = ["card_id"]
    df = transactions.select(*INPUT_COLUMNS).withColumn(_TS, F.unix_seconds("event_time"))
    df = _with_equal_run(df).withColumn("_amount_sq", F.col("amount") * F.col("amount"))
    windowed: dict[str, Column] = {}
    for label, seconds in WINDOWS_SECONDS.items():
        windowed[f"txn_count_{label}"] = _count_in(card, seconds)
        windowed[f"amount_sum_{label}"] = _sum_in(card, seconds, "amount")
    # The latest earlier row of the card, if it lies within the lookback.
    latest = F.max(F.struct(F.col(_TS), F.col("transaction_id"), F.col("lat"), F.col("lon"), F.col("_equal_run")))
    latest = latest.over(_up_to(card, 1))
    df = df.withColumns(
        {
            **windowed,
            "_prior_n": _count_in(card, LOOKBACK_SECONDS),
            "_prior_sum": _sum_in(card, LOOKBACK_SECONDS, "amount"),
            "_prior_sum_sq": _sum_in(card, LOOKBACK_SECONDS, "_amount_sq"),
            # The usual country stays on the bounded frame, whose cost grows with it (benchmarks/README.md, P2s).
            "_usual_country": F.mode("country", True).over(_prior(card, LOOKBACK_SECONDS)),
            "_prev": F.when(latest[_TS] >= F.col(_TS) - LOOKBACK_SECONDS, latest),
            "_category_n": _count_in(["card_id", "merchant_category"], LOOKBACK_SECONDS),
        }
    )
    # Population mean and deviation of the prior amounts from their sums; exactly 0 when they are all one amount:
    # the frame's rows are the last _prior_n up to the previous row, all equal when its equal run is that long.
    n = F.col("_prior_n")
    mean = F.when(n > 0, F.col("_prior_sum") / n)
    variance = F.greatest(F.lit(0.0), (F.col("_prior_sum_sq") - F.col("_prior_sum") * mean) / n)
    df = df.withColumns({
        "_prior_mean": mean,
        "_prior_std": F.when(F.col("_prev._equal_run") >= n, F.lit(0.0)).otherwise(F.sqrt(variance)),
    })

    has_prev = F.col("_prev").isNotNull()
    gap_s = F.col(_TS) - F.col(f"_prev.{_TS}")
    km = haversine_km(F.col("_prev.lat"), F.col("_prev.lon"), F.col("lat"), F.col("lon"))
    mean, std = F.col("_prior_mean"), F.col("_prior_std")
    hour = F.floor(F.pmod(F.col(_TS), F.lit(DAY_SECONDS)) / HOUR_SECONDS)
    features: dict[str, Column] = {
        "amount": F.col("amount"),
        "log_amount": F.log1p("amount"),
        **{name: F.col(name) for name in windowed},
        "seconds_since_prev_txn": F.when(has_prev, gap_s).otherwise(F.lit(LOOKBACK_SECONDS)),
        "card_prior_txn_count": F.col("_prior_n"),
        "amount_to_prior_mean": F.when(mean > 0, F.col("amount") / mean).otherwise(F.lit(1.0)),
        "amount_zscore": F.when(std > 0, (F.col("amount") - mean) / std).otherwise(F.lit(0.0)),
        "merchant_category_prior_share": F.when(
            F.col("_prior_n") > 0, F.col("_category_n") / F.col("_prior_n")
        ).otherwise(F.lit(0.0)),
        "km_from_prev_txn": F.when(has_prev, km).otherwise(F.lit(0.0)),
        "speed_kmh_from_prev_txn": F.when(has_prev, km / (gap_s / HOUR_SECONDS)).otherwise(F.lit(0.0)),
        "hour_of_day": hour,
        "is_night": hour.isin(*NIGHT_HOURS_UTC).cast("int"),
        "is_online": (F.col("channel") == "online").cast("int"),
        "is_atm": (F.col("channel") == "atm").cast("int"),
        "is_foreign": F.coalesce((F.col("country") != F.col("_usual_country")).cast("int"), F.lit(0)),
    }
    return df.select(*KEY_COLUMNS, *(features[name].cast("double").alias(name) for name in FEATURE_COLUMNS))


def features_for_new(history: DataFrame, new: DataFrame) -> DataFrame:
    """Features for the rows of ``new``, with ``history`` as context; returns only ``new``'s transactions.

    Equal to ``compute_card_features(history ∪ new)`` restricted to ``new``'s ids. ``new`` wins over a
    ``history`` row with the same ``transaction_id`` (no double counting). History is pruned to the cards in
    ``new`` and to ``LOOKBACK_SECONDS`` before each card's earliest new row: nothing older can affect a feature,
    so callers may pass the whole bronze table.
    """
    new_rows = new.select(*INPUT_COLUMNS)
    horizon = new_rows.groupBy("card_id").agg(
        (F.min(F.unix_seconds("event_time")) - F.lit(LOOKBACK_SECONDS)).alias("_from_ts")
    )
    context = (
        history.select(*INPUT_COLUMNS)
        .join(new_rows.select("transaction_id"), "transaction_id", "left_anti")
        .join(horizon, "card_id")
        .where(F.unix_seconds("event_time") >= F.col("_from_ts"))
        .select(*INPUT_COLUMNS)
    )
    features = compute_card_features(context.unionByName(new_rows))
    return features.join(new_rows.select("transaction_id"), "transaction_id", "left_semi")


def history_since(bronze: DataFrame, since: datetime | None, until: datetime | None = None) -> DataFrame:
    """The rows of ``bronze`` a feature of a row at ``since`` or later (and before ``until``) can see: from
    ``LOOKBACK_SECONDS`` before ``since``. Literal bounds, so Delta skips files by their ``event_time`` statistics;
    ``features_for_new`` prunes further, per card."""
    return Interval(since - timedelta(seconds=LOOKBACK_SECONDS) if since is not None else None, until).select(bronze)


def features_for_interval(bronze: DataFrame, interval: Interval) -> DataFrame:
    """Features of the ``bronze`` rows in ``interval``: equal to ``compute_card_features(bronze)`` restricted to
    them, reading only the look-back they need."""
    if interval.is_everything:
        return compute_card_features(bronze)
    return features_for_new(history_since(bronze, interval.start, interval.end), interval.select(bronze))
