"""BlobStore behaviour on a local folder and on fsspec's memory filesystem."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import keel.blobs
from keel.blobs import BlobInfo, BlobStore, EnvMasterKey, Keyring
from keel.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
)

StoreFactory = Callable[..., BlobStore]
CHUNK = 64
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(root: Path, scope: str, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return root / scope / hexdigest[:2] / hexdigest[2:4] / hexdigest


def files_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_exported_names_are_exactly_these() -> None:
    assert keel.blobs.__all__ == [
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
    assert sorted(keel.blobs.__all__) == keel.blobs.__all__


def test_importing_the_package_loads_neither_fsspec_nor_sqlalchemy() -> None:
    code = textwrap.dedent(
        """
        import sys
        import keel.blobs
        loaded = sorted(name for name in ("fsspec", "sqlalchemy") if name in sys.modules)
        print(",".join(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("size", SIZES)
def test_put_bytes_round_trips(any_url: str, make_store: StoreFactory, size: int) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(size)

    info = store.put_bytes(data, scope="p1")

    assert info == BlobInfo(digest_of(data), size)
    assert store.get_bytes(info.digest, scope="p1") == data
    assert store.exists(info.digest, scope="p1")


@pytest.mark.parametrize("size", SIZES)
def test_open_streams_chunks_of_the_chunk_size(
    any_url: str, make_store: StoreFactory, size: int
) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(size)
    info = store.put_bytes(data, scope="p1")

    chunks = list(store.open(info.digest, scope="p1"))

    assert b"".join(chunks) == data
    assert all(len(chunk) == CHUNK for chunk in chunks[:-1])
    assert all(0 < len(chunk) <= CHUNK for chunk in chunks)


@pytest.mark.parametrize("size", SIZES)
def test_put_file_round_trips(
    any_url: str, make_store: StoreFactory, tmp_path: Path, size: int
) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)

    info = store.put_file(source, scope="p1")

    assert info == BlobInfo(digest_of(data), size)
    assert store.get_bytes(info.digest, scope="p1") == data


@pytest.mark.parametrize("size", SIZES)
def test_put_stream_round_trips_iterables_and_files(
    any_url: str, make_store: StoreFactory, size: int
) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(size)
    pieces = [data[i : i + 7] for i in range(0, size, 7)]  # sizes unrelated to the chunk size

    from_iterable = store.put_stream(iter(pieces), scope="p1")
    from_file = store.put_stream(io.BytesIO(data), scope="p2")

    assert from_iterable == from_file == BlobInfo(digest_of(data), size)
    assert store.get_bytes(from_iterable.digest, scope="p1") == data
    assert store.get_bytes(from_file.digest, scope="p2") == data


def test_put_stream_accepts_bytearray_and_memoryview_pieces(
    any_url: str, make_store: StoreFactory
) -> None:
    store = make_store(any_url, chunk_size=CHUNK)
    data = os.urandom(5 * CHUNK + 3)

    info = store.put_stream([bytearray(data[:100]), memoryview(data)[100:]], scope="p1")

    assert store.get_bytes(info.digest, scope="p1") == data


def test_second_put_writes_nothing_new(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(4 * CHUNK)
    first = store.put_bytes(data, scope="p1")
    before = files_under(root)
    stat_before = blob_path(root, "p1", first.digest).stat()

    source = root.parent / "same.bin"
    source.write_bytes(data)
    again = [
        store.put_bytes(data, scope="p1"),
        store.put_file(source, scope="p1"),
        store.put_stream(iter([data]), scope="p1"),
    ]

    # Every write encrypts with a fresh nonce, so unchanged bytes prove nothing was rewritten.
    assert again == [first, first, first]
    assert files_under(root) == before
    assert blob_path(root, "p1", first.digest).stat().st_mtime_ns == stat_before.st_mtime_ns
    assert list(store.iter_digests(scope="p1")) == [first.digest]


def test_each_scope_stores_its_own_copy(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)
    data = os.urandom(100)

    one = store.put_bytes(data, scope="p1")
    two = store.put_bytes(data, scope="p2")

    assert one == two
    assert (
        blob_path(root, "p1", one.digest).read_bytes()
        != blob_path(root, "p2", one.digest).read_bytes()
    )
    assert store.get_bytes(one.digest, scope="p2") == data
    assert not store.exists(digest_of(b"other"), scope="p2")


def test_layout_under_the_root(make_store: StoreFactory, local_url: str, root: Path) -> None:
    store = make_store(local_url)
    info = store.put_bytes(b"layout", scope="proj-1")

    assert blob_path(root, "proj-1", info.digest).is_file()
    key_files = list((root / "_keys" / "proj-1").iterdir())
    assert len(key_files) == 1
    assert len(key_files[0].name) == 26
    assert list((root / "_tmp").iterdir()) == []


def test_exists_delete_and_iter_digests(any_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_url)
    infos = [store.put_bytes(os.urandom(10), scope="p1") for _ in range(20)]
    other = store.put_bytes(b"other scope", scope="p2")

    assert list(store.iter_digests(scope="p1")) == sorted(info.digest for info in infos)
    assert list(store.iter_digests(scope="p2")) == [other.digest]
    assert list(store.iter_digests(scope="empty")) == []

    assert store.delete(infos[0].digest, scope="p1") is True
    assert store.delete(infos[0].digest, scope="p1") is False
    assert not store.exists(infos[0].digest, scope="p1")
    assert infos[0].digest not in set(store.iter_digests(scope="p1"))
    with pytest.raises(NotFoundError, match="No blob sha256:"):
        store.get_bytes(infos[0].digest, scope="p1")


def test_unknown_digest_is_not_found(any_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_url)
    store.put_bytes(b"something", scope="p1")
    digest = digest_of(b"never stored")

    with pytest.raises(NotFoundError) as caught:
        store.open(digest, scope="p1")

    assert digest in str(caught.value)
    assert "scope 'p1'" in str(caught.value)
    assert caught.value.details == {"digest": digest, "scope": "p1"}


BAD_DIGESTS = [
    "sha256:../../etc",
    "../x",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "a" * 64 + "\n",
    "sha256:" + "a" * 62 + "/.",
    "SHA256:" + "a" * 64,
    "md5:" + "a" * 32,
    "a" * 64,
    "",
]
BAD_SCOPES = ["", "../x", "a/b", "_tmp", "_keys", "-x", "a" * 65, "a b", "proj\n", "é", "."]


def _unreachable_store() -> BlobStore:
    """A store whose URL cannot be resolved: any I/O attempt raises ConfigurationError."""
    url = "nosuchprotocol-keel://root"
    return BlobStore(url, keyring=Keyring(_fixed_master(), url=url))


def _fixed_master() -> EnvMasterKey:
    return EnvMasterKey("A" * 43 + "=")


def test_the_unreachable_store_fails_on_io() -> None:
    with pytest.raises(ConfigurationError, match="nosuchprotocol-keel"):
        _unreachable_store().exists("sha256:" + "a" * 64, scope="p1")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_an_s3_store_without_s3fs_names_the_extra() -> None:
    url = "s3://bucket/prefix"
    store = BlobStore(url, keyring=Keyring(_fixed_master(), url=url))
    with pytest.raises(MissingDependencyError, match=r"keel-mlops\[s3\]"):
        store.exists("sha256:" + "a" * 64, scope="p1")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_invalid_digests_are_rejected_before_any_io(digest: str) -> None:
    store = _unreachable_store()
    calls: list[Callable[[], object]] = [
        lambda: store.open(digest, scope="p1"),
        lambda: store.get_bytes(digest, scope="p1"),
        lambda: store.exists(digest, scope="p1"),
        lambda: store.delete(digest, scope="p1"),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="Invalid blob digest"):
            call()


@pytest.mark.parametrize("scope", BAD_SCOPES)
def test_invalid_scopes_are_rejected_before_any_io(scope: str, tmp_path: Path) -> None:
    store = _unreachable_store()
    source = tmp_path / "x.bin"
    source.write_bytes(b"x")
    digest = digest_of(b"x")
    calls: list[Callable[[], object]] = [
        lambda: store.put_bytes(b"x", scope=scope),
        lambda: store.put_file(source, scope=scope),
        lambda: store.put_stream([b"x"], scope=scope),
        lambda: store.open(digest, scope=scope),
        lambda: store.get_bytes(digest, scope=scope),
        lambda: store.exists(digest, scope=scope),
        lambda: store.delete(digest, scope=scope),
        lambda: store.iter_digests(scope=scope),
        lambda: store.destroy_scope(scope),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="Invalid blob scope"):
            call()


def test_non_string_digest_and_scope_are_rejected() -> None:
    store = _unreachable_store()
    with pytest.raises(InvalidInputError, match="must be a string"):
        store.exists(None, scope="p1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be a string"):
        store.exists("sha256:" + "a" * 64, scope=7)  # type: ignore[arg-type]


def test_put_stream_rejects_text(any_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_url)
    with pytest.raises(InvalidInputError, match="must yield bytes"):
        store.put_stream(["text"], scope="p1")  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="must yield bytes"):
        store.put_stream(io.StringIO("text"), scope="p1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="use put_bytes"):
        store.put_stream(b"raw bytes", scope="p1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="takes bytes"):
        store.put_bytes("text", scope="p1")  # type: ignore[arg-type]
    assert list(store.iter_digests(scope="p1")) == []


def test_put_file_errors_name_the_path(
    make_store: StoreFactory, local_url: str, tmp_path: Path
) -> None:
    store = make_store(local_url)
    with pytest.raises(NotFoundError, match="no such file"):
        store.put_file(tmp_path / "missing.bin", scope="p1")
    with pytest.raises(InvalidInputError, match="it is a folder"):
        store.put_file(tmp_path, scope="p1")


def test_keyring_on_another_root_is_a_configuration_error(
    master: EnvMasterKey, tmp_path: Path
) -> None:
    keyring = Keyring(master, url=(tmp_path / "a").as_uri())
    with pytest.raises(ConfigurationError, match="same URL"):
        BlobStore((tmp_path / "b").as_uri(), keyring=keyring)
    # The same root spelled with a trailing slash, or as a plain path, is accepted.
    BlobStore((tmp_path / "a").as_uri() + "/", keyring=keyring)
    BlobStore(str(tmp_path / "a"), keyring=keyring)


@pytest.mark.parametrize("chunk_size", [0, -1, 64 * 1024 * 1024 + 1])
def test_chunk_size_is_bounded(master: EnvMasterKey, local_url: str, chunk_size: int) -> None:
    with pytest.raises(InvalidInputError, match="chunk_size"):
        BlobStore(local_url, keyring=Keyring(master, url=local_url), chunk_size=chunk_size)


def test_constructors_touch_nothing(master: EnvMasterKey, root: Path) -> None:
    BlobStore(root.as_uri(), keyring=Keyring(master, url=root.as_uri()))
    assert not root.exists()


def test_destroy_scope_shreds_and_removes_its_blobs(any_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_url)
    kept = store.put_bytes(b"kept", scope="p2")
    infos = [store.put_bytes(os.urandom(200), scope="p1") for _ in range(3)]

    store.destroy_scope("p1")

    assert list(store.iter_digests(scope="p1")) == []
    for info in infos:
        assert not store.exists(info.digest, scope="p1")
        with pytest.raises(NotFoundError, match=r"erased \(crypto-shredded\)"):
            store.get_bytes(info.digest, scope="p1")
    with pytest.raises(ConflictError, match="was erased"):
        store.put_bytes(b"new data", scope="p1")
    store.destroy_scope("p1")  # idempotent
    assert store.get_bytes(kept.digest, scope="p2") == b"kept"


def test_a_failing_stream_leaves_no_blob_and_no_temporary(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    store = make_store(local_url, chunk_size=CHUNK)

    def broken() -> Iterator[bytes]:
        yield os.urandom(10 * CHUNK)
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        store.put_stream(broken(), scope="p1")

    assert list(store.iter_digests(scope="p1")) == []
    assert list((root / "_tmp").iterdir()) == []


def test_a_crash_mid_write_leaves_only_a_temporary(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    # A real crash: a child process dies (os._exit) while its put_stream is half written.
    key_text = base64.b64encode(os.urandom(32)).decode()
    code = textwrap.dedent(
        f"""
        import os
        from keel.blobs import BlobStore, EnvMasterKey, Keyring
        url = {local_url!r}
        keyring = Keyring(EnvMasterKey({key_text!r}), url=url)
        store = BlobStore(url, keyring=keyring, chunk_size=1024)
        def pieces():
            for _ in range(50):
                yield os.urandom(1024)
            os._exit(3)
        store.put_stream(pieces(), scope="p1")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == 3

    store = make_store(local_url, key=EnvMasterKey(key_text))
    assert list(store.iter_digests(scope="p1")) == []
    leftovers = list((root / "_tmp").iterdir())
    assert len(leftovers) == 1
    assert leftovers[0].stat().st_size > 0
    assert store.gc_temporaries(3600) == 0  # too recent: it could be a write in progress
    old = time.time() - 7200
    os.utime(leftovers[0], (old, old))
    assert store.gc_temporaries(3600) == 1
    assert list((root / "_tmp").iterdir()) == []


def test_gc_temporaries_on_memory(any_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_url)
    store.put_bytes(b"x", scope="p1")
    assert store.gc_temporaries(0) == 0
    with pytest.raises(InvalidInputError, match="older_than_seconds"):
        store.gc_temporaries(-1)


@pytest.mark.parametrize("method", ["put_bytes", "put_stream"])
def test_concurrent_puts_of_the_same_content_end_with_one_intact_blob(
    make_store: StoreFactory, local_url: str, root: Path, method: str
) -> None:
    store = make_store(local_url, chunk_size=1024)
    data = os.urandom(64 * 1024)
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[BlobInfo] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            barrier.wait()
            if method == "put_bytes":
                results.append(store.put_bytes(data, scope="p1"))
            else:
                results.append(store.put_stream(iter([data[:1000], data[1000:]]), scope="p1"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=put) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert results == [BlobInfo(digest_of(data), len(data))] * threads
    assert list(store.iter_digests(scope="p1")) == [digest_of(data)]
    assert list((root / "_tmp").iterdir()) == []
    assert store.get_bytes(digest_of(data), scope="p1") == data
    assert len(list((root / "_keys" / "p1").iterdir())) == 1


MIB = 1024 * 1024


def _peak_while(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_put_file_put_stream_and_open_use_a_few_chunks_of_memory(
    make_store: StoreFactory, local_url: str, tmp_path: Path
) -> None:
    chunk = 256 * 1024
    store = make_store(local_url, chunk_size=chunk)
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(32):
            handle.write(os.urandom(MIB))
    store.put_bytes(b"warm up", scope="p1")  # key created, modules imported

    def pieces() -> Iterator[bytes]:
        for _ in range(32 * 4):
            yield os.urandom(chunk // 2)

    info = None

    def put_file() -> None:
        nonlocal info
        info = store.put_file(source, scope="p1")

    def read_all() -> None:
        assert info is not None
        for _ in store.open(info.digest, scope="p1"):
            pass

    budget = 8 * chunk  # 2 MiB for a 32 MiB blob
    assert _peak_while(put_file) < budget
    assert _peak_while(lambda: store.put_stream(pieces(), scope="p1")) < budget
    assert _peak_while(read_all) < budget


def test_put_stream_writes_while_it_reads(
    make_store: StoreFactory, local_url: str, root: Path
) -> None:
    chunk = 64 * 1024
    store = make_store(local_url, chunk_size=chunk)
    seen: list[int] = []

    def pieces() -> Iterator[bytes]:
        for index in range(64):
            if index >= 3:
                # By the time piece i is asked for, chunks up to i - 3 are in the temporary.
                (temp,) = (root / "_tmp").iterdir()
                seen.append(temp.stat().st_size)
                assert temp.stat().st_size >= (index - 2) * (chunk + 16)
            yield os.urandom(chunk)

    store.put_stream(pieces(), scope="p1")

    assert len(seen) == 61
    assert seen == sorted(seen)
