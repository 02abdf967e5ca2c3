"""OpenLineage: each job's event with the Delta versions it read and wrote.

Three emitters write the lineage of a run, all in OpenLineage's format (docs/lineage.md):

- **Airflow's OpenLineage provider**: every task's run (``fraud_pipeline.ingest``, ...). It also hands each
  spark-submit its run as ``spark.openlineage.parent*`` (``[openlineage] spark_inject_parent_job_info``).
- **Spark's OpenLineage listener** (``spark.extraListeners``, the jar from conf/jars/pom.xml): the Spark application
  as a child of that task run, and every Spark action in it with the files and tables it read and wrote.
- **This module**: one COMPLETE event per job, ``<namespace>/tributary.<job>``, also a child of the task run, whose
  datasets carry the Delta version read or written (the standard ``version`` facet). The listener cannot give those:
  it reads a Delta version only for catalog tables, and Tributary's tables are paths. Ingest's inputs are the landed
  files it read; train's output and score's input is the registered model (namespace ``mlflow``, its version).

The jobs emit only where the profile turns the listener on, and to the listener's own transport
(``spark.openlineage.transport.*``: ``file`` or ``http``), so one setting decides where lineage goes.

``spark_jobs.lineage_walk`` reads it back (``tributary lineage``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import urlparse

from tributary.spark_conf import openlineage_listener_on

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tributary.config import Catalog

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/tributary/tributary/tree/main/spark_jobs/lineage.py"
MODEL_NAMESPACE = "mlflow"  # a registered model as a dataset: namespace mlflow, its name, its version


def dataset_id(uri: str) -> tuple[str, str]:
    """OpenLineage's (namespace, name) for a file or table URI, as Spark's listener names the same location:
    a local path is ``("file", "/abs/path")``, an object store's ``("s3://bucket", "key/path")``."""
    where = urlparse(uri)
    if where.scheme in ("", "file"):
        return "file", where.path.rstrip("/") or "/"
    scheme = "s3" if where.scheme in ("s3a", "s3n") else where.scheme
    return f"{scheme}://{where.netloc}", where.path.strip("/")


def transport_config(conf: Mapping[str, str]) -> dict[str, Any] | None:
    """The OpenLineage client's transport for a Spark conf whose listener is on (its ``spark.openlineage.transport``
    settings), or None when the listener is off. A ``file`` transport appends to the listener's own file."""
    if not openlineage_listener_on(conf):
        return None
    prefix = "spark.openlineage.transport."
    settings = {key[len(prefix):]: value for key, value in conf.items() if key.startswith(prefix)}
    kind = settings.get("type", "")
    if kind == "file":
        return {"type": "file", "log_file_path": settings["location"], "append": True}
    if kind == "http":
        return {"type": "http", "url": settings["url"], "endpoint": settings.get("endpoint", "api/v1/lineage")}
    log.warning("lineage: Spark's OpenLineage transport %r has no Python equivalent here; no version event", kind)
    return None


def versioned(namespace: str, name: str, version: int | str | None, output: bool = False):
    """An input (or output) dataset carrying OpenLineage's ``version`` facet when ``version`` is known."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    facets = {} if version is None else {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version), producer=PRODUCER)}
    return (OutputDataset if output else InputDataset)(namespace=namespace, name=name, facets=facets)


def table(catalog: "Catalog", name: str, version: int | None, output: bool = False):
    """The Delta dataset ``name`` at ``version``, as an OpenLineage dataset."""
    return versioned(*dataset_id(catalog.uri(name)), version, output)


def model(name: str, version: int | str, output: bool = False):
    """A registered model version, as an OpenLineage dataset."""
    return versioned(MODEL_NAMESPACE, name, version, output)


def files(uris: Iterable[str]):
    """Landed files read, as OpenLineage input datasets (no version: a landed file does not change)."""
    return [versioned(*dataset_id(uri), None) for uri in sorted(set(uris))]


def parent_facet(conf: Mapping[str, str]):
    """The Airflow task run this driver was started by (``spark.openlineage.parent*``), or None."""
    from openlineage.client.facet_v2 import parent_run

    run_id, namespace, name = (conf.get(f"spark.openlineage.parent{key}") for key in ("RunId", "JobNamespace",
                                                                                       "JobName"))
    if not (run_id and namespace and name):
        return None
    root = None
    if conf.get("spark.openlineage.rootParentRunId"):
        root = parent_run.Root(run=parent_run.RootRun(runId=conf["spark.openlineage.rootParentRunId"]),
                               job=parent_run.RootJob(namespace=conf.get("spark.openlineage.rootParentJobNamespace",
                                                                         namespace),
                                                      name=conf.get("spark.openlineage.rootParentJobName", name)))
    return parent_run.ParentRunFacet(run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace=namespace,
                                                                                          name=name),
                                     root=root, producer=PRODUCER)


def emit(spark: "SparkSession", job: str, inputs: list, outputs: list) -> str | None:
    """Emit ``tributary.<job>``'s COMPLETE event with its versioned ``inputs`` and ``outputs`` where the driver's
    conf turns lineage on; its run id, or None."""
    return emit_with(dict(spark.sparkContext.getConf().getAll()), job, inputs, outputs)


def emit_with(conf: Mapping[str, str], job: str, inputs: list, outputs: list) -> str | None:
    """``emit`` for a Spark conf: None when it has no lineage. A transport that fails is logged, not raised: the data
    is already written."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.uuid import generate_new_uuid

    transport = transport_config(conf)
    if transport is None:
        return None
    parent = parent_facet(conf)
    run = Run(runId=str(generate_new_uuid()), facets={"parent": parent} if parent else {})
    event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(timezone.utc).isoformat(), run=run,
                     job=Job(namespace=conf.get("spark.openlineage.namespace", "default"), name=f"tributary.{job}"),
                     inputs=inputs, outputs=outputs, producer=PRODUCER)
    try:
        OpenLineageClient(config={"transport": transport}).emit(event)
    except Exception as exc:  # lineage is a record of what happened; it must not undo what did
        log.warning("lineage: could not emit %s's event: %s", job, exc)
        return None
    return run.runId
