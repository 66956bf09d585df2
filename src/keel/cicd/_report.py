"""Stage reports: one check per test case, written as JUnit XML and as Markdown for a PR."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from keel import clock

__all__ = ["Check", "StageReport", "write_atomic", "xml_text"]

Outcome = Literal["passed", "failed", "error", "skipped"]
_ICON = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️"}


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a stage: its name, outcome, a message (why it failed) and its evidence."""

    name: str
    outcome: Outcome
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    group: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "outcome": self.outcome,
            "message": self.message,
            "details": self.details,
            "seconds": round(self.seconds, 6),
        }


@dataclass(slots=True)
class StageReport:
    """The checks of one ``keel ci`` stage, in the order they ran."""

    stage: str
    checks: list[Check] = field(default_factory=list)
    started_at: datetime = field(default_factory=clock.now)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when every check passed (or was skipped), 1 otherwise."""
        return 0 if self.passed else 1

    def add(
        self,
        name: str,
        ok: bool,
        message: str = "",
        *,
        group: str = "",
        details: dict[str, Any] | None = None,
        seconds: float = 0.0,
    ) -> Check:
        check = Check(
            name,
            "passed" if ok else "failed",
            "" if ok and not message else message,
            dict(details or {}),
            seconds,
            group,
        )
        self.checks.append(check)
        return check

    def skip(self, name: str, reason: str, *, group: str = "") -> Check:
        check = Check(name, "skipped", reason, group=group)
        self.checks.append(check)
        return check

    @contextmanager
    def guard(self, name: str, *, group: str = "") -> Iterator[Callable[[str], None]]:
        """Run a block as one check: an exception in it is a failure with its message.

        The yielded function records extra detail text for a passing check.
        """
        import time

        started = time.perf_counter()
        note: list[str] = []
        try:
            yield note.append
        except Exception as exc:  # a broken check must fail the stage, never crash it
            self.checks.append(
                Check(
                    name,
                    "error",
                    f"{type(exc).__name__}: {str(exc)[:1500]}",
                    seconds=time.perf_counter() - started,
                    group=group,
                )
            )
            return
        self.checks.append(
            Check(
                name,
                "passed",
                "; ".join(note),
                seconds=time.perf_counter() - started,
                group=group,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "passed": self.passed,
            "started_at": self.started_at.isoformat(),
            "checks": [c.to_dict() for c in self.checks],
        }

    def junit_xml(self) -> str:
        """A JUnit XML document: one ``testsuite`` for the stage, one ``testcase`` per check."""
        import xml.etree.ElementTree as ET

        def count(outcome: str) -> str:
            return str(sum(1 for c in self.checks if c.outcome == outcome))

        total = f"{sum(c.seconds for c in self.checks):.3f}"
        suites = ET.Element(
            "testsuites",
            name=f"keel ci {self.stage}",
            tests=str(len(self.checks)),
            failures=count("failed"),
            errors=count("error"),
            skipped=count("skipped"),
            time=total,
        )
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"keel.ci.{self.stage}",
            tests=str(len(self.checks)),
            failures=count("failed"),
            errors=count("error"),
            skipped=count("skipped"),
            time=total,
            timestamp=self.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        for check in self.checks:
            classname = xml_text(
                f"keel.ci.{self.stage}" + (f".{check.group}" if check.group else "")
            )
            message = xml_text(check.message)
            case = ET.SubElement(
                suite,
                "testcase",
                name=xml_text(check.name),
                classname=classname,
                time=f"{check.seconds:.3f}",
            )
            if check.outcome in ("failed", "error"):
                tag = "failure" if check.outcome == "failed" else "error"
                element = ET.SubElement(case, tag, message=message[:500], type=tag)
                element.text = message
            elif check.outcome == "skipped":
                ET.SubElement(case, "skipped", message=message[:500])
            elif message:
                out = ET.SubElement(case, "system-out")
                out.text = message
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")

    def markdown(self) -> str:
        """A summary for a pull-request comment: verdict, counts, and a row per check."""
        failed = [c for c in self.checks if not c.ok]
        verdict = "passed" if self.passed else f"failed ({len(failed)} of {len(self.checks)})"
        lines = [
            f"### {_ICON['passed'] if self.passed else _ICON['failed']} keel ci {self.stage}: "
            f"{verdict}",
            "",
            "| | check | result |",
            "|---|---|---|",
        ]
        for check in self.checks:
            text = (check.message or check.outcome).replace("|", "\\|").replace("\n", " ")
            name = f"{check.group}: {check.name}" if check.group else check.name
            lines.append(f"| {_ICON[check.outcome]} | `{name}` | {text[:300]} |")
        return "\n".join(lines) + "\n"

    def write(self, *, junit: Path | None = None, summary: Path | None = None) -> None:
        """Write the JUnit XML and the Markdown summary (each atomically) where asked."""
        if junit is not None:
            write_atomic(junit, self.junit_xml())
        if summary is not None:
            write_atomic(summary, self.markdown())


_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` without terminal escape sequences and characters XML 1.0 cannot hold."""
    return _XML_ILLEGAL.sub("", _ANSI.sub("", text))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
