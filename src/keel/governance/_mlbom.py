"""Model supply chain, part 3: a CycloneDX 1.6 ML-BOM per model version, and pip-audit.

:func:`build_ml_bom` is pure: it turns a version's facts (name, version, digest, format,
metrics, signature, the packages of the run that made it) into a CycloneDX 1.6 document with
a ``machine-learning-model`` component and its model card; :func:`validate_bom` checks it
against the 1.6 JSON schema that cyclonedx-python-lib bundles. :func:`audit_packages` runs
pip-audit on a recorded environment (name → version pins) as a separate process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import IntegrityError, InvalidInputError, MissingDependencyError

__all__ = ["EnvironmentAudit", "audit_packages", "build_ml_bom", "validate_bom"]

_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_\-]{0,99}$")
MAX_PACKAGES = 20_000


def _purl(name: str, version: str) -> str:
    return f"pkg:pypi/{name.lower().replace('_', '-')}@{version}"


def build_ml_bom(
    *,
    project: str,
    model: str,
    version: int,
    version_id: str,
    digest: str,
    fmt: str,
    created_at: str,
    metrics: Mapping[str, Any] | None = None,
    signature: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    packages: Mapping[str, str] | None = None,
    python: str | None = None,
    signed_by: str | None = None,
    timestamp: str,
    tool_version: str = "0",
) -> dict[str, Any]:
    """A CycloneDX 1.6 ML-BOM of one model version (a JSON-ready mapping)."""
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64:
        raise InvalidInputError(f"Expected a sha256:<hex> digest, got {digest[:80]!r}.")
    ref = f"model:{project}/{model}@{version}"
    properties = [
        {"name": "keel:format", "value": fmt},
        {"name": "keel:model_version_id", "value": version_id},
        {"name": "keel:created_at", "value": created_at},
    ]
    if run_id:
        properties.append({"name": "keel:run_id", "value": run_id})
    if signed_by:
        properties.append({"name": "keel:signature_key_id", "value": signed_by})
    if python:
        properties.append({"name": "keel:python", "value": python})
    card: dict[str, Any] = {
        "modelParameters": {
            "task": "classification-or-regression",
            "inputs": [{"format": _io_format(signature, "inputs")}],
            "outputs": [{"format": _io_format(signature, "outputs")}],
        },
        "quantitativeAnalysis": {
            "performanceMetrics": [
                {"type": str(key), "value": str(value)}
                for key, value in sorted((metrics or {}).items())
            ]
        },
    }
    components = []
    deps = []
    for name, pin in sorted((packages or {}).items())[:MAX_PACKAGES]:
        bom_ref = _purl(name, pin)
        components.append(
            {"type": "library", "bom-ref": bom_ref, "name": name, "version": pin, "purl": bom_ref}
        )
        deps.append(bom_ref)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ref + digest)}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [{"type": "application", "name": "keel", "version": tool_version}]
            },
            "component": {
                "type": "machine-learning-model",
                "bom-ref": ref,
                "name": model,
                "version": str(version),
                "group": project,
                "hashes": [{"alg": "SHA-256", "content": hex_digest}],
                "properties": properties,
                "modelCard": card,
            },
        },
        "components": components,
        "dependencies": [{"ref": ref, "dependsOn": deps}],
    }


def _io_format(signature: Mapping[str, Any] | None, key: str) -> str:
    items = (signature or {}).get(key) or []
    names = [str(i.get("name")) for i in items if isinstance(i, Mapping) and i.get("name")]
    return ", ".join(names)[:500] or "unspecified"


def validate_bom(document: Mapping[str, Any] | str) -> None:
    """Raise IntegrityError unless ``document`` is valid CycloneDX 1.6 JSON (strict schema)."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as exc:
        raise MissingDependencyError(
            "cyclonedx-python-lib", extra="supplychain", purpose="Validating ML-BOMs"
        ) from exc
    text = document if isinstance(document, str) else json.dumps(document)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise IntegrityError(
            f"The ML-BOM is not valid CycloneDX 1.6: {str(error)[:600]}",
        )


@dataclass(frozen=True, slots=True)
class EnvironmentAudit:
    """pip-audit's verdict on a recorded environment."""

    audited: int
    vulnerable: tuple[dict[str, Any], ...]
    skipped: tuple[dict[str, str], ...]
    exit_code: int

    def ok(self, *, strict: bool) -> bool:
        """No known vulnerability (and, when strict, every package audited)."""
        return not self.vulnerable and not (strict and self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "audited": self.audited,
            "vulnerable": list(self.vulnerable),
            "skipped": list(self.skipped),
            "exit_code": self.exit_code,
        }


def parse_pip_audit(report: Mapping[str, Any], exit_code: int) -> EnvironmentAudit:
    """Read pip-audit's JSON output (``--format json``)."""
    vulnerable: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    audited = 0
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            skipped.append({"name": str(dep.get("name")), "reason": str(dep["skip_reason"])[:300]})
            continue
        audited += 1
        vulns = dep.get("vulns") or []
        if vulns:
            vulnerable.append(
                {
                    "name": dep.get("name"),
                    "version": dep.get("version"),
                    "vulns": [
                        {"id": v.get("id"), "fix_versions": v.get("fix_versions", [])}
                        for v in vulns
                    ],
                }
            )
    return EnvironmentAudit(
        audited=audited, vulnerable=tuple(vulnerable), skipped=tuple(skipped), exit_code=exit_code
    )


def audit_packages(packages: Mapping[str, str], *, timeout: float = 600.0) -> EnvironmentAudit:
    """Run pip-audit over exact pins ``name==version`` (no resolution, no installation)."""
    if not packages:
        raise InvalidInputError(
            "The environment records no packages to audit. Runs record them when started with "
            "capture_env=True."
        )
    lines = []
    for name, pin in sorted(packages.items()):
        if not _PACKAGE.match(name) or not _VERSION.match(str(pin)):
            raise InvalidInputError(f"Refusing the package pin {name!r}=={str(pin)[:40]!r}.")
        lines.append(f"{name}=={pin}")
    with tempfile.TemporaryDirectory(prefix="keel-audit-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        out = Path(scratch) / "audit.json"
        requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args = [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            str(requirements),
            "--no-deps",
            "--disable-pip",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "-o",
            str(out),
        ]
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise IntegrityError(f"pip-audit did not finish within {timeout:.0f} s.") from exc
        if "No module named pip_audit" in done.stderr:
            raise MissingDependencyError(
                "pip-audit", extra="supplychain", purpose="Auditing model environments"
            )
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"pip-audit failed (exit {done.returncode}): {done.stderr[-500:]}"
            ) from exc
    return parse_pip_audit(report, done.returncode)
