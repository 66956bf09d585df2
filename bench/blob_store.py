"""Blob store throughput against its floor.

Run from the repository root::

    .venv/bin/python bench/blob_store.py [--size-mib 512] [--dir /path/on/the/disk/to/test]

Writes ~512 MiB of random bytes through ``BlobStore.put_file`` and ``put_stream`` and reads
them back with ``BlobStore.open``, and prints MiB/s next to the floors measured on the same
bytes and the same disk: a bare read + SHA-256 of the file, bare AES-256-GCM of the same bytes
in 1 MiB chunks, and a bare write + fsync of them. Each store line also shows its own floor,
the sum of the bare steps it cannot avoid (``put_file`` reads and hashes its input twice:
first to skip content already stored, then to encrypt it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keel.blobs import BlobStore, EnvMasterKey, Keyring

MIB = 1024 * 1024
CHUNK = MIB


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _read_chunks(path: Path) -> Callable[[], object]:
    def run() -> object:
        with path.open("rb") as handle:
            while handle.read(CHUNK):
                pass
        return None

    return run


def _read_sha256(path: Path) -> Callable[[], object]:
    def run() -> object:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    return run


def _aes_gcm(path: Path) -> Callable[[], object]:
    """Encrypt the file's bytes chunk by chunk (from memory: the file is read beforehand)."""
    cipher = AESGCM(os.urandom(32))
    with path.open("rb") as handle:
        chunks = [handle.read(CHUNK) for _ in range(path.stat().st_size // CHUNK)]

    def run() -> object:
        prefix = os.urandom(8)
        for index, chunk in enumerate(chunks):
            cipher.encrypt(prefix + index.to_bytes(4, "big"), chunk, b"aad")
        return None

    return run


def _write_fsync(path: Path, target: Path) -> Callable[[], object]:
    def run() -> object:
        with path.open("rb") as source, target.open("wb") as sink:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
            sink.flush()
            os.fsync(sink.fileno())
        return None

    return run


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="bytes to store (MiB)")
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to test")
    args = parser.parse_args()
    size_mib: int = args.size_mib

    work = Path(tempfile.mkdtemp(prefix="keel-bench-", dir=args.dir))
    try:
        source = work / "source.bin"
        with source.open("wb") as handle:
            for _ in range(size_mib):
                handle.write(os.urandom(MIB))
        url = (work / "blobs").as_uri()
        master = EnvMasterKey(base64.b64encode(os.urandom(32)).decode())
        store = BlobStore(url, keyring=Keyring(master, url=url), chunk_size=CHUNK)
        store.put_bytes(b"warm-up", scope="bench")  # creates the data key

        _read_chunks(source)()  # the floors and the store all read from the page cache
        read = _timed(_read_chunks(source))
        read_hash = _timed(_read_sha256(source))
        aes = _timed(_aes_gcm(source))
        write = _timed(_write_fsync(source, work / "copy.bin"))
        (work / "copy.bin").unlink()

        info = None

        def put_file() -> None:
            nonlocal info
            info = store.put_file(source, scope="bench-file")

        def put_stream() -> None:
            with source.open("rb") as handle:
                store.put_stream(handle, scope="bench-stream")

        def get() -> None:
            assert info is not None
            for _ in store.open(info.digest, scope="bench-file"):
                pass

        # Each operation's floor: the bare steps it cannot avoid, done one after the other.
        rows: list[tuple[str, float, float | None]] = [
            ("floor: read", read, None),
            ("floor: read + sha256", read_hash, None),
            ("floor: aes-256-gcm (in memory)", aes, None),
            ("floor: write + fsync", write, None),
            ("put_file (hash pass + encrypt pass)", _timed(put_file), 2 * read_hash + aes + write),
            ("put_file again (deduplicated)", _timed(put_file), read_hash),
            ("put_stream (one pass)", _timed(put_stream), read_hash + aes + write),
            ("get (open, verified)", _timed(get), read_hash + aes),
        ]

        print(f"blob store, {size_mib} MiB, {CHUNK // 1024} KiB chunks, {work}")
        for name, seconds, floor in rows:
            line = f"  {name:<38} {size_mib / seconds:8.1f} MiB/s ({seconds:5.2f} s)"
            if floor is not None:
                line += f"   floor {size_mib / floor:8.1f} MiB/s, {100 * floor / seconds:3.0f}%"
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
