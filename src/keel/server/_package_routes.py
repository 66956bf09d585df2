"""Routes of model packages: register one built by a remote client, download any stored format.

A remote ``ws.models.log_model`` builds the package (safe formats and the sidecar) where the
model object is, stages its files with ``POST .../uploads`` and registers them here. The server
loads each format with its safe loader and checks that it reproduces the stored example before
anything is stored, and the registration runs the same gates, scans and signing as local mode.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from keel.errors import IntegrityError, InvalidInputError, NotFoundError
from keel.governance import Permission
from keel.server._deps import Caller, ServicesDep, ok
from keel.server._downloads import download
from keel.tracking import ModelVersion

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}/models/{name}", tags=["models"])
ModelName = Annotated[str, Path(min_length=1, max_length=256)]
UploadId = Annotated[str, Field(min_length=1, max_length=64)]
Format = Annotated[str, Field(min_length=1, max_length=32)]


class PackageBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    upload_id: UploadId
    format: Format
    sidecar_upload_id: UploadId
    companions: Annotated[dict[Format, UploadId], Field(max_length=8)] = {}
    run_id: Annotated[str, Field(max_length=64)] | None = None
    metrics: dict[str, Any] | None = None
    description: Annotated[str, Field(max_length=10_000)] = ""
    tags: dict[Annotated[str, Field(min_length=1, max_length=250)], str] | None = None


def _selector(text: str) -> int | str:
    return int(text) if text.isdigit() and len(text) < 10 else text


@router.post("/packages", status_code=201, response_model=ModelVersion)
def register_package(
    name: ModelName, body: PackageBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """Register staged package files (artifact, sidecar, companions) as the next version."""
    from keel.tracking._packaging import ModelPackage, check_format, parse_sidecar

    s.governor.check(ctx, Permission.MODEL_WRITE, action="model.register", object_type="model")
    staged = {"artifact": body.upload_id, "sidecar": body.sidecar_upload_id}
    staged.update({f"companion:{fmt}": upload for fmt, upload in body.companions.items()})
    files = {what: s.uploads.path(ctx.project_id, upload) for what, upload in staged.items()}
    try:
        sidecar = parse_sidecar(files["sidecar"].read_bytes())
        package = ModelPackage(
            format=check_format(body.format),
            artifact=files["artifact"].read_bytes(),
            companions={
                check_format(fmt): files[f"companion:{fmt}"].read_bytes() for fmt in body.companions
            },
            sidecar=sidecar,
        )
        version = s.models.register_package(
            ctx,
            name,
            package,
            run_id=body.run_id,
            metrics=body.metrics,
            description=body.description,
            tags=body.tags,
            verify=True,
        )
    except IntegrityError as exc:  # the client's package, not the store, is inconsistent
        raise InvalidInputError(f"The uploaded model package does not verify: {exc}") from exc
    for upload in staged.values():
        s.uploads.discard(ctx.project_id, upload)
    return ok(version, 201)


@router.get("/versions/{selector}/formats/{format}")
def read_format(
    name: ModelName,
    selector: Annotated[str, Path(min_length=1, max_length=128)],
    format: Annotated[str, Path(min_length=1, max_length=32)],
    ctx: Caller,
    s: ServicesDep,
) -> Response:
    """A version in one of its stored formats (the artifact, or a companion such as ONNX)."""
    found = s.models.version(ctx, name, _selector(selector))
    if format == found.format:
        data = s.models.read_artifact(ctx, found.model, found.version)
        return download(data, f"{found.model}-{found.version}.{format}")
    companion = s.models.package(ctx, found.model, found.version).get("companions", {}).get(format)
    if not isinstance(companion, dict):
        raise NotFoundError(
            f"Model {found.model}:{found.version} is not stored as '{format[:32]}'.",
            model=found.model,
            version=found.version,
        )
    s.models.verify_signature(ctx, found)  # the version's signature, as for its artifact
    data = s.blobs.get_bytes(companion["digest"], scope=ctx.project_id)
    return download(data, f"{found.model}-{found.version}.{format}")
