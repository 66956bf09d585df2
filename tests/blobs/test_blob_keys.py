"""Master key providers and the keyring of data keys."""

from __future__ import annotations

import base64
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from keel.blobs import (
    BlobStore,
    DataKey,
    EnvMasterKey,
    Keyring,
    LocalKeyFile,
    MasterKeyProvider,
)
from keel.errors import (
    AlreadyExistsError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)

StoreFactory = Callable[..., BlobStore]


def _key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# -- LocalKeyFile ---------------------------------------------------------------------------


def test_create_writes_a_32_byte_base64_key_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "master.key"

    provider = LocalKeyFile.create(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text().strip(), validate=True)) == 32
    assert provider.path == path
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temporary left
    assert LocalKeyFile(path).fingerprint == provider.fingerprint


def test_create_never_overwrites_a_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    LocalKeyFile.create(path)
    before = path.read_bytes()

    with pytest.raises(AlreadyExistsError, match="never overwrites"):
        LocalKeyFile.create(path)

    assert path.read_bytes() == before


def test_create_makes_distinct_keys(tmp_path: Path) -> None:
    one = LocalKeyFile.create(tmp_path / "one.key")
    two = LocalKeyFile.create(tmp_path / "two.key")
    assert one.fingerprint != two.fingerprint


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    LocalKeyFile.create(path)
    path.chmod(mode)

    with pytest.raises(ConfigurationError) as caught:
        _ = LocalKeyFile(path).fingerprint

    assert f"chmod 600 {path}" in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


def test_a_missing_key_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"does not exist.*keel init"):
        _ = LocalKeyFile(tmp_path / "absent.key").fingerprint


@pytest.mark.parametrize(
    "content",
    ["not base64 at all!!", base64.b64encode(b"short").decode(), "", "é" * 10],
)
def test_a_malformed_key_file_is_a_configuration_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master.key"
    path.write_text(content)
    path.chmod(0o600)

    with pytest.raises(ConfigurationError, match="keel init") as caught:
        LocalKeyFile(path).wrap(b"k" * 32, context=b"c")

    if content:
        assert content not in str(caught.value)


def test_local_key_file_reads_nothing_at_construction(tmp_path: Path) -> None:
    provider = LocalKeyFile(tmp_path / "absent.key")  # no error until used
    assert repr(provider) == f"LocalKeyFile({str(tmp_path / 'absent.key')!r})"


# -- EnvMasterKey ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("%%%not-base64%%%", "not valid base64"),
        (base64.b64encode(b"\x01" * 16).decode(), "decodes to 16 bytes"),
        (base64.b64encode(b"\x02" * 33).decode(), "decodes to 33 bytes"),
    ],
)
def test_env_master_key_rejects_bad_values_and_explains(value: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason) as caught:
        EnvMasterKey(value)
    message = str(caught.value)
    assert "KEEL_MASTER_KEY" in message
    assert "keel init" in message
    if value.strip():
        assert value not in message


def test_the_same_key_from_a_file_or_the_environment_has_one_fingerprint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "master.key"
    file_key = LocalKeyFile.create(path)
    env_key = EnvMasterKey(path.read_text())

    assert env_key.fingerprint == file_key.fingerprint
    wrapped = file_key.wrap(b"d" * 32, context=b"ctx")
    assert env_key.unwrap(wrapped, context=b"ctx") == b"d" * 32


def test_providers_satisfy_the_port_and_hide_their_key(tmp_path: Path) -> None:
    text = _key_text()
    raw = base64.b64decode(text)
    providers: list[MasterKeyProvider] = [EnvMasterKey(text), LocalKeyFile.create(tmp_path / "k")]
    for provider in providers:
        shown = repr(provider)
        assert text not in shown
        assert raw.hex() not in shown
        assert provider.fingerprint.startswith("aes256:")


def test_unwrap_binds_the_context(master: EnvMasterKey) -> None:
    wrapped = master.wrap(b"d" * 32, context=b"scope-a/key")
    with pytest.raises(IntegrityError, match="does not authenticate"):
        master.unwrap(wrapped, context=b"scope-b/key")
    with pytest.raises(IntegrityError, match="corrupt"):
        master.unwrap(wrapped[:-1], context=b"scope-a/key")


# -- Keyring ---------------------------------------------------------------------------------


