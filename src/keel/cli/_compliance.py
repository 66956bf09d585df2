"""``keel compliance declare|records|retention|location|locations``: GDPR and PDPL duties."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_table

__all__ = ["app"]

app = typer.Typer(
    help="GDPR / UAE PDPL: records of processing, retention, regions.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("declare")
def declare(
    dataset: str,
    purpose: Annotated[str, typer.Option("--purpose", help="Why the data is processed.")],
    lawful_basis: Annotated[
        str, typer.Option("--lawful-basis", help="consent, contract, legal_obligation, ...")
    ],
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Personal-data category (repeat).")
    ] = None,
    subject: Annotated[
        list[str] | None, typer.Option("--subject", help="Kind of data subject (repeat).")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Allowed region (repeat).")
    ] = None,
    retention_days: Annotated[int | None, typer.Option("--retention-days", min=1)] = None,
    subject_column: Annotated[str | None, typer.Option("--subject-column")] = None,
    as_json: JsonOption = False,
) -> None:
    """Declare (or replace) the record of processing of a dataset."""
    with open_workspace() as ws:
        record = ws.compliance.declare(
            dataset,
            purpose=purpose,
            lawful_basis=lawful_basis,
            categories=category or [],
            subjects=subject or [],
            allowed_regions=region or [],
            retention_days=retention_days,
            subject_column=subject_column,
        )
    if as_json:
        echo_json(record.to_dict())
    else:
        typer.echo(f"Record of processing for '{dataset}' saved.")


@app.command("records")
def records(as_json: JsonOption = False) -> None:
    """The records-of-processing report; exit 1 if any dataset has a problem."""
    with open_workspace() as ws:
        rows = ws.compliance.records()
    if as_json:
        echo_json([r.to_dict() for r in rows])
    else:
        print_table(
            f"Records of processing in project '{ws.project}'",
            [
                "dataset",
                "purpose",
                "basis",
                "categories",
                "regions",
                "stored in",
                "retention",
                "problems",
            ],
            [
                (
                    r.dataset,
                    r.purpose,
                    r.lawful_basis,
                    ", ".join(r.categories),
                    ", ".join(r.allowed_regions) or "any",
                    ", ".join(r.stored_regions),
                    "" if r.retention_days is None else f"{r.retention_days} d",
                    "; ".join(r.problems),
                )
                for r in rows
            ],
        )
    if any(r.problems for r in rows):
        raise typer.Exit(1)


@app.command("retention")
def retention(as_json: JsonOption = False) -> None:
    """List dataset versions kept past their retention; exit 1 if any (for schedulers)."""
    with open_workspace() as ws:
        due = ws.compliance.retention()
    if as_json:
        echo_json([item.to_dict() for item in due])
    elif due:
        print_table(
            "Dataset versions past their retention",
            ["dataset", "version", "created (UTC)", "expired (UTC)"],
            [
                (
                    i.dataset,
                    i.version,
                    i.created_at.strftime("%Y-%m-%d"),
                    i.expired_at.strftime("%Y-%m-%d"),
                )
                for i in due
            ],
        )
    else:
        typer.echo("No dataset version is past its retention period.")
    if due:
        raise typer.Exit(1)


@app.command("location")
def location(
    name: str,
    kind: Annotated[str, typer.Option("--kind", help="storage, deployment or compute.")],
    region: Annotated[str, typer.Option("--region", help="Region code, e.g. ae.")],
) -> None:
    """Declare the region of a storage location or deployment target."""
    with open_workspace() as ws:
        found = ws.compliance.set_location(name, kind=kind, region=region)
    typer.echo(f"{found.kind} '{found.name}' is in region '{found.region}'.")


@app.command("locations")
def locations(as_json: JsonOption = False) -> None:
    """List storage locations and deployment targets with their regions."""
    with open_workspace() as ws:
        rows = ws.compliance.locations()
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    print_table("Locations", ["name", "kind", "region"], [(r.name, r.kind, r.region) for r in rows])
