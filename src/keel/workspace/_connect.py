"""The composition root: settings → engine, schema check, keys, blob store, services."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import AlreadyExistsError, ConfigurationError
from keel.settings import Settings, load_settings

if TYPE_CHECKING:
    from keel.workspace._workspace import Workspace

__all__ = ["connect", "load_master_key", "local_principal", "open_components"]


def local_principal() -> str:
    """The principal of local mode: the operating-system user."""
    import getpass

    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def is_remote_url(target: object) -> bool:
    """Whether ``connect``'s first argument names a server rather than a local folder."""
    return isinstance(target, str) and target.startswith(("http://", "https://"))


def load_master_key(settings: Settings, *, create: bool) -> Any:
    """The master key provider the settings name; with ``create``, a new key file if missing."""
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
                f"The master key file {path} does not exist. If this store is in use, restore "
                "the key from your backup (without it the encrypted blobs cannot be read) or "
                "point KEEL_MASTER_KEY_FILE at it; for a new store run `keel init`.",
                path=str(path),
            )
        try:
            return LocalKeyFile.create(path)
        except AlreadyExistsError:  # another process opening the same fresh store won the
            pass  # race: the store is still empty, so its key is the one to use
    return LocalKeyFile(path)


def _is_empty(engine: Any) -> bool:
    """True when the store has no project yet (nothing can be encrypted under a key)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT COUNT(*) FROM projects")).scalar_one() == 0)


def open_components(settings: Settings, *, create: bool = True) -> dict[str, Any]:
    """Build the engine, check the schema, and wire the stores; nothing else."""
    from keel.blobs import BlobStore, Keyring
    from keel.store import Database, current_revisions, ensure_schema, make_engine

    if settings.is_embedded and not create:
        db_file = Path(settings.resolved_db_url.split(":///", 1)[1])
        if not db_file.exists():
            raise ConfigurationError(
                f"There is no Keel store at {settings.home.resolve()}. Create one with "
                "`keel init` (or keel.connect(create=True)), or point KEEL_HOME at an "
                "existing store.",
                home=str(settings.home),
            )
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
    # A new master key only for a store that holds nothing yet: replacing the key of a store in
    # use would make every blob unreadable.
    had_schema = bool(current_revisions(engine))
    ensure_schema(engine, create_if_empty=fresh_local)
    is_new = not had_schema or _is_empty(engine)
    master = load_master_key(settings, create=create and is_new)
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
    token: str | None = None,
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
        token: with a server URL as ``home`` (``https://host``), the API token to send
            (default ``$KEEL_TOKEN``); the workspace then calls the server's REST API.
    """
    if is_remote_url(home):
        from keel.workspace._remote import RemoteWorkspace, token_from_env

        credential = token or token_from_env()
        if credential is None:
            raise ConfigurationError(
                f"Connecting to {str(home)[:100]} needs an API token: pass token=... or set "
                "KEEL_TOKEN (make one with `keel tokens create`).",
            )
        return RemoteWorkspace(str(home), token=credential, project=project)
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
    if create:
        projects.bootstrap(owner=who, project=settings.project)
    ctx = projects.context(who, settings.project)
    return Workspace(settings=settings, governor=governor, blobs=parts["blobs"], ctx=ctx)
