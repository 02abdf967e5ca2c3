"""spark_jobs/lineage.py and lineage_walk.py's lookups: OpenLineage dataset names as Spark's listener gives them, the
transport taken from the listener's own settings, and each job's version event written by the real OpenLineage
client and read back. The walk itself runs on a real pipeline run's lineage in tests/test_pipeline_e2e.py."""

from __future__ import annotations

import pytest

from spark_jobs import lineage, lineage_walk
from tributary.config import load_profile
from tributary.spark_conf import OPENLINEAGE_LISTENER, local_lineage_file, spark_conf

PARENT = {
    "spark.openlineage.parentRunId": "01938f4e-0000-7000-8000-000000000001",
    "spark.openlineage.parentJobNamespace": "tributary",
    "spark.openlineage.parentJobName": "fraud_pipeline.features",
    "spark.openlineage.rootParentRunId": "01938f4e-0000-7000-8000-000000000000",
    "spark.openlineage.rootParentJobName": "fraud_pipeline",
}


@pytest.mark.parametrize("uri, expected", [
    ("/data/lake/bronze/transactions", ("file", "/data/lake/bronze/transactions")),
    ("file:///data/landing/b-1/part-0.jsonl", ("file", "/data/landing/b-1/part-0.jsonl")),
    ("s3a://tributary-lake/bronze/transactions/", ("s3://tributary-lake", "bronze/transactions")),
    ("gs://lake/silver/card_features", ("gs://lake", "silver/card_features")),
])
def test_dataset_names_follow_openlineage_naming(uri, expected):
    assert lineage.dataset_id(uri) == expected


def test_the_local_profiles_turn_the_listener_on_with_a_file_the_jobs_share(tmp_path):
    env = {"TRIBUTARY_HOME": str(tmp_path), "TRIBUTARY_JARS_DIR": str(tmp_path)}
    for name in ("local", "standalone"):
        conf = spark_conf(load_profile(name, env=env), check_jars=False)
        assert local_lineage_file(conf) == tmp_path / "var" / "lineage" / "spark.jsonl"
        assert lineage.transport_config(conf) == {"type": "file", "append": True,
                                                  "log_file_path": str(tmp_path / "var" / "lineage" / "spark.jsonl")}
    kind = spark_conf(load_profile("kind", env=env), check_jars=False)
    assert local_lineage_file(kind) is None and lineage.transport_config(kind) is None


def test_transport_follows_the_listener():
    on = {"spark.extraListeners": f"com.example.Other, {OPENLINEAGE_LISTENER}"}
    assert lineage.transport_config({**on, "spark.openlineage.transport.type": "http",
                                     "spark.openlineage.transport.url": "http://marquez:5000"}) == {
        "type": "http", "url": "http://marquez:5000", "endpoint": "api/v1/lineage"}
    assert lineage.transport_config({**on, "spark.openlineage.transport.type": "kinesis"}) is None
    # the listener off (as the tests' scratch session has it): no events, whatever the transport says
    assert lineage.transport_config({"spark.extraListeners": "", "spark.openlineage.transport.type": "file",
                                     "spark.openlineage.transport.location": "/tmp/x.jsonl"}) is None
    assert lineage.emit_with({}, "features", [], []) is None


def test_a_jobs_event_carries_its_versions_under_its_airflow_task(tmp_path):
    """Written by OpenLineage's own client to the listener's file, read back, and found by the walk's lookups."""
    from tributary.config import Catalog

    where = tmp_path / "spark.jsonl"
    conf = {"spark.extraListeners": OPENLINEAGE_LISTENER, "spark.openlineage.namespace": "tributary",
            "spark.openlineage.transport.type": "file", "spark.openlineage.transport.location": str(where), **PARENT}
    catalog = load_profile("local", env={"TRIBUTARY_HOME": str(tmp_path)}).catalog
    assert isinstance(catalog, Catalog)
    run_id = lineage.emit_with(conf, "features", [lineage.table(catalog, "bronze_transactions", 3)],
                               [lineage.table(catalog, "features_card", 7, output=True)])
    again = lineage.emit_with(conf, "train", [lineage.table(catalog, "features_card", 7)],
                              [lineage.model("tributary-fraud", 2, output=True)])
    events = lineage_walk.read_events(tmp_path)
    assert [e["run"]["runId"] for e in events] == [run_id, again]  # appended, one line each
    first = events[0]
    assert (first["eventType"], first["job"]["namespace"], first["job"]["name"]) == ("COMPLETE", "tributary",
                                                                                   "tributary.features")
    parent = first["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == PARENT["spark.openlineage.parentRunId"]
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("tributary", "fraud_pipeline.features")
    assert parent["root"]["job"]["name"] == "fraud_pipeline"
    features = lineage.dataset_id(catalog.uri("features_card"))
    assert lineage_walk.writer_of(events, *features, 7)["run"]["runId"] == run_id
    assert lineage_walk.input_version(first, *lineage.dataset_id(catalog.uri("bronze_transactions"))) == "3"
    assert lineage_walk.writer_of(events, "mlflow", "tributary-fraud", 2)["run"]["runId"] == again
    with pytest.raises(LookupError, match="0 lineage events wrote"):
        lineage_walk.writer_of(events, *features, 8)
    with pytest.raises(LookupError, match="2 lineage events wrote"):  # two claims of one version: ambiguous
        lineage_walk.writer_of(events + [first], *features, 7)
    with pytest.raises(LookupError, match="read no version"):
        lineage_walk.input_version(first, *features)
