"""Streams into appended versions, exactly once, against the real Redis and NATS JetStream.

The normal flow runs against the shared servers on 127.0.0.1. The fault tests start a private
``redis-server`` and ``nats-server -js`` on free ports in temporary folders, kill -9 them in
the middle of a stream, restart them from their files, and check that the dataset then holds
every message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from keel.data import JetStreamSource, Message, RedisStreamSource
from keel.errors import StorageError
from keel.workspace import Workspace

REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"
REDIS_SERVER = "/usr/bin/redis-server"
NATS_SERVER = "/usr/sbin/nats-server"


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


class PrivateServer:
    """A server of our own on a free port, in a temporary folder, that a test may kill -9.

    The shared servers on the standard ports are never touched: killing one of them would
    break every other test and session on the machine.
    """

    def __init__(self, name: str, folder: Path, command: Callable[[int], list[str]]) -> None:
        self.name = name
        self.folder = folder
        self.port = _free_port()
        self._command = command(self.port)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.folder / f"{self.name}.log", "ab")  # noqa: SIM115 - kept by the process
        self._process = subprocess.Popen(
            self._command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self._command}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port} within 30 s")

    def kill(self) -> None:
        """SIGKILL: the server goes away without closing anything (no clean shutdown)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)

    def __enter__(self) -> PrivateServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} is not installed")
    folder = tmp_path / "redis"
    folder.mkdir()

    def command(port: int) -> list[str]:
        # An append-only file, fsynced on every write: what was acknowledged survives.
        return [
            *(REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
        ]

    with PrivateServer("redis", folder, command) as server:
        yield server


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateServer]:
    if not Path(NATS_SERVER).exists():
        pytest.skip(f"{NATS_SERVER} is not installed")
    folder = tmp_path / "nats"
    folder.mkdir()

    def command(port: int) -> list[str]:
        # JetStream, with its file store in our folder.
        return [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(folder / "js")]

    with PrivateServer("nats", folder, command) as server:
        yield server


