"""Blobs written chunk by chunk by a caller that hashes them (``BlobStore.begin``)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from keel.blobs import BlobStore
from keel.blobs._storage import StorageRoot
from keel.errors import IntegrityError, InvalidInputError

from .conftest import StoreFactory

CHUNK = 64
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(store: BlobStore, data: bytes, *, scope: str = "p1", dedicated: bool = False) -> bool:
    """Write ``data`` in chunks of the store's size through reused buffers; publish it."""
    blob = store.begin(scope=scope, dedicated_key=dedicated)
    out = bytearray(CHUNK + 16)
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    for index, piece in enumerate(pieces):
        buffer = bytearray(piece)  # a reused buffer in the real reader
        blob.write(memoryview(buffer), final=index == len(pieces) - 1, out=out)
    return blob.finish(digest_of(data))


def own_keys(root: Path, scope: str = "p1") -> list[Path]:
    folder = root / "_keys" / scope / "own"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def temporaries(root: Path) -> list[Path]:
    folder = root / "_tmp"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("size", SIZES)
def test_chunk_by_chunk_round_trips(any_url: str, make_store: StoreFactory, size: int) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(size)
    assert upload(store, data) is True
    assert store.get_bytes(digest_of(data), scope="p1") == data
    chunks = list(store.open(digest_of(data), scope="p1"))
    assert all(len(chunk) == CHUNK for chunk in chunks[:-1])


