"""Content-addressed, envelope-encrypted blob storage over fsspec (layer 2).

Usage at the composition root::

    master = LocalKeyFile(settings.resolved_master_key_file)  # or EnvMasterKey(value)
    keyring = Keyring(master, url=settings.resolved_blob_url)
    blobs = BlobStore(settings.resolved_blob_url, keyring=keyring)
    info = blobs.put_file("model.onnx", scope=project_id)
    data = blobs.get_bytes(info.digest, scope=project_id)
"""

from __future__ import annotations

from keel.blobs._keyring import DataKey, Keyring
from keel.blobs._keys import EnvMasterKey, LocalKeyFile, MasterKeyProvider
from keel.blobs._names import validate_digest, validate_scope
from keel.blobs._store import BlobInfo, BlobStore

__all__ = [
    "BlobInfo",
    "BlobStore",
    "DataKey",
    "EnvMasterKey",
    "Keyring",
    "LocalKeyFile",
    "MasterKeyProvider",
    "validate_digest",
    "validate_scope",
]
