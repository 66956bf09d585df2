"""``keel ci init``: the generated workflows validate offline against their providers' schemas.

GitHub Actions, GitLab CI and Azure Pipelines are checked with check-jsonschema's vendored
SchemaStore schemas (the Azure schema is checked with ``--regex-variant python``: the default
ECMA engine cannot compile one of its patterns). The Jenkinsfile is checked by the declarative
grammar walker in ``_jenkinsfile.py`` — no Jenkins or Groovy is available offline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from keel.cicd import PROVIDERS, CiOptions, render_workflow, write_workflow
from keel.errors import AlreadyExistsError, InvalidInputError
from tests.cicd import _jenkinsfile
from tests.cicd._project import VALID

SCHEMAS = {
    "github": ["--builtin-schema", "vendor.github-workflows"],
    "gitlab": ["--builtin-schema", "vendor.gitlab-ci"],
    "azure": ["--builtin-schema", "vendor.azure-pipelines", "--regex-variant", "python"],
}
OPTIONS = CiOptions.from_project(yaml.safe_load(VALID))


def _check_jsonschema(args: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_options_come_from_the_project_file() -> None:
    assert (OPTIONS.pipeline, OPTIONS.model, OPTIONS.deployment, OPTIONS.environment) == (
        "train", "churn", "churn-prod", "production",
    )  # fmt: skip


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_generated_workflows_are_valid_against_the_vendored_schemas(
    provider: str, tmp_path: Path
) -> None:
    path = write_workflow(provider, OPTIONS, root=tmp_path)
    assert path == tmp_path / PROVIDERS[provider][1]
    text = path.read_text()
    assert "@@" not in text
    for stage in ("security", "data", "train", "model", "promote", "deploy"):
        assert f"keel ci {stage}" in text and f"reports/{stage}.xml" in text
    assert "keel ci model churn --environment production" in text
    result = _check_jsonschema(SCHEMAS[provider], path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    _, text = render_workflow("github", OPTIONS)
    broken = tmp_path / "broken_workflow.yml"
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    result = _check_jsonschema(SCHEMAS["github"], broken)
    assert result.returncode == 1


def test_each_workflow_runs_on_prs_main_a_schedule_and_new_data() -> None:
    github = yaml.safe_load(render_workflow("github", OPTIONS)[1])
    on = github[True] if True in github else github["on"]  # YAML 1.1 reads "on" as True
    assert set(on) == {
        "pull_request",
        "push",
        "schedule",
        "repository_dispatch",
        "workflow_dispatch",
    }
    assert on["repository_dispatch"]["types"] == ["keel-data-arrived"]
    assert on["schedule"] == [{"cron": "0 3 * * 1"}]
    gitlab = yaml.safe_load(render_workflow("gitlab", OPTIONS)[1])
    sources = " ".join(rule["if"] for rule in gitlab["workflow"]["rules"])
    for source in ("merge_request_event", "$CI_COMMIT_REF_NAME == $CI_DEFAULT_BRANCH"):
        assert source in sources
    assert gitlab[".keel-stage"]["artifacts"]["reports"] == {"junit": "reports/*.xml"}
    jobs = ("data", "data-review", "model", "deploy")
    assert all(gitlab[job]["extends"] == ".keel-stage" for job in jobs)
    azure = yaml.safe_load(render_workflow("azure", OPTIONS)[1])
    assert azure["pr"] and azure["schedules"][0]["cron"] == "0 3 * * 1"
    assert azure["resources"]["pipelines"][0]["trigger"] == "true"
    assert any(s.get("task") == "PublishTestResults@2" for s in azure["steps"])
    jenkins = render_workflow("jenkins", OPTIONS)[1]
    assert "cron('0 3 * * 1')" in jenkins and "GenericTrigger(" in jenkins
    assert "junit allowEmptyResults: true, testResults: 'reports/*.xml'" in jenkins


def test_the_jenkinsfile_passes_the_offline_declarative_check() -> None:
    _, text = render_workflow("jenkins", OPTIONS)
    assert _jenkinsfile.check_declarative(text) == []
    stages = [s.strip("'") for s in _stage_names(text)]
    assert stages == [
        "Install",
        "Validate",
        "Security",
        "Data",
        "Train",
        "Model",
        "Promote",
        "Deploy",
    ]


def _stage_names(text: str) -> list[str]:
    root = _jenkinsfile.parse_blocks(_jenkinsfile.tokens(text))
    pipeline = next(b for b in root.children if b.name == "pipeline")
    stages = next(b for b in pipeline.children if b.name == "stages")
    return [b.argument for b in stages.children]


@pytest.mark.parametrize(
    ("mutation", "problem"),
    [
        (lambda t: t.replace("stage('Train') {", "stage('Train') {{"), "never closed"),
        (lambda t: t.replace("    agent any\n", ""), "pipeline has no agent"),
        (
            lambda t: t.replace(
                "stage('Data') {\n            steps {", "stage('Data') {\n            stepz {"
            ),
            "'stepz' is not a stage directive",
        ),
        (lambda t: t.replace("sh '$KEEL validate", "sh '$KEEL validate\n"), "unterminated"),
        (
            lambda t: t.replace("post {\n        always {", "post {\n        allways {"),
            "'allways' is not a post condition",
        ),
    ],
)
def test_the_jenkinsfile_check_catches_broken_files(mutation: object, problem: str) -> None:
    _, text = render_workflow("jenkins", OPTIONS)
    broken = mutation(text)  # type: ignore[operator]
    assert broken != text
    assert any(problem in p for p in _jenkinsfile.check_declarative(broken))


def test_init_refuses_to_overwrite_and_rejects_bad_options(tmp_path: Path) -> None:
    write_workflow("gitlab", OPTIONS, root=tmp_path)
    with pytest.raises(AlreadyExistsError, match="--force"):
        write_workflow("gitlab", OPTIONS, root=tmp_path)
    write_workflow("gitlab", CiOptions(model="other"), root=tmp_path, force=True)
    assert "keel ci model other" in (tmp_path / ".gitlab-ci.yml").read_text()
    with pytest.raises(InvalidInputError, match="Unknown CI provider 'circle'"):
        render_workflow("circle", OPTIONS)
    with pytest.raises(InvalidInputError, match="five-field cron"):
        render_workflow("github", CiOptions(schedule="hourly"))
    with pytest.raises(InvalidInputError, match="--model"):
        render_workflow("github", CiOptions(model="x; rm -rf /"))


def _github_steps() -> dict[str, dict[str, str]]:
    github = yaml.safe_load(render_workflow("github", OPTIONS)[1])
    return {step["name"]: step for step in github["jobs"]["keel"]["steps"] if "name" in step}


MAIN_ONLY = "github.ref == 'refs/heads/main' && github.event_name != 'pull_request'"


def test_github_applies_promotes_and_writes_only_on_main() -> None:
    steps = _github_steps()
    for name in ("Apply keel.yaml", "Promote", "Data checks"):
        assert steps[name]["if"] == MAIN_ONLY, name
    assert "main" in steps["Deploy"]["if"]
    review = steps["Data checks (no publishing off main)"]
    assert "--no-publish" in review["run"] and review["if"].startswith("github.ref != ")
    env = yaml.safe_load(render_workflow("github", OPTIONS)[1])["env"]
    # the write secret is chosen only on main outside PRs; otherwise the read-only one
    assert env["KEEL_DB_URL"] == (
        f"${{{{ {MAIN_ONLY} && secrets.KEEL_DB_URL || secrets.KEEL_PR_DB_URL }}}}"
    )


def test_gitlab_gives_write_credentials_and_promotion_only_to_the_default_branch() -> None:
    gitlab = yaml.safe_load(render_workflow("gitlab", OPTIONS)[1])
    rules = gitlab["workflow"]["rules"]
    assert [r["variables"]["KEEL_DB_URL"] for r in rules] == [
        "$KEEL_PR_DB_URL",
        "$KEEL_WRITE_DB_URL",
    ]
    assert rules[0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert rules[1]["if"] == "$CI_COMMIT_REF_NAME == $CI_DEFAULT_BRANCH"
    main = (
        '$CI_COMMIT_REF_NAME == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "merge_request_event"'
    )
    assert gitlab["promote"]["rules"] == [{"if": main}]
    assert gitlab["data"]["rules"] == [{"if": main}]
    assert "--no-publish" in gitlab["data-review"]["script"][0]
    assert "--no-publish" not in gitlab["data"]["script"][0]


def test_jenkins_binds_the_store_credential_only_on_main_and_gates_promotion() -> None:
    text = render_workflow("jenkins", OPTIONS)[1]
    assert "credentials('keel-db-url')" not in text  # no pipeline-wide binding
    assert "if (env.BRANCH_NAME == 'main' && !env.CHANGE_ID)" in text
    promote = text.split("stage('Promote')", 1)[1].split("steps", 1)[0]
    assert "branch 'main'" in promote and "not { changeRequest() }" in promote
    assert "token: 'keel-data-arrived'" not in text
    assert "tokenCredentialId: 'keel-data-webhook-token'" in text


def test_azure_maps_the_write_secret_only_on_main_and_takes_the_dataset_as_a_parameter() -> None:
    azure = yaml.safe_load(render_workflow("azure", OPTIONS)[1])
    steps = {s.get("displayName"): s for s in azure["steps"]}
    shared = steps["Use the shared Keel store"]
    assert shared["condition"] == "eq(variables.onMain, true)"
    assert shared["env"]["STORE_DB_URL"] == "$(KEEL_WRITE_DB_URL)"
    review = steps["Use the review Keel store"]
    assert review["condition"] == "ne(variables.onMain, true)"
    assert "KEEL_WRITE" not in str(review) and "--no-publish" in review["script"]
    others = [s for n, s in steps.items() if n not in ("Use the shared Keel store",)]
    assert all("KEEL_WRITE_DB_URL" not in str(s) for s in others)
    for name in ("Promote", "Deploy"):
        assert steps[name]["condition"] == "and(succeeded(), eq(variables.onMain, true))"
    assert azure["parameters"][0]["name"] == "dataset"
    data = steps["Data checks"]
    assert data["env"]["KEEL_DATASET"] == "${{ parameters.dataset }}"
    assert "$(KEEL_DATASET)" not in render_workflow("azure", OPTIONS)[1]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_dataset_of_a_data_event_is_always_quoted(provider: str) -> None:
    text = render_workflow(provider, OPTIONS)[1]
    calls = [line for line in text.splitlines() if "ci data" in line and "KEEL_DATASET" in line]
    assert calls
    # after '--': an event's value can never be read as an option
    assert all(
        c.endswith(('-- "$KEEL_DATASET"', '-- "${KEEL_DATASET:-}"', '-- "${KEEL_DATASET:-}"\''))
        for c in calls
    ), calls
