"""The content-addressed, envelope-encrypted blob store.

Layout under the root URL::

    <root>/<scope>/<hex[:2]>/<hex[2:4]>/<hex>   one blob (encrypted; format in _crypto.py)
    <root>/_tmp/<random>.tmp                     writes in progress (or left by a crash)
    <root>/_keys/<scope>/<key_id>                wrapped data keys (format in _keyring.py)

A digest is ``sha256:<hex>`` of the plaintext, so identical content is stored once per
scope. Scopes and digests are validated against strict patterns before they become paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from keel.blobs._crypto import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    TAG_SIZE,
    BlobSealer,
    BytesLike,
    Header,
    open_blob,
)
from keel.blobs._keyring import DataKey, Keyring
from keel.blobs._names import DIGEST_PREFIX, digest_hex, validate_digest, validate_scope
from keel.blobs._storage import HeldWrites, StorageRoot, durable_batch, held_batch
from keel.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)

__all__ = ["BlobInfo", "BlobStore", "BlobUpload"]

_HEX2 = re.compile(r"[0-9a-f]{2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DEFAULT_TEMP_AGE = 24 * 3600.0


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob.

    Attributes:
        digest: ``sha256:`` and the 64 hex digits of the plaintext's SHA-256.
        size: The plaintext size in bytes.
    """

    digest: str
    size: int


def _normalise_url(url: str) -> str:
    if "://" not in url:
        url = "file://" + os.path.abspath(url)
    return url.rstrip("/")


