"""Fixtures of the MLflow conformance suite: one live Keel server per module, and its client env."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server._live import LiveServer, live_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live Keel server on SQLite, shared by the tests of one module."""
    with live_server(tmp_path_factory.mktemp("mlflow") / "home") as server:
        yield server


@pytest.fixture
def mlflow_env(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment pointing the official MLflow client at the live server (admin's token)."""
    env = {
        "MLFLOW_TRACKING_URI": live.url,
        "MLFLOW_TRACKING_TOKEN": live.admin_token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
