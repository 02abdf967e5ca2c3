"""``make scale``: ``make run ROWS=1000000`` completes on this machine; its wall time, the peak memory of what it
starts, and the largest shuffle of any Spark stage (issue 9's scale check; a report, not a benchmark with a goal).

It runs once what ``make run ROWS=N`` runs after setup (P4's ``orchestrated``: scripts/run_local.py in a fresh state
directory, its Airflow DB migrated first, untimed) and writes ``benchmarks/results/scale/make_run_<N>.json``: the
machine, the versions, the wall time and each step's and task's, and what was measured while it ran:

- ``ProcessMemory`` reads every process under this one from /proc once a second (``VmRSS``) and keeps, per kind of
  process, the largest sum at one moment and the largest single process: the Spark JVMs (on the local profile each
  job's driver JVM runs its executors too, ``local[2]``), the jobs' Python drivers, Spark's Python workers (the
  ``pyspark.daemon`` and its forks), and the rest (Airflow's processes, the scripts);
- Spark writes an event log per application, uncompressed, into the run's state directory (``run_env``), from
  which ``shuffles`` sums the shuffle bytes and records each stage's tasks wrote. The run fails if it finds none.

One run, not three: a million rows take many minutes here, and P4 (``make bench``) times ``make run`` at that size
against its baseline. Usage::

    make scale                     # ROWS=1000000
    uv run python -m benchmarks.scale --rows 200000 --out /tmp/scale.json
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, RESULTS_DIR
from benchmarks.make_run import fresh_home, label, orchestrated

RESULTS = RESULTS_DIR / "scale"
KINDS = ("spark JVMs", "job drivers (Python)", "Python workers", "Airflow and the rest")


def kind_of(cmdline: list[str]) -> str:
    """Which of ``KINDS`` a process is, from its command line."""
    line = " ".join(cmdline)
    if cmdline and Path(cmdline[0]).name == "java":
        return KINDS[0]
    if "pyspark.daemon" in line or "pyspark/daemon.py" in line or "pyspark.worker" in line:
        return KINDS[2]
    if "/spark_jobs/" in line and "spark-submit" not in line:
        return KINDS[1]
    return KINDS[3]


def _descendants(root: int) -> list[int]:
    """PIDs of every living process under ``root`` (not ``root`` itself), from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        children[ppid].append(int(entry.name))
    found, todo = [], list(children[root])
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children[pid]
    return found


def _rss_and_cmdline(pid: int) -> tuple[int, list[str]] | None:
    """(resident bytes, command line) of ``pid``; None when it is gone or has no memory of its own (a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return None if rss is None else (rss, [arg for arg in cmdline if arg])


class ProcessMemory(threading.Thread):
    """Samples the resident memory of every process under ``root`` every ``interval`` s until ``stop()``.
    ``peaks()``: per kind, the largest sum at one sample and the largest single process, in MiB."""

    def __init__(self, root: int | None = None, interval: float = 1.0):
        super().__init__(daemon=True)
        self.root, self.interval = root or os.getpid(), interval
        self.done = threading.Event()
        self.sum_peak: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.process_peak: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.total_peak = 0
        self.samples = 0

    def sample(self) -> None:
        sums: dict[str, int] = dict.fromkeys(KINDS, 0)
        for pid in _descendants(self.root):
            seen = _rss_and_cmdline(pid)
            if seen:
                kind = kind_of(seen[1])
                sums[kind] += seen[0]
                self.process_peak[kind] = max(self.process_peak[kind], seen[0])
        for kind, total in sums.items():
            self.sum_peak[kind] = max(self.sum_peak[kind], total)
        self.total_peak = max(self.total_peak, sum(sums.values()))
        self.samples += 1

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self.done.set()
        self.join()
        mib = lambda n: round(n / 2**20)  # noqa: E731
        return {"samples": self.samples, "all_processes_mib": mib(self.total_peak),
                "sum_at_one_moment_mib": {k: mib(v) for k, v in self.sum_peak.items()},
                "largest_process_mib": {k: mib(v) for k, v in self.process_peak.items()}}


def _event_files(events_dir: Path) -> dict[str, list[Path]]:
    """Each application's event log files, in order: rolling logs (``eventlog_v2_<app>/events_<n>_<app>``) or one
    file per application."""
    apps: dict[str, list[Path]] = {}
    for path in sorted(events_dir.iterdir()):
        if path.is_dir() and path.name.startswith("eventlog_v2_"):
            apps[path.name.removeprefix("eventlog_v2_")] = sorted(
                path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
        elif path.is_file() and not path.name.endswith(".inprogress"):
            apps[path.name] = [path]
    return apps


def shuffles(events_dir: Path) -> list[dict[str, Any]]:
    """Every stage that wrote shuffle data, of every application logged under ``events_dir``, largest first: the
    application's name, the stage's id and name, and the bytes and records its tasks wrote."""
    stages: list[dict[str, Any]] = []
    for files in _event_files(events_dir).values():
        app, names = "", {}
        written: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for path in files:
            for line in path.read_text().splitlines():
                event = json.loads(line) if line.strip() else {}
                kind = event.get("Event")
                if kind == "SparkListenerApplicationStart":
                    app = event["App Name"]
                elif kind == "SparkListenerStageCompleted":
                    names[event["Stage Info"]["Stage ID"]] = event["Stage Info"]["Stage Name"]
                elif kind == "SparkListenerTaskEnd":
                    metrics = (event.get("Task Metrics") or {}).get("Shuffle Write Metrics") or {}
                    totals = written[event["Stage ID"]]
                    totals[0] += metrics.get("Shuffle Bytes Written", 0)
                    totals[1] += metrics.get("Shuffle Records Written", 0)
        stages += [{"application": app, "stage": stage, "stage_name": names.get(stage, ""), "bytes": b, "records": r}
                   for stage, (b, r) in written.items() if b]
    return sorted(stages, key=lambda s: -s["bytes"])


def events_dir(home: Path) -> Path:
    """Where ``make scale``'s run in ``home`` has Spark write its event logs (``run_env``) and reads them back."""
    return home / "spark-events"


