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
only, where sums of squares would leave rounding: each row carries whether the card's next row, in ``(second,
transaction_id)`` order, has another amount, and the frame's rows, consecutive in that order and ending at the previous
transaction, hold one amount when their changes are the previous transaction's own. Counts are exact; a sum, mean
or deviation equals the frame's own up to the double rounding of the running totals (about 1e-16 of the card's
totals, relatively more for a deviation small against the mean), and a window sum is exactly 0 over no rows. The
usual country stays on the bounded 30-day frame (Spark's ``mode``).

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


class _Running:
    """Counts and sums over ``[t - seconds, t - 1]`` of one partition's rows, as differences of running totals.

    A running total is every row at ``t - seconds_before`` or earlier, which Spark aggregates once per row, unlike a
    bounded frame, which it re-aggregates whole for every row (a card's 30-day frame holds its whole month: quadratic
    on a busy card). Each window spec and running count is built once: a DataFrame's plan is built call by call over
    py4j, and a stream builds it again for every micro-batch."""

    def __init__(self, partition: Sequence[str]) -> None:
        self.partition = list(partition)
        self._specs: dict[int, "WindowSpec"] = {}
        self._counts: dict[int, Column] = {}

    def up_to(self, seconds_before: int) -> "WindowSpec":
        """The partition's rows at ``t - seconds_before`` or earlier."""
        if seconds_before not in self._specs:
            self._specs[seconds_before] = Window.partitionBy(*self.partition).orderBy(_TS).rangeBetween(
                Window.unboundedPreceding, -seconds_before)
        return self._specs[seconds_before]

    def _count_up_to(self, seconds_before: int) -> Column:
        if seconds_before not in self._counts:
            self._counts[seconds_before] = F.count(F.lit(1)).over(self.up_to(seconds_before))
        return self._counts[seconds_before]

    def count_in(self, seconds: int) -> Column:
        """Rows in ``[t - seconds, t - 1]`` (exact)."""
        return self._count_up_to(1) - self._count_up_to(seconds + 1)

    def sum_in(self, seconds: int, value: Column) -> Column:
        """``value``'s sum over ``[t - seconds, t - 1]``: 0 over no rows; otherwise the frame's own sum up to the
        double rounding of the running totals (exact for whole numbers)."""
        running = F.sum(value).over(self.up_to(1)) - F.coalesce(F.sum(value).over(self.up_to(seconds + 1)),
                                                                 F.lit(0.0))
        return F.when(self.count_in(seconds) > 0, running).otherwise(F.lit(0.0))


def _with_amount_change(df: DataFrame) -> DataFrame:
    """``df`` with ``_changes``: 1 where the card's next row in ``(second, transaction_id)`` order has another amount,
    else 0. A frame's rows are consecutive in that order and end at the previous transaction, so they hold one amount
    only when their ``_changes`` sum to the previous transaction's own: that keeps a deviation of exactly 0 where sums
    of squares would leave rounding."""
    following = F.lead("amount").over(Window.partitionBy("card_id").orderBy(_TS, "transaction_id"))
    return df.withColumn("_changes", F.when(following.isNotNull() & (following != F.col("amount")), 1).otherwise(0))


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
    card, card_category = _Running(["card_id"]), _Running(["card_id", "merchant_category"])
    df = _with_amount_change(transactions.select(*INPUT_COLUMNS).withColumn(_TS, F.unix_seconds("event_time")))
    windowed: dict[str, Column] = {}
    for label, seconds in WINDOWS_SECONDS.items():
        windowed[f"txn_count_{label}"] = card.count_in(seconds)
        windowed[f"amount_sum_{label}"] = card.sum_in(seconds, F.col("amount"))
    # The latest earlier row of the card, if it lies within the lookback.
    latest = F.max(F.struct(F.col(_TS), F.col("transaction_id"), F.col("lat"), F.col("lon"), F.col("_changes")))
    latest = latest.over(card.up_to(1))
    df = df.withColumns(
        {
            **windowed,
            "_prior_n": card.count_in(LOOKBACK_SECONDS),
            "_prior_sum": card.sum_in(LOOKBACK_SECONDS, F.col("amount")),
            "_prior_sum_sq": card.sum_in(LOOKBACK_SECONDS, F.col("amount") * F.col("amount")),
            "_prior_changes": card.sum_in(LOOKBACK_SECONDS, F.col("_changes")),
            # The usual country stays on the bounded frame, whose cost grows with it (benchmarks/README.md, P2s).
            "_usual_country": F.mode("country", True).over(_prior(["card_id"], LOOKBACK_SECONDS)),
            "_prev": F.when(latest[_TS] >= F.col(_TS) - LOOKBACK_SECONDS, latest),
            "_category_n": card_category.count_in(LOOKBACK_SECONDS),
        }
    )
    # Population mean and deviation of the prior amounts from their sums; exactly 0 when they are one amount: no
    # change between the frame's rows, whose changes then are the previous transaction's own (to the row after it).
    n = F.col("_prior_n")
    mean = F.when(n > 0, F.col("_prior_sum") / n)
    variance = F.greatest(F.lit(0.0), (F.col("_prior_sum_sq") - F.col("_prior_sum") * mean) / n)
    std = F.when(F.col("_prior_changes") == F.col("_prev._changes"), F.lit(0.0)).otherwise(F.sqrt(variance))

    has_prev = F.col("_prev").isNotNull()
    gap_s = F.col(_TS) - F.col(f"_prev.{_TS}")
    km = haversine_km(F.col("_prev.lat"), F.col("_prev.lon"), F.col("lat"), F.col("lon"))
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
