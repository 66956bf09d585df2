"""keel.yaml problems that only show at apply unless validation parses them first."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.cicd import load_project, validate_text
from keel.errors import InvalidInputError
from tests.cicd._project import VALID, write_project


def _issues(tmp_path: Path, text: str) -> list[tuple[int, str, str]]:
    write_project(tmp_path, text)
    _, issues = validate_text(text, file="keel.yaml", root=tmp_path)
    return [(i.line, i.path, f"{i.message} Fix: {i.fix}") for i in issues]


def test_a_cron_the_scheduler_cannot_parse_is_an_error(tmp_path: Path) -> None:
    text = VALID.replace('schedule: "0 3 * * *"', 'schedule: "99 99 * * * *"')
    issues = _issues(tmp_path, text)
    assert [(line, path) for line, path, _ in issues] == [(21, "triggers.nightly.schedule")]
    assert "is not a cron expression" in issues[0][2] and "five fields" in issues[0][2]


def test_keel_validate_refuses_a_cron_with_seconds_as_the_scheduler_does(tmp_path: Path) -> None:
    # before: croniter.is_valid took a sixth (seconds) field, so validate passed what the
    # scheduler refuses and `keel apply` failed afterwards
    text = VALID.replace('schedule: "0 3 * * *"', 'schedule: "0 3 * * * *"')
    issues = _issues(tmp_path, text)
    assert [(line, path) for line, path, _ in issues] == [(21, "triggers.nightly.schedule")]
    assert "it has 6 fields, not five (no seconds, no years)" in issues[0][2]


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "/etc/passwd", "policies/../../outside.yaml", "C:\\x.yaml"]
)
def test_policy_paths_outside_the_project_folder_are_refused(tmp_path: Path, bad: str) -> None:
    project = tmp_path / "repo"
    project.mkdir()
    (tmp_path / "outside.yaml").write_text("name: x\nrules: []\n")
    text = VALID.replace("[policies/production.yaml]", f"['{bad}']")
    issues = _issues(project, text)
    assert len(issues) == 1, issues
    assert issues[0][1] == "environments.production.policies.0"
    assert "relative to keel.yaml" in issues[0][2]
    with pytest.raises(InvalidInputError, match="nothing was applied"):
        load_project(project / "keel.yaml")


def test_a_policy_file_reached_through_a_link_out_of_the_folder_is_refused(
    tmp_path: Path,
) -> None:
    project = tmp_path / "repo"
    (project / "policies").mkdir(parents=True)
    (tmp_path / "secret.yaml").write_text("name: x\nrules: []\n")
    write_project(project)
    (project / "policies" / "production.yaml").unlink()
    (project / "policies" / "production.yaml").symlink_to(tmp_path / "secret.yaml")
    _, issues = validate_text(VALID, file="keel.yaml", root=project)
    assert [i.path for i in issues] == ["environments.production.policies.0"]
    assert "outside the project folder" in issues[0].message


def test_a_policy_file_that_does_not_parse_is_an_error_at_validation(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "policies" / "production.yaml").write_text("name: production\nrulez: []\n")
    _, issues = validate_text(VALID, file="keel.yaml", root=tmp_path)
    assert [i.path for i in issues] == ["environments.production.policies.0"]
    assert "is not a valid policy" in issues[0].message and "rulez" in issues[0].message


def test_local_source_paths_must_stay_in_the_project(tmp_path: Path) -> None:
    text = VALID.replace("uri: data/customers.csv", "uri: file:///etc/shadow")
    issues = _issues(tmp_path, text)
    assert [p for _, p, _ in issues] == ["sources.crm.uri"]
    assert "absolute path" in issues[0][2]
    remote = VALID.replace("uri: data/customers.csv", "uri: s3://bucket/customers.csv")
    assert _issues(tmp_path, remote) == []


def test_a_principal_the_identity_service_refuses_is_an_error(tmp_path: Path) -> None:
    issues = _issues(tmp_path, VALID.replace("user:alice: maintainer", "alice: maintainer"))
    assert [(p, "is not a principal" in m) for _, p, m in issues] == [("roles.alice", True)]


def test_canary_steps_must_increase_and_bounds_must_leave_room(tmp_path: Path) -> None:
    text = VALID.replace("steps: [10, 50, 100]", "steps: [50, 10, 100]").replace(
        "metrics: {auc: {min: 0.8}}", "metrics: {auc: {min: 0.9, max: 0.8}}"
    )
    issues = _issues(tmp_path, text)
    messages = {p: m for _, p, m in issues}
    assert set(messages) == {
        "deployments.churn-prod.steps.1",
        "models.churn.promotion.production.metrics.auc",
    }
    assert "increasing order" in messages["deployments.churn-prod.steps.1"]
    assert "min <= max" in messages["models.churn.promotion.production.metrics.auc"]


def test_every_schema_error_says_how_to_fix_it(tmp_path: Path) -> None:
    text = VALID.replace("replicas: 2", "replicas: 0").replace("approvals: 0", "approvals: -1")
    issues = _issues(tmp_path, text)
    assert len(issues) == 2
    assert all("Correct the value" not in m for _, _, m in issues)
    assert any("Use a number at least 1" in m for _, _, m in issues)
    assert any("Use a number at least 0" in m for _, _, m in issues)


def test_duplicate_keys_are_reported_with_both_lines(tmp_path: Path) -> None:
    text = VALID.replace(
        "  features:\n    derived_from: [customers]\n",
        "  features:\n    derived_from: [customers]\n  customers: {}\n",
    ).replace("  user:alice: maintainer\n", "  user:alice: maintainer\n  user:alice: owner\n")
    issues = _issues(tmp_path, text)
    assert [(line, path) for line, path, _ in issues] == [
        (12, "datasets.customers"),
        (65, "roles.user:alice"),
    ]
    assert "(lines 7 and 12)" in issues[0][2] and "(lines 64 and 65)" in issues[1][2]
