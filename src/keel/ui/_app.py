"""Mounting the web UI on the server's app: routers, static files, sessions, templates."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from keel.ui._sessions import SessionStore
from keel.ui._web import PREFIX, UiState, make_environment

if TYPE_CHECKING:
    from fastapi import FastAPI

    from keel.server._deps import Services

__all__ = ["is_page", "mount_ui"]


def is_page(path: str) -> bool:
    """Whether ``path`` belongs to the web UI (the guard lets its forms through)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def mount_ui(app: FastAPI, services: Services, *, sessions: SessionStore | None = None) -> None:
    """Serve the web UI under ``/ui`` of ``app``, over the same ``services`` as the API.

    Args:
        app: the server's FastAPI app.
        services: the services the REST routes use (pages call them with the user's Context).
        sessions: the session table (default: 30 minutes idle, 12 hours at most).
    """
    from starlette.staticfiles import StaticFiles

    from keel.compliance import ErasureService
    from keel.governance import ComplianceService, ModelSigner, SupplyChainService
    from keel.ui import (
        _auth,
        _data_pages,
        _deploy_pages,
        _gov_pages,
        _lineage_pages,
        _monitor_pages,
        _registry_pages,
        _runs_pages,
    )

    settings = services.settings
    app.state.ui = UiState(
        services=services,
        sessions=sessions or SessionStore(),
        env=make_environment(),
        datasets=services.datasets,
        gate=services.dataset_gate,
        deployments=services.deployments,
        compliance=ComplianceService(services.governor),
        supplychain=SupplyChainService(
            services.governor,
            services.blobs,
            services.policies,
            ModelSigner.from_settings(settings),
        ),
        erasures=ErasureService(services.governor, services.blobs, services.datasets),
        secure_cookies=settings.tls_cert_file is not None
        or (settings.server_public_url or "").startswith("https://"),
    )
    for module in (
        _auth,
        _runs_pages,
        _data_pages,
        _lineage_pages,
        _registry_pages,
        _deploy_pages,
        _monitor_pages,
        _gov_pages,
    ):
        app.include_router(module.router)
    static = files("keel.ui") / "static"
    app.mount(PREFIX + "/static", StaticFiles(directory=str(static)), name="ui-static")
