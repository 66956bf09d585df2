"""The repository secrets scanner: key formats, entropy, allowlists, and no secret in output."""

from __future__ import annotations

from pathlib import Path

from keel.cicd import scan_secrets, scan_text
from keel.cicd._secrets_scan import entropy

# Test credentials assembled at run time so this file itself holds no secret-shaped literal.
AWS_ID = "AKIA" + "Q3EXAMPLE7KEYZZ9"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
RANDOM = "Zr8" + "q2LxVt9WmB4nKd7Hs1PfYc3Ge6Ju0Ao5Xi"
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----"


def _rules(text: str) -> list[str]:
    return [f.rule for f in scan_text(text)]


def test_known_formats_are_found_and_never_echoed() -> None:
    text = (
        f'aws_access_key_id = "{AWS_ID}"\n'
        f"token: {GITHUB}\n"
        f"{PEM}\n"
        'db = "postgresql://keel:S3cr3t-Pa55w0rd@db.internal:5432/keel"\n'
        'password = "hunter2-Xy9!kq"\n'
    )
    findings = scan_text(text, file="config.py")
    assert [(f.rule, f.line) for f in findings] == [
        ("aws-access-key-id", 1),
        ("github-token", 2),
        ("private-key", 3),
        ("url-credentials", 4),
        ("password-assignment", 5),
    ]
    rendered = repr([f.to_dict() for f in findings])
    for secret in (AWS_ID, GITHUB, "S3cr3t-Pa55w0rd", "hunter2-Xy9!kq"):
        assert secret not in rendered
    assert findings[0].preview == "AKIA…(20 chars)" and len(findings[0].fingerprint) == 16


def test_high_entropy_strings_are_found_but_digests_and_placeholders_are_not() -> None:
    assert _rules(f'key = "{RANDOM}"') == ["high-entropy-string"]
    digest = "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert _rules(f'digest = "{digest}"') == []
    assert _rules('password = "changeme"') == []
    assert _rules('password = "secret://db-password"') == []
    assert _rules('api_key = "${API_KEY}"') == []
    assert _rules("name = 'a_very_long_but_ordinary_identifier_name_here'") == []
    assert _rules(f'key = "{RANDOM}"  # keel: allow-secret') == []
    assert entropy("aaaa") == 0.0 and entropy("abcd") == 2.0


def test_a_repository_scan_honours_the_allowlist_and_skips_binaries(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "settings.py").write_text(f'TOKEN = "{GITHUB}"\n')
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    (tmp_path / "tests" / "fixtures" / "fake.env").write_text(f"AWS={AWS_ID}\n")
    (tmp_path / "model.bin").write_bytes(b"\0\1" + AWS_ID.encode())
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f"{GITHUB}\n")
    found, scanned = scan_secrets(tmp_path)
    assert scanned == 2
    assert sorted((f.file, f.rule) for f in found) == [
        ("src/settings.py", "github-token"),
        ("tests/fixtures/fake.env", "aws-access-key-id"),
    ]
    fingerprint = next(f.fingerprint for f in found if f.file == "src/settings.py")
    (tmp_path / ".keel-secrets-allow").write_text(
        f"# reviewed\ntests/fixtures/*\nfingerprint:{fingerprint}  # rotated test token\n"
    )
    found, scanned = scan_secrets(tmp_path)
    assert found == [] and scanned == 3
    (tmp_path / ".keel-secrets-allow").write_text("tests/fixtures/*:github-token\n")
    assert sorted(f.rule for f in scan_secrets(tmp_path)[0]) == [
        "aws-access-key-id",
        "github-token",
    ]


def test_labelled_digests_are_not_secrets() -> None:
    assert _rules(f"pkg/__init__.py,sha256={RANDOM}_abc,1234") == []
    assert _rules(f'"integrity": "sha512-{RANDOM}=="') == []


def test_in_a_git_work_tree_only_what_git_would_commit_is_scanned(tmp_path: Path) -> None:
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:  # pragma: no cover - git is installed wherever Keel's CI runs
        raise AssertionError("git is needed for this test")
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("local.env\n")
    (tmp_path / "local.env").write_text(f"TOKEN={GITHUB}\n")
    (tmp_path / "app.py").write_text(f'KEY = "{AWS_ID}"\n')
    found, scanned = scan_secrets(tmp_path)
    assert scanned == 2  # .gitignore and app.py; local.env is ignored by git
    assert [(f.file, f.rule) for f in found] == [("app.py", "aws-access-key-id")]
