"""Secret references resolved by the env, file and Vault (KV v2) providers, and redaction."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from keel.errors import ConfigurationError, InvalidInputError, NotFoundError
from keel.governance import (
    EnvSecretProvider,
    FileSecretProvider,
    RedactingFilter,
    SecretResolver,
    VaultSecretProvider,
    redact,
    redact_mapping,
    register_secret,
)
from keel.governance._secrets import parse_secret_ref
from keel.settings import Settings

TOKEN = "hvs.CAESIJtesttokenvalue0123456789abcdef"


class _FakeVault(BaseHTTPRequestHandler):
    """Vault's KV v2 read API: GET /v1/<mount>/data/<path> with X-Vault-Token."""

    store: ClassVar[dict[str, dict[str, Any]]] = {}
    seen_tokens: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen_tokens.append(self.headers.get("X-Vault-Token", ""))
        if self.headers.get("X-Vault-Token") != TOKEN:
            return self._send(403, {"errors": ["permission denied"]})
        prefix = "/v1/secret/data/"
        path = self.path.split("?", 1)[0]
        if not path.startswith(prefix) or path[len(prefix) :] not in self.store:
            return self._send(404, {"errors": []})
        data = self.store[path[len(prefix) :]]
        return self._send(
            200,
            {
                "request_id": "1",
                "data": {
                    "data": data,
                    "metadata": {"version": 3, "deletion_time": "", "destroyed": False},
                },
            },
        )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def vault_url() -> Iterator[str]:
    _FakeVault.store = {
        "payments/db": {"password": "vault-db-pass-123", "user": "app"},
        "api": {"value": "vault-api-key-456"},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_vault_kv2_reads_the_field_and_the_default_value(vault_url: str) -> None:
    vault = VaultSecretProvider(vault_url, token=TOKEN)
    assert vault.get("payments/db", "password") == "vault-db-pass-123"
    assert vault.get("api", None) == "vault-api-key-456"
    assert vault.get("missing", None) is None
    assert _FakeVault.seen_tokens[-1] == TOKEN


def test_vault_missing_field_and_bad_token_are_clear_errors(vault_url: str) -> None:
    with pytest.raises(NotFoundError, match=r"no field 'nope'.*fields: password, user"):
        VaultSecretProvider(vault_url, token=TOKEN).get("payments/db", "nope")
    with pytest.raises(ConfigurationError, match="refused to read 'api' \\(403\\)"):
        VaultSecretProvider(vault_url, token="hvs.wrongwrongwrongwrongwrong").get("api", None)


def test_vault_down_is_a_configuration_error() -> None:
    vault = VaultSecretProvider("http://127.0.0.1:9", token=TOKEN, timeout=2)
    with pytest.raises(ConfigurationError, match="failed while reading"):
        vault.get("api", None)


def test_resolver_tries_providers_in_order(
    vault_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "api").write_text("file-api-key\n")
    (folder / "api").chmod(0o600)
    settings = Settings(home=tmp_path, secrets_dir=folder, vault_url=vault_url, vault_token=TOKEN)  # type: ignore[arg-type]
    resolver = SecretResolver.from_settings(settings)
    assert resolver.providers == ("env", "file", "vault")
    assert resolver.resolve("secret://api") == "file-api-key"
    monkeypatch.setenv("KEEL_SECRET_API", "env-api-key")
    assert resolver.resolve("secret://api") == "env-api-key"
    assert resolver.resolve("secret://payments/db#password") == "vault-db-pass-123"
    with pytest.raises(NotFoundError, match="KEEL_SECRET_NOWHERE"):
        resolver.resolve("secret://nowhere")
    resolved = resolver.resolve_all({"dsn": "secret://payments/db#user", "n": 3})
    assert resolved == {"dsn": "app", "n": 3}


def test_file_provider_refuses_readable_files_and_escapes(tmp_path: Path) -> None:
    (tmp_path / "loose").write_text("x")
    (tmp_path / "loose").chmod(0o644)
    provider = FileSecretProvider(tmp_path)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        provider.get("loose", None)
    for bad in ("secret://../etc/passwd", "secret:///abs", "secret://a b", "db-password"):
        with pytest.raises(InvalidInputError):
            parse_secret_ref(bad)


def test_env_provider_names() -> None:
    assert EnvSecretProvider.variable("db-password") == "KEEL_SECRET_DB_PASSWORD"
    assert EnvSecretProvider({"KEEL_SECRET_X_Y": "v"}).get("x", "y") == "v"


def test_resolved_values_are_redacted_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    resolver = SecretResolver([EnvSecretProvider({"KEEL_SECRET_PW": "s3cr3t-Value-9"})])
    value = resolver.resolve("secret://pw")
    assert value == "s3cr3t-Value-9"
    assert redact(f"connect failed with {value}!") == "connect failed with ***!"
    logger = logging.getLogger("keel.test.redaction")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="keel.test.redaction"):
            logger.info("password is %s", value)
            try:
                raise RuntimeError(f"boom {value}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert value not in caplog.text
    assert "password is ***" in caplog.text


def test_token_patterns_and_sensitive_keys_are_redacted() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghij"
    text = redact(
        f"Authorization: Bearer abcdefghijklmnop token {jwt} "
        "postgresql://app:hunter2@db/x ?password=abc&x=1 keel_AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    for leaked in ("abcdefghijklmnop", jwt, "hunter2", "password=abc", "keel_AAAA"):
        assert leaked not in text
    assert "Bearer ***" in text and "x=1" in text
    cleaned = redact_mapping(
        {"db_password": "plain", "ref": "secret://db", "nested": {"api_key": "k"}, "n": 1}
    )
    assert cleaned == {
        "db_password": "***",
        "ref": "secret://db",
        "nested": {"api_key": "***"},
        "n": 1,
    }


def test_params_tags_and_audit_details_are_redacted(local_ws: Any) -> None:
    register_secret("leaked-value-77")
    with local_ws.runs.start(
        experiment="e",
        params={"lr": 0.1, "db_password": "pw", "note": "uses leaked-value-77"},
        tags={"auth_token": "abc", "ref": "secret://db"},
        capture_env=False,
    ) as run:
        pass
    got = local_ws.runs.get(run.id)
    assert got.params == {"lr": "0.1", "db_password": "***", "note": "uses ***"}
    assert got.tags["auth_token"] == "***" and got.tags["ref"] == "secret://db"
    local_ws._governor.audit.record(
        local_ws.ctx,
        "test.redaction",
        object_type="test",
        outcome="success",
        details={"password": "p", "message": "sent leaked-value-77"},
    )
    event = local_ws.audit.events(action="test.redaction")[-1]
    assert event.details["password"] == "***"
    assert event.details["message"] == "sent ***"
    assert local_ws.audit.verify().ok
