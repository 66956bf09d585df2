"""``keel serve``, ``keel deploy``, ``keel deployments list|show|status|promote|rollback|trace``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["deploy", "deployments_app", "serve"]

deployments_app = typer.Typer(
    help="Deployments: traffic split, canary analysis, promote, roll back.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the history).")]


def serve(
    models: Annotated[
        list[str] | None, typer.Argument(help="Model references, e.g. churn@champion churn:3.")
    ] = None,
    deployment: Annotated[
        list[str] | None,
        typer.Option("--deployment", "-d", help="Serve a deployment with its routing."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    max_batch: Annotated[int, typer.Option(help="Micro-batch size limit.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="Longest wait to batch (ms).")] = 0.5,
    no_analysis: Annotated[
        bool, typer.Option("--no-analysis", help="Do not promote/roll back canaries by itself.")
    ] = False,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log predictions.")] = False,
) -> None:
    """Serve models over the Open Inference Protocol V2 (REST) and /predict."""
    from keel.cli._collector import steady_state
    from keel.errors import InvalidInputError
    from keel.serving import AnalysisConfig, ServeOptions, run_server

    if not models and not deployment:
        raise InvalidInputError(
            "Nothing to serve: give model references (keel serve churn@champion) or "
            "--deployment NAME."
        )
    options = ServeOptions(
        models=tuple(models or ()),
        deployments=tuple(deployment or ()),
        log_predictions=not no_log,
        analysis=None if no_analysis else AnalysisConfig(),
        max_batch=max_batch,
        max_wait=max_wait_ms / 1000.0,
    )
    ws = open_workspace()
    app = ws.deployments.server(options)
    typer.echo(f"Serving {', '.join(sorted(app.host.endpoints))} on http://{host}:{port}")
    steady_state()
    try:
        run_server(app, host=host, port=port)
    finally:
        ws.close()


def deploy(
    ref: Annotated[str, typer.Argument(help="MODEL@ALIAS or MODEL:VERSION.")],
    env: Annotated[str, typer.Option("--env", help="dev, staging or production.")] = "staging",
    strategy: Annotated[str, typer.Option(help="blue-green, canary or shadow.")] = "blue-green",
    steps: Annotated[
        str | None, typer.Option(help="Canary steps in percent, e.g. 5,25,50,100.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Deployment name (MODEL-ENV).")] = None,
    target: Annotated[
        str | None, typer.Option(help="'kubernetes': write a Dockerfile and manifests.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Directory for --target files.")] = None,
    image: Annotated[str, typer.Option(help="Container image name.")] = "keel-model-server:latest",
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "default",
    as_json: JsonOption = False,
) -> None:
    """Deploy a registry version with a strategy (its smoke prediction must pass first)."""
    from keel.errors import InvalidInputError

    if target is not None and target != "kubernetes":
        raise InvalidInputError(f"Unknown --target {target!r}; the only target is 'kubernetes'.")
    if target == "kubernetes" and out is None:
        raise InvalidInputError("--target kubernetes needs --out DIR for the generated files.")
    with open_workspace() as ws:
        found = ws.deployments.deploy(
            ref, environment=env, strategy=strategy, steps=steps, name=name
        )
    written: list[Path] = []
    if target == "kubernetes":
        from keel.serving._kubernetes import KubernetesTarget, write_manifests

        assert out is not None
        written = write_manifests(
            KubernetesTarget(found.name, image=image, namespace=namespace), out
        )
    if as_json:
        echo_json({**found.to_dict(), "files": [str(p) for p in written]})
        return
    _print_deployment(found.to_dict())
    for path in written:
        typer.echo(f"wrote {path}")


def _print_deployment(d: dict[str, Any]) -> None:
    split = (
        f"{100 - d['weight'] * 100:g}% v{d['primary']} / {d['weight'] * 100:g}% v{d['candidate']}"
        if d["strategy"] == "canary" and d["phase"] == "rolling"
        else f"100% v{d['primary']}"
        + (
            f" (shadow copy to v{d['candidate']})"
            if d["strategy"] == "shadow" and d["phase"] == "rolling"
            else ""
        )
    )
    print_kv(
        f"Deployment {d['name']}",
        [
            ("model", d["model"]),
            ("environment", d["environment"]),
            ("strategy", d["strategy"]),
            ("phase", d["phase"]),
            ("traffic", split),
            ("steps", ", ".join(f"{s:g}%" for s in d["steps"])),
            ("revision", d["revision"]),
            ("previous", d["previous"]),
        ],
    )


@deployments_app.command("list")
def list_deployments(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List deployments with their live split."""
    with open_workspace() as ws:
        found = ws.deployments.list(environment=env)
    if as_json:
        echo_json([d.to_dict() for d in found])
        return
    print_table(
        f"Deployments in project '{ws.project}'",
        ["name", "env", "strategy", "phase", "primary", "candidate", "canary %", "revision"],
        [
            (
                d.name,
                d.environment,
                d.state.strategy,
                d.state.phase,
                d.state.primary,
                d.state.candidate,
                f"{d.state.canary_weight * 100:g}",
                d.revision,
            )
            for d in found
        ],
    )


