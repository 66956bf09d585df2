"""Monitors: define what is watched, run a window, store the MonitorReport, evaluate alerts.

Definitions are here; runs and reports in ``_runs.py`` (MonitorRuns, the base class).

A monitor binds a deployment (or every deployment of a model) to a reference dataset
version, the features compared, per-feature thresholds and a window (the last N
predictions, or the last period). ``run`` reads the window from the prediction logs (or
takes a frame), computes drift, quality from late labels, latency and errors, stores the
report with its lineage, and steps the monitor's alert rules.
"""

from __future__ import annotations

import builtins
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission, SecretResolver
from keel.monitoring._alerts import AlertService
from keel.monitoring._drift import DriftThreshold, parse_thresholds
from keel.monitoring._labels import LabelService
from keel.monitoring._model import Monitor
from keel.monitoring._profile import ReferenceProfile
from keel.monitoring._runs import MonitorRuns, missing_monitor, split_reference, to_monitor
from keel.monitoring._windows import PREDICTION, parse_window
from keel.store import DeploymentRepository, MonitorRepository
from keel.types import validate_name

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.data import DatasetService
    from keel.pipelines import TriggerService

__all__ = ["MonitorService"]

_log = logging.getLogger("keel.monitoring")
_PROFILES = 8


class MonitorService(MonitorRuns):
    """Monitors of a project, their reports, late labels (``labels``) and alerts (``alerts``).

    Args:
        governor: authorization, transactions and audit.
        blobs: where prediction logs live.
        datasets: reads reference dataset versions.
        triggers: lets firing alerts fire pipeline triggers (see AlertService).
        secrets: resolves channel secrets (default: made from ``settings`` when needed).
        settings: the workspace's Settings.
        background: send alert notifications on background threads.
    """

    def __init__(
        self,
        governor: Governor,
        blobs: BlobStore,
        datasets: DatasetService,
        *,
        triggers: TriggerService | None = None,
        secrets: SecretResolver | None = None,
        settings: Any = None,
        background: bool = True,
    ) -> None:
        self._gov = governor
        self._blobs = blobs
        self._datasets = datasets
        self.labels = LabelService(governor, blobs)
        self.alerts = AlertService(
            governor, triggers=triggers, secrets=secrets, settings=settings, background=background
        )
        self._profiles: OrderedDict[tuple[Any, ...], ReferenceProfile] = OrderedDict()

    # --- definitions --------------------------------------------------------------------------

    def create(
        self,
        ctx: Context,
        name: str,
        *,
        reference: str,
        deployment: str | None = None,
        model: str | None = None,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        thresholds: Mapping[str, Any] | None = None,
        default_threshold: DriftThreshold | Mapping[str, Any] | None = None,
        window: str = "count:10000",
        target: str | None = None,
        task: str | None = None,
        schedule: str | None = None,
        min_rows: int = 10,
        min_labels: int = 30,
        metrics_url: str | None = None,
        metrics_allow_private: bool = False,
        replace: bool = False,
    ) -> Monitor:
        """Create (or with ``replace`` redefine) monitor ``name``.

        Args:
            reference: the reference dataset version (``name:N``, ``name@tag``, ``name``).
            deployment / model: what is watched: one deployment, or every deployment of
                a model (exactly one of the two).
            features: the columns compared (default: the reference's, less ``target``).
            categorical: columns compared as categories though they hold numbers.
            thresholds: per feature ``{"metric": "psi", "drift": 0.2, "warning": 0.1}``.
            default_threshold: for the other features (PSI 0.2, warning 0.1).
            window: ``count:N`` (the last N predictions) or ``time:1h`` (the last period).
            target: the reference column holding the outcome: predictions are compared
                with it (prediction drift).
            task: ``classification`` or ``regression`` (default: inferred from the labels).
            schedule: a cron expression (UTC); ``keel scheduler`` runs the monitor then.
            min_rows: fewer values in the window give ``insufficient_data``.
            min_labels: fewer labelled predictions mark quality ``insufficient_labels``.
            metrics_url: the model server's ``/metrics``, read for error counts.
            metrics_allow_private: allow that URL to be a private or loopback address.
        """
        self._gov.check(
            ctx, Permission.MONITOR_WRITE, action="monitor.create", object_type="monitor"
        )
        validate_name(name, what="monitor name")
        if (deployment is None) == (model is None):
            raise InvalidInputError(
                "A monitor watches one deployment (--deployment) or one model's deployments "
                "(--model): give exactly one of them."
            )
        if task not in (None, "classification", "regression"):
            raise InvalidInputError("task is 'classification' or 'regression'.")
        parsed = parse_window(window)
        per = parse_thresholds(thresholds)
        base = (
            default_threshold
            if isinstance(default_threshold, DriftThreshold)
            else parse_thresholds({"*": default_threshold})["*"]
            if default_threshold is not None
            else DriftThreshold()
        )
        if min_rows < 1 or min_labels < 1:
            raise InvalidInputError("min_rows and min_labels must be at least 1.")
        next_at = None
        if schedule is not None:
            from keel.pipelines import next_fire_time

            next_at = next_fire_time(schedule, clock.now())
        if metrics_url is not None:
            from keel.monitoring._egress import parse_url

            parse_url(metrics_url, allow_private=metrics_allow_private)
        dataset, selector = split_reference(reference)
        version = self._datasets.version(ctx, dataset, selector)
        columns = [c for c, _ in version.schema]
        if target is not None and target not in columns:
            raise InvalidInputError(
                f"The reference {dataset}:{version.version} has no column {target!r:.60} "
                f"(columns: {', '.join(columns[:20])[:200]}).",
            )
        chosen = list(features) if features is not None else [c for c in columns if c != target]
        unknown = set(per) - set(chosen) - {PREDICTION}
        if unknown:
            raise InvalidInputError(
                f"Thresholds name features the monitor does not compare: "
                f"{', '.join(sorted(unknown))[:200]}."
            )
        config = {
            "features": chosen,
            "categorical": list(categorical),
            "thresholds": {k: v.to_dict() for k, v in per.items()},
            "default_threshold": base.to_dict(),
            "target": target,
            "task": task,
            "min_rows": int(min_rows),
            "min_labels": int(min_labels),
            "metrics_url": metrics_url,
            "metrics_allow_private": bool(metrics_allow_private),
        }
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "monitor.create", object_type="monitor"
        ) as work:
            if deployment is not None and (
                DeploymentRepository(work.session, ctx.project_id).get(deployment) is None
            ):
                raise NotFoundError(
                    f"No deployment '{deployment}' in this project; deploy first "
                    "(`keel deploy`) or watch a model with --model.",
                    deployment=deployment,
                )
            repo = MonitorRepository(work.session, ctx.project_id)
            row = repo.get(name, for_update=True)
            if row is not None and not replace:
                raise AlreadyExistsError(
                    f"A monitor named '{name}' exists; pick another name or replace it.",
                    monitor=name,
                )
            fields = {
                "deployment": deployment,
                "model": model,
                "reference": f"{dataset}:{version.version}",
                "reference_version_id": version.id,
                "config": config,
                "window_kind": parsed.kind,
                "window_size": parsed.size,
                "schedule": schedule,
                "next_run_at": next_at,
            }
            if row is None:
                row = repo.add(name=name, created_by=ctx.principal, **fields)
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                row.updated_at = clock.now()
            work.object_id = row.id
            work.details = {
                "monitor": name,
                "deployment": deployment,
                "model": model,
                "reference": row.reference,
            }
            return to_monitor(row)

    def get(self, ctx: Context, name: str) -> Monitor:
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "monitor.read", object_type="monitor"
        ) as session:
            row = MonitorRepository(session, ctx.project_id).get(name)
            if row is None:
                raise missing_monitor(name)
            return to_monitor(row)

    def list(self, ctx: Context) -> builtins.list[Monitor]:
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "monitor.read", object_type="monitor"
        ) as session:
            return [to_monitor(r) for r in MonitorRepository(session, ctx.project_id).list()]

    def delete(self, ctx: Context, name: str) -> None:
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "monitor.delete", object_type="monitor"
        ) as work:
            repo = MonitorRepository(work.session, ctx.project_id)
            row = repo.get(name, for_update=True)
            if row is None:
                raise missing_monitor(name)
            from keel.store import AlertRepository

            alerts = AlertRepository(work.session, ctx.project_id)
            for rule in alerts.rules(monitor=name):
                alerts.remove_rule(rule)
            work.object_id = row.id
            work.details = {"monitor": name}
            repo.remove(row)
