from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ConfigurationError
from keel.settings import load_settings


def test_defaults_live_inside_keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "h"))
    settings = load_settings()
    assert settings.resolved_db_url == f"sqlite:///{(tmp_path / 'h' / 'keel.db').resolve()}"
    assert settings.resolved_blob_url == (tmp_path / "h" / "blobs").resolve().as_uri()
    assert settings.resolved_master_key_file == tmp_path / "h" / "master.key"
    assert settings.is_embedded


def test_argument_beats_environment_beats_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('project = "from-file"\npool_size = 7\n')
    monkeypatch.setenv("KEEL_HOME", str(home))
    assert load_settings().project == "from-file"
    assert load_settings().pool_size == 7
    monkeypatch.setenv("KEEL_PROJECT", "from-env")
    assert load_settings().project == "from-env"
    assert load_settings(project="from-arg").project == "from-arg"


def test_unknown_or_invalid_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match="pool_size"):
        load_settings(pool_size=0)
    with pytest.raises(ConfigurationError, match="key_provider"):
        load_settings(key_provider="vaultish")
    monkeypatch.setenv("KEEL_POOL_SIZE", "many")
    with pytest.raises(ConfigurationError, match="KEEL_\\* environment"):
        load_settings()


def test_home_argument_chooses_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_HOME", raising=False)
    (tmp_path / "config.toml").write_text('project = "from-home-file"\n')
    assert load_settings(home=tmp_path).project == "from-home-file"


def test_describe_redacts_passwords_and_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path))
    monkeypatch.setenv("KEEL_MASTER_KEY", "c2VjcmV0")
    shown = load_settings(db_url="postgresql://keel:hunter2@db:5432/keel").describe()
    assert shown["db_url"] == "postgresql://keel:***@db:5432/keel"
    assert shown["master_key"] == "***"
    assert "hunter2" not in str(shown) and "c2VjcmV0" not in str(shown)
    # a password in the query string, or one holding "@", is hidden too
    url = "postgresql://keel@db/keel?sslmode=require&password=hunter2"
    assert load_settings(db_url=url).describe()["db_url"] == (
        "postgresql://keel@db/keel?sslmode=require&password=***"
    )
    at = load_settings(db_url="postgresql://keel:p@ss-hunter2@db/keel").describe()["db_url"]
    assert at == "postgresql://keel:***@db/keel"


def test_redact_url_keeps_urls_without_credentials_whole() -> None:
    from keel.settings import redact_url

    for plain in ("https://example.com:8443/data/file@2024.csv", "https://host/a@b"):
        assert redact_url(plain) == plain  # a port and an "@" in the path are no password
    assert redact_url("https://u:pw@host:9000/p@q") == "https://u:***@host:9000/p@q"
    assert redact_url("mysql://u:a/b?cHunter2@h/db") == "mysql://u:***@h/db"
