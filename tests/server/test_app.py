"""The app factory: one error table, OpenAPI, transport security, request audit, keep-alive."""

from __future__ import annotations

import datetime
import ipaddress
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keel import errors
from keel.server import ERROR_STATUS
from keel.server._errors import PayloadTooLargeError, status_of
from keel.server._guard import scan_json
from keel.store import AuditQuery
from tests.server._live import LiveServer, live_server

BASE = "/api/v1/projects/default"


def test_every_keel_error_has_one_status_and_specific_classes_come_first() -> None:
    expected = {
        errors.AuthenticationError("x"): 401,
        errors.PermissionDeniedError("x"): 403,
        errors.NotFoundError("x"): 404,
        errors.AlreadyExistsError("x"): 409,
        errors.ConflictError("x"): 409,
        errors.FilterSyntaxError("x"): 400,
        errors.InvalidInputError("x"): 400,
        PayloadTooLargeError("x"): 413,
        errors.SchemaOutdatedError("x"): 503,
        errors.MissingDependencyError("p", extra="e", purpose="p"): 501,
        errors.StorageError("x"): 503,
        errors.IntegrityError("x"): 500,
        errors.ConfigurationError("x"): 500,
    }
    for exc, status in expected.items():
        assert status_of(exc) == status, type(exc).__name__
    covered = {kind for kind, _ in ERROR_STATUS}
    assert {getattr(errors, name) for name in errors.__all__} <= covered
    for index, (kind, _status) in enumerate(ERROR_STATUS):
        for later, _ in ERROR_STATUS[index + 1 :]:
            assert not issubclass(later, kind) or later is kind, (kind, later)


def test_json_scan_bounds_depth_and_strings_without_parsing() -> None:
    assert scan_json(b'{"a": [1, {"b": "x"}]}', max_depth=3, max_string=10) is None
    assert "deeper" in str(scan_json(b"[" * 4 + b"]" * 4, max_depth=3, max_string=10))
    assert "longer" in str(scan_json(b'["' + b"y" * 11 + b'"]', max_depth=3, max_string=10))
    assert scan_json(b'["[[[[\\"]]]]"]', max_depth=2, max_string=100) is None


def test_openapi_is_published_and_health_needs_no_credentials(live: LiveServer) -> None:
    with live.client() as client:
        spec = client.get("/openapi.json").json()
        assert spec["info"]["title"] == "Keel"
        assert f"{BASE.replace('default', '{project}')}/runs/search" in spec["paths"]
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/docs").status_code == 404  # no script-running docs page
        assert client.get(f"{BASE}/runs/x").status_code == 401


def test_errors_have_one_shape_and_5xx_never_leak_detail(live: LiveServer) -> None:
    client = live.client(live.admin_token)
    cases = {
        client.get(f"{BASE}/runs/NOPE"): (404, "NOT_FOUND"),
        client.post(f"{BASE}/runs/search", json={"filter": "metrics.auc >"}): (
            400,
            "INVALID_FILTER",
        ),
        client.post(f"{BASE}/experiments", json={"name": "a", "extra": 1}): (400, "INVALID_INPUT"),
        client.get("/nowhere"): (404, "NOT_FOUND"),
        client.delete("/healthz"): (405, "METHOD_NOT_ALLOWED"),
    }
    client.post(f"{BASE}/experiments", json={"name": "dup"})
    cases[client.post(f"{BASE}/experiments", json={"name": "dup"})] = (409, "ALREADY_EXISTS")
    for response, (status, code) in cases.items():
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"] == code
        assert response.headers["x-request-id"]


def test_every_request_is_audited_with_principal_outcome_and_source(live: LiveServer) -> None:
    client = live.client(live.token_for("viewer"))
    client.get(f"{BASE}/runs/x")
    client.post(f"{BASE}/experiments", json={"name": "e"})
    with live.client() as anonymous:
        anonymous.get(f"{BASE}/runs/x")
    live.audit_flush()
    events = live.services.audit.events(AuditQuery(limit=20))
    http = [e for e in events if e.object_type == "http_request"]
    seen = {(e.principal, e.action, e.outcome, e.details["status"]) for e in http}
    assert ("user:viewer-default", "http.get", "refused", 404) in seen
    assert ("user:viewer-default", "http.post", "denied", 403) in seen
    assert ("anonymous", "http.get", "denied", 401) in seen
    assert all(e.details["source"] == "127.0.0.1" for e in http)
    assert any(e.action == "experiment.create" and e.outcome == "denied" for e in events)
    assert live.services.audit.verify().ok


def test_uploads_are_bounded_and_need_octet_stream(tmp_path: Path) -> None:
    with live_server(tmp_path / "home", server_max_upload_bytes=4096) as live:
        client = live.client(live.admin_token)
        url = f"{BASE}/uploads"
        binary = {"content-type": "application/octet-stream"}
        assert client.post(url, content=b"x" * 4096, headers=binary).status_code == 201
        assert client.post(url, content=b"x" * 4097, headers=binary).status_code == 413

        def stream() -> object:
            for _ in range(10):
                yield b"y" * 1000

        assert client.post(url, content=stream(), headers=binary).status_code == 413
        assert client.post(url, json={"a": 1}).status_code == 415
        staged = list((live.settings.home.resolve() / "uploads").rglob("*"))
        assert len([p for p in staged if p.is_file()]) == 1  # refused ones were deleted


def test_cors_is_closed_by_default_and_open_only_to_listed_origins(tmp_path: Path) -> None:
    with live_server(tmp_path / "home", cors_origins=["https://ui.example"]) as live:
        client = live.client(live.admin_token)
        allowed = client.options(
            f"{BASE}/runs",
            headers={"origin": "https://ui.example", "access-control-request-method": "POST"},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        assert "access-control-allow-credentials" not in allowed.headers
        made = client.post(
            f"{BASE}/runs", json={"experiment": "e"}, headers={"origin": "https://ui.example"}
        )
        assert made.status_code == 201
        other = client.options(
            f"{BASE}/runs",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_from_settings_serves_https_with_hsts(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    with live_server(tmp_path / "home", tls_cert_file=cert, tls_key_file=key) as live:
        assert live.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        with live.client(live.admin_token, verify=context) as client:
            response = client.get("/api/v1/whoami")
            assert response.status_code == 200
            assert "max-age=63072000" in response.headers["strict-transport-security"]
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as strict:
            strict.get(f"{live.url}/healthz")


def test_keep_alive_requests_do_not_stall_on_delayed_acks(live: LiveServer) -> None:
    """TCP_NODELAY: sequential requests on one connection take about a millisecond, not 40."""
    client = live.client(live.admin_token)
    body = {"experiment": "e", "params": {"p": "x" * 3000}}
    client.post(f"{BASE}/runs", json=body)
    timings = []
    for _ in range(30):
        started = time.perf_counter()
        assert client.post(f"{BASE}/runs/search", json={"max_results": 1}).status_code == 200
        timings.append(time.perf_counter() - started)
    # The stall puts every request at 40 ms or more; the lower quartile stays well under that
    # even when other processes load the machine (the median once reached 22 ms under load).
    assert sorted(timings)[len(timings) // 4] < 0.03, timings
