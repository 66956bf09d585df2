"""A secrets scanner for a repository: known key formats, high-entropy strings, an allowlist.

Findings never carry the secret: only its rule, file, line, a short redacted preview and a
fingerprint (the first 16 hex digits of its SHA-256), which is what an allowlist entry names.

The allowlist file (default ``.keel-secrets-allow`` at the root) holds one entry per line:
``fingerprint:<16 hex>``, a path glob (``tests/fixtures/*``), or ``<glob>:<rule>``. A line of
source that contains ``keel: allow-secret`` is skipped too. ``#`` starts a comment.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RULES", "SecretFinding", "entropy", "scan_secrets", "scan_text"]

#: rule id -> pattern; group "s" (when present) is the secret itself.
RULES: dict[str, re.Pattern[str]] = {
    "aws-access-key-id": re.compile(r"\b(?P<s>(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16})\b"),
    "aws-secret-access-key": re.compile(
        r"(?i)aws.{0,20}(?:secret|private).{0,20}[=:]\s*['\"]?(?P<s>[A-Za-z0-9/+]{40})\b"
    ),
    "github-token": re.compile(r"\b(?P<s>gh[pousr]_[A-Za-z0-9]{36,255})\b"),
    "github-fine-grained-token": re.compile(r"\b(?P<s>github_pat_[A-Za-z0-9_]{60,255})\b"),
    "gitlab-token": re.compile(r"\b(?P<s>glpat-[A-Za-z0-9_-]{20,})\b"),
    "slack-token": re.compile(r"\b(?P<s>xox[abposr]-[A-Za-z0-9-]{10,})\b"),
    "stripe-secret-key": re.compile(r"\b(?P<s>[sr]k_live_[A-Za-z0-9]{20,})\b"),
    "google-api-key": re.compile(r"\b(?P<s>AIza[0-9A-Za-z_-]{35})\b"),
    "openai-api-key": re.compile(r"\b(?P<s>sk-(?:proj-)?[A-Za-z0-9_-]{32,})\b"),
    "keel-api-token": re.compile(r"\b(?P<s>keel_[0-9A-HJKMNP-TV-Z]{26}_[A-Za-z0-9_-]{43})"),
    "private-key": re.compile(
        r"(?P<s>-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----)"
    ),
    "jwt": re.compile(
        r"\b(?P<s>eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})\b"
    ),
    "url-credentials": re.compile(
        r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]{1,64}:(?P<s>[^\s:/@'\"$%{}<>]{6,128})@[\w.-]+"
    ),
    "password-assignment": re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)"
        r"\b\s*[:=]\s*['\"](?P<s>[^'\"\s]{8,})['\"]"
    ),
}
_CANDIDATE = re.compile(r"['\"=:\s](?P<s>[A-Za-z0-9+/_\-]{32,}={0,2})(?=['\"\s,;)]|$)")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DIGEST_PREFIX = re.compile(r"(?i)(?:sha1|sha224|sha256|sha384|sha512|md5|blake2b)[=:\-]$")
_SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".keel",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".tox",
    "dist",
    "build",
}
_MAX_BYTES = 1 << 20
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x+|\*+|changeme|example|placeholder|dummy|redacted|<.*>|\$\{.*\}|\{\{.*\}\})$"
)
ALLOW_MARK = "keel: allow-secret"


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A probable secret: which rule, where, a redacted preview and a fingerprint."""

    rule: str
    file: str
    line: int
    preview: str
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "file": self.file,
            "line": self.line,
            "preview": self.preview,
            "fingerprint": self.fingerprint,
        }


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _preview(secret: str) -> str:
    return secret[:4] + "…" + f"({len(secret)} chars)"


def _high_entropy(value: str) -> bool:
    """Random-looking: long, mixed classes, and > 4.3 bits/char (hex digests are excluded)."""
    if _HEX.match(value) or value.startswith(("sha256", "sha512")):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes == 3 and entropy(value) > 4.3


def scan_text(text: str, *, file: str = "<text>") -> list[SecretFinding]:
    """Every probable secret in ``text`` (skipping lines marked ``keel: allow-secret``)."""
    findings: list[SecretFinding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if ALLOW_MARK in line or len(line) > 10_000:
            continue
        seen: set[str] = set()
        for rule, pattern in RULES.items():
            for match in pattern.finditer(line):
                secret = match.group("s")
                if secret in seen or _PLACEHOLDER.match(secret) or secret.startswith("secret://"):
                    continue
                if rule in ("password-assignment", "url-credentials") and entropy(secret) < 3.0:
                    continue
                seen.add(secret)
                findings.append(
                    SecretFinding(rule, file, number, _preview(secret), _fingerprint(secret))
                )
        for match in _CANDIDATE.finditer(line):
            secret = match.group("s")
            if any(secret in s or s in secret for s in seen) or not _high_entropy(secret):
                continue
            if _DIGEST_PREFIX.search(line[: match.start("s")]):
                continue  # a labelled digest (wheel RECORD, SRI integrity), not a credential
            seen.add(secret)
            findings.append(
                SecretFinding(
                    "high-entropy-string", file, number, _preview(secret), _fingerprint(secret)
                )
            )
    return findings


@dataclass(frozen=True, slots=True)
class _Allow:
    fingerprints: frozenset[str]
    globs: tuple[tuple[str, str | None], ...]

    def allows(self, finding: SecretFinding) -> bool:
        if finding.fingerprint in self.fingerprints:
            return True
        return any(
            fnmatch.fnmatch(finding.file, glob) and (rule is None or rule == finding.rule)
            for glob, rule in self.globs
        )


def _read_allowlist(path: Path | None) -> _Allow:
    if path is None or not path.is_file():
        return _Allow(frozenset(), ())
    prints: set[str] = set()
    globs: list[tuple[str, str | None]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        if entry.startswith("fingerprint:"):
            prints.add(entry.removeprefix("fingerprint:").strip())
        elif ":" in entry and entry.rsplit(":", 1)[1] in {*RULES, "high-entropy-string"}:
            glob, rule = entry.rsplit(":", 1)
            globs.append((glob, rule))
        else:
            globs.append((entry, None))
    return _Allow(frozenset(prints), tuple(globs))


def _git_files(root: Path) -> list[Path] | None:
    """The files git would commit (tracked, and untracked but not ignored), or None."""
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    names = sorted({n for n in done.stdout.decode("utf-8", "replace").split("\0") if n})
    return [root / n for n in names if not _SKIP_DIRS.intersection(Path(n).parts)]


def _files(root: Path) -> Iterator[Path]:
    listed = _git_files(root)
    if listed is not None:
        yield from (p for p in listed if p.is_file())
        return
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            yield Path(folder) / name


def scan_secrets(
    root: str | Path, *, allowlist: str | Path | None = None
) -> tuple[list[SecretFinding], int]:
    """Scan every text file under ``root``; (findings not allowed, number of files scanned).

    In a git work tree the files are those git would commit (tracked, or untracked and not
    ignored); elsewhere every file, skipping VCS folders, virtualenvs and caches.
    """
    base = Path(root)
    allow = _read_allowlist(
        Path(allowlist) if allowlist is not None else base / ".keel-secrets-allow"
    )
    findings: list[SecretFinding] = []
    scanned = 0
    for path in _files(base):
        try:
            if path.is_symlink() or path.stat().st_size > _MAX_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue  # binary
        scanned += 1
        rel = path.relative_to(base).as_posix()
        text = data.decode("utf-8", errors="replace")
        findings.extend(f for f in scan_text(text, file=rel) if not allow.allows(f))
    return findings, scanned