@deployments_app.command("show")
def show(name: str, as_json: JsonOption = False) -> None:
    """A deployment and every revision (with the analysis behind each automatic move)."""
    with open_workspace() as ws:
        found = ws.deployments.get(name)
        revisions = ws.deployments.revisions(name)
    if as_json:
        echo_json({**found.to_dict(), "revisions": [r.to_dict() for r in revisions]})
        return
    _print_deployment(found.to_dict())
    print_table(
        "Revisions",
        ["#", "when (UTC)", "action", "primary", "candidate", "canary %", "by", "reason"],
        [
            (
                r.revision,
                r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.action,
                r.state.primary,
                r.state.candidate,
                f"{r.state.canary_weight * 100:g}",
                r.created_by,
                r.reason[:120],
            )
            for r in revisions
        ],
    )


@deployments_app.command("status")
def status(name: str, as_json: JsonOption = False) -> None:
    """The live split and the latest automatic analysis of a deployment."""
    with open_workspace() as ws:
        found = ws.deployments.get(name)
        revisions = ws.deployments.revisions(name)
    analyses = [r for r in revisions if r.analysis is not None]
    latest = analyses[-1].to_dict() if analyses else None
    if as_json:
        echo_json({**found.to_dict(), "latest_analysis": latest})
        return
    _print_deployment(found.to_dict())
    if latest is None:
        typer.echo("No automatic analysis yet.")
        return
    print_kv(
        f"Latest analysis (revision {latest['revision']})",
        [
            ("decision", latest["analysis"]["action"]),
            ("reasons", " ".join(latest["analysis"]["reasons"])),
            ("requests", latest["analysis"]["stats"].get("requests")),
            ("error rate", latest["analysis"]["stats"].get("error_rate")),
            ("psi", latest["analysis"]["stats"].get("psi")),
        ],
    )


@deployments_app.command("promote")
def promote(
    name: str,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps.")] = False,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Move a canary to its next step (or promote the candidate with --full)."""
    with open_workspace() as ws:
        found = ws.deployments.promote(name, reason=reason, full=full)
    if as_json:
        echo_json(found.to_dict())
        return
    _print_deployment(found.to_dict())


@deployments_app.command("rollback")
def rollback(name: str, reason: ReasonOption = "", as_json: JsonOption = False) -> None:
    """Drop the candidate, or switch back to the previous version, at once."""
    with open_workspace() as ws:
        found = ws.deployments.rollback(name, reason=reason)
    if as_json:
        echo_json(found.to_dict())
        return
    _print_deployment(found.to_dict())


@deployments_app.command("trace")
def trace(
    prediction_id: Annotated[
        str, typer.Argument(help="A prediction id from a predict response or the log.")
    ],
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Look only in this deployment.")
    ] = None,
    depth: Annotated[int, typer.Option("--depth", min=1, max=50, help="Lineage levels.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Follow one served prediction back to its data: the logged row, the revision that
    routed it, the model version that answered, its label, and the lineage upstream."""
    import json

    from keel.cli._lineage import edge_line

    with open_workspace() as ws:
        found = ws.deployments.trace(prediction_id, deployment=deployment, depth=depth)
    if as_json:
        echo_json(found.to_dict())
        return
    revision = (
        f"{found.revision} ({found.revision_action}: {found.revision_reason})"
        if found.revision is not None
        else "unknown"
    )
    print_kv(
        f"Prediction {found.prediction_id}",
        [
            ("when (UTC)", found.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]),
            ("deployment", f"{found.deployment} (revision {revision})"),
            ("model version", f"{found.model}:{found.version} ({found.variant})"),
            ("inputs", json.dumps(found.inputs, default=str)[:400]),
            ("prediction", json.dumps(found.prediction, default=str)),
            ("score", found.score),
            ("label", json.dumps(found.label, default=str) if found.labelled else "none yet"),
            ("latency ms", found.latency_ms),
            ("request id", found.request_id),
        ],
    )
    if found.lineage is None:
        typer.echo("No lineage: its model version or deployment is no longer in the store.")
        return
    typer.echo(f"Lineage upstream of {found.lineage.root}:")
    for edge in found.lineage.upstream:
        typer.echo(f"  {edge_line(edge)}")
    if found.lineage.truncated:
        typer.echo("  … truncated: raise --depth to see more")
