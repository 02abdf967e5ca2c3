"""The run report: one self-contained HTML page beside ``make run``'s JSON summary (var/run-report.html).

    python -m spark_jobs.report --profile local --summary var/run-summary.json [--out var/run-report.html]

It shows what a data engineer checks after a run, from the summary and from what the lake and the registry hold now
(``spark_jobs.status``; no Spark):

- the counts and their reconciliation (landed = ingested + quarantined + duplicate);
- the quarantine reasons, as a bar chart;
- each Delta table's version and last operation, and the stream's last micro-batch;
- the champion's and the challenger's metrics side by side, and the promotion decision;
- each stage's wall time: ``make run``'s steps and the Airflow tasks inside them.

The charts are PNGs inlined as data URIs, so the file opens anywhere, offline, and can be attached to a ticket.
"""

from __future__ import annotations

import base64
import html
import io as bytes_io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from spark_jobs.cli import emit_result, job_parser, parse_job_args

COUNTS = (("rows_landed", "landed"), ("rows_ingested", "ingested into bronze"),
          ("rows_quarantined", "quarantined"), ("rows_duplicate", "duplicates (already in bronze)"),
          ("bronze_rows", "bronze table rows"), ("quarantine_rows", "quarantine table rows"),
          ("feature_rows", "feature rows"), ("predictions_rows", "batch predictions"),
          ("stream_rows", "stream predictions"), ("predictions_unattributed", "predictions without their model"))
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 62em; color: #1d2430; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: .25em .9em; border-bottom: 1px solid #dde; }
th { text-align: left; background: #f3f5f9; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #17803d; font-weight: 600; } .bad { color: #b42318; font-weight: 600; } .muted { color: #667; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="n">{f"{value:,.4f}".rstrip("0").rstrip(".")}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def bar_chart(values: Mapping[str, float], title: str, unit: str) -> str:
    """A horizontal bar chart of ``values`` as an inline PNG ``<img>``; empty when there is nothing to draw."""
    if not values:
        return '<p class="muted">nothing to show</p>'
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels, numbers = list(values), [float(v) for v in values.values()]
    fig = Figure(figsize=(7, 0.45 * len(labels) + 1.1))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = ax.barh(labels[::-1], numbers[::-1], color="#3b6fd4")
    ax.bar_label(bars, labels=[f"{n:,.0f}" for n in numbers[::-1]], padding=3)
    ax.set_title(title)
    ax.set_xlabel(unit)
    ax.margins(x=0.15)
    fig.tight_layout()
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'


def stages(summary: Mapping[str, Any]) -> dict[str, float]:
    """Each stage's seconds, in run order: ``make run``'s steps, with an Airflow DAG's step replaced by its tasks."""
    tasks = summary.get("tasks_s") or {}
    found: dict[str, float] = {}
    for step, seconds in (summary.get("steps_s") or {}).items():
        if tasks.get(step):
            found.update({f"{step}.{task}": s for task, s in tasks[step].items()})
        else:
            found[step] = seconds
    return found


def render(summary: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    """The report's HTML from a run summary and ``spark_jobs.status.status``'s document."""
    reconciled = summary.get("reconciled")
    verdict = ('<span class="ok">reconciled</span>' if reconciled else '<span class="bad">NOT reconciled</span>')
    counts = [(label, summary.get(key)) for key, label in COUNTS if key in summary]
    tables = [(name, t.get("version"), t.get("operation"), t.get("committed_at")) if t.get("exists")
              else (name, "absent", "", "") for name, t in (state.get("tables") or {}).items()]
    streams = [(name, c.get("last_batch"), c.get("committed_at")) for name, c in (state.get("stream") or {}).items()
               if c.get("exists")]
    model = state.get("model") or {}
    aliases = {a: model.get(a) for a in ("champion", "challenger") if model.get(a)}
    metric_names = sorted({m for found in aliases.values() for m in found["metrics"]})
    metrics = [(m, *(found["metrics"].get(m) for found in aliases.values())) for m in metric_names]
    versions = [(a, found["version"], found["run_id"], found["promotion"].get("decision"),
                 found["promotion"].get("reason")) for a, found in aliases.items()]
    durations = stages(summary)
    total = summary.get("duration_s")
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Tributary run report</title>"
        f"<style>{STYLE}</style></head><body>",
        "<h1>Tributary run report</h1>",
        f'<p class="muted">profile {html.escape(str(summary.get("profile")))}'
        f"{f' · {total:,.0f} s' if total else ''} · model {html.escape(str(model.get('name') or ''))}</p>",
        f'<h2>Counts <span id="reconciliation">{verdict}</span></h2>',
        '<p class="muted">landed = ingested + quarantined + duplicate, from the last ingest\'s audit row</p>',
        _table(["what", "rows"], counts, "counts"),
        "<h2>Quarantine reasons</h2>",
        bar_chart(dict(sorted((summary.get("quarantine_reasons") or {}).items(), key=lambda kv: -kv[1])),
                  "Quarantined rows by reason, most first", "rows"),
        "<h2>Tables</h2>",
        _table(["Delta table", "version", "last operation", "committed"], tables, "tables"),
        _table(["stream checkpoint", "last micro-batch", "committed"], streams, "streams") if streams else "",
        "<h2>Models</h2>",
        (_table(["alias", "version", "run", "promotion", "reason"], versions, "aliases")
         + _table(["metric", *aliases], metrics, "metrics")) if aliases
        else f'<p class="bad">{html.escape(str(model.get("error") or "no champion or challenger"))}</p>',
        "<h2>Stages</h2>",
        bar_chart(durations, "Wall time by stage", "seconds"),
        _table(["stage", "seconds"], [(k, round(v, 1)) for k, v in durations.items()], "stages"),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(summary_path: Path, out: Path, state: Mapping[str, Any]) -> Path:
    summary = json.loads(summary_path.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(summary, state))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = job_parser(__doc__)
    parser.add_argument("--summary", type=Path, required=True, help="the run's JSON summary (spark_jobs.summary)")
    parser.add_argument("--out", type=Path, help="where to write the HTML (default: run-report.html beside it)")
    args, profile = parse_job_args(parser, argv)
    from spark_jobs.status import status

    out = write_report(args.summary, args.out or args.summary.with_name("run-report.html"), status(profile))
    result = {"report": str(out)}
    emit_result("report", result)
    return result


if __name__ == "__main__":
    main()
