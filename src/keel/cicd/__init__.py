"""CI/CD for ML: ``keel ci`` stages with JUnit reports, CI workflow templates, and the
declarative project file ``keel.yaml`` with validate, plan, apply and export."""

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
