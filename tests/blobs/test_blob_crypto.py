"""The encrypted blob format: tampering is detected, and no plaintext ever reaches storage."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.blobs import BlobStore, Keyring
from keel.blobs._crypto import MAGIC, TAG_SIZE, rechunk
from keel.errors import ConfigurationError, IntegrityError, InvalidInputError

StoreFactory = Callable[..., BlobStore]
CHUNK = 64
HEADER = len(MAGIC) + 1 + 4 + 1 + 26 + 8  # magic, version, chunk size, key id, nonce prefix


def blob_path(root: Path, scope: str, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return root / scope / hexdigest[:2] / hexdigest[2:4] / hexdigest


@pytest.fixture
def store(make_store: StoreFactory, local_url: str) -> BlobStore:
    return make_store(local_url, chunk_size=CHUNK)


def _stored(store: BlobStore, root: Path, data: bytes, scope: str = "p1") -> tuple[str, Path]:
    info = store.put_bytes(data, scope=scope)
    return info.digest, blob_path(root, scope, info.digest)


def test_file_layout_matches_the_documented_format(store: BlobStore, root: Path) -> None:
    data = os.urandom(3 * CHUNK + 10)
    digest, path = _stored(store, root, data)
    raw = path.read_bytes()

    magic, version, chunk_size, key_len = struct.unpack(">9sBIB", raw[:15])
    assert (magic, version, chunk_size, key_len) == (b"KEEL-BLOB", 1, CHUNK, 26)
    key_id = raw[15:41].decode("ascii")
    assert (root / "_keys" / "p1" / key_id).is_file()
    chunks = 4  # three full chunks and a final one of 10 bytes
    assert len(raw) == HEADER + len(data) + chunks * TAG_SIZE + TAG_SIZE
    assert store.get_bytes(digest, scope="p1") == data


def test_empty_blob_is_one_empty_final_chunk(store: BlobStore, root: Path) -> None:
    digest, path = _stored(store, root, b"")
    assert len(path.read_bytes()) == HEADER + TAG_SIZE + TAG_SIZE
    assert list(store.open(digest, scope="p1")) == []


def _regions(size: int) -> dict[str, int]:
    """An offset inside each region of a blob file of ``size`` bytes."""
    return {
        "magic": 0,
        "chunk size": 12,
        "key id": 20,
        "nonce prefix": HEADER - 1,
        "first chunk ciphertext": HEADER + 3,
        "first chunk tag": HEADER + CHUNK + 2,
        "middle chunk": HEADER + (CHUNK + TAG_SIZE) + 5,
        "final chunk": size - TAG_SIZE - 5,
        "trailer": size - 1,
    }


@pytest.mark.parametrize("region", list(_regions(1000)))
def test_a_flipped_byte_anywhere_is_an_integrity_error(
    store: BlobStore, root: Path, region: str
) -> None:
    data = os.urandom(3 * CHUNK + 10)
    digest, path = _stored(store, root, data)
    raw = bytearray(path.read_bytes())
    raw[_regions(len(raw))[region]] ^= 0x01
    path.write_bytes(bytes(raw))

    with pytest.raises(IntegrityError) as caught:
        store.get_bytes(digest, scope="p1")

    assert digest in str(caught.value)
    assert "corrupt or was tampered with" in str(caught.value)


def test_an_unknown_format_version_asks_for_a_newer_keel(store: BlobStore, root: Path) -> None:
    digest, path = _stored(store, root, b"versioned")
    raw = bytearray(path.read_bytes())
    raw[len(MAGIC)] = 9
    path.write_bytes(bytes(raw))

    with pytest.raises(ConfigurationError, match=r"format version 9.*Upgrade keel-mlops"):
        store.get_bytes(digest, scope="p1")


def test_swapped_blob_files_are_integrity_errors(store: BlobStore, root: Path) -> None:
    one, one_path = _stored(store, root, os.urandom(2 * CHUNK))
    two, two_path = _stored(store, root, os.urandom(2 * CHUNK))
    one_raw, two_raw = one_path.read_bytes(), two_path.read_bytes()
    one_path.write_bytes(two_raw)
    two_path.write_bytes(one_raw)

    for digest in (one, two):
        with pytest.raises(IntegrityError, match="corrupt or was tampered with"):
            store.get_bytes(digest, scope="p1")


def test_a_blob_file_renamed_to_another_digest_fails_even_when_streamed(
    store: BlobStore, root: Path
) -> None:
    real = os.urandom(5 * CHUNK)
    _, real_path = _stored(store, root, real)
    fake_digest = "sha256:" + hashlib.sha256(b"what the caller asked for").hexdigest()
    fake_path = blob_path(root, "p1", fake_digest)
    fake_path.parent.mkdir(parents=True)
    shutil.copyfile(real_path, fake_path)

    received: list[bytes] = []
    with pytest.raises(IntegrityError, match="hashes to a different digest"):
        received.extend(store.open(fake_digest, scope="p1"))

    # Chunks are authentic pieces of some blob, but the final one is withheld, so the caller
    # never holds the complete content of the wrong blob.
    assert len(received) == 4
    assert b"".join(received) == real[: 4 * CHUNK]


@pytest.mark.parametrize(
    "cut",
    [
        "last byte",
        "trailer",
        "final chunk and trailer",
        "all chunks",
        "half the header",
        "everything",
    ],
)
def test_truncated_blobs_are_integrity_errors(store: BlobStore, root: Path, cut: str) -> None:
    digest, path = _stored(store, root, os.urandom(3 * CHUNK))
    raw = path.read_bytes()
    keep = {
        "last byte": len(raw) - 1,
        "trailer": len(raw) - TAG_SIZE,
        "final chunk and trailer": len(raw) - TAG_SIZE - (CHUNK + TAG_SIZE),
        "all chunks": HEADER,
        "half the header": HEADER // 2,
        "everything": 0,
    }[cut]
    path.write_bytes(raw[:keep])

    with pytest.raises(IntegrityError, match="corrupt or was tampered with"):
        store.get_bytes(digest, scope="p1")


def test_appended_bytes_are_an_integrity_error(store: BlobStore, root: Path) -> None:
    digest, path = _stored(store, root, os.urandom(CHUNK + 1))
    path.write_bytes(path.read_bytes() + b"\x00" * (CHUNK + TAG_SIZE))
    with pytest.raises(IntegrityError):
        store.get_bytes(digest, scope="p1")


def test_reordered_chunks_are_an_integrity_error(store: BlobStore, root: Path) -> None:
    digest, path = _stored(store, root, os.urandom(3 * CHUNK + 1))
    raw = path.read_bytes()
    size = CHUNK + TAG_SIZE
    first, second = raw[HEADER : HEADER + size], raw[HEADER + size : HEADER + 2 * size]
    path.write_bytes(raw[:HEADER] + second + first + raw[HEADER + 2 * size :])

    with pytest.raises(IntegrityError, match="chunk 0 does not authenticate"):
        store.get_bytes(digest, scope="p1")


def test_chunks_swapped_between_blobs_are_an_integrity_error(store: BlobStore, root: Path) -> None:
    one, one_path = _stored(store, root, os.urandom(3 * CHUNK))
    _, two_path = _stored(store, root, os.urandom(3 * CHUNK))
    raw_one, raw_two = one_path.read_bytes(), two_path.read_bytes()
    size = CHUNK + TAG_SIZE
    # Same key, same positions: only the per-blob header (nonce prefix) tells them apart.
    mixed = raw_one[: HEADER + size] + raw_two[HEADER + size : HEADER + 2 * size]
    one_path.write_bytes(mixed + raw_one[HEADER + 2 * size :])

    with pytest.raises(IntegrityError, match="chunk 1 does not authenticate"):
        store.get_bytes(one, scope="p1")


def test_a_blob_copied_into_another_scope_does_not_decrypt(store: BlobStore, root: Path) -> None:
    store.put_bytes(b"p2 has a key too", scope="p2")
    digest, path = _stored(store, root, b"secret of p1")
    target = blob_path(root, "p2", digest)
    target.parent.mkdir(parents=True)
    shutil.copyfile(path, target)

    with pytest.raises(IntegrityError, match="which scope 'p2' does not have"):
        store.get_bytes(digest, scope="p2")


def test_a_blob_copied_with_its_key_into_another_scope_does_not_decrypt(
    store: BlobStore, root: Path
) -> None:
    digest, path = _stored(store, root, b"secret of p1")
    target = blob_path(root, "p2", digest)
    target.parent.mkdir(parents=True)
    shutil.copyfile(path, target)
    shutil.copytree(root / "_keys" / "p1", root / "_keys" / "p2")

    with pytest.raises(IntegrityError, match=r"data key file .* corrupt or was tampered"):
        store.get_bytes(digest, scope="p2")


def _windows(data: bytes, width: int = 16) -> set[bytes]:
    return {data[i : i + width] for i in range(len(data) - width + 1)}


def _leaks(folder: Path, windows: set[bytes], width: int = 16) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        if any(raw[i : i + width] in windows for i in range(len(raw) - width + 1)):
            found.append(path)
    return found


def test_no_plaintext_byte_of_a_blob_ever_lands_in_the_blob_folder(
    make_store: StoreFactory, local_url: str, root: Path, tmp_path: Path
) -> None:
    chunk = 4096
    store = make_store(local_url, chunk_size=chunk)
    text = b"KEEL-PLAINTEXT-CANARY the quick brown fox jumps over the lazy dog. " * 300
    plaintext = text + os.urandom(5000)
    windows = _windows(plaintext)
    source = tmp_path / "canary.bin"
    source.write_bytes(plaintext)
    temporaries_checked = 0

    def pieces() -> Iterator[bytes]:
        nonlocal temporaries_checked
        for start in range(0, len(plaintext), 1000):
            if start >= 4 * chunk:
                # Mid-write: the temporary exists, already holds ciphertext, and no plaintext.
                temps = list((root / "_tmp").iterdir())
                assert len(temps) == 1
                assert temps[0].stat().st_size > 0
                assert _leaks(root, windows) == []
                temporaries_checked += 1
            yield plaintext[start : start + 1000]

    by_stream = store.put_stream(pieces(), scope="s1")
    by_bytes = store.put_bytes(plaintext, scope="s2")
    by_file = store.put_file(source, scope="s3")
    store.put_bytes(plaintext[:100], scope="s1")  # a short, single-chunk blob as well

    assert temporaries_checked > 0
    assert by_stream == by_bytes == by_file
    assert len([path for path in root.rglob("*") if path.is_file()]) >= 7
    assert _leaks(root, windows) == []
    assert store.get_bytes(by_stream.digest, scope="s1") == plaintext


def test_no_data_key_byte_lands_in_the_blob_folder(
    make_store: StoreFactory, local_url: str, root: Path, master: object
) -> None:
    store = make_store(local_url)
    store.put_bytes(b"anything", scope="p1")
    keyring = Keyring(master, url=local_url)  # type: ignore[arg-type]
    material = keyring.get_or_create("p1").material

    assert _leaks(root, _windows(material, 8), 8) == []


def test_rechunk_yields_exact_chunks_lazily() -> None:
    pulled: list[int] = []

    def pieces() -> Iterator[bytes]:
        for index, size in enumerate([3, 0, 10, 1, 25, 2, 5]):
            pulled.append(index)
            yield bytes([index]) * size

    stream = rechunk(pieces(), 8)
    first = next(stream)
    assert bytes(first) == b"\x00" * 3 + b"\x02" * 5
    assert pulled == [0, 1, 2]  # nothing read beyond what the first chunk needed
    rest = [bytes(chunk) for chunk in stream]
    assert [len(chunk) for chunk in rest] == [8, 8, 8, 8, 6]
    assert bytes(first) + b"".join(rest) == b"".join(
        bytes([i]) * n for i, n in enumerate([3, 0, 10, 1, 25, 2, 5])
    )


def test_rechunk_rejects_text() -> None:
    with pytest.raises(InvalidInputError, match="must yield bytes"):
        list(rechunk(["text"], 8))  # type: ignore[list-item]
