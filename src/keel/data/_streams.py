"""Stream sources: Redis Streams (consumer groups) and NATS JetStream (durable pull consumers).

A stream is read in micro-batches; each batch becomes an appended dataset version, and its
messages are acknowledged only after that version committed. The version's commit also records
every message id in the dataset's ledger, so a message delivered again (the consumer died after
the commit and before the ack, or the server went away) is dropped: the dataset holds each
message exactly once. Unacknowledged messages are delivered again on the next run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keel.errors import InvalidInputError, StorageError

__all__ = ["JetStreamSource", "Message", "RedisStreamSource", "StreamSource"]


@dataclass(frozen=True, slots=True)
class Message:
    """One stream message: its id (unique in its stream) and its fields; ``problem`` says why
    it cannot be a row (a body that is not a JSON object), and it is then a reject."""

    id: str
    fields: dict[str, Any]
    handle: Any = None
    problem: str = ""


class StreamSource(Protocol):
    """A stream read by a durable consumer."""

    @property
    def stream(self) -> str:
        """The stream's identity in the exactly-once ledger (e.g. ``redis:events``)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages, redelivered unacknowledged ones first."""
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge ``messages`` (called after their version committed)."""
        ...

    def close(self) -> None: ...


def _decode(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class RedisStreamSource:
    """A Redis stream read by a consumer group (created if missing, from the stream's start).

    Args:
        url: ``redis://host:port/db``.
        key: the stream key.
        group: the consumer group (its position survives restarts).
        consumer: this consumer's name; pending messages of idle consumers are claimed too.
        claim_idle_ms: how long another consumer's message must be pending before it is claimed.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        group: str = "keel",
        consumer: str = "keel-1",
        claim_idle_ms: int = 30_000,
    ) -> None:
        try:
            import redis
        except ImportError as exc:
            from keel.errors import MissingDependencyError

            raise MissingDependencyError(
                "redis", extra="streams", purpose="A Redis stream"
            ) from exc
        self._client = redis.Redis.from_url(url)
        self._url = url
        self._key = key
        self._group = group
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._own_pending = True
        try:
            self._client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StorageError(f"Redis refused the consumer group: {exc}") from exc
        except redis.ConnectionError as exc:
            raise StorageError(f"Redis at {url!r} is not reachable: {exc}") from exc

    @property
    def stream(self) -> str:
        return f"redis:{self._key}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "redis-stream", "stream": self._key, "group": self._group}

    def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        import redis

        try:
            if self._own_pending:  # what this consumer read before and never acknowledged
                got = self._read("0", max_messages, None)
                if got:
                    return got
                self._own_pending = False
            claimed = self._client.xautoclaim(
                self._key,
                self._group,
                self._consumer,
                self._claim_idle_ms,
                "0-0",
                count=max_messages,
            )
            entries = claimed[1] if claimed else []
            if entries:
                return [self._message(i, f) for i, f in entries if f is not None]
            return self._read(">", max_messages, max(int(timeout * 1000), 1))
        except redis.ConnectionError as exc:
            self._own_pending = True
            raise StorageError(
                f"Redis at {self._url!r} went away while reading {self._key!r}: {exc}. Nothing "
                "unacknowledged is lost; run the ingest again to resume."
            ) from exc

    def _read(self, start: str, count: int, block: int | None) -> list[Message]:
        reply: Any = self._client.xreadgroup(
            self._group, self._consumer, {self._key: start}, count=count, block=block
        )
        out: list[Message] = []
        for _stream, entries in reply or []:
            out += [self._message(i, f) for i, f in entries if f]
        return out

    @staticmethod
    def _message(ident: Any, fields: dict[Any, Any]) -> Message:
        return Message(_decode(ident), {_decode(k): _decode(v) for k, v in fields.items()})

    def ack(self, messages: Sequence[Message]) -> None:
        import redis

        if not messages:
            return
        try:
            self._client.xack(self._key, self._group, *[m.id for m in messages])
        except redis.ConnectionError as exc:
            self._own_pending = True
            raise StorageError(
                f"Redis at {self._url!r} went away before the acknowledgement: {exc}. The "
                "version is committed; the messages come again and are dropped as duplicates."
            ) from exc

    def close(self) -> None:
        self._client.close()


