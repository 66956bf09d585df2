"""Identity: tokens are random, shown once, stored as hashes, scoped, expiring and revocable."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from keel.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from keel.governance import Role
from keel.governance._tokens import effective_roles, make_token, matches, parse_token, role_covers
from keel.store._schema_identity import ApiTokenRow
from tests.server._live import LiveServer

ROLE_NAMES = [r.value for r in Role]


def test_tokens_carry_256_random_bits_and_parse_back_to_their_id() -> None:
    made = {make_token() for _ in range(200)}
    assert len({token for _, token in made}) == 200
    for token_id, token in made:
        assert parse_token(token) == token_id
        secret = token[len("keel_") + 27 :]
        assert len(secret) == 43  # 32 bytes in unpadded base64
        assert matches(token, hashlib.sha256(token.encode()).hexdigest())
        assert not matches(token + "x", hashlib.sha256(token.encode()).hexdigest())
    assert parse_token("keel_" + "x" * 200) is None
    assert parse_token("Bearer keel_abc") is None


@given(st.sampled_from(ROLE_NAMES), st.sets(st.sampled_from([*ROLE_NAMES, "nonsense"])))
def test_a_token_never_acts_with_more_than_its_role_or_its_principals_roles(
    token_role: str, held: set[str]
) -> None:
    from keel.governance._permissions import ROLE_PERMISSIONS

    roles = effective_roles(token_role, held)
    granted = set().union(*(ROLE_PERMISSIONS[Role(r)] for r in roles)) if roles else set()
    assert granted <= ROLE_PERMISSIONS[Role(token_role)]
    held_perms = set().union(
        *(ROLE_PERMISSIONS[Role(r)] for r in held if r in ROLE_NAMES)
    ) if held else set()  # fmt: skip
    assert granted <= held_perms
    if role_covers(held, token_role):
        assert roles == {token_role}


def test_the_secret_is_returned_once_and_only_its_hash_is_stored(live: LiveServer) -> None:
    identity = live.services.identity
    live.services.projects.grant(live.context_in("default"), "service:ci", "contributor")
    identity.create_principal(live.operator, "service:ci", display_name="CI")
    issued = identity.create_token(
        live.operator, role="contributor", principal="service:ci", project="default", days=7
    )
    assert issued.secret.startswith("keel_") and issued.token.status == "active"
    assert "token" not in {k for t in identity.tokens(live.operator, everyone=True)
                           for k in t.to_dict()}  # fmt: skip
    with live.services.governor.db.read() as session:
        row = session.execute(
            select(ApiTokenRow).where(ApiTokenRow.id == issued.token.id)
        ).scalar_one()
        assert row.secret_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
        dump = "\n".join(str(r) for r in session.execute(text("SELECT * FROM api_tokens")))
        events = "\n".join(str(r) for r in session.execute(text("SELECT * FROM audit_events")))
    secret_part = issued.secret[len("keel_") + 27 :]
    assert secret_part not in dump and secret_part not in events
    assert abs(row.expires_at - row.created_at - timedelta(days=7)) < timedelta(seconds=5)


def test_last_use_is_recorded(live: LiveServer) -> None:
    token = live.token_for("viewer")
    token_id = token.split("_")[1]
    before = {t.id: t for t in live.services.identity.tokens(live.operator, everyone=True)}
    assert before[token_id].last_used_at is None
    with live.client(token) as client:
        assert client.get("/api/v1/whoami").status_code == 200
    live.audit_flush()
    after = {t.id: t for t in live.services.identity.tokens(live.operator, everyone=True)}
    assert after[token_id].last_used_at is not None


def test_token_rules_role_coverage_lifetime_owner_and_revocation(live: LiveServer) -> None:
    identity = live.services.identity
    viewer = live.services.projects.context("user:owner", "default")
    viewer = replace(viewer, principal="user:v", roles=frozenset({"viewer"}))
    live.services.projects.grant(live.context_in("default"), "user:v", "viewer")
    with pytest.raises(PermissionDeniedError, match="covering 'maintainer'"):
        identity.create_token(viewer, role="maintainer")
    with pytest.raises(InvalidInputError, match="1 to 365 days"):
        identity.create_token(viewer, role="viewer", days=366)
    with pytest.raises(InvalidInputError, match="Unknown role"):
        identity.create_token(viewer, role="root")
    with pytest.raises(PermissionDeniedError, match="identity administrator"):
        identity.create_token(viewer, role="viewer", principal="user:owner")
    mine = identity.create_token(viewer, role="viewer", days=1)
    assert [t.id for t in identity.tokens(viewer)] == [mine.token.id]
    stranger = replace(viewer, principal="user:stranger")
    with pytest.raises(NotFoundError):
        identity.revoke_token(stranger, mine.token.id)
    assert identity.revoke_token(viewer, mine.token.id).status == "revoked"
    with pytest.raises(PermissionDeniedError):
        identity.tokens(viewer, everyone=True)


def test_principals_are_admin_managed_and_the_last_admin_stays(live: LiveServer) -> None:
    identity = live.services.identity
    assert identity.has_admin()
    made = identity.create_principal(live.operator, "service:etl", email="etl@example.com")
    assert made.kind == "service" and not made.is_admin
    with pytest.raises(AlreadyExistsError):
        identity.create_principal(live.operator, "service:etl")
    with pytest.raises(InvalidInputError, match="user:NAME or service:NAME"):
        identity.create_principal(live.operator, "root")
    owner = live.context_in("default")
    with pytest.raises(PermissionDeniedError, match="identity administrator"):
        identity.create_principal(owner, "user:eve")
    with pytest.raises(ConflictError, match="last identity administrator"):
        identity.disable_principal(live.operator, "user:admin")
    assert identity.disable_principal(live.operator, "service:etl").disabled
    names = [p.name for p in identity.principals(live.operator)]
    assert names == sorted(names) and {"user:admin", "service:etl"} <= set(names)


def test_identity_routes_for_admins_and_callers(live: LiveServer) -> None:
    admin = live.client(live.admin_token)
    made = admin.post("/api/v1/users", json={"name": "service:ci", "display_name": "CI"})
    assert made.status_code == 201 and made.json()["kind"] == "service"
    assert admin.put(
        "/api/v1/projects/default/bindings/service:ci", json={"role": "contributor"}
    ).is_success
    issued = admin.post(
        "/api/v1/tokens",
        json={"principal": "service:ci", "role": "contributor", "days": 2},
    )
    assert issued.status_code == 201
    secret = issued.json()["token"]
    listed = admin.get("/api/v1/tokens", params={"everyone": True}).json()
    assert issued.json()["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)
    with live.client(secret) as ci:
        assert ci.get("/api/v1/whoami").json()["roles"] == ["contributor"]
        assert ci.get("/api/v1/users").status_code == 403
        own = ci.post("/api/v1/tokens", json={"role": "viewer", "days": 1})
        assert own.status_code == 201 and own.json()["principal"] == "service:ci"
        assert ci.delete(f"/api/v1/tokens/{issued.json()['id']}").status_code == 200
        assert ci.get("/api/v1/whoami").status_code == 401
    bindings = admin.get("/api/v1/projects/default/bindings").json()
    assert ("service:ci", "contributor") in {(b["principal"], b["role"]) for b in bindings}
    assert admin.delete("/api/v1/projects/default/bindings/service:ci").status_code == 200
    assert admin.post("/api/v1/users/service:ci/disable", json={}).json()["disabled"] is True
    assert (
        admin.put("/api/v1/projects/default/bindings/x", json={"role": "viewer"}).status_code == 400
    )
