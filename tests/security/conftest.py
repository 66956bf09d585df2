"""Fixtures of the server tests: a live server on SQLite, and one per contract backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server._live import LiveServer, live_server


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """A live server on the embedded SQLite store."""
    with live_server(tmp_path / "home") as server:
        yield server
