"""Master key providers: the port that wraps data keys, and its local-file and environment adapters.

A provider never hands out its master key; it only wraps and unwraps data keys, so a remote
key service (HashiCorp Vault transit, a cloud KMS) fits the same port. The two built-in
adapters hold a 32-byte AES-256-GCM key, written as base64 text::

    wrapped = nonce (12 bytes, random) || AES-256-GCM(master key, nonce, data key, aad=context)

Key bytes never appear in a repr, a log line or an error message; a provider is identified by
its ``fingerprint``, a truncated HMAC of a fixed label under the key, so the same key has the
same fingerprint whether it comes from a file or from the environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import threading
import uuid
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keel.blobs._storage import fsync_dir
from keel.errors import AlreadyExistsError, ConfigurationError, IntegrityError

__all__ = ["EnvMasterKey", "LocalKeyFile", "MasterKeyProvider"]

KEY_SIZE = 32
_NONCE_SIZE = 12
_WRAPPED_SIZE = _NONCE_SIZE + KEY_SIZE + 16
_FINGERPRINT_LABEL = b"keel master key fingerprint v1"
_MAX_KEY_FILE = 1024
_HOW_TO_CREATE = (
    "Create a key with `keel init` (it writes <KEEL_HOME>/master.key with mode 0600), or "
    'generate a value for KEEL_MASTER_KEY with: python -c "import base64, os; '
    'print(base64.b64encode(os.urandom(32)).decode())"'
)


class MasterKeyProvider(Protocol):
    """The port to a master key: wraps and unwraps data keys, never reveals the master key."""

    @property
    def fingerprint(self) -> str:
        """A stable, non-secret id of the master key, stored beside every wrapped data key."""
        ...

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes:
        """Encrypt and authenticate ``data_key``, binding ``context`` as associated data."""
        ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Return the data key inside ``wrapped``.

        Raises:
            IntegrityError: If ``wrapped`` does not authenticate with this key and ``context``.
        """
        ...


class _AesGcmMaster:
    """A master key held in memory: AES-256-GCM with a random 96-bit nonce per wrap."""

    __slots__ = ("_cipher", "fingerprint")

    def __init__(self, key: bytes) -> None:
        self._cipher = AESGCM(key)
        tag = hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
        self.fingerprint = f"aes256:{tag[:16]}"

    def __repr__(self) -> str:
        return f"_AesGcmMaster(fingerprint={self.fingerprint!r})"

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + self._cipher.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        if len(wrapped) != _WRAPPED_SIZE:
            raise IntegrityError(
                f"A wrapped data key has {len(wrapped)} bytes instead of {_WRAPPED_SIZE}: it "
                "is corrupt or was tampered with.",
                fingerprint=self.fingerprint,
            )
        try:
            return self._cipher.decrypt(wrapped[:_NONCE_SIZE], wrapped[_NONCE_SIZE:], context)
        except InvalidTag:
            raise IntegrityError(
                f"A wrapped data key does not authenticate under master key {self.fingerprint}: "
                "it is corrupt, was tampered with, or was moved from another scope.",
                fingerprint=self.fingerprint,
            ) from None


def _decode_key(text: str | bytes, *, source: str) -> bytes:
    """Decode a base64 master key; the message never shows the value."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"{source} is not valid base64. {_HOW_TO_CREATE}", source=source
        ) from None
    if len(raw) != KEY_SIZE:
        raise ConfigurationError(
            f"{source} decodes to {len(raw)} bytes, but a master key is {KEY_SIZE} bytes "
            f"(AES-256). {_HOW_TO_CREATE}",
            source=source,
        )
    return raw


class LocalKeyFile:
    """A master key in a local file (base64 text, mode 0600), read on first use.

    Args:
        path: The key file, usually ``<KEEL_HOME>/master.key``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._master: _AesGcmMaster | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> LocalKeyFile:
        """Write a new random master key to ``path`` (mode 0600, atomically) and return it.

        Raises:
            AlreadyExistsError: If a file already exists at ``path``; it is never overwritten.
        """
        target = Path(path)
        if target.exists() or target.is_symlink():
            raise _key_exists(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.fchmod(descriptor, 0o600)
                os.write(descriptor, base64.b64encode(os.urandom(KEY_SIZE)) + b"\n")
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            try:
                os.link(temp, target)  # atomic, and fails instead of replacing a key
            except FileExistsError:
                raise _key_exists(target) from None
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(str(target.parent))
        return cls(target)

    @property
    def path(self) -> Path:
        """The key file."""
        return self._path

    @property
    def fingerprint(self) -> str:
        """The master key's non-secret fingerprint (reads the file on first use)."""
        return self._load().fingerprint

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes:
        """Wrap ``data_key`` under the master key, binding ``context``."""
        return self._load().wrap(data_key, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Unwrap a data key wrapped by :meth:`wrap` with the same ``context``."""
        return self._load().unwrap(wrapped, context=context)

    def __repr__(self) -> str:
        return f"LocalKeyFile({str(self._path)!r})"

    def _load(self) -> _AesGcmMaster:
        with self._lock:
            if self._master is None:
                self._master = _AesGcmMaster(self._read())
            return self._master

    def _read(self) -> bytes:
        path = self._path
        try:
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise ConfigurationError(
                f"The master key file {path} does not exist. {_HOW_TO_CREATE}. Or point "
                "KEEL_MASTER_KEY_FILE at the key this store was created with.",
                path=str(path),
            ) from None
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the master key file {path}: {exc.strerror}. Make it readable "
                "by the user running Keel (and by no one else: chmod 600).",
                path=str(path),
            ) from None
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigurationError(
                    f"The master key path {path} is not a regular file. {_HOW_TO_CREATE}",
                    path=str(path),
                )
            if os.name == "posix" and info.st_mode & 0o077:
                raise ConfigurationError(
                    f"The master key file {path} is accessible to group or others (mode "
                    f"{stat.S_IMODE(info.st_mode):04o}). Restrict it to its owner with: "
                    f"chmod 600 {path}",
                    path=str(path),
                )
            data = os.read(descriptor, _MAX_KEY_FILE + 1)
        finally:
            os.close(descriptor)
        if len(data) > _MAX_KEY_FILE:
            raise ConfigurationError(
                f"The master key file {path} is too large to be a key. {_HOW_TO_CREATE}",
                path=str(path),
            )
        return _decode_key(data, source=f"The master key file {path}")


def _key_exists(path: Path) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"A master key already exists at {path}; Keel never overwrites one, since every "
        "blob encrypted under it would become unreadable. Keep using it, or move it away "
        "first if you really mean to start a new store.",
        path=str(path),
    )


class EnvMasterKey:
    """A master key given as a base64 value (the composition root reads ``KEEL_MASTER_KEY``).

    Args:
        value: The base64 text of a 32-byte key.

    Raises:
        ConfigurationError: If ``value`` is not base64 of exactly 32 bytes.
    """

    def __init__(self, value: str) -> None:
        source = "The master key from the environment (KEEL_MASTER_KEY)"
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{source} is empty. {_HOW_TO_CREATE}", source=source)
        self._master = _AesGcmMaster(_decode_key(value, source=source))

    @property
    def fingerprint(self) -> str:
        """The master key's non-secret fingerprint."""
        return self._master.fingerprint

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes:
        """Wrap ``data_key`` under the master key, binding ``context``."""
        return self._master.wrap(data_key, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Unwrap a data key wrapped by :meth:`wrap` with the same ``context``."""
        return self._master.unwrap(wrapped, context=context)

    def __repr__(self) -> str:
        return f"EnvMasterKey(fingerprint={self.fingerprint!r})"
