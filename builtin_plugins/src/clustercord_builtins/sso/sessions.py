"""What the SSO plugin keeps: pending logins, sessions, one-time downloads, role mappings.

Secrets are never stored in clear: a session's bearer token and a download token are kept
as SHA-256 hashes (compared in constant time); the PKCE verifier and the kubeconfig waiting
for its download are sealed with the plugin's key when the kernel gives one. A token reads
``ccsso_<session id>_<secret>`` so the audit log can mask it (:data:`TOKEN_PATTERN`).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clustercord_builtins.sso.devices import authenticate as device_session
from clustercord_builtins.sso.devices import create as create_device_tables
from clustercord_builtins.sso.tokens import digest
from clustercord_sdk.services import Sealer, Store

STATES, SESSIONS, DOWNLOADS, MAPPINGS = "states", "sessions", "downloads", "mappings"
STATE_LIFETIME = 600.0
DOWNLOAD_LIFETIME = 300.0
DEFAULT_DURATION = 8 * 3600.0
MAX_DURATION = 24 * 3600.0
MIN_DURATION = 60.0
TOKEN_PATTERN = r"ccss[ot]_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}"


def _create(store: Store) -> None:
    store.table(STATES).create(
        {
            "hash": str,
            "user_id": str,
            "guild_id": str,
            "cluster": str,
            "duration": float,
            "verifier": bytes,
            "expires": float,
        },
        pk="hash",
        if_not_exists=True,
    )
    store.table(SESSIONS).create(
        {
            "id": str,
            "hash": str,
            "user_id": str,
            "user_name": str,
            "guild_id": str,
            "cluster": str,
            "groups": str,
            "created": float,
            "expires": float,
            "last_used": float,
            "revoked": float,
            "revoked_by": str,
            "source": str,
        },
        pk="id",
        if_not_exists=True,
    )
    store.table(SESSIONS).create_index(["user_id"], if_not_exists=True)
    store.table(DOWNLOADS).create(
        {"hash": str, "session": str, "kubeconfig": bytes, "expires": float},
        pk="hash",
        if_not_exists=True,
    )
    store.table(MAPPINGS).create({"role": str, "groups": str}, pk="role", if_not_exists=True)


def _modes_and_scopes(store: Store) -> None:
    """Token mode (a session's ``mode``) and mappings' namespaces and ClusterRoles."""
    store.table(STATES).add_column("mode", str)
    store.table(SESSIONS).add_column("mode", str)
    store.table(MAPPINGS).add_column("namespaces", str)
    store.table(MAPPINGS).add_column("roles", str)


def _login_ids(store: Store) -> None:
    """Which pending login a session came from (``/sso login``'s ``data.login.id``)."""
    store.table(SESSIONS).add_column("login", str)


MIGRATIONS = [
    (1, _create),
    (2, create_device_tables),
    (3, _modes_and_scopes),
    (4, _login_ids),
]
GATEWAY, TOKEN = "gateway", "token"
MODES = (GATEWAY, TOKEN)


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    user_name: str
    guild_id: str
    cluster: str
    groups: tuple[str, ...]
    created: float
    expires: float
    last_used: float | None
    revoked: float | None
    revoked_by: str | None
    mode: str = GATEWAY
    login: str | None = None
    """The id of the pending login it came from (see :func:`login_id`)."""

    def active(self, now: float) -> bool:
        return self.revoked is None and now < self.expires

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user_id,
            "cluster": self.cluster,
            "mode": self.mode,
            "groups": list(self.groups),
            "expires": int(self.expires),
            "revoked": self.revoked is not None,
            "login": self.login,
        }


def login_id(state: str) -> str:
    """A pending login's public id: part of the state's hash, so it names the login (and the
    session it leads to) without being the state, which stays the asker's secret."""
    return digest(state)[:12]


def _session(row: dict[str, Any]) -> Session:
    return Session(
        row["id"],
        row["user_id"],
        row.get("user_name") or "",
        row.get("guild_id") or "",
        row["cluster"],
        tuple(json.loads(row["groups"] or "[]")),
        row["created"],
        row["expires"],
        row.get("last_used"),
        row.get("revoked"),
        row.get("revoked_by"),
        row.get("mode") or GATEWAY,
        row.get("login"),
    )


class SsoStore:
    """The plugin's tables, on its store (and sealer, when it has one)."""

    def __init__(
        self, store: Store, sealer: Sealer | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.sealer, self.clock = store, sealer, clock

    def _seal(self, data: bytes) -> bytes:
        return self.sealer.seal(data) if self.sealer is not None else data

    def _open(self, data: bytes) -> bytes:
        return self.sealer.open(data) if self.sealer is not None else data

    # -- pending logins -------------------------------------------------------------------
    def new_state(
        self, user_id: str, guild_id: str, cluster: str, duration: float, mode: str = GATEWAY
    ) -> tuple[str, str]:
        """A single-use state and its PKCE verifier (43+ characters), valid 10 minutes."""
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        now = self.clock()
        table = self.store.table(STATES)
        table.delete_where("expires < ?", [now])
        table.insert(
            {
                "hash": digest(state),
                "user_id": user_id,
                "guild_id": guild_id,
                "cluster": cluster,
                "duration": duration,
                "mode": mode,
                "verifier": self._seal(verifier.encode()),
                "expires": now + STATE_LIFETIME,
            }
        )
        return state, verifier

    def take_state(self, state: str) -> dict[str, Any] | None:
        """The pending login of ``state``, removed as it is read (a second use finds
        nothing); ``None`` when unknown, used or expired."""
        table = self.store.table(STATES)
        key = digest(state)
        rows = list(table.rows_where("hash = ?", [key]))
        if not rows:
            return None
        table.delete_where("hash = ?", [key])
        row = rows[0]
        if row["expires"] < self.clock():
            return None
        row["verifier"] = self._open(row["verifier"]).decode()
        row["login"] = login_id(state)
        return row

    # -- sessions -------------------------------------------------------------------------
    def create_session(
        self,
        user_id: str,
        user_name: str,
        guild_id: str,
        cluster: str,
        groups: list[str],
        duration: float,
        source: str,
        mode: str = GATEWAY,
        login: str | None = None,
    ) -> tuple[Session, str]:
        """A session and its bearer token (returned once, stored hashed)."""
        sid = secrets.token_hex(6)
        token = f"ccsso_{sid}_{secrets.token_urlsafe(32)}"
        now = self.clock()
        self.store.table(SESSIONS).insert(
            {
                "id": sid,
                "hash": digest(token),
                "user_id": user_id,
                "user_name": user_name,
                "guild_id": guild_id,
                "cluster": cluster,
                "groups": json.dumps(sorted(groups)),
                "created": now,
                "expires": now + duration,
                "last_used": None,
                "revoked": None,
                "revoked_by": None,
                "source": source,
                "mode": mode,
                "login": login,
            }
        )
        found = self.session(sid)
        assert found is not None
        return found, token

    def session(self, sid: str) -> Session | None:
        rows = list(self.store.table(SESSIONS).rows_where("id = ?", [sid]))
        return _session(rows[0]) if rows else None

    def authenticate(self, token: str) -> Session | None:
        """The session a bearer token belongs to (active or not), or ``None``."""
        parts = token.split("_", 2)
        if len(parts) == 3 and parts[0] == "ccsst":  # a device token (clustercord-sso helper)
            return device_session(self, token)  # type: ignore[no-any-return]
        if len(parts) != 3 or parts[0] != "ccsso":
            return None
        rows = list(self.store.table(SESSIONS).rows_where("id = ?", [parts[1]]))
        if not rows or not hmac.compare_digest(rows[0]["hash"], digest(token)):
            return None
        return _session(rows[0])

    def touch(self, sid: str) -> None:
        self.store.table(SESSIONS).update(sid, {"last_used": self.clock()})

    def sessions(self, user_id: str | None = None, *, active: bool = True) -> list[Session]:
        where, args = ("user_id = ?", [user_id]) if user_id else (None, [])
        found = [_session(r) for r in self.store.table(SESSIONS).rows_where(where, args)]
        now = self.clock()
        return sorted((s for s in found if s.active(now) or not active), key=lambda s: s.created)

    def revoke(self, sid: str, by: str) -> bool:
        session = self.session(sid)
        if session is None or session.revoked is not None:
            return False
        self.store.table(SESSIONS).update(sid, {"revoked": self.clock(), "revoked_by": by})
        return True

    def extend(self, sid: str, duration: float) -> Session:
        return self.extend_to(sid, self.clock() + duration)

    def extend_to(self, sid: str, expires: float) -> Session:
        self.store.table(SESSIONS).update(sid, {"expires": expires})
        found = self.session(sid)
        assert found is not None
        return found

    # -- one-time downloads ---------------------------------------------------------------
    def new_download(self, session: str, kubeconfig: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        table = self.store.table(DOWNLOADS)
        table.delete_where("expires < ?", [now])
        table.insert(
            {
                "hash": digest(token),
                "session": session,
                "kubeconfig": self._seal(kubeconfig.encode()),
                "expires": now + DOWNLOAD_LIFETIME,
            }
        )
        return token

    def take_download(self, token: str) -> str | None:
        table = self.store.table(DOWNLOADS)
        key = digest(token)
        rows = list(table.rows_where("hash = ?", [key]))
        if not rows:
            return None
        table.delete_where("hash = ?", [key])
        if rows[0]["expires"] < self.clock():
            return None
        return self._open(rows[0]["kubeconfig"]).decode()

    # -- role mappings --------------------------------------------------------------------
    def mappings(self) -> dict[str, list[str]]:
        return {r["role"]: json.loads(r["groups"]) for r in self.store.table(MAPPINGS).rows}

    def mapping_rules(self) -> dict[str, dict[str, list[str]]]:
        """Each mapped role's ``groups`` and, for :mod:`.bindings`, ``namespaces`` and
        ``roles`` (ClusterRoles the groups hold there)."""
        return {
            r["role"]: {
                "groups": json.loads(r["groups"]),
                "namespaces": json.loads(r.get("namespaces") or "[]"),
                "roles": json.loads(r.get("roles") or "[]"),
            }
            for r in self.store.table(MAPPINGS).rows
        }

    def set_mapping(
        self,
        role: str,
        groups: list[str],
        namespaces: list[str] | None = None,
        roles: list[str] | None = None,
    ) -> None:
        table = self.store.table(MAPPINGS)
        if groups:
            row = {
                "role": role,
                "groups": json.dumps(groups),
                "namespaces": json.dumps(namespaces or []),
                "roles": json.dumps(roles or []),
            }
            table.upsert(row, pk="role")
        else:
            table.delete_where("role = ?", [role])

    def token_holders(self, cluster: str, excluding: str | None = None) -> dict[str, list[str]]:
        """Users with an active token-mode session on ``cluster`` (but ``excluding``) →
        their sessions' groups."""
        holders: dict[str, set[str]] = {}
        for session in self.sessions():
            if session.mode == TOKEN and session.cluster == cluster and session.id != excluding:
                holders.setdefault(session.user_id, set()).update(session.groups)
        return {user: sorted(groups) for user, groups in holders.items()}


def store_of(plugin: Any) -> SsoStore:
    """The SSO tables of a plugin context (``ctx.plugin`` of a command, ``ctx`` of a route)."""
    return SsoStore(plugin.store, plugin.sealer)
