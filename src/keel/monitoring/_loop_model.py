"""The closed loop's records: one cycle per alert, and the pure rules that read its state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from keel.lineage import Node

if TYPE_CHECKING:
    from keel.serving import DeploymentRevision

__all__ = [
    "DEFAULT_STEPS",
    "ENDED",
    "LoopCycle",
    "LoopPhase",
    "canary_of",
    "cycle_details",
    "decision_after",
    "describe_alert",
    "edge_why",
    "revision_node",
    "with_changes",
]

LoopPhase = Literal[
    "triggered",  # the firing waits for a scheduler
    "retraining",  # a scheduler runs the pipeline
    "failed",  # the pipeline failed (a gate denied, the data was missing, ...)
    "kept",  # the retrained model did not beat the champion: nothing to deploy
    "waiting",  # the deployment is busy with another rollout
    "rejected",  # the challenger failed its smoke test at deploy time
    "canary",  # the challenger takes canary traffic; the server's analysis decides
    "promoted",  # the canary was promoted and the champion alias moved to it
    "rolled_back",  # the canary was rolled back; the champion keeps serving
    "superseded",  # another deploy replaced the canary before any decision
]
DEFAULT_STEPS = "20,100"
ENDED = ("promoted", "rolled_back")


@dataclass(frozen=True, slots=True)
class LoopCycle:
    """One turn of the loop, started by one alert.

    Attributes:
        firing_id: the trigger firing the alert caused.
        trigger: the trigger's name.
        alert_id: the alert (``keel monitors alerts``).
        rule: the alert rule.
        why: the sentence recorded with every hop (the alert, its metric and value).
        phase: where the cycle is (see :data:`LoopPhase`).
        pipeline_run_id: the retraining pipeline run, once started.
        run_id: the retraining (tracking) run.
        decision: the retraining policy's verdict (challenger against champion).
        model: the registered model.
        version: the challenger version registered, if any.
        deployment: the deployment it is rolled out to.
        canary_revision: the deployment revision that started the canary.
        decision_revision: the revision where the canary was promoted or rolled back.
        reason: why the cycle is in its phase (the analysis' reasons, an error, ...).
    """

    firing_id: str
    trigger: str
    alert_id: str
    rule: str
    why: str
    phase: LoopPhase
    pipeline_run_id: str | None = None
    run_id: str | None = None
    decision: dict[str, Any] | None = None
    model: str | None = None
    version: int | None = None
    deployment: str | None = None
    canary_revision: int | None = None
    decision_revision: int | None = None
    reason: str = ""
    cause: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_alert(cause: Mapping[str, Any]) -> str:
    """The sentence that explains a cycle: which alert fired, on what metric and value."""
    rule = str(cause.get("rule") or cause.get("subject") or "?")
    alert = str(cause.get("alert") or cause.get("event") or "?")
    text = f"alert '{rule}' ({alert}) fired"
    message = cause.get("message")
    metric, value = cause.get("metric"), cause.get("value")
    if isinstance(message, str) and message:
        text += f": {message}"
    elif metric is not None:
        text += f": {metric}" + ("" if value is None else f" = {_number(value)}")
        if cause.get("threshold") is not None:
            text += f" {cause.get('comparison') or '>'} {_number(cause['threshold'])}"
    kind = _alert_kind(str(metric or ""))
    drifted = cause.get("drifted")
    if kind == "data drift" and isinstance(drifted, list | tuple) and drifted:
        kind += ": " + ", ".join(str(name) for name in drifted[:20])
    if kind:
        text += f" [{kind}]"
    if cause.get("monitor"):
        text += f" on monitor '{cause['monitor']}'"
    if cause.get("report"):
        text += f", report {cause['report']}"
    return text[:1000]


def _alert_kind(metric: str) -> str:
    if metric.startswith(("drift.", "prediction.drift")):
        feature = metric.removeprefix("drift.")
        if metric.startswith("prediction."):
            return "prediction drift"
        return "data drift" if feature in ("share", "max") else f"data drift of {feature}"
    if metric.startswith("quality."):
        return f"quality drop ({metric.removeprefix('quality.')})"
    if metric.startswith(("latency.", "errors.")):
        return "serving health"
    return ""


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def revision_node(deployment_id: str, revision: int) -> Node:
    """The lineage node of one revision of a deployment."""
    return Node("deployment_revision", f"{deployment_id}:{revision}")


def with_changes(cycle: LoopCycle, **changes: Any) -> LoopCycle:
    return replace(cycle, **changes)


def cycle_details(cycle: LoopCycle) -> dict[str, Any]:
    """What an audit event of the loop says (bounded)."""
    data: dict[str, Any] = {
        "why": cycle.why,
        "alert_id": cycle.alert_id,
        "rule": cycle.rule,
        "trigger": cycle.trigger,
        "firing": cycle.firing_id,
        "phase": cycle.phase,
        "pipeline_run": cycle.pipeline_run_id,
        "run": cycle.run_id,
        "model": cycle.model,
        "version": cycle.version,
        "deployment": cycle.deployment,
        "canary_revision": cycle.canary_revision,
        "decision_revision": cycle.decision_revision,
        "reason": cycle.reason[:1000],
    }
    if cycle.decision:
        data["decision"] = {k: cycle.decision.get(k) for k in ("register", "reason")}
    return {k: v for k, v in data.items() if v is not None}


def canary_of(revisions: Sequence[DeploymentRevision], version: int) -> DeploymentRevision | None:
    """The revision that started the canary of ``version`` (the first deploy of it)."""
    for revision in revisions:
        if (
            revision.action == "deploy"
            and revision.state.strategy == "canary"
            and revision.state.candidate == version
        ):
            return revision
    return None


def decision_after(
    revisions: Sequence[DeploymentRevision], started: DeploymentRevision
) -> DeploymentRevision | None:
    """The revision that ended the canary ``started`` began (promoted, rolled back, replaced)."""
    for revision in revisions:
        if revision.revision <= started.revision:
            continue
        if revision.action == "deploy" or revision.state.phase in ENDED:
            return revision
    return None


def edge_why(action: str, details: Mapping[str, Any]) -> str:
    """What the key edge of a hop says (the alert's sentence on the first hop, then the hop)."""
    version = f"{details.get('model')}:{details.get('version')}"
    reason = str(details.get("reason", ""))
    if action == "loop.retrain":
        return str(details["why"])
    if action == "loop.canary":
        return (
            f"canary of {version} on '{details.get('deployment')}' (revision "
            f"{details.get('canary_revision')}), retrained because {details['why']}"
        )[:1000]
    if action in ("loop.promote", "loop.rollback"):
        verdict = "promoted" if action == "loop.promote" else "rolled back"
        return f"{version} {verdict} by the canary analysis: {reason}"[:1000]
    return f"stopped ({details.get('phase')}): {reason}; {details['why']}"[:1000]
