"""A real Keel server for tests: uvicorn in a thread on 127.0.0.1, a free port, a fresh store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from keel.governance import OPERATOR_ROLE, Context
from keel.server import build_services, create_app
from keel.server._deps import Services
from keel.server._serve import listen, uvicorn_server
from keel.settings import Settings
from keel.workspace import connect

ROLES = ("viewer", "auditor", "contributor", "maintainer", "admin")


@dataclass
class LiveServer:
    """A running server, its services (to inspect the store) and an admin token."""

    url: str
    settings: Settings
    services: Services
    operator: Context
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client of the server (closed when the server stops)."""
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        made = httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)
        self.clients.append(made)
        return made

    def token_for(self, role: str, *, project: str = "default", name: str | None = None) -> str:
        """A token of a principal holding ``role`` in ``project`` (made once, then cached)."""
        principal = name or f"user:{role}-{project}"
        key = f"{principal}@{project}/{role}"
        if key not in self.tokens:
            ctx = self.context_in(project)
            self.services.projects.grant(ctx, principal, role)
            issued = self.services.identity.create_token(
                self.operator, role=role, principal=principal, project=project, days=1
            )
            self.tokens[key] = issued.secret
        return self.tokens[key]

    def context_in(self, project: str) -> Context:
        """An owner's Context in ``project`` (created if missing), for setting up data."""
        projects = self.services.projects
        try:
            return projects.context("user:owner", project)
        except LookupError:
            projects.create(projects.context("user:owner", "default"), project)
            return projects.context("user:owner", project)

    def audit_flush(self) -> None:
        assert self.services.auditor is not None
        self.services.auditor.flush()


@contextmanager
def live_server(home: Path, db_url: str | None = None, **overrides: Any) -> Iterator[LiveServer]:
    settings = Settings(home=home, db_url=db_url, **overrides)
    connect(settings=settings, principal="user:owner").close()  # store + default project
    services = build_services(settings)
    owner = services.projects.context("user:owner", "default")
    operator = replace(owner, principal="user:operator", roles=frozenset({OPERATOR_ROLE}))
    admin = services.identity.create_admin(operator, "admin")
    app = create_app(settings, services=services)
    sock = listen("127.0.0.1", 0)
    server = uvicorn_server(app, settings, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = sock.getsockname()[1]
    scheme = "https" if settings.tls_cert_file else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    running = LiveServer(url, settings, services, operator, admin.secret)
    try:
        yield running
    finally:
        for made in running.clients:
            made.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        services.governor.db.dispose()
