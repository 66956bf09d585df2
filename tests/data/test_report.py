"""Validation reports for people: terminal text and a self-contained, escaped HTML page."""

from __future__ import annotations

import re

import polars as pl

from keel.data._checks import parse_suite, run_suite
from keel.data._report import render_html, render_text

EVIL = "<script>alert('x')</script>"


def _result():  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"v": [1, 500, 3], "tag": [EVIL, "[bold]x[/]", "ok"]})
    suite = parse_suite(
        [
            {"kind": "range", "column": "v", "max": 100, "name": f"range {EVIL}"},
            {"kind": "allowed_values", "column": "tag", "values": ["ok"], "level": "warning"},
            {"kind": "not_null", "column": "v"},
        ]
    )
    return run_suite(frame, suite)


def test_html_is_self_contained_escaped_and_highlights_failures() -> None:
    page = render_html(_result(), title=f"Report {EVIL}")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert not re.search(r"(src|href)\s*=", page)  # nothing loaded from elsewhere
    assert "default-src 'none'" in page
    assert page.count('<tr class="fail">') == 1
    assert page.count('<tr class="warn">') == 1
    assert page.count('<tr class="pass">') == 1
    assert "FAILED" in page and "500" in page


def test_text_reads_well_and_escapes_markup() -> None:
    from rich.console import Console

    text = render_text(_result())
    console = Console(record=True, width=200)
    console.print(text)
    plain = console.export_text()
    assert plain.startswith("Validation FAILED: 3 checks over 3 rows — 1 error(s), 1 warning(s)")
    assert "FAIL range <script>" in plain and "WARN allowed_values:tag" in plain
    assert "[bold]x[/]" in plain  # data is shown, not interpreted as markup
    assert "PASS not_null:v" in plain
