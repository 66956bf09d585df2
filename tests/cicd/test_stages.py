"""The ``keel ci`` stages over real services: data, train, model, promote, deploy, security."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from keel.cicd import (
    load_project,
    run_data_stage,
    run_deploy_stage,
    run_model_stage,
    run_promote_stage,
    run_security_stage,
    run_train_stage,
)
from keel.errors import InvalidInputError
from keel.workspace import Workspace

FEATURES = ["f0", "f1", "f2", "f3"]


def _frame(seed: int, n: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return pl.DataFrame({**{f: X[:, i] for i, f in enumerate(FEATURES)}, "g": np.where(
        rng.random(n) < 0.5, "a", "b"), "y": y})  # fmt: skip


def _project(folder: Path, body: str) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keel.yaml").write_text(body)
    return load_project(folder / "keel.yaml")


def _model(ws: Workspace, frame: pl.DataFrame, *, noise: bool = False) -> Any:
    X = frame.select(FEATURES).to_numpy()
    y = frame["y"].to_numpy()
    if noise:  # a worse model: trained on shuffled labels
        y = np.random.default_rng(3).permutation(y)
    fitted = LogisticRegression().fit(X, y)
    proba = fitted.predict_proba(X)[:, 1]
    from sklearn.metrics import roc_auc_score

    return ws.models.log_model(
        fitted, name="churn", sample=X[:20], feature_names=FEATURES,
        metrics={"auc": float(roc_auc_score(frame["y"].to_numpy(), proba))}, onnx=False,
    )  # fmt: skip


DATA_YAML = """
datasets:
  customers:
    checks: [basic, strict]
    publish: true
checks:
  basic:
    suite:
      - {kind: not_null, column: f0}
      - {kind: range, column: f1, min: -100, max: 100}
  strict:
    suite:
      - {kind: range, column: f2, min: -1, max: 1, name: f2_small}
      - {kind: range, column: f3, min: -1, max: 1, level: warning, name: f3_small}
"""


def test_data_stage_runs_each_check_as_a_case_and_gates_publishing(
    local_ws: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    _frame(1).write_csv(path)
    local_ws.datasets.ingest("customers", path)
    project = _project(tmp_path / "repo", DATA_YAML)
    report = run_data_stage(local_ws, [], project=project)
    outcome = {c.name: c.outcome for c in report.checks}
    assert outcome["version exists"] == "passed"
    assert outcome["basic.not_null:f0"] == "passed" and outcome["basic.range:f1"] == "passed"
    assert outcome["strict.f2_small"] == "failed"
    assert outcome["strict.f3_small"] == "passed"  # a warning does not fail the stage
    assert next(c for c in report.checks if c.name == "strict.f3_small").message.startswith(
        "warning:"
    )
    assert outcome["publish gate"] == "error" and report.exit_code == 1
    assert "failed the validation gate" in report.checks[-1].message
    assert not local_ws.datasets.version("customers").published

    relaxed = _project(
        tmp_path / "repo",
        DATA_YAML.replace("min: -1, max: 1, name: f2", "min: -9, max: 9, name: f2"),
    )
    report = run_data_stage(local_ws, ["customers:1"], project=relaxed)
    assert report.passed and local_ws.datasets.version("customers").published
    missing = run_data_stage(local_ws, ["nope"], project=relaxed)
    assert missing.checks[0].outcome == "error" and "nope" in missing.checks[0].message


FLOWS = """
from keel.pipelines import Pipeline, step

@step
def numbers(*, n: int = 3) -> list[int]:
    return list(range(n))

@step
def total(numbers: list[int]) -> int:
    if len(numbers) == 13:
        raise ValueError("unlucky")
    return sum(numbers)

pipeline = Pipeline("train", steps=[numbers, total])
"""


def test_train_stage_reports_each_step_and_reuses_the_cache(
    local_ws: Workspace, tmp_path: Path
) -> None:
    module = f"cicd_flows_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / f"{module}.py").write_text(FLOWS)
    _project(folder, f'pipelines:\n  train: "{module}:pipeline"\n')
    first = run_train_stage(local_ws, "train", root=folder, params={"n": 4})
    assert first.passed and [c.name for c in first.checks] == [
        "pipeline loads",
        "numbers",
        "total",
        "run",
    ]
    second = run_train_stage(local_ws, "train", root=folder, params={"n": 4})
    assert [c.message for c in second.checks[1:3]] == ["reused from the cache"] * 2
    failed = run_train_stage(local_ws, "train", root=folder, params={"n": 13})
    assert failed.exit_code == 1
    assert next(c for c in failed.checks if c.name == "total").message.startswith("FAILED")
    unknown = run_train_stage(local_ws, "nope", root=folder)
    assert (
        unknown.checks[0].outcome == "error" and "No pipeline 'nope'" in unknown.checks[0].message
    )


MODEL_YAML = """
environments:
  staging: {alias: staging}
