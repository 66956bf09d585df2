"""The Context every service call carries: who asks, in which project, for which request."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from keel.types import new_id

__all__ = ["Context"]


@dataclass(frozen=True, slots=True)
class Context:
    """The caller of a service method.

    Attributes:
        principal: who is acting (``user:<name>`` or ``service:<name>``).
        project_id: the tenant every query is scoped to.
        project_name: the project's name, for messages.
        roles: the principal's roles in that project (resolved once, checked purely).
        request_id: ties together everything one request did (audit, logs).
        source: where the request came from (an address), when known.
    """

    principal: str
    project_id: str
    project_name: str
    roles: frozenset[str]
    request_id: str = field(default_factory=new_id)
    source: str | None = None

    def for_request(self, request_id: str | None = None) -> Context:
        """The same caller with a fresh (or given) request id."""
        return replace(self, request_id=request_id or new_id())