class BlobStore:
    """Content-addressed blobs over fsspec, encrypted at rest with a data key per scope.

    Args:
        url: fsspec URL of the root, e.g. ``file:///srv/keel/blobs`` or
            ``s3://bucket/prefix``. Nothing is touched until the first call.
        keyring: The data keys, kept under the same root (``Keyring(master, url=url)``).
        chunk_size: Plaintext bytes per encrypted chunk (default 1 MiB); memory use of
            every operation is a few chunks.

    Raises:
        ConfigurationError: If ``keyring`` keeps its keys under another root.
        InvalidInputError: If ``chunk_size`` is not between 1 byte and 64 MiB.
    """

    def __init__(self, url: str, *, keyring: Keyring, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if _normalise_url(keyring.url) != _normalise_url(url):
            raise ConfigurationError(
                f"The keyring keeps its keys under {keyring.url!r}, but the blob store is at "
                f"{url!r}. Build both from the same URL: Keyring(master, url=url).",
                url=url,
            )
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise InvalidInputError("chunk_size must be an int.", field="chunk_size")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInputError(
                f"chunk_size is {chunk_size}; use 1 to {MAX_CHUNK_SIZE} bytes (default "
                f"{DEFAULT_CHUNK_SIZE}).",
                field="chunk_size",
            )
        self._root = StorageRoot(url)
        self._keyring = keyring
        self._chunk_size = chunk_size

    @property
    def url(self) -> str:
        """The root URL."""
        return self._root.url

    @property
    def chunk_size(self) -> int:
        """Plaintext bytes per encrypted chunk (the piece size :meth:`begin` takes)."""
        return self._chunk_size

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # -- writes -----------------------------------------------------------------------------

    def put_bytes(
        self,
        data: BytesLike,
        *,
        scope: str,
        dedicated_key: bool = False,
        digest: str | None = None,
    ) -> BlobInfo:
        """Store ``data`` and return its digest; content already stored is not written again.

        With ``dedicated_key`` a new blob is sealed under a data key of its own, so that
        :meth:`shred` can later crypto-shred it alone (dataset parts use this).

        ``digest`` is for a caller that has just hashed these very bytes (to journal or
        deduplicate them): the blob is then sealed in one pass, without hashing it again.
        It is trusted as given; a wrong one is never read back as content (every read
        recomputes SHA-256 and refuses the blob), so pass only a digest computed from ``data``.

        Raises:
            InvalidInputError: If ``scope`` or ``digest`` is malformed or ``data`` is not
                bytes-like.
            ConflictError: If ``scope`` was erased.
        """
        scope = validate_scope(scope)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"put_bytes takes bytes, got {type(data).__name__}; encode text first.",
                field="data",
            )
        key = self._keyring.get_or_create(scope)
        trusted = digest is not None
        if digest is None:
            digest = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        else:
            digest = validate_digest(digest)
        size = memoryview(data).nbytes
        if self._root.exists(self._blob_path(scope, digest)):
            return BlobInfo(digest, size)
        if dedicated_key:
            key = self._keyring.create_key(scope)
        if trusted:
            return self._write(
                scope, key, [data], expected=None, known=digest, own_key=dedicated_key
            )
        return self._write(scope, key, [data], expected=digest, own_key=dedicated_key)

    def put_many(
        self,
        items: Iterable[tuple[str, BytesLike]],
        *,
        scope: str,
        dedicated_key: bool = False,
    ) -> int:
        """Store many ``(digest, data)`` pairs whose digests the caller computed; return how
        many were new.

        Each blob is sealed in one pass (see ``digest`` in :meth:`put_bytes`), and on a local
        disk the new blobs (and their dedicated keys) are made durable together: written
        without an fsync each, then fsynced, renamed and their folders fsynced at the end
        (``durable_batch``). None of them is visible under its final name before all of them
        are durable; if one fails, none of the pending ones is published.

        Raises:
            InvalidInputError: If ``scope`` or a digest is malformed, or data is not bytes.
            ConflictError: If ``scope`` was erased.
        """
        scope = validate_scope(scope)
        shared = self._keyring.get_or_create(scope)  # durable before the batch starts
        written = 0
        seen: set[str] = set()
        with durable_batch():
            for digest, data in items:
                digest = validate_digest(digest)
                if not isinstance(data, bytes | bytearray | memoryview):
                    raise InvalidInputError(
                        f"put_many takes bytes, got {type(data).__name__}; encode text first.",
                        field="data",
                    )
                if digest in seen or self._root.exists(self._blob_path(scope, digest)):
                    continue
                seen.add(digest)
                key = self._keyring.create_key(scope) if dedicated_key else shared
                self._write(scope, key, [data], expected=None, known=digest, own_key=dedicated_key)
                written += 1
        return written

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """A block whose new blobs (and keys) are made durable and published together at its
        end, in this thread (see ``put_many``); if the block raises, none is published."""
        return durable_batch()

    def held_batch(self) -> contextlib.AbstractContextManager[HeldWrites]:
        """Like :meth:`batch`, but at the end of the block the new blobs (and keys) are
        handed back unpublished, as :class:`HeldWrites`: call its ``publish()`` — from any
        thread, while this one writes the next batch — or ``discard()``. On a local disk
        nothing of the block is visible under a final name before ``publish()`` returns."""
        return held_batch()

    @property
    def defers_publication(self) -> bool:
        """Whether the blobs of a :meth:`held_batch` stay unpublished until its ``publish()``
        (a local disk); elsewhere (S3, GCS, memory) a blob is published once written."""
        return self._root.is_local

    def begin(self, *, scope: str, dedicated_key: bool = False) -> BlobUpload:
        """Start a blob written chunk by chunk by a caller that hashes the plaintext itself.

        For a reader that streams a file through reused buffers: each chunk is encrypted
        and written as it arrives (:meth:`BlobUpload.write`), and :meth:`BlobUpload.finish`
        takes the digest the caller computed from those very chunks (trusted, as for
        ``put_bytes(digest=)``: a wrong one is never read back as content). Inside a
        :func:`durable_batch` the blob is published with the batch.

        Raises:
            InvalidInputError: If ``scope`` is malformed.
            ConflictError: If ``scope`` was erased.
        """
        scope = validate_scope(scope)
        key = self._keyring.get_or_create(scope)
        if dedicated_key:
            key = self._keyring.create_key(scope)
        return BlobUpload(self, scope, key, dedicated=dedicated_key)

    def put_file(self, path: str | os.PathLike[str], *, scope: str) -> BlobInfo:
        """Store the content of a local file, streaming; skips the write if already stored.

        Raises:
            NotFoundError: If there is no file at ``path``.
            ConflictError: If the file changed while it was being stored, or ``scope`` was
                erased.
        """
        scope = validate_scope(scope)
        source = os.fspath(path)
        try:
            with open(source, "rb") as handle:
                digest = DIGEST_PREFIX + hashlib.file_digest(handle, "sha256").hexdigest()
                size = handle.tell()
            key = self._keyring.get_or_create(scope)
            if self._root.exists(self._blob_path(scope, digest)):
                return BlobInfo(digest, size)
            with open(source, "rb") as handle:
                return self._write(
                    scope, key, iter(partial(handle.read, self._chunk_size), b""), expected=digest
                )
        except FileNotFoundError:
            raise NotFoundError(f"Cannot store {source!r}: no such file.", path=source) from None
        except IsADirectoryError:
            raise InvalidInputError(
                f"Cannot store {source!r}: it is a folder; store its files one by one.",
                path=source,
            ) from None

    def put_stream(self, chunks: BinaryIO | Iterable[BytesLike], *, scope: str) -> BlobInfo:
        """Store a binary file object or an iterable of bytes whose digest is not known yet.

        The content is encrypted into a temporary object as it arrives; if its digest turns
        out to be stored already, the temporary is dropped.

        Raises:
            InvalidInputError: If the stream yields something other than bytes.
            ConflictError: If ``scope`` was erased.
        """
        scope = validate_scope(scope)
        pieces: Iterable[BytesLike]
        read = getattr(chunks, "read", None)
        if callable(read):
            pieces = iter(partial(read, self._chunk_size), b"")
        elif isinstance(chunks, bytes | bytearray | memoryview | str):
            raise InvalidInputError(
                "put_stream takes a binary file or an iterable of bytes chunks; for a single "
                "bytes value use put_bytes.",
                field="chunks",
            )
        else:
            pieces = chunks
        key = self._keyring.get_or_create(scope)
        return self._write(scope, key, pieces, expected=None)

    def _write(
        self,
        scope: str,
        key: DataKey,
        pieces: Iterable[BytesLike],
        *,
        expected: str | None,
        known: str | None = None,
        own_key: bool = False,
    ) -> BlobInfo:
        sealer = BlobSealer(
            key.material,
            key_id=key.key_id,
            scope=scope,
            chunk_size=self._chunk_size,
            digest=known,
        )
        temp = self._root.write_temp(sealer.seal(pieces))
        if expected is not None and sealer.digest != expected:
            self._root.discard(temp)
            raise ConflictError(
                f"The content changed while it was being stored (hashed as {expected}, then "
                f"read as {sealer.digest}); nothing was stored. Store it again once it is "
                "no longer being modified.",
                scope=scope,
            )
        companion = self._keyring.own_key_path(scope, key.key_id) if own_key else None
        created = self._root.commit(temp, self._blob_path(scope, sealer.digest), key=companion)
        if own_key and not created:  # stored meanwhile by another writer: key not needed
            self._keyring.forget_key(scope, key.key_id)
        return BlobInfo(sealer.digest, sealer.size)

    # -- reads ------------------------------------------------------------------------------

    def open(self, digest: str, *, scope: str) -> Iterator[bytes]:
        """Stream a blob's plaintext, chunk by chunk, verifying it on the way.

        Every chunk is authenticated before it is yielded and the last one only after the
        digest verified, so reaching the end without an error proves the content.

        Raises:
            InvalidInputError: If ``digest`` or ``scope`` is malformed (before any I/O).
            NotFoundError: If the blob does not exist, or its scope was erased.
            IntegrityError: While iterating, if the blob is corrupt or was tampered with.
        """
        scope = validate_scope(scope)
        digest = validate_digest(digest)
        path = self._blob_path(scope, digest)
        if not self._root.exists(path):
            raise self._missing(digest, scope)
        return self._read(path, digest=digest, scope=scope)

    def _read(self, path: str, *, digest: str, scope: str) -> Iterator[bytes]:
        try:
            handle = self._root.open_read(path)
        except FileNotFoundError:
            raise self._missing(digest, scope) from None
        with handle:
            yield from open_blob(
                handle.read,
                key_for=partial(self._key_for, scope=scope, digest=digest),
                scope=scope,
                digest=digest,
            )

    def get_bytes(self, digest: str, *, scope: str) -> bytes:
        """Return a blob's verified plaintext.

        Raises:
            InvalidInputError: If ``digest`` or ``scope`` is malformed (before any I/O).
            NotFoundError: If the blob does not exist, or its scope was erased.
            IntegrityError: If the blob is corrupt or was tampered with.
        """
        return b"".join(self.open(digest, scope=scope))

    def exists(self, digest: str, *, scope: str) -> bool:
        """Return whether a blob is stored (without reading or verifying it)."""
        scope = validate_scope(scope)
        digest = validate_digest(digest)
        return self._root.exists(self._blob_path(scope, digest))

    def iter_digests(self, *, scope: str) -> Iterator[str]:
        """Yield the digests stored in ``scope``, in sorted order, listing one folder at a time."""
        scope = validate_scope(scope)
        return self._iter_digests(self._root.path(scope))

    def _iter_digests(self, base: str) -> Iterator[str]:
        for first in self._root.list_names(base):
            if not _HEX2.fullmatch(first):
                continue
            for second in self._root.list_names(f"{base}/{first}"):
                if not _HEX2.fullmatch(second):
                    continue
                for name in self._root.list_names(f"{base}/{first}/{second}"):
                    if _HEX64.fullmatch(name) and name[:2] == first and name[2:4] == second:
                        yield DIGEST_PREFIX + name

    # -- deletion ---------------------------------------------------------------------------

    def delete(self, digest: str, *, scope: str) -> bool:
        """Delete a blob (and its dedicated data key, if it has one); return whether it
        existed."""
        scope = validate_scope(scope)
        digest = validate_digest(digest)
        path = self._blob_path(scope, digest)
        key_id = None
        try:
            with self._root.open_read(path) as handle:
                key_id = Header.read_from(handle.read, digest=digest, scope=scope).key_id
        except (OSError, IntegrityError):  # absent or unreadable: no key to tell about
            pass
        removed = self._root.remove(path)
        if removed and key_id is not None:
            self._keyring.forget_key(scope, key_id)  # a dedicated key serves no other blob
        return removed

    def shred(self, digest: str, *, scope: str) -> str:
        """Erase one blob: destroy its dedicated data key, then delete the file.

        Returns ``"shredded"`` (its own key was destroyed, so no copy can be decrypted),
        ``"deleted"`` (it was sealed under the scope's shared key, which other blobs still
        need: the file is deleted, copies elsewhere stay readable until the scope is
        destroyed) or ``"absent"`` (nothing to erase). Later reads raise NotFoundError with
        ``details["erased"]``. Idempotent.
        """
        scope = validate_scope(scope)
        digest = validate_digest(digest)
        path = self._blob_path(scope, digest)
        if not self._root.exists(path):
            return "absent"
        try:
            with self._root.open_read(path) as handle:
                key_id = Header.read_from(handle.read, digest=digest, scope=scope).key_id
        except FileNotFoundError:
            return "absent"
        if self._keyring.is_key_destroyed(scope, key_id):
            outcome = "shredded"  # a shred interrupted after the key went: finish it
        elif self._keyring.is_dedicated(scope, key_id):
            self._keyring.destroy_key(scope, key_id, digest=digest)
            outcome = "shredded"
        else:
            self._keyring.mark_blob_erased(scope, digest)
            outcome = "deleted"
        self._root.remove(path)
        return outcome

    def destroy_scope(self, scope: str) -> None:
        """Crypto-shred ``scope``: destroy its data keys first, then delete its blobs.

        Once the keys are gone no copy of the blobs can be decrypted, even one that survives
        the deletion. The scope cannot store new data afterwards. Idempotent.
        """
        scope = validate_scope(scope)
        self._keyring.destroy(scope)
        self._root.remove_tree(self._root.path(scope))

    def gc_temporaries(self, older_than_seconds: float = _DEFAULT_TEMP_AGE) -> int:
        """Remove temporary files left by interrupted writes; return how many were removed.

        Args:
            older_than_seconds: Only files not modified for this long are removed, so writes
                in progress are kept (default one day).
        """
        if older_than_seconds < 0:
            raise InvalidInputError(
                f"older_than_seconds is {older_than_seconds}; use 0 or more.",
                field="older_than_seconds",
            )
        return self._root.remove_stale_temporaries(older_than_seconds)

    def gc_orphan_keys(self, *, scope: str, older_than_seconds: float = _DEFAULT_TEMP_AGE) -> int:
        """Remove the dedicated data keys of ``scope`` that no stored blob names; return how
        many were removed.

        Such a key is left when a write was killed after the key was published and before its
        blob was. Only keys older than ``older_than_seconds`` are candidates (a write in
        progress publishes its key first; default one day). Finding them reads the header of
        every blob of the scope; if one cannot be read, nothing is removed.
        """
        scope = validate_scope(scope)
        if older_than_seconds < 0:
            raise InvalidInputError(
                f"older_than_seconds is {older_than_seconds}; use 0 or more.",
                field="older_than_seconds",
            )
        candidates = self._keyring.stale_own_keys(scope, older_than_seconds)
        if not candidates:
            return 0
        used: set[str] = set()
        for digest in self.iter_digests(scope=scope):
            try:
                with self._root.open_read(self._blob_path(scope, digest)) as handle:
                    used.add(Header.read_from(handle.read, digest=digest, scope=scope).key_id)
            except FileNotFoundError:  # deleted meanwhile, with its key
                continue
            except IntegrityError:  # its key cannot be told: keep every key
                return 0
        removed = 0
        for key_id in candidates:
            if key_id not in used:
                self._keyring.forget_key(scope, key_id)
                removed += 1
        return removed

    # -- helpers ----------------------------------------------------------------------------

    def _blob_path(self, scope: str, digest: str) -> str:
        hexdigest = digest_hex(digest)
        return self._root.path(scope, hexdigest[:2], hexdigest[2:4], hexdigest)

    def _key_for(self, key_id: str, *, scope: str, digest: str) -> bytes:
        try:
            return self._keyring.get(scope, key_id).material
        except NotFoundError as exc:
            if exc.details.get("erased"):
                raise NotFoundError(
                    f"Blob {digest} in scope '{scope}' was erased (crypto-shredded): its data "
                    "key was destroyed, so it can never be read again.",
                    digest=digest,
                    scope=scope,
                    erased=True,
                ) from None
            raise IntegrityError(
                f"Blob {digest} in scope '{scope}' is corrupt or was tampered with: it names "
                f"data key {key_id}, which scope '{scope}' does not have (was the file copied "
                "from another scope or store?).",
                digest=digest,
                scope=scope,
            ) from None

    def _missing(self, digest: str, scope: str) -> NotFoundError:
        if self._keyring.is_blob_erased(scope, digest):
            return NotFoundError(
                f"Blob {digest} in scope '{scope}' was erased (crypto-shredded) by a data "
                "subject's erasure, retention or the scope's deletion; it cannot be recovered.",
                digest=digest,
                scope=scope,
                erased=True,
            )
        return NotFoundError(
            f"No blob {digest} in scope '{scope}' of the blob store at {self.url!r}. Check the "
            "digest and the scope, or store the content first.",
            digest=digest,
            scope=scope,
        )


