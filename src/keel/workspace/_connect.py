"""The composition root: settings → engine, schema check, keys, blob store, services."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigurationError
from keel.settings import Settings, load_settings

if TYPE_CHECKING:
    from keel.workspace._workspace import Workspace

__all__ = ["connect", "local_principal", "open_components"]


def local_principal() -> str:
    """The principal of local mode: the operating-system user."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def _master_key(settings: Settings, *, create: bool) -> Any:
    from keel.blobs import EnvMasterKey, LocalKeyFile

    if settings.key_provider == "env":
        if settings.master_key is None:
            raise ConfigurationError(
                "KEEL_KEY_PROVIDER is 'env' but KEEL_MASTER_KEY is not set. Set it to 32 "
                'random bytes in base64 (python -c "import os,base64;'
                'print(base64.b64encode(os.urandom(32)).decode())").',
            )
        return EnvMasterKey(settings.master_key.get_secret_value())
    path = settings.resolved_master_key_file
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"The master key file {path} does not exist. Create the store with "
                "`keel init`, or point KEEL_MASTER_KEY_FILE at the existing key.",
                path=str(path),
            )
        return LocalKeyFile.create(path)
    return LocalKeyFile(path)


def open_components(settings: Settings, *, create: bool = True) -> dict[str, Any]:
    """Build the engine, check the schema, and wire the stores; nothing else."""
    from keel.blobs import BlobStore, Keyring
    from keel.store import Database, ensure_schema, make_engine

    engine = make_engine(
        settings.resolved_db_url,
        busy_timeout=settings.busy_timeout,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        echo=settings.echo_sql,
    )
    fresh_local = settings.is_embedded and create
    if settings.is_embedded:
        Path(settings.home).mkdir(parents=True, exist_ok=True)
    ensure_schema(engine, create_if_empty=fresh_local)
    master = _master_key(settings, create=create)
    blob_url = settings.resolved_blob_url
    keyring = Keyring(master, url=blob_url)
    return {
        "db": Database(engine),
        "blobs": BlobStore(blob_url, keyring=keyring),
    }


def connect(
    home: str | Path | None = None,
    *,
    project: str | None = None,
    principal: str | None = None,
    settings: Settings | None = None,
    create: bool = True,
) -> Workspace:
    """Open a workspace: the local store under ``home`` (default ``$KEEL_HOME`` or ``./.keel``).

    A fresh local store is created on first use (schema, master key with mode 0600, the
    default project with the OS user as its owner). With ``create=False`` a missing store is an
    error instead.

    Args:
        home: the store folder; overrides KEEL_HOME.
        project: the project to work in; overrides KEEL_PROJECT (default ``default``).
        principal: who acts; defaults to the OS user (``user:<login>``).
        settings: a ready Settings object (then ``home`` and ``project`` must be None).
        create: allow creating a fresh local store.
    """
    from keel.governance import AuditLog, Governor, ProjectService
    from keel.workspace._workspace import Workspace

    if settings is None:
        settings = load_settings(home=home, project=project)
    elif home is not None or project is not None:
        raise ConfigurationError("Pass either settings or home/project to connect(), not both.")
    parts = open_components(settings, create=create)
    db = parts["db"]
    audit = AuditLog(db)
    governor = Governor(db, audit)
    projects = ProjectService(governor)
    who = principal or local_principal()
    projects.bootstrap(owner=who, project=settings.project)
    ctx = projects.context(who, settings.project)
    return Workspace(settings=settings, governor=governor, blobs=parts["blobs"], ctx=ctx)
