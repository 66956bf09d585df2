"""Package-wide promises: cheap import, exact public names, one error tree."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import keel
from keel import errors

HEAVY = ["pandas", "polars", "pyarrow", "numpy", "scipy", "sklearn", "sqlalchemy", "fastapi", "ray"]


def test_import_keel_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, json, keel; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_import_keel_has_no_side_effects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    subprocess.run([sys.executable, "-c", "import keel"], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []


EXPORTS = {
    "keel": ["Metric", "RunStatus", "Workspace", "__version__", "connect"],
    "keel.store": [
        "ATTRIBUTES",
        "And",
        "AuditQuery",
        "AuditRepository",
        "Comparison",
        "Database",
        "ExperimentRepository",
        "Expr",
        "LineageRepository",
        "MetricPoint",
        "NodeKey",
        "Not",
        "Or",
        "OrderKey",
        "ProjectRepository",
        "RegistryRepository",
        "RunRepository",
        "current_revisions",
        "ensure_schema",
        "make_engine",
        "parse_filter",
        "parse_order_by",
        "required_heads",
        "upgrade",
    ],
    "keel.governance": [
        "SYSTEM_PRINCIPAL",
        "AuditEvent",
        "AuditLog",
        "ChainBreak",
        "ChainReport",
        "Context",
        "Governor",
        "Permission",
        "Project",
        "ProjectService",
        "Role",
        "Write",
        "allows",
    ],
    "keel.tracking": [
        "REVIEWED_SKOPS_TYPES",
        "SAFE_FORMATS",
        "ActiveRun",
        "AliasMove",
        "Artifact",
        "Experiment",
        "ExperimentService",
        "Metric",
        "ModelRegistry",
        "ModelVersion",
        "RegisteredModel",
        "Run",
        "RunPage",
        "RunService",
        "capture_environment",
        "dump_skops",
        "git_state",
        "load_skops",
        "parse_model_ref",
    ],
    "keel.workspace": [
        "Audit",
        "Experiments",
        "Lineage",
        "Models",
        "Projects",
        "Runs",
        "Workspace",
        "connect",
        "local_principal",
        "open_components",
    ],
    "keel.cli": ["app", "main"],
    "keel.lineage": [
        "NODE_TYPES",
        "LineageEdge",
        "LineageGraph",
        "LineageService",
        "Node",
        "parse_node",
    ],
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_public_names_are_exactly_these(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPORTS[module])
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_lazy_names_resolve_and_unknown_names_fail() -> None:
    assert keel.connect.__module__ == "keel.workspace._connect"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = keel.nope  # type: ignore[attr-defined]


def test_errors_subclass_the_builtin_a_caller_would_catch() -> None:
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.FilterSyntaxError, errors.InvalidInputError)
    assert issubclass(errors.PermissionDeniedError, PermissionError)
    assert issubclass(errors.StorageError, OSError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.SchemaOutdatedError, errors.ConfigurationError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.KeelError)


def test_error_messages_are_bounded_and_keep_context() -> None:
    err = errors.InvalidInputError("x" * 10_000, field="name")
    assert len(str(err)) <= 2000 and str(err).endswith("(truncated)")
    assert err.details == {"field": "name"}
    missing = errors.MissingDependencyError("ray", extra="ray", purpose="The Ray executor")
    assert "pip install 'keel-mlops[ray]'" in str(missing)
