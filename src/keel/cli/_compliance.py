"""``keel compliance …``: records of processing, regions, subject access and erasure, retention."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_table

if TYPE_CHECKING:
    from keel.compliance import ErasureReport

__all__ = ["app"]

app = typer.Typer(
    help="GDPR / UAE PDPL: records of processing, subject access and erasure, retention, regions.",
    no_args_is_help=True,
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


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per phase (index, rewrite, shred) of long compliance work."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=not enabled,
    ) as bar:
        tasks: dict[str, object] = {}

        def advance(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)  # type: ignore[arg-type]

        yield advance


def _report_out(report: ErasureReport, out: Path | None, as_json: bool) -> None:
    from keel.compliance import render_erasure

    text = render_erasure(report)
    if out is not None:
        from keel.compliance._model import write_text_atomic

        write_text_atomic(out.with_suffix(".json"), _dumps(report.to_dict()))
        write_text_atomic(out.with_suffix(".txt"), text)
    if as_json:
        echo_json(report.to_dict())
    else:
        typer.echo(text, nl=False)
        if out is not None:
            typer.echo(
                f"Report written to {out.with_suffix('.json')} and {out.with_suffix('.txt')}."
            )


def _dumps(data: object) -> str:
    import json

    return json.dumps(data, indent=2, default=str) + "\n"


SubjectArg = Annotated[
    str | None,
    typer.Argument(
        help="The data subject's id (value of the subject column). Prefer --subject-file: "
        "an argument stays in shell history and shows in the process list."
    ),
]
SubjectFileOption = Annotated[
    str | None,
    typer.Option(
        "--subject-file",
        help="Read the subject's id from this file ('-': standard input), one line.",
    ),
]


def _subject(subject: str | None, subject_file: str | None) -> str:
    """The subject id from the argument or from ``--subject-file`` (exactly one)."""
    from keel.errors import InvalidInputError

    if (subject is None) == (subject_file is None):
        raise InvalidInputError(
            "Give the data subject's id either with --subject-file PATH (or '-' for standard "
            "input; keeps it out of shell history) or as an argument, not both or neither.",
            field="subject",
        )
    if subject is not None:
        return subject
    import sys

    if subject_file == "-":
        text = sys.stdin.read(64_000)
    else:
        try:
            with open(str(subject_file), encoding="utf-8") as handle:
                text = handle.read(64_000)
        except OSError as exc:
            raise InvalidInputError(
                f"Cannot read the subject file {str(subject_file)[:200]!r}: "
                f"{exc.strerror or exc}. Give a readable file, or '-' for standard input.",
                field="subject_file",
            ) from exc
    return text.strip("\r\n")


ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Also write the report to REPORT.json and REPORT.txt."),
]


@app.command("locate")
def locate(
    subject: SubjectArg = None,
    subject_file: SubjectFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the dataset versions that hold rows of a data subject."""
    who = _subject(subject, subject_file)
    with open_workspace() as ws, _progress(not as_json) as progress:
        found = ws.compliance.locate(who, progress=progress)
    if as_json:
        echo_json([loc.to_dict() for loc in found])
        return
    print_table(
        "Dataset versions holding the subject",
        ["dataset", "version", "rows", "erased"],
        [(f.dataset, f.version, f.rows, "yes" if f.erased else "") for f in found],
    )


@app.command("erase")
def erase(
    subject: SubjectArg = None,
    subject_file: SubjectFileOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; change nothing.")] = False,
    report: ReportOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase a data subject: new versions without their rows, old data crypto-shredded.

    Interrupted? Run the same command again: it resumes.
    """
    who = _subject(subject, subject_file)
    with open_workspace() as ws, _progress(not as_json) as progress:
        result = ws.compliance.erase(who, dry_run=dry_run, progress=progress)
    _report_out(result, report, as_json)


@app.command("access")
def access(
    out: Annotated[Path, typer.Option("--out", "-o", help="The zip file to write.")],
    subject: SubjectArg = None,
    subject_file: SubjectFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export what is held about a data subject (rows, models, records) as a zip."""
    who = _subject(subject, subject_file)
    with open_workspace() as ws, _progress(not as_json) as progress:
        export = ws.compliance.access(who, out=out, progress=progress)
    rows = sum(len(r) for r in export.rows.values())
    if as_json:
        echo_json({"out": str(out), "versions": len(export.rows), "rows": rows})
    else:
        typer.echo(
            f"Wrote {out}: {rows} row(s) from {len(export.rows)} dataset version(s), "
            f"{len(export.models)} model version(s) trained on them."
        )


@app.command("enforce-retention")
def enforce_retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; change nothing.")] = False,
    report: ReportOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase dataset versions past their retention (run it from a scheduler or cron)."""
    with open_workspace() as ws, _progress(not as_json) as progress:
        result = ws.compliance.enforce_retention(dry_run=dry_run, progress=progress)
    _report_out(result, report, as_json)


@app.command("erasures")
def erasures(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List past and running erasures."""
    with open_workspace() as ws:
        rows = ws.compliance.erasures(limit=limit)
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    print_table(
        "Erasures",
        ["id", "kind", "state", "requested by", "started", "versions", "models flagged"],
        [
            (
                r.id,
                r.kind,
                r.state,
                r.requested_by,
                r.started_at[:19],
                len(r.versions),
                len(r.models_flagged),
            )
            for r in rows
        ],
    )


@app.command("erasure")
def erasure(erasure_id: str, report: ReportOption = None, as_json: JsonOption = False) -> None:
    """Show one erasure's report."""
    with open_workspace() as ws:
        result = ws.compliance.erasure(erasure_id)
    _report_out(result, report, as_json)
