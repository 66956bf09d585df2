"""Every MLflow endpoint and every project role: allowed exactly when the role grants it.

The table is the specification; an endpoint missing from it fails the test. A refused call is
a 403 ``PERMISSION_DENIED`` in MLflow's envelope that writes nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keel.governance import Permission, allows
from keel.server.mlflow import ENDPOINTS
from keel.store._schema import AuditEventRow
from keel.tracking import dump_skops
from tests.server._live import ROLES, LiveServer

P = Permission
API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"

#: "METHOD path" → what it needs; destructive calls last, so the world stays usable.
MLFLOW_MATRIX: dict[str, Permission] = {
    "POST /experiments/create": P.EXPERIMENT_WRITE,
    "GET /experiments/get": P.EXPERIMENT_READ,
    "GET /experiments/get-by-name": P.EXPERIMENT_READ,
    "POST /experiments/search": P.EXPERIMENT_READ,
    "GET /experiments/search": P.EXPERIMENT_READ,
    "POST /experiments/set-experiment-tag": P.EXPERIMENT_WRITE,
    "POST /experiments/delete-experiment-tag": P.EXPERIMENT_WRITE,
    "POST /runs/create": P.RUN_WRITE,
    "GET /runs/get": P.RUN_READ,
    "POST /runs/search": P.RUN_READ,
    "POST /runs/log-metric": P.RUN_WRITE,
    "POST /runs/log-parameter": P.RUN_WRITE,
    "POST /runs/log-batch": P.RUN_WRITE,
    "POST /runs/log-inputs": P.RUN_WRITE,
    "POST /runs/outputs": P.RUN_WRITE,
    "POST /runs/set-tag": P.RUN_WRITE,
    "POST /runs/delete-tag": P.RUN_WRITE,
    "GET /metrics/get-history": P.RUN_READ,
    "GET /metrics/get-history-bulk-interval": P.RUN_READ,
    "GET /artifacts/list": P.RUN_READ,
    "PUT proxy": P.RUN_WRITE,
    "GET proxy": P.RUN_READ,
    "GET proxy-list": P.RUN_READ,
    "POST /logged-models": P.RUN_WRITE,
    "POST /logged-models/search": P.RUN_READ,
    "GET /logged-models/{model_id}": P.RUN_READ,
    "PATCH /logged-models/{model_id}": P.RUN_WRITE,
    "PATCH /logged-models/{model_id}/tags": P.RUN_WRITE,
    "DELETE /logged-models/{model_id}/tags/{tag_key}": P.RUN_WRITE,
    "POST /logged-models/{model_id}/params": P.RUN_WRITE,
    "GET /logged-models/{model_id}/artifacts/directories": P.RUN_READ,
    "POST /registered-models/create": P.MODEL_WRITE,
    "GET /registered-models/get": P.MODEL_READ,
    "GET /registered-models/search": P.MODEL_READ,
    "PATCH /registered-models/update": P.MODEL_WRITE,
    "POST /registered-models/set-tag": P.MODEL_WRITE,
    "DELETE /registered-models/delete-tag": P.MODEL_WRITE,
    "POST /model-versions/create": P.MODEL_WRITE,
    "GET /model-versions/get": P.MODEL_READ,
    "GET /model-versions/search": P.MODEL_READ,
    "PATCH /model-versions/update": P.MODEL_WRITE,
    "POST /model-versions/set-tag": P.MODEL_WRITE,
    "DELETE /model-versions/delete-tag": P.MODEL_WRITE,
    "GET /model-versions/get-download-uri": P.MODEL_READ,
    "POST /model-versions/transition-stage": P.MODEL_PROMOTE,
    "POST /registered-models/alias": P.MODEL_PROMOTE,
    "GET /registered-models/alias": P.MODEL_READ,
    "DELETE /registered-models/alias": P.MODEL_PROMOTE,
    "POST /registered-models/get-latest-versions": P.MODEL_READ,
    "GET /registered-models/get-latest-versions": P.MODEL_READ,
    "POST /runs/update": P.RUN_WRITE,
    "POST /experiments/update": P.EXPERIMENT_WRITE,
    "POST /registered-models/rename": P.MODEL_WRITE,
    "DELETE /model-versions/delete": P.MODEL_WRITE,
    "DELETE /registered-models/delete": P.MODEL_WRITE,
    "DELETE /logged-models/{model_id}": P.RUN_WRITE,
    "POST /runs/delete": P.RUN_WRITE,
    "POST /runs/restore": P.RUN_WRITE,
    "POST /experiments/delete": P.EXPERIMENT_WRITE,
    "POST /experiments/restore": P.EXPERIMENT_WRITE,
}


class _World:
    """Objects every endpoint can point at, made by the admin (names unique per role)."""

    def __init__(self, live: LiveServer, tag: str) -> None:
        self.tag = tag
        admin = live.client(live.admin_token)
        self.exp = admin.post(f"{API}/experiments/create", json={"name": f"e-{tag}"}).json()[
            "experiment_id"
        ]
        run = admin.post(f"{API}/runs/create", json={"experiment_id": self.exp}).json()
        self.run = run["run"]["info"]["run_id"]
        self.root = f"{self.exp}/{self.run}/artifacts"
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        x, y = load_iris(return_X_y=True)
        model = dump_skops(LogisticRegression(max_iter=300).fit(x, y))
        admin.put(f"{PROXY}/{self.root}/model/model.skops", content=model)
        admin.post(f"{API}/runs/set-tag", json={"run_id": self.run, "key": "t", "value": "v"})
        admin.post(
            f"{API}/experiments/set-experiment-tag",
            json={"experiment_id": self.exp, "key": "t", "value": "v"},
        )
        made = admin.post(f"{API}/logged-models", json={"experiment_id": self.exp}).json()
        self.logged = made["model"]["info"]["model_id"]
        admin.patch(
            f"{API}/logged-models/{self.logged}/tags", json={"tags": [{"key": "t", "value": "v"}]}
        )
        self.model = f"m-{tag}"
        admin.post(f"{API}/registered-models/create", json={"name": self.model})
        admin.post(
            f"{API}/registered-models/set-tag", json={"name": self.model, "key": "t", "value": "v"}
        )
        created = admin.post(
            f"{API}/model-versions/create",
            json={"name": self.model, "source": f"runs:/{self.run}/model"},
        )
        assert created.status_code == 200, created.text
        admin.post(
            f"{API}/model-versions/set-tag",
            json={"name": self.model, "version": "1", "key": "t", "value": "v"},
        )
        admin.post(
            f"{API}/registered-models/alias",
            json={"name": self.model, "alias": "champion", "version": "1"},
        )

    def request(self, client: httpx.Client, key: str) -> httpx.Response:
        method, path = key.split(" ", 1)
        if path == "proxy":
            url = (
                f"{PROXY}/{self.root}/new.txt"
                if method == "PUT"
                else f"{PROXY}/{self.root}/model/model.skops"
            )
            return client.request(method, url, content=b"x" if method == "PUT" else None)
        if path == "proxy-list":
            return client.get(PROXY, params={"path": self.root})
        url = API + path.replace("{model_id}", self.logged).replace("{tag_key}", "t")
        args = self.args(path)
        if method == "GET":
            return client.get(url, params=args)
        return client.request(method, url, json=args)

    def args(self, path: str) -> dict[str, Any]:
        e, r, m = self.exp, self.run, self.model
        by_path: dict[str, dict[str, Any]] = {
            "/experiments/create": {"name": f"new-{self.tag}"},
            "/experiments/get": {"experiment_id": e},
            "/experiments/get-by-name": {"experiment_name": f"e-{self.tag}"},
            "/experiments/set-experiment-tag": {"experiment_id": e, "key": "k", "value": "v"},
            "/experiments/delete-experiment-tag": {"experiment_id": e, "key": "t"},
            "/experiments/update": {"experiment_id": e, "new_name": f"renamed-{self.tag}"},
            "/experiments/delete": {"experiment_id": e},
            "/experiments/restore": {"experiment_id": e},
            "/runs/create": {"experiment_id": e},
            "/runs/get": {"run_id": r},
            "/runs/delete": {"run_id": r},
            "/runs/restore": {"run_id": r},
            "/runs/search": {"experiment_ids": [e]},
            "/runs/log-metric": {"run_id": r, "key": "m", "value": 1.0, "timestamp": 1, "step": 0},
            "/runs/log-parameter": {"run_id": r, "key": "p", "value": "1"},
            "/runs/log-batch": {"run_id": r, "metrics": [{"key": "m", "value": 1, "timestamp": 1}]},
            "/runs/log-inputs": {
                "run_id": r,
                "datasets": [{"dataset": {"name": "d", "digest": "x"}}],
            },
            "/runs/outputs": {"run_id": r, "models": [{"model_id": self.logged, "step": 0}]},
            "/runs/set-tag": {"run_id": r, "key": "k", "value": "v"},
            "/runs/delete-tag": {"run_id": r, "key": "t"},
            "/runs/update": {"run_id": r, "run_name": "renamed", "status": "FINISHED"},
            "/metrics/get-history-bulk-interval": {"run_ids": r, "metric_key": "m"},
            "/metrics/get-history": {"run_id": r, "metric_key": "m"},
            "/artifacts/list": {"run_id": r},
            "/logged-models": {"experiment_id": e},
            "/logged-models/search": {"experiment_ids": [e]},
            "/logged-models/{model_id}": {"status": "LOGGED_MODEL_READY"},
            "/logged-models/{model_id}/tags": {"tags": [{"key": "k", "value": "v"}]},
            "/logged-models/{model_id}/params": {"params": [{"key": "p", "value": "1"}]},
            "/registered-models/create": {"name": f"new-{self.tag}"},
            "/registered-models/update": {"name": m, "description": "d"},
            "/registered-models/rename": {"name": m, "new_name": f"renamed-{self.tag}"},
            "/registered-models/set-tag": {"name": m, "key": "k", "value": "v"},
            "/registered-models/delete-tag": {"name": m, "key": "t"},
            "/registered-models/alias": {"name": m, "alias": "champion", "version": "1"},
            "/model-versions/create": {"name": m, "source": f"runs:/{r}/model"},
            "/model-versions/search": {"filter": f"name = '{m}'"},
            "/model-versions/update": {"name": m, "version": "1", "description": "d"},
            "/model-versions/set-tag": {"name": m, "version": "1", "key": "k", "value": "v"},
            "/model-versions/delete-tag": {"name": m, "version": "1", "key": "t"},
            "/model-versions/transition-stage": {"name": m, "version": "1", "stage": "Staging"},
        }
        found = by_path.get(path)
        if found is not None:
            return found
        if path.startswith(("/registered-models", "/model-versions")):
            return {"name": m, "version": "1"}
        return {}


def _successes(live: LiveServer) -> int:
    with live.services.governor.db.read() as session:
        stmt = select(func.count()).where(AuditEventRow.outcome == "success")
        return int(session.execute(stmt).scalar_one())


def test_the_matrix_covers_every_endpoint() -> None:
    served = {f"{method} {path}" for method, path, _ in ENDPOINTS}
    assert served == set(MLFLOW_MATRIX) - {"PUT proxy", "GET proxy", "GET proxy-list"}


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_allows_exactly_the_roles_that_grant_it(live: LiveServer, role: str) -> None:
    world = _World(live, role)
    client = live.client(live.token_for(role))
    wrong = []
    for key, need in MLFLOW_MATRIX.items():
        before = _successes(live)
        response = world.request(client, key)
        if allows({role}, need):
            if response.status_code in (401, 403):
                wrong.append(
                    f"{key}: {role} refused ({response.status_code}) {response.text[:200]}"
                )
        elif response.status_code != 403:
            wrong.append(
                f"{key}: {role} got {response.status_code}, expected 403: {response.text[:200]}"
            )
        elif _successes(live) != before:
            wrong.append(f"{key}: {role} was refused but something was written")
        elif response.json()["error_code"] != "PERMISSION_DENIED":
            wrong.append(f"{key}: {role} refused with {response.json()['error_code']}")
        assert response.status_code < 500, f"{key}: {response.status_code} {response.text[:300]}"
    assert wrong == []