class KillsServerBeforeAck(RedisStreamSource):
    """Kills the Redis server after the second batch committed and before its ack."""

    def __init__(self, server: PrivateServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server = server
        self.acks = 0

    def ack(self, messages: Sequence[Message]) -> None:
        self.acks += 1
        if self.acks == 2:
            self._server.kill()
        super().ack(messages)


def test_redis_server_killed_and_restarted_loses_and_duplicates_nothing(
    local_ws: Workspace, private_redis: PrivateServer
) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    client = redis.Redis.from_url(url)
    for n in range(300):
        client.xadd("events", {"n": str(n)})
    client.close()

    # 1. The server dies after batch 2 committed and before it was acknowledged.
    first = KillsServerBeforeAck(private_redis, url, "events", group="g", consumer="c1")
    with pytest.raises(StorageError, match="went away"):
        local_ws.datasets.ingest_stream("events", first, batch_size=50, timeout=0.2)
    first.close()
    assert _ids(local_ws, "events") == list(range(100))  # both batches committed

    # 2. While it is down, the consumer cannot start: a clear error, nothing written.
    with pytest.raises(StorageError, match="not reachable"):
        RedisStreamSource(url, "events", group="g", consumer="c1")

    # 3. Restarted (from its append-only file), the server still has the group, with batch 2
    #    pending: it is delivered again and dropped as a duplicate, then the rest is read.
    private_redis.start()
    client = redis.Redis.from_url(url)
    assert client.xpending("events", "g")["pending"] == 50
    for n in range(300, 320):
        client.xadd("events", {"n": str(n)})
    second = RedisStreamSource(url, "events", group="g", consumer="c1")
    local_ws.datasets.ingest_stream("events", second, batch_size=50, timeout=0.2)
    second.close()
    rows = local_ws.datasets.read("events")
    assert rows.height == 320  # no duplicate
    assert _ids(local_ws, "events") == list(range(320))  # nothing lost
    assert client.xpending("events", "g")["pending"] == 0
    client.close()


def test_redis_server_killed_while_the_consumer_waits(
    local_ws: Workspace, private_redis: PrivateServer
) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    client = redis.Redis.from_url(url)
    for n in range(30):
        client.xadd("events", {"n": str(n)})
    client.close()
    source = RedisStreamSource(url, "events", group="g", consumer="c1")
    # The first batch is read and committed; the server dies while the next read blocks.
    killer = threading.Timer(1.0, private_redis.kill)
    killer.start()
    try:
        with pytest.raises(StorageError, match="went away while reading"):
            local_ws.datasets.ingest_stream("events", source, batch_size=50, timeout=10.0)
    finally:
        killer.join()
        source.close()
    assert _ids(local_ws, "events") == list(range(30))
    private_redis.start()
    client = redis.Redis.from_url(url)
    for n in range(30, 45):
        client.xadd("events", {"n": str(n)})
    again = RedisStreamSource(url, "events", group="g", consumer="c1")
    local_ws.datasets.ingest_stream("events", again, batch_size=50, timeout=0.2)
    again.close()
    assert local_ws.datasets.read("events").height == 45
    assert _ids(local_ws, "events") == list(range(45))
    assert client.xpending("events", "g")["pending"] == 0
    client.close()


def _publish(url: str, stream: str, subject: str, count: int, start: int = 0) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        with contextlib.suppress(Exception):  # the stream may exist already
            await js.add_stream(name=stream, subjects=[subject])
        for n in range(start, start + count):
            await js.publish(subject, json.dumps({"n": n, "amount": n * 0.5}).encode())
        await nc.close()

    asyncio.run(run())


def _delete_stream(url: str, stream: str) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(run())


def test_jetstream_batches_become_appended_versions(local_ws: Workspace) -> None:
    stream = f"KEEL{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.loans"
    _publish(NATS, stream, subject, 60)
    try:
        source = JetStreamSource(NATS, stream, subject, durable="keel")
        versions = local_ws.datasets.ingest_stream("loans", source, batch_size=25, timeout=0.5)
        source.close()
        assert [v.row_count for v in versions] == [25, 50, 60]
        assert _ids(local_ws, "loans") == list(range(60))
        assert local_ws.datasets.read("loans")["amount"][3] == 1.5
    finally:
        _delete_stream(NATS, stream)


class NatsKillsServerBeforeAck(JetStreamSource):
    """Kills the NATS server after the second batch committed and before its ack."""

    def __init__(self, server: PrivateServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server = server
        self.acks = 0

    def ack(self, messages: Sequence[Message]) -> None:
        self.acks += 1
        if self.acks == 2:
            self._server.kill()
        super().ack(messages)


def test_jetstream_server_killed_and_restarted_loses_and_duplicates_nothing(
    local_ws: Workspace, private_nats: PrivateServer
) -> None:
    url = f"nats://127.0.0.1:{private_nats.port}"
    _publish(url, "LOANS", "loans.new", 100)

    first = NatsKillsServerBeforeAck(
        private_nats, url, "LOANS", "loans.new", durable="keel", ack_wait=1.0
    )
    with pytest.raises(StorageError, match="before the acknowledgement"):
        local_ws.datasets.ingest_stream("loans", first, batch_size=25, timeout=0.5)
    first.close()
    assert _ids(local_ws, "loans") == list(range(50))  # both batches committed
    with pytest.raises(StorageError, match="not reachable"):
        JetStreamSource(url, "LOANS", "loans.new", durable="keel", ack_wait=1.0)

    # Restarted from its file store: the stream and the durable consumer are still there;
    # the unacknowledged batch comes again (dropped as duplicates), then the rest.
    private_nats.start()
    _publish(url, "LOANS", "loans.new", 10, start=100)
    time.sleep(1.2)  # past ack_wait
    second = JetStreamSource(url, "LOANS", "loans.new", durable="keel", ack_wait=1.0)
    local_ws.datasets.ingest_stream("loans", second, batch_size=25, timeout=1.0)
    second.close()
    assert local_ws.datasets.read("loans").height == 110  # no duplicate
    assert _ids(local_ws, "loans") == list(range(110))  # nothing lost