models:
  churn:
    promotion:
      staging:
        metrics: {auc: {min: 0.8}}
        latency_ms: 1000
      production:
        metrics: {auc: {min: 0.8}}
        max_regression: {auc: 0.02}
        evaluation: {dataset: holdout, label: y}
        slices: {attribute: g, metric: accuracy, max_gap: 0.25, min: 0.6}
deployments:
  churn-prod:
    model: churn
    environment: production
    strategy: blue-green
  churn-canary:
    model: churn
    environment: staging
    strategy: canary
    steps: [10, 100]
    timeout_s: 0.5
"""


@pytest.fixture
def trained(local_ws: Workspace, tmp_path: Path) -> Any:
    path = tmp_path / "holdout.csv"
    _frame(2).write_csv(path)
    local_ws.datasets.ingest("holdout", path)
    good = _model(local_ws, _frame(1))
    return _project(tmp_path / "repo", MODEL_YAML), good


def test_model_stage_checks_thresholds_smoke_latency_regression_and_slices(
    local_ws: Workspace, trained: Any
) -> None:
    project, good = trained
    staging = run_model_stage(local_ws, "churn", project=project, environment="staging")
    names = {c.name: c for c in staging.checks}
    assert staging.passed, staging.markdown()
    assert {"signature", "load in serving runtime", "input example", "smoke prediction",
            "latency", "metric auc"} <= set(names)  # fmt: skip
    assert "budget 1000 ms" in names["latency"].message

    local_ws.models.set_alias("churn", "production", good.version)
    worse = _model(local_ws, _frame(1), noise=True)
    production = run_model_stage(local_ws, f"churn:{worse.version}", project=project,
                                 environment="production")  # fmt: skip
    by_name = {c.name: c for c in production.checks}
    regression = by_name[f"no regression auc vs production (v{good.version})"]
    assert regression.outcome == "failed" and "on the same evaluation data" in regression.message
    assert by_name["metric auc"].outcome == "failed"
    assert {"slice a accuracy", "slice b accuracy", "slice gap accuracy"} <= set(by_name)
    assert production.exit_code == 1
    same = run_model_stage(local_ws, f"churn:{good.version}", project=project,
                           environment="production")  # fmt: skip
    assert next(c for c in same.checks if c.name == "no regression").outcome == "skipped"
    assert same.passed, same.markdown()


def test_promote_moves_the_alias_only_when_the_policy_passes(
    local_ws: Workspace, trained: Any
) -> None:
    project, good = trained
    worse = _model(local_ws, _frame(1), noise=True)
    refused = run_promote_stage(local_ws, f"churn:{worse.version}", environment="staging",
                                project=project)  # fmt: skip
    assert refused.exit_code == 1
    assert refused.checks[-1].outcome == "skipped" and "policy failed" in refused.checks[-1].message
    with pytest.raises(Exception, match="staging"):
        local_ws.models.version("churn", "staging")

    dev = run_promote_stage(local_ws, f"churn:{good.version}", environment="dev", project=project)
    assert dev.passed and local_ws.models.version("churn", "dev").version == good.version
    staged = run_promote_stage(local_ws, "churn", environment="staging", project=project)
    assert staged.passed, staged.markdown()
    assert local_ws.models.version("churn", "staging").version == good.version
    # production takes what staging holds, and needs it to come from staging
    promoted = run_promote_stage(local_ws, "churn", environment="production", project=project)
    assert promoted.passed, promoted.markdown()
    assert local_ws.models.version("churn", "production").version == good.version
    skipped = run_promote_stage(local_ws, f"churn:{worse.version}", environment="production",
                                project=project)  # fmt: skip
    gate = next(c for c in skipped.checks if c.name == "comes from staging")
    assert gate.outcome == "failed" and "promote it to staging first" in gate.message


def test_deploy_starts_the_declared_strategy_and_waits_for_a_verdict(
    local_ws: Workspace, trained: Any
) -> None:
    project, good = trained
    local_ws.models.set_alias("churn", "production", good.version)
    report = run_deploy_stage(local_ws, "churn-prod", project=project)
    assert report.passed, report.markdown()
    assert local_ws.deployments.get("churn-prod").state.primary == good.version

    local_ws.models.set_alias("churn", "staging", good.version)
    run_deploy_stage(local_ws, "churn-canary", project=project)  # first: stable on v1
    newer = _model(local_ws, _frame(5))
    local_ws.models.set_alias("churn", "staging", newer.version)
    waiting = run_deploy_stage(local_ws, "churn-canary", project=project, poll=0.1)
    verdict = waiting.checks[-1]
    assert verdict.outcome == "failed" and "no verdict within" in verdict.message
    with pytest.raises(InvalidInputError, match=r"not declared in keel\.yaml"):
        run_deploy_stage(local_ws, "nope", project=project)


def test_security_stage_fails_on_a_secret_and_passes_when_allowed(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text('TOKEN = "ghp_' + 'Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2"\n')
    (tmp_path / "requirements.txt").write_text("requests>=2\n")
    report = run_security_stage(tmp_path, pip_audit=False)
    assert report.exit_code == 1
    finding = report.checks[0]
    assert finding.name == "app.py:1" and "github-token" in finding.message
    assert "ghp_Ab1Cd2" not in report.junit_xml()
    assert next(c for c in report.checks if c.name == "pip-audit").outcome == "skipped"
    fingerprint = finding.details["fingerprint"]
    (tmp_path / ".keel-secrets-allow").write_text(f"fingerprint:{fingerprint}\n")
    assert run_security_stage(tmp_path, pip_audit=False).passed
    unpinned = run_security_stage(tmp_path, requirements=tmp_path / "requirements.txt")
    audit = next(c for c in unpinned.checks if c.name == "pip-audit")
    assert audit.outcome == "error" and "is not pinned" in audit.message
    (tmp_path / "pins.txt").write_text("keel-no-such-package-for-tests==1.0\n")
    unknown = run_security_stage(tmp_path, requirements=tmp_path / "pins.txt")
    skipped = next(c for c in unknown.checks if c.name == "keel-no-such-package-for-tests")
    assert skipped.outcome == "skipped" and "could not be audited" in skipped.message
    audit = next(c for c in unknown.checks if c.name == "pip-audit")
    assert audit.outcome == "error" and "audited none of the 1 packages" in audit.message
    assert unknown.exit_code == 1  # nothing audited fails closed


MONITOR_YAML = """
datasets:
  customers: {}
