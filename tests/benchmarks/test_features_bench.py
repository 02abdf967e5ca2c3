"""P2's DuckDB baseline computes the same features as ``spark_jobs.transforms.card_features``, on uniform and on skewed data: the
comparison P2 makes before it times anything, here on CI-sized data (the benchmark itself runs by ``make bench``)."""

from __future__ import annotations

import pytest

from benchmarks.features import BURST_SECONDS, FeatureBench, duckdb_features_sql, transactions_frame
from spark_jobs.transforms.card_features import FEATURE_COLUMNS, KEY_COLUMNS

ROWS = 4_000


@pytest.fixture
def bench(spark, tmp_path):
    bench = FeatureBench(tmp_path, spark=spark)
    yield bench
    bench.stop()


@pytest.mark.parametrize("skewed", [False, True], ids=["uniform", "skewed"])
def test_duckdb_computes_the_same_features_as_spark(bench, skewed):
    table, files = bench.bronze(ROWS, skewed)
    bench.tributary(table, "spark")
    bench.duckdb(files, "duck")
    assert bench.compare("spark", "duck") == {"compared_rows": ROWS,
                                              "compared_columns": len(KEY_COLUMNS) - 1 + len(FEATURE_COLUMNS)}


def test_the_comparison_fails_when_one_feature_differs(bench):
    table, files = bench.bronze(ROWS)
    bench.tributary(table, "spark")
    changed = duckdb_features_sql("read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])").replace(
        "CASE WHEN channel = 'atm' THEN 1 ELSE 0 END", "0")
    bench.duck.execute(f"COPY ({changed}) TO '{bench.work / 'duck'}.parquet' (FORMAT parquet)")
    with pytest.raises(RuntimeError, match="features differ: {'is_atm'"):
        bench.compare("spark", "duck")


def test_skewed_data_puts_a_third_of_the_rows_on_one_percent_of_the_cards_in_bursts(spark):
    from pyspark.sql import functions as F

    rows = 20_000
    per_card = (transactions_frame(spark, rows, skewed=True).groupBy("card_id")
                .agg(F.count("*").alias("n"), F.collect_list(F.unix_seconds("event_time")).alias("ts"))
                .orderBy(F.desc("n")).toPandas())
    hot = per_card.head(len(per_card) // 100)  # 400 cards: 4 hot ones
    assert 0.27 < hot["n"].sum() / rows < 0.33
    assert per_card["n"].iloc[len(hot)] < hot["n"].min() / 10  # the rest are ordinary cards
    ts = sorted(hot["ts"].iloc[0])
    in_ten_minutes = max(sum(1 for t in ts[i:] if t - start <= BURST_SECONDS) for i, start in enumerate(ts))
    assert in_ten_minutes > 30  # a card-testing burst
    uniform = transactions_frame(spark, rows).groupBy("card_id").count().agg(F.max("count")).first()[0]
    assert uniform < 100
