"""The MLflow wire protocol over plain HTTP: errors, malformed payloads, auth, encodings."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.server._live import LiveServer

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def http(live: LiveServer) -> httpx.Client:
    return live.client(live.admin_token)


@pytest.fixture(scope="module")
def run_id(http: httpx.Client) -> str:
    exp = http.post(f"{API}/experiments/create", json={"name": "wire"}).json()["experiment_id"]
    made = http.post(f"{API}/runs/create", json={"experiment_id": exp, "run_name": "w"})
    return str(made.json()["run"]["info"]["run_id"])


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error_code"], body["message"]


def test_missing_required_parameter_is_400_with_mlflows_message(http: httpx.Client) -> None:
    status, code, message = _error(http.post(f"{API}/experiments/create", json={}))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert message.startswith("Missing value for required parameter 'name'")


def test_wrong_types_are_400(http: httpx.Client, run_id: str) -> None:
    bad = {"run_id": run_id, "key": "m", "value": "not-a-number", "timestamp": 1, "step": 0}
    status, code, message = _error(http.post(f"{API}/runs/log-metric", json=bad))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "parameter 'value'" in message
    bad_step = {"run_id": run_id, "key": "m", "value": 1, "step": "two"}
    assert _error(http.post(f"{API}/runs/log-metric", json=bad_step))[0] == 400
    not_list = {"run_id": run_id, "metrics": {"key": "m"}}
    assert _error(http.post(f"{API}/runs/log-batch", json=not_list))[:2] == (
        400,
        "INVALID_PARAMETER_VALUE",
    )


def test_a_body_that_is_not_json_is_malformed(http: httpx.Client) -> None:
    response = http.post(
        f"{API}/runs/create", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert _error(response)[:2] == (400, "MALFORMED_REQUEST")


def test_too_large_batches_get_mlflows_limit_message(http: httpx.Client, run_id: str) -> None:
    metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
    status, code, message = _error(
        http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
    )
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "at most 1000 metrics. Got 1001 metrics" in message


def test_numbers_as_strings_and_nan_infinity(http: httpx.Client, run_id: str) -> None:
    metrics = [
        {"key": "s", "value": "NaN", "timestamp": "1700000000000", "step": "1"},
        {"key": "s", "value": "Infinity", "timestamp": "1700000000001", "step": "2"},
        {"key": "s", "value": "-Infinity", "timestamp": 1700000000002, "step": 3},
        {"key": "s", "value": "0.5", "timestamp": 1700000000003, "step": 4},
    ]
    assert (
        http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}).json() == {}
    )
    history = http.get(
        f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "s"}
    ).json()["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [
        (1, "NaN"),
        (2, "Infinity"),
        (3, "-Infinity"),
        (4, 0.5),
    ]
    bulk = http.get(
        f"{API}/metrics/get-history-bulk-interval",
        params=[("run_ids", run_id), ("metric_key", "s"), ("start_step", "2"), ("end_step", "3")],
    ).json()["metrics"]
    assert [(m["step"], m["run_id"]) for m in bulk] == [(2, run_id), (3, run_id)]


def test_get_by_name_is_404_resource_does_not_exist(http: httpx.Client) -> None:
    response = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "absent"})
    assert _error(response)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")


def test_creating_a_duplicate_is_resource_already_exists(http: httpx.Client) -> None:
    http.post(f"{API}/experiments/create", json={"name": "twice"})
    response = http.post(f"{API}/experiments/create", json={"name": "twice"})
    assert _error(response)[:2] == (400, "RESOURCE_ALREADY_EXISTS")


def test_delete_carries_a_json_body(http: httpx.Client) -> None:
    http.post(f"{API}/registered-models/create", json={"name": "deletable"})
    http.post(
        f"{API}/registered-models/set-tag", json={"name": "deletable", "key": "k", "value": "v"}
    )
    gone = http.request(
        "DELETE", f"{API}/registered-models/delete-tag", json={"name": "deletable", "key": "k"}
    )
    assert gone.status_code == 200
    got = http.get(f"{API}/registered-models/get", params={"name": "deletable"}).json()
    assert got["registered_model"]["tags"] == []
    http.request("DELETE", f"{API}/registered-models/delete", json={"name": "deletable"})
    missing = http.get(f"{API}/registered-models/get", params={"name": "deletable"})
    assert _error(missing)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")


def test_unknown_endpoints_are_endpoint_not_found(http: httpx.Client) -> None:
    for method, path in (
        ("GET", f"{API}/no/such/thing"),
        ("POST", "/api/3.0/mlflow/traces/nothing"),
        ("GET", "/api/2.0/mlflow-artifacts/mpu/create"),
        ("PUT", f"{API}/runs/create"),
    ):
        response = http.request(method, path, json={})
        assert _error(response)[:2] == (404, "ENDPOINT_NOT_FOUND"), (method, path)


def test_health_answers_without_credentials(live: LiveServer) -> None:
    response = live.client().get("/health")
    assert (response.status_code, response.text) == (200, "OK")


def test_credentials_bearer_and_basic(live: LiveServer) -> None:
    path = f"{API}/experiments/search"
    anonymous = live.client().post(path, json={})
    assert _error(anonymous)[:2] == (401, "UNAUTHENTICATED")
    wrong = live.client("keel_wrong").post(path, json={})
    assert _error(wrong)[:2] == (401, "UNAUTHENTICATED")
    basic = base64.b64encode(f"anyone:{live.admin_token}".encode()).decode()
    response = live.client().post(path, json={}, headers={"authorization": f"Basic {basic}"})
    assert response.status_code == 200 and "experiments" in response.json()


def test_a_viewer_reads_but_cannot_write(live: LiveServer) -> None:
    viewer = live.client(live.token_for("viewer"))
    assert viewer.post(f"{API}/experiments/search", json={}).status_code == 200
    refused = viewer.post(f"{API}/experiments/create", json={"name": "nope"})
    assert _error(refused)[:2] == (403, "PERMISSION_DENIED")


def test_artifact_paths_cannot_escape(http: httpx.Client, run_id: str) -> None:
    run = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["info"]
    base = f"/api/2.0/mlflow-artifacts/artifacts/{run['experiment_id']}/{run_id}/artifacts"
    for bad in ("../../etc/passwd", "a/%2e%2e/%2e%2e/x", "/abs"):
        response = http.put(f"{base}/{bad}", content=b"x")
        assert response.status_code in (400, 404), bad
    elsewhere = http.put("/api/2.0/mlflow-artifacts/artifacts/anywhere/file.txt", content=b"x")
    assert _error(elsewhere)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    ok = http.put(f"{base}/dir/ok.txt", content=b"fine", headers={"content-type": "text/plain"})
    assert ok.status_code == 200
    assert http.get(f"{base}/dir/ok.txt").content == b"fine"
    root = base.removeprefix("/api/2.0/mlflow-artifacts/artifacts/")
    listing = http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{root}/dir"})
    assert listing.json()["files"] == [{"path": "ok.txt", "is_dir": False, "file_size": 4}]


def test_the_project_is_the_tokens_own(live: LiveServer) -> None:
    other = live.client(live.token_for("contributor", project="elsewhere"))
    made = other.post(f"{API}/experiments/create", json={"name": "only-elsewhere"})
    assert made.status_code == 200, made.text
    admin = live.client(live.admin_token)
    unseen = admin.get(
        f"{API}/experiments/get-by-name", params={"experiment_name": "only-elsewhere"}
    )
    assert _error(unseen)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    by_id = admin.get(
        f"{API}/experiments/get", params={"experiment_id": made.json()["experiment_id"]}
    )
    assert by_id.status_code == 404
    crossing = other.post(
        f"{API}/experiments/search", json={}, headers={"x-keel-project": "default"}
    )
    assert _error(crossing)[:2] == (403, "PERMISSION_DENIED")


def test_log_batch_reads_nan_literals_and_checks_the_run(http: httpx.Client, run_id: str) -> None:
    log = f"{API}/runs/log-batch"
    json_type = {"content-type": "application/json"}
    literals = (
        b'{"run_id": "%s", "metrics": [{"key": "lit", "value": NaN, "timestamp": 1, "step": 0},'
        b' {"key": "lit", "value": -Infinity, "timestamp": 2, "step": 1}]}' % run_id.encode()
    )
    assert http.post(log, content=literals, headers=json_type).status_code == 200
    history = http.get(
        f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "lit"}
    ).json()["metrics"]
    assert [(m["step"], str(m["value"])) for m in history] == [(0, "NaN"), (1, "-Infinity")]
    one = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    nowhere = http.post(log, json={"run_id": "0" * 26, "metrics": [one]})
    assert _error(nowhere)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    exp = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["info"]
    gone = http.post(f"{API}/runs/create", json={"experiment_id": exp["experiment_id"]})
    gone_id = gone.json()["run"]["info"]["run_id"]
    assert http.post(f"{API}/runs/delete", json={"run_id": gone_id}).status_code == 200
    status, code, message = _error(http.post(log, json={"run_id": gone_id, "metrics": [one]}))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "is deleted" in message
