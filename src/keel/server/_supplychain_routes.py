"""Routes of the model supply chain: signatures, ML-BOMs, environment audits, scans, quarantine.

They run the workspace's ``SupplyChain`` face over the server's own services, so a remote
``ws.supplychain`` does exactly what a local one does.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from keel.errors import InvalidInputError
from keel.governance import Context, Permission, SupplyChainService
from keel.server._deps import Caller, Services, ServicesDep, ok
from keel.workspace._policies import SupplyChain
from keel.workspace._workspace import Runs

if TYPE_CHECKING:
    from keel.governance import ModelSigner

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}/supplychain", tags=["supply chain"])
ModelName = Annotated[str, Path(min_length=1, max_length=256)]
Selector = Annotated[
    str, Path(min_length=1, max_length=128, description="A number, an alias or 'latest'.")
]
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _selector(text: str) -> int | str | None:
    """A version number, an alias, or ``latest`` (the newest version)."""
    if text == "latest":
        return None
    return int(text) if text.isdigit() and len(text) < 10 else text


def _face(request: Request, s: Services, ctx: Context) -> SupplyChain:
    """The supply-chain face bound to the caller (its service built once per app)."""
    from keel.governance import ModelSigner

    state = request.app.state
    service = s.supplychain or getattr(state, "keel_supplychain", None)
    if service is None:
        signer: ModelSigner = ModelSigner.from_settings(s.settings)
        service = SupplyChainService(s.governor, s.blobs, s.policies, signer)
        state.keel_supplychain = service
    return SupplyChain(service, s.models, Runs(s.runs, ctx), ctx)


class ScanBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    upload_id: Annotated[str, Field(min_length=1, max_length=64)]
    filename: Annotated[str, Field(min_length=1, max_length=128)]
    name: Annotated[str, Field(min_length=1, max_length=256)] = "model"


@router.get("/models/{name}/versions/{version}/signature")
def verify(
    name: ModelName, version: Selector, request: Request, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """Verify a version's signature (409 if it is missing or wrong)."""
    return ok(_face(request, s, ctx).verify(name, _selector(version)).to_dict())


@router.post("/models/{name}/versions/{version}/sign")
def sign(
    name: ModelName, version: Selector, request: Request, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """Sign a version registered before signing existed."""
    return ok(_face(request, s, ctx).sign(name, _selector(version)).to_dict())


@router.get("/models/{name}/versions/{version}/bom")
def bom(
    name: ModelName, version: Selector, request: Request, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """The CycloneDX 1.6 ML-BOM of a version."""
    return ok(_face(request, s, ctx).bom(name, _selector(version)))


@router.get("/models/{name}/versions/{version}/environment-audit")
def audit_environment(
    name: ModelName, version: Selector, request: Request, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """pip-audit of the packages recorded by the run that produced the version."""
    return ok(_face(request, s, ctx).audit_environment(name, _selector(version)).to_dict())


@router.get("/quarantine")
def quarantined(
    request: Request,
    ctx: Caller,
    s: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> JSONResponse:
    return ok(_face(request, s, ctx).quarantined(limit=limit))


@router.post("/scan", status_code=201)
def scan(body: ScanBody, request: Request, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Scan a staged upload (a pickle or joblib file) and quarantine or release it."""
    s.governor.check(ctx, Permission.MODEL_WRITE, action="supplychain.scan", object_type="file")
    if _FILENAME.fullmatch(body.filename) is None:
        raise InvalidInputError(
            f"Invalid file name {body.filename[:40]!r}: give the base name only (letters, "
            "digits, '.', '_', '-'), e.g. model.joblib.",
            field="filename",
        )
    staged = s.uploads.path(ctx.project_id, body.upload_id)
    with tempfile.TemporaryDirectory(prefix="keel-scan-upload-") as scratch:
        target = FsPath(scratch) / body.filename
        shutil.copyfile(staged, target)
        result = _face(request, s, ctx).scan(target, name=body.name)
    s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(result, 201)
