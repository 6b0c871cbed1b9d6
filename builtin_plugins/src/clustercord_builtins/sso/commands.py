"""``/sso`` commands: login, logout, list-sessions, revoke, extend, map, mappings, audit."""

from __future__ import annotations

import datetime
import ipaddress
import re
import time
from typing import Any

from clustercord_builtins.sso import access, rights
from clustercord_builtins.sso.flow import DiscordOAuth
from clustercord_builtins.sso.sessions import (
    DEFAULT_DURATION,
    GATEWAY,
    MAX_DURATION,
    MIN_DURATION,
    MODES,
    STATE_LIFETIME,
    TOKEN,
    Session,
    login_id,
    store_of,
)
from clustercord_builtins.sso.web import site
from clustercord_sdk.errors import PermissionDenied, UsageError
from clustercord_sdk.reply import Button, Reply, Table

DEVICE_BUTTONS = 5
GATEWAY_ACTION = "route * /k8s/*"
"""The kernel's audit action of a request through the gateway (the door's row)."""


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(value: Any, default: float = DEFAULT_DURATION) -> float:
    seconds = float(value) if value is not None else default
    if seconds < MIN_DURATION or seconds > MAX_DURATION:
        raise UsageError("duration: between 1m and 24h")
    return seconds


def _guild(ctx: Any) -> str:
    guild = ctx.invocation.guild_id or ctx.config.get("guild")
    if not guild:
        raise UsageError(
            "run /sso login in the Discord server, or set the sso plugin's guild (its id)"
        )
    return str(guild)


async def login(ctx: Any) -> Reply:
    cluster = str(ctx.options["cluster"])
    names = [c.name for c in ctx.plugin.kubernetes.clusters()]
    if cluster not in names:
        raise UsageError(f"cluster {cluster!r} is unknown (clusters: {', '.join(names) or 'none'})")
    duration = _duration(ctx.options.get("duration"))
    mode = str(ctx.options.get("mode") or GATEWAY)
    if mode not in MODES:
        raise UsageError(f"mode: {' or '.join(MODES)}, not {mode!r}")
    if mode == TOKEN:
        # kubectl then talks to the API server directly: nothing of ours sees its requests.
        if str(ctx.config.get("allow_ips") or "").strip():
            raise UsageError("mode:token cannot check allow_ips (kubectl bypasses ClusterCord)")
        if ctx.config.get("device_trust"):
            raise UsageError("mode:token cannot bind a device while device_trust is on")
    oauth = DiscordOAuth.from_env()
    guild = _guild(ctx)
    store = store_of(ctx.plugin)
    state, verifier = store.new_state(ctx.user_id, guild, cluster, duration, mode)
    url = oauth.authorize_url(site(ctx.plugin).url("/callback"), state, verifier)
    # What exists now is a pending login; a script follows it by its id, which the session
    # made from it carries (list-sessions' data.sessions[].login) once the user signs in.
    pending = {
        "id": login_id(state),
        "cluster": cluster,
        "mode": mode,
        "duration": int(duration),
        "expires": int(store.clock() + STATE_LIFETIME),
        "url": url,
    }
    hours = duration / 3600
    text = (
        f"🔐 **SSO login to {cluster}** ({hours:g} h)\n"
        f"Sign in with Discord within 10 minutes (this link works once, for you only):\n"
        f"{url}\n"
        "Then download your kubeconfig from the page it opens."
    )
    if ctx.invocation.frontend == "discord":
        # Also by DM, where it stays findable; the link alone grants nothing: the sign-in
        # must be this user's own Discord account, within 10 minutes, once.
        await ctx.plugin.notifier.notify(Reply(text=text, ephemeral=True), user=ctx.user_id)
    return Reply(
        text=text,
        ephemeral=True,
        data={
            "login": pending,
            "authorize_url": url,
            "cluster": cluster,
            "mode": mode,
            "expires_in": int(STATE_LIFETIME),
        },
    )