def test_the_same_bytes_as_put_bytes_are_readable_either_way(
    make_store: StoreFactory, local_url: str
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(5 * CHUNK + 3)
    assert upload(store, data, dedicated=True) is True
    assert store.put_bytes(data, scope="p1").digest == digest_of(data)  # already there
    assert store.get_bytes(digest_of(data), scope="p1") == data


def test_content_already_stored_is_dropped_with_its_dedicated_key(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(2 * CHUNK + 1)
    assert upload(store, data, dedicated=True) is True
    assert upload(store, data, dedicated=True) is False
    assert len(own_keys(root)) == 1
    assert temporaries(root) == []
    assert store.shred(digest_of(data), scope="p1") == "shredded"
    assert own_keys(root) == []


def test_a_batch_publishes_at_its_end_and_a_duplicate_withdraws_its_key(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    one, two = os.urandom(3 * CHUNK), os.urandom(CHUNK // 2)
    with store.batch():
        assert upload(store, one, dedicated=True)
        assert upload(store, two, dedicated=True)
        assert not store.exists(digest_of(one), scope="p1")  # not before the batch ends
        extra = store.begin(scope="p1", dedicated_key=True)  # a copy that is then dropped
        extra.write(two, final=True)
        extra.abort()
    assert store.get_bytes(digest_of(one), scope="p1") == one
    assert store.get_bytes(digest_of(two), scope="p1") == two
    assert len(own_keys(root)) == 2
    assert temporaries(root) == []


def test_a_failing_batch_publishes_nothing(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(2 * CHUNK)

    def write_then_fail() -> None:
        with store.batch():
            upload(store, data, dedicated=True)
            raise RuntimeError("reader died")

    with pytest.raises(RuntimeError, match="reader died"):
        write_then_fail()
    assert not store.exists(digest_of(data), scope="p1")
    assert temporaries(root) == []


def test_abort_leaves_no_temporary_and_no_key(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    blob = store.begin(scope="p1", dedicated_key=True)
    blob.write(os.urandom(CHUNK), final=False)
    blob.abort()
    blob.abort()  # idempotent
    assert temporaries(root) == []
    assert own_keys(root) == []


@pytest.mark.parametrize(
    ("sizes", "finals", "message"),
    [
        ([CHUNK - 1, 1], [False, True], "does not fit"),  # a short chunk before the end
        ([CHUNK + 1], [True], "does not fit"),  # larger than a chunk
        ([CHUNK, 0], [False, True], "does not fit"),  # an empty final after data
        ([3, 3], [True, True], "already sealed"),  # a chunk after the final one
    ],
)
def test_chunks_of_the_wrong_size_are_refused(
    make_store: StoreFactory,
    local_url: str,
    root: Path,
    sizes: list[int],
    finals: list[bool],
    message: str,
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    blob = store.begin(scope="p1", dedicated_key=True)

    def write_all() -> None:
        for size, final in zip(sizes, finals, strict=True):
            blob.write(os.urandom(size), final=final)

    with pytest.raises(InvalidInputError, match=message):
        write_all()
    assert temporaries(root) == []  # the failed blob was dropped
    assert own_keys(root) == []


def test_finish_before_the_final_chunk_is_refused(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    blob = store.begin(scope="p1")
    blob.write(os.urandom(CHUNK), final=False)
    with pytest.raises(InvalidInputError, match="after the final chunk"):
        blob.finish(digest_of(b"x"))
    assert temporaries(root) == []
    with pytest.raises(InvalidInputError, match="Invalid blob digest"):
        store.begin(scope="p1").finish("sha256:nope")


def test_a_wrong_digest_is_never_read_back(make_store: StoreFactory, local_url: str) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    blob = store.begin(scope="p1")
    blob.write(b"the real content", final=True)
    lie = digest_of(b"something else")
    assert blob.finish(lie) is True
    with pytest.raises(IntegrityError, match="hashes to a different digest"):
        store.get_bytes(lie, scope="p1")


def test_a_held_batch_is_published_by_another_thread_or_discarded(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    one, two = os.urandom(2 * CHUNK + 9), os.urandom(CHUNK)
    with store.held_batch() as held:
        assert upload(store, one, dedicated=True)
    assert len(held) == 2  # the blob and its key
    assert not store.exists(digest_of(one), scope="p1")  # written, not published
    publisher = threading.Thread(target=held.publish)
    publisher.start()
    publisher.join()
    assert store.get_bytes(digest_of(one), scope="p1") == one
    with store.held_batch() as dropped:
        assert upload(store, two, dedicated=True)
    dropped.discard()
    assert not store.exists(digest_of(two), scope="p1")
    assert temporaries(root) == []
    assert len(own_keys(root)) == 1
    with pytest.raises(RuntimeError, match="cannot be nested"), store.batch():
        store.held_batch().__enter__()


# --- review of the streamed writes (9a00196) -----------------------------------------------


def blob_files(root: Path, scope: str = "p1") -> list[Path]:
    folder = root / scope
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def test_a_copy_of_a_stored_blob_in_a_held_batch_does_not_fail_the_batch(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    old, new = os.urandom(3 * CHUNK), os.urandom(2 * CHUNK)
    assert upload(store, old, dedicated=True) is True
    with store.held_batch() as held:
        assert upload(store, new, dedicated=True) is True
        assert upload(store, old, dedicated=True) is False  # stored: dropped, key and all
    held.publish()  # the dropped copy's temporary file is not flushed
    assert store.get_bytes(digest_of(new), scope="p1") == new
    assert len(own_keys(root)) == 2
    assert temporaries(root) == []


def test_the_same_bytes_streamed_and_put_in_one_batch_leave_one_blob_and_one_key(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(2 * CHUNK + 3)
    with store.held_batch() as held:
        assert upload(store, data, dedicated=True) is True  # held, not visible yet
        store.put_many([(digest_of(data), data)], scope="p1", dedicated_key=True)
    held.publish()
    assert store.get_bytes(digest_of(data), scope="p1") == data
    assert len(blob_files(root)) == 1
    assert len(own_keys(root)) == 1  # the copy not published took its key with it
    assert temporaries(root) == []


def test_a_blob_stored_meanwhile_by_another_writer_drops_this_ones_key(
    make_store: StoreFactory, local_url: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    other = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(CHUNK + 1)
    original = StorageRoot.commit
    raced: list[str] = []

    def racing(self: StorageRoot, temp: str, final: str, **kwargs: object) -> bool:
        if "/_keys/" not in final and not raced:  # another process stores the bytes first
            raced.append(final)
            other.put_bytes(data, scope="p1", dedicated_key=True)
        return original(self, temp, final, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(StorageRoot, "commit", racing)
    assert upload(store, data, dedicated=True) is False
    monkeypatch.undo()
    assert store.get_bytes(digest_of(data), scope="p1") == data
    assert len(own_keys(root)) == 1  # the other writer's
    assert temporaries(root) == []


def test_gc_removes_old_dedicated_keys_whose_blob_was_never_published(
    make_store: StoreFactory, local_url: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    kept, lost = os.urandom(2 * CHUNK), os.urandom(CHUNK + 5)
    assert upload(store, kept, dedicated=True)
    with store.held_batch() as held:
        assert upload(store, lost, dedicated=True)
    real_replace = os.replace

    def killed_at_the_blob(source: str, target: str) -> None:
        if "/_keys/" not in target:
            raise SystemExit("killed between the key and the blob renames (test)")
        real_replace(source, target)

    monkeypatch.setattr("keel.blobs._storage.os.replace", killed_at_the_blob)
    with pytest.raises(SystemExit):
        held.publish()
    monkeypatch.undo()
    assert not store.exists(digest_of(lost), scope="p1")
    assert len(own_keys(root)) == 2  # the lost blob's key was published
    assert store.gc_orphan_keys(scope="p1", older_than_seconds=3600) == 0  # too recent
    hour_ago = time.time() - 7200
    for key in own_keys(root):
        os.utime(key, (hour_ago, hour_ago))
    assert store.gc_orphan_keys(scope="p1", older_than_seconds=3600) == 1
    assert len(own_keys(root)) == 1
    assert store.get_bytes(digest_of(kept), scope="p1") == kept  # its key stayed
    assert store.gc_orphan_keys(scope="p1", older_than_seconds=0) == 0
    with pytest.raises(InvalidInputError):
        store.gc_orphan_keys(scope="p1", older_than_seconds=-1)


def test_gc_of_orphan_keys_on_any_filesystem(any_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(CHUNK * 2)
    assert upload(store, data, dedicated=True)
    store.put_bytes(os.urandom(10), scope="p1")  # under the shared key: never swept
    store._keyring.create_key("p1")  # a key whose blob never came
    time.sleep(0.01)
    assert store.gc_orphan_keys(scope="p1", older_than_seconds=0) == 1
    assert store.gc_orphan_keys(scope="p1", older_than_seconds=0) == 0
    assert store.get_bytes(digest_of(data), scope="p1") == data
