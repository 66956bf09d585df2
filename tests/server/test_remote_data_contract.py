"""Remote mode keeps the dataset and deployment contracts: the same scenarios, unchanged, run
against ``keel.connect(url, token=...)`` on a live server, on SQLite and PostgreSQL.

Scenarios that reach past the services (the blob store itself, a second local principal, the
model server's own log sink and analysis) stay in tests/contracts only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import keel
from keel.workspace import Workspace
from tests.contracts.test_datasets_contract import (
    test_append_reuses_unchanged_parts_and_refuses_another_schema,
    test_classification_override_and_propagation_through_anonymization,
    test_rejects_are_kept_with_line_numbers,
    test_tags_and_unknown_names,
    test_transform_records_steps_lineage_and_a_new_version,
    test_validation_gate_blocks_publish_until_checks_pass,
)
from tests.contracts.test_deployments_contract import (
    models,
    test_same_version_twice_is_a_conflict,
)
from tests.server._live import LiveServer, live_server

__all__ = [
    "models",
    "test_append_reuses_unchanged_parts_and_refuses_another_schema",
    "test_classification_override_and_propagation_through_anonymization",
    "test_rejects_are_kept_with_line_numbers",
    "test_same_version_twice_is_a_conflict",
    "test_tags_and_unknown_names",
    "test_transform_records_steps_lineage_and_a_new_version",
    "test_validation_gate_blocks_publish_until_checks_pass",
]


@pytest.fixture
def server(backend: str, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "home", backend) as running:
        yield running


@pytest.fixture
def ws(server: LiveServer) -> Iterator[Workspace]:
    """The contract's ``ws``, but remote: user:tester with the admin role, over HTTP."""
    workspace = keel.connect(server.url, token=server.token_for("admin", name="user:tester"))
    try:
        yield workspace
    finally:
        workspace.close()
