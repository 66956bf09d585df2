"""``keel validate|plan|apply|export``: the declarative project file ``keel.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli._app import open_workspace, state
from keel.cli._output import echo_json

__all__ = ["apply", "export", "plan", "validate"]

FileOption = Annotated[
    Path, typer.Option("--file", "-f", help="The project file (default ./keel.yaml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _use_file_project(data: dict[str, Any]) -> None:
    """A file that names its project works in it unless --project says otherwise."""
    if state.project is None and isinstance(data.get("project"), str):
        state.project = data["project"]


def validate(
    file: Annotated[Path, typer.Argument(help="The project file.")] = Path("keel.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Check keel.yaml against its schema, references and cycles; every error with its line."""
    from keel.cicd import validate_text
    from keel.errors import InvalidInputError

    if not file.is_file():
        raise InvalidInputError(f"There is no project file at {file}.", file=str(file))
    _, issues = validate_text(
        file.read_text(encoding="utf-8"), file=str(file), root=file.resolve().parent
    )
    if as_json:
        echo_json({"file": str(file), "valid": not issues, "issues": [i.to_dict() for i in issues]})
    elif issues:
        for issue in issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{file}: {len(issues)} problem(s).", err=True)
    else:
        typer.echo(f"{file} is valid.")
    if issues:
        raise typer.Exit(2)


def plan(
    file: FileOption = Path("keel.yaml"),
    show_unchanged: Annotated[
        bool, typer.Option("--show-unchanged", help="List unchanged resources too.")
    ] = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 3 when there are changes.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show what apply would create, update or delete, with a diff against the current state."""
    from keel.cicd import load_project
    from keel.workspace._read_only_plan import read_only_plan

    project = load_project(file)
    _use_file_project(project.data)
    # A plan only reads: in plain SQL when it may (a CI job's fresh process starts ~2x faster).
    settings = state.settings()
    result = read_only_plan(settings, project)
    if result is None:
        with open_workspace(settings=settings) as ws:
            result = ws.project_file.plan(project)
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(result.render(show_unchanged=show_unchanged))
    if detailed_exitcode and result.pending:
        raise typer.Exit(3)


def apply(
    file: FileOption = Path("keel.yaml"),
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for another apply to finish.")
    ] = 30.0,
    force_unlock: Annotated[
        bool,
        typer.Option("--force-unlock", help="Remove a crashed apply's lock first (audited)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Make the project match keel.yaml (idempotent, audited, one apply at a time)."""
    from keel.cicd import load_project

    project = load_project(file)  # an invalid file stops here: nothing is applied
    _use_file_project(project.data)
    with open_workspace() as ws:
        if force_unlock:
            holder = ws.project_file.force_unlock()
            typer.echo(f"Removed the apply lock of {holder}." if holder else "No lock was held.")

        def progress(change: Any) -> None:
            if not as_json:
                typer.echo(f"{change.op} {change.kind} {change.name}", err=True)

        result = ws.project_file.apply(project, wait=wait, progress=progress)
    if as_json:
        echo_json(result.to_dict())
        return
    for key, note in sorted(result.notes.items()):
        typer.echo(f"  {key}: {note}")
    typer.echo(f"Applied: {result.plan.summary()}.")


def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the current state of the project as a project file."""
    from keel.cicd import PIPELINE_PLACEHOLDER, render_yaml, write_atomic

    with open_workspace() as ws:
        data = ws.project_file.export()
    text = render_yaml(data)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
        typer.echo(f"Wrote {output}.")
    pipelines = data.get("pipelines") or {}
    unknown = sorted(name for name, ref in pipelines.items() if ref == PIPELINE_PLACEHOLDER)
    if unknown:
        typer.echo(
            f"Note: the pipelines {', '.join(unknown)} were found only through their triggers; "
            f"they are written as '{PIPELINE_PLACEHOLDER}'. Replace each with the real "
            "module:attribute of its Pipeline before `keel apply`.",
            err=True,
        )
