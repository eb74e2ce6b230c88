"""User accounts, passwords, bearer tokens and the brake on password guessing.

Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); bearer tokens are
random 256-bit strings of which only the SHA-256 is stored, so a copy of the database
gives neither passwords nor usable tokens. Failed logins are counted per user and per
client address (OWASP Authentication Cheat Sheet, "Protect against automated attacks") and
audited; past the limit a login is refused without checking the password until the window
has passed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.audit import AuditLog, utcnow
from storage.errors import Conflict, InvalidQuery, NotAuthenticated, NotFound, TooManyAttempts
from storage.index.database import Database
from storage.index.models import ApiToken, User
from storage.origin import Origin


class Role(enum.StrEnum):
    """What a user may do is decided by its one role (docs/security.md has the table)."""

    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    TECHNOLOGIST = "technologist"
    REFERRING = "referring"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class AuthSettings:
    """The slice of the settings about HTTP authentication.

    Attributes
    ----------
    enabled : ``False`` (``PACS_AUTH=off``) lets every HTTP caller in as an administrator.
    token_ttl : lifetime of a bearer token, in seconds.
    max_failures : failed logins per user, and per address, within ``failure_window``
        seconds after which further attempts are refused (HTTP 429).
    metrics_token : a bearer token that may read ``/metrics`` only (Prometheus scrapes).
    """

    enabled: bool = True
    token_ttl: int = 8 * 3600
    max_failures: int = 5
    failure_window: int = 300
    metrics_token: str | None = None


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: Role
    full_name: str = ""
    disabled: bool = False
    created_at: datetime | None = None


def password_hasher() -> PasswordHasher:
    """Argon2id with OWASP's recommended minimum (m = 19 MiB, t = 2, p = 1).

    argon2-cffi's default (RFC 9106 "second recommended": 64 MiB, t = 3, p = 4) costs
    ~0.7 s per login on a busy two-core server, which makes every login a denial-of-service
    lever; OWASP's Password Storage Cheat Sheet lists this cheaper setting as equivalent
    protection. Hashes remember their parameters, so changing them later re-hashes each
    password at its next login (:meth:`Accounts.authenticate`).
    """
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8


def _info(row: User) -> UserInfo:
    return UserInfo(row.username, Role(row.role), row.full_name, row.disabled, row.created_at)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidQuery(f"unknown role {value!r}; roles: "
                           + ", ".join(r.value for r in Role)) from None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidQuery(f"a password has at least {MIN_PASSWORD} characters")


class LoginThrottle:
    """Counts failed logins per key in a sliding window (in this process's memory).

    The HTTP listener runs in one process, so the counts need not be shared.
    """

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, *keys: str) -> None:
        """Raise :class:`TooManyAttempts` if any key is over the limit."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.max_failures:
                    wait = int(times[0] + self.window - now) + 1
                    raise TooManyAttempts("too many failed logins; try again later", wait)

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class Accounts:
    """Users and their credentials: the service behind ``pacs user`` and ``/api/users``."""

    CACHE_SECONDS = 60.0
    """How long a checked Basic password is remembered, so that a viewer sending Basic
    credentials with every request does not pay an Argon2 hash each time. Changes made
    through this process clear it at once."""

    def __init__(self, db: Database, audit: AuditLog, settings: AuthSettings | None = None,
                 hasher: PasswordHasher | None = None) -> None:
        self._db = db
        self._audit = audit
        self.settings = settings or AuthSettings()
        self._hasher = hasher or password_hasher()
        self._dummy = ""  # hashed on first use: checked when a username is unknown
        self.throttle = LoginThrottle(self.settings.max_failures, self.settings.failure_window)
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[str, tuple[bytes, UserInfo, float]] = {}
        self._cache_lock = threading.Lock()

    # -- management ---------------------------------------------------------------------
    def add(self, username: str, password: str, role: str | Role, origin: Origin, *,
            full_name: str = "") -> UserInfo:
        if not _USERNAME.match(username):
            raise InvalidQuery("a username is 1 to 64 letters, digits or . _ @ -")
        role = _role(role)
        _check_password(password)
        digest = self._hasher.hash(password)
        now = utcnow()
        with self._db.write() as s:
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"user {username} already exists")
            s.add(User(username=username, role=role.value, password_hash=digest,
                       full_name=full_name[:128], disabled=False, created_at=now,
                       password_changed_at=now))
        self._audit.record(origin, "user-add", "ok", detail={"user": username, "role": role})
        return UserInfo(username, role, full_name[:128], False, now)

    def list(self) -> list[UserInfo]:
        with self._db.read() as s:
            return [_info(u) for u in s.scalars(select(User).order_by(User.username))]

    def get(self, username: str) -> UserInfo:
        with self._db.read() as s:
            row = s.scalar(select(User).where(User.username == username))
            if row is None:
                raise NotFound(f"user {username} does not exist")
            return _info(row)

    def count(self) -> int:
        with self._db.read() as s:
            return int(s.scalar(select(func.count(User.id))) or 0)

    def update(self, username: str, origin: Origin, *, role: str | Role | None = None,
               disabled: bool | None = None, full_name: str | None = None) -> UserInfo:
        """Change a user's role, state or name; disabling also revokes its tokens."""
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = _role(role).value
        if disabled is not None:
            values["disabled"] = disabled
        if full_name is not None:
            values["full_name"] = full_name[:128]
        with self._db.write() as s:
            row = s.scalar(select(User).where(User.username == username))
            if row is None:
                raise NotFound(f"user {username} does not exist")
            for name, value in values.items():
                setattr(row, name, value)
            if disabled:
                self._revoke_all(s, row.id)
            info = _info(row)
        self._forget(username)
        self._audit.record(origin, "user-update", "ok",
                           detail={"user": username, **{k: str(v) for k, v in values.items()}})
        return info

    def disable(self, username: str, origin: Origin) -> UserInfo:
        return self.update(username, origin, disabled=True)

    def set_password(self, username: str, password: str, origin: Origin) -> None:
        """Replace a password; the user's bearer tokens stop working."""
        _check_password(password)
        digest = self._hasher.hash(password)
        with self._db.write() as s:
            row = s.scalar(select(User).where(User.username == username))
            if row is None:
                raise NotFound(f"user {username} does not exist")
            row.password_hash = digest
            row.password_changed_at = utcnow()
            self._revoke_all(s, row.id)
        self._forget(username)
        self.throttle.clear(f"user:{username}")
        self._audit.record(origin, "user-password", "ok", detail={"user": username})

    def ensure_admin(self, password: str | None, origin: Origin) -> str | None:
        """On the first start (no user at all) create ``admin``.

        Returns the generated password when ``password`` was not given, so the caller can
        show it once; ``None`` when users exist or the password was given.
        """
        if self.count():
            return None
        generated = None if password else secrets.token_urlsafe(15)
        try:
            self.add("admin", password or generated or "", Role.ADMIN, origin,
                     full_name="Administrator")
        except Conflict:  # another process created it first
            return None
        return generated

    @staticmethod
    def _revoke_all(s: Session, user_pk: int) -> None:
        s.execute(update(ApiToken).where(ApiToken.user_fk == user_pk,
                                         ApiToken.revoked_at.is_(None))
                  .values(revoked_at=utcnow()))

    # -- authentication -----------------------------------------------------------------
    def authenticate(self, username: str, password: str, origin: Origin) -> UserInfo:
        """Check a username and password; failures are counted and audited.

        Raises
        ------
        TooManyAttempts
            This user or this address failed too often recently; the password is not
            even checked.
        NotAuthenticated
            Unknown user, wrong password or disabled account (one message for all, so the
            answer does not reveal which accounts exist).
        """
        keys = (f"user:{username}", f"addr:{origin.address.rsplit(':', 1)[0]}")
        who = Origin(origin.channel, address=origin.address, username=username[:64])
        try:
            self.throttle.check(*keys)
        except TooManyAttempts:
            self._audit.record(who, "login", "refused", detail={"reason": "rate-limited"})
            raise
        cached = self._cached(username, password)
        if cached is not None:
            return cached
        with self._db.read() as s:
            row = s.scalar(select(User).where(User.username == username))
            stored = row.password_hash if row is not None else self._dummy_hash()
            info = _info(row) if row is not None else None
        try:
            self._hasher.verify(stored, password)
            ok = info is not None and not info.disabled
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or info is None:
            self.throttle.fail(*keys)
            self._audit.record(who, "login", "failed",
                               detail={"reason": "disabled" if info and info.disabled
                                       else "bad credentials"})
            raise NotAuthenticated("wrong username or password")
        self.throttle.clear(keys[0])
        if self._hasher.check_needs_rehash(stored):
            self._rehash(username, password)
        self._remember(username, password, info)
        return info

    def _dummy_hash(self) -> str:
        """A hash to verify against for unknown users, so they take as long as known ones."""
        if not self._dummy:
            self._dummy = self._hasher.hash(secrets.token_hex(8))
        return self._dummy

    def _rehash(self, username: str, password: str) -> None:
        with self._db.write() as s:
            s.execute(update(User).where(User.username == username)
                      .values(password_hash=self._hasher.hash(password)))

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._cache_key, password.encode(), "sha256").digest()

    def _cached(self, username: str, password: str) -> UserInfo | None:
        with self._cache_lock:
            hit = self._cache.get(username)
        if hit is None or hit[2] < time.monotonic():
            return None
        return hit[1] if hmac.compare_digest(hit[0], self._digest(password)) else None

    def _remember(self, username: str, password: str, info: UserInfo) -> None:
        with self._cache_lock:
            self._cache[username] = (self._digest(password), info,
                                     time.monotonic() + self.CACHE_SECONDS)

    def _forget(self, username: str) -> None:
        with self._cache_lock:
            self._cache.pop(username, None)

    # -- bearer tokens ------------------------------------------------------------------
    def issue_token(self, user: UserInfo, origin: Origin,
                    ttl: int | None = None) -> tuple[str, datetime]:
        """A new bearer token for ``user`` and when it expires (RFC 6750)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + timedelta(seconds=ttl or self.settings.token_ttl)
        with self._db.write() as s:
            pk = s.scalar(select(User.id).where(User.username == user.username))
            if pk is None:
                raise NotAuthenticated("the user no longer exists")
            s.add(ApiToken(token_hash=_token_digest(token), user_fk=pk, created_at=now,
                           expires_at=expires, revoked_at=None, address=origin.address[:64]))
        self._audit.record(origin, "login", "ok", detail={"method": "token"})
        return token, expires

    def user_for_token(self, token: str) -> UserInfo:
        """The user of a live token; :class:`NotAuthenticated` if unknown, expired or revoked."""
        with self._db.read() as s:
            row = s.execute(
                select(User, ApiToken.expires_at, ApiToken.revoked_at)
                .join(ApiToken, ApiToken.user_fk == User.id)
                .where(ApiToken.token_hash == _token_digest(token))).first()
        if row is None:
            raise NotAuthenticated("unknown bearer token")
        user, expires, revoked = row
        if revoked is not None or expires <= utcnow() or user.disabled:
            raise NotAuthenticated("the bearer token has expired or was revoked")
        return _info(user)

    def revoke_token(self, token: str, origin: Origin) -> None:
        with self._db.write() as s:
            n = s.execute(update(ApiToken).where(ApiToken.token_hash == _token_digest(token),
                                                 ApiToken.revoked_at.is_(None))
                          .values(revoked_at=utcnow())).rowcount
        if not n:
            raise NotFound("no such live token")
        self._audit.record(origin, "logout", "ok", detail={"method": "token"})
