"""A self-contained HTML monitoring report: inline CSS and SVG, no script, every string escaped.

Per feature: status, statistics, and a histogram of the reference against the window; then
quality and drift over the monitor's recent reports, latency and errors, and alerts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from keel.monitoring._model import Alert, MonitorReport

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;margin:6px 0 14px}td,th{border:1px solid #d5dae1;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f2f4f7}.muted{color:#5b6573}
.s-ok,.s-constant{color:#137333}.s-warning{color:#b06000}.s-drift,.s-firing,.s-failed{color:#c5221f}
.s-resolved,.s-sent{color:#137333}.badge{font-weight:600}.grid{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #d5dae1;border-radius:6px;padding:8px 10px;width:330px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
_REF, _CUR = "#8aa4c8", "#e8710a"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _histogram(hist: dict[str, Any] | None) -> str:
    if not hist:
        return '<p class="muted">No histogram.</p>'
    ref = [float(v) for v in hist.get("reference", [])]
    cur = [float(v) for v in hist.get("current", [])]
    labels = [str(c) for c in hist.get("categories", [])]
    edges = hist.get("edges")
    n = max(len(ref), len(cur))
    if n == 0:
        return '<p class="muted">No histogram.</p>'
    width, height, pad = 300, 110, 16
    top = max([*ref, *cur, 1e-9])
    slot = (width - 2) / n
    bars = []
    for i in range(n):
        for j, (values, color) in enumerate(((ref, _REF), (cur, _CUR))):
            value = values[i] if i < len(values) else 0.0
            h = (height - pad) * value / top
            x = 1 + i * slot + j * slot / 2
            title = labels[i] if i < len(labels) else ""
            if edges and i + 1 < len(edges):
                title = f"[{_num(edges[i])}, {_num(edges[i + 1])})"
            bars.append(
                f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{max(slot / 2 - 1, 1):.1f}"'
                f' height="{h:.1f}" fill="{color}"><title>{_e(title)} '
                f"{'reference' if j == 0 else 'window'} {value:.3f}</title></rect>"
            )
    axis = ""
    if edges:
        axis = (
            f'<text x="1" y="{height - 3}" font-size="10">{_e(_num(edges[0]))}</text>'
            f'<text x="{width - 1}" y="{height - 3}" font-size="10" text-anchor="end">'
            f"{_e(_num(edges[-1]))}</text>"
        )
    elif labels:
        axis = (
            f'<text x="1" y="{height - 3}" font-size="10">{_e(labels[0][:20])} …</text>'
            if len(labels) > 1
            else f'<text x="1" y="{height - 3}" font-size="10">{_e(labels[0][:20])}</text>'
        )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="reference and window histogram">{"".join(bars)}{axis}</svg>'
    )


def _line(points: Sequence[tuple[str, float | None]], label: str) -> str:
    values = [v for _, v in points if v is not None]
    if len(values) < 1:
        return f'<p class="muted">No {_e(label)} yet.</p>'
    width, height = 640, 140
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    step = (width - 40) / max(len(points) - 1, 1)
    coords = []
    for i, (_, v) in enumerate(points):
        if v is None:
            continue
        x = 30 + i * step
        y = 10 + (height - 30) * (1 - (v - lo) / span)
        coords.append((x, y, v, points[i][0]))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{_CUR}"><title>{_e(when)}: '
        f"{_e(_num(v))}</title></circle>"
        for x, y, v, when in coords
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(label)} over time">'
        f'<polyline points="{path}" fill="none" stroke="{_CUR}" stroke-width="2"/>{dots}'
        f'<text x="2" y="12" font-size="10">{_e(_num(hi))}</text>'
        f'<text x="2" y="{height - 18}" font-size="10">{_e(_num(lo))}</text></svg>'
    )


def _features(report: MonitorReport) -> str:
    drift = report.drift or {}
    features = list(drift.get("features", []))
    if drift.get("prediction"):
        features.append({**drift["prediction"], "feature": "(predictions)"})
    rows, cards = [], []
    for f in features:
        status = str(f.get("status", ""))
        stats = f.get("stats") or {}
        rows.append(
            "<tr>"
            f"<td>{_e(f.get('feature'))}</td><td>{_e(f.get('kind'))}</td>"
            f'<td class="badge s-{_e(status)}">{_e(status)}</td>'
            f"<td>{_e(f.get('metric'))} {_e(_num(f.get('value')))}</td>"
            + "".join(
                f"<td>{_e(_num(stats.get(k)))}</td>"
                for k in ("psi", "ks", "ks_pvalue", "chi2_pvalue", "js", "wasserstein")
            )
            + f"<td>{_e(f.get('current_rows'))}</td><td>{_e(f.get('message', ''))}</td></tr>"
        )
        cards.append(
            f'<div class="card"><b>{_e(f.get("feature"))}</b> '
            f'<span class="badge s-{_e(status)}">{_e(status)}</span><br>'
            f"{_histogram(f.get('histogram'))}</div>"
        )
    head = (
        "<tr><th>feature</th><th>kind</th><th>status</th><th>value</th><th>PSI</th><th>KS</th>"
        "<th>KS p</th><th>χ² p</th><th>JS</th><th>Wasserstein</th><th>rows</th><th>note</th></tr>"
    )
    legend = (
        f'<p class="legend"><span style="background:{_REF}"></span>reference'
        f'<span style="background:{_CUR}"></span>window</p>'
    )
    return f'<table>{head}{"".join(rows)}</table>{legend}<div class="grid">{"".join(cards)}</div>'


def _quality(report: MonitorReport) -> str:
    quality = report.quality
    if not quality:
        return '<p class="muted">No predictions to judge in this window.</p>'
    parts = [
        f"<p>Task: {_e(quality.get('task') or 'unknown')} · labelled "
        f"{_e(quality.get('labelled'))} of {_e(quality.get('rows'))} "
        f"(coverage {_e(_num(quality.get('coverage'), 3))}) · status "
        f'<span class="badge">{_e(quality.get("status"))}</span></p>'
    ]
    if quality.get("message"):
        parts.append(f'<p class="muted">{_e(quality["message"])}</p>')
    if quality.get("auc_from"):
        note = f" — {quality['auc_note']}" if quality.get("auc_note") else ""
        parts.append(f'<p class="muted">AUC from {_e(quality["auc_from"])}{_e(note)}</p>')
    versions = quality.get("versions") or []
    if versions:
        keys = sorted(
            {k for v in versions for k in v} - {"version", "labelled", "coverage", "auc_from"}
        )
        parts.append(
            "<table><tr><th>version</th><th>labelled</th><th>coverage</th>"
            + "".join(f"<th>{_e(k)}</th>" for k in keys)
            + "</tr>"
            + "".join(
                f"<tr><td>{_e(v.get('version'))}</td><td>{_e(v.get('labelled'))}</td>"
                f"<td>{_e(_num(v.get('coverage'), 3))}</td>"
                + "".join(f"<td>{_e(_num(v.get(k)))}</td>" for k in keys)
                + "</tr>"
                for v in versions
            )
            + "</table>"
        )
    return "".join(parts)


def _latency(report: MonitorReport) -> str:
    if not report.latency:
        return '<p class="muted">No latency data in this window.</p>'
    keys = [
        "version",
        "variant",
        "requests",
        "predictions",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "errors_total",
        "error_rate",
    ]
    return (
        "<table><tr>"
        + "".join(f"<th>{_e(k)}</th>" for k in keys)
        + "</tr>"
        + "".join(
            "<tr>"
            + "".join(
                f"<td>{_e(e.get(k) if isinstance(e.get(k), str) else _num(e.get(k)))}</td>"
                for k in keys
            )
            + "</tr>"
            for e in report.latency
        )
        + "</table>"
    )


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return '<p class="muted">No alerts.</p>'
    rows = []
    for a in alerts:
        deliveries = ", ".join(f"{d.kind} {d.event} {d.status}" for d in a.deliveries) or "-"
        rows.append(
            f'<tr><td>{_e(a.rule)}</td><td class="badge s-{_e(a.state)}">{_e(a.state)}</td>'
            f"<td>{_e(a.metric)}</td><td>{_e(_num(a.value))}</td><td>{_e(a.message)}</td>"
            f"<td>{_e(a.started_at.isoformat(timespec='seconds'))}</td><td>{_e(deliveries)}</td></tr>"
        )
    return (
        "<table><tr><th>rule</th><th>state</th><th>metric</th><th>value</th><th>message</th>"
        f"<th>since</th><th>deliveries</th></tr>{''.join(rows)}</table>"
    )


def render_html(
    report: MonitorReport,
    *,
    history: Sequence[MonitorReport] = (),
    alerts: Sequence[Alert] = (),
) -> str:
    """The monitoring report page of ``report`` (``history``: recent reports, newest first)."""
    drift = report.drift or {}
    ordered = list(reversed(history or [report]))
    when = [r.created_at.isoformat(timespec="minutes") for r in ordered]
    quality_key = "accuracy"
    for r in ordered:
        overall = (r.quality or {}).get("overall") or {}
        if overall:
            quality_key = "accuracy" if "accuracy" in overall else "rmse"
            break
    quality_points = [
        (w, ((r.quality or {}).get("overall") or {}).get(quality_key))
        for w, r in zip(when, ordered, strict=True)
    ]
    share_points = [
        (w, (r.drift or {}).get("share_drifted")) for w, r in zip(when, ordered, strict=True)
    ]
    title = f"Monitor {report.monitor}"
    span = ""
    if report.window_start and report.window_end:
        span = (
            f" · {report.window_start.isoformat(timespec='seconds')} → "
            f"{report.window_end.isoformat(timespec='seconds')}"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)} <span class="badge s-{_e(report.status)}">{_e(report.status)}</span></h1>'
        f'<p class="muted">Report {_e(report.id)} · '
        f"{_e(report.created_at.isoformat(timespec='seconds'))}"
        f" · window {_e(report.window)} ({_e(report.rows)} predictions){_e(span)} · reference "
        f"{_e(report.reference)}</p>"
        f"<p>Drifted features: {_e(', '.join(drift.get('drifted', [])) or 'none')} "
        f"(share {_e(_num(drift.get('share_drifted'), 3))})</p>"
        f"<h2>Drift per feature</h2>{_features(report)}"
        f"<h2>Quality</h2>{_quality(report)}"
        f"<h3>{_e(quality_key)} over time</h3>{_line(quality_points, quality_key)}"
        f"<h3>Share of drifted features over time</h3>{_line(share_points, 'drift share')}"
        f"<h2>Latency and errors</h2>{_latency(report)}"
        f"<h2>Alerts</h2>{_alerts(alerts)}"
        "</body></html>"
    )
