"""The model registry: models, versions, aliases and their history, gate decisions, ML-BOMs."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from keel.errors import KeelError
from keel.governance import Permission, PolicyDecision, model_subject
from keel.tracking import ModelVersion
from keel.ui._web import PREFIX, PageRoute, Viewer, ViewerDep, render

__all__ = ["router"]

router = APIRouter(
    prefix=PREFIX + "/p/{project}/models", route_class=PageRoute, include_in_schema=False
)
Name = Annotated[str, Path(min_length=1, max_length=256)]
VersionNo = Annotated[int, Path(ge=1, lt=2**31)]
MAX_DECISIONS = 500


def _decisions(viewer: Viewer, name: str, version: int | None = None) -> list[PolicyDecision]:
    """The newest gate decisions about the model (or one version), filtered in the store."""
    if not viewer.can(Permission.POLICY_READ):
        return []
    return viewer.ui.services.policies.decisions(
        viewer.ctx, subject_under=model_subject(name, version), limit=MAX_DECISIONS
    )


@router.get("")
def models(viewer: ViewerDep) -> Response:
    found = viewer.ui.services.models.list(viewer.ctx)
    return render(viewer, viewer.request, "models.html", title="Models", items=found)


@router.get("/{name}")
def model(name: Name, viewer: ViewerDep) -> Response:
    registry, ctx = viewer.ui.services.models, viewer.ctx
    found = registry.get(ctx, name)
    versions = sorted(registry.versions(ctx, name), key=lambda v: -v.version)
    history = sorted(registry.alias_history(ctx, name), key=lambda m: m.moved_at, reverse=True)
    return render(
        viewer,
        viewer.request,
        "model.html",
        title=f"Model {name}",
        model=found,
        versions=versions,
        history=history,
        decisions=_decisions(viewer, name),
    )


def _signature_state(viewer: Viewer, found: ModelVersion) -> tuple[str, str]:
    try:
        info = viewer.ui.services.models.verify_signature(viewer.ctx, found)
    except KeelError as exc:
        return "invalid", str(exc)
    if info is None:
        return "unsigned", "This server has no signing key configured."
    return "valid", f"{info.algorithm} by key {info.key_id}, signed {info.signed_at}"


@router.get("/{name}/v/{version}")
def model_version(name: Name, version: VersionNo, viewer: ViewerDep) -> Response:
    registry, ctx = viewer.ui.services.models, viewer.ctx
    found = registry.version(ctx, name, version)
    state, detail = _signature_state(viewer, found)
    package: dict[str, object] = {}
    try:
        package = registry.package(ctx, name, version)
    except KeelError:
        package = {}
    return render(
        viewer,
        viewer.request,
        "model_version.html",
        title=f"{name} v{version}",
        version=found,
        signature_state=state,
        signature_detail=detail,
        io_signature=json.dumps(found.signature or {}, indent=2, sort_keys=True, default=str),
        metrics=found.metrics or {},
        package=json.dumps(
            {k: v for k, v in package.items() if k != "example"},
            indent=2,
            sort_keys=True,
            default=str,
        )[:20_000],
        decisions=_decisions(viewer, name, version),
    )


@router.get("/{name}/v/{version}/ml-bom.json")
def ml_bom(name: Name, version: VersionNo, viewer: ViewerDep) -> Response:
    """The CycloneDX ML-BOM of the version, as a download."""
    from keel.workspace._policies import SupplyChain
    from keel.workspace._workspace import Runs

    ui, ctx = viewer.ui, viewer.ctx
    chain = SupplyChain(ui.supplychain, ui.services.models, Runs(ui.services.runs, ctx), ctx)
    document = chain.bom(name, version)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100]
    return Response(
        json.dumps(document, indent=2, sort_keys=True),
        media_type="application/vnd.cyclonedx+json",
        headers={
            "content-disposition": f'attachment; filename="{safe}-v{version}.cdx.json"',
            "content-security-policy": "default-src 'none'; sandbox",
        },
    )
