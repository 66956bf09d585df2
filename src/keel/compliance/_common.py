"""Steps shared by subject erasure and retention: flag models, redact, record, shred."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keel.governance import Context, Governor, Permission
from keel.lineage import LineageService, Node
from keel.store import (
    DatasetRepository,
    ErasureRepository,
    LineageRepository,
    RegistryRepository,
)
from keel.store._schema import ModelVersionRow, RegisteredModelRow
from keel.store._schema_data import DatasetVersionRow

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.compliance._subjects import Progress

__all__ = [
    "RETRAIN_TAG",
    "drop_erased_elsewhere",
    "flag_models",
    "newest_user_version",
    "plan_items",
    "redact_versions",
    "retag",
    "shred_parts",
]

#: The model-version tag that asks for retraining (visible in `keel models show`).
RETRAIN_TAG = "keel.retrain"
_DEPTH = 8


def models_downstream(
    session: Session, ctx: Context, version_ids: Iterable[str], *, skip: set[tuple[str, str]]
) -> list[str]:
    """Model version ids downstream of these dataset versions in the lineage graph."""
    repo = LineageRepository(session, ctx.project_id)
    seen = {("dataset_version", v) for v in version_ids}
    frontier = list(seen)
    found: list[str] = []
    for _ in range(_DEPTH):
        if not frontier:
            break
        nxt: list[tuple[str, str]] = []
        for edge in repo.edges_touching(frontier, direction="down"):
            node = (edge.dst_type, edge.dst_id)
            if node in seen or node in skip:
                continue
            seen.add(node)
            nxt.append(node)
            if node[0] == "model_version":
                found.append(node[1])
        frontier = nxt
    return found


def flag_models(
    session: Session,
    gov: Governor,
    ctx: Context,
    version_ids: Sequence[str],
    *,
    erasure_id: str,
    reason: str,
    skip: set[tuple[str, str]],
) -> list[str]:
    """Tag every model version trained on these versions ``keel.retrain`` and audit it."""
    flagged: list[str] = []
    registry = RegistryRepository(session, ctx.project_id)
    for model_version_id in models_downstream(session, ctx, version_ids, skip=skip):
        row = session.execute(
            select(ModelVersionRow, RegisteredModelRow.name)
            .join(RegisteredModelRow, RegisteredModelRow.id == ModelVersionRow.model_id)
            .where(
                ModelVersionRow.id == model_version_id,
                RegisteredModelRow.project_id == ctx.project_id,
            )
        ).first()
        if row is None:
            continue
        version, name = row
        value = f"required: {reason} (erasure {erasure_id})"
        if registry.version_tags(version.id).get(RETRAIN_TAG) != value:
            registry.set_version_tag(version.id, RETRAIN_TAG, value)
            gov.audit.append(
                session,
                ctx,
                "model.flag_retrain",
                object_type="model_version",
                object_id=version.id,
                details={"model": name, "version": version.version, "erasure": erasure_id},
            )
        flagged.append(f"{name}:{version.version}")
    return sorted(set(flagged))


def redact_versions(
    session: Session,
    ctx: Context,
    version_ids: Iterable[str],
    erased_parts: set[str],
    replaced: dict[str, int] | None = None,
) -> None:
    """Drop the statistics (min/max can be a subject's value) of erased versions and parts;
    mark them erased (and what replaced them) for readers of the version."""
    for version_id in version_ids:
        row = session.get(DatasetVersionRow, version_id)
        if row is None or row.project_id != ctx.project_id:
            continue
        manifest: dict[str, Any] = dict(row.manifest)
        manifest["stats"] = {}
        manifest["parts"] = [
            {**p, "stats": {}} if p.get("digest") in erased_parts else p
            for p in manifest.get("parts", [])
        ]
        manifest["erased"] = True
        if replaced and version_id in replaced:
            manifest["replaced_by"] = replaced[version_id]
        row.manifest = manifest
    session.flush()


def shred_parts(
    blobs: BlobStore, ctx: Context, digests: Sequence[str], *, progress: Progress | None
) -> dict[str, int]:
    """Crypto-shred (or delete) each part; count the outcomes."""
    counts = {"shredded": 0, "deleted": 0, "absent": 0}
    for number, digest in enumerate(sorted(digests), start=1):
        counts[blobs.shred(digest, scope=ctx.project_id)] += 1
        if progress is not None:
            progress("shred", number, len(digests))
    return counts


def record_erased(
    session: Session,
    ctx: Context,
    versions: Iterable[tuple[str, str, int, int | None]],
    *,
    erasure_id: str,
    reason: str,
) -> None:
    """Remember ``(version_id, dataset, version, replaced_by)`` as erased, and record it in
    the lineage graph (``dataset_version —erased→ erasure``), replaced or not."""
    repo = ErasureRepository(session, ctx.project_id)
    for version_id, dataset, number, replaced_by in versions:
        repo.mark_erased(
            version_id,
            erasure_id=erasure_id,
            dataset=dataset,
            version=number,
            replaced_by=replaced_by,
            reason=reason,
        )
        LineageService.link(
            session,
            ctx,
            Node("dataset_version", version_id),
            Node("erasure", erasure_id),
            "erased",
            details={"reason": reason, "replaced_by": replaced_by},
        )


def plan_items(
    session: Session,
    ctx: Context,
    version_ids: list[str],
    parts: dict[str, int],
    *,
    erasure_id: str,
    columns: Mapping[str, str],
) -> list[dict[str, Any]]:
    """The plan entries of these versions: dataset, number, subject column (``columns``:
    per version id, where the index can search it), tags, rows."""
    repo = DatasetRepository(session, ctx.project_id)
    names = {d.id: d.name for d in repo.datasets()}
    tags: dict[str, dict[str, int]] = {}
    newest: dict[str, int] = {}
    items: list[dict[str, Any]] = []
    for version_id in sorted(set(version_ids)):
        row = repo.version_by_id(version_id)
        if row is None:
            continue
        dataset = names[row.dataset_id]
        current = tags.setdefault(dataset, repo.tags(row.dataset_id))
        if dataset not in newest:
            newest[dataset] = newest_user_version(repo, row.dataset_id, erasure_id)
        column = columns.get(row.id)
        schema = {c[0] for c in row.manifest.get("schema", [])}
        on = sorted(t for t, n in current.items() if n == row.version)
        items.append(
            {
                "id": row.id,
                "dataset": dataset,
                "version": row.version,
                # None: a version the index cannot search shares a part with the subject
                # (identical bytes in a dataset that declares no subject column)
                "column": column if column and column in schema and row.kind == "table" else None,
                "tags": on,
                "rewrite": bool(on) or row.version == newest[dataset],
                "rows": sum(parts.get(p["digest"], 0) for p in row.manifest.get("parts", [])),
            }
        )
    return items


def newest_user_version(repo: DatasetRepository, dataset_id: str, erasure_id: str) -> int:
    """The highest version number that is not a replacement written by this erasure."""
    numbers = [
        r.version
        for r in repo.versions(dataset_id)
        if not (r.transform and r.transform.get("erasure") == erasure_id and erasure_id)
    ]
    return max(numbers, default=0)


def retag(
    gov: Governor, ctx: Context, erasure_id: str, plan: dict[str, Any], replaced: dict[str, int]
) -> dict[str, list[str]]:
    """Move the tags of replaced versions to their replacements; ``latest`` goes to the
    newest version someone committed (its replacement, if it was replaced)."""
    moved: dict[str, list[str]] = {}
    by_number = {
        (v["dataset"], v["version"]): v["id"] for v in plan["versions"] if v["id"] in replaced
    }
    with gov.write(
        ctx, Permission.COMPLIANCE_ADMIN, "compliance.retag", object_type="dataset"
    ) as work:
        repo = DatasetRepository(work.session, ctx.project_id)
        changes: list[str] = []
        for name in sorted({v["dataset"] for v in plan["versions"]}):
            dataset = repo.dataset(name, lock=True)
            if dataset is None:
                continue
            mine = {n: replaced[i] for (d, n), i in by_number.items() if d == name}
            for tag, number in sorted(repo.tags(dataset.id).items()):
                if tag == "latest":
                    newest = newest_user_version(repo, dataset.id, erasure_id)
                    target = mine.get(newest, newest)
                    if newest in mine:
                        moved.setdefault(by_number[(name, newest)], []).append(tag)
                    # only ever away from this erasure's replacements or forward
                    if number not in set(mine.values()) and number >= target:
                        continue
                elif number in mine:
                    target = mine[number]
                    moved.setdefault(by_number[(name, number)], []).append(tag)
                else:
                    continue
                if target != number and target > 0:
                    repo.set_tag(dataset.id, tag, target)
                    changes.append(f"{name}:{tag}:{number}->{target}")
            for number, new_number in mine.items():
                old = repo.version(dataset.id, number)
                new = repo.version(dataset.id, new_number)
                if old is not None and new is not None and old.published:
                    new.published = True
        work.session.flush()
        work.object_id = erasure_id
        work.details = {"moved": changes[:200]}
    return moved


def drop_erased_elsewhere(
    gov: Governor, ctx: Context, erasure_id: str, plan: dict[str, Any]
) -> list[str]:
    """Leave out of a plan the versions another erasure has erased since it was made (two
    requests at once: the second planned before the first ended), so that nothing erased
    is read, rewritten or replaced again; the plan is stored again. A note says which."""
    with gov.db.write() as session:
        repo = ErasureRepository(session, ctx.project_id)
        erased = repo.erased_versions()
        gone = [
            v
            for v in plan["versions"]
            if v["id"] in erased and erased[v["id"]].erasure_id != erasure_id
        ]
        if not gone:
            return []
        plan["versions"] = [v for v in plan["versions"] if v not in gone]
        repo.update_plan(erasure_id, plan)
        by = sorted({erased[v["id"]].erasure_id for v in gone})
    return [
        f"already erased by {', '.join(by)} (a request that ran at the same time): "
        + ", ".join(f"{v['dataset']}:{v['version']}" for v in gone[:50])
    ]
