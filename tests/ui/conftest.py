"""Fixtures of the UI tests: a live server over a store holding a small world, and sessions."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from keel.settings import Settings
from keel.workspace import connect
from tests.server._live import LiveServer, live_server
from tests.ui._world import World, build_world

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def world_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, World]]:
    """A live server (SQLite) whose default project holds runs, data, models, a deployment."""
    home = tmp_path_factory.mktemp("ui") / "home"
    with connect(settings=Settings(home=home), principal="user:owner") as ws:
        world = build_world(ws)
    with live_server(home) as server:
        yield server, world


@pytest.fixture
def live(world_server: tuple[LiveServer, World]) -> LiveServer:
    return world_server[0]


@pytest.fixture
def world(world_server: tuple[LiveServer, World]) -> World:
    return world_server[1]


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(live: LiveServer, token: str, *, project: str = "") -> httpx.Client:
    """A browser-like client with a session (cookies kept, redirects not followed)."""
    client = live.client(follow_redirects=False)
    form = client.get("/ui/login")
    assert form.status_code == 200
    answer = client.post(
        "/ui/login",
        data={"token": token, "project": project, "csrf": csrf_of(form.text), "next": ""},
        headers={"origin": live.url},
    )
    assert answer.status_code == 303, answer.text[:500]
    return client
