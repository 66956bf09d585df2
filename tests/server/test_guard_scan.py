"""The request guard's JSON limits: the fast path agrees with the exact token scan."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.server._guard import _scan_tokens, scan_json

_text = st.text(alphabet=st.sampled_from('ab[]{}" \\é'), max_size=12)
_json: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=40,
)


@given(value=_json, depth=st.integers(0, 6), longest=st.integers(0, 8))
@settings(max_examples=400, deadline=None)
def test_the_fast_scan_gives_the_exact_scans_verdict(value: Any, depth: int, longest: int) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    fast = scan_json(body, max_depth=depth, max_string=longest)
    exact = _scan_tokens(body, max_depth=depth, max_string=longest)
    assert (fast is None) == (exact is None), (body, fast, exact)


def test_brackets_inside_strings_neither_add_nor_hide_depth() -> None:
    hidden = b"[" * 5 + b'"]]]]]"' + b"]" * 5  # depth 5, with closers inside a string
    assert "deeper" in str(scan_json(hidden, max_depth=4, max_string=100))
    assert scan_json(b'[["[[[[[[[[["]]', max_depth=2, max_string=100) is None


def test_a_large_metric_batch_passes_and_a_deep_one_does_not() -> None:
    rows = [{"key": f"m{i}", "value": i * 0.5, "step": i} for i in range(2000)]
    body = json.dumps({"metrics": rows}).encode()
    assert scan_json(body, max_depth=3, max_string=1000) is None
    assert "deeper" in str(scan_json(body, max_depth=2, max_string=1000))


def test_a_long_string_is_found_among_many_short_ones() -> None:
    short = json.dumps({"tags": ["x" * 99] * 40}).encode()  # quotes in every 50-byte window
    assert scan_json(short, max_depth=3, max_string=100) is None
    long = json.dumps({"tags": ["x" * 99] * 40, "note": "y" * 101}).encode()
    assert "longer" in str(scan_json(long, max_depth=3, max_string=100))
    assert "longer" in str(_scan_tokens(long, max_depth=3, max_string=100))