def test_keyring_creates_one_key_per_scope_and_reloads_it(
    master: EnvMasterKey, local_url: str, root: Path
) -> None:
    first = Keyring(master, url=local_url)
    key = first.get_or_create("p1")

    assert first.get_or_create("p1") is key
    assert first.get_or_create("p2").key_id != key.key_id
    assert [p.name for p in (root / "_keys" / "p1").iterdir()] == [key.key_id]

    again = Keyring(master, url=local_url)  # a new process, say
    reloaded = again.get_or_create("p1")
    assert (reloaded.key_id, reloaded.material) == (key.key_id, key.material)
    assert again.get("p1", key.key_id).material == key.material


def test_data_keys_hide_their_bytes_and_refuse_pickling(master: EnvMasterKey) -> None:
    key = DataKey(scope="p1", key_id="0" * 26, material=b"\x01" * 32)
    assert repr(key) == f"DataKey(scope='p1', key_id='{'0' * 26}')"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_a_wrong_master_key_is_a_clear_configuration_error(
    make_store: StoreFactory, local_url: str, master: EnvMasterKey
) -> None:
    info = make_store(local_url).put_bytes(b"secret", scope="p1")
    other = EnvMasterKey(_key_text())
    wrong = make_store(local_url, key=other)

    with pytest.raises(ConfigurationError) as caught:
        wrong.get_bytes(info.digest, scope="p1")
    message = str(caught.value)
    assert master.fingerprint in message
    assert other.fingerprint in message
    assert "Configure the master key this blob store was created with" in message

    with pytest.raises(ConfigurationError, match="wrapped by master key"):
        wrong.put_bytes(b"more", scope="p1")


def test_a_tampered_key_file_is_an_integrity_error(
    master: EnvMasterKey, local_url: str, root: Path
) -> None:
    key_id = Keyring(master, url=local_url).get_or_create("p1").key_id
    path = root / "_keys" / "p1" / key_id
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))

    with pytest.raises(IntegrityError, match="corrupt or was tampered with"):
        Keyring(master, url=local_url).get("p1", key_id)

    path.write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match="KEEL-KEY magic"):
        Keyring(master, url=local_url).get("p1", key_id)


def test_a_key_file_wrapped_for_another_scope_does_not_unwrap(
    master: EnvMasterKey, local_url: str, root: Path
) -> None:
    key_id = Keyring(master, url=local_url).get_or_create("p1").key_id
    (root / "_keys" / "p2").mkdir()
    (root / "_keys" / "p2" / key_id).write_bytes((root / "_keys" / "p1" / key_id).read_bytes())

    with pytest.raises(IntegrityError, match="corrupt or was tampered with"):
        Keyring(master, url=local_url).get("p2", key_id)


def test_destroy_erases_the_scope_for_good(master: EnvMasterKey, local_url: str) -> None:
    keyring = Keyring(master, url=local_url)
    key_id = keyring.get_or_create("p1").key_id
    keyring.get_or_create("p2")

    keyring.destroy("p1")

    assert keyring.is_erased("p1")
    assert not keyring.is_erased("p2")
    for ring in (keyring, Keyring(master, url=local_url)):
        with pytest.raises(NotFoundError, match=r"erased \(crypto-shredded\)") as caught:
            ring.get("p1", key_id)
        assert caught.value.details["erased"] is True
        with pytest.raises(ConflictError, match="was erased"):
            ring.get_or_create("p1")
    keyring.destroy("p1")  # idempotent
    assert keyring.get_or_create("p2").scope == "p2"


def test_a_missing_key_is_not_reported_as_erased(master: EnvMasterKey, local_url: str) -> None:
    keyring = Keyring(master, url=local_url)
    with pytest.raises(NotFoundError, match="has no data key") as caught:
        keyring.get("p1", "0" * 26)
    assert caught.value.details["erased"] is False


@pytest.mark.parametrize("key_id", ["../x", "0" * 25, "a" * 26, "0" * 26 + "\n"])
def test_malformed_key_ids_are_rejected(master: EnvMasterKey, local_url: str, key_id: str) -> None:
    with pytest.raises(InvalidInputError, match="data key id"):
        Keyring(master, url=local_url).get("p1", key_id)


def test_keyring_reads_nothing_at_construction(tmp_path: Path) -> None:
    keyring = Keyring(LocalKeyFile(tmp_path / "absent.key"), url=(tmp_path / "b").as_uri())
    assert "absent.key" in repr(keyring)
    assert not (tmp_path / "b").exists()
