"""Secrets as references: ``secret://name`` resolved at use by providers, and redacted everywhere.

A value that is a secret is never written into settings, params, tags or the audit log; what
is written is its reference, ``secret://db-password`` (optionally ``secret://name#field``).
:class:`SecretResolver` resolves a reference through its providers in order — the environment
(``KEEL_SECRET_<NAME>``), a folder of files, HashiCorp Vault's KV v2 engine through hvac — and
registers every value it returns with the process's redactor, so that value is replaced by
``***`` in log records (:class:`RedactingFilter`), params, tags, error messages and audit
details wherever Keel writes them.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from keel.errors import ConfigurationError, InvalidInputError, MissingDependencyError, NotFoundError

__all__ = [
    "REDACTED",
    "EnvSecretProvider",
    "FileSecretProvider",
    "RedactingFilter",
    "SecretProvider",
    "SecretResolver",
    "VaultSecretProvider",
    "is_secret_ref",
    "parse_secret_ref",
    "redact",
    "redact_mapping",
    "redact_value",
    "register_secret",
]

REDACTED = "***"
_PREFIX = "secret://"
_REF = re.compile(
    r"^secret://(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199})(?:#(?P<field>[\w.\-]{1,64}))?$"
)
_MIN_REGISTERED = 4  # shorter values would redact ordinary words

#: Patterns of credentials that are redacted even when Keel did not resolve them itself.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),  # JWT
    re.compile(r"\bkeel_[A-Za-z0-9_\-]{20,}"),  # Keel API tokens
    re.compile(r"\bhv[sbr]\.[A-Za-z0-9_\-]{20,}"),  # Vault tokens
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key ids
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
    re.compile(r"(?i)(?<=[?&])(password|passwd|pwd|token|secret|api_key|apikey)=[^&\s]+"),
)
#: A cheap pre-check: text without any of these cannot match one of the patterns above.
_TRIGGER = re.compile(r"(?i)bearer|token|basic|eyJ|keel_|hv[sbr]\.|AKIA|ASIA|://|[?&]\w+=")
#: Names of params, tags and detail keys whose values are secrets whatever they look like.
_SENSITIVE_KEY = re.compile(
    r"(?i)(?:^|[_.\-])(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|"
    r"credentials?|access[_-]?key)(?:$|[_.\-])"
)

#: Keys that name a secret's id, name or metadata rather than the secret itself.
_NOT_SECRET_KEY = re.compile(r"(?i)[_.\-](id|ids|name|names|prefix|hash|count|expires|at|ref)$")


class _Registry:
    """The values resolved in this process, longest first (so overlaps redact fully)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        if len(value) < _MIN_REGISTERED:
            return
        with self._lock:
            if value not in self._values:
                self._values = tuple(sorted({*self._values, value}, key=len, reverse=True))

    @property
    def values(self) -> tuple[str, ...]:
        return self._values


_REGISTRY = _Registry()


def register_secret(value: str) -> None:
    """Make ``value`` redacted from everything Keel writes from now on in this process."""
    _REGISTRY.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-looking token replaced."""
    for value in _REGISTRY.values:
        if value in text:
            text = text.replace(value, REDACTED)
    if len(text) >= 8 and _TRIGGER.search(text):
        for pattern in _PATTERNS:
            text = pattern.sub(_keep_label, text)
    return text


def _keep_label(match: re.Match[str]) -> str:
    found = match.group(0)
    head, sep, _ = found.partition("=")
    if sep and match.re.pattern.startswith("(?i)(?<=[?&])"):
        return f"{head}={REDACTED}"
    word = found.split(maxsplit=1)
    if len(word) == 2 and word[0].lower() in {"bearer", "token", "basic"}:
        return f"{word[0]} {REDACTED}"
    return REDACTED


def redact_value(key: str, value: str) -> str:
    """A param, tag or detail value made safe to store: references kept, secrets replaced."""
    if is_secret_ref(value):
        return value
    if value and _SENSITIVE_KEY.search(key) and not _NOT_SECRET_KEY.search(key):
        return REDACTED
    return redact(value)


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` (nested mappings and lists too) with secrets redacted."""
    return {key: _redact_any(str(key), value) for key, value in values.items()}


