"""``keel ci deploy``: start a declared deployment and wait for its verdict."""

from __future__ import annotations

import time
from typing import Any

from keel.cicd._model_stages import environment_spec
from keel.cicd._ports import CiWorkspace
from keel.cicd._project import ProjectFile
from keel.cicd._report import StageReport
from keel.cicd._residency import check_regions
from keel.errors import InvalidInputError

__all__ = ["run_deploy_stage"]


def run_deploy_stage(
    ws: CiWorkspace,
    deployment: str,
    *,
    project: ProjectFile | None,
    timeout: float | None = None,
    poll: float = 2.0,
) -> StageReport:
    """Start the declared deployment and wait for its verdict (canary: promoted or rolled back)."""
    declared = (project.data.get("deployments") or {}) if project is not None else {}
    spec = declared.get(deployment)
    if spec is None:
        raise InvalidInputError(
            f"Deployment '{deployment}' is not declared in keel.yaml (declared: "
            f"{', '.join(sorted(declared)) or 'none'}). Declare it under 'deployments:'.",
            deployment=deployment,
        )
    env = environment_spec(project, spec["environment"])
    alias = spec.get("alias") or env["alias"]
    strategy = spec.get("strategy") or env.get("strategy") or "blue-green"
    report = StageReport("deploy")
    check_regions(
        report,
        project,
        model=str(spec["model"]),
        environment=str(spec["environment"]),
        env=env,
        destinations={f"region {r}": r for r in spec.get("regions") or []},
        group=deployment,
    )
    if not report.passed:
        report.skip("start", "the deployment's regions break residency", group=deployment)
        return report
    started: Any = None
    with report.guard("start", group=deployment) as note:
        started = ws.deployments.deploy(
            f"{spec['model']}@{alias}",
            environment=spec["environment"],
            strategy=strategy,
            steps=spec.get("steps"),
            name=deployment,
        )
        note(f"{strategy} of {spec['model']}@{alias} revision {started.revision}")
    if started is None or not report.checks[-1].ok:
        return report
    if strategy == "blue-green":
        report.add("verdict", True, f"switched to v{started.state.primary}", group=deployment)
        return report
    limit = float(timeout if timeout is not None else spec.get("timeout_s", 900))
    deadline = time.monotonic() + limit
    current = started
    while current.state.phase == "rolling" and time.monotonic() < deadline:
        time.sleep(poll)
        current = ws.deployments.get(deployment)
    phase = current.state.phase
    if phase == "rolling":
        report.add(
            "verdict",
            False,
            f"no verdict within {limit:.0f} s (step "
            f"{current.state.step + 1} of {len(current.state.steps)}); the rollout "
            "continues — check `keel deployments show`",
            group=deployment,
        )
    else:
        report.add(
            "verdict",
            phase in ("promoted", "stable"),
            f"{phase}: serving v{current.state.primary}",
            group=deployment,
        )
    return report
