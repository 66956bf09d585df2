"""Behind a TLS-terminating proxy: the public URL's origin may post forms; cookies are Secure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from keel.settings import Settings
from tests.server._live import LiveServer, live_server
from tests.ui.conftest import csrf_of

PUBLIC = "https://keel.example.com"


def _sign_in(live: LiveServer, origin: str) -> tuple[int, str]:
    client = live.client(follow_redirects=False)
    form = client.get("/ui/login")
    nonce = re.search(r"keel_login=([^;]+)", form.headers["set-cookie"])
    assert nonce, form.headers["set-cookie"]
    answer = client.post(
        "/ui/login",
        data={"token": live.admin_token, "project": "", "csrf": csrf_of(form.text), "next": ""},
        headers={"origin": origin, "cookie": f"keel_login={nonce.group(1)}"},
    )
    return answer.status_code, ", ".join(answer.headers.get_list("set-cookie"))


def test_the_public_origin_may_sign_in_and_gets_secure_cookies(tmp_path: Path) -> None:
    with live_server(tmp_path / "home", server_public_url=PUBLIC + "/") as live:
        status, cookies = _sign_in(live, PUBLIC)
        assert status == 303
        assert "keel_session=" in cookies and "secure" in cookies.lower()
        assert _sign_in(live, "https://evil.example.com")[0] == 403


def test_without_it_the_proxied_origin_is_refused(tmp_path: Path) -> None:
    with live_server(tmp_path / "home") as live:
        assert _sign_in(live, PUBLIC)[0] == 403
        status, cookies = _sign_in(live, live.url)
        assert status == 303 and "secure" not in cookies.lower()


@pytest.mark.parametrize("bad", ["keel.example.com", "ftp://keel.example.com", "https://"])
def test_a_bad_public_url_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="server_public_url"):
        Settings(home=tmp_path, server_public_url=bad)
