"""A run's data interval: the half-open ``[start, end)`` of ``event_time`` that an incremental job works on.

``features`` and ``score`` take ``--start``/``--end``; fraud_pipeline passes each run's Airflow data interval, so a
daily run costs one day of data (plus the features' look-back), not the whole history. No bound at all means the
whole table (a full refresh). A missing bound is open: ``--end`` alone is everything before it.

Timestamps are ISO-8601; a naive one is UTC. An empty value (``--start=``, what an unset Airflow template renders)
means "not set".
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from spark_jobs.cli import optional
from spark_jobs.transforms.validation import utc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def utc_datetime(text: str) -> datetime:
    """Parse an ISO-8601 timestamp, in UTC (``validation.utc``: a naive one is taken as UTC)."""
    try:
        return utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {text!r}") from None


@dataclass(frozen=True)
class Interval:
    """``start <= event_time < end``; ``None`` is an open bound, and no bound at all is everything."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"the interval is empty: start {self.start.isoformat()} is not before end "
                             f"{self.end.isoformat()}")

    @property
    def is_everything(self) -> bool:
        return self.start is None and self.end is None

    def select(self, df: "DataFrame", column: str = "event_time") -> "DataFrame":
        """The rows of ``df`` whose ``column`` lies in the interval (literal bounds, so Delta can skip files)."""
        from pyspark.sql import functions as F

        if self.start is not None:
            df = df.where(F.col(column) >= F.lit(self.start))
        if self.end is not None:
            df = df.where(F.col(column) < F.lit(self.end))
        return df

    def last_days(self, days: int, newest: datetime | None) -> "Interval":
        """The ``days`` days before this interval's end (or, with an open end, up to and including ``newest``, the
        newest ``event_time`` there is); its start must be open. Nothing there (``newest`` None): everything."""
        if self.start is not None:
            raise ValueError("a window of days needs an open start")
        end = self.end or (utc(newest) + timedelta(microseconds=1) if newest is not None else None)
        return Interval(end - timedelta(days=days), end) if end is not None else self

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


def add_interval_args(parser: argparse.ArgumentParser, rows: str, prefix: str = "") -> None:
    """``--<prefix>start``/``--<prefix>end`` on a job's parser; ``rows`` names what they select, for ``--help``."""
    parser.add_argument(f"--{prefix}start", type=optional(utc_datetime), default=None,
                        help=f"only {rows} with event_time >= this (ISO-8601, UTC if naive; default: open)")
    parser.add_argument(f"--{prefix}end", type=optional(utc_datetime), default=None,
                        help=f"only {rows} with event_time < this (ISO-8601, UTC if naive; default: open)")


def positive_days(text: str) -> int:
    """An argparse ``type``: a whole number of days, 1 or more."""
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of days, 1 or more: {text!r}")
    return days


def interval_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, prefix: str = "") -> Interval:
    """The parsed ``--<prefix>start``/``--<prefix>end``; an empty interval exits 2 with what to fix, like a bad
    flag."""
    dest = prefix.replace("-", "_")
    start, end = getattr(args, f"{dest}start"), getattr(args, f"{dest}end")
    try:
        return Interval(start, end)
    except ValueError:
        parser.error(f"the interval is empty: --{prefix}start {start.isoformat()} is not before --{prefix}end "
                     f"{end.isoformat()}; pass a start earlier than the end")
        raise  # parser.error exits; this line only satisfies type checkers
