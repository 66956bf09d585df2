"""Every route and every project role: allowed exactly when the role grants the route's permission.

The table below is the specification. A route missing from it fails the test, so a new route
cannot ship without its row. A refused request is a 403 that writes nothing but its denial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keel.governance import Permission, allows
from keel.store._schema import AuditEventRow
from tests.server._live import ROLES, LiveServer

P = Permission
ANY = "any authenticated caller"
IDENTITY_ADMIN = "identity administrators only"
#: authenticated by a git provider's signature, never by a token: every token holder gets 401
SIGNED = "a provider's signed delivery"

#: route → what it needs.
MATRIX: dict[str, Permission | str] = {
    "GET /api/v1/whoami": ANY,
    "GET /api/v1/users": IDENTITY_ADMIN,
    "POST /api/v1/users": IDENTITY_ADMIN,
    "POST /api/v1/users/{name}/disable": IDENTITY_ADMIN,
    "GET /api/v1/tokens": ANY,
    "POST /api/v1/tokens": ANY,
    "DELETE /api/v1/tokens/{token_id}": ANY,
    "GET /api/v1/projects": ANY,
    "POST /api/v1/projects": P.PROJECT_ADMIN,
    "GET /api/v1/projects/{project}/bindings": P.PROJECT_ADMIN,
    "PUT /api/v1/projects/{project}/bindings/{principal}": P.PROJECT_ADMIN,
    "DELETE /api/v1/projects/{project}/bindings/{principal}": P.PROJECT_ADMIN,
    "POST /api/v1/projects/{project}/uploads": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/experiments": P.EXPERIMENT_WRITE,
    "GET /api/v1/projects/{project}/experiments": P.EXPERIMENT_READ,
    "GET /api/v1/projects/{project}/experiments/by-name/{name}": P.EXPERIMENT_READ,
    "GET /api/v1/projects/{project}/experiments/{experiment_id}": P.EXPERIMENT_READ,
    "POST /api/v1/projects/{project}/experiments/{experiment_id}/tags": P.EXPERIMENT_WRITE,
    "DELETE /api/v1/projects/{project}/experiments/{experiment_id}": P.EXPERIMENT_WRITE,
    "POST /api/v1/projects/{project}/experiments/{experiment_id}/restore": P.EXPERIMENT_WRITE,
    "POST /api/v1/projects/{project}/runs": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/runs/search": P.RUN_READ,
    "POST /api/v1/projects/{project}/runs/metric-curves": P.RUN_READ,
    "GET /api/v1/projects/{project}/runs/{run_id}": P.RUN_READ,
    "POST /api/v1/projects/{project}/runs/{run_id}/end": P.RUN_WRITE,
    "DELETE /api/v1/projects/{project}/runs/{run_id}": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/runs/{run_id}/restore": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/runs/{run_id}/batch": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/runs/{run_id}/metrics": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/runs/{run_id}/params": P.RUN_WRITE,
    "POST /api/v1/projects/{project}/runs/{run_id}/tags": P.RUN_WRITE,
    "DELETE /api/v1/projects/{project}/runs/{run_id}/tags": P.RUN_WRITE,
    "GET /api/v1/projects/{project}/runs/{run_id}/metrics/history": P.RUN_READ,
    "POST /api/v1/projects/{project}/runs/{run_id}/artifacts": P.RUN_WRITE,
    "GET /api/v1/projects/{project}/runs/{run_id}/artifacts": P.RUN_READ,
    "GET /api/v1/projects/{project}/runs/{run_id}/artifacts/{path}": P.RUN_READ,
    "POST /api/v1/projects/{project}/models": P.MODEL_WRITE,
    "GET /api/v1/projects/{project}/models": P.MODEL_READ,
    "GET /api/v1/projects/{project}/models/{name}": P.MODEL_READ,
    "PATCH /api/v1/projects/{project}/models/{name}": P.MODEL_WRITE,
    "POST /api/v1/projects/{project}/models/{name}/tags": P.MODEL_WRITE,
    "POST /api/v1/projects/{project}/models/{name}/versions": P.MODEL_WRITE,
    "GET /api/v1/projects/{project}/models/{name}/versions": P.MODEL_READ,
    "GET /api/v1/projects/{project}/models/{name}/latest": P.MODEL_READ,
    "GET /api/v1/projects/{project}/models/{name}/versions/{selector}": P.MODEL_READ,
    "PATCH /api/v1/projects/{project}/models/{name}/versions/{version}": P.MODEL_WRITE,
    "GET /api/v1/projects/{project}/models/{name}/versions/{selector}/artifact": P.MODEL_READ,
    "GET /api/v1/projects/{project}/models/{name}/versions/{selector}/package": P.MODEL_READ,
    "PUT /api/v1/projects/{project}/models/{name}/aliases/{alias}": P.MODEL_PROMOTE,
    "DELETE /api/v1/projects/{project}/models/{name}/aliases/{alias}": P.MODEL_PROMOTE,
    "POST /api/v1/projects/{project}/models/{name}/aliases/{alias}/rollback": P.MODEL_PROMOTE,
    "GET /api/v1/projects/{project}/models/{name}/history": P.MODEL_READ,
    "GET /api/v1/projects/{project}/audit/events": P.AUDIT_READ,
    "GET /api/v1/projects/{project}/audit/verify": P.AUDIT_READ,
    "GET /api/v1/projects/{project}/audit/export": P.AUDIT_READ,
    "GET /api/v1/projects/{project}/lineage/{node}": P.LINEAGE_READ,
    "POST /api/v1/projects/{project}/policies": P.POLICY_WRITE,
    "GET /api/v1/projects/{project}/policies": P.POLICY_READ,
    "GET /api/v1/projects/{project}/policies/decisions": P.POLICY_READ,
    "GET /api/v1/projects/{project}/policies/{name}": P.POLICY_READ,
    "GET /api/v1/projects/{project}/approvals": P.POLICY_READ,
    "GET /api/v1/projects/{project}/approvals/{request_id}": P.POLICY_READ,
    "POST /api/v1/projects/{project}/approvals/{request_id}/approve": P.APPROVAL_DECIDE,
    "POST /api/v1/projects/{project}/approvals/{request_id}/reject": P.APPROVAL_DECIDE,
    "GET /api/v1/projects/{project}/datasets": P.DATASET_READ,
    "GET /api/v1/projects/{project}/datasets/{dataset}": P.DATASET_READ,
    "GET /api/v1/projects/{project}/datasets/{dataset}/versions": P.DATASET_READ,
    "GET /api/v1/projects/{project}/datasets/{dataset}/versions/{ref}": P.DATASET_READ,
    "POST /api/v1/projects/{project}/datasets/{dataset}/ingest": P.DATASET_WRITE,
    "GET /api/v1/projects/{project}/datasets/{dataset}/versions/{ref}/data": P.DATASET_READ,
    "GET /api/v1/projects/{project}/datasets/{dataset}/versions/{ref}/rejects": P.DATASET_READ,
    "GET /api/v1/projects/{project}/datasets/{dataset}/diff": P.DATASET_READ,
    "PUT /api/v1/projects/{project}/datasets/{dataset}/tags/{tag}": P.DATASET_WRITE,
    "POST /api/v1/projects/{project}/datasets/{dataset}/transform": P.DATASET_WRITE,
    "POST /api/v1/projects/{project}/datasets/{dataset}/derive": P.DATASET_WRITE,
    "POST /api/v1/projects/{project}/datasets/{dataset}/validate": P.DATASET_WRITE,
    "GET /api/v1/projects/{project}/datasets/{dataset}/reports": P.DATASET_READ,
    "POST /api/v1/projects/{project}/datasets/{dataset}/publish": P.DATASET_PUBLISH,
    "POST /api/v1/projects/{project}/datasets/{dataset}/classify": P.DATASET_CLASSIFY,
    "POST /api/v1/projects/{project}/datasets/{dataset}/override": P.DATASET_CLASSIFY,
    "POST /api/v1/projects/{project}/datasets/{dataset}/anonymize": P.DATASET_WRITE,
    "POST /api/v1/projects/{project}/datasets/{dataset}/uses": P.RUN_WRITE,
    "GET /api/v1/projects/{project}/validation-reports/{report_id}": P.DATASET_READ,
    "POST /api/v1/projects/{project}/models/{name}/packages": P.MODEL_WRITE,
    "GET /api/v1/projects/{project}/models/{name}/versions/{selector}/formats/{format}": (
        P.MODEL_READ
    ),
    "GET /api/v1/projects/{project}/pipelines/runs": P.PIPELINE_READ,
    "GET /api/v1/projects/{project}/pipelines/runs/{run_id}": P.PIPELINE_READ,
    "POST /api/v1/projects/{project}/pipelines/runs/{run_id}/cancel": P.PIPELINE_RUN,
    "GET /api/v1/projects/{project}/pipelines/runs/{run_id}/outputs/{output}": P.PIPELINE_READ,
    "POST /api/v1/projects/{project}/pipelines/triggers": P.PIPELINE_RUN,
    "GET /api/v1/projects/{project}/pipelines/triggers": P.PIPELINE_READ,
    "POST /api/v1/projects/{project}/pipelines/triggers/{trigger}/fire": P.PIPELINE_RUN,
    "POST /api/v1/projects/{project}/pipelines/events": P.PIPELINE_RUN,
    "GET /api/v1/projects/{project}/pipelines/firings": P.PIPELINE_READ,
    "POST /api/v1/projects/{project}/pipelines/webhooks/{provider}": SIGNED,
    "POST /api/v1/projects/{project}/deployments": P.DEPLOYMENT_WRITE,
    "GET /api/v1/projects/{project}/deployments": P.DEPLOYMENT_READ,
    "GET /api/v1/projects/{project}/deployments/{deployment}": P.DEPLOYMENT_READ,
    "GET /api/v1/projects/{project}/deployments/{deployment}/revisions": P.DEPLOYMENT_READ,
    "POST /api/v1/projects/{project}/deployments/{deployment}/promote": P.DEPLOYMENT_PROMOTE,
    "POST /api/v1/projects/{project}/deployments/{deployment}/rollback": P.DEPLOYMENT_WRITE,
    "GET /api/v1/projects/{project}/deployments/{deployment}/predictions": P.DEPLOYMENT_READ,
    "GET /api/v1/projects/{project}/predictions/{prediction_id}": P.DEPLOYMENT_READ,
    "GET /api/v1/projects/{project}/compliance/records": P.AUDIT_READ,
    "PUT /api/v1/projects/{project}/compliance/records/{dataset}": P.COMPLIANCE_ADMIN,
    "GET /api/v1/projects/{project}/compliance/locations": P.PROJECT_READ,
    "PUT /api/v1/projects/{project}/compliance/locations/{name}": P.COMPLIANCE_ADMIN,
    "GET /api/v1/projects/{project}/compliance/retention": P.COMPLIANCE_ADMIN,
    "POST /api/v1/projects/{project}/compliance/retention/enforce": P.COMPLIANCE_ADMIN,
    "POST /api/v1/projects/{project}/compliance/subjects/locate": P.COMPLIANCE_ADMIN,
    "POST /api/v1/projects/{project}/compliance/subjects/erase": P.COMPLIANCE_ADMIN,
    "POST /api/v1/projects/{project}/compliance/subjects/access": P.COMPLIANCE_ADMIN,
    "GET /api/v1/projects/{project}/compliance/erasures": P.COMPLIANCE_ADMIN,
    "GET /api/v1/projects/{project}/compliance/erasures/{erasure_id}": P.COMPLIANCE_ADMIN,
    "GET /api/v1/projects/{project}/supplychain/models/{name}/versions/{version}/signature": (
        P.MODEL_READ
    ),
    "POST /api/v1/projects/{project}/supplychain/models/{name}/versions/{version}/sign": (
        P.MODEL_WRITE
    ),
    "GET /api/v1/projects/{project}/supplychain/models/{name}/versions/{version}/bom": (
        P.MODEL_READ
    ),
    "GET /api/v1/projects/{project}/supplychain/models/{name}/versions/{version}/"
    "environment-audit": P.MODEL_READ,
    "GET /api/v1/projects/{project}/supplychain/quarantine": P.MODEL_READ,
    "POST /api/v1/projects/{project}/supplychain/scan": P.MODEL_WRITE,
    "POST /api/v1/projects/{project}/monitors": P.MONITOR_WRITE,
    "GET /api/v1/projects/{project}/monitors": P.MONITOR_READ,
    "GET /api/v1/projects/{project}/monitors/{name}": P.MONITOR_READ,
    "DELETE /api/v1/projects/{project}/monitors/{name}": P.MONITOR_WRITE,
    "POST /api/v1/projects/{project}/monitors/{name}/run": P.MONITOR_WRITE,
    "GET /api/v1/projects/{project}/monitors/{name}/reports": P.MONITOR_READ,
    "GET /api/v1/projects/{project}/monitors/{name}/reports/{report_id}": P.MONITOR_READ,
    "GET /api/v1/projects/{project}/monitors/{name}/report.html": P.MONITOR_READ,
    "GET /api/v1/projects/{project}/monitor-reports/{report_id}": P.MONITOR_READ,
    "POST /api/v1/projects/{project}/labels": P.MONITOR_WRITE,
    "POST /api/v1/projects/{project}/labels/find": P.MONITOR_READ,
    "GET /api/v1/projects/{project}/alerts/{alert_id}": P.MONITOR_READ,
    "POST /api/v1/projects/{project}/alert-rules": P.MONITOR_WRITE,
    "GET /api/v1/projects/{project}/alert-rules": P.MONITOR_READ,
    "DELETE /api/v1/projects/{project}/alert-rules/{name}": P.MONITOR_WRITE,
    "GET /api/v1/projects/{project}/alerts": P.MONITOR_READ,
}
PUBLIC = {"GET /openapi.json", "GET /healthz"}
POLICY = (Path(__file__).parents[2] / "examples" / "policies" / "production.yaml").read_text()


def _routes(live: LiveServer) -> list[str]:
    """Every operation of the published OpenAPI document."""
    with live.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


def _allowed(need: Permission | str, role: str) -> bool:
    if need == ANY:
        return True
    if need in (IDENTITY_ADMIN, SIGNED):
        return False
    assert isinstance(need, Permission)
    return allows({role}, need)


def _successes(live: LiveServer) -> int:
    with live.services.governor.db.read() as session:
        stmt = select(func.count()).where(AuditEventRow.outcome == "success")
        return int(session.execute(stmt).scalar_one())


class _World:
    """Objects every route can point at, made by the admin."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.admin = admin = live.client(live.admin_token)
        base = "/api/v1/projects/default"
        self.experiment = admin.post(f"{base}/experiments", json={"name": "e"}).json()["id"]
        self.run = admin.post(f"{base}/runs", json={"experiment": "e"}).json()["id"]
        upload = self.upload()
        admin.post(f"{base}/runs/{self.run}/artifacts", json={"upload_id": upload, "path": "a.txt"})
        for _ in range(2):
            admin.post(
                f"{base}/models/m/versions", json={"upload_id": self.upload(), "format": "onnx"}
            )
        admin.put(f"{base}/models/m/aliases/champion", json={"version": 1})
        admin.put(f"{base}/models/m/aliases/champion", json={"version": 2})
        csv = {"upload_id": self.upload(b"a,b\n1,2\n"), "kind": "csv"}
        admin.post(f"{base}/datasets/d/ingest", json=csv)
        admin.post(f"{base}/pipelines/triggers", json=self.parity_body("/pipelines/triggers"))

    def upload(self, data: bytes = b"bytes") -> str:
        response = self.admin.post(
            "/api/v1/projects/default/uploads",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        return str(response.json()["upload_id"])

    def request(self, client: httpx.Client, key: str) -> httpx.Response:
        method, template = key.split(" ", 1)
        values = {
            "project": "default",
            "experiment_id": self.experiment,
            "run_id": self.run,
            "name": "e" if "/experiments/" in template else "m",
            "selector": "1",
            "version": "1",
            "alias": "champion",
            "path": "a.txt",
            "node": f"run:{self.run}",
            "principal": "user:somebody",
            "token_id": "01ABCDEFGHJKMNPQRSTVWXYZ00",
            "request_id": "01ABCDEFGHJKMNPQRSTVWXYZ00",
            "ref": "1",
            "tag": "golden",
            "report_id": "01ABCDEFGHJKMNPQRSTVWXYZ00",
            "deployment": "m-staging",
            "trigger": "t",
            "output": "o",
            "format": "skops",
            "provider": "github",
            "dataset": "d",
            "erasure_id": "01ABCDEFGHJKMNPQRSTVWXYZ00",
        }
        if template.startswith("/api/v1/users/"):
            values["name"] = "user:nobody"
        path = template
        for key_name, value in values.items():
            path = path.replace("{" + key_name + "}", value)
        if template.endswith("/uploads"):
            return client.post(
                path, content=b"x", headers={"content-type": "application/octet-stream"}
            )
        body = self.body(method, template)
        params = {"key": "t"} if template.endswith(("/tags", "/history")) else None
        if template.endswith("/diff"):
            params = {"before": "1"}
        if method == "DELETE":
            return client.request(method, path, params=params)
        if method == "GET":
            return client.get(path, params=params)
        return client.request(method, path, json=body, params=params)

    def body(self, method: str, template: str) -> dict[str, Any]:
        last = template.rsplit("/", 1)[-1]
        parity = self.parity_body(template)
        if parity is not None:
            return parity
        if template == "/api/v1/users":
            return {"name": "user:new"}
        if template == "/api/v1/tokens":
            return {"role": "viewer", "days": 1}
        if template == "/api/v1/projects":
            return {"name": "other"}
        if template.endswith("/policies"):
            return {"source": POLICY}
        if last == "{principal}":
            return {"role": "viewer"}
        if template.endswith("/experiments") or template.endswith("/models"):
            return {"name": "made"}
        if last == "tags":
            return {"key": "t", "value": "v"} if "/runs/" not in template else {"tags": {"t": "v"}}
        if last == "batch":
            return {"metrics": [{"key": "m", "value": 1.0}]}
        if last == "metrics":
            return {"metrics": {"m": 1.0}}
        if last == "params":
            return {"params": {"p": 1}}
        if last == "artifacts":
            return {"upload_id": self.upload(), "path": "b.txt"}
        if last == "versions":
            return {"upload_id": self.upload(), "format": "onnx"}
        if last == "{alias}":
            return {"version": 1}
        if "/compliance/" in template:
            if last == "{dataset}":
                return {"purpose": "p", "lawful_basis": "consent"}
            if last == "{name}":
                return {"kind": "storage", "region": "ae"}
            if last == "enforce":
                return {"dry_run": True}
            return {"subject": "someone@example.org"}
        if template.endswith("/supplychain/scan"):
            return {"upload_id": self.upload(), "filename": "model.pkl"}
        if method == "PATCH":
            return {"description": "d"}
        if last == "search":
            return {"max_results": 5}
        if last == "runs":
            return {"experiment": "e"}
        return {}

    def parity_body(self, template: str) -> dict[str, Any] | None:
        """Bodies of the dataset, model package, pipeline and deployment routes."""
        last = template.rsplit("/", 1)[-1]
        if "/datasets/{dataset}/" in template:
            if last == "ingest":
                return {"upload_id": self.upload(b"a,b\n3,4\n"), "kind": "csv"}
            if last == "derive":
                return {"upload_id": self.upload(), "module": "m", "qualname": "f"}
            return {
                "{tag}": {"version": 1},
                "transform": {"steps": [{"op": "drop_nulls"}]},
                "validate": {"suite": [{"kind": "not_null", "column": "a"}]},
                "override": {"column": "a", "sensitivity": "restricted", "reason": "regulated"},
                "anonymize": {"steps": [{"kind": "pseudonymize", "columns": ["a"]}]},
                "uses": {"version": 1, "consumer": f"run:{getattr(self, 'run', '')}"},
            }.get(last, {})
        if template.endswith("/packages"):
            upload, sidecar = self.upload(), self.upload()
            return {"upload_id": upload, "format": "onnx", "sidecar_upload_id": sidecar}
        if template.endswith("/pipelines/triggers"):
            spec = {"cron": "0 3 * * *"}
            return {"name": "t", "pipeline": "p", "kind": "schedule", "spec": spec, "replace": True}
        if template.endswith("/pipelines/events"):
            return {"kind": "dataset", "subject": "d", "event_id": "e1"}
        if template.endswith("/deployments"):
            return {"ref": "m@champion"}
        if "/pipelines/" in template or "/deployments/" in template:
            return {}
        return None


def test_the_matrix_covers_every_route(live: LiveServer) -> None:
    routes = set(_routes(live)) - PUBLIC
    assert routes == set(MATRIX), "add the new route to MATRIX with the permission it needs"


@pytest.mark.parametrize("role", ROLES)
def test_every_route_allows_exactly_the_roles_that_grant_it(live: LiveServer, role: str) -> None:
    world = _World(live)
    client = live.client(live.token_for(role))
    wrong = []
    for key, need in MATRIX.items():
        before = _successes(live)
        response = world.request(client, key)
        allowed = _allowed(need, role)
        if need == SIGNED:
            if response.status_code != 401 or _successes(live) != before:
                wrong.append(f"{key}: {role} got {response.status_code}, expected 401")
        elif allowed and response.status_code in (401, 403):
            wrong.append(f"{key}: {role} refused ({response.status_code}) {response.text[:200]}")
        elif not allowed:
            if response.status_code != 403:
                wrong.append(f"{key}: {role} got {response.status_code}, expected 403")
            elif _successes(live) != before:
                wrong.append(f"{key}: {role} was refused but something was written")
            elif response.json()["error"]["code"] != "PERMISSION_DENIED":
                wrong.append(f"{key}: {role} refused with {response.json()['error']['code']}")
        assert response.status_code < 500, f"{key}: {response.status_code} {response.text[:300]}"
    assert wrong == []


def test_the_mlflow_api_is_covered_by_its_own_matrix() -> None:
    """The MLflow-compatible routes (kept out of OpenAPI) are specified, and checked for every
    role, in tests/mlflow/test_authorization.py with MLflow's error envelope."""
    from keel.server.mlflow import ENDPOINTS
    from tests.mlflow.test_authorization import MLFLOW_MATRIX

    assert {f"{method} {path}" for method, path, _ in ENDPOINTS} <= set(MLFLOW_MATRIX)
