"""The audit chain's pure core: canonical encoding and the hash of each link.

Each event's hash is SHA-256 over the canonical JSON of its fields and its predecessor's hash,
so altering, deleting or reordering any stored event breaks every later link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GENESIS_HASH", "ChainBreak", "ChainLink", "canonical_json", "link_hash", "walk_chain"]

#: The predecessor hash of the first event.
GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept, NaN refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@dataclass(frozen=True, slots=True)
class ChainLink:
    """The hashed fields of one audit event, as stored."""

    seq: int
    id: str
    occurred_at: str
    principal: str
    project_id: str | None
    action: str
    object_type: str
    object_id: str | None
    outcome: str
    request_id: str
    details: str
    prev_hash: str
    hash: str

    def payload(self) -> dict[str, Any]:
        """The fields covered by the hash (everything but the hash itself)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "occurred_at": self.occurred_at,
            "principal": self.principal,
            "project_id": self.project_id,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "details": self.details,
        }


def link_hash(prev_hash: str, payload: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of a link: its predecessor's hash and its canonical payload."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(dict(payload)).encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where and why the chain stops verifying."""

    seq: int
    event_id: str | None
    reason: str


def walk_chain(
    links: Iterable[ChainLink], *, head_seq: int, head_hash: str
) -> tuple[int, ChainBreak | None]:
    """Verify links in ``seq`` order against each other and the recorded head.

    Returns the number of links checked and the first break (None when the chain is intact).
    """
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for link in links:
        count += 1
        if link.seq != expected_seq:
            reason = (
                f"event #{expected_seq} is missing (found #{link.seq} next): events were deleted"
                if link.seq > expected_seq
                else f"event #{link.seq} appears out of order"
            )
            missing = link.seq > expected_seq
            return count, ChainBreak(expected_seq, None if missing else link.id, reason)
        if link.prev_hash != expected_prev:
            return count, ChainBreak(
                link.seq, link.id, "its predecessor hash does not match: events were reordered"
            )
        if link_hash(link.prev_hash, link.payload()) != link.hash:
            return count, ChainBreak(link.seq, link.id, "its content was altered")
        expected_prev = link.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if last_seq != head_seq:
        return count, ChainBreak(
            last_seq + 1,
            None,
            f"the chain ends at #{last_seq} but the head records #{head_seq}: "
            "the newest events were deleted",
        )
    if head_seq and expected_prev != head_hash:
        return count, ChainBreak(head_seq, None, "the newest event does not match the head")
    return count, None