def _own_or_admin(ctx: Any, session: Session | None, sid: str) -> Session:
    if session is None:
        raise UsageError(f"no session {sid!r}")
    if session.user_id != ctx.user_id and not ctx.invocation.admin:
        raise PermissionDenied("only its owner or an admin may change this session")
    return session


async def logout(ctx: Any) -> Reply:
    cluster = str(ctx.options["cluster"])
    store = store_of(ctx.plugin)
    ended = [
        s.id
        for s in store.sessions(ctx.user_id)
        if s.cluster == cluster and await access.end(ctx.plugin, store, s, ctx.user_id)
    ]
    for sid in ended:
        ctx.plugin.audit.record("revoke", actor=f"discord:{ctx.user_id}", details={"session": sid})
    if not ended:
        return Reply(text=f"You have no active session on {cluster}.", ephemeral=True)
    return Reply(
        text=f"Ended {len(ended)} session(s) on {cluster}: kubectl stops at its next request.",
        ephemeral=True,
        data={"revoked": ended},
    )


async def list_sessions(ctx: Any) -> Reply:
    user = ctx.options.get("user")
    store = store_of(ctx.plugin)
    if ctx.invocation.admin:
        sessions = store.sessions(str(user) if user else None)
    else:
        if user and str(user) != ctx.user_id:
            raise PermissionDenied("only admins see other people's sessions")
        sessions = store.sessions(ctx.user_id)
    if not sessions:
        return Reply(text="No active SSO sessions.", ephemeral=True, data={"sessions": []})
    rows = [
        [
            s.id,
            f"<@{s.user_id}>",
            s.cluster,
            ", ".join(s.groups),
            _when(s.expires),
            _when(s.last_used) if s.last_used else "never",
        ]
        for s in sessions
    ]
    return Reply(
        tables=[Table(["Session", "User", "Cluster", "Groups", "Expires", "Last used"], rows)],
        ephemeral=True,
        data={"sessions": [s.to_json() for s in sessions]},
    )


async def revoke(ctx: Any) -> Reply:
    sid, user = ctx.options.get("session"), ctx.options.get("user")
    store = store_of(ctx.plugin)
    if bool(sid) == bool(user):
        raise UsageError("give session: or user: (one of them)")
    if sid:
        targets = [_own_or_admin(ctx, store.session(str(sid)), str(sid))]
    else:
        if str(user) != ctx.user_id and not ctx.invocation.admin:
            raise PermissionDenied("only admins revoke other people's sessions")
        targets = store.sessions(str(user))
    ended = [s.id for s in targets if await access.end(ctx.plugin, store, s, ctx.user_id)]
    for ended_id in ended:
        ctx.plugin.audit.record(
            "revoke", actor=f"discord:{ctx.user_id}", details={"session": ended_id}
        )
    if not ended:
        return Reply(text="Nothing to revoke: no active session.", ephemeral=True)
    return Reply(
        text=f"Revoked {', '.join(ended)}: kubectl is refused from its next request.",
        ephemeral=True,
        data={"revoked": ended},
    )


async def extend(ctx: Any) -> Reply:
    sid = str(ctx.options["session"])
    store = store_of(ctx.plugin)
    session = _own_or_admin(ctx, store.session(sid), sid)
    if not session.active(store.clock()):
        raise UsageError(f"session {sid} has ended: run /sso login again")
    if session.mode == TOKEN:
        # Its token's expiry is fixed inside the token: a longer session would outlive it.
        raise UsageError(f"session {sid} is a token-mode session: run /sso login mode:token")
    session = store.extend(sid, _duration(ctx.options["duration"]))
    ctx.plugin.audit.record(
        "extend",
        actor=f"discord:{ctx.user_id}",
        details={"session": sid, "expires": int(session.expires)},
    )
    return Reply(
        text=f"Session {sid} now ends {_when(session.expires)}.",
        ephemeral=True,
        data={"session": session.to_json()},
    )


def _names(value: Any) -> list[str]:
    return [n.strip() for n in str(value or "").split(",") if n.strip()]


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,252}$")


