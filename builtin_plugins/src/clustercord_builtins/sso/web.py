"""The routes a browser reaches: Discord's redirect (``/callback``) and the one-time
kubeconfig download (``/kubeconfig``). Pages say what happened in one line; nothing secret
but the download link is ever shown, and that link works once, for 5 minutes."""

from __future__ import annotations

import base64
import html
import ipaddress
import json
from typing import Any

import yaml

from clustercord_builtins.sso import access, bindings, tokenmode
from clustercord_builtins.sso.devices import new_enrollment
from clustercord_builtins.sso.flow import DiscordOAuth, bot_token, member_roles
from clustercord_builtins.sso.sessions import GATEWAY, TOKEN, Session, store_of
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
        await access.end(ctx, store, old, "sso:max_sessions")
    mode = pending.get("mode") or GATEWAY
    session, token = store.create_session(
        pending["user_id"],
        str(user.get("username") or ""),
        pending["guild_id"],
        pending["cluster"],
        groups,
        pending["duration"],
        request.remote,
        mode,
        login=pending["login"],  # what /sso login answered as data.login.id: followable
    )
    if mode == TOKEN:
        try:
            both = await _token_mode(ctx, store, session)
        except Exception as exc:  # the cluster refused: no half-made session stays usable
            store.revoke(session.id, "sso:token-mode-failed")
            try:
                await access.release(ctx, store, session)
            except Exception as cleanup:  # what was made stays inert: its session is revoked
                ctx.log.warning("sso: cleaning up session %s: %s", session.id, cleanup)
            ctx.audit.record(
                "login",
                actor=who,
                result="error",
                details={"session": session.id, "cluster": session.cluster, "why": str(exc)},
            )
            return refused(f"The cluster did not give a token: {exc}", 502)
    else:
        enroll = new_enrollment(store, session.id)
        both = {
            "helper": kubeconfig(ctx, session, token, enroll),
            "static": kubeconfig(ctx, session, token),
        }
    download = store.new_download(session.id, json.dumps(both))
    link = site(ctx).url(f"/kubeconfig?token={download}&kind=helper")
    static = site(ctx).url(f"/kubeconfig?token={download}&kind=static")
    token_link = site(ctx).url(f"/kubeconfig?token={download}&kind=token")
    ctx.audit.record(
        "login",
        actor=who,
        result="ok",
        details={
            "session": session.id,
            "cluster": session.cluster,
            "groups": list(groups),
            "expires": int(session.expires),
            "mode": mode,
        },
    )
    if mode == TOKEN:
        return page(
            "Signed in (token mode)",
            f"<p>Session <code>{session.id}</code> on <b>{html.escape(session.cluster)}</b> as "
            f"ServiceAccount <code>clustercord-users/discord-{html.escape(session.user_id)}"
            "</code>, straight to the API server.</p>"
            f'<p><a href="{html.escape(token_link)}">Download your kubeconfig</a> (once, within 5 '
            "minutes). Its token is bound to this session: /sso revoke or /sso logout stops "
            "it at once; an open watch or exec ends only when it reconnects.</p>",
        )
    return page(
        "Signed in",
        f"<p>Session <code>{session.id}</code> on <b>{html.escape(session.cluster)}</b> as "
        f"<code>discord:{html.escape(session.user_id)}</code>.</p>"
        f'<p><a href="{html.escape(link)}">Download your kubeconfig</a> (once, within 5 '
        "minutes; it runs <code>clustercord-sso</code>, which binds it to this device and "
        "fetches tokens of 10 minutes).</p>"
        + (
            f'<p>Where the helper cannot run: <a href="{html.escape(static)}">a static-token '
            "kubeconfig</a> (instead: one download in all).</p>"
            if ctx.config.get("allow_static", True)
            else ""
        )
        + "<pre>export KUBECONFIG=~/kubeconfig-"
        f"{html.escape(session.cluster)}.yaml\nkubectl get pods</pre>"
        "<p>To end it: /sso logout, or /sso revoke.</p>",
    )


