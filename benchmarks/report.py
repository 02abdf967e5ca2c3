"""The goals table of benchmarks/README.md, rendered from the committed results (``benchmarks/results/*.json``).

``benchmarks.run`` rewrites the table after a full run into ``benchmarks/results``; a test checks that the README
shows what the results hold.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import REPO_ROOT, RESULTS_DIR

README = REPO_ROOT / "benchmarks" / "README.md"
BEGIN, END = "<!-- results:begin (benchmarks/report.py) -->", "<!-- results:end -->"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(results_dir: Path = RESULTS_DIR) -> str:
    """One row per goal of every result: what, the two medians, the measured ratio, the target and the verdict."""
    lines = ["| benchmark | goal | figure (median) | baseline (median) | measured | target | verdict |",
             "|---|---|---|---|---|---|---|"]
    for path in sorted(results_dir.glob("*.json")):
        result = json.loads(path.read_text())
        figures = result["figures"]
        for goal in result["goals"]:
            fig = figures[goal["figure"]]
            base = figures[goal["baseline"]] if goal["baseline"] else None
            sign = "≥ " if goal["higher_is_better"] else "≤ "
            target = "" if goal["target"] is None else f"{sign}{goal['target']:g}"
            verdict = {True: "met", False: "**missed**", None: "reported"}[goal["met"]]
            measured = f"{goal['measured']:.3g}×" if base else f"{_number(goal['measured'])} {fig['unit']}"
            lines.append(
                f"| {result['benchmark']} | {goal['what']} | {goal['figure']}: {_number(fig['median'])} {fig['unit']} "
                f"| {(goal['baseline'] + ': ' + _number(base['median']) + ' ' + base['unit']) if base else '—'} "
                f"| {measured} | {target} | {verdict} |")
    return "\n".join(lines)


def update_readme(results_dir: Path = RESULTS_DIR, readme: Path = README) -> None:
    text = readme.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest or END not in rest:
        raise ValueError(f"{readme} lacks the markers {BEGIN} ... {END}")
    readme.write_text(f"{head}{BEGIN}\n{table(results_dir)}\n{END}{tail}")


def readme_table(readme: Path = README) -> str:
    """The table the README shows now, between the markers."""
    return readme.read_text().partition(BEGIN)[2].partition(END)[0].strip()
