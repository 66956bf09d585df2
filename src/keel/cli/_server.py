"""``keel server``: the REST API on uvicorn, one worker, refusing to start without an admin."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import state

__all__ = ["server"]


def server(
    host: Annotated[str | None, typer.Option("--host", help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535)] = None,
) -> None:
    """Serve the REST API (HTTPS when KEEL_TLS_CERT_FILE and KEEL_TLS_KEY_FILE are set)."""
    from keel.cli._collector import steady_state
    from keel.errors import ConfigurationError
    from keel.server import build_services, create_app
    from keel.server._serve import listen, uvicorn_server

    settings = state.settings()
    services = build_services(settings)
    if not services.identity.has_admin():
        services.governor.db.dispose()
        raise ConfigurationError(
            "No identity administrator exists, and Keel has no default credentials, so the "
            "server will not start. Create one with: keel admin create NAME",
        )
    app = create_app(settings, services=services)
    bind_host = host or settings.server_host
    bind_port = settings.server_port if port is None else port
    runner = uvicorn_server(app, settings)
    sock = listen(bind_host, bind_port)
    scheme = "https" if settings.tls_cert_file else "http"
    typer.echo(
        f"Keel API on {scheme}://{bind_host}:{sock.getsockname()[1]} (OpenAPI at /openapi.json)"
    )
    steady_state()
    try:
        runner.run(sockets=[sock])
    finally:
        sock.close()
        services.governor.db.dispose()
