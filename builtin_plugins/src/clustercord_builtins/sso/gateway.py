"""The gateway: ``/k8s/<cluster>/…`` forwards the Kubernetes API for a session's holder.

Every request, before anything is forwarded: the bearer token must be a session's (hash
compared in constant time), not revoked, not expired, for this cluster, from an address
``allow_ips`` allows. Then the request goes to the cluster as the plugin's ServiceAccount
impersonating ``discord:<id>`` with the session's mapped groups and the session id as uid
(``ctx.kubernetes.impersonated``: the client's ``Authorization`` and ``Impersonate-*``
headers are never passed on), and one audit row says who did what with what status. Since
the session is read on every request, ``/sso revoke`` takes effect at the next one.

Not yet: watches (``kubectl get -w``) and exec/attach/port-forward streams are refused with
501 rather than relayed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from clustercord_builtins.sso.sessions import store_of
from clustercord_builtins.sso.web import source_allowed
from clustercord_sdk.errors import ClusterCordError
from clustercord_sdk.http import HttpRequest, HttpResponse

STREAMING = ("/exec", "/attach", "/portforward", "/proxy")


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
    if session is None:
        refusal = status(401, "Unauthorized", "no ClusterCord SSO session: run /sso login")
    elif session.revoked is not None:
        refusal = status(401, "Unauthorized", f"SSO session {session.id} was revoked")
    elif now >= session.expires:
        refusal = status(401, "Unauthorized", f"SSO session {session.id} has expired")
    elif session.cluster != cluster:
        refusal = status(403, "Forbidden", f"SSO session {session.id} is for {session.cluster}")
    elif not source_allowed(request.remote, str(ctx.config.get("allow_ips") or "")):
        refusal = status(403, "Forbidden", f"requests from {request.remote} are not allowed")
    elif "watch=true" in request.query or "watch=1" in request.query or "/watch/" in path:
        refusal = status(501, "NotImplemented", "watches are not relayed by the SSO gateway yet")
    elif any(path.endswith(s) or f"{s}?" in path for s in STREAMING) and request.method != "GET":
        refusal = status(501, "NotImplemented", "exec, attach and port-forward are not relayed yet")
    if refusal is not None:
        _audit(ctx, session, request, path, cluster, refusal.status, start)
        return refusal
    assert session is not None
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
        )
    except ClusterCordError as exc:
        answer = status(502, "InternalError", f"the SSO gateway could not forward: {exc}")
        _audit(ctx, session, request, path, cluster, answer.status, start)
        return answer
    store.touch(session.id)
    content_type = headers.pop("content-type", "application/json")
    _audit(ctx, session, request, path, cluster, code, start)
    return HttpResponse(code, body, content_type, headers)


def _audit(
    ctx: Any, session: Any, request: HttpRequest, path: str, cluster: str, code: int, start: float
) -> None:
    ctx.audit.record(
        "request",
        actor=f"discord:{session.user_id}" if session is not None else f"http:{request.remote}",
        details={
            "session": session.id if session is not None else None,
            "cluster": cluster,
            "verb": request.method,
            "path": path,
            "query": request.query[:200],
            "status": code,
            "ms": round((time.perf_counter() - start) * 1000, 1),
        },
        result="ok" if code < 400 else "denied" if code in (401, 403) else "error",
    )
