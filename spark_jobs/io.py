"""Dataset IO by logical name: the only place that reads or writes tables.

Transforms never read or write; entrypoints call these with names from ``conf/catalog.yaml``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tributary.config import Catalog, ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def table_exists(spark: "SparkSession", catalog: Catalog, name: str) -> bool:
    """True when the Delta table behind ``name`` exists."""
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, catalog.uri(name))


def read_table(spark: "SparkSession", catalog: Catalog, name: str, version: int | None = None) -> "DataFrame":
    """Read a Delta dataset, optionally at a given table version (time travel)."""
    ds = catalog[name]
    if ds.format != "delta":
        raise ConfigError(f"dataset '{name}' is {ds.format}, not delta")
    if not table_exists(spark, catalog, name):
        raise ConfigError(f"dataset '{name}' has no Delta table at {ds.uri}; run the job that produces it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ds.uri)


def table_version(spark: "SparkSession", catalog: Catalog, name: str) -> int:
    """The current Delta version of ``name``."""
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, catalog.uri(name)).history(1).collect()[0]["version"]


def read_current(spark: "SparkSession", catalog: Catalog, name: str) -> tuple["DataFrame", int] | None:
    """``name`` pinned at its current version (later writes do not change what this reads), and that version;
    None when the table does not exist yet."""
    if not table_exists(spark, catalog, name):
        return None
    version = table_version(spark, catalog, name)
    return read_table(spark, catalog, name, version=version), version


def count_rows(spark: "SparkSession", catalog: Catalog, name: str) -> int:
    """Rows in the Delta dataset ``name``; 0 when it does not exist yet."""
    return read_table(spark, catalog, name).count() if table_exists(spark, catalog, name) else 0


def rows_written(spark: "SparkSession", catalog: Catalog, name: str) -> int:
    """Rows the table's latest commit wrote, from Delta's own operation metrics (no recount): a MERGE's inserted
    plus updated rows, a write's output rows."""
    from delta.tables import DeltaTable

    last = DeltaTable.forPath(spark, catalog.uri(name)).history(1).select("operation", "operationMetrics").first()
    metrics = {key: int(value) for key, value in (last["operationMetrics"] or {}).items() if value.isdigit()}
    if last["operation"] == "MERGE":
        return metrics.get("numTargetRowsInserted", 0) + metrics.get("numTargetRowsUpdated", 0)
    return metrics.get("numOutputRows", 0)


def read_landing_lines(spark: "SparkSession", catalog: Catalog, name: str, subpath: str | None = None) -> "DataFrame":
    """Raw landed JSON lines as ``value`` (the line) and ``source_file`` (its file URI)."""
    from pyspark.sql import functions as F

    uri = catalog.uri(name) + (f"/{subpath}" if subpath else "")
    return (
        spark.read.option("recursiveFileLookup", "true")
        .text(uri)
        .select(F.col("value"), F.col("_metadata.file_path").alias("source_file"))
    )


def overwrite_table(df: "DataFrame", catalog: Catalog, name: str) -> None:
    """Replace a Delta dataset's contents (deterministic recomputations)."""
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(catalog.uri(name))


def append_table(df: "DataFrame", catalog: Catalog, name: str) -> None:
    """Append rows to a Delta dataset, creating it if needed."""
    df.write.format("delta").mode("append").option("mergeSchema", "true").save(catalog.uri(name))


def merge_table(
    spark: "SparkSession",
    df: "DataFrame",
    catalog: Catalog,
    name: str,
    update_existing: bool = False,
) -> None:
    """Idempotent upsert on the dataset's ``key``: re-running the same input changes nothing.

    New keys are inserted; existing keys are left alone unless ``update_existing``. The table is created on first
    write.
    """
    from delta.tables import DeltaTable

    ds = catalog[name]
    if not ds.key:
        raise ConfigError(f"dataset '{name}' has no key in catalog.yaml; MERGE needs one")
    if not table_exists(spark, catalog, name):
        df.write.format("delta").mode("append").save(ds.uri)
        return
    merge = DeltaTable.forPath(spark, ds.uri).alias("t").merge(df.alias("s"), f"t.{ds.key} = s.{ds.key}")
    if update_existing:
        merge = merge.whenMatchedUpdateAll()
    merge.whenNotMatchedInsertAll().execute()