class BlobUpload:
    """One blob being written chunk by chunk (see :meth:`BlobStore.begin`).

    Every chunk but the last holds exactly ``chunk_size`` bytes. End with :meth:`finish`
    (publish) or :meth:`abort` (drop the file and its dedicated key).
    """

    def __init__(self, store: BlobStore, scope: str, key: DataKey, *, dedicated: bool) -> None:
        self._store = store
        self._scope = scope
        self._key_id = key.key_id
        self._dedicated = dedicated
        self._sealer = BlobSealer(
            key.material,
            key_id=key.key_id,
            scope=scope,
            chunk_size=store.chunk_size,
            hashing=False,
        )
        try:
            self._temp = store._root.open_temp()
            self._temp.write(self._sealer.header)
        except BaseException:
            self._drop_key()
            raise
        self._done = False

    def write(self, chunk: BytesLike, *, final: bool, out: bytearray | None = None) -> None:
        """Encrypt and write the next chunk; ``out`` is a reusable scratch buffer of at least
        ``chunk_size + 16`` bytes (one is allocated when it is not given)."""
        if out is None:
            out = bytearray(memoryview(chunk).nbytes + TAG_SIZE)
        try:
            written = self._sealer.seal_into(chunk, out, final=final)
            with memoryview(out) as view, view[:written] as sealed:
                self._temp.write(sealed)
        except BaseException:
            self.abort()
            raise

    def finish(self, digest: str) -> bool:
        """Write the trailer and publish the blob under ``digest``; return whether it is new
        (if the store has it already, this copy is dropped).

        Raises:
            InvalidInputError: If ``digest`` is malformed or the final chunk was not written.
        """
        root = self._store._root
        try:
            digest = validate_digest(digest)
            trailer = self._sealer.trailer(digest)
            final = self._store._blob_path(self._scope, digest)
            if root.exists(final):  # checked before close(): a batch never hears of this copy
                self.abort()
                return False
            self._temp.write(trailer)
            temp = self._temp.close()
        except BaseException:
            self.abort()
            raise
        self._done = True
        companion = (
            self._store._keyring.own_key_path(self._scope, self._key_id)
            if self._dedicated
            else None
        )
        try:
            created = root.commit(temp, final, key=companion)
        except BaseException:
            root.discard(temp)
            self._drop_key()
            raise
        if not created:  # stored meanwhile by another writer
            self._drop_key()
        return created

    def abort(self) -> None:
        """Drop the partly written blob (and its dedicated key). Idempotent."""
        if self._done:
            return
        self._done = True
        self._temp.abort()
        self._drop_key()

    def _drop_key(self) -> None:
        if self._dedicated:
            self._store._keyring.forget_key(self._scope, self._key_id)
