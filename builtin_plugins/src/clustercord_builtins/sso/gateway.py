"""The gateway: ``/k8s/<cluster>/…`` forwards the Kubernetes API for a session's holder.

Every request, before anything is forwarded: the bearer token must be a session's (hash
compared in constant time), not revoked, not expired, for this cluster, from an address
``allow_ips`` allows. Then the request goes to the cluster as the plugin's ServiceAccount
impersonating ``discord:<id>`` with the session's mapped groups and the session id as uid
(``ctx.kubernetes.impersonated``: the client's ``Authorization`` and ``Impersonate-*``
headers are never passed on). The kernel's audit row of the request (action
``route * /k8s/*``) names the Discord user and carries session, verb, path, status and
latency (``HttpResponse.actor`` and ``audit``): one row per request, refused ones included. Since
the session is read on every request, ``/sso revoke`` takes effect at the next one.

Watches (``kubectl get -w``) and followed logs (``kubectl logs -f``) are relayed as they
come; the session is read again every :data:`RECHECK` seconds while one is open, and a
revoked or expired session ends it (the upstream connection is shut). exec, attach and
port-forward over WebSocket (kubectl 1.30+) are bridged to the API server's WebSocket, and
end the same way; SPDY upgrades (older kubectl) are refused with 501.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from clustercord_builtins.sso.sessions import MAX_DURATION, store_of
from clustercord_builtins.sso.web import source_allowed
from clustercord_sdk.errors import ClusterCordError
from clustercord_sdk.http import HttpRequest, HttpResponse, WebSocketRelay

STREAMING = ("/exec", "/attach", "/portforward")
REFRESH = 3600.0
"""With ``auto_refresh``: a session used within this of its end is moved to this after now."""
TOUCH_EVERY = 30.0
"""Seconds between two writes of a session's ``last_used`` (not one write per request)."""
RECHECK = 0.25
"""Seconds between two reads of an open watch's session (revocation ends it within this)."""


def _streams(request: HttpRequest, path: str) -> bool:
    args = request.args()
    return (
        args.get("watch") in ("true", "1")
        or args.get("follow") in ("true", "1")
        or "/watch/" in path
    )


