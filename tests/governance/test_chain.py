"""The pure audit-chain walk detects any single alteration (property test)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from keel.governance._chain import GENESIS_HASH, ChainLink, link_hash, walk_chain


def _chain(n: int) -> list[ChainLink]:
    links: list[ChainLink] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        link = ChainLink(
            seq=seq,
            id=f"E{seq:025d}",
            occurred_at=f"2026-01-01T00:00:{seq % 60:02d}.000000Z",
            principal="user:a",
            project_id="P",
            action="run.create",
            object_type="run",
            object_id=str(seq),
            outcome="success",
            request_id="R",
            details=f'{{"n":{seq}}}',
            prev_hash=prev,
            hash="",
        )
        link = dataclasses.replace(link, hash=link_hash(prev, link.payload()))
        links.append(link)
        prev = link.hash
    return links


def test_intact_chain_verifies() -> None:
    links = _chain(20)
    assert walk_chain(links, head_seq=20, head_hash=links[-1].hash) == (20, None)
    assert walk_chain([], head_seq=0, head_hash=GENESIS_HASH) == (0, None)


FIELDS = ["principal", "action", "object_id", "outcome", "details", "occurred_at"]


@given(index=st.integers(0, 19), field=st.sampled_from(FIELDS), text=st.text(min_size=1))
def test_any_altered_field_is_found_at_its_event(index: int, field: str, text: str) -> None:
    links = _chain(20)
    original = getattr(links[index], field)
    if text == original:
        text = original + "x"
    links[index] = dataclasses.replace(links[index], **{field: text})
    _, broken = walk_chain(links, head_seq=20, head_hash=links[-1].hash)
    assert broken is not None and broken.seq == index + 1


@given(index=st.integers(0, 19))
def test_any_deleted_event_is_found(index: int) -> None:
    links = _chain(20)
    head = links[-1].hash
    del links[index]
    _, broken = walk_chain(links, head_seq=20, head_hash=head)
    assert broken is not None
    assert broken.seq == index + 1


@given(i=st.integers(0, 19), j=st.integers(0, 19))
def test_any_swap_is_found(i: int, j: int) -> None:
    if i == j:
        return
    links = _chain(20)
    head = links[-1].hash
    links[i], links[j] = links[j], links[i]
    _, broken = walk_chain(links, head_seq=20, head_hash=head)
    assert broken is not None and broken.seq == min(i, j) + 1
