"""The run-search filter and ordering parser: exact ASTs, precise errors, limits, properties."""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.errors import FilterSyntaxError, InvalidInputError
from keel.store import _filter
from keel.store._filter import (
    ATTRIBUTES,
    And,
    Comparison,
    Expr,
    Not,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)

OPERATOR_LIST = "a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS)"
MAY_2024 = 1_714_521_600_000  # 2024-05-01T00:00:00Z in epoch milliseconds
BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
BLANKS = str.maketrans("\t\r\n", "   ")


def metric(key: str, op: str, value: object) -> Comparison:
    return Comparison("metric", key, op, value)  # type: ignore[arg-type]


def param(key: str, op: str, value: object) -> Comparison:
    return Comparison("param", key, op, value)  # type: ignore[arg-type]


def tag(key: str, op: str, value: object) -> Comparison:
    return Comparison("tag", key, op, value)  # type: ignore[arg-type]


def attr(key: str, op: str, value: object) -> Comparison:
    return Comparison("attribute", key, op, value)  # type: ignore[arg-type]


A1, B2, C3 = metric("a", ">", 1.0), metric("b", ">", 2.0), metric("c", ">", 3.0)


def raises(text: str, *, order_by: bool = False) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(text) if order_by else parse_filter(text)
    return info.value


def check_layout(error: FilterSyntaxError, text: str) -> None:
    """Four lines: the summary, the excerpt, a caret under the offending token, an example."""
    summary, excerpt, caret, example = str(error).split("\n")
    column = error.details["column"]
    assert summary.startswith("Invalid ")
    assert f" at column {column}: " in summary
    assert summary.endswith(".")
    assert example.startswith("Example: ")
    assert error.details["position"] == column - 1
    assert excerpt.startswith("  ")
    assert caret.lstrip(" ") == "^"
    token = error.details["token"]
    if token is not None:  # the caret points at the token's first character
        assert excerpt[caret.index("^")] == BAD_CHAR.sub("\ufffd", token[0]).translate(BLANKS)
    if len(text) <= 72:
        assert excerpt == "  " + BAD_CHAR.sub("\ufffd", text).translate(BLANKS)
        assert caret == "  " + " " * (column - 1) + "^"


# -- the module's surface ---------------------------------------------------------------------


def test_exports_exactly_the_documented_names() -> None:
    assert _filter.__all__ == sorted(_filter.__all__)
    assert set(_filter.__all__) == {
        "ATTRIBUTES",
        "And",
        "Comparison",
        "Entity",
        "Expr",
        "Not",
        "Or",
        "OrderKey",
        "parse_filter",
        "parse_order_by",
    }


