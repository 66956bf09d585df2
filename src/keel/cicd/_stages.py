"""The ``keel ci`` stages for data, training and security (model stages: ``_model_stages``)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keel.cicd._ports import CiWorkspace
from keel.cicd._project import ProjectFile
from keel.cicd._report import StageReport
from keel.cicd._secrets_scan import scan_secrets
from keel.errors import InvalidInputError

__all__ = ["parse_ref", "run_data_stage", "run_security_stage", "run_train_stage"]

#: Model files the security stage scans: every format the scanners know (modelscan: pickle,
#: joblib, dill; PyTorch .pt/.pth/.ckpt/.bin; NumPy .npy; Keras .h5/.keras). A file the
#: scanners cannot clear is rejected: unknown is not safe.
_MODEL_FILES = (
    ".pkl", ".pickle", ".joblib", ".dill",
    ".pt", ".pth", ".ckpt", ".bin",
    ".npy", ".h5", ".keras",
)  # fmt: skip
_SKIP = {".git", ".venv", "venv", "node_modules", "__pycache__", ".keel", ".tox"}


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """``name``, ``name:3`` (a version) or ``name@tag`` / ``name@alias``."""
    for sep in (":", "@"):
        if sep in ref:
            name, _, version = ref.partition(sep)
            if not name or not version:
                break
            return name, int(version) if version.isdigit() else version
    else:
        return ref, None
    raise InvalidInputError(
        f"'{ref}' is not a reference; write NAME, NAME:VERSION or NAME@ALIAS.", ref=ref
    )


_DATASET_REF = re.compile(r"^[\w.-]+(:\w+)?$")


def check_dataset_ref(ref: str) -> str:
    """``ref`` (NAME or NAME:VERSION, surrounding blanks removed) or InvalidInputError.

    CI systems pass the dataset of a data-arrival event through; anything else (options,
    spaces, shell text) is refused here, not handed on.
    """
    text = ref.strip()
    if not _DATASET_REF.match(text) or text.startswith(("-", ".")):
        raise InvalidInputError(
            f"{text[:80]!r} is not a dataset version: write NAME or NAME:VERSION (letters, "
            "digits, '_', '.' and '-'; the version a number or a tag such as 'published').",
            ref=text[:80],
        )
    return text


def _declared(project: ProjectFile | None, section: str) -> dict[str, Any]:
    if project is None:
        return {}
    value = project.data.get(section)
    return value if isinstance(value, dict) else {}


def run_data_stage(
    ws: CiWorkspace,
    datasets: Sequence[str],
    *,
    project: ProjectFile | None = None,
    publish: bool | None = None,
) -> StageReport:
    """Validate dataset versions against their declared checks; publish them when asked.

    Each check of each suite becomes one test case; a warning-level check that fails passes
    with its message. ``publish`` (default: the dataset's ``publish:`` in keel.yaml) runs the
    publish gate, with its policies, as a test case of its own.
    """
    report = StageReport("data")
    declared = _declared(project, "datasets")
    suites = _declared(project, "checks")
    refs = [check_dataset_ref(d) for d in datasets if d.strip()] or sorted(declared)
    if not refs:
        raise InvalidInputError(
            "Name the dataset versions to check (NAME or NAME:VERSION), or declare datasets "
            "with checks in keel.yaml."
        )
    for ref in refs:
        name, version = parse_ref(ref)
        entry = declared.get(name) or {}
        with report.guard("version exists", group=name) as note:
            found = ws.datasets.version(name, version)
            note(f"{name} v{found.version}, {found.row_count} rows")
        if not report.checks[-1].ok:
            continue
        checks = entry.get("checks") or []
        if not checks:
            report.skip("checks", "no checks are declared for it in keel.yaml", group=name)
        for check_name in checks:
            spec = suites.get(check_name) or {}
            started = time.perf_counter()
            try:
                stored = ws.datasets.validate(
                    name,
                    spec.get("suite") or {},
                    version=found.version,
                    reference=spec.get("reference"),
                )
            except Exception as exc:  # a suite that cannot run fails the stage
                report.add(
                    check_name,
                    False,
                    f"{type(exc).__name__}: {exc}",
                    group=name,
                    seconds=time.perf_counter() - started,
                )
                continue
            for result in stored.result.get("checks", []):
                level = result.get("level", "error")
                ok = bool(result.get("passed")) or level == "warning"
                message = str(result.get("message", ""))
                if not result.get("passed") and level == "warning":
                    message = f"warning: {message}"
                report.add(
                    f"{check_name}.{result.get('name') or result.get('kind')}",
                    ok,
                    message,
                    group=name,
                    details={"report": stored.id, "observed": result.get("observed")},
                )
        if publish if publish is not None else bool(entry.get("publish")):
            with report.guard("publish gate", group=name) as note:
                published = ws.datasets.publish(name, found.version)
                note(f"published v{published.version}")
    return report


def run_train_stage(
    ws: CiWorkspace,
    pipeline: str,
    *,
    root: Path | None = None,
    params: Mapping[str, Any] | None = None,
    cause: Mapping[str, Any] | None = None,
) -> StageReport:
    """Run a pipeline of keel.yaml (cached steps are reused); one test case per step."""
    report = StageReport("train")
    with report.guard("pipeline loads", group=pipeline) as note:
        target = ws.pipelines.load(pipeline, root)
        note(f"{len(target.steps)} steps")
    if not report.checks[-1].ok:
        return report
    started = time.perf_counter()
    try:
        result = ws.pipelines.run(target, params=params, trigger="ci", cause=cause)
    except Exception as exc:  # the run itself could not start or finish
        report.add(
            "run",
            False,
            f"{type(exc).__name__}: {exc}",
            group=pipeline,
            seconds=time.perf_counter() - started,
        )
        return report
    for step in result.run.steps:
        status = step.status.value
        ok = status in ("COMPLETED", "CACHED")
        message = (
            "reused from the cache"
            if status == "CACHED"
            else (step.error or "" if not ok else f"ran in {step.duration or 0:.2f} s")
        )
        report.add(
            step.name,
            ok,
            message if ok else f"{status}: {message}",
            group=pipeline,
            seconds=step.duration or 0.0,
            details={"status": status},
        )
    report.add(
        "run",
        result.ok,
        f"run {result.id} {result.status.value}; cached: {', '.join(result.cached) or 'none'}",
        group=pipeline,
        details={"run_id": result.id},
        seconds=time.perf_counter() - started,
    )
    return report


def _model_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if any(part in _SKIP for part in path.relative_to(root).parts):
            continue
        if path.suffix.lower() in _MODEL_FILES and path.is_file():
            found.append(path)
    return found


def _npy_without_objects(path: Path) -> bool:
    """True when ``path`` is a .npy file whose dtype holds no Python objects (so no pickle).

    Anything unreadable, or an object array (stored as a pickle), is False: it gets scanned.
    """
    try:
        import numpy as np
    except ImportError:
        return False
    try:
        with path.open("rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            if major == 1:
                _, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif major in (2, 3):
                _, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return False
    except (OSError, ValueError):
        return False
    return not dtype.hasobject


def _installed() -> dict[str, str]:
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and dist.version:
            out[str(name).lower()] = str(dist.version)
    return out


def _pins(requirements: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise InvalidInputError(
                f"{requirements}: '{line}' is not pinned; pip-audit here audits exact pins "
                "(name==version). Use `pip freeze` output or pin it.",
                file=str(requirements),
            )
        pins[name.strip().split("[", 1)[0]] = version.strip().split(";", 1)[0].strip()
    return pins


def run_security_stage(
    root: Path,
    *,
    allowlist: Path | None = None,
    pip_audit: bool = True,
    requirements: Path | None = None,
    scan_models: bool = True,
    ws: CiWorkspace | None = None,
    models: Sequence[str] = (),
) -> StageReport:
    """Secrets scan of ``root``, pip-audit, model-file scans, and registry signature checks."""
    from keel.governance import audit_packages, scan_file

    report = StageReport("security")
    started = time.perf_counter()
    findings, scanned = scan_secrets(root, allowlist=allowlist)
    elapsed = time.perf_counter() - started
    for finding in findings:
        report.add(
            f"{finding.file}:{finding.line}",
            False,
            f"probable secret ({finding.rule}) {finding.preview}; remove it and rotate it, or "
            f"allow it with 'fingerprint:{finding.fingerprint}' in .keel-secrets-allow",
            group="secrets",
            details=finding.to_dict(),
        )
    report.add(
        "secrets scan",
        not findings,
        f"{scanned} files scanned, {len(findings)} probable secrets",
        group="secrets",
        seconds=elapsed,
    )
    if pip_audit:
        with report.guard("pip-audit", group="dependencies") as note:
            packages = _pins(requirements) if requirements is not None else _installed()
            audit = audit_packages(packages)
            for item in audit.vulnerable:
                ids = ", ".join(v.get("id", "?") for v in item.get("vulns", []))
                report.add(
                    f"{item.get('name')}=={item.get('version')}",
                    False,
                    f"known vulnerabilities: {ids}; upgrade to a fixed version",
                    group="dependencies",
                    details=dict(item),
                )
            for item in audit.skipped:
                report.skip(
                    str(item.get("name")), str(item.get("reason", "")), group="dependencies"
                )
            if audit.audited == 0:
                reason = audit.skipped[0].get("reason", "") if audit.skipped else ""
                raise InvalidInputError(
                    f"pip-audit audited none of the {len(packages)} packages ({reason[:200]}); "
                    "check that the vulnerability service is reachable, or run with "
                    "--no-pip-audit on purpose",
                )
            note(
                f"{audit.audited} packages audited, {len(audit.vulnerable)} vulnerable, "
                f"{len(audit.skipped)} could not be audited"
            )
    else:
        report.skip("pip-audit", "disabled (--no-pip-audit)", group="dependencies")
    if scan_models:
        files = _model_files(root)
        if not files:
            report.skip(
                "model files",
                f"no model files ({', '.join(_MODEL_FILES)}) in the repository",
                group="models",
            )
        for path in files:
            with report.guard(path.relative_to(root).as_posix(), group="models") as note:
                if path.suffix.lower() == ".npy" and _npy_without_objects(path):
                    note("a NumPy array without Python objects: nothing to unpickle")
                    continue
                scan = scan_file(path)
                if not scan.is_clean:
                    raise InvalidInputError(
                        f"rejected by the scanners ({len(scan.findings)} findings, exit codes "
                        f"{scan.exit_codes}); store the model in a safe format instead",
                    )
                note("clean")
    for ref in models:
        if ws is None:
            raise InvalidInputError("Verifying registry signatures needs a Keel store.")
        name, version = parse_ref(ref)
        with report.guard(f"{ref} signature", group="registry") as note:
            info = ws.supplychain.verify(name, version)
            note(f"signed by {getattr(info, 'key_id', '?')}")
    return report