def status(code: int, reason: str, message: str) -> HttpResponse:
    """A Kubernetes ``Status`` body, which kubectl prints as the error."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return HttpResponse(code, json.dumps(body), "application/json")


async def forward(request: HttpRequest, ctx: Any) -> HttpResponse:
    start = time.perf_counter()
    cluster, _, rest = request.tail.lstrip("/").partition("/")
    path = "/" + rest
    header = request.header("authorization") or ""
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    store = store_of(ctx)
    session = store.authenticate(token) if token else None
    now = store.clock()
    refusal: HttpResponse | None = None
    if not source_allowed(request.remote, str(ctx.config.get("allow_ips") or "")):
        # First: from outside the allowlist, not even whether a token is valid is told.
        refusal = status(403, "Forbidden", f"requests from {request.remote} are not allowed")
    elif session is None:
        refusal = status(401, "Unauthorized", "no ClusterCord SSO session: run /sso login")
    elif token.startswith("ccsso_") and not ctx.config.get("allow_static", True):
        refusal = status(401, "Unauthorized", "static tokens are off: use clustercord-sso")
    elif session.revoked is not None:
        refusal = status(401, "Unauthorized", f"SSO session {session.id} was revoked")
    elif now >= session.expires:
        refusal = status(401, "Unauthorized", f"SSO session {session.id} has expired")
    elif _idle(session, ctx.config.get("idle_timeout"), now):
        store.revoke(session.id, "sso:idle")
        refusal = status(401, "Unauthorized", f"SSO session {session.id} was idle too long")
    elif session.cluster != cluster:
        refusal = status(403, "Forbidden", f"SSO session {session.id} is for {session.cluster}")
    elif any(path.endswith(s) for s in STREAMING) and not _websocket(request):
        refusal = status(501, "NotImplemented", "SPDY is not relayed: a WebSocket client only")
    elif request.header("upgrade") and not _websocket(request):
        refusal = status(501, "NotImplemented", "only WebSocket upgrades are relayed")
    if refusal is not None:
        return _audited(refusal, session, request, path, cluster, start)
    assert session is not None
    if _websocket(request):
        return await _upgrade(request, ctx, store, session, path, cluster, start)
    # Reads are relayed as they come (a big list starts reaching kubectl before its end
    # has left the API server); watches and followed logs must be.
    streaming = request.method == "GET" or _streams(request, path)
    try:
        code, headers, body = await ctx.kubernetes.impersonated(
            request.method,
            path,
            user=f"discord:{session.user_id}",
            groups=list(session.groups),
            uid=session.id,
            query=request.query,
            headers=request.headers,
            body=request.body,
            cluster=cluster,
            stream=streaming,
        )
    except ClusterCordError as exc:
        answer = status(502, "InternalError", f"the SSO gateway could not forward: {exc}")
        return _audited(answer, session, request, path, cluster, start)
    except Exception as exc:  # the cluster unreachable, a connection cut: said, not raised
        ctx.log.warning("sso gateway: %s %s failed: %s", request.method, path, exc)
        answer = status(502, "InternalError", "the SSO gateway could not reach the cluster")
        return _audited(answer, session, request, path, cluster, start)
    if session.last_used is None or now - session.last_used > TOUCH_EVERY:
        store.touch(session.id)
    if ctx.config.get("auto_refresh") and session.expires - now < REFRESH:
        # In use: its end moves to an hour after this request, never past 24 h of sign-in.
        later = min(now + REFRESH, session.created + MAX_DURATION)
        if later > session.expires:
            store.extend_to(session.id, later)
    content_type = headers.pop("content-type", "application/json")
    if not isinstance(body, bytes):  # an open stream
        streamed = _while_valid(body, store, session.id)
        answer = HttpResponse(code, b"", content_type, headers, stream=streamed)
    else:
        answer = HttpResponse(code, body, content_type, headers)
    return _audited(answer, session, request, path, cluster, start)


async def _while_valid(upstream: Any, store: Any, sid: str) -> AsyncIterator[bytes]:
    """``upstream``'s chunks while the session stays valid: read again every
    :data:`RECHECK` seconds, waiting or not, so a revoke ends a quiet watch too."""
    pending: asyncio.Future[bytes] | None = None
    checked = time.monotonic()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(upstream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=RECHECK)
            if done:
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield chunk
            if time.monotonic() - checked < RECHECK:
                continue  # a busy stream: its session is read at most every RECHECK
            checked = time.monotonic()
            session = store.session(sid)
            if session is None or not session.active(store.clock()):
                return
    finally:
        await upstream.aclose()  # also ends a read still waiting
        if pending is not None:
            pending.cancel()


def _websocket(request: HttpRequest) -> bool:
    return (request.header("upgrade") or "").lower() == "websocket" and request.method == "GET"


async def _upgrade(
    request: HttpRequest,
    ctx: Any,
    store: Any,
    session: Any,
    path: str,
    cluster: str,
    start: float,
) -> HttpResponse:
    """exec, attach, port-forward: a WebSocket bridged to the API server's, as long as the
    session stays valid (read every :data:`RECHECK` seconds: revoking ends the shell)."""
    offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",")]
    try:
        opened = await ctx.kubernetes.impersonated_websocket(
            path,
            user=f"discord:{session.user_id}",
            groups=list(session.groups),
            uid=session.id,
            query=request.query,
            protocols=[p for p in offered if p],
            cluster=cluster,
        )
    except ClusterCordError as exc:
        answer = status(502, "InternalError", f"the SSO gateway could not connect: {exc}")
        return _audited(answer, session, request, path, cluster, start)
    except Exception as exc:  # the cluster unreachable: said, not raised
        ctx.log.warning("sso gateway: %s failed: %s", path, exc)
        answer = status(502, "InternalError", "the SSO gateway could not reach the cluster")
        return _audited(answer, session, request, path, cluster, start)
    if isinstance(opened, tuple):  # refused by the API server
        code, _, body = opened
        answer = status(code, "Forbidden" if code == 403 else "Failure", body.decode()[:500])
        return _audited(answer, session, request, path, cluster, start)
    sid = session.id

    def alive() -> bool:
        current = store.session(sid)
        return current is not None and current.active(store.clock())

    answer = HttpResponse(101, websocket=WebSocketRelay(opened, alive, RECHECK))
    return _audited(answer, session, request, path, cluster, start)


def _idle(session: Any, timeout: Any, now: float) -> bool:
    """Unused for longer than ``idle_timeout`` (``last_used`` is written every
    :data:`TOUCH_EVERY` seconds, so shorter timeouts are that coarse)."""
    if not timeout:
        return False
    last = session.last_used or session.created
    return now - last > max(float(timeout), TOUCH_EVERY)


def _audited(
    answer: HttpResponse,
    session: Any,
    request: HttpRequest,
    path: str,
    cluster: str,
    start: float,
) -> HttpResponse:
    """``answer`` carrying its audit: the kernel's row of this request names the Discord user
    (one row per request, written by the door, whatever the answer)."""
    return replace(
        answer,
        actor=f"discord:{session.user_id}" if session is not None else None,
        audit={
            "sso": "request",
            "session": session.id if session is not None else None,
            "cluster": cluster,
            "verb": request.method,
            "path": path,
            "query": request.query[:200],
            "status": answer.status,
            "ms": round((time.perf_counter() - start) * 1000, 1),
        },
    )
