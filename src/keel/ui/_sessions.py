"""Browser sessions of the web UI: opaque ids in a cookie, the credential kept server-side.

A session is made when a user signs in with an API token (or an OIDC ID token). The browser
only ever holds a random 256-bit session id; the server keeps the credential in memory, keyed
by the SHA-256 of that id, and authenticates it again on every request with the same
``IdentityService.authenticate`` the REST API uses, so a revoked token or a disabled principal
ends the session at once. Sessions expire after an idle period and after an absolute lifetime;
``keel server`` runs one worker per process, so the in-memory table is the whole truth (a
restart signs everyone out, which is the safe direction).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["Session", "SessionStore"]


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    """One signed-in browser.

    Attributes:
        credential: the API token (or OIDC ID token) the user signed in with; never sent back.
        project: the project chosen at sign-in (a token's own project when None).
        csrf: the token every state-changing form of this session must carry.
        created: when the session began (monotonic seconds).
        seen: when it was last used (monotonic seconds).
    """

    credential: str
    project: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def csrf_matches(self, sent: str | None) -> bool:
        """Constant-time comparison of a form's CSRF token with this session's."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SessionStore:
    """Sessions by hashed id, bounded in number, with idle and absolute expiry.

    Args:
        idle_seconds: a session unused this long is gone.
        max_seconds: a session this old is gone, however busy.
        max_sessions: the oldest sessions are dropped beyond this many.
    """

    def __init__(
        self,
        *,
        idle_seconds: float = 30 * 60,
        max_seconds: float = 12 * 3600,
        max_sessions: int = 10_000,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, credential: str, project: str | None) -> tuple[str, Session]:
        """A new session; returns the id for the cookie (only its hash is kept)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(credential=credential, project=project)
        with self._lock:
            self._sessions[_digest(session_id)] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown, idle too long or too old)."""
        if not session_id or len(session_id) > 128:
            return None
        key = _digest(session_id)
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen > self.idle_seconds or now - session.created > self.max_seconds:
                del self._sessions[key]
                return None
            session.seen = now
            return session

    def drop(self, session_id: str | None) -> None:
        """End a session (sign out); unknown ids are ignored."""
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)
