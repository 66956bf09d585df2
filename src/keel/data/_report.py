"""A validation result for people: rich text for the terminal, a self-contained HTML page.

The HTML page loads nothing from elsewhere (inline CSS, no scripts, a Content-Security-Policy
that forbids everything else) and escapes every value, since values come from the data.
"""

from __future__ import annotations

import html
import json
from typing import Any

from keel.data._checks import CheckResult, ValidationResult

__all__ = ["render_html", "render_text"]

_MAX_VALUE = 200


def _short(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _status(check: CheckResult) -> tuple[str, str]:
    if check.passed:
        return "pass", "PASS"
    return ("fail", "FAIL") if check.level == "error" else ("warn", "WARN")


def render_text(result: ValidationResult) -> str:
    """The result as rich console markup: a verdict, one line per check, failing rows."""
    from rich.markup import escape

    verdict = (
        "[bold green]PASSED[/]"
        if result.passed and not result.warnings
        else "[bold yellow]PASSED with warnings[/]"
        if result.passed
        else "[bold red]FAILED[/]"
    )
    lines = [
        f"Validation {verdict}: {len(result.checks)} checks over {result.rows:,} rows — "
        f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)",
        "",
    ]
    colours = {"pass": "green", "fail": "red", "warn": "yellow"}
    for check in result.checks:
        css, label = _status(check)
        where = f" [dim]on {escape(check.column)}[/]" if check.column else ""
        lines.append(
            f"[{colours[css]}]{label:4}[/] [bold]{escape(check.name)}[/] "
            f"[dim]({escape(check.kind)}, {check.level})[/]{where}"
        )
        lines.append(
            f"     observed {escape(_short(check.observed))}; "
            f"threshold {escape(_short(check.threshold))}"
        )
        lines.append(f"     {escape(check.message)}")
        for row in check.failing_rows:
            lines.append(f"       [dim]row[/] {escape(_short(row))}")
    return "\n".join(lines)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2430}
h1{font-size:1.4rem;margin:0 0 .3rem}
.verdict{display:inline-block;padding:.2rem .6rem;border-radius:4px;font-weight:600;color:#fff}
.v-pass{background:#1a7f37}.v-warn{background:#9a6700}.v-fail{background:#cf222e}
table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}
tr.fail{background:#ffebe9}tr.warn{background:#fff8c5}
.badge{font-weight:700}.pass .badge{color:#1a7f37}.fail .badge{color:#cf222e}
.warn .badge{color:#9a6700}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{margin:.3rem 0 0;white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:.4rem}
"""


def render_html(result: ValidationResult, *, title: str) -> str:
    """A self-contained HTML page of the result; failing checks are highlighted."""
    e = html.escape
    if not result.passed:
        verdict, css = "FAILED", "v-fail"
    elif result.warnings:
        verdict, css = "PASSED with warnings", "v-warn"
    else:
        verdict, css = "PASSED", "v-pass"
    rows = []
    for check in result.checks:
        status, label = _status(check)
        failing = ""
        if check.failing_rows:
            shown = "\n".join(_short(r) for r in check.failing_rows)
            failing = f"<pre>{e(shown)}</pre>"
        rows.append(
            f'<tr class="{status}"><td class="badge">{label}</td>'
            f"<td><b>{e(check.name)}</b><br><code>{e(check.kind)}</code></td>"
            f"<td>{e(check.column or '')}</td><td>{e(check.level)}</td>"
            f"<td>{e(_short(check.observed))}</td><td>{e(_short(check.threshold))}</td>"
            f"<td>{e(check.message)}{failing}</td></tr>"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1>"
        f'<p><span class="verdict {css}">{verdict}</span> '
        f"{len(result.checks)} checks over {result.rows:,} rows — {len(result.errors)} "
        f"error(s), {len(result.warnings)} warning(s)</p>"
        "<table><thead><tr><th>status</th><th>check</th><th>column</th><th>level</th>"
        "<th>observed</th><th>threshold</th><th>details</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>\n"
    )
