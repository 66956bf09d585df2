"""``keel policy|approvals|supplychain`` and ``keel audit export --signed``: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEEL = [sys.executable, "-m", "keel.cli"]
EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"


def keel(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    result = subprocess.run([*KEEL, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gov") / "home"
    keel(path, "quickstart", "--json")
    return path


def test_policy_test_passes_the_example_fixtures(tmp_path: Path) -> None:
    out = keel(
        tmp_path,
        "policy",
        "test",
        str(EXAMPLES / "production.yaml"),
        "--fixtures",
        str(EXAMPLES / "fixtures"),
        "--json",
    )
    report = json.loads(out.stdout)
    assert report["passed"] is True
    outcomes = {r["name"]: r["allowed"] for r in report["results"]}
    assert outcomes["approved model in the UAE passes"] is True
    assert outcomes["weak, biased, restricted, abroad and unapproved"] is False


def test_policy_test_fails_with_exit_1_on_a_wrong_expectation(tmp_path: Path) -> None:
    fixture = tmp_path / "wrong.yaml"
    fixture.write_text(
        "name: wrong\ngate: alias.promote\nexpect: allow\n"
        "context: {alias: production, model: {metrics: {auc: 0.1}}}\n"
    )
    result = keel(
        tmp_path,
        "policy",
        "test",
        str(EXAMPLES / "production.yaml"),
        "-f",
        str(fixture),
        check=False,
    )
    assert result.returncode == 1 and "FAIL" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nrules: [{id: a, require: {path: p, op: '~=', value: 1}}]\n")
    bad = keel(tmp_path, "policy", "test", str(broken), "-f", str(fixture), check=False)
    assert bad.returncode == 2 and "op is one of" in bad.stderr


def test_apply_list_and_decisions(home: Path) -> None:
    applied = json.loads(
        keel(home, "policy", "apply", str(EXAMPLES / "production.yaml"), "--json").stdout
    )
    assert applied[0]["name"] == "production" and applied[0]["version"] == 1
    listed = json.loads(keel(home, "policy", "list", "--json").stdout)
    assert [p["name"] for p in listed] == ["production"]
    shown = json.loads(keel(home, "policy", "show", "production", "--json").stdout)
    assert "second-approver" in shown["source"]
    assert json.loads(keel(home, "approvals", "list", "--json").stdout) == []
    assert json.loads(keel(home, "policy", "decisions", "--json").stdout) == []


def test_supplychain_verify_and_bom(home: Path, tmp_path: Path) -> None:
    [model] = json.loads(keel(home, "models", "list", "--json").stdout)
    ref = f"{model['name']}@champion"
    verified = json.loads(keel(home, "supplychain", "verify", ref, "--json").stdout)
    assert verified["ok"] is True and verified["algorithm"] == "ed25519"
    out = tmp_path / "bom.json"
    keel(home, "supplychain", "bom", ref, "-o", str(out))
    bom = json.loads(out.read_text())
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["type"] == "machine-learning-model"


def test_supplychain_scan_exits_1_for_a_quarantined_file(home: Path, tmp_path: Path) -> None:
    payload = tmp_path / "evil.pkl"
    # A hand-written pickle that calls os.system: written as bytes, never unpickled here.
    payload.write_bytes(b"cposix\nsystem\n(S'echo pwned'\ntR.")
    result = keel(home, "supplychain", "scan", str(payload), "--json", check=False)
    assert result.returncode == 1
    [row] = json.loads(result.stdout)
    assert (row["verdict"], row["status"]) == ("rejected", "quarantined")


def test_signed_audit_export_and_tampering(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    keel(home, "audit", "export", "-o", str(out), "--signed")
    manifest = json.loads((tmp_path / "audit.jsonl.manifest.json").read_text())
    assert manifest["digest"].startswith("sha256:") and manifest["events"] >= 1
    ok = json.loads(keel(home, "audit", "verify-export", str(out), "--json").stdout)
    assert ok["ok"] is True
    offline = keel(
        tmp_path / "elsewhere",
        "audit",
        "verify-export",
        str(out),
        "--public-key",
        manifest["public_key"],
    )
    assert "verifies" in offline.stdout
    with out.open("a") as handle:
        handle.write("{}\n")
    bad = keel(home, "audit", "verify-export", str(out), check=False)
    assert bad.returncode == 1 and "altered or truncated" in bad.stderr
    manifest["events"] = 1
    (tmp_path / "audit.jsonl.manifest.json").write_text(json.dumps(manifest))
    forged = keel(home, "audit", "verify-export", str(out), check=False)
    assert forged.returncode == 1 and "manifest was altered" in forged.stderr
