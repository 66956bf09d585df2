"""The encrypted blob file format: AES-256-GCM chunks bound to their header, scope and digest.

Format version 1. All integers are unsigned big-endian::

    header   b"KEEL-BLOB"              9 bytes  magic
             version                   1 byte   1
             chunk size                4 bytes  plaintext bytes per chunk (1 .. 64 MiB)
             key id length             1 byte
             key id                    ASCII    the scope's data key (keel.types.new_id())
             nonce prefix              8 bytes  random, fresh for every blob
    chunks   chunk i, for i = 0 .. n-1 (n >= 1):
               AES-256-GCM(data key, nonce = prefix || i (4 bytes), plaintext chunk i,
                           aad = context || b"C" || i (4 bytes) || final flag (1 byte))
               = ciphertext || 16-byte tag
    trailer  the 16-byte tag of
               AES-256-GCM(data key, nonce = prefix || 0xFFFFFFFF, b"",
                           aad = context || b"T" || sha256(plaintext) (32) || size (8))

where ``context = header bytes || len(scope) (1 byte) || scope``. Every chunk but the last
holds exactly ``chunk size`` plaintext bytes; the last one carries the final flag and holds
1 .. ``chunk size`` bytes (0 only for the empty blob, which is one empty final chunk).

What the bindings buy:

* chunks cannot be reordered (the index is in the nonce and the aad), truncated at a chunk
  boundary (the new last chunk lacks the final flag) or cut anywhere else (a tag fails);
* chunks cannot be swapped between blobs (each blob has its own header, nonce prefix
  included) nor a blob moved to another scope (the scope is in the aad, and the data key is
  wrapped for its scope);
* a blob file renamed to another digest fails: the trailer authenticates the plaintext
  digest, and the reader also recomputes SHA-256 and compares it to the digest asked for.

The reader authenticates each chunk before yielding it and withholds the final chunk until
the digest and the trailer verify, so a consumer that reads to the end without an error has
the exact content of the digest. The 64-bit random nonce prefix keeps nonce reuse
negligible (probability ~ n**2 / 2**65 for n blobs under one data key).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keel.blobs._names import DIGEST_PREFIX, digest_hex, is_key_id
from keel.errors import ConfigurationError, IntegrityError, InvalidInputError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "BlobSealer",
    "BytesLike",
    "Header",
    "open_blob",
    "rechunk",
]

BytesLike = bytes | bytearray | memoryview

MAGIC = b"KEEL-BLOB"
FORMAT_VERSION = 1
TAG_SIZE = 16
PREFIX_SIZE = 8
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
_TRAILER_COUNTER = 0xFFFFFFFF
_MAX_CHUNKS = _TRAILER_COUNTER  # counters 0 .. 0xFFFFFFFE belong to chunks
_FIXED = struct.Struct(">9sBIB")  # magic, version, chunk size, key id length


def _corrupt(digest: str, scope: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"Blob {digest} in scope '{scope}' is corrupt or was tampered with: {what}. "
        "Do not use its content; delete it and store the original again, or restore the "
        "blob store from a backup.",
        digest=digest,
        scope=scope,
    )


@dataclass(frozen=True)
class Header:
    """The clear-text header of a blob file (authenticated as associated data)."""

    key_id: str
    chunk_size: int
    nonce_prefix: bytes

    def encode(self) -> bytes:
        """Return the header's bytes, as written at the start of the blob file."""
        key_id = self.key_id.encode("ascii")
        fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, self.chunk_size, len(key_id))
        return fixed + key_id + self.nonce_prefix

    @classmethod
    def read_from(cls, read: Callable[[int], bytes], *, digest: str, scope: str) -> Header:
        """Read and check a header with ``read`` (a file's ``read`` method).

        Raises:
            IntegrityError: If the bytes are not a well-formed version-1 header.
            ConfigurationError: If the blob uses a format version this Keel does not know.
        """
        fixed = _read_exact(read, _FIXED.size)
        if len(fixed) < _FIXED.size:
            raise _corrupt(digest, scope, "the file is shorter than a blob header")
        magic, version, chunk_size, key_len = _FIXED.unpack(fixed)
        if magic != MAGIC:
            raise _corrupt(digest, scope, "the file does not start with the KEEL-BLOB magic")
        if version != FORMAT_VERSION:
            raise ConfigurationError(
                f"Blob {digest} in scope '{scope}' has format version {version}, but this "
                f"Keel reads version {FORMAT_VERSION}. Upgrade keel-mlops to read it (or, if "
                "no newer Keel ever wrote to this store, the file is corrupt).",
                digest=digest,
            )
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise _corrupt(digest, scope, f"the header declares a chunk size of {chunk_size}")
        rest = _read_exact(read, key_len + PREFIX_SIZE)
        if len(rest) < key_len + PREFIX_SIZE:
            raise _corrupt(digest, scope, "the header is cut short")
        try:
            key_id = rest[:key_len].decode("ascii")
        except UnicodeDecodeError:
            key_id = ""
        if not is_key_id(key_id):
            raise _corrupt(digest, scope, "the header names a malformed data key id")
        return cls(key_id=key_id, chunk_size=chunk_size, nonce_prefix=rest[key_len:])


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of file."""
    parts: list[bytes] = []
    missing = size
    while missing > 0:
        piece = read(missing)
        if not piece:
            break
        parts.append(piece)
        missing -= len(piece)
    return b"".join(parts)


def _context(header: bytes, scope: str) -> bytes:
    encoded = scope.encode("ascii")
    return header + bytes([len(encoded)]) + encoded


def _chunk_nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _chunk_aad(context: bytes, index: int, *, final: bool) -> bytes:
    return context + b"C" + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _trailer_aad(context: bytes, raw_digest: bytes, size: int) -> bytes:
    return context + b"T" + raw_digest + size.to_bytes(8, "big")


def rechunk(pieces: Iterable[BytesLike], size: int) -> Iterator[BytesLike]:
    """Regroup byte pieces of any sizes into pieces of exactly ``size`` bytes (the last shorter).

    Memory stays under two chunks whatever the input: large pieces are sliced (zero-copy
    memoryviews), small ones are gathered in one buffer. Empty pieces are skipped.

    Raises:
        InvalidInputError: If a piece is not bytes-like (for example a ``str``).
    """
    buffer = bytearray()
    for piece in pieces:
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"A blob stream must yield bytes, got {type(piece).__name__}. Encode text "
                "first (for example text.encode('utf-8')) or open files in binary mode ('rb').",
                field="chunks",
            )
        view = memoryview(piece).cast("B")
        if buffer:
            taken = size - len(buffer)
            buffer += view[:taken]
            view = view[taken:]
            if len(buffer) < size:
                continue
            yield bytes(buffer)
            buffer.clear()
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        buffer += view
    if buffer:
        yield bytes(buffer)


class BlobSealer:
    """Encrypts one blob's plaintext into the file format above, hashing it on the way.

    Args:
        key: The scope's 32-byte data key.
        key_id: The data key's id, written into the header.
        scope: The scope the blob belongs to (bound as associated data).
        chunk_size: Plaintext bytes per chunk.
        digest: The plaintext's ``sha256:`` digest when the caller computed it already (from
            these very bytes): the sealer then encrypts in one pass without hashing again.
            A wrong digest is never read back as content: readers recompute SHA-256 and
            refuse the blob (IntegrityError).
        hashing: False for a caller that hashes the chunks itself as it reads them and hands
            the digest to :meth:`trailer` (the chunk-by-chunk form, :meth:`seal_into`).
    """

    def __init__(
        self,
        key: bytes,
        *,
        key_id: str,
        scope: str,
        chunk_size: int,
        digest: str | None = None,
        hashing: bool = True,
    ) -> None:
        self._cipher = AESGCM(key)
        self._header = Header(key_id, chunk_size, os.urandom(PREFIX_SIZE)).encode()
        self._context = _context(self._header, scope)
        self._prefix = self._header[-PREFIX_SIZE:]
        self._chunk_size = chunk_size
        self._known = None if digest is None else bytes.fromhex(digest_hex(digest))
        self._hasher = hashlib.sha256() if digest is None and hashing else None
        self._digest: str | None = None
        self._size = 0
        self._next = 0  # the next chunk index of seal_into()
        self._closed = False

    @property
    def digest(self) -> str:
        """The plaintext's ``sha256:`` digest, known once :meth:`seal` is exhausted."""
        if self._digest is None:
            raise RuntimeError("BlobSealer.digest is known only after seal() is exhausted.")
        return self._digest

    @property
    def size(self) -> int:
        """The plaintext size in bytes, known once :meth:`seal` is exhausted."""
        return self._size

    def seal(self, pieces: Iterable[BytesLike]) -> Iterator[bytes]:
        """Yield the blob file's bytes: header, one ciphertext per chunk, trailer.

        The input is consumed lazily, one chunk ahead (to know which chunk is final).
        """
        yield self._header
        chunks = rechunk(pieces, self._chunk_size)
        current: BytesLike = next(chunks, b"")
        index = 0
        for following in chunks:
            yield self._seal_chunk(index, current, final=False)
            index += 1
            current = following
        yield self._seal_chunk(index, current, final=True)
        raw_digest = self._hasher.digest() if self._hasher is not None else self._known or b""
        nonce = _chunk_nonce(self._prefix, _TRAILER_COUNTER)
        yield self._cipher.encrypt(nonce, b"", _trailer_aad(self._context, raw_digest, self._size))
        self._digest = DIGEST_PREFIX + raw_digest.hex()

    @property
    def header(self) -> bytes:
        """The blob file's header bytes (written first, before the chunks of seal_into())."""
        return self._header

    def seal_into(self, plain: BytesLike, out: bytearray | memoryview, *, final: bool) -> int:
        """Encrypt the next chunk into ``out``; return the bytes written (``len(plain) + 16``).

        The chunk-by-chunk form of :meth:`seal` for a caller that reads into reused buffers:
        write :attr:`header`, then every chunk's output in order, then :meth:`trailer`. Every
        chunk but the final one must hold exactly ``chunk_size`` bytes; the final one 1 ..
        ``chunk_size`` (0 only when it is the only chunk).

        Raises:
            InvalidInputError: If a chunk has the wrong size, ``out`` is too small, or a chunk
                follows the final one.
        """
        size = memoryview(plain).nbytes
        if self._closed:
            raise InvalidInputError("This blob's final chunk was already sealed.", field="chunks")
        wrong = size > self._chunk_size or (not final and size != self._chunk_size)
        if wrong or (final and size == 0 and self._next > 0):
            raise InvalidInputError(
                f"A {'final' if final else 'non-final'} chunk of {size} bytes does not fit "
                f"chunks of {self._chunk_size} bytes.",
                field="chunks",
            )
        if memoryview(out).nbytes < size + TAG_SIZE:
            raise InvalidInputError(
                f"The output buffer holds {memoryview(out).nbytes} bytes; a sealed chunk of "
                f"{size} bytes needs {size + TAG_SIZE}.",
                field="out",
            )
        nonce, aad = self._next_chunk(self._next, plain, size, final=final)
        self._next += 1
        self._closed = final
        with memoryview(out) as view, view[: size + TAG_SIZE] as target:
            return int(self._cipher.encrypt_into(nonce, plain, aad, target))

    def trailer(self, digest: str | None = None) -> bytes:
        """Return the trailer that ends a blob sealed with :meth:`seal_into`.

        Args:
            digest: The plaintext's ``sha256:`` digest, required when the sealer was made
                with ``hashing=False`` (trusted as given: readers recompute it).

        Raises:
            InvalidInputError: If the final chunk was not sealed yet, or ``digest`` is missing.
        """
        if not self._closed:
            raise InvalidInputError(
                "The trailer comes after the final chunk; seal it first.", field="chunks"
            )
        if self._hasher is not None:
            raw_digest = self._hasher.digest()
            if digest is not None and digest_hex(digest) != raw_digest.hex():
                raise InvalidInputError(
                    f"The digest given ({digest}) is not the digest of the chunks sealed.",
                    field="digest",
                )
        elif digest is not None:
            raw_digest = bytes.fromhex(digest_hex(digest))
        elif self._known is not None:
            raw_digest = self._known
        else:  # pragma: no cover - a sealer has a hasher or a known digest
            raise InvalidInputError("The blob's digest is unknown.", field="digest")
        nonce = _chunk_nonce(self._prefix, _TRAILER_COUNTER)
        tag = self._cipher.encrypt(nonce, b"", _trailer_aad(self._context, raw_digest, self._size))
        self._digest = DIGEST_PREFIX + raw_digest.hex()
        return tag

    def _seal_chunk(self, index: int, plain: BytesLike, *, final: bool) -> bytes:
        nonce, aad = self._next_chunk(index, plain, len(plain), final=final)
        return self._cipher.encrypt(nonce, plain, aad)

    def _next_chunk(
        self, index: int, plain: BytesLike, size: int, *, final: bool
    ) -> tuple[bytes, bytes]:
        """Check the chunk limit, hash and count ``plain``; return chunk ``index``'s nonce
        and associated data (the one path of :meth:`seal` and :meth:`seal_into`)."""
        if index >= _MAX_CHUNKS:
            raise InvalidInputError(
                f"A blob may hold at most {_MAX_CHUNKS} chunks of {self._chunk_size} bytes; "
                "use a larger chunk size.",
                field="chunks",
            )
        if self._hasher is not None:
            self._hasher.update(plain)
        self._size += size
        return _chunk_nonce(self._prefix, index), _chunk_aad(self._context, index, final=final)


