"""A Spark application for tests/test_pipeline_e2e.py that makes dynamic allocation on YARN visible: one shuffle's
map output is written, every executor then idles past the idle timeout and is released, and the same shuffle is
read again by new executors. Without a working external shuffle service the second read cannot find the released
executors' blocks (a fetch failure re-runs the map stage); with one, the map stage is skipped.

    spark-submit --master yarn tests/yarn_shuffle_app.py <idle seconds> <result.json>
"""

import json
import sys
import time
from operator import add

from pyspark.sql import SparkSession


def main() -> None:
    idle, out = float(sys.argv[1]), sys.argv[2]
    spark = SparkSession.builder.appName("tributary-shuffle-check").getOrCreate()
    sums = spark.sparkContext.parallelize(range(200_000), 4).map(lambda x: (x % 97, x)).reduceByKey(add, 4)
    first = sorted(sums.collect())
    time.sleep(idle)  # every executor idles: dynamic allocation releases them all (minExecutors 0)
    second = sorted(sums.collect())  # new executors read the first job's map output from the shuffle service
    with open(out, "w") as f:
        json.dump({"app_id": spark.sparkContext.applicationId, "equal": first == second, "keys": len(first),
                   "total": sum(v for _, v in second)}, f)
    spark.stop()


if __name__ == "__main__":
    main()
