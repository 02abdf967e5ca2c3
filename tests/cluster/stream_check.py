"""What the stream wrote for the groups the fault test landed, against what the generator landed.

The oracle is the generator itself: each group is generated again from its arguments (deterministic) and split
into the same files, so every line's kind is known without the job's code: a ``clean`` line is a valid
transaction, a ``duplicate`` an exact re-send of one, any other kind a line that must be rejected. A local Spark
application (this host, the pinned jars) reads ``bronze_transactions``, ``stream_predictions`` and
``quarantine_transactions`` over s3a from the chart's S3 store and counts, per valid transaction id, its rows in
bronze and in stream_predictions, and per rejected line its rows in quarantine. Prints one JSON line.

    python tests/cluster/stream_check.py <s3-endpoint> <access-key> <secret-key> <groups.json>

``groups.json``: a list of ``{"rows", "seed", "start", "days", "dirty_fraction", "batch_id", "files"}``, ``files``
being the landed file names.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.storage.s3_writer import session  # noqa: E402


def expected(groups: list[dict]) -> tuple[set[str], Counter, set[str]]:
    """(valid transaction ids, rejected (file, line) -> count, landed file names), from the generator."""
    from spark_jobs.generate import GeneratorConfig, generate, split_files

    valid: set[str] = set()
    rejected: Counter = Counter()
    files: set[str] = set()
    for g in groups:
        config = GeneratorConfig(rows=g["rows"], seed=g["seed"], start=date.fromisoformat(g["start"]), days=g["days"],
                                 dirty_fraction=g["dirty_fraction"], batch_id=g["batch_id"])
        landed = generate(config).landed
        parts = split_files(list(range(len(landed))), len(g["files"]), f"{config.resolved_batch_id}-")
        if set(parts) != set(g["files"]):
            raise SystemExit(f"group {g['batch_id']}: generated files {sorted(parts)} != landed {sorted(g['files'])}")
        for name, indices in parts.items():
            files.add(name)
            for i in indices:
                entry = landed[i]
                if entry.kind == "clean":
                    valid.add(json.loads(entry.line)["transaction_id"])
                elif entry.kind != "duplicate":
                    rejected[(name, entry.line)] += 1
    return valid, rejected, files


def tally(found: Counter, wanted: Counter | set) -> dict:
    """Rows found per expected key against the rows wanted (1 per key of a set)."""
    want = Counter({key: 1 for key in wanted}) if isinstance(wanted, set) else wanted
    return {
        "expected": sum(want.values()),
        "rows": sum(found[key] for key in want),
        "missing": sum(1 for key, n in want.items() if found[key] == 0),
        "more_than_expected": sum(1 for key, n in want.items() if found[key] > n),
        "unexpected": sum(n for key, n in found.items() if key not in want),
    }


def main(argv: list[str]) -> None:
    endpoint, access, secret, groups_json = argv
    groups = json.loads(Path(groups_json).read_text())
    valid, rejected, files = expected(groups)
    spark = session(endpoint, access, secret)
    from pyspark.sql import functions as F

    from spark_jobs import io
    from tributary.config import load_profile

    catalog = load_profile("kind").catalog
    name_of = F.element_at(F.split("source_file", "/"), -1)
    ids = spark.createDataFrame([(i,) for i in sorted(valid)], "transaction_id string")

    bronze = io.read_table(spark, catalog, "bronze_transactions")
    # Rows of these files, and rows anywhere with one of their ids (a row attributed to another file counts too).
    bronze_rows = (bronze.where(name_of.isin(sorted(files))).select("transaction_id")
                   .unionByName(bronze.join(ids, "transaction_id").where(~name_of.isin(sorted(files)))
                                .select("transaction_id")).collect())
    predictions = io.read_table(spark, catalog, "stream_predictions").join(ids, "transaction_id")
    prediction_rows = predictions.select("transaction_id", "model_version", "model_run_id").collect()
    quarantine = io.read_table(spark, catalog, "quarantine_transactions").where(name_of.isin(sorted(files)))
    quarantine_rows = quarantine.select(name_of.alias("file"), "raw_record", "reason").collect()

    out = {
        "groups": len(groups),
        "files": len(files),
        "bronze": tally(Counter(r.transaction_id for r in bronze_rows), valid),
        "stream_predictions": tally(Counter(r.transaction_id for r in prediction_rows), valid),
        "quarantine": tally(Counter((r.file, r.raw_record) for r in quarantine_rows), rejected),
        "unattributed_predictions": sum(1 for r in prediction_rows if r.model_version is None or not r.model_run_id),
        "model_versions": sorted({int(r.model_version) for r in prediction_rows if r.model_version is not None}),
        "quarantine_reasons": dict(Counter(r.reason.split(":")[0] for r in quarantine_rows)),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
