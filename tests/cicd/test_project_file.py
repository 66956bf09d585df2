"""keel.yaml: its JSON Schema, and every error reported at once with file, line and fix."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from keel.cicd import BUILTIN_ENVIRONMENTS, load_project, project_schema, validate_text
from keel.errors import InvalidInputError
from tests.cicd._project import VALID, write_project


def _issues(tmp_path: Path, text: str) -> list[tuple[int, str, str]]:
    write_project(tmp_path, text)
    _, issues = validate_text(text, file="keel.yaml", root=tmp_path)
    return [(i.line, i.path, f"{i.message} Fix: {i.fix}") for i in issues]


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(project_schema())


def test_a_complete_project_file_is_valid_and_yields_every_resource(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path))
    kinds = sorted({kind for kind, _ in project.resources})
    assert kinds == [
        "alert", "check", "dataset", "deployment", "environment", "model", "monitor",
        "pipeline", "role", "search", "source", "trigger",
    ]  # fmt: skip
    envs = {name for kind, name in project.resources if kind == "environment"}
    assert envs == set(BUILTIN_ENVIRONMENTS)
    production = project.resources[("environment", "production")]
    assert production["alias"] == "production" and production["promote_from"] == "staging"
    assert production["policy_digests"]["policies/production.yaml"].startswith("sha256:")
    assert project.resources[("pipeline", "train")] == {"ref": "flows:pipeline"}
    assert project.resources[("role", "user:alice")] == {"role": "maintainer"}


def test_the_existing_pipelines_and_triggers_sections_stay_valid(tmp_path: Path) -> None:
    text = 'pipelines:\n  demo: "flows:flow"\ntriggers:\n  nightly:\n    pipeline: demo\n'
    text += '    schedule: "0 3 * * *"\n    params: {n: 5}\n'
    assert _issues(tmp_path, text) == []


def test_unknown_keys_are_reported_at_their_line_with_a_suggestion(tmp_path: Path) -> None:
    text = VALID.replace("    description: Churn classifier\n", "    descripton: Churn\n")
    text = text.replace("version: 1\n", "version: 1\ndatasest: {}\n")
    issues = _issues(tmp_path, text)
    assert [(line, path) for line, path, _ in issues] == [
        (2, "datasest"),
        (35, "models.churn.descripton"),
    ]
    assert "did you mean 'datasets'?" in issues[0][2]
    assert "did you mean 'description'?" in issues[1][2]


def test_wrong_types_say_what_was_found_and_what_is_expected(tmp_path: Path) -> None:
    text = VALID.replace("steps: [10, 50, 100]", "steps: fast").replace(
        "strategy: canary", "strategy: rolling"
    )
    issues = _issues(tmp_path, text)
    assert issues[0][:2] == (47, "deployments.churn-prod.strategy")
    assert "Use one of: blue-green, canary, shadow" in issues[0][2]
    assert issues[1][:2] == (48, "deployments.churn-prod.steps")
    assert "is a string, not a list. Fix: Write a list here" in issues[1][2]


def test_dangling_references_and_cycles_are_all_reported_at_once(tmp_path: Path) -> None:
    text = (
        VALID.replace("    source: crm\n", "    source: crn\n")
        .replace("    derived_from: [customers]\n", "    derived_from: [customers, features2]\n")
        .replace("    model: churn\n", "    model: churm\n")
        .replace(
            "  customers:\n    source", "  customers:\n    derived_from: [features]\n    source"
        )
        .replace(
            "  production:\n    policies:",
            "  dev:\n    promote_from: production\n  production:\n    policies:",
        )
    )
    issues = _issues(tmp_path, text)
    messages = "\n".join(m for _, _, m in issues)
    assert "refers to source 'crn', which is not declared" in messages
    assert "did you mean 'crm'?" in messages
    assert "refers to dataset 'features2'" in messages
    assert "refers to model 'churm'" in messages and "did you mean 'churn'?" in messages
    assert (
        "The datasets form a cycle through 'derived_from': customers -> features -> customers"
        in messages
    )
    assert "The environments form a cycle through 'promote_from'" in messages
    assert len(issues) == 5
    lines = {path: line for line, path, _ in issues}
    assert lines["datasets.customers.source"] == 9
    assert lines["deployments.churn-prod.model"] == 48


def test_a_bad_file_raises_one_error_listing_everything_and_yields_nothing(tmp_path: Path) -> None:
    path = write_project(
        tmp_path, VALID.replace("source: crm", "source: nope").replace("kind: drift", "kind: drfit")
    )
    with pytest.raises(InvalidInputError) as caught:
        load_project(path)
    error = caught.value
    assert "2 problems; nothing was applied" in str(error)
    assert [i["line"] for i in error.details["issues"]] == [8, 54]
    assert all(i["fix"] for i in error.details["issues"])


def test_a_missing_policy_file_and_an_unknown_environment_are_errors(tmp_path: Path) -> None:
    text = VALID.replace("policies/production.yaml", "policies/prod.yaml").replace(
        "      staging:\n        metrics", "      stagin:\n        metrics"
    )
    issues = _issues(tmp_path, text)
    assert any("Policy file 'policies/prod.yaml'" in m and line == 30 for line, _, m in issues)
    assert any("environment 'stagin'" in m and "did you mean 'staging'" in m for _, _, m in issues)


def test_a_trigger_needs_exactly_one_kind(tmp_path: Path) -> None:
    text = VALID.replace(
        '    schedule: "0 3 * * *"\n', '    schedule: "0 3 * * *"\n    dataset: customers\n'
    )
    issues = _issues(tmp_path, text)
    assert issues and issues[0][1] == "triggers.nightly"
    assert "exactly one of schedule, dataset, alert or commit" in issues[0][2]


def test_yaml_syntax_errors_name_their_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"keel.yaml:3: .*Fix the YAML syntax"):
        validate_text("sources:\n  crm: {kind: file\n  x: [\n", file="keel.yaml", root=tmp_path)
    with pytest.raises(InvalidInputError, match="must be a mapping"):
        validate_text("- a\n- b\n", file="keel.yaml", root=tmp_path)


def test_a_missing_file_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="keel export"):
        load_project(tmp_path / "keel.yaml")