async def map_role(ctx: Any) -> Reply:
    role = str(ctx.options["role"])
    groups = _names(ctx.options["groups"])
    namespaces, roles = (
        _names(ctx.options.get("namespaces")),
        _names(ctx.options.get("permissions")),
    )
    for group in groups:
        if group.startswith("system:"):
            raise UsageError(f"{group}: system: groups are never given through SSO")
    for namespace in namespaces:
        if namespace != "*" and not _NAME.match(namespace):
            raise UsageError(f"namespaces: {namespace!r} is not a namespace name (or *)")
    for name in roles:
        if name.startswith("system:") or not _ROLE.match(name):
            raise UsageError(f"permissions: {name!r} is not a ClusterRole SSO may bind")
    if bool(namespaces) != bool(roles):
        raise UsageError("give namespaces: and permissions: together (or neither)")
    store = store_of(ctx.plugin)
    before = store.mapping_rules().get(role, {})
    store.set_mapping(role, groups, namespaces, roles)
    # The plugin's own rights follow the mappings (rights.py): before the bindings, which
    # need bind on the ClusterRoles now mapped.
    unnarrowed = await rights.narrow(ctx.plugin.kubernetes, store.mapping_rules())
    report: dict[str, Any] = {}
    if before.get("roles") or (roles and groups):
        report = await access.sync(ctx.plugin, store)
    failed = {name: r["error"] for name, r in report.items() if "error" in r}
    note = "".join(
        f"\n⚠️ {name}: SSO's own rights not yet fitted to the mappings: {why}"
        for name, why in unnarrowed.items()
    ) + "".join(f"\n⚠️ {name}: RoleBindings not reconciled: {why}" for name, why in failed.items())
    data = {"role": role, "groups": groups, "namespaces": namespaces, "permissions": roles,
            "bindings": report}  # fmt: skip
    if not groups:
        return Reply(text=f"Role {role} no longer gives cluster access.{note}", ephemeral=True,
                     data=data)  # fmt: skip
    scope = f" holding {', '.join(roles)} in {', '.join(namespaces)}" if roles else ""
    return Reply(
        text=f"Role {role} → groups {', '.join(groups)}{scope}.{note}", ephemeral=True, data=data
    )


SETTINGS = ("allow_ips", "require_mfa", "max_sessions", "device_trust")


def _networks(value: str) -> str:
    """``allow_ips`` checked before it is saved: a typo must not lock everyone out (or, as
    an empty list, let everyone in). ``none`` clears it."""
    if value.strip().lower() in ("", "none", "any"):
        return ""
    networks = [n.strip() for n in value.split(",") if n.strip()]
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise UsageError(f"allow_ips: {network!r} is not an address or network") from None
    return ",".join(networks)


async def configure(ctx: Any) -> Reply:
    """``/sso config``: the settings, or some of them changed (checked all first)."""
    given = {k: ctx.options[k] for k in SETTINGS if ctx.options.get(k) is not None}
    if "allow_ips" in given:
        given["allow_ips"] = _networks(str(given["allow_ips"]))
    if "max_sessions" in given and not 1 <= int(given["max_sessions"]) <= 20:
        raise UsageError("max_sessions: between 1 and 20")
    if given:
        writer = ctx.plugin.require("config-write")
        for key, value in given.items():
            await writer.set(key, value, by=f"discord:{ctx.user_id}")
        ctx.plugin.audit.record("config", actor=f"discord:{ctx.user_id}", details=given)
    shown = {k: ctx.plugin.config.get(k) for k in SETTINGS}
    rows = [[k, "anywhere" if k == "allow_ips" and not v else str(v)] for k, v in shown.items()]
    return Reply(
        text="SSO settings changed." if given else None,
        tables=[Table(["Setting", "Value"], rows)],
        ephemeral=True,
        data={"settings": shown, "changed": sorted(given)},
    )


