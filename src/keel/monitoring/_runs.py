"""Monitor runs: read the window, compare, join labels, store the report, step the alerts.

The part of MonitorService that runs monitors and reads their reports (a base class, so the
service module stays about definitions).
"""

from __future__ import annotations

import builtins
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import InvalidInputError, KeelError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.lineage import LineageService, Node
from keel.monitoring._drift import DriftThreshold, compute_drift
from keel.monitoring._model import Monitor, MonitorReport
from keel.monitoring._profile import ReferenceProfile, as_frame, profile_reference
from keel.monitoring._report import assess_quality, scrape_counters
from keel.monitoring._windows import PREDICTION, parse_window, read_window
from keel.store import DeploymentRepository, GroundTruthRepository, MonitorRepository
from keel.store._schema_monitoring import MonitorReportRow, MonitorRow

if TYPE_CHECKING:
    import polars as pl

    from keel.blobs import BlobStore
    from keel.data import DatasetService
    from keel.monitoring._alerts import AlertService

__all__ = ["MonitorRuns", "missing_monitor", "split_reference", "to_monitor"]

_log = logging.getLogger("keel.monitoring")
_PROFILES = 8


def to_monitor(row: MonitorRow) -> Monitor:
    config = row.config
    features = config.get("features")
    return Monitor(
        id=row.id,
        name=row.name,
        deployment=row.deployment,
        model=row.model,
        reference=row.reference,
        reference_version_id=row.reference_version_id,
        features=tuple(features) if features is not None else None,
        categorical=tuple(config.get("categorical", ())),
        thresholds=dict(config.get("thresholds", {})),
        default_threshold=dict(config.get("default_threshold", {})),
        target=config.get("target"),
        task=config.get("task"),
        window=str(parse_window(f"{row.window_kind}:{_size(row)}")),
        schedule=row.schedule,
        next_run_at=row.next_run_at,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _size(row: MonitorRow) -> str:
    return str(int(row.window_size)) if row.window_kind == "count" else f"{row.window_size:g}s"


def _report(row: MonitorReportRow, monitor: str) -> MonitorReport:
    body = row.body
    return MonitorReport(
        id=row.id,
        monitor=monitor,
        status=row.status,
        rows=row.rows,
        window_start=row.window_start,
        window_end=row.window_end,
        created_at=row.created_at,
        drift=body.get("drift", {}),
        quality=body.get("quality"),
        latency=list(body.get("latency", [])),
        alerts=list(body.get("alerts", [])),
        window=str(body.get("window", "")),
        reference=str(body.get("reference", "")),
    )


def missing_monitor(name: str) -> NotFoundError:
    return NotFoundError(
        f"No monitor '{name}' in this project. List them with `keel monitors list`.",
        monitor=name,
    )


def split_reference(reference: str) -> tuple[str, int | str | None]:
    name, _, selector = reference.replace("@", ":", 1).partition(":")
    if not name:
        raise InvalidInputError(
            f"Invalid reference {reference!r:.80}: write DATASET:VERSION, DATASET@TAG or DATASET."
        )
    return name, (int(selector) if selector.isdigit() else (selector or None))


class MonitorRuns:
    """Running monitors and reading their reports (the base of MonitorService)."""

    _gov: Governor
    _blobs: BlobStore
    _datasets: DatasetService
    _profiles: OrderedDict[tuple[Any, ...], ReferenceProfile]
    alerts: AlertService

    # --- runs ---------------------------------------------------------------------------------

    def _profile(self, ctx: Context, row: MonitorRow) -> ReferenceProfile:
        config = row.config
        key = (
            ctx.project_id,
            row.reference_version_id,
            tuple(config.get("features") or ()),
            tuple(config.get("categorical") or ()),
            config.get("target"),
        )
        found = self._profiles.get(key)
        if found is not None:
            self._profiles.move_to_end(key)
            return found
        dataset, selector = split_reference(row.reference)
        frame = self._datasets.read(ctx, dataset, selector)
        wanted = [
            *(config.get("features") or ()),
            *([config["target"]] if config.get("target") else []),
        ]
        profile = profile_reference(
            frame,
            features=[c for c in wanted if c in frame.columns],
            categorical=config.get("categorical") or (),
        )
        self._profiles[key] = profile
        while len(self._profiles) > _PROFILES:
            self._profiles.popitem(last=False)
        return profile

    def run(
        self,
        ctx: Context,
        name: str,
        *,
        current: Any = None,
        now: datetime | None = None,
    ) -> MonitorReport:
        """Run monitor ``name`` once and store its report (see the module docstring).

        Args:
            current: a frame to monitor instead of the prediction logs (batch scoring). It
                may hold ``prediction`` (prediction drift, quality), ``label`` (quality) and
                ``prediction_id`` (joined with stored labels) columns besides the features.
            now: the end of a time window (default: the clock).
        """
        self._gov.check(ctx, Permission.MONITOR_WRITE, action="monitor.run", object_type="monitor")
        moment = now or clock.now()
        notes: list[str] = []
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "monitor.read", object_type="monitor"
        ) as session:
            row = MonitorRepository(session, ctx.project_id).get(name)
            if row is None:
                raise missing_monitor(name)
            monitor = to_monitor(row)
            deployments = self._watched(session, ctx, row)
            window = parse_window(monitor.window)
            if current is None:
                frame, start, end = read_window(
                    session, self._blobs, ctx.project_id, deployments, window, now=moment
                )
            else:
                frame = _batch_frame(as_frame(current))
                start = end = None
            ids = (
                frame.get_column("prediction_id").drop_nulls().cast(str).to_list()
                if "prediction_id" in frame.columns
                else []
            )
            stored = GroundTruthRepository(session, ctx.project_id).find(ids) if ids else {}
            previous = MonitorRepository(session, ctx.project_id).reports(row.id, limit=1)
            counters_before = previous[0].body.get("counters", {}) if previous else {}
            config = dict(row.config)
            profile = self._profile(ctx, row)
        drift = compute_drift(
            profile,
            frame,
            features=config.get("features"),
            categorical=config.get("categorical") or (),
            thresholds=config.get("thresholds"),
            default=DriftThreshold(**config.get("default_threshold", {})),
            prediction=PREDICTION if config.get("target") else None,
            reference_prediction=config.get("target"),
            min_rows=int(config.get("min_rows", 10)),
        )
        quality = assess_quality(
            frame, stored, task=monitor.task, min_labels=int(config.get("min_labels", 30))
        )
        from keel.monitoring._quality import latency_summary, merge_counters

        latency = latency_summary(frame) if {"latency_ms", "variant"} <= set(frame.columns) else []
        counters: dict[str, dict[str, float]] = {}
        if config.get("metrics_url"):
            found, problem = scrape_counters(
                str(config["metrics_url"]),
                allow_private=bool(config.get("metrics_allow_private")),
                endpoint=monitor.deployment,
            )
            if problem:
                notes.append(problem)
            latency = merge_counters(latency, found, counters_before)
            counters = {f"{k[0]}/{k[1]}": dict(v) for k, v in found.items()}
        if frame.height == 0:
            notes.append(
                "The window holds no predictions: nothing was compared. Send traffic to the "
                "deployment (with prediction logging on) or widen the window."
            )
        body = {
            "window": monitor.window,
            "reference": monitor.reference,
            "drift": drift.to_dict(),
            "quality": quality,
            "latency": latency,
            "counters": counters,
            "deployments": deployments,
            "notes": notes,
        }
        report_id = self._store(
            ctx, row.id, name, deployments, body, drift.status, frame.height, start, end, moment
        )
        try:
            changed = self.alerts.evaluate(ctx, name, report_id, now=moment)
        except KeelError as exc:  # the report stands; say why alerts were not evaluated
            _log.error("monitor %s: alert rules were not evaluated: %s", name, exc)
            changed = []
        if changed:
            body["alerts"] = [a.to_dict() for a in changed]
            with self._gov.db.write() as session:
                stored_row = MonitorRepository(session, ctx.project_id).report(report_id)
                if stored_row is not None:
                    stored_row.body = dict(body)
        return self.report(ctx, report_id)

    def _watched(self, session: Any, ctx: Context, row: MonitorRow) -> builtins.list[str]:
        if row.deployment is not None:
            return [row.deployment]
        found = DeploymentRepository(session, ctx.project_id).list()
        return [d.name for d in found if d.model == row.model]

    def _store(
        self,
        ctx: Context,
        monitor_id: str,
        name: str,
        deployments: Sequence[str],
        body: dict[str, Any],
        status: str,
        rows: int,
        start: datetime | None,
        end: datetime | None,
        moment: datetime,
    ) -> str:
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "monitor.run", object_type="monitor_report"
        ) as work:
            repo = MonitorRepository(work.session, ctx.project_id)
            monitor = repo.by_id(monitor_id)
            if monitor is None:
                raise missing_monitor(name)
            stored = repo.add_report(
                monitor,
                status=status,
                rows=rows,
                window_start=start,
                window_end=end,
                body=body,
                principal=ctx.principal,
                created_at=moment,
            )
            report = Node("monitor_report", stored.id)
            LineageService.link(
                work.session,
                ctx,
                Node("dataset_version", monitor.reference_version_id),
                report,
                "reference",
            )
            deployment_repo = DeploymentRepository(work.session, ctx.project_id)
            for deployment in deployments:
                found = deployment_repo.get(deployment)
                if found is not None:
                    LineageService.link(
                        work.session, ctx, Node("deployment", found.id), report, "monitored"
                    )
            work.object_id = stored.id
            work.details = {"monitor": name, "status": status, "rows": rows}
            return stored.id

    def run_due(self, ctx: Context, now: datetime | None = None) -> builtins.list[MonitorReport]:
        """Run every scheduled monitor due at ``now`` once (its next time moves on first)."""
        from keel.pipelines import next_fire_time

        moment = now or clock.now()
        due: list[str] = []
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "monitor.schedule", object_type="monitor"
        ) as work:
            stopped: list[str] = []
            for row in MonitorRepository(work.session, ctx.project_id).claim_due(moment):
                assert row.schedule is not None
                try:
                    row.next_run_at = next_fire_time(row.schedule, moment)
                except InvalidInputError as exc:
                    # a schedule stored before the stricter cron rules: stop it (and say why)
                    # rather than fail every tick for every monitor
                    row.next_run_at = None
                    stopped.append(row.name)
                    _log.error("monitor %s: schedule stopped: %s", row.name, exc.message)
                    continue
                due.append(row.name)
            work.details = {"due": due, "stopped": stopped}
        reports = []
        for name in due:
            try:
                reports.append(self.run(ctx, name, now=moment))
            except KeelError as exc:
                _log.error("scheduled monitor %s failed: %s", name, exc)
        return reports

    # --- reports ------------------------------------------------------------------------------

    def reports(self, ctx: Context, name: str, *, limit: int = 50) -> builtins.list[MonitorReport]:
        """The monitor's reports, newest first."""
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "monitor.read", object_type="monitor_report"
        ) as session:
            repo = MonitorRepository(session, ctx.project_id)
            row = repo.get(name)
            if row is None:
                raise missing_monitor(name)
            found = repo.reports(row.id, limit=min(max(limit, 1), 1000))
            return [_report(r, name) for r in found]

    def report(self, ctx: Context, report_id: str) -> MonitorReport:
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "monitor.read", object_type="monitor_report"
        ) as session:
            repo = MonitorRepository(session, ctx.project_id)
            row = repo.report(report_id)
            if row is None:
                raise NotFoundError(
                    f"No monitor report '{report_id[:40]}' in this project.", report=report_id[:40]
                )
            monitor = repo.by_id(row.monitor_id)
            return _report(row, monitor.name if monitor else row.monitor_id)

    def html(self, ctx: Context, name: str, *, history: int = 30) -> str:
        """A self-contained HTML report of the monitor's latest run, its history and alerts."""
        from keel.monitoring._html import render_html

        found = self.reports(ctx, name, limit=history)
        if not found:
            raise NotFoundError(
                f"Monitor '{name}' has no report yet; run it first (`keel monitors run {name}`).",
                monitor=name,
            )
        alerts = self.alerts.list(ctx, monitor=name, limit=50)
        return render_html(found[0], history=found, alerts=alerts)


def _batch_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """A batch frame with ``prediction`` renamed to the window's prediction column."""
    if "prediction" in frame.columns and PREDICTION not in frame.columns:
        return frame.rename({"prediction": PREDICTION})
    return frame
