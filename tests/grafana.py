"""The pipeline's Grafana dashboard (helm/tributary/dashboards/tributary-pipeline.json) as the tests read it: its
queries with Grafana's variables replaced the way Grafana does before a query reaches Prometheus, parsed by a real
PromQL parser, and the metric names they select; and the names in a Prometheus text exposition, read with
Prometheus's own parser. tests/helm/test_dashboard.py checks them against a local driver, tests/cluster against the
live stream's."""

from __future__ import annotations

import json
from typing import Any, Iterator

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

from tributary.config import REPO_ROOT

DASHBOARD = REPO_ROOT / "helm" / "tributary" / "dashboards" / "tributary-pipeline.json"
# What Grafana puts in place of its variables before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$namespace": "tributary-jobs",
                     "$platform": "tributary", "$job": "ingest|features"}
# Where a query's metrics come from, by the namespace variable it is scoped to: the Spark drivers in the jobs
# namespace, Airflow (statsd_exporter) and MLflow in the platform's.
SPARK, PLATFORM = 'namespace=~"$namespace"', 'namespace=~"$platform"'


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any], scope: str = "") -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query, or of those scoped by ``scope`` (SPARK or PLATFORM)."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if scope in target["expr"]:
                yield panel["title"], target["expr"]


def charted(scope: str = "") -> dict[str, str]:
    """Each metric name the dashboard's queries (those scoped by ``scope``) select -> a panel that charts it."""
    return {name: title for title, expr in queries(load(), scope) for name in metric_names(parse(expr))}


def parse(expr: str):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def metric_names(node) -> set[str]:
    """The metric names a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name}
    if isinstance(node, promql_parser.MatrixSelector):
        return metric_names(node.vector_selector)
    if isinstance(node, promql_parser.BinaryExpr):
        return metric_names(node.lhs) | metric_names(node.rhs)
    if isinstance(node, promql_parser.Call):
        return set().union(*(metric_names(arg) for arg in node.args))
    if isinstance(node, (promql_parser.AggregateExpr, promql_parser.ParenExpr, promql_parser.UnaryExpr,
                         promql_parser.SubqueryExpr)):
        return metric_names(node.expr)
    return set()  # literals


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition as Prometheus stores it: (name, labels, value). Each sample line
    is parsed on its own, untyped, so that prometheus_client's parser keeps its name: under a ``# TYPE ... counter``
    line it renames the samples to end in ``_total``, which Prometheus does not (statsd_exporter's
    ``airflow_ti_finish`` is stored as that)."""
    found = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            found += [(sample.name, sample.labels, sample.value)
                      for family in text_string_to_metric_families(line + "\n") for sample in family.samples]
    return found


def exposed(text: str) -> set[str]:
    """The metric names of a Prometheus text exposition, as a scrape of it stores them."""
    return {name for name, _, _ in samples(text)}
