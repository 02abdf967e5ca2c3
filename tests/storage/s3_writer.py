"""One Spark application writing Delta over s3a:// to the loopback S3 store (tests/storage/test_s3_delta.py).

Each run is its own JVM, like the ingest job and the stream on a cluster. The session takes the s3a and Delta
LogStore settings of the kind profile (conf/profiles/kind.yaml) with the endpoint pointed at the test's store, and
the pinned jars (var/jars: hadoop-aws 3.5.0, the AWS SDK bundle, Delta, the project's LogStore).

    python tests/storage/s3_writer.py <endpoint> <access> <secret> <action> <table-uri> [args...]

Actions print one JSON line:
    roundtrip <uri>                  write 100 rows, MERGE 50 updates + 50 inserts, read back
    append <uri> <writer> <commits>  <commits> blind appends of 10 rows tagged <writer>
    commit <uri> <logstore> <tag> [conditional]
                                     write _delta_log/00000000000000000099.json through <logstore> (class name);
                                     [conditional] sets fs.s3a.create.conditional.enabled
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from spark_jobs.session import build_session  # noqa: E402
from tributary.config import load_profile  # noqa: E402


def session(endpoint: str, access: str, secret: str, extra: dict[str, str] | None = None):
    os.environ.update(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
    s3_conf = {k: v for k, v in load_profile("kind").spark["conf"].items()
               if k.startswith(("spark.hadoop.fs.s3a.", "spark.delta.logStore."))}
    s3_conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
    return build_session(load_profile("local"), "tributary-s3-test", {**s3_conf, **(extra or {})})


def main(argv: list[str]) -> None:
    endpoint, access, secret, action, uri, *rest = argv
    extra = None
    if action == "commit":
        extra = {"spark.hadoop.fs.s3a.create.conditional.enabled": rest[2]} if len(rest) > 2 else None
    spark = session(endpoint, access, secret, extra)
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if action == "roundtrip":
        spark.range(100).withColumn("v", F.lit("a")).write.format("delta").save(uri)
        updates = spark.range(50, 150).withColumn("v", F.lit("b"))
        (DeltaTable.forPath(spark, uri).alias("t").merge(updates.alias("u"), "t.id = u.id")
         .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
        df = spark.read.format("delta").load(uri)
        out = {"rows": df.count(), "b_rows": df.where("v = 'b'").count(),
               "versions": DeltaTable.forPath(spark, uri).history().count()}
    elif action == "append":
        writer, commits = rest[0], int(rest[1])
        spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", writer)  # who made each version
        for i in range(commits):
            (spark.range(10).withColumn("writer", F.lit(writer)).withColumn("commit", F.lit(i))
             .write.format("delta").mode("append").save(uri))
        out = {"writer": writer, "commits": commits}
    elif action == "commit":
        # One commit file written straight through the LogStore, as Delta's commit does. S3A's own existence check
        # on create is off (fs.s3a.create.performance), so only the store's conditional write can refuse.
        tag = rest[1]
        jvm = spark._jvm
        conf = spark._jsc.hadoopConfiguration()
        conf.set("fs.s3a.create.performance", "true")
        logstore_class = jvm
        for part in rest[0].split("."):
            logstore_class = getattr(logstore_class, part)
        path = jvm.org.apache.hadoop.fs.Path(f"{uri}/_delta_log/00000000000000000099.json")
        lines = jvm.java.util.ArrayList()
        lines.add(json.dumps({"commitInfo": {"writer": tag}}))
        try:
            logstore_class(conf).write(path, lines.iterator(), False, conf)
            refused = None
        except Exception as exc:  # noqa: BLE001 - py4j wraps the JVM exception; report its class
            java = getattr(exc, "java_exception", None)
            refused = java.getClass().getName() if java is not None else repr(exc)
        body = spark.sparkContext.wholeTextFiles(str(path)).collect()[0][1] if refused is None or "FileAlready" in refused else "{}"
        kept = json.loads(body.splitlines()[0]).get("commitInfo", {}).get("writer") if body.strip() else None
        out = {"refused": refused, "kept": kept}
    else:
        raise SystemExit(f"unknown action {action}")
    print("S3_WRITER " + json.dumps(out), flush=True)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
