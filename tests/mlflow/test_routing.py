"""The MLflow routes as one group: found by prefix and table, behind the same guard and audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from keel.server.mlflow import ENDPOINTS, MLFLOW_PREFIXES, MlflowRoutes
from keel.store import AuditQuery
from tests.server._live import LiveServer

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def http(live: LiveServer) -> httpx.Client:
    return live.client(live.admin_token)


def _group(live: LiveServer) -> MlflowRoutes:
    from starlette.applications import Starlette

    from keel.server import create_app

    app: Starlette = create_app(live.settings, services=live.services)
    first = app.router.routes[0]
    assert isinstance(first, MlflowRoutes)  # matched before Keel's own routes
    return first


def _error(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error_code"]


def test_every_endpoint_is_served_under_both_prefixes(live: LiveServer) -> None:
    served = set(_group(live).paths)
    for prefix in MLFLOW_PREFIXES:
        for method, path, _ in ENDPOINTS:
            assert (method, prefix + path) in served


def test_path_parameters_and_methods_are_matched(live: LiveServer, http: httpx.Client) -> None:
    made = http.post(f"{API}/experiments/create", json={"name": "routing"}).json()
    model = http.post(
        f"{API}/logged-models", json={"experiment_id": made["experiment_id"], "name": "m"}
    ).json()["model"]
    model_id = model["info"]["model_id"]
    got = http.get(f"{API}/logged-models/{model_id}")
    assert got.status_code == 200
    assert got.json()["model"]["info"]["model_id"] == model_id
    # Same path, a method it does not serve: MLflow's ENDPOINT_NOT_FOUND, as before.
    assert _error(http.put(f"{API}/logged-models/{model_id}", json={})) == (
        404,
        "ENDPOINT_NOT_FOUND",
    )
    # A GET endpoint does not answer HEAD (no implicit HEAD route).
    assert http.head(f"{API}/experiments/get", params={"experiment_id": "0"}).status_code == 404


def test_the_guard_and_the_credential_check_still_apply(live: LiveServer) -> None:
    anonymous = live.client().post(f"{API}/experiments/search", json={})
    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
    refused = live.client(live.admin_token).post(
        f"{API}/experiments/search", json={}, headers={"host": "evil.example"}
    )
    assert refused.status_code == 400
    assert "evil.example" in refused.text  # the guard's INVALID_HOST, before any route
    deep = {"a": 1}
    for _ in range(200):
        deep = {"a": deep}
    too_deep = live.client(live.admin_token).post(f"{API}/experiments/search", json=deep)
    assert too_deep.status_code == 400


def test_requests_are_audited_with_their_route(live: LiveServer, http: httpx.Client) -> None:
    assert http.post(f"{API}/experiments/search", json={}).status_code == 200
    assert _error(http.get(f"{API}/no/such/thing")) == (404, "ENDPOINT_NOT_FOUND")
    live.audit_flush()
    events = live.services.audit.events(AuditQuery(action="http.post", limit=50))
    routes = {
        e.details["route"]
        for e in events
        if e.object_id == f"{API}/experiments/search" and e.outcome == "allowed"
    }
    assert routes == {f"{API}/experiments/search"}
    missing = live.services.audit.events(AuditQuery(object_id=f"{API}/no/such/thing"))
    assert [e.details["route"] for e in missing] == [f"{API}/{{rest:path}}"]
    assert live.services.audit.verify().ok


def test_keel_routes_and_openapi_are_unchanged(live: LiveServer, http: httpx.Client) -> None:
    assert http.get("/api/v1/projects/default/experiments").status_code == 200
    assert live.client().get("/healthz").json() == {"status": "ok"}
    assert live.client().get("/health").text == "OK"
    paths = live.client().get("/openapi.json").json()["paths"]
    assert paths and not any(p.startswith(("/api/2.0", "/api/3.0")) for p in paths)