def _redact_any(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return redact_value(key, value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple):
        return [_redact_any(key, item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from each record's message and arguments.

    Install it on a handler: ``handler.addFilter(RedactingFilter())``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def is_secret_ref(value: object) -> bool:
    """True for a string written as ``secret://name`` (the reference, not the value)."""
    return isinstance(value, str) and value.startswith(_PREFIX)


def parse_secret_ref(ref: str) -> tuple[str, str | None]:
    """Split ``secret://name#field`` into (name, field)."""
    match = _REF.match(ref) if isinstance(ref, str) else None
    if match is None or ".." in match["name"].split("/"):
        raise InvalidInputError(
            f"Invalid secret reference {str(ref)[:80]!r}: write secret://NAME or "
            "secret://NAME#FIELD, NAME being letters, digits, '_', '.', '-' or '/'.",
            ref=str(ref)[:80],
        )
    return match["name"], match["field"]


class SecretProvider(Protocol):
    """Where secret values come from; ``get`` returns None when it has no such secret."""

    name: str

    def get(self, name: str, field: str | None) -> str | None: ...


class EnvSecretProvider:
    """Secrets from environment variables: ``secret://db-password`` is KEEL_SECRET_DB_PASSWORD."""

    name = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    @staticmethod
    def variable(name: str) -> str:
        return "KEEL_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()

    def get(self, name: str, field: str | None) -> str | None:
        return self._environ.get(self.variable(name if field is None else f"{name}_{field}"))


class FileSecretProvider:
    """Secrets as files in a folder (mode 0600): ``secret://db/password`` is ``<dir>/db/password``.

    A file that others may read is refused, as is any name that leaves the folder.
    """

    name = "file"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)

    def get(self, name: str, field: str | None) -> str | None:
        root = self._folder.resolve()
        path = (root / (name if field is None else f"{name}.{field}")).resolve()
        if not path.is_relative_to(root):
            raise InvalidInputError(f"Secret name {name!r} leaves the secrets folder.")
        if not path.is_file():
            return None
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"The secret file {path} can be read by others (mode {oct(mode & 0o777)}). "
                f"Restrict it with `chmod 600 {path}`.",
                path=str(path),
            )
        return path.read_text(encoding="utf-8").rstrip("\r\n")


class VaultSecretProvider:
    """Secrets from HashiCorp Vault's KV v2 engine, through hvac.

    ``secret://payments/db#password`` reads field ``password`` of the latest version of
    ``payments/db`` under the mount (default ``secret``); without a field, ``value``.
    """

    name = "vault"

    def __init__(self, url: str, *, token: str, mount: str = "secret", timeout: float = 10.0):
        try:
            import hvac  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - hvac is in the base install here
            raise MissingDependencyError(
                "hvac", extra="vault", purpose="Reading secrets from HashiCorp Vault"
            ) from exc
        register_secret(token)
        self._url = url
        self._mount = mount
        self._client = hvac.Client(url=url, token=token, timeout=timeout)

    def get(self, name: str, field: str | None) -> str | None:
        import hvac.exceptions  # type: ignore[import-untyped]
        import requests

        try:
            answer = self._client.secrets.kv.v2.read_secret_version(
                path=name, mount_point=self._mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        except hvac.exceptions.Forbidden as exc:
            raise ConfigurationError(
                f"Vault at {self._url} refused to read '{name}' (403): the token lacks a "
                f"policy granting read on {self._mount}/data/{name}.",
                secret=name,
            ) from exc
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise ConfigurationError(
                f"Vault at {self._url} failed while reading '{name}': {redact(str(exc))[:200]}. "
                "Check KEEL_VAULT_URL and that Vault is unsealed and reachable.",
                secret=name,
            ) from exc
        data = answer.get("data", {}).get("data", {})
        value = data.get(field or "value")
        if value is None:
            fields = ", ".join(sorted(data)) or "none"
            raise NotFoundError(
                f"Vault secret '{name}' has no field '{field or 'value'}' (fields: {fields}). "
                f"Write secret://{name}#FIELD.",
                secret=name,
            )
        return str(value)


class SecretResolver:
    """Resolves ``secret://`` references through providers, in order; the first that knows wins."""

    def __init__(self, providers: Sequence[SecretProvider]) -> None:
        if not providers:
            raise ConfigurationError("A SecretResolver needs at least one provider.")
        self._providers = tuple(providers)

    @classmethod
    def from_settings(cls, settings: Any) -> SecretResolver:
        """Environment, then ``secrets_dir`` (default ``<home>/secrets``), then Vault if set."""
        providers: list[SecretProvider] = [EnvSecretProvider()]
        providers.append(FileSecretProvider(settings.secrets_dir or settings.home / "secrets"))
        if settings.vault_url:
            if settings.vault_token is None:
                raise ConfigurationError(
                    "KEEL_VAULT_URL is set but KEEL_VAULT_TOKEN is not. Set the token (or "
                    "unset the URL to stop using Vault)."
                )
            providers.append(
                VaultSecretProvider(
                    settings.vault_url,
                    token=settings.vault_token.get_secret_value(),
                    mount=settings.vault_mount,
                )
            )
        return cls(providers)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._providers)

    def resolve(self, ref: str) -> str:
        """The value behind ``ref``; it is registered for redaction before it is returned."""
        name, field = parse_secret_ref(ref)
        for provider in self._providers:
            value = provider.get(name, field)
            if value is not None:
                register_secret(value)
                return value
        raise NotFoundError(
            f"No provider has the secret {ref!r} (tried: {', '.join(self.providers)}). Set "
            f"{EnvSecretProvider.variable(name)}, write it to the secrets folder, or store it "
            "in Vault.",
            ref=ref,
        )

    def resolve_all(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``values`` with each ``secret://`` string replaced by its value."""
        return {k: self.resolve(v) if is_secret_ref(v) else v for k, v in values.items()}

    def maybe_resolve(self, value: str | None) -> str | None:
        """``value`` itself, or what it refers to when it is a ``secret://`` reference."""
        if value is None or not is_secret_ref(value):
            return value
        return self.resolve(value)