class JetStreamSource:
    """A NATS JetStream durable pull consumer (created if missing) on ``subject``.

    Message bodies are JSON objects; a message's id is its stream sequence number.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        subject: str,
        *,
        durable: str = "keel",
        ack_wait: float = 30.0,
    ) -> None:
        try:
            import nats  # noqa: F401
        except ImportError as exc:
            from keel.errors import MissingDependencyError

            raise MissingDependencyError(
                "nats-py", extra="streams", purpose="A NATS stream"
            ) from exc
        self._url = url
        self._stream = stream
        self._subject = subject
        self._durable = durable
        self._ack_wait = ack_wait
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._sub: Any = None
        self._created = ""
        self.last_error: Exception | None = None
        try:
            _probe(url)  # fail fast: nats-py would retry a refused connection for seconds
            self._run(self._connect())
        except BaseException:
            self.close()
            raise

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    async def _connect(self) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        try:
            # No silent reconnection: a lost server must surface as an error, not as acks
            # buffered for a connection that may never come back.
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self._url,
                    connect_timeout=5,
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    error_cb=self._on_error,
                ),
                timeout=10,  # nats-py retries a refused first connection without end
            )
        except Exception as exc:  # nats raises several unrelated types for an unreachable server
            raise StorageError(f"NATS at {self._url!r} is not reachable: {exc}") from exc
        js = self._nc.jetstream()
        config = ConsumerConfig(
            durable_name=self._durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=self._ack_wait
        )
        self._sub = await js.pull_subscribe(
            self._subject, durable=self._durable, stream=self._stream, config=config
        )
        # Sequence numbers start again at 1 in a stream deleted and created again under the
        # same name: its creation time is part of its identity in the exactly-once ledger,
        # or its new messages would be dropped as duplicates of the old ones.
        info = await js.stream_info(self._stream)
        self._created = str(info.created or "")

    async def _on_error(self, error: Exception) -> None:
        """Connection errors surface as StorageError from the call that hit them."""
        self.last_error = error

    @property
    def stream(self) -> str:
        return f"nats:{self._stream}@{self._created}" if self._created else f"nats:{self._stream}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "nats-jetstream", "stream": self._stream, "subject": self._subject}

    def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        return list(self._run(self._fetch(max_messages, timeout)))

    async def _fetch(self, max_messages: int, timeout: float) -> list[Message]:
        import nats.errors

        try:
            raw = await self._sub.fetch(max_messages, timeout=max(timeout, 0.05))
        except (nats.errors.TimeoutError, TimeoutError):  # (on a loaded machine the
            if self._nc.is_connected:  # client's own wait can expire first)
                return []  # nothing new
            raise StorageError(
                f"NATS at {self._url!r} went away while reading {self._stream!r}. Nothing "
                "unacknowledged is lost; run the ingest again to resume."
            ) from None
        except Exception as exc:
            raise StorageError(
                f"NATS at {self._url!r} failed while reading {self._stream!r}: {exc}. Nothing "
                "unacknowledged is lost; run the ingest again to resume."
            ) from exc
        out: list[Message] = []
        for msg in raw:
            ident, problem = str(msg.metadata.sequence.stream), ""
            try:
                fields = json.loads(msg.data or b"{}")
            except ValueError:
                fields = {"_raw": msg.data.decode("utf-8", errors="replace")}
                problem = "its body is not JSON (a JSON object is expected)"
            if not isinstance(fields, dict):
                fields = {"_value": fields}
                problem = "its body is JSON but not an object (a JSON object is expected)"
            out.append(Message(ident, fields, msg, problem))
        return out

    def ack(self, messages: Sequence[Message]) -> None:
        self._run(self._ack(messages))

    async def _ack(self, messages: Sequence[Message]) -> None:
        try:
            for message in messages:
                await message.handle.ack()
            await self._nc.flush(timeout=10)  # the server has received every ack (PING/PONG)
        except Exception as exc:
            raise StorageError(
                f"NATS at {self._url!r} went away before the acknowledgement: {exc}. The "
                "version is committed; the messages come again and are dropped as duplicates."
            ) from exc

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            if self._nc is not None and not self._nc.is_closed:
                self._run(self._nc.close())
        finally:
            self._loop.close()


def _probe(url: str) -> None:
    """Raise StorageError at once if nothing listens at the (first) server of ``url``."""
    import socket
    from urllib.parse import urlsplit

    first = urlsplit(url.split(",")[0])
    try:
        socket.create_connection((first.hostname or "127.0.0.1", first.port or 4222), 5).close()
    except (OSError, ValueError) as exc:
        raise StorageError(f"NATS at {url!r} is not reachable: {exc}") from exc


def check_batch(max_messages: int) -> None:
    if not 1 <= max_messages <= 100_000:
        raise InvalidInputError("batch_size must be between 1 and 100,000 messages.")
