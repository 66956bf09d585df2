"""Keel's one settings object, built at the edge and passed down.

Precedence: explicit argument > environment (``KEEL_`` prefix) > config file > default. The
config file is TOML, at ``$KEEL_CONFIG`` or else ``<KEEL_HOME>/config.toml``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings", "redact_url"]

_SECRET_FIELDS = ("master_key", "vault_token")


class Settings(BaseSettings):
    """Where Keel keeps its metadata, blobs and keys, and how it connects to them."""

    model_config = SettingsConfigDict(
        env_prefix="KEEL_", extra="forbid", frozen=True, validate_default=True
    )

    home: Path = Field(
        default=Path(".keel"), description="Folder of the embedded store (KEEL_HOME)."
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store; default SQLite at <home>/keel.db.",
    )
    blob_url: str | None = Field(
        default=None, description="fsspec URL of the blob store; default <home>/blobs."
    )
    project: str = Field(default="default", description="Project used when none is named.")
    key_provider: Literal["file", "env"] = Field(
        default="file",
        description="Where the master key comes from: a key file or KEEL_MASTER_KEY.",
    )
    master_key_file: Path | None = Field(
        default=None, description="Master key file; default <home>/master.key (mode 0600)."
    )
    master_key: SecretStr | None = Field(
        default=None, description="Base64 master key, read when key_provider is 'env'."
    )
    pool_size: int = Field(default=5, ge=1, le=200, description="PostgreSQL pool size.")
    max_overflow: int = Field(default=10, ge=0, le=500, description="PostgreSQL pool overflow.")
    pool_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for a pool slot.")
    busy_timeout: float = Field(
        default=60.0, gt=0, description="Seconds SQLite waits for a lock before failing."
    )
    echo_sql: bool = Field(default=False, description="Log every SQL statement.")
    region: str | None = Field(
        default=None,
        description="Region of this store's storage and compute (e.g. 'ae'), for residency.",
    )
    policy_dir: Path | None = Field(
        default=None, description="Folder of policy files that `keel policy apply` loads."
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 key that signs model versions; default <home>/signing.key (0600).",
    )
    signing_key: str | None = Field(
        default=None,
        description="A secret:// reference to a base64 Ed25519 private key (overrides the file).",
    )
    secrets_dir: Path | None = Field(
        default=None, description="Folder of the file secret provider; default <home>/secrets."
    )
    vault_url: str | None = Field(
        default=None, description="HashiCorp Vault address for secret:// references (KV v2)."
    )
    vault_token: SecretStr | None = Field(
        default=None, description="Vault token (KEEL_VAULT_TOKEN)."
    )
    vault_mount: str = Field(default="secret", description="Mount point of Vault's KV v2 engine.")
    server_host: str = Field(default="127.0.0.1", description="Address `keel server` binds.")
    server_port: int = Field(default=8080, ge=0, le=65535, description="Port of `keel server`.")
    tls_cert_file: Path | None = Field(
        default=None, description="TLS certificate (PEM) of `keel server`; enables HTTPS and HSTS."
    )
    tls_key_file: Path | None = Field(
        default=None, description="TLS private key (PEM) matching tls_cert_file."
    )
    server_public_url: str | None = Field(
        default=None,
        description=(
            "URL browsers use to reach `keel server` when a proxy terminates TLS "
            "(e.g. https://keel.example.com): the web UI accepts form posts from its origin "
            "and marks cookies Secure when it is https."
        ),
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Host header values the server answers ('*.example.com' allowed).",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed by CORS (none by default)."
    )
    oidc_issuer: str | None = Field(default=None, description="OIDC issuer (the 'iss' claim).")
    oidc_jwks_url: str | None = Field(default=None, description="JWKS URL of the OIDC issuer.")
    oidc_audience: str | None = Field(default=None, description="Required 'aud' of OIDC tokens.")
    oidc_principal_claim: str = Field(
        default="sub", description="Claim naming the user of an OIDC token (user:<claim>)."
    )
    server_max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest JSON request body, in bytes."
    )
    server_max_upload_bytes: int = Field(
        default=5 * 1024**3, ge=1024, description="Largest uploaded artifact, in bytes."
    )
    server_max_json_depth: int = Field(
        default=32, ge=2, le=256, description="Deepest nesting of a JSON request body."
    )
    server_max_string_length: int = Field(
        default=65_536, ge=256, description="Longest string in a JSON request body, in bytes."
    )
    token_max_days: int = Field(
        default=365, ge=1, le=3650, description="Longest lifetime of an API token, in days."
    )

    @field_validator("home", "master_key_file", "signing_key_file", "secrets_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("tls_cert_file", "tls_key_file", mode="after")
    @classmethod
    def _expand_tls(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("server_public_url", mode="after")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise ValueError(
                f"server_public_url must be an http(s) URL such as https://keel.example.com; "
                f"got {value!r}."
            )
        return value.strip().rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = os.environ.get("KEEL_CONFIG")
        if config is None:
            given = getattr(init_settings, "init_kwargs", {}).get("home")
            home = Path(given or os.environ.get("KEEL_HOME", ".keel")).expanduser()
            config = str(home / "config.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config),
        )

    @property
    def resolved_db_url(self) -> str:
        """The metadata store URL, defaulting to SQLite inside ``home``."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.home / 'keel.db').resolve()}"

    @property
    def resolved_blob_url(self) -> str:
        """The blob store URL, defaulting to a folder inside ``home``."""
        if self.blob_url:
            return self.blob_url
        return (self.home / "blobs").resolve().as_uri()

    @property
    def resolved_master_key_file(self) -> Path:
        """The master key file, defaulting to ``<home>/master.key``."""
        return self.master_key_file or self.home / "master.key"

    @property
    def is_embedded(self) -> bool:
        """True when the metadata store is a SQLite file (the zero-service default)."""
        return self.resolved_db_url.startswith("sqlite")

    def describe(self) -> dict[str, Any]:
        """Every setting with secrets redacted and defaults resolved, for ``keel config show``."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in _SECRET_FIELDS:
                value = None if value is None else "***"
            elif isinstance(value, Path):
                value = str(value)
            shown[name] = value
        shown["db_url"] = redact_url(self.resolved_db_url)
        shown["blob_url"] = self.resolved_blob_url
        shown["master_key_file"] = str(self.resolved_master_key_file)
        return shown


_SECRET_PARTS = ("pass", "pwd", "secret", "token", "key", "credential", "signature", "auth")


def _secret_param(name: str) -> bool:
    from urllib.parse import unquote

    lowered = unquote(name).lower()
    return lowered == "sig" or any(part in lowered for part in _SECRET_PARTS)


def redact_url(url: str) -> str:
    """A URL without its password or secret query parameters, fit to record or show.

    Written by hand rather than with ``sqlalchemy.engine.make_url``: users paste passwords
    unencoded, and ``make_url`` takes ``user:p@ss@host`` for user ``user``, password ``p``
    and host ``ss@host`` (so its ``hide_password`` would show the rest of the password).
    Here the credentials are what runs from a user name (no ``/``, ``?`` or ``@`` in it)
    and a ``:`` to the last ``@`` before the path, so a password holding ``@`` is hidden
    whole; when no ``@`` comes before the path but one comes later and what follows the
    ``:`` is no port, the password holds a ``/`` or ``?`` and runs to the last ``@`` (an
    ``@`` further on hides more than needed: never less). Every value of a secret-looking
    query parameter (``?password=``, ``sslpassword``, ``token``, ``api_key`` …) is replaced
    by ``***``; the rest of the URL is kept as written.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    user, colon, after = rest.partition(":")
    at = rest.rfind("@")
    port = re.match(r"\d*(?=[/?#]|$)", after)  # host:8443/path@x is a port, not a password
    if colon and at > len(user) and not any(c in user for c in "/?@"):
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if "@" in authority:  # the usual case: the credentials end inside the authority
            rest = f"{user}:***{rest[authority.rfind('@') :]}"
        elif port is None:  # an unencoded password holding "/" or "?": to the last "@"
            rest = f"{user}:***{rest[at:]}"
    before_query, question, query = rest.partition("?")
    if question:
        pairs: list[str] = []
        for pair in query.split("&"):
            name, equals, _value = pair.partition("=")
            pairs.append(f"{name}=***" if equals and _secret_param(name) else pair)
        query = "&".join(pairs)
    return f"{scheme}://{before_query}{question}{query}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from explicit overrides, the environment, the config file, defaults."""
    from pydantic import ValidationError

    from keel.errors import ConfigurationError

    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise ConfigurationError(
            f"Invalid Keel settings: {problems}. Settings come from arguments, KEEL_* "
            "environment variables and the config file (<KEEL_HOME>/config.toml or "
            "$KEEL_CONFIG); see `keel config show` and docs/storage.md.",
        ) from None
