"""The ``keel ci`` stages for models: test, promote to an environment, deploy and wait.

The promotion policy of a model for an environment is ``models.<name>.promotion.<env>`` in
keel.yaml; the environment (dev, staging, production or a declared one) names the registry
alias that marks a version as being there, and the environment it must come from.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from keel.cicd._effects import approvals_policy, approvals_policy_name
from keel.cicd._ports import CiWorkspace
from keel.cicd._project import BUILTIN_ENVIRONMENTS, ProjectFile
from keel.cicd._report import Check, StageReport
from keel.cicd._residency import check_regions
from keel.cicd._stages import parse_ref
from keel.errors import InvalidInputError, KeelError, NotFoundError

__all__ = ["environment_spec", "run_model_stage", "run_promote_stage"]


def environment_spec(project: ProjectFile | None, environment: str) -> dict[str, Any]:
    """The environment's settings (alias, promote_from, approvals, ...), built-ins included."""
    declared = (project.data.get("environments") or {}) if project is not None else {}
    spec = {**BUILTIN_ENVIRONMENTS.get(environment, {}), **(declared.get(environment) or {})}
    if not spec:
        known = sorted({*BUILTIN_ENVIRONMENTS, *declared})
        raise InvalidInputError(
            f"Unknown environment '{environment}'. Use one of {', '.join(known)} or declare it "
            "under 'environments:' in keel.yaml.",
            environment=environment,
        )
    spec.setdefault("alias", environment)
    return spec


def _promotion(project: ProjectFile | None, model: str, environment: str) -> dict[str, Any]:
    if project is None:
        return {}
    models = project.data.get("models") or {}
    entry = models.get(model) or {}
    return dict((entry.get("promotion") or {}).get(environment) or {})


def _greater_is_better(metric: str) -> bool:
    from keel.training._metrics import greater_is_better

    return bool(greater_is_better(metric))


