"""Tests for spark_jobs.interval: the ``--start``/``--end`` of incremental runs."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.interval import Interval, add_interval_args, interval_from_args, positive_days, utc_datetime
from tests.spark_jobs.ml_support import features_frame

UTC = timezone.utc


def test_select_is_half_open_and_a_missing_bound_is_open(spark: SparkSession) -> None:
    df = features_frame(spark, rows=10)  # one row a minute from START
    start, end = datetime(2026, 11, 1, 0, 2, tzinfo=UTC), datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
    expected = df.where(F.col("transaction_id").isin("t00002", "t00003", "t00004"))
    assertDataFrameEqual(Interval(start, end).select(df), expected)
    assert Interval().select(df).count() == 10 and Interval().is_everything
    assert Interval(end, None).select(df).count() == 5
    assert Interval(None, start).select(df).count() == 2


def test_utc_datetime_parses_z_and_naive_as_utc() -> None:
    assert utc_datetime("2026-11-01T00:00:00Z") == datetime(2026, 11, 1, tzinfo=UTC)
    assert utc_datetime("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert utc_datetime("2026-11-01T01:00:00+01:00").tzinfo == UTC  # an offset is converted, not kept
    with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):
        utc_datetime("yesterday")


def _parse(argv: list[str], prefix: str = "") -> Interval:
    parser = argparse.ArgumentParser()
    add_interval_args(parser, "rows", prefix=prefix)
    return interval_from_args(parser, parser.parse_args(argv), prefix=prefix)


def test_flags_empty_values_are_unset_as_an_unset_airflow_template_renders() -> None:
    assert _parse(["--start=", "--end="]) == Interval()
    assert _parse(["--start=2026-11-02", "--end="]) == Interval(datetime(2026, 11, 2, tzinfo=UTC), None)
    assert _parse(["--window-end=2026-11-02"], prefix="window-").end == datetime(2026, 11, 2, tzinfo=UTC)


def test_an_empty_interval_fails_fast_with_the_flags_to_fix(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(["--window-start=2026-11-02", "--window-end=2026-11-02"], prefix="window-")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "the interval is empty" in err and "--window-start 2026-11-02" in err and "--window-end" in err


def test_last_days_ends_at_the_end_or_just_after_the_newest_row() -> None:
    end = datetime(2026, 11, 15, tzinfo=UTC)
    assert Interval(None, end).last_days(7, newest=None) == Interval(datetime(2026, 11, 8, tzinfo=UTC), end)
    newest = datetime(2026, 11, 14, 23, 59, tzinfo=UTC)
    window = Interval().last_days(1, newest)
    assert window.end == newest + timedelta(microseconds=1) and window.start == window.end - timedelta(days=1)
    assert Interval().last_days(1, newest=None) == Interval()  # an empty table: nothing to bound
    with pytest.raises(ValueError, match="open start"):
        Interval(end - timedelta(days=1), end).last_days(7, None)
    assert positive_days("90") == 90
    for bad in ("0", "-3", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="1 or more"):
            positive_days(bad)