async def _token_mode(ctx: Any, store: Any, session: Session) -> dict[str, str]:
    """Token mode's cluster side: ServiceAccount, bound Secret and token, bindings; the
    kubeconfig (offered as the "static" download: there is no helper in this mode)."""
    kubernetes = ctx.kubernetes
    seconds = session.expires - store.clock()
    token, _ = await tokenmode.issue(
        kubernetes, session.cluster, session.user_id, session.id, seconds
    )
    await bindings.reconcile(
        kubernetes, session.cluster, store.mapping_rules(), store.token_holders(session.cluster)
    )
    config = await tokenmode.kubeconfig(kubernetes, session.cluster, session.user_id, token)
    return {"token": config}


def kubeconfig(ctx: Any, session: Session, token: str, enroll: str | None = None) -> str:
    """A kubeconfig whose server is this plugin's gateway for the session's cluster: with
    ``enroll``, its credential is the ``clustercord-sso`` helper's (device-bound, tokens of
    10 minutes); without, the session's static token."""
    here = site(ctx)
    cluster: dict[str, Any] = {"server": here.url(f"/k8s/{session.cluster}")}
    ca = base64.b64encode(here.ca_pem.encode()).decode() if here.ca_pem else None
    if ca:
        cluster["certificate-authority-data"] = ca
    name = f"{session.cluster}-sso"
    user = f"discord-{session.user_id}"
    credential: dict[str, Any] = {"token": token}
    if enroll is not None:
        helper_args = ["--server", here.base_url, "--session", session.id, "--enroll", enroll]
        credential = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "clustercord-sso",
                "args": helper_args + (["--ca-data", ca] if ca else []),
                "interactiveMode": "Never",
                "provideClusterInfo": False,
            }
        }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": credential}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)


def download_kubeconfig(request: HttpRequest, ctx: Any) -> HttpResponse:
    args = request.args()
    kind = args.get("kind", "helper")
    if kind not in ("helper", "static", "token"):
        return refused("kind: helper, static or token", 400)
    if kind == "static" and not ctx.config.get("allow_static", True):
        return refused("Static-token kubeconfigs are turned off here: use the helper one.", 403)
    stored = store_of(ctx).take_download(args.get("token", ""))
    if stored is None:
        return refused("This download link was used already or has expired.", 404)
    found = json.loads(stored)
    if kind not in found:
        return refused(
            f"This session has no {kind} kubeconfig: the link on the sign-in page says which.", 404
        )
    text = found[kind]
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


def _json_error(message: str, status: int = 403) -> HttpResponse:
    return HttpResponse.json_body({"error": message}, status)


def enroll_device(request: HttpRequest, ctx: Any) -> HttpResponse:
    """The helper's first run: its public key bound to the session (see :mod:`.devices`)."""
    from clustercord_builtins.sso import devices

    try:
        body = request.json()
        found = devices.enroll(
            store_of(ctx),
            str(body["session"]),
            str(body["enroll"]),
            str(body["public_key"]),
            str(body.get("name", "")),
            bool(ctx.config.get("device_trust")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return _json_error("malformed enrollment", 400)
    except PermissionError as exc:
        return _json_error(str(exc))
    ctx.audit.record(
        "device",
        actor=f"discord:{found['user_id']}",
        details={
            "device": found["id"],
            "session": found["session"],
            "status": found["status"],
            "name": found["name"],
        },
    )
    return HttpResponse.json_body({"device": found["id"], "status": found["status"]})


def device_token(request: HttpRequest, ctx: Any) -> HttpResponse:
    """A token of at most 10 minutes for a fresh signature of an enrolled, approved device."""
    from clustercord_builtins.sso import devices

    store = store_of(ctx)
    try:
        body = request.json()
        session, device = str(body["session"]), str(body["device"])
        if not source_allowed(request.remote, str(ctx.config.get("allow_ips") or "")):
            raise PermissionError(f"requests from {request.remote} are not allowed")
        token = devices.issue(store, session, device, float(body["ts"]), str(body["signature"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return _json_error("malformed token request", 400)
    except PermissionError as exc:
        return _json_error(str(exc))
    expires = min(store.clock() + devices.TOKEN_LIFETIME, store.session(session).expires)
    return HttpResponse.json_body({"token": token, "expires": int(expires)})
