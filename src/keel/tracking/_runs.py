"""Runs: start and end them, log params, tags, metrics and artifacts, and search them."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from keel import clock
from keel.errors import ConflictError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission, redact_mapping, redact_value
from keel.store import RunRepository, parse_filter, parse_order_by
from keel.store._schema import RunRow
from keel.tracking._curves import MetricCurves
from keel.tracking._environment import capture_environment, git_state
from keel.tracking._experiments import ExperimentService
from keel.tracking._model import Artifact, Metric, Run, RunPage
from keel.tracking._validate import (
    MAX_TAG_VALUE,
    check_artifact_path,
    check_key,
    check_metric_value,
    check_step,
    check_timestamp,
    stringify_params,
)
from keel.types import RunStatus

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.tracking._active import ActiveRun

__all__ = ["RunService"]

MAX_BATCH = 1_000_000
MAX_RESULTS = 50_000
MAX_CURVE_RUNS = 1_000
_ADJECTIVES = ("brisk", "calm", "bold", "keen", "quiet", "swift", "steady", "bright", "amber")
_NOUNS = ("heron", "otter", "falcon", "cedar", "harbor", "comet", "willow", "beacon", "lynx")


def _run_name() -> str:
    pick = int.from_bytes(os.urandom(4), "big")
    return f"{_ADJECTIVES[pick % 9]}-{_NOUNS[(pick // 9) % 9]}-{pick % 1000:03d}"


#: A run's lifecycle in the caller's project (a prepared statement: log_batch runs it per call).
_LIFECYCLE = select(RunRow.lifecycle).where(
    RunRow.id == bindparam("run_id"), RunRow.project_id == bindparam("project_id")
)


def _deleted(run_id: str) -> ConflictError:
    return ConflictError(
        f"Run '{run_id}' is deleted; restore it with `ws.runs.restore('{run_id}')` "
        "before logging to it.",
        run_id=run_id,
    )


def _missing(run_id: str) -> NotFoundError:
    return NotFoundError(
        f"Run '{run_id}' does not exist in this project. Find run ids with `keel runs list`.",
        run_id=run_id,
    )


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInputError(
            "Invalid page token: pass back the next_page_token of a previous search unchanged."
        ) from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInputError("Invalid page token: its offset is not a non-negative integer.")
    return offset


class RunService:
    """Everything about runs; every write authorized and audited through the Governor."""

    def __init__(
        self, governor: Governor, experiments: ExperimentService, blobs: BlobStore
    ) -> None:
        self._gov = governor
        self._experiments = experiments
        self._blobs = blobs

    # --- lifecycle ----------------------------------------------------------------------

    def start(
        self,
        ctx: Context,
        *,
        experiment: str = "Default",
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        capture_env: bool = True,
    ) -> ActiveRun:
        """Start a run and return a handle; use it as a context manager to end it.

        Leaving the ``with`` block normally ends the run FINISHED; an exception ends it FAILED
        (KILLED for KeyboardInterrupt) and propagates.
        """
        from keel.tracking._active import ActiveRun

        run = self.create(
            ctx,
            experiment=experiment,
            name=name,
            params=params,
            tags=tags,
            parent_run_id=parent_run_id,
            capture_env=capture_env,
        )
        return ActiveRun(self, ctx, run)

    def create(
        self,
        ctx: Context,
        *,
        experiment: str = "Default",
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        capture_env: bool = True,
        environment: Mapping[str, Any] | None = None,
    ) -> Run:
        """Create a RUNNING run in ``experiment`` (created if missing).

        ``environment`` is one captured elsewhere (by a remote client, with
        ``capture_environment``); it is recorded instead of this process's.
        """
        self._gov.check(ctx, Permission.RUN_WRITE, action="run.create", object_type="run")
        exp = self._experiments.ensure(ctx, experiment)
        run_name = name or _run_name()
        if len(run_name) > 256:
            raise InvalidInputError("A run name is at most 256 characters.")
        clean_params = redact_mapping(stringify_params(params or {}))
        clean_tags = self._clean_tags(tags or {})
        if environment is not None:
            environment = redact_mapping(dict(environment))
        elif capture_env:
            environment = capture_environment()
        git = (environment or {}).get("git") if environment is not None else git_state()
        commit = git.get("commit") if isinstance(git, dict) else None
        code_version = commit[:64] if isinstance(commit, str) else None
        with self._gov.write(ctx, Permission.RUN_WRITE, "run.create", object_type="run") as work:
            repo = RunRepository(work.session, ctx.project_id)
            if parent_run_id is not None and repo.get(parent_run_id) is None:
                raise _missing(parent_run_id)
            row = repo.create(
                experiment_id=exp.id,
                name=run_name,
                user=ctx.principal,
                parent_run_id=parent_run_id,
                code_version=code_version,
                environment=environment,
            )
            repo.insert_params(row.id, clean_params.items())
            if clean_tags:
                repo.set_tags(row.id, clean_tags)
            work.object_id = row.id
            work.details = {"experiment_id": exp.id, "name": run_name}
            return self._load(work.session, ctx, row)

    def end(self, ctx: Context, run_id: str, status: RunStatus = RunStatus.FINISHED) -> Run:
        """End a run in a final status (FINISHED, FAILED or KILLED)."""
        status = RunStatus(status)
        if not status.is_final:
            raise InvalidInputError("A run ends FINISHED, FAILED or KILLED, not RUNNING.")
        with self._gov.write(
            ctx, Permission.RUN_WRITE, "run.end", object_type="run", object_id=run_id
        ) as work:
            row = self._row(work.session, ctx, run_id)
            row.status = status.value
            row.end_time = clock.now_millis()
            work.details = {"status": status.value}
            return self._load(work.session, ctx, row)

    def delete(self, ctx: Context, run_id: str) -> None:
        self._set_lifecycle(ctx, run_id, "deleted")

    def restore(self, ctx: Context, run_id: str) -> None:
        self._set_lifecycle(ctx, run_id, "active")

    def _set_lifecycle(self, ctx: Context, run_id: str, lifecycle: str) -> None:
        action = "run.delete" if lifecycle == "deleted" else "run.restore"
        with self._gov.write(
            ctx, Permission.RUN_WRITE, action, object_type="run", object_id=run_id
        ) as work:
            self._row(work.session, ctx, run_id, active=False).lifecycle = lifecycle

    # --- logging ------------------------------------------------------------------------

    def log_metrics(
        self,
        ctx: Context,
        run_id: str,
        metrics: Mapping[str, float],
        *,
        step: int = 0,
        timestamp: int | None = None,
    ) -> None:
        """Log several metrics at one step in one transaction."""
        self.log_batch(
            ctx,
            run_id,
            metrics=[Metric(key, value, step, timestamp) for key, value in metrics.items()],
        )

    def log_batch(
        self,
        ctx: Context,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        points: Sequence[tuple[str, Any, Any, Any]] = (),
    ) -> None:
        """Log metrics, params and tags together: all of them, or (on any error) none.

        ``points`` are more metrics as ``(key, value, step, timestamp)`` tuples, checked the
        same way (a ``None`` timestamp is now): the MLflow API's ``log_batch`` passes its
        1,000 metrics a call so, without building a :class:`Metric` for each.
        """
        if metrics:
            points = [*((m.key, m.value, m.step, m.timestamp) for m in metrics), *points]
        if len(points) > MAX_BATCH:
            raise InvalidInputError(
                f"A batch holds at most {MAX_BATCH:,} metrics; got {len(points):,}. Split it."
            )
        now = clock.now_millis()
        checked: list[tuple[str, float, int, int]] = []
        checked_keys: set[str] = set()
        for key, value, step, ts in points:
            if key not in checked_keys:  # each distinct key is checked once per batch
                checked_keys.add(check_key(key, what="metric"))
            # Fast path for plain numbers; anything else goes through the full checks.
            if type(value) is not float:
                value = check_metric_value(key, value)
            if type(step) is not int or not -(2**63) <= step < 2**63:
                step = check_step(key, step)
            if ts is None:
                ts = now
            elif type(ts) is not int or not 0 <= ts < 2**63:
                ts = check_timestamp(key, ts)
            checked.append((key, value, step, ts))
        clean_params = redact_mapping(stringify_params(params or {}))
        clean_tags = self._clean_tags(tags or {})
        with self._gov.write(
            ctx, Permission.RUN_WRITE, "run.log_batch", object_type="run", object_id=run_id
        ) as work:
            repo = RunRepository(work.session, ctx.project_id)
            self._check_active(work.session, ctx, run_id)
            if clean_params:
                self._check_params_unchanged(repo, run_id, clean_params)
                existing = repo.params([run_id])[run_id]
                repo.insert_params(
                    run_id, [(k, v) for k, v in clean_params.items() if k not in existing]
                )
            if clean_tags:
                repo.set_tags(run_id, clean_tags)
            repo.insert_metrics(run_id, checked)
            work.details = {
                "metrics": len(checked),
                "params": len(clean_params),
                "tags": len(clean_tags),
            }

    def log_params(self, ctx: Context, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params; a param is immutable once logged (same value again is fine)."""
        self.log_batch(ctx, run_id, params=params)

    def set_tags(self, ctx: Context, run_id: str, tags: Mapping[str, str]) -> None:
        self.log_batch(ctx, run_id, tags=tags)

    def delete_tag(self, ctx: Context, run_id: str, key: str) -> None:
        with self._gov.write(
            ctx, Permission.RUN_WRITE, "run.delete_tag", object_type="run", object_id=run_id
        ) as work:
            self._row(work.session, ctx, run_id)
            if not RunRepository(work.session, ctx.project_id).delete_tag(run_id, key):
                raise NotFoundError(f"Run '{run_id}' has no tag '{key}'.", run_id=run_id, key=key)
            work.details = {"key": key}

    def log_artifact(
        self, ctx: Context, run_id: str, local_path: str | Path, *, name: str | None = None
    ) -> Artifact:
        """Store a local file as an artifact of the run (encrypted, content-addressed)."""
        path = Path(local_path)
        if not path.is_file():
            raise InvalidInputError(
                f"Cannot log artifact '{path}': it is not a readable file.", path=str(path)
            )
        target = check_artifact_path(name or path.name)
        self._check_writable(ctx, run_id)  # before any byte is stored
        info = self._blobs.put_file(path, scope=ctx.project_id)
        return self._record_artifact(ctx, run_id, target, info.digest, info.size)

    def log_bytes(self, ctx: Context, run_id: str, data: bytes, *, name: str) -> Artifact:
        """Store bytes as an artifact called ``name``."""
        target = check_artifact_path(name)
        self._check_writable(ctx, run_id)
        info = self._blobs.put_bytes(data, scope=ctx.project_id)
        return self._record_artifact(ctx, run_id, target, info.digest, info.size)

    def _check_writable(self, ctx: Context, run_id: str) -> None:
        """Authorize a write to the run and check it is active, without writing anything."""
        self._gov.check(
            ctx,
            Permission.RUN_WRITE,
            action="run.log_artifact",
            object_type="run",
            object_id=run_id,
        )
        with self._gov.db.read() as session:
            self._row(session, ctx, run_id)

    def _record_artifact(
        self, ctx: Context, run_id: str, path: str, digest: str, size: int
    ) -> Artifact:
        with self._gov.write(
            ctx, Permission.RUN_WRITE, "run.log_artifact", object_type="run", object_id=run_id
        ) as work:
            self._row(work.session, ctx, run_id)
            RunRepository(work.session, ctx.project_id).add_artifact(
                run_id, path, digest=digest, size=size
            )
            work.details = {"path": path, "digest": digest, "size": size}
        return Artifact(path=path, digest=digest, size=size)

    # --- reading ------------------------------------------------------------------------

    def get(self, ctx: Context, run_id: str) -> Run:
        with self._gov.read(
            ctx, Permission.RUN_READ, "run.read", object_type="run", object_id=run_id
        ) as session:
            return self._load(session, ctx, self._row(session, ctx, run_id, active=False))

    def artifacts(self, ctx: Context, run_id: str) -> list[Artifact]:
        with self._gov.read(
            ctx, Permission.RUN_READ, "run.read", object_type="run", object_id=run_id
        ) as session:
            self._row(session, ctx, run_id, active=False)
            rows = RunRepository(session, ctx.project_id).artifacts(run_id)
            return [Artifact(row.path, row.digest, row.size) for row in rows]

    def read_artifact(self, ctx: Context, run_id: str, path: str) -> bytes:
        """The bytes of one artifact, verified against its digest."""
        target = check_artifact_path(path)
        with self._gov.read(
            ctx, Permission.RUN_READ, "run.read_artifact", object_type="run", object_id=run_id
        ) as session:
            self._row(session, ctx, run_id, active=False)
            row = RunRepository(session, ctx.project_id).artifact(run_id, target)
            if row is None:
                raise NotFoundError(
                    f"Run '{run_id}' has no artifact '{target}'.", run_id=run_id, path=target
                )
            digest = row.digest
        return self._blobs.get_bytes(digest, scope=ctx.project_id)

    def metric_history(self, ctx: Context, run_id: str, key: str) -> list[Metric]:
        """Every logged value of one metric, ordered by step then time."""
        with self._gov.read(
            ctx, Permission.RUN_READ, "run.read", object_type="run", object_id=run_id
        ) as session:
            self._row(session, ctx, run_id, active=False)
            history = RunRepository(session, ctx.project_id).metric_history(run_id, key)
        return [Metric(key, value, step, ts) for value, step, ts in history]

    def metric_curves(
        self, ctx: Context, run_ids: Sequence[str], key: str, *, buckets: int = 500
    ) -> MetricCurves:
        """The curves of ``key`` for ``run_ids``, reduced in the database when they are long.

        Up to ``2 * buckets`` points per run on average every point is returned; above that
        the database groups the steps into ``buckets`` equal buckets and returns the min and
        max of each run in each (one grouped query), so a chart stays exact in shape at a
        bounded cost. Runs outside the caller's project contribute nothing.
        """
        if isinstance(buckets, bool) or not 1 <= buckets <= 100_000:
            raise InvalidInputError(f"buckets must be between 1 and 100,000; got {buckets!r}.")
        ids = list(dict.fromkeys(run_ids))
        if len(ids) > MAX_CURVE_RUNS:
            raise InvalidInputError(
                f"Curves of at most {MAX_CURVE_RUNS} runs at once; got {len(ids)}. Pick fewer."
            )
        with self._gov.read(ctx, Permission.RUN_READ, "run.read", object_type="run") as session:
            repo = RunRepository(session, ctx.project_id)
            low, high, count = repo.metric_extent(ids, key)
            if count <= 2 * buckets * max(len(ids), 1) or high == low:
                return MetricCurves(key, count, False, history=repo.metric_points(ids, key))
            grouped = repo.metric_buckets(ids, key, low=low, high=high, buckets=buckets)
        series: dict[str, list[tuple[float, float] | None]] = {i: [None] * buckets for i in ids}
        for run_id, b, smallest, largest in grouped:
            at = min(max(b, 0), buckets - 1)  # the highest step is bucket ``buckets``: fold it
            held = series[run_id][at]
            if held is not None:
                smallest, largest = min(held[0], smallest), max(held[1], largest)
            series[run_id][at] = (smallest, largest)
        return MetricCurves(
            key, count, True, low=float(low), width=(high - low) / buckets, buckets=series
        )

    def search(
        self,
        ctx: Context,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> RunPage:
        """Runs matching ``filter`` (e.g. ``metrics.auc > 0.8 and params.model = 'rf'``).

        Args:
            ctx: the caller.
            filter: the filter language (see docs/search.md); None matches every run.
            experiments: experiment names or ids to search in; None searches all.
            order_by: keys such as ``"metrics.auc DESC"``; newest first after them.
            max_results: page size, 1 to 50,000.
            page_token: the ``next_page_token`` of the previous page.
            include_deleted: also return deleted runs.
        """
        if isinstance(max_results, bool) or not 1 <= max_results <= MAX_RESULTS:
            raise InvalidInputError(
                f"max_results must be between 1 and {MAX_RESULTS:,}; got {max_results!r}."
            )
        where = parse_filter(filter)
        order = parse_order_by(order_by)
        offset = _decode_token(page_token)
        experiment_ids = (
            None if experiments is None else [self._experiment_id(ctx, e) for e in experiments]
        )
        with self._gov.read(ctx, Permission.RUN_READ, "run.search", object_type="run") as session:
            repo = RunRepository(session, ctx.project_id)
            rows = repo.search(
                where=where,
                order_by=order,
                experiment_ids=experiment_ids,
                include_deleted=include_deleted,
                limit=max_results + 1,
                offset=offset,
            )
            more = len(rows) > max_results
            rows = rows[:max_results]
            runs = self._load_many(session, ctx, rows)
        token = _encode_token(offset + max_results) if more else None
        return RunPage(runs=runs, next_page_token=token)

    # --- helpers ------------------------------------------------------------------------

    def _experiment_id(self, ctx: Context, ref: str) -> str:
        try:
            return self._experiments.get_by_name(ctx, ref).id
        except NotFoundError:
            return self._experiments.get(ctx, ref).id

    @staticmethod
    def _clean_tags(tags: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in tags.items():
            check_key(key, what="tag")
            text = str(value)
            if len(text) > MAX_TAG_VALUE:
                raise InvalidInputError(
                    f"Tag '{key}' is {len(text)} characters; the limit is {MAX_TAG_VALUE}."
                )
            out[key] = redact_value(key, text)
        return out

    @staticmethod
    def _check_params_unchanged(repo: RunRepository, run_id: str, params: dict[str, str]) -> None:
        existing = repo.params([run_id])[run_id]
        changed = [k for k, v in params.items() if k in existing and existing[k] != v]
        if changed:
            key = changed[0]
            raise ConflictError(
                f"Param '{key}' of run '{run_id}' was already logged as {existing[key]!r:.80}; "
                f"params are immutable, so {params[key]!r:.80} was refused. Start a new run "
                "to try another value.",
                run_id=run_id,
                key=key,
            )

    @staticmethod
    def _row(session: Session, ctx: Context, run_id: str, *, active: bool = True) -> RunRow:
        row = RunRepository(session, ctx.project_id).get(run_id)
        if row is None:
            raise _missing(run_id)
        if active and row.lifecycle != "active":
            raise _deleted(run_id)
        return row

    @staticmethod
    def _check_active(session: Session, ctx: Context, run_id: str) -> None:
        """What :meth:`_row` checks, reading the run's lifecycle only (no ORM object)."""
        lifecycle = (
            session.connection()
            .execute(_LIFECYCLE, {"run_id": run_id, "project_id": ctx.project_id})
            .scalar_one_or_none()
        )
        if lifecycle is None:
            raise _missing(run_id)
        if lifecycle != "active":
            raise _deleted(run_id)

    def _load(self, session: Session, ctx: Context, row: RunRow) -> Run:
        return self._load_many(session, ctx, [row], with_environment=True)[0]

    @staticmethod
    def _load_many(
        session: Session, ctx: Context, rows: list[RunRow], *, with_environment: bool = False
    ) -> list[Run]:
        repo = RunRepository(session, ctx.project_id)
        ids = [row.id for row in rows]
        params = repo.params(ids)
        tags = repo.tags(ids)
        latest = repo.latest_metrics(ids)
        return [
            Run(
                id=row.id,
                name=row.name,
                experiment_id=row.experiment_id,
                status=RunStatus(row.status),
                user=row.user,
                start_time=row.start_time,
                end_time=row.end_time,
                lifecycle=row.lifecycle,
                parent_run_id=row.parent_run_id,
                code_version=row.code_version,
                params=params[row.id],
                metrics={key: value[0] for key, value in latest[row.id].items()},
                tags=tags[row.id],
                environment=row.environment if with_environment else None,
            )
            for row in rows
        ]
