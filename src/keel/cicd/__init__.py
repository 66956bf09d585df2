"""CI/CD for ML: ``keel ci`` stages with JUnit reports, CI workflow templates, and the
declarative project file ``keel.yaml`` with validate, plan, apply and export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

if TYPE_CHECKING:
    from keel.cicd._apply import ApplyResult, Effects, ProjectStateService
    from keel.cicd._deploy_stage import run_deploy_stage
    from keel.cicd._effects import LiveEffects, LiveServices
    from keel.cicd._export import PIPELINE_PLACEHOLDER, export_project, render_yaml
    from keel.cicd._facade import ProjectFiles
    from keel.cicd._model_stages import environment_spec, run_model_stage, run_promote_stage
    from keel.cicd._plan import Change, Plan, make_plan
    from keel.cicd._ports import CiWorkspace
    from keel.cicd._project import (
        BUILTIN_ENVIRONMENTS,
        Issue,
        ProjectFile,
        load_project,
        project_schema,
        validate_text,
    )
    from keel.cicd._report import Check, StageReport, write_atomic
    from keel.cicd._secrets_scan import SecretFinding, scan_secrets, scan_text
    from keel.cicd._stages import parse_ref, run_data_stage, run_security_stage, run_train_stage
    from keel.cicd._templates import PROVIDERS, CiOptions, render_workflow, write_workflow

__all__ = [
    "BUILTIN_ENVIRONMENTS",
    "PIPELINE_PLACEHOLDER",
    "PROVIDERS",
    "ApplyResult",
    "Change",
    "Check",
    "CiOptions",
    "CiWorkspace",
    "Effects",
    "Issue",
    "LiveEffects",
    "LiveServices",
    "Plan",
    "ProjectFile",
    "ProjectFiles",
    "ProjectStateService",
    "SecretFinding",
    "StageReport",
    "environment_spec",
    "export_project",
    "load_project",
    "make_plan",
    "parse_ref",
    "project_schema",
    "render_workflow",
    "render_yaml",
    "run_data_stage",
    "run_deploy_stage",
    "run_model_stage",
    "run_promote_stage",
    "run_security_stage",
    "run_train_stage",
    "scan_secrets",
    "scan_text",
    "validate_text",
    "write_atomic",
    "write_workflow",
]

# The names load on first use (PEP 562), so a command imports only the modules it calls.
_LAZY: dict[str, str] = {
    "ApplyResult": "keel.cicd._apply",
    "BUILTIN_ENVIRONMENTS": "keel.cicd._project",
    "Change": "keel.cicd._plan",
    "Check": "keel.cicd._report",
    "CiOptions": "keel.cicd._templates",
    "CiWorkspace": "keel.cicd._ports",
    "Effects": "keel.cicd._apply",
    "Issue": "keel.cicd._project",
    "LiveEffects": "keel.cicd._effects",
    "LiveServices": "keel.cicd._effects",
    "PIPELINE_PLACEHOLDER": "keel.cicd._export",
    "PROVIDERS": "keel.cicd._templates",
    "Plan": "keel.cicd._plan",
    "ProjectFile": "keel.cicd._project",
    "ProjectFiles": "keel.cicd._facade",
    "ProjectStateService": "keel.cicd._apply",
    "SecretFinding": "keel.cicd._secrets_scan",
    "StageReport": "keel.cicd._report",
    "environment_spec": "keel.cicd._model_stages",
    "export_project": "keel.cicd._export",
    "load_project": "keel.cicd._project",
    "make_plan": "keel.cicd._plan",
    "parse_ref": "keel.cicd._stages",
    "project_schema": "keel.cicd._project",
    "render_workflow": "keel.cicd._templates",
    "render_yaml": "keel.cicd._export",
    "run_data_stage": "keel.cicd._stages",
    "run_deploy_stage": "keel.cicd._deploy_stage",
    "run_model_stage": "keel.cicd._model_stages",
    "run_promote_stage": "keel.cicd._model_stages",
    "run_security_stage": "keel.cicd._stages",
    "run_train_stage": "keel.cicd._stages",
    "scan_secrets": "keel.cicd._secrets_scan",
    "scan_text": "keel.cicd._secrets_scan",
    "validate_text": "keel.cicd._project",
    "write_atomic": "keel.cicd._report",
    "write_workflow": "keel.cicd._templates",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
