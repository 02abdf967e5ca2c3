"""What the lake and the registry hold now, without starting Spark: each Delta table's version and last commit, the
stream checkpoint's last micro-batch, and the model's ``@champion`` and ``@challenger`` (``tributary status``).

    python -m spark_jobs.status --profile local      # one JSON document on stdout

A Delta table's version is the newest commit file of its ``_delta_log`` (the Delta protocol's own definition: a
checkpoint or log clean-up never removes the newest commit), and that commit's ``commitInfo`` says what wrote it.
The stream's last micro-batch is the newest file under its checkpoint's ``commits/``: the batches whose sink writes
are done. Both are listed through pyarrow's filesystems, so a lake on the local disk or in a bucket pyarrow reaches
reads the same. MLflow is asked for the aliases through its client: a tracking server that does not answer is
reported (``error``), not waited on for minutes.

Reading the log's listing (rather than with delta-rs) is a deliberate choice: it needs nothing beyond pyarrow, and it
does not depend on a second Delta implementation supporting every table feature Delta 4.4 writes.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Sequence

from spark_jobs.cli import job_parser, parse_job_args
from tributary.config import Profile

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
HEALTH_WAIT_S = 5.0  # status answers quickly: a tracking server that is down is reported, not waited for


def _filesystem(uri: str):
    """(pyarrow filesystem, path) for a URI or a plain path."""
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri if "://" in uri else f"file://{uri}")


def _iso(millis: float | int | None) -> str | None:
    return None if millis is None else datetime.fromtimestamp(millis / 1000, timezone.utc).isoformat(timespec="seconds")


def delta_table(uri: str) -> dict[str, Any]:
    """``{"exists": False}`` or the table's version and its newest commit's operation and time."""
    from pyarrow import fs

    filesystem, path = _filesystem(uri)
    log = f"{path.rstrip('/')}/_delta_log"
    if filesystem.get_file_info(log).type != fs.FileType.Directory:
        return {"exists": False}
    versions = [int(m.group(1)) for info in filesystem.get_file_info(fs.FileSelector(log))
                if (m := COMMIT_FILE.match(info.base_name))]
    if not versions:
        return {"exists": False}
    version = max(versions)
    with filesystem.open_input_stream(f"{log}/{version:020d}.json") as stream:
        actions = [json.loads(line) for line in stream.read().decode().splitlines() if line.strip()]
    info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    return {"exists": True, "version": version, "operation": info.get("operation"),
            "committed_at": _iso(info.get("timestamp"))}


def stream_checkpoint(uri: str) -> dict[str, Any]:
    """``{"exists": False}`` or the last committed micro-batch of a Structured Streaming checkpoint and when."""
    from pyarrow import fs

    filesystem, path = _filesystem(uri)
    commits = f"{path.rstrip('/')}/commits"
    if filesystem.get_file_info(commits).type != fs.FileType.Directory:
        return {"exists": False}
    batches = {int(info.base_name): info for info in filesystem.get_file_info(fs.FileSelector(commits))
               if info.base_name.isdigit()}
    if not batches:
        return {"exists": True, "last_batch": None, "committed_at": None}
    last = max(batches)
    mtime = batches[last].mtime
    return {"exists": True, "last_batch": last,
            "committed_at": mtime.astimezone(timezone.utc).isoformat(timespec="seconds") if mtime else None}


def model_aliases(profile: Profile) -> dict[str, Any]:
    """The registered model's ``@champion`` and ``@challenger``: version, run, metrics, promotion decision."""
    from spark_jobs.tracking import (CHALLENGER_ALIAS, CHAMPION_ALIAS, TrackingUnavailable, check_tracking_server,
                                     sqlite_store)

    name, uri = profile.mlflow["model_name"], profile.mlflow["tracking_uri"]
    found: dict[str, Any] = {"name": name, "tracking_uri": uri}
    if (db_file := sqlite_store(uri)) and not db_file.exists():
        return {**found, "error": "no MLflow store yet: nothing has been trained on this profile"}  # not created
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        check_tracking_server(uri, HEALTH_WAIT_S)
    except TrackingUnavailable as exc:
        return {**found, "error": str(exc)}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for alias in (CHAMPION_ALIAS, CHALLENGER_ALIAS):
        try:
            version = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            found[alias] = None
            continue
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        found[alias] = {"version": int(version.version), "run_id": version.run_id,
                        "created_at": _iso(version.creation_timestamp),
                        "metrics": {k: metrics[k] for k in sorted(metrics)},
                        "promotion": {k.removeprefix("promotion."): v for k, v in version.tags.items()
                                      if k.startswith("promotion.") and k in ("promotion.decision",
                                                                              "promotion.reason")}}
    return found


def status(profile: Profile) -> dict[str, Any]:
    """Every Delta table of the profile's catalog, the stream checkpoint, and the model's aliases."""
    datasets = profile.catalog.datasets
    tables = {name: delta_table(d.uri) for name, d in sorted(datasets.items()) if d.format == "delta"}
    checkpoints = {name: stream_checkpoint(d.uri) for name, d in sorted(datasets.items())
                   if d.format == "checkpoint"}
    return {"profile": profile.name, "tables": tables, "stream": checkpoints, "model": model_aliases(profile)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, profile = parse_job_args(job_parser(__doc__), argv)
    found = status(profile)
    print(json.dumps(found, default=str))
    return found


if __name__ == "__main__":
    main()
