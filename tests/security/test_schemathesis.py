"""Property-based fuzzing of every operation in the published OpenAPI: zero 5xx responses."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.server._live import LiveServer

EXAMPLES = int(os.environ.get("KEEL_FUZZ_EXAMPLES", "12"))


def test_no_operation_answers_5xx_to_generated_requests(live: LiveServer) -> None:
    client = live.client(live.admin_token)
    client.post("/api/v1/projects/default/runs", json={"experiment": "e"})
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    auth = {"authorization": f"Bearer {live.admin_token}"}
    failures: list[str] = []
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            nonlocal count
            count += 1
            response = case.call(base_url=live.url, headers=auth, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]}"
                )

        fuzz()
    assert failures == []
    assert count > 300
    assert live.services.audit.verify().ok
