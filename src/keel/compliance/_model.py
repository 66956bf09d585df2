"""Values the compliance services return: where a subject is, erasure and access reports."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AccessExport",
    "ErasedVersion",
    "ErasureReport",
    "SubjectLocation",
    "render_erasure",
    "write_access_zip",
]


@dataclass(frozen=True, slots=True)
class SubjectLocation:
    """A dataset version that holds (or held) rows of a data subject."""

    dataset: str
    version: int
    rows: int
    erased: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ErasedVersion:
    """A version whose data was erased, and what replaced it."""

    dataset: str
    version: int
    rows_removed: int
    replaced_by: int | None
    tags_moved: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tags_moved"] = list(self.tags_moved)
        return out


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What an erasure (of a subject, or of versions past retention) did.

    ``subject`` is the keyed hash of the subject id, never the id itself.
    """

    id: str
    kind: str
    subject: str | None
    state: str
    dry_run: bool
    requested_by: str
    started_at: str
    finished_at: str | None
    versions: tuple[ErasedVersion, ...]
    parts: dict[str, int]
    models_flagged: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "state": self.state,
            "dry_run": self.dry_run,
            "requested_by": self.requested_by,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "versions": [v.to_dict() for v in self.versions],
            "parts": dict(self.parts),
            "models_flagged": list(self.models_flagged),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErasureReport:
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            subject=data.get("subject"),
            state=str(data["state"]),
            dry_run=bool(data.get("dry_run", False)),
            requested_by=str(data.get("requested_by", "")),
            started_at=str(data.get("started_at", "")),
            finished_at=data.get("finished_at"),
            versions=tuple(
                ErasedVersion(
                    dataset=str(v["dataset"]),
                    version=int(v["version"]),
                    rows_removed=int(v.get("rows_removed", 0)),
                    replaced_by=v.get("replaced_by"),
                    tags_moved=tuple(v.get("tags_moved", ())),
                )
                for v in data.get("versions", [])
            ),
            parts={str(k): int(v) for k, v in (data.get("parts") or {}).items()},
            models_flagged=tuple(data.get("models_flagged", ())),
            notes=tuple(data.get("notes", ())),
        )


def render_erasure(report: ErasureReport) -> str:
    """The human-readable erasure report."""
    title = "Erasure of a data subject" if report.kind == "subject" else "Retention enforcement"
    lines = [
        f"{title}{' (dry run: nothing was changed)' if report.dry_run else ''}",
        f"  erasure id:    {report.id}",
    ]
    if report.subject:
        lines.append(f"  subject (keyed hash): {report.subject}")
    lines += [
        f"  requested by:  {report.requested_by}",
        f"  started:       {report.started_at}",
        f"  finished:      {report.finished_at or '-'}",
        f"  state:         {report.state}",
        "",
        f"Dataset versions erased: {len(report.versions)}",
    ]
    for v in report.versions:
        moved = f"; tags moved: {', '.join(v.tags_moved)}" if v.tags_moved else ""
        target = f"replaced by version {v.replaced_by}" if v.replaced_by else "not replaced"
        lines.append(
            f"  - {v.dataset} v{v.version}: {v.rows_removed} row(s) removed, {target}{moved}"
        )
    parts = ", ".join(f"{k}: {n}" for k, n in sorted(report.parts.items())) or "none"
    lines += ["", f"Parts: {parts}"]
    lines.append(f"Models flagged for retraining: {len(report.models_flagged)}")
    lines += [f"  - {m}" for m in report.models_flagged]
    if report.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class AccessExport:
    """What is held about one data subject (GDPR art. 15, PDPL art. 13).

    ``rows`` maps ``"<dataset>@<version>"`` to the subject's rows in that version, and
    ``sources`` each such key to where those rows came from (the version's source, or the
    version it was derived from and how). ``rejected`` holds the lines an ingest could not
    read that mention the subject, ``predictions`` the logged predictions whose inputs
    name the subject (with their ground-truth labels). ``notes`` says what was not searched.
    """

    subject: str
    generated_at: str
    locations: tuple[SubjectLocation, ...]
    rows: dict[str, list[dict[str, Any]]]
    models: tuple[str, ...]
    records: tuple[dict[str, Any], ...]
    erasures: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    predictions: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "generated_at": self.generated_at,
            "locations": [loc.to_dict() for loc in self.locations],
            "rows": {k: list(v) for k, v in self.rows.items()},
            "sources": {k: dict(v) for k, v in self.sources.items()},
            "rejected": {k: list(v) for k, v in self.rejected.items()},
            "predictions": list(self.predictions),
            "models": list(self.models),
            "records": list(self.records),
            "erasures": list(self.erasures),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessExport:
        return cls(
            subject=str(data["subject"]),
            generated_at=str(data["generated_at"]),
            locations=tuple(SubjectLocation(**loc) for loc in data.get("locations", [])),
            rows={str(k): list(v) for k, v in (data.get("rows") or {}).items()},
            models=tuple(data.get("models", ())),
            records=tuple(data.get("records", ())),
            erasures=tuple(data.get("erasures", ())),
            notes=tuple(data.get("notes", ())),
            sources={str(k): dict(v) for k, v in (data.get("sources") or {}).items()},
            rejected={str(k): list(v) for k, v in (data.get("rejected") or {}).items()},
            predictions=tuple(data.get("predictions") or ()),
        )


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_access_zip(export: AccessExport, path: str | os.PathLike[str]) -> Path:
    """Write ``export`` as a zip, atomically: ``subject.json`` (everything, machine-readable),
    one CSV per version under ``rows/`` (and ``rejected/``), ``predictions.csv``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # personal data: a private (0600), unpredictable temporary file in the target folder,
    # flushed to disk, then renamed; removed if anything fails
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(handle, 0o600)
        with (
            os.fdopen(handle, "wb") as raw,
            zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            archive.writestr("subject.json", json.dumps(export.to_dict(), indent=2, default=str))
            for folder, tables in (("rows", export.rows), ("rejected", export.rejected)):
                for key, rows in sorted(tables.items()):
                    name = key.replace("@", "-v").replace("/", "_")
                    archive.writestr(f"{folder}/{name}.csv", _csv(rows))
            if export.predictions:
                flat = [
                    {**p, "inputs": json.dumps(p.get("inputs"), default=str)}
                    for p in export.predictions
                ]
                archive.writestr("predictions.csv", _csv(flat))
            archive.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