def test_module_is_pure() -> None:
    """No engines, frameworks or I/O: only the standard library's pure parts and keel.errors."""
    tree = ast.parse(Path(_filter.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    allowed = {"__future__", "collections.abc", "dataclasses", "datetime", "keel.errors", "math",
               "re", "typing"}  # fmt: skip
    assert imported <= allowed


def test_ast_nodes_are_frozen_and_slotted() -> None:
    node = metric("auc", ">", 0.8)
    with pytest.raises(AttributeError):
        node.key = "x"  # type: ignore[misc]
    for cls in (Comparison, And, Or, Not, OrderKey):
        assert "__slots__" in vars(cls)
    assert {
        "status",
        "name",
        "run_id",
        "experiment_id",
        "user",
        "start_time",
        "end_time",
    } == ATTRIBUTES


# -- positive cases: exact ASTs ---------------------------------------------------------------

POSITIVE: list[tuple[str, Expr]] = [
    # metrics and numbers
    ("metrics.auc > 0.8", metric("auc", ">", 0.8)),
    ("metrics.auc>0.8", metric("auc", ">", 0.8)),
    ("metric.auc >= 1", metric("auc", ">=", 1.0)),
    ("METRICS.auc < -1e-3", metric("auc", "<", -0.001)),
    ("metrics.loss <= +2.5E+3", metric("loss", "<=", 2500.0)),
    ("metrics.x = .5", metric("x", "=", 0.5)),
    ("metrics.x == 5.", metric("x", "=", 5.0)),
    ("metrics.x != 0", metric("x", "!=", 0.0)),
    ("metrics.x <> 0", metric("x", "!=", 0.0)),
    ("metrics.x > -Infinity", metric("x", ">", -math.inf)),
    ("metrics.x < infinity", metric("x", "<", math.inf)),
    ("metrics.x < +INFINITY", metric("x", "<", math.inf)),
    ("metrics.x = 007", metric("x", "=", 7.0)),
    ("metrics.x = -0", metric("x", "=", 0.0)),
    ("metrics.x = 9223372036854775807", metric("x", "=", float(2**63 - 1))),
    ("metrics.x in (1, 2.5, -Infinity)", metric("x", "IN", (1.0, 2.5, -math.inf))),
    ("metrics.x NOT IN (3)", metric("x", "NOT IN", (3.0,))),
    ("metrics.x is null", metric("x", "IS NULL", None)),
    ("metrics.x IS NOT NULL", metric("x", "IS NOT NULL", None)),
    # keys
    ("metrics.val_auc > 0.9", metric("val_auc", ">", 0.9)),
    ("metrics.val-auc > 0.9", metric("val-auc", ">", 0.9)),
    ("metrics.train/loss < 1", metric("train/loss", "<", 1.0)),
    ("metrics.1st > 0", metric("1st", ">", 0.0)),
    ("metrics.`val loss` < 0.1", metric("val loss", "<", 0.1)),
    ('metrics."val loss" < 0.1', metric("val loss", "<", 0.1)),
    ("tags.mlflow.runName = 'x'", tag("mlflow.runName", "=", "x")),
    ("tags.`mlflow.source.type` = 'NOTEBOOK'", tag("mlflow.source.type", "=", "NOTEBOOK")),
    ("params.\"lr.init\" = '0.1'", param("lr.init", "=", "0.1")),
    ("params.`a``b` = 'x'", param("a`b", "=", "x")),
    ('params."a""b" = \'x\'', param('a"b', "=", "x")),
    ("params.`a,b (c)` = 'x'", param("a,b (c)", "=", "x")),
    ("tags.`ключ` = 'значение'", tag("ключ", "=", "значение")),
    # params, tags and string values
    ("params.model = 'rf'", param("model", "=", "rf")),
    ('params.model = "rf"', param("model", "=", "rf")),
    ("param.model != 'rf'", param("model", "!=", "rf")),
    ("parameters.model = 'rf'", param("model", "=", "rf")),
    ("Params.model = 'rf'", param("model", "=", "rf")),
    ("tag.team = 'vision'", tag("team", "=", "vision")),
    ("params.x = ''", param("x", "=", "")),
    ("params.x = 'it''s'", param("x", "=", "it's")),
    (r"params.x = 'it\'s'", param("x", "=", "it's")),
    (r'params.x = "say \"hi\""', param("x", "=", 'say "hi"')),
    ('params.x = "say ""hi"""', param("x", "=", 'say "hi"')),
    (r"params.x = 'a\\b'", param("x", "=", "a\\b")),
    (r"params.x = 'C:\new'", param("x", "=", "C:\\new")),
    (r"params.x LIKE '100\%'", param("x", "LIKE", "100\\%")),
    ("params.x = 'ünï ✓ 😀'", param("x", "=", "ünï ✓ 😀")),
    ("params.x = ' spaced  '", param("x", "=", " spaced  ")),
    ("params.x > 'b'", param("x", ">", "b")),
    ("params.flag = true", param("flag", "=", "true")),
    ("tags.flag = FALSE", tag("flag", "=", "false")),
    ("tags.flag in (true, 'maybe')", tag("flag", "IN", ("true", "maybe"))),
    ("params.x like '%rf%'", param("x", "LIKE", "%rf%")),
    ("params.x ILIKE 'RF%'", param("x", "ILIKE", "RF%")),
    ("params.x not like '%rf'", param("x", "NOT LIKE", "%rf")),
    ("params.x NOT ilike '%rf'", param("x", "NOT ILIKE", "%rf")),
    ("params.x IN ('a', \"b\")", param("x", "IN", ("a", "b"))),
    ("params.x not in ('a')", param("x", "NOT IN", ("a",))),
    ("tags.x is not null", tag("x", "IS NOT NULL", None)),
    ("params.x IS NULL", param("x", "IS NULL", None)),
    # attributes, bare and prefixed, with aliases
    ("status = 'running'", attr("status", "=", "RUNNING")),
    ("Status = 'killed'", attr("status", "=", "KILLED")),
    ("attributes.status != 'Finished'", attr("status", "!=", "FINISHED")),
    ("attribute.status in ('failed', 'KILLED')", attr("status", "IN", ("FAILED", "KILLED"))),
    ("status like 'RUN%'", attr("status", "LIKE", "RUN%")),
    ("attr.name = 'x'", attr("name", "=", "x")),
    ("run.run_name = 'x'", attr("name", "=", "x")),
    ("run_name like 'x%'", attr("name", "LIKE", "x%")),
    ("id = 'abc'", attr("run_id", "=", "abc")),
    ("attributes.run_id in ('a', 'b')", attr("run_id", "IN", ("a", "b"))),
    ("attributes.`run_id` = 'a'", attr("run_id", "=", "a")),
    ("experiment_id = '1'", attr("experiment_id", "=", "1")),
    ("user = 'alice'", attr("user", "=", "alice")),
    ("user_id = 'alice'", attr("user", "=", "alice")),
    # times
    ("start_time > 1714521600000", attr("start_time", ">", MAY_2024)),
    ("end_time <= '2024-05-01T00:00:00Z'", attr("end_time", "<=", MAY_2024)),
    ("start_time >= '2024-05-01'", attr("start_time", ">=", MAY_2024)),
    ("start_time >= '2024-05-01 00:00:00'", attr("start_time", ">=", MAY_2024)),
    ("start_time < '2024-05-01T02:00:00+02:00'", attr("start_time", "<", MAY_2024)),
    ("start_time = '2024-05-01T00:00:00.123Z'", attr("start_time", "=", MAY_2024 + 123)),
    ("start_time > '1969-12-31T23:59:59.999Z'", attr("start_time", ">", -1)),
    ("start_time in (0, -1)", attr("start_time", "IN", (0, -1))),
    ("end_time IS NULL", attr("end_time", "IS NULL", None)),
    # boolean structure and precedence
    ("metrics.a > 1 and metrics.b > 2", And((A1, B2))),
    ("metrics.a > 1 or metrics.b > 2 and metrics.c > 3", Or((A1, And((B2, C3))))),
    ("metrics.a > 1 and metrics.b > 2 or metrics.c > 3", Or((And((A1, B2)), C3))),
    ("(metrics.a > 1 or metrics.b > 2) and metrics.c > 3", And((Or((A1, B2)), C3))),
    ("not metrics.a > 1 and metrics.b > 2", And((Not(A1), B2))),
    ("not (metrics.a > 1 or metrics.b > 2)", Not(Or((A1, B2)))),
    ("not not metrics.a > 1", Not(Not(A1))),
    ("NOT(metrics.a > 1)", Not(A1)),
    ("((metrics.a > 1))", A1),
    ("metrics.a > 1 and (metrics.b > 2 and metrics.c > 3)", And((A1, B2, C3))),
    ("(metrics.a > 1 and metrics.b > 2) and metrics.c > 3", And((A1, B2, C3))),
    ("(metrics.a > 1 or metrics.b > 2) or (metrics.c > 3 or metrics.a > 1)", Or((A1, B2, C3, A1))),
    (
        "metrics.a > 1 or (metrics.b > 2 and metrics.c > 3) or metrics.a > 1",
        Or((A1, And((B2, C3)), A1)),
    ),
    ("metrics.a > 1 AnD metrics.b > 2 oR NOT metrics.c > 3", Or((And((A1, B2)), Not(C3)))),
    ("\tmetrics.a\n>\r\n1  ", A1),
    # MLflow-style filters seen in the wild
    (
        "metrics.rmse < 1 and params.model = 'tree' and tags.`mlflow.source.type` = 'NOTEBOOK'",
        And(
            (
                metric("rmse", "<", 1.0),
                param("model", "=", "tree"),
                tag("mlflow.source.type", "=", "NOTEBOOK"),
            )
        ),
    ),
    (
        "attributes.status = 'FINISHED' and metrics.accuracy >= 0.9",
        And((attr("status", "=", "FINISHED"), metric("accuracy", ">=", 0.9))),
    ),
    (
        "tags.`mlflow.user` = 'alice' and attributes.start_time > 1600000000000",
        And((tag("mlflow.user", "=", "alice"), attr("start_time", ">", 1_600_000_000_000))),
    ),
    (
        "attributes.run_name ILIKE '%sweep%' AND params.optimizer IN ('adam', 'sgd')",
        And((attr("name", "ILIKE", "%sweep%"), param("optimizer", "IN", ("adam", "sgd")))),
    ),
    # MLflow's spellings of start_time and the run name (its UI writes `Run name`)
    ("attributes.created > 1600000000000", attr("start_time", ">", 1_600_000_000_000)),
    ("attributes.`Run name` = 'x'", attr("name", "=", "x")),
]


@pytest.mark.parametrize(("text", "expected"), POSITIVE, ids=[t for t, _ in POSITIVE])
def test_parses_to_the_exact_ast(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", [None, "", "   ", "\t\n "])
def test_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize("text", ["metrics.x = NaN", "metrics.x = -nan", "metrics.x = +NaN"])
def test_nan_is_math_nan_itself(text: str) -> None:
    node = parse_filter(text)
    assert isinstance(node, Comparison)
    assert node.value is math.nan
    assert parse_filter("metrics.x in (NaN, 1)") == metric("x", "IN", (math.nan, 1.0))


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_ordering_with_nan_is_refused_with_the_fix(op: str) -> None:
    error = raises(f"metrics.loss {op} NaN")
    assert "NaN is neither less nor greater than any number" in str(error)
    assert "metrics.loss = NaN or metrics.loss != NaN" in str(error)


def test_value_types() -> None:
    metric = parse_filter("metrics.x = 3")
    time = parse_filter("start_time = 3")
    assert isinstance(metric, Comparison)
    assert type(metric.value) is float
    assert isinstance(time, Comparison)
    assert type(time.value) is int


# -- negative cases: the column and what was expected -----------------------------------------

NEGATIVE: list[tuple[str, int, str]] = [
    ("metrics.auc 0.8 auc", 13, f"expected {OPERATOR_LIST}, found '0.8'."),
    ("metrics.auc", 12, f"expected {OPERATOR_LIST}, found the end of the filter"),
    (
        "metrics.auc >",
        14,
        "expected a value: a quoted string, a number, true, false, NaN or Infinity",
    ),
    ("metrics.auc > 0.8 and", 22, "expected a comparison such as metrics.auc > 0.8, found the end"),
    ("and metrics.a > 1", 1, "expected a comparison such as metrics.auc > 0.8, found 'and'"),
    (
        "metrics.a > 1 metrics.b > 2",
        15,
        "expected AND, OR or the end of the filter, found 'metrics.b'",
    ),
    ("(metrics.a > 1", 15, "expected AND, OR or ')' to close the '(' at column 1"),
    ("metrics.a > 1)", 14, "expected AND, OR or the end of the filter, found ')'"),
    ("()", 2, "expected a comparison such as metrics.auc > 0.8, found ')'"),
    ("not", 4, "expected a comparison such as metrics.auc > 0.8, found the end of the filter"),
    ("metrics.a not > 1", 15, "expected LIKE, ILIKE or IN after NOT, found '>'"),
    ("metrics.a is 1", 14, "expected NULL or NOT NULL after IS, found '1'"),
    ("metrics.a is not 1", 18, "expected NULL after IS NOT, found '1'"),
    (
        "metrics.a => 1",
        12,
        "expected a value: a quoted string, a number, true, false, NaN or Infinity, found '>'",
    ),
    ("metrics.a ! 1", 11, "unexpected character '!'"),
    (
        "metrics.a > 1.2.3",
        13,
        "expected a number such as 0.8, -1e-3, NaN or Infinity, found '1.2.3'",
    ),
    ("metrics.a > 0x10", 13, "expected a number such as 0.8, -1e-3, NaN or Infinity, found '0x10'"),
    ("metrics.a > 1abc", 13, "found '1abc'"),
    ("metrics.a > -", 13, "unexpected character '-'"),
    ("metrics.a > - 1", 13, "unexpected character '-'"),
    ("metrics.a > -inf", 13, "unexpected character '-'"),
    ("metrics.a > 'x", 13, "unterminated quoted text; add the closing '"),
    ('params.a = "x', 12, 'unterminated quoted text; add the closing "'),
    (r"params.a = 'x\'", 12, "unterminated quoted text"),
    ("metrics.`a = 1", 9, "unterminated quoted text; add the closing `"),
    ("params.x = 'a\nb'", 14, "quoted text cannot hold tabs or line breaks"),
    ("params.x = 'a\tb'", 14, "quoted text cannot hold tabs or line breaks"),
    ("`a` = 1", 1, "a backtick-quoted key needs an entity prefix, e.g. metrics.`val loss`"),
    ('"a" = 1', 1, 'expected a comparison such as metrics.auc > 0.8, found "a"'),
    ("foo.bar = 1", 1, "unknown entity 'foo'; use metrics, params, tags or attributes"),
    ("metric s.a = 1", 1, "unknown attribute 'metric'"),
    ("metrics. = 1", 1, "expected a key of 1 to 250 characters after 'metrics.'"),
    ("metrics.`` = 1", 1, "expected a key of 1 to 250 characters after 'metrics.'"),
    ("metrics.`" + "k" * 251 + "` = 1", 1, "expected a key of 1 to 250 characters"),
    ("tags.x.`y` = 'a'", 1, "unknown entity 'tags.x'"),
    (
        "auc > 0.8",
        1,
        "unknown attribute 'auc'; write metrics.auc or params.auc, or use one of "
        "end_time, experiment_id, name, run_id, start_time, status, user.",
    ),
    ("attributes.auc > 1", 1, "unknown attribute 'auc'; use one of end_time, experiment_id"),
    ("metrics.a like 'x%'", 11, "LIKE needs a string, but metrics.a is a number"),
    ("metrics.a not ilike 'x%'", 11, "NOT ILIKE needs a string, but metrics.a is a number"),
    ("start_time ilike 'x'", 12, "ILIKE needs a string, but start_time is a time"),
    ("metrics.a > '0.8'", 13, "metrics compare only with numbers, found '0.8'; remove the quotes"),
    ("metrics.a = true", 13, "metrics compare only with numbers, found 'true'"),
    ("metrics.a in (1, true)", 18, "homogeneous"),
    ("tags.lr = 0.01", 11, "tags.lr is a string, so quote the value: '0.01'"),
    ("tags.x = NaN", 10, "tags.x is a string, so quote the value: 'NaN'"),
    ("params.x like 5", 15, "LIKE needs a quoted pattern, found '5'"),
    ("run_id = 42", 10, "run_id is a string, so quote the value: '42'"),
    (
        "status = 'done'",
        10,
        "status must be one of RUNNING, FINISHED, FAILED, KILLED, found 'done'",
    ),
    ("status in ('RUNNING', 'paused')", 23, "status must be one of RUNNING, FINISHED"),
    ("status = 1", 10, "status is a string, so quote the value"),
    ("status > 'RUNNING'", 8, "status cannot be compared with >; use =, !=, IN or LIKE"),
    (
        "start_time > 1.5",
        14,
        "start_time takes epoch milliseconds (an integer) or a quoted ISO-8601 time, found '1.5'",
    ),
    ("start_time > 'yesterday'", 14, "found 'yesterday'"),
    ("end_time = true", 12, "end_time takes epoch milliseconds"),
    ("start_time = '2024-13-01'", 14, "start_time takes epoch milliseconds"),
    ("start_time = NaN", 14, "start_time takes epoch milliseconds"),
    ("params.x in ()", 14, "IN needs at least one value"),
    ("params.x not in ()", 18, "NOT IN needs at least one value"),
    ("params.x in 'a'", 13, "expected '(' to start the IN list, found 'a'"),
    ("params.x in ('a',)", 18, "expected a value"),
    ("params.x in ('a' 'b')", 18, "expected ',' or ')' in the IN list, found 'b'"),
    ("params.x in ('a'", 17, "expected ',' or ')' in the IN list, found the end of the filter"),
    ("params.x in ('a', 1)", 19, "IN lists must be homogeneous"),
    ("metrics.x not in (1, 'a')", 22, "NOT IN lists must be homogeneous"),
    ("metrics.a = null", 13, "use IS NULL or IS NOT NULL to test for a missing value"),
    ("params.a != NULL", 13, "use IS NULL or IS NOT NULL"),
    ("metrics.a > 1e999", 13, "'1e999' is too large; write Infinity if you mean it"),
    (
        "start_time > 99999999999999999999",
        14,
        "the integer '99999999999999999999' is out of the 64-bit range",
    ),
    ("metrics.a > 9223372036854775808", 13, "out of the 64-bit range"),
    ("metrics.a = 'x\x00'", 15, "unsupported control character U+0000"),
    ("params.x = '\x1b[31m'", 13, "unsupported control character U+001B"),
    ("params.x = 'a\x7f'", 14, "unsupported control character U+007F"),
    ("params.x = 'a\u0085'", 14, "unsupported control character U+0085"),
    ("params.x = 'a\ud800'", 14, "unsupported control character U+D800"),
    ("metrics.a >= 1 && metrics.b < 2", 16, "unexpected character '&'"),
    ("metrics.a > 1 || true", 15, "unexpected character '|'"),
    ("metrics.a > 1 and status", 25, f"expected {OPERATOR_LIST}, found the end of the filter"),
    ("metrics.précision > 1", 11, "unexpected character 'é'"),
]


@pytest.mark.parametrize(
    ("text", "column", "fragment"), NEGATIVE, ids=[t[:60] for t, _, _ in NEGATIVE]
)
def test_rejects_with_column_and_expectation(text: str, column: int, fragment: str) -> None:
    error = raises(text)
    assert f"Invalid filter at column {column}: " in str(error)
    assert fragment in str(error)
    assert error.details["column"] == column
    check_layout(error, text)


def test_the_documented_message_shape() -> None:
    error = raises("metrics.auc 0.8 auc")
    assert str(error) == (
        f"Invalid filter at column 13: expected {OPERATOR_LIST}, found '0.8'.\n"
        "  metrics.auc 0.8 auc\n"
        "              ^\n"
        "Example: metrics.auc > 0.8 and params.model = 'rf'"
    )
    assert error.details == {
        "position": 12,
        "column": 13,
        "token": "0.8",
        "expected": OPERATOR_LIST,
    }
    assert isinstance(error, InvalidInputError)
    assert isinstance(error, ValueError)
    assert error.code == "INVALID_FILTER"


def test_context_specific_examples() -> None:
    assert str(raises("params.x in ()")).endswith("Example: params.model IN ('rf', 'xgb')")
    assert str(raises("status = 'x'")).endswith("Example: status IN ('FINISHED', 'FAILED')")
    assert "Example: start_time >= '2024-05-01T00:00:00Z'" in str(raises("start_time > 'x'"))
    assert raises("metrics.a > 1 and").details["token"] is None


def test_long_filters_show_a_window_around_the_error() -> None:
    text = "metrics.a > 1 and " * 30 + "metrics.b ! 2"
    error = raises(text)
    _, excerpt, caret, _ = str(error).split("\n")
    assert excerpt.startswith("  …")
    assert excerpt[caret.index("^")] == "!"
    assert len(excerpt) < 90
    check_layout(error, text)


def test_columns_count_characters_across_line_breaks() -> None:
    error = raises("metrics.a > 1\nand\nmetrics.b ? 2")
    assert error.details["column"] == 29
    _, excerpt, caret, _ = str(error).split("\n")
    assert excerpt == "  metrics.a > 1 and metrics.b ? 2"
    assert excerpt[caret.index("^")] == "?"


@pytest.mark.parametrize("value", [5, b"metrics.a > 1", ["metrics.a > 1"]])
def test_non_string_filters_are_rejected(value: object) -> None:
    with pytest.raises(FilterSyntaxError, match="expected a string, got"):
        parse_filter(value)  # type: ignore[arg-type]


# -- SQL-injection-looking input --------------------------------------------------------------

HARMLESS: list[tuple[str, Expr]] = [
    ("params.x = 'a'' OR ''1''=''1'", param("x", "=", "a' OR '1'='1")),
    (r"params.x = 'a\' OR 1=1 --'", param("x", "=", "a' OR 1=1 --")),
    ("params.x = '; DROP TABLE runs; --'", param("x", "=", "; DROP TABLE runs; --")),
    ("tags.\"x; DROP TABLE runs\" = 'y'", tag("x; DROP TABLE runs", "=", "y")),
    (
        "tags.`x` = 'Robert''); DROP TABLE students;--'",
        tag("x", "=", "Robert'); DROP TABLE students;--"),
    ),
    (
        "params.x LIKE '%'' UNION SELECT * FROM users --%'",
        param("x", "LIKE", "%' UNION SELECT * FROM users --%"),
    ),
    ("params.x IN ('a'')) OR ((''1''=''1')", param("x", "IN", ("a')) OR (('1'='1",))),
    ('run_name = \'" OR ""="\'', attr("name", "=", '" OR ""="')),
]


@pytest.mark.parametrize(("text", "expected"), HARMLESS, ids=[t for t, _ in HARMLESS])
def test_injection_inside_quotes_is_just_a_string(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


REJECTED: list[tuple[str, int, str]] = [
    ("params.x = 'a'; DROP TABLE runs; --'", 15, "unexpected character ';'"),
    ("metrics.auc > 0 OR 1=1", 20, "expected a comparison such as metrics.auc > 0.8, found '1'"),
    ("metrics.auc > 0 OR TRUE", 20, "unknown attribute 'TRUE'"),
    (
        "status = 'RUNNING' or '1'='1'",
        23,
        "expected a comparison such as metrics.auc > 0.8, found '1'",
    ),
    ("params.x = 'a' UNION SELECT * FROM runs", 16, "found 'UNION'"),
    ("params.x = 'a' -- '", 16, "unexpected character '-'"),
    ("metrics.auc > 0 /**/ OR /**/ 1=1", 17, "unexpected character '/'"),
    ("params.x = 'a' or params.y = (SELECT password FROM users)", 30, "expected a value"),
    ("metrics.auc > 0; SELECT 1", 16, "unexpected character ';'"),
    ("1=1", 1, "expected a comparison"),
]


@pytest.mark.parametrize(("text", "column", "fragment"), REJECTED, ids=[t for t, _, _ in REJECTED])
def test_injection_outside_quotes_is_rejected(text: str, column: int, fragment: str) -> None:
    error = raises(text)
    assert error.details["column"] == column
    assert fragment in str(error)


# -- limits -----------------------------------------------------------------------------------


def test_text_length_limit() -> None:
    assert parse_filter("metrics.a > 1".ljust(10_000)) == A1
    error = raises("metrics.a > 1".ljust(10_001))
    assert error.details["column"] == 10_001
    assert "the filter is 10,001 characters; the limit is 10,000" in str(error)


def test_nesting_limit() -> None:
    assert parse_filter("(" * 50 + "metrics.a > 1" + ")" * 50) == A1
    assert parse_filter("not (" * 25 + "metrics.a > 1" + ")" * 25) is not None
    error = raises("(" * 51 + "metrics.a > 1" + ")" * 51)
    assert error.details["column"] == 51
    assert "nest deeper than 50 levels" in str(error)
    nested: Expr = A1
    for _ in range(50):
        nested = Not(nested)
    assert parse_filter("not " * 50 + "metrics.a > 1") == nested
    assert raises("not " * 51 + "metrics.a > 1").details["column"] == 201
    assert raises("(" * 5000).details["column"] == 51  # no RecursionError


def test_comparison_limit() -> None:
    assert parse_filter(" or ".join(["metrics.a > 1"] * 200)) == Or((A1,) * 200)
    error = raises(" or ".join(["metrics.a > 1"] * 201))
    assert error.details["column"] == 200 * len("metrics.a > 1 or ") + 1
    assert "more than 200 comparisons" in str(error)


def test_in_list_limit() -> None:
    ok = parse_filter("params.x in (" + ", ".join(["'v'"] * 1000) + ")")
    assert isinstance(ok, Comparison)
    assert ok.value == ("v",) * 1000
    text = f"metrics.x in ({', '.join(['1'] * 1001)})"
    error = raises(text)
    assert error.details["column"] == len(text) - 1
    assert "an IN list holds at most 1,000 values" in str(error)


# -- ordering ---------------------------------------------------------------------------------

ORDERINGS: list[tuple[str | Sequence[str] | None, tuple[OrderKey, ...]]] = [
    ("metrics.auc DESC", (OrderKey("metric", "auc", True),)),
    ("params.lr", (OrderKey("param", "lr", False),)),
    ("start_time asc", (OrderKey("attribute", "start_time", False),)),
    (
        "metrics.auc desc, params.lr,start_time ASC",
        (
            OrderKey("metric", "auc", True),
            OrderKey("param", "lr", False),
            OrderKey("attribute", "start_time", False),
        ),
    ),
    (
        ["metrics.auc DESC", "run_name"],
        (OrderKey("metric", "auc", True), OrderKey("attribute", "name", False)),
    ),
    (
        ["metrics.a, metrics.b desc"],
        (OrderKey("metric", "a", False), OrderKey("metric", "b", True)),
    ),
    ("metrics.`val loss` Desc", (OrderKey("metric", "val loss", True),)),
    (
        'tags."a,b" asc, id DESC',
        (OrderKey("tag", "a,b", False), OrderKey("attribute", "run_id", True)),
    ),
    ("attributes.status", (OrderKey("attribute", "status", False),)),
    ("tags.mlflow.runName", (OrderKey("tag", "mlflow.runName", False),)),
    ("", ()),
    ("   ", ()),
    (None, ()),
    ([], ()),
    ((), ()),
]


@pytest.mark.parametrize(("items", "expected"), ORDERINGS, ids=[repr(i) for i, _ in ORDERINGS])
def test_parse_order_by(items: str | Sequence[str] | None, expected: tuple[OrderKey, ...]) -> None:
    assert parse_order_by(items) == expected


BAD_ORDERINGS: list[tuple[str, int, str]] = [
    ("metrics.auc up", 13, "expected ASC, DESC, ',' or the end of the ordering, found 'up'"),
    ("metrics.auc DESC DESC", 18, "expected ASC, DESC, ',' or the end of the ordering"),
    ("foo.x", 1, "unknown entity 'foo'"),
    ("auc", 1, "unknown attribute 'auc'; write metrics.auc or params.auc"),
    (
        "metrics.a,",
        11,
        "expected an order key such as metrics.auc DESC, found the end of the ordering",
    ),
    ("metrics.a > 1", 11, "expected ASC, DESC, ',' or the end of the ordering, found '>'"),
    ("desc", 1, "expected an order key such as metrics.auc DESC, found 'desc'"),
    (", metrics.a", 1, "expected an order key"),
    ("metrics.`a", 9, "unterminated quoted text"),
    ("metrics.a; DROP TABLE runs", 10, "unexpected character ';'"),
]


@pytest.mark.parametrize(
    ("text", "column", "fragment"), BAD_ORDERINGS, ids=[t for t, _, _ in BAD_ORDERINGS]
)
def test_bad_orderings(text: str, column: int, fragment: str) -> None:
    error = raises(text, order_by=True)
    assert f"Invalid ordering at column {column}: " in str(error)
    assert fragment in str(error)
    assert str(error).endswith("Example: metrics.auc DESC, start_time")
    check_layout(error, text)


def test_order_by_limits_and_types() -> None:
    keys = [f"metrics.m{i}" for i in range(10)]
    assert len(parse_order_by(keys)) == 10
    assert len(parse_order_by(", ".join(keys))) == 10
    assert "at most 10 order keys" in str(raises(", ".join([*keys, "params.p"]), order_by=True))
    with pytest.raises(FilterSyntaxError, match="at most 10 order keys"):
        parse_order_by([*keys, "params.p"])
    with pytest.raises(FilterSyntaxError, match="expected an order key"):
        parse_order_by(["metrics.a", " "])
    with pytest.raises(FilterSyntaxError, match="Invalid ordering: expected a string, got int"):
        parse_order_by([1])  # type: ignore[list-item]


# -- properties -------------------------------------------------------------------------------

PROPERTIES = settings(
    max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
COMPARE = ["=", "!=", "<", "<=", ">", ">="]
LIKES = ["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"]
TAIL = ["IN", "NOT IN", "IS NULL", "IS NOT NULL"]
PREFIXES = {
    "metric": ["metrics", "metric", "METRICS"],
    "param": ["params", "param", "parameters", "Params"],
    "tag": ["tags", "tag"],
    "attribute": ["attributes", "attribute", "attr", "run"],
}
SPELLINGS = {a: [a, a.upper()] for a in ATTRIBUTES} | {
    "name": ["name", "run_name"],
    "run_id": ["run_id", "id", "ID"],
    "user": ["user", "user_id"],
}
SIMPLE_KEY = re.compile(r"[A-Za-z0-9_\-./]+")
text_chars = st.characters(exclude_categories=("Cc", "Cs"))
keys = st.text(text_chars, min_size=1, max_size=12)
strings = st.text(text_chars, max_size=12)
floats = st.floats(allow_nan=False) | st.just(math.nan)
times = st.integers(-(2**63) + 1, 2**63 - 1) | st.integers(-(10**13), 10**13)


def kind_of(entity: str, key: str) -> str:
    if entity == "metric":
        return "number"
    if entity == "attribute" and key in ("status", "start_time", "end_time"):
        return "status" if key == "status" else "time"
    return "string"


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    entity = draw(st.sampled_from(["metric", "param", "tag", "attribute"]))
    key = draw(st.sampled_from(sorted(ATTRIBUTES)) if entity == "attribute" else keys)
    kind = kind_of(entity, key)
    ops = {"number": COMPARE, "time": COMPARE, "status": ["=", "!=", *LIKES]}.get(
        kind, COMPARE + LIKES
    )
    op = draw(st.sampled_from(ops + TAIL))
    values = {"number": floats, "time": times, "string": strings}.get(
        kind, st.sampled_from(STATUSES)
    )
    if kind == "status" and op in LIKES:
        values = strings
    if op.startswith("IS"):
        return Comparison(entity, key, op, None)  # type: ignore[arg-type]
    if op.endswith("IN"):
        return Comparison(entity, key, op, tuple(draw(st.lists(values, min_size=1, max_size=4))))  # type: ignore[arg-type]
    if kind == "number" and op in ("<", "<=", ">", ">="):
        values = st.floats(allow_nan=False)  # ordering with NaN is refused (tested below)
    return Comparison(entity, key, op, draw(values))  # type: ignore[arg-type]


def join(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


expressions = st.recursive(
    comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: join(And, xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: join(Or, xs)),
        children.map(Not),
    ),
    max_leaves=10,
)


def quote(text: str, mark: str, rng: random.Random) -> str:
    body = "".join(
        "\\\\" if c == "\\" else rng.choice([mark * 2, "\\" + mark]) if c == mark else c
        for c in text
    )
    return mark + body + mark


def render_name(entity: str, key: str, rng: random.Random) -> str:
    if entity == "attribute":
        spelling = rng.choice(SPELLINGS[key])
        prefix = rng.choice([None, *PREFIXES["attribute"]])
        return spelling if prefix is None else f"{prefix}.{spelling}"
    prefix = rng.choice(PREFIXES[entity])
    if SIMPLE_KEY.fullmatch(key) and rng.random() < 0.5:
        return f"{prefix}.{key}"
    return prefix + "." + quote(key, rng.choice(["`", '"']), rng)


def render_value(value: object, kind: str, iso: bool, rng: random.Random) -> str:
    if isinstance(value, str):
        if value in ("true", "false") and kind == "string" and rng.random() < 0.5:
            return rng.choice([value, value.upper()])
        if kind == "status" and value in STATUSES:
            value = rng.choice([value, value.lower(), value.title()])
        return quote(value, rng.choice("'\""), rng)
    if isinstance(value, int):  # an epoch-millisecond time
        if not iso:
            return str(value)
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
        zone = rng.choice(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        )
        stamp = moment.astimezone(zone).isoformat(timespec="milliseconds")
        return quote(stamp.replace("+00:00", rng.choice(["Z", "+00:00"])), "'", rng)
    assert isinstance(value, float)
    if math.isnan(value):
        return rng.choice(["NaN", "nan", "-NaN", "+NaN"])
    if math.isinf(value):
        return ("-" if value < 0 else rng.choice(["", "+"])) + rng.choice(["Infinity", "infinity"])
    if value.is_integer() and abs(value) < 2**53 and rng.random() < 0.5:
        return str(int(value))
    return repr(value)


def render_op(op: str, rng: random.Random) -> str:
    op = rng.choice({"=": ["=", "=="], "!=": ["!=", "<>"]}.get(op, [op]))
    return rng.choice([op, op.lower(), op.title()])


def render(expr: Expr, rng: random.Random) -> str:
    def wrap(item: Expr, needs_parens: tuple[type, ...]) -> str:
        text = render(item, rng)
        return f"({text})" if isinstance(item, needs_parens) or rng.random() < 0.1 else text

    def space() -> str:
        return rng.choice([" ", "  ", "\n", "\t"])

    match expr:
        case Comparison(entity, key, op, value):
            kind = "string" if op in LIKES else kind_of(entity, key)
            values = value if isinstance(value, tuple) else (value,)
            in_range = all(isinstance(v, int) and -6 * 10**13 < v < 25 * 10**13 for v in values)
            iso = kind == "time" and in_range and rng.random() < 0.5
            name = render_name(entity, key, rng) + space() + render_op(op, rng)
            if value is None:
                return name
            if isinstance(value, tuple):
                return name + " (" + ", ".join(render_value(v, kind, iso, rng) for v in value) + ")"
            sep = space() if op[-1].isalpha() else rng.choice(["", " "])
            return name + sep + render_value(value, kind, iso, rng)
        case And(items) | Or(items) if len(items) > 2 and rng.random() < 0.3:
            # regroup a run of items, "a and (b and c)", which the parser must flatten again
            start = rng.randrange(len(items) - 1)
            end = rng.randrange(start + 2, len(items) + 1)
            group = type(expr)(items[start:end])
            if end - start < len(items):
                return render(type(expr)((*items[:start], group, *items[end:])), rng)
            return render(expr, rng)
        case And(items):
            return f"{space()}{rng.choice(['and', 'AND', 'And'])}{space()}".join(
                wrap(i, (Or, And)) for i in items
            )
        case Or(items):
            return f"{space()}{rng.choice(['or', 'OR'])}{space()}".join(
                wrap(i, (Or,)) for i in items
            )
        case Not(item):
            return rng.choice(["not", "NOT"]) + space() + wrap(item, (And, Or))
    raise AssertionError(expr)


@PROPERTIES
@given(expressions, st.randoms(use_true_random=False))
def test_rendered_asts_parse_back_to_themselves(expr: Expr, rng: random.Random) -> None:
    text = render(expr, rng)
    assert parse_filter(text) == expr, text


order_keys = st.builds(
    lambda entity, key, attribute, descending: OrderKey(
        entity, attribute if entity == "attribute" else key, descending
    ),
    st.sampled_from(["metric", "param", "tag", "attribute"]),
    keys,
    st.sampled_from(sorted(ATTRIBUTES)),
    st.booleans(),
)


@PROPERTIES
@given(st.lists(order_keys, max_size=10), st.randoms(use_true_random=False), st.booleans())
def test_rendered_orderings_parse_back(
    keys_: list[OrderKey], rng: random.Random, as_list: bool
) -> None:
    rendered = [
        render_name(k.entity, k.key, rng)
        + (rng.choice([" DESC", " desc"]) if k.descending else rng.choice(["", " ASC", " asc"]))
        for k in keys_
    ]
    items: str | list[str] = rendered if as_list else ", ".join(rendered)
    assert parse_order_by(items) == tuple(keys_)


TOKENS = [
    "metrics.auc",
    "params.p",
    "tags.t",
    "status",
    "start_time",
    "run.id",
    "metrics.`a b`",
    "params.",
    "'",
    '"',
    "`",
    "\\",
    "(",
    ")",
    ",",
    "and",
    "OR",
    "not",
    "NOT",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "ILIKE",
    "in",
    "IS",
    "NULL",
    "true",
    "NaN",
    "-Infinity",
    "'x'",
    "'RUNNING'",
    "'2024-01-01'",
    "0.8",
    "-1e-3",
    "42",
    "1e999",
    "99999999999999999999",
    ";",
    "--",
    "\t",
    "\n",
    "\x00",
    "é",
    "asc",
    "DESC",
]


def assert_only_filter_errors(call: object, text: str) -> None:
    try:
        call(text)  # type: ignore[operator]
    except FilterSyntaxError as error:
        check_layout(error, text)


@PROPERTIES
@given(
    st.text(max_size=120)
    | st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join)
    | st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)
)
def test_random_text_raises_nothing_but_filter_syntax_error(text: str) -> None:
    assert_only_filter_errors(parse_filter, text)
    assert_only_filter_errors(parse_order_by, text)


def test_params_compare_numerically_with_unquoted_numbers() -> None:
    assert parse_filter("params.n >= 10") == Comparison("param", "n", ">=", 10.0)
    assert parse_filter("params.n = '10'") == Comparison("param", "n", "=", "10")
    assert parse_filter("params.lr IN (0.1, 0.01)") == Comparison("param", "lr", "IN", (0.1, 0.01))
