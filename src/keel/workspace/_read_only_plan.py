"""``keel plan`` answered from a read-only view of the store, without SQLAlchemy.

A plan reads the recorded project state and a little live state (role bindings, triggers,
registered models, monitors) and diffs it against ``keel.yaml``. In a fresh process, importing
the ORM, the table declarations and the services costs several times that work, so the CLI
first tries this path: the same reads in plain SQL (``keel.store._readonly``), the same
``observe`` and ``make_plan``. It answers only when the local principal may read everything
the plan reads; otherwise, and whenever the store cannot be read this way (another backend, a
missing or outdated store), and whenever ``connect`` would refuse the settings or write
something first (a bad or missing master key, a signing key others can read or that does not
exist yet, a signing key from a secret provider), it returns None and the caller runs the full
path, which reports errors and audits denials. tests/cicd/test_read_only_plan.py checks that both
paths give the same plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel.cicd._drift import observe
from keel.cicd._plan import Plan, make_plan
from keel.errors import KeelError, NotFoundError
from keel.governance._permissions import Permission, allows
from keel.governance._signing_key import read_signing_key_file, signing_key_path
from keel.store._readonly import ReadOnlyStore, ReadOnlyStoreError, TriggerRecord
from keel.workspace._connect import load_master_key, local_principal

if TYPE_CHECKING:
    from keel.cicd._project import ProjectFile
    from keel.settings import Settings

__all__ = ["read_only_plan"]

#: What the full path checks before reading each kind's live state (see keel.cicd._drift).
_LIVE_READS = {
    "role": Permission.PROJECT_ADMIN,
    "trigger": Permission.PIPELINE_READ,
    "model": Permission.MODEL_READ,
    "monitor": Permission.MONITOR_READ,
}


class _Named:
    __slots__ = ("description", "name")

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description


class _Pipelines:
    def __init__(self, store: ReadOnlyStore, project_id: str) -> None:
        self._store, self._project_id = store, project_id

    def triggers(self) -> list[TriggerRecord]:
        return self._store.triggers(self._project_id)


class _Models:
    def __init__(self, store: ReadOnlyStore, project_id: str) -> None:
        self._store, self._project_id = store, project_id

    def get(self, name: str) -> _Named:
        description = self._store.model_description(self._project_id, name)
        if description is None:
            raise NotFoundError(f"There is no registered model '{name}'.", name=name)
        return _Named(name, description)


class _Monitors:
    def __init__(self, store: ReadOnlyStore, project_id: str) -> None:
        self._store, self._project_id = store, project_id

    def list(self) -> list[_Named]:
        return [_Named(name) for name in self._store.monitor_names(self._project_id)]


class _Live:
    """The live services ``observe`` reads, answered by the read-only store."""

    def __init__(self, store: ReadOnlyStore, project_id: str) -> None:
        self.pipelines = _Pipelines(store, project_id)
        self.models = _Models(store, project_id)
        self.monitors = _Monitors(store, project_id)


class _Bindings:
    def __init__(self, store: ReadOnlyStore, project_id: str) -> None:
        self._store, self._project_id = store, project_id

    def all(self) -> dict[str, str]:
        return self._store.bindings(self._project_id)


def read_only_plan(
    settings: Settings, project: ProjectFile, *, principal: str | None = None
) -> Plan | None:
    """The plan of ``project`` for ``principal`` (default: the OS user, as ``connect``), or
    None: then take the full path."""
    if not _keys_accepted(settings):
        return None
    store = ReadOnlyStore.open(settings.resolved_db_url, busy_timeout=settings.busy_timeout)
    if store is None:
        return None
    with store:
        try:
            return _plan(store, settings.project, project, principal or local_principal())
        except ReadOnlyStoreError:
            return None


def _keys_accepted(settings: Settings) -> bool:
    """Whether ``connect`` would load the master and signing keys as they are, writing nothing."""
    if settings.signing_key:  # a secret:// reference: resolved (and checked) by the full path
        return False
    try:
        load_master_key(settings, create=False)  # connect's own check (env: decoded here)
        read_signing_key_file(signing_key_path(settings))  # missing: connect would create it
    except KeelError:
        return False
    return True


def _plan(
    store: ReadOnlyStore, project_name: str, project: ProjectFile, principal: str
) -> Plan | None:
    project_id = store.project_id(project_name)
    if project_id is None:
        return None
    roles = store.roles_of(project_id, principal)
    recorded = store.resources(project_id)
    needed = {Permission.PROJECT_READ} | {
        _LIVE_READS[kind] for kind, _ in recorded if kind in _LIVE_READS
    }
    if not all(allows(roles, permission) for permission in needed):
        return None  # the full path audits the denial (and a plan without bindings)
    live: Any = _Live(store, project_id)
    current = observe(recorded, live, _Bindings(store, project_id), desired=project.resources)
    return make_plan(project.resources, current)
