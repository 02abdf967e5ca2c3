"""The features job's output on the cluster against an undisturbed run of the same code on the same input.

A local Spark application (this host, the pinned jars) reads the cluster's ``bronze_transactions`` at the version the
features job read and its ``features_card`` at the version it wrote, over s3a from the chart's S3 store, computes
``compute_card_features`` of that bronze here, where no executor is killed, and compares the two frames (exact keys,
doubles to 1e-9 relative). Prints one JSON line: rows on each side and the rows that differ.

    python tests/cluster/features_check.py <s3-endpoint> <access-key> <secret-key> <bronze-version> <features-version>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.storage.s3_writer import session  # noqa: E402


def main(argv: list[str]) -> None:
    endpoint, access, secret, bronze_version, features_version = argv
    spark = session(endpoint, access, secret)
    from pyspark.testing import assertDataFrameEqual

    from spark_jobs import io
    from spark_jobs.transforms.card_features import compute_card_features
    from tributary.config import load_profile

    catalog = load_profile("kind").catalog
    bronze = io.read_table(spark, catalog, "bronze_transactions", version=int(bronze_version))
    on_cluster = io.read_table(spark, catalog, "features_card", version=int(features_version)).collect()
    undisturbed = compute_card_features(bronze).collect()
    try:
        assertDataFrameEqual(on_cluster, undisturbed, rtol=1e-9, atol=1e-12)
        difference = ""
    except AssertionError as exc:
        difference = str(exc)[:3000]
    print(json.dumps({"cluster_rows": len(on_cluster), "undisturbed_rows": len(undisturbed),
                      "difference": difference}))


if __name__ == "__main__":
    main(sys.argv[1:])
