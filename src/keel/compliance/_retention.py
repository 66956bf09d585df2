"""Retention enforced: data kept past its retention is erased.

A version expires ``retention_days`` after it was created (the dataset's record of
processing). A part expires with the version that first introduced it: an append reuses
its parent's parts, so the rows of a part are as old as the first version that held them,
however new the versions that still reference it. The run:

1. plan: the expired versions, the expired parts, and the live versions that reuse an
   expired part (they hold expired rows);
2. untag the expired versions;
3. rewrite each live version that reuses an expired part and carries a tag or is its
   dataset's newest: a replacement without the expired parts (a transform of kind
   ``retention``), which its tags move to; other such versions are erased without one;
4. check, under the datasets' lock, that no version committed meanwhile references an
   expired part (if some did, they join the plan and 3-4 repeat), then crypto-shred the
   expired parts;
5. record the versions as erased, redact their statistics, tag models trained on them
   ``keel.retrain``, store the report and audit it.

``dry_run`` plans and audits without changing anything. An interrupted run resumes from
its stored plan.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from keel import clock
from keel.compliance._common import (
    drop_erased_elsewhere,
    flag_models,
    newest_user_version,
    record_erased,
    redact_versions,
    retag,
    shred_parts,
)
from keel.compliance._gaps import use_notes
from keel.compliance._model import ErasedVersion, ErasureReport
from keel.governance import Context, Governor, Permission, retention_due
from keel.store import ComplianceRepository, DatasetRepository, ErasureRepository
from keel.store._schema_data import DatasetVersionRow
from keel.types import new_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.blobs import BlobStore
    from keel.compliance._subjects import Progress
    from keel.data import DatasetService

__all__ = ["RetentionEnforcer"]

_ROUNDS = 20


def _affected(
    session: Session,
    ctx: Context,
    version_ids: set[str],
    expired: dict[str, set[str]],
    rows_of: dict[str, Any],
    erasure_id: str,
) -> list[dict[str, Any]]:
    """Plan entries of live versions that reuse parts expired in their dataset."""
    datasets = DatasetRepository(session, ctx.project_id)
    names = {d.id: d.name for d in datasets.datasets()}
    out = []
    for version_id in sorted(version_ids):
        row = rows_of.get(version_id) or datasets.version_by_id(version_id)
        if row is None:
            continue
        tags = datasets.tags(row.dataset_id)
        on = sorted(t for t, n in tags.items() if n == row.version)
        parts = expired.get(names[row.dataset_id], set())
        held = [p for p in row.manifest.get("parts", []) if p["digest"] in parts]
        out.append(
            {
                "id": row.id,
                "dataset": names[row.dataset_id],
                "version": row.version,
                "rows": sum(int(p.get("rows", 0)) for p in held),
                "expired_at": None,
                "tags": on,
                "rewrite": bool(on)
                or row.version == newest_user_version(datasets, row.dataset_id, erasure_id),
            }
        )
    return out


def _expiry(
    session: Session,
    ctx: Context,
    digests: list[str] | None,
    days: dict[str, int | None],
    now: datetime,
    erased: set[str],
) -> tuple[dict[str, set[str]], set[str], dict[str, list[str]], list[tuple[str, str, str]]]:
    """Which blobs have expired where.

    A blob is as old, in a dataset, as the first version of that dataset that referenced it
    (an append reuses its parent's parts, so its rows are that old). It has expired in a
    dataset whose retention has passed since then. Identical bytes in another dataset are
    that dataset's data, under its own retention: the blob is destroyed only when it has
    expired in every dataset whose live versions reference it.

    Returns the blobs expired per dataset, the blobs to destroy, the blobs kept for other
    datasets (with those datasets), and the live ``(version_id, dataset, digest)`` references.
    """
    repo = ErasureRepository(session, ctx.project_id)
    refs = repo.part_refs(digests, any_role=True) if digests is None or digests else []
    stmt = select(
        DatasetVersionRow.id, DatasetVersionRow.dataset_id, DatasetVersionRow.created_at
    ).where(DatasetVersionRow.project_id == ctx.project_id)
    names = {d.id: d.name for d in DatasetRepository(session, ctx.project_id).datasets()}
    place = {v: (names.get(d, ""), at) for v, d, at in session.execute(stmt)}
    first: dict[tuple[str, str], datetime] = {}
    for version_id, digest in refs:
        dataset, at = place[version_id]
        if (dataset, digest) not in first or at < first[(dataset, digest)]:
            first[(dataset, digest)] = at
    expired: dict[str, set[str]] = {}
    for (dataset, digest), at in first.items():
        limit = days.get(dataset)
        if limit is not None and at + timedelta(days=limit) <= now:
            expired.setdefault(dataset, set()).add(digest)
    live = [(v, place[v][0], d) for v, d in refs if v not in erased]
    holders: dict[str, set[str]] = {}
    for _, dataset, digest in live:
        holders.setdefault(digest, set()).add(dataset)
    gone = {d for ds in expired.values() for d in ds if d in holders}
    doomed = {d for d in gone if all(d in expired.get(x, set()) for x in holders[d])}
    kept = {
        d: sorted(x for x in holders[d] if d not in expired.get(x, set()))
        for d in sorted(gone - doomed)
    }
    return expired, doomed, kept, live


def _expired_in(plan: dict[str, Any], item: dict[str, Any]) -> set[str]:
    """The blobs expired in the dataset of a plan entry (older plans: every expired part)."""
    if "expired" not in plan:
        return set(plan["parts"])
    return set(plan["expired"].get(item["dataset"], []))


class RetentionEnforcer:
    """Plans and runs retention (internal; ``ErasureService.enforce_retention`` authorizes)."""

    def __init__(self, gov: Governor, blobs: BlobStore, datasets: DatasetService) -> None:
        self._gov, self._blobs, self._datasets = gov, blobs, datasets

    def plan(self, ctx: Context, now: datetime) -> dict[str, Any]:
        with self._gov.db.read() as session:
            days = {
                r.dataset: r.retention_days
                for r in ComplianceRepository(session, ctx.project_id).records()
            }
            erasures = ErasureRepository(session, ctx.project_id)
            erased = erasures.erased_versions()
            datasets = DatasetRepository(session, ctx.project_id)
            rows: dict[tuple[str, int], Any] = {}
            by_id: dict[str, Any] = {}
            for dataset in datasets.datasets():
                for row in datasets.versions(dataset.id):
                    rows[(dataset.name, row.version)] = row
                    by_id[row.id] = (dataset.name, row)
            due = retention_due(
                [(d, n, r.created_at) for (d, n), r in rows.items() if r.id not in erased],
                days,
                now,
            )
            doomed = {rows[(i.dataset, i.version)].id for i in due}
            expired, parts, kept, live = _expiry(session, ctx, None, days, now, set(erased))
            reusing = {
                v for v, dataset, d in live if d in expired.get(dataset, set()) and v not in doomed
            }
            affected = _affected(
                session, ctx, reusing, expired, {i: r for i, (_, r) in by_id.items()}, ""
            )
            tags: dict[str, list[str]] = {}
            for item in due:
                row = rows[(item.dataset, item.version)]
                current = datasets.tags(row.dataset_id)
                tags[row.id] = sorted(t for t, n in current.items() if n == item.version)
        versions = [
            {
                "id": rows[(i.dataset, i.version)].id,
                "dataset": i.dataset,
                "version": i.version,
                "rows": int(rows[(i.dataset, i.version)].row_count),
                "expired_at": i.expired_at.isoformat(),
                "tags": tags[rows[(i.dataset, i.version)].id],
                "rewrite": False,
            }
            for i in due
        ]
        versions = sorted(versions + affected, key=lambda v: (v["dataset"], v["version"]))
        return {
            "subject": None,
            "versions": versions,
            "parts": sorted(parts),
            "expired": {d: sorted(x) for d, x in sorted(expired.items())},
            "kept": kept,
            "tags": {},
            "now": now.isoformat(),
        }

    def run(
        self,
        ctx: Context,
        erasure_id: str,
        plan: dict[str, Any],
        *,
        started_at: str,
        progress: Progress | None = None,
    ) -> ErasureReport:
        before = drop_erased_elsewhere(self._gov, ctx, erasure_id, plan)
        due = [v for v in plan["versions"] if v.get("expired_at") is not None]
        with self._gov.write(
            ctx, Permission.COMPLIANCE_ADMIN, "compliance.retention.untag", object_type="dataset"
        ) as work:
            repo = DatasetRepository(work.session, ctx.project_id)
            removed: list[str] = []
            for item in due:
                dataset = repo.dataset(item["dataset"])
                if dataset is None:
                    continue
                for tag, number in sorted(repo.tags(dataset.id).items()):
                    if number == item["version"] and repo.delete_tag(dataset.id, tag):
                        removed.append(f"{item['dataset']}:{tag}")
            work.object_id = erasure_id
            work.details = {"removed_tags": removed[:200]}
        replaced: dict[str, int] = {}
        moved: dict[str, list[str]] = {}
        outcomes: dict[str, int] | None = None
        for _ in range(_ROUNDS):
            for number, item in enumerate(plan["versions"], start=1):
                if item.get("rewrite") and item["id"] not in replaced:
                    made = self._rewrite(ctx, erasure_id, item, _expired_in(plan, item))
                    if made is not None:
                        replaced[item["id"]] = made
                if progress is not None:
                    progress("rewrite", number, len(plan["versions"]))
            rewritten = [v for v in plan["versions"] if v["id"] in replaced]
            retagged = {**plan, "versions": rewritten, "tags": {}}
            for version_id, tags in retag(self._gov, ctx, erasure_id, retagged, replaced).items():
                have = moved.setdefault(version_id, [])
                have.extend(t for t in tags if t not in have)
            outcomes = self._check_and_shred(ctx, erasure_id, plan, progress)
            if outcomes is not None:
                break
            with self._gov.db.write() as session:
                ErasureRepository(session, ctx.project_id).update_plan(erasure_id, plan)
        if outcomes is None:
            outcomes = shred_parts(self._blobs, ctx, plan["parts"], progress=progress)
        return self._finish(ctx, erasure_id, plan, replaced, moved, outcomes, started_at, before)

    def _check_and_shred(
        self, ctx: Context, erasure_id: str, plan: dict[str, Any], progress: Progress | None
    ) -> dict[str, int] | None:
        """Shred the expired parts unless a version committed meanwhile reuses them (then
        it joins the plan: None), or identical bytes of another dataset, still within its
        retention, now hold them (then they are kept). The datasets stay locked until the
        parts are shredded."""
        with self._gov.db.write() as session:
            datasets = DatasetRepository(session, ctx.project_id)
            for dataset in datasets.datasets():
                datasets.dataset(dataset.name, lock=True)
            erased = ErasureRepository(session, ctx.project_id).erased_versions()
            days = {
                r.dataset: r.retention_days
                for r in ComplianceRepository(session, ctx.project_id).records()
            }
            candidates = sorted(
                set(plan["parts"]) | {d for ds in plan.get("expired", {}).values() for d in ds}
            )
            now = datetime.fromisoformat(plan["now"])
            expired, parts, kept, live = _expiry(session, ctx, candidates, days, now, set(erased))
            plan["parts"] = sorted(parts)
            plan["expired"] = {d: sorted(x) for d, x in sorted(expired.items())}
            plan["kept"] = kept
            known = {v["id"] for v in plan["versions"]}
            fresh = {
                v for v, dataset, d in live if v not in known and d in expired.get(dataset, set())
            }
            if not fresh:
                return shred_parts(self._blobs, ctx, plan["parts"], progress=progress)
            added = _affected(session, ctx, fresh, expired, {}, erasure_id)
            plan["versions"] = sorted(
                plan["versions"] + added, key=lambda v: (v["dataset"], v["version"])
            )
            return None

    def _rewrite(
        self, ctx: Context, erasure_id: str, item: dict[str, Any], expired: set[str]
    ) -> int | None:
        """The replacement of a live version without its expired parts (found when
        resuming); None when nothing of it is left to keep."""
        import polars as pl

        for version in self._datasets.versions(ctx, item["dataset"]):
            transform = version.transform or {}
            if transform.get("erasure") == erasure_id and transform.get("input") == item["id"]:
                return version.version
        old = self._datasets.version(ctx, item["dataset"], item["version"])
        keep = [p for p in old.parts if p.digest not in expired]
        if not keep or old.kind != "table":  # a folder's files are not rewritten
            return None
        frames = [
            pl.read_parquet(io.BytesIO(self._blobs.get_bytes(p.digest, scope=ctx.project_id)))
            for p in keep
        ]
        new = self._datasets.commit_frame(
            ctx,
            item["dataset"],
            pl.concat(frames, how="vertical"),
            parent=old,
            transform={
                "id": new_id(),
                "kind": "retention",
                "erasure": erasure_id,
                "input": old.id,
                "removed_rows": old.row_count - sum(p.rows for p in keep),
            },
        )
        return new.version

    def _finish(
        self,
        ctx: Context,
        erasure_id: str,
        plan: dict[str, Any],
        replaced: dict[str, int],
        moved: dict[str, list[str]],
        outcomes: dict[str, int],
        started_at: str,
        before: list[str],
    ) -> ErasureReport:
        ids = [v["id"] for v in plan["versions"]]
        with self._gov.write(
            ctx, Permission.COMPLIANCE_ADMIN, "compliance.retention.enforce", object_type="erasure"
        ) as work:
            flagged = flag_models(
                work.session,
                self._gov,
                ctx,
                ids,
                erasure_id=erasure_id,
                reason="its training data passed its retention period",
                skip=set(),
            )
            record_erased(
                work.session,
                ctx,
                [
                    (v["id"], v["dataset"], v["version"], replaced.get(v["id"]))
                    for v in plan["versions"]
                ],
                erasure_id=erasure_id,
                reason="retention",
            )
            redact_versions(work.session, ctx, ids, set(plan["parts"]), replaced)
            erasures = ErasureRepository(work.session, ctx.project_id)
            erasures.drop_parts(plan["parts"])
            report = report_of(
                ctx,
                erasure_id,
                plan,
                started_at=started_at,
                parts=outcomes,
                flagged=flagged,
                replaced=replaced,
                moved=moved,
            )
            labels = {v["id"]: f"{v['dataset']}:{v['version']}" for v in plan["versions"]}
            news = {i: f"{labels[i].rpartition(':')[0]}:{n}" for i, n in replaced.items()}
            more = [*before, *use_notes(work.session, ctx, labels, news)]
            report = replace(report, notes=report.notes + tuple(more))
            erasures.update_plan(erasure_id, plan)
            erasures.finish(erasure_id, report.to_dict())
            work.object_id = erasure_id
            work.details = {
                "versions": [f"{v['dataset']}:{v['version']}" for v in plan["versions"]][:200],
                "parts": outcomes,
                "models_flagged": flagged[:200],
            }
        return report


def report_of(
    ctx: Context,
    erasure_id: str,
    plan: dict[str, Any],
    *,
    started_at: str,
    parts: dict[str, int] | None = None,
    flagged: list[str] | None = None,
    replaced: dict[str, int] | None = None,
    moved: dict[str, list[str]] | None = None,
    dry_run: bool = False,
) -> ErasureReport:
    """The report of a retention run (or of its plan, with ``dry_run``)."""
    notes = []
    if dry_run:
        notes.append(f"{len(plan['parts'])} part(s) would be crypto-shredded")
    reused = [v for v in plan["versions"] if v.get("expired_at") is None]
    if reused:
        done = replaced or {}
        if dry_run:
            rewritten = [v for v in reused if v.get("rewrite")]
            dropped = [v for v in reused if not v.get("rewrite")]
        else:
            rewritten = [v for v in reused if v["id"] in done]
            dropped = [v for v in reused if v["id"] not in done]
        verb = "would be" if dry_run else "were"
        named = ", ".join(
            f"{v['dataset']}:{v['version']}"
            + (f" (now {v['dataset']}:{done[v['id']]})" if v["id"] in done else "")
            for v in rewritten[:50]
        )
        lost = ", ".join(f"{v['dataset']}:{v['version']}" for v in dropped[:50])
        notes.append(
            "not expired themselves but reusing expired parts (appends keep their parent's "
            f"parts); {verb} rewritten without those rows: {named or 'none'}; {verb} erased "
            "without a replacement (untagged and not their dataset's newest, or nothing left "
            f"once the expired rows are removed): {lost or 'none'}"
        )
    kept = plan.get("kept") or {}
    if kept:
        holders = sorted({d for names in kept.values() for d in names})
        notes.append(
            f"{len(kept)} expired part(s) {'would be' if dry_run else 'were'} kept, not "
            "shredded: the same bytes are data of other datasets whose retention has not "
            "passed, and stay readable there: " + ", ".join(holders[:50])
        )
    return ErasureReport(
        id=erasure_id,
        kind="retention",
        subject=None,
        state="planned" if dry_run else "done",
        dry_run=dry_run,
        requested_by=ctx.principal,
        started_at=started_at,
        finished_at=None if dry_run else clock.now().isoformat(),
        versions=tuple(
            ErasedVersion(
                dataset=v["dataset"],
                version=v["version"],
                rows_removed=v["rows"],
                replaced_by=(replaced or {}).get(v["id"]),
                tags_moved=tuple((moved or {}).get(v["id"], ())),
            )
            for v in plan["versions"]
        ),
        parts=parts or {},
        models_flagged=tuple(flagged or ()),
        notes=tuple(notes),
    )
