"""A declared stream schema types fields instead of the first batch's values (a price whose
first values are whole numbers stays a float column), and must agree with an existing dataset."""

from __future__ import annotations

import uuid

import polars as pl
import pytest
import redis

from keel.data import Message, RedisStreamSource
from keel.data._stream_rows import MESSAGE_ID, message_rows
from keel.errors import InvalidInputError
from keel.workspace import Workspace

REDIS = "redis://127.0.0.1:6379/0"


def test_declared_types_replace_inferred_ones_and_add_missing_fields() -> None:
    messages = [Message("1", {"price": 10, "n": 1}), Message("2", {"price": 12, "n": 2})]
    inferred, _ = message_rows(messages, None)
    assert inferred.schema["price"] == pl.Int64  # whole numbers: inferred as integers
    declared, rejects = message_rows(
        messages, None, declared={"price": pl.Float64(), "note": pl.String()}
    )
    assert rejects == []
    assert list(declared.schema.items()) == [
        (MESSAGE_ID, pl.String()),
        ("price", pl.Float64()),
        ("n", pl.Int64()),
        ("note", pl.String()),
    ]
    assert declared["price"].to_list() == [10.0, 12.0]
    # no message can be a row: the declared columns still make the dataset's columns
    only_rejects, rejected = message_rows(
        [Message("3", {"price": "ten"})], None, declared={"price": pl.Float64()}
    )
    assert only_rejects.columns == [MESSAGE_ID, "price"] and only_rejects.height == 0
    assert "is not a Float64" in rejected[0].reason


def _stream(client: redis.Redis, key: str, prices: list[str]) -> None:
    for n, price in enumerate(prices):
        client.xadd(key, {"n": str(n), "price": price})


def test_a_declared_float_field_takes_fractions_after_whole_first_values(
    local_ws: Workspace,
) -> None:
    key = f"keel-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    _stream(client, key, ["10", "12", "9.75", "11.5"])
    source = RedisStreamSource(REDIS, key, group="g", consumer="c1")
    try:
        versions = local_ws.datasets.ingest_stream(
            "prices",
            source,
            batch_size=2,
            timeout=0.2,
            schema={"n": "int64", "price": "float64"},
        )
        assert [v.rejected_rows for v in versions] == [0, 0]
        frame = local_ws.datasets.read("prices")
        assert frame.schema["price"] == pl.Float64 and frame.schema["n"] == pl.Int64
        assert frame["price"].to_list() == [10.0, 12.0, 9.75, 11.5]

        # an existing dataset's columns are its own: a schema that disagrees is refused
        client.xadd(key, {"n": "4", "price": "13"})
        with pytest.raises(InvalidInputError, match="holds it as Float64"):
            local_ws.datasets.ingest_stream(
                "prices", source, timeout=0.2, schema={"price": "int64"}
            )
        with pytest.raises(InvalidInputError, match="has no column 'colour'"):
            local_ws.datasets.ingest_stream(
                "prices", source, timeout=0.2, schema={"colour": "string"}
            )
        # refused before reading: the message is still there for a run that agrees
        more = local_ws.datasets.ingest_stream(
            "prices", source, timeout=0.2, schema={"price": "float64"}
        )
        assert [v.row_count for v in more] == [5]
        assert local_ws.datasets.read("prices")["price"].to_list()[-1] == 13.0
    finally:
        source.close()
        client.delete(key)
        client.close()


def test_a_bad_stream_schema_is_refused_before_anything_is_read(local_ws: Workspace) -> None:
    class Untouched:
        stream = "never"

        def fetch(self, *_: object) -> list[Message]:
            raise AssertionError("the schema is checked before the stream is read")

    for schema, message in (
        ({"price": "money"}, "Unknown type 'money'"),
        ({MESSAGE_ID: "string"}, "holds each message's id"),
        ({"": "string"}, "non-empty text"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            local_ws.datasets.ingest_stream("x", Untouched(), schema=schema)  # type: ignore[arg-type]
