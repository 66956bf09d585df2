"""Deployments: persisted routing state with every revision, governed and audited.

Each change — a new deployment, a canary step, a promotion, a rollback, an automatic analysis
decision, a rejected version — is one revision written with its audit event in the same
transaction. A server reads the current state back after a restart and resumes from it.
"""

from __future__ import annotations

import builtins
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.lineage import LineageService, Node, check_depth
from keel.serving._analysis import Decision
from keel.serving._pages import (
    AT,
    DEFAULT_PREDICTION_ROWS,
    KEY,
    MAX_PAGE_TOKEN_CHARS,
    PredictionPage,
    as_utc,
    check_prediction_limit,
    decode_page_token,
    first_rows,
    micros,
    rows_of,
    token_after,
)
from keel.serving._routing import DEFAULT_STEPS, STRATEGIES, DeploymentState
from keel.serving._runtime import ModelLoader, RegistryLoader, smoke_test
from keel.serving._trace import (
    TRACE_WINDOW,
    PredictionTrace,
    find_logged,
    link_log,
    prediction_moment,
    traced,
    upstream_of,
)
from keel.store import DeploymentRepository, GroundTruthRepository
from keel.store._schema_serving import DeploymentRevisionRow, DeploymentRow
from keel.tracking import ModelRegistry, parse_model_ref
from keel.types import validate_name

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    from keel.blobs import BlobStore
    from keel.data import DatasetService

__all__ = [
    "DEFAULT_PREDICTION_ROWS",
    "ENVIRONMENTS",
    "MAX_PAGE_TOKEN_CHARS",
    "Deployment",
    "DeploymentRevision",
    "DeploymentService",
    "PredictionPage",
    "PredictionTrace",
    "check_prediction_limit",
    "decode_page_token",
    "token_after",
]

ENVIRONMENTS = ("dev", "staging", "production")


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    name: str
    model: str
    environment: str
    state: DeploymentState
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "environment": self.environment,
            "revision": self.revision,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            **self.state.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class DeploymentRevision:
    revision: int
    action: str
    state: DeploymentState
    reason: str
    analysis: dict[str, Any] | None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "action": self.action,
            "reason": self.reason,
            "analysis": self.analysis,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            **self.state.to_dict(),
        }


