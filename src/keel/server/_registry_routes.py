"""Routes of the model registry: models, versions, artifacts, aliases and their history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import JSONResponse, Response

from keel.governance import Permission
from keel.server._deps import Caller, ServicesDep, ok
from keel.server._downloads import download
from keel.server._models import (
    AliasBody,
    CreateModelBody,
    DescriptionBody,
    ReasonBody,
    RegisterBody,
    TagBody,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}/models", tags=["models"])
ModelName = Annotated[str, Path(min_length=1, max_length=256)]
Alias = Annotated[str, Path(min_length=1, max_length=128)]
Selector = Annotated[str, Path(min_length=1, max_length=128, description="A number or an alias.")]
VersionNo = Annotated[int, Path(ge=1, lt=2**31)]


def _selector(text: str) -> int | str:
    return int(text) if text.isdigit() and len(text) < 10 else text


@router.post("", status_code=201)
def create_model(body: CreateModelBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.models.create(ctx, body.name, description=body.description), 201)


@router.get("")
def list_models(
    ctx: Caller,
    s: ServicesDep,
    name_like: Annotated[str | None, Query(max_length=256)] = None,
) -> JSONResponse:
    return ok(s.models.list(ctx, name_like=name_like))


@router.get("/{name}")
def get_model(name: ModelName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.models.get(ctx, name))


@router.patch("/{name}")
def update_model(
    name: ModelName, body: DescriptionBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    return ok(
        s.models.update(
            ctx,
            name,
            description=body.description,
            expected_row_version=body.expected_row_version,
        )
    )


@router.post("/{name}/tags")
def tag_model(name: ModelName, body: TagBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.models.set_tag(ctx, name, body.key, body.value)
    return ok({"key": body.key})


@router.post("/{name}/versions", status_code=201)
def register(name: ModelName, body: RegisterBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Register a staged upload as the next version of ``name``."""
    s.governor.check(ctx, Permission.MODEL_WRITE, action="model.register", object_type="model")
    staged = s.uploads.path(ctx.project_id, body.upload_id)
    version = s.models.register(
        ctx,
        name,
        artifact=staged,
        format=body.format,
        run_id=body.run_id,
        signature=body.signature,
        metrics=body.metrics,
        description=body.description,
        tags=body.tags,
    )
    s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(version, 201)


@router.get("/{name}/versions")
def list_versions(name: ModelName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.models.versions(ctx, name))


@router.get("/{name}/latest")
def latest_version(name: ModelName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.models.version(ctx, name, None))


@router.get("/{name}/versions/{selector}")
def get_version(name: ModelName, selector: Selector, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.models.version(ctx, name, _selector(selector)))


@router.patch("/{name}/versions/{version}")
def update_version(
    name: ModelName, version: VersionNo, body: DescriptionBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    return ok(
        s.models.update_version(
            ctx,
            name,
            version,
            description=body.description,
            expected_row_version=body.expected_row_version,
        )
    )


@router.get("/{name}/versions/{selector}/artifact")
def read_artifact(name: ModelName, selector: Selector, ctx: Caller, s: ServicesDep) -> Response:
    found = s.models.version(ctx, name, _selector(selector))
    data = s.models.read_artifact(ctx, name, found.version)
    return download(data, f"{found.model}-{found.version}.{found.format}")


@router.get("/{name}/versions/{selector}/package")
def package(name: ModelName, selector: Selector, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """The version's package sidecar: signature, example, environment lock, provenance."""
    return ok(s.models.package(ctx, name, _selector(selector)))


@router.put("/{name}/aliases/{alias}")
def set_alias(
    name: ModelName, alias: Alias, body: AliasBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    move = s.models.set_alias(
        ctx, name, alias, body.version, reason=body.reason, expected_current=body.expected_current
    )
    return ok(move)


@router.delete("/{name}/aliases/{alias}")
def delete_alias(
    name: ModelName,
    alias: Alias,
    ctx: Caller,
    s: ServicesDep,
    reason: Annotated[str, Query(max_length=10_000)] = "",
) -> JSONResponse:
    s.models.delete_alias(ctx, name, alias, reason=reason)
    return ok({"alias": alias, "version": None})


@router.post("/{name}/aliases/{alias}/rollback")
def rollback(
    name: ModelName, alias: Alias, body: ReasonBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    return ok(s.models.rollback(ctx, name, alias, reason=body.reason))


@router.get("/{name}/history")
def alias_history(
    name: ModelName,
    ctx: Caller,
    s: ServicesDep,
    alias: Annotated[str | None, Query(max_length=128)] = None,
) -> JSONResponse:
    return ok(s.models.alias_history(ctx, name, alias))
