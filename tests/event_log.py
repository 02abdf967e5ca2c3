"""Test helper: what a Spark application really did, from its event log (Spark 4 writes rolling logs:
``eventlog_v2_<app id>/events_<n>_<app id>``, uncompressed where the tests set ``spark.eventLog.compress=false``)."""

from __future__ import annotations

import json
from pathlib import Path


def events(app_dir: Path) -> list[dict]:
    """The events of one application's rolling log directory, in order."""
    parts = sorted(app_dir.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    return [json.loads(line) for part in parts for line in part.read_text().splitlines() if line.strip()]


def applications(directory: Path) -> dict[str, list[dict]]:
    """Every application logged under ``directory``: its id -> its events."""
    return {app.name.removeprefix("eventlog_v2_"): events(app) for app in sorted(directory.glob("eventlog_v2_*"))}


def properties(app_events: list[dict]) -> dict[str, str]:
    """The Spark properties the application ran with."""
    props = next(e for e in app_events if e["Event"] == "SparkListenerEnvironmentUpdate")["Spark Properties"]
    return dict(props) if isinstance(props, list) else props


def app_name(app_events: list[dict]) -> str:
    return next(e for e in app_events if e["Event"] == "SparkListenerApplicationStart")["App Name"]


def executor_timeline(app_events: list[dict]) -> list[tuple[float, int]]:
    """Executors alive over the application's life: ``(seconds since it started, count)`` at its start, at each
    executor added or removed, and at its end."""
    start = next(e for e in app_events if e["Event"] == "SparkListenerApplicationStart")["Timestamp"]
    alive, timeline = 0, [(0.0, 0)]
    for event in app_events:
        if event["Event"] in ("SparkListenerExecutorAdded", "SparkListenerExecutorRemoved"):
            alive += 1 if event["Event"] == "SparkListenerExecutorAdded" else -1
            timeline.append((round((event["Timestamp"] - start) / 1000, 1), alive))
        elif event["Event"] == "SparkListenerApplicationEnd":
            timeline.append((round((event["Timestamp"] - start) / 1000, 1), alive))
    return timeline
