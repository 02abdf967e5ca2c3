"""P1: batch scoring throughput, rows/s per core, with a champion model registered in MLflow.

The data is a Delta table of feature rows (``FEATURE_COLUMNS`` and the passthrough columns; 1,000,000 of them, or
10,000 with ``--quick``; 8 files), and the model is trained and registered by ``spark_jobs.train``'s own code into
a local MLflow (SQLite and a file artifact store), then aliased ``@champion``. Every method reads that table and
writes its scores:

- ``tributary``: ``spark_jobs.transforms.scoring.score_features`` (mapInArrow, the model once per Python worker),
  written to a Delta table, on ``local[2]``: per core = rows/s / 2;
- ``(a) plain python``: what a user would write instead, one process on 1 thread: pyarrow reads the table's
  current Parquet files (the file list from the Delta log, taken outside the timing; delta-rs is not in the lock
  yet), torch scores numpy batches of 10,000 rows, pyarrow writes Parquet;
- ``(a0) numpy in memory``: the same model on the same matrix already in memory, 1 thread: the compute limit;
- ``(b) row UDF``: a row-at-a-time Python UDF (``@udf``) calling the model per row, to Delta, on ``local[2]``;
  measured on a 50,000-row slice (2,000 with ``--quick``) cached in memory, which favours it (a rate: rows/s per
  core);
- ``(c) mlflow spark_udf``: ``mlflow.pyfunc.spark_udf`` of the same version, to Delta, on ``local[2]``;
- ``(d) tributary via mapInPandas (before)``: Tributary's scoring as it was before it moved to ``mapInArrow``;
- ``(e) spark copy, no scoring``: the same read and Delta write with a column copied for the score: no Python, no
  model, the floor of every Spark method here.

Every Spark method writes the same columns as Tributary's predictions (the model's identity and ``scored_at`` are
JVM constants); (a) writes the passthrough columns, the score and the prediction.

Run alone: ``uv run python -m benchmarks.run --only P1_scoring`` (``--quick`` for CI-sized data).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Goal, Result, Stats, interleaved

NAME = "P1_scoring"
TITLE = "batch scoring throughput, rows/s per core"
MODEL = "bench_fraud_model"


def feature_frame(spark: Any, rows: int, files: int = 8) -> Any:
    """``rows`` synthetic feature rows: the passthrough columns and every feature a double (scoring's cost does
    not depend on the values)."""
    from pyspark.sql import functions as F

    from spark_jobs.transforms.card_features import FEATURE_COLUMNS

    base = spark.range(0, rows, numPartitions=files)
    return base.select(
        F.format_string("t%012d", "id").alias("transaction_id"),
        F.format_string("c%06d", F.col("id") % 20_000).alias("card_id"),
        (F.lit(1_790_000_000) + F.col("id")).cast("timestamp").alias("event_time"),
        *((F.rand(seed=i) * (1 + i)).cast("double").alias(c) for i, c in enumerate(FEATURE_COLUMNS)),
    )


def score_with_pandas(features: Any, champion: Any, tracking_uri: str) -> Any:
    """Tributary's scoring before it moved to Arrow (mapInPandas; the model's identity built per row in pandas),
    kept here as the before of that change."""
    from pyspark.sql import functions as F

    from spark_jobs.transforms.card_features import FEATURE_COLUMNS
    from spark_jobs.transforms.model import predict_proba
    from spark_jobs.transforms.scoring import PASSTHROUGH_COLUMNS, SCORED_SCHEMA, load_model_cached

    def score(batches: Any) -> Any:
        import numpy as np
        import pandas as pd

        model = None
        for batch in batches:
            if model is None:
                model = load_model_cached(tracking_uri, champion.model_uri, "cpu")
            scores = predict_proba(model, batch[FEATURE_COLUMNS].to_numpy(dtype=np.float32), 10_000)
            yield pd.DataFrame({"transaction_id": batch["transaction_id"], "card_id": batch["card_id"],
                                "event_time": batch["event_time"], "fraud_score": scores.astype(np.float64),
                                "is_fraud_pred": (scores >= champion.threshold).astype(np.int32),
                                "model_name": champion.name, "model_version": np.int32(champion.version),
                                "model_run_id": champion.run_id})

    inputs = features.select(*PASSTHROUGH_COLUMNS, *(F.col(c).cast("double") for c in FEATURE_COLUMNS))
    return inputs.mapInPandas(score, SCORED_SCHEMA).withColumn("scored_at", F.current_timestamp())


def local_cores(master: str) -> int:
    """The task slots of a ``local[N]`` master (``local[*]``: this machine's CPUs; ``local``: 1)."""
    if not master.startswith("local"):
        raise ValueError(f"P1 measures on a local master, not {master!r}")
    inner = master.removeprefix("local").strip("[]").split(",")[0]
    return (os.cpu_count() or 1) if inner == "*" else int(inner or 1)


def register_champion(spark: Any, tracking_uri: str, artifacts: Path) -> Any:
    """Train a small model with ``spark_jobs.train`` on 4,000 synthetic rows, register it, alias it @champion."""
    import mlflow
    import numpy as np

    from spark_jobs.train import train_and_register
    from spark_jobs.transforms.card_features import FEATURE_COLUMNS
    from spark_jobs.transforms.model import TrainConfig
    from spark_jobs.transforms.scoring import CHAMPION_ALIAS, ChampionModel
    from spark_jobs.transforms.training_data import LABEL

    rows = feature_frame(spark, 4_000, 1).toPandas()
    rng = np.random.default_rng(7)
    rows[LABEL] = ((rows[FEATURE_COLUMNS[0]] + rng.normal(0, 0.3, len(rows))) > 0.9).astype("int32")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())
    mlflow.set_experiment("bench")
    split = int(len(rows) * 0.8)
    trained = train_and_register(rows[:split], rows[split:], TrainConfig(epochs=2), model_name=MODEL,
                                 feature_table_version=0, holdout_fraction=0.2)
    mlflow.MlflowClient().set_registered_model_alias(MODEL, CHAMPION_ALIAS, str(trained["version"]))
    return ChampionModel(name=MODEL, version=trained["version"], run_id=trained["run_id"],
                         model_uri=f"models:/{MODEL}/{trained['version']}",
                         threshold=float(trained["metrics"]["threshold_at_precision"]),
                         feature_columns=tuple(FEATURE_COLUMNS))


