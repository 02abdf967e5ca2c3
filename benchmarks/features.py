"""P2: feature engineering at 100,000 / 1,000,000 / 10,000,000 transactions, against the same features in DuckDB.

The data is a bronze-shaped Delta table of synthetic transactions (``transactions_frame``: 8 files, one card per 50
transactions over 14 days, as ``spark_jobs.generate`` makes them; built by Spark, because the generator's plain
Python would take longer than the benchmark at 10M). Every method reads that table and writes the feature rows:

- ``tributary``: ``spark_jobs.transforms.card_features.compute_card_features`` on the table, written to a Delta table, on
  ``local[2]``, as the features job does;
- ``duckdb``: the same feature definitions in one DuckDB SQL query (``duckdb_features_sql``: window aggregates over
  ``RANGE`` frames on epoch seconds), 2 threads, reading the table's Parquet files (the file list from the Delta log,
  taken outside the timing) and writing Parquet: the single-machine limit a user would compare against.

Both give the same rows: on the smallest size every feature of every transaction is compared
(``FeatureBench.compare``), and the benchmark fails when one differs.

Goals: within 5x of DuckDB at 10M on 2 cores; 10x the data costs at most 11x the time (1M -> 10M).

Run alone: ``uv run python -m benchmarks.run --only P2_features`` (``--quick``: 5,000 and 20,000 rows).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.harness import Goal, Result, Stats, repeat
from spark_jobs.generate import DEFAULT_DAYS, DEFAULT_START, ROWS_PER_CARD

NAME = "P2_features"
TITLE = "feature engineering time, Spark against DuckDB"
# The generator's defaults: its start day, its 14 days and its one card per 50 transactions.
START_EPOCH = int(datetime.combine(DEFAULT_START, datetime.min.time(), timezone.utc).timestamp())
DAYS = DEFAULT_DAYS
COUNTRIES = ("DE", "ES", "FR", "GB", "IT", "NL", "PL", "US")
COUNTRY_LATLON = ((52.5, 13.4), (40.4, -3.7), (48.9, 2.35), (51.5, -0.13), (41.9, 12.5), (52.4, 4.9), (52.2, 21.0),
                  (40.7, -74.0))
CATEGORIES = ("grocery", "restaurant", "fuel", "electronics", "travel", "jewelry", "pharmacy", "clothing")
FOREIGN_SHARE = 0.05
HOT_CARD_SHARE = 0.01  # P2s: 1% of the cards ...
HOT_TXN_SHARE = 0.30  # ... carry 30% of the transactions
BURSTS_PER_HOT_CARD = 20  # P2s: half a hot card's transactions fall in card-testing bursts of 10 minutes
BURST_SECONDS = 600
# 8 files of 1,250,000 rows at 10M: a Python worker or DuckDB thread never holds more than one file's rows.
FILES = 8


def transactions_frame(spark: Any, rows: int, skewed: bool = False, seed: int = 11) -> Any:
    """``rows`` bronze-shaped transactions (``spark_jobs.transforms.card_features.INPUT_COLUMNS`` and ``merchant_id``,
    ``currency``), deterministic for a seed. ``rows // 50`` cards, each with a home country (5% of its transactions
    abroad), 14 days of whole-second event times, log-normal amounts.

    ``skewed``: 1% of the cards carry 30% of the transactions, and half of those fall in 20 bursts of 10 minutes
    per card (card testing), where each transaction's 1-hour window holds hundreds of others.
    """
    from pyspark.sql import functions as F

    n_cards = max(rows // ROWS_PER_CARD, 10)
    n_hot = max(int(n_cards * HOT_CARD_SHARE), 1)

    def rand(i: int) -> Any:
        return F.rand(seed * 100 + i)

    def pick(values: tuple[Any, ...], index: Any) -> Any:
        return F.element_at(F.array(*(F.lit(v) for v in values)), index.cast("int") + 1)

    base = spark.range(0, rows, numPartitions=FILES)
    if skewed:
        card = F.when(rand(1) < HOT_TXN_SHARE, F.floor(rand(2) * n_hot)).otherwise(
            n_hot + F.floor(rand(2) * (n_cards - n_hot)))
    else:
        card = F.floor(rand(2) * n_cards)
    base = base.select("id", card.cast("long").alias("card"))
    uniform_ts = F.lit(START_EPOCH) + F.floor(rand(3) * DAYS * 86_400)
    if skewed:
        burst = F.floor(rand(4) * BURSTS_PER_HOT_CARD)
        burst_start = F.lit(START_EPOCH) + F.pmod(F.hash("card", burst), F.lit(DAYS * 86_400 - BURST_SECONDS))
        in_burst = (F.col("card") < n_hot) & (rand(5) < 0.5)
        ts = F.when(in_burst, burst_start + F.floor(rand(6) * BURST_SECONDS)).otherwise(uniform_ts)
    else:
        ts = uniform_ts
    home = F.pmod(F.col("card"), F.lit(len(COUNTRIES)))
    country = F.when(rand(7) < FOREIGN_SHARE, F.pmod(home + 1 + F.floor(rand(8) * (len(COUNTRIES) - 1)),
                                                     F.lit(len(COUNTRIES)))).otherwise(home)
    channel = F.when(rand(9) < 0.6, F.lit("pos")).when(rand(9) < 0.9, F.lit("online")).otherwise(F.lit("atm"))
    return base.select(
        F.format_string("t%012d", "id").alias("transaction_id"),
        F.format_string("c%07d", "card").alias("card_id"),
        F.format_string("m%05d", F.floor(rand(10) * 5_000).cast("int")).alias("merchant_id"),
        pick(CATEGORIES, F.floor(rand(11) * len(CATEGORIES))).alias("merchant_category"),
        F.round(F.exp(F.randn(seed * 100 + 12) + 3.5), 2).alias("amount"),
        F.lit("EUR").alias("currency"),
        ts.cast("timestamp").alias("event_time"),
        pick(COUNTRIES, country).alias("country"),
        (pick(tuple(lat for lat, _ in COUNTRY_LATLON), country) + (rand(13) - 0.5) * 2).alias("lat"),
        (pick(tuple(lon for _, lon in COUNTRY_LATLON), country) + (rand(14) - 0.5) * 2).alias("lon"),
        channel.alias("channel"),
        (rand(15) < 0.02).cast("int").alias("is_fraud"),
    )


def duckdb_features_sql(source: str) -> str:
    """``spark_jobs.transforms.card_features``' definitions as one DuckDB query over ``source`` (a table expression): the same
    ``RANGE`` frames on whole epoch seconds ``[t - window, t - 1]``, the same defaults, the same column order."""
    from spark_jobs.transforms.card_features import (DAY_SECONDS, EARTH_RADIUS_KM, FEATURE_COLUMNS, HOUR_SECONDS, KEY_COLUMNS,
                                     LOOKBACK_SECONDS, NIGHT_HOURS_UTC, WINDOWS_SECONDS)

    def frame(partition: str, seconds: int) -> str:
        return f"(PARTITION BY {partition} ORDER BY ts RANGE BETWEEN {seconds} PRECEDING AND 1 PRECEDING)"

    windows = ",\n        ".join(
        f"count(*) OVER w{label} AS txn_count_{label}, coalesce(sum(amount) OVER w{label}, 0) AS amount_sum_{label}"
        for label in WINDOWS_SECONDS)
    window_defs = ", ".join(f"w{label} AS {frame('card_id', s)}" for label, s in WINDOWS_SECONDS.items())
    dlat, dlon = "radians(lat - prev.lat)", "radians(lon - prev.lon)"
    km = (f"{2 * EARTH_RADIUS_KM} * asin(least(1.0, sqrt(pow(sin({dlat} / 2), 2) + cos(radians(prev.lat)) "
          f"* cos(radians(lat)) * pow(sin({dlon} / 2), 2))))")
    hour = f"floor((ts % {DAY_SECONDS}) / {HOUR_SECONDS})"
    has_prev = "prev IS NOT NULL"
    # the most common prior country, ties to the alphabetically first (Spark's mode(country, deterministic=true))
    usual_country = "list_sort([{'n': -CAST(e.value AS BIGINT), 'k': e.key} FOR e IN map_entries(countries)])[1].k"
    gap = "(ts - prev.ts)"
    features = {
        "amount": "amount",
        "log_amount": "ln(1 + amount)",
        **{f"txn_count_{w}": f"txn_count_{w}" for w in WINDOWS_SECONDS},
        **{f"amount_sum_{w}": f"amount_sum_{w}" for w in WINDOWS_SECONDS},
        "seconds_since_prev_txn": f"CASE WHEN {has_prev} THEN {gap} ELSE {LOOKBACK_SECONDS} END",
        "card_prior_txn_count": "prior_n",
        "amount_to_prior_mean": "CASE WHEN prior_mean > 0 THEN amount / prior_mean ELSE 1.0 END",
        "amount_zscore": "CASE WHEN prior_std > 0 THEN (amount - prior_mean) / prior_std ELSE 0.0 END",
        "merchant_category_prior_share": "CASE WHEN prior_n > 0 THEN category_n / prior_n ELSE 0.0 END",
        "km_from_prev_txn": f"CASE WHEN {has_prev} THEN {km} ELSE 0.0 END",
        "speed_kmh_from_prev_txn": f"CASE WHEN {has_prev} THEN {km} / ({gap} / {HOUR_SECONDS}) ELSE 0.0 END",
        "hour_of_day": hour,
        "is_night": f"CASE WHEN {hour} BETWEEN {min(NIGHT_HOURS_UTC)} AND {max(NIGHT_HOURS_UTC)} THEN 1 ELSE 0 END",
        "is_online": "CASE WHEN channel = 'online' THEN 1 ELSE 0 END",
        "is_atm": "CASE WHEN channel = 'atm' THEN 1 ELSE 0 END",
        "is_foreign": f"coalesce(CAST(country <> {usual_country} AS INTEGER), 0)",
    }
    missing = set(FEATURE_COLUMNS) ^ set(features)
    if missing:
        raise RuntimeError(f"the DuckDB query and spark_jobs.transforms.card_features disagree on the features: {sorted(missing)}")
    selected = ",\n    ".join([*KEY_COLUMNS, *(f"CAST({features[c]} AS DOUBLE) AS {c}" for c in FEATURE_COLUMNS)])
    return f"""
