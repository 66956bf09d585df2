"""``keel validate`` checks roles and policy files without loading the database layer (issue 9).

The principal-name check and the policy-file loader are pure (``keel.governance._principals``,
``keel.governance._policy_rules``): a file with roles and policies validates in a fresh
interpreter that never imports the store or SQLAlchemy, and the errors are still found.
"""

from __future__ import annotations

from pathlib import Path

from keel.cicd import validate_text
from tests.cicd._project import VALID, write_project
from tests.cicd.test_plan_imports import _under, loaded

#: What validating must not load: the store and the services built on it.
DATABASE = (
    "keel.governance._identity",
    "keel.governance._policy",
    "keel.store",
    "keel.workspace",
    "sqlalchemy",
)


def test_roles_and_policies_validate_without_the_database_layer(tmp_path: Path) -> None:
    write_project(tmp_path)
    code, modules = loaded(tmp_path, "validate")
    assert code == 0
    assert {"keel.governance._principals", "keel.governance._policy_rules"} <= modules
    assert _under(modules, DATABASE) == []


def test_bad_principal_and_bad_policy_are_still_reported(tmp_path: Path) -> None:
    path = write_project(tmp_path, VALID.replace("user:alice: maintainer", "alice: maintainer"))
    (tmp_path / "policies" / "production.yaml").write_text("name: production\nrules: 3\n")
    code, modules = loaded(tmp_path, "validate")
    assert code == 2
    assert _under(modules, DATABASE) == []
    _, issues = validate_text(path.read_text(), file="keel.yaml", root=tmp_path)
    assert [(i.path, i.line) for i in issues] == [
        ("environments.production.policies.0", 30),
        ("roles.alice", 63),
    ]
    assert "'rules' is missing or empty" in issues[0].message
    assert "'alice' is not a principal" in issues[1].message
