"""The walk back from a prediction to the file its transaction landed in, over a run's OpenLineage events.

``tributary lineage TRANSACTION_ID`` runs it (docs/lineage.md)::

    python -m spark_jobs.lineage_walk --profile local --transaction-id tx_9415034dfd9324652f8d

From the prediction to its model version, that version's training run in MLflow, the feature table version the run
trained on, the bronze version those features were computed from, and the landed file the transaction came in. The
versions come from the jobs' own events (``spark_jobs.lineage``); the datasets are the jobs' by role
(conf/jobs.yaml).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from spark_jobs.lineage import MODEL_NAMESPACE, dataset_id
from tributary.registry import get_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tributary.config import Catalog

PREDICTIONS = get_job("score").output("scores")
FEATURES = get_job("features").output("features")
BRONZE = get_job("features").input("bronze")


def read_events(directory: Path) -> list[dict[str, Any]]:
    """Every OpenLineage event under ``directory`` (``*.jsonl``, one event a line), in file order."""
    events = []
    for path in sorted(directory.glob("*.jsonl")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return events


def _version(dataset: Mapping[str, Any]) -> str | None:
    return (dataset.get("facets") or {}).get("version", {}).get("datasetVersion")


def writer_of(events: list[dict], namespace: str, name: str, version: int | str) -> dict:
    """The one Tributary job event whose outputs hold ``namespace/name`` at ``version``."""
    found = [e for e in events if e["job"]["name"].startswith("tributary.") and any(
        (o["namespace"], o["name"], _version(o)) == (namespace, name, str(version)) for o in e.get("outputs", []))]
    if len(found) != 1:
        raise LookupError(f"{len(found)} lineage events wrote {namespace}/{name} version {version}; expected one")
    return found[0]


def input_version(event: dict, namespace: str, name: str) -> str:
    """The version ``event`` read of ``namespace/name``."""
    for dataset in event.get("inputs", []):
        if (dataset["namespace"], dataset["name"]) == (namespace, name) and _version(dataset) is not None:
            return _version(dataset)
    raise LookupError(f"{event['job']['name']} read no version of {namespace}/{name}")


@dataclass(frozen=True)
class Hop:
    """One step of a walk: what was found, and the OpenLineage run (if any) that says so."""

    what: str
    value: Any
    run_id: str | None = None


def walk(spark: "SparkSession", catalog: "Catalog", tracking_uri: str, events: list[dict],
         transaction_id: str) -> list[Hop]:
    """Follow the prediction of ``transaction_id`` back to the file it landed in (see the module's docstring).

    Each hop is read from its own source of truth (the predictions table, MLflow's registry and run, the lineage
    events, the bronze table at the version found, the landing file); a hop that does not hold raises LookupError.
    """
    from mlflow.tracking import MlflowClient
    from pyspark.sql import functions as F

    from spark_jobs import io

    row = io.read_table(spark, catalog, PREDICTIONS).where(F.col("transaction_id") == transaction_id).first()
    if row is None:
        raise LookupError(f"no prediction for transaction {transaction_id}")
    name = row["model_name"]
    hops = [Hop("prediction", {"transaction_id": transaction_id, "fraud_score": round(row["fraud_score"], 4),
                               "model": f"{name}/{row['model_version']}"})]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version(name, str(row["model_version"]))
    hops.append(Hop("model_version", f"{name}/{version.version}"))
    run = client.get_run(version.run_id)
    hops.append(Hop("training_run", run.info.run_id))
    trained_on = {(ds.dataset.source, tag.value) for ds in run.inputs.dataset_inputs
                  for tag in ds.tags if tag.key == "delta_table_version"}
    if not trained_on:
        raise LookupError(f"training run {run.info.run_id} logged no Delta dataset input")
    features_ns, features_name = dataset_id(catalog.uri(FEATURES))
    trainer = writer_of(events, MODEL_NAMESPACE, name, version.version)
    features_version = input_version(trainer, features_ns, features_name)
    sources = {json.loads(source).get("path", "").rstrip("/"): v for source, v in trained_on}
    if sources.get(catalog.uri(FEATURES).rstrip("/")) != features_version:
        raise LookupError(f"MLflow says the run trained on {sources}; the lineage says features version "
                          f"{features_version}")
    hops.append(Hop("features_version", int(features_version), trainer["run"]["runId"]))
    features_writer = writer_of(events, features_ns, features_name, features_version)
    bronze_ns, bronze_name = dataset_id(catalog.uri(BRONZE))
    bronze_version = input_version(features_writer, bronze_ns, bronze_name)
    hops.append(Hop("bronze_version", int(bronze_version), features_writer["run"]["runId"]))
    bronze = io.read_table(spark, catalog, BRONZE, version=int(bronze_version))
    landed = bronze.where(F.col("transaction_id") == transaction_id).select("source_file").first()
    if landed is None:
        raise LookupError(f"bronze version {bronze_version} has no transaction {transaction_id}")
    file_ns, file_name = dataset_id(landed["source_file"])
    ingests = [e for e in events if e["job"]["name"] == "tributary.ingest"
               and any((i["namespace"], i["name"]) == (file_ns, file_name) for i in e.get("inputs", []))
               and any((o["namespace"], o["name"]) == (bronze_ns, bronze_name)
                       and _version(o) is not None and int(_version(o)) <= int(bronze_version)
                       for o in e.get("outputs", []))]
    if not ingests:
        raise LookupError(f"no ingest's lineage reads {file_name} into bronze at or before {bronze_version}")
    hops.append(Hop("landing_file", landed["source_file"], ingests[0]["run"]["runId"]))
    return hops


def main(argv: Sequence[str] | None = None) -> list[Hop]:
    """``python -m spark_jobs.lineage_walk --transaction-id T``: the walk from ``T``'s prediction, as one JSON line
    (what ``tributary lineage`` prints). Exits 2 when the profile keeps no lineage here or a hop does not hold."""
    from spark_jobs.cli import fail, job_parser, parse_job_args
    from spark_jobs.session import build_session
    from tributary.spark_conf import local_lineage_file

    parser = job_parser(main.__doc__)
    parser.add_argument("--transaction-id", required=True, help="the transaction whose prediction to start from")
    args, profile = parse_job_args(parser, argv)
    where = local_lineage_file(profile.spark["conf"])
    if where is None:
        fail(f"profile {profile.name} writes no OpenLineage events to a file on this machine "
             "(spark.openlineage.transport.type: file); read its lineage where its transport sends it", retry=False)
    # A reader, not a job: it must not add its own Spark application to the lineage it reads.
    spark = build_session(profile, "tributary-lineage", {"spark.extraListeners": "", "spark.eventLog.enabled": "false"})
    try:
        hops = walk(spark, profile.catalog, profile.mlflow["tracking_uri"], read_events(where.parent),
                    args.transaction_id)
    except LookupError as exc:
        fail(f"lineage of transaction {args.transaction_id}: {exc.args[0]}", retry=False)
    finally:
        spark.stop()
    print(json.dumps([asdict(hop) for hop in hops], default=str))
    return hops


if __name__ == "__main__":
    main()
