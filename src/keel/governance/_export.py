"""Signed audit exports: a manifest with the export's SHA-256 and an Ed25519 signature.

The manifest sits beside the export (``audit.jsonl.manifest.json``). Its signature covers
the canonical JSON of every other manifest field, so the file name, digest, size, event count
and key id are all bound to the signature. Verification streams the file (bounded memory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keel.errors import IntegrityError, InvalidInputError
from keel.governance._chain import canonical_json
from keel.governance._supplychain import ModelSigner, key_id_of

__all__ = ["manifest_path", "sign_export", "verify_export"]

_CHUNK = 1 << 20


def manifest_path(export: Path) -> Path:
    return export.with_name(export.name + ".manifest.json")


def _digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size


def sign_export(
    export: Path, signer: ModelSigner, *, events: int, created_at: str
) -> dict[str, Any]:
    """Write and return the signed manifest of ``export``."""
    digest, size = _digest(export)
    body = {
        "format": "keel-audit-export/1",
        "file": export.name,
        "digest": digest,
        "size": size,
        "events": events,
        "created_at": created_at,
        "algorithm": "ed25519",
        "key_id": signer.key_id,
        "public_key": signer.public_key_b64,
    }
    manifest = {**body, "signature": signer.sign_bytes(canonical_json(body).encode())}
    target = manifest_path(export)
    tmp = target.with_name(target.name + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(target)
    return manifest


def verify_export(
    export: Path, *, manifest: Path | None = None, trusted: list[Ed25519PublicKey]
) -> dict[str, Any]:
    """Check an export against its manifest and a trusted key; IntegrityError if anything fails."""
    source = manifest or manifest_path(export)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"Cannot read the manifest {source}: {exc}. Export with `keel audit export --signed`."
        ) from exc
    if not isinstance(data, dict) or "signature" not in data:
        raise IntegrityError(f"The manifest {source} has no signature.")
    body = {k: v for k, v in data.items() if k != "signature"}
    keys = {key_id_of(k): k for k in trusted}
    key = keys.get(str(body.get("key_id")))
    if key is None:
        raise IntegrityError(
            f"The manifest is signed by {body.get('key_id')}, which is not a trusted key "
            f"({', '.join(sorted(keys)) or 'none'}). Pass the signer's public key.",
        )
    try:
        key.verify(base64.b64decode(str(data["signature"])), canonical_json(body).encode())
    except (InvalidSignature, ValueError) as exc:
        raise IntegrityError(
            f"The signature of {source} does not verify: the manifest was altered."
        ) from exc
    if body.get("file") != export.name:
        raise IntegrityError(f"The manifest describes {body.get('file')!r}, not {export.name!r}.")
    digest, size = _digest(export)
    if not hmac.compare_digest(digest, str(body.get("digest"))) or size != body.get("size"):
        raise IntegrityError(
            f"{export} does not match its manifest (sha256 {digest[:23]}…, expected "
            f"{str(body.get('digest'))[:23]}…): the export was altered or truncated."
        )
    return body


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    """A trusted public key given as base64 of its 32 raw bytes."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    except ValueError as exc:
        raise InvalidInputError("The public key is not base64 of 32 raw Ed25519 bytes.") from exc