def run(quick: bool, work: Path) -> Result:
    import mlflow.pyfunc
    import mlflow.pytorch
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from pyspark.sql import functions as F

    from spark_jobs.session import build_session
    from spark_jobs.transforms.card_features import FEATURE_COLUMNS
    from spark_jobs.transforms.model import predict_proba
    from spark_jobs.transforms.scoring import (PASSTHROUGH_COLUMNS, load_model_cached, model_identity_columns,
                                               score_features)
    from tributary.config import load_profile

    rows, udf_rows = (10_000, 2_000) if quick else (1_000_000, 50_000)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    spark = build_session(load_profile("local"), "tributary-bench-scoring",
                          {"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    cores = local_cores(spark.sparkContext.master)
    table = str(work / "features")
    feature_frame(spark, rows).write.format("delta").mode("overwrite").save(table)
    features = spark.read.format("delta").load(table)
    champion = register_champion(spark, tracking_uri, work / "artifacts")
    torch.set_num_threads(1)
    model = mlflow.pytorch.load_model(champion.model_uri)

    def identity(scored: Any) -> Any:
        """The columns Tributary's predictions carry besides the score, added the same way to every method."""
        return scored.select("*", (F.col("fraud_score") >= champion.threshold).cast("int").alias("is_fraud_pred"),
                             *model_identity_columns(champion))

    def to_delta(frame: Any, name: str) -> None:
        frame.write.format("delta").mode("overwrite").save(str(work / "out" / name))

    def tributary() -> None:
        to_delta(score_features(features, champion, tracking_uri), "tributary")

    def tributary_pandas() -> None:
        to_delta(score_with_pandas(features, champion, tracking_uri), "tributary_pandas")

    files = features.inputFiles()
    columns = [*PASSTHROUGH_COLUMNS, *FEATURE_COLUMNS]

    def plain_python() -> None:
        out = work / "out" / "plain"
        out.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            part = pq.read_table(path.removeprefix("file:"), columns=columns)
            x = np.column_stack([part.column(c).to_numpy().astype(np.float32) for c in FEATURE_COLUMNS])
            scores = predict_proba(model, x, 10_000)
            scored = (part.select(PASSTHROUGH_COLUMNS)
                      .append_column("fraud_score", pa.array(scores.astype(np.float64)))
                      .append_column("is_fraud_pred", pa.array((scores >= champion.threshold).astype(np.int32))))
            pq.write_table(scored, out / f"part-{i:05d}.parquet")

    matrix = features.select(*FEATURE_COLUMNS).toPandas().to_numpy(dtype=np.float32)

    def numpy_in_memory() -> None:
        predict_proba(model, matrix, 10_000)

    uri, model_uri = tracking_uri, champion.model_uri

    @F.udf("double")
    def score_row(*values: float) -> float:
        import torch as t

        row_model = load_model_cached(uri, model_uri, "cpu")
        with t.inference_mode():
            return float(row_model(t.tensor([values], dtype=t.float32)).item())

    sliced = features.limit(udf_rows).repartition(cores * 2).cache()
    sliced.count()

    def row_udf() -> None:
        to_delta(identity(sliced.select(*PASSTHROUGH_COLUMNS, score_row(*FEATURE_COLUMNS).alias("fraud_score"))),
                 "row_udf")

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # spark_udf's workers resolve models:/ through it
    pyfunc = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")

    def mlflow_udf() -> None:
        # The model's signature is one float32 tensor of shape (-1, features): one array column.
        vector = F.array(*(F.col(c).cast("float") for c in FEATURE_COLUMNS))
        to_delta(identity(features.select(*PASSTHROUGH_COLUMNS, pyfunc(vector).alias("fraud_score"))), "mlflow_udf")

    def spark_copy() -> None:  # no Python, no model: the floor of any Spark method here
        to_delta(identity(features.select(*PASSTHROUGH_COLUMNS, F.col("amount").alias("fraud_score"))), "copy")

    def per_core(n: int, seconds: list[float], used: int) -> Stats:
        print(f"P1: {n} rows in {', '.join(f'{s:.1f}' for s in seconds)} s ({used} core(s))", flush=True)
        return Stats("rows/s per core", [round(n / s / used, 1) for s in seconds])

    # (figure, method, rows, cores): timed in rounds, every method once per round (harness.interleaved), so none
    # runs on a colder JVM than another. A quick run (the smoke test in `make test`) checks that every method runs
    # and writes; its figures are never reported, so it skips the untimed warm-up round, a quarter of its runs.
    methods = [("tributary", tributary, rows, cores),
               ("(d) tributary via mapInPandas (before)", tributary_pandas, rows, cores),
               ("(a) plain python", plain_python, rows, 1),
               ("(a0) numpy in memory", numpy_in_memory, rows, 1),
               ("(b) row UDF", row_udf, udf_rows, cores),
               ("(c) mlflow spark_udf", mlflow_udf, rows, cores),
               ("(e) spark copy, no scoring", spark_copy, rows, cores)]
    t0 = time.monotonic()
    timings = interleaved({name: method for name, method, _, _ in methods}, warmup=0 if quick else 1)
    figures = {name: per_core(n, timings[name], used) for name, _, n, used in methods}
    measured_s = round(time.monotonic() - t0, 1)
    scored = spark.read.format("delta").load(str(work / "out" / "tributary"))
    checks = {"tributary_rows": scored.count(), "tributary_versions": sorted(
        r[0] for r in scored.select("model_version").distinct().collect())}
    spark.stop()
    if checks["tributary_rows"] != rows or checks["tributary_versions"] != [champion.version]:
        raise RuntimeError(f"tributary's scores do not cover the table with the champion: {checks}")
    return Result(
        name=NAME, title=TITLE, quick=quick,
        data={"rows": rows, "row_udf_rows": udf_rows, "files": len(files), "cores": cores,
              "features": len(FEATURE_COLUMNS), "model": {"version": champion.version, "uri": champion.model_uri},
              "measured_s": measured_s, **checks},
        figures=figures,
        goals=[
            Goal("tributary / (a) plain python, per core", "tributary", "(a) plain python", 0.8),
            Goal("tributary / (b) row UDF", "tributary", "(b) row UDF", 20.0),
            Goal("tributary / (c) mlflow spark_udf", "tributary", "(c) mlflow spark_udf", 1.0),
            Goal("tributary / (a0) compute limit", "tributary", "(a0) numpy in memory", None),
            Goal("mapInArrow: after / before", "tributary", "(d) tributary via mapInPandas (before)", None),
            Goal("the bound: (e) spark copy / (a) plain python, per core", "(e) spark copy, no scoring",
                 "(a) plain python", None),
        ],
        notes=["The methods ran in rounds, each once per round: one untimed round (JVM, Python workers and the model "
               "cache warm), then 3 timed ones.",
               "Per core: Spark methods divide by local[2]'s 2 cores, the single-process ones by 1."],
    )
