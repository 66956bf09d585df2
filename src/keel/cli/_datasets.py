"""``keel datasets ingest|list|show|versions|diff|validate|publish|classify|anonymize|tag``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_markup, print_table

if TYPE_CHECKING:
    from keel.data import DatasetVersion

__all__ = ["app"]

app = typer.Typer(
    help="Datasets: ingest sources into versions, validate, publish, classify, anonymize.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
VersionOption = Annotated[
    str | None, typer.Option("--version", "-v", help="Version number or tag (default: latest).")
]


def _ref(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _load_spec(path: Path) -> Any:
    """A suite or step list from a JSON or YAML file."""
    from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError

    if not path.is_file():
        raise NotFoundError(f"No file at {str(path)!r}.", path=str(path))
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise MissingDependencyError("pyyaml", extra="data", purpose="A YAML suite") from exc
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"{str(path)!r} is not valid YAML: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{str(path)!r} is not valid JSON: {exc}") from exc


def _when(version: DatasetVersion) -> str:
    return version.created_at.strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


@app.command("ingest")
def ingest(
    name: Annotated[str, typer.Argument(help="Dataset name (created on first ingest).")],
    source: Annotated[str, typer.Argument(help="Path, fsspec URL, SQLAlchemy URL or folder.")],
    kind: Annotated[
        str | None,
        typer.Option(help="csv, parquet, json, ndjson, sql, folder or archive (default: guess)."),
    ] = None,
    append: Annotated[bool, typer.Option("--append", help="Append to the latest version.")] = False,
    delimiter: Annotated[str | None, typer.Option(help="CSV field separator.")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding (default: detect).")] = None,
    quote_char: Annotated[
        str | None,
        typer.Option(
            help="CSV quote character (default '\"'); 'none' for a file that quotes nothing."
        ),
    ] = None,
    schema: Annotated[
        list[str] | None, typer.Option("--schema", help="COLUMN=TYPE override (repeatable).")
    ] = None,
    table: Annotated[str | None, typer.Option(help="SQL table.")] = None,
    query: Annotated[str | None, typer.Option(help="SQL query.")] = None,
    description: Annotated[str, typer.Option(help="Dataset description.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Read SOURCE into a new version of dataset NAME, with a progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from keel.errors import InvalidInputError

    options: dict[str, Any] = {}
    for key, value in (("delimiter", delimiter), ("header", header), ("encoding", encoding)):
        if value is not None:
            options[key] = value
    if quote_char is not None:
        options["quote_char"] = None if quote_char.lower() == "none" else quote_char
    if schema:
        pairs = {}
        for item in schema:
            column, sep, dtype = item.partition("=")
            if not sep or not column or not dtype:
                raise InvalidInputError(f"--schema takes COLUMN=TYPE, got {item!r}.")
            pairs[column] = dtype
        options["schema"] = pairs
    if table is not None:
        options["table"] = table
    if query is not None:
        options["query"] = query
    total = os.path.getsize(source) if os.path.isfile(source) else None
    with (
        open_workspace(create=True) as ws,
        Progress(
            TextColumn("Ingesting {task.fields[name]}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            transient=True,
            disable=as_json,
        ) as progress,
    ):
        task = progress.add_task("ingest", total=total, name=name)
        version = ws.datasets.ingest(
            name,
            source,
            kind=kind,
            mode="append" if append else "new",
            description=description,
            progress=lambda n: progress.advance(task, n),
            **options,
        )
    if as_json:
        echo_json(version.to_dict())
        return
    _print_version(version)


def _print_version(version: DatasetVersion) -> None:
    print_kv(
        f"Dataset {version.dataset} v{version.version}",
        [
            ("id", version.id),
            ("kind", version.kind),
            ("rows", f"{version.row_count:,}"),
            ("rejected rows", f"{version.rejected_rows:,}"),
            ("size", _size(version.size_bytes)),
            ("parts", len(version.parts)),
            ("digest", version.digest),
            ("tags", ", ".join(version.tags)),
            ("published", version.published),
            ("sensitivity", version.sensitivity or "not classified"),
            ("residency", version.residency or ""),
            ("source", json.dumps(version.source, ensure_ascii=False) if version.source else ""),
            (
                "transform",
                json.dumps(version.transform, ensure_ascii=False)[:300]
                if version.transform
                else "",
            ),
            ("created", f"{_when(version)} by {version.created_by}"),
        ],
    )


@app.command("list")
def list_datasets(as_json: JsonOption = False) -> None:
    """List datasets with their latest version and tags."""
    with open_workspace() as ws:
        datasets = ws.datasets.list()
    if as_json:
        echo_json([d.to_dict() for d in datasets])
        return
    print_table(
        f"Datasets in project '{ws.project}'",
        ["name", "versions", "latest", "tags", "updated (UTC)"],
        [
            (
                d.name,
                d.versions,
                d.latest,
                ", ".join(f"{t}→{v}" for t, v in sorted(d.tags.items())),
                d.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for d in datasets
        ],
    )


@app.command("show")
def show(name: str, version: VersionOption = None, as_json: JsonOption = False) -> None:
    """Show a version: manifest, schema, statistics and labels."""
    with open_workspace() as ws:
        got = ws.datasets.version(name, _ref(version))
    if as_json:
        echo_json(got.to_dict())
        return
    _print_version(got)
    labels = (got.classification or {}).get("columns", {})
    rows = []
    for column, dtype in got.schema:
        stats = got.stats.get(column, {})
        label = labels.get(column, {})
        rows.append(
            (
                column,
                dtype,
                stats.get("nulls", ""),
                stats.get("min", _length(stats.get("min_length"))),
                stats.get("max", _length(stats.get("max_length"))),
                f"{stats['mean']:.4g}" if isinstance(stats.get("mean"), float) else "",
                label.get("sensitivity", ""),
                ", ".join(label.get("categories", [])),
            )
        )
    print_table(
        "Columns",
        ["column", "type", "nulls", "min", "max", "mean", "sensitivity", "categories"],
        rows,
    )


@app.command("versions")
def versions(name: str, as_json: JsonOption = False) -> None:
    """List the versions of a dataset."""
    with open_workspace() as ws:
        found = ws.datasets.versions(name)
    if as_json:
        echo_json([v.to_dict() for v in found])
        return
    print_table(
        f"Versions of dataset '{name}'",
        [
            "version",
            "rows",
            "rejected",
            "size",
            "tags",
            "published",
            "sensitivity",
            "created (UTC)",
        ],
        [
            (
                v.version,
                f"{v.row_count:,}",
                v.rejected_rows,
                _size(v.size_bytes),
                ", ".join(v.tags),
                v.published,
                v.sensitivity or "",
                _when(v),
            )
            for v in found
        ],
    )


@app.command("diff")
def diff(name: str, before: str, after: str, as_json: JsonOption = False) -> None:
    """Compare two versions: schema, row counts, parts and statistics."""
    with open_workspace() as ws:
        result = ws.datasets.diff(name, _ref(before), _ref(after))
    if as_json:
        echo_json(result.to_dict())
        return
    print_kv(
        f"{name}: v{result.before} → v{result.after}",
        [
            ("rows", f"{result.rows_before:,} → {result.rows_after:,}"),
            (
                "parts shared / added / removed",
                f"{result.parts_shared} / {result.parts_added} / {result.parts_removed}",
            ),
        ],
    )
    if result.changes:
        print_table(
            "Changes",
            ["column", "change", "before", "after"],
            [(c.column, c.change, c.before, c.after) for c in result.changes],
        )


@app.command("validate")
def validate(
    name: str,
    suite: Annotated[Path, typer.Option("--suite", "-s", help="Checks as YAML or JSON.")],
    version: VersionOption = None,
    reference: Annotated[
        str | None, typer.Option("--reference", "-r", help="Reference version for drift checks.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML report.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run checks over a version and store the report; exits 1 when an error-level check fails."""
    from keel.data import ValidationResult, render_text

    spec = _load_spec(suite)
    with open_workspace() as ws:
        report = ws.datasets.validate(name, spec, version=_ref(version), reference=_ref(reference))
        page = ws.datasets.report_html(report.id) if html is not None else None
    if html is not None and page is not None:
        html.write_text(page, encoding="utf-8")
    if as_json:
        echo_json(report.to_dict())
    else:
        print_markup(render_text(ValidationResult.from_dict(report.result)))
        typer.echo(f"Report {report.id} stored for {name} v{report.version}.")
    if not report.passed:
        raise typer.Exit(1)


