"""P3 starts every timed run from the same tables: ``benchmarks.streaming.restore`` puts each table the stream writes
back to the versions ``table_versions`` read after the warm-up (the benchmark itself runs by ``make bench``)."""

from __future__ import annotations

from pyspark.testing import assertDataFrameEqual

from benchmarks.streaming import restore, table_versions
from spark_jobs import io
from spark_jobs.stream import JOB


def test_restore_puts_each_stream_table_back_to_its_version(spark, local_profile):
    catalog = local_profile.catalog
    tables = sorted(JOB.outputs.values())
    assert tables == ["bronze_transactions", "quarantine_transactions", "stream_predictions"]
    for name in tables:  # a stand-in row per table: restore does not care what the columns are
        io.overwrite_table(spark.createDataFrame([("a", 1)], "transaction_id string, n int"), catalog, name)
    start = table_versions(spark, local_profile)
    assert start == dict.fromkeys(tables, 0)

    io.append_table(spark.createDataFrame([("b", 2)], "transaction_id string, n int"), catalog, tables[0])
    io.append_table(spark.createDataFrame([("c", 3)], "transaction_id string, n int"), catalog, tables[2])
    restore(spark, local_profile, start)
    for name in tables:
        assertDataFrameEqual(io.read_table(spark, catalog, name), [("a", 1)])
    after = table_versions(spark, local_profile)
    assert after == {tables[0]: 2, tables[1]: 0, tables[2]: 2}  # a RESTORE is a commit; an unchanged table gets none

    restore(spark, local_profile, start)  # already there in content, not in version: restored again, rows the same
    assert table_versions(spark, local_profile) == {tables[0]: 3, tables[1]: 0, tables[2]: 3}
    assertDataFrameEqual(io.read_table(spark, catalog, tables[0]), [("a", 1)])
