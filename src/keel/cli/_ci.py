"""``keel ci data|train|model|security|promote|deploy|init``: CI stages with JUnit reports.

Every stage exits 0 when its checks pass and 1 when one fails (2 for bad input), writes a JUnit
XML report (``--junit``) and a Markdown summary for a pull-request comment (``--summary``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli._app import open_workspace, state
from keel.cli._output import echo_json

if TYPE_CHECKING:
    from keel.cicd import ProjectFile, StageReport

__all__ = ["app"]

app = typer.Typer(
    help="CI stages with JUnit reports and PR summaries; CI workflow templates.",
    no_args_is_help=True,
)
FileOption = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="The project file (default ./keel.yaml; it must exist)."),
]
NoProjectOption = Annotated[
    bool,
    typer.Option(
        "--no-project-file",
        help="Run without a project file: no declared checks, policies or deployments.",
    ),
]
JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="Write the JUnit XML report here.")
]
SummaryOption = Annotated[
    Path | None, typer.Option("--summary", help="Write the Markdown summary here.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


def _project(
    file: Path | None, *, none: bool = False, root: Path | None = None
) -> ProjectFile | None:
    """The project file; a missing one is an error unless ``--no-project-file`` says so."""
    from keel.cicd import load_project
    from keel.errors import InvalidInputError

    if none:
        if file is not None:
            raise InvalidInputError(
                "--file and --no-project-file contradict each other; give one of them."
            )
        return None
    path = file if file is not None else Path("keel.yaml")
    if root is not None and not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise InvalidInputError(
            f"There is no project file at {path}. Correct --file, create keel.yaml (see "
            "docs/project-file.md), or pass --no-project-file to run without one (no declared "
            "checks, promotion policies or deployments).",
            file=str(path),
        )
    project = load_project(path)
    if state.project is None and isinstance(project.data.get("project"), str):
        state.project = project.data["project"]
    return project


def _finish(report: StageReport, junit: Path | None, summary: Path | None, as_json: bool) -> None:
    report.write(junit=junit, summary=summary)
    if as_json:
        echo_json(report.to_dict())
    else:
        typer.echo(report.markdown())
    if not report.passed:
        raise typer.Exit(report.exit_code)


def _run(
    stage: str,
    build: Callable[[], StageReport],
    junit: Path | None,
    summary: Path | None,
    as_json: bool,
) -> None:
    """Run a stage; a stage that cannot start still writes its report (one error case).

    Exit 2 for bad input (an invalid or missing project file, an unknown name), 1 otherwise.
    """
    from keel.cicd import Check
    from keel.cicd import StageReport as Report
    from keel.errors import InvalidInputError, KeelError, NotFoundError

    try:
        report = build()
    except KeelError as exc:
        from keel.cli._output import print_error

        failed = Report(stage)
        failed.checks.append(Check("start", "error", f"{type(exc).__name__}: {exc}"))
        failed.write(junit=junit, summary=summary)
        if as_json:
            echo_json(failed.to_dict())
        print_error(str(exc))
        bad_input = isinstance(exc, (InvalidInputError, NotFoundError))
        raise typer.Exit(2 if bad_input else 1) from None
    _finish(report, junit, summary, as_json)


@app.command("data")
def data(
    datasets: Annotated[
        list[str] | None,
        typer.Argument(help="NAME or NAME:VERSION (default: the datasets of keel.yaml)."),
    ] = None,
    publish: Annotated[
        bool | None,
        typer.Option("--publish/--no-publish", help="Run the publish gate (default: keel.yaml)."),
    ] = None,
    file: FileOption = None,
    no_project: NoProjectOption = False,
    junit: JunitOption = None,
    summary: SummaryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate dataset versions against their declared checks and policies."""
    from keel.cicd import run_data_stage

    def build() -> StageReport:
        project = _project(file, none=no_project)
        with open_workspace() as ws:
            return run_data_stage(ws, list(datasets or []), project=project, publish=publish)

    _run("data", build, junit, summary, as_json)