WITH src AS (
    SELECT *, CAST(floor(epoch(event_time)) AS BIGINT) AS ts FROM {source}
), win AS (
    SELECT *,
        {windows},
        count(*) OVER wlb AS prior_n,
        avg(amount) OVER wlb AS prior_mean,
        stddev_pop(amount) OVER wlb AS prior_std,
        -- the most common country, ties to the alphabetically first (Spark's mode(country, deterministic=true))
        histogram(country) OVER wlb AS countries,
        max({{'ts': ts, 'tid': transaction_id, 'lat': lat, 'lon': lon}}) OVER wlb AS prev,
        count(*) OVER wcat AS category_n
    FROM src
    WINDOW {window_defs}, wlb AS {frame('card_id', LOOKBACK_SECONDS)},
        wcat AS {frame('card_id, merchant_category', LOOKBACK_SECONDS)}
)
SELECT
    {selected}
FROM win
"""


class FeatureBench:
    """One session's worth of P2 and P2s: bronze tables of a size, and each method run on them."""

    def __init__(self, work: Path, threads: int = 2, spark: Any = None) -> None:
        """``spark``: a session to use (and leave running); by default the local profile's own, stopped by
        ``stop``."""
        import duckdb

        from tributary.config import load_profile
        from spark_jobs.session import build_session

        self.work = work
        self.own_session = spark is None
        self.spark = spark or build_session(load_profile("local"), "tributary-bench-features")
        if self.own_session:
            self.spark.sparkContext.setLogLevel("ERROR")
        self.duck = duckdb.connect(str(work / "duck.db"))
        self.duck.execute(f"SET threads = {threads}")
        self.duck.execute(f"SET temp_directory = '{work / 'duck-tmp'}'")

    def bronze(self, rows: int, skewed: bool = False) -> tuple[str, list[str]]:
        """A bronze-shaped Delta table of ``rows`` transactions; returns its path and its Parquet files."""
        table = str(self.work / f"bronze-{rows}{'-skewed' if skewed else ''}")
        transactions_frame(self.spark, rows, skewed).write.format("delta").mode("overwrite").save(table)
        files = [f.removeprefix("file:") for f in self.spark.read.format("delta").load(table).inputFiles()]
        return table, sorted(files)

    def tributary(self, table: str, out: str) -> None:
        """What the features job does: ``compute_card_features`` over the table, overwriting a Delta table."""
        from spark_jobs.transforms.card_features import compute_card_features

        bronze = self.spark.read.format("delta").load(table)
        compute_card_features(bronze).write.format("delta").mode("overwrite").option("overwriteSchema", "true") \
            .save(str(self.work / out))

    def duckdb(self, files: list[str], out: str) -> None:
        source = "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"
        self.duck.execute(f"COPY ({duckdb_features_sql(source)}) TO '{self.work / out}.parquet' (FORMAT parquet)")

    def compare(self, spark_out: str, duck_out: str) -> dict[str, Any]:
        """Every feature of every transaction, Spark's against DuckDB's; raises when one differs beyond 1e-9
        (relative and absolute: sums of doubles in a different order)."""
        import numpy as np

        from spark_jobs.transforms.card_features import FEATURE_COLUMNS, KEY_COLUMNS

        ours = self.spark.read.format("delta").load(str(self.work / spark_out)).toPandas()
        theirs = self.duck.execute(f"SELECT * FROM '{self.work / duck_out}.parquet'").df()
        ours, theirs = (df.sort_values("transaction_id").reset_index(drop=True) for df in (ours, theirs))
        if len(ours) != len(theirs) or not ours["transaction_id"].equals(theirs["transaction_id"]):
            raise RuntimeError(f"Spark wrote {len(ours)} feature rows and DuckDB {len(theirs)}, not the same ids")
        differ = {}
        for column in [*KEY_COLUMNS[1:], *FEATURE_COLUMNS]:
            a, b = ours[column].to_numpy(), theirs[column].to_numpy()
            if a.dtype.kind == "M":  # timestamps: pandas gives Spark's in ns, DuckDB's in us
                same = a.astype("datetime64[us]") == b.astype("datetime64[us]")
            elif a.dtype == object:
                same = a == b
            else:
                same = np.isclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-9)
            if not same.all():
                differ[column] = {"rows": int((~same).sum()), "first": [a[~same][0], b[~same][0]]}
        if differ:
            raise RuntimeError(f"Spark's and DuckDB's features differ: {differ}")
        return {"compared_rows": len(ours), "compared_columns": len(FEATURE_COLUMNS) + len(KEY_COLUMNS) - 1}

    def stop(self) -> None:
        self.duck.close()
        if self.own_session:
            self.spark.stop()


