"""What every benchmark shares: timing with repeats, the machine and versions, and writing results and plots.

A benchmark module exposes ``NAME``, ``TITLE`` and ``run(quick, work) -> Result``; ``benchmarks.run`` calls each,
then ``write`` puts ``benchmarks/results/<name>.json`` and ``<name>.png`` next to each other. Every figure is
``Stats`` over at least ``REPEATS`` runs (min, median, max and the runs themselves), and every goal is a ratio of
two figures measured in the same run on the same data: absolute times on a shared 2-core machine are noise.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from tributary.config import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
REPEATS = 3
VERSIONED = ("pyspark", "delta-spark", "torch", "mlflow", "pandas", "pyarrow", "numpy", "apache-airflow",
             "apache-airflow-providers-apache-spark", "apache-airflow-providers-cncf-kubernetes")


@dataclass
class Stats:
    """One figure over repeated runs; ``unit`` says what the numbers are (``s``, ``rows/s per core``...)."""

    unit: str
    runs: list[float]
    min: float = 0.0
    median: float = 0.0
    max: float = 0.0

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(f"no runs for a figure in {self.unit}")
        self.min, self.median, self.max = min(self.runs), statistics.median(self.runs), max(self.runs)


@dataclass
class Goal:
    """``figure / baseline`` (medians) against ``target``. An empty ``baseline`` compares the figure's median
    itself (an absolute goal, in the figure's unit); ``target`` None only reports the ratio.
    ``higher_is_better`` False for time-like figures."""

    what: str
    figure: str
    baseline: str
    target: float | None
    higher_is_better: bool = True
    measured: float = 0.0
    met: bool | None = None

    def measure(self, figures: dict[str, Stats]) -> None:
        missing = {self.figure, self.baseline} - set(figures) - {""}
        if missing:
            raise ValueError(f"goal {self.what!r} names figures that were not measured: {sorted(missing)}")
        value = figures[self.figure].median
        self.measured = float(f"{value / figures[self.baseline].median if self.baseline else value:.4g}")  # 4 digits
        if self.target is not None:
            self.met = self.measured >= self.target if self.higher_is_better else self.measured <= self.target


@dataclass
class Result:
    name: str
    title: str
    quick: bool
    data: dict[str, Any]
    figures: dict[str, Stats]
    goals: list[Goal]
    notes: list[str] = field(default_factory=list)
    plot: dict[str, Any] = field(default_factory=dict)  # {"kind": "bar"} or {"kind": "line", "x": ..., "series": ...}

    def __post_init__(self) -> None:
        for goal in self.goals:
            goal.measure(self.figures)


def repeat(fn: Callable[[], Any], repeats: int = REPEATS, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls (JIT, worker start, caches)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(methods: Mapping[str, Callable[[], Any]], repeats: int = REPEATS,
                warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of ``repeats`` calls of each of ``methods``, taken in rounds (each method once per round, in
    order) after ``warmup`` untimed rounds: every method's runs spread over the same stretch of the process's life,
    so none is timed on a colder JVM (C2 still compiling the Delta write path) or a quieter machine than another.
    Timed one after the other, methods drift with their order: P1's first, Tributary's scoring, came out 15-19%
    slower than it does in rounds (5 December)."""
    for _ in range(warmup):
        for fn in methods.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    return out


def machine() -> dict[str, Any]:
    """The host the figures come from: CPUs, memory, OS, Python, Java, and the commit measured."""
    memory_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False, cwd=REPO_ROOT).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if git("status", "--porcelain") else "")
    return {"cpus": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1), "platform": platform.platform(),
            "python": platform.python_version(), "java": java[0] if java else "", "commit": commit,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def versions() -> dict[str, str]:
    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write(result: Result, out_dir: Path, started: float) -> Path:
    """``<out_dir>/<name>.json`` (and its plot, ``<name>.png``); returns the JSON's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": result.name, "title": result.title, "quick": result.quick,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - started, 1),
        "machine": machine(), "versions": versions(), "data": result.data,
        "figures": {k: asdict(v) for k, v in result.figures.items()},
        "goals": [asdict(g) for g in result.goals], "notes": result.notes,
    }
    path = out_dir / f"{result.name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    plot(result, out_dir / f"{result.name}.png")
    return path


def plot(result: Result, path: Path) -> None:
    """A bar per figure (median, with min-max whiskers), one chart per unit; or ``result.plot``'s lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if result.plot.get("kind") == "line":
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, ys in result.plot["series"].items():
            ax.plot(result.plot["x"], ys, marker="o", label=label)
        ax.set_xscale(result.plot.get("xscale", "linear"))
        ax.set_yscale(result.plot.get("yscale", "linear"))
        ax.set_xlabel(result.plot["xlabel"])
        ax.set_ylabel(result.plot["ylabel"])
        ax.legend()
        axes = [ax]
    else:
        units = sorted({s.unit for s in result.figures.values()})
        fig, axes = plt.subplots(len(units), 1, figsize=(9, 1.2 + 0.45 * len(result.figures)), squeeze=False)
        axes = list(axes[:, 0])
        for ax, unit in zip(axes, units):
            names = [n for n, s in result.figures.items() if s.unit == unit][::-1]  # the first figure on top
            medians = [result.figures[n].median for n in names]
            low = [m - result.figures[n].min for m, n in zip(medians, names)]
            high = [result.figures[n].max - m for m, n in zip(medians, names)]
            ax.barh(names, medians, xerr=[low, high], capsize=3, color="#4C72B0")
            ax.set_xlabel(f"{unit} (median; whiskers min-max)")
            ax.set_xscale("log" if max(medians) / max(min(medians), 1e-12) > 50 else "linear")
            for y, m in enumerate(medians):
                ax.annotate(f"{m:,.0f}" if m >= 100 else f"{m:.3g}", (m, y), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=8)
    axes[0].set_title(f"{result.name}: {result.title}" + (" (quick)" if result.quick else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
