"""Data keys per scope, wrapped by the master key and stored beside the blobs.

Layout under the blob store root::

    _keys/<scope>/<key_id>            the scope's shared data key(s) (format below)
    _keys/<scope>/erased              tombstone written by destroy(): the scope was shredded
    _keys/<scope>/own/<key_id>        a dedicated key: it encrypts one blob only, so that blob
                                      can be crypto-shredded alone (create_key/destroy_key)
    _keys/<scope>/shredded/<key_id>   tombstone of a destroyed dedicated key
    _keys/<scope>/shredded/<hex>      tombstone of a shredded blob (by its digest's hex)

A wrapped data key file (format version 1)::

    b"KEEL-KEY" (8) | version 1 (1) | fingerprint length (1) | master key fingerprint (ASCII)
    | wrapped length (2, big-endian) | wrapped data key (provider-specific)

The wrap binds ``b"keel-data-key/1" || scope || key_id`` as associated data, so a key file
copied to another scope or renamed to another id does not unwrap. Unwrapped keys are cached
in memory per :class:`Keyring`.

Crypto-shredding removes the key files; copies that outlive them (bucket versioning,
snapshots, backups of ``_keys/``) stay decryptable by the master key until it is rotated, and
another process's keyring may keep a key cached until it restarts.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from collections import OrderedDict
from typing import NoReturn

from keel.blobs._keys import KEY_SIZE, MasterKeyProvider
from keel.blobs._names import digest_hex, is_key_id, validate_digest, validate_scope
from keel.blobs._storage import StorageRoot, outside_batch
from keel.clock import now
from keel.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from keel.types import new_id

__all__ = ["DataKey", "Keyring"]

KEYS_DIR = "_keys"
ERASED_MARKER = "erased"
OWN_DIR = "own"
SHREDDED_DIR = "shredded"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAGIC = b"KEEL-KEY"
_VERSION = 1
_MAX_KEY_FILE = 4096
#: Dedicated (per-part) keys kept unwrapped in memory, and for how long (seconds).
OWN_KEY_CACHE = 1024
OWN_KEY_TTL = 300.0


class DataKey:
    """One scope's unwrapped data key. Its bytes never show in a repr and it cannot be pickled.

    Args:
        scope: The scope that owns the key.
        key_id: The key's id (written in every blob header it encrypts).
        material: The 32 key bytes.
    """

    __slots__ = ("_material", "key_id", "scope")

    def __init__(self, *, scope: str, key_id: str, material: bytes) -> None:
        self.scope = scope
        self.key_id = key_id
        self._material = material

    @property
    def material(self) -> bytes:
        """The 32 secret key bytes (hand them to a cipher, never to a log)."""
        return self._material

    def __repr__(self) -> str:
        return f"DataKey(scope={self.scope!r}, key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("A DataKey cannot be pickled: key material never leaves the process.")


def _context(scope: str, key_id: str) -> bytes:
    return b"keel-data-key/1\x00" + scope.encode("ascii") + b"\x00" + key_id.encode("ascii")


class Keyring:
    """The data keys of a blob store's scopes, wrapped by a master key.

    Args:
        master: The master key provider that wraps and unwraps data keys.
        url: The fsspec URL of the blob store root (the same URL as the :class:`BlobStore`);
            keys live under ``<url>/_keys/``. Nothing is read until first use.
    """

    def __init__(self, master: MasterKeyProvider, *, url: str) -> None:
        self._master = master
        self._root = StorageRoot(url)
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], DataKey] = {}  # shared keys: a few per scope
        # dedicated keys (one per part: millions): a bounded, expiring cache
        self._own: OrderedDict[tuple[str, str], tuple[float, DataKey]] = OrderedDict()
        self._current: dict[str, DataKey] = {}

    @property
    def url(self) -> str:
        """The blob store root this keyring keeps its keys under."""
        return self._root.url

    def __repr__(self) -> str:
        return f"Keyring(master={self._master!r}, url={self.url!r})"

    def get_or_create(self, scope: str) -> DataKey:
        """Return the scope's current data key, creating (and storing) one if it has none.

        Raises:
            InvalidInputError: If ``scope`` is malformed.
            ConflictError: If the scope was erased with :meth:`destroy`.
            ConfigurationError: If the scope's key was wrapped by another master key.
        """
        scope = validate_scope(scope)
        with self._lock:
            current = self._current.get(scope)
            if current is not None:
                return current
            if self._is_erased(scope):
                raise ConflictError(
                    f"Scope '{scope}' was erased (crypto-shredded); Keel does not store new "
                    "data under an erased scope. Use a new project or dataset id.",
                    scope=scope,
                )
            names = self._root.list_names(self._root.path(KEYS_DIR, scope))
            key_ids = [name for name in names if is_key_id(name)]
            key = self._load(scope, max(key_ids)) if key_ids else self._create(scope)
            self._current[scope] = key
            return key

    def get(self, scope: str, key_id: str) -> DataKey:
        """Return the data key ``key_id`` of ``scope``.

        Raises:
            InvalidInputError: If ``scope`` or ``key_id`` is malformed.
            NotFoundError: If the scope has no such key; ``details["erased"]`` tells whether
                the scope was crypto-shredded.
            ConfigurationError: If the key was wrapped by another master key.
            IntegrityError: If the key file is corrupt or was tampered with.
        """
        scope = validate_scope(scope)
        if not is_key_id(key_id):
            raise InvalidInputError(
                f"Invalid data key id {key_id[:40]!r}: expected 26 base32 characters.",
                field="key_id",
            )
        with self._lock:
            cached = self._keys.get((scope, key_id))
            if cached is not None:
                return cached
            own = self._own.get((scope, key_id))
            if own is not None and time.monotonic() - own[0] < OWN_KEY_TTL:
                self._own.move_to_end((scope, key_id))
                return own[1]
            return self._load(scope, key_id)

    def is_erased(self, scope: str) -> bool:
        """Return whether ``scope`` was crypto-shredded with :meth:`destroy`."""
        return self._is_erased(validate_scope(scope))

    def destroy(self, scope: str) -> None:
        """Crypto-shred ``scope``: mark it erased, delete its data keys, forget cached copies.

        Every blob encrypted under these keys becomes unreadable for good. Idempotent.
        """
        scope = validate_scope(scope)
        folder = self._root.path(KEYS_DIR, scope)
        with self._lock:
            marker = f"erased at {now().isoformat()}\n".encode()
            temp = self._root.write_temp([marker])
            self._root.commit(temp, f"{folder}/{ERASED_MARKER}")
            for name in self._root.list_names(folder):
                if name in (OWN_DIR, SHREDDED_DIR):
                    self._root.remove_tree(f"{folder}/{name}")
                elif name != ERASED_MARKER:
                    self._root.remove(f"{folder}/{name}")
            self._current.pop(scope, None)
            for cached in [pair for pair in self._keys if pair[0] == scope]:
                del self._keys[cached]
            for cached in [pair for pair in self._own if pair[0] == scope]:
                del self._own[cached]

    def create_key(self, scope: str) -> DataKey:
        """Create a dedicated data key in ``scope``, for one blob that may be shredded alone.

        The key is never the scope's current key; :meth:`get` finds it by its id.

        Raises:
            InvalidInputError: If ``scope`` is malformed.
            ConflictError: If the scope was erased with :meth:`destroy`.
        """
        scope = validate_scope(scope)
        with self._lock:
            if self._is_erased(scope):
                raise ConflictError(
                    f"Scope '{scope}' was erased (crypto-shredded); Keel does not store new "
                    "data under an erased scope. Use a new project or dataset id.",
                    scope=scope,
                )
            return self._create(scope, own=True)

    def is_dedicated(self, scope: str, key_id: str) -> bool:
        """Return whether ``key_id`` is a dedicated key of ``scope`` (see :meth:`create_key`)."""
        scope = validate_scope(scope)
        if not is_key_id(key_id):
            return False
        return self._root.exists(self._root.path(KEYS_DIR, scope, OWN_DIR, key_id))

    def destroy_key(self, scope: str, key_id: str, *, digest: str | None = None) -> None:
        """Crypto-shred one dedicated key (and record ``digest``, the blob it encrypted).

        Idempotent. The tombstones let a later read say "erased" instead of "corrupt".

        Raises:
            InvalidInputError: If ``scope``, ``key_id`` or ``digest`` is malformed.
            ConflictError: If ``key_id`` is a shared key of the scope: destroying it would
                erase every blob of the scope (use :meth:`destroy` for that).
        """
        scope = validate_scope(scope)
        if not is_key_id(key_id):
            raise InvalidInputError(
                f"Invalid data key id {key_id[:40]!r}: expected 26 base32 characters.",
                field="key_id",
            )
        if self._root.exists(self._root.path(KEYS_DIR, scope, key_id)):
            raise ConflictError(
                f"Data key {key_id} is the shared key of scope '{scope}'; destroying it would "
                "erase every blob of the scope. Only dedicated keys are destroyed one by one.",
                scope=scope,
                key_id=key_id,
            )
        with self._lock:
            self._tombstone(scope, key_id)
            if digest is not None:
                self._tombstone(scope, digest_hex(validate_digest(digest)), note=key_id)
            self._root.remove(self._root.path(KEYS_DIR, scope, OWN_DIR, key_id))
            self._keys.pop((scope, key_id), None)
            self._own.pop((scope, key_id), None)

    def forget_key(self, scope: str, key_id: str) -> None:
        """Delete the dedicated key ``key_id`` of a blob that was deleted (no tombstone: the
        blob was garbage, not erased). A shared key is left alone. Idempotent."""
        scope = validate_scope(scope)
        if not is_key_id(key_id):
            return
        with self._lock:
            path = self._root.path(KEYS_DIR, scope, OWN_DIR, key_id)
            if not self._root.withdraw(path):  # not yet published: dropped from the batch
                self._root.remove(path)
            self._own.pop((scope, key_id), None)

    def own_key_path(self, scope: str, key_id: str) -> str:
        """The storage path of the dedicated key ``key_id`` of ``scope`` (names validated)."""
        return self._root.path(KEYS_DIR, validate_scope(scope), OWN_DIR, key_id)

    def stale_own_keys(self, scope: str, older_than_seconds: float) -> list[str]:
        """The ids of the dedicated keys of ``scope`` written more than ``older_than_seconds``
        ago (for a sweep of keys whose blob was never published)."""
        folder = self._root.path(KEYS_DIR, validate_scope(scope), OWN_DIR)
        return [k for k in self._root.stale_names(folder, older_than_seconds) if is_key_id(k)]

    def is_key_destroyed(self, scope: str, key_id: str) -> bool:
        """Whether the dedicated key ``key_id`` of ``scope`` was destroyed (its tombstone)."""
        scope = validate_scope(scope)
        if not is_key_id(key_id):
            return False
        return self._root.exists(self._root.path(KEYS_DIR, scope, SHREDDED_DIR, key_id))

    def erased_blob(self, scope: str, digest: str) -> str | None:
        """How the blob ``digest`` was erased: ``"shredded"`` (its own key was destroyed),
        ``"deleted"`` (only its file), or None (no tombstone)."""
        scope = validate_scope(scope)
        hexdigest = digest_hex(validate_digest(digest))
        note = self._root.read_small(
            self._root.path(KEYS_DIR, scope, SHREDDED_DIR, hexdigest), limit=_MAX_KEY_FILE
        )
        if note is None:
            return None
        words = note.decode("utf-8", "replace").split()
        return "shredded" if words and is_key_id(words[-1]) else "deleted"

    def mark_blob_erased(self, scope: str, digest: str) -> None:
        """Record that the blob ``digest`` of ``scope`` was erased (deleted). Idempotent."""
        scope = validate_scope(scope)
        hexdigest = digest_hex(validate_digest(digest))
        with self._lock:
            self._tombstone(scope, hexdigest)

    def is_blob_erased(self, scope: str, digest: str) -> bool:
        """Return whether the blob ``digest`` of ``scope`` (or the whole scope) was erased."""
        scope = validate_scope(scope)
        hexdigest = digest_hex(validate_digest(digest))
        return self._is_erased(scope) or self._root.exists(
            self._root.path(KEYS_DIR, scope, SHREDDED_DIR, hexdigest)
        )

    def _tombstone(self, scope: str, name: str, *, note: str = "") -> None:
        if not (is_key_id(name) or _HEX64.fullmatch(name)):  # pragma: no cover - checked above
            raise InvalidInputError(f"Invalid tombstone name {name[:70]!r}.")
        marker = f"erased at {now().isoformat()} {note}".strip().encode() + b"\n"
        temp = self._root.write_temp([marker])
        self._root.commit(temp, self._root.path(KEYS_DIR, scope, SHREDDED_DIR, name))

    def _is_erased(self, scope: str) -> bool:
        return self._root.exists(self._root.path(KEYS_DIR, scope, ERASED_MARKER))

    def _create(self, scope: str, *, own: bool = False) -> DataKey:
        key_id = new_id()
        material = os.urandom(KEY_SIZE)
        fingerprint = self._master.fingerprint.encode("ascii")
        wrapped = self._master.wrap(material, context=_context(scope, key_id))
        record = (
            _MAGIC
            + struct.pack(">BB", _VERSION, len(fingerprint))
            + fingerprint
            + struct.pack(">H", len(wrapped))
            + wrapped
        )
        if own:  # published with the blob it encrypts, when they are written in a batch
            temp = self._root.write_temp([record])
            self._root.commit(temp, self._root.path(KEYS_DIR, scope, OWN_DIR, key_id))
        else:  # durable at once: blobs of this batch and of later ones depend on it
            with outside_batch():
                temp = self._root.write_temp([record])
                self._root.commit(temp, self._root.path(KEYS_DIR, scope, key_id))
        key = DataKey(scope=scope, key_id=key_id, material=material)
        if not own:  # a dedicated key encrypts one blob, once: not kept
            self._keys[(scope, key_id)] = key
        return key

    def _load(self, scope: str, key_id: str) -> DataKey:
        path = self._root.path(KEYS_DIR, scope, key_id)
        record = self._root.read_small(path, limit=_MAX_KEY_FILE)
        own = record is None
        if record is None:
            path = self._root.path(KEYS_DIR, scope, OWN_DIR, key_id)
            record = self._root.read_small(path, limit=_MAX_KEY_FILE)
        if record is None:
            shredded = self._root.exists(self._root.path(KEYS_DIR, scope, SHREDDED_DIR, key_id))
            if shredded or self._is_erased(scope):
                raise NotFoundError(
                    f"The data key {key_id} of scope '{scope}' was destroyed: the data "
                    "it encrypted was erased (crypto-shredded) and cannot be recovered.",
                    scope=scope,
                    key_id=key_id,
                    erased=True,
                )
            raise NotFoundError(
                f"Scope '{scope}' has no data key {key_id} in the blob store at {self.url!r}: "
                "the key was deleted outside Keel, or the data was copied from another scope "
                "or store. Data encrypted under it cannot be read.",
                scope=scope,
                key_id=key_id,
                erased=False,
            )
        fingerprint, wrapped = _parse(record, path=path)
        if fingerprint != self._master.fingerprint:
            raise ConfigurationError(
                f"The data key {key_id} of scope '{scope}' was wrapped by master key "
                f"{fingerprint}, but the configured master key is {self._master.fingerprint}. "
                "Configure the master key this blob store was created with (the master key "
                "file or KEEL_MASTER_KEY); no other key can decrypt its data.",
                scope=scope,
                key_id=key_id,
            )
        try:
            material = self._master.unwrap(wrapped, context=_context(scope, key_id))
        except IntegrityError as exc:
            raise _corrupt_key(path, str(exc)) from None
        if len(material) != KEY_SIZE:
            raise _corrupt_key(path, f"it unwraps to {len(material)} bytes, not {KEY_SIZE}")
        key = DataKey(scope=scope, key_id=key_id, material=material)
        if own:
            self._own[(scope, key_id)] = (time.monotonic(), key)
            self._own.move_to_end((scope, key_id))
            while len(self._own) > OWN_KEY_CACHE:
                self._own.popitem(last=False)
        else:
            self._keys[(scope, key_id)] = key
        return key


def _parse(record: bytes, *, path: str) -> tuple[str, bytes]:
    """Split a key file into (master key fingerprint, wrapped key)."""
    head = len(_MAGIC) + 2
    if len(record) < head or record[: len(_MAGIC)] != _MAGIC:
        raise _corrupt_key(path, "it does not start with the KEEL-KEY magic")
    version, fp_len = struct.unpack(">BB", record[len(_MAGIC) : head])
    if version != _VERSION:
        raise _corrupt_key(path, f"it has format version {version}; this Keel reads {_VERSION}")
    if len(record) < head + fp_len + 2:
        raise _corrupt_key(path, "it is cut short")
    try:
        fingerprint = record[head : head + fp_len].decode("ascii")
    except UnicodeDecodeError:
        raise _corrupt_key(path, "its master key fingerprint is not ASCII") from None
    (wrapped_len,) = struct.unpack(">H", record[head + fp_len : head + fp_len + 2])
    wrapped = record[head + fp_len + 2 :]
    if len(wrapped) != wrapped_len:
        raise _corrupt_key(path, "its wrapped key has the wrong length")
    return fingerprint, wrapped


def _corrupt_key(path: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"The data key file {path!r} is corrupt or was tampered with: {what}. The blobs "
        "encrypted under it cannot be read; restore _keys/ from a backup.",
        path=path,
    )
