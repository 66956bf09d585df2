"""Model supply chain, part 2: scanning pickle and joblib files with modelscan and fickling.

Both scanners run as separate processes (the control plane never unpickles). A file is
``clean`` only when both exit 0, modelscan reports at least one file scanned with no issue,
and fickling rates it ``LIKELY_SAFE``. Anything else — an issue, a non-zero exit, zero files
scanned (modelscan cannot parse joblib files and says "No issues found!" with exit 3), a
timeout, unreadable output — is ``rejected``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import InvalidInputError, MissingDependencyError

__all__ = ["ScanReport", "scan_file"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".dill", ".sav")


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What the scanners said about one file."""

    path: str
    verdict: str  # "clean" or "rejected"
    files_scanned: int
    findings: tuple[dict[str, Any], ...]
    exit_codes: dict[str, int]

    @property
    def is_clean(self) -> bool:
        return self.verdict == "clean"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict,
            "files_scanned": self.files_scanned,
            "findings": list(self.findings),
            "exit_codes": dict(self.exit_codes),
        }


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            package, extra="supplychain", purpose="Scanning pickle and joblib model files"
        )


def _run(args: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    return done.returncode, (done.stderr or done.stdout)[-2000:]


def _modelscan(path: Path, workdir: Path, timeout: float) -> tuple[int, int, list[dict[str, Any]]]:
    out = workdir / "modelscan.json"
    code, text = _run(
        [
            sys.executable,
            "-m",
            "modelscan.cli",
            "scan",
            "-p",
            str(path),
            "-r",
            "json",
            "-o",
            str(out),
        ],
        timeout,
    )
    findings: list[dict[str, Any]] = []
    scanned = 0
    try:
        report = json.loads(out.read_text(encoding="utf-8"))
        scanned = int(report.get("summary", {}).get("scanned", {}).get("total_scanned", 0))
        for issue in report.get("issues", []):
            findings.append(
                {
                    "tool": "modelscan",
                    "severity": str(issue.get("severity", "UNKNOWN")),
                    "detail": str(issue.get("description", ""))[:500],
                }
            )
        for error in report.get("errors", []):
            findings.append({"tool": "modelscan", "severity": "ERROR", "detail": str(error)[:500]})
    except (OSError, ValueError):
        findings.append({"tool": "modelscan", "severity": "ERROR", "detail": text[:500]})
    if code != 0 and not findings:
        findings.append(
            {"tool": "modelscan", "severity": "ERROR", "detail": f"exit {code}: {text[:300]}"}
        )
    if scanned == 0:
        findings.append({"tool": "modelscan", "severity": "ERROR", "detail": "zero files scanned"})
    return code, scanned, findings


def _fickling(path: Path, workdir: Path, timeout: float) -> tuple[int, list[dict[str, Any]]]:
    out = workdir / "fickling.json"
    code, text = _run(
        [sys.executable, "-m", "fickling", "--check-safety", "--json-output", str(out), str(path)],
        timeout,
    )
    findings: list[dict[str, Any]] = []
    try:
        report = json.loads(out.read_text(encoding="utf-8"))
        severity = str(report.get("severity", "UNKNOWN"))
        if severity != "LIKELY_SAFE" or code != 0:
            findings.append(
                {
                    "tool": "fickling",
                    "severity": severity,
                    "detail": str(report.get("analysis", ""))[:500],
                }
            )
    except (OSError, ValueError):
        findings.append(
            {"tool": "fickling", "severity": "ERROR", "detail": f"exit {code}: {text[:300]}"}
        )
    return code, findings


def scan_file(path: str | Path, *, timeout: float = 300.0) -> ScanReport:
    """Scan one pickle or joblib file with modelscan and fickling; reject on any doubt."""
    target = Path(path)
    if not target.is_file():
        raise InvalidInputError(f"There is no file to scan at {target}.", path=str(target))
    _require("modelscan", "modelscan")
    _require("fickling", "fickling")
    _require("typing_extensions", "typing_extensions")
    with tempfile.TemporaryDirectory(prefix="keel-scan-") as scratch:
        workdir = Path(scratch)
        ms_code, scanned, ms_findings = _modelscan(target, workdir, timeout)
        fk_code, fk_findings = _fickling(target, workdir, timeout)
    findings = tuple(ms_findings + fk_findings)
    clean = ms_code == 0 and fk_code == 0 and scanned > 0 and not findings
    return ScanReport(
        path=str(target),
        verdict="clean" if clean else "rejected",
        files_scanned=scanned,
        findings=findings,
        exit_codes={"modelscan": ms_code, "fickling": fk_code},
    )