def run_env(home: Path) -> dict[str, str]:
    """What ``make scale`` adds to ``make run``'s environment so that every application's event log lands, readable,
    in ``events_dir(home)``: the profile's own event log directory moved there (``TRIBUTARY_SPARK_EVENTS``: the local
    profile sets ``spark.eventLog.dir`` from it, and a profile's conf wins over spark-defaults.conf), and a
    ``SPARK_CONF_DIR`` of its own (the checkout's conf/spark) whose spark-defaults.conf turns the logs' compression off
    (Spark 4 writes them zstd-compressed, which Python's standard library cannot read)."""
    conf, events = home / "spark-conf", events_dir(home)
    shutil.copytree(REPO_ROOT / "conf" / "spark", conf)
    events.mkdir()
    with (conf / "spark-defaults.conf").open("a") as defaults:
        defaults.write("spark.eventLog.compress false\n")
    return {"SPARK_CONF_DIR": str(conf), "TRIBUTARY_SPARK_EVENTS": events.as_uri()}


def measured_run(rows: int, home: Path) -> dict[str, Any]:
    """One ``make run`` of ``rows`` in ``home``, with its memory sampled and its event logs read back."""
    extra_env = run_env(home)
    memory = ProcessMemory()
    memory.start()
    try:
        run = orchestrated(rows, home, extra_env=extra_env)
    finally:
        peaks = memory.stop()
    stages = shuffles(events_dir(home))
    if not stages:  # every make run shuffles (ingest's dedupe, the features' windows): the logs went elsewhere
        raise RuntimeError(f"no Spark application logged a shuffle under {events_dir(home)}; check that the "
                           "profile's spark.eventLog.dir follows TRIBUTARY_SPARK_EVENTS")
    by_app: dict[str, int] = defaultdict(int)
    for stage in stages:
        by_app[stage["application"]] += stage["bytes"]
    return {**run, "memory": peaks, "largest_shuffles": stages[:5], "shuffle_bytes_by_application": dict(by_app)}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile
    from datetime import datetime, timezone

    from benchmarks.harness import machine, versions

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="transactions landed (default %(default)s)")
    parser.add_argument("--out", type=Path, help="the JSON (default benchmarks/results/scale/make_run_<rows>.json)")
    parser.add_argument("--work", type=Path, help="scratch space (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    if args.rows < 3000:
        parser.error("--rows must be at least 3000: fewer leave training a validation split of one class")
    out = args.out or RESULTS / f"make_run_{label(args.rows)}.json"
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="tributary-scale-") as scratch:
        run = measured_run(args.rows, fresh_home(args.work or Path(scratch), "scale"))
    report = {"measured_at": started, "rows": args.rows, "machine": machine(), "versions": versions(), **run}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    memory, top = run["memory"], (run["largest_shuffles"] or [{}])[0]
    print(f"scale: make run with {args.rows:,} rows: {run['wall_s']:.0f} s; peak resident memory "
          f"{memory['all_processes_mib']} MiB in all, " + ", ".join(
              f"{kind} {mib} MiB" for kind, mib in memory["sum_at_one_moment_mib"].items()))
    if top:
        print(f"scale: largest shuffle {top['bytes'] / 2**20:.1f} MiB ({top['records']:,} records), stage "
              f"{top['stage']} of {top['application']}")
    print(f"scale: wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
