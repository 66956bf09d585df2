"""Model supply chain, part 1: Ed25519 signatures of model versions, made and checked.

A version is signed when it is registered: the signed payload is the canonical JSON of the
project, model, version, id, artifact digest and format, so a changed digest, a version moved
to another model, or a swapped blob all fail verification. The signing key comes from the key
provider: a ``secret://`` reference (``KEEL_SIGNING_KEY``) or a key file (mode 0600) created
beside the master key. Verification accepts only signatures by trusted keys (the store's own
key, plus any public keys given).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from keel import clock
from keel.errors import ConfigurationError, IntegrityError
from keel.governance._chain import canonical_json
from keel.governance._signing_key import read_signing_key_file, signing_key_path
from keel.store import SupplyChainRepository
from keel.store._schema_policy import ModelSignatureRow

__all__ = ["ModelSigner", "SignatureInfo", "key_id_of", "version_payload"]

ALGORITHM = "ed25519"


def key_id_of(public: Ed25519PublicKey) -> str:
    """A short, stable id of a public key: ``ed25519:<first 16 hex of sha256(raw)>``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{ALGORITHM}:{hashlib.sha256(raw).hexdigest()[:16]}"


def version_payload(
    *, project_id: str, model: str, version: int, version_id: str, digest: str, fmt: str
) -> str:
    """The exact text a model version's signature covers."""
    return canonical_json(
        {
            "project_id": project_id,
            "model": model,
            "version": version,
            "model_version_id": version_id,
            "artifact_digest": digest,
            "format": fmt,
        }
    )


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """A version's signature as stored."""

    algorithm: str
    key_id: str
    public_key: str
    signature: str
    signed_at: str

    def to_dict(self) -> dict[str, str]:
        return {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "signature": self.signature,
            "signed_at": self.signed_at,
        }


class ModelSigner:
    """Signs model versions and verifies their signatures against trusted keys."""

    def __init__(
        self, private_key: Ed25519PrivateKey, *, trusted: Iterable[Ed25519PublicKey] = ()
    ) -> None:
        self._key = private_key
        self._public = private_key.public_key()
        self._trusted = {key_id_of(k): k for k in (self._public, *trusted)}

    def __repr__(self) -> str:
        return f"ModelSigner(key_id={self.key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("A ModelSigner holds a private key and cannot be pickled.")

    @property
    def key_id(self) -> str:
        return key_id_of(self._public)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public

    @property
    def public_key_b64(self) -> str:
        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    # --- key sources --------------------------------------------------------------------

    @classmethod
    def generate(cls) -> ModelSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path, *, create: bool = False) -> ModelSigner:
        """The key in ``path`` (PEM, PKCS#8); with ``create``, a new one written mode 0600."""
        if create and not path.exists():
            return cls._create(path)
        return cls(read_signing_key_file(path))

    @classmethod
    def _create(cls, path: Path) -> ModelSigner:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        return cls(key)

    @classmethod
    def from_base64(cls, value: str) -> ModelSigner:
        """A key given as base64 of its 32 raw private bytes (e.g. resolved from a secret)."""
        try:
            raw = base64.b64decode(value.strip(), validate=True)
            return cls(Ed25519PrivateKey.from_private_bytes(raw))
        except ValueError as exc:
            raise ConfigurationError(
                "The signing key is not base64 of 32 raw Ed25519 private-key bytes."
            ) from exc

    @classmethod
    def from_settings(cls, settings: Any, *, create: bool = True) -> ModelSigner:
        """From ``signing_key`` (a secret:// reference) or the key file (default under home)."""
        if settings.signing_key:
            from keel.governance._secrets import SecretResolver, is_secret_ref

            if not is_secret_ref(settings.signing_key):
                raise ConfigurationError(
                    "KEEL_SIGNING_KEY must be a secret:// reference, never the key itself "
                    "(settings are shown by `keel config show`). Store the key with a secret "
                    "provider and set KEEL_SIGNING_KEY=secret://NAME."
                )

            value = SecretResolver.from_settings(settings).maybe_resolve(settings.signing_key)
            return cls.from_base64(value or "")
        return cls.from_file(signing_key_path(settings), create=create)

    # --- signing and verifying ----------------------------------------------------------

    def sign_bytes(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data)).decode()

    def verify_bytes(self, data: bytes, signature: str, *, key_id: str) -> bool:
        key = self._trusted.get(key_id)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature), data)
        except (InvalidSignature, ValueError):
            return False
        return True

    def sign_version(
        self, session: Session, project_id: str, payload: str, version_id: str
    ) -> None:
        """Store the signature of ``payload`` for ``version_id`` in the caller's transaction."""
        SupplyChainRepository(session, project_id).add_signature(
            ModelSignatureRow(
                model_version_id=version_id,
                project_id=project_id,
                algorithm=ALGORITHM,
                key_id=self.key_id,
                public_key=self.public_key_b64,
                signature=self.sign_bytes(payload.encode()),
                payload=payload,
                signed_at=clock.now(),
            )
        )

    def verify_version(
        self, session: Session, project_id: str, payload: str, version_id: str, *, what: str
    ) -> SignatureInfo:
        """Raise IntegrityError unless ``version_id`` carries a valid trusted signature."""
        row = SupplyChainRepository(session, project_id).signature(version_id)
        if row is None:
            raise IntegrityError(
                f"Model {what} has no signature, so it will not be loaded or served. Versions "
                "are signed at registration; register it again through Keel.",
                model_version_id=version_id,
            )
        if not hmac.compare_digest(row.payload.encode(), payload.encode()):
            raise IntegrityError(
                f"Model {what} does not match what was signed (its digest, format or name "
                "changed after registration). Do not use it; investigate the store.",
                model_version_id=version_id,
            )
        if not self.verify_bytes(payload.encode(), row.signature, key_id=row.key_id):
            raise IntegrityError(
                f"The signature of model {what} does not verify with a trusted key (signed by "
                f"{row.key_id}; trusted: {', '.join(sorted(self._trusted))}). Do not use it.",
                model_version_id=version_id,
                key_id=row.key_id,
            )
        return SignatureInfo(
            algorithm=row.algorithm,
            key_id=row.key_id,
            public_key=row.public_key,
            signature=row.signature,
            signed_at=row.signed_at.isoformat(),
        )