def _value(row: DeploymentRow) -> Deployment:
    return Deployment(
        id=row.id,
        name=row.name,
        model=row.model,
        environment=row.environment,
        state=DeploymentState.from_dict(row.state),
        revision=row.revision,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _revision(row: DeploymentRevisionRow) -> DeploymentRevision:
    return DeploymentRevision(
        revision=row.revision,
        action=row.action,
        state=DeploymentState.from_dict(row.state),
        reason=row.reason,
        analysis=row.analysis,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _missing(name: str) -> NotFoundError:
    return NotFoundError(
        f"Deployment '{name}' does not exist in this project. List them with "
        "`keel deployments list`.",
        deployment=name,
    )


def parse_steps(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """Canary steps from ``"5,25,50,100"`` or a sequence of percentages."""
    if text is None:
        return DEFAULT_STEPS
    if isinstance(text, str):
        try:
            return tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise InvalidInputError(
                f"Invalid canary steps {text!r:.60}: write percentages like 5,25,50,100."
            ) from None
    return tuple(float(s) for s in text)


def _unchanged(state: DeploymentState) -> DeploymentState:
    return state


class DeploymentService:
    """Deploys registry versions with a strategy, and moves their traffic, audited."""

    def __init__(
        self,
        governor: Governor,
        registry: ModelRegistry,
        blobs: BlobStore,
        *,
        datasets: DatasetService | None = None,
    ) -> None:
        self._gov = governor
        self._registry = registry
        self._blobs = blobs
        self._datasets = datasets  # classification of training data, for log redaction

    def loader(self, ctx: Context) -> RegistryLoader:
        return RegistryLoader(
            self._registry, ctx, redaction=lambda ref: self.personal_fields(ctx, ref)
        )

    def personal_fields(self, ctx: Context, dataset_version: str | None) -> frozenset[str]:
        """Columns of the training dataset version classified as personal data (if known).

        ``dataset_version`` is ``name:N``, ``name@tag`` or ``name``; an unknown or
        unclassified dataset gives no fields (nothing is known to redact).
        """
        if self._datasets is None or not dataset_version:
            return frozenset()
        name, _, selector = dataset_version.replace("@", ":").partition(":")
        ref: int | str | None = int(selector) if selector.isdigit() else (selector or None)
        try:
            found = self._datasets.version(ctx, name, ref)
        except (NotFoundError, InvalidInputError):
            return frozenset()
        columns = (found.classification or {}).get("columns", {})
        return frozenset(
            column
            for column, label in columns.items()
            if label.get("categories") or label.get("sensitivity") in ("confidential", "restricted")
        )

    # --- deploy -----------------------------------------------------------------------------

    def deploy(
        self,
        ctx: Context,
        ref: str,
        *,
        environment: str = "staging",
        strategy: str = "blue-green",
        steps: str | Sequence[float] | None = None,
        name: str | None = None,
        loader: ModelLoader | None = None,
    ) -> Deployment:
        """Deploy ``ref`` (``model@alias`` or ``model:N``) to ``environment``.

        The version is loaded and must pass a smoke prediction on its stored input example
        before any traffic can reach it; a version that fails is recorded as rejected and the
        deployment keeps serving what it served.
        """
        if environment not in ENVIRONMENTS:
            raise InvalidInputError(
                f"Unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}.",
            )
        if strategy not in STRATEGIES:
            raise InvalidInputError(
                f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.",
            )
        model, _ = parse_model_ref(ref)
        deployment = validate_name(name or f"{model}-{environment}", what="deployment name")
        found = self._registry.version(ctx, ref)
        chosen = parse_steps(steps)
        self._gov.check(
            ctx, Permission.DEPLOYMENT_WRITE, action="deployment.deploy", object_type="deployment"
        )
        try:
            served = (loader or self.loader(ctx)).load(model, found.version)
            smoke_test(served)
        except Exception as exc:
            self._reject(ctx, deployment, model, environment, found.version, str(exc))
            raise IntegrityError(
                f"Model {model}:{found.version} was not deployed to '{deployment}': {exc} "
                "The deployment keeps serving its current version.",
                deployment=deployment,
                version=found.version,
            ) from exc
        with self._gov.write(
            ctx, Permission.DEPLOYMENT_WRITE, "deployment.deploy", object_type="deployment"
        ) as work:
            repo = DeploymentRepository(work.session, ctx.project_id)
            row = repo.get(deployment, for_update=True)
            if row is None:
                state = DeploymentState(strategy, primary=found.version, steps=chosen)  # type: ignore[arg-type]
                row = repo.create(
                    name=deployment,
                    model=model,
                    environment=environment,
                    strategy=strategy,
                    phase="stable",
                    state=state.to_dict(),
                    created_by=ctx.principal,
                )
                reason = f"Deployed {model}:{found.version} ({ref})."
            else:
                if row.model != model:
                    raise ConflictError(
                        f"Deployment '{deployment}' serves model '{row.model}', not '{model}'. "
                        "Choose another name with --name.",
                        deployment=deployment,
                    )
                current = DeploymentState.from_dict(row.state)
                if current.phase == "rolling":
                    raise ConflictError(
                        f"Deployment '{deployment}' is rolling out version {current.candidate}; "
                        "promote or roll it back first (`keel deployments promote|rollback`).",
                        deployment=deployment,
                    )
                if found.version == current.primary:
                    raise ConflictError(
                        f"Deployment '{deployment}' already serves {model}:{found.version}.",
                        deployment=deployment,
                    )
                state = current.start(found.version, strategy, chosen)  # type: ignore[arg-type]
                reason = (
                    f"{strategy} of {model}:{found.version} ({ref}) against "
                    f"{model}:{current.primary}."
                )
            repo.add_revision(
                row, action="deploy", state=state.to_dict(), reason=reason, principal=ctx.principal
            )
            LineageService.link(
                work.session,
                ctx,
                Node("model_version", found.id),
                Node("deployment", row.id),
                "deployed",
            )
            work.object_id = row.id
            work.details = {
                "deployment": deployment,
                "version": found.version,
                "strategy": strategy,
            }
            return _value(row)

    def _reject(
        self, ctx: Context, deployment: str, model: str, environment: str, version: int, why: str
    ) -> None:
        with self._gov.write(
            ctx, Permission.DEPLOYMENT_WRITE, "deployment.reject", object_type="deployment"
        ) as work:
            repo = DeploymentRepository(work.session, ctx.project_id)
            row = repo.get(deployment, for_update=True)
            work.details = {"deployment": deployment, "version": version, "reason": why[:500]}
            if row is not None:
                repo.add_revision(
                    row,
                    action="reject",
                    state=row.state,
                    reason=f"{model}:{version} rejected: {why}"[:2000],
                    principal=ctx.principal,
                )
                work.object_id = row.id

    # --- reads ------------------------------------------------------------------------------

    def get(self, ctx: Context, name: str) -> Deployment:
        with self._gov.read(
            ctx, Permission.DEPLOYMENT_READ, "deployment.read", object_type="deployment"
        ) as session:
            row = DeploymentRepository(session, ctx.project_id).get(name)
            if row is None:
                raise _missing(name)
            return _value(row)

    def list(self, ctx: Context, *, environment: str | None = None) -> builtins.list[Deployment]:
        with self._gov.read(
            ctx, Permission.DEPLOYMENT_READ, "deployment.read", object_type="deployment"
        ) as session:
            rows = DeploymentRepository(session, ctx.project_id).list(environment=environment)
            return [_value(r) for r in rows]

    def revisions(self, ctx: Context, name: str) -> builtins.list[DeploymentRevision]:
        with self._gov.read(
            ctx, Permission.DEPLOYMENT_READ, "deployment.read", object_type="deployment"
        ) as session:
            repo = DeploymentRepository(session, ctx.project_id)
            row = repo.get(name)
            if row is None:
                raise _missing(name)
            return [_revision(r) for r in repo.revisions(row.id)]

    # --- moves ------------------------------------------------------------------------------

    def promote(
        self, ctx: Context, name: str, *, reason: str = "", full: bool = False
    ) -> Deployment:
        """Move a canary to its next step (``full``: straight to the candidate)."""
        return self._move(
            ctx,
            name,
            "promote",
            reason or "Promoted by hand.",
            lambda s: s.promote() if full else s.advance(),
        )

    def rollback(self, ctx: Context, name: str, *, reason: str = "") -> Deployment:
        """Drop a rolling candidate, or switch back to the previous version (instant)."""
        return self._move(
            ctx,
            name,
            "rollback",
            reason or "Rolled back by hand.",
            DeploymentState.rollback,
            permission=Permission.DEPLOYMENT_WRITE,
        )

    def apply_decision(
        self, ctx: Context, name: str, decision: Decision, *, expected_revision: int
    ) -> Deployment:
        """Record an automatic analysis and carry out its promote / hold / rollback."""
        reason = " ".join(decision.reasons)
        change: Callable[[DeploymentState], DeploymentState]
        if decision.action == "promote":
            change = DeploymentState.advance
        elif decision.action == "rollback":
            change = DeploymentState.rollback
        else:
            change = _unchanged

        return self._move(
            ctx,
            name,
            f"analysis.{decision.action}",
            reason,
            change,
            analysis=decision.to_dict(),
            expected_revision=expected_revision,
        )

    def _move(
        self,
        ctx: Context,
        name: str,
        action: str,
        reason: str,
        change: Any,
        *,
        permission: Permission = Permission.DEPLOYMENT_PROMOTE,
        analysis: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        with self._gov.write(
            ctx, permission, f"deployment.{action}", object_type="deployment"
        ) as work:
            repo = DeploymentRepository(work.session, ctx.project_id)
            row = repo.get(name, for_update=True)
            if row is None:
                raise _missing(name)
            if expected_revision is not None and row.revision != expected_revision:
                raise ConflictError(
                    f"Deployment '{name}' moved on (revision {row.revision}, expected "
                    f"{expected_revision}); the analysis is discarded.",
                    deployment=name,
                )
            state = change(DeploymentState.from_dict(row.state))
            repo.add_revision(
                row,
                action=action,
                state=state.to_dict(),
                reason=reason,
                principal=ctx.principal,
                analysis=analysis,
            )
            work.object_id = row.id
            work.details = {"deployment": name, "action": action, "revision": row.revision}
            return _value(row)

    # --- prediction logs --------------------------------------------------------------------

    def write_log_batch(
        self, ctx: Context, deployment: str, batch_key: str, table: pa.Table
    ) -> None:
        """Store one Parquet part and its batch row; a repeated ``batch_key`` is a no-op."""
        import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        info = self._blobs.put_bytes(buffer.getvalue(), scope=ctx.project_id)
        stamps = table.column("timestamp")
        with self._gov.write(
            ctx,
            Permission.DEPLOYMENT_WRITE,
            "deployment.log_predictions",
            object_type="prediction_log",
        ) as work:
            repo = DeploymentRepository(work.session, ctx.project_id)
            added = repo.add_log_batch(
                deployment=deployment,
                batch_key=batch_key,
                digest=info.digest,
                rows=table.num_rows,
                first_at=pc.min(stamps).as_py(),
                last_at=pc.max(stamps).as_py(),
            )
            if added:
                served = zip(
                    table.column("model").to_pylist(),
                    table.column("version").to_pylist(),
                    strict=True,
                )
                link_log(work.session, ctx, repo.get(deployment), set(served))
            work.details = {"deployment": deployment, "rows": table.num_rows, "added": added}

    def read_predictions(
        self,
        ctx: Context,
        deployment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = DEFAULT_PREDICTION_ROWS,
    ) -> pl.DataFrame:
        """Logged predictions of ``deployment`` with ``since <= timestamp < until``.

        At most ``limit`` rows (default ``DEFAULT_PREDICTION_ROWS``): the oldest of the window,
        in (timestamp, prediction id) order. ``limit=None`` reads the whole window into memory,
        however large. ``read_prediction_page`` says whether more rows exist and continues.
        """
        return self.read_prediction_page(
            ctx, deployment, since=since, until=until, limit=limit
        ).frame

    def read_prediction_page(
        self,
        ctx: Context,
        deployment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = DEFAULT_PREDICTION_ROWS,
        page_token: str | None = None,
    ) -> PredictionPage:
        """One page of the logged predictions of ``deployment`` with ``since <= timestamp <
        until`` (a time without a zone is UTC), in (timestamp, prediction id) order.

        Args:
            limit: the most rows of the page (None: every row, into memory).
            page_token: the ``next_page_token`` of the previous page of the same window.

        Only the stored batches that can hold rows of the page are read: batches outside the
        window or before the token are skipped, and reading stops at the first batch whose
        earliest row sorts after the page. Memory holds the page and one batch.
        """
        import polars as pl

        from keel.serving._predlog import _to_table

        cap = check_prediction_limit(limit)
        after = decode_page_token(page_token)
        since, until = as_utc(since), as_utc(until)
        start = since
        if after is not None and (since is None or after.moment > since):
            start = after.moment  # batches ending before the cursor hold nothing after it
        with self._gov.read(
            ctx,
            Permission.DEPLOYMENT_READ,
            "deployment.read_predictions",
            object_type="prediction_log",
        ) as session:
            batches = [
                (micros(b.first_at), b.digest)
                for b in DeploymentRepository(session, ctx.project_id).log_batches(
                    deployment, since=start, until=until
                )
            ]  # ordered by first_at

        def read(digest: str) -> pl.DataFrame:
            stored = pl.read_parquet(
                io.BytesIO(self._blobs.get_bytes(digest, scope=ctx.project_id))
            )
            return rows_of(stored, since=since, until=until, after=after)

        held: pl.DataFrame | None
        if cap is None:
            parts = [read(digest) for _, digest in batches]
            held = pl.concat(parts, how="diagonal_relaxed").sort(KEY) if parts else None
        else:
            held = first_rows(batches, read, cap + 1)  # one more: do more rows exist?
        # the full log schema first: older logs lack the score columns, which read as null
        empty: pl.DataFrame = pl.from_arrow(_to_table([]))  # type: ignore[assignment]
        if held is None or held.height == 0:
            return PredictionPage(empty, None)
        token = None
        if cap is not None and held.height > cap:
            held = held.head(cap)
            token = token_after(held)
        frame = pl.concat([empty, held.drop(AT)], how="diagonal_relaxed")
        return PredictionPage(frame, token)

    def trace_prediction(
        self, ctx: Context, prediction_id: str, *, deployment: str | None = None, depth: int = 10
    ) -> PredictionTrace:
        """The logged row of ``prediction_id`` with the deployment revision that routed it,
        the model version that answered, its late label and the lineage upstream of it.

        Only the log batches of the minutes around the id's time are read (of ``deployment``
        if given, else of every deployment). Raises NotFoundError when no batch holds it.
        """
        with self._gov.read(
            ctx,
            Permission.DEPLOYMENT_READ,
            "deployment.trace_prediction",
            object_type="prediction_log",
            object_id=prediction_id[:40],
        ) as session:  # authorized before the input is looked at
            moment = prediction_moment(prediction_id)
            check_depth(depth)
            repo = DeploymentRepository(session, ctx.project_id)
            if deployment is not None and repo.get(deployment) is None:
                raise _missing(deployment)
            batches = repo.log_batches(
                deployment, since=moment - TRACE_WINDOW, until=moment + TRACE_WINDOW
            )
            row = find_logged(
                prediction_id,
                moment,
                batches,
                lambda digest: self._blobs.get_bytes(digest, scope=ctx.project_id),
            )
            if row is None:
                raise NotFoundError(
                    f"No logged prediction {prediction_id}"
                    + (f" in deployment '{deployment}'" if deployment else "")
                    + f" around {moment.isoformat(timespec='seconds')}: only predictions "
                    "served through a deployment with logging on (`keel serve --deployment "
                    "NAME`, without --no-log) are logged, about a second after they are "
                    "served.",
                    prediction_id=prediction_id,
                )
            found = traced(session, ctx.project_id, row)
        if found.log is None or found.model_version_id is None:
            return found
        lineage = upstream_of(
            LineageService(self._gov), ctx, found.log, found.model_version_id, depth
        )
        return replace(found, lineage=lineage)

    # --- late ground truth -------------------------------------------------------------------

    def record_labels(
        self, ctx: Context, deployment: str | None, labels: Sequence[tuple[str, Any]]
    ) -> int:
        """Store labels posted to the model server in the ground-truth store (the one
        ``keel monitors labels ingest`` writes); returns how many were new. Records without
        a label are skipped; a prediction keeps its first label."""
        pairs = [
            (pid[:128], json.dumps(label))
            for pid, label in labels
            if label is not None and isinstance(label, str | int | float | bool)
        ]
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "labels.ingest", object_type="ground_truth"
        ) as work:
            written, batch = GroundTruthRepository(work.session, ctx.project_id).add(
                pairs, deployment=deployment
            )
            work.object_id = batch
            work.details = {
                "deployment": deployment,
                "received": len(labels),
                "stored": written.stored,
                "duplicates": written.duplicates,
                "conflicts": written.conflicts,
            }
            return written.stored

    def labels_since(self, ctx: Context, since: datetime) -> builtins.list[tuple[str, Any]]:
        """``(prediction_id, label)`` stored at or after ``since`` (for the canary analysis)."""
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "labels.read", object_type="ground_truth"
        ) as session:
            rows = GroundTruthRepository(session, ctx.project_id).received_since(since)
        return [(pid, json.loads(text)) for pid, text in rows]


class ServiceLogSink:
    """The prediction logger's sink, bound to the server's context."""

    def __init__(self, service: DeploymentService, ctx: Context) -> None:
        self._service, self._ctx = service, ctx

    def write_batch(self, deployment: str, batch_key: str, table: pa.Table) -> None:
        self._service.write_log_batch(self._ctx, deployment, batch_key, table)