models:
  churn: {}
deployments:
  churn-prod: {model: churn, environment: production}
monitors:
  churn-drift: {deployment: churn-prod, kind: drift, reference: customers, window: 1h,
                features: [f0, f1]}
alerts:
  drift-high: {monitor: churn-drift, condition: "drift.share > 0.3", channels: [log]}
"""


def test_monitors_wait_for_their_deployment_then_apply_creates_them(
    local_ws: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    _frame(1).write_csv(path)
    local_ws.datasets.ingest("customers", path)
    _project(tmp_path / "repo", MONITOR_YAML)
    project_path = tmp_path / "repo" / "keel.yaml"
    first = local_ws.project_file.apply(project_path)
    assert first.notes["monitor/churn-drift"].startswith("not created yet:")
    assert "churn-prod" in first.notes["monitor/churn-drift"]
    pending = local_ws.project_file.plan(project_path)
    assert [(c.op, c.name) for c in pending.pending] == [
        ("update", "churn-drift"),
        ("update", "drift-high"),
    ]
    assert any(
        line.startswith('-  "pending": "not created yet') for line in pending.pending[0].diff
    )
    assert "pending" not in str(local_ws.project_file.export()["monitors"])

    version = _model(local_ws, _frame(1))
    local_ws.models.set_alias("churn", "production", version.version)
    local_ws.deployments.deploy("churn@production", environment="production", name="churn-prod")
    second = local_ws.project_file.apply(project_path)
    assert second.notes == {
        "monitor/churn-drift": "monitor synced",
        "alert/drift-high": "alert rule synced",
    }
    assert not local_ws.project_file.plan(project_path).pending
    monitor = local_ws.monitors.get("churn-drift")
    assert monitor.deployment == "churn-prod"
    rule = next(r for r in local_ws.monitors.rules() if r.name == "drift-high")
    assert (rule.metric, rule.comparison, rule.threshold) == ("drift.share", ">", 0.3)


def test_security_stage_scans_every_model_format_and_fails_closed(tmp_path: Path) -> None:
    import pickle

    import numpy as np

    np.save(tmp_path / "weights.npy", np.arange(12, dtype=np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (tmp_path / "tokenizer.bin").write_bytes(b"\x80\x04not really a pickle")
    report = run_security_stage(tmp_path, pip_audit=False)
    outcomes = {c.name: c.outcome for c in report.checks if c.group == "models"}
    assert outcomes["weights.npy"] == "passed"
    # an object array is a pickle; the others are pickle-based formats nothing here can clear
    for name in ("objects.npy", "tokenizer.bin"):
        assert outcomes[name] == "error", name
    assert "model.pt" in outcomes
    assert not report.passed


def test_environment_approvals_are_enforced_at_promotion(
    local_ws: Workspace, trained: Any, tmp_path: Path
) -> None:
    from keel.errors import NotFoundError

    _, good = trained
    text = MODEL_YAML.replace(
        "staging: {alias: staging}", "staging: {alias: staging, approvals: 1}"
    )
    project = _project(tmp_path / "repo", text)
    local_ws.models.set_alias("churn", "dev", good.version)
    # not applied yet: the promotion refuses to go ahead without the approvals policy
    early = run_promote_stage(local_ws, "churn", environment="staging", project=project)
    check = next(c for c in early.checks if c.name == "1 approval(s) required")
    assert check.outcome == "failed" and "run `keel apply`" in check.message
    assert early.checks[-1].outcome == "skipped"
    result = local_ws.project_file.apply(project)
    assert "keel-approvals-staging v1" in result.notes["environment/staging"]
    waiting = run_promote_stage(local_ws, "churn", environment="staging", project=project)
    move = next(c for c in waiting.checks if c.name == "move 'staging'")
    assert move.outcome == "error" and "approval" in move.message.lower(), move.message
    with pytest.raises(NotFoundError):
        local_ws.models.version("churn", "staging")
    assert [r.gate for r in local_ws.approvals.list()] == ["alias.promote"]
    # approvals: 0 turns the generated policy off again
    (tmp_path / "repo" / "keel.yaml").write_text(text.replace("approvals: 1", "approvals: 0"))
    local_ws.project_file.apply(tmp_path / "repo" / "keel.yaml")
    assert run_promote_stage(local_ws, "churn", environment="staging", project=load_project(
        tmp_path / "repo" / "keel.yaml")).passed  # fmt: skip


def test_regions_are_checked_for_residency_at_deploy_and_promote(
    local_ws: Workspace, trained: Any, tmp_path: Path
) -> None:
    _, good = trained
    text = MODEL_YAML.replace(
        "environments:\n", "datasets:\n  holdout: {region: ae}\nenvironments:\n"
    ).replace(
        "staging: {alias: staging}", "staging: {alias: staging}\n  production: {regions: [eu]}"
    )
    text = text.replace(
        "    strategy: blue-green\n", "    strategy: blue-green\n    regions: [us]\n"
    )
    text = text.replace(
        "  churn:\n    promotion:", "  churn:\n    dataset: holdout\n    promotion:"
    )
    project = _project(tmp_path / "repo", text)
    deploy = run_deploy_stage(local_ws, "churn-prod", project=project)
    residency = next(c for c in deploy.checks if c.name == "residency")
    assert residency.outcome == "failed" and "correct 'regions'" in residency.message
    assert [c.name for c in deploy.checks] == ["residency", "start"]
    assert deploy.checks[-1].outcome == "skipped"
    local_ws.models.set_alias("churn", "staging", good.version)
    promote = run_promote_stage(local_ws, "churn", environment="production", project=project)
    moved = next(c for c in promote.checks if c.name == "residency")
    assert moved.outcome == "failed"  # trained on data kept in ae; production runs in eu
    assert promote.checks[-1].outcome == "skipped"
