"""OIDC / JWT bearer tokens, validated against a configured issuer and its JWKS.

Only asymmetric algorithms are accepted (``alg: none`` and HMAC are refused, so a public key
can never be used as an HMAC secret), the key must come from the issuer's JWKS by ``kid`` and
be of the algorithm's type, and ``exp``, ``nbf``, ``iss`` and ``aud`` are checked.
"""

from __future__ import annotations

import re
from typing import Any

from keel.errors import AuthenticationError, ConfigurationError, MissingDependencyError

__all__ = ["ASYMMETRIC_ALGORITHMS", "OidcVerifier"]

#: Accepted JWS algorithms, with the JWK key type each one needs.
ASYMMETRIC_ALGORITHMS: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
_SUBJECT = re.compile(r"^[A-Za-z0-9_.@+\-|:]{1,200}$")


def _refuse(reason: str) -> AuthenticationError:
    return AuthenticationError(
        f"The bearer token was refused: {reason}. Sign in again to get a fresh token from "
        "the identity provider, or use a Keel API token.",
        reason=reason,
    )


class OidcVerifier:
    """Validates JWT bearer tokens of one issuer and names their principal (``user:<claim>``)."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str,
        audience: str,
        principal_claim: str = "sub",
        leeway: float = 10.0,
    ) -> None:
        if not (issuer and jwks_url and audience):
            raise ConfigurationError(
                "OIDC needs an issuer, a JWKS URL and an audience: set KEEL_OIDC_ISSUER, "
                "KEEL_OIDC_JWKS_URL and KEEL_OIDC_AUDIENCE.",
            )
        try:
            import jwt
        except ImportError as exc:
            raise MissingDependencyError(
                "pyjwt", extra="server", purpose="OIDC bearer tokens"
            ) from exc
        self.issuer = issuer
        self.audience = audience
        self.principal_claim = principal_claim
        self.leeway = leeway
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=10)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; raises AuthenticationError for anything else."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse("it is not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
            raise _refuse(f"its algorithm {str(alg)[:20]!r} is not an accepted signature")
        if not isinstance(header.get("kid"), str):
            raise _refuse("its header names no key ('kid')")
        try:
            signing = self._jwks.get_signing_key(header["kid"])
        except jwt.PyJWKClientConnectionError:
            raise _refuse("the issuer's key set could not be fetched") from None
        except jwt.PyJWTError:
            raise _refuse("its key is not in the issuer's key set") from None
        if signing.key_type != ASYMMETRIC_ALGORITHMS[alg]:
            raise _refuse(f"its algorithm {alg} does not match its {signing.key_type} key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError:
            raise _refuse("it has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refuse("it is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise _refuse("it was issued for another audience") from None
        except jwt.InvalidIssuerError:
            raise _refuse("it was issued by another issuer") from None
        except jwt.PyJWTError as exc:
            raise _refuse(f"its signature or claims do not verify ({type(exc).__name__})") from None
        return claims

    def principal(self, claims: dict[str, Any]) -> str:
        """The Keel principal of verified claims: ``user:<principal_claim>``."""
        value = claims.get(self.principal_claim)
        if not isinstance(value, str) or not _SUBJECT.match(value):
            raise _refuse(f"its '{self.principal_claim}' claim is missing or not a plain name")
        return f"user:{value}"
