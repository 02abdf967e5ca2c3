"""P2s: feature engineering on skewed data, against the same job on uniform data of the same size.

1,000,000 transactions (20,000 with ``--quick``) from ``benchmarks.features.transactions_frame``, twice: uniform
(one card per 50 transactions), and skewed, where 1% of the cards carry 30% of the transactions and half of those
fall in card-testing bursts (20 bursts of 10 minutes per hot card). A hot card holds about 1,500 transactions in 14
days, a burst puts about 37 of them in 10 minutes. Both run through ``spark_jobs.transforms.card_features.compute_card_features``
into Delta, as the features job does; DuckDB's same query runs on both too, for reference.

Goal: skewed at most 1.5x the uniform time.

Run alone: ``uv run python -m benchmarks.run --only P2s_skew`` (``--quick``: 20,000 rows).
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.features import (BURST_SECONDS, BURSTS_PER_HOT_CARD, HOT_CARD_SHARE, HOT_TXN_SHARE, FeatureBench,
                                 seconds)
from benchmarks.harness import Goal, Result, Stats, repeat

NAME = "P2s_skew"
TITLE = "feature engineering on skewed data, against uniform data of the same size"


def run(quick: bool, work: Path) -> Result:
    rows = 20_000 if quick else 1_000_000
    bench = FeatureBench(work)
    figures: dict[str, Stats] = {}
    t0 = time.monotonic()
    for i, (label, skewed) in enumerate((("uniform", False), ("skewed", True))):
        table, files = bench.bronze(rows, skewed)
        warmup = 1 if i == 0 else 0
        figures[f"tributary {label}"] = seconds(
            repeat(lambda: bench.tributary(table, f"spark-{label}"), warmup=warmup), f"tributary {label}")
        figures[f"duckdb {label}"] = seconds(
            repeat(lambda: bench.duckdb(files, f"duck-{label}"), warmup=warmup), f"duckdb {label}")
    hot = bench.spark.read.format("delta").load(str(work / "spark-skewed")).groupBy("card_id").count() \
        .orderBy("count", ascending=False).limit(1).collect()[0]["count"]
    measured_s = round(time.monotonic() - t0, 1)
    bench.stop()
    return Result(
        name=NAME, title=TITLE, quick=quick,
        data={"rows": rows, "hot_card_share": HOT_CARD_SHARE, "hot_transaction_share": HOT_TXN_SHARE,
              "bursts_per_hot_card": BURSTS_PER_HOT_CARD, "burst_seconds": BURST_SECONDS,
              "largest_card_transactions": hot, "spark_master": "local[2]", "duckdb_threads": 2,
              "measured_s": measured_s},
        figures=figures,
        goals=[
            Goal("tributary: skewed / uniform", "tributary skewed", "tributary uniform", 1.5, higher_is_better=False),
            Goal("duckdb: skewed / uniform", "duckdb skewed", "duckdb uniform", None),
            Goal("tributary / duckdb, skewed", "tributary skewed", "duckdb skewed", None),
        ],
        notes=["Each method ran once untimed on the uniform data, then 3 timed runs on each."],
    )
