"""The model-signing key file: where it is, and reading it with its checks (no store needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel.errors import ConfigurationError

__all__ = ["read_signing_key_file", "signing_key_path"]


def signing_key_path(settings: Any) -> Path:
    """The key file ``settings`` name (``signing_key_file``, default ``<home>/signing.key``)."""
    return Path(settings.signing_key_file or Path(settings.home) / "signing.key")


def read_signing_key_file(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM, PKCS#8), refused when others may read the file."""
    if not path.exists():
        raise ConfigurationError(
            f"The signing key {path} does not exist. Create it with `keel init`, or "
            "set KEEL_SIGNING_KEY_FILE / KEEL_SIGNING_KEY.",
            path=str(path),
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigurationError(
            f"The signing key {path} can be read by others (mode {oct(mode)}). Restrict it "
            f"with `chmod 600 {path}`.",
            path=str(path),
        )
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"The signing key {path} is not an Ed25519 key.")
    return key
