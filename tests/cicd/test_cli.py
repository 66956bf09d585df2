"""The CLI faces: ``keel validate|plan|apply|export`` and ``keel ci …`` exit codes and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cicd._project import VALID, write_project
from tests.cicd._xsd import validate as validate_xml

XSD = Path(__file__).parents[2] / "src" / "keel" / "cicd" / "schemas" / "junit.xsd"


def keel(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(folder / ".keel"), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        capture_output=True, text=True, env=env, cwd=folder, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("repo")
    write_project(folder)
    assert keel(folder, "init").returncode == 0
    return folder


def test_validate_prints_every_problem_with_its_line_and_exits_2(repo: Path) -> None:
    assert keel(repo, "validate").stdout.strip() == "keel.yaml is valid."
    bad = repo / "bad.yaml"
    bad.write_text(VALID.replace("source: crm", "source: crx").replace("kind: drift", "kind: 7"))
    result = keel(repo, "validate", "bad.yaml")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("bad.yaml:8 at datasets.customers.source: Dataset 'customers'")
    assert lines[1].startswith("bad.yaml:54 at monitors.churn-drift.kind: 7 is not allowed.")
    assert lines[-1] == "bad.yaml: 2 problem(s)."
    data = json.loads(keel(repo, "validate", "bad.yaml", "--json").stdout)
    assert [i["line"] for i in data["issues"]] == [8, 54] and data["valid"] is False
    applied = keel(repo, "apply", "--file", "bad.yaml")
    assert applied.returncode == 2 and "nothing was applied" in applied.stderr


def test_plan_apply_plan_export(repo: Path) -> None:
    plan = keel(repo, "plan", "--detailed-exitcode")
    assert plan.returncode == 3 and "+ create role user:alice" in plan.stdout
    assert plan.stdout.strip().endswith(
        "Plan: 16 to create, 0 to update, 0 to delete, 0 unchanged."
    )
    applied = keel(repo, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "Applied: 16 to create" in applied.stdout and "create trigger nightly" in applied.stderr
    again = json.loads(keel(repo, "plan", "--json", "--detailed-exitcode").stdout)
    # the monitor waits for its deployment: pending, shown as an update until it exists
    assert again["summary"] == {"create": 0, "update": 2, "delete": 0, "unchanged": 14}
    assert {c["name"] for c in again["changes"] if c["op"] == "update"} == {
        "churn-drift",
        "drift-high",
    }
    exported = keel(repo, "export", "-o", "exported.yaml")
    assert exported.returncode == 0
    assert keel(repo, "validate", "exported.yaml").returncode == 0


def test_ci_security_exits_1_and_writes_a_valid_junit_report(repo: Path) -> None:
    (repo / "leak.py").write_text('AWS = "AKIA' + 'Q3EXAMPLE7KEYZZ9"\n')
    result = keel(repo, "ci", "security", "--no-pip-audit", "--junit", "reports/security.xml",
                  "--summary", "reports/security.md")  # fmt: skip
    assert result.returncode == 1
    assert "### ❌ keel ci security" in result.stdout
    xml = (repo / "reports" / "security.xml").read_text()
    assert validate_xml(xml, XSD) == []
    assert 'name="leak.py:1"' in xml and "AKIAQ3EXAMPLE" not in xml
    assert (repo / "reports" / "security.md").read_text().startswith("### ❌ keel ci security")
    (repo / "leak.py").unlink()
    assert keel(repo, "ci", "security", "--no-pip-audit").returncode == 0


def test_ci_init_writes_each_provider_and_ci_stages_report_bad_input(repo: Path) -> None:
    for provider, path in (("github", ".github/workflows/keel.yml"), ("jenkins", "Jenkinsfile")):
        result = keel(repo, "ci", "init", "--provider", provider)
        assert result.returncode == 0, result.stderr
        assert "ci model churn --environment production" in (repo / path).read_text()
    assert keel(repo, "ci", "init", "--provider", "github").returncode == 1  # exists
    assert keel(repo, "ci", "init", "--provider", "drone").returncode == 2
    shown = keel(repo, "ci", "init", "--provider", "azure", "--stdout")
    assert shown.stdout.startswith("# Keel in Azure Pipelines")
    missing = keel(repo, "ci", "deploy", "nope")
    assert missing.returncode == 2 and "not declared in keel.yaml" in missing.stderr
    data = keel(repo, "ci", "data", "customers", "--json")
    assert data.returncode == 1
    report = json.loads(data.stdout)
    assert (
        report["checks"][0]["outcome"] == "error" and "customers" in report["checks"][0]["message"]
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ci", "model", "nope"], "nope"),
        (["ci", "model", "churn", "-e", "nowhere"], "Unknown environment 'nowhere'"),
        (["ci", "promote", "churn", "--to", "production", "-f", "keel.yml"], "no project file"),
        (["ci", "promote", "churn", "--to", "production", "-f", "bad.yaml"], "nothing was applied"),
        (["ci", "deploy", "undeclared"], "not declared in keel.yaml"),
        (["ci", "data", "--", "--publish"], "is not a dataset version"),
        (["ci", "data", "--", "x; rm -rf /"], "is not a dataset version"),
    ],
)
def test_a_stage_that_cannot_start_still_writes_its_reports_and_exits_2(
    repo: Path, args: list[str], expected: str
) -> None:
    (repo / "bad.yaml").write_text(VALID.replace("source: crm", "source: crx"))
    junit, summary = repo / "rep" / "stage.xml", repo / "rep" / "stage.md"
    for path in (junit, summary):
        path.unlink(missing_ok=True)
    where = args.index("--") if "--" in args else len(args)
    full = [*args[:where], "--junit", str(junit), "--summary", str(summary), *args[where:]]
    result = keel(repo, *full)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr.replace("\n", " ")
    xml = junit.read_text()
    assert validate_xml(xml, XSD) == []
    assert '<error message="' in xml and 'errors="1"' in xml
    assert summary.read_text().startswith(f"### ❌ keel ci {args[1]}: failed")


def test_a_missing_project_file_is_an_error_unless_asked_for(tmp_path: Path) -> None:
    assert keel(tmp_path, "init").returncode == 0
    result = keel(tmp_path, "ci", "data", "customers", "--json")
    assert result.returncode == 2 and "--no-project-file" in result.stderr
    assert json.loads(result.stdout)["checks"][0]["outcome"] == "error"
    alone = keel(tmp_path, "ci", "data", "customers", "--no-project-file", "--json")
    assert alone.returncode == 1  # it ran: the dataset does not exist
    assert "customers" in json.loads(alone.stdout)["checks"][0]["message"]
