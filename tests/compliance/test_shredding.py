"""Per-part data keys: a part is shredded alone, and the erased plaintext is unrecoverable."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest

from keel.blobs import BlobStore, Keyring, LocalKeyFile
from keel.blobs._crypto import Header
from keel.errors import ConflictError, IntegrityError, NotFoundError
from keel.workspace import Workspace
from tests.compliance._helpers import ALICE, setup_orders

SCOPE = "proj1"


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    master = LocalKeyFile.create(tmp_path / "master.key")
    url = str(tmp_path / "blobs")
    return BlobStore(url, keyring=Keyring(master, url=url))


def _key_id(root: Path, digest: str) -> str:
    hexdigest = digest.split(":", 1)[1]
    path = root / SCOPE / hexdigest[:2] / hexdigest[2:4] / hexdigest
    with path.open("rb") as handle:
        return Header.read_from(handle.read, digest=digest, scope=SCOPE).key_id


def test_a_blob_with_its_own_key_is_shredded_alone(store: BlobStore, tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    one = store.put_bytes(b"first secret", scope=SCOPE, dedicated_key=True)
    two = store.put_bytes(b"second secret", scope=SCOPE, dedicated_key=True)
    shared = store.put_bytes(b"shared-key blob", scope=SCOPE)
    key_one, key_two = _key_id(root, one.digest), _key_id(root, two.digest)
    assert key_one != key_two
    assert (root / "_keys" / SCOPE / "own" / key_one).is_file()

    assert store.shred(one.digest, scope=SCOPE) == "shredded"
    assert not (root / "_keys" / SCOPE / "own" / key_one).exists()
    assert (root / "_keys" / SCOPE / "shredded" / key_one).read_bytes().startswith(b"erased at")
    with pytest.raises(NotFoundError, match="erased") as caught:
        store.get_bytes(one.digest, scope=SCOPE)
    assert caught.value.details["erased"] is True
    assert store.get_bytes(two.digest, scope=SCOPE) == b"second secret"  # untouched
    assert store.get_bytes(shared.digest, scope=SCOPE) == b"shared-key blob"
    assert store.shred(one.digest, scope=SCOPE) == "absent"  # idempotent

    # a blob under the scope's shared key can only be deleted (other blobs need that key)
    assert store.shred(shared.digest, scope=SCOPE) == "deleted"
    with pytest.raises(NotFoundError, match="erased"):
        store.get_bytes(shared.digest, scope=SCOPE)

    # the same content stored again gets a fresh key and is readable
    again = store.put_bytes(b"first secret", scope=SCOPE, dedicated_key=True)
    assert again.digest == one.digest and _key_id(root, again.digest) != key_one
    assert store.get_bytes(one.digest, scope=SCOPE) == b"first secret"


def test_a_restored_copy_of_a_shredded_blob_stays_unreadable(
    store: BlobStore, tmp_path: Path
) -> None:
    root = tmp_path / "blobs"
    info = store.put_bytes(b"restore me", scope=SCOPE, dedicated_key=True)
    hexdigest = info.digest.split(":", 1)[1]
    path = root / SCOPE / hexdigest[:2] / hexdigest[2:4] / hexdigest
    backup = path.read_bytes()
    store.shred(info.digest, scope=SCOPE)
    path.write_bytes(backup)  # a backup of the blob file comes back, its key does not
    with pytest.raises(NotFoundError, match="erased"):
        store.get_bytes(info.digest, scope=SCOPE)


def test_shared_keys_are_never_destroyed_one_by_one(store: BlobStore, tmp_path: Path) -> None:
    info = store.put_bytes(b"x", scope=SCOPE)
    key_id = _key_id(tmp_path / "blobs", info.digest)
    keyring = store._keyring
    assert not keyring.is_dedicated(SCOPE, key_id)
    with pytest.raises(ConflictError, match="shared key"):
        keyring.destroy_key(SCOPE, key_id)
    assert store.get_bytes(info.digest, scope=SCOPE) == b"x"


def test_destroying_the_scope_removes_dedicated_keys_too(store: BlobStore, tmp_path: Path) -> None:
    one = store.put_bytes(b"a", scope=SCOPE, dedicated_key=True)
    two = store.put_bytes(b"b", scope=SCOPE, dedicated_key=True)
    store.shred(two.digest, scope=SCOPE)
    store.destroy_scope(SCOPE)
    assert sorted(p.name for p in (tmp_path / "blobs" / "_keys" / SCOPE).iterdir()) == ["erased"]
    with pytest.raises(NotFoundError, match="erased"):
        store.get_bytes(one.digest, scope=SCOPE)
    with pytest.raises(ConflictError, match="erased"):
        store.put_bytes(b"c", scope=SCOPE, dedicated_key=True)


def _plaintexts(ws: Workspace) -> list[bytes]:
    """Every blob of the project decrypted with every key that is left (and the master key)."""
    out = []
    for digest in ws.blobs.iter_digests(scope=ws.ctx.project_id):
        out.append(ws.blobs.get_bytes(digest, scope=ws.ctx.project_id))
    return out


def _texts(data: bytes) -> str:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception:  # not a Parquet part: look at the bytes themselves
        return data.decode("latin-1")
    return repr(frame.to_dicts())


def test_after_erasure_no_remaining_key_decrypts_the_subjects_rows(local_ws: Workspace) -> None:
    setup_orders(local_ws)
    root = Path(local_ws.blobs.url.removeprefix("file://"))
    scope = local_ws.ctx.project_id
    before = [_texts(p) for p in _plaintexts(local_ws)]
    assert any(ALICE in text for text in before)  # the check can see the subject
    part = local_ws.datasets.version("orders", 1).parts[0].digest
    hexdigest = part.split(":", 1)[1]
    blob_file = root / scope / hexdigest[:2] / hexdigest[2:4] / hexdigest
    with blob_file.open("rb") as handle:
        key_id = Header.read_from(handle.read, digest=part, scope=scope).key_id
    key_file = root / "_keys" / scope / "own" / key_id
    assert key_file.is_file()
    stolen = blob_file.read_bytes()  # a copy of the encrypted part (a backup, a snapshot)

    local_ws.compliance.erase(ALICE)

    after = [_texts(p) for p in _plaintexts(local_ws)]
    assert after and not any(ALICE in text for text in after)
    assert not key_file.exists() and not blob_file.exists()
    # grep every file of the blob store (blobs, keys, tombstones) for the plaintext
    needle = ALICE.encode()
    for path in root.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    # the key id survives only as a tombstone, holding no key material
    assert [p.name for p in root.rglob(key_id)] == [key_id]
    assert (root / "_keys" / scope / "shredded" / key_id).read_bytes().startswith(b"erased at")
    # the copy comes back: it stays unreadable, and no key left in the store opens it
    blob_file.write_bytes(stolen)
    local_ws.blobs._keyring._own.clear()
    local_ws.blobs._keyring._keys.clear()
    with pytest.raises(NotFoundError, match="erased"):
        local_ws.blobs.get_bytes(part, scope=scope)
    from keel.blobs._crypto import open_blob
    from keel.blobs._names import is_key_id

    keyring = local_ws.blobs._keyring
    folder = root / "_keys" / scope
    remaining = [p.name for p in folder.iterdir() if is_key_id(p.name)]
    remaining += [p.name for p in (folder / "own").iterdir() if is_key_id(p.name)]
    assert remaining  # other parts' keys and the shared key are still there
    for other in remaining:
        material = keyring.get(scope, other).material
        with pytest.raises(IntegrityError):
            b"".join(
                open_blob(
                    io.BytesIO(stolen).read,
                    key_for=lambda _id, m=material: m,
                    scope=scope,
                    digest=part,
                )
            )


def test_a_shred_interrupted_after_the_key_went_is_finished_and_reported(
    store: BlobStore, tmp_path: Path
) -> None:
    info = store.put_bytes(b"half shredded", scope=SCOPE, dedicated_key=True)
    key_id = _key_id(tmp_path / "blobs", info.digest)
    store._keyring.destroy_key(SCOPE, key_id, digest=info.digest)  # then the process died
    assert store.shred(info.digest, scope=SCOPE) == "shredded"
    assert store._keyring.erased_blob(SCOPE, info.digest) == "shredded"
    assert store.shred(info.digest, scope=SCOPE) == "absent"


def test_dedicated_keys_are_cached_bounded_and_forgotten_on_shred(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keel.blobs import _keyring

    monkeypatch.setattr(_keyring, "OWN_KEY_CACHE", 2)
    infos = [
        store.put_bytes(f"blob {i}".encode(), scope=SCOPE, dedicated_key=True) for i in range(3)
    ]
    keyring = store._keyring
    assert keyring._own == {} and len(keyring._keys) <= 1  # creating caches no dedicated key
    for info in infos:
        store.get_bytes(info.digest, scope=SCOPE)
    assert len(keyring._own) == 2  # bounded: the oldest was dropped
    store.shred(infos[2].digest, scope=SCOPE)
    assert len(keyring._own) == 1  # a shredded key leaves the cache at once
    monkeypatch.setattr(_keyring, "OWN_KEY_TTL", 0.0)
    assert store.get_bytes(infos[1].digest, scope=SCOPE) == b"blob 1"  # reloaded when stale


def test_deleting_a_blob_removes_its_dedicated_key_but_no_shared_key(
    store: BlobStore, tmp_path: Path
) -> None:
    keys = tmp_path / "blobs" / "_keys" / SCOPE
    own = store.put_bytes(b"garbage of a killed ingest", scope=SCOPE, dedicated_key=True)
    shared = store.put_bytes(b"shared", scope=SCOPE)
    other = store.put_bytes(b"kept", scope=SCOPE)
    own_key = _key_id(tmp_path / "blobs", own.digest)
    shared_key = _key_id(tmp_path / "blobs", shared.digest)
    assert store.delete(own.digest, scope=SCOPE)
    assert not (keys / "own" / own_key).exists()
    assert not (keys / "shredded").exists()  # deleted garbage, not an erasure
    assert store.delete(shared.digest, scope=SCOPE)
    assert (keys / shared_key).is_file()
    assert store.get_bytes(other.digest, scope=SCOPE) == b"kept"
    assert not store.delete(own.digest, scope=SCOPE)


def test_a_batch_publishes_and_syncs_data_keys_before_the_blobs_they_seal(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from keel.blobs import _storage

    events: list[str] = []
    replace, fsync_dir = os.replace, _storage.fsync_dir

    def recording_replace(src: str, dst: str) -> None:
        events.append("key" if "/_keys/" in str(dst) else "blob")
        replace(src, dst)

    def recording_fsync_dir(path: str) -> None:
        events.append("sync-keys" if "/_keys" in path else "sync")
        fsync_dir(path)

    monkeypatch.setattr(os, "replace", recording_replace)
    monkeypatch.setattr(_storage, "fsync_dir", recording_fsync_dir)
    with _storage.durable_batch():
        infos = [
            store.put_bytes(f"part {i}".encode(), scope=SCOPE, dedicated_key=True) for i in range(3)
        ]
    monkeypatch.undo()
    assert events.count("key") >= 3 and events.count("blob") == 3
    first_blob = events.index("blob")
    assert "sync-keys" in events[:first_blob]  # key folders synced before any blob appears
    assert [store.get_bytes(i.digest, scope=SCOPE) for i in infos] == [
        b"part 0",
        b"part 1",
        b"part 2",
    ]
