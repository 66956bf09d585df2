"""Fixtures for the blob store tests: master keys and stores on a local folder or fsspec memory."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.blobs import BlobStore, EnvMasterKey, Keyring, MasterKeyProvider

StoreFactory = Callable[..., BlobStore]


def new_master() -> EnvMasterKey:
    """A fresh random master key."""
    return EnvMasterKey(base64.b64encode(os.urandom(32)).decode())


@pytest.fixture
def master() -> EnvMasterKey:
    return new_master()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The local folder of the ``file`` store."""
    return tmp_path / "blobs"


@pytest.fixture
def local_url(root: Path) -> str:
    return root.as_uri()


@pytest.fixture(params=["file", "memory"])
def any_url(request: pytest.FixtureRequest, local_url: str) -> Iterator[str]:
    """A store root on the local filesystem and one on fsspec's in-memory filesystem."""
    if request.param == "file":
        yield local_url
        return
    import fsspec

    url = f"memory://keel-tests/{uuid.uuid4().hex}"
    yield url
    memory = fsspec.filesystem("memory")
    if memory.exists(url):
        memory.rm(url, recursive=True)


@pytest.fixture
def make_store(master: EnvMasterKey) -> StoreFactory:
    """Build a store over ``url`` (its keyring on the same root)."""

    def make(url: str, *, chunk_size: int = 64, key: MasterKeyProvider | None = None) -> BlobStore:
        keyring = Keyring(key or master, url=url)
        return BlobStore(url, keyring=keyring, chunk_size=chunk_size)

    return make
