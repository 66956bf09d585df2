"""Stage reports: JUnit XML valid against the shipped XSD, Markdown for a PR, exit codes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import pytest

from keel.cicd import StageReport
from tests.cicd import _xsd

XSD = Path(str(files("keel.cicd").joinpath("schemas/junit.xsd")))


def _report() -> StageReport:
    report = StageReport("model")
    report.add("metric auc", True, "auc=0.91 (min 0.8)", group="churn:3")
    report.add("no regression auc", False, "0.80 vs 0.90 | worse <by> 0.10 & more", group="churn:3")
    report.skip("slices", "none declared", group="churn:3")
    with report.guard("smoke prediction", group="churn:3"):
        raise RuntimeError("the model exploded")
    with report.guard("latency", group="churn:3") as note:
        note("p95 1.2 ms")
    return report


def test_junit_xml_is_valid_against_the_shipped_xsd_and_counts_outcomes() -> None:
    report = _report()
    xml = report.junit_xml()
    assert _xsd.validate(xml, XSD) == []
    root = ET.fromstring(xml)  # noqa: S314 (generated here)
    suite = root.find("testsuite")
    assert suite is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "5", "1", "1", "1",
    )  # fmt: skip
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "metric auc", "no regression auc", "slices", "smoke prediction", "latency",
    ]  # fmt: skip
    assert cases[0].get("classname") == "keel.ci.model.churn:3"
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("message") == "0.80 vs 0.90 | worse <by> 0.10 & more"
    error = cases[3].find("error")
    assert error is not None and "RuntimeError: the model exploded" in (error.text or "")
    assert report.exit_code == 1 and not report.passed


def test_the_validator_catches_a_broken_document() -> None:
    broken = (
        '<testsuites name="x" tests="1" failures="0" errors="0" skipped="0" time="-1">'
        '<testsuite name="s" tests="one" failures="0" errors="0" skipped="0" time="0" '
        'timestamp="yesterday"><testcase name="a" time="0"><failure message="m" type="f"/>'
        "<error message='m' type='e'/></testcase><bogus/></testsuite></testsuites>"
    )
    problems = _xsd.validate(broken, XSD)
    text = "\n".join(problems)
    assert "time='-1'" in text and "tests='one'" in text and "timestamp='yesterday'" in text
    assert "missing required attribute 'classname'" in text
    assert "<testcase> has 2 children" in text and "<bogus> is not allowed" in text


def test_with_lxml_the_full_xsd_validator_agrees() -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(etree.fromstring(_report().junit_xml().encode()))


def test_markdown_summary_and_files_are_written(tmp_path: Path) -> None:
    report = _report()
    text = report.markdown()
    assert text.startswith("### ❌ keel ci model: failed (2 of 5)")
    assert "| ❌ | `churn:3: no regression auc` | 0.80 vs 0.90 \\| worse" in text
    assert "| ⏭️ | `churn:3: slices` | none declared |" in text
    report.write(junit=tmp_path / "r" / "model.xml", summary=tmp_path / "r" / "model.md")
    assert (tmp_path / "r" / "model.xml").read_text() == report.junit_xml()
    assert (tmp_path / "r" / "model.md").read_text() == text


def test_an_all_passing_stage_exits_zero() -> None:
    report = StageReport("data")
    report.add("not_null", True)
    report.skip("drift", "no reference")
    assert report.passed and report.exit_code == 0
    assert report.markdown().startswith("### ✅ keel ci data: passed")
    assert _xsd.validate(report.junit_xml(), XSD) == []


def test_terminal_colours_and_control_characters_never_break_the_xml() -> None:
    report = StageReport("model")
    report.add(
        "\x1b[1mbold\x1b[0m name\x00", False, "\x1b[31mred\x1b[0m failure\x07\x0b\x1f ok\ud800"
    )
    report.skip("s\x01kipped", "\x1b]8;;http://x\x07link\x1b]8;;\x07 reason")
    xml = report.junit_xml()
    root = ET.fromstring(xml.encode())  # noqa: S314 (raises on an illegal character)
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("name") == "bold name"
    failure = case.find("failure")
    assert failure is not None and failure.text == "red failure ok"
    skipped = root.find("testsuite/testcase[2]/skipped")
    assert skipped is not None and skipped.get("message") == "link reason"
    assert _xsd.validate(xml, XSD) == []
