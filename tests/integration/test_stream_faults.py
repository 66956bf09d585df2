"""Streams against the real Redis and NATS JetStream on 127.0.0.1: two consumers of one group
lose nothing, a bad message is a reject that never blocks the stream, and a stream created
again under the same name is not mistaken for the old one."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import redis

from keel.data import JetStreamSource, RedisStreamSource
from keel.workspace import connect
from tests.conftest import make_settings
from tests.integration.test_sources_streams import NATS, REDIS, _delete_stream, _publish


@pytest.mark.parametrize("exists", [True, False], ids=["dataset-exists", "both-create-it"])
def test_two_consumers_of_one_group_store_every_message_once(
    tmp_path: Path, backend: str, exists: bool
) -> None:
    key = f"keel-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    settings = make_settings(tmp_path / "home", backend)
    errors: list[BaseException] = []

    def consumer(name: str) -> None:
        try:
            with connect(settings=settings, principal="user:tester") as ws:
                source = RedisStreamSource(REDIS, key, group="g", consumer=name)
                try:
                    ws.datasets.ingest_stream("events", source, batch_size=20, timeout=0.5)
                finally:
                    source.close()
        except BaseException as exc:  # raised again below
            errors.append(exc)

    try:
        for n in range(600):
            client.xadd(key, {"n": str(n)})
        if exists:
            consumer("c0")  # the dataset exists before the two race
        else:
            connect(settings=settings, principal="user:tester").close()  # the project only
        for n in range(600, 1200):
            client.xadd(key, {"n": str(n)})
        threads = [threading.Thread(target=consumer, args=(c,)) for c in ("c1", "c2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pending = client.xpending(key, "g")["pending"]
    finally:
        client.delete(key)
        client.close()
    assert errors == []
    assert pending == 0
    with connect(settings=settings, principal="user:tester") as ws:
        values = ws.datasets.read("events")["n"].cast(int).to_list()
    assert sorted(values) == list(range(1200))  # each message once, none lost


def test_a_bad_message_is_a_reject_and_the_stream_goes_on(tmp_path: Path) -> None:
    key = f"keel-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    try:
        with connect(settings=make_settings(tmp_path / "home"), principal="user:t") as ws:
            client.xadd(key, {"n": "1", "kind": "a"})
            source = RedisStreamSource(REDIS, key, group="g", consumer="c1")
            try:
                ws.datasets.ingest_stream("ev", source, batch_size=10, timeout=0.2)
                client.xadd(key, {"kind": "b", "n": "2"})  # same fields, other order
                client.xadd(key, {"n": "3"})  # a field missing: null
                client.xadd(key, {"n": "4", "colour": "red"})  # no such column: a reject
                client.xadd(key, {"n": "5", "_message_id": "forged"})  # reserved: a reject
                client.xadd(key, {"n": "6", "kind": "f"})
                made = ws.datasets.ingest_stream("ev", source, batch_size=10, timeout=0.2)
            finally:
                source.close()
            assert client.xpending(key, "g")["pending"] == 0  # nothing left to block the stream
            rows = ws.datasets.read("ev").sort("n")
            assert rows["n"].to_list() == ["1", "2", "3", "6"]
            assert rows["kind"].to_list() == ["a", "b", None, "f"]
            assert made[-1].rejected_rows == 2
            rejects = ws.datasets.rejects("ev")
            assert len(rejects) == 2
            assert "colour" in rejects["reason"][0] and "reserved" in rejects["reason"][1]
    finally:
        client.delete(key)
        client.close()


def test_a_jetstream_body_that_is_not_json_does_not_block_the_rest(tmp_path: Path) -> None:
    import asyncio

    import nats

    stream = f"KEEL{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.loans"
    _publish(NATS, stream, subject, 2)

    async def poison() -> None:
        nc = await nats.connect(NATS)
        await nc.jetstream().publish(subject, b"not json at all")
        await nc.close()

    try:
        with connect(settings=make_settings(tmp_path / "home"), principal="user:t") as ws:
            source = JetStreamSource(NATS, stream, subject, durable="keel")
            try:
                ws.datasets.ingest_stream("loans", source, batch_size=2, timeout=1.0)
                asyncio.run(poison())
                _publish(NATS, stream, subject, 2, start=2)
                ws.datasets.ingest_stream("loans", source, batch_size=10, timeout=1.0)
            finally:
                source.close()
            assert sorted(ws.datasets.read("loans")["n"].to_list()) == [0, 1, 2, 3]
            assert "not JSON" in ws.datasets.rejects("loans")["reason"][0]
    finally:
        _delete_stream(NATS, stream)


def test_a_jetstream_stream_created_again_is_not_taken_for_the_old_one(tmp_path: Path) -> None:
    stream = f"KEEL{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.loans"
    with connect(settings=make_settings(tmp_path / "home"), principal="user:t") as ws:
        for count, start in ((5, 0), (3, 100)):  # the same name again: sequences from 1 again
            _publish(NATS, stream, subject, count, start=start)
            try:
                source = JetStreamSource(NATS, stream, subject, durable="keel")
                try:
                    ws.datasets.ingest_stream("loans", source, batch_size=10, timeout=1.0)
                finally:
                    source.close()
            finally:
                _delete_stream(NATS, stream)
        assert sorted(ws.datasets.read("loans")["n"].to_list()) == [0, 1, 2, 3, 4, 100, 101, 102]
