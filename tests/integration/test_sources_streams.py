"""Streams into appended versions, exactly once, against the real Redis and NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Sequence

import pytest
import redis

from keel.data import JetStreamSource, Message, RedisStreamSource
from keel.errors import StorageError
from keel.workspace import Workspace

REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"


def _ids(ws: Workspace, name: str) -> list[int]:
    return sorted(int(x) for x in ws.datasets.read(name)["n"].to_list())


def test_redis_batches_become_appended_versions(local_ws: Workspace) -> None:
    key = f"keel-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    for n in range(250):
        client.xadd(key, {"n": str(n), "kind": "event"})
    source = RedisStreamSource(REDIS, key, group="g", consumer="c1")
    try:
        versions = local_ws.datasets.ingest_stream("events", source, batch_size=100, timeout=0.2)
    finally:
        source.close()
        client.delete(key)
        client.close()
    assert [v.row_count for v in versions] == [100, 200, 250]
    assert versions[2].parts[:2] == versions[1].parts  # appended versions reuse their parts
    assert _ids(local_ws, "events") == list(range(250))


class DiesBeforeAck(RedisStreamSource):
    """The consumer dies after the version committed and before it acknowledged."""

    def ack(self, messages: Sequence[Message]) -> None:
        raise StorageError("simulated: died before the acknowledgement")


class DropsMidBatch(RedisStreamSource):
    """The server goes away after one batch was read and before it was committed."""

    def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        got = super().fetch(max_messages, timeout)
        if got:
            admin = redis.Redis.from_url(REDIS)
            admin.client_kill_filter(_id=self._client.client_id())
            admin.close()
            raise StorageError("simulated: the server went away mid-batch")
        return got


def test_redis_server_going_away_loses_and_duplicates_nothing(local_ws: Workspace) -> None:
    key = f"keel-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    for n in range(120):
        client.xadd(key, {"n": str(n)})
    try:
        first = DropsMidBatch(REDIS, key, group="g", consumer="c1")
        with pytest.raises(StorageError, match="mid-batch"):
            local_ws.datasets.ingest_stream("events", first, batch_size=50, timeout=0.2)
        first.close()
        second = DiesBeforeAck(REDIS, key, group="g", consumer="c1")
        with pytest.raises(StorageError, match="before the acknowledgement"):
            local_ws.datasets.ingest_stream("events", second, batch_size=50, timeout=0.2)
        second.close()
        assert _ids(local_ws, "events") == list(range(50))  # committed, not yet acknowledged
        # A new run gets the unacknowledged 50 again (dropped as duplicates), then the rest.
        for n in range(120, 130):
            client.xadd(key, {"n": str(n)})
        third = RedisStreamSource(REDIS, key, group="g", consumer="c1")
        local_ws.datasets.ingest_stream("events", third, batch_size=50, timeout=0.2)
        third.close()
        assert _ids(local_ws, "events") == list(range(130))
        assert client.xpending(key, "g")["pending"] == 0
    finally:
        client.delete(key)
        client.close()


def _publish(stream: str, subject: str, count: int, start: int = 0) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect(NATS)
        js = nc.jetstream()
        with contextlib.suppress(Exception):  # the stream may exist already
            await js.add_stream(name=stream, subjects=[subject])
        for n in range(start, start + count):
            await js.publish(subject, json.dumps({"n": n, "amount": n * 0.5}).encode())
        await nc.close()

    asyncio.run(run())


def _delete_stream(stream: str) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect(NATS)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(run())


class NatsDropsBeforeAck(JetStreamSource):
    def ack(self, messages: Sequence[Message]) -> None:
        self._run(self._nc.close())  # the connection goes away before the ack
        super().ack(messages)


def test_jetstream_durable_consumer_is_exactly_once_across_a_lost_connection(
    local_ws: Workspace,
) -> None:
    stream = f"KEEL{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.loans"
    _publish(stream, subject, 60)
    try:
        first = NatsDropsBeforeAck(NATS, stream, subject, durable="keel", ack_wait=1.0)
        with pytest.raises(StorageError, match="before the acknowledgement"):
            local_ws.datasets.ingest_stream("loans", first, batch_size=25, timeout=0.5)
        first.close()
        assert _ids(local_ws, "loans") == list(range(25))
        _publish(stream, subject, 10, start=60)
        import time

        time.sleep(1.2)  # past ack_wait: the unacknowledged 25 are delivered again
        second = JetStreamSource(NATS, stream, subject, durable="keel", ack_wait=1.0)
        versions = local_ws.datasets.ingest_stream("loans", second, batch_size=25, timeout=0.5)
        second.close()
        assert versions and versions[-1].row_count == 70
        assert _ids(local_ws, "loans") == list(range(70))
        assert local_ws.datasets.read("loans")["amount"][3] == 1.5
    finally:
        _delete_stream(stream)