@app.command("publish")
def publish(name: str, version: VersionOption = None, as_json: JsonOption = False) -> None:
    """Publish a version through the gate (refused when its latest report failed)."""
    with open_workspace() as ws:
        got = ws.datasets.publish(name, _ref(version))
    if as_json:
        echo_json(got.to_dict())
        return
    typer.echo(f"Published {name} v{got.version} (tag 'published' → {got.version}).")


@app.command("classify")
def classify(
    name: str,
    version: VersionOption = None,
    sample_size: Annotated[int, typer.Option(min=1, max=1_000_000)] = 10_000,
    set_label: Annotated[
        str | None,
        typer.Option("--set", help="Override: COLUMN=SENSITIVITY[:category,category]."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required with --set; audited).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Detect personal data per column, or override one column's labels with a reason."""
    from keel.errors import InvalidInputError

    with open_workspace() as ws:
        if set_label is None:
            got = ws.datasets.classify(name, _ref(version), sample_size=sample_size)
        else:
            column, sep, rest = set_label.partition("=")
            level, _, cats = rest.partition(":")
            if not sep or not column or not level:
                raise InvalidInputError(
                    f"--set takes COLUMN=SENSITIVITY[:cats], got {set_label!r}."
                )
            if reason is None:
                raise InvalidInputError("--set needs --reason (overrides are audited).")
            got = ws.datasets.override(
                name,
                column,
                sensitivity=level,
                categories=[c for c in cats.split(",") if c],
                reason=reason,
                version=_ref(version),
            )
    if as_json:
        echo_json(got.to_dict())
        return
    labels = (got.classification or {}).get("columns", {})
    print_table(
        f"Classification of {name} v{got.version}: {got.sensitivity}",
        ["column", "sensitivity", "categories", "confidence", "samples", "detector"],
        [
            (
                column,
                label.get("sensitivity"),
                ", ".join(label.get("categories", [])),
                f"{label.get('confidence', 0):.2f}",
                label.get("samples"),
                label.get("detector"),
            )
            for column, label in labels.items()
        ],
    )


@app.command("anonymize")
def anonymize(
    name: str,
    steps: Annotated[Path, typer.Option("--steps", help="Anonymization steps (YAML or JSON).")],
    version: VersionOption = None,
    target: Annotated[str | None, typer.Option(help="Dataset to write (default: NAME).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Mask, pseudonymize, generalize or suppress; the result is a new version."""
    spec = _load_spec(steps)
    with open_workspace() as ws:
        got = ws.datasets.anonymize(name, spec, version=_ref(version), target=target)
    if as_json:
        echo_json(got.to_dict())
        return
    _print_version(got)


@app.command("tag")
def tag(name: str, tag_name: str, version: int, as_json: JsonOption = False) -> None:
    """Point TAG at VERSION ('latest' and 'published' are managed by Keel)."""
    with open_workspace() as ws:
        got = ws.datasets.tag(name, tag_name, version)
    if as_json:
        echo_json(got.to_dict())
        return
    typer.echo(f"Tag '{tag_name}' of {name} → v{got.version}.")


def _length(value: object) -> str:
    """A text column's least or greatest value length, shown in the min/max columns."""
    return "" if value is None else f"{value} chars"