@app.command("train")
def train(
    pipeline: Annotated[str, typer.Argument(help="A pipeline of keel.yaml, or module:attribute.")],
    params: Annotated[
        str | None, typer.Option("--params", help="Pipeline parameters as a JSON object.")
    ] = None,
    file: FileOption = None,
    no_project: NoProjectOption = False,
    junit: JunitOption = None,
    summary: SummaryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the training pipeline (cached steps are reused); one test case per step."""
    from keel.cicd import run_train_stage

    def build() -> StageReport:
        values = _json_object(params, "--params")
        project = _project(file, none=no_project)
        root = project.path.resolve().parent if project is not None else None
        with open_workspace() as ws:
            return run_train_stage(ws, pipeline, root=root, params=values)

    _run("train", build, junit, summary, as_json)


@app.command("model")
def model(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS (default latest).")],
    environment: Annotated[
        str, typer.Option("--environment", "-e", help="Whose promotion policy to test against.")
    ] = "staging",
    file: FileOption = None,
    no_project: NoProjectOption = False,
    junit: JunitOption = None,
    summary: SummaryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Model tests against an environment's promotion policy.

    Metric thresholds, no regression against the environment's current version, slices,
    smoke prediction and latency in the serving runtime, signature and input example.
    """
    from keel.cicd import run_model_stage

    def build() -> StageReport:
        project = _project(file, none=no_project)
        with open_workspace() as ws:
            return run_model_stage(ws, ref, project=project, environment=environment)

    _run("model", build, junit, summary, as_json)


@app.command("security")
def security(
    root: Annotated[Path, typer.Option("--root", help="The repository to scan.")] = Path("."),
    allowlist: Annotated[
        Path | None,
        typer.Option("--allowlist", help="Allowlist file (default ROOT/.keel-secrets-allow)."),
    ] = None,
    pip_audit: Annotated[
        bool, typer.Option("--pip-audit/--no-pip-audit", help="Audit Python packages.")
    ] = True,
    requirements: Annotated[
        Path | None,
        typer.Option("--requirements", "-r", help="Audit these pins instead of this env."),
    ] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", help="Verify a registry version's signature.")
    ] = None,
    junit: JunitOption = None,
    summary: SummaryOption = None,
    as_json: JsonOption = False,
) -> None:
    """pip-audit, model-file scans and a secrets scan of the repository."""
    from keel.cicd import run_security_stage

    def build() -> StageReport:
        if not models:
            return run_security_stage(
                root, allowlist=allowlist, pip_audit=pip_audit, requirements=requirements
            )
        with open_workspace() as ws:
            return run_security_stage(
                root,
                allowlist=allowlist,
                pip_audit=pip_audit,
                requirements=requirements,
                ws=ws,
                models=models,
            )

    _run("security", build, junit, summary, as_json)


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION (default: from promote_from).")],
    to: Annotated[str, typer.Option("--to", help="The environment to promote to.")],
    file: FileOption = None,
    no_project: NoProjectOption = False,
    junit: JunitOption = None,
    summary: SummaryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the environment's promotion policy and move its alias (or stop with reasons)."""
    from keel.cicd import run_promote_stage

    def build() -> StageReport:
        project = _project(file, none=no_project)
        with open_workspace() as ws:
            return run_promote_stage(ws, ref, environment=to, project=project)

    _run("promote", build, junit, summary, as_json)


@app.command("deploy")
def deploy(
    deployment: Annotated[str, typer.Argument(help="A deployment declared in keel.yaml.")],
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for the verdict.")
    ] = None,
    file: FileOption = None,
    junit: JunitOption = None,
    summary: SummaryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start the declared deployment strategy and wait for its verdict."""
    from keel.cicd import run_deploy_stage

    def build() -> StageReport:
        project = _project(file)
        with open_workspace() as ws:
            return run_deploy_stage(ws, deployment, project=project, timeout=timeout)

    _run("deploy", build, junit, summary, as_json)


@app.command("init")
def init(
    provider: Annotated[str, typer.Option("--provider", help="github, gitlab, jenkins or azure.")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Training pipeline.")] = None,
    model_name: Annotated[str | None, typer.Option("--model", help="Registered model.")] = None,
    deployment: Annotated[str | None, typer.Option("--deployment", help="Deployment.")] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="Environment to promote to.")
    ] = None,
    schedule: Annotated[str | None, typer.Option("--schedule", help="Cron schedule.")] = None,
    root: Annotated[Path, typer.Option("--root", help="The repository root.")] = Path("."),
    stdout: Annotated[bool, typer.Option("--stdout", help="Print instead of writing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    file: FileOption = None,
    no_project: NoProjectOption = False,
) -> None:
    """Generate the CI workflow that runs the Keel stages on PRs, main, a schedule and new data."""
    from keel.cicd import CiOptions, render_workflow, write_workflow

    project = _project(file, none=no_project, root=root)
    options = CiOptions.from_project(
        project.data if project is not None else {},
        pipeline=pipeline,
        model=model_name,
        deployment=deployment,
        environment=environment,
        schedule=schedule,
    )
    if stdout:
        _, text = render_workflow(provider, options)
        typer.echo(text, nl=False)
        return
    path = write_workflow(provider, options, root=root, force=force)
    typer.echo(f"Wrote {path}.")


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    from keel.errors import InvalidInputError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{option} is not JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{option} must be a JSON object such as '{{\"lr\": 0.1}}'.")
    return value
