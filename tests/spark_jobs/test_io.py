"""Dataset IO by logical name: pinned reads, counts, idempotent MERGE."""

from __future__ import annotations

from spark_jobs import io


def test_read_current_pins_the_version_and_count_rows(spark, local_profile):
    catalog = local_profile.catalog
    assert io.read_current(spark, catalog, "predictions") is None
    assert io.count_rows(spark, catalog, "predictions") == 0

    first = spark.createDataFrame([("t1", 0.1), ("t2", 0.2)], "transaction_id string, fraud_score double")
    io.merge_table(spark, first, catalog, "predictions")
    pinned, version = io.read_current(spark, catalog, "predictions")
    assert version == 0

    more = spark.createDataFrame([("t2", 0.9), ("t3", 0.3)], "transaction_id string, fraud_score double")
    io.merge_table(spark, more, catalog, "predictions")  # t2 exists: not inserted again, not updated
    assert pinned.count() == 2  # the pinned read does not see the later commit
    assert io.count_rows(spark, catalog, "predictions") == 3
    assert io.table_version(spark, catalog, "predictions") == 1
    scores = {r["transaction_id"]: r["fraud_score"] for r in io.read_table(spark, catalog, "predictions").collect()}
    assert scores == {"t1": 0.1, "t2": 0.2, "t3": 0.3}
