"""OIDC bearer tokens against a JWKS served by a local HTTP server, with locally made keys."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.server._live import LiveServer, live_server

ISSUER = "https://issuer.test"
AUDIENCE = "keel"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(public: Any, kid: str, algorithm: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(algorithm.to_jwk(public))
    return {**data, "kid": kid, "use": "sig"}


JWKS = {
    "keys": [
        _jwk(RSA_KEY.public_key(), "rsa1", RSAAlgorithm),
        _jwk(EC_KEY.public_key(), "ec1", ECAlgorithm),
    ]
}


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    body = json.dumps(JWKS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/jwks" else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body if self.path == "/jwks" else b"{}")

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def oidc(tmp_path: Path, jwks_url: str) -> Iterator[LiveServer]:
    with live_server(
        tmp_path / "home", oidc_issuer=ISSUER, oidc_jwks_url=jwks_url, oidc_audience=AUDIENCE
    ) as server:
        server.services.projects.grant(server.context_in("default"), "user:alice", "contributor")
        yield server


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(
    claims: dict[str, Any], *, key: Any = RSA_KEY, alg: str = "RS256", kid: str = "rsa1"
) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _status(server: LiveServer, token: str) -> tuple[int, dict[str, Any]]:
    with server.client(token) as client:
        response = client.get("/api/v1/whoami")
    return response.status_code, response.json()


def test_valid_rsa_and_ec_tokens_act_as_the_user_with_their_project_roles(
    oidc: LiveServer,
) -> None:
    status, body = _status(oidc, _sign(_claims()))
    assert status == 200
    assert body["principal"] == "user:alice" and body["roles"] == ["contributor"]
    status, body = _status(oidc, _sign(_claims(), key=EC_KEY, alg="ES256", kid="ec1"))
    assert status == 200 and body["principal"] == "user:alice"
    with oidc.client(_sign(_claims())) as client:
        made = client.post("/api/v1/projects/default/runs", json={"experiment": "e"})
        assert made.status_code == 201 and made.json()["user"] == "user:alice"
        promote = client.put("/api/v1/projects/default/models/m/aliases/a", json={"version": 1})
        assert promote.status_code == 403


def test_alg_none_is_refused(oidc: LiveServer) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa1'})}.{_b64(_claims())}."
    status, body = _status(oidc, unsigned)
    assert status == 401 and "not an accepted signature" in body["error"]["message"]


def test_hmac_signed_with_the_public_key_is_refused(oidc: LiveServer) -> None:
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa1"})
    payload = _b64(_claims())
    import hashlib
    import hmac

    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    status, _body = _status(oidc, forged)
    assert status == 401


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [
        ("expired", "expired"),
        ("not yet valid", "not valid yet"),
        ("other audience", "another audience"),
        ("other issuer", "another issuer"),
        ("unknown key", "not in the issuer's key set"),
        ("wrong signer", "do not verify"),
        ("alg and key type differ", "does not match"),
        ("no subject", "do not verify"),
    ],
)
def test_bad_claims_keys_and_signatures_are_refused(
    oidc: LiveServer, token_kind: str, reason: str
) -> None:
    now = int(time.time())
    tokens = {
        "expired": _sign(_claims(exp=now - 120, iat=now - 600)),
        "not yet valid": _sign(_claims(nbf=now + 600)),
        "other audience": _sign(_claims(aud="someone-else")),
        "other issuer": _sign(_claims(iss="https://evil.test")),
        "unknown key": _sign(_claims(), kid="nope"),
        "wrong signer": _sign(_claims(), key=OTHER_RSA),
        "alg and key type differ": _sign(_claims(), key=EC_KEY, alg="ES256", kid="rsa1"),
        "no subject": _sign(_claims(sub=None)),
    }
    status, body = _status(oidc, tokens[token_kind])
    assert status == 401, body
    assert reason in body["error"]["message"]


def test_a_disabled_user_is_refused_even_with_a_valid_token(oidc: LiveServer) -> None:
    oidc.services.identity.create_principal(oidc.operator, "user:alice")
    oidc.services.identity.disable_principal(oidc.operator, "user:alice")
    status, _body = _status(oidc, _sign(_claims()))
    assert status == 401
