"""Tests for spark_jobs.transforms.training_data: the time-based split that train and promote share."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from spark_jobs.transforms import training_data

T0 = datetime(2026, 11, 1)


def _timed(spark: SparkSession, minutes: list[int]):
    rows = [(f"t{i}", T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
    return spark.createDataFrame(rows, "transaction_id string, event_time timestamp")


def test_time_split_holds_out_the_latest_rows(spark: SparkSession) -> None:
    df = _timed(spark, [9, 0, 5, 1, 8, 2, 7, 3, 6, 4])  # t1 is earliest, t0 latest
    fit_rows, holdout = training_data.time_split(df, 0.3)
    assertDataFrameEqual(holdout, spark.createDataFrame([("t0", T0 + timedelta(minutes=9)), ("t4", T0 + timedelta(
        minutes=8)), ("t6", T0 + timedelta(minutes=7))], "transaction_id string, event_time timestamp"))
    assertDataFrameEqual(fit_rows, df.where("event_time < '2026-11-01 00:07:00'"))


def test_time_split_never_puts_one_timestamp_on_both_sides(spark: SparkSession) -> None:
    df = _timed(spark, [0, 1, 2, 3, 3, 3, 3, 4])
    fit_rows, holdout = training_data.time_split(df, 0.4)
    assertDataFrameEqual(holdout, df.where("event_time > '2026-11-01 00:03:00'"))  # ties stay with training
    assert fit_rows.count() == 7


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_time_split_rejects_fractions_outside_zero_one(spark: SparkSession, fraction: float) -> None:
    with pytest.raises(ValueError, match="holdout_fraction"):
        training_data.time_split(_timed(spark, [0, 1]), fraction)
