"""The model's data: ``features_card`` split by time, collected to the driver, as the arrays the model takes.

Shared by ``spark_jobs.train`` (fit on the earlier rows, evaluate on the holdout) and ``spark_jobs.promote`` (which
re-evaluates the champion and the challenger on the same holdout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.transforms.card_features import FEATURE_COLUMNS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LABEL = "is_fraud"
_QUANTILE_ACCURACY = 1_000_000  # percentile_approx relative error 1e-6: exact at this project's sizes


def time_split(df: DataFrame, holdout_fraction: float) -> tuple[DataFrame, DataFrame]:
    """Split by ``event_time``: (earlier rows for training, the latest ``holdout_fraction`` for the holdout).

    The cut is one timestamp: every training row is at or before it and every holdout row strictly after it, so
    rows sharing a timestamp never straddle the split (the holdout can be slightly smaller than the fraction).
    Lazy: the cut is a one-row aggregate cross-joined back, no action runs here.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    ts = F.unix_micros(F.col("event_time"))
    cut = df.agg(F.percentile_approx(ts, 1.0 - holdout_fraction, _QUANTILE_ACCURACY).alias("_cut_us"))
    marked = df.crossJoin(F.broadcast(cut)).withColumn("_holdout", ts > F.col("_cut_us"))
    columns = df.columns
    return marked.where(~F.col("_holdout")).select(*columns), marked.where(F.col("_holdout")).select(*columns)


def to_xy(rows: "pd.DataFrame") -> tuple["np.ndarray", "np.ndarray"]:
    """Raw feature matrix (float32, ``FEATURE_COLUMNS`` order) and labels, in a deterministic row order."""
    ordered = rows.sort_values(["event_time", "transaction_id"], kind="mergesort")
    return ordered[FEATURE_COLUMNS].to_numpy(dtype="float32"), ordered[LABEL].to_numpy(dtype="float32")


def collect_split(split: DataFrame) -> "pd.DataFrame":
    """The columns training needs, collected to the driver (the scaling limit: spark_jobs/train.py's docstring)."""
    return split.select("transaction_id", "event_time", LABEL, *FEATURE_COLUMNS).toPandas()
