"""Erase a data subject: new versions without their rows, old parts crypto-shredded.

The run is planned and the plan stored with the erasure, so an interrupted erasure resumes
where it stopped (``keel compliance erase`` again with the same subject):

1. plan: the parts that hold the subject (from the index) and every version that references
   them; the tags of those datasets, as they were;
2. rewrite: each affected version that carries a tag (``latest``, ``published`` or a user
   tag), or is its dataset's newest, gets a replacement written through the dataset service
   (a transform of kind ``erasure``, so lineage records it); a replacement already written
   is found, not redone;
3. retag: those tags move to the replacements (a replacement of a published version is
   published: it is a subset of rows that passed the gate); ``latest`` never moves back
   past a version someone else committed meanwhile;
4. check: the index is refreshed and, holding the affected datasets' rows locked (on
   PostgreSQL; SQLite serializes every writer), the parts holding the subject and the
   versions referencing them are looked up again. Versions committed during the run (an
   append that reused a part, new rows of the subject) join the plan and steps 2-4 repeat;
5. shred: still under that lock, each part that held the subject loses its dedicated data
   key and its file;
6. beyond the index: rejected-row samples that mention the subject are shredded whole;
   prediction logs are searched and the logged predictions that hold the subject counted
   (never rewritten: the report says they were not erased);
7. finish: erased versions are recorded (and linked to the erasure in the lineage graph),
   their statistics redacted, the index forgets the shredded parts, models trained on them
   are tagged ``keel.retrain``, the report is stored and the whole is audited. The report
   names what the search could not reach (datasets and derived versions it cannot search)
   and what used the erased versions (monitors, runs).

The subject is found under every text that stands for them: the id, and its pseudonyms
where a derived version's subject column was pseudonymized (see ``_derived``). Versions
another erasure of the subject erased since the plan was made are left out of it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.compliance._common import (
    drop_erased_elsewhere,
    flag_models,
    plan_items,
    record_erased,
    redact_versions,
    retag,
    shred_parts,
)
from keel.compliance._gaps import MATCHING, coverage_notes, prediction_note, use_notes
from keel.compliance._model import ErasedVersion, ErasureReport
from keel.compliance._scan import logged_predictions, mentions, rejected_lines
from keel.governance import Context, Governor, Permission
from keel.store import DatasetRepository, ErasureRepository
from keel.store._schema_data import DatasetVersionRow
from keel.types import new_id

if TYPE_CHECKING:
    import polars as pl

    from keel.blobs import BlobStore
    from keel.compliance._subjects import Coverage, Progress, SubjectIndex
    from keel.data import DatasetService, DatasetVersion

__all__ = ["Eraser"]

#: Rounds of "versions appeared during the run" before giving up with what is done.
MAX_ROUNDS = 20


class Eraser:
    """Runs subject erasures (internal; ``ErasureService.erase`` authorizes)."""

    def __init__(
        self, gov: Governor, blobs: BlobStore, datasets: DatasetService, index: SubjectIndex
    ) -> None:
        self._gov, self._blobs, self._datasets, self._index = gov, blobs, datasets, index

    def plan(self, ctx: Context, subject_hashes: list[str], coverage: Coverage) -> dict[str, Any]:
        parts, uses = self._index.locate(ctx, subject_hashes)
        columns = {r.id: r.column for r in coverage.refs}
        with self._gov.db.read() as session:
            versions = plan_items(
                session, ctx, [v for v, _ in uses], parts, erasure_id="", columns=columns
            )
            repo = DatasetRepository(session, ctx.project_id)
            tags = {
                d.name: repo.tags(d.id)
                for d in repo.datasets()
                if d.name in {v["dataset"] for v in versions}
            }
        versions.sort(key=lambda v: (v["dataset"], v["version"]))
        return {
            "parts": parts,
            "versions": versions,
            "tags": tags,
            "undeclared": coverage.not_searched,
        }

    def run(
        self,
        ctx: Context,
        subject: str,
        erasure_id: str,
        plan: dict[str, Any],
        *,
        started_at: str,
        progress: Progress | None = None,
    ) -> ErasureReport:
        parts: dict[str, int] = dict(plan["parts"])
        replaced: dict[str, int] = {}
        moved: dict[str, list[str]] = {}
        outcomes: dict[str, int] | None = None
        before = drop_erased_elsewhere(self._gov, ctx, erasure_id, plan)
        for _ in range(MAX_ROUNDS):
            coverage = self._index.covered(ctx)
            texts = set(self._index.keys(ctx, subject, coverage))
            self._rewrite_all(ctx, texts, erasure_id, plan, parts, replaced, progress)
            for version_id, tags in retag(self._gov, ctx, erasure_id, plan, replaced).items():
                have = moved.setdefault(version_id, [])
                have.extend(t for t in tags if t not in have)
            self._index.refresh(ctx)
            coverage = self._index.covered(ctx)
            keys = self._index.keys(ctx, subject, coverage)
            outcomes = self._check_and_shred(
                ctx, erasure_id, plan, parts, replaced, (keys, coverage), progress
            )
            if outcomes is not None:
                break
            self._save_plan(ctx, erasure_id, plan)
        if outcomes is None:  # never quiet: shred what is known, report the rest
            outcomes = shred_parts(self._blobs, ctx, sorted(parts), progress=progress)
        self._shred_rejects(ctx, erasure_id, plan, set(keys), coverage)
        fields = {r.column for r in coverage.refs}
        logged = logged_predictions(
            self._gov, self._blobs, ctx, set(keys), fields, keep=0, progress=progress
        )
        said = prediction_note(logged, fields, verb="erased")
        gaps = coverage_notes(coverage, [v["id"] for v in plan["versions"]], verb="erased")
        notes = [*before, *gaps, *([said] if said else []), MATCHING]
        return self._finish(
            ctx, erasure_id, plan, parts, replaced, moved, outcomes, started_at, notes
        )

    def _shred_rejects(
        self,
        ctx: Context,
        erasure_id: str,
        plan: dict[str, Any],
        texts: set[str],
        coverage: Coverage,
    ) -> None:
        """Shred every rejected-row sample that mentions the subject (whole: a sample is one
        blob). Found first and stored with the plan, so a resumed run still reports them."""
        found: dict[str, dict[str, Any]] = plan.setdefault("rejects", {})
        pattern = mentions(texts)
        for digest, dataset, version in coverage.rejects:
            if digest in found:
                continue
            lines = rejected_lines(self._blobs, ctx, digest, pattern)
            if lines:
                found[digest] = {"versions": [f"{dataset}:{version}"], "lines": len(lines)}
        for digest, dataset, version in coverage.rejects:
            label = f"{dataset}:{version}"
            if digest in found and label not in found[digest]["versions"]:
                found[digest]["versions"].append(label)
        if found:
            self._save_plan(ctx, erasure_id, plan)
            for digest in sorted(found):
                found[digest]["outcome"] = self._blobs.shred(digest, scope=ctx.project_id)

    def _rewrite_all(
        self,
        ctx: Context,
        texts: set[str],
        erasure_id: str,
        plan: dict[str, Any],
        parts: dict[str, int],
        replaced: dict[str, int],
        progress: Progress | None,
    ) -> None:
        for number, item in enumerate(plan["versions"], start=1):
            if item["id"] not in replaced and item.get("rewrite", item["tags"]) and item["column"]:
                replaced[item["id"]] = self._rewrite(ctx, texts, erasure_id, item, set(parts))
            if progress is not None:
                progress("rewrite", number, len(plan["versions"]))

    def _check_and_shred(
        self,
        ctx: Context,
        erasure_id: str,
        plan: dict[str, Any],
        parts: dict[str, int],
        replaced: dict[str, int],
        found_by: tuple[dict[str, str], Coverage],
        progress: Progress | None,
    ) -> dict[str, int] | None:
        """Shred the parts if no version appeared that holds them (None: some did; they
        joined the plan). The datasets stay locked from the check to the end of shredding,
        so a commit cannot slip in between. ``found_by``: the subject's texts with their
        keyed hashes, and what the index covers."""
        keys, coverage = found_by
        with self._gov.db.write() as session:
            datasets = DatasetRepository(session, ctx.project_id)
            for name in sorted({v["dataset"] for v in plan["versions"]}):
                datasets.dataset(name, lock=True)
            repo = ErasureRepository(session, ctx.project_id)
            found: dict[str, int] = {}
            for subject_hash in sorted(set(keys.values())):
                for digest, rows in repo.parts_of(subject_hash).items():
                    found[digest] = found.get(digest, 0) + rows
            new_parts = {d: n for d, n in found.items() if d not in parts}
            held = sorted(set(parts) | set(new_parts))
            known = {v["id"] for v in plan["versions"]}
            erased = repo.erased_versions()
            fresh = sorted(
                {
                    v
                    for v, _ in repo.part_refs(held, any_role=True)
                    if v not in known and v not in erased
                }
            )
            if not fresh and not new_parts:
                return shred_parts(self._blobs, ctx, sorted(parts), progress=progress)
            parts.update(new_parts)
            plan["parts"] = dict(parts)
            columns = {r.id: r.column for r in coverage.refs}
            added = plan_items(session, ctx, fresh, parts, erasure_id=erasure_id, columns=columns)
            for item in plan["versions"]:  # rows per version, with the new parts counted
                if item["id"] not in replaced:
                    row = datasets.version_by_id(item["id"])
                    if row is not None:
                        digests = [p["digest"] for p in row.manifest.get("parts", [])]
                        item["rows"] = sum(parts.get(d, 0) for d in digests)
            plan["versions"] = sorted(
                plan["versions"] + added, key=lambda v: (v["dataset"], v["version"])
            )
            for item in added:
                plan["tags"].setdefault(item["dataset"], {})
            return None

    def _save_plan(self, ctx: Context, erasure_id: str, plan: dict[str, Any]) -> None:
        with self._gov.db.write() as session:
            ErasureRepository(session, ctx.project_id).update_plan(erasure_id, plan)

    def _finish(
        self,
        ctx: Context,
        erasure_id: str,
        plan: dict[str, Any],
        parts: dict[str, int],
        replaced: dict[str, int],
        moved: dict[str, list[str]],
        outcomes: dict[str, int],
        started_at: str,
        gaps: list[str],
    ) -> ErasureReport:
        notes = []
        if not plan["versions"]:
            notes.append("no dataset version holds this subject (nothing to erase)")
        if plan["undeclared"]:
            notes.append(
                "datasets not searched (no declared subject column, or one of a type that "
                "holds no single id): " + ", ".join(plan["undeclared"][:50])
            )
        uncovered = [f"{v['dataset']}:{v['version']}" for v in plan["versions"] if not v["column"]]
        if uncovered:
            notes.append(
                "erased without a replacement, since their dataset declares no subject column "
                "or they lost it (they share a part with the subject): " + ", ".join(uncovered[:50])
            )
        rejects = plan.get("rejects") or {}
        if rejects:
            notes.append(
                "rejected-row samples (lines an ingest could not read) that mentioned the "
                "subject were shredded whole, their other lines with them: "
                + ", ".join(
                    f"{'/'.join(r['versions'][:5])} ({r['lines']} line(s))"
                    for _, r in sorted(rejects.items())
                )
            )
        notes += gaps
        if outcomes.get("absent"):
            notes.append(
                f"{outcomes['absent']} part(s) were already gone (destroyed by an earlier, "
                "interrupted run of this erasure, or missing from the store): nothing of them "
                "can be read"
            )
        if outcomes.get("deleted"):
            notes.append(
                f"{outcomes['deleted']} part(s) were written before per-part keys and were "
                "deleted, not crypto-shredded: copies of them (backups, bucket versions) stay "
                "readable with the project key"
            )
        with self._gov.write(
            ctx, Permission.COMPLIANCE_ADMIN, "compliance.erase", object_type="erasure"
        ) as work:
            repo = ErasureRepository(work.session, ctx.project_id)
            # a commit that read a version before the shredding and landed after it
            # references a shredded part: it is erased too (its data is gone), and said so
            known = {v["id"] for v in plan["versions"]} | set(repo.erased_versions())
            refs = repo.part_refs(sorted(parts), any_role=True)
            late = sorted({v for v, _ in refs if v not in known})
            if late:
                added = plan_items(
                    work.session, ctx, late, parts, erasure_id=erasure_id, columns={}
                )
                plan["versions"] = plan["versions"] + added
                notes.append(
                    "committed while the subject was being erased, from a version that held "
                    "them, and so erased without a replacement (commit them again): "
                    + ", ".join(f"{v['dataset']}:{v['version']}" for v in added[:50])
                )
            erased = [
                ErasedVersion(
                    dataset=v["dataset"],
                    version=v["version"],
                    rows_removed=int(v["rows"]),
                    replaced_by=replaced.get(v["id"]),
                    tags_moved=tuple(moved.get(v["id"], ())),
                )
                for v in plan["versions"]
            ]
            labels = {v["id"]: f"{v['dataset']}:{v['version']}" for v in plan["versions"]}
            notes += use_notes(
                work.session,
                ctx,
                labels,
                {i: f"{labels[i].rpartition(':')[0]}:{n}" for i, n in replaced.items()},
            )
            skip = {("transform", t) for t in self._erasure_transforms(work.session, ctx, replaced)}
            ids = [v["id"] for v in plan["versions"]]
            flagged = flag_models(
                work.session,
                self._gov,
                ctx,
                ids,
                erasure_id=erasure_id,
                reason="a data subject's rows were erased",
                skip=skip,
            )
            record_erased(
                work.session,
                ctx,
                [
                    (v["id"], v["dataset"], v["version"], replaced.get(v["id"]))
                    for v in plan["versions"]
                ],
                erasure_id=erasure_id,
                reason="subject",
            )
            redact_versions(work.session, ctx, ids, set(parts), replaced)
            repo.drop_parts(sorted(parts))
            report = ErasureReport(
                id=erasure_id,
                kind="subject",
                subject=plan["subject"],
                state="done",
                dry_run=False,
                requested_by=ctx.principal,
                started_at=started_at,
                finished_at=clock.now().isoformat(),
                versions=tuple(erased),
                parts=outcomes,
                models_flagged=tuple(flagged),
                notes=tuple(notes),
            )
            repo.update_plan(erasure_id, plan)
            repo.finish(erasure_id, report.to_dict())
            work.object_id = erasure_id
            work.details = {
                "subject": plan["subject"],
                "versions": [f"{v.dataset}:{v.version}" for v in erased][:200],
                "parts": outcomes,
                "models_flagged": flagged[:200],
            }
        return report

    def _rewrite(
        self, ctx: Context, texts: set[str], erasure_id: str, item: dict[str, Any], held: set[str]
    ) -> int:
        """Write (or find, when resuming) the replacement of one version; its number."""
        for version in self._datasets.versions(ctx, item["dataset"]):
            transform = version.transform or {}
            if transform.get("erasure") == erasure_id and transform.get("input") == item["id"]:
                return version.version
        old = self._datasets.version(ctx, item["dataset"], item["version"])
        frame, removed = self._without(ctx, old, item["column"], texts, held)
        new = self._datasets.commit_frame(
            ctx,
            item["dataset"],
            frame,
            parent=old,
            transform={
                "id": new_id(),
                "kind": "erasure",
                "erasure": erasure_id,
                "input": old.id,
                "removed_rows": removed,
            },
        )
        return new.version

    def _without(
        self, ctx: Context, old: DatasetVersion, column: str, texts: set[str], held: set[str]
    ) -> tuple[pl.DataFrame, int]:
        """The rows of ``old`` but those whose subject column holds one of ``texts`` (the
        subject's id, or its pseudonyms), and how many were removed."""
        import polars as pl

        frames: list[pl.DataFrame] = []
        removed = 0
        for part in old.parts:
            frame = pl.read_parquet(
                io.BytesIO(self._blobs.get_bytes(part.digest, scope=ctx.project_id))
            )
            if part.digest in held:
                keep = frame.filter(
                    pl.col(column).is_null() | ~pl.col(column).cast(pl.String).is_in(sorted(texts))
                )
                removed += frame.height - keep.height
                frame = keep
            frames.append(frame)
        if not frames:
            return pl.DataFrame(), 0
        return pl.concat(frames, how="vertical"), removed

    @staticmethod
    def _erasure_transforms(session: Any, ctx: Context, replaced: dict[str, int]) -> list[str]:
        """The transform nodes that produced this erasure's replacements (not a use of data)."""
        from sqlalchemy import select

        stmt = select(DatasetVersionRow.transform).where(
            DatasetVersionRow.project_id == ctx.project_id,
            DatasetVersionRow.transform.is_not(None),
        )
        out = []
        for (transform,) in session.execute(stmt):
            if (
                transform
                and transform.get("kind") == "erasure"
                and transform.get("input") in replaced
            ):
                out.append(str(transform["id"]))
        return out