async def mappings(ctx: Any) -> Reply:
    store = store_of(ctx.plugin)
    found, rules = store.mappings(), store.mapping_rules()
    if not found:
        return Reply(text="No Discord role is mapped yet (/sso map).", ephemeral=True)
    rows = [
        [f"<@&{role}>", ", ".join(groups), ", ".join(rules[role]["roles"]) or "–",
         ", ".join(rules[role]["namespaces"]) or "–"]
        for role, groups in sorted(found.items())
    ]  # fmt: skip
    return Reply(
        tables=[Table(["Role", "Groups", "Permissions", "Namespaces"], rows)],
        ephemeral=True,
        data=found,
    )


async def audit(ctx: Any) -> Reply:
    """The gateway's requests from the kernel's audit log (one row each, written by the door),
    newest first: admins see anyone's, others their own."""
    user = str(ctx.options.get("user") or "") or None
    if not ctx.invocation.admin:
        if user and user != ctx.user_id:
            raise PermissionDenied("only admins see other people's kubectl requests")
        user = ctx.user_id
    since = ctx.options.get("since")
    reader = ctx.plugin.require("audit-read")
    rows = [
        r
        for r in reader.rows(
            plugin="sso",
            actor=f"discord:{user}" if user else None,
            since_ts=time.time() - float(since) if since else None,
            limit=200,
        )
        if r["action"] == GATEWAY_ACTION and r["result"] != "started"
    ][:50]
    if not rows:
        return Reply(text="No kubectl request through the SSO gateway.", ephemeral=True)
    table = [
        [
            _when(r["ts"]),
            r["actor"],
            (r["options"].get("details") or {}).get("verb", "?"),
            (r["options"].get("details") or {}).get("path", "?"),
            (r["options"].get("details") or {}).get("status", r["options"].get("status")),
            r["result"],
        ]
        for r in rows
    ]
    return Reply(
        tables=[Table(["When", "Who", "Verb", "Path", "Status", "Result"], table)],
        ephemeral=True,
        data={"requests": [{"seq": r["seq"], "actor": r["actor"], **r["options"]} for r in rows]},
    )


async def devices(ctx: Any) -> Reply:
    """Devices of the ``clustercord-sso`` helper waiting for approval (``device_trust``)."""
    from clustercord_builtins.sso import devices as bound

    store = store_of(ctx.plugin)
    for status, device_id in (
        ("approved", ctx.options.get("approve")),
        ("rejected", ctx.options.get("reject")),
    ):
        if device_id:
            return await _decide_device(ctx, str(device_id), status)
    waiting = bound.devices(store, "pending")
    if not waiting:
        return Reply(text="No device waits for approval.", ephemeral=True, data={"devices": []})
    rows = [[d["id"], f"<@{d['user_id']}>", d["name"], _when(d["created"])] for d in waiting]
    # Approve/Reject for the first few: pressed by whoever may run /sso devices (admins).
    buttons = [
        button
        for d in waiting[:DEVICE_BUTTONS]
        for button in (
            Button(f"Approve {d['id']}", action="commands:device_approved", value=d["id"],
                   style="success", command="sso devices"),
            Button(f"Reject {d['id']}", action="commands:device_rejected", value=d["id"],
                   style="danger", command="sso devices"),
        )
    ]  # fmt: skip
    return Reply(
        tables=[Table(["Device", "User", "Name", "Enrolled"], rows)],
        buttons=buttons,
        ephemeral=True,
        data={"devices": waiting},
    )


async def device_approved(ctx: Any, value: str) -> Reply:
    return await _decide_device(ctx, str(value), "approved")


async def device_rejected(ctx: Any, value: str) -> Reply:
    return await _decide_device(ctx, str(value), "rejected")


async def _decide_device(ctx: Any, device_id: str, status: str) -> Reply:
    from clustercord_builtins.sso import devices as bound

    if not bound.decide(store_of(ctx.plugin), device_id, status, ctx.user_id):
        raise UsageError(f"no device {device_id!r} waits for a decision")
    ctx.plugin.audit.record(
        "device", actor=f"discord:{ctx.user_id}", details={"device": device_id, "status": status}
    )
    return Reply(text=f"Device {device_id} {status}.", ephemeral=True)
