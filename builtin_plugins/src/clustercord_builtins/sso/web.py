"""The routes a browser reaches: Discord's redirect (``/callback``) and the one-time
kubeconfig download (``/kubeconfig``). Pages say what happened in one line; nothing secret
but the download link is ever shown, and that link works once, for 5 minutes."""

from __future__ import annotations

import base64
import html
import ipaddress
from typing import Any

import yaml

from clustercord_builtins.sso.flow import DiscordOAuth, bot_token, member_roles
from clustercord_builtins.sso.sessions import Session, store_of
from clustercord_sdk.errors import CommandError, PermissionDenied
from clustercord_sdk.http import HttpRequest, HttpResponse

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>ClusterCord SSO</title>
<meta name="referrer" content="no-referrer"></head><body><h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(
        status,
        PAGE.format(title=html.escape(title), body=body),
        "text/html; charset=utf-8",
        {"Referrer-Policy": "no-referrer", "Content-Security-Policy": "default-src 'none'"},
    )


def refused(message: str, status: int = 403) -> HttpResponse:
    return page("Sign-in refused", f"<p>{html.escape(message)}</p>", status)


def site(ctx: Any) -> Any:
    found = ctx.services.get("http")
    if found is None:
        raise CommandError("the kernel's HTTP service is not available to the sso plugin")
    return found


def groups_for(roles: list[str], mappings: dict[str, list[str]]) -> list[str]:
    return sorted({group for role in roles for group in mappings.get(role, [])})


async def callback(request: HttpRequest, ctx: Any) -> HttpResponse:
    args = request.args()
    if "error" in args:
        return refused(f"Discord said: {args['error']}", 400)
    store = store_of(ctx)
    pending = store.take_state(args.get("state", ""))
    if pending is None:
        return refused("This sign-in link is unknown, used or expired: run /sso login again.", 400)
    if not args.get("code"):
        return refused("Discord sent no code.", 400)
    try:
        oauth = DiscordOAuth.from_env()
        user, roles = await oauth.sign_in(
            args["code"], site(ctx).url("/callback"), pending["verifier"], pending["guild_id"]
        )
    except (PermissionDenied, CommandError) as exc:
        ctx.audit.record(
            "login",
            actor=f"discord:{pending['user_id']}",
            details={"cluster": pending["cluster"], "why": str(exc)},
            result="denied",
        )
        return refused(str(exc))
    who = f"discord:{pending['user_id']}"
    bot = bot_token()
    if bot and str(user.get("id")) == pending["user_id"]:
        # The bot's read of the member is authoritative (role ids, never names).
        try:
            by_bot = await member_roles(
                oauth.api_url, bot, pending["guild_id"], [pending["user_id"]]
            )
        except CommandError as exc:
            return refused(f"Discord did not give your roles: {exc}", 502)
        roles = by_bot[pending["user_id"]] or []
    if str(user.get("id")) != pending["user_id"]:
        ctx.audit.record(
            "login",
            actor=who,
            result="denied",
            details={
                "cluster": pending["cluster"],
                "why": "another account",
                "signed_in": str(user.get("id")),
            },
        )
        return refused("You signed in to Discord as another account than the one who asked.")
    if ctx.config.get("require_mfa") and not user.get("mfa_enabled"):
        ctx.audit.record(
            "login",
            actor=who,
            result="denied",
            details={"cluster": pending["cluster"], "why": "no 2FA"},
        )
        return refused("This server requires two-factor authentication on your Discord account.")
    groups = groups_for(roles, store.mappings())
    if not groups:
        ctx.audit.record(
            "login",
            actor=who,
            result="denied",
            details={"cluster": pending["cluster"], "why": "no mapped role"},
        )
        return refused("None of your Discord roles gives access to a cluster (/sso map).")
    limit = int(ctx.config.get("max_sessions") or 3)
    active = store.sessions(pending["user_id"])
    for old in active[: max(0, len(active) - limit + 1)]:
        store.revoke(old.id, "sso:max_sessions")
    session, token = store.create_session(
        pending["user_id"],
        str(user.get("username") or ""),
        pending["guild_id"],
        pending["cluster"],
        groups,
        pending["duration"],
        request.remote,
    )
    download = store.new_download(session.id, kubeconfig(ctx, session, token))
    link = site(ctx).url(f"/kubeconfig?token={download}")
    ctx.audit.record(
        "login",
        actor=who,
        result="ok",
        details={
            "session": session.id,
            "cluster": session.cluster,
            "groups": list(groups),
            "expires": int(session.expires),
        },
    )
    return page(
        "Signed in",
        f"<p>Session <code>{session.id}</code> on <b>{html.escape(session.cluster)}</b> as "
        f"<code>discord:{html.escape(session.user_id)}</code>.</p>"
        f'<p><a href="{html.escape(link)}">Download your kubeconfig</a> (once, within 5 '
        "minutes).</p><pre>export KUBECONFIG=~/kubeconfig-"
        f"{html.escape(session.cluster)}.yaml\nkubectl get pods</pre>"
        "<p>To end it: /sso logout, or /sso revoke.</p>",
    )


def kubeconfig(ctx: Any, session: Session, token: str) -> str:
    """A kubeconfig whose server is this plugin's gateway for the session's cluster."""
    here = site(ctx)
    cluster: dict[str, Any] = {"server": here.url(f"/k8s/{session.cluster}")}
    if here.ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(here.ca_pem.encode()).decode()
    name = f"{session.cluster}-sso"
    user = f"discord-{session.user_id}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)


def download_kubeconfig(request: HttpRequest, ctx: Any) -> HttpResponse:
    text = store_of(ctx).take_download(request.args().get("token", ""))
    if text is None:
        return refused("This download link was used already or has expired.", 404)
    return HttpResponse(
        200,
        text,
        "application/yaml",
        {"Content-Disposition": 'attachment; filename="kubeconfig.yaml"'},
    )


def source_allowed(remote: str, allow: str) -> bool:
    """Whether ``remote`` is inside one of the comma-separated networks (empty: anywhere)."""
    networks = [n.strip() for n in allow.split(",") if n.strip()]
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(remote)
        return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
    except ValueError:  # a client address or a configured network that is not one: refuse
        return False