def seconds(runs: list[float], label: str) -> Stats:
    print(f"P2: {label} in {', '.join(f'{s:.1f}' for s in runs)} s", flush=True)
    return Stats("s", [round(s, 3) for s in runs])


def run(quick: bool, work: Path) -> Result:
    sizes = (5_000, 20_000) if quick else (100_000, 1_000_000, 10_000_000)
    bench = FeatureBench(work)
    figures: dict[str, Stats] = {}
    checks: dict[str, Any] = {}
    t0 = time.monotonic()
    for i, rows in enumerate(sizes):
        table, files = bench.bronze(rows)
        warmup = 1 if i == 0 else 0  # the JVM, the plans and DuckDB warm on the first size
        figures[f"tributary {rows:,}"] = seconds(repeat(lambda: bench.tributary(table, f"spark-{rows}"),
                                                        warmup=warmup), f"tributary {rows:,}")
        figures[f"duckdb {rows:,}"] = seconds(repeat(lambda: bench.duckdb(files, f"duck-{rows}"), warmup=warmup),
                                              f"duckdb {rows:,}")
        if i == 0:
            checks = bench.compare(f"spark-{rows}", f"duck-{rows}")
    measured_s = round(time.monotonic() - t0, 1)
    bench.stop()
    small, large = sizes[-2], sizes[-1]
    scale = large // small
    goals = [
        Goal(f"tributary / duckdb at {large:,}", f"tributary {large:,}", f"duckdb {large:,}", 5.0,
             higher_is_better=False),
        Goal(f"tributary: time at {large:,} / at {small:,}", f"tributary {large:,}", f"tributary {small:,}",
             11.0 if scale == 10 else None, higher_is_better=False),
        *(Goal(f"tributary / duckdb at {rows:,}", f"tributary {rows:,}", f"duckdb {rows:,}", None)
          for rows in sizes[:-1]),
        Goal(f"duckdb: time at {large:,} / at {small:,}", f"duckdb {large:,}", f"duckdb {small:,}", None),
    ]
    return Result(
        name=NAME, title=TITLE, quick=quick,
        data={"sizes": list(sizes), "files": FILES, "rows_per_card": ROWS_PER_CARD, "days": DAYS,
              "spark_master": "local[2]", "duckdb_threads": 2, "measured_s": measured_s, **checks},
        figures=figures, goals=goals,
        notes=["Each method ran once untimed on the first size (JVM, plans, DuckDB), then 3 timed runs at every "
               "size, DuckDB after Spark on the same files.",
               f"Spark's and DuckDB's features were compared on {sizes[0]:,} transactions, every feature of every "
               "row: equal within 1e-9 (the benchmark fails otherwise)."],
        plot={"kind": "line", "x": list(sizes), "xscale": "log", "yscale": "log", "xlabel": "transactions",
              "ylabel": "seconds (median)",
              "series": {m: [figures[f"{m} {n:,}"].median for n in sizes] for m in ("tributary", "duckdb")}},
    )