def open_blob(
    read: Callable[[int], bytes],
    *,
    key_for: Callable[[str], bytes],
    scope: str,
    digest: str,
) -> Iterator[bytes]:
    """Decrypt and verify a blob file, yielding its plaintext chunk by chunk.

    Args:
        read: The blob file's ``read`` method.
        key_for: Returns the scope's data key for a key id (raises if it has none).
        scope: The scope the blob is read from (bound as associated data).
        digest: The digest the caller asked for; the content must hash to it.

    Yields:
        Plaintext chunks; the final one only after the whole blob verified.

    Raises:
        IntegrityError: If any chunk, the trailer or the digest does not verify.
    """
    header = Header.read_from(read, digest=digest, scope=scope)
    cipher = AESGCM(key_for(header.key_id))
    context = _context(header.encode(), scope)
    ct_size = header.chunk_size + TAG_SIZE
    hasher = hashlib.sha256()
    buffer = bytearray()
    index = 0
    size = 0
    at_eof = False
    while True:
        # Keep one byte more than "a full chunk + trailer" to know whether this chunk is final.
        while not at_eof and len(buffer) <= ct_size + TAG_SIZE:
            piece = read(ct_size + TAG_SIZE + 1 - len(buffer))
            at_eof = not piece
            buffer += piece
        final = len(buffer) <= ct_size + TAG_SIZE
        if final and len(buffer) < 2 * TAG_SIZE:
            raise _corrupt(digest, scope, "the file is cut short")
        if index >= _MAX_CHUNKS:
            raise _corrupt(digest, scope, "the file holds more chunks than the format allows")
        end = len(buffer) - TAG_SIZE if final else ct_size
        try:
            with memoryview(buffer) as view, view[:end] as sealed:
                plain = cipher.decrypt(
                    _chunk_nonce(header.nonce_prefix, index),
                    sealed,
                    _chunk_aad(context, index, final=final),
                )
        except InvalidTag:
            raise _corrupt(digest, scope, f"chunk {index} does not authenticate") from None
        hasher.update(plain)
        size += len(plain)
        if not final:
            del buffer[:ct_size]
            index += 1
            yield plain
            continue
        raw_digest = hasher.digest()
        if raw_digest.hex() != digest_hex(digest):
            raise _corrupt(digest, scope, "its content hashes to a different digest")
        try:
            cipher.decrypt(
                _chunk_nonce(header.nonce_prefix, _TRAILER_COUNTER),
                bytes(buffer[-TAG_SIZE:]),
                _trailer_aad(context, raw_digest, size),
            )
        except InvalidTag:
            raise _corrupt(digest, scope, "the trailer does not authenticate") from None
        if plain:
            yield plain
        return
