"""Tokens with a role, stored hashed, checked the same way by every endpoint and socket.

Tokens are 256-bit random secrets, so a fast SHA-256 digest is the right store (no password
stretching needed); the plain token is shown once, at creation. A token may have an expiry time
(epoch seconds, stored and shared with its row); a row without one, such as every row made before
expiry existed, stays valid until revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

from .identifiers import is_identifier
from .models import UNASSIGNED


class Role(StrEnum):
    gateway = "gateway"
    nurse = "nurse"
    clinician = "clinician"
    admin = "admin"


class AuthError(Exception):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AuthError):
    status = 401


class Forbidden(AuthError):
    status = 403


class Expired(Unauthorized):
    """A token that was valid and is past its expiry: refused like an invalid one, but saying so, so
    that its holder asks for a new token rather than suspecting a typo."""

    def __init__(self, expires: float) -> None:
        when = datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        super().__init__(f"token expired at {when}")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    token_id: str
    wards: tuple[str, ...] = ()  # empty = all wards
    expires: float | None = None  # epoch seconds; None = until revoked


class LRU:
    """A dict of at most ``size`` entries that forgets the least recently used: token lookups are
    cached, and a client sending endless distinct bad tokens must not grow memory without bound."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[str, tuple[Principal | None, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: str) -> tuple[Principal | None, float] | None:
        hit = self._d.get(key)
        if hit is not None:
            self._d.move_to_end(key)
        return hit

    def put(self, key: str, value: tuple[Principal | None, float]) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """A small SQLite table of hashed tokens. Safe to share between threads of one process."""

    def __init__(self, path: Path | str, cache_size: int = 4096, clock=time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL,"
            " role TEXT NOT NULL, name TEXT NOT NULL, wards TEXT NOT NULL DEFAULT '',"
            " created REAL NOT NULL, revoked REAL, expires REAL)"
        )
        if "expires" not in {c[1] for c in self._db.execute("PRAGMA table_info(tokens)")}:
            self._db.execute("ALTER TABLE tokens ADD COLUMN expires REAL")  # a file from before expiry: all NULL
        self.clock = clock  # wall-clock epoch seconds; a test moves it past an expiry instead of sleeping
        # Valid and invalid tokens are cached apart, so a flood of bad ones cannot evict the good.
        self.valid_cache, self.invalid_cache = LRU(cache_size), LRU(cache_size)

    def create(self, role: Role | str, name: str = "", wards: tuple[str, ...] = (),
               expires_in: float | None = None) -> tuple[str, Principal]:
        """A new token (shown once) and its principal; ``expires_in`` seconds from now, or never (None)."""
        role = Role(role)
        if expires_in is not None and not expires_in > 0:
            raise ValueError(f"a lifetime must be positive, not {expires_in!r} s")
        # Stored comma-joined, and no ward at all means every ward: a blank one must not widen the token.
        bad = [w for w in wards if not is_identifier(w)]
        if bad:
            raise ValueError(f"not a ward id: {bad[0]!r} (letters, digits and . _ : - only)")
        if UNASSIGNED in wards:  # the patients without a ward, all of them: no ward's token
            raise ValueError(f"{UNASSIGNED!r} is no ward: it holds the patients without one")
        token_id = secrets.token_hex(4)
        token = f"ww_{role.value}_{token_id}_{secrets.token_urlsafe(32)}"
        name = name or f"{role.value}-{token_id}"
        created = self.clock()
        expires = None if expires_in is None else created + expires_in
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (id, digest, role, name, wards, created, expires) VALUES (?,?,?,?,?,?,?)",
                (token_id, _digest(token), role.value, name, ",".join(wards), created, expires),
            )
        return token, Principal(name=name, role=role, token_id=token_id, wards=tuple(wards), expires=expires)

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE tokens SET revoked=? WHERE id=? AND revoked IS NULL", (time.time(), token_id))
            self.valid_cache.clear()
            self.invalid_cache.clear()
        return cur.rowcount > 0

    def row(self, token_id: str) -> dict | None:
        """One token's stored row (digest, never the token), as shared on the tokens topic."""
        with self._lock:
            r = self._db.execute("SELECT id, digest, role, name, wards, created, revoked, expires FROM tokens"
                                 " WHERE id=?", (token_id,)).fetchone()
        return dict(zip(("id", "digest", "role", "name", "wards", "created", "revoked", "expires"), r)) if r else None

    def rows(self) -> list[dict]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM tokens").fetchall()]
        return [r for r in map(self.row, ids) if r is not None]

    def merge(self, row: dict) -> None:
        """A token row from another instance (the tokens topic): added, or revoked if it is revoked
        there. A revocation is never undone by an older row, and an expiry never lifted or put off by
        one (a row without ``expires``, from before expiry existed, means "never expires")."""
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (id, digest, role, name, wards, created, revoked, expires) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET revoked=COALESCE(tokens.revoked, excluded.revoked),"
                " expires=COALESCE(MIN(tokens.expires, excluded.expires), tokens.expires, excluded.expires)",
                (row["id"], row["digest"], Role(row["role"]).value, row["name"], row["wards"], row["created"],
                 row["revoked"], row.get("expires")))
            if row["revoked"] is not None or row.get("expires") is not None:  # a cached principal may be older
                self.valid_cache.clear()
                self.invalid_cache.clear()
            else:
                self.invalid_cache.clear()  # a token just created elsewhere must not stay "unknown" here

    def list(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT id, role, name, wards, created, revoked, expires FROM tokens"
                                    " ORDER BY created").fetchall()
        now = self.clock()
        return [dict(zip(("id", "role", "name", "wards", "created", "revoked", "expires"), r))
                | {"expired": r[6] is not None and r[6] <= now} for r in rows]

    def active(self, token_ids: set[str]) -> set[str]:
        """Which of these token ids are neither revoked nor expired, from the table itself (no cache):
        the re-check of open sockets must see a revocation made by another process (``wardwatch token
        revoke``), and a token that expired while its socket was open."""
        if not token_ids:
            return set()
        ids = sorted(token_ids)
        with self._lock:
            rows = self._db.execute("SELECT id FROM tokens WHERE revoked IS NULL AND (expires IS NULL OR expires > ?)"
                                    f" AND id IN ({','.join('?' * len(ids))})", [self.clock(), *ids]).fetchall()
        return {r[0] for r in rows}

    def lookup(self, token: str | None) -> Principal | None:
        """The token's principal, None for no token or an unknown or revoked one; raises Expired for
        one past its expiry."""
        return self._unexpired(self._lookup(token))

    def _unexpired(self, principal: Principal | None) -> Principal | None:
        # Checked on every use, cached or not: no cache keeps an expired token alive for a moment.
        if principal is not None and principal.expires is not None and principal.expires <= self.clock():
            raise Expired(principal.expires)
        return principal

    def _lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        digest = _digest(token)
        with self._lock:
            hit = self.valid_cache.get(digest) or self.invalid_cache.get(digest)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        with self._lock:
            row = self._db.execute(
                "SELECT id, role, name, wards, digest, expires FROM tokens WHERE digest=? AND revoked IS NULL",
                (digest,)).fetchone()
        principal = None
        if row and hmac.compare_digest(row[4], digest):
            principal = Principal(name=row[2], role=Role(row[1]), token_id=row[0],
                                  wards=tuple(w for w in row[3].split(",") if w), expires=row[5])
        # A short cache keeps the hot path off SQLite; revocation clears it.
        with self._lock:
            (self.valid_cache if principal else self.invalid_cache).put(digest, (principal, time.monotonic() + 5.0))
        return principal

    def check(self, token: str | None, allowed: set[Role] | frozenset[Role]) -> Principal:
        """The one check every endpoint and socket uses: 401 without a valid token (Expired, a 401,
        for an expired one), 403 for a wrong role."""
        principal = self.lookup(token)
        if principal is None:
            raise Unauthorized("missing or invalid token")
        if principal.role not in allowed and principal.role is not Role.admin:
            raise Forbidden(f"role {principal.role.value!r} may not do this")
        return principal


def bearer(header_value: str | None) -> str | None:
    """The token from an ``Authorization: Bearer ...`` header."""
    if not header_value:
        return None
    scheme, _, token = header_value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
