"""Sessions: opaque ids, hashed keys, idle and absolute expiry, bounded count, CSRF tokens."""

from __future__ import annotations

import time

from keel.ui import SessionStore


def test_a_session_is_found_by_its_id_only_and_ends_on_drop() -> None:
    store = SessionStore()
    session_id, session = store.create("keel_secret", "default")
    assert store.get(session_id) is session and store.get("other") is None
    assert store.get(None) is None and store.get("x" * 500) is None
    assert session_id not in store._sessions  # only the hash is kept
    assert session.csrf_matches(session.csrf) and not session.csrf_matches("forged")
    assert not session.csrf_matches(None)
    store.drop(session_id)
    assert store.get(session_id) is None


def test_sessions_expire_when_idle_and_when_old() -> None:
    idle = SessionStore(idle_seconds=0.05, max_seconds=60)
    session_id, _ = idle.create("t", None)
    time.sleep(0.1)
    assert idle.get(session_id) is None and len(idle) == 0
    old = SessionStore(idle_seconds=60, max_seconds=0.05)
    session_id, session = old.create("t", None)
    session.seen = time.monotonic()
    time.sleep(0.1)
    assert old.get(session_id) is None


def test_the_oldest_sessions_go_beyond_the_bound() -> None:
    store = SessionStore(max_sessions=2)
    first, _ = store.create("a", None)
    second, _ = store.create("b", None)
    third, _ = store.create("c", None)
    assert store.get(first) is None and store.get(second) is not None
    assert store.get(third) is not None and len(store) == 2
