"""Device binding: the ``clustercord-sso`` helper's key, and the short tokens it trades it for.

The helper kubeconfig carries a one-time enrollment secret. Its first run makes an Ed25519
key on the machine (0600) and enrolls the public key for the session (the secret is then
spent: a copied kubeconfig enrolls nowhere else). With ``device_trust`` on, a device new for
the user waits for an admin's ``/sso devices approve:``. Each credential is a token of at most
10 minutes, given for a fresh signature of the device key (the timestamp within a minute),
stored hashed, and worth nothing once its session ends.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from clustercord_builtins.sso.tokens import digest

SsoStore = Any  # clustercord_builtins.sso.sessions.SsoStore (which imports this module)

ENROLLMENTS, DEVICES, DEVICE_TOKENS = "enrollments", "devices", "device_tokens"
TOKEN_LIFETIME = 600.0
ENROLL_LIFETIME = 24 * 3600.0
SKEW = 60.0


def create(store: Any) -> None:
    store.table(ENROLLMENTS).create(
        {"hash": str, "session": str, "expires": float}, pk="hash", if_not_exists=True
    )
    store.table(DEVICES).create(
        {
            "id": str,
            "user_id": str,
            "session": str,
            "public_key": str,
            "name": str,
            "status": str,
            "created": float,
            "decided_by": str,
        },
        pk="id",
        if_not_exists=True,
    )
    store.table(DEVICE_TOKENS).create(
        {"hash": str, "session": str, "device": str, "expires": float},
        pk="hash",
        if_not_exists=True,
    )


def new_enrollment(sso: SsoStore, session: str) -> str:
    secret = secrets.token_urlsafe(32)
    sso.store.table(ENROLLMENTS).insert(
        {"hash": digest(secret), "session": session, "expires": sso.clock() + ENROLL_LIFETIME}
    )
    return secret


def enroll(
    sso: SsoStore, session_id: str, secret: str, public_key: str, name: str, trust: bool
) -> dict[str, Any]:
    """Spend ``secret`` to bind ``public_key`` to the session; ``status`` is ``approved``, or
    ``pending`` with device trust for a key the user never had approved."""
    table = sso.store.table(ENROLLMENTS)
    rows = list(table.rows_where("hash = ? AND session = ?", [digest(secret), session_id]))
    if not rows:
        raise PermissionError("this kubeconfig was enrolled on a device already")
    table.delete_where("hash = ?", [digest(secret)])
    session = sso.session(session_id)
    if session is None or not session.active(sso.clock()) or rows[0]["expires"] < sso.clock():
        raise PermissionError("the session has ended: run /sso login again")
    try:
        key = base64.b64decode(public_key, validate=True)
    except ValueError:
        raise PermissionError("not a device key") from None
    if len(key) != 32:
        raise PermissionError("not an Ed25519 device key")
    known = list(
        sso.store.table(DEVICES).rows_where(
            "user_id = ? AND public_key = ? AND status = 'approved'", [session.user_id, public_key]
        )
    )
    status = "approved" if (not trust or known) else "pending"
    device = {
        "id": secrets.token_hex(6),
        "user_id": session.user_id,
        "session": session_id,
        "public_key": public_key,
        "name": name[:64],
        "status": status,
        "created": sso.clock(),
        "decided_by": None,
    }
    sso.store.table(DEVICES).insert(device)
    return device


def device(sso: SsoStore, device_id: str) -> dict[str, Any] | None:
    rows = list(sso.store.table(DEVICES).rows_where("id = ?", [device_id]))
    return rows[0] if rows else None


def devices(sso: SsoStore, status: str | None = None) -> list[dict[str, Any]]:
    where, args = ("status = ?", [status]) if status else (None, [])
    return list(sso.store.table(DEVICES).rows_where(where, args, order_by="created"))


def decide(sso: SsoStore, device_id: str, status: str, by: str) -> bool:
    found = device(sso, device_id)
    if found is None or found["status"] != "pending":
        return False
    sso.store.table(DEVICES).update(device_id, {"status": status, "decided_by": by})
    return True


def issue(sso: SsoStore, session_id: str, device_id: str, ts: float, signature: str) -> str:
    """A token of :data:`TOKEN_LIFETIME` for a valid signature of ``session|device|ts``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    found = device(sso, device_id)
    if found is None or found["session"] != session_id:
        raise PermissionError("unknown device")
    if found["status"] != "approved":
        raise PermissionError(f"this device is {found['status']}: an admin decides (/sso devices)")
    if abs(sso.clock() - ts) > SKEW:
        raise PermissionError("the device's clock is off by more than a minute")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(found["public_key"]))
    try:
        key.verify(base64.b64decode(signature), f"{session_id}|{device_id}|{ts}".encode())
    except (InvalidSignature, ValueError):
        raise PermissionError("bad device signature") from None
    session = sso.session(session_id)
    if session is None or not session.active(sso.clock()):
        raise PermissionError("the session has ended: run /sso login again")
    token = f"ccsst_{session_id}_{secrets.token_urlsafe(32)}"
    sso.store.table(DEVICE_TOKENS).insert(
        {
            "hash": digest(token),
            "session": session_id,
            "device": device_id,
            "expires": min(sso.clock() + TOKEN_LIFETIME, session.expires),
        }
    )
    return token


def authenticate(sso: SsoStore, token: str) -> Any:
    """The session of a device token still valid, else ``None``."""
    rows = list(sso.store.table(DEVICE_TOKENS).rows_where("hash = ?", [digest(token)]))
    if not rows or rows[0]["expires"] < sso.clock():
        return None
    return sso.session(rows[0]["session"])
