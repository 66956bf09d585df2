"""Live state for ``keel plan``: what the services hold now, not only what was last applied.

A role binding, trigger, registered model or monitor changed or removed by hand (through the
CLI, the REST API or the UI) since the last apply is *drift*. ``observe`` rewrites the recorded
state with what is live, so the plan shows the drift as an update (with a diff from the live
object to keel.yaml) or as a create when the object is gone, and apply repairs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from keel.cicd._effects import trigger_spec
from keel.cicd._export import make_trigger_entry, trigger_entry
from keel.errors import KeelError, NotFoundError

if TYPE_CHECKING:
    from keel.governance import Context, Governor

__all__ = ["BindingsView", "RoleBindings", "observe"]


class BindingsView(Protocol):
    """Who holds which role in the project now."""

    def all(self) -> dict[str, str]: ...


class RoleBindings:
    """The role bindings of one project, read and revoked through the identity service."""

    def __init__(self, governor: Governor, ctx: Context) -> None:
        from keel.governance import IdentityService  # (the store: not for the read-only plan)

        self._identity = IdentityService(governor)
        self._ctx = ctx

    def all(self) -> dict[str, str]:
        return {b.principal: b.role for b in self._identity.bindings(self._ctx)}

    def revoke(self, principal: str) -> bool:
        """Remove ``principal``'s binding; False when it held none."""
        try:
            self._identity.revoke_role(self._ctx, principal)
        except NotFoundError:
            return False
        return True


def _normal_trigger(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A keel.yaml trigger entry in the shape ``trigger_entry`` gives a live trigger."""
    kind, spec = trigger_spec(dict(entry))
    return make_trigger_entry(
        pipeline=str(entry.get("pipeline")),
        kind=kind,
        spec=spec,
        params=dict(entry.get("params") or {}),
        enabled=bool(entry.get("enabled", True)),
    )


def observe(
    recorded: Mapping[tuple[str, str], Mapping[str, Any]],
    live: Any,
    bindings: BindingsView | None,
    *,
    desired: Mapping[tuple[str, str], Any],
) -> dict[tuple[str, str], dict[str, Any]]:
    """``recorded`` with the live state of roles, triggers, models and monitors put in.

    A resource whose last apply was deferred (``pending``) is left as recorded: the plan shows
    it as an update already. So is one no longer in ``desired`` (the file): its delete goes
    ahead, and removes the record even when the live object is already gone.
    """
    out = {key: dict(spec) for key, spec in recorded.items()}
    kinds = {kind for kind, _ in out}
    held: dict[str, str] | None = None
    if bindings is not None and "role" in kinds:
        try:
            held = bindings.all()
        except KeelError:  # a caller who may not read bindings sees the recorded state
            held = None
    triggers = {t.name: t for t in live.pipelines.triggers()} if "trigger" in kinds else {}
    monitors: Any = getattr(live, "monitors", None)
    monitor_names: set[str] | None = None
    if monitors is not None and "monitor" in kinds:
        monitor_names = {m.name for m in monitors.list()}
    for (kind, name), spec in list(out.items()):
        if spec.get("pending") or (kind, name) not in desired:
            continue
        key = (kind, name)
        if kind == "role" and held is not None:
            if name not in held:
                del out[key]
            elif held[name] != spec.get("role"):
                out[key] = {"role": held[name]}
        elif kind == "trigger":
            trigger = triggers.get(name)
            if trigger is None:
                del out[key]
            elif trigger_entry(trigger) != _normal_trigger(spec):
                out[key] = trigger_entry(trigger)
        elif kind == "model":
            try:
                model = live.models.get(name)
            except NotFoundError:
                del out[key]
                continue
            description = getattr(model, "description", "") or ""
            if description != (spec.get("description") or ""):
                out[key] = {**spec, "description": description}
        elif kind == "monitor" and monitor_names is not None and name not in monitor_names:
            del out[key]
    return out
