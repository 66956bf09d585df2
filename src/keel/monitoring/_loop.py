"""The closed loop: alert -> retraining trigger -> pipeline -> gates -> canary -> decision.

Each hop is done by the component that owns it, and the loop only moves the work from one to
the next, recording why:

1. a monitor's alert goes to *firing*; it fires every ``alert`` trigger watching its rule
   (``TriggerService.fire_event``, once per alert id however often it is delivered);
2. the scheduler claims the firing under a lease and runs the trigger's retraining pipeline
   (``keel.training.retraining_pipeline``): newest published data, challenger against
   champion, registration and the ``challenger`` alias through the policy gates;
3. the loop deploys the registered challenger as a canary of the trigger's deployment;
4. the model server's canary analysis promotes or rolls it back by itself;
5. the loop moves ``champion`` to a promoted challenger (the ``alias.promote`` gate applies).

Every hop is a lineage edge (``alert → pipeline_run → run → model_version →
deployment_revision → deployment``) whose details say why, and an audit event
(``loop.retrain``, ``loop.canary``, ``loop.promote``, ``loop.rollback``, ``loop.stop``) with
the cause. State is read back from what the hops wrote (firings, pipeline runs, deployment
revisions, lineage), so :meth:`ClosedLoop.tick` is idempotent: a repeated or interrupted tick
finishes what is unfinished and repeats nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    KeelError,
    PermissionDeniedError,
)
from keel.governance import Context, Governor, Permission
from keel.lineage import LineageService, Node
from keel.monitoring._loop_model import (
    DEFAULT_STEPS,
    ENDED,
    LoopCycle,
    LoopPhase,
    canary_of,
    cycle_details,
    decision_after,
    describe_alert,
    edge_why,
    revision_node,
    with_changes,
)
from keel.store import LineageRepository
from keel.types import validate_name

if TYPE_CHECKING:
    from keel.pipelines import Executor, Firing, Pipeline, PipelineService, Trigger
    from keel.serving import DeploymentService
    from keel.tracking import ModelRegistry

__all__ = ["ClosedLoop"]

_log = logging.getLogger("keel.monitoring.loop")


class ClosedLoop:
    """Moves alerts through retraining, gates and canary, recording every hop with its cause.

    Args:
        governor: authorizes and audits the loop's own writes (lineage links, audit events).
        pipelines: runs retraining pipelines (through its scheduler and triggers).
        registry: the model registry (challenger lookup, champion moves).
        deployments: deploys canaries and reads their revisions.
    """

    def __init__(
        self,
        governor: Governor,
        *,
        pipelines: PipelineService,
        registry: ModelRegistry,
        deployments: DeploymentService,
    ) -> None:
        self._gov = governor
        self._pipelines = pipelines
        self._registry = registry
        self._deployments = deployments

    # -- wiring --------------------------------------------------------------------------

    def connect(
        self,
        ctx: Context,
        name: str,
        *,
        rule: str,
        pipeline: str,
        deployment: str,
        steps: str = DEFAULT_STEPS,
        replace: bool = True,
    ) -> Trigger:
        """Close the loop for ``rule``: its alerts run ``pipeline``, whose challenger is canaried
        on ``deployment`` with traffic ``steps`` (percentages, e.g. ``20,100``).

        It is an ``alert`` trigger (``keel triggers list``) whose spec also names the
        deployment and the canary steps.
        """
        from keel.serving._service import parse_steps

        validate_name(rule, what="alert rule name")
        validate_name(deployment, what="deployment name")
        parse_steps(steps)
        return self._pipelines.triggers.create(
            ctx,
            name,
            pipeline=pipeline,
            kind="alert",
            spec={"rule": rule, "deployment": deployment, "steps": steps},
            replace=replace,
        )

    def deliver(
        self, ctx: Context, *, alert_id: str, rule: str, details: Mapping[str, Any] | None = None
    ) -> list[Firing]:
        """Fire the triggers watching ``rule`` for alert ``alert_id`` (once per alert).

        Monitors do this themselves when an alert starts firing; a webhook relay or a retry
        may deliver the same alert again, which records nothing new.
        """
        if not isinstance(alert_id, str) or not alert_id:
            raise InvalidInputError("alert_id names the alert that fired.")
        payload = {"alert": alert_id, "rule": rule, **dict(details or {})}
        return self._pipelines.triggers.fire_event(
            ctx, "alert", rule, event_id=alert_id, details=payload
        )

    # -- the loop ------------------------------------------------------------------------

    def tick(
        self,
        ctx: Context,
        *,
        resolve: Callable[[str], Pipeline] | Mapping[str, Pipeline] | None = None,
        executor: Executor | str | None = None,
        run_pipelines: bool = True,
        limit: int = 100,
    ) -> list[LoopCycle]:
        """Run pending retraining firings, then move every open cycle one hop on as far as it can.

        Args:
            resolve: finds a pipeline by name (a function, or a mapping of name to pipeline;
                default: the ``pipelines:`` of ``keel.yaml``).
            executor: where the pipelines' steps run.
            run_pipelines: also claim and run pending firings here (False when a separate
                ``keel scheduler`` does that).
            limit: how many recent alert firings to look at.
        """
        if run_pipelines:
            self.scheduler(ctx, resolve=resolve, executor=executor).tick()
        return self.cycles(ctx, limit=limit, advance=True)

    def scheduler(
        self,
        ctx: Context,
        *,
        resolve: Callable[[str], Pipeline] | Mapping[str, Pipeline] | None = None,
        executor: Executor | str | None = None,
    ) -> Any:
        """A scheduler replica that runs the loop's (and every other) pending firing."""
        from keel.pipelines import Scheduler

        finder: Callable[[str], Pipeline] | None
        if isinstance(resolve, Mapping):
            from keel.pipelines import find_pipeline

            known = dict(resolve)

            def finder(name: str) -> Pipeline:
                return known[name] if name in known else find_pipeline(name)

        else:
            finder = resolve
        return Scheduler(self._pipelines, ctx, resolve=finder, executor=executor)

    def serve(
        self,
        ctx: Context,
        *,
        resolve: Callable[[str], Pipeline] | Mapping[str, Pipeline] | None = None,
        executor: Executor | str | None = None,
        poll: float = 10.0,
        stop: threading.Event | None = None,
    ) -> None:
        """Tick every ``poll`` seconds until ``stop`` is set (the unattended loop)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick(ctx, resolve=resolve, executor=executor)
            except KeelError as exc:  # a store hiccup must not stop the loop
                _log.error("Closed-loop tick failed: %s", exc)
            stop.wait(poll)

    def cycles(self, ctx: Context, *, limit: int = 100, advance: bool = False) -> list[LoopCycle]:
        """The loop's cycles, newest first; with ``advance`` each open one moves on first."""
        triggers = {t.name: t for t in self._pipelines.triggers.all(ctx, kind="alert")}
        found = []
        for firing in self._pipelines.triggers.firings(ctx, limit=limit):
            trigger = triggers.get(firing.trigger)
            if trigger is None or firing.cause.get("kind") != "alert":
                continue
            found.append(self._advance(ctx, firing, trigger, act=advance))
        return found

    # -- one cycle -----------------------------------------------------------------------

    def _advance(self, ctx: Context, firing: Firing, trigger: Trigger, *, act: bool) -> LoopCycle:
        cause = dict(firing.cause)
        base = LoopCycle(
            firing_id=firing.id,
            trigger=trigger.name,
            alert_id=str(cause.get("alert") or cause.get("event") or ""),
            rule=str(cause.get("rule") or cause.get("subject") or ""),
            why=describe_alert(cause),
            phase="triggered" if firing.status == "pending" else "retraining",
            pipeline_run_id=firing.pipeline_run_id,
            deployment=trigger.spec.get("deployment"),
            cause=cause,
        )
        if firing.status in ("pending", "running") or firing.pipeline_run_id is None:
            if firing.status == "failed":
                return with_changes(
                    base, phase="failed", reason=firing.error or "the firing failed"
                )
            return base
        run_id = firing.pipeline_run_id
        if firing.status != "done":
            cycle = with_changes(
                base, phase="failed", reason=firing.error or "the pipeline run failed"
            )
            if act:
                self._record(
                    ctx,
                    "loop.stop",
                    [(self._alert_node(base), Node("pipeline_run", run_id), "triggered")],
                    cycle_details(cycle),
                )
            return cycle
        outcome = self._pipelines.read_output(ctx, run_id, "outcome")
        version = outcome.get("version") or None
        cycle = with_changes(
            base,
            run_id=outcome.get("run_id"),
            decision=outcome.get("decision"),
            model=outcome.get("model"),
            version=None if version is None else int(version["version"]),
            phase="kept" if version is None else "canary",
            reason=str((outcome.get("decision") or {}).get("reason", "")),
        )
        if act:
            edges = [(self._alert_node(base), Node("pipeline_run", run_id), "triggered")]
            if cycle.run_id:
                edges.append((Node("pipeline_run", run_id), Node("run", cycle.run_id), "ran"))
            self._record(ctx, "loop.retrain", edges, cycle_details(cycle))
        if version is None or cycle.deployment is None:
            return cycle
        return self._rollout(ctx, cycle, str(version["id"]), trigger, act=act)

    def _rollout(
        self, ctx: Context, cycle: LoopCycle, version_id: str, trigger: Trigger, *, act: bool
    ) -> LoopCycle:
        assert cycle.deployment is not None
        assert cycle.version is not None
        assert cycle.model is not None
        name = cycle.deployment
        revisions = self._deployments.revisions(ctx, name)
        started = canary_of(revisions, cycle.version)
        if started is None:
            current = self._deployments.get(ctx, name)
            rejected = [
                r
                for r in revisions
                if r.action == "reject" and r.reason.startswith(f"{cycle.model}:{cycle.version} ")
            ]
            if rejected:
                return with_changes(cycle, phase="rejected", reason=rejected[-1].reason)
            if current.state.phase == "rolling":
                return with_changes(
                    cycle,
                    phase="waiting",
                    reason=f"'{name}' is rolling out version {current.state.candidate}",
                )
            if not act:
                return with_changes(cycle, phase="canary", reason="the canary is not deployed yet")
            try:
                self._deployments.deploy(
                    ctx,
                    f"{cycle.model}:{cycle.version}",
                    environment=current.environment,
                    strategy="canary",
                    steps=str(trigger.spec.get("steps") or DEFAULT_STEPS),
                    name=name,
                )
            except IntegrityError as exc:
                stopped = with_changes(cycle, phase="rejected", reason=str(exc))
                self._record(
                    ctx,
                    "loop.stop",
                    [
                        (
                            Node("model_version", version_id),
                            self._deployment_node(ctx, name),
                            "rejected",
                        )
                    ],
                    cycle_details(stopped),
                )
                return stopped
            except ConflictError as exc:  # someone deployed meanwhile: try again next tick
                return with_changes(cycle, phase="waiting", reason=str(exc))
            revisions = self._deployments.revisions(ctx, name)
            started = canary_of(revisions, cycle.version)
            assert started is not None
        deployment_id = self._deployments.get(ctx, name).id
        canary = revision_node(deployment_id, started.revision)
        cycle = with_changes(
            cycle, phase="canary", canary_revision=started.revision, reason=started.reason
        )
        if act:
            self._record(
                ctx,
                "loop.canary",
                [
                    (Node("model_version", version_id), canary, "canary"),
                    (canary, Node("deployment", deployment_id), "revision_of"),
                ],
                cycle_details(cycle),
            )
        ended = decision_after(revisions, started)
        if ended is None:
            return cycle
        if ended.action == "deploy" or ended.state.phase not in ENDED:
            return with_changes(
                cycle,
                phase="superseded",
                decision_revision=ended.revision,
                reason=f"revision {ended.revision} ({ended.action}) replaced the canary",
            )
        decided = revision_node(deployment_id, ended.revision)
        phase: LoopPhase = "promoted" if ended.state.phase == "promoted" else "rolled_back"
        cycle = with_changes(
            cycle, phase=phase, decision_revision=ended.revision, reason=ended.reason
        )
        if not act:
            return cycle
        edges = [
            (Node("model_version", version_id), decided, phase),
            (decided, Node("deployment", deployment_id), "revision_of"),
        ]
        if phase == "promoted":
            return self._promote(ctx, cycle, version_id, edges)
        self._record(ctx, "loop.rollback", edges, cycle_details(cycle))
        return cycle

    def _promote(
        self,
        ctx: Context,
        cycle: LoopCycle,
        version_id: str,
        edges: list[tuple[Node, Node, str]],
    ) -> LoopCycle:
        """Move ``champion`` to the promoted challenger (through the alias gate), then record.

        Once recorded, never again: a later champion (a newer cycle, a person) is left alone.
        """
        assert cycle.model is not None
        assert cycle.version is not None
        if self._recorded(ctx, edges[0]):
            return cycle
        found = self._registry.version(ctx, f"{cycle.model}:{cycle.version}")
        if "champion" not in found.aliases:
            try:
                self._registry.set_alias(
                    ctx,
                    cycle.model,
                    "champion",
                    cycle.version,
                    reason=(
                        f"canary promoted on '{cycle.deployment}' (revision "
                        f"{cycle.decision_revision}): {cycle.reason} Retrained because "
                        f"{cycle.why}."
                    )[:2000],
                )
            except PermissionDeniedError as exc:  # a policy gate (or a role) said no
                cycle = with_changes(
                    cycle, reason=f"{cycle.reason} The champion alias stays: {exc}"
                )
        self._record(ctx, "loop.promote", edges, cycle_details(cycle))
        return cycle

    # -- records -------------------------------------------------------------------------

    def _record(
        self,
        ctx: Context,
        action: str,
        edges: Sequence[tuple[Node, Node, str]],
        details: dict[str, Any],
    ) -> bool:
        """Link ``edges`` and audit ``action`` in one transaction, unless already recorded.

        The first edge is the record's key: when it exists, nothing is written (so a repeated
        tick audits each hop once); it carries the hop's explanation (``details["why"]`` of
        the edge, shown by ``keel lineage show``). Returns whether anything was recorded.
        """
        self._gov.check(ctx, Permission.PIPELINE_RUN, action=action, object_type="loop")
        if self._recorded(ctx, edges[0]):  # a read first: finished cycles cost no write
            return False
        base = {"action": action, "alert": details.get("alert_id"), "firing": details["firing"]}
        with self._gov.db.write() as session:
            first, *rest = edges
            explained = {**base, "why": edge_why(action, details)}
            if not LineageService.link(session, ctx, *first, details=explained):
                return False
            for upstream, downstream, relation in rest:
                LineageService.link(session, ctx, upstream, downstream, relation, details=base)
            self._gov.audit.append(
                session,
                ctx,
                action,
                object_type=first[1].type,
                object_id=first[1].id,
                details=details,
            )
        return True

    def _recorded(self, ctx: Context, edge: tuple[Node, Node, str]) -> bool:
        upstream, downstream, relation = edge
        with self._gov.db.read() as session:
            rows = LineageRepository(session, ctx.project_id).edges_touching(
                [(upstream.type, upstream.id)], direction="down"
            )
            return any(
                (r.dst_type, r.dst_id, r.relation) == (downstream.type, downstream.id, relation)
                for r in rows
            )

    def _alert_node(self, cycle: LoopCycle) -> Node:
        return Node("alert", cycle.alert_id or f"firing-{cycle.firing_id}")

    def _deployment_node(self, ctx: Context, name: str) -> Node:
        return Node("deployment", self._deployments.get(ctx, name).id)
