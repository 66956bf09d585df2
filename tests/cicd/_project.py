"""A complete, valid project file used across the cicd tests."""

from __future__ import annotations

from pathlib import Path

VALID = """\
version: 1
sources:
  crm:
    kind: file
    uri: data/customers.csv
datasets:
  customers:
    source: crm
    checks: [customer-checks]
  features:
    derived_from: [customers]
checks:
  customer-checks:
    suite:
      - {kind: not_null, column: age}
pipelines:
  train: "flows:pipeline"
triggers:
  nightly:
    pipeline: train
    schedule: "0 3 * * *"
  on-data:
    pipeline: train
    dataset: customers
hpo:
  search:
    space: {lr: {type: float, low: 0.01, high: 0.3}}
environments:
  production:
    policies: [policies/production.yaml]
    approvals: 0
models:
  churn:
    description: Churn classifier
    pipeline: train
    dataset: features
    promotion:
      staging:
        metrics: {auc: {min: 0.7}}
      production:
        metrics: {auc: {min: 0.8}}
        max_regression: {auc: 0.01}
deployments:
  churn-prod:
    model: churn
    environment: production
    strategy: canary
    steps: [10, 50, 100]
    target: {kind: kubernetes, namespace: ml, replicas: 2}
    regions: [ae]
monitors:
  churn-drift:
    deployment: churn-prod
    kind: drift
    reference: customers
    window: 1h
alerts:
  drift-high:
    monitor: churn-drift
    condition: "drift.share > 0.3"
    retrain: train
roles:
  user:alice: maintainer
"""

POLICY = """\
name: production
gates: [alias.promote]
rules:
  - id: auc
    when: {alias: production}
    require: {path: model.metrics.auc, op: ">=", value: 0.8}
"""


def write_project(folder: Path, text: str = VALID) -> Path:
    """Write keel.yaml and the policy file it names; the path of keel.yaml."""
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "policies" / "production.yaml").write_text(POLICY)
    path = folder / "keel.yaml"
    path.write_text(text)
    return path


#: VALID without monitors and alert rules: every resource's live effect happens at once.
CORE = VALID.split("monitors:\n", 1)[0] + "roles:\n" + VALID.split("roles:\n", 1)[1]
