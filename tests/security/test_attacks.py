"""Bad input and attacks: each is refused with the right status and changes nothing."""

from __future__ import annotations

import http.client
import json
import re
import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from keel import clock
from keel.store._schema import AuditEventRow, RunRow
from keel.store._schema_identity import ApiTokenRow
from tests.server._live import LiveServer

BASE = "/api/v1/projects/default"


def _successes(live: LiveServer) -> int:
    with live.services.governor.db.read() as session:
        stmt = select(func.count()).where(AuditEventRow.outcome == "success")
        return int(session.execute(stmt).scalar_one())


def _raw(live: LiveServer, method: str, target: str, *, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request with the target sent exactly as given (no client-side normalisation)."""
    host, port = live.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        skip_host = "host" in (headers or {})
        conn.putrequest(method, target, skip_host=skip_host, skip_accept_encoding=True)
        for key, value in {
            "authorization": f"Bearer {live.admin_token}",
            **(headers or {}),
        }.items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def run_id(live: LiveServer) -> str:
    client = live.client(live.admin_token)
    run = client.post(f"{BASE}/runs", json={"experiment": "e"}).json()["id"]
    upload = client.post(
        f"{BASE}/uploads", content=b"secret", headers={"content-type": "application/octet-stream"}
    ).json()["upload_id"]
    client.post(f"{BASE}/runs/{run}/artifacts", json={"upload_id": upload, "path": "ok.txt"})
    return str(run)


TRAVERSALS = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5C..%5Cwindows%5Cwin.ini",
    "%2Fetc%2Fpasswd",
    "C:%5Cboot.ini",
    "..%00.txt",
]


@pytest.mark.parametrize("evil", TRAVERSALS)
def test_path_traversal_in_every_id_and_path_parameter_is_refused(
    live: LiveServer, run_id: str, evil: str
) -> None:
    targets = [
        f"{BASE}/runs/{evil}",
        f"{BASE}/experiments/{evil}",
        f"{BASE}/experiments/by-name/{evil}",
        f"{BASE}/models/{evil}",
        f"{BASE}/models/{evil}/versions/1/artifact",
        f"{BASE}/models/m/versions/{evil}/artifact",
        f"{BASE}/runs/{run_id}/artifacts/{evil}",
        f"{BASE}/runs/{run_id}/artifacts/a/{evil}",
        f"{BASE}/lineage/run:{evil}",
        f"/api/v1/projects/{evil}/experiments",
    ]
    before = _successes(live)
    for target in targets:
        status, _headers, body = _raw(live, "GET", target)
        assert status in (400, 403, 404), (target, status, body[:200])
        assert b"root:" not in body and b"[boot loader]" not in body
        assert json.loads(body)["error"]["code"]
    assert _successes(live) == before


def test_literal_dot_dot_segments_and_staged_upload_ids_are_contained(
    live: LiveServer, run_id: str
) -> None:
    for target in [
        f"{BASE}/runs/{run_id}/artifacts/../../../../etc/passwd",
        f"{BASE}/runs/{run_id}/artifacts/a/../../ok.txt",
        f"{BASE}/runs/{run_id}/artifacts//etc/passwd",
    ]:
        status, _h, body = _raw(live, "GET", target)
        assert status in (400, 404), (target, status)
        assert b"root:" not in body
    client = live.client(live.admin_token)
    for upload_id in ["../../keel.db", "/etc/passwd", "..\\..\\master.key", "A" * 22 + "/.."]:
        response = client.post(
            f"{BASE}/runs/{run_id}/artifacts", json={"upload_id": upload_id, "path": "x"}
        )
        assert response.status_code == 400, upload_id
    assert [a["path"] for a in client.get(f"{BASE}/runs/{run_id}/artifacts").json()] == ["ok.txt"]


@pytest.mark.parametrize(
    ("filter_text", "order_by"),
    [
        ("params.a = '1' OR 1=1 --", None),
        ("metrics.auc > 0; DROP TABLE runs", None),
        ("params.a = '1'' OR ''1''=''1'", None),
        ("attributes.project_id != 'x'", None),
        (None, "metrics.auc; DROP TABLE runs"),
        (None, "(SELECT 1)"),
        (None, "start_time DESC, 1=1"),
    ],
)
def test_sql_injection_in_search_filters_and_ordering_is_refused(
    live: LiveServer, run_id: str, filter_text: str | None, order_by: str | None
) -> None:
    client = live.client(live.admin_token)
    body = {"filter": filter_text, "order_by": None if order_by is None else [order_by]}
    response = client.post(f"{BASE}/runs/search", json=body)
    if response.status_code == 200:  # a value that is merely compared, never spliced
        assert response.json()["runs"] == []
    else:
        assert response.status_code == 400
        assert response.json()["error"]["code"] in ("INVALID_FILTER", "INVALID_INPUT")
    with live.services.governor.db.read() as session:
        assert session.execute(select(func.count()).select_from(RunRow)).scalar_one() == 1


def test_cross_project_access_by_id_is_refused_and_nothing_leaks(
    live: LiveServer, run_id: str
) -> None:
    other = live.context_in("other")
    secret_run = live.services.runs.create(other, experiment="hidden", capture_env=False)
    live.services.runs.set_tags(other, secret_run.id, {"team": "hidden"})
    viewer = live.client(live.token_for("admin"))
    assert viewer.get(f"{BASE}/runs/{secret_run.id}").status_code == 404
    assert viewer.get(f"{BASE}/runs/{secret_run.id}/artifacts").status_code == 404
    response = viewer.post(f"{BASE}/runs/{secret_run.id}/tags", json={"tags": {"x": "y"}})
    assert response.status_code == 404
    assert viewer.get(f"/api/v1/projects/other/runs/{secret_run.id}").status_code == 403
    found = viewer.post(f"{BASE}/runs/search", json={"filter": "tags.team = 'hidden'"}).json()
    assert found["runs"] == []
    everything = viewer.post(f"{BASE}/runs/search", json={}).json()["runs"]
    assert [r["id"] for r in everything] == [run_id]
    graph = viewer.get(f"{BASE}/lineage/run:{secret_run.id}").json()
    assert graph["upstream"] == [] and graph["downstream"] == []
    events = viewer.get(f"{BASE}/audit/events").json()
    assert {e["project_id"] for e in events} == {live.context_in("default").project_id}
    assert live.services.runs.get(other, secret_run.id).tags == {"team": "hidden"}


def test_missing_malformed_forged_expired_revoked_and_disabled_tokens_get_401(
    live: LiveServer,
) -> None:
    good = live.token_for("contributor")
    viewer_token = live.token_for("viewer")
    token_id = good.split("_")[1]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "no credential": {"authorization": "Bearer"},
        "basic scheme": {"authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"authorization": "Bearer keel_nope"},
        "forged secret": {"authorization": f"Bearer {forged}"},
        "unknown id": {"authorization": "Bearer keel_" + "0" * 26 + "_" + "a" * 43},
        "not a jwt": {"authorization": "Bearer a.b.c"},
    }
    before = _successes(live)
    with live.client() as anonymous:
        for name, headers in cases.items():
            response = anonymous.post(f"{BASE}/runs", json={"experiment": "x"}, headers=headers)
            assert response.status_code == 401, name
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    client = live.client(good)
    assert client.post(f"{BASE}/runs/search", json={}).status_code == 200
    with live.services.governor.db.write() as session:
        session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id)
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )
    response = client.post(f"{BASE}/runs/search", json={})
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]
    with live.services.governor.db.write() as session:
        session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id)
            .values(expires_at=clock.now() + timedelta(days=1))
        )
    live.services.identity.revoke_token(live.operator, token_id)
    response = client.post(f"{BASE}/runs/search", json={})
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    other = live.client(viewer_token)
    live.services.identity.disable_principal(live.operator, "user:viewer-default")
    assert other.post(f"{BASE}/runs/search", json={}).status_code == 401
    assert _successes(live) == before + 2  # only the revocation and the disabling


def test_a_token_is_scoped_to_its_project_and_narrowed_to_its_principals_role(
    live: LiveServer,
) -> None:
    live.context_in("other")
    token = live.token_for("maintainer")
    client = live.client(token)
    response = client.get("/api/v1/projects/other/runs/x")
    assert response.status_code == 403 and "scoped to project 'default'" in response.text
    assert client.get("/api/v1/whoami").json()["roles"] == ["maintainer"]
    live.services.projects.grant(live.context_in("default"), "user:maintainer-default", "viewer")
    assert client.get("/api/v1/whoami").json()["roles"] == ["viewer"]
    response = client.post(f"{BASE}/experiments", json={"name": "x"})
    assert response.status_code == 403
    live.services.identity.revoke_role(live.context_in("default"), "user:maintainer-default")
    assert client.get("/api/v1/whoami").json()["roles"] == []
    assert client.post(f"{BASE}/runs/search", json={}).status_code == 403


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"experiment=e"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--"),
        ("text/plain", b'{"experiment": "e"}'),
        (None, b'{"experiment": "e"}'),
    ],
)
def test_state_changes_need_json_so_forms_cannot_forge_them(
    live: LiveServer, content_type: str | None, body: bytes
) -> None:
    before = _successes(live)
    headers = {} if content_type is None else {"content-type": content_type}
    status, _h, answer = _raw(live, "POST", f"{BASE}/runs", headers=headers, body=body)
    assert status == 415, answer
    assert _successes(live) == before


def test_state_changes_from_another_browser_origin_are_refused(live: LiveServer) -> None:
    client = live.client(live.admin_token)
    before = _successes(live)
    response = client.post(
        f"{BASE}/runs", json={"experiment": "e"}, headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "CROSS_ORIGIN"
    preflight = client.options(
        f"{BASE}/runs",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert _successes(live) == before


def test_script_injection_is_refused_in_names_and_returned_as_typed_json_elsewhere(
    live: LiveServer, run_id: str
) -> None:
    client = live.client(live.admin_token)
    script = "<script>alert(document.cookie)</script>"
    response = client.post(f"{BASE}/experiments", json={"name": script})
    assert response.status_code == 400
    assert client.post(f"{BASE}/models", json={"name": "<img src=x onerror=1>"}).status_code == 400
    assert client.post(f"{BASE}/runs/{run_id}/tags", json={"tags": {"note": script}}).is_success
    got = client.get(f"{BASE}/runs/{run_id}")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in got.headers["content-security-policy"]
    assert got.json()["tags"]["note"] == script
    missing = client.get(f"{BASE}/runs/{script}")
    assert missing.headers["content-type"] == "application/json"


def test_oversized_deep_and_long_bodies_are_refused_before_parsing(live: LiveServer) -> None:
    limit = live.settings.server_max_body_bytes
    client = live.client(live.admin_token)
    before = _successes(live)
    huge = b'{"experiment": "' + b"a" * (limit + 10) + b'"}'
    status, _h, _b = _raw(
        live, "POST", f"{BASE}/runs", headers={"content-type": "application/json"}, body=huge
    )
    assert status == 413

    def chunks() -> object:
        yield b'{"experiment": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    response = client.post(
        f"{BASE}/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    deep = "[" * 5000 + "]" * 5000
    response = client.post(
        f"{BASE}/runs/search", content=deep, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "nests deeper" in response.text
    deep_params = {"params": {"a": json.loads("[" * 40 + "]" * 40)}}
    assert client.post(f"{BASE}/runs", json={"experiment": "e", **deep_params}).status_code == 400
    long_text = "x" * (live.settings.server_max_string_length + 1)
    response = client.post(f"{BASE}/runs", json={"experiment": "e", "name": long_text})
    assert response.status_code == 400 and "longer than" in response.text
    assert (
        client.post(
            f"{BASE}/runs", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert _successes(live) == before


def test_header_injection_cannot_split_or_forge_response_headers(
    live: LiveServer, run_id: str
) -> None:
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Request-Id: abc\rSet-Cookie: pwned=1\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b"set-cookie" not in answer.lower()
    status, headers, _b = _raw(live, "GET", "/healthz", headers={"x-request-id": "a b;c=d"})
    assert status == 200 and headers["x-request-id"] != "a b;c=d"
    assert len(headers["x-request-id"]) == 26
    client = live.client(live.admin_token)
    upload = client.post(
        f"{BASE}/uploads", content=b"z", headers={"content-type": "application/octet-stream"}
    ).json()["upload_id"]
    evil = 'evil";set-cookie: a=b;x=".txt'
    response = client.post(
        f"{BASE}/runs/{run_id}/artifacts", json={"upload_id": upload, "path": evil}
    )
    assert response.status_code == 201
    from urllib.parse import quote

    got = client.get(f"{BASE}/runs/{run_id}/artifacts/{quote(evil, safe='')}")
    assert got.status_code == 200 and got.content == b"z"
    assert "set-cookie" not in got.headers
    assert re.fullmatch(
        r'attachment; filename="[A-Za-z0-9._-]+"', got.headers["content-disposition"]
    )


def test_hosts_outside_the_allow_list_are_refused(live: LiveServer) -> None:
    for host in ["evil.example", "127.0.0.1.evil.example", "localhost.", "[::2]:80"]:
        status, _h, body = _raw(live, "GET", "/healthz", headers={"host": host})
        assert status == 400, host
        assert json.loads(body)["error"]["code"] == "INVALID_HOST", (host, body)
    status, _h, _body = _raw(live, "GET", "/healthz", headers={"host": ""})
    assert status == 400