def _evaluate(ws: CiWorkspace, served: Any, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Metrics (and the raw predictions) of a served version on an evaluation dataset."""
    import numpy as np

    from keel.training import evaluate

    frame = ws.datasets.read(evaluation["dataset"], evaluation.get("version"))
    features = list(served.signature.features)
    X = frame.select(features).to_numpy().astype(served.signature.dtype)  # noqa: N806
    truth = frame[evaluation["label"]].to_numpy()
    out = served.predict(X)
    task: Literal["classification", "regression"] = (
        "classification" if served.kind == "classifier" else "regression"
    )
    metrics = evaluate(task, truth, out["prediction"], out.get("probabilities"), served.classes)
    return {
        "metrics": metrics,
        "frame": frame,
        "truth": truth,
        "out": out,
        "task": task,
        "n": int(np.asarray(truth).shape[0]),
    }


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_model_stage(
    ws: CiWorkspace,
    model: str,
    *,
    project: ProjectFile | None = None,
    environment: str = "staging",
    latency_samples: int = 50,
) -> StageReport:
    """Model tests: signature and example, smoke prediction and latency through the serving
    runtime, metric thresholds, no regression against the environment's current version (on
    the same evaluation data when declared), and per-slice fairness."""
    from keel.serving import smoke_test

    report = StageReport("model")
    name, version = parse_ref(model)
    env = environment_spec(project, environment)
    policy = _promotion(project, name, environment)
    candidate = ws.models.version(name, version)
    group = f"{name}:{candidate.version}"

    if candidate.signature and candidate.signature.get("inputs"):
        report.add("signature", True, f"{len(candidate.signature['inputs'])} inputs", group=group)
    elif policy.get("require_signature", True):
        report.add(
            "signature",
            False,
            "the version has no input signature; register it with "
            "ws.models.log_model(..., sample=X)",
            group=group,
        )
    served: Any = None
    with report.guard("load in serving runtime", group=group) as note:
        served = ws.deployments.service.loader(ws.ctx).load(name, candidate.version)
        note(f"format {served.format}, {served.kind}")
    if served is None or not report.checks[-1].ok:
        return report
    if served.example:
        report.add("input example", True, f"{len(served.example)} rows", group=group)
    else:
        report.add(
            "input example",
            not policy.get("require_example", True),
            "the version stores no input example",
            group=group,
        )
    with report.guard("smoke prediction", group=group) as note:
        smoke_test(served)
        note("the stored example predicts through the serving path")
    if served.example:
        _latency(report, served, policy.get("latency_ms"), latency_samples, group)

    evaluation = policy.get("evaluation")
    scored: dict[str, Any] | None = None
    if evaluation:
        with report.guard("evaluate on " + str(evaluation["dataset"]), group=group) as note:
            scored = _evaluate(ws, served, evaluation)
            note(
                f"{scored['n']} rows: "
                + ", ".join(f"{k}={v:.4g}" for k, v in sorted(scored["metrics"].items()))
            )
    metrics = dict(candidate.metrics or {})
    if scored is not None:
        metrics.update(scored["metrics"])
    for key, bounds in sorted((policy.get("metrics") or {}).items()):
        value = _metric(metrics, key)
        if value is None:
            report.add(
                f"metric {key}",
                False,
                f"'{key}' is not recorded for this version "
                f"(recorded: {', '.join(sorted(metrics)) or 'none'})",
                group=group,
            )
            continue
        low, high = bounds.get("min"), bounds.get("max")
        ok = (low is None or value >= low) and (high is None or value <= high)
        report.add(
            f"metric {key}",
            ok,
            f"{key}={value:.6g} (min {low}, max {high})",
            group=group,
            details={"value": value},
        )

    _champion(ws, report, name, candidate, served, env["alias"], policy, metrics, scored, group)
    if policy.get("slices"):
        _slices(report, policy["slices"], metrics, scored, group)
    return report


def _latency(report: StageReport, served: Any, budget: Any, samples: int, group: str) -> None:
    import numpy as np

    row = np.asarray(served.example[:1], dtype=served.signature.dtype)
    served.predict(row)  # warm-up
    timings = []
    for _ in range(max(5, samples)):
        started = time.perf_counter()
        served.predict(row)
        timings.append((time.perf_counter() - started) * 1000)
    p95 = float(np.percentile(timings, 95))
    if budget is None:
        report.add("latency", True, f"p95 {p95:.3f} ms (no budget declared)", group=group)
    else:
        report.add(
            "latency",
            p95 <= float(budget),
            f"p95 {p95:.3f} ms, budget {budget} ms",
            group=group,
            details={"p95_ms": p95},
        )


def _champion(
    ws: CiWorkspace,
    report: StageReport,
    name: str,
    candidate: Any,
    served: Any,
    alias: str,
    policy: dict[str, Any],
    metrics: dict[str, Any],
    scored: dict[str, Any] | None,
    group: str,
) -> None:
    margins = policy.get("max_regression") or {}
    if not margins:
        return
    try:
        champion = ws.models.version(name, alias)
    except NotFoundError:
        report.skip("no regression", f"'{alias}' points at no version yet", group=group)
        return
    except KeelError as exc:
        report.checks.append(
            Check(f"load {alias}", "error", f"{type(exc).__name__}: {exc}", group=group)
        )
        return
    if champion.version == candidate.version:
        report.skip("no regression", f"this version already is '{alias}'", group=group)
        return
    theirs = dict(champion.metrics or {})
    basis = "stored metrics"
    if scored is not None:
        with report.guard(f"evaluate {alias} (v{champion.version})", group=group) as note:
            other = ws.deployments.service.loader(ws.ctx).load(name, champion.version)
            theirs.update(_evaluate(ws, other, policy["evaluation"])["metrics"])
            note("scored on the same evaluation data")
        if not report.checks[-1].ok:
            return
        basis = "the same evaluation data"
    for key, margin in sorted(margins.items()):
        mine, best = _metric(metrics, key), _metric(theirs, key)
        label = f"no regression {key} vs {alias} (v{champion.version})"
        if mine is None or best is None:
            report.add(label, False, f"'{key}' is missing for one of the versions", group=group)
            continue
        drop = best - mine if _greater_is_better(key) else mine - best
        report.add(
            label,
            drop <= float(margin),
            f"{mine:.6g} vs {best:.6g} on {basis}; regression {max(drop, 0):.6g}, allowed {margin}",
            group=group,
        )


def _slices(
    report: StageReport,
    spec: dict[str, Any],
    metrics: dict[str, Any],
    scored: dict[str, Any] | None,
    group: str,
) -> None:
    metric, attribute = str(spec["metric"]), spec.get("attribute")
    values: dict[str, float] = {}
    if scored is not None and attribute and attribute in scored["frame"].columns:
        from keel.training import slice_metrics

        out = scored["out"]
        per = slice_metrics(
            scored["task"],
            scored["frame"][attribute].to_numpy(),
            scored["truth"],
            out["prediction"],
            out.get("probabilities"),
            None if scored["task"] == "regression" else _classes(out, scored),
        )
        values = {g: m[metric] for g, m in per.items() if metric in m}
    else:
        marker = f".slice.{attribute}." if attribute else ".slice."
        for key, value in metrics.items():
            if marker in key and key.endswith(f".{metric}") and _metric(metrics, key) is not None:
                values[key.split(marker, 1)[1].rsplit(".", 1)[0]] = float(value)
    if not values:
        report.add(
            f"slices {metric}",
            False,
            f"no per-slice '{metric}' is recorded or "
            "computable; declare evaluation data and slices.attribute",
            group=group,
        )
        return
    floor = spec.get("min")
    for key, value in sorted(values.items()):
        report.add(
            f"slice {key} {metric}",
            floor is None or value >= floor,
            f"{value:.6g} (min {floor})",
            group=group,
        )
    if spec.get("max_gap") is not None:
        gap = max(values.values()) - min(values.values())
        report.add(
            f"slice gap {metric}",
            gap <= float(spec["max_gap"]),
            f"gap {gap:.6g} across {len(values)} slices, allowed {spec['max_gap']}",
            group=group,
        )


def _classes(out: dict[str, Any], scored: dict[str, Any]) -> list[Any]:
    import numpy as np

    return sorted(np.unique(np.concatenate([scored["truth"], out["prediction"]])).tolist())


def run_promote_stage(
    ws: CiWorkspace,
    model: str,
    *,
    environment: str,
    project: ProjectFile | None = None,
    reason: str = "keel ci promote",
) -> StageReport:
    """Check the environment's promotion policy and move its alias (or stop with reasons).

    Without a version, the version comes from the environment's ``promote_from`` alias.
    """
    name, version = parse_ref(model)
    env = environment_spec(project, environment)
    source = env.get("promote_from")
    if version is None and source:
        version = environment_spec(project, source)["alias"]
    candidate = ws.models.version(name, version)
    report = run_model_stage(
        ws, f"{name}:{candidate.version}", project=project, environment=environment
    )
    report.stage = "promote"
    group = f"{name}:{candidate.version}"
    if source:
        upstream = environment_spec(project, source)["alias"]
        held = upstream in tuple(candidate.aliases)
        report.add(
            f"comes from {source}",
            held,
            f"v{candidate.version} {'holds' if held else 'does not hold'} '{upstream}'"
            + ("" if held else f"; promote it to {source} first"),
            group=group,
        )
    _approvals_in_force(ws, report, environment, env, group)
    check_regions(
        report, project, model=name, environment=environment, env=env, destinations={},
        group=group,
    )  # fmt: skip
    if not report.passed:
        report.skip(f"move '{env['alias']}'", "the promotion policy failed", group=group)
        return report
    try:
        current = ws.models.version(name, env["alias"]).version
    except NotFoundError:
        current = None
    with report.guard(f"move '{env['alias']}'", group=group) as note:
        ws.models.set_alias(
            name, env["alias"], candidate.version, reason=reason, expected_current=current
        )
        note(f"'{env['alias']}' now points at v{candidate.version} (was {current})")
    return report


def _approvals_in_force(
    ws: CiWorkspace, report: StageReport, environment: str, env: dict[str, Any], group: str
) -> None:
    """``approvals: N`` is enforced by the policy apply generates; refuse when it is not there.

    The alias move then runs the ``alias.promote`` gate, which opens an approval request and
    waits for N approvers other than the one promoting (see docs/policies.md).
    """
    required = int(env.get("approvals") or 0)
    if required <= 0:
        return
    name = approvals_policy_name(environment)
    expected = approvals_policy(environment, str(env["alias"]), required)
    try:
        held = ws.policies.get(name)
    except NotFoundError:
        held = None
    ok = held is not None and getattr(held, "source", None) == expected
    report.add(
        f"{required} approval(s) required",
        ok,
        f"policy '{name}' asks the alias.promote gate for {required} approver(s)"
        if ok
        else f"policy '{name}' is not in force as keel.yaml declares it; run `keel apply` "
        "first, so that the promotion waits for its approvals",
        group=group,
    )
