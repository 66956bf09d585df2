"""Routes of GDPR / UAE PDPL duties: records of processing, regions, subjects, retention.

A subject id travels only in JSON bodies (POST), never in a URL, so it never lands in an
access log or the request audit's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from keel.compliance import ErasureService
from keel.governance import ComplianceService
from keel.server._deps import Caller, Services, ok

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}/compliance", tags=["compliance"])
Name = Annotated[str, Path(min_length=1, max_length=256)]
Short = Annotated[str, Field(max_length=64)]


@dataclass(frozen=True, slots=True)
class _Wired:
    records: ComplianceService
    erasure: ErasureService


def _wired(request: Request) -> _Wired:
    """The compliance services, built once per app over the server's own services."""
    state = request.app.state
    found: _Wired | None = getattr(state, "keel_compliance", None)
    if found is None:
        s: Services = state.services
        erasure = ErasureService(s.governor, s.blobs, s.datasets)
        found = _Wired(ComplianceService(s.governor), erasure)
        state.keel_compliance = found
    return found


class DeclareBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    purpose: Annotated[str, Field(min_length=1, max_length=2000)]
    lawful_basis: Short
    categories: Annotated[list[Short], Field(max_length=50)] = []
    subjects: Annotated[list[Short], Field(max_length=50)] = []
    allowed_regions: Annotated[list[Short], Field(max_length=50)] = []
    retention_days: Annotated[int | None, Field(ge=1, le=36_500)] = None
    subject_column: Annotated[str | None, Field(min_length=1, max_length=250)] = None


class LocationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Short
    region: Short


class SubjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    subject: Annotated[str, Field(min_length=1, max_length=1000)]


class EraseBody(SubjectBody):
    dry_run: bool = False


class RetentionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dry_run: bool = False
    now: datetime | None = None


@router.get("/records")
def records(request: Request, ctx: Caller) -> JSONResponse:
    """The records-of-processing report (every dataset, declared or not)."""
    return ok([r.to_dict() for r in _wired(request).records.records(ctx)])


@router.put("/records/{dataset}")
def declare(dataset: Name, body: DeclareBody, request: Request, ctx: Caller) -> JSONResponse:
    """Create or replace the record of processing of ``dataset``."""
    record = _wired(request).records.declare(ctx, dataset, **body.model_dump())
    return ok(record.to_dict())


@router.get("/locations")
def locations(request: Request, ctx: Caller) -> JSONResponse:
    return ok([loc.to_dict() for loc in _wired(request).records.locations(ctx)])


@router.put("/locations/{name}")
def set_location(name: Name, body: LocationBody, request: Request, ctx: Caller) -> JSONResponse:
    found = _wired(request).records.set_location(ctx, name, kind=body.kind, region=body.region)
    return ok(found.to_dict())


@router.get("/retention")
def retention(
    request: Request, ctx: Caller, now: Annotated[datetime | None, Query()] = None
) -> JSONResponse:
    """Dataset versions kept past their retention (a report; enforcing is a POST)."""
    return ok([i.to_dict() for i in _wired(request).records.retention(ctx, now=now)])


@router.post("/retention/enforce")
def enforce_retention(body: RetentionBody, request: Request, ctx: Caller) -> JSONResponse:
    """Erase the dataset versions past their retention (``dry_run`` plans only)."""
    report = _wired(request).erasure.enforce_retention(ctx, dry_run=body.dry_run, now=body.now)
    return ok(report.to_dict())


@router.post("/subjects/locate")
def locate(body: SubjectBody, request: Request, ctx: Caller) -> JSONResponse:
    """The dataset versions holding a data subject."""
    return ok([loc.to_dict() for loc in _wired(request).erasure.locate(ctx, body.subject)])


@router.post("/subjects/erase")
def erase(body: EraseBody, request: Request, ctx: Caller) -> JSONResponse:
    """Erase a data subject (resumes an interrupted erasure)."""
    report = _wired(request).erasure.erase(ctx, body.subject, dry_run=body.dry_run)
    return ok(report.to_dict())


@router.post("/subjects/access")
def access(body: SubjectBody, request: Request, ctx: Caller) -> JSONResponse:
    """What is held about a data subject (the client writes the zip)."""
    return ok(_wired(request).erasure.access(ctx, body.subject).to_dict())


@router.get("/erasures")
def erasures(
    request: Request, ctx: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> JSONResponse:
    return ok([r.to_dict() for r in _wired(request).erasure.erasures(ctx, limit=limit)])


@router.get("/erasures/{erasure_id}")
def erasure(
    erasure_id: Annotated[str, Path(min_length=1, max_length=64)], request: Request, ctx: Caller
) -> JSONResponse:
    return ok(_wired(request).erasure.erasure(ctx, erasure_id).to_dict())
